"""The seed's activation-region LP: nearest adversarial point with x_0's ReLU phases fixed.

Inside the activation region of ``x_0`` (every ReLU kept in the phase it has at
``x_0``) a ReLU network is affine: every hidden pre-activation is
``z_k = A_k x + c_k`` and the output ``y = A x + c``, with the ``A_k`` obtained
by multiplying the weights through the 0/1 phase masks. The nearest point of
the region where class ``j`` beats the label ``l`` by ``tau`` is the LP

    min t  s.t.  |x - x_0|_inf <= t,  |x - x_0|_inf <= epsilon,
                 s_k * (A_k x + c_k) >= 0   (s = +1 on active units, -1 on inactive),
                 sign * (y_j - y_l) >= tau  (sign = -1 for argmin labelers).

Most region rows are far from binding, so the LP is solved by constraint
generation (cutting planes): HiGHS starts from the distance rows and the class
row, and the region rows that the current optimum violates are added in rounds
and re-solved from the previous basis (dual simplex). The result is exact:
an optimum of the relaxed LP that satisfies every region row is an optimum of
the full LP, and an infeasible relaxation proves the full LP infeasible.

The region is only part of the ball, so an infeasible LP proves nothing about
robustness: this is an upper-bound (attack) method, cf. the seed's caveat.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from verifiNN.budget import Budget
from verifiNN.models.network import MLP
from verifiNN.solvers.highs import INF, HighsModel, LinearProgram, LPStatus

__all__ = ["RegionLP", "mlp_forward"]


def mlp_forward(mlp: MLP, x: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """Forward pass of one input; returns (hidden pre-activations, outputs)."""
    pre_activations = []
    a = np.asarray(x, dtype=np.float64)
    for k, (w, b) in enumerate(zip(mlp.weights, mlp.biases)):
        z = w @ a + b
        if k == len(mlp.weights) - 1:
            return pre_activations, z
        pre_activations.append(z)
        a = np.maximum(z, 0.0) if mlp.activations[k] == "ReLU" else z
    raise AssertionError("unreachable")


@dataclass
class RegionLPSolution:
    """Outcome of one competitor's LP."""

    target: int
    status: LPStatus
    distance: float | None
    x: np.ndarray | None


class RegionLP:
    """The activation-region LP of ``x_0`` for every competing class, in one HiGHS model.

    Region rows added for one class stay in the model for the next (they are
    valid for every class), so later classes start with a good working set.

    Args:
        mlp: the network as dense layers.
        x_0: the reference input (flat).
        epsilon: radius of the L-inf ball searched.
        label: the label of ``x_0``.
        labeler: ``'argmax'`` or ``'argmin'``.
        rows_per_round: how many violated region rows are added per round.
        region_of: the point whose activation region is searched (default
            ``x_0``); distances are still measured from ``x_0``.
        domain: optional ``(lo, hi)`` valid-input box the search stays in.
    """

    def __init__(
        self,
        mlp: MLP,
        x_0: np.ndarray,
        epsilon: float,
        label: int,
        labeler: str = "argmax",
        rows_per_round: int = 64,
        region_of: np.ndarray | None = None,
        domain: tuple[float, float] | None = None,
    ) -> None:
        self.x_0 = np.asarray(x_0, dtype=np.float64)
        self.epsilon = float(epsilon)
        self.label = int(label)
        self.sign = 1.0 if labeler == "argmax" else -1.0
        self.rows_per_round = rows_per_round
        self.domain = (-INF, INF) if domain is None else domain
        _, self.scores = mlp_forward(mlp, self.x_0)
        point = self.x_0 if region_of is None else np.asarray(region_of, np.float64)
        pre_activations, _ = mlp_forward(mlp, point)
        self._region_rows(mlp, pre_activations)
        self._model = HighsModel(self._base_lp())
        self._in_model = np.zeros(self._G.shape[0], dtype=bool)
        self.rounds = 0

    @property
    def competitors(self) -> list[int]:
        return [j for j in range(self.scores.shape[0]) if j != self.label]

    def _region_rows(self, mlp: MLP, pre_activations: list[np.ndarray]) -> None:
        """Collapse the region: rows ``G x + g >= 0`` (unit L1 norm) and the output map."""
        n = self.x_0.shape[0]
        A, c = np.eye(n), np.zeros(n)
        rows, offsets = [], []
        for k, z in enumerate(pre_activations):
            A, c = mlp.weights[k] @ A, mlp.weights[k] @ c + mlp.biases[k]
            if mlp.activations[k] != "ReLU":
                continue
            active = z > 0
            sign = np.where(active, 1.0, -1.0)
            rows.append(sign[:, None] * A)
            offsets.append(sign * c)
            A, c = A * active[:, None], c * active
        self.A_out = mlp.weights[-1] @ A
        self.c_out = mlp.weights[-1] @ c + mlp.biases[-1]
        G = np.vstack(rows) if rows else np.zeros((0, n))
        g = np.concatenate(offsets) if offsets else np.zeros(0)
        norms = np.abs(G).sum(axis=1)
        keep = norms > 0  # constant units: their sign is fixed by x_0 itself
        self._G = G[keep] / norms[keep, None]
        self._g = g[keep] / norms[keep]

    def _base_lp(self) -> LinearProgram:
        """Distance rows ``x_i - t <= x0_i``, ``x_i + t >= x0_i`` and free class rows."""
        n = self.x_0.shape[0]
        x_part = sp.hstack([sp.identity(n), sp.csr_matrix((n, 1))])
        t_col = sp.hstack([sp.csr_matrix((n, n)), sp.csr_matrix(np.ones((n, 1)))])
        diff = self.sign * (self.A_out - self.A_out[self.label])
        self._gap_offset = self.sign * (self.c_out - self.c_out[self.label])
        class_rows = sp.hstack([sp.csr_matrix(diff), sp.csr_matrix((diff.shape[0], 1))])
        self._class_row0 = 2 * n
        m = diff.shape[0]
        cost = np.zeros(n + 1)
        cost[n] = 1.0
        return LinearProgram(
            cost,
            sp.vstack([x_part - t_col, x_part + t_col, class_rows], format="csc"),
            np.concatenate([np.full(n, -INF), self.x_0, np.full(m, -INF)]),
            np.concatenate([self.x_0, np.full(n, INF), np.full(m, INF)]),
            np.r_[np.maximum(self.x_0 - self.epsilon, self.domain[0]), 0.0],
            np.r_[np.minimum(self.x_0 + self.epsilon, self.domain[1]), INF],
        )

    def solve_class(
        self, target: int, margin: float = 0.0, budget: Budget | None = None
    ) -> RegionLPSolution:
        """Nearest point of the region where ``target`` beats the label by ``margin``.

        Args:
            target: the competing class.
            margin: required score gap past the decision boundary.
            budget: the time limit (``None``: none).
        """
        row = self._class_row0 + target
        n = self.x_0.shape[0]
        self._model.set_row_bounds([row], [-self._gap_offset[target] + margin], [INF])
        try:
            while True:
                solution = self._model.solve(budget)
                self.rounds += 1
                if solution.status is not LPStatus.OPTIMAL or solution.x is None:
                    return RegionLPSolution(target, solution.status, None, None)
                x = solution.x[:n]
                if not self._add_violated_rows(x):
                    return RegionLPSolution(target, solution.status, float(solution.objective), x)
        finally:
            self._model.set_row_bounds([row], [-INF], [INF])

    def _add_violated_rows(self, x: np.ndarray, tol: float = 1e-10) -> bool:
        """Add the most violated region rows at ``x``; False when ``x`` satisfies all."""
        slack = self._G @ x + self._g
        violated = np.flatnonzero((slack < -tol) & ~self._in_model)
        if violated.size == 0:
            return False
        worst = violated[np.argsort(slack[violated])[: self.rows_per_round]]
        self._in_model[worst] = True
        rows = sp.hstack([sp.csr_matrix(self._G[worst]), sp.csr_matrix((worst.size, 1))])
        self._model.add_rows(rows, -self._g[worst], np.full(worst.size, INF))
        return True

    def set_tolerance(self, tolerance: float) -> None:
        """Tighten HiGHS's primal/dual feasibility tolerances."""
        self._model.set_option("primal_feasibility_tolerance", tolerance)
        self._model.set_option("dual_feasibility_tolerance", tolerance)
