"""``LPVerifier``: the seed's activation-region LP (an attack: it never proves robustness)."""

from __future__ import annotations

import logging
import math

import numpy as np

from verifiNN.budget import Budget
from verifiNN.errors import InvalidInputError
from verifiNN.models.network import Network
from verifiNN.results import VerificationResult
from verifiNN.solvers.region_lp import RegionLP
from verifiNN.specs import normalize_norm
from verifiNN.verifiers.base import Verifier, check_point, robustness_result

__all__ = ["LPVerifier"]

logger = logging.getLogger(__name__)


class LPVerifier(Verifier):
    """The seed's activation-region LP (an attack: never proves robustness).

    Every ReLU is fixed to its phase at ``x_0``; inside that activation region
    the network is affine and the nearest misclassified point is an LP, solved
    with HiGHS for every competing class (the nearest wins). A solution is an
    adversarial example, so the network is ``not_robust``; when every LP is
    infeasible the answer is ``unknown``, because adversarial examples may
    still exist in other activation regions of the ball (the seed's caveat).
    Use a sound verifier to prove robustness.

    LP optima lie on the decision boundary, where the label is decided by a
    tie. The reported example is the optimum of the same LP with the winning
    class ahead by a margin ``tau = margin * max(1, max|y(x_0)|)`` (default
    ``margin = 1e-6``), clipped to the ball and confirmed by a forward pass, so
    ``pointwise_robustness`` (its distance to ``x_0``) exceeds the boundary
    distance (``optimal_value``) by ``O(tau)``.

    Args:
        margin: relative score margin past the decision boundary.
        timeout: seconds per call (``None``: no limit).
    """

    name = "lp"

    def __init__(self, margin: float = 1e-6, timeout: float | None = None) -> None:
        if not (margin > 0 and math.isfinite(margin)):
            raise InvalidInputError(f"margin must be positive and finite, got {margin}")
        Budget.start(timeout)  # validates the timeout
        self.margin = float(margin)
        self.timeout = timeout

    def compute_pointwise_robustness(
        self, network: Network, x_0: object, epsilon: float, norm: str = "inf"
    ) -> VerificationResult:
        """Nearest adversarial example in ``x_0``'s activation region within ``epsilon``.

        Args:
            network: a fully connected ReLU or identity network.
            x_0: the reference input.
            epsilon: the L-inf radius searched.
            norm: only ``'inf'`` (the region LP is an L-inf program).

        Returns:
            ``not_robust`` with ``pointwise_robustness`` (status
            ``upper_bound``), ``adversarial_example`` and ``adversarial_label``,
            or ``unknown`` when no class can be reached inside the region.
            ``optimal_value`` is the winning class's boundary distance;
            ``statistics`` holds ``class_distances`` (the optimum for every
            reachable class), ``target_class`` (the class whose LP gave the
            example) and ``problem_status`` (``optimal``, ``infeasible`` or
            ``unconfirmed``).
        """
        if normalize_norm(norm) != "inf":
            raise InvalidInputError(f"LPVerifier measures L-inf distances only, not L{norm}")
        return self._search(network, x_0, epsilon, nearest=True)

    def verify_epsilon_robustness(
        self, network: Network, x_0: object, epsilon: float
    ) -> VerificationResult:
        """Feasibility version: stop at the first class whose region LP yields a confirmed example.

        Classes are tried by score, closest competitor first.
        """
        return self._search(network, x_0, epsilon, nearest=False)

    def _search(
        self, network: Network, x_0: object, epsilon: float, nearest: bool
    ) -> VerificationResult:
        x, eps = check_point(network, x_0, epsilon)
        budget = Budget.start(self.timeout)
        mlp = network.as_mlp()
        label = int(network.classify(x))
        region = RegionLP(mlp, x, eps, label, network.labeler)
        sign = 1.0 if network.labeler == "argmax" else -1.0
        order = sorted(
            region.competitors, key=lambda j: sign * (region.scores[label] - region.scores[j])
        )
        tau = self.margin * max(1.0, float(np.max(np.abs(region.scores))))

        distances: dict[int, float] = {}
        if nearest:
            for j in order:
                solution = region.solve_class(j, 0.0, budget)
                if solution.distance is not None:
                    distances[j] = solution.distance
            order = sorted(distances, key=lambda j: (distances[j], j))

        region.set_tolerance(1e-9)
        for j in order:
            found = self._confirmed_example(network, region, j, tau, label, x, eps, budget)
            if found is not None:
                x_hat, distance = found
                statistics = {
                    "class_distances": distances,
                    "target_class": j,
                    "problem_status": "optimal",
                }
                return robustness_result(
                    network, self.name, label, "inf", eps, None, distance, x_hat,
                    optimal_value=distances.get(j, distance), statistics=statistics,
                )  # fmt: skip
            logger.debug("class %d: region LP point not confirmed by forward pass", j)
        statistics = {
            "class_distances": distances,
            "target_class": None,
            "problem_status": "infeasible" if not distances else "unconfirmed",
        }
        return robustness_result(
            network, self.name, label, "inf", eps, None, None, None,
            timed_out=budget.expired(), statistics=statistics,
        )  # fmt: skip

    def _confirmed_example(
        self,
        network: Network,
        region: RegionLP,
        target: int,
        tau: float,
        label: int,
        x_0: np.ndarray,
        eps: float,
        budget: Budget,
    ) -> tuple[np.ndarray, float] | None:
        """Solve ``target``'s LP past the boundary and confirm the point by a forward pass."""
        solution = region.solve_class(target, tau, budget)
        if solution.x is None:
            return None
        x_hat = np.clip(solution.x, x_0 - eps, x_0 + eps)
        if int(network.classify(x_hat)) == label:
            return None
        return x_hat, float(np.max(np.abs(x_hat - x_0), initial=0.0))
