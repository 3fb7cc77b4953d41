"""Backward linear passes through convolutions in *patches* form.

Xu et al. 2020, "Automatic Perturbation Analysis for Scalable Certified
Robustness and Beyond" (auto_LiRPA), Section 3.3 and Appendix: the linear
function ``lam`` of one row of a backward pass through a convolutional network
is nonzero only on the row's receptive field. A neuron of a 3x3 convolution
over a 31 x 47 map has 9 entries per channel there, not 1,457; three layers
back it has 49. Storing only that window per row turns the intermediate
bounds of a U-Net (a quarter of a million neurons, each a pass of its own)
from hundreds of gigabytes of dense coefficients into a few hundred megabytes.

A :class:`Patches` holds, per region and row, a window ``(C, kh, kw)`` of
coefficients over a ``(C, H, W)`` node and the window's top-left corner in the
map (which may lie outside it: the entries outside the map are zero). The
rules below move patches backward through the ops that keep windows local:

* ``Conv2d``: a transposed convolution of each window with the kernel, which
  grows it by the kernel (times the stride); entries that fall on the
  convolution's zero padding are cleared;
* ``ElementwiseAffine`` and elementwise relaxations (ReLU and every op whose
  relaxation is :class:`~verifiNN.bounds.relaxations.LinearBounds`): the
  per-neuron slopes and intercepts are read at each row's window;
* ``ConvTranspose2d`` (one group): a strided convolution of each window,
  aligned to the stride first;
* ``Slice`` (channels or a unit-step spatial range), ``Concat``, ``Add``,
  zero-or-constant ``Pad`` (its constant goes to the bias) and ``AvgPool2d``
  (a depthwise convolution, when padded cells count or there are none).

Every other op (and any window that grows to a quarter of its map) turns the
patches back into dense coefficients and the pass goes on as before, so the
result never depends on whether patches were used, only the cost. The sums are
the dense pass's sums in another order: the numeric model is the same.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from verifiNN.bounds.relaxations import RELAXATIONS, LinearBounds
from verifiNN.bounds.relaxations.base import elementwise_backward, guarded_backward
from verifiNN.models.network import Node
from verifiNN.ops import (
    Add,
    AvgPool2d,
    Concat,
    Conv2d,
    ConvTranspose2d,
    ElementwiseAffine,
    Op,
    Pad,
    Shape,
    Slice,
)

__all__ = ["Patches", "concretize_patches", "grown_window", "patch_backward", "patch_supported"]

WORTHWHILE = 0.25
"""Largest window, as a fraction of the map, at which patches beat dense coefficients."""


@dataclass(frozen=True)
class Patches:
    """Per region and row, a window of coefficients over a ``(C, H, W)`` node.

    Attributes:
        values: ``(B, m, C, kh, kw)`` coefficients.
        top: ``(B, m)`` map row of each window's first row (may be negative).
        left: ``(B, m)`` map column of each window's first column.
        shape: ``(C, H, W)`` of the node.
    """

    values: Tensor
    top: Tensor
    left: Tensor
    shape: tuple[int, int, int]

    @property
    def window(self) -> tuple[int, int]:
        """``(kh, kw)``."""
        return int(self.values.shape[3]), int(self.values.shape[4])

    @classmethod
    def of_neurons(cls, index: Tensor, shape: Shape, sign_rows: Tensor, like: Tensor) -> Patches:
        """One-entry windows: row ``r`` of region ``b`` is ``sign_rows[r] * e_index[b, r]``.

        Args:
            index: ``(B, m)`` flat neuron indices into ``shape``.
            shape: ``(C, H, W)``.
            sign_rows: ``(m,)`` coefficients (e.g. ``+1`` then ``-1``).
            like: a tensor of the wanted dtype and device.
        """
        c_count, h, w = (int(s) for s in shape)
        batch, m = index.shape
        channel, pixel = index // (h * w), index % (h * w)
        values = like.new_zeros(batch, m, c_count, 1, 1)
        values.scatter_(
            2,
            channel.reshape(batch, m, 1, 1, 1),
            sign_rows.to(like).reshape(1, m, 1, 1, 1).expand(batch, m, 1, 1, 1),
        )
        return cls(values, pixel // w, pixel % w, (c_count, h, w))

    @classmethod
    def from_dense(cls, lam: Tensor) -> Patches | None:
        """The smallest common window holding every row's nonzeros of ``lam``
        (``(B, m, C, H, W)``), or ``None`` when it would not pay (:data:`WORTHWHILE`)."""
        batch, m, c_count, h, w = lam.shape
        nonzero = (lam != 0).any(dim=2)  # (B, m, H, W)
        rows, cols = nonzero.any(dim=3), nonzero.any(dim=2)  # (B, m, H), (B, m, W)
        top, kh = _extent(rows)
        left, kw = _extent(cols)
        if kh * kw > WORTHWHILE * h * w:
            return None
        top = top.clamp(max=h - kh)
        left = left.clamp(max=w - kw)
        values = _gather(
            lam.reshape(batch * m, c_count, h, w),
            top.reshape(-1, 1),
            left.reshape(-1, 1),
            kh,
            kw,
            per_row=False,
        )
        return cls(values.reshape(batch, m, c_count, kh, kw), top, left, (c_count, h, w))

    def to_dense(self) -> Tensor:
        """The ``(B, m, C, H, W)`` coefficients."""
        batch, m, c_count, kh, kw = self.values.shape
        _, h, w = self.shape
        pad_h, pad_w = _padding(self.top, kh, h), _padding(self.left, kw, w)
        out = self.values.new_zeros(
            batch, m, h + pad_h[0] + pad_h[1], w + pad_w[0] + pad_w[1], c_count
        )
        b, r, y, x = _window_index(self.top + pad_h[0], self.left + pad_w[0], kh, kw)
        out = out.index_put((b, r, y, x), self.values.permute(0, 1, 3, 4, 2), accumulate=True)
        out = out[:, :, pad_h[0] : pad_h[0] + h, pad_w[0] : pad_w[0] + w]
        return out.permute(0, 1, 4, 2, 3)

    def __add__(self, other: Patches) -> Patches:
        """The sum, over the union of the two windows (one region's patches repeated
        when the other holds several)."""
        batch = max(int(self.top.shape[0]), int(other.top.shape[0]))
        mine, theirs = self.broadcast_to(batch), other.broadcast_to(batch)
        if (
            mine.window == theirs.window
            and torch.equal(mine.top, theirs.top)
            and torch.equal(mine.left, theirs.left)
        ):
            return Patches(mine.values + theirs.values, mine.top, mine.left, mine.shape)
        top = torch.minimum(mine.top, theirs.top)
        left = torch.minimum(mine.left, theirs.left)
        bottom = torch.maximum(mine.top + mine.window[0], theirs.top + theirs.window[0])
        right = torch.maximum(mine.left + mine.window[1], theirs.left + theirs.window[1])
        kh, kw = int((bottom - top).max()), int((right - left).max())
        m, c_count = mine.values.shape[1:3]
        out = mine.values.new_zeros(batch, m, kh, kw, c_count)
        for part in (mine, theirs):
            b, r, y, x = _window_index(part.top - top, part.left - left, *part.window)
            out = out.index_put((b, r, y, x), part.values.permute(0, 1, 3, 4, 2), accumulate=True)
        return Patches(out.permute(0, 1, 4, 2, 3), top, left, mine.shape)

    def pays(self) -> bool:
        """Whether the window is still small next to the map (:data:`WORTHWHILE`)."""
        _, h, w = self.shape
        return self.window[0] * self.window[1] <= WORTHWHILE * h * w

    def broadcast_to(self, batch: int) -> Patches:
        """The patches of one region repeated for ``batch`` regions (else unchanged)."""
        if int(self.top.shape[0]) == batch:
            return self
        m = int(self.top.shape[1])
        values = self.values.expand(batch, *self.values.shape[1:])
        top, left = self.top.expand(batch, m), self.left.expand(batch, m)
        return Patches(values, top, left, self.shape)

    def read(self, t: Tensor) -> Tensor:
        """``t`` (``(B or 1, C, H, W)``, or ``(B or 1, m, C, H, W)`` per row) at every
        row's window, as ``(B, m, C, kh, kw)``, zero outside the map."""
        return _gather(t, self.top, self.left, *self.window, per_row=t.dim() == 5)

    def in_map(self) -> Patches:
        """The same patches with the entries outside the map cleared."""
        kh, kw = self.window
        _, h, w = self.shape
        ys = self.top.unsqueeze(-1) + torch.arange(kh, device=self.top.device)
        xs = self.left.unsqueeze(-1) + torch.arange(kw, device=self.left.device)
        inside = ((ys >= 0) & (ys < h)).unsqueeze(-1) & ((xs >= 0) & (xs < w)).unsqueeze(-2)
        values = self.values * inside.unsqueeze(2).to(self.values.dtype)
        return Patches(values, self.top, self.left, self.shape)


def _extent(occupied: Tensor) -> tuple[Tensor, int]:
    """First occupied position per row of ``occupied`` (``(B, m, L)``) and the largest
    span over the rows (at least 1)."""
    length = occupied.shape[-1]
    positions = torch.arange(length, device=occupied.device)
    first = torch.where(occupied, positions, length).amin(-1)
    last = torch.where(occupied, positions, -1).amax(-1)
    span = int((last - first + 1).clamp(min=1).max()) if occupied.any() else 1
    return first.clamp(max=length - 1), span


def _padding(start: Tensor, size: int, length: int) -> tuple[int, int]:
    """Zeros needed before and after a map of ``length`` so that every window
    ``[start, start + size)`` lies inside."""
    before = max(0, -int(start.min()))
    after = max(0, int(start.max()) + size - length)
    return before, after


def _window_index(top: Tensor, left: Tensor, kh: int, kw: int) -> tuple[Tensor, ...]:
    """Index tensors ``(b, r, y, x)``, each ``(B, m, kh, kw)``, of every window entry."""
    batch, m = top.shape
    device = top.device
    b = torch.arange(batch, device=device).reshape(batch, 1, 1, 1).expand(batch, m, kh, kw)
    r = torch.arange(m, device=device).reshape(1, m, 1, 1).expand(batch, m, kh, kw)
    y = (top.reshape(batch, m, 1, 1) + torch.arange(kh, device=device).reshape(1, 1, kh, 1)).expand(
        batch, m, kh, kw
    )
    x = (
        left.reshape(batch, m, 1, 1) + torch.arange(kw, device=device).reshape(1, 1, 1, kw)
    ).expand(batch, m, kh, kw)
    return b, r, y, x


def _gather(t: Tensor, top: Tensor, left: Tensor, kh: int, kw: int, per_row: bool) -> Tensor:
    """Windows of ``t`` at ``(top, left)`` (``(B, m)``) as ``(B, m, C, kh, kw)``."""
    h, w = t.shape[-2:]
    pad_h, pad_w = _padding(top, kh, h), _padding(left, kw, w)
    padded = F.pad(t, (pad_w[0], pad_w[1], pad_h[0], pad_h[1]))
    b, r, y, x = _window_index(top + pad_h[0], left + pad_w[0], kh, kw)
    if padded.shape[0] == 1:
        b = torch.zeros_like(b)
    if per_row:
        if padded.shape[1] == 1:
            r = torch.zeros_like(r)
        picked = padded.permute(0, 1, 3, 4, 2)[b, r, y, x]
    else:
        picked = padded.permute(0, 2, 3, 1)[b, y, x]
    return picked.permute(0, 1, 4, 2, 3)


def _bias_of(values: Tensor, bias: Tensor) -> Tensor:
    """``sum_c bias[c] * sum_window values[..., c, :, :]`` as ``(B, m)``."""
    return values.sum((3, 4)) @ bias.to(values.dtype)


def _conv(op: Conv2d, lam: Patches, input_shape: Shape) -> tuple[Patches, Tensor]:
    batch, m, c_out, kh, kw = lam.values.shape
    flat = lam.values.reshape(batch * m, c_out, kh, kw)
    grown = F.conv_transpose2d(
        flat, op.weight.to(flat.dtype), None, op.stride, 0, 0, op.groups, op.dilation
    )
    top, left = op.padding[0], op.padding[1]
    moved = Patches(
        grown.reshape(batch, m, *grown.shape[1:]),
        lam.top * op.stride[0] - top,
        lam.left * op.stride[1] - left,
        tuple(int(s) for s in input_shape),  # type: ignore[arg-type]
    )
    return moved.in_map(), _bias_of(lam.values, op.bias)


def _transposed_count(size: int, k: int, stride: int, dilation: int) -> int:
    """Inputs a window of ``size`` outputs of a transposed convolution reads along one
    axis, with room to place the window at any offset modulo the stride."""
    reach = dilation * (k - 1)
    return max((size - 1 + reach) // stride + 2, -(-(size - 2) // stride) + 2)


def grown_window(op: Op, window: tuple[int, int]) -> tuple[int, int]:
    """The window a backward step through ``op`` turns ``window`` into (the same for
    ops that do not move coefficients across positions)."""
    if isinstance(op, ConvTranspose2d):
        kh, kw = (int(k) for k in op.weight.shape[2:])
        return (
            _transposed_count(window[0], kh, op.stride[0], op.dilation[0]),
            _transposed_count(window[1], kw, op.stride[1], op.dilation[1]),
        )
    if isinstance(op, Conv2d):
        kernel, dilation = tuple(int(k) for k in op.weight.shape[2:]), op.dilation
    elif isinstance(op, AvgPool2d):
        kernel, dilation = op.kernel, (1, 1)
    else:
        return window
    return (
        (window[0] - 1) * op.stride[0] + dilation[0] * (kernel[0] - 1) + 1,
        (window[1] - 1) * op.stride[1] + dilation[1] * (kernel[1] - 1) + 1,
    )


def _transposed_conv(
    op: ConvTranspose2d, lam: Patches, input_shape: Shape
) -> tuple[Patches, Tensor]:
    """Output ``y = s i + d u - pad`` reads input ``i``: the input window starts at
    ``floor((t + pad - d (k - 1)) / s)``; each row's window is first placed in a longer
    one aligned to that start, then convolved with stride ``s``."""
    batch, m, c_out, kh, kw = lam.values.shape
    starts, offsets, lengths = [], [], []
    for axis, (size, t) in enumerate(((kh, lam.top), (kw, lam.left))):
        k, stride, dilation = int(op.weight.shape[2 + axis]), op.stride[axis], op.dilation[axis]
        reach = dilation * (k - 1)
        start = torch.div(t + op.padding[axis] - reach, stride, rounding_mode="floor")
        starts.append(start)
        offsets.append(t + op.padding[axis] - start * stride)
        lengths.append((_transposed_count(size, k, stride, dilation) - 1) * stride + reach + 1)
    placed = lam.values.new_zeros(batch, m, lengths[0], lengths[1], c_out)
    index = _window_index(offsets[0], offsets[1], kh, kw)
    placed = placed.index_put(index, lam.values.permute(0, 1, 3, 4, 2), accumulate=True)
    flat = placed.permute(0, 1, 4, 2, 3).reshape(batch * m, c_out, *lengths)
    moved = F.conv2d(flat, op.weight.to(flat.dtype), None, op.stride, 0, op.dilation)
    shape = tuple(int(s) for s in input_shape)
    values = moved.reshape(batch, m, *moved.shape[1:])
    result = Patches(values, starts[0], starts[1], shape).in_map()  # type: ignore[arg-type]
    return result, _bias_of(lam.values, op.bias)


def _elementwise_affine(op: ElementwiseAffine, lam: Patches) -> tuple[Patches, Tensor]:
    full = torch.Size(lam.shape)
    scale = lam.read(op.scale.to(lam.values.dtype).expand(full).unsqueeze(0))
    shift = lam.read(op.shift.to(lam.values.dtype).expand(full).unsqueeze(0))
    bias = (lam.values * shift).flatten(2).sum(-1)
    return Patches(lam.values * scale, lam.top, lam.left, lam.shape), bias


def _slice(op: Slice, lam: Patches, input_shape: Shape) -> Patches:
    shape = tuple(int(s) for s in input_shape)
    if op.axis == 0:
        batch, m, _, kh, kw = lam.values.shape
        values = lam.values.new_zeros(batch, m, shape[0], kh, kw)
        values[:, :, op.start : op.stop : op.step] = lam.values
        return Patches(values, lam.top, lam.left, shape)  # type: ignore[arg-type]
    start = range(shape[op.axis])[slice(op.start, op.stop, op.step)][0]
    top = lam.top + start if op.axis == 1 else lam.top
    left = lam.left + start if op.axis == 2 else lam.left
    return Patches(lam.values, top, left, shape)  # type: ignore[arg-type]


def _pad(op: Pad, lam: Patches, input_shape: Shape) -> tuple[Patches, Tensor | None]:
    top, left = op.pads[0], op.pads[1]
    shape = tuple(int(s) for s in input_shape)
    moved = Patches(lam.values, lam.top - top, lam.left - left, shape).in_map()  # type: ignore[arg-type]
    if op.value == 0:
        return moved, None
    on_padding = (lam.values - moved.values).flatten(2).sum(-1)
    return moved, op.value * on_padding


def _concat(op: Concat, lam: Patches, input_shapes: list[Shape]) -> list[Patches]:
    parts, offset = [], 0
    for shape in input_shapes:
        shape = tuple(int(s) for s in shape)
        size = shape[op.axis]
        if op.axis == 0:
            values = lam.values[:, :, offset : offset + size]
            parts.append(Patches(values, lam.top, lam.left, shape))  # type: ignore[arg-type]
        else:
            top = lam.top - offset if op.axis == 1 else lam.top
            left = lam.left - offset if op.axis == 2 else lam.left
            parts.append(Patches(lam.values, top, left, shape).in_map())  # type: ignore[arg-type]
        offset += size
    return parts


def _average_as_conv(op: AvgPool2d, channels: int, like: Tensor) -> Conv2d:
    """Average pooling as the depthwise convolution it is (padded cells counted)."""
    kh, kw = op.kernel
    weight = like.new_full((channels, 1, kh, kw), 1.0 / (kh * kw))
    return Conv2d(weight, like.new_zeros(channels), op.stride, op.padding, (1, 1), channels)


def patch_supported(node: Node, shapes: dict[str, Shape] | object) -> bool:
    """Whether a backward step through ``node`` keeps patches (given the per-sample
    ``shapes`` of the graph): every shape involved is ``(C, H, W)`` and the op has a
    rule here (a nonlinear op only when its relaxation is elementwise)."""
    involved = [shapes[node.name], *(shapes[name] for name in node.inputs)]  # type: ignore[index]
    if any(len(s) != 3 for s in involved):
        return False
    op = node.op
    if isinstance(op, Conv2d | ElementwiseAffine | Add):
        return True
    if isinstance(op, ConvTranspose2d):
        return op.groups == 1
    if isinstance(op, Slice):
        return op.axis == 0 or op.step == 1
    if isinstance(op, Concat):
        return True
    if isinstance(op, Pad):
        return min(op.pads) >= 0
    if isinstance(op, AvgPool2d):
        return op.count_include_pad or not any(op.padding)
    if op.affine:
        return False
    record = RELAXATIONS.get(type(op))
    return record is not None and record.backward in (elementwise_backward, guarded_backward)


def patch_backward(
    node: Node, lam: Patches, relaxation: object, input_shapes: list[Shape]
) -> tuple[list[Patches], Tensor | None] | None:
    """One backward step of ``lam`` through ``node`` in patches form, or ``None`` when
    the step needs dense coefficients (then the caller converts)."""
    op = node.op
    if isinstance(op, Conv2d):
        moved, bias = _conv(op, lam, input_shapes[0])
        return [moved], bias
    if isinstance(op, ConvTranspose2d):
        moved, bias = _transposed_conv(op, lam, input_shapes[0])
        return [moved], bias
    if isinstance(op, ElementwiseAffine):
        moved, bias = _elementwise_affine(op, lam)
        return [moved], bias
    if isinstance(op, Add):
        return [lam, lam], None
    if isinstance(op, Slice):
        return [_slice(op, lam, input_shapes[0])], None
    if isinstance(op, Concat):
        return _concat(op, lam, input_shapes), None
    if isinstance(op, Pad):
        moved, bias = _pad(op, lam, input_shapes[0])
        return [moved], bias
    if isinstance(op, AvgPool2d):
        conv = _average_as_conv(op, int(input_shapes[0][0]), lam.values)
        moved, _ = _conv(conv, lam, input_shapes[0])
        return [moved], None
    if not isinstance(relaxation, LinearBounds):
        return None
    lam = lam.broadcast_to(max(int(lam.top.shape[0]), int(relaxation.lw.shape[0])))
    windowed = LinearBounds(
        lam.read(relaxation.lw),
        None if relaxation.lb is None else lam.read(relaxation.lb),
        lam.read(relaxation.uw),
        None if relaxation.ub is None else lam.read(relaxation.ub),
    )
    new, bias = RELAXATIONS[type(op)].backward(op, windowed, lam.values)
    return [Patches(new, lam.top, lam.left, lam.shape)], bias


def concretize_patches(lam: Patches, lower: Tensor, upper: Tensor, bias: Tensor | None) -> Tensor:
    """``min lam^T x + bias`` over the box ``[lower, upper]`` (each ``(B or 1, C, H, W)``,
    finite) as ``(B, m)``: ``lam+ . lower + lam- . upper`` over each window."""
    lam = lam.broadcast_to(max(int(lam.top.shape[0]), int(lower.shape[0])))
    low, high = lam.read(lower), lam.read(upper)
    values = lam.values
    value = (values.clamp(min=0) * low + values.clamp(max=0) * high).flatten(2).sum(-1)
    return value if bias is None else value + bias
