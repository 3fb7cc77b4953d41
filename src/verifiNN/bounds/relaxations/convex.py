"""Convex and concave pieces: Exp, Log, Reciprocal, Sqrt and Pow with a constant exponent.

On an interval where ``f`` is convex, every tangent is below ``f`` and the
chord (secant) through the interval's ends is above it; where ``f`` is concave
the roles swap (the textbook relaxation, e.g. Zhang et al. 2018, CROWN, and
Shi et al. 2020, "Robustness Verification for Transformers", for exp and the
reciprocal). The tangent point ``l + alpha (u - l)`` is a free parameter of
alpha-CROWN; CROWN's default is the midpoint (``alpha = 1/2``), the tangent
that minimises the area between line and function.

The pieces, by op:

* Exp: convex everywhere.
* Log: concave on ``x > 0``; the interval is first cut to the domain
  ``[max(l, 0), max(u, 0)]`` (``log 0 = -inf``: the chord from 0 is then the
  constant ``-inf``).
* Reciprocal: convex on ``x > 0``, concave on ``x < 0``; an interval holding
  0 is unbounded on both sides.
* Sqrt: concave on ``x >= 0`` (cut to the domain like Log).
* Pow(p): even ``p > 0`` convex everywhere; odd ``p >= 3`` concave then
  convex about 0, relaxed by the S-shape construction of
  :mod:`~verifiNN.bounds.relaxations.sshape` applied to ``-x^p``; integer
  ``p < 0`` convex on ``x > 0`` and, on ``x < 0``, convex for even ``p`` and
  concave for odd ``p`` (an interval holding 0 is unbounded above, and for odd
  ``p`` below too; for even ``p`` the lower bound is ``max(|l|, |u|)^p``);
  non-integer ``p`` lives on ``x >= 0`` (cut like Sqrt): convex for ``p > 1``
  and ``p < 0``, concave for ``0 < p < 1``; ``p = 0`` and ``p = 1`` are exact.

Where a line would not be finite (an end at a pole, an overflowing value) the
side falls back to the constant interval bound (possibly infinite, with slope
0), and where a tangent point sits at a singular end (``sqrt`` at 0) the
tangent moves to the other end. Intercepts are moved outward by a few ulps
(:func:`~verifiNN.bounds.relaxations.base.widen`) and intervals by a few ulps
of their ends (library ``exp``, ``log`` and ``pow`` are accurate to a few ulps).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from verifiNN.bounds.relaxations.base import (
    NO_ALPHA,
    Alpha,
    LinearBounds,
    Relaxation,
    alpha_or,
    everywhere,
    guard,
    guarded_backward,
    safe_divide,
    widen,
)
from verifiNN.bounds.relaxations.sshape import s_shaped_lines
from verifiNN.ops import Exp, Log, Op, Pow, Reciprocal, Sqrt

__all__ = ["CONVEX_RELAXATIONS", "curved_lines", "widen_interval"]

Fn = Callable[[Tensor], Tensor]
INTERVAL_ULPS = 4
"""Ulps by which the interval of a library function is widened."""


def widen_interval(low: Tensor, high: Tensor, ulps: int = INTERVAL_ULPS) -> tuple[Tensor, Tensor]:
    """``[low, high]`` moved outward by ``ulps`` ulps of each end (infinite ends stay)."""
    eps = torch.finfo(low.dtype).eps * ulps
    low = torch.where(torch.isfinite(low), low - eps * low.abs(), low)
    high = torch.where(torch.isfinite(high), high + eps * high.abs(), high)
    return low, high


def _finite(*values: Tensor) -> Tensor:
    ok = torch.isfinite(values[0])
    for v in values[1:]:
        ok = ok & torch.isfinite(v)
    return ok


def curved_lines(
    f: Fn,
    df: Fn,
    lower: Tensor,
    upper: Tensor,
    convex: Tensor,
    concave: Tensor,
    alpha: Alpha,
    bounds: tuple[Tensor, Tensor],
) -> LinearBounds:
    """Tangent and chord lines of ``f`` on ``[lower, upper]`` (inside ``f``'s domain).

    Args:
        f: the function; ``df`` its derivative.
        lower, upper: the interval, already cut to the domain.
        convex, concave: masks of the neurons where ``f`` is convex (concave)
            on the interval; other neurons get the constant lines ``bounds``.
        alpha: tangent points ``(lower line's, upper line's)`` in ``[0, 1]``.
        bounds: the interval bounds ``(low, high)`` of ``f`` (the constant fallback).

    Returns:
        The lines (tangent below and chord above where convex, the reverse where concave).
    """
    one = torch.ones_like(lower)
    curved = convex | concave
    with torch.no_grad():  # which lines exist (finite values at the points they use)
        chord_ok = curved & _finite(f(lower), f(upper))
        point = torch.where(convex, alpha[0], alpha[1])
        t = lower + point * (upper - lower)
        t = torch.where(_finite(f(t), df(t)), t, upper)
        tangent_ok = curved & _finite(f(t), df(t))
    a, b = torch.where(chord_ok, lower, one), torch.where(chord_ok, upper, one)
    fa, fb = f(a), f(b)
    cw = safe_divide(fb - fa, b - a)
    cb = fa - cw * a
    t = lower + torch.where(convex, alpha[0], alpha[1]) * (upper - lower)
    with torch.no_grad():
        moved = ~_finite(f(t), df(t))
    t = torch.where(tangent_ok, torch.where(moved, upper, t), one)
    ft, tw = f(t), df(t)
    tb = ft - tw * t
    chord_scale, tangent_scale = fa.abs() + fb.abs(), ft.abs()
    c_up = widen(cw, cb, lower, upper, chord_scale, upward=True)
    c_down = widen(cw, cb, lower, upper, chord_scale, upward=False)
    t_up = widen(tw, tb, lower, upper, tangent_scale, upward=True)
    t_down = widen(tw, tb, lower, upper, tangent_scale, upward=False)
    low, high = bounds
    lw = torch.where(convex, tw, cw)
    lb = torch.where(convex, t_down, c_down)
    uw = torch.where(convex, cw, tw)
    ub = torch.where(convex, c_up, t_up)
    lower_ok = torch.where(convex, tangent_ok, chord_ok & concave)
    upper_ok = torch.where(convex, chord_ok, tangent_ok & concave)
    lw, lb = guard(lw, lb, ~(lower_ok & _finite(lw, lb)), low)
    uw, ub = guard(uw, ub, ~(upper_ok & _finite(uw, ub)), high)
    return LinearBounds(lw, lb, uw, ub)


def _alphas(alpha: Alpha, like: Tensor) -> Alpha:
    half = torch.full_like(like, 0.5)
    return alpha_or(alpha, 0, half), alpha_or(alpha, 1, half)


def _half_alpha(op: Op, lower: Tensor, upper: Tensor, adaptive: bool) -> Alpha:
    half = torch.full_like(lower, 0.5)
    return half, half


# ---------------------------------------------------------------------- Exp
def _exp_interval(op: Exp, lower: Tensor, upper: Tensor) -> tuple[Tensor, Tensor]:
    """``[exp l, exp u]`` widened for the library's rounding, except at 0, where
    ``exp(0) = 1`` exactly (IEEE 754 / C Annex F): a softmax's own term ``exp(x_i - x_i)``."""
    low, high = widen_interval(torch.exp(lower), torch.exp(upper))
    one = torch.ones_like(low)
    return torch.where(lower == 0, one, low), torch.where(upper == 0, one, high)


def _exp_relax(op: Exp, lower: Tensor, upper: Tensor, alpha: Alpha = NO_ALPHA) -> LinearBounds:
    everything = torch.ones_like(lower, dtype=torch.bool)
    return curved_lines(
        torch.exp,
        torch.exp,
        lower,
        upper,
        everything,
        ~everything,
        _alphas(alpha, lower),
        _exp_interval(op, lower, upper),
    )


# ---------------------------------------------------------------------- Log
def _domain(lower: Tensor, upper: Tensor) -> tuple[Tensor, Tensor]:
    """The part of ``[l, u]`` in ``x >= 0``: ``[max(l, 0), max(u, 0)]``."""
    return lower.clamp(min=0), upper.clamp(min=0)


def _log_interval(op: Log, lower: Tensor, upper: Tensor) -> tuple[Tensor, Tensor]:
    lo, hi = _domain(lower, upper)
    return widen_interval(torch.log(lo), torch.log(hi))


def _log_relax(op: Log, lower: Tensor, upper: Tensor, alpha: Alpha = NO_ALPHA) -> LinearBounds:
    lo, hi = _domain(lower, upper)
    everything = torch.ones_like(lower, dtype=torch.bool)
    return curved_lines(
        torch.log,
        torch.reciprocal,
        lo,
        hi,
        ~everything,
        everything,
        _alphas(alpha, lower),
        _log_interval(op, lower, upper),
    )


# --------------------------------------------------------------- Reciprocal
def _power_of_two(x: Tensor) -> Tensor:
    """``x = +-2^k`` (finite, nonzero), whose reciprocal is exact unless it underflows."""
    mantissa, exponent = torch.frexp(x)
    normal = exponent.abs() < int(math.log2(torch.finfo(x.dtype).max)) - 2
    return torch.isfinite(x) & (x != 0) & (mantissa.abs() == 0.5) & normal


def _reciprocal_interval(op: Reciprocal, lower: Tensor, upper: Tensor) -> tuple[Tensor, Tensor]:
    one_sided = (lower > 0) | (upper < 0)
    low, high = widen_interval(torch.reciprocal(upper), torch.reciprocal(lower), 2)
    # 1 / 2^k is exact in floating point: no widening at powers of two (a softmax's 1 / 1)
    low = torch.where(_power_of_two(upper), torch.reciprocal(upper), low)
    high = torch.where(_power_of_two(lower), torch.reciprocal(lower), high)
    inf = torch.full_like(lower, torch.inf)
    return torch.where(one_sided, low, -inf), torch.where(one_sided, high, inf)


def _reciprocal_relax(op: Reciprocal, lower: Tensor, upper: Tensor, alpha: Alpha = NO_ALPHA):
    def slope(x: Tensor) -> Tensor:
        return -torch.reciprocal(x * x)

    return curved_lines(
        torch.reciprocal,
        slope,
        lower,
        upper,
        lower > 0,
        upper < 0,
        _alphas(alpha, lower),
        _reciprocal_interval(op, lower, upper),
    )


# --------------------------------------------------------------------- Sqrt
def _sqrt_interval(op: Sqrt, lower: Tensor, upper: Tensor) -> tuple[Tensor, Tensor]:
    lo, hi = _domain(lower, upper)
    return widen_interval(torch.sqrt(lo), torch.sqrt(hi), 2)


def _sqrt_slope(x: Tensor) -> Tensor:
    return 0.5 / torch.sqrt(x)


def _sqrt_relax(op: Sqrt, lower: Tensor, upper: Tensor, alpha: Alpha = NO_ALPHA) -> LinearBounds:
    lo, hi = _domain(lower, upper)
    everything = torch.ones_like(lower, dtype=torch.bool)
    return curved_lines(
        torch.sqrt,
        _sqrt_slope,
        lo,
        hi,
        ~everything,
        everything,
        _alphas(alpha, lower),
        _sqrt_interval(op, lower, upper),
    )


# ---------------------------------------------------------------------- Pow
def _power_fns(p: float) -> tuple[Fn, Fn]:
    def f(x: Tensor) -> Tensor:
        return torch.pow(x, p)

    def df(x: Tensor) -> Tensor:
        return p * torch.pow(x, p - 1)

    return f, df


def _pow_interval(op: Pow, lower: Tensor, upper: Tensor) -> tuple[Tensor, Tensor]:
    p = float(op.exponent)
    inf = torch.full_like(lower, torch.inf)
    if p == 0:
        return torch.ones_like(lower), torch.ones_like(lower)
    if not op.is_integer:
        lo, hi = _domain(lower, upper)
        ends = (torch.pow(lo, p), torch.pow(hi, p))
        return widen_interval(*(ends if p > 0 else ends[::-1]))
    fl, fu = torch.pow(lower, p), torch.pow(upper, p)
    if p > 0 and int(p) % 2 == 1:
        return widen_interval(fl, fu)
    far = torch.pow(torch.maximum(lower.abs(), upper.abs()), p)
    near = torch.pow(torch.minimum(lower.abs(), upper.abs()), p)
    holds_zero = (lower <= 0) & (upper >= 0)
    if p > 0:  # even
        return widen_interval(torch.where(holds_zero, torch.zeros_like(lower), near), far)
    low, high = widen_interval(torch.minimum(fl, fu), torch.maximum(fl, fu))
    if int(p) % 2 == 0:  # x^p >= max(|l|, |u|)^p > 0 across the pole
        return torch.where(holds_zero, widen_interval(far, far)[0], low), torch.where(
            holds_zero, inf, high
        )
    return torch.where(holds_zero, -inf, low), torch.where(holds_zero, inf, high)


def _pow_shape(op: Pow, lower: Tensor, upper: Tensor) -> tuple[Tensor, Tensor]:
    """Masks ``(convex, concave)`` of the neurons whose interval is one piece (integer or
    non-integer ``p``, not the odd positive powers)."""
    p = float(op.exponent)
    every = torch.ones_like(lower, dtype=torch.bool)
    if not op.is_integer:
        return (every, ~every) if p > 1 or p < 0 else (~every, every)
    if p > 0:  # even
        return every, ~every
    positive, negative = lower > 0, upper < 0
    if int(p) % 2 == 0:
        return positive | negative, ~every
    return positive, negative


def _odd_power_lines(op: Pow, lower: Tensor, upper: Tensor, alpha: Alpha) -> LinearBounds:
    """``x^p`` (odd ``p >= 3``) is ``-h`` for the convex-concave ``h(x) = -x^p``."""
    p = float(op.exponent)

    def h(x: Tensor) -> Tensor:
        return -torch.pow(x, p)

    def dh(x: Tensor) -> Tensor:
        return -p * torch.pow(x, p - 1)

    with torch.no_grad():
        ok = _finite(dh(lower) * 16, dh(upper) * 16, h(lower) * 16, h(upper) * 16)
    zero = torch.zeros_like(lower)
    lo, hi = torch.where(ok, lower, zero), torch.where(ok, upper, zero)
    lines = s_shaped_lines(h, dh, lo, hi, (alpha[1], alpha[0]))
    low, high = _pow_interval(op, lower, upper)
    lw, lb = guard(-lines.uw, -lines.ub, ~(ok & _finite(lines.uw, lines.ub)), low)
    uw, ub = guard(-lines.lw, -lines.lb, ~(ok & _finite(lines.lw, lines.lb)), high)
    return LinearBounds(lw, lb, uw, ub)


def _pow_relax(op: Pow, lower: Tensor, upper: Tensor, alpha: Alpha = NO_ALPHA) -> LinearBounds:
    p = float(op.exponent)
    zero = torch.zeros_like(lower)
    if p == 0:
        return LinearBounds(zero, torch.ones_like(lower), zero, torch.ones_like(lower))
    if p == 1:
        return LinearBounds(torch.ones_like(lower), zero, torch.ones_like(lower), zero)
    alphas = _alphas(alpha, lower)
    if op.is_integer and p > 0 and int(p) % 2 == 1:
        return _odd_power_lines(op, lower, upper, alphas)
    lo, hi = (lower, upper) if op.is_integer else _domain(lower, upper)
    convex, concave = _pow_shape(op, lower, upper)
    f, df = _power_fns(p)
    return curved_lines(f, df, lo, hi, convex, concave, alphas, _pow_interval(op, lower, upper))


def _pow_free(op: Pow) -> tuple[bool, bool]:
    p = float(op.exponent)
    if p in (0.0, 1.0):
        return (False, False)
    if op.is_integer:
        odd = int(p) % 2 == 1
        return (True, odd)
    return (p > 1 or p < 0, 0 < p < 1)


# ----------------------------------------------------------------- registry
def _record(name: str, interval, relax, free) -> Relaxation:
    return Relaxation(
        name=name,
        interval=interval,
        relax=relax,
        backward=guarded_backward,
        free=free,
        default_alpha=_half_alpha,
        needs_bounds=everywhere,
        lp_alphas=((0.0, 0.0), (0.5, 0.5), (1.0, 1.0)),
    )


CONVEX_RELAXATIONS: dict[type[Op], Relaxation] = {
    Exp: _record("exp", _exp_interval, _exp_relax, lambda op: (True, False)),
    Log: _record("log", _log_interval, _log_relax, lambda op: (False, True)),
    Reciprocal: _record(
        "reciprocal", _reciprocal_interval, _reciprocal_relax, lambda op: (True, True)
    ),
    Sqrt: _record("sqrt", _sqrt_interval, _sqrt_relax, lambda op: (False, True)),
    Pow: _record("pow", _pow_interval, _pow_relax, _pow_free),
}
"""Functions convex or concave on each piece of their domain."""
