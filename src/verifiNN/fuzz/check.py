"""Checking one problem: every method of :func:`verifiNN.verify` and the bounds of
:func:`verifiNN.bounds.compute_bounds`, compared with the oracles (see :mod:`verifiNN.fuzz`)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from verifiNN.bounds import AlphaOptions, compute_bounds
from verifiNN.errors import SpecError, UnsupportedModelError
from verifiNN.fuzz.oracle import region_oracle
from verifiNN.fuzz.problems import FuzzCase, margins, sample_region
from verifiNN.results import Verdict
from verifiNN.verifiers.portfolio import BOUND_METHODS, METHODS, verify

__all__ = ["BOUND_TOL", "COMPLETE_METHODS", "TIE_TOL", "CaseReport", "Timeouts", "check_case"]

COMPLETE_METHODS = ("auto", "bab", "relu-bab", "milp")
"""Methods that may answer both ``sat`` and ``unsat``."""

TIE_TOL = 1e-6
"""Absolute margin within which either answer is accepted (a near-tie)."""

BOUND_TOL = 1e-7
"""Slack of the bound-containment check (relative above magnitude 1)."""


@dataclass(frozen=True)
class Timeouts:
    """Per-method time limits (seconds) of :func:`check_case`.

    ``bound`` limits each bound method (``None``: run to the end). It only turns
    an ``unknown`` into a ``timeout``, and keeps alpha-CROWN's optimisation on the
    larger graphs (attention: tens of seconds) from dominating a run.
    """

    attack: float = 0.02
    complete: float = 0.1
    auto: float = 0.3
    bound: float | None = 5.0


@dataclass
class CaseReport:
    """What :func:`check_case` found on one problem.

    Attributes:
        seed: rebuilds the problem with :func:`random_case`.
        kind: the network family.
        verdicts: method -> ``'sat'``, ``'unsat'``, ``'unknown'``, ``'timeout'``,
            ``'n/a'`` (the method does not apply), ``'error'``, or ``'sat (false)'``
            (a counterexample a forward pass does not confirm).
        oracle: ``'regions'`` (exact minimal margin known), else ``'sampling'``.
        oracle_margin: the region oracle's minimal margin (``None`` without it).
        best_margin: the lowest margin of a confirmed counterexample (``inf``: none).
        unsound, disagreements, errors: one message per finding (see the module docstring;
            ``errors`` are exceptions other than "does not apply").
        near_tie: some answer was accepted only because the case is within :data:`TIE_TOL`.
        rejected: counterexamples an engine reported and the portfolio's check rejected.
        seconds: wall time per method, and ``'total'``.
    """

    seed: int
    kind: str
    verdicts: dict[str, str] = field(default_factory=dict)
    oracle: str = "sampling"
    oracle_margin: float | None = None
    best_margin: float = np.inf
    unsound: list[str] = field(default_factory=list)
    disagreements: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    near_tie: bool = False
    rejected: int = 0
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def clean(self) -> bool:
        """No unsound answer, disagreement or error."""
        return not (self.unsound or self.disagreements or self.errors)

    def summary(self) -> str:
        """One line per finding, each naming the seed."""
        lines = [f"seed {self.seed} ({self.kind}): unsound: {m}" for m in self.unsound]
        lines += [f"seed {self.seed} ({self.kind}): disagreement: {m}" for m in self.disagreements]
        lines += [f"seed {self.seed} ({self.kind}): error: {m}" for m in self.errors]
        return "\n".join(lines)


def _confirmed_margin(case: FuzzCase, x: object) -> float:
    """The margin of ``x`` by a plain float64 forward pass; ``inf`` outside every region."""
    x = np.asarray(x, dtype=np.float64).reshape(1, -1)
    if x.shape[1] != case.spec.num_inputs or not np.all(np.isfinite(x)):
        return np.inf
    y = np.asarray(case.network.get_output(x), dtype=np.float64).reshape(1, -1)
    return float(margins(case.spec, x, y)[0])


def _check_import(case: FuzzCase, X: np.ndarray, Y: np.ndarray, report: CaseReport) -> None:
    module = getattr(case.network, "torch_module", None)
    if module is None:
        return
    with torch.no_grad():
        expected = module(torch.from_numpy(X.reshape(-1, *case.network.input_shape)))
    expected = expected.reshape(X.shape[0], -1).numpy()
    gap = float(np.max(np.abs(expected - Y) / (1.0 + np.abs(expected)), initial=0.0))
    if gap > 1e-9:
        report.disagreements.append(f"from_torch network differs from its module by {gap:.3g}")


def _check_bounds(case: FuzzCase, X: np.ndarray, Y: np.ndarray, report: CaseReport) -> None:
    """``compute_bounds`` of every method must contain the sampled outputs (and ``C y``)."""
    for index, spec_case in enumerate(case.spec.cases):
        inside = spec_case.input_region.contains_batch(X)
        rows = [np.eye(case.network.output_size), *(h.C for h in spec_case.unsafe)]
        C = np.vstack(rows)
        values = Y[inside] @ C.T
        for method in ("ibp", "crown", "alpha-crown"):  # 'lp' runs as a verify method
            try:
                options = AlphaOptions(iterations=3) if method == "alpha-crown" else None
                found = compute_bounds(
                    case.network, spec_case.input_region, C, method, options=options
                )
            except UnsupportedModelError:
                continue
            except Exception as exc:  # a crash is a finding too
                report.errors.append(f"compute_bounds({method!r}): {type(exc).__name__}: {exc}")
                continue
            lower, upper = found.lower.numpy()[0], found.upper.numpy()[0]
            if (np.isnan(lower).any() or np.isnan(upper).any()) and np.isfinite(values).all():
                report.unsound.append(f"compute_bounds({method!r}) case {index}: NaN bounds")
                continue
            slack = BOUND_TOL * np.maximum(1.0, np.abs(values))
            below = values < lower - slack
            above = values > upper + slack
            if below.any() or above.any():
                report.unsound.append(
                    f"compute_bounds({method!r}) case {index}: a sampled value of C y lies outside "
                    f"[{lower.min():.6g}.., ..{upper.max():.6g}] by "
                    f"{max(np.max(lower - values), np.max(values - upper)):.3g}"
                )


def _run_methods(
    case: FuzzCase, methods: Sequence[str], timeouts: Timeouts, report: CaseReport
) -> list[float]:
    """Run each method; record verdicts and return the margins of their counterexamples."""
    found: list[float] = []
    for method in methods:
        limit = {"attack": timeouts.attack, "auto": timeouts.auto}.get(method, timeouts.complete)
        if method in BOUND_METHODS:
            limit = timeouts.bound
        start = time.perf_counter()
        try:
            result = verify(case.network, case.spec, method=method, timeout=limit, seed=case.seed)
        except (UnsupportedModelError, SpecError):
            report.verdicts[method] = "n/a"
            continue
        except Exception as exc:
            report.verdicts[method] = "error"
            report.errors.append(f"{method}: {type(exc).__name__}: {exc}")
            continue
        finally:
            report.seconds[method] = time.perf_counter() - start
        verdict = Verdict(result.verdict)
        report.verdicts[method] = verdict.value
        report.rejected += int(result["statistics"].get("rejected_counterexamples", 0) or 0)
        if verdict is Verdict.SAT:
            pair = result.get("counterexample")
            margin = np.inf if pair is None else _confirmed_margin(case, pair[0])
            if margin > 0:
                report.verdicts[method] = "sat (false)"  # judged here, not by _judge
                report.unsound.append(
                    f"{method}: sat, but its counterexample is not confirmed "
                    f"(margin {margin:.3g} by a float64 forward pass, or outside the region)"
                )
            else:
                found.append(margin)
        elif method in BOUND_METHODS and verdict not in (
            Verdict.UNSAT,
            Verdict.UNKNOWN,
            Verdict.TIMEOUT,
        ):
            report.disagreements.append(f"{method} is a bound method but answered {verdict.value}")
    return found


def _judge(report: CaseReport) -> None:
    """Compare every decided answer with the oracles (see the module docstring)."""
    oracle, best = report.oracle_margin, report.best_margin
    for method, verdict in report.verdicts.items():
        if verdict == "unsat":
            if oracle is not None and oracle < -TIE_TOL:
                report.unsound.append(
                    f"{method}: unsat, but the region oracle finds margin {oracle:.6g}"
                )
            elif best < -TIE_TOL:
                report.unsound.append(
                    f"{method}: unsat, but a confirmed counterexample has margin {best:.6g}"
                )
            elif best <= 0 or (oracle is not None and oracle <= TIE_TOL):
                report.near_tie = True
        elif verdict == "sat" and oracle is not None:
            if oracle > TIE_TOL:
                report.disagreements.append(
                    f"{method}: sat with a confirmed counterexample, but the region oracle "
                    f"proves margin {oracle:.6g} > 0"
                )
            elif oracle >= -TIE_TOL:
                report.near_tie = True


def check_case(
    case: FuzzCase,
    methods: Sequence[str] | None = None,
    timeouts: Timeouts = Timeouts(),
    samples: int = 128,
    sdp: bool | None = None,
) -> CaseReport:
    """Run every method on ``case`` and compare the answers with the oracles.

    Args:
        case: the problem (see :func:`random_case`).
        methods: the methods to run (default: every one of
            :data:`verifiNN.verifiers.portfolio.METHODS`); methods that raise
            ``UnsupportedModelError`` or ``SpecError`` are recorded as ``'n/a'``.
        timeouts: per-method time limits.
        samples: random points per input region for the sampling oracle.
        sdp: run ``'sdp'`` (slow); default: only on tiny networks.

    Returns:
        The :class:`CaseReport`; ``report.clean`` is False on any finding.
    """
    start = time.perf_counter()
    report = CaseReport(case.seed, case.kind)
    methods = list(METHODS if methods is None else methods)
    if not (case.kind == "tiny" if sdp is None else sdp) and "sdp" in methods:
        methods.remove("sdp")
    rng = np.random.default_rng([case.seed, 1])
    X = np.vstack([sample_region(c.input_region, rng, samples) for c in case.spec.cases])
    Y = np.asarray(case.network.get_output(X), dtype=np.float64).reshape(X.shape[0], -1)
    sampled = margins(case.spec, X, Y)
    found = [float(sampled.min(initial=np.inf))]
    _check_import(case, X, Y, report)
    try:
        oracle, witness = region_oracle(case.network, case.spec)
    except UnsupportedModelError:
        pass
    else:
        report.oracle, report.oracle_margin = "regions", oracle
        if oracle > found[0] + TIE_TOL:
            report.disagreements.append(
                f"region oracle margin {oracle:.6g} exceeds a sampled margin {found[0]:.6g}"
            )
        if witness is not None:
            confirmed = _confirmed_margin(case, witness)
            if confirmed > oracle + TIE_TOL:
                report.disagreements.append(
                    f"region oracle witness has margin {confirmed:.6g}, not {oracle:.6g}"
                )
            found.append(confirmed)
    report.seconds["oracle"] = time.perf_counter() - start
    found += _run_methods(case, methods, timeouts, report)
    report.best_margin = min(m for m in found if m <= 0) if min(found) <= 0 else np.inf
    _judge(report)
    bounds_start = time.perf_counter()
    _check_bounds(case, X, Y, report)
    report.seconds["bounds"] = time.perf_counter() - bounds_start
    report.seconds["total"] = time.perf_counter() - start
    return report
