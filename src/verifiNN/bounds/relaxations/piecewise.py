"""Piecewise-linear ops: ReLU, LeakyReLU, Abs, Sign, Clip, and Max/Min of two nodes.

Each is exact on an input interval that does not reach one of its
``split_points``; across one, its relaxation is the convex hull's edges (or,
for the lower side of the ReLU family, one supporting line chosen by a free
parameter ``alpha`` in ``[0, 1]``).

* ReLU: upper chord, lower line ``alpha x`` for unstable neurons; the default
  ``alpha`` is the adaptive choice ``1[u > -l]`` (Zhang et al. 2018, CROWN;
  Singh et al. 2019, DeepPoly).
* LeakyReLU(a): ``a x + (1 - a) relu(x)``, i.e. the ReLU relaxation scaled
  (its free parameter moves to the upper bound when ``a > 1``).
* Abs: ``2 relu(x) - x``: upper chord, lower line ``(2 alpha - 1) x``
  (adaptive default: slope 1 when ``u > -l``, else -1).
* Sign (``-1``, ``0``, ``1``; a jump at 0): across 0 the lines through the
  jump's ends, ``-1 + alpha (2 / u) x <= sign(x) <= 1 + alpha (2 / -l) x``
  (valid for every ``alpha`` in ``[0, 1]``: on ``x < 0`` the lower line is
  below ``-1``, on ``x > 0`` it stays below 1 up to ``u``; the upper line
  mirrors it); on ``[0, u]`` the lower line ``alpha x / u`` (through
  ``sign(0) = 0``), on ``[l, 0]`` the upper line ``alpha x / -l``. The default
  ``alpha`` minimises the area between line and function (for the lower
  line: 1 when ``u > -l``, else 0).
* Clip(a, b): below the kink ``a`` the lower line turns about ``(a, a)`` with a
  slope up to the chord's from there, ``a + alpha (f(u) - a) / (u - a) (x - a)``
  (the edges of the lower convex hull of the graph meet there); with no lower
  kink inside the interval, the function is concave on it and the chord is
  below. The upper line mirrors it about the kink ``b``.
* Max(x, y) over the box ``[lx, ux] x [ly, uy]`` (arity 2): the upper plane
  is the average of the two planes through three corners of the box that are
  above ``max`` at the fourth (``max`` is convex, so a plane above it at the
  four corners is above it on the box; the two planes are the concave
  envelope's); the lower plane is ``x`` or ``y``, whichever has the larger
  mean on its box (a subgradient plane). ``Min(x, y) = -Max(-x, -y)``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from verifiNN.bounds.relaxations.base import (
    NO_ALPHA,
    Alpha,
    LinearBounds,
    PlaneBounds,
    Relaxation,
    alpha_or,
    bounded_planes,
    elementwise_backward,
    everywhere,
    monotone_interval,
    no_alpha,
    no_free,
    plane_backward,
    safe_divide,
    unstable,
    widen,
)
from verifiNN.ops import Abs, Clip, LeakyReLU, Max, Min, Op, ReLU, Sign

__all__ = ["PIECEWISE_RELAXATIONS", "relu_parts"]


def _at_zero(op: Op) -> tuple[float, ...]:
    return (0.0,)


# --------------------------------------------------------------------- ReLU
def relu_parts(lower: Tensor, upper: Tensor, alpha: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
    """ReLU relaxation ``alpha x <= relu(x) <= s x + c`` (slopes/intercept by neuron phase).

    Args:
        lower: pre-activation lower bounds.
        upper: pre-activation upper bounds.
        alpha: lower slope of unstable neurons (``None``: adaptive ``1[u > -l]``).

    Returns:
        ``(lower slope, upper slope, upper intercept)``.
    """
    active = (lower >= 0).to(lower.dtype)
    unstable_ = (lower < 0) & (upper > 0)
    width = torch.where(unstable_, upper - lower, torch.ones_like(lower))
    slope = torch.where(unstable_, upper / width, active)
    intercept = -slope * lower.clamp(max=0)
    if alpha is None:
        alpha = (upper > -lower).to(lower.dtype)
    return torch.where(unstable_, alpha, active), slope, intercept


def _relu_relax(op: Op, lower: Tensor, upper: Tensor, alpha: Alpha = NO_ALPHA) -> LinearBounds:
    lw, uw, ub = relu_parts(lower, upper, alpha[0])
    return LinearBounds(lw, None, uw, ub)


def _relu_alpha(op: Op, lower: Tensor, upper: Tensor, adaptive: bool) -> Alpha:
    a = (upper > -lower).to(lower.dtype) if adaptive else torch.zeros_like(lower)
    return a, None


# ---------------------------------------------------------------- LeakyReLU
def _leaky_interval(op: LeakyReLU, lower: Tensor, upper: Tensor) -> tuple[Tensor, Tensor]:
    values = torch.stack(
        [
            op.forward(lower),
            op.forward(upper),
            op.forward(torch.clamp(torch.zeros_like(lower), lower, upper)),
        ]
    )
    return values.min(0).values, values.max(0).values


def _leaky_relax(op: LeakyReLU, lower: Tensor, upper: Tensor, alpha: Alpha = NO_ALPHA):
    a = float(op.alpha)
    c = 1.0 - a
    free = alpha[0] if a <= 1 else alpha[1]
    rlw, ruw, rub = relu_parts(lower, upper, free)
    if c >= 0:
        return LinearBounds(a + c * rlw, None, a + c * ruw, c * rub)
    return LinearBounds(a + c * ruw, c * rub, a + c * rlw, None)


def _leaky_free(op: LeakyReLU) -> tuple[bool, bool]:
    return (op.alpha <= 1, op.alpha > 1)


def _leaky_alpha(op: LeakyReLU, lower: Tensor, upper: Tensor, adaptive: bool) -> Alpha:
    a, _ = _relu_alpha(op, lower, upper, adaptive)
    return (a, None) if op.alpha <= 1 else (None, a)


# ---------------------------------------------------------------------- Abs
def _abs_interval(op: Abs, lower: Tensor, upper: Tensor) -> tuple[Tensor, Tensor]:
    near = torch.minimum(lower.abs(), upper.abs())
    low = torch.where((lower < 0) & (upper > 0), torch.zeros_like(lower), near)
    return low, torch.maximum(lower.abs(), upper.abs())


def _abs_relax(op: Abs, lower: Tensor, upper: Tensor, alpha: Alpha = NO_ALPHA) -> LinearBounds:
    """``|x| = 2 relu(x) - x``."""
    lw, uw, ub = relu_parts(lower, upper, alpha_or(alpha, 0, None))
    return LinearBounds(2 * lw - 1, None, 2 * uw - 1, 2 * ub)


# --------------------------------------------------------------------- Sign
def _sign_relax(op: Sign, lower: Tensor, upper: Tensor, alpha: Alpha = NO_ALPHA) -> LinearBounds:
    default = _sign_alpha(op, lower, upper, True)
    al, au = alpha_or(alpha, 0, default[0]), alpha_or(alpha, 1, default[1])
    one = torch.ones_like(lower)
    # lower line through the jump's bottom (-1 at 0-, or sign(0) = 0 when l = 0), else exact
    low_free = (lower <= 0) & (upper > 0)
    low_slope = torch.where(lower < 0, 2.0, 1.0) * al * safe_divide(one, upper.clamp(min=0))
    lw = torch.where(low_free, low_slope, 0.0)
    lb = torch.where(low_free, torch.where(lower < 0, -one, 0.0), torch.sign(lower))
    # upper line through the jump's top (1 at 0+, or sign(0) = 0 when u = 0), else exact
    high_free = (lower < 0) & (upper >= 0)
    high_slope = torch.where(upper > 0, 2.0, 1.0) * au * safe_divide(one, (-lower).clamp(min=0))
    uw = torch.where(high_free, high_slope, 0.0)
    ub = torch.where(high_free, torch.where(upper > 0, one, 0.0), torch.sign(upper))
    return LinearBounds(lw, lb, uw, ub)


def _sign_alpha(op: Sign, lower: Tensor, upper: Tensor, adaptive: bool) -> Alpha:
    """Area-minimising slopes: across 0 the lower line is steep iff ``u > -l``."""
    crossing = (lower < 0) & (upper > 0)
    steep_low = torch.where(crossing, (upper > -lower).to(lower.dtype), torch.ones_like(lower))
    steep_high = torch.where(crossing, (-lower > upper).to(lower.dtype), torch.ones_like(lower))
    return steep_low, steep_high


def _sign_interval(op: Sign, lower: Tensor, upper: Tensor) -> tuple[Tensor, Tensor]:
    return torch.sign(lower), torch.sign(upper)


def _touches_zero(op: Sign, lower: Tensor, upper: Tensor) -> Tensor:
    return (lower <= 0) & (upper >= 0)


# --------------------------------------------------------------------- Clip
def _clip_relax(op: Clip, lower: Tensor, upper: Tensor, alpha: Alpha = NO_ALPHA) -> LinearBounds:
    a, b = float(op.low), float(op.high)
    if a > b:  # every output is b
        constant = torch.full_like(lower, b)
        return LinearBounds(torch.zeros_like(lower), constant, torch.zeros_like(lower), constant)
    default = _clip_alpha(op, lower, upper, True)
    al, au = alpha_or(alpha, 0, default[0]), alpha_or(alpha, 1, default[1])
    f_low, f_up = op.forward(lower), op.forward(upper)
    chord = safe_divide(f_up - f_low, upper - lower)
    chord_b = f_low - chord * lower
    lw, lb, uw, ub = chord, chord_b, chord, chord_b
    if math.isfinite(a):  # turn about (a, a) when the lower kink is inside [l, u)
        pivot = (lower <= a) & (upper > a)
        slope = al * safe_divide(f_up - a, upper - a)
        lw = torch.where(pivot, slope, torch.where(upper <= a, 0.0, lw))
        lb = torch.where(pivot, a - slope * a, torch.where(upper <= a, a, lb))
    if math.isfinite(b):  # turn about (b, b) when the upper kink is inside (l, u]
        pivot = (lower < b) & (upper >= b)
        slope = au * safe_divide(b - f_low, b - lower)
        uw = torch.where(pivot, slope, torch.where(lower >= b, 0.0, uw))
        ub = torch.where(pivot, b - slope * b, torch.where(lower >= b, b, ub))
    scale = f_low.abs() + f_up.abs()
    lb = widen(lw, lb, lower, upper, scale, upward=False)
    ub = widen(uw, ub, lower, upper, scale, upward=True)
    return LinearBounds(lw, lb, uw, ub)


def _clip_alpha(op: Clip, lower: Tensor, upper: Tensor, adaptive: bool) -> Alpha:
    """ReLU's adaptive choice about each kink: steep iff the far side is longer."""
    a, b = float(op.low), float(op.high)
    ones = torch.ones_like(lower)
    low = (upper - a > a - lower).to(lower.dtype) if math.isfinite(a) else ones
    high = (b - lower > upper - b).to(lower.dtype) if math.isfinite(b) else ones
    return low, high


def _clip_free(op: Clip) -> tuple[bool, bool]:
    return (math.isfinite(op.low), math.isfinite(op.high))


def _clip_kinks(op: Clip, lower: Tensor, upper: Tensor) -> Tensor:
    mask = torch.zeros_like(lower, dtype=torch.bool)
    for kink in (op.low, op.high):
        if math.isfinite(kink):
            mask = mask | ((lower < kink) & (upper > kink))
    return mask


def _clip_points(op: Clip) -> tuple[float, ...]:
    return tuple(p for p in (op.low, op.high) if math.isfinite(p))


# ------------------------------------------------------------------ Max/Min
def _max_planes(lx: Tensor, ly: Tensor, ux: Tensor, uy: Tensor) -> PlaneBounds:
    """The planes of ``max(x, y)`` over the box (see the module docstring)."""
    m00, m01 = torch.maximum(lx, ly), torch.maximum(lx, uy)
    m10, m11 = torch.maximum(ux, ly), torch.maximum(ux, uy)
    # the plane through three corners above the fourth; D < 0: omit 00 or 11 (averaged)
    d = m00 + m11 - m01 - m10
    keep_diagonal = d >= 0
    q00 = torch.where(keep_diagonal, m00, (m01 + m10 - m11 + m00) / 2)
    q01 = torch.where(keep_diagonal, (m00 + m11 + m01 - m10) / 2, m01)
    q10 = torch.where(keep_diagonal, (m00 + m11 + m10 - m01) / 2, m10)
    a_up = safe_divide(q10 - q00, ux - lx)
    b_up = safe_divide(q01 - q00, uy - ly)
    c_up = q00 - a_up * lx - b_up * ly
    scale = m00.abs() + m11.abs() + m01.abs() + m10.abs()
    reach = torch.maximum(torch.maximum(lx.abs(), ux.abs()), torch.maximum(ly.abs(), uy.abs()))
    c_up = widen(a_up.abs() + b_up.abs(), c_up, reach, reach, scale, upward=True)
    take_x = (lx + ux >= ly + uy).to(lx.dtype)
    return PlaneBounds(take_x, 1 - take_x, torch.zeros_like(lx), a_up, b_up, c_up)


def _finite_box(lx: Tensor, ly: Tensor, ux: Tensor, uy: Tensor) -> Tensor:
    return torch.isfinite(lx) & torch.isfinite(ly) & torch.isfinite(ux) & torch.isfinite(uy)


def _max_relax(op: Max, lowers, uppers, alpha: Alpha = NO_ALPHA) -> PlaneBounds:
    (lx, ly), (ux, uy) = lowers, uppers
    planes = _max_planes(lx, ly, ux, uy)
    finite = _finite_box(lx, ly, ux, uy)
    if bool(finite.all()):
        return planes
    return bounded_planes(planes, *_max_interval(op, lowers, uppers), finite)


def _min_relax(op: Min, lowers, uppers, alpha: Alpha = NO_ALPHA) -> PlaneBounds:
    """``min(x, y) = -max(-x, -y)``: the planes of max on the negated box, negated."""
    (lx, ly), (ux, uy) = lowers, uppers
    p = _max_planes(-ux, -uy, -lx, -ly)
    planes = PlaneBounds(p.a_upper, p.b_upper, -p.c_upper, p.a_lower, p.b_lower, -p.c_lower)
    finite = _finite_box(lx, ly, ux, uy)
    if bool(finite.all()):
        return planes
    return bounded_planes(planes, *_min_interval(op, lowers, uppers), finite)


def _max_interval(op: Max, lowers, uppers) -> tuple[Tensor, Tensor]:
    (lx, ly), (ux, uy) = lowers, uppers
    return torch.maximum(lx, ly), torch.maximum(ux, uy)


def _min_interval(op: Min, lowers, uppers) -> tuple[Tensor, Tensor]:
    (lx, ly), (ux, uy) = lowers, uppers
    return torch.minimum(lx, ly), torch.minimum(ux, uy)


def _pair_record(name: str, interval, relax) -> Relaxation:
    return Relaxation(
        name=name,
        interval=interval,
        relax=relax,
        backward=plane_backward,
        free=no_free,
        default_alpha=no_alpha,
        needs_bounds=everywhere,
        elementwise=False,
        arity=2,
        split_points=_at_zero,
    )


# ----------------------------------------------------------------- registry
PIECEWISE_RELAXATIONS: dict[type[Op], Relaxation] = {
    ReLU: Relaxation(
        name="relu",
        interval=monotone_interval,
        relax=_relu_relax,
        backward=elementwise_backward,
        free=lambda op: (True, False),
        default_alpha=_relu_alpha,
        needs_bounds=unstable,
        lp_alphas=((0.0, 0.0), (1.0, 0.0)),
        split_points=_at_zero,
    ),
    LeakyReLU: Relaxation(
        name="leaky_relu",
        interval=_leaky_interval,
        relax=_leaky_relax,
        backward=elementwise_backward,
        free=_leaky_free,
        default_alpha=_leaky_alpha,
        needs_bounds=unstable,
        lp_alphas=((0.0, 0.0), (1.0, 1.0)),
        split_points=_at_zero,
    ),
    Abs: Relaxation(
        name="abs",
        interval=_abs_interval,
        relax=_abs_relax,
        backward=elementwise_backward,
        free=lambda op: (True, False),
        default_alpha=_relu_alpha,
        needs_bounds=unstable,
        lp_alphas=((0.0, 0.0), (1.0, 0.0)),
        split_points=_at_zero,
    ),
    Sign: Relaxation(
        name="sign",
        interval=_sign_interval,
        relax=_sign_relax,
        backward=elementwise_backward,
        free=lambda op: (True, True),
        default_alpha=_sign_alpha,
        needs_bounds=_touches_zero,
        lp_alphas=((0.0, 0.0), (1.0, 1.0)),
        split_points=_at_zero,
    ),
    Clip: Relaxation(
        name="clip",
        interval=monotone_interval,
        relax=_clip_relax,
        backward=elementwise_backward,
        free=_clip_free,
        default_alpha=_clip_alpha,
        needs_bounds=_clip_kinks,
        lp_alphas=((0.0, 0.0), (1.0, 1.0)),
        split_points=_clip_points,
    ),
    Max: _pair_record("max", _max_interval, _max_relax),
    Min: _pair_record("min", _min_interval, _min_relax),
}
"""The piecewise-linear ops."""
