"""``SDPVerifier`` and :func:`sdp_verify`: verdicts and pointwise robustness from the SDP bound.

:func:`sdp_verify` answers a :class:`~verifiNN.specs.Specification` like the
other bound methods (``unsat`` or ``unknown``). Per case it first runs the
intermediate-bound method (CROWN by default), whose bound of every row is kept;
only disjuncts that bound leaves open are given to the SDP, row by row, until
one of their rows is proved (a disjunct needs one refuted row). The first
disjunct the SDP cannot refute ends the call (``unknown``).

``SDPVerifier.compute_pointwise_robustness`` brackets the distance to the nearest
adversarial example: the certified radius of CROWN is the start of a bisection
whose every step is an SDP verification, and a PGD attack gives the upper bound.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch

from verifiNN.bounds.api import bound_graph, compute_bounds, prepare_rows
from verifiNN.bounds.regions import as_input_set
from verifiNN.bounds.types import proof_threshold
from verifiNN.errors import InvalidInputError, SpecError
from verifiNN.models.network import Network
from verifiNN.results import Verdict, VerificationResult
from verifiNN.sdp.bound import SDPOptions, empty_statistics, sdp_bound
from verifiNN.specs import Case, Specification, normalize_norm, robustness_spec
from verifiNN.verifier import Verifier, check_point, robustness_result

__all__ = ["SDPVerifier", "sdp_verify"]


def _case_margin(
    graph, case: Case, options: SDPOptions, stats: dict, deadline: float | None = None
) -> float:
    """Worst disjunct margin of one case (positive: proved); stops at the first open
    disjunct. Rows not solved by ``deadline`` keep their first bound."""
    network = graph.network
    if not case.unsafe:
        return math.inf
    if any(h.num_constraints == 0 for h in case.unsafe):
        return -math.inf
    C = np.concatenate([h.C for h in case.unsafe])
    d = np.concatenate([h.d for h in case.unsafe])
    sizes = [h.num_constraints for h in case.unsafe]
    region = case.input_region
    first = compute_bounds(
        graph, region, C, options.intermediate, bound_upper=False, options=options.crown
        if options.intermediate == "crown" else None,
    )  # fmt: skip
    threshold = proof_threshold(d)
    lower = first.lower[0].cpu().numpy().astype(np.float64).copy()
    input_set = as_input_set(region, network.input_size, torch.float64, graph.device)
    rows = prepare_rows(C, network.output_size, 1, torch.float64, input_set.reference.device)
    worst, start = math.inf, 0
    for size in sizes:
        part = slice(start, start + size)
        start += size
        if (lower[part] > threshold[part]).any():
            worst = min(worst, float((lower[part] - threshold[part]).max()))
            continue
        best = -math.inf
        for i in range(part.start, part.stop):
            skip = torch.ones(1, C.shape[0], dtype=torch.bool)
            skip[0, i] = False
            sdp, st = sdp_bound(graph, input_set, first.bounds, rows, options, skip, deadline)
            for key, value in st.items():
                stats[key] = max(stats.get(key, 0.0), value) if key == "max_block" else (
                    stats.get(key, 0.0) + value
                )  # fmt: skip
            lower[i] = max(lower[i], float(sdp[0, i]))
            best = max(best, lower[i] - threshold[i])
            if best > 0:
                break
        worst = min(worst, best)
        if best <= 0:
            break
    return worst


def sdp_verify(
    network: Network,
    spec: Specification,
    options: SDPOptions | None = None,
    timeout: float | None = None,
) -> VerificationResult:
    """Prove a specification by the SDP relaxation: ``unsat`` or ``unknown``.

    Args:
        network: a chain of affine maps (Dense, Conv, AvgPool, ...) and ReLUs.
        spec: the property (its constraints describe the unsafe outputs).
        options: :class:`SDPOptions`.
        timeout: seconds for the whole call (``None``: none); no SDP solve
            starts after it, and each solve's limit is cut to what is left
            (problem set-up is not interruptible).

    Returns:
        A :class:`~verifiNN.results.VerificationResult` (method ``'sdp'``);
        ``statistics`` holds ``cases``, ``cases_proved``, ``worst_margin``,
        ``sdp_solves``, ``sdp_seconds``, ``max_block``, ``skipped_for_time``
        (solves not started for lack of time) and ``seconds``.

    Raises:
        SpecError: the property does not fit the network.
        UnsupportedModelError: a network that is not such a chain.
    """
    if not isinstance(spec, Specification):
        raise SpecError(f"expected a Specification, got {type(spec).__name__}")
    options = options or SDPOptions()
    start = time.perf_counter()
    deadline = None if timeout is None else start + max(float(timeout), 0.0)
    graph = bound_graph(network, torch.float64)
    spec.validate_for(graph.network)
    stats = empty_statistics()
    margins = []
    for case in spec.cases:
        margins.append(_case_margin(graph, case, options, stats, deadline))
        if margins[-1] <= 0:
            break
    proved = np.array(margins) > 0
    verdict = Verdict.UNSAT if len(margins) == len(spec.cases) and proved.all() else Verdict.UNKNOWN
    statistics = {
        "cases": len(spec.cases),
        "cases_proved": int(proved.sum()),
        "worst_margin": float(min(margins, default=math.inf)),
        **stats,
        "seconds": time.perf_counter() - start,
    }
    return VerificationResult.make(verdict, method="sdp", statistics=statistics)


class SDPVerifier(Verifier):
    """Robustness by the SDP relaxation (Raghunathan et al. 2018), chordal by default.

    Args:
        options: :class:`SDPOptions` (formulation, solver, intermediate bounds).
        steps: SDP bisection steps of ``compute_pointwise_robustness``.
        domain: optional ``(lo, hi)`` valid-input box, e.g. ``(0, 1)``.
        attack: look for adversarial examples (the upper bound of the distance).
        attack_timeout: seconds for that search.
    """

    name = "sdp"

    def __init__(
        self,
        options: SDPOptions | None = None,
        steps: int = 6,
        domain: tuple[float, float] | None = None,
        attack: bool = True,
        attack_timeout: float | None = 10.0,
    ) -> None:
        if steps < 0:
            raise InvalidInputError(f"steps must be >= 0, got {steps}")
        self.options = options or SDPOptions()
        self.steps = int(steps)
        self.domain = domain
        self.attack = attack
        self.attack_timeout = attack_timeout

    def _proves(self, network: Network, x: np.ndarray, radius: float, norm: str, label: int):
        spec = robustness_spec(network, x, radius, norm, label=label, domain=self.domain)
        return sdp_verify(network, spec, self.options)

    def verify_epsilon_robustness(
        self, network: Network, x_0: object, epsilon: float
    ) -> VerificationResult:
        """``robust`` (verdict ``unsat``) when the SDP proves the label in the L-inf ball.

        Returns:
            ``unsat`` or ``unknown``; ``label``, ``lower_bound`` (``epsilon`` when
            proved, else ``None``) and the SDP's ``statistics``.
        """
        x, eps = check_point(network, x_0, epsilon)
        label = int(network.classify(x))
        result = self._proves(network, x, eps, "inf", label)
        proved = result.verdict is Verdict.UNSAT
        return VerificationResult.make(
            result.verdict, method=self.name, label=label,
            lower_bound=eps if proved else None, statistics=result.statistics,
        )  # fmt: skip

    def compute_pointwise_robustness(
        self, network: Network, x_0: object, epsilon: float, norm: str = "inf"
    ) -> VerificationResult:
        """Bracket the distance to the nearest adversarial example within ``epsilon``.

        ``lower_bound``: CROWN's certified radius (:func:`~verifiNN.robustness.certified_radius`),
        raised by ``steps`` bisection steps between it and ``epsilon`` (or the
        attack's distance) whose every proof is an SDP verification.
        ``upper_bound``: the distance of the nearest adversarial example a PGD
        attack finds (:func:`~verifiNN.robustness.attack_radius`). In L1 the
        SDP sees the ball's bounding box (sound, looser).

        Returns:
            The result of :func:`~verifiNN.verifier.robustness_result`.
        """
        from verifiNN.robustness import attack_radius, certified_radius

        x, eps = check_point(network, x_0, epsilon)
        norm = normalize_norm(norm)
        label = int(network.classify(x))
        lower, calls = 0.0, 0
        if eps > 0:
            lower, calls = certified_radius(
                network, x, eps, norm, label=label, domain=self.domain, tolerance=1e-2
            )
        solves = 0
        upper, example = None, None
        if lower < eps:
            solves += 1
            if self._proves(network, x, eps, norm, label).verdict is Verdict.UNSAT:
                lower = eps
        if self.attack and lower < eps:
            upper, example = attack_radius(
                network, x, eps, norm, label=label, lower=lower, domain=self.domain,
                timeout=self.attack_timeout,
            )  # fmt: skip
        high = eps if upper is None else upper
        for _ in range(self.steps if lower < eps else 0):
            mid = 0.5 * (lower + high)
            solves += 1
            if self._proves(network, x, mid, norm, label).verdict is Verdict.UNSAT:
                lower = mid
            else:
                high = mid
        tolerance = (high - lower) / max(1.0, eps)
        return robustness_result(
            network, self.name, label, norm, eps, lower, upper, example, max(tolerance, 1e-9),
            statistics={"bound_calls": calls, "sdp_verifications": solves},
        )  # fmt: skip
