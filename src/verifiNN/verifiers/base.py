"""What every verifier class shares: the seed's two methods, their checks and their result.

Every verifier offers the seed's two methods on a point ``x_0`` and a radius
``epsilon``:

* ``compute_pointwise_robustness(network, x_0, epsilon, norm)``: the distance
  from ``x_0`` to the nearest adversarial example within ``epsilon``, as far as
  the method can pin it down;
* ``verify_epsilon_robustness(network, x_0, epsilon)``: is there an
  adversarial example within ``epsilon`` (L-inf)?

Both return a :class:`~verifiNN.results.VerificationResult` with exactly the
keys of :data:`ROBUSTNESS_KEYS`, built by :func:`robustness_result` (the one
place they are produced), whatever the verifier.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from verifiNN.errors import InvalidInputError
from verifiNN.models.network import Network
from verifiNN.results import DistanceStatus, Verdict, VerificationResult
from verifiNN.specs import normalize_norm

__all__ = ["ROBUSTNESS_KEYS", "Verifier", "check_point", "robustness_result"]

ROBUSTNESS_KEYS = (
    "verdict",
    "verification_status",
    "robustness_status",
    "status",
    "pointwise_robustness",
    "lower_bound",
    "upper_bound",
    "optimal_value",
    "adversarial_example",
    "adversarial_label",
    "label",
    "norm",
    "epsilon",
    "method",
    "statistics",
)
"""The keys of every verifier's result, for both methods:

* ``verdict``, ``verification_status``, ``robustness_status``: the verdict on
  "an adversarial example exists within ``epsilon``" in the three vocabularies
  of :mod:`verifiNN.results`;
* ``status``: a :class:`~verifiNN.results.DistanceStatus`, what is known of the
  distance to the nearest adversarial example;
* ``pointwise_robustness``: the distance (exact) or that of the example found,
  else ``None``;
* ``lower_bound``: a proved lower bound of the distance (``None``: none);
* ``upper_bound``: the distance of ``adversarial_example`` (``None``: none);
* ``optimal_value``: the optimum of the method's own distance problem, when it
  solved one to optimality (the LP's boundary distance in ``x_0``'s activation
  region, the MILP's exact distance), else ``None``;
* ``adversarial_example``: a confirmed adversarial example (input-shaped), or
  ``None``; ``adversarial_label``: its class;
* ``label``: the class of ``x_0``; ``norm``: ``'inf'``, ``'1'`` or ``'2'``;
  ``epsilon``: the radius asked about; ``method``: the verifier's name;
* ``statistics``: the method's counters (method-specific entries, e.g. the
  LP's ``class_distances``).
"""


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

        Returns:
            A result with the keys of :data:`ROBUSTNESS_KEYS`.
        """

    @abstractmethod
    def verify_epsilon_robustness(
        self, network: Network, x_0: object, epsilon: float
    ) -> VerificationResult:
        """Whether an adversarial example exists within ``epsilon`` of ``x_0`` (L-inf).

        Returns:
            A result with the keys of :data:`ROBUSTNESS_KEYS`.
        """


def robustness_result(
    network: Network,
    method: str,
    label: int,
    norm: str,
    epsilon: float,
    lower: float | None,
    upper: float | None,
    example: np.ndarray | None,
    tolerance: float = 0.0,
    *,
    exact: float | None = None,
    optimal_value: float | None = None,
    timed_out: bool = False,
    statistics: dict[str, Any] | None = None,
) -> VerificationResult:
    """A verifier's result (the keys of :data:`ROBUSTNESS_KEYS`) from a distance bracket.

    Args:
        network: the network (for the example's shape and class).
        method: the verifier's name.
        label: the class of ``x_0``.
        norm: the norm of the distance.
        epsilon: the radius asked about.
        lower: proved lower bound of the distance (``epsilon`` or more:
            robust; ``None``: nothing proved).
        upper: distance of ``example``, a confirmed adversarial example, or ``None``.
        example: the example, or ``None``.
        tolerance: the bracket counts as exact when narrower than
            ``tolerance * max(1, epsilon)`` (``0``: never by width alone).
        exact: the exact minimum when the method proved it.
        optimal_value: the optimum of the method's own problem (see
            :data:`ROBUSTNESS_KEYS`); defaults to ``exact``.
        timed_out: the method stopped at its time limit (verdict ``timeout``
            rather than ``unknown`` when nothing was decided).
        statistics: the method's counters.
    """
    if example is not None:
        example = np.asarray(example, np.float64)
        if len(network.input_shape) > 1:
            example = example.reshape(network.input_shape)
    proved = 0.0 if lower is None else lower
    value: float | None
    if example is None and lower is not None and lower >= epsilon:
        verdict, status, value = Verdict.UNSAT, DistanceStatus.ROBUST, None
    elif example is not None:
        verdict = Verdict.SAT
        if exact is not None or (upper - proved <= tolerance * max(1.0, epsilon)):
            status, value = DistanceStatus.EXACT, exact if exact is not None else upper
        else:
            bracketed = lower is not None and lower > 0
            status = DistanceStatus.BRACKET if bracketed else DistanceStatus.UPPER_BOUND
            value = upper
    else:
        verdict = Verdict.TIMEOUT if timed_out else Verdict.UNKNOWN
        known = lower is not None and lower > 0
        status, value = (DistanceStatus.LOWER_BOUND if known else DistanceStatus.UNKNOWN), None
    return VerificationResult.make(
        verdict,
        method=method,
        adversarial_example=example,
        pointwise_robustness=value,
        status=status,
        lower_bound=lower,
        upper_bound=upper,
        optimal_value=exact if optimal_value is None else optimal_value,
        adversarial_label=None if example is None else int(network.classify(example)),
        label=int(label),
        norm=normalize_norm(norm),
        epsilon=float(epsilon),
        statistics=dict(statistics or {}),
    )
