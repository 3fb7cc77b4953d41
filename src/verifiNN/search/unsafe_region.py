"""What linear bounds on a box say about the box's unsafe region.

CROWN gives, on a box ``[l, u]``, linear lower bounds ``C_i y >= a_i x + c_i``
of the property rows. A point of the box can violate a disjunct ``C_k y <= d_k``
only if ``g_i(x) = a_i x + c_i - d_i <= 0`` for every row ``i`` of that
disjunct. Two cheap consequences, both exact consequences of the bounds (they
never lose a counterexample):

* :func:`combine_conjunctions`: for any ``lambda >= 0`` a violating point has
  ``sum_i lambda_i g_i(x) <= 0``, so ``min_box sum_i lambda_i g_i > 0`` proves the
  disjunct empty on the box although no single row does (the Lagrangian dual
  of the conjunction; the row combination of Bunel et al. 2020, "Branch and
  Bound for Piecewise Linear Neural Network Verification", sec. 5). The
  weights are found by exponentiated-gradient ascent on the simplex
  (Kivinen and Warmuth 1997); any weights are sound, better ones only prove
  more.
* :func:`clip_to_unsafe`: the box is replaced by the smallest box holding its
  part of the polytope ``{g_i <= 0}``. For one constraint ``a x <= b`` that box
  is exact and cheap: along dimension ``j``,
  ``a_j x_j <= b - min_box sum_{k != j} a_k x_k``. Intersecting over a disjunct's
  rows and taking the hull over the open disjuncts keeps every possibly unsafe
  point (the "clip domains" step of input-splitting BaB in alpha-beta-CROWN;
  bound tightening by a linear constraint, Achterberg 2007, "Constraint
  Integer Programming", ch. 7).

Every limit is relaxed by ``1e-9`` of the magnitudes entering it, far above
the rounding of the float64 arithmetic, so clipping never cuts off a point
that exact arithmetic would keep.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["CombinedRows", "clip_to_unsafe", "combine_conjunctions"]

_RELATIVE_SLACK = 1e-9


@dataclass(frozen=True)
class CombinedRows:
    """One combined row per disjunct: ``sum_i lambda_i C_i y <= sum_i lambda_i d_i``.

    Attributes:
        A, c: ``(B, K, n)`` and ``(B, K)``: the combined linear lower bound.
        d: ``(B, K)`` the combined thresholds.
        lower: ``(B, K)`` the combination's lower bound on each box.
    """

    A: Tensor
    c: Tensor
    d: Tensor
    lower: Tensor


def _box_min(A: Tensor, lo: Tensor, up: Tensor) -> Tensor:
    """``min_{x in box} A x`` for ``A`` of shape ``(B, r, n)``: ``(B, r)``."""
    return (A.clamp(min=0) * lo.unsqueeze(1) + A.clamp(max=0) * up.unsqueeze(1)).sum(2)


def combine_conjunctions(
    lo: Tensor,
    up: Tensor,
    A: Tensor,
    c: Tensor,
    d: Tensor,
    owner: Tensor,
    num_disjuncts: int,
    steps: int = 20,
) -> CombinedRows:
    """The best found nonnegative combination of each disjunct's rows, per box.

    Args:
        lo, up: ``(B, n)`` boxes.
        A, c: ``(B, m, n)`` and ``(B, m)``: ``C y >= A x + c`` on each box.
        d: ``(m,)`` thresholds.
        owner: ``(m,)`` disjunct of each row.
        num_disjuncts: ``K``.
        steps: exponentiated-gradient steps on the weights.

    Returns:
        The combined rows, weights summing to one within each disjunct.
    """
    B, m = A.shape[:2]
    member = torch.zeros(m, num_disjuncts, dtype=A.dtype)
    member[torch.arange(m), owner] = 1.0
    gap = c - d.to(A.dtype)  # g_i(x) = a_i x + gap_i
    log_weights = torch.zeros(B, m, dtype=A.dtype)
    best_lower = torch.full((B, num_disjuncts), float("-inf"), dtype=A.dtype)
    best_weights = torch.zeros(B, m, dtype=A.dtype)
    for step in range(steps + 1):
        weights = torch.exp(log_weights - log_weights.amax(1, keepdim=True))
        weights = weights / (weights @ member @ member.T)  # sum to one per disjunct
        combined = torch.einsum("bm,bmn,mk->bkn", weights, A, member)
        corner = torch.where(combined > 0, lo.unsqueeze(1), up.unsqueeze(1))  # argmin, (B, K, n)
        row_at_corner = (A * corner[:, owner]).sum(2) + gap  # g_i at its disjunct's minimiser
        lower = (weights * row_at_corner) @ member
        better = lower > best_lower
        best_lower = torch.where(better, lower, best_lower)
        best_weights = torch.where(better[:, owner], weights, best_weights)
        if step == steps:
            break
        scale = row_at_corner.abs().amax(1, keepdim=True).clamp(min=1e-12)
        log_weights = log_weights + 2.0 * row_at_corner / scale  # supergradient ascent
    combined_A = torch.einsum("bm,bmn,mk->bkn", best_weights, A, member)
    combined_c = (best_weights * c) @ member
    combined_d = (best_weights * d.to(A.dtype)) @ member
    lower = _box_min(combined_A, lo, up) + combined_c
    return CombinedRows(combined_A, combined_c, combined_d, lower)


def clip_to_unsafe(
    lo: Tensor,
    up: Tensor,
    A: Tensor,
    c: Tensor,
    d: Tensor,
    owner: Tensor,
    open_disjuncts: Tensor,
) -> tuple[Tensor, Tensor, Tensor]:
    """The boxes shrunk to their possibly unsafe part.

    Args:
        lo, up: ``(B, n)`` boxes.
        A, c: ``(B, m, n)`` and ``(B, m)``: ``C y >= A x + c`` on each box.
        d: ``(m,)`` or ``(B, m)`` thresholds: the unsafe region of disjunct
            ``k`` is ``C_i y <= d_i`` for all rows ``i`` with ``owner[i] == k``.
        owner: ``(m,)`` disjunct of each row.
        open_disjuncts: ``(B, K)`` disjuncts not yet proved on each box.

    Returns:
        ``(lo, up, open)``: the clipped boxes and the disjuncts still open;
        a box with no open disjunct holds no counterexample.
    """
    B, m, n = A.shape
    K = open_disjuncts.shape[1]
    b = d.to(A.dtype) - c
    low_part = A.clamp(min=0) * lo.unsqueeze(1) + A.clamp(max=0) * up.unsqueeze(1)
    others = low_part.sum(2, keepdim=True) - low_part  # min of sum_{k != j} a_k x_k
    magnitude = (A.abs() * torch.maximum(lo.abs(), up.abs()).unsqueeze(1)).sum(2) + b.abs()
    limit = (b + _RELATIVE_SLACK * (1.0 + magnitude)).unsqueeze(2) - others
    ratio = limit / torch.where(A == 0, torch.ones_like(A), A)
    inf = torch.full_like(A, float("inf"))
    row_up = torch.where(A > 0, ratio, inf)
    row_lo = torch.where(A < 0, ratio, -inf)

    index = owner.view(1, m, 1).expand(B, m, n)
    disj_up = torch.full((B, K, n), float("inf"), dtype=A.dtype).scatter_reduce(
        1, index, row_up, "amin"
    )
    disj_lo = torch.full((B, K, n), float("-inf"), dtype=A.dtype).scatter_reduce(
        1, index, row_lo, "amax"
    )
    disj_up = torch.minimum(disj_up, up.unsqueeze(1))
    disj_lo = torch.maximum(disj_lo, lo.unsqueeze(1))
    still_open = open_disjuncts & (disj_lo <= disj_up).all(dim=2)

    closed = ~still_open.unsqueeze(2)
    hull_lo = disj_lo.masked_fill(closed, float("inf")).amin(dim=1)
    hull_up = disj_up.masked_fill(closed, float("-inf")).amax(dim=1)
    none_open = ~still_open.any(dim=1, keepdim=True)
    hull_lo = torch.where(none_open, lo, hull_lo)
    hull_up = torch.where(none_open, up, hull_up)
    return hull_lo, hull_up, still_open
