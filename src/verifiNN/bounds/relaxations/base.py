"""The records of the relaxation registry and the helpers every family shares.

A :class:`Relaxation` says how one nonlinear op type is bounded; the family
modules (:mod:`.piecewise`, :mod:`.sshape`, :mod:`.convex`, :mod:`.periodic`,
:mod:`.product`, :mod:`.pooling`) build one record per op type and
:mod:`verifiNN.bounds.relaxations` assembles them into ``RELAXATIONS``.

Floating point. A relaxation must hold in exact arithmetic for the
coefficients it returns. Coefficients computed from library functions
(``exp``, ``log``, ``sin``, ...; accurate to a few ulps) and from chords of
nearly equal values carry rounding errors of a few ulps of the magnitudes
involved; :func:`widen` moves an intercept outward by :data:`ROUNDING_SLACK`
ulps of those magnitudes, which covers them (the new relaxations use it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from verifiNN.ops import Op

__all__ = [
    "NO_ALPHA",
    "ROUNDING_SLACK",
    "Alpha",
    "LinearBounds",
    "PlaneBounds",
    "ProductBounds",
    "Relaxation",
    "WindowBounds",
    "alpha_or",
    "bounded_planes",
    "dot_rows",
    "elementwise_backward",
    "everywhere",
    "guard",
    "guarded_backward",
    "input_bounds",
    "monotone_interval",
    "no_alpha",
    "no_free",
    "no_split_points",
    "plane_backward",
    "safe_divide",
    "sum_rows",
    "unstable",
    "widen",
]

Alpha = tuple[Tensor | None, Tensor | None]
NO_ALPHA: Alpha = (None, None)
ROUNDING_SLACK = 16
"""Ulps of the magnitudes involved by which :func:`widen` moves an intercept outward."""


@dataclass(frozen=True)
class LinearBounds:
    """Elementwise linear bounds ``lw x + lb <= f(x) <= uw x + ub`` (``None`` intercept = 0)."""

    lw: Tensor
    lb: Tensor | None
    uw: Tensor
    ub: Tensor | None


@dataclass(frozen=True)
class WindowBounds:
    """MaxPool bounds: ``x[lower_index] <= y <= uw * x[upper_index] + ub`` per window.

    Index tensors select a cell of each window, shape ``(B, C, L)`` (``L`` output pixels).
    """

    lower_index: Tensor
    upper_index: Tensor
    uw: Tensor
    ub: Tensor
    padded_size: tuple[int, int]


@dataclass(frozen=True)
class PlaneBounds:
    """Bounds of ``z = g(x, y)``: ``a_l x + b_l y + c_l <= z <= a_u x + b_u y + c_u`` elementwise.

    The relaxation of an op of two inputs (the product ``Mul``, ``Max``, ``Min``).
    """

    a_lower: Tensor
    b_lower: Tensor
    c_lower: Tensor
    a_upper: Tensor
    b_upper: Tensor
    c_upper: Tensor


ProductBounds = PlaneBounds
"""The name :class:`PlaneBounds` had when the product was the only op of two inputs."""


def no_split_points(op: Op) -> tuple[float, ...]:
    """A smooth op: no point where its definition changes."""
    return ()


@dataclass(frozen=True)
class Relaxation:
    """How one nonlinear op type is bounded (see :mod:`verifiNN.bounds.relaxations`).

    Attributes:
        name: short name.
        interval: ``(op, l, u) -> (lower, upper)`` of the output.
        relax: ``(op, l, u, alpha) -> LinearBounds | WindowBounds | PlaneBounds``.
        backward: ``(op, relaxation, lam) -> (lam on the input, bias or None)``:
            ``lam^T f(x) >= (returned lam)^T x + bias`` for ``x`` in ``[l, u]``.
        free: ``op -> (lower has a parameter, upper has a parameter)``.
        default_alpha: ``(op, l, u, adaptive) -> alpha`` that reproduces CROWN.
        needs_bounds: ``(op, l, u) -> mask`` of neurons whose bounds matter.
        lp_alphas: parameter values whose relaxations together encode the op in an LP.
        elementwise: the op acts on each neuron alone.
        arity: graph inputs of the op; with more than one, ``interval``,
            ``relax`` and ``default_alpha`` take tuples of lower and upper
            bounds (one per input) and ``backward`` returns one ``lam`` per
            input (see :func:`input_bounds`).
        split_points: ``op -> points`` of the input where the op's piecewise
            definition changes (its kinks and jumps): splitting an input
            interval there makes each part's relaxation exact (ReLU: ``(0,)``;
            ``Clip(a, b)``: ``(a, b)``). For an op of two inputs the points are
            values of ``x_0 - x_1`` (``Max``: ``(0,)``, split on ``x_0 >= x_1``).
            Smooth ops have none (the default); branch and bound may split
            them anywhere.
    """

    name: str
    interval: Callable[[Op, Tensor, Tensor], tuple[Tensor, Tensor]]
    relax: Callable[[Op, Tensor, Tensor, Alpha], Any]
    backward: Callable[[Op, Any, Tensor], tuple[Tensor, Tensor | None]]
    free: Callable[[Op], tuple[bool, bool]]
    default_alpha: Callable[[Op, Tensor, Tensor, bool], Alpha]
    needs_bounds: Callable[[Op, Tensor, Tensor], Tensor]
    lp_alphas: tuple[tuple[float, float], ...] = ()
    elementwise: bool = True
    arity: int = 1
    split_points: Callable[[Op], tuple[float, ...]] = no_split_points


def input_bounds(record: Relaxation, node: Any, bounds: Any) -> tuple[Any, Any]:
    """``(lower, upper)`` of a nonlinear node's input for its relaxation's functions: the
    tensors of its one input, or tuples of them for an op of several inputs."""
    if record.arity == 1:
        b = bounds[node.inputs[0]]
        return b.lower, b.upper
    parts = [bounds[name] for name in node.inputs]
    return tuple(b.lower for b in parts), tuple(b.upper for b in parts)


# ------------------------------------------------------------------ helpers
def monotone_interval(op: Op, lower: Tensor, upper: Tensor) -> tuple[Tensor, Tensor]:
    """The interval of a non-decreasing op: its values at the ends."""
    return op.forward(lower), op.forward(upper)


def sum_rows(t: Tensor) -> Tensor:
    """Sum every dimension after ``(B, m)``."""
    return t.flatten(2).sum(-1)


def dot_rows(lam: Tensor, vec: Tensor) -> Tensor:
    """``sum_s lam[b, m, s] * vec[b, ., s]`` as ``(B, m)`` (a matmul when ``vec`` has one row)."""
    if vec.shape[1] == 1:
        return (lam.flatten(2) @ vec.flatten(2).transpose(1, 2)).squeeze(-1)
    return sum_rows(lam * vec)


def _expand_lines(lin: LinearBounds, lam: Tensor) -> tuple[Tensor, Tensor, Any, Any]:
    lw, uw, lb, ub = lin.lw, lin.uw, lin.lb, lin.ub
    if lw.dim() < lam.dim():
        lw, uw = lw.unsqueeze(1), uw.unsqueeze(1)
        lb = None if lb is None else lb.unsqueeze(1)
        ub = None if ub is None else ub.unsqueeze(1)
    return lw, uw, lb, ub


def _chosen_slopes(lam: Tensor, lw: Tensor, uw: Tensor) -> Tensor:
    """``lam+ lw + lam- uw``, as written: the shortcut ``lam uw + lam+ (lw - uw)``
    absorbs ``lw`` when ``uw`` is 2^53 times larger (exp's chord over a wide interval),
    which made CROWN bound ``exp`` on [-60, 60] below by 1 instead of ~0. Computed as
    ``lam * (lw where lam >= 0 else uw)``: the same products, one multiplication."""
    return lam * torch.where(lam >= 0, lw, uw)


def elementwise_backward(op: Op, lin: LinearBounds, lam: Tensor) -> tuple[Tensor, Tensor | None]:
    """``lam^T f(x) >= (lam+ lw + lam- uw)^T x + lam+ . lb + lam- . ub``."""
    lw, uw, lb, ub = _expand_lines(lin, lam)
    new = _chosen_slopes(lam, lw, uw)
    bias = None
    if lb is not None:
        bias = dot_rows(lam.clamp(min=0), lb)
    if ub is not None:
        term = dot_rows(lam.clamp(max=0), ub)
        bias = term if bias is None else bias + term
    return new, bias


def guarded_backward(op: Op, lin: LinearBounds, lam: Tensor) -> tuple[Tensor, Tensor | None]:
    """:func:`elementwise_backward` for lines whose intercepts may be infinite.

    An unbounded side (``lb = -inf`` or ``ub = inf``, slope 0) contributes
    nothing where its coefficient is 0 (instead of ``0 * inf = nan``) and
    ``-inf`` where it is used.
    """
    finite = all(t is None or bool(torch.isfinite(t).all()) for t in (lin.lb, lin.ub))
    if finite:
        return elementwise_backward(op, lin, lam)
    lw, uw, lb, ub = _expand_lines(lin, lam)
    new = _chosen_slopes(lam, lw, uw)
    pos, neg = lam.clamp(min=0), lam.clamp(max=0)
    bias = sum_rows(torch.where(pos > 0, pos * lb, torch.zeros_like(pos)))
    bias = bias + sum_rows(torch.where(neg < 0, neg * ub, torch.zeros_like(neg)))
    return new, bias


def plane_backward(op: Op, pb: PlaneBounds, lam: Tensor) -> tuple[list[Tensor], Tensor]:
    """``lam^T g(x, y) >= (lam+ a_l + lam- a_u)^T x + (lam+ b_l + lam- b_u)^T y + ...``.

    An infinite intercept (an unbounded side, coefficients 0) contributes nothing where
    its multiplier is 0 (instead of ``0 * inf = nan``).
    """
    terms = [pb.a_lower, pb.b_lower, pb.c_lower, pb.a_upper, pb.b_upper, pb.c_upper]
    if terms[0].dim() < lam.dim():
        terms = [t.unsqueeze(1) for t in terms]
    a_l, b_l, c_l, a_u, b_u, c_u = terms
    pos, neg = lam.clamp(min=0), lam.clamp(max=0)
    if bool(torch.isfinite(pb.c_lower).all() & torch.isfinite(pb.c_upper).all()):
        bias = dot_rows(pos, c_l) + dot_rows(neg, c_u)
    else:
        zero = torch.zeros_like(pos)
        bias = sum_rows(torch.where(pos > 0, pos * c_l, zero))
        bias = bias + sum_rows(torch.where(neg < 0, neg * c_u, zero))
    return [pos * a_l + neg * a_u, pos * b_l + neg * b_u], bias


def bounded_planes(pb: PlaneBounds, low: Tensor, high: Tensor, finite: Tensor) -> PlaneBounds:
    """``pb`` where ``finite``, else the constant planes ``low`` and ``high`` (coefficients 0):
    the fallback of a relaxation of two inputs when a bound is infinite."""
    zero = torch.zeros_like(low)

    def pick(value: Tensor, constant: Tensor) -> Tensor:
        return torch.where(finite, value, constant)

    return PlaneBounds(
        pick(pb.a_lower, zero),
        pick(pb.b_lower, zero),
        pick(pb.c_lower, low),
        pick(pb.a_upper, zero),
        pick(pb.b_upper, zero),
        pick(pb.c_upper, high),
    )


def unstable(op: Op, lower: Tensor, upper: Tensor) -> Tensor:
    """Neurons whose interval holds 0 inside (the kink of ReLU-like ops)."""
    return (lower < 0) & (upper > 0)


def everywhere(op: Op, lower: Tensor, upper: Tensor) -> Tensor:
    """Every neuron's bounds matter (smooth ops)."""
    return torch.ones_like(lower, dtype=torch.bool)


def no_free(op: Op) -> tuple[bool, bool]:
    """No free parameter on either side."""
    return (False, False)


def no_alpha(op: Op, lower: Any, upper: Any, adaptive: bool) -> Alpha:
    """CROWN's parameters of an op without free parameters: none."""
    return NO_ALPHA


def alpha_or(alpha: Any, side: int, default: Tensor | float) -> Tensor | float:
    """``alpha[side]`` when given (not ``None``), else ``default``."""
    if alpha is None or len(alpha) <= side or alpha[side] is None:
        return default
    return alpha[side]


def safe_divide(num: Tensor, den: Tensor) -> Tensor:
    """``num / den`` where ``den != 0``, else 0 (no infinite value, no NaN gradient)."""
    nonzero = den != 0
    return torch.where(nonzero, num / torch.where(nonzero, den, torch.ones_like(den)), 0.0)


def widen(
    slope: Tensor, intercept: Tensor, lower: Tensor, upper: Tensor, scale: Tensor, upward: bool
) -> Tensor:
    """``intercept`` moved outward (up for an upper line) by :data:`ROUNDING_SLACK` ulps of
    ``|intercept| + |slope| max(|l|, |u|) + scale`` (``scale``: the function values used)."""
    eps = torch.finfo(intercept.dtype).eps * ROUNDING_SLACK
    reach = torch.maximum(lower.abs(), upper.abs())
    size = intercept.abs() + slope.abs() * reach + scale.abs()
    size = torch.where(torch.isfinite(size), size, torch.zeros_like(size))
    return intercept + eps * size if upward else intercept - eps * size


def guard(slope: Tensor, intercept: Tensor, bad: Tensor, constant: Tensor) -> tuple[Tensor, Tensor]:
    """Replace the line where ``bad`` by the constant line ``constant`` (slope 0)."""
    return (
        torch.where(bad, torch.zeros_like(slope), slope),
        torch.where(bad, constant, intercept),
    )
