"""Sine and cosine: slopes from the convex and concave pieces, intercepts by exact optimisation.

Following Shi et al. 2024, "Neural Network Verification with Branch-and-Bound
for General Nonlinearities" (GenBaB), an interval ``[l, u]`` of a periodic
function is cut by the inflection points ``c0 + k pi`` (``c0 = 0`` for sine,
``pi / 2`` for cosine) into convex pieces (where ``f <= 0``) and concave pieces
(where ``f >= 0``), and each line takes its slope from the piece structure:

* no inflection inside: a convex piece gets the tangent at
  ``l + alpha (u - l)`` below and the chord above (a concave piece the
  reverse);
* one inflection ``z`` inside: around it ``f(z + y) = f'(z) sin(y)`` with
  ``f'(z) = +-1``, an S-shaped function on ``(-pi, pi)``; the lines are those
  of the S-shape construction (Zhang et al. 2018, CROWN; see
  :mod:`~verifiNN.bounds.relaxations.sshape`), tangent points again free;
* two or more inflections (``u - l < 2 pi``): the chord's slope on both sides;
* ``u - l >= 2 pi``: the constants -1 and 1.

Soundness does not rest on the slope choice: for a slope ``s`` the intercept
is ``min`` (lower line) or ``max`` (upper line) of ``g(x) = f(x) - s x`` over
``[l, u]``, computed exactly from the ends and the critical points of ``g``
(``cos x = s`` for sine: ``x = +-acos(s) + 2 k pi``; ``sin x = -s`` for
cosine), every one of which in ``[l, u]`` is evaluated (an interval shorter
than ``2 pi`` holds at most two per family). For the tangent and chord
slopes this gives exactly the tangent and the chord. The intercepts are then
moved outward by a few ulps of ``1 + |s| max(|l|, |u|)`` plus the square of
the critical points' rounding (``g`` is flat there). The interval transfer is
the slope-0 case.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from verifiNN.bounds.relaxations.base import (
    NO_ALPHA,
    ROUNDING_SLACK,
    Alpha,
    LinearBounds,
    Relaxation,
    alpha_or,
    elementwise_backward,
    everywhere,
    safe_divide,
)
from verifiNN.bounds.relaxations.sshape import s_shaped_lines
from verifiNN.ops import Cos, Op, Sin

__all__ = ["PERIODIC_RELAXATIONS"]

TWO_PI = 2 * math.pi
Fn = Callable[[Tensor], Tensor]


@dataclass(frozen=True)
class _Wave:
    """A shifted sine: the function, its derivative, its first inflection point, and the
    two families ``a + 2 k pi`` of points where its derivative equals ``s``."""

    f: Fn
    df: Fn
    inflection: float
    critical: Callable[[Tensor], tuple[Tensor, Tensor]]


def _sin_critical(s: Tensor) -> tuple[Tensor, Tensor]:
    a = torch.acos(s)
    return a, -a


def _cos_critical(s: Tensor) -> tuple[Tensor, Tensor]:
    a = torch.asin(-s)
    return a, math.pi - a


def _neg_sin(x: Tensor) -> Tensor:
    return -torch.sin(x)


SINE = _Wave(torch.sin, torch.cos, 0.0, _sin_critical)
COSINE = _Wave(torch.cos, _neg_sin, math.pi / 2, _cos_critical)


def _extremes(wave: _Wave, lower: Tensor, upper: Tensor, slope: Tensor) -> tuple[Tensor, Tensor]:
    """``(min, max)`` of ``f(x) - slope x`` over ``[lower, upper]``, widened by rounding slack.

    Valid for intervals shorter than ``2 pi`` (at most two critical points per family).
    """
    lower, upper, slope = torch.broadcast_tensors(lower, upper, slope)
    with torch.no_grad():
        s = slope.clamp(-1.0, 1.0)
        points = []
        for base in wave.critical(s):
            k = torch.floor((lower - base) / TWO_PI)
            for j in (-1.0, 0.0, 1.0, 2.0):
                points.append(torch.clamp(base + TWO_PI * (k + j), lower, upper))
    x = torch.stack([lower, upper, *points], dim=-1)
    g = wave.f(x) - slope.unsqueeze(-1) * x
    eps = torch.finfo(lower.dtype).eps * ROUNDING_SLACK
    reach = torch.maximum(lower.abs(), upper.abs())
    drift = eps * (reach + TWO_PI)  # how far a computed critical point may be off
    slack = eps * (1 + slope.abs() * reach) + drift * drift
    return g.min(dim=-1).values - slack, g.max(dim=-1).values + slack


def _piece_slopes(wave: _Wave, lower: Tensor, upper: Tensor, alpha: Alpha):
    """``(lower slope, upper slope)`` by the piece structure of ``[l, u]`` (module docstring)."""
    width = upper - lower
    with torch.no_grad():
        first = torch.floor((lower - wave.inflection) / math.pi) + 1
        last = torch.ceil((upper - wave.inflection) / math.pi) - 1
        count = (last - first + 1).clamp(min=0)
        convex = wave.f((lower + upper) / 2) < 0
        z = wave.inflection + math.pi * first
        sign = torch.where(wave.df(z) >= 0, 1.0, -1.0).to(lower.dtype)
    al, au = alpha
    chord = safe_divide(wave.f(upper) - wave.f(lower), width)
    # no inflection inside: tangent and chord
    tangent_low = wave.df(lower + al * width)
    tangent_up = wave.df(lower + au * width)
    one_low = torch.where(convex, tangent_low, chord)
    one_up = torch.where(convex, chord, tangent_up)
    # one inflection z inside: f(z + y) = sign * sin(y), S-shaped in y
    rising = sign > 0
    s_lines = s_shaped_lines(
        torch.sin,
        torch.cos,
        lower - z,
        upper - z,
        (torch.where(rising, al, au), torch.where(rising, au, al)),
        careful=False,
    )
    s_low = torch.where(rising, s_lines.lw, -s_lines.uw)
    s_up = torch.where(rising, s_lines.uw, -s_lines.lw)
    low = torch.where(count == 0, one_low, torch.where(count == 1, s_low, chord))
    up = torch.where(count == 0, one_up, torch.where(count == 1, s_up, chord))
    return low, up


def _wave_relax(wave: _Wave):
    def relax(op: Op, lower: Tensor, upper: Tensor, alpha: Alpha = NO_ALPHA) -> LinearBounds:
        half = torch.full_like(lower, 0.5)
        chosen = (alpha_or(alpha, 0, half), alpha_or(alpha, 1, half))
        wide = ~((upper - lower) < TWO_PI)  # NaN-safe: infinite widths are wide
        lo = torch.where(wide, torch.zeros_like(lower), lower)
        hi = torch.where(wide, torch.zeros_like(upper), upper)
        low_slope, up_slope = _piece_slopes(wave, lo, hi, chosen)
        low_slope = torch.where(wide, 0.0, low_slope)
        up_slope = torch.where(wide, 0.0, up_slope)
        lb, _ = _extremes(wave, lo, hi, low_slope)
        _, ub = _extremes(wave, lo, hi, up_slope)
        lb = torch.where(wide, -1.0, lb)
        ub = torch.where(wide, 1.0, ub)
        return LinearBounds(low_slope, lb, up_slope, ub)

    return relax


def _wave_interval(wave: _Wave):
    def interval(op: Op, lower: Tensor, upper: Tensor) -> tuple[Tensor, Tensor]:
        wide = ~((upper - lower) < TWO_PI)
        lo = torch.where(wide, torch.zeros_like(lower), lower)
        hi = torch.where(wide, torch.zeros_like(upper), upper)
        low, high = _extremes(wave, lo, hi, torch.zeros_like(lower))
        low = torch.where(wide, -1.0, low.clamp(min=-1.0))
        high = torch.where(wide, 1.0, high.clamp(max=1.0))
        return low, high

    return interval


def _half_alpha(op: Op, lower: Tensor, upper: Tensor, adaptive: bool) -> Alpha:
    half = torch.full_like(lower, 0.5)
    return half, half


def _wave_record(name: str, wave: _Wave) -> Relaxation:
    return Relaxation(
        name=name,
        interval=_wave_interval(wave),
        relax=_wave_relax(wave),
        backward=elementwise_backward,
        free=lambda op: (True, True),
        default_alpha=_half_alpha,
        needs_bounds=everywhere,
        lp_alphas=((0.0, 0.0), (0.5, 0.5), (1.0, 1.0)),
    )


PERIODIC_RELAXATIONS: dict[type[Op], Relaxation] = {
    Sin: _wave_record("sin", SINE),
    Cos: _wave_record("cos", COSINE),
}
"""The periodic functions."""
