"""Backward (vector-Jacobian) and interval rules of the affine ops.

:data:`AFFINE_RULES` maps every affine op type of the IR to a frozen
:class:`AffineRule`:

* ``backward(op, lam, input_shapes)``: for an affine ``y = A x + c`` and a batch
  of linear functions ``lam`` of shape ``(B, m, *out_shape)``, return ``A^T lam``
  per input (``(B, m, *in_shape)``) and the offset ``lam . c`` (``(B, m)`` or
  ``None`` when ``c = 0``): the step of CROWN's backward pass through the op;
* ``interval(op, lowers, uppers)``: interval bounds of the output (center-radius
  form with ``|A|``, or monotone evaluation when ``A >= 0``).

Fast rules exist for every affine op of the IR (matmul for Dense and
ConstMatMul, ``conv_transpose2d`` for Conv2d and AvgPool2d, ``conv2d`` for
ConvTranspose2d, permutations, scatters and sums for the selections); any other affine op falls back
to :func:`generic_rule` (``torch.func.vjp`` at zero), so an affine op added to
the IR works at once, only more slowly.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from verifiNN.ops import (
    Add,
    AvgPool2d,
    Broadcast,
    Concat,
    ConcatWithConstants,
    ConstMatMul,
    Conv2d,
    ConvTranspose2d,
    Dense,
    ElementwiseAffine,
    Flatten,
    Gather,
    Identity,
    Op,
    Pad,
    ReduceSum,
    Reshape,
    Shape,
    Slice,
    Transpose,
)

__all__ = ["AFFINE_RULES", "AffineRule", "affine_rule", "dense_backward", "generic_rule"]

Backward = Callable[[Op, Tensor, Sequence[Shape]], tuple[list[Tensor], Tensor | None]]
IntervalRule = Callable[[Op, Sequence[Tensor], Sequence[Tensor]], tuple[Tensor, Tensor]]


@dataclass(frozen=True)
class AffineRule:
    """How an affine op is propagated backward (CROWN) and forward (IBP)."""

    backward: Backward
    interval: IntervalRule


def _sum_rows(t: Tensor) -> Tensor:
    return t.flatten(2).sum(-1)


def _rows(lam: Tensor) -> tuple[int, int]:
    return int(lam.shape[0]), int(lam.shape[1])


def _monotone(op: Op, lowers: Sequence[Tensor], uppers: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
    """Interval of an affine op with nonnegative coefficients."""
    return op.forward(*lowers), op.forward(*uppers)


def _transposed_padding(out_size: int, padded: int, stride: int, dilation: int, k: int) -> int:
    """``output_padding`` that makes ``conv_transpose2d`` return the padded input size."""
    return padded - ((out_size - 1) * stride + dilation * (k - 1) + 1)


# --------------------------------------------------------------------- Dense
def _dense_backward(op: Dense, lam: Tensor, shapes: Sequence[Shape]):
    return [dense_backward(op, lam)], lam @ op.bias


#: Below this many weights (e.g. ACAS Xu's 50x50 layers) the scan for zero
#: columns costs more than it saves.
_SKIP_MIN_WEIGHTS = 2**15


def dense_backward(op: Dense, lam: Tensor) -> Tensor:
    """``lam @ W``, skipping the columns of ``lam`` that are zero in every row.

    Backward passes meet such columns after every ReLU layer: a stably inactive
    neuron has zero slopes, so its column is exactly zero for all regions of the
    batch. In deep MNIST MLPs most neurons of the first layers are inactive,
    which makes the matmuls through them several times smaller. The product is
    exact either way (the skipped terms are zeros).
    """
    weight = op.weight
    if weight.numel() < _SKIP_MIN_WEIGHTS:
        return lam @ weight
    live = lam.flatten(0, -2).ne(0).any(0)
    count = int(live.sum())
    if count > 0.75 * live.numel():
        return lam @ weight
    index = live.nonzero().squeeze(1)
    return lam.index_select(-1, index) @ weight.index_select(0, index)


def split_interval(
    apply: Callable[[Tensor, Tensor], Tensor], weight: Tensor, lower: Tensor, upper: Tensor
) -> tuple[Tensor, Tensor]:
    """Interval of ``x -> apply(x, weight)`` (linear in ``x`` and in ``weight``) over a box,
    as ``W+ l + W- u`` and ``W+ u + W- l``.

    Not the centre-radius form ``W mid -+ |W| rad``: with huge ends (``1e17``) the two
    products cancel and absorb every smaller term, and with infinite ends they are
    ``inf - inf``. A ``0 * inf`` product left here is NaN; it becomes the side's
    infinity, which is sound.
    """
    pos, neg = weight.clamp(min=0), weight.clamp(max=0)
    low = apply(lower, pos) + apply(upper, neg)
    high = apply(upper, pos) + apply(lower, neg)
    return low.nan_to_num(-math.inf, posinf=math.inf), high.nan_to_num(math.inf, neginf=-math.inf)


def _unbiased(op: Op) -> Callable[[Tensor, Tensor], Tensor]:
    """``(x, w) -> op`` with weight ``w`` and no bias, applied to ``x`` (for
    :func:`split_interval`; the bias is added once afterwards)."""

    def apply(x: Tensor, weight: Tensor) -> Tensor:
        zero = torch.zeros_like(op.bias)
        return dataclasses.replace(op, weight=weight, bias=zero).forward(x)

    return apply


def _with_bias(interval: tuple[Tensor, Tensor], bias: Tensor) -> tuple[Tensor, Tensor]:
    return interval[0] + bias, interval[1] + bias


def _dense_interval(op: Dense, lowers, uppers):
    interval = split_interval(F.linear, op.weight, lowers[0], uppers[0])
    return _with_bias(interval, op.bias)


# -------------------------------------------------------------------- Conv2d
def _conv_backward(op: Conv2d, lam: Tensor, shapes: Sequence[Shape]):
    (c_in, h, w) = shapes[0]
    bl, m = _rows(lam)
    flat = lam.reshape(bl * m, *lam.shape[2:])
    top, left, bottom, right = op.padding
    kh, kw = op.weight.shape[2:]
    pads = (
        _transposed_padding(flat.shape[2], h + top + bottom, op.stride[0], op.dilation[0], kh),
        _transposed_padding(flat.shape[3], w + left + right, op.stride[1], op.dilation[1], kw),
    )
    grad = F.conv_transpose2d(flat, op.weight, None, op.stride, 0, pads, op.groups, op.dilation)
    grad = grad[:, :, top : top + h, left : left + w]
    bias = lam.sum((3, 4)) @ op.bias
    return [grad.reshape(bl, m, c_in, h, w)], bias


def _conv_interval(op: Conv2d, lowers, uppers):
    interval = split_interval(_unbiased(op), op.weight, lowers[0], uppers[0])
    return _with_bias(interval, op.bias[:, None, None])


# ------------------------------------------------------- elementwise affine
def _ew_backward(op: ElementwiseAffine, lam: Tensor, shapes: Sequence[Shape]):
    return [lam * op.scale], _sum_rows(lam * op.shift)


def _ew_interval(op: ElementwiseAffine, lowers, uppers):
    def apply(x: Tensor, scale: Tensor) -> Tensor:
        return torch.where(scale == 0, torch.zeros_like(x), x * scale)

    return _with_bias(split_interval(apply, op.scale, lowers[0], uppers[0]), op.shift)


# ------------------------------------------------------------------ AvgPool2d
def _avgpool_backward(op: AvgPool2d, lam: Tensor, shapes: Sequence[Shape]):
    (c, h, w) = shapes[0]
    bl, m = _rows(lam)
    flat = lam.reshape(bl * m, *lam.shape[2:])
    top, left, bottom, right = op.padding
    kh, kw = op.kernel
    if op.count_include_pad:
        flat = flat / (kh * kw)
    else:
        ones = F.pad(lam.new_ones(1, 1, h, w), (left, right, top, bottom))
        flat = flat / F.avg_pool2d(ones, op.kernel, op.stride, divisor_override=1)
    pads = (
        _transposed_padding(flat.shape[2], h + top + bottom, op.stride[0], 1, kh),
        _transposed_padding(flat.shape[3], w + left + right, op.stride[1], 1, kw),
    )
    weight = lam.new_ones(c, 1, kh, kw)
    grad = F.conv_transpose2d(flat, weight, None, op.stride, 0, pads, c)
    grad = grad[:, :, top : top + h, left : left + w]
    return [grad.reshape(bl, m, c, h, w)], None


# ------------------------------------------------------------ wiring ops
def _reshape_backward(op: Op, lam: Tensor, shapes: Sequence[Shape]):
    bl, m = _rows(lam)
    return [lam.reshape(bl, m, *shapes[0])], None


def _identity_backward(op: Op, lam: Tensor, shapes: Sequence[Shape]):
    return [lam], None


def _pad_backward(op: Pad, lam: Tensor, shapes: Sequence[Shape]):
    top, left, _, _ = op.pads
    h, w = shapes[0][-2:]
    inner = lam[..., top : top + h, left : left + w]
    bias = None
    if op.value != 0:
        bias = op.value * (_sum_rows(lam) - _sum_rows(inner))
    return [inner], bias


def _slice_backward(op: Slice, lam: Tensor, shapes: Sequence[Shape]):
    bl, m = _rows(lam)
    grad = lam.new_zeros(bl, m, *shapes[0])
    grad[(slice(None), *op._index(len(shapes[0])))] = lam
    return [grad], None


def _concat_backward(op: Concat, lam: Tensor, shapes: Sequence[Shape]):
    sizes = [s[op.axis] for s in shapes]
    return list(torch.split(lam, sizes, dim=op.axis + 2)), None


def _add_backward(op: Add, lam: Tensor, shapes: Sequence[Shape]):
    return [lam, lam], None


def _add_interval(op: Add, lowers, uppers):
    return lowers[0] + lowers[1], uppers[0] + uppers[1]


# ---------------------------------------------------------------- ConstMatMul
def _sum_to(t: Tensor, shape: Shape) -> Tensor:
    """Sum ``t`` of shape ``(B, m, *s)`` down to ``(B, m, *shape)``: the adjoint of the
    broadcasting of a ``shape`` tensor to ``s``."""
    lead = t.dim() - 2 - len(shape)
    if lead > 0:
        t = t.sum(dim=tuple(range(2, 2 + lead)))
    dims = [i + 2 for i, d in enumerate(shape) if d == 1 and t.shape[i + 2] != 1]
    return t.sum(dim=dims, keepdim=True) if dims else t


def _matmul_backward(op: ConstMatMul, lam: Tensor, shapes: Sequence[Shape]):
    weight_t = op.weight.transpose(-1, -2)
    grad = torch.matmul(weight_t, lam) if op.left else torch.matmul(lam, weight_t)
    return [_sum_to(grad, shapes[0])], _sum_rows(lam * op.bias)


def _matmul_interval(op: ConstMatMul, lowers, uppers):
    interval = split_interval(_unbiased(op), op.weight, lowers[0], uppers[0])
    return _with_bias(interval, op.bias)


# ----------------------------------------------------------- ConvTranspose2d
def _conv_transpose_backward(op: ConvTranspose2d, lam: Tensor, shapes: Sequence[Shape]):
    """The adjoint of a transposed convolution is the convolution with the same weight;
    the adjoint of the final crop/zero-extension is the opposite ``F.pad``."""
    bl, m = _rows(lam)
    flat = lam.reshape(bl * m, *lam.shape[2:])
    full = F.pad(flat, tuple(-p for p in op.crop()))
    grad = F.conv2d(full, op.weight, None, op.stride, 0, op.dilation, op.groups)
    bias = lam.sum((3, 4)) @ op.bias
    return [grad.reshape(bl, m, *shapes[0])], bias


def _conv_transpose_interval(op: ConvTranspose2d, lowers, uppers):
    interval = split_interval(_unbiased(op), op.weight, lowers[0], uppers[0])
    return _with_bias(interval, op.bias[:, None, None])


# ----------------------------------------------------------------- ReduceSum
def _reduce_backward(op: ReduceSum, lam: Tensor, shapes: Sequence[Shape]):
    bl, m = _rows(lam)
    return [(lam * op.scale).expand(bl, m, *shapes[0])], None


def _reduce_interval(op: ReduceSum, lowers, uppers):
    low, high = op.forward(lowers[0]), op.forward(uppers[0])
    return (low, high) if op.scale >= 0 else (high, low)


# ------------------------------------------------------------ selections
def _transpose_backward(op: Transpose, lam: Tensor, shapes: Sequence[Shape]):
    inverse = sorted(range(len(op.perm)), key=op.perm.__getitem__)
    return [lam.permute(0, 1, *(i + 2 for i in inverse))], None


def _gather_backward(op: Gather, lam: Tensor, shapes: Sequence[Shape]):
    bl, m = _rows(lam)
    grad = lam.new_zeros(bl, m, *shapes[0])
    grad.index_add_(op.axis + 2, op.index.to(lam.device), lam)
    return [grad], None


def _broadcast_backward(op: Broadcast, lam: Tensor, shapes: Sequence[Shape]):
    return [_sum_to(lam, shapes[0])], None


def _concat_constants_backward(op: ConcatWithConstants, lam: Tensor, shapes: Sequence[Shape]):
    blocks = op.blocks()
    inputs = iter(shapes)
    sizes = [next(inputs)[op.axis] if b is None else b.shape[op.axis] for b in blocks]
    grads, bias = [], None
    for block, part in zip(blocks, torch.split(lam, sizes, dim=op.axis + 2)):
        if block is None:
            grads.append(part)
        else:
            term = _sum_rows(part * block)
            bias = term if bias is None else bias + term
    return grads, bias


# ------------------------------------------------------------------ generic
def _generic_backward(op: Op, lam: Tensor, shapes: Sequence[Shape]):
    """``A^T lam`` by ``torch.func.vjp`` at zero; offset from ``op(0)``."""
    bl, m = _rows(lam)
    zeros = [lam.new_zeros(bl * m, *s) for s in shapes]
    out, vjp_fn = torch.func.vjp(op.forward, *zeros)
    grads = vjp_fn(lam.reshape(bl * m, *lam.shape[2:]))
    bias = _sum_rows(lam * out[:1].reshape(1, 1, *out.shape[1:]))
    return [g.reshape(bl, m, *s) for g, s in zip(grads, shapes)], bias


def _generic_interval(op: Op, lowers, uppers):
    """:func:`split_interval` with ``A`` the Jacobian (vjp of identity rows)."""
    out_shape = op.output_shape(*(tuple(x.shape[1:]) for x in lowers))
    size = int(torch.Size(out_shape).numel())
    eye = torch.eye(size, dtype=lowers[0].dtype, device=lowers[0].device)
    lam = eye.reshape(1, size, *out_shape)
    grads, bias = _generic_backward(op, lam, [tuple(x.shape[1:]) for x in lowers])
    low = bias.reshape(1, *out_shape).expand(lowers[0].shape[0], *out_shape)
    high = low
    for g, lo, hi in zip(grads, lowers, uppers):
        a = g.reshape(size, -1)
        part = split_interval(lambda x, w: x @ w.T, a, lo.flatten(1), hi.flatten(1))
        low, high = low + part[0].reshape(low.shape), high + part[1].reshape(low.shape)
    return low, high


def generic_rule() -> AffineRule:
    """The fallback rule for affine ops without a fast rule."""
    return AffineRule(_generic_backward, _generic_interval)


AFFINE_RULES: dict[type[Op], AffineRule] = {
    Dense: AffineRule(_dense_backward, _dense_interval),
    Conv2d: AffineRule(_conv_backward, _conv_interval),
    ElementwiseAffine: AffineRule(_ew_backward, _ew_interval),
    AvgPool2d: AffineRule(_avgpool_backward, _monotone),
    Flatten: AffineRule(_reshape_backward, _monotone),
    Reshape: AffineRule(_reshape_backward, _monotone),
    Identity: AffineRule(_identity_backward, _monotone),
    Pad: AffineRule(_pad_backward, _monotone),
    Concat: AffineRule(_concat_backward, _monotone),
    Slice: AffineRule(_slice_backward, _monotone),
    Add: AffineRule(_add_backward, _add_interval),
    ConstMatMul: AffineRule(_matmul_backward, _matmul_interval),
    ConvTranspose2d: AffineRule(_conv_transpose_backward, _conv_transpose_interval),
    ReduceSum: AffineRule(_reduce_backward, _reduce_interval),
    Transpose: AffineRule(_transpose_backward, _monotone),
    Gather: AffineRule(_gather_backward, _monotone),
    Broadcast: AffineRule(_broadcast_backward, _monotone),
    ConcatWithConstants: AffineRule(_concat_constants_backward, _monotone),
}
"""Affine op type -> its backward and interval rules."""


def affine_rule(op: Op) -> AffineRule:
    """The rule of an affine op (the generic fallback when it has no fast rule)."""
    return AFFINE_RULES.get(type(op)) or generic_rule()
