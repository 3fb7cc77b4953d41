"""Constant folding: ONNX operators evaluated with NumPy when all their inputs are constant.

``Shape`` and ``Size`` fold whatever their input (shapes are static), so the
``Shape -> Gather -> Concat -> Reshape`` chains of exported models become
constants before any conversion.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from onnx import helper, numpy_helper

from verifiNN.io.onnx.graph import (
    Converter,
    NodeContext,
    Value,
    flatten_shape,
    normalize_axis,
    permutation,
    reshape_shape,
    squeeze_shape,
    unsqueeze_shape,
)
from verifiNN.ops import (
    Shape,
)


# -------------------------------------------------------------------- folders
def _fold_constant(ctx: NodeContext) -> list[Value]:
    for name in ("value", "value_float", "value_floats", "value_int", "value_ints"):
        value = ctx.attr(name)
        if value is None:
            continue
        if name == "value":
            return [numpy_helper.to_array(value)]
        return [np.array(value, dtype=np.float32 if "float" in name else np.int64)]
    raise ctx.unsupported("only tensor and numeric Constant values are supported")


def _fold_shape(ctx: NodeContext) -> list[Value]:
    value = ctx.inputs[0]
    shape = np.array(value.shape, dtype=np.int64)  # type: ignore[union-attr]
    if ctx.node.op_type == "Size":
        return [np.array(math.prod(shape), dtype=np.int64)]
    start, end = int(ctx.attr("start", 0)), ctx.attr("end")
    return [shape[start : None if end is None else int(end)]]


def _fold_cast(ctx: NodeContext) -> list[Value]:
    dtype = helper.tensor_dtype_to_np_dtype(int(ctx.attr("to")))
    return [ctx.const(0, "input").astype(dtype)]


def _fold_slice(ctx: NodeContext) -> list[Value]:
    x = ctx.const(0, "data")
    if ctx.opset < 10:
        starts, ends = ctx.attr("starts"), ctx.attr("ends")
        axes, steps = ctx.attr("axes"), None
    else:
        starts = ctx.const(1, "starts").tolist()
        ends = ctx.const(2, "ends").tolist()
        axes = ctx.const(3, "axes").tolist() if ctx.has(3) else None
        steps = ctx.const(4, "steps").tolist() if ctx.has(4) else None
    axes = list(range(len(starts))) if axes is None else axes
    steps = [1] * len(starts) if steps is None else steps
    index = [slice(None)] * x.ndim
    for a, s, e, k in zip(axes, starts, ends, steps):
        index[normalize_axis(ctx, int(a), x.ndim)] = slice(int(s), int(e), int(k))
    return [x[tuple(index)]]


def _fold_binary(fn: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> Converter:
    def fold(ctx: NodeContext) -> list[Value]:
        return [np.asarray(fn(ctx.const(0, "A"), ctx.const(1, "B")))]

    return fold


def _fold_unary(fn: Callable[[np.ndarray], np.ndarray]) -> Converter:
    def fold(ctx: NodeContext) -> list[Value]:
        return [np.asarray(fn(ctx.const(0, "X")))]

    return fold


def _divide(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if np.issubdtype(a.dtype, np.integer) and np.issubdtype(b.dtype, np.integer):
        return np.trunc(a / b).astype(np.result_type(a, b))
    return a / b


def _fold_reshaping(fn: Callable[[NodeContext, Shape], Shape]) -> Converter:
    def fold(ctx: NodeContext) -> list[Value]:
        x = ctx.const(0, "data")
        return [x.reshape(fn(ctx, x.shape))]

    return fold


def _fold_of_shape(ctx: NodeContext) -> list[Value]:
    value = ctx.attr("value")
    fill = (
        numpy_helper.to_array(value).reshape(-1) if value is not None else np.zeros(1, np.float32)
    )
    return [np.full(ctx.const(0, "shape").astype(np.int64), fill[0], dtype=fill.dtype)]


FOLDERS: dict[str, Converter] = {
    "Constant": _fold_constant,
    "ConstantOfShape": _fold_of_shape,
    "Shape": _fold_shape,
    "Size": _fold_shape,
    "Identity": lambda ctx: [ctx.const(0, "input")],
    "Dropout": lambda ctx: [ctx.const(0, "data")],
    "Cast": _fold_cast,
    "Gather": lambda ctx: [
        np.take(ctx.const(0, "data"), ctx.const(1, "indices"), axis=int(ctx.attr("axis", 0)))
    ],
    "Slice": _fold_slice,
    "Concat": lambda ctx: [
        np.concatenate(
            [ctx.const(i, "input") for i in range(len(ctx.inputs))], int(ctx.attr("axis"))
        )
    ],
    "Reshape": _fold_reshaping(reshape_shape),
    "Flatten": _fold_reshaping(flatten_shape),
    "Squeeze": _fold_reshaping(squeeze_shape),
    "Unsqueeze": _fold_reshaping(unsqueeze_shape),
    "Transpose": lambda ctx: [
        np.transpose(ctx.const(0, "data"), permutation(ctx, ctx.const(0, "data").ndim))
    ],
    "Range": lambda ctx: [
        np.arange(ctx.const(0, "start"), ctx.const(1, "limit"), ctx.const(2, "delta"))
    ],
    "Add": _fold_binary(np.add),
    "Sub": _fold_binary(np.subtract),
    "Mul": _fold_binary(np.multiply),
    "Div": _fold_binary(_divide),
    "Pow": _fold_binary(np.power),
    "MatMul": _fold_binary(np.matmul),
    "Neg": _fold_unary(np.negative),
    "Sqrt": _fold_unary(np.sqrt),
    "Reciprocal": _fold_unary(np.reciprocal),
    "Relu": _fold_unary(lambda x: np.maximum(x, 0)),
}
"""Constant folding: op type -> NumPy evaluation (all inputs constant)."""

SHAPE_OPS = {"Shape", "Size"}  # constant whatever their input
