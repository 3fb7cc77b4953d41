"""The seed's activation-region LP: nearest adversarial point with x_0's ReLU phases fixed.

Inside the activation region of ``x_0`` (every ReLU kept in the phase it has at
``x_0``) a ReLU network is affine, so the nearest point of that region whose
label changes to class ``j`` solves an LP:

    min t  s.t.  |x - x_0|_inf <= t,  |x - x_0|_inf <= epsilon,
                 z_1 = W_1 x + b_1,  z_{k+1} = W_{k+1} D_k z_k + b_{k+1},
                 z_k >= 0 on active units,  z_k <= 0 on inactive ones,
                 y_j - y_l >= tau  (``y_l - y_j`` for argmin labelers),

where ``D_k`` is the diagonal 0/1 phase matrix and ``l`` the label of ``x_0``.
Pre-activations ``z_k`` are explicit variables, so the constraint matrix stays
as sparse as the weights; all competitor rows live in one model and are
switched on one at a time, so HiGHS re-solves each class from a warm basis.

The region is only part of the ball, so an infeasible LP proves nothing about
robustness: this is an upper-bound (attack) method, cf. the seed's caveat.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from verifiNN.models.network import MLP
from verifiNN.solvers.highs import INF, HighsModel, LinearProgram, LPSolution, LPStatus

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

    Args:
        mlp: the network as dense layers.
        x_0: the reference input (flat).
        epsilon: radius of the L-inf ball searched.
        label: the label of ``x_0``.
        labeler: ``'argmax'`` or ``'argmin'``.
    """

    def __init__(
        self, mlp: MLP, x_0: np.ndarray, epsilon: float, label: int, labeler: str = "argmax"
    ) -> None:
        self.mlp = mlp
        self.x_0 = np.asarray(x_0, dtype=np.float64)
        self.epsilon = float(epsilon)
        self.label = int(label)
        self.sign = 1.0 if labeler == "argmax" else -1.0
        pre_activations, self.scores = mlp_forward(mlp, self.x_0)
        self._build(pre_activations)
        self._model = HighsModel(self._lp)

    @property
    def competitors(self) -> list[int]:
        return [j for j in range(self.scores.shape[0]) if j != self.label]

    def _build(self, pre_activations: list[np.ndarray]) -> None:
        mlp, n_in = self.mlp, self.x_0.shape[0]
        widths = [z.shape[0] for z in pre_activations]
        # column layout: x | z_0 | z_1 | ... | t ; z_k occupies [starts[k], starts[k + 1])
        starts = np.cumsum([n_in, *widths]).tolist()
        self._t = starts[-1]
        num_cols = self._t + 1
        phases = [
            (z > 0).astype(np.float64) if mlp.activations[k] == "ReLU" else np.ones_like(z)
            for k, z in enumerate(pre_activations)
        ]

        blocks: list[sp.spmatrix] = []
        row_lower: list[np.ndarray] = []
        row_upper: list[np.ndarray] = []
        # layer equalities: z_k - W_k D_{k-1} z_{k-1} = b_k, with z_{-1} := x, D_{-1} := I
        for k, width in enumerate(widths):
            prev_start = 0 if k == 0 else starts[k - 1]
            w = mlp.weights[k] if k == 0 else mlp.weights[k] * phases[k - 1][None, :]
            blocks.append(
                _place(-w, width, num_cols, prev_start)
                + _place(sp.identity(width), width, num_cols, starts[k])
            )
            row_lower.append(mlp.biases[k])
            row_upper.append(mlp.biases[k])
        # distance rows: x_i - t <= x0_i and x_i + t >= x0_i
        x_part = _place(sp.identity(n_in), n_in, num_cols, 0)
        t_col = _place(np.ones((n_in, 1)), n_in, num_cols, self._t)
        blocks += [x_part - t_col, x_part + t_col]
        row_lower += [np.full(n_in, -INF), self.x_0]
        row_upper += [self.x_0, np.full(n_in, INF)]
        # competitor rows sign * (y_j - y_label) >= margin, free until switched on
        w_out = mlp.weights[-1] * phases[-1][None, :] if phases else mlp.weights[-1]
        diff = self.sign * (w_out - w_out[self.label][None, :])
        self._bias_gap = self.sign * (mlp.biases[-1] - mlp.biases[-1][self.label])
        self._class_row0 = sum(b.shape[0] for b in blocks)
        blocks.append(_place(diff, diff.shape[0], num_cols, starts[-2] if widths else 0))
        row_lower.append(np.full(diff.shape[0], -INF))
        row_upper.append(np.full(diff.shape[0], INF))

        col_lower = np.full(num_cols, -INF)
        col_upper = np.full(num_cols, INF)
        col_lower[:n_in] = self.x_0 - self.epsilon
        col_upper[:n_in] = self.x_0 + self.epsilon
        for k, phase in enumerate(phases):
            if mlp.activations[k] == "ReLU":
                active = phase > 0
                col_lower[starts[k] : starts[k + 1]] = np.where(active, 0.0, -INF)
                col_upper[starts[k] : starts[k + 1]] = np.where(active, INF, 0.0)
        col_lower[self._t] = 0.0
        cost = np.zeros(num_cols)
        cost[self._t] = 1.0
        self._lp = LinearProgram(
            cost,
            sp.vstack(blocks, format="csc"),
            np.concatenate(row_lower),
            np.concatenate(row_upper),
            col_lower,
            col_upper,
        )

    def solve_class(
        self, target: int, margin: float = 0.0, time_limit: float | None = None
    ) -> RegionLPSolution:
        """Nearest point of the region where ``target`` beats the label by ``margin``.

        Args:
            target: the competing class.
            margin: required score gap past the decision boundary.
            time_limit: seconds for the solve.
        """
        row = self._class_row0 + target
        self._model.set_row_bounds([row], [-self._bias_gap[target] + margin], [INF])
        try:
            solution: LPSolution = self._model.solve(time_limit)
        finally:
            self._model.set_row_bounds([row], [-INF], [INF])
        if solution.status is not LPStatus.OPTIMAL or solution.x is None:
            return RegionLPSolution(target, solution.status, None, None)
        x = solution.x[: self.x_0.shape[0]]
        return RegionLPSolution(target, solution.status, float(solution.objective), x)

    def set_tolerance(self, tolerance: float) -> None:
        """Tighten HiGHS's primal/dual feasibility tolerances."""
        self._model.set_option("primal_feasibility_tolerance", tolerance)
        self._model.set_option("dual_feasibility_tolerance", tolerance)


def _place(block: object, rows: int, cols: int, col_start: int) -> sp.csr_matrix:
    """``block`` placed at column ``col_start`` of a ``rows x cols`` sparse matrix."""
    coo = sp.coo_matrix(block)
    return sp.csr_matrix((coo.data, (coo.row, coo.col + col_start)), shape=(rows, cols))
