"""Converters: ONNX operators whose values depend on the network input, into IR nodes.

:data:`CONVERTERS` maps each supported operator type to the function that adds
its IR nodes; :func:`unsupported_nodes` finds, before any conversion, every
operator and attribute value that no input shape could make supported.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import onnx
from onnx import helper

from verifiNN.io.onnx.folding import FOLDERS, SHAPE_OPS
from verifiNN.io.onnx.graph import (
    FLOAT_TYPES,
    MAX_MATRIX_ENTRIES,
    Converter,
    Data,
    NodeContext,
    Value,
    flatten_shape,
    node_label,
    normalize_axis,
    permutation,
    reshape_shape,
    sample_shape,
    squeeze_shape,
    unsqueeze_shape,
)
from verifiNN.ops import (
    Add,
    AvgPool2d,
    Concat,
    Conv2d,
    Dense,
    ElementwiseAffine,
    LeakyReLU,
    MaxPool2d,
    Mul,
    Op,
    Pad,
    ReLU,
    Shape,
    Sigmoid,
    Tanh,
    as_tensor,
)


# ----------------------------------------------------------------- converters
def _alias(ctx: NodeContext) -> list[Value]:
    """``Identity``, ``Dropout`` (inference: identity, mask not modelled), float ``Cast``."""
    if ctx.node.op_type == "Cast" and int(ctx.attr("to")) not in FLOAT_TYPES:
        raise ctx.unsupported(f"attribute to={ctx.attr('to')}: only casts to floats are supported")
    if ctx.node.op_type == "Dropout" and ctx.has(2) and ctx.const(2, "training_mode").any():
        raise ctx.unsupported("training_mode=True (only inference dropout is supported)")
    return [ctx.data(0), None]


def _relabel(fn: Callable[[NodeContext, Shape], Shape]) -> Converter:
    """Shape-only ops: same IR node, new full shape."""

    def convert(ctx: NodeContext) -> list[Value]:
        x = ctx.data(0)
        return [Data(x.node, fn(ctx, x.shape))]

    return convert


def _convert_transpose(ctx: NodeContext) -> list[Value]:
    x = ctx.data(0)
    perm = permutation(ctx, len(x.shape))
    moved = [p for p in perm if x.shape[p] != 1]
    if moved != sorted(moved):
        raise ctx.unsupported(
            f"attribute perm={perm} moves data of shape {list(x.shape)} "
            "(only transposes that act as reshapes are supported)"
        )
    return [Data(x.node, tuple(x.shape[p] for p in perm))]


def _activation(make: Callable[[NodeContext], Op]) -> Converter:
    def convert(ctx: NodeContext) -> list[Value]:
        x = ctx.data(0)
        return [Data(ctx.add(make(ctx), [x.node]), x.shape)]

    return convert


def _matmul_right(ctx: NodeContext, x: Data, weight: np.ndarray, bias: np.ndarray | None) -> Data:
    """``x @ weight + bias`` for data ``x`` of shape ``[..., K]`` and ``weight`` ``[K, N]``."""
    k, n = weight.shape
    if x.shape[-1] != k:
        raise ctx.invalid(f"cannot multiply {list(x.shape)} by {list(weight.shape)}")
    out_shape = (*x.shape[:-1], n)
    rows = math.prod(x.shape[:-1])
    matrix = weight.T.astype(np.float64)
    if rows > 1:
        if (rows * n) * (rows * k) > MAX_MATRIX_ENTRIES:
            raise ctx.unsupported(
                f"a product of {list(x.shape)} by {list(weight.shape)} is too large"
            )
        matrix = np.kron(np.eye(rows), matrix)
    return _dense(ctx, x, matrix, bias, out_shape)


def _matmul_left(ctx: NodeContext, weight: np.ndarray, x: Data, bias: np.ndarray | None) -> Data:
    """``weight @ x + bias`` for ``weight`` ``[M, K]`` and data ``x`` ``[..., K, N]`` or ``[K]``."""
    m, k = weight.shape
    if len(x.shape) == 1:
        if x.shape[0] != k:
            raise ctx.invalid(f"cannot multiply {list(weight.shape)} by {list(x.shape)}")
        return _dense(ctx, x, weight.astype(np.float64), bias, (m,))
    if x.shape[-2] != k:
        raise ctx.invalid(f"cannot multiply {list(weight.shape)} by {list(x.shape)}")
    blocks, n = math.prod(x.shape[:-2]), x.shape[-1]
    if (blocks * m * n) * (blocks * k * n) > MAX_MATRIX_ENTRIES:
        raise ctx.unsupported(f"a product of {list(weight.shape)} by {list(x.shape)} is too large")
    matrix = np.kron(np.eye(blocks), np.kron(weight.astype(np.float64), np.eye(n)))
    return _dense(ctx, x, matrix, bias, (*x.shape[:-2], m, n))


def _dense(
    ctx: NodeContext, x: Data, matrix: np.ndarray, bias: np.ndarray | None, out_shape: Shape
) -> Data:
    if bias is None:
        flat_bias = np.zeros(matrix.shape[0])
    else:
        try:
            flat_bias = np.broadcast_to(bias.astype(np.float64), out_shape).reshape(-1)
        except ValueError:
            raise ctx.invalid(f"bias {list(bias.shape)} does not fit {list(out_shape)}") from None
    flat = ctx.view(x, (math.prod(x.shape),))
    return Data(ctx.add(Dense(as_tensor(matrix), as_tensor(flat_bias)), [flat]), out_shape)


def _convert_matmul(ctx: NodeContext) -> list[Value]:
    a, b = ctx.inputs[0], ctx.inputs[1]
    if isinstance(a, Data) and isinstance(b, np.ndarray) and b.ndim == 2:
        return [_matmul_right(ctx, a, b, None)]
    if isinstance(a, Data) and isinstance(b, np.ndarray) and b.ndim == 1:  # [..., K] @ [K]
        out = _matmul_right(ctx, a, b[:, None], None)
        return [Data(out.node, out.shape[:-1])]
    if isinstance(a, np.ndarray) and isinstance(b, Data) and a.ndim == 2:
        return [_matmul_left(ctx, a, b, None)]
    raise ctx.unsupported("only products of a data tensor with a constant matrix are supported")


def _convert_gemm(ctx: NodeContext) -> list[Value]:
    alpha, beta = float(ctx.attr("alpha", 1.0)), float(ctx.attr("beta", 1.0))
    trans_a, trans_b = int(ctx.attr("transA", 0)), int(ctx.attr("transB", 0))
    bias = beta * ctx.const(2, "C").astype(np.float64) if ctx.has(2) else None
    a, b = ctx.inputs[0], ctx.inputs[1]
    if isinstance(a, Data) and isinstance(b, np.ndarray):
        if trans_a and min(a.shape) > 1:
            raise ctx.unsupported(f"attribute transA=1 on data of shape {list(a.shape)}")
        x = Data(a.node, a.shape[::-1]) if trans_a else a
        weight = alpha * (b.T if trans_b else b).astype(np.float64)
        return [_matmul_right(ctx, x, weight, bias)]
    if isinstance(a, np.ndarray) and isinstance(b, Data):
        if trans_b and min(b.shape) > 1:
            raise ctx.unsupported(f"attribute transB=1 on data of shape {list(b.shape)}")
        x = Data(b.node, b.shape[::-1]) if trans_b else b
        weight = alpha * (a.T if trans_a else a).astype(np.float64)
        return [_matmul_left(ctx, weight, x, bias)]
    raise ctx.unsupported("only products of a data tensor with a constant matrix are supported")


def _spatial(ctx: NodeContext, x: Data) -> tuple[str, tuple[int, int]]:
    """View ``[1, C, H, W]`` or ``[1, C, L]`` data as ``(C, H, W)`` / ``(C, 1, L)``."""
    if len(x.shape) not in (3, 4) or x.shape[0] != 1:
        raise ctx.unsupported(
            f"only one sample of 1-D or 2-D data is supported, got shape {list(x.shape)}"
        )
    channels, *sizes = x.shape[1:]
    sizes = [1, *sizes][-2:]
    return ctx.view(x, (channels, *sizes)), (sizes[0], sizes[1])


def _lift(values: Sequence[int], rank: int, fill: int) -> tuple[int, int]:
    """A 1-D or 2-D spatial attribute as ``(h, w)`` (1-D: ``(fill, v)``)."""
    values = [int(v) for v in values]
    return (values[0], values[1]) if rank == 2 else (fill, values[0])


def _window(
    ctx: NodeContext, sizes: Sequence[int], kernel: Sequence[int], dilations: Sequence[int]
) -> tuple[tuple[int, int], tuple[int, int, int, int]]:
    """``(strides, (top, left, bottom, right))`` of a conv/pool window, from ONNX attributes."""
    rank = len(kernel)
    strides = [int(s) for s in ctx.attr("strides", [1] * rank)]
    mode = ctx.attr("auto_pad", "NOTSET")
    if mode == "NOTSET":
        pads = [int(p) for p in ctx.attr("pads", [0] * 2 * rank)]
    elif mode == "VALID":
        pads = [0] * 2 * rank
    elif mode in ("SAME_UPPER", "SAME_LOWER"):
        begins, ends = [], []
        for size, k, s, d in zip(sizes, kernel, strides, dilations):
            total = max((-(-size // s) - 1) * s + (k - 1) * d + 1 - size, 0)
            small, big = total // 2, total - total // 2
            begins.append(small if mode == "SAME_UPPER" else big)
            ends.append(big if mode == "SAME_UPPER" else small)
        pads = begins + ends
    else:
        raise ctx.unsupported(f"attribute auto_pad={mode!r}")
    if len(pads) != 2 * rank or len(strides) != rank or min(strides) < 1:
        raise ctx.invalid(f"pads {pads} / strides {strides} do not fit a {rank}-D window")
    if min(pads) < 0:
        raise ctx.unsupported(f"attribute pads={pads}: negative padding")
    top, left = _lift(pads[:rank], rank, 0)
    bottom, right = _lift(pads[rank:], rank, 0)
    return _lift(strides, rank, 1), (top, left, bottom, right)


def _out_shape(x: Data, channels: int, ir_shape: Shape) -> Shape:
    """Full ONNX output shape of a 1-D/2-D conv or pool from the IR ``(C, H, W)`` shape."""
    return (1, channels, *ir_shape[1:]) if len(x.shape) == 4 else (1, channels, ir_shape[2])


def _convert_conv(ctx: NodeContext) -> list[Value]:
    x = ctx.data(0)
    weight = ctx.const(1, "W").astype(np.float64)
    node, sizes = _spatial(ctx, x)
    rank = len(x.shape) - 2
    if weight.ndim != rank + 2:
        raise ctx.invalid(
            f"weight of shape {list(weight.shape)} does not fit input {list(x.shape)}"
        )
    kernel = [int(k) for k in weight.shape[2:]]
    if list(ctx.attr("kernel_shape", kernel)) != kernel:
        raise ctx.invalid(f"kernel_shape {ctx.attr('kernel_shape')} differs from the weight's")
    dilations = [int(d) for d in ctx.attr("dilations", [1] * rank)]
    strides, pads = _window(ctx, sizes[2 - rank :], kernel, dilations)
    bias = ctx.const(2, "B").astype(np.float64) if ctx.has(2) else np.zeros(weight.shape[0])
    op = Conv2d(
        as_tensor(weight.reshape(*weight.shape[:2], *_lift(kernel, rank, 1))),
        as_tensor(bias),
        strides,
        pads,
        _lift(dilations, rank, 1),
        int(ctx.attr("group", 1)),
    )
    out = ctx.add(op, [node])
    return [Data(out, _out_shape(x, weight.shape[0], ctx.builder.shapes[out]))]


def _convert_pool(ctx: NodeContext) -> list[Value]:
    x = ctx.data(0)
    node, sizes = _spatial(ctx, x)
    rank = len(x.shape) - 2
    kernel = [int(k) for k in ctx.attr("kernel_shape", [])]
    if len(kernel) != rank:
        raise ctx.invalid(f"kernel_shape {kernel} does not fit input {list(x.shape)}")
    strides, pads = _window(ctx, sizes[2 - rank :], kernel, [1] * rank)
    kernel2 = _lift(kernel, rank, 1)
    if int(ctx.attr("ceil_mode", 0)) and ctx.attr("auto_pad", "NOTSET") == "NOTSET":
        for size, k, s, lo, hi in zip(sizes, kernel2, strides, pads[:2], pads[2:]):
            if (size + lo + hi - k) % s:
                raise ctx.unsupported("attribute ceil_mode=1 changes the output size")
    if ctx.node.op_type == "MaxPool":
        op: Op = MaxPool2d(kernel2, strides, pads)
    else:
        op = AvgPool2d(kernel2, strides, pads, bool(ctx.attr("count_include_pad", 0)))
    out = ctx.add(op, [node])
    return [Data(out, _out_shape(x, x.shape[1], ctx.builder.shapes[out])), None]


def _convert_global_pool(ctx: NodeContext) -> list[Value]:
    x = ctx.data(0)
    node, sizes = _spatial(ctx, x)
    out = ctx.add(AvgPool2d(sizes, (1, 1)), [node])
    return [Data(out, _out_shape(x, x.shape[1], ctx.builder.shapes[out]))]


def _affine(ctx: NodeContext, x: Data, scale: np.ndarray, shift: np.ndarray) -> list[Value]:
    """``x * scale + shift`` with ONNX broadcasting of the constants."""
    try:
        out_shape = tuple(np.broadcast_shapes(x.shape, scale.shape, shift.shape))
    except ValueError:
        raise ctx.invalid(f"constants do not broadcast to the data shape {list(x.shape)}") from None
    if math.prod(out_shape) != math.prod(x.shape):
        raise ctx.unsupported(f"broadcasting a constant enlarges the data tensor {list(x.shape)}")
    params = []
    if out_shape == tuple(x.shape):
        node = ctx.canonical(x)
        rank = len(out_shape)
        for p in (scale, shift):
            p = p.astype(np.float64).reshape((1,) * (rank - p.ndim) + p.shape)
            if p.size == 1:
                p = p.reshape(())
            elif rank >= 2 and out_shape[0] == 1:
                p = p[0]
            params.append(p)
    else:
        node = x.node
        ir_shape = ctx.builder.shapes[node]
        params = [
            np.broadcast_to(p.astype(np.float64), out_shape).reshape(ir_shape)
            for p in (scale, shift)
        ]
    op = ElementwiseAffine(as_tensor(params[0]), as_tensor(params[1]))
    return [Data(ctx.add(op, [node]), out_shape)]


def _convert_arithmetic(ctx: NodeContext) -> list[Value]:
    kind = ctx.node.op_type
    a, b = ctx.inputs[0], ctx.inputs[1]
    one, zero = np.ones(()), np.zeros(())
    if isinstance(a, Data) and isinstance(b, Data):
        if kind == "Mul":
            return [_multiply_data(ctx, a, b)]
        if kind not in ("Add", "Sub"):
            raise ctx.unsupported(f"{kind} of two data tensors is not supported")
        return [_add_data(ctx, a, b, kind == "Sub")]
    if isinstance(a, Data) and isinstance(b, np.ndarray):
        b = b.astype(np.float64)
        if kind == "Div":
            if not np.all(b != 0):
                raise ctx.invalid("division by zero")
            return _affine(ctx, a, 1.0 / b, zero)
        scale, shift = {"Add": (one, b), "Sub": (one, -b), "Mul": (b, zero)}[kind]
        return _affine(ctx, a, scale, shift)
    if isinstance(a, np.ndarray) and isinstance(b, Data):
        a = a.astype(np.float64)
        if kind == "Div":
            raise ctx.unsupported("division by a data tensor is not supported (not affine)")
        scale, shift = {"Add": (one, a), "Sub": (-one, a), "Mul": (a, zero)}[kind]
        return _affine(ctx, b, scale, shift)
    raise ctx.unsupported("unexpected operands")


def _same_layout(ctx: NodeContext, a: Data, b: Data) -> tuple[Shape, str, str]:
    """The common full shape of two data operands and their IR nodes laid out alike."""
    try:
        out_shape = tuple(np.broadcast_shapes(a.shape, b.shape))
    except ValueError:
        raise ctx.invalid(f"shapes {list(a.shape)} and {list(b.shape)} do not broadcast") from None
    if not math.prod(a.shape) == math.prod(b.shape) == math.prod(out_shape):
        raise ctx.unsupported(f"broadcasting {list(a.shape)} with {list(b.shape)}")
    layout = sample_shape(out_shape)
    return out_shape, ctx.view(a, layout), ctx.view(b, layout)


def _multiply_data(ctx: NodeContext, a: Data, b: Data) -> Data:
    """The product of two data tensors: an IR ``Mul`` (McCormick-relaxed)."""
    out_shape, left, right = _same_layout(ctx, a, b)
    return Data(ctx.add(Mul(), [left, right]), out_shape)


def _add_data(ctx: NodeContext, a: Data, b: Data, subtract: bool) -> Data:
    out_shape, left, right = _same_layout(ctx, a, b)
    if subtract:
        right = ctx.add(ElementwiseAffine(as_tensor(-1.0), as_tensor(0.0)), [right])
    return Data(ctx.add(Add(), [left, right]), out_shape)


def _convert_neg(ctx: NodeContext) -> list[Value]:
    return _affine(ctx, ctx.data(0), -np.ones(()), np.zeros(()))


def _convert_batchnorm(ctx: NodeContext) -> list[Value]:
    x = ctx.data(0)
    gamma, beta, mean, var = (
        ctx.const(i, w).astype(np.float64) for i, w in enumerate(("scale", "B", "mean", "var"), 1)
    )
    if len(x.shape) < 2 or any(p.shape != (x.shape[1],) for p in (gamma, beta, mean, var)):
        raise ctx.invalid(f"parameters do not fit input of shape {list(x.shape)}")
    scale = gamma / np.sqrt(var + float(ctx.attr("epsilon", 1e-5)))
    shift = beta - mean * scale
    tail = (1,) * (len(x.shape) - 2)
    outs = _affine(ctx, x, scale.reshape(-1, *tail), shift.reshape(-1, *tail))
    return [*outs, None, None, None, None]


def _convert_pad(ctx: NodeContext) -> list[Value]:
    x = ctx.data(0)
    rank = len(x.shape)
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
    if min(full) < 0:
        raise ctx.unsupported(f"attribute pads={pads}: negative pads (cropping)")
    if not any(full):
        return [x]
    if rank < 2 or any(full[a] or full[rank + a] for a in range(rank - 2)):
        raise ctx.unsupported(f"pads={pads}: only the last two axes may be padded")
    begin, end = full[rank - 2 : rank], full[2 * rank - 2 :]
    node = ctx.view(x, (math.prod(x.shape[:-2]), *x.shape[-2:]))
    out = ctx.add(Pad((begin[0], begin[1], end[0], end[1]), value), [node])
    out_shape = (*x.shape[:-2], x.shape[-2] + begin[0] + end[0], x.shape[-1] + begin[1] + end[1])
    return [Data(out, out_shape)]


def _convert_concat(ctx: NodeContext) -> list[Value]:
    values = [ctx.data(i) for i in range(len(ctx.inputs))]
    rank = len(values[0].shape)
    axis = normalize_axis(ctx, int(ctx.attr("axis")), rank)
    shapes = [v.shape for v in values]
    if any(
        len(s) != rank or any(s[i] != shapes[0][i] for i in range(rank) if i != axis)
        for s in shapes
    ):
        raise ctx.invalid(f"inputs of shapes {[list(s) for s in shapes]} differ off axis {axis}")
    out_shape = (*shapes[0][:axis], sum(s[axis] for s in shapes), *shapes[0][axis + 1 :])
    if len(values) == 1:
        return [values[0]]
    batched = rank >= 2 and axis >= 1 and shapes[0][0] == 1
    nodes = [ctx.view(v, v.shape[1:] if batched else v.shape) for v in values]
    out = ctx.add(Concat(axis - 1 if batched else axis), nodes)
    return [Data(out, out_shape)]


CONVERTERS: dict[str, Converter] = {
    "Identity": _alias,
    "Dropout": _alias,
    "Cast": _alias,
    "Flatten": _relabel(flatten_shape),
    "Reshape": _relabel(reshape_shape),
    "Squeeze": _relabel(squeeze_shape),
    "Unsqueeze": _relabel(unsqueeze_shape),
    "Transpose": _convert_transpose,
    "Relu": _activation(lambda ctx: ReLU()),
    "LeakyRelu": _activation(lambda ctx: LeakyReLU(float(ctx.attr("alpha", 0.01)))),
    "Sigmoid": _activation(lambda ctx: Sigmoid()),
    "Tanh": _activation(lambda ctx: Tanh()),
    "MatMul": _convert_matmul,
    "Gemm": _convert_gemm,
    "Conv": _convert_conv,
    "AveragePool": _convert_pool,
    "MaxPool": _convert_pool,
    "GlobalAveragePool": _convert_global_pool,
    "BatchNormalization": _convert_batchnorm,
    "Add": _convert_arithmetic,
    "Sub": _convert_arithmetic,
    "Mul": _convert_arithmetic,
    "Div": _convert_arithmetic,
    "Neg": _convert_neg,
    "Pad": _convert_pad,
    "Concat": _convert_concat,
}
"""Op type -> converter for nodes whose values depend on the network input."""


def supported_ops() -> tuple[str, ...]:
    """The ONNX operator types :func:`load_onnx` converts or folds."""
    return tuple(sorted(set(CONVERTERS) | set(FOLDERS)))


_CONSTANT_BY_NATURE = frozenset({"Constant", "ConstantOfShape", "Shape", "Size", "Range"})


def constant_only_ops() -> tuple[str, ...]:
    """The supported operator types folded when their inputs are constants but not
    converted when they act on data (``Slice`` of a weight works, of an activation not)."""
    return tuple(sorted(set(FOLDERS) - set(CONVERTERS) - _CONSTANT_BY_NATURE))


# ---------------------------------------------------------- static validation
def _attribute_problems(node: onnx.NodeProto, opset: int) -> list[str]:
    """Attribute values that no input shape could make supported."""
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    attrs = {k: v.decode() if isinstance(v, bytes) else v for k, v in attrs.items()}
    problems = []

    def bad(name: str, why: str = "") -> None:
        problems.append(f"node {node_label(node)}: attribute {name}={attrs[name]!r} {why}".rstrip())

    op = node.op_type
    if op in ("Conv", "AveragePool", "MaxPool"):
        if attrs.get("auto_pad", "NOTSET") not in ("NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER"):
            bad("auto_pad", "(expected NOTSET, VALID, SAME_UPPER or SAME_LOWER)")
        if len(attrs.get("kernel_shape", [1])) > 2:
            bad("kernel_shape", "(only 1-D and 2-D windows are supported)")
    if op in ("AveragePool", "MaxPool") and any(d != 1 for d in attrs.get("dilations", [])):
        bad("dilations", "(pooling dilations are not supported)")
    if op == "Pad" and attrs.get("mode", "constant") != "constant":
        bad("mode", "(only constant padding is supported)")
    if op == "BatchNormalization":
        if attrs.get("training_mode", 0):
            bad("training_mode", "(only inference batch norm is supported)")
        if opset < 9 and attrs.get("spatial", 1) != 1:
            bad("spatial")
    return problems


def unsupported_nodes(
    nodes: Sequence[onnx.NodeProto], constants: set[str], opset: int
) -> list[str]:
    """Every unsupported (op type, node) pair and attribute, without converting anything."""
    constants = set(constants)
    problems = []
    for node in nodes:
        if node.domain not in ("", "ai.onnx"):
            problems.append(f"{node.op_type} (node {node.name!r}, domain {node.domain!r})")
            continue
        foldable = node.op_type in FOLDERS and (
            node.op_type in SHAPE_OPS or all(i == "" or i in constants for i in node.input)
        )
        if foldable:
            constants.update(node.output)
        elif node.op_type not in CONVERTERS:
            problems.append(f"{node.op_type} (node {node.name or node.output[0]!r})")
        else:
            problems.extend(_attribute_problems(node, opset))
    return problems
