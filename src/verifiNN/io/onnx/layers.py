"""Converters of the affine layers: products with constant matrices, convolutions (direct and
transposed), pooling, batch normalisation, arithmetic with constants and reductions."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from verifiNN.io.onnx.graph import (
    Data,
    NodeContext,
    Value,
    axes_of,
    normalize_axis,
    sample_shape,
)
from verifiNN.io.onnx.shapes import transpose
from verifiNN.ops import (
    Add,
    AvgPool2d,
    ConstMatMul,
    Conv2d,
    ConvTranspose2d,
    Dense,
    ElementwiseAffine,
    MaxPool2d,
    Mul,
    Op,
    ReduceSum,
    Shape,
    as_tensor,
)

__all__ = [
    "affine",
    "convert_arithmetic",
    "convert_batchnorm",
    "convert_conv",
    "convert_conv_transpose",
    "convert_gemm",
    "convert_global_pool",
    "convert_matmul",
    "convert_neg",
    "convert_pool",
    "convert_reduce",
    "matmul_left",
    "matmul_right",
]


# -------------------------------------------------------------------- matmul
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


def _squeeze_leading(weight: np.ndarray) -> np.ndarray:
    while weight.ndim > 2 and weight.shape[0] == 1:
        weight = weight[0]
    return weight


def _const_matmul(
    ctx: NodeContext,
    x: Data,
    weight: np.ndarray,
    bias: np.ndarray | None,
    out_shape: Shape,
    left: bool,
) -> Data:
    """A ``ConstMatMul`` node on ``x`` laid out with the rank the product needs."""
    weight = _squeeze_leading(weight)
    rank = max(len(x.shape), weight.ndim, 2)
    padded = (1,) * (rank - len(x.shape)) + tuple(x.shape)
    if padded[0] == 1 and rank - 1 >= max(weight.ndim, 2):
        padded = padded[1:]
    probe = ConstMatMul(as_tensor(weight), as_tensor(0.0), left)
    try:
        ir_shape = probe.output_shape(padded)
    except ValueError as exc:
        raise ctx.invalid(str(exc)) from None
    if bias is None or not np.any(bias):
        ir_bias = np.zeros(())
    elif bias.size == 1:
        ir_bias = bias.reshape(())
    else:
        try:
            ir_bias = np.broadcast_to(bias, out_shape).reshape(ir_shape)
        except ValueError:
            raise ctx.invalid(f"bias {list(bias.shape)} does not fit {list(out_shape)}") from None
    op = ConstMatMul(as_tensor(weight), as_tensor(ir_bias), left)
    return Data(ctx.add(op, [ctx.view(x, padded)]), out_shape)


def _lead(ctx: NodeContext, a: Shape, b: Shape) -> Shape:
    try:
        return tuple(np.broadcast_shapes(a, b))
    except ValueError:
        raise ctx.invalid(f"batch axes {list(a)} and {list(b)} do not broadcast") from None


def matmul_right(ctx: NodeContext, x: Data, weight: np.ndarray, bias: np.ndarray | None) -> Data:
    """``x @ weight + bias`` (ONNX ``MatMul`` broadcasting) for data ``x`` and a constant."""
    if weight.ndim == 1:  # [..., K] @ [K]
        out = matmul_right(ctx, x, weight[:, None], bias)
        return Data(out.node, out.shape[:-1])
    if len(x.shape) == 1:  # [K] @ [..., K, N]
        out = matmul_right(ctx, Data(x.node, (1, *x.shape)), weight, bias)
        return Data(out.node, (*out.shape[:-2], out.shape[-1]))
    k, n = weight.shape[-2:]
    if x.shape[-1] != k:
        raise ctx.invalid(f"cannot multiply {list(x.shape)} by {list(weight.shape)}")
    out_shape = (*_lead(ctx, x.shape[:-2], weight.shape[:-2]), x.shape[-2], n)
    if weight.ndim == 2 and math.prod(x.shape[:-1]) == 1:  # one row: a Dense layer
        return _dense(ctx, x, weight.T.astype(np.float64), bias, out_shape)
    return _const_matmul(ctx, x, weight, bias, out_shape, left=False)


def matmul_left(ctx: NodeContext, weight: np.ndarray, x: Data, bias: np.ndarray | None) -> Data:
    """``weight @ x + bias`` (ONNX ``MatMul`` broadcasting) for a constant and data ``x``."""
    if weight.ndim == 1:  # [K] @ [..., K, N]
        out = matmul_left(ctx, weight[None, :], x, bias)
        return Data(out.node, (*out.shape[:-2], out.shape[-1]))
    m, k = weight.shape[-2:]
    if len(x.shape) == 1:  # [..., M, K] @ [K]
        if x.shape[0] != k:
            raise ctx.invalid(f"cannot multiply {list(weight.shape)} by {list(x.shape)}")
        if weight.ndim == 2:
            return _dense(ctx, x, weight.astype(np.float64), bias, (m,))
        out = matmul_left(ctx, weight, Data(x.node, (k, 1)), bias)
        return Data(out.node, out.shape[:-1])
    if x.shape[-2] != k:
        raise ctx.invalid(f"cannot multiply {list(weight.shape)} by {list(x.shape)}")
    out_shape = (*_lead(ctx, weight.shape[:-2], x.shape[:-2]), m, x.shape[-1])
    if weight.ndim == 2 and math.prod(x.shape) == k:  # one column: a Dense layer
        return _dense(ctx, x, weight.astype(np.float64), bias, out_shape)
    return _const_matmul(ctx, x, weight, bias, out_shape, left=True)


def convert_matmul(ctx: NodeContext) -> list[Value]:
    a, b = ctx.inputs[0], ctx.inputs[1]
    if isinstance(a, Data) and isinstance(b, np.ndarray):
        return [matmul_right(ctx, a, b.astype(np.float64), None)]
    if isinstance(a, np.ndarray) and isinstance(b, Data):
        return [matmul_left(ctx, a.astype(np.float64), b, None)]
    raise ctx.unsupported("only products of a data tensor with a constant matrix are supported")


def convert_gemm(ctx: NodeContext) -> list[Value]:
    alpha, beta = float(ctx.attr("alpha", 1.0)), float(ctx.attr("beta", 1.0))
    trans_a, trans_b = int(ctx.attr("transA", 0)), int(ctx.attr("transB", 0))
    bias = beta * ctx.const(2, "C").astype(np.float64) if ctx.has(2) else None
    a, b = ctx.inputs[0], ctx.inputs[1]
    if isinstance(a, Data) and isinstance(b, np.ndarray) and len(a.shape) == 2:
        x = transpose(ctx, a, (1, 0)) if trans_a else a
        weight = alpha * (b.T if trans_b else b).astype(np.float64)
        return [matmul_right(ctx, x, weight, bias)]
    if isinstance(a, np.ndarray) and isinstance(b, Data) and len(b.shape) == 2:
        x = transpose(ctx, b, (1, 0)) if trans_b else b
        weight = alpha * (a.T if trans_a else a).astype(np.float64)
        return [matmul_left(ctx, weight, x, bias)]
    raise ctx.unsupported("only products of a 2-D data tensor with a constant are supported")


# ----------------------------------------------------------- convolutions
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


def _kernel(ctx: NodeContext, x: Data, weight: np.ndarray) -> list[int]:
    rank = len(x.shape) - 2
    if weight.ndim != rank + 2:
        raise ctx.invalid(
            f"weight of shape {list(weight.shape)} does not fit input {list(x.shape)}"
        )
    kernel = [int(k) for k in weight.shape[2:]]
    if list(ctx.attr("kernel_shape", kernel)) != kernel:
        raise ctx.invalid(f"kernel_shape {ctx.attr('kernel_shape')} differs from the weight's")
    return kernel


def convert_conv(ctx: NodeContext) -> list[Value]:
    x = ctx.data(0)
    weight = ctx.const(1, "W").astype(np.float64)
    node, sizes = _spatial(ctx, x)
    rank = len(x.shape) - 2
    kernel = _kernel(ctx, x, weight)
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


def _transposed_pads(
    ctx: NodeContext, sizes: Sequence[int], kernel: Sequence[int], extra: Sequence[int]
) -> list[int]:
    """``[begins..., ends...]`` of a ``ConvTranspose`` from ``pads``, ``auto_pad`` and
    ``output_shape``."""
    rank = len(kernel)
    strides = [int(s) for s in ctx.attr("strides", [1] * rank)]
    dilations = [int(d) for d in ctx.attr("dilations", [1] * rank)]
    mode = ctx.attr("auto_pad", "NOTSET")
    target = ctx.attr("output_shape")
    if target is None and mode not in ("SAME_UPPER", "SAME_LOWER"):
        return (
            [0] * 2 * rank
            if mode == "VALID"
            else [int(p) for p in ctx.attr("pads", [0] * 2 * rank)]
        )
    if target is None:
        target = [n * s for n, s in zip(sizes, strides)]
    target = [int(t) for t in target][-rank:]
    begins, ends = [], []
    for n, k, s, d, o, t in zip(sizes, kernel, strides, dilations, extra, target):
        total = s * (n - 1) + o + (k - 1) * d + 1 - t
        if total < 0:
            raise ctx.unsupported(f"attribute output_shape={target}: larger than the full output")
        half = total // 2  # the ONNX rule: SAME_UPPER pads the end more, others the start
        begins.append(half if mode == "SAME_UPPER" else total - half)
        ends.append(total - half if mode == "SAME_UPPER" else half)
    return begins + ends


def convert_conv_transpose(ctx: NodeContext) -> list[Value]:
    """``ConvTranspose`` 1-D/2-D (pads, strides, dilations, group, output_padding,
    output_shape, every ``auto_pad``)."""
    x = ctx.data(0)
    weight = ctx.const(1, "W").astype(np.float64)
    node, sizes = _spatial(ctx, x)
    rank = len(x.shape) - 2
    kernel = _kernel(ctx, x, weight)
    groups = int(ctx.attr("group", 1))
    extra = [int(p) for p in ctx.attr("output_padding", [0] * rank)]
    pads = _transposed_pads(ctx, sizes[2 - rank :], kernel, extra)
    if len(pads) != 2 * rank or len(extra) != rank or min(pads) < 0:
        raise ctx.invalid(f"pads {pads} / output_padding {extra} do not fit a {rank}-D kernel")
    channels = weight.shape[1] * groups
    bias = ctx.const(2, "B").astype(np.float64) if ctx.has(2) else np.zeros(channels)
    op = ConvTranspose2d(
        as_tensor(weight.reshape(*weight.shape[:2], *_lift(kernel, rank, 1))),
        as_tensor(bias),
        _lift(ctx.attr("strides", [1] * rank), rank, 1),
        (*_lift(pads[:rank], rank, 0), *_lift(pads[rank:], rank, 0)),
        _lift(extra, rank, 0),
        _lift(ctx.attr("dilations", [1] * rank), rank, 1),
        groups,
    )
    out = ctx.add(op, [node])
    return [Data(out, _out_shape(x, channels, ctx.builder.shapes[out]))]


def _ceil_padding(
    sizes: Sequence[int],
    kernel: Sequence[int],
    dilations: Sequence[int],
    strides: Sequence[int],
    pads: tuple[int, int, int, int],
) -> tuple[int, int, int, int]:
    """``pads`` with the end padding ``ceil_mode=1`` adds: the output size rounds up, but
    the last window must start inside the input or its begin padding (the ONNX rule)."""
    ends = []
    for size, k, d, s, lo, hi in zip(sizes, kernel, dilations, strides, pads[:2], pads[2:]):
        span = d * (k - 1) + 1
        count = -(-(size + lo + hi - span) // s) + 1
        if (count - 1) * s >= size + lo:
            count -= 1
        ends.append(hi + max(0, (count - 1) * s + span - (size + lo + hi)))
    return (pads[0], pads[1], ends[0], ends[1])


def convert_pool(ctx: NodeContext) -> list[Value]:
    x = ctx.data(0)
    node, sizes = _spatial(ctx, x)
    rank = len(x.shape) - 2
    kernel = [int(k) for k in ctx.attr("kernel_shape", [])]
    if len(kernel) != rank:
        raise ctx.invalid(f"kernel_shape {kernel} does not fit input {list(x.shape)}")
    dilations = [int(d) for d in ctx.attr("dilations", [1] * rank)]  # MaxPool only
    strides, pads = _window(ctx, sizes[2 - rank :], kernel, dilations)
    kernel2, dilations2 = _lift(kernel, rank, 1), _lift(dilations, rank, 1)
    if int(ctx.attr("ceil_mode", 0)) and ctx.attr("auto_pad", "NOTSET") == "NOTSET":
        ceiled = _ceil_padding(sizes, kernel2, dilations2, strides, pads)
        if ceiled != pads and ctx.node.op_type != "MaxPool":
            raise ctx.unsupported("attribute ceil_mode=1 changes the output size")
        pads = ceiled  # MaxPool pads with -inf: extra end padding is exact
    if ctx.node.op_type == "MaxPool":
        op: Op = MaxPool2d(kernel2, strides, pads, dilations2)
    else:
        op = AvgPool2d(kernel2, strides, pads, bool(ctx.attr("count_include_pad", 0)))
    out = ctx.add(op, [node])
    return [Data(out, _out_shape(x, x.shape[1], ctx.builder.shapes[out])), None]


def convert_global_pool(ctx: NodeContext) -> list[Value]:
    x = ctx.data(0)
    node, sizes = _spatial(ctx, x)
    out = ctx.add(AvgPool2d(sizes, (1, 1)), [node])
    return [Data(out, _out_shape(x, x.shape[1], ctx.builder.shapes[out]))]


# ---------------------------------------------------------------- reductions
def convert_reduce(ctx: NodeContext) -> list[Value]:
    """``ReduceSum``/``ReduceMean`` over constant axes (``keepdims``, ``noop_with_empty_axes``)."""
    x = ctx.data(0)
    rank = len(x.shape)
    axes = axes_of(ctx, 1)  # an input from opset 13 (ReduceSum) / 18 (ReduceMean) on
    if not axes:
        if int(ctx.attr("noop_with_empty_axes", 0)):
            return [x]
        axes = list(range(rank))
    axes = sorted({normalize_axis(ctx, int(a), rank) for a in axes})
    count = math.prod(x.shape[a] for a in axes)
    keep = int(ctx.attr("keepdims", 1))
    out_shape = tuple(1 if i in axes else d for i, d in enumerate(x.shape) if keep or i not in axes)
    summed = [a for a in axes if x.shape[a] != 1]
    if not summed:
        return [Data(x.node, out_shape)]
    node, offset = ctx.axis_view(x, summed)
    scale = 1.0 / count if ctx.node.op_type == "ReduceMean" else 1.0
    op = ReduceSum(tuple(a - offset for a in summed), scale)
    return [Data(ctx.add(op, [node]), out_shape)]


# ------------------------------------------------------------- batch norm
def convert_batchnorm(ctx: NodeContext) -> list[Value]:
    x = ctx.data(0)
    gamma, beta, mean, var = (
        ctx.const(i, w).astype(np.float64) for i, w in enumerate(("scale", "B", "mean", "var"), 1)
    )
    if len(x.shape) < 2 or any(p.shape != (x.shape[1],) for p in (gamma, beta, mean, var)):
        raise ctx.invalid(f"parameters do not fit input of shape {list(x.shape)}")
    scale = gamma / np.sqrt(var + float(ctx.attr("epsilon", 1e-5)))
    shift = beta - mean * scale
    tail = (1,) * (len(x.shape) - 2)
    outs = affine(ctx, x, scale.reshape(-1, *tail), shift.reshape(-1, *tail))
    return [*outs, None, None, None, None]


# ---------------------------------------------------------------- arithmetic
def affine(ctx: NodeContext, x: Data, scale: np.ndarray, shift: np.ndarray) -> list[Value]:
    """``x * scale + shift`` with ONNX broadcasting of the constants (which may enlarge
    ``x``: it is then broadcast first)."""
    try:
        out_shape = tuple(np.broadcast_shapes(x.shape, scale.shape, shift.shape))
    except ValueError:
        raise ctx.invalid(f"constants do not broadcast to the data shape {list(x.shape)}") from None
    if math.prod(out_shape) != math.prod(x.shape):
        x = ctx.broadcast(x, out_shape)
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


def convert_arithmetic(ctx: NodeContext) -> list[Value]:
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
            return affine(ctx, a, 1.0 / b, zero)
        scale, shift = {"Add": (one, b), "Sub": (one, -b), "Mul": (b, zero)}[kind]
        return affine(ctx, a, scale, shift)
    if isinstance(a, np.ndarray) and isinstance(b, Data):
        a = a.astype(np.float64)
        if kind == "Div":
            raise ctx.unsupported("division by a data tensor is not supported (not affine)")
        scale, shift = {"Add": (one, a), "Sub": (-one, a), "Mul": (a, zero)}[kind]
        return affine(ctx, b, scale, shift)
    raise ctx.unsupported("unexpected operands")


def _same_layout(ctx: NodeContext, a: Data, b: Data) -> tuple[Shape, str, str]:
    """The common (broadcast) full shape of two data operands and their IR nodes laid out
    alike (an operand that broadcasting enlarges is broadcast first)."""
    try:
        out_shape = tuple(np.broadcast_shapes(a.shape, b.shape))
    except ValueError:
        raise ctx.invalid(f"shapes {list(a.shape)} and {list(b.shape)} do not broadcast") from None
    a, b = ctx.broadcast(a, out_shape), ctx.broadcast(b, out_shape)
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


def convert_neg(ctx: NodeContext) -> list[Value]:
    return affine(ctx, ctx.data(0), -np.ones(()), np.zeros(()))
