"""Solve an :class:`~verifiNN.solvers.sdp.formulation.SDPData` with cvxpy: its row multipliers.

The program is modelled in cvxpy (one ``PSD=True`` matrix variable per block,
the rows as sparse matrix constraints on their stacked entries) and handed to
Clarabel (interior point, accurate; its KKT system holds a dense block per PSD
cone, of order ``m (m + 1) / 2``, so it suits blocks up to ~80), SCS (first
order, for larger blocks) or MOSEK when installed. Only the multipliers are
used: the bound itself is recomputed by :func:`verifiNN.solvers.sdp.dual.sound_bound`.
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass

import numpy as np

from verifiNN.budget import Budget
from verifiNN.errors import InvalidInputError
from verifiNN.solvers.sdp.formulation import SDPData

__all__ = ["SOLVERS", "SolveResult", "pick_solver", "solve_sdp"]

logger = logging.getLogger(__name__)

SOLVERS = ("auto", "clarabel", "scs", "mosek")
"""``'auto'``: MOSEK when installed, else Clarabel for blocks up to
:data:`CLARABEL_MAX_BLOCK`, else SCS."""

CLARABEL_MAX_BLOCK = 90
"""Largest block order ``'auto'`` gives Clarabel (its dense KKT block grows as ``m^4``)."""


@dataclass(frozen=True)
class SolveResult:
    """Row multipliers and the solver's report.

    Attributes:
        y: ``(rows,)`` multipliers (Lagrangian ``c^T p - y^T (A p - w)``), or ``None``.
        status: cvxpy's status string.
        value: the solver's objective value (not a proof).
        solver: the solver used.
        seconds: wall time of the solve (modelling included).
    """

    y: np.ndarray | None
    status: str
    value: float
    solver: str
    seconds: float


def pick_solver(data: SDPData, solver: str = "auto") -> str:
    """The cvxpy solver name for ``solver`` on ``data``."""
    if solver not in SOLVERS:
        raise InvalidInputError(f"unknown SDP solver {solver!r}: expected one of {SOLVERS}")
    if solver != "auto":
        return solver.upper()
    import cvxpy as cp  # heavy (about 1 s): loaded on the first SDP only

    if "MOSEK" in cp.installed_solvers():
        return "MOSEK"
    return "CLARABEL" if max(data.sizes) <= CLARABEL_MAX_BLOCK else "SCS"


#: Seconds of cvxpy compilation and solver set-up (SCS's factorisation) per PSD
#: matrix entry and constraint non-zero: neither can be interrupted, so a solve
#: whose estimate exceeds the time left is not started. Measured 2.5e-6 to
#: 6.5e-6 on MNIST MLPs, the digits CNN and ACAS Xu (2-core CPU); rounded up.
SETUP_SECONDS_PER_ENTRY = 1e-5


def setup_seconds(data: SDPData) -> float:
    """Pessimistic estimate of the uninterruptible set-up time of :func:`solve_sdp`."""
    entries = sum(int(m) * int(m) for m in data.sizes) + int(data.A.nnz)
    return SETUP_SECONDS_PER_ENTRY * entries


def _solver_options(name: str, time_limit: float | None, accuracy: float) -> dict:
    if name == "SCS":
        opts = {"eps_abs": accuracy, "eps_rel": accuracy, "max_iters": 20000}
        if time_limit is not None:
            opts["time_limit_secs"] = float(time_limit)
        return opts
    if name == "CLARABEL":
        opts = {"tol_gap_abs": accuracy, "tol_gap_rel": accuracy, "tol_feas": accuracy}
        if time_limit is not None:
            opts["time_limit"] = float(time_limit)
        return opts
    return {}


def solve_sdp(
    data: SDPData, solver: str = "auto", budget: Budget | None = None, accuracy: float = 1e-8
) -> SolveResult:
    """Solve the SDP; its multipliers feed :func:`~verifiNN.solvers.sdp.dual.sound_bound`.

    Args:
        data: the program.
        solver: one of :data:`SOLVERS`.
        budget: the solver's time limit (``None``: none); the set-up is not
            interruptible (see :func:`setup_seconds`).
        accuracy: the solver's tolerances (SCS: at least ``1e-5`` is sensible).

    Returns:
        A :class:`SolveResult`; ``y`` is ``None`` when the solver gave no multipliers.
    """
    import cvxpy as cp  # heavy (about 1 s): loaded on the first SDP only

    start = time.perf_counter()
    name = pick_solver(data, solver)
    time_limit = None if budget is None or not budget.limited else budget.remaining()
    blocks = [cp.Variable((m, m), PSD=True) for m in data.sizes]
    p = cp.hstack([cp.vec(P, order="C") for P in blocks]) if len(blocks) > 1 else None
    p = p if p is not None else cp.vec(blocks[0], order="C")
    equal = data.lower == data.upper
    has_lower = ~equal & np.isfinite(data.lower)
    has_upper = ~equal & np.isfinite(data.upper)
    constraints, parts = [], []
    for mask, kind in ((equal, "eq"), (has_lower, "lo"), (has_upper, "up")):
        idx = np.flatnonzero(mask)
        if not idx.size:
            continue
        expr = data.A[idx] @ p
        if kind == "eq":
            constraints.append(expr == data.lower[idx])
        elif kind == "lo":
            constraints.append(expr >= data.lower[idx])
        else:
            constraints.append(expr <= data.upper[idx])
        parts.append((idx, kind))
    problem = cp.Problem(cp.Minimize(data.cost @ p), constraints)
    options = _solver_options(name, time_limit, accuracy if name != "SCS" else max(accuracy, 1e-6))
    try:
        with warnings.catch_warnings():  # "inaccurate" only costs tightness: see sound_bound
            warnings.simplefilter("ignore", UserWarning)
            problem.solve(solver=name, **options)
    except cp.error.SolverError as exc:
        logger.warning("SDP solver %s failed: %s", name, exc)
        return SolveResult(None, "solver_error", np.nan, name, time.perf_counter() - start)
    y = np.zeros(data.A.shape[0])
    got = False
    for (idx, kind), con in zip(parts, constraints):
        dual = con.dual_value
        if dual is None:
            continue
        got = True
        dual = np.asarray(dual, np.float64).ravel()
        # cvxpy: L = f + dual (lhs - rhs) for ==; dual >= 0 on g <= 0 forms.
        y[idx] += {"eq": -dual, "lo": dual, "up": -dual}[kind]
    value = float(problem.value) if problem.value is not None else np.nan
    return SolveResult(y if got else None, str(problem.status), value + data.constant, name,
                       time.perf_counter() - start)  # fmt: skip
