"""The exact distance from a point to the nearest adversarial example, by MILP.

The minimum adversarial distortion of Tjeng, Xiao and Tedrake 2019
("Evaluating Robustness of Neural Networks with Mixed Integer Programming",
MIPVerify): over the big-M encoding of a ReLU MLP
(:func:`verifiNN.solvers.milp.encode_mlp`) on the ball ``||x - x_0|| <= epsilon``,
minimise ``||x - x_0||`` subject to a class ``j`` scoring at least as well as
the label, one MILP per competing class ``j`` (closest competitor first; the
best distance so far is every later MILP's cutoff, so most are pruned at once).

* L-inf: a column ``r`` with ``-r <= x_i - x0_i <= r``; L-1: columns
  ``s_i >= |x_i - x0_i|`` and ``r = sum s_i``. Both are exact MILPs.
* L-2 is not linear: ``r`` is bounded below by the valid inequalities
  ``r >= s_i`` and ``r >= sum s_i / sqrt(n)`` and then by tangent planes
  ``r >= g . (x - x_0)`` with ``g = (x* - x_0) / ||x* - x_0||`` at each MILP
  optimum ``x*`` (Kelley's cutting planes, 1960; the outer approximation of
  Duran and Grossmann 1986). Every MILP optimum is a lower bound of the true
  minimum (the cuts under-estimate the norm), every ``x*`` an upper bound; the
  loop stops when they agree to ``tolerance``.

The MILP optimum with no margin is the distance to the decision boundary (the
infimum over adversarial examples): it is ``lower``. An adversarial example
must change the label under the network's tie rule (lowest index wins), so
the reported example is the MILP point when a forward pass confirms it, else
the optimum of the same MILP with the class ahead by a margin ``tau``; its
distance is ``upper``, larger than ``lower`` by ``O(tau)``.

Proofs rest on HiGHS's optimality to its tolerances, as in
:func:`~verifiNN.search.milp.milp_verify`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from verifiNN.budget import Budget
from verifiNN.errors import InvalidInputError
from verifiNN.models.network import Network
from verifiNN.results import DistanceStatus
from verifiNN.solvers.highs import INF, HighsModel, LinearProgram, LPStatus
from verifiNN.solvers.milp import auto_layer_bounds, encode_mlp, mlp_layers
from verifiNN.specs import Box, LpBall, norm_distance, normalize_norm

__all__ = ["MinimalDistance", "minimal_adversarial_distance"]

#: Outer-approximation rounds per class for the L-2 norm.
MAX_L2_ROUNDS = 200


@dataclass
class MinimalDistance:
    """The distance from ``x_0`` to the nearest adversarial example within ``epsilon``.

    Attributes:
        status: ``EXACT`` (``lower`` is the minimum, to ``tolerance``),
            ``ROBUST`` (no adversarial example within ``epsilon``: the
            distance exceeds it) or ``BRACKET`` (time ran out; the minimum
            lies in ``[lower, upper]``).
        lower: proved lower bound of the distance to the decision boundary
            (``epsilon`` when ``'robust'``).
        upper: distance of ``example`` (``None`` when none was found).
        example: a confirmed adversarial example, or ``None``.
        adversarial_label: its class.
        label: the class of ``x_0``.
        norm: ``'inf'``, ``'1'`` or ``'2'``.
        statistics: MILPs solved, binaries, seconds.
    """

    status: DistanceStatus
    lower: float
    upper: float | None
    example: np.ndarray | None
    adversarial_label: int | None
    label: int
    norm: str
    statistics: dict[str, float] = field(default_factory=dict)


def minimal_adversarial_distance(
    network: Network,
    x_0: np.ndarray,
    epsilon: float,
    norm: str = "inf",
    label: int | None = None,
    budget: Budget | None = None,
    tolerance: float = 1e-6,
    margin: float = 1e-7,
    domain: tuple[float, float] | None = None,
    lower_bound: float = 0.0,
    incumbent: np.ndarray | None = None,
) -> MinimalDistance:
    """Exact minimal adversarial distance in ``norm`` within ``epsilon`` of ``x_0``.

    Args:
        network: a fully connected ReLU MLP.
        x_0: the reference input (flattened).
        epsilon: radius of the search ball (and of the big-M bounds).
        norm: ``'inf'``, ``'1'`` or ``'2'``.
        label: the class to keep (default: the network's class of ``x_0``).
        budget: the time limit of the whole call (``None``: none).
        tolerance: absolute accuracy of the distance (L-2 cuts stop at it; HiGHS's
            gap is set below it).
        margin: score margin of the confirmed example, relative to
            ``max(1, max|y(x_0)|)``.
        domain: optional ``(lo, hi)`` valid-input box, e.g. ``(0, 1)`` for images.
        lower_bound: a proved lower bound of the distance (e.g. a certified
            radius, :func:`verifiNN.verifiers.robustness.certified_radius`), imposed on
            the distance column.
        incumbent: a known adversarial example (e.g. an attack's). The minimum
            lies within its distance, so the ball shrinks to it (tighter
            big-M bounds, fewer unstable ReLUs) and it is every MILP's cutoff.

    Returns:
        A :class:`MinimalDistance`.

    Raises:
        InvalidInputError: bad ``epsilon``, ``norm`` or ``label``.
        UnsupportedModelError: not a ReLU MLP.
    """
    start = time.perf_counter()
    budget = budget or Budget.start(None)
    norm = normalize_norm(norm)
    x_0 = np.asarray(x_0, np.float64).ravel()
    if not (math.isfinite(epsilon) and epsilon > 0):
        raise InvalidInputError(f"epsilon must be positive and finite, got {epsilon}")
    scores = np.asarray(network.get_output(x_0), np.float64).ravel()
    label = int(network.classify(x_0)) if label is None else int(label)
    if not 0 <= label < scores.size:
        raise InvalidInputError(f"label {label} is not a class of a {scores.size}-output network")
    search = _Search(network, x_0, label, norm, budget, tolerance, {})
    best = _Best()
    if incumbent is not None:
        point, distance, adv = search.confirm(np.asarray(incumbent, np.float64).ravel())
        if point is None:
            raise InvalidInputError("the incumbent is not an adversarial example of x_0")
        if distance <= epsilon:  # the minimum is within the incumbent's ball
            best = _Best(distance - 0.1 * tolerance, distance, point, adv)
    radius = float(epsilon) if best.distance is None else best.distance
    lower_bound = min(max(0.0, float(lower_bound)), radius)
    region = _region(x_0, radius, norm, domain)
    mlp = mlp_layers(network)[0]
    pairs, _, _ = auto_layer_bounds(network, region, None, "auto", None)
    encoding = encode_mlp(mlp, region, pairs)
    base, r = _with_distance(encoding.lp, encoding.x, x_0, radius, norm)
    base.col_lower[r] = lower_bound
    sign = 1.0 if network.labeler == "argmax" else -1.0
    tau = margin * max(1.0, float(np.max(np.abs(scores))))
    search.stats.update(milps=0.0, binaries=float(encoding.binaries), classes_pruned=0.0)
    stats = search.stats
    competitors = sorted(
        (j for j in range(scores.size) if j != label),
        key=lambda j: sign * (scores[label] - scores[j]),
    )
    lowers = []
    for j in competitors:
        row = np.zeros(base.num_cols)
        row[encoding.y[j]], row[encoding.y[label]] = sign, -sign
        lowers.append(search.solve_class(base, r, encoding.x, row, j, tau, best))
    stats["seconds"] = time.perf_counter() - start
    lower = max(lower_bound, min([epsilon, best.boundary, *lowers]))
    timed_out = any(not search.finished(j) for j in competitors)
    if best.example is None and not timed_out and lower >= epsilon - tolerance:
        return MinimalDistance(DistanceStatus.ROBUST, epsilon, None, None, None, label, norm, stats)
    status = DistanceStatus.BRACKET if timed_out or best.example is None else DistanceStatus.EXACT
    return MinimalDistance(
        status, lower, best.distance, best.example, best.label, label, norm, stats
    )


@dataclass
class _Best:
    """The nearest confirmed adversarial example so far."""

    boundary: float = INF  # its class's MILP optimum (boundary distance)
    distance: float | None = None
    example: np.ndarray | None = None
    label: int | None = None


@dataclass
class _Search:
    """Per-call state of :func:`minimal_adversarial_distance`."""

    network: Network
    x_0: np.ndarray
    label: int
    norm: str
    budget: Budget
    tolerance: float
    stats: dict[str, float]
    unfinished: set[int] = field(default_factory=set)

    def finished(self, j: int) -> bool:
        return j not in self.unfinished

    def distance(self, x: np.ndarray) -> float:
        return norm_distance(x, self.x_0, self.norm)

    def solve_class(
        self,
        base: LinearProgram,
        r: int,
        x_cols: np.ndarray,
        row: np.ndarray,
        j: int,
        tau: float,
        best: _Best,
    ) -> float:
        """Minimise the distance with class ``j`` ahead; update ``best``.

        Returns:
            A lower bound of class ``j``'s minimal distance (``inf`` when no
            point of the ball puts ``j`` ahead, or none nearer than ``best``).
        """
        model = HighsModel(_add_row(base, row, 0.0))
        lower, x = self._minimise(model, r, x_cols, best.boundary, j)
        if x is None:
            return lower
        point, distance, adv = self.confirm(x)
        if point is None:  # on the boundary under the tie rule: ask for a margin
            model = HighsModel(_add_row(base, row, tau))
            _, x_margin = self._minimise(model, r, x_cols, INF, j)
            if x_margin is not None:
                point, distance, adv = self.confirm(x_margin)
        if point is not None and lower < best.boundary:
            best.boundary, best.distance, best.example, best.label = lower, distance, point, adv
        return lower

    def _minimise(
        self, model: HighsModel, r: int, x_cols: np.ndarray, cutoff: float, j: int
    ) -> tuple[float, np.ndarray | None]:
        """``(lower bound, minimiser or None)``; L-2 by tangent cuts on ``r``."""
        gap = 0.1 * self.tolerance
        rounds = MAX_L2_ROUNDS if self.norm == "2" else 1
        lower = 0.0
        for _ in range(rounds):
            solution = model.solve_mip(self.budget, cutoff=cutoff, rel_gap=0.0, abs_gap=gap)
            self.stats["milps"] += 1
            if solution.status is LPStatus.TIME_LIMIT:
                self.unfinished.add(j)
                return max(lower, solution.dual_bound), solution.x
            if solution.x is None or solution.objective is None:
                # infeasible, or nothing below the cutoff: class j is no nearer
                if cutoff < INF:
                    self.stats["classes_pruned"] += 1
                return INF, None
            # an optimum is within the gap of the minimum (a pure LP: equal to it)
            integer = bool(model.lp.integrality is not None and model.lp.integrality.any())
            lower = max(lower, solution.objective - (gap if integer else 0.0))
            x = solution.x[x_cols]
            if self.norm != "2":
                return lower, x
            true = self.distance(x)
            if true - lower <= self.tolerance:
                return lower, x
            g = (x - self.x_0) / true
            cut = np.zeros(model.lp.num_cols)
            cut[r], cut[x_cols] = 1.0, -g
            model.add_rows(sp.csr_matrix(cut), np.array([-g @ self.x_0]), np.array([INF]))
        self.unfinished.add(j)
        return lower, x

    def confirm(self, x: np.ndarray) -> tuple[np.ndarray | None, float | None, int | None]:
        """``x`` when a float64 forward pass gives it another label than ``x_0``."""
        adv = int(self.network.classify(x))
        if adv == self.label:
            return None, None, None
        return x.copy(), self.distance(x), adv


def _region(x_0: np.ndarray, epsilon: float, norm: str, domain) -> Box | LpBall:
    lo, hi = (-INF, INF) if domain is None else domain
    lower = np.maximum(x_0 - epsilon, lo)
    upper = np.minimum(x_0 + epsilon, hi)
    if norm == "inf":
        return Box(lower, upper)
    return LpBall(x_0, epsilon, norm, lower, upper)


def _with_distance(
    lp: LinearProgram, x: np.ndarray, x_0: np.ndarray, epsilon: float, norm: str
) -> tuple[LinearProgram, int]:
    """``lp`` plus the distance column ``r`` (cost 1) and the rows defining it."""
    n, cols = x.size, lp.num_cols
    eye = sp.identity(n, format="csr")
    if norm == "inf":  # x - r <= x0, x + r >= x0
        new_cols, r = 1, cols
        ones = sp.csr_matrix(np.ones((n, 1)))
        rows = [
            (sp.hstack([_select(x, cols, n), -ones]), np.full(n, -INF), x_0),
            (sp.hstack([_select(x, cols, n), ones]), x_0, np.full(n, INF)),
        ]
    else:  # s >= |x - x0| in columns cols..cols+n-1, r = cols + n
        new_cols, r = n + 1, cols + n
        zero = sp.csr_matrix((n, 1))
        rows = [
            (sp.hstack([-_select(x, cols, n), eye, zero]), -x_0, np.full(n, INF)),
            (sp.hstack([_select(x, cols, n), eye, zero]), x_0, np.full(n, INF)),
        ]
        ones = np.ones((1, n))
        if norm == "1":  # r = sum s
            rows.append((sp.hstack([sp.csr_matrix((1, cols)), -ones, [[1.0]]]), [0.0], [0.0]))
        else:  # r >= s_i and r >= sum s / sqrt(n)
            rows.append(
                (sp.hstack([sp.csr_matrix((n, cols)), -eye, np.ones((n, 1))]), np.zeros(n), INF)
            )
            rows.append(
                (
                    sp.hstack([sp.csr_matrix((1, cols)), -ones / math.sqrt(n), [[1.0]]]),
                    [0.0],
                    [INF],
                )
            )
    width = cols + new_cols
    A = sp.vstack(
        [sp.hstack([lp.A, sp.csr_matrix((lp.num_rows, new_cols))])]
        + [sp.csr_matrix(m) for m, _, _ in rows],
        format="csr",
    )
    cost = np.zeros(width)
    cost[r] = 1.0
    extra_lower = np.zeros(new_cols)
    extra_upper = np.full(new_cols, epsilon)
    return (
        LinearProgram(
            cost=cost,
            A=A,
            row_lower=np.concatenate(
                [lp.row_lower, *[np.broadcast_to(lo, (m.shape[0],)) for m, lo, _ in rows]]
            ),
            row_upper=np.concatenate(
                [lp.row_upper, *[np.broadcast_to(up, (m.shape[0],)) for m, _, up in rows]]
            ),
            col_lower=np.concatenate([lp.col_lower, extra_lower]),
            col_upper=np.concatenate([lp.col_upper, extra_upper]),
            integrality=np.concatenate([lp.integrality, np.zeros(new_cols, bool)]),
        ),
        r,
    )


def _select(x: np.ndarray, cols: int, n: int) -> sp.csr_matrix:
    """``(n, cols)`` matrix picking the columns ``x`` out of ``cols``."""
    return sp.csr_matrix((np.ones(n), (np.arange(n), x)), shape=(n, cols))


def _add_row(lp: LinearProgram, row: np.ndarray, lower: float) -> LinearProgram:
    """``lp`` plus the row ``row . v >= lower``."""
    return LinearProgram(
        cost=lp.cost,
        A=sp.vstack([lp.A, sp.csr_matrix(row)], format="csr"),
        row_lower=np.append(lp.row_lower, lower),
        row_upper=np.append(lp.row_upper, INF),
        col_lower=lp.col_lower,
        col_upper=lp.col_upper,
        integrality=lp.integrality,
    )
