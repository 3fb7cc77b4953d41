"""S-shaped functions (convex left of an inflection at 0, concave right): Sigmoid, Tanh, Erf.

Zhang et al. 2018, "Efficient Neural Network Robustness Certification with
General Activation Functions" (CROWN), Sec. 3.2. Upper bound: on the convex
side (``u <= 0``) the chord; on the concave side (``l >= 0``) the tangent at
``l + alpha (u - l)``; across the inflection the chord when it is above the
function, else the tangent at ``t = d + alpha (u - d)``, where ``d >= 0`` is
the tangent point whose tangent passes through ``(l, f(l))`` (found by
bisection, rounded up, so every such tangent stays above ``f(l)``). Lower
bounds by the symmetry ``f(x) = 2 f(0) - f(-x)`` (all three functions have it).

:func:`s_shaped_upper` needs only the convex-concave shape (not the symmetry
nor monotonicity): the odd powers and the pieces of sine and cosine around an
inflection point reuse it.
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
    elementwise_backward,
    everywhere,
    monotone_interval,
    widen,
)
from verifiNN.ops import Erf, Op, Sigmoid, Tanh

__all__ = ["BISECTION_STEPS", "SSHAPE_RELAXATIONS", "s_shaped_lines", "s_shaped_upper"]

BISECTION_STEPS = 40
Fn = Callable[[Tensor], Tensor]


def _sigmoid_fns() -> tuple[Fn, Fn, float]:
    def derivative(x: Tensor) -> Tensor:
        s = torch.sigmoid(x)
        return s * (1 - s)

    return torch.sigmoid, derivative, 0.5


def _tanh_fns() -> tuple[Fn, Fn, float]:
    def derivative(x: Tensor) -> Tensor:
        return 1 - torch.tanh(x) ** 2

    return torch.tanh, derivative, 0.0


_ERF_SLOPE = 2.0 / math.sqrt(math.pi)


def _erf_fns() -> tuple[Fn, Fn, float]:
    def derivative(x: Tensor) -> Tensor:
        return _ERF_SLOPE * torch.exp(-x * x)

    return torch.erf, derivative, 0.0


def _tangent_point(f: Fn, df: Fn, lower: Tensor, upper: Tensor) -> Tensor:
    """Smallest ``t`` in ``[0, u]`` (rounded up) whose tangent passes above ``(l, f(l))``.

    ``h(t) = f(t) + f'(t) (l - t) - f(l)`` increases on ``t >= 0`` when ``l < 0``
    (its derivative is ``f''(t) (l - t) > 0``) and ``h(0) <= 0``; bisection keeps
    ``h(hi) >= 0``, so the tangent at ``hi`` (and any point beyond) is valid.
    """
    with torch.no_grad():
        f_lower = f(lower)
        lo = torch.zeros_like(upper)
        hi = upper.clamp(min=0)
        for _ in range(BISECTION_STEPS):
            mid = (lo + hi) / 2
            ok = f(mid) + df(mid) * (lower - mid) - f_lower >= 0
            hi = torch.where(ok, mid, hi)
            lo = torch.where(ok, lo, mid)
    return hi


def s_shaped_upper(f: Fn, df: Fn, lower: Tensor, upper: Tensor, alpha: Tensor | None):
    """Upper line ``slope x + intercept`` of an S-shaped ``f`` on ``[l, u]`` (inflection at 0).

    Args:
        f: the function.
        df: its derivative.
        lower: interval lower ends.
        upper: interval upper ends.
        alpha: tangent-point parameter in ``[0, 1]`` (``None``: CROWN's default).

    Returns:
        ``(slope, intercept)``.
    """
    f_lower, f_upper = f(lower), f(upper)
    width = upper - lower
    safe = torch.where(width > 0, width, torch.ones_like(width))
    chord = torch.where(width > 0, (f_upper - f_lower) / safe, df(lower))
    chord_b = f_lower - chord * lower
    crossing = (lower < 0) & (upper > 0)
    d = _tangent_point(f, df, torch.where(crossing, lower, -torch.ones_like(lower)), upper)
    # The chord is above f across the inflection iff the tangent at u passes below (l, f(l)).
    chord_ok = f_upper + df(upper) * (lower - upper) - f_lower <= 0
    if alpha is None:
        alpha = torch.where(lower >= 0, 0.5, 0.0).to(lower.dtype)
    start = torch.where(crossing, d, lower)
    t = start + alpha * (upper - start)
    slope_t = df(t)
    tangent_b = f(t) - slope_t * t
    use_chord = (upper <= 0) | (crossing & chord_ok)
    return (
        torch.where(use_chord, chord, slope_t),
        torch.where(use_chord, chord_b, tangent_b),
    )


def s_shaped_lines(
    f: Fn, df: Fn, lower: Tensor, upper: Tensor, alpha: Alpha, careful: bool = True
) -> LinearBounds:
    """Lower and upper lines of a convex-concave ``f`` (inflection at 0) on ``[l, u]``.

    The upper line is :func:`s_shaped_upper`; the lower one is the upper line
    of ``g(y) = -f(-y)`` (convex-concave too) on ``[-u, -l]``, reflected:
    ``g(y) <= a y + b`` for ``y = -x`` is ``f(x) >= a x - b``. With ``careful``
    the intercepts are moved outward by a few ulps (see :func:`~.base.widen`).
    """

    def reflected(y: Tensor) -> Tensor:
        return -f(-y)

    def reflected_slope(y: Tensor) -> Tensor:
        return df(-y)

    uw, ub = s_shaped_upper(f, df, lower, upper, alpha[1])
    sw, sb = s_shaped_upper(reflected, reflected_slope, -upper, -lower, alpha[0])
    lw, lb = sw, -sb
    if careful:
        scale = f(lower).abs() + f(upper).abs() + 1
        ub = widen(uw, ub, lower, upper, scale, upward=True)
        lb = widen(lw, lb, lower, upper, scale, upward=False)
    return LinearBounds(lw, lb, uw, ub)


def _s_relax(fns):
    def relax(op: Op, lower: Tensor, upper: Tensor, alpha: Alpha = NO_ALPHA) -> LinearBounds:
        f, df, f0 = fns()
        uw, ub = s_shaped_upper(f, df, lower, upper, alpha[1])
        # f(x) = 2 f0 - f(-x): an upper line of f on [-u, -l] reflects to a lower line.
        sw, sb = s_shaped_upper(f, df, -upper, -lower, alpha[0])
        return LinearBounds(sw, 2 * f0 - sb, uw, ub)

    return relax


def _s_alpha(op: Op, lower: Tensor, upper: Tensor, adaptive: bool) -> Alpha:
    return (
        torch.where(upper <= 0, 0.5, 0.0).to(lower.dtype),
        torch.where(lower >= 0, 0.5, 0.0).to(lower.dtype),
    )


def _erf_relax(op: Erf, lower: Tensor, upper: Tensor, alpha: Alpha = NO_ALPHA) -> LinearBounds:
    f, df, _ = _erf_fns()
    default = _s_alpha(op, lower, upper, True)
    chosen = (alpha_or(alpha, 0, default[0]), alpha_or(alpha, 1, default[1]))
    return s_shaped_lines(f, df, lower, upper, chosen)


def _erf_interval(op: Erf, lower: Tensor, upper: Tensor) -> tuple[Tensor, Tensor]:
    """``[erf(l), erf(u)]`` widened by a few ulps (erf is accurate to a few ulps)."""
    eps = torch.finfo(lower.dtype).eps * 4
    low, high = torch.erf(lower), torch.erf(upper)
    return (low - eps * low.abs()).clamp(min=-1.0), (high + eps * high.abs()).clamp(max=1.0)


def _s_record(name: str, relax, interval=monotone_interval) -> Relaxation:
    return Relaxation(
        name=name,
        interval=interval,
        relax=relax,
        backward=elementwise_backward,
        free=lambda op: (True, True),
        default_alpha=_s_alpha,
        needs_bounds=everywhere,
        lp_alphas=((0.0, 0.0), (0.5, 0.5), (1.0, 1.0)),
    )


SSHAPE_RELAXATIONS: dict[type[Op], Relaxation] = {
    Sigmoid: _s_record("sigmoid", _s_relax(_sigmoid_fns)),
    Tanh: _s_record("tanh", _s_relax(_tanh_fns)),
    Erf: _s_record("erf", _erf_relax, _erf_interval),
}
"""The S-shaped activations."""
