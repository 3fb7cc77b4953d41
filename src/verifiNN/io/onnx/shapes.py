"""Converters of the structural operators: they select, move, repeat or pad entries.

Every one adds selections (``Slice``, ``Gather``, ``Transpose``, ``Broadcast``,
``Pad``, ``Concat``/``ConcatWithConstants``) or, for ``Where`` with a constant
condition and linear resizing, elementwise or axis-wise affine maps. Indices,
shapes, pads and conditions must be constants (the static check of
:mod:`verifiNN.io.onnx.converters` says so before any work).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence

import numpy as np
from onnx import helper

from verifiNN.io.onnx.folding import evaluate
from verifiNN.io.onnx.graph import (
    FLOAT_TYPES,
    Converter,
    Data,
    NodeContext,
    Value,
    normalize_axis,
    permutation,
    sample_shape,
)
from verifiNN.ops import (
    Add,
    Concat,
    ConcatWithConstants,
    ConstMatMul,
    ElementwiseAffine,
    Gather,
    Pad,
    Shape,
    Slice,
    Transpose,
    as_tensor,
)

__all__ = [
    "convert_alias",
    "convert_concat",
    "convert_expand",
    "convert_gather",
    "convert_pad",
    "convert_resize",
    "convert_slice",
    "convert_split",
    "convert_tile",
    "convert_transpose",
    "convert_where",
    "relabel",
    "select",
    "transpose",
]


# ------------------------------------------------------------------- aliases
def convert_alias(ctx: NodeContext) -> list[Value]:
    """``Identity``, ``Dropout`` (inference: identity, mask not modelled), float ``Cast``."""
    if ctx.node.op_type == "Cast" and int(ctx.attr("to")) not in FLOAT_TYPES:
        raise ctx.unsupported(f"attribute to={ctx.attr('to')}: only casts to floats are supported")
    if ctx.node.op_type == "Dropout" and ctx.has(2) and ctx.const(2, "training_mode").any():
        raise ctx.unsupported("training_mode=True (only inference dropout is supported)")
    return [ctx.data(0), None]


def relabel(fn: Callable[[NodeContext, Shape], Shape]) -> Converter:
    """Shape-only ops (``Reshape``, ``Flatten``, ``Squeeze``, ...): same IR node, new full shape."""

    def convert(ctx: NodeContext) -> list[Value]:
        x = ctx.data(0)
        return [Data(x.node, fn(ctx, x.shape))]

    return convert


# --------------------------------------------------------------- transpose
def transpose(ctx: NodeContext, x: Data, perm: Sequence[int]) -> Data:
    """``x`` with its ONNX axes permuted; a ``Transpose`` node only when data moves.

    Size-1 axes are dropped from the layout first, so a transpose that only moves
    them (``[1, 5] -> [5, 1]``) is a relabelling.
    """
    out_shape = tuple(x.shape[p] for p in perm)
    moved = [p for p in perm if x.shape[p] != 1]
    if moved == sorted(moved):
        return Data(x.node, out_shape)
    kept = [axis for axis, size in enumerate(x.shape) if size != 1]
    node = ctx.view(x, tuple(x.shape[a] for a in kept))
    rank = {axis: k for k, axis in enumerate(kept)}
    out = ctx.add(Transpose(tuple(rank[p] for p in moved)), [node])
    return Data(out, out_shape)


def convert_transpose(ctx: NodeContext) -> list[Value]:
    x = ctx.data(0)
    return [transpose(ctx, x, permutation(ctx, len(x.shape)))]


# --------------------------------------------------------------- selections
def select(ctx: NodeContext, x: Data, axis: int, indices: Sequence[int]) -> Data:
    """Entries ``indices`` of ``x`` along ONNX ``axis`` (a ``Slice`` when they step
    forward evenly, else a ``Gather``; nothing when they are the whole axis in order)."""
    indices = [int(i) for i in indices]
    size = x.shape[axis]
    if not indices:
        raise ctx.invalid(f"selects nothing along axis {axis} of {list(x.shape)}")
    out_shape = (*x.shape[:axis], len(indices), *x.shape[axis + 1 :])
    if indices == list(range(size)):
        return Data(x.node, out_shape)
    node, offset = ctx.axis_view(x, [axis])
    steps = {b - a for a, b in itertools.pairwise(indices)}
    if len(indices) == 1:
        steps = {1}
    if len(steps) == 1 and (step := steps.pop()) > 0:
        op = Slice(axis - offset, indices[0], indices[-1] + 1, step)
    else:
        op = Gather(axis - offset, tuple(indices))  # type: ignore[assignment]
    return Data(ctx.add(op, [node]), out_shape)


def _slice_arguments(ctx: NodeContext, rank: int) -> list[tuple[int, int, int, int]]:
    """``(axis, start, end, step)`` per sliced axis, from attributes (opset < 10) or inputs."""
    if ctx.opset < 10:
        starts, ends = list(ctx.attr("starts")), list(ctx.attr("ends"))
        axes, steps = ctx.attr("axes"), None
    else:
        starts = ctx.const(1, "starts").reshape(-1).tolist()
        ends = ctx.const(2, "ends").reshape(-1).tolist()
        axes = ctx.const(3, "axes").reshape(-1).tolist() if ctx.has(3) else None
        steps = ctx.const(4, "steps").reshape(-1).tolist() if ctx.has(4) else None
    axes = list(range(len(starts))) if axes is None else list(axes)
    steps = [1] * len(starts) if steps is None else list(steps)
    if not len(axes) == len(starts) == len(ends) == len(steps):
        raise ctx.invalid("starts, ends, axes and steps differ in length")
    if any(int(k) == 0 for k in steps):
        raise ctx.invalid("a slice step of 0")
    return [
        (normalize_axis(ctx, int(a), rank), int(s), int(e), int(k))
        for a, s, e, k in zip(axes, starts, ends, steps)
    ]


def convert_slice(ctx: NodeContext) -> list[Value]:
    """``Slice`` with constant starts/ends/axes/steps (negative steps included)."""
    x = ctx.data(0)
    for axis, start, end, step in _slice_arguments(ctx, len(x.shape)):
        # Python's slice clamping is the ONNX rule (negatives count from the end)
        chosen = range(*slice(start, end, step).indices(x.shape[axis]))
        x = select(ctx, x, axis, chosen)
    return [x]


def convert_gather(ctx: NodeContext) -> list[Value]:
    """``Gather`` with constant indices (any rank, negatives from the end)."""
    x = ctx.data(0)
    axis = normalize_axis(ctx, int(ctx.attr("axis", 0)), len(x.shape))
    indices = ctx.const(1, "indices").astype(np.int64)
    size = x.shape[axis]
    if indices.size and (indices.min() < -size or indices.max() >= size):
        raise ctx.invalid(f"indices out of range for axis {axis} of size {size}")
    chosen = select(ctx, x, axis, (indices.reshape(-1) % size).tolist())
    return [Data(chosen.node, (*x.shape[:axis], *indices.shape, *x.shape[axis + 1 :]))]


def _split_sizes(ctx: NodeContext, size: int) -> list[int]:
    if ctx.opset >= 13 and ctx.has(1):
        return [int(s) for s in ctx.const(1, "split").reshape(-1)]
    if ctx.opset < 13 and ctx.attr("split") is not None:
        return [int(s) for s in ctx.attr("split")]
    count = int(ctx.attr("num_outputs", len(ctx.node.output)))
    chunk = -(-size // count)
    return [min(chunk, size - k * chunk) for k in range(count)]


def convert_split(ctx: NodeContext) -> list[Value]:
    x = ctx.data(0)
    axis = normalize_axis(ctx, int(ctx.attr("axis", 0)), len(x.shape))
    sizes = _split_sizes(ctx, x.shape[axis])
    if sum(sizes) != x.shape[axis] or min(sizes) <= 0 or len(sizes) != len(ctx.node.output):
        raise ctx.invalid(f"split sizes {sizes} do not fit axis {axis} of {list(x.shape)}")
    starts = np.cumsum([0, *sizes])
    return [select(ctx, x, axis, range(a, b)) for a, b in itertools.pairwise(starts)]


def convert_tile(ctx: NodeContext) -> list[Value]:
    x = ctx.data(0)
    repeats = [int(r) for r in ctx.const(1, "repeats").reshape(-1)]
    if len(repeats) != len(x.shape) or min(repeats, default=1) < 1:
        raise ctx.invalid(f"repeats {repeats} do not fit shape {list(x.shape)}")
    for axis, times in enumerate(repeats):
        if times > 1:
            x = select(ctx, x, axis, [i % x.shape[axis] for i in range(times * x.shape[axis])])
    return [x]


# ------------------------------------------------------------- broadcasting
def convert_expand(ctx: NodeContext) -> list[Value]:
    x = ctx.data(0)
    target = tuple(int(d) for d in ctx.const(1, "shape").reshape(-1))
    try:
        out_shape = tuple(np.broadcast_shapes(x.shape, target))
    except ValueError:
        raise ctx.invalid(f"cannot expand {list(x.shape)} to {list(target)}") from None
    return [ctx.broadcast(x, out_shape)]


def convert_where(ctx: NodeContext) -> list[Value]:
    """``Where`` with a constant condition: ``c * X + (1 - c) * Y``, exact per entry."""
    condition = ctx.const(0, "condition").astype(bool)
    a, b = ctx.inputs[1], ctx.inputs[2]
    shapes = [condition.shape, *(v.shape for v in (a, b))]  # type: ignore[union-attr]
    try:
        out_shape = tuple(np.broadcast_shapes(*shapes))
    except ValueError:
        raise ctx.invalid(f"shapes {[list(s) for s in shapes]} do not broadcast") from None
    mask = np.broadcast_to(condition, out_shape)
    terms, shift = [], np.zeros(out_shape)
    for value, keep in ((a, mask), (b, ~mask)):
        if isinstance(value, Data):
            terms.append((ctx.broadcast(value, out_shape), keep.astype(np.float64)))
        else:
            values = np.broadcast_to(np.asarray(value, np.float64), out_shape)
            shift = shift + np.where(keep, values, 0.0)  # never inf * 0
    if not terms:
        raise ctx.invalid("no input depends on the network input")
    (first, scale), *rest = terms
    out = _scaled(ctx, first, scale, shift if not rest else np.zeros(out_shape))
    for value, scale in rest:
        other = _scaled(ctx, value, scale, shift)
        layout = sample_shape(out_shape)
        out = Data(ctx.add(Add(), [ctx.view(out, layout), ctx.view(other, layout)]), out_shape)
    return [out]


def _scaled(ctx: NodeContext, x: Data, scale: np.ndarray, shift: np.ndarray) -> Data:
    """``x * scale + shift`` entry by entry (all three of the full shape ``x.shape``)."""
    layout = sample_shape(x.shape)
    op = ElementwiseAffine(as_tensor(scale.reshape(layout)), as_tensor(shift.reshape(layout)))
    return Data(ctx.add(op, [ctx.view(x, layout)]), x.shape)


# ------------------------------------------------------------------- concat
def convert_concat(ctx: NodeContext) -> list[Value]:
    """``Concat`` of data tensors, or of data tensors and constants."""
    present = [v for i, v in enumerate(ctx.inputs) if ctx.has(i)]
    values = [v for v in present if isinstance(v, Data) or np.asarray(v).size]
    if not any(isinstance(v, Data) for v in values):
        raise ctx.invalid("no input depends on the network input")
    shapes = [tuple(v.shape) for v in values]  # type: ignore[union-attr]
    rank = len(shapes[0])
    axis = normalize_axis(ctx, int(ctx.attr("axis")), rank)
    if any(
        len(s) != rank or any(s[i] != shapes[0][i] for i in range(rank) if i != axis)
        for s in shapes
    ):
        raise ctx.invalid(f"inputs of shapes {[list(s) for s in shapes]} differ off axis {axis}")
    out_shape = (*shapes[0][:axis], sum(s[axis] for s in shapes), *shapes[0][axis + 1 :])
    if len(values) == 1:
        return [values[0]]
    offset = 1 if rank >= 2 and axis >= 1 and shapes[0][0] == 1 else 0
    data = [v for v in values if isinstance(v, Data)]
    nodes = [ctx.view(v, v.shape[offset:]) for v in data]
    if len(data) == len(values):
        return [Data(ctx.add(Concat(axis - offset), nodes), out_shape)]
    blocks = [np.asarray(v, np.float64) for v in values if not isinstance(v, Data)]
    constant = np.concatenate([b.reshape(b.shape[offset:]) for b in blocks], axis - offset)
    pieces = tuple(-1 if isinstance(v, Data) else int(v.shape[axis]) for v in values)
    op = ConcatWithConstants(axis - offset, as_tensor(constant), pieces)
    return [Data(ctx.add(op, nodes), out_shape)]


# ---------------------------------------------------------------------- pad
def _pads(ctx: NodeContext, rank: int) -> tuple[list[int], float]:
    """Per-axis ``[begin_0, ..., begin_r, end_0, ..., end_r]`` and the constant value."""
    if ctx.opset < 11:
        pads, value = [int(p) for p in ctx.attr("pads")], float(ctx.attr("value", 0.0))
    else:
        pads = [int(p) for p in ctx.const(1, "pads").reshape(-1)]
        value = float(ctx.const(2, "constant_value").reshape(-1)[0]) if ctx.has(2) else 0.0
    axes = (
        [normalize_axis(ctx, int(a), rank) for a in ctx.const(3, "axes").reshape(-1)]
        if ctx.has(3)
        else list(range(rank))
    )
    if len(pads) != 2 * len(axes):
        raise ctx.invalid(f"pads {pads} do not fit axes {axes}")
    full = [0] * (2 * rank)
    for i, a in enumerate(axes):
        full[a], full[rank + a] = pads[i], pads[len(axes) + i]
    return full, value


def _padded_indices(size: int, begin: int, end: int, mode: str) -> list[int]:
    """Source index of each output entry along one axis for ``reflect``/``edge``/``wrap``."""
    out = []
    for j in range(-begin, size + end):
        if mode == "edge":
            out.append(min(max(j, 0), size - 1))
        elif mode == "wrap":
            out.append(j % size)
        else:  # reflect: mirror about the edge entries, which are not repeated
            period = 2 * (size - 1)
            k = j % period if period else 0
            out.append(k if k < size else period - k)
    return out


def convert_pad(ctx: NodeContext) -> list[Value]:
    """``Pad`` in the ``constant``, ``reflect``, ``edge`` and ``wrap`` modes, any axes;
    negative pads crop."""
    x = ctx.data(0)
    rank = len(x.shape)
    mode = ctx.attr("mode", "constant")
    full, value = _pads(ctx, rank)
    for axis in range(rank):  # crop first
        begin, end = -min(full[axis], 0), -min(full[rank + axis], 0)
        if begin or end:
            x = select(ctx, x, axis, range(begin, x.shape[axis] - end))
    grow = [(a, max(full[a], 0), max(full[rank + a], 0)) for a in range(rank)]
    grow = [(a, b, e) for a, b, e in grow if b or e]
    if mode != "constant":
        for axis, begin, end in grow:
            if mode == "reflect" and max(begin, end) >= x.shape[axis]:
                raise ctx.unsupported(f"reflect pads {begin, end} reach past axis {axis}")
            x = select(ctx, x, axis, _padded_indices(x.shape[axis], begin, end, mode))
        return [x]
    if grow and rank >= 2 and all(a >= rank - 2 for a, _, _ in grow):  # one Pad node
        pads = {a: (b, e) for a, b, e in grow}
        (top, bottom), (left, right) = pads.get(rank - 2, (0, 0)), pads.get(rank - 1, (0, 0))
        return [_pad_last_two(ctx, x, (top, left, bottom, right), value)]
    for axis, begin, end in grow:
        before, after = math.prod(x.shape[:axis]), math.prod(x.shape[axis + 1 :])
        padded = Data(x.node, (1, before, x.shape[axis], after))
        out = _pad_last_two(ctx, padded, (begin, 0, end, 0), value)
        x = Data(out.node, (*x.shape[:axis], x.shape[axis] + begin + end, *x.shape[axis + 1 :]))
    return [x]


def _pad_last_two(ctx: NodeContext, x: Data, pads: tuple[int, int, int, int], value: float):
    top, left, bottom, right = pads
    node = ctx.view(x, (math.prod(x.shape[:-2]), *x.shape[-2:]))
    out = ctx.add(Pad(pads, value), [node])
    return Data(out, (*x.shape[:-2], x.shape[-2] + top + bottom, x.shape[-1] + left + right))


# ------------------------------------------------------------------- resize
def _resize_targets(ctx: NodeContext, shape: Shape) -> tuple[list[float] | None, list[int] | None]:
    """Per-axis scales or sizes of a ``Resize``/``Upsample`` node (one of the two)."""
    rank = len(shape)
    if ctx.node.op_type == "Upsample":
        scales = ctx.attr("scales") if ctx.opset < 9 else ctx.const(1, "scales").reshape(-1)
        return [float(s) for s in scales], None
    scale_input = 1 if ctx.opset < 11 else 2
    scales = ctx.const(scale_input, "scales").reshape(-1) if ctx.has(scale_input) else None
    sizes = ctx.const(3, "sizes").reshape(-1) if ctx.opset >= 11 and ctx.has(3) else None
    axes = ctx.attr("axes")
    axes = list(range(rank)) if axes is None else [normalize_axis(ctx, a, rank) for a in axes]
    if scales is not None and scales.size:
        full_scales = [1.0] * rank
        for a, s in zip(axes, scales):
            full_scales[a] = float(s)
        return full_scales, None
    if sizes is None or not sizes.size:
        raise ctx.invalid("neither scales nor sizes are given")
    full_sizes = list(shape)
    for a, s in zip(axes, sizes):
        full_sizes[a] = int(s)
    return None, full_sizes


def _axis_matrix(ctx: NodeContext, size: int, scale: float | None, out: int | None) -> np.ndarray:
    """The ``(m, n)`` matrix of the node's 1-D resampling of an axis of size ``n``,
    from ONNX's reference implementation run on the ``n`` unit vectors (an ``(n, n)``
    identity resized along its second axis only)."""
    node = ctx.node
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    attrs = {k: v.decode() if isinstance(v, bytes) else v for k, v in attrs.items()}
    attrs.pop("axes", None)
    if node.op_type == "Upsample" or ctx.opset < 11:
        # Upsample and Resize-10 are Resize-13 with asymmetric coordinates; their nearest
        # neighbour (unspecified by ONNX) is onnxruntime's: floor, or ceil when shrinking
        attrs.pop("scales", None)
        attrs["mode"] = (
            "linear" if attrs.get("mode") == "bilinear" else attrs.get("mode", "nearest")
        )
        attrs["coordinate_transformation_mode"] = "asymmetric"
        attrs["nearest_mode"] = "ceil" if scale is not None and scale < 1 else "floor"
    inputs = {"X": np.eye(size)}
    if scale is not None:
        inputs["scales"] = np.array([1.0, scale], np.float32)
        names = ["X", "", "scales"]
    else:
        inputs["sizes"] = np.array([size, out], np.int64)
        names = ["X", "", "", "sizes"]
    one_axis = helper.make_node("Resize", names, ["Y"], **attrs)
    try:
        (result,) = evaluate(one_axis, inputs, max(ctx.opset, 13))
    except Exception as exc:  # the reference raises whatever numpy raises
        raise ctx.invalid(f"cannot evaluate its resampling ({exc})") from None
    return np.asarray(result, np.float64).T


def convert_resize(ctx: NodeContext) -> list[Value]:
    """``Resize``/``Upsample`` (nearest, linear, cubic; every coordinate transformation
    but ``tf_crop_and_resize``), one axis at a time: each is linear and separable, with
    the weights of the reference implementation. Nearest gives selections (``Gather``),
    the others ``ConstMatMul`` along the axis."""
    x = ctx.data(0)
    scales, sizes = _resize_targets(ctx, x.shape)
    if len(scales or sizes or []) != len(x.shape):
        raise ctx.invalid(f"scales/sizes do not fit shape {list(x.shape)}")
    for axis, n in enumerate(x.shape):
        scale = None if scales is None else scales[axis]
        out = None if sizes is None else sizes[axis]
        if scale == 1.0 or out == n:
            continue
        matrix = _axis_matrix(ctx, n, scale, out)
        x = _resample(ctx, x, axis, matrix)
    return [x]


def _resample(ctx: NodeContext, x: Data, axis: int, matrix: np.ndarray) -> Data:
    """``matrix`` (``(m, n)``) applied along ONNX ``axis`` of ``x``."""
    ones = np.isclose(matrix, 1.0, rtol=0, atol=0)
    if bool(np.all(ones.sum(1) == 1)) and bool(np.all((matrix == 0) | ones)):
        return select(ctx, x, axis, matrix.argmax(1).tolist())
    m, n = matrix.shape
    before, after = math.prod(x.shape[:axis]), math.prod(x.shape[axis + 1 :])
    node = ctx.view(x, (before, n, after))
    op = ConstMatMul(as_tensor(matrix), as_tensor(0.0), left=True)
    return Data(ctx.add(op, [node]), (*x.shape[:axis], m, *x.shape[axis + 1 :]))
