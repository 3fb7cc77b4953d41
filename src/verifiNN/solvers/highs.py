"""HiGHS back-end for linear and mixed-integer programs.

Every LP and MILP of verifiNN is written as a :class:`LinearProgram` in
standard HiGHS form (``min c^T x`` s.t. ``row_lower <= A x <= row_upper``,
``col_lower <= x <= col_upper``, some columns integer) with a SciPy sparse
constraint matrix, and solved by :class:`HighsModel`. No other module calls
HiGHS.

References:
    Huangfu and Hall, "Parallelizing the dual revised simplex method",
    Mathematical Programming Computation 10 (2018) -- the HiGHS LP solver.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum

import highspy
import numpy as np
import scipy.sparse as sp

from verifiNN._stdio import descriptor_1_to
from verifiNN.budget import Budget
from verifiNN.errors import SolverError

__all__ = [
    "INF",
    "HighsModel",
    "LPSolution",
    "LPStatus",
    "LinearProgram",
    "MipSolution",
    "dual_bound",
]

INF = float("inf")

_BANNER_LOCK = threading.Lock()
_banner_done = False


class LPStatus(str, Enum):
    """Solver outcome, reduced to what callers act upon."""

    OPTIMAL = "optimal"
    INFEASIBLE = "infeasible"
    UNBOUNDED = "unbounded"
    TIME_LIMIT = "time_limit"
    INTERRUPTED = "interrupted"
    OTHER = "other"


@dataclass
class LinearProgram:
    """``min cost @ x`` s.t. ``row_lower <= A @ x <= row_upper``, ``col_lower <= x <= col_upper``.

    Attributes:
        integrality: optional boolean mask of integer columns (a MILP).
    """

    cost: np.ndarray
    A: sp.spmatrix
    row_lower: np.ndarray
    row_upper: np.ndarray
    col_lower: np.ndarray
    col_upper: np.ndarray
    integrality: np.ndarray | None = None

    @property
    def num_cols(self) -> int:
        return int(self.cost.shape[0])

    @property
    def num_rows(self) -> int:
        return int(self.A.shape[0])


@dataclass
class LPSolution:
    """A solve's outcome; ``x``/``objective`` are set when a solution exists."""

    status: LPStatus
    x: np.ndarray | None
    objective: float | None
    row_duals: np.ndarray | None = None
    col_duals: np.ndarray | None = None
    raw_status: str = ""


@dataclass
class MipSolution:
    """A MILP solve's outcome.

    Attributes:
        status: the solver outcome (``INTERRUPTED`` when a stop rule fired).
        x: the incumbent (best integer-feasible point found), or ``None``.
        objective: the incumbent's objective (the primal bound), or ``None``.
        dual_bound: HiGHS's lower bound on the optimum (``-inf`` when unknown);
            accurate only to the solver's tolerances.
        nodes: branch-and-bound nodes explored.
        raw_status: HiGHS's status text.
    """

    status: LPStatus
    x: np.ndarray | None
    objective: float | None
    dual_bound: float
    nodes: int
    raw_status: str = ""


_STATUS = {
    highspy.HighsModelStatus.kOptimal: LPStatus.OPTIMAL,
    highspy.HighsModelStatus.kInfeasible: LPStatus.INFEASIBLE,
    highspy.HighsModelStatus.kUnbounded: LPStatus.UNBOUNDED,
    highspy.HighsModelStatus.kUnboundedOrInfeasible: LPStatus.INFEASIBLE,
    highspy.HighsModelStatus.kTimeLimit: LPStatus.TIME_LIMIT,
    highspy.HighsModelStatus.kInterrupt: LPStatus.INTERRUPTED,
}


def _new_highs() -> highspy.Highs:
    """A silent ``Highs`` instance.

    HiGHS prints a banner on C-level stdout the first time a solver is created
    in a process, whatever its options; it would corrupt machine-read output
    (``verifinn verify`` prints the verdict as its first line), so the first
    construction runs with file descriptor 1 pointed at ``/dev/null``.
    """
    global _banner_done
    with _BANNER_LOCK:
        if _banner_done:
            highs = highspy.Highs()
        else:
            with _stdout_to_devnull():
                highs = highspy.Highs()
            _banner_done = True
    highs.setOptionValue("output_flag", False)
    return highs


@contextlib.contextmanager
def _stdout_to_devnull() -> Iterator[None]:
    """Point descriptor 1 (C-level stdout, whatever ``sys.stdout`` is: the CLI
    points ``sys.stdout`` at stderr) at ``/dev/null`` for a while."""
    with open(os.devnull, "w") as devnull, descriptor_1_to(devnull.fileno()):
        yield


class HighsModel:
    """A :class:`LinearProgram` loaded into HiGHS, ready to be solved and modified.

    Modifications (row bounds, costs) keep the solver's basis, so a sequence of
    related LPs is solved by warm-started dual simplex.

    Args:
        lp: the program.
        threads: HiGHS threads (1 keeps parallel workers from oversubscribing).
    """

    def __init__(self, lp: LinearProgram, threads: int = 1) -> None:
        self.lp = lp
        self._highs = _new_highs()
        self._highs.setOptionValue("threads", int(threads))
        model = highspy.HighsLp()
        model.num_col_ = lp.num_cols
        model.num_row_ = lp.num_rows
        model.col_cost_ = np.asarray(lp.cost, dtype=np.float64)
        model.col_lower_ = np.asarray(lp.col_lower, dtype=np.float64)
        model.col_upper_ = np.asarray(lp.col_upper, dtype=np.float64)
        model.row_lower_ = np.asarray(lp.row_lower, dtype=np.float64)
        model.row_upper_ = np.asarray(lp.row_upper, dtype=np.float64)
        matrix = sp.csc_matrix(lp.A, dtype=np.float64)
        matrix.sort_indices()
        model.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        model.a_matrix_.start_ = matrix.indptr.astype(np.int32)
        model.a_matrix_.index_ = matrix.indices.astype(np.int32)
        model.a_matrix_.value_ = matrix.data
        if lp.integrality is not None and np.any(lp.integrality):
            model.integrality_ = [
                highspy.HighsVarType.kInteger if flag else highspy.HighsVarType.kContinuous
                for flag in lp.integrality
            ]
        status = self._highs.passModel(model)
        if status == highspy.HighsStatus.kError:
            raise SolverError("HiGHS rejected the model (passModel failed)")

    def set_option(self, name: str, value: object) -> None:
        """Set a HiGHS option (e.g. ``'primal_feasibility_tolerance'``)."""
        self._highs.setOptionValue(name, value)

    def set_row_bounds(self, rows: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> None:
        """Change the bounds of ``rows`` (warm start is kept)."""
        rows = np.asarray(rows, dtype=np.int32)
        self._highs.changeRowsBounds(
            len(rows), rows, np.asarray(lower, np.float64), np.asarray(upper, np.float64)
        )

    def set_col_bounds(self, cols: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> None:
        """Change the bounds of ``cols`` (warm start is kept)."""
        cols = np.asarray(cols, dtype=np.int32)
        self._highs.changeColsBounds(
            len(cols), cols, np.asarray(lower, np.float64), np.asarray(upper, np.float64)
        )

    def set_costs(self, cols: np.ndarray, costs: np.ndarray) -> None:
        """Change objective coefficients of ``cols``."""
        cols = np.asarray(cols, dtype=np.int32)
        self._highs.changeColsCost(len(cols), cols, np.asarray(costs, np.float64))

    def add_rows(self, A: sp.spmatrix, lower: np.ndarray, upper: np.ndarray) -> None:
        """Append rows ``lower <= A x <= upper`` (the current basis is kept for a warm start)."""
        matrix = sp.csr_matrix(A, dtype=np.float64)
        matrix.sort_indices()
        status = self._highs.addRows(
            matrix.shape[0],
            np.asarray(lower, np.float64),
            np.asarray(upper, np.float64),
            matrix.nnz,
            matrix.indptr.astype(np.int32),
            matrix.indices.astype(np.int32),
            matrix.data,
        )
        if status == highspy.HighsStatus.kError:
            raise SolverError("HiGHS rejected the added rows")

    def dual_ray(self) -> np.ndarray | None:
        """After an infeasible :meth:`solve`: HiGHS's Farkas row multipliers, if it has them.

        The sign convention is HiGHS's; callers verify a ray (e.g. with
        :func:`dual_bound` on a zero cost) before trusting it.
        """
        status, exists, values = self._highs.getDualRay()
        if status != highspy.HighsStatus.kOk or not exists or values is None or len(values) == 0:
            return None
        return np.asarray(values, dtype=np.float64)

    @property
    def num_rows(self) -> int:
        """Current number of rows in the solver's model."""
        return int(self._highs.getNumRow())

    def solve(self, budget: Budget | None = None) -> LPSolution:
        """Solve the current model.

        Args:
            budget: the time limit (``None``: none).

        Returns:
            The status, and the primal point/objective/duals when optimal.
        """
        self._highs.setOptionValue("time_limit", _seconds(budget))
        self._highs.run()
        raw = self._highs.getModelStatus()
        status = _STATUS.get(raw, LPStatus.OTHER)
        if status is not LPStatus.OPTIMAL:
            return LPSolution(status, None, None, raw_status=self._highs.modelStatusToString(raw))
        solution = self._highs.getSolution()
        return LPSolution(
            status,
            np.array(solution.col_value),
            float(self._highs.getInfo().objective_function_value),
            row_duals=np.array(solution.row_dual) if solution.dual_valid else None,
            col_duals=np.array(solution.col_dual) if solution.dual_valid else None,
            raw_status=self._highs.modelStatusToString(raw),
        )

    def solve_mip(
        self,
        budget: Budget | None = None,
        *,
        cutoff: float | None = None,
        stop_at_objective: float | None = None,
        stop_at_bound: float | None = None,
        rel_gap: float | None = None,
        abs_gap: float | None = None,
    ) -> MipSolution:
        """Solve the model as a MILP (minimisation) with optional early stops.

        Args:
            budget: the time limit (``None``: none).
            cutoff: HiGHS's ``objective_bound``: nodes whose bound exceeds it are
                pruned. A run that ends with no incumbent at or below ``cutoff``
                has shown (to the solver's tolerances) that none exists; HiGHS may
                still report a worse incumbent and call it optimal.
            stop_at_objective: interrupt once an incumbent has objective ``<=`` this.
            stop_at_bound: interrupt once the dual bound is ``>`` this.
            rel_gap: ``mip_rel_gap`` (HiGHS default ``1e-4``).
            abs_gap: ``mip_abs_gap`` (HiGHS default ``1e-6``).

        Returns:
            The status, the incumbent (if any), its objective and the dual bound.
        """
        highs = self._highs
        highs.setOptionValue("time_limit", _seconds(budget))
        highs.setOptionValue("objective_bound", INF if cutoff is None else float(cutoff))
        for name, value in (("mip_rel_gap", rel_gap), ("mip_abs_gap", abs_gap)):
            if value is not None:
                highs.setOptionValue(name, float(value))
        stops = stop_at_objective is not None or stop_at_bound is not None
        if stops:
            low = -INF if stop_at_objective is None else stop_at_objective
            high = INF if stop_at_bound is None else stop_at_bound

            def interrupt(kind, message, data_out, data_in, user_data) -> None:
                if data_out.mip_primal_bound <= low or data_out.mip_dual_bound > high:
                    data_in.user_interrupt = True

            highs.setCallback(interrupt, None)
            highs.startCallback(highspy.cb.HighsCallbackType.kCallbackMipInterrupt)
        try:
            highs.run()
        finally:
            if stops:
                highs.stopCallback(highspy.cb.HighsCallbackType.kCallbackMipInterrupt)
        raw = highs.getModelStatus()
        info = highs.getInfo()
        solution = highs.getSolution()
        has_x = bool(solution.value_valid) and info.primal_solution_status >= 2
        bound = float(info.mip_dual_bound)
        return MipSolution(
            _STATUS.get(raw, LPStatus.OTHER),
            np.array(solution.col_value) if has_x else None,
            float(info.objective_function_value) if has_x else None,
            bound if np.isfinite(bound) or bound > 0 else -INF,
            int(info.mip_node_count),
            highs.modelStatusToString(raw),
        )


def _seconds(budget: Budget | None) -> float:
    """HiGHS's ``time_limit`` option for ``budget`` (``inf`` when unlimited)."""
    return INF if budget is None or not budget.limited else budget.remaining()


def dual_bound(lp: LinearProgram, cost: np.ndarray, row_dual: np.ndarray) -> float:
    """Weak-duality lower bound of ``min cost^T x`` over ``lp`` from row multipliers ``y``.

    Any ``y`` is dual feasible once the box of every column is kept: the
    Lagrangian ``min_{x in col box, w in row box} c^T x - y^T (A x - w)`` equals
    ``sum_i min(y_i rl_i, y_i ru_i) + sum_j min(r_j cl_j, r_j cu_j)`` with
    ``r = c - A^T y``, a valid lower bound of the LP whatever the solver's
    tolerances (up to the rounding of this explicit evaluation). Multipliers
    whose required row bound is infinite are set to zero first.

    Returns:
        The bound (``-inf`` when it is not finite).
    """
    y = np.array(row_dual, dtype=np.float64)
    y[(y > 0) & ~np.isfinite(lp.row_lower)] = 0.0
    y[(y < 0) & ~np.isfinite(lp.row_upper)] = 0.0
    reduced = cost - lp.A.T @ y
    with np.errstate(invalid="ignore"):
        rows = np.where(y > 0, y * lp.row_lower, np.where(y < 0, y * lp.row_upper, 0.0))
        cols = np.where(
            reduced > 0,
            reduced * lp.col_lower,
            np.where(reduced < 0, reduced * lp.col_upper, 0.0),
        )
    total = float(rows.sum() + cols.sum())
    return total if np.isfinite(total) else -INF
