"""Piecewise-constant ops: the Heaviside steps and truncation (:mod:`verifiNN.ops.integer`).

Both are non-decreasing, so their interval is their value at the ends. Their
linear bounds are supporting lines of the convex hull of their graph over
``[l, u]``, one free parameter ``alpha`` in ``[0, 1]`` per side (alpha-CROWN
optimises it, as for the ReLU's lower line of Zhang et al. 2018, CROWN, and
Xu et al. 2021, "Fast and Complete: Enabling Complete Neural Network
Verification with Rapid and Massively Parallel Incomplete Verifiers"):

* Step (``1[x > 0]`` strict, ``1[x >= 0]`` not strict). Where the interval is
  on one side of the jump (strict: ``u <= 0`` or ``l > 0``; not strict:
  ``u < 0`` or ``l >= 0``) the step is a constant. Across the jump
  (``l <= 0 <= u``) its hull has the corners ``(l, 0)``, ``(0, 0)`` or
  ``(0, 1)`` and ``(u, 1)``; every line ``s x`` with ``0 <= s <= 1 / u`` is
  below it (it is at most 0 for ``x <= 0`` and at most 1 up to ``u``) and
  every line ``1 + s x`` with ``0 <= s <= 1 / -l`` above it (at least 0 from
  ``l``, at least 1 for ``x >= 0``): ``s = alpha / u`` and ``s = alpha / -l``
  (slope 0 where the bound is 0). The slopes are shrunk by a few ulps so the
  lines stay valid in exact arithmetic for the rounded coefficients. The
  default ``alpha`` minimises the area between line and function: the lower
  line is steep iff ``u > -l``, the upper one iff ``-l > u``. The split point
  is 0.
* Trunc (rounding toward zero). Constant where ``trunc(l) = trunc(u)``.
  Otherwise, as ``|x - trunc(x)| < 1`` with ``trunc(x) <= x`` for ``x >= 0``
  and ``trunc(x) >= x`` for ``x <= 0``, the lines ``x - 1`` (or ``x`` when
  ``u <= 0``) below and ``x + 1`` (or ``x`` when ``l >= 0``) above hold on
  ``[l, u]``, as do the constants ``trunc(l)`` and ``trunc(u)``; the bounds
  are the convex combinations ``alpha line + (1 - alpha) constant`` (a convex
  combination of two valid bounds is valid). Default: the line where the
  interval is wider than 1. Truncation jumps at every nonzero integer, so it
  has no finite list of split points: branch and bound may split it anywhere.
"""

from __future__ import annotations

import torch
from torch import Tensor

from verifiNN.bounds.relaxations.base import (
    NO_ALPHA,
    Alpha,
    LinearBounds,
    Relaxation,
    alpha_or,
    elementwise_backward,
    monotone_interval,
    safe_divide,
    widen,
)
from verifiNN.ops import Op, Step, Trunc

__all__ = ["INTEGER_RELAXATIONS"]

SLOPE_SHRINK_ULPS = 4
"""Ulps by which a step's slopes are shrunk (their lines then hold for the rounded slope)."""


# --------------------------------------------------------------------- Step
def _step_regimes(op: Step, lower: Tensor, upper: Tensor) -> tuple[Tensor, Tensor]:
    """``(constant 0, constant 1)`` masks; neither: the interval crosses the jump."""
    if op.strict:
        return upper <= 0, lower > 0
    return upper < 0, lower >= 0


def _step_crossing(op: Step, lower: Tensor, upper: Tensor) -> Tensor:
    zero, one = _step_regimes(op, lower, upper)
    return ~(zero | one)


def _step_relax(op: Step, lower: Tensor, upper: Tensor, alpha: Alpha = NO_ALPHA) -> LinearBounds:
    default = _step_alpha(op, lower, upper, True)
    al, au = alpha_or(alpha, 0, default[0]), alpha_or(alpha, 1, default[1])
    zero_part, one_part = _step_regimes(op, lower, upper)
    crossing = ~(zero_part | one_part)
    shrink = 1.0 - SLOPE_SHRINK_ULPS * torch.finfo(lower.dtype).eps
    one = torch.ones_like(lower)
    low_slope = al * safe_divide(one, upper.clamp(min=0)) * shrink
    high_slope = au * safe_divide(one, (-lower).clamp(min=0)) * shrink
    value = one_part.to(lower.dtype)  # the constant where the interval misses the jump
    lw = torch.where(crossing, low_slope, torch.zeros_like(lower))
    uw = torch.where(crossing, high_slope, torch.zeros_like(lower))
    lb = torch.where(crossing, torch.zeros_like(lower), value)
    ub = torch.where(crossing, one, value)
    return LinearBounds(lw, lb, uw, ub)


def _step_alpha(op: Step, lower: Tensor, upper: Tensor, adaptive: bool) -> Alpha:
    """Area-minimising slopes across the jump: the lower line is steep iff ``u > -l``."""
    crossing = _step_crossing(op, lower, upper)
    ones = torch.ones_like(lower)
    steep_low = torch.where(crossing, (upper > -lower).to(lower.dtype), ones)
    steep_high = torch.where(crossing, (-lower > upper).to(lower.dtype), ones)
    return steep_low, steep_high


def _at_zero(op: Op) -> tuple[float, ...]:
    return (0.0,)


# -------------------------------------------------------------------- Trunc
def _trunc_varies(op: Trunc, lower: Tensor, upper: Tensor) -> Tensor:
    return torch.trunc(lower) != torch.trunc(upper)


def _trunc_relax(op: Trunc, lower: Tensor, upper: Tensor, alpha: Alpha = NO_ALPHA) -> LinearBounds:
    default = _trunc_alpha(op, lower, upper, True)
    al, au = alpha_or(alpha, 0, default[0]), alpha_or(alpha, 1, default[1])
    low_const, high_const = torch.trunc(lower), torch.trunc(upper)
    varies = low_const != high_const
    al = torch.where(torch.isfinite(lower), al, 1.0)  # no constant below an unbounded end
    au = torch.where(torch.isfinite(upper), au, 1.0)
    # the lines: x - 1 (x when u <= 0) below, x + 1 (x when l >= 0) above
    below = torch.where(upper > 0, -1.0, 0.0).to(lower.dtype)
    above = torch.where(lower < 0, 1.0, 0.0).to(lower.dtype)
    zero = torch.zeros_like(lower)
    lw = torch.where(varies, al * torch.ones_like(lower), zero)
    uw = torch.where(varies, au * torch.ones_like(lower), zero)
    low_part = torch.where(al < 1, (1 - al) * low_const, zero)  # never 0 * inf
    high_part = torch.where(au < 1, (1 - au) * high_const, zero)
    lb = torch.where(varies, al * below + low_part, low_const)
    ub = torch.where(varies, au * above + high_part, high_const)
    scale = low_const.abs() + high_const.abs()
    lb = torch.where(varies, widen(lw, lb, lower, upper, scale, upward=False), lb)
    ub = torch.where(varies, widen(uw, ub, lower, upper, scale, upward=True), ub)
    return LinearBounds(lw, lb, uw, ub)


def _trunc_alpha(op: Trunc, lower: Tensor, upper: Tensor, adaptive: bool) -> Alpha:
    """The line on intervals wider than 1, the constant on narrower ones."""
    wide = (upper - lower > 1).to(lower.dtype)
    return wide, wide.clone()


def _no_finite_points(op: Op) -> tuple[float, ...]:
    return ()


# ----------------------------------------------------------------- registry
INTEGER_RELAXATIONS: dict[type[Op], Relaxation] = {
    Step: Relaxation(
        name="step",
        interval=monotone_interval,
        relax=_step_relax,
        backward=elementwise_backward,
        free=lambda op: (True, True),
        default_alpha=_step_alpha,
        needs_bounds=_step_crossing,
        lp_alphas=((0.0, 0.0), (1.0, 1.0)),
        split_points=_at_zero,
    ),
    Trunc: Relaxation(
        name="trunc",
        interval=monotone_interval,
        relax=_trunc_relax,
        backward=elementwise_backward,
        free=lambda op: (True, True),
        default_alpha=_trunc_alpha,
        needs_bounds=_trunc_varies,
        lp_alphas=((0.0, 0.0), (1.0, 1.0)),
        split_points=_no_finite_points,
    ),
}
"""The piecewise-constant ops."""
