"""Converters of the nonlinear ONNX operators: elementwise functions and their composites.

:data:`NONLINEAR_CONVERTERS` (registered into
:data:`verifiNN.io.onnx.converters.CONVERTERS`) maps

* the elementwise functions ``Exp``, ``Log``, ``Reciprocal``, ``Sqrt``,
  ``Sin``, ``Cos``, ``Sign``, ``Abs``, ``Erf``, ``Pow`` (a constant exponent,
  one ``Pow`` per distinct value of an exponent tensor; a constant positive base
  and a data exponent becomes ``exp(ln(c) y)``), ``Clip`` (constant bounds) and ``Max``/``Min`` (any
  number of operands, data or constant) onto the IR ops of
  :mod:`verifiNN.ops.elementwise`;
* the composites onto those primitives plus affine IR ops:

  - ``Softmax`` (and ``LogSoftmax``) along an axis as ``exp``, a sum and
    ``reciprocal`` of the pairwise differences, ``y_i = 1 / sum_j exp(x_j - x_i)``
    (Wei et al. 2023, "Convex Bounds on the Softmax Function with Applications
    to Robustness Verification"): no product, so CROWN keeps the coupling of
    numerator and denominator (on 5 logits of width 2 the upper bound is 0.87
    against 2.8 for the product form, sampled maximum 0.85); beyond
    :data:`PAIRWISE_SOFTMAX_LIMIT` differences, the product form of Shi et al.
    2020, "Robustness Verification for Transformers": ``e = exp(x)``,
    ``y = e * broadcast(1 / sum(e))``. Before opset 13 the input is first seen
    as 2-D at ``axis``, as the standard says;
  - ``LayerNormalization``: ``c = x - mean(x)``, ``y = c * (mean(c^2) + eps)^(-1/2)``,
    then the scale and bias;
  - ``Gelu`` (opset 20): ``x * (1 + erf(x / sqrt 2)) / 2``, or with
    ``approximate='tanh'`` ``x * (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3))) / 2``;
  - ``Where`` with a data condition ``c``: ``c * X + (1 - c) * Y`` (a constant
    condition selects in :mod:`verifiNN.io.onnx.shapes`);
  - ``Div`` by a data tensor: ``x * reciprocal(y)`` (``c / y`` for a constant ``c``);
  - ``MatMul`` of two data tensors: ``out[..., m, n] = sum_k a[..., m, k] b[..., k, n]``,
    the products ``a[..., m, :] * b[..., :, n]`` laid out as ``[..., M, N, K]``
    (broadcasts and a transpose) and summed over the last axis.

``Div`` and ``MatMul`` with a constant operand stay with the affine converters
of :mod:`verifiNN.io.onnx.layers`; ``Mul`` of two data tensors (with
broadcasting) is converted there too.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from verifiNN.io.onnx.graph import Converter, Data, NodeContext, Value, normalize_axis, sample_shape
from verifiNN.io.onnx.layers import affine, convert_arithmetic, convert_matmul, matmul_right
from verifiNN.io.onnx.shapes import convert_where, select, transpose
from verifiNN.ops import (
    Abs,
    Add,
    Clip,
    Concat,
    Cos,
    Erf,
    Exp,
    Log,
    Max,
    Min,
    Mul,
    Op,
    Pow,
    Reciprocal,
    ReduceSum,
    ReLU,
    Shape,
    Sign,
    Sin,
    Sqrt,
    Tanh,
)

__all__ = ["NONLINEAR_CONSTANT_INPUTS", "NONLINEAR_CONVERTERS", "PAIRWISE_SOFTMAX_LIMIT"]

GELU_CUBIC = 0.044715
"""The cubic coefficient of the tanh approximation of GELU (ONNX ``Gelu``)."""

PAIRWISE_SOFTMAX_LIMIT = 1 << 16
"""Largest number of pairwise differences ``x_j - x_i`` a ``Softmax`` is converted with
(groups times the axis size squared); beyond it the product form is used."""


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
        listed = [list(s) for s in shapes]
        raise ctx.invalid(f"shapes {listed} do not broadcast") from None


def _pair(ctx: NodeContext, op: Op, a: Data, b: Data) -> Data:
    """A two-input elementwise op on data tensors, broadcast to their common shape."""
    out_shape = _common(ctx, [a.shape, b.shape])
    a, b = ctx.broadcast(a, out_shape), ctx.broadcast(b, out_shape)
    layout = sample_shape(out_shape)
    return Data(ctx.add(op, [ctx.view(a, layout), ctx.view(b, layout)]), out_shape)


def _sum_axes(ctx: NodeContext, x: Data, axes: Sequence[int], scale: float = 1.0) -> Data:
    """``scale * sum`` of ``x`` over ONNX ``axes``, kept as size-1 axes."""
    out_shape = tuple(1 if i in axes else d for i, d in enumerate(x.shape))
    summed = [a for a in axes if x.shape[a] != 1]
    if not summed:
        return _scale(ctx, Data(x.node, out_shape), scale, 0.0) if scale != 1 else x
    node, offset = ctx.axis_view(x, summed)
    op = ReduceSum(tuple(a - offset for a in summed), float(scale))
    return Data(ctx.add(op, [node]), out_shape)


def _subtract(ctx: NodeContext, a: Data, b: Data) -> Data:
    """``a - b`` for data tensors (``b`` broadcast to ``a``'s shape)."""
    negated = _scale(ctx, b, -1.0, 0.0)
    return _pair(ctx, Add(), a, negated)


def _scalar(ctx: NodeContext, value: np.ndarray, what: str) -> float:
    flat = np.asarray(value, np.float64).reshape(-1)
    if flat.size == 0 or not np.all(flat == flat[0]):
        raise ctx.unsupported(f"{what} must be one constant value, got shape {list(value.shape)}")
    return float(flat[0])


# --------------------------------------------------------------- elementwise
def _unary(make: Callable[[], Op]) -> Converter:
    def convert(ctx: NodeContext) -> list[Value]:
        return [_apply(ctx, make(), ctx.data(0))]

    return convert


def _convert_pow(ctx: NodeContext) -> list[Value]:
    base, exponent = ctx.inputs[0], ctx.inputs[1]
    if isinstance(base, np.ndarray) and isinstance(exponent, Data):
        if not np.all(base > 0):
            raise ctx.unsupported("a constant base must be positive when the exponent is data")
        return [_apply(ctx, Exp(), _scale(ctx, exponent, np.log(base.astype(np.float64)), 0.0))]
    x = ctx.data(0)
    exponents = np.asarray(ctx.const(1, "exponent"), np.float64)
    if not np.all(np.isfinite(exponents)):
        raise ctx.unsupported("the exponent is not finite")
    if exponents.size and np.all(exponents == exponents.reshape(-1)[0]):
        return [_power(ctx, x, float(exponents.reshape(-1)[0]))]
    return [_power_by_entry(ctx, x, exponents)]


def _power(ctx: NodeContext, x: Data, p: float) -> Data:
    if p == 1:
        return x
    return _apply(ctx, Sqrt() if p == 0.5 else Pow(p), x)


def _power_by_entry(ctx: NodeContext, x: Data, exponents: np.ndarray) -> Data:
    """``x ** e`` for a constant tensor ``e`` of several values: the entries of each
    exponent are gathered, raised by one ``Pow`` each, and put back in place."""
    out_shape = _common(ctx, [x.shape, exponents.shape])
    size = int(np.prod(out_shape))
    flat = Data(ctx.broadcast(x, out_shape).node, (size,))
    per_entry = np.broadcast_to(exponents, out_shape).reshape(-1)
    parts, order = [], []
    for p in np.unique(per_entry):
        (entries,) = np.nonzero(per_entry == p)
        parts.append(_power(ctx, select(ctx, flat, 0, entries.tolist()), float(p)))
        order.extend(entries.tolist())
    nodes = [ctx.view(part, part.shape) for part in parts]
    joined = Data(ctx.add(Concat(0), nodes), (size,))
    back = select(ctx, joined, 0, np.argsort(np.asarray(order)).tolist())
    return Data(back.node, out_shape)


def _convert_where(ctx: NodeContext) -> list[Value]:
    """``Where``; with a data condition ``c`` (0/1) as ``c * X + (1 - c) * Y``: each
    product is exact in floating point (one factor is 0 or 1) and so is the sum (one
    term is 0), and the products get the bilinear relaxation."""
    condition = ctx.inputs[0]
    if not isinstance(condition, Data):
        return convert_where(ctx)
    kept = _where_term(ctx, condition, ctx.inputs[1], "X")
    other = _where_term(ctx, _scale(ctx, condition, -1.0, 1.0), ctx.inputs[2], "Y")
    return [_pair(ctx, Add(), kept, other)]


def _where_term(ctx: NodeContext, mask: Data, value: Value, what: str) -> Data:
    """``mask * value`` for a 0/1 ``mask`` and a data or finite constant ``value``."""
    if isinstance(value, Data):
        return _pair(ctx, Mul(), mask, value)
    constant = np.asarray(value, np.float64)
    if not np.all(np.isfinite(constant)):
        raise ctx.unsupported(f"{what} holds non-finite values under a data condition")
    return _scale(ctx, mask, constant, 0.0)


def _clip_bounds(ctx: NodeContext) -> tuple[float, float]:
    if ctx.opset < 11:
        low, high = ctx.attr("min"), ctx.attr("max")
        return (
            -math.inf if low is None else float(low),
            math.inf if high is None else float(high),
        )
    low = _scalar(ctx, ctx.const(1, "min"), "min") if ctx.has(1) else -math.inf
    high = _scalar(ctx, ctx.const(2, "max"), "max") if ctx.has(2) else math.inf
    return low, high


def _convert_clip(ctx: NodeContext) -> list[Value]:
    x = ctx.data(0)
    low, high = _clip_bounds(ctx)
    if math.isnan(low) or math.isnan(high):
        raise ctx.invalid("Clip bounds must not be NaN")
    if low == -math.inf and high == math.inf:
        return [x]
    return [_apply(ctx, Clip(low, high), x)]


def _against_constant(ctx: NodeContext, x: Data, c: np.ndarray, larger: bool) -> Data:
    """``max(x, c)`` (``larger``) or ``min(x, c)`` for a constant ``c``: a ``Clip`` for a
    scalar, else ``c + relu(x - c)`` (``c - relu(c - x)``)."""
    c = c.astype(np.float64)
    if c.size == 1 and tuple(_common(ctx, [x.shape, c.shape])) == tuple(x.shape):
        value = float(c.reshape(-1)[0])
        return _apply(ctx, Clip(low=value) if larger else Clip(high=value), x)
    sign = 1.0 if larger else -1.0
    gap = _scale(ctx, x, sign, -sign * c)
    return _scale(ctx, _apply(ctx, ReLU(), gap), sign, c)


def _extremum(larger: bool) -> Converter:
    """``Max`` / ``Min`` of any number of data and constant operands."""

    def convert(ctx: NodeContext) -> list[Value]:
        values = [ctx.inputs[i] for i in range(len(ctx.inputs)) if ctx.has(i)]
        data = [v for v in values if isinstance(v, Data)]
        constants = [np.asarray(v) for v in values if isinstance(v, np.ndarray)]
        if not data:
            raise ctx.invalid("no operand depends on the network input")
        out = data[0]
        for other in data[1:]:
            out = _pair(ctx, Max() if larger else Min(), out, other)
        if constants:
            reduce = np.maximum if larger else np.minimum
            c = constants[0]
            for other in constants[1:]:
                c = reduce(c, other)
            out = _against_constant(ctx, out, c, larger)
        return [out]

    return convert


# ------------------------------------------------------------------ softmax
def _product_softmax(ctx: NodeContext, x: Data, axis: int, log: bool) -> Data:
    """Shi et al. 2020: ``e = exp(x)``, ``y = e * broadcast(1 / sum(e))`` (log: ``x - log(sum e)``).

    The fallback for wide axes (see :data:`PAIRWISE_SOFTMAX_LIMIT`).
    """
    e = _apply(ctx, Exp(), x)
    total = _sum_axes(ctx, e, [axis])
    if log:
        return _subtract(ctx, x, ctx.broadcast(_apply(ctx, Log(), total), x.shape))
    share = ctx.broadcast(_apply(ctx, Reciprocal(), total), x.shape)
    return _pair(ctx, Mul(), e, share)


def _differences(n: int) -> np.ndarray:
    """The ``(n, n^2)`` matrix taking ``x`` to ``d[i n + j] = x_j - x_i``."""
    weight = np.zeros((n, n * n))
    for i in range(n):
        for j in range(n):
            if i != j:
                weight[j, i * n + j] += 1.0
                weight[i, i * n + j] -= 1.0
    return weight


def _pairwise_softmax(ctx: NodeContext, x: Data, axis: int, log: bool) -> Data:
    """``y_i = 1 / sum_j exp(x_j - x_i)`` (log: ``-log sum_j exp(x_j - x_i)``), no product.

    Wei et al. 2023, "Convex Bounds on the Softmax Function with Applications to
    Robustness Verification": the differences are one affine map (exact
    intervals, ``d_ii = 0``), the sum is at least 1, so the reciprocal is
    always one-sided and the output within ``(0, 1]``.
    """
    rank, n = len(x.shape), x.shape[axis]
    perm = [*(a for a in range(rank) if a != axis), axis]
    last = transpose(ctx, x, perm)
    d = matmul_right(ctx, last, _differences(n), None)
    e = _apply(ctx, Exp(), Data(d.node, (*last.shape, n)))
    total = _sum_axes(ctx, e, [rank])
    total = Data(total.node, last.shape)
    if log:
        out = _scale(ctx, _apply(ctx, Log(), total), -1.0, 0.0)
    else:
        out = _apply(ctx, Reciprocal(), total)
    back = [perm.index(a) for a in range(rank)]
    return transpose(ctx, out, back)


def _softmax_axis(ctx: NodeContext, x: Data, axis: int, log: bool) -> Data:
    """Softmax (or log-softmax) of ``x`` along ONNX ``axis``: by pairwise differences
    while they have at most :data:`PAIRWISE_SOFTMAX_LIMIT` entries, else by a product."""
    n = x.shape[axis]
    if n == 1:  # one entry: softmax 1, log-softmax 0
        return _scale(ctx, x, 0.0, 0.0 if log else 1.0)
    if math.prod(x.shape) * n <= PAIRWISE_SOFTMAX_LIMIT:
        return _pairwise_softmax(ctx, x, axis, log)
    return _product_softmax(ctx, x, axis, log)


def _convert_softmax(ctx: NodeContext) -> list[Value]:
    x = ctx.data(0)
    rank = len(x.shape)
    log = ctx.node.op_type == "LogSoftmax"
    if ctx.opset >= 13:
        axis = normalize_axis(ctx, int(ctx.attr("axis", -1)), rank)
        return [_softmax_axis(ctx, x, axis, log)]
    # opset < 13: the input is seen as [prod(shape[:axis]), prod(shape[axis:])]
    axis = int(ctx.attr("axis", 1))
    if not -rank <= axis <= rank:
        raise ctx.invalid(f"axis {axis} is out of range for rank {rank}")
    axis = axis % rank if axis != rank else rank
    flat = Data(x.node, (math.prod(x.shape[:axis]), math.prod(x.shape[axis:])))
    out = _softmax_axis(ctx, flat, 1, log)
    return [Data(out.node, x.shape)]


# -------------------------------------------------------- layer normalization
def _convert_layer_norm(ctx: NodeContext) -> list[Value]:
    x = ctx.data(0)
    rank = len(x.shape)
    axis = normalize_axis(ctx, int(ctx.attr("axis", -1)), rank)
    eps = float(ctx.attr("epsilon", 1e-5))
    axes = list(range(axis, rank))
    count = math.prod(x.shape[a] for a in axes)
    centered = _subtract(ctx, x, ctx.broadcast(_sum_axes(ctx, x, axes, 1.0 / count), x.shape))
    square = _apply(ctx, Pow(2.0), centered)
    variance = _scale(ctx, _sum_axes(ctx, square, axes, 1.0 / count), 1.0, eps)
    inverse = ctx.broadcast(_apply(ctx, Pow(-0.5), variance), x.shape)
    normalized = _pair(ctx, Mul(), centered, inverse)
    scale = ctx.const(1, "Scale").astype(np.float64)
    bias = ctx.const(2, "B").astype(np.float64) if ctx.has(2) else np.zeros(())
    return [_scale(ctx, normalized, scale, bias), None, None]


# --------------------------------------------------------------------- gelu
def _convert_gelu(ctx: NodeContext) -> list[Value]:
    x = ctx.data(0)
    mode = ctx.attr("approximate", "none")
    if mode == "none":
        phi = _scale(ctx, _apply(ctx, Erf(), _scale(ctx, x, 1 / math.sqrt(2), 0.0)), 0.5, 0.5)
    elif mode == "tanh":
        cubic = _scale(ctx, _apply(ctx, Pow(3.0), x), GELU_CUBIC, 0.0)
        inner = _scale(ctx, _pair(ctx, Add(), x, cubic), math.sqrt(2 / math.pi), 0.0)
        phi = _scale(ctx, _apply(ctx, Tanh(), inner), 0.5, 0.5)
    else:
        raise ctx.unsupported(f"attribute approximate={mode!r} (expected 'none' or 'tanh')")
    return [_pair(ctx, Mul(), x, phi)]


# ------------------------------------------------------- division, products
def _convert_div(ctx: NodeContext) -> list[Value]:
    a, b = ctx.inputs[0], ctx.inputs[1]
    if not isinstance(b, Data):
        return convert_arithmetic(ctx)
    inverse = _apply(ctx, Reciprocal(), b)
    if isinstance(a, Data):
        return [_pair(ctx, Mul(), a, inverse)]
    return [_scale(ctx, inverse, np.asarray(a, np.float64), 0.0)]


def _matmul_data(ctx: NodeContext, a: Data, b: Data) -> Data:
    """``a @ b`` for data ``a`` ``[..., M, K]`` and ``b`` ``[..., K, N]`` (rank >= 2)."""
    (m, k), (k2, n) = a.shape[-2:], b.shape[-2:]
    if k != k2:
        raise ctx.invalid(f"cannot multiply {list(a.shape)} by {list(b.shape)}")
    lead = _common(ctx, [a.shape[:-2], b.shape[:-2]])
    rows = Data(a.node, (*a.shape[:-2], m, 1, k))
    perm = [*range(len(b.shape) - 2), len(b.shape) - 1, len(b.shape) - 2]
    moved = transpose(ctx, b, perm)
    cols = Data(moved.node, (*b.shape[:-2], 1, n, k))
    products = _pair(ctx, Mul(), rows, cols)  # [..., M, N, K]
    if products.shape != (*lead, m, n, k):
        raise ctx.invalid(f"cannot multiply {list(a.shape)} by {list(b.shape)}")
    total = _sum_axes(ctx, products, [len(products.shape) - 1])
    return Data(total.node, (*lead, m, n))


def _convert_matmul(ctx: NodeContext) -> list[Value]:
    a, b = ctx.inputs[0], ctx.inputs[1]
    if not (isinstance(a, Data) and isinstance(b, Data)):
        return convert_matmul(ctx)
    if not a.shape or not b.shape:
        raise ctx.invalid("MatMul of a scalar")
    a_matrix = a if len(a.shape) >= 2 else Data(a.node, (1, *a.shape))
    b_matrix = b if len(b.shape) >= 2 else Data(b.node, (*b.shape, 1))
    out = _matmul_data(ctx, a_matrix, b_matrix)
    shape = out.shape
    if len(b.shape) == 1:
        shape = shape[:-1]
    if len(a.shape) == 1:
        shape = (*shape[:-2], shape[-1]) if len(b.shape) >= 2 else shape[:-1]
    return [Data(out.node, shape)]


# ----------------------------------------------------------------- registry
NONLINEAR_CONVERTERS: dict[str, Converter] = {
    "Exp": _unary(Exp),
    "Log": _unary(Log),
    "Reciprocal": _unary(Reciprocal),
    "Sqrt": _unary(Sqrt),
    "Sin": _unary(Sin),
    "Cos": _unary(Cos),
    "Sign": _unary(Sign),
    "Abs": _unary(Abs),
    "Erf": _unary(Erf),
    "Pow": _convert_pow,
    "Where": _convert_where,
    "Clip": _convert_clip,
    "Max": _extremum(True),
    "Min": _extremum(False),
    "Softmax": _convert_softmax,
    "LogSoftmax": _convert_softmax,
    "LayerNormalization": _convert_layer_norm,
    "Gelu": _convert_gelu,
    "Div": _convert_div,
    "MatMul": _convert_matmul,
}
"""Op type -> converter of the nonlinear operators (and of products and quotients of data)."""

NONLINEAR_CONSTANT_INPUTS: dict[str, tuple[int, ...]] = {
    "Clip": (1, 2),
    "LayerNormalization": (1, 2),
}
"""Op type -> the inputs its converter needs constant (for the static check)."""
