"""The public verifier classes: the seed's ``LPVerifier`` and its siblings.

Every verifier offers the seed's two methods on a point ``x_0`` and an L-inf
radius ``epsilon``:

* ``compute_pointwise_robustness(network, x_0, epsilon)``: the distance from
  ``x_0`` to the nearest adversarial example the method can find;
* ``verify_epsilon_robustness(network, x_0, epsilon)``: is there an adversarial
  example within ``epsilon``?

Both return a :class:`~verifiNN.results.VerificationResult` with the seed's keys.
"""

from __future__ import annotations

import logging
import math
from abc import ABC, abstractmethod

import numpy as np

from verifiNN.errors import InvalidInputError
from verifiNN.models.network import Network
from verifiNN.results import Verdict, VerificationResult
from verifiNN.solvers.region_lp import RegionLP
from verifiNN.specs import normalize_norm

__all__ = [
    "LPVerifier",
    "MILPVerifier",
    "SDPVerifier",  # noqa: F822 (lazy: module __getattr__)
    "Verifier",
    "check_point",
    "robustness_result",
]

logger = logging.getLogger(__name__)


def check_point(network: Network, x_0: object, epsilon: object) -> tuple[np.ndarray, float]:
    """Validate a verification query and return ``(flat x_0, epsilon)``.

    Raises:
        InvalidInputError: ``x_0`` of the wrong size or not finite; ``epsilon``
            negative, NaN, infinite or not a number.
    """
    if not isinstance(network, Network):
        raise InvalidInputError(f"expected a verifiNN Network, got {type(network).__name__}")
    try:
        x = np.asarray(x_0, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"x_0 is not a numeric array: {exc}") from exc
    if x.size != network.input_size or x.shape not in ((network.input_size,), network.input_shape):
        raise InvalidInputError(
            f"x_0 has shape {x.shape}, but the network takes inputs of shape "
            f"{network.input_shape} ({network.input_size} values)"
        )
    if not np.isfinite(x).all():
        raise InvalidInputError("x_0 contains NaN or inf")
    if isinstance(epsilon, bool):
        raise InvalidInputError(f"epsilon must be a number, got {epsilon!r}")
    try:
        eps = float(epsilon)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"epsilon must be a number, got {epsilon!r}") from exc
    if not math.isfinite(eps) or eps < 0:
        raise InvalidInputError(f"epsilon must be finite and >= 0, got {eps}")
    return x.reshape(-1), eps


class Verifier(ABC):
    """Shared interface of verifiNN's verifiers (the seed's API)."""

    name: str = "verifier"

    @abstractmethod
    def compute_pointwise_robustness(
        self, network: Network, x_0: object, epsilon: float, norm: str = "inf"
    ) -> VerificationResult:
        """Distance from ``x_0`` to the nearest adversarial example within ``epsilon``.

        Every verifier returns ``pointwise_robustness`` (the distance: exact,
        or that of the example found), ``lower_bound`` (proved, or ``None``),
        ``upper_bound`` (the distance of ``adversarial_example``, or ``None``)
        and ``status``: ``'exact'``, ``'bracket'``, ``'lower_bound'``,
        ``'upper_bound'`` or ``'robust'`` (nothing within ``epsilon``).
        """

    @abstractmethod
    def verify_epsilon_robustness(
        self, network: Network, x_0: object, epsilon: float
    ) -> VerificationResult:
        """Whether an adversarial example exists within ``epsilon`` of ``x_0``."""


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
        time_limit: seconds per LP solve (``None``: no limit).
    """

    name = "lp"

    def __init__(self, margin: float = 1e-6, time_limit: float | None = None) -> None:
        if not (margin > 0 and math.isfinite(margin)):
            raise InvalidInputError(f"margin must be positive and finite, got {margin}")
        self.margin = float(margin)
        self.time_limit = time_limit

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
            ``not_robust`` with ``pointwise_robustness``, ``adversarial_example``
            and ``adversarial_label``, or ``unknown`` when no class can be reached
            inside the region. ``target_class`` is the class whose LP gave the
            example, ``optimal_value`` its boundary distance, ``class_distances``
            the optimum for every reachable class.
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
                solution = region.solve_class(j, 0.0, self.time_limit)
                if solution.distance is not None:
                    distances[j] = solution.distance
            order = sorted(distances, key=lambda j: (distances[j], j))

        region.set_tolerance(1e-9)
        for j in order:
            found = self._confirmed_example(network, region, j, tau, label, x, eps)
            if found is not None:
                x_hat, adv_label, distance = found
                return VerificationResult.make(
                    Verdict.SAT,
                    method=self.name,
                    adversarial_example=x_hat.reshape(network.input_shape)
                    if len(network.input_shape) > 1
                    else x_hat,
                    pointwise_robustness=distance,
                    lower_bound=None,
                    upper_bound=distance,
                    status="upper_bound",
                    adversarial_label=adv_label,
                    target_class=j,
                    problem_status="optimal",
                    optimal_value=distances.get(j, distance),
                    class_distances=distances,
                    label=label,
                )
            logger.debug("class %d: region LP point not confirmed by forward pass", j)
        return VerificationResult.make(
            Verdict.UNKNOWN,
            method=self.name,
            problem_status="infeasible" if not distances else "unconfirmed",
            optimal_value=None,
            lower_bound=None,
            upper_bound=None,
            status="unknown",
            class_distances=distances,
            label=label,
        )

    def _confirmed_example(
        self,
        network: Network,
        region: RegionLP,
        target: int,
        tau: float,
        label: int,
        x_0: np.ndarray,
        eps: float,
    ) -> tuple[np.ndarray, int, float] | None:
        """Solve ``target``'s LP past the boundary and confirm the point by a forward pass."""
        solution = region.solve_class(target, tau, self.time_limit)
        if solution.x is None:
            return None
        x_hat = np.clip(solution.x, x_0 - eps, x_0 + eps)
        adv_label = int(network.classify(x_hat))
        if adv_label == label:
            return None
        return x_hat, adv_label, float(np.max(np.abs(x_hat - x_0), initial=0.0))


class MILPVerifier(Verifier):
    """Exact pointwise robustness of ReLU MLPs by MILP (Tjeng et al. 2019, MIPVerify).

    ``compute_pointwise_robustness`` returns the exact minimal adversarial
    distance in L-inf, L-1 or L-2 within ``epsilon``
    (:func:`verifiNN.solvers.distance_milp.minimal_adversarial_distance`), or
    proves there is none (``robust``); when the time limit cuts it short, the
    bracket ``[lower_bound, upper_bound]`` found so far.
    ``verify_epsilon_robustness`` decides the L-inf ball by
    :func:`verifiNN.solvers.milp.milp_verify`.

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
        if timeout is not None and not timeout >= 0:
            raise InvalidInputError(f"timeout must be >= 0 seconds, got {timeout}")
        if not (tolerance > 0 and math.isfinite(tolerance)):
            raise InvalidInputError(f"tolerance must be positive, got {tolerance}")
        self.timeout = timeout
        self.tolerance = float(tolerance)
        self.domain = domain

    def compute_pointwise_robustness(
        self, network: Network, x_0: object, epsilon: float, norm: str = "inf"
    ) -> VerificationResult:
        """Exact distance from ``x_0`` to the nearest adversarial example within ``epsilon``."""
        # imported here: verifiNN.robustness imports the bounds, which import this module
        from verifiNN.robustness import exact_robustness

        x, eps = check_point(network, x_0, epsilon)
        if eps == 0:
            label = int(network.classify(x))
            return robustness_result(network, self.name, label, norm, eps, 0.0, None, None, 0.0)
        return exact_robustness(
            network, x, eps, norm, timeout=self.timeout, tolerance=self.tolerance,
            domain=self.domain,
        )  # fmt: skip

    def verify_epsilon_robustness(
        self, network: Network, x_0: object, epsilon: float
    ) -> VerificationResult:
        """Whether an adversarial example exists in the L-inf ball, by the MILP."""
        from verifiNN.solvers.milp import milp_verify
        from verifiNN.specs import robustness_spec

        x, eps = check_point(network, x_0, epsilon)
        label = int(network.classify(x))
        spec = robustness_spec(network, x, eps, label=label, domain=self.domain)
        result = milp_verify(network, spec, timeout=self.timeout)
        example = result.get("adversarial_example")
        if result.verdict is Verdict.SAT and int(network.classify(example)) == label:
            # a tie under the VNN-LIB convention that the tie rule resolves for the label
            return VerificationResult.make(Verdict.UNKNOWN, method=self.name, label=label)
        return VerificationResult.make(
            result.verdict,
            method=self.name,
            adversarial_example=example,
            label=label,
            statistics=result.get("statistics"),
        )


def robustness_result(
    network: Network,
    method: str,
    label: int,
    norm: str,
    epsilon: float,
    lower: float,
    upper: float | None,
    example: np.ndarray | None,
    tolerance: float,
    *,
    exact: float | None = None,
    timed_out: bool = False,
    statistics: dict | None = None,
) -> VerificationResult:
    """The result of ``compute_pointwise_robustness`` from a bracket.

    Args:
        lower: proved lower bound of the distance (``epsilon`` or more: robust).
        upper: distance of ``example``, a confirmed adversarial example, or ``None``.
        tolerance: the bracket counts as exact when narrower than
            ``tolerance * max(1, epsilon)``.
        exact: the exact minimum when the method proved it.
    """
    if example is not None:
        example = np.asarray(example, np.float64)
        if len(network.input_shape) > 1:
            example = example.reshape(network.input_shape)
    if lower >= epsilon and example is None:
        verdict, status, value = Verdict.UNSAT, "robust", None
    elif example is not None:
        verdict = Verdict.SAT
        if exact is not None or upper - lower <= tolerance * max(1.0, epsilon):
            status, value = "exact", exact if exact is not None else upper
        else:
            status, value = "bracket" if lower > 0 else "upper_bound", upper
    else:
        verdict = Verdict.TIMEOUT if timed_out else Verdict.UNKNOWN
        status, value = ("lower_bound" if lower > 0 else "unknown"), None
    return VerificationResult.make(
        verdict,
        method=method,
        adversarial_example=example,
        pointwise_robustness=value,
        lower_bound=lower,
        upper_bound=upper,
        status=status,
        norm=normalize_norm(norm),
        label=label,
        adversarial_label=None if example is None else int(network.classify(example)),
        statistics=statistics or {},
    )


def __getattr__(name: str) -> object:
    """``SDPVerifier`` lives in :mod:`verifiNN.sdp` (it imports this module and cvxpy)."""
    if name == "SDPVerifier":
        from verifiNN.sdp.verifier import SDPVerifier

        return SDPVerifier
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
