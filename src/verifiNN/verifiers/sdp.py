"""``SDPVerifier``: robustness from the SDP relaxation (Raghunathan et al. 2018).

``verify_epsilon_robustness`` answers ``robust`` when the SDP proves the label
in the L-inf ball (:func:`verifiNN.search.prove` with ``method='sdp'``), else
``unknown``. ``compute_pointwise_robustness`` brackets the distance to the
nearest adversarial example: the certified radius of CROWN is the start of a
bisection whose every step is an SDP proof, and a PGD attack gives the upper
bound.
"""

from __future__ import annotations

import numpy as np

from verifiNN.budget import Budget
from verifiNN.errors import InvalidInputError
from verifiNN.models.network import Network
from verifiNN.results import EngineResult, Verdict, VerificationResult
from verifiNN.search.prove import prove
from verifiNN.solvers.sdp import SDPOptions
from verifiNN.specs import normalize_norm, robustness_spec
from verifiNN.verifiers.base import Verifier, check_point, robustness_result
from verifiNN.verifiers.robustness import attack_radius, certified_radius

__all__ = ["SDPVerifier"]

#: A bracket narrower than this (relative to ``max(1, epsilon)``) counts as exact.
EXACT_TOLERANCE = 1e-6


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

    def _proves(
        self, network: Network, x: np.ndarray, radius: float, norm: str, label: int
    ) -> EngineResult:
        spec = robustness_spec(network, x, radius, norm, label=label, domain=self.domain)
        return prove(network, spec, "sdp", options=self.options)

    def verify_epsilon_robustness(
        self, network: Network, x_0: object, epsilon: float
    ) -> VerificationResult:
        """``robust`` (verdict ``unsat``) when the SDP proves the label in the L-inf ball.

        Returns:
            ``unsat`` or ``unknown``; ``lower_bound`` is ``epsilon`` when proved,
            else ``None``; ``statistics`` are the SDP's.
        """
        x, eps = check_point(network, x_0, epsilon)
        label = int(network.classify(x))
        result = self._proves(network, x, eps, "inf", label)
        proved = result.verdict is Verdict.UNSAT
        return robustness_result(
            network, self.name, label, "inf", eps, eps if proved else None, None, None,
            statistics=result.statistics,
        )  # fmt: skip

    def compute_pointwise_robustness(
        self, network: Network, x_0: object, epsilon: float, norm: str = "inf"
    ) -> VerificationResult:
        """Bracket the distance to the nearest adversarial example within ``epsilon``.

        ``lower_bound``: CROWN's certified radius
        (:func:`~verifiNN.verifiers.robustness.certified_radius`),
        raised by ``steps`` bisection steps between it and ``epsilon`` (or the
        attack's distance) whose every proof is an SDP verification.
        ``upper_bound``: the distance of the nearest adversarial example a PGD
        attack finds (:func:`~verifiNN.verifiers.robustness.attack_radius`). In
        L1 the SDP sees the ball's bounding box (sound, looser).

        Returns:
            The result of :func:`~verifiNN.verifiers.base.robustness_result`;
            ``status`` is ``exact`` only when the bracket is narrower than
            :data:`EXACT_TOLERANCE`.
        """
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
                budget=Budget.start(self.attack_timeout),
            )  # fmt: skip
        high = eps if upper is None else upper
        for _ in range(self.steps if lower < eps else 0):
            mid = 0.5 * (lower + high)
            solves += 1
            if self._proves(network, x, mid, norm, label).verdict is Verdict.UNSAT:
                lower = mid
            else:
                high = mid
        return robustness_result(
            network, self.name, label, norm, eps, lower, upper, example, EXACT_TOLERANCE,
            statistics={"bound_calls": calls, "sdp_verifications": solves},
        )  # fmt: skip
