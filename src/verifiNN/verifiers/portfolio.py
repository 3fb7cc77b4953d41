"""Complete verification: one entry point over every engine, within a time limit.

:func:`verify` answers a :class:`~verifiNN.specs.Specification` on a network
with a :class:`~verifiNN.results.Verdict`. With ``method='auto'`` it runs a
portfolio, cheapest first, each phase on what is left of one
:class:`~verifiNN.budget.Budget`:

1. a quick falsifying attack (``sat`` if it finds a counterexample);
2. CROWN, then alpha-CROWN bounds (``unsat`` if they prove the property;
   alpha-CROWN only when its estimated cost fits the budget, and not when
   ReLU splitting follows, whose root bound it is); both are skipped, and the
   attack is shorter, when input splitting follows: its first step bounds the
   whole box and it checks candidate points of every open box;
3. complete engines on the remaining budget, in turn until one decides
   (before ReLU splitting, a second attack with a fresh seed):
   input-splitting branch and bound for box regions of few inputs, else
   ReLU-splitting branch and bound with beta-CROWN bounds, then the MILP
   for fully connected ReLU networks;
4. when nothing decided (no complete engine applies, or it gave up), the
   attack again with fresh seeds: until the limit when there is one, else once.

Soundness rules: every ``sat`` is re-checked here by a plain forward pass
(``spec.is_violated_by(x, network.get_output(x))``) before it is returned; a
counterexample that fails the check is logged and ignored, never reported.
``unsat`` comes only from an engine's sound proof. When the limit runs out
first the verdict is ``timeout``; when every engine gave up with time left
it is ``unknown``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from verifiNN.bounds import AlphaOptions
from verifiNN.bounds.sound_fp import sound_verify
from verifiNN.budget import Budget, DeadlineReached
from verifiNN.errors import (
    InvalidInputError,
    ResourceLimitError,
    SpecError,
    UnsupportedModelError,
)
from verifiNN.io.ort import onnxruntime_output
from verifiNN.methods import BOUND_METHODS, COMPLETE_METHODS, METHODS
from verifiNN.models.network import Network
from verifiNN.results import EngineResult, Verdict, VerificationResult
from verifiNN.search.attack import attack
from verifiNN.search.bab import input_split_bab
from verifiNN.search.milp import milp_verify
from verifiNN.search.prove import prove
from verifiNN.search.relu_bab import relu_split_bab, supports_relu_split
from verifiNN.specs import Box, Specification

__all__ = [
    "BOUND_METHODS",
    "COMPLETE_ENGINES",
    "METHODS",
    "bab_verify",
    "check_device",
    "complete_methods",
    "relu_bab_verify",
    "verify",
]

logger = logging.getLogger(__name__)

#: Input splitting is exponential in the input dimension: ``'auto'`` uses it up to this many inputs.
INPUT_SPLIT_MAX_INPUTS = 12


def bab_verify(network: Network, spec: Specification, budget: Budget) -> EngineResult:
    """Input-splitting branch and bound (:func:`~verifiNN.search.bab.input_split_bab`).

    Raises:
        SpecError: a case whose input region is not a box.
    """
    if not all(isinstance(case.input_region, Box) for case in spec.cases):
        raise SpecError("method 'bab' (input splitting) needs box input regions", path=spec.path)
    return input_split_bab(network, spec, budget=budget)


def relu_bab_verify(network: Network, spec: Specification, budget: Budget) -> EngineResult:
    """ReLU-splitting branch and bound with beta-CROWN bounds
    (:func:`~verifiNN.search.relu_bab.relu_split_bab`).

    Raises:
        UnsupportedModelError: a network without ReLUs.
    """
    if not supports_relu_split(network):
        raise UnsupportedModelError("method 'relu-bab' needs a network with ReLU activations")
    return relu_split_bab(network, spec, budget=budget)


Engine = Callable[[Network, Specification, Budget], EngineResult]

COMPLETE_ENGINES: dict[str, Engine] = {
    "bab": bab_verify,
    "relu-bab": relu_bab_verify,
    "milp": milp_verify,
}
"""Complete engines by method name, in the order ``'auto'`` tries them.

Each is called as ``engine(network, spec, budget)`` and returns an
:class:`~verifiNN.results.EngineResult`.
"""

if tuple(COMPLETE_ENGINES) != COMPLETE_METHODS:
    raise ImportError("verifiNN.methods does not list the engines' own names")  # pragma: no cover


#: Share of the time limit the first, quick attack may use, and its cap in seconds.
QUICK_ATTACK_SHARE = 0.02
QUICK_ATTACK_CAP = 1.5
#: The quick attack's cap when input splitting follows (ACAS Xu: its counterexamples
#: are found in under 0.1 s when at all; the 1.5 s cap cost ~1.3 s per unsat instance).
INPUT_SPLIT_ATTACK_CAP = 0.3
#: Before ReLU splitting (high-dimensional inputs), a second attack with a fresh seed.
SECOND_ATTACK_SHARE = 0.05
SECOND_ATTACK_CAP = 5.0
#: alpha-CROWN runs when its estimated cost fits in half the budget: 20 iterations cost
#: 30-60 CROWN passes (measured on ACAS Xu and MNIST MLPs).
ALPHA_COST_IN_CROWN_PASSES = 60.0
#: Complete engines stop this share of the remaining time (at most RESERVE_CAP seconds)
#: before the deadline, which absorbs their overshoot (one batch, one solver phase).
RESERVE_SHARE = 0.1
RESERVE_CAP = 1.0
#: Restarts (fresh seeds) of the last-resort attack while time is left and nothing decided.
MAX_FINAL_ATTACKS = 1000


@dataclass
class _Outcome:
    """What one engine concluded."""

    verdict: Verdict
    method: str
    counterexample: tuple[np.ndarray, np.ndarray] | None = None
    statistics: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class _Query:
    """Per-call state: the problem, the budget and the bookkeeping."""

    network: Network
    spec: Specification
    budget: Budget
    device: str
    seed: int
    phases: dict[str, float] = field(default_factory=dict)
    rejected: int = 0
    timed_out: bool = False
    reasons: list[str] = field(default_factory=list)

    def timed(self, phase: str, run: Callable[[], _Outcome | None]) -> _Outcome | None:
        """Run one phase, add its wall time to ``phases`` and log its outcome.

        The query's deadline is enforced inside the phase (:meth:`Budget.enforce`):
        a long bound pass that reaches it stops at its next checkpoint and the
        phase ends ``timeout``. A phase that would need more memory than the
        machine has ends ``unknown`` with the reason (kept in ``reasons``); the
        next phases still run."""
        start = time.perf_counter()
        try:
            with self.budget.enforce():
                outcome = run()
        except DeadlineReached:
            logger.info("%s: stopped at the deadline", phase)
            outcome = _Outcome(Verdict.TIMEOUT, phase)
        except (ResourceLimitError, MemoryError) as exc:
            reason = f"{phase}: {exc or type(exc).__name__}"
            logger.warning("%s", reason)
            self.reasons.append(reason)
            outcome = _Outcome(Verdict.UNKNOWN, phase, statistics={"reason": reason})
        finally:
            seconds = time.perf_counter() - start
            self.phases[phase] = self.phases.get(phase, 0.0) + seconds
        if outcome is not None:
            if outcome.verdict is Verdict.TIMEOUT:
                self.timed_out = True
            logger.info("%s: %s in %.3f s", phase, outcome.verdict.value, seconds)
        return outcome


# ---------------------------------------------------------------- engines
def _confirm(query: _Query, x: Any, engine: str) -> tuple[np.ndarray, np.ndarray] | None:
    """Return ``(x, y)`` when a float64 forward pass confirms that ``x``, moved *exactly*
    into the input region it lies in up to rounding (:meth:`Box.project`,
    :meth:`LpBall.project`), violates the spec, and onnxruntime agrees on the original
    model when it came from ONNX; else ``None``."""
    if x is None:
        return None
    x = np.asarray(x, dtype=np.float64).ravel()
    if x.size == query.spec.num_inputs and np.all(np.isfinite(x)):
        for point in _region_points(query.spec, x):
            y = np.asarray(query.network.get_output(point), dtype=np.float64).ravel()
            if not (np.all(np.isfinite(y)) and query.spec.is_violated_by(point, y, input_tol=0.0)):
                continue
            y_ort = onnxruntime_output(query.network, point)
            if y_ort is None or query.spec.is_violated_by(point, y_ort, input_tol=0.0):
                return point, y
            query.rejected += 1
            logger.warning("%s: onnxruntime does not confirm the counterexample; ignored", engine)
            return None
    query.rejected += 1
    logger.warning("%s reported a counterexample that a forward pass rejects; ignored", engine)
    return None


def _region_points(spec: Specification, x: np.ndarray) -> list[np.ndarray]:
    """``x`` projected into each case's input region that holds it up to rounding,
    kept where the projection lies in the region exactly (no tolerance)."""
    points: list[np.ndarray] = []
    for case in spec.cases:
        region = case.input_region
        if region.contains(x):
            point = region.project(x)
            if region.contains(point, tol=0.0) and not any(
                np.array_equal(point, p) for p in points
            ):
                points.append(point)
    return points


# ---------------------------------------------------------------- phases
def _run_attack(query: _Query, budget: Budget, seed: int) -> _Outcome:
    found = attack(query.network, query.spec, budget=budget, seed=seed, device=query.device)
    stats = {"evaluations": found.evaluations, "margin": found.margin}
    pair = _confirm(query, found.counterexample, "attack")
    if pair is not None:
        return _Outcome(Verdict.SAT, "attack", pair, stats)
    return _Outcome(Verdict.UNKNOWN, "attack", statistics=stats)


def _run_bounds(query: _Query, method: str, budget: Budget, options: Any = None) -> _Outcome:
    """One bound method on the whole property, within ``budget`` (IBP and CROWN are
    single passes; alpha-CROWN, the LP and the SDP stop at the limit, keeping the
    bounds found so far, so an early stop only loosens them)."""
    device = None if method == "sdp" else query.device
    result = prove(query.network, query.spec, method, options=options, budget=budget, device=device)
    return _Outcome(result.verdict, method, statistics=dict(result.statistics))


def _run_complete(query: _Query, method: str, budget: Budget) -> _Outcome:
    reserve = min(RESERVE_CAP, RESERVE_SHARE * budget.remaining())
    result = COMPLETE_ENGINES[method](query.network, query.spec, budget.reserve(reserve))
    stats = dict(result.statistics)
    if result.verdict is Verdict.SAT:
        x = None if result.counterexample is None else result.counterexample[0]
        pair = _confirm(query, x, method)
        if pair is None:
            return _Outcome(Verdict.UNKNOWN, method, statistics=stats)
        return _Outcome(Verdict.SAT, method, pair, stats)
    return _Outcome(result.verdict, method, statistics=stats)


def complete_methods(network: Network, spec: Specification) -> list[str]:
    """The complete engines ``'auto'`` tries on this problem, in order.

    Input splitting (``'bab'``) when every input region is a box with at most
    :data:`INPUT_SPLIT_MAX_INPUTS` coordinates of positive width (a patch
    position over a fixed image has two), else ReLU splitting (``'relu-bab'``)
    for networks with ReLUs; the MILP for fully connected ReLU networks.
    """
    methods = []
    input_split = all(
        isinstance(case.input_region, Box)
        and np.count_nonzero(case.input_region.upper > case.input_region.lower)
        <= INPUT_SPLIT_MAX_INPUTS
        for case in spec.cases
    )
    for method in COMPLETE_ENGINES:
        if method == "bab" and not input_split:
            continue
        if method == "relu-bab" and (input_split or not supports_relu_split(network)):
            continue
        if method == "milp":
            try:
                network.as_mlp()
            except UnsupportedModelError:
                continue
        methods.append(method)
    return methods


def _alpha_options(query: _Query, crown_seconds: float) -> AlphaOptions | None:
    """alpha-CROWN options that fit half the remaining budget, or ``None`` to skip it."""
    defaults = AlphaOptions()
    if not query.budget.limited:
        return defaults
    per_iteration = ALPHA_COST_IN_CROWN_PASSES * max(crown_seconds, 1e-3) / defaults.iterations
    available = 0.5 * query.budget.remaining()
    iterations = min(defaults.iterations, int(available / per_iteration))
    if iterations < 3:
        logger.info("alpha-CROWN skipped: it does not fit the remaining budget")
        return None
    return AlphaOptions(iterations=iterations)


def _decided(outcome: _Outcome | None) -> bool:
    return outcome is not None and outcome.verdict.decided


def _portfolio(query: _Query) -> _Outcome | None:
    """The ``'auto'`` strategy (see the module docstring); ``None`` when nothing decided."""
    budget = query.budget
    methods = complete_methods(query.network, query.spec)
    # Input splitting bounds the whole box first and checks candidate points of
    # every open box, so before it only a short attack pays.
    input_split = bool(methods) and methods[0] == "bab"
    cap = INPUT_SPLIT_ATTACK_CAP if input_split else QUICK_ATTACK_CAP
    if budget.limited:
        cap = min(cap, max(0.2, QUICK_ATTACK_SHARE * budget.remaining()))
    outcome = query.timed("attack", lambda: _run_attack(query, budget.sub(cap), query.seed))
    if _decided(outcome) or budget.expired():
        return outcome
    if not input_split:
        outcome = query.timed("crown", lambda: _run_bounds(query, "crown", budget))
        if _decided(outcome) or budget.expired():
            return outcome
        # ReLU splitting starts with alpha-CROWN on the same rows: no need to run it twice.
        options = None if "relu-bab" in methods else _alpha_options(query, query.phases["crown"])
        if options is not None:
            half = budget.sub(0.5 * budget.remaining()) if budget.limited else budget
            outcome = query.timed(
                "alpha-crown", lambda: _run_bounds(query, "alpha-crown", half, options)
            )
            if _decided(outcome) or budget.expired():
                return outcome
    if "relu-bab" in methods and budget.limited:
        # PGD restarts on wide inputs can all settle in one local optimum; a
        # second, freshly seeded attack is cheap next to ReLU splitting.
        cap = min(SECOND_ATTACK_CAP, SECOND_ATTACK_SHARE * budget.remaining())
        outcome = query.timed(
            "attack-2", lambda: _run_attack(query, budget.sub(cap), query.seed + 1)
        )
        if _decided(outcome) or budget.expired():
            return outcome
    for method in methods:
        outcome = query.timed(method, lambda method=method: _run_complete(query, method, budget))
        if _decided(outcome) or outcome.verdict is Verdict.TIMEOUT or budget.expired():
            return outcome
    rounds, max_rounds = 0, MAX_FINAL_ATTACKS if budget.limited else 1
    while rounds < max_rounds and not budget.expired():
        rounds += 1
        outcome = query.timed(
            "attack-final",
            lambda seed=query.seed + rounds: _run_attack(query, budget.sub(None), seed),
        )
        if _decided(outcome):
            return outcome
        if "reason" in outcome.statistics:  # the attack does not fit in memory: stop trying
            break
    return None


def _single(query: _Query, method: str) -> _Outcome | None:
    """One engine alone, on the whole budget."""
    if method == "attack":
        return query.timed("attack", lambda: _run_attack(query, query.budget, query.seed))
    if method in BOUND_METHODS:
        return query.timed(method, lambda: _run_bounds(query, method, query.budget))
    return query.timed(method, lambda: _run_complete(query, method, query.budget))


# ---------------------------------------------------------------- entry
def check_device(device: str) -> str:
    """Return ``device`` after checking it names a usable ``'cpu'`` or ``'cuda'`` device.

    Raises:
        InvalidInputError: an unknown device, or CUDA without a GPU.
    """
    name = str(device)
    try:
        parsed = torch.device(name)
    except (RuntimeError, TypeError) as exc:
        raise InvalidInputError(f"unknown device {device!r}: expected 'cpu' or 'cuda'") from exc
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise InvalidInputError("device 'cuda' was requested but no CUDA GPU is available")
    if parsed.type not in ("cpu", "cuda"):
        raise InvalidInputError(f"unsupported device {device!r}: expected 'cpu' or 'cuda'")
    return name


def verify(
    network: Network,
    spec: Specification,
    *,
    method: str = "auto",
    timeout: float | None = None,
    device: str = "cpu",
    seed: int = 0,
    sound_fp: bool = False,
) -> VerificationResult:
    """Decide a property: find a confirmed counterexample or prove there is none.

    Args:
        network: the network.
        spec: the property; its constraints describe the *unsafe* outputs
            (VNN-COMP convention), so ``sat`` means a counterexample exists.
        method: ``'auto'`` (the portfolio of the module docstring), or one
            engine alone: ``'attack'``, a bound method (``'ibp'``,
            ``'crown'``, ``'alpha-crown'``, ``'lp'``, ``'sdp'``: ``unsat``
            or ``unknown``, by :func:`verifiNN.search.prove`)
            or a complete engine of :data:`COMPLETE_ENGINES`
            (``'bab'``: box input regions; ``'milp'``: fully connected ReLU
            networks).
        timeout: seconds for the whole call (``None``: no limit). Engines get
            what is left as their own limit; the answer is ``timeout`` when it
            runs out before a decision.
        device: ``'cpu'`` or ``'cuda'`` for the tensor engines.
        seed: seed of the randomised engines (attacks, branching ties).
        sound_fp: accept ``unsat`` only when bounds with rigorous floating-point
            error bounds re-prove it (:func:`verifiNN.bounds.sound_fp.sound_verify`,
            ReLU MLPs on boxes) within the time left; otherwise answer
            ``unknown`` (``timeout`` when the time ran out).

    Returns:
        A :class:`~verifiNN.results.VerificationResult` with ``verdict``,
        ``counterexample`` (``(x, y)`` flat float64 arrays for ``sat``, else
        ``None``), ``method`` (the engine that decided, or ``'auto'``),
        ``statistics`` (``seconds``, ``phases``: seconds per phase,
        ``rejected_counterexamples``, ``domains`` when the deciding engine
        reports it, ``engine``: its own statistics) and the seed's keys.

    Raises:
        InvalidInputError: an unknown method or device, a bad timeout.
        SpecError: the property does not fit the network's sizes.
        UnsupportedModelError: ``method='milp'`` on a network that is not a
            fully connected ReLU network.
        SpecError: ``method='bab'`` on a property with a non-box input region.
    """
    if method not in METHODS:
        raise InvalidInputError(f"unknown method {method!r}: expected one of {', '.join(METHODS)}")
    if not isinstance(network, Network):
        raise InvalidInputError(f"expected a verifiNN Network, got {type(network).__name__}")
    if not isinstance(spec, Specification):
        raise SpecError(f"expected a Specification, got {type(spec).__name__}")
    spec.validate_for(network)
    if sound_fp:
        check_sound_fp(network, spec)
    query = _Query(network, spec, Budget.start(timeout), check_device(device), int(seed))
    start = time.perf_counter()
    outcome = _portfolio(query) if method == "auto" else _single(query, method)
    if sound_fp and outcome is not None and outcome.verdict is Verdict.UNSAT:
        outcome = _sound_recheck(query, outcome)
    if outcome is None or not outcome.verdict.decided:
        ran_out = query.budget.expired() or query.timed_out
        verdict = Verdict.TIMEOUT if ran_out else Verdict.UNKNOWN
        last = outcome or _Outcome(verdict, method)
        outcome = _Outcome(
            verdict, "auto" if method == "auto" else last.method, None, last.statistics
        )
    return _result(query, outcome, time.perf_counter() - start)


def check_sound_fp(network: Network, spec: Specification) -> None:
    """Raise unless ``sound_fp`` can check ``spec`` (a ReLU MLP on box input regions).

    Raises:
        UnsupportedModelError: another kind of network or input region.
    """
    try:
        activations = network.as_mlp().activations
    except UnsupportedModelError:
        activations = ("not an MLP",)
    if any(a != "ReLU" for a in activations) or not all(
        isinstance(c.input_region, Box) for c in spec.cases
    ):
        raise UnsupportedModelError("--sound-fp supports ReLU MLPs on box input regions")


def _sound_recheck(query: _Query, outcome: _Outcome) -> _Outcome:
    """Keep ``unsat`` only when rigorous floating-point bounds re-prove it."""
    start = time.perf_counter()
    checked = sound_verify(query.network, query.spec, budget=query.budget)
    query.phases["sound_fp"] = time.perf_counter() - start
    statistics = {**outcome.statistics, "sound_fp_boxes": checked.boxes}
    if checked.proved:
        return _Outcome(Verdict.UNSAT, outcome.method, None, statistics)
    logger.info("sound_fp: %s's proof not re-proved in %d boxes", outcome.method, checked.boxes)
    query.timed_out = query.budget.expired()
    return _Outcome(Verdict.UNKNOWN, outcome.method, None, statistics)


def _result(query: _Query, outcome: _Outcome, seconds: float) -> VerificationResult:
    statistics: dict[str, Any] = {
        "seconds": seconds,
        "phases": dict(query.phases),
        "rejected_counterexamples": query.rejected,
    }
    if query.reasons and not outcome.verdict.decided:
        statistics["reason"] = "; ".join(query.reasons)
    for key in ("domains", "domains_visited"):
        if key in outcome.statistics:
            statistics["domains"] = outcome.statistics[key]
            break
    if outcome.statistics:
        statistics["engine"] = dict(outcome.statistics)
    x = None if outcome.counterexample is None else outcome.counterexample[0]
    return VerificationResult.make(
        outcome.verdict,
        method=outcome.method,
        adversarial_example=x,
        counterexample=outcome.counterexample,
        statistics=statistics,
    )
