"""``MILPVerifier``: exact pointwise robustness of ReLU MLPs by MILP."""

from __future__ import annotations

import math

from verifiNN.budget import Budget
from verifiNN.errors import InvalidInputError
from verifiNN.models.network import Network
from verifiNN.results import Verdict, VerificationResult
from verifiNN.search.milp import milp_verify
from verifiNN.specs import norm_distance, robustness_spec
from verifiNN.verifiers.base import Verifier, check_point, robustness_result
from verifiNN.verifiers.robustness import exact_robustness

__all__ = ["MILPVerifier"]


class MILPVerifier(Verifier):
    """Exact pointwise robustness of ReLU MLPs by MILP (Tjeng et al. 2019, MIPVerify).

    ``compute_pointwise_robustness`` returns the exact minimal adversarial
    distance in L-inf, L-1 or L-2 within ``epsilon``
    (:func:`verifiNN.verifiers.robustness.exact_robustness`), or proves there
    is none (``robust``); when the time limit cuts it short, the bracket
    ``[lower_bound, upper_bound]`` found so far. ``verify_epsilon_robustness``
    decides the L-inf ball by :func:`verifiNN.search.milp.milp_verify`.

    Args:
        timeout: seconds per call (``None``: no limit).
        tolerance: absolute accuracy of the distance.
        domain: optional ``(lo, hi)`` valid-input box, e.g. ``(0, 1)``.
    """

    name = "milp"

    def __init__(
        self,
        timeout: float | None = None,
        tolerance: float = 1e-6,
        domain: tuple[float, float] | None = None,
    ) -> None:
        Budget.start(timeout)  # validates the timeout
        if not (tolerance > 0 and math.isfinite(tolerance)):
            raise InvalidInputError(f"tolerance must be positive, got {tolerance}")
        self.timeout = timeout
        self.tolerance = float(tolerance)
        self.domain = domain

    def compute_pointwise_robustness(
        self, network: Network, x_0: object, epsilon: float, norm: str = "inf"
    ) -> VerificationResult:
        """Exact distance from ``x_0`` to the nearest adversarial example within ``epsilon``."""
        x, eps = check_point(network, x_0, epsilon)
        if eps == 0:
            label = int(network.classify(x))
            return robustness_result(network, self.name, label, norm, eps, 0.0, None, None)
        return exact_robustness(
            network, x, eps, norm, budget=Budget.start(self.timeout), tolerance=self.tolerance,
            domain=self.domain,
        )  # fmt: skip

    def verify_epsilon_robustness(
        self, network: Network, x_0: object, epsilon: float
    ) -> VerificationResult:
        """Whether an adversarial example exists in the L-inf ball, by the MILP."""
        x, eps = check_point(network, x_0, epsilon)
        label = int(network.classify(x))
        spec = robustness_spec(network, x, eps, label=label, domain=self.domain)
        result = milp_verify(network, spec, Budget.start(self.timeout))
        example, distance = None, None
        if result.verdict is Verdict.SAT:
            example = result.counterexample[0]
            if int(network.classify(example)) == label:
                # a tie under the VNN-LIB convention that the tie rule resolves for the label
                example = None
            else:
                distance = norm_distance(example, x, "inf")
        return robustness_result(
            network, self.name, label, "inf", eps,
            eps if result.verdict is Verdict.UNSAT else None, distance, example,
            timed_out=result.verdict is Verdict.TIMEOUT, statistics=result.statistics,
        )  # fmt: skip
