"""Converters of the integer-valued ONNX operators on data: comparisons, arg-extrema, one-hot
encodings, logic and casts to integer and bool types.

The IR computes in floating point (ONNX integers and bools become exact float
integers, bools ``0``/``1``), with two piecewise-constant primitives of
:mod:`verifiNN.ops.integer` (``Step``, ``Trunc``) composed with affine and
piecewise-linear ops. Which IR nodes already hold integers is read from the
graph by :func:`verifiNN.io.onnx.integral.value_range`. The encodings, exact
for every input:

* ``Equal(a, b)``: ``relu(1 - |a - b|)`` when both are integers (``a - b`` is
  then an integer, 0 exactly when they are equal), else
  ``step(a - b) - step_strict(a - b)``;
* ``Greater(a, b) = step_strict(a - b)`` and ``GreaterOrEqual(a, b) =
  step(a - b)`` (``Less`` and ``LessOrEqual`` swap the operands); on integers
  ``clip(a - b, 0, 1)`` and ``clip(a - b + 1, 0, 1)``;
* ``ArgMax`` / ``ArgMin`` along an axis of size ``k`` (``ArgMin`` is ``ArgMax``
  of ``-x``): class ``c`` is chosen exactly when it beats every other class
  ``j``, strictly (``x_c > x_j``) for ``j < c`` and not strictly for ``j > c``,
  so that ties go to the first index as in ONNX (``select_last_index``: the
  reverse); the one-hot vector is ``relu(sum_j step_cj - (k - 2))`` (the AND of
  ``k - 1`` bits) and the index ``sum_c c onehot_c``;
* ``OneHot(indices, depth, values)``: ``off + (on - off) [i == c]`` per class
  ``c``, with ``[i == c]`` as in ``Equal`` plus, unless the indices are known
  to be non-negative, ``[i == c - depth]`` (negative indices count from the
  end); non-integer indices are truncated first, as the standard says;
* ``Not(x) = 1 - x``, ``And = min``, ``Or = max``, ``Xor(a, b) = |a - b|`` on
  bools (affine when an operand is a constant);
* ``Cast`` to a float type: the identity; to an integer type: the identity on
  integers, else ``Trunc`` (C's conversion, toward zero); to bool: ``x != 0``,
  ``step_strict(|x|)`` (``clip(|x|, high=1)`` on integers). Values outside the
  target type's range are undefined in ONNX and are not wrapped around.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import onnx

from verifiNN.io.onnx.graph import (
    FLOAT_TYPES,
    Converter,
    Data,
    NodeContext,
    Value,
    normalize_axis,
    sample_shape,
)
from verifiNN.io.onnx.integral import ValueRange, value_range
from verifiNN.io.onnx.layers import affine, matmul_right
from verifiNN.io.onnx.shapes import transpose
from verifiNN.ops import Abs, Add, Clip, Max, Min, Op, ReLU, Shape, Step, Trunc

__all__ = [
    "BOOL_TYPE",
    "CAST_TYPES",
    "INTEGER_CONSTANT_INPUTS",
    "INTEGER_CONVERTERS",
    "INTEGER_TYPES",
    "argmax_through_softmax",
    "one_hot_of_max",
]

TensorProto = onnx.TensorProto
INTEGER_TYPES = frozenset(
    {
        TensorProto.INT8,
        TensorProto.UINT8,
        TensorProto.INT16,
        TensorProto.UINT16,
        TensorProto.INT32,
        TensorProto.UINT32,
        TensorProto.INT64,
        TensorProto.UINT64,
    }
)
"""ONNX element types of integers."""
BOOL_TYPE = TensorProto.BOOL
CAST_TYPES = frozenset(FLOAT_TYPES) | INTEGER_TYPES | {BOOL_TYPE}
"""Element types a ``Cast`` of data may convert to."""


# ------------------------------------------------------------------ helpers
def _apply(ctx: NodeContext, op: Op, x: Data) -> Data:
    """An elementwise op on ``x`` (any layout: elementwise ops keep it)."""
    return Data(ctx.add(op, [x.node]), x.shape)


def _scale(ctx: NodeContext, x: Data, scale: float | np.ndarray, shift: float | np.ndarray):
    """``x * scale + shift`` with ONNX broadcasting of the constants."""
    (out,) = affine(ctx, x, np.asarray(scale, np.float64), np.asarray(shift, np.float64))
    return out


def _common(ctx: NodeContext, shapes: Sequence[Shape]) -> Shape:
    try:
        return tuple(np.broadcast_shapes(*shapes))
    except ValueError:
        raise ctx.invalid(f"shapes {[list(s) for s in shapes]} do not broadcast") from None


def _pair(ctx: NodeContext, op: Op, a: Data, b: Data) -> Data:
    """A two-input elementwise op on data tensors, broadcast to their common shape."""
    out_shape = _common(ctx, [a.shape, b.shape])
    a, b = ctx.broadcast(a, out_shape), ctx.broadcast(b, out_shape)
    layout = sample_shape(out_shape)
    return Data(ctx.add(op, [ctx.view(a, layout), ctx.view(b, layout)]), out_shape)


def _range(ctx: NodeContext, value: Value) -> ValueRange:
    """What is known of an operand's entries (a constant: exactly)."""
    if isinstance(value, Data):
        return value_range(ctx.builder, value.node)
    array = np.asarray(value, np.float64)
    finite = array[np.isfinite(array)]
    integer = bool(np.all(finite == np.round(finite)))
    if array.size == 0:
        return ValueRange(integer)
    return ValueRange(integer, float(np.min(array)), float(np.max(array)))


def _operands(ctx: NodeContext) -> tuple[Value, Value]:
    a, b = ctx.inputs[0], ctx.inputs[1]
    if not isinstance(a, Data) and not isinstance(b, Data):
        raise ctx.invalid("no input depends on the network input")
    return a, b


def _difference(ctx: NodeContext, a: Value, b: Value) -> Data:
    """``a - b`` (at least one operand is data; constants broadcast)."""
    if isinstance(a, Data) and isinstance(b, Data):
        return _pair(ctx, Add(), a, _scale(ctx, b, -1.0, 0.0))
    if isinstance(a, Data):
        return _scale(ctx, a, 1.0, -np.asarray(b, np.float64))
    return _scale(ctx, b, -1.0, np.asarray(a, np.float64))  # type: ignore[arg-type]


def _is_zero(ctx: NodeContext, d: Data, integer: bool) -> Data:
    """``1[d == 0]``: ``relu(1 - |d|)`` on integers, else ``step(d) - step_strict(d)``."""
    if integer:
        return _apply(ctx, ReLU(), _scale(ctx, _apply(ctx, Abs(), d), -1.0, 1.0))
    at_least = _apply(ctx, Step(strict=False), d)
    above = _apply(ctx, Step(strict=True), d)
    return _pair(ctx, Add(), at_least, _scale(ctx, above, -1.0, 0.0))


def _positive(ctx: NodeContext, d: Data, strict: bool, integer: bool) -> Data:
    """``1[d > 0]`` (``strict``) or ``1[d >= 0]``; on integers a clip to ``[0, 1]``."""
    if not integer:
        return _apply(ctx, Step(strict=strict), d)
    shifted = d if strict else _scale(ctx, d, 1.0, 1.0)
    return _apply(ctx, Clip(0.0, 1.0), shifted)


# -------------------------------------------------------------- comparisons
def _convert_equal(ctx: NodeContext) -> list[Value]:
    a, b = _operands(ctx)
    integer = _range(ctx, a).integer and _range(ctx, b).integer
    return [_is_zero(ctx, _difference(ctx, a, b), integer)]


def _comparison(swap: bool, strict: bool) -> Converter:
    """``Greater`` (``a - b > 0``), ``GreaterOrEqual``; ``swap``: ``Less``, ``LessOrEqual``."""

    def convert(ctx: NodeContext) -> list[Value]:
        a, b = _operands(ctx)
        if swap:
            a, b = b, a
        integer = _range(ctx, a).integer and _range(ctx, b).integer
        return [_positive(ctx, _difference(ctx, a, b), strict, integer)]

    return convert


# -------------------------------------------------------------------- logic
def _convert_not(ctx: NodeContext) -> list[Value]:
    return [_scale(ctx, ctx.data(0), -1.0, 1.0)]


_LOGIC_CONSTANT: dict[str, Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]] = {
    "And": lambda c: (c, np.zeros_like(c)),
    "Or": lambda c: (1.0 - c, c),
    "Xor": lambda c: (1.0 - 2.0 * c, c),
}
"""``op(x, c)`` for a constant bool ``c`` as ``x * scale + shift``."""


def _convert_logic(ctx: NodeContext) -> list[Value]:
    """``And``/``Or``/``Xor`` of bools (0/1): min, max, ``|a - b|``; affine with a constant."""
    kind = ctx.node.op_type
    a, b = _operands(ctx)
    if isinstance(a, Data) and isinstance(b, Data):
        if kind == "Xor":
            return [_apply(ctx, Abs(), _difference(ctx, a, b))]
        return [_pair(ctx, Min() if kind == "And" else Max(), a, b)]
    data, constant = (a, b) if isinstance(a, Data) else (b, a)
    scale, shift = _LOGIC_CONSTANT[kind](np.asarray(constant, bool).astype(np.float64))
    return [_scale(ctx, data, scale, shift)]  # type: ignore[arg-type]


# --------------------------------------------------------------------- cast
def _convert_cast(ctx: NodeContext) -> list[Value]:
    """``Cast`` of data to a float, integer or bool type (see the module docstring)."""
    to = int(ctx.attr("to"))
    x = ctx.data(0)
    if to in FLOAT_TYPES:
        return [x]
    known = value_range(ctx.builder, x.node)
    if to in INTEGER_TYPES:
        return [x if known.integer else _apply(ctx, Trunc(), x)]
    if to != BOOL_TYPE:
        raise ctx.unsupported(f"attribute to={to}: only float, integer and bool casts")
    if known.integer and known.within(0.0, 1.0):
        return [x]
    if known.integer:
        magnitude = x if known.low >= 0 else _apply(ctx, Abs(), x)
        return [_apply(ctx, Clip(high=1.0), magnitude)]
    return [_apply(ctx, Step(strict=True), _apply(ctx, Abs(), x))]


# ----------------------------------------------------------------- arg-max
def _pair_matrices(k: int, last: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(W_strict, A_strict, W_weak, A_weak)``: ``x @ W`` are the differences ``x_c - x_j``
    (strict where ``c`` must beat ``j`` strictly), ``A`` sums each class's columns."""
    columns: dict[bool, list[tuple[int, int]]] = {True: [], False: []}
    for c in range(k):
        for j in range(k):
            if j != c:
                columns[(j > c) if last else (j < c)].append((c, j))
    out = []
    for strict in (True, False):
        pairs = columns[strict]
        w, a = np.zeros((k, len(pairs))), np.zeros((len(pairs), k))
        for col, (c, j) in enumerate(pairs):
            w[c, col], w[j, col], a[col, c] = 1.0, -1.0, 1.0
        out += [w, a]
    return out[0], out[1], out[2], out[3]


def one_hot_of_max(ctx: NodeContext, x: Data, last: bool = False) -> Data:
    """The one-hot vector of the arg-max of ``x`` along its last axis (ties: the first
    index, or the last with ``last``), same shape as ``x``."""
    k = x.shape[-1]
    if k == 1:
        return _scale(ctx, x, 0.0, 1.0)
    w_strict, a_strict, w_weak, a_weak = _pair_matrices(k, last)
    wins = []
    for w, a, strict in ((w_strict, a_strict, True), (w_weak, a_weak, False)):
        d = matmul_right(ctx, x, w, None)
        steps = _apply(ctx, Step(strict=strict), d)
        wins.append(matmul_right(ctx, steps, a, None))
    total = _pair(ctx, Add(), wins[0], wins[1])
    if k == 2:  # one comparison per class: its step is the answer
        return total
    return _apply(ctx, ReLU(), _scale(ctx, total, 1.0, -(k - 2.0)))


def _convert_arg(ctx: NodeContext) -> list[Value]:
    """``ArgMax``/``ArgMin`` (``axis``, ``keepdims``, ``select_last_index``)."""
    x = ctx.data(0)
    rank = len(x.shape)
    axis = normalize_axis(ctx, int(ctx.attr("axis", 0)), rank)
    keep = int(ctx.attr("keepdims", 1))
    last = bool(int(ctx.attr("select_last_index", 0)))
    if ctx.node.op_type == "ArgMin":
        x = _scale(ctx, x, -1.0, 0.0)
    out_shape = tuple(1 if a == axis else d for a, d in enumerate(x.shape) if keep or a != axis)
    k = x.shape[axis]
    moved = transpose(ctx, x, [*(a for a in range(rank) if a != axis), axis])
    hot = one_hot_of_max(ctx, moved, last)
    index = matmul_right(ctx, hot, np.arange(k, dtype=np.float64)[:, None], None)
    return [Data(index.node, out_shape)]


# ------------------------------------------------------------------ one-hot
def _convert_one_hot(ctx: NodeContext) -> list[Value]:
    """``OneHot`` of data indices with a constant depth and constant ``[off, on]`` values."""
    indices = ctx.data(0)
    depth_values = ctx.const(1, "depth").reshape(-1)
    values = ctx.const(2, "values").astype(np.float64).reshape(-1)
    if depth_values.size != 1 or values.size != 2:
        raise ctx.invalid("depth must be one value and values two ([off, on])")
    depth = int(depth_values[0])
    if depth < 1 or depth != depth_values[0]:
        raise ctx.invalid(f"depth {depth_values[0]} is not a positive integer")
    known = value_range(ctx.builder, indices.node)
    if not known.integer:
        indices = _apply(ctx, Trunc(), indices)
        known = value_range(ctx.builder, indices.node)
    rank = len(indices.shape)
    axis = int(ctx.attr("axis", -1))
    if not -rank - 1 <= axis <= rank:
        raise ctx.invalid(f"axis {axis} is out of range for rank {rank + 1}")
    axis = axis % (rank + 1)
    wide = ctx.broadcast(Data(indices.node, (*indices.shape, 1)), (*indices.shape, depth))
    classes = np.arange(depth, dtype=np.float64)
    hits = []
    for offset, reachable in ((0, known.high >= 0), (depth, known.low < 0)):
        if reachable:
            hits.append(_is_zero(ctx, _scale(ctx, wide, 1.0, -(classes - offset)), True))
    if not hits:  # every index is out of range: all off
        hot = _scale(ctx, wide, 0.0, 0.0)
    else:
        hot = hits[0] if len(hits) == 1 else _pair(ctx, Add(), hits[0], hits[1])
    out = _scale(ctx, hot, values[1] - values[0], values[0])
    perm = [*range(axis), rank, *range(axis, rank)]
    return [transpose(ctx, out, perm)]


# ------------------------------------------------- arg-max of a softmax
def _attr(node: onnx.NodeProto, name: str, default):
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def _static_ranks(model: onnx.ModelProto) -> dict[str, int]:
    """Ranks of the tensors whose shapes ONNX's shape inference finds."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # shape inference fails on some models: no rewrite then
        return {}
    infos = [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]
    ranks = {
        v.name: len(v.type.tensor_type.shape.dim)
        for v in infos
        if v.type.tensor_type.HasField("shape")
    }
    ranks.update({t.name: len(t.dims) for t in model.graph.initializer})
    return ranks


def _axis_before(node: onnx.NodeProto, axis: int, ranks: dict[str, int]) -> int | None:
    """The input axis that output ``axis`` of a move comes from (``None``: not one axis)."""
    rank = ranks.get(node.input[0]) if node.input else None
    if rank is None:
        return None
    if node.op_type == "Identity":
        return axis
    if node.op_type == "Transpose":
        perm = list(_attr(node, "perm", list(range(rank))[::-1]))
        return int(perm[axis])
    if node.op_type == "Gather" and node.input[1] in ranks:
        g, r = int(_attr(node, "axis", 0)) % rank, ranks[node.input[1]]
        if axis < g:
            return axis
        return axis - r + 1 if axis >= g + r else None
    return None


def _softmax_axis(node: onnx.NodeProto, rank: int, opset: int) -> int | None:
    """The one axis a ``Softmax``/``LogSoftmax`` normalises (before opset 13 only the last
    axis is one axis in general: the input is seen as 2-D at ``axis``)."""
    axis = int(_attr(node, "axis", -1 if opset >= 13 else 1)) % rank
    return axis if opset >= 13 or axis == rank - 1 else None


def argmax_through_softmax(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` with every ``ArgMax``/``ArgMin`` of a softmax along the same axis (through
    transposes, identities and gathers on other axes) reading the softmax's input instead.

    In real arithmetic ``softmax`` keeps the order of the entries along its axis (it
    is ``exp(x_i)`` over a positive sum common to the axis), ties included, so the
    arg-extrema are the same; the bounds then skip the softmax's relaxation. The
    intermediate tensors must have no other reader.
    """
    graph = model.graph
    producer = {o: n for n in graph.node for o in n.output}
    readers: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            readers[name] = readers.get(name, 0) + 1
    for o in graph.output:
        readers[o.name] = readers.get(o.name, 0) + 1
    ranks, opset = (
        None,
        max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=1),
    )
    rewired: dict[str, tuple[str, str]] = {}  # node output whose first input is rewired
    for node in graph.node:
        if node.op_type not in ("ArgMax", "ArgMin") or node.domain not in ("", "ai.onnx"):
            continue
        ranks = _static_ranks(model) if ranks is None else ranks
        tensor = node.input[0]
        if tensor not in ranks:
            continue
        axis, chain = int(_attr(node, "axis", 0)) % ranks[tensor], node
        while axis is not None and tensor in producer:
            source = producer[tensor]
            if source.op_type in ("Softmax", "LogSoftmax") and source.input[0] in ranks:
                if _softmax_axis(source, ranks[source.input[0]], opset) == axis:
                    rewired[chain.output[0]] = (tensor, source.input[0])
                break
            if readers.get(tensor, 0) != 1:
                break
            axis, chain, tensor = _axis_before(source, axis, ranks), source, source.input[0]
    if not rewired:
        return model
    out = onnx.ModelProto()
    out.CopyFrom(model)
    for node in out.graph.node:
        if node.output and node.output[0] in rewired:
            old, new = rewired[node.output[0]]
            node.input[0] = new if node.input[0] == old else node.input[0]
    return out


# ----------------------------------------------------------------- registry
INTEGER_CONVERTERS: dict[str, Converter] = {
    "Equal": _convert_equal,
    "Greater": _comparison(swap=False, strict=True),
    "GreaterOrEqual": _comparison(swap=False, strict=False),
    "Less": _comparison(swap=True, strict=True),
    "LessOrEqual": _comparison(swap=True, strict=False),
    "Not": _convert_not,
    "And": _convert_logic,
    "Or": _convert_logic,
    "Xor": _convert_logic,
    "Cast": _convert_cast,
    "ArgMax": _convert_arg,
    "ArgMin": _convert_arg,
    "OneHot": _convert_one_hot,
}
"""Op type -> converter of the integer-valued operators on data."""

INTEGER_CONSTANT_INPUTS: dict[str, tuple[int, ...]] = {"OneHot": (1, 2)}
"""Op type -> the inputs its converter needs constant (for the static check)."""
