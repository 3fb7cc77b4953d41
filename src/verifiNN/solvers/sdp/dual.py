"""A rigorous lower bound of an SDP's optimum from any row multipliers.

Interior-point (Clarabel) and first-order (SCS) solvers stop at a tolerance:
their primal or dual objective is not a proof. Following Jansson, Chaykin and
Keil 2007 ("Rigorous error bounds for the optimal value in semidefinite
programming"), the bound is recomputed here from the row multipliers ``y`` alone
by weak duality, whatever their accuracy or sign convention.

For ``min <C, P>`` over block-diagonal ``P >= 0`` with ``lower <= A p <= upper``
and ``trace P_k <= T_k`` on the feasible set, the Lagrangian gives, for any ``y``
and every feasible ``P``,

``<C, P> = sum_i y_i (A p)_i + sum_k <S_k, P_k>`` with ``S_k = sym(C_k - (A^T y)_k)``,

``sum_i y_i (A p)_i >= sum_i min(y_i lower_i, y_i upper_i)`` (a multiplier whose
needed bound is infinite is set to zero first), and
``<S_k, P_k> >= min(lambda_min(S_k), 0) T_k`` as well as ``>= -d^T |S_k^-| d``
(``S_k^-`` the negative part of ``S_k``, ``d_a = sqrt(max(l_a^2, u_a^2))`` bounding
``sqrt(P_aa)``, because ``|P_ab| <= sqrt(P_aa P_bb)`` for ``P >= 0``); the larger
of the two is used. A solver's inexactness thus only costs the negative
eigenvalues of ``S`` times the size of the feasible set; it never makes the
bound wrong.

Floating point: ``S``, the eigenvalues and the sums are computed in float64
without directed rounding. Their error is bounded a priori and subtracted
(forming ``S``: ``gamma_{q+1} (|C| + |A|^T |y|)`` elementwise with ``q`` the
largest number of terms of an entry; the symmetric eigensolver's backward error:
``m * eps * ||S||_F`` per eigenvalue, taken 16 times over; the sums:
``gamma_n`` of the sum of absolute terms), so the returned value is a lower
bound of the relaxation's optimum up to these standard error models.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from verifiNN.solvers.sdp.formulation import SDPData

__all__ = ["sound_bound"]

_EPS = np.finfo(np.float64).eps


def _gamma(n: int) -> float:
    return n * _EPS / (1 - n * _EPS)


def sound_bound(data: SDPData, y: np.ndarray) -> float:
    """Rigorous lower bound of ``min c^T p + constant`` from row multipliers ``y``.

    Args:
        data: the SDP.
        y: ``(rows,)`` multipliers (any values; NaN counts as zero).

    Returns:
        The bound (``-inf`` when it is not finite).
    """
    y = np.nan_to_num(np.asarray(y, np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    y = np.where((y > 0) & ~np.isfinite(data.lower), 0.0, y)
    y = np.where((y < 0) & ~np.isfinite(data.upper), 0.0, y)
    with np.errstate(invalid="ignore"):
        terms = np.where(y > 0, y * data.lower, np.where(y < 0, y * data.upper, 0.0))
    rows = float(terms.sum())
    error = _gamma(terms.size + 1) * float(np.abs(terms).sum())
    A = sp.csc_matrix(data.A)
    slack = data.cost - A.T @ y
    magnitude = np.abs(data.cost) + abs(A).T @ np.abs(y)
    per_entry = np.diff(A.indptr) + 1
    slack_error = _gamma(int(per_entry.max(initial=1)) + 1) * magnitude
    total = rows + data.constant
    for k, (m, off) in enumerate(zip(data.sizes, data.offsets)):
        S = slack[off : off + m * m].reshape(m, m)
        S = 0.5 * (S + S.T)
        E = slack_error[off : off + m * m].reshape(m, m)
        perturbation = float(np.linalg.norm(0.5 * (E + E.T)))  # ||error of S||_2 <= ||.||_F
        values, vectors = np.linalg.eigh(S)
        perturbation += 16.0 * m * _EPS * float(np.linalg.norm(S))
        shift = values - perturbation
        negative = np.minimum(shift, 0.0)
        by_trace = float(negative.min(initial=0.0)) * float(data.trace_bound[k])
        d = np.sqrt(data.diag_bound[k])
        neg_part = (vectors * (-negative)) @ vectors.T
        by_diag = -float(d @ np.abs(neg_part) @ d) * (1 + _gamma(2 * m + 2))
        best = max(by_trace, by_diag)
        total += best
        error += _gamma(len(data.sizes) + 2) * abs(best)
    total -= error + _gamma(4) * abs(total)
    return total if np.isfinite(total) else -np.inf
