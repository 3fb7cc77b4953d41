"""The one registry of nonlinearity relaxations, read by IBP, CROWN, alpha-CROWN and the LP.

:data:`RELAXATIONS` maps every nonlinear op type to a frozen
:class:`Relaxation` record. Given sound bounds ``l <= x <= u`` of an op's input,
a record gives

* ``interval(op, l, u)``: bounds of the output (interval bound propagation);
* ``relax(op, l, u, alpha)``: a linear lower and upper bound of the op valid on
  ``[l, u]`` (for elementwise ops ``lw x + lb <= f(x) <= uw x + ub``), possibly
  chosen by free parameters ``alpha = (alpha_lower, alpha_upper)`` in ``[0, 1]``
  (``None``: CROWN's default choice);
* ``backward(op, relaxation, lam)``: how a linear function ``lam^T f(x)`` is
  bounded from below by a linear function of ``x`` (CROWN's backward step);
* ``free(op)``: which of the lower/upper bounds have a free parameter
  (alpha-CROWN optimises exactly those);
* ``needs_bounds(op, l, u)``: the neurons whose relaxation depends on their
  bounds (CROWN computes tight intermediate bounds only for them);
* ``lp_alphas``: parameter values whose relaxations, taken together, make the
  op's LP encoding (for the ReLU: slopes 0 and 1, i.e. the triangle of
  Ehlers 2017).

Relaxations (all sound for any ``alpha`` in ``[0, 1]``):

* ReLU: upper chord, lower line ``alpha x`` for unstable neurons; the default
  ``alpha`` is the adaptive choice ``1[u > -l]`` (Zhang et al. 2018, CROWN;
  Singh et al. 2019, DeepPoly).
* LeakyReLU(a): ``a x + (1 - a) relu(x)``, i.e. the ReLU relaxation scaled
  (its free parameter moves to the upper bound when ``a > 1``).
* Sigmoid, Tanh (S-shaped, inflection at 0, ``f(x) = 2 f(0) - f(-x)``): Zhang
  et al. 2018, Sec. 3.2. Upper bound: on the convex side (``u <= 0``) the
  chord; on the concave side (``l >= 0``) the tangent at ``l + alpha (u - l)``;
  across the inflection the chord when it is above the function, else the
  tangent at ``t = d + alpha (u - d)``, where ``d >= 0`` is the tangent point
  whose tangent passes through ``(l, f(l))`` (found by bisection, rounded up,
  so every such tangent stays above ``f(l)``). Lower bounds by the symmetry.
* Mul (the product ``z = x y`` of two nodes, arity 2): McCormick's envelope
  (McCormick 1976, "Computability of global solutions to factorable nonconvex
  programs"): ``z >= ly x + lx y - lx ly``, ``z >= uy x + ux y - ux uy``,
  ``z <= uy x + lx y - lx uy``, ``z <= ly x + ux y - ux ly``; a linear bound
  uses the average of each pair (valid as a convex combination of valid
  planes), as for the attention products of Shi et al. 2020. Its interval is
  the min/max of the four corner products.
* MaxPool: lower ``y >= x_j`` with ``j`` the window's largest lower bound; upper
  ``y <= M + (u_k - M) / (u_k - l_k) (x_k - l_k)`` with ``k`` the largest upper
  bound and ``M`` the window's second largest upper bound (``y = x_k`` when
  ``l_k >= M``). Valid because ``max(x) <= max(x_k, M) = M + relu(x_k - M)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from verifiNN.ops import LeakyReLU, MaxPool2d, Mul, Op, ReLU, Sigmoid, Tanh

__all__ = [
    "RELAXATIONS",
    "Alpha",
    "LinearBounds",
    "ProductBounds",
    "Relaxation",
    "WindowBounds",
    "input_bounds",
    "relu_parts",
    "s_shaped_upper",
]

Alpha = tuple[Tensor | None, Tensor | None]
_NO_ALPHA: Alpha = (None, None)
BISECTION_STEPS = 40


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
class ProductBounds:
    """Bounds of ``z = x y``: ``a_l x + b_l y + c_l <= z <= a_u x + b_u y + c_u`` elementwise."""

    a_lower: Tensor
    b_lower: Tensor
    c_lower: Tensor
    a_upper: Tensor
    b_upper: Tensor
    c_upper: Tensor


@dataclass(frozen=True)
class Relaxation:
    """How one nonlinear op type is bounded (see the module docstring).

    Attributes:
        name: short name.
        interval: ``(op, l, u) -> (lower, upper)`` of the output.
        relax: ``(op, l, u, alpha) -> LinearBounds | WindowBounds``.
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


def input_bounds(record: Relaxation, node: Any, bounds: Any) -> tuple[Any, Any]:
    """``(lower, upper)`` of a nonlinear node's input for its relaxation's functions: the
    tensors of its one input, or tuples of them for an op of several inputs."""
    if record.arity == 1:
        b = bounds[node.inputs[0]]
        return b.lower, b.upper
    parts = [bounds[name] for name in node.inputs]
    return tuple(b.lower for b in parts), tuple(b.upper for b in parts)


# ------------------------------------------------------------------ helpers
def _monotone_interval(op: Op, lower: Tensor, upper: Tensor) -> tuple[Tensor, Tensor]:
    return op.forward(lower), op.forward(upper)


def _sum_rows(t: Tensor) -> Tensor:
    """Sum every dimension after ``(B, m)``."""
    return t.flatten(2).sum(-1)


def _elementwise_backward(op: Op, lin: LinearBounds, lam: Tensor) -> tuple[Tensor, Tensor | None]:
    """``lam^T f(x) >= (lam+ lw + lam- uw)^T x + lam+ . lb + lam- . ub``."""
    lw, uw, lb, ub = lin.lw, lin.uw, lin.lb, lin.ub
    if lw.dim() < lam.dim():
        lw, uw = lw.unsqueeze(1), uw.unsqueeze(1)
        lb = None if lb is None else lb.unsqueeze(1)
        ub = None if ub is None else ub.unsqueeze(1)
    # lam+ lw + lam- uw = lam uw + lam+ (lw - uw): two passes fewer than a where().
    new = torch.addcmul(lam * uw, lam.clamp(min=0), lw - uw)
    bias = None
    if lb is not None:
        bias = _dot_rows(lam.clamp(min=0), lb)
    if ub is not None:
        term = _dot_rows(lam.clamp(max=0), ub)
        bias = term if bias is None else bias + term
    return new, bias


def _dot_rows(lam: Tensor, vec: Tensor) -> Tensor:
    """``sum_s lam[b, m, s] * vec[b, ., s]`` as ``(B, m)`` (a matmul when ``vec`` has one row)."""
    if vec.shape[1] == 1:
        return (lam.flatten(2) @ vec.flatten(2).transpose(1, 2)).squeeze(-1)
    return _sum_rows(lam * vec)


def _unstable(op: Op, lower: Tensor, upper: Tensor) -> Tensor:
    return (lower < 0) & (upper > 0)


def _everywhere(op: Op, lower: Tensor, upper: Tensor) -> Tensor:
    return torch.ones_like(lower, dtype=torch.bool)


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
    unstable = (lower < 0) & (upper > 0)
    width = torch.where(unstable, upper - lower, torch.ones_like(lower))
    slope = torch.where(unstable, upper / width, active)
    intercept = -slope * lower.clamp(max=0)
    if alpha is None:
        alpha = (upper > -lower).to(lower.dtype)
    return torch.where(unstable, alpha, active), slope, intercept


def _relu_relax(op: Op, lower: Tensor, upper: Tensor, alpha: Alpha = _NO_ALPHA) -> LinearBounds:
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


def _leaky_relax(op: LeakyReLU, lower: Tensor, upper: Tensor, alpha: Alpha = _NO_ALPHA):
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


# --------------------------------------------------------- Sigmoid and Tanh
def _sigmoid_fns() -> tuple[Callable[[Tensor], Tensor], Callable[[Tensor], Tensor], float]:
    def derivative(x: Tensor) -> Tensor:
        s = torch.sigmoid(x)
        return s * (1 - s)

    return torch.sigmoid, derivative, 0.5


def _tanh_fns() -> tuple[Callable[[Tensor], Tensor], Callable[[Tensor], Tensor], float]:
    def derivative(x: Tensor) -> Tensor:
        return 1 - torch.tanh(x) ** 2

    return torch.tanh, derivative, 0.0


def _tangent_point(f, df, lower: Tensor, upper: Tensor) -> Tensor:
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


def s_shaped_upper(
    f, df, lower: Tensor, upper: Tensor, alpha: Tensor | None
) -> tuple[Tensor, Tensor]:
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


def _s_relax(fns):
    def relax(op: Op, lower: Tensor, upper: Tensor, alpha: Alpha = _NO_ALPHA) -> LinearBounds:
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


# ------------------------------------------------------------------ MaxPool
def _windows(op: MaxPool2d, x: Tensor) -> tuple[Tensor, tuple[int, int]]:
    """``(B, C, H, W) -> (B, C, K, L)`` windows of the ``-inf``-padded input."""
    top, left, bottom, right = op.padding
    padded = F.pad(x, (left, right, top, bottom), value=float("-inf"))
    cols = F.unfold(padded, op.kernel, stride=op.stride)
    b, c = x.shape[:2]
    return cols.reshape(b, c, op.kernel[0] * op.kernel[1], -1), tuple(padded.shape[-2:])


def _maxpool_relax(op: MaxPool2d, lower: Tensor, upper: Tensor, alpha: Alpha = _NO_ALPHA):
    low, size = _windows(op, lower)
    high, _ = _windows(op, upper)
    lower_index = low.argmax(dim=2)
    if high.shape[2] > 1:
        top2 = high.topk(2, dim=2)
        upper_index, u_k, second = top2.indices[:, :, 0], top2.values[:, :, 0], top2.values[:, :, 1]
    else:
        upper_index, u_k = high.argmax(dim=2), high.max(dim=2).values
        second = torch.full_like(u_k, float("-inf"))
    l_k = low.gather(2, upper_index.unsqueeze(2)).squeeze(2)
    exact = l_k >= second
    safe_m = torch.where(exact, u_k, second)
    gap = torch.where(exact, torch.ones_like(u_k), u_k - l_k)
    slope = torch.where(exact, torch.ones_like(u_k), (u_k - safe_m) / gap)
    intercept = torch.where(exact, torch.zeros_like(u_k), safe_m - slope * l_k)
    return WindowBounds(lower_index, upper_index, slope, intercept, size)


def _maxpool_backward(op: MaxPool2d, wb: WindowBounds, lam: Tensor) -> tuple[Tensor, Tensor | None]:
    _, channels, length = wb.lower_index.shape
    # one set of window bounds may serve a batch of domains (ReLU BaB) and vice versa
    batch = max(lam.shape[0], wb.lower_index.shape[0])
    rows = lam.shape[1]
    lam = lam.expand(batch, *lam.shape[1:]).reshape(batch, rows, channels, length)
    pos = lam.clamp(min=0)
    neg = lam - pos
    k = op.kernel[0] * op.kernel[1]
    shape = (batch, rows, channels, 1, length)
    cols = lam.new_zeros(batch, rows, channels, k, length)
    cols = cols.scatter_add(3, wb.lower_index[:, None, :, None, :].expand(shape), pos.unsqueeze(3))
    upper_part = (neg * wb.uw.unsqueeze(1)).unsqueeze(3)
    cols = cols.scatter_add(3, wb.upper_index[:, None, :, None, :].expand(shape), upper_part)
    bias = (neg * wb.ub.unsqueeze(1)).sum((2, 3))
    folded = F.fold(
        cols.reshape(batch * rows, channels * k, length),
        wb.padded_size,
        op.kernel,
        stride=op.stride,
    )
    top, left, bottom, right = op.padding
    height, width = wb.padded_size[0] - top - bottom, wb.padded_size[1] - left - right
    folded = folded[:, :, top : top + height, left : left + width]
    return folded.reshape(batch, rows, channels, height, width), bias


# ---------------------------------------------------------------------- Mul
def _product_interval(op: Mul, lowers, uppers) -> tuple[Tensor, Tensor]:
    (lx, ly), (ux, uy) = lowers, uppers
    corners = torch.stack([lx * ly, lx * uy, ux * ly, ux * uy])
    return corners.min(0).values, corners.max(0).values


def _product_relax(op: Mul, lowers, uppers, alpha: Alpha = _NO_ALPHA) -> ProductBounds:
    """McCormick's two lower and two upper planes, averaged (see the module docstring)."""
    (lx, ly), (ux, uy) = lowers, uppers
    return ProductBounds(
        a_lower=(ly + uy) / 2,
        b_lower=(lx + ux) / 2,
        c_lower=-(lx * ly + ux * uy) / 2,
        a_upper=(uy + ly) / 2,
        b_upper=(lx + ux) / 2,
        c_upper=-(lx * uy + ux * ly) / 2,
    )


def _product_backward(op: Mul, pb: ProductBounds, lam: Tensor) -> tuple[list[Tensor], Tensor]:
    """``lam^T (x y) >= (lam+ a_l + lam- a_u)^T x + (lam+ b_l + lam- b_u)^T y + ...``."""
    terms = [pb.a_lower, pb.b_lower, pb.c_lower, pb.a_upper, pb.b_upper, pb.c_upper]
    if terms[0].dim() < lam.dim():
        terms = [t.unsqueeze(1) for t in terms]
    a_l, b_l, c_l, a_u, b_u, c_u = terms
    pos, neg = lam.clamp(min=0), lam.clamp(max=0)
    bias = _dot_rows(pos, c_l) + _dot_rows(neg, c_u)
    return [pos * a_l + neg * a_u, pos * b_l + neg * b_u], bias


def _no_free(op: Op) -> tuple[bool, bool]:
    return (False, False)


def _no_alpha(op: Op, lower: Tensor, upper: Tensor, adaptive: bool) -> Alpha:
    return _NO_ALPHA


# ----------------------------------------------------------------- registry
RELAXATIONS: dict[type[Op], Relaxation] = {
    ReLU: Relaxation(
        name="relu",
        interval=_monotone_interval,
        relax=_relu_relax,
        backward=_elementwise_backward,
        free=lambda op: (True, False),
        default_alpha=_relu_alpha,
        needs_bounds=_unstable,
        lp_alphas=((0.0, 0.0), (1.0, 0.0)),
    ),
    LeakyReLU: Relaxation(
        name="leaky_relu",
        interval=_leaky_interval,
        relax=_leaky_relax,
        backward=_elementwise_backward,
        free=_leaky_free,
        default_alpha=_leaky_alpha,
        needs_bounds=_unstable,
        lp_alphas=((0.0, 0.0), (1.0, 1.0)),
    ),
    Sigmoid: Relaxation(
        name="sigmoid",
        interval=_monotone_interval,
        relax=_s_relax(_sigmoid_fns),
        backward=_elementwise_backward,
        free=lambda op: (True, True),
        default_alpha=_s_alpha,
        needs_bounds=_everywhere,
        lp_alphas=((0.0, 0.0), (0.5, 0.5), (1.0, 1.0)),
    ),
    Tanh: Relaxation(
        name="tanh",
        interval=_monotone_interval,
        relax=_s_relax(_tanh_fns),
        backward=_elementwise_backward,
        free=lambda op: (True, True),
        default_alpha=_s_alpha,
        needs_bounds=_everywhere,
        lp_alphas=((0.0, 0.0), (0.5, 0.5), (1.0, 1.0)),
    ),
    Mul: Relaxation(
        name="product",
        interval=_product_interval,
        relax=_product_relax,
        backward=_product_backward,
        free=_no_free,
        default_alpha=_no_alpha,
        needs_bounds=_everywhere,
        elementwise=False,
        arity=2,
    ),
    MaxPool2d: Relaxation(
        name="maxpool",
        interval=_monotone_interval,
        relax=_maxpool_relax,
        backward=_maxpool_backward,
        free=_no_free,
        default_alpha=_no_alpha,
        needs_bounds=_everywhere,
        elementwise=False,
    ),
}
"""Nonlinear op type -> its relaxation record (the only place relaxations live)."""
