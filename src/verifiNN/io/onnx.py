"""Load ONNX models into verifiNN's graph IR.

:func:`load_onnx` reads a ``.onnx`` file, checks every operator before any
conversion (one error lists all unsupported operators and attributes), folds
constant subgraphs (``Constant``, ``Shape -> Gather -> Concat -> Reshape`` and
the like), converts the rest node by node into :mod:`verifiNN.ops` and runs the
simplification passes of :mod:`verifiNN.models.passes`.

Shapes. Every tensor's full ONNX shape is known at load time: the batch
dimension counts as 1. The network input's per-sample shape drops a leading
batch dimension of 1 or a symbolic one when the input has rank 2 or more
(``[1, 1, 1, 5] -> (1, 1, 5)``, ``[N, 784] -> (784,)``, ``[1] -> (1,)``); other
dynamic dimensions are an error. Reshapes only relabel C-order data, so a
tensor's IR node may hold any shape of the same size; a converter asks for the
layout it needs and a ``Reshape`` or ``Flatten`` node is added when needed.

Supported operators (``Converters`` below; attributes not named are ignored
because they cannot change the result):

* affine: ``Gemm`` (transA/transB/alpha/beta), ``MatMul`` with one constant
  2-D operand, ``Conv`` 1-D/2-D (pads, strides, dilations, group, every
  ``auto_pad``), ``BatchNormalization`` (inference), ``Add``/``Sub``/``Mul``/
  ``Div`` with a constant (broadcast that does not enlarge the data),
  ``Add``/``Sub`` of two data tensors, ``Neg``, ``AveragePool`` and
  ``GlobalAveragePool`` 1-D/2-D (``count_include_pad``), ``Pad`` (constant mode,
  last two axes), ``Concat`` of data tensors;
* shape: ``Flatten``, ``Reshape`` (``0``, ``-1``, ``allowzero``), ``Squeeze``,
  ``Unsqueeze``, ``Transpose`` when it only moves size-1 axes, ``Identity``,
  ``Dropout``, float-to-float ``Cast``;
* nonlinear: ``Relu``, ``LeakyRelu``, ``Sigmoid``, ``Tanh``, ``MaxPool`` 1-D/2-D.

Constant folding (all inputs constant, or ``Shape``/``Size`` of any tensor):
see ``_FOLDERS``. Rejected with :class:`~verifiNN.errors.UnsupportedModelError`:
any other operator, custom domains, ``Pad`` modes other than ``constant``,
pooling dilations or a ``ceil_mode`` that changes the output size,
training-mode batch norm, 3-D convolutions, products of two data tensors,
transposes that move data, several model inputs or outputs.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from verifiNN.errors import InvalidNetworkError, ModelLoadError, UnsupportedModelError
from verifiNN.models.network import LABELERS, Network, Node
from verifiNN.models.passes import simplify
from verifiNN.ops import (
    Add,
    AvgPool2d,
    Concat,
    Conv2d,
    Dense,
    ElementwiseAffine,
    Flatten,
    LeakyReLU,
    MaxPool2d,
    Op,
    Pad,
    ReLU,
    Reshape,
    Shape,
    Sigmoid,
    Tanh,
    as_tensor,
)

logger = logging.getLogger(__name__)

__all__ = ["MAX_OPSET", "MIN_OPSET", "load_onnx", "onnx_to_network", "supported_ops"]

MIN_OPSET = 7
"""Oldest default-domain opset accepted."""
MAX_OPSET = 23
"""Newest default-domain opset accepted."""
MAX_MATRIX_ENTRIES = 1 << 25
"""Largest dense matrix built for a ``MatMul``/``Gemm`` acting on a non-flat tensor."""

_FLOAT_TYPES = {
    onnx.TensorProto.FLOAT,
    onnx.TensorProto.DOUBLE,
    onnx.TensorProto.FLOAT16,
    onnx.TensorProto.BFLOAT16,
}


@dataclass(frozen=True)
class _Data:
    """A tensor that depends on the network input.

    Attributes:
        node: the IR node (or the network input) holding its values (C-order).
        shape: its full ONNX shape, batch dimension as 1.
    """

    node: str
    shape: Shape


_Value = np.ndarray | _Data | None  # None: an output verifiNN does not model


def sample_shape(shape: Sequence[int]) -> Shape:
    """Per-sample layout of a full ONNX shape: drop a leading 1 when the rank is >= 2."""
    shape = tuple(int(d) for d in shape)
    if len(shape) >= 2 and shape[0] == 1:
        return shape[1:]
    return shape or (1,)


# ------------------------------------------------------------------ building
class _Builder:
    """Collects IR nodes and their per-sample shapes."""

    def __init__(self, input_name: str, shape: Shape, source: str) -> None:
        self.nodes: list[Node] = []
        self.shapes: dict[str, Shape] = {input_name: shape}
        self.source = source
        self._views: dict[tuple[str, Shape], str] = {}

    def add(self, op: Op, inputs: Sequence[str], hint: str, where: str) -> str:
        name, k = hint, 1
        while name in self.shapes:
            name, k = f"{hint}_{k}", k + 1
        try:
            shape = tuple(op.output_shape(*(self.shapes[i] for i in inputs)))
        except ValueError as exc:
            raise ModelLoadError(f"{self.source}: node {where}: {exc}") from None
        self.nodes.append(Node(name, op, tuple(inputs)))
        self.shapes[name] = shape
        return name

    def view(self, value: _Data, shape: Shape, where: str) -> str:
        """The IR node holding ``value`` laid out as ``shape`` (adds a reshape if needed)."""
        shape = tuple(shape)
        if self.shapes[value.node] == shape:
            return value.node
        key = (value.node, shape)
        if key not in self._views:
            op = Flatten() if len(shape) == 1 else Reshape(shape)
            self._views[key] = self.add(op, [value.node], f"{value.node}/reshape", where)
        return self._views[key]

    def canonical(self, value: _Data, where: str) -> str:
        return self.view(value, sample_shape(value.shape), where)


@dataclass
class _Ctx:
    """What a converter sees of one ONNX node."""

    node: onnx.NodeProto
    inputs: list[_Value]
    opset: int
    builder: _Builder

    @property
    def where(self) -> str:
        return _where(self.node)

    @property
    def source(self) -> str:
        return self.builder.source

    def attr(self, name: str, default: Any = None) -> Any:
        for a in self.node.attribute:
            if a.name == name:
                value = helper.get_attribute_value(a)
                return value.decode() if isinstance(value, bytes) else value
        return default

    def has(self, i: int) -> bool:
        return i < len(self.inputs) and self.node.input[i] != ""

    def const(self, i: int, what: str) -> np.ndarray:
        value = self.inputs[i] if self.has(i) else None
        if not isinstance(value, np.ndarray):
            raise self.unsupported(f"input {i} ({what}) must be a constant")
        return value

    def data(self, i: int = 0) -> _Data:
        value = self.inputs[i] if self.has(i) else None
        if not isinstance(value, _Data):
            raise self.unsupported(f"input {i} must depend on the network input")
        return value

    def unsupported(self, what: str) -> UnsupportedModelError:
        return UnsupportedModelError(f"{self.source}: node {self.where}: {what}")

    def invalid(self, what: str) -> ModelLoadError:
        return ModelLoadError(f"{self.source}: node {self.where}: {what}")

    def add(self, op: Op, inputs: Sequence[str]) -> str:
        return self.builder.add(op, inputs, self.node.output[0] or self.node.op_type, self.where)

    def canonical(self, value: _Data) -> str:
        return self.builder.canonical(value, self.where)

    def view(self, value: _Data, shape: Shape) -> str:
        return self.builder.view(value, shape, self.where)


def _where(node: onnx.NodeProto) -> str:
    return f"{node.name or node.output[0]!r} ({node.op_type})"


_Convert = Callable[[_Ctx], list[_Value]]


# ------------------------------------------------------------- shape helpers
def _axis(ctx: _Ctx, axis: int, rank: int) -> int:
    if not -rank <= axis < rank:
        raise ctx.invalid(f"axis {axis} is out of range for rank {rank}")
    return axis % rank


def _axes(ctx: _Ctx, index: int) -> list[int] | None:
    """``axes`` as an attribute (old opsets) or an input (opset 13+)."""
    if ctx.has(index):
        return [int(a) for a in ctx.const(index, "axes").reshape(-1)]
    axes = ctx.attr("axes")
    return None if axes is None else [int(a) for a in axes]


def _reshape_shape(ctx: _Ctx, shape: Shape) -> Shape:
    target = [int(d) for d in ctx.const(1, "shape").reshape(-1)]
    allowzero = int(ctx.attr("allowzero", 0))
    out = [
        shape[i] if d == 0 and not allowzero and i < len(shape) else d for i, d in enumerate(target)
    ]
    if out.count(-1) > 1 or any(d < -1 for d in out):
        raise ctx.invalid(f"invalid target shape {target}")
    if -1 in out:
        known = math.prod(d for d in out if d != -1)
        if known == 0 or math.prod(shape) % known:
            raise ctx.invalid(f"cannot reshape {list(shape)} to {target}")
        out[out.index(-1)] = math.prod(shape) // known
    if math.prod(out) != math.prod(shape):
        raise ctx.invalid(f"cannot reshape {list(shape)} to {target}")
    return tuple(out)


def _flatten_shape(ctx: _Ctx, shape: Shape) -> Shape:
    axis = int(ctx.attr("axis", 1))
    if not -len(shape) <= axis <= len(shape):
        raise ctx.invalid(f"axis {axis} is out of range for rank {len(shape)}")
    axis = axis + len(shape) if axis < 0 else axis
    return (math.prod(shape[:axis]), math.prod(shape[axis:]))


def _squeeze_shape(ctx: _Ctx, shape: Shape) -> Shape:
    axes = _axes(ctx, 1)
    if axes is None:
        return tuple(d for d in shape if d != 1)
    axes = [_axis(ctx, a, len(shape)) for a in axes]
    if any(shape[a] != 1 for a in axes):
        raise ctx.invalid(f"cannot squeeze axes {axes} of shape {list(shape)}")
    return tuple(d for i, d in enumerate(shape) if i not in axes)


def _unsqueeze_shape(ctx: _Ctx, shape: Shape) -> Shape:
    axes = _axes(ctx, 1)
    if axes is None:
        raise ctx.invalid("missing axes")
    rank = len(shape) + len(axes)
    axes = sorted(_axis(ctx, a, rank) for a in axes)
    out = list(shape)
    for a in axes:
        out.insert(a, 1)
    return tuple(out)


def _perm(ctx: _Ctx, rank: int) -> list[int]:
    perm = ctx.attr("perm")
    perm = list(range(rank))[::-1] if perm is None else [int(p) for p in perm]
    if sorted(perm) != list(range(rank)):
        raise ctx.invalid(f"perm {perm} is not a permutation of {rank} axes")
    return perm


# -------------------------------------------------------------------- folders
def _fold_constant(ctx: _Ctx) -> list[_Value]:
    for name in ("value", "value_float", "value_floats", "value_int", "value_ints"):
        value = ctx.attr(name)
        if value is None:
            continue
        if name == "value":
            return [numpy_helper.to_array(value)]
        return [np.array(value, dtype=np.float32 if "float" in name else np.int64)]
    raise ctx.unsupported("only tensor and numeric Constant values are supported")


def _fold_shape(ctx: _Ctx) -> list[_Value]:
    value = ctx.inputs[0]
    shape = np.array(value.shape, dtype=np.int64)  # type: ignore[union-attr]
    if ctx.node.op_type == "Size":
        return [np.array(math.prod(shape), dtype=np.int64)]
    start, end = int(ctx.attr("start", 0)), ctx.attr("end")
    return [shape[start : None if end is None else int(end)]]


def _fold_cast(ctx: _Ctx) -> list[_Value]:
    dtype = helper.tensor_dtype_to_np_dtype(int(ctx.attr("to")))
    return [ctx.const(0, "input").astype(dtype)]


def _fold_slice(ctx: _Ctx) -> list[_Value]:
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
        index[_axis(ctx, int(a), x.ndim)] = slice(int(s), int(e), int(k))
    return [x[tuple(index)]]


def _fold_binary(fn: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> _Convert:
    def fold(ctx: _Ctx) -> list[_Value]:
        return [np.asarray(fn(ctx.const(0, "A"), ctx.const(1, "B")))]

    return fold


def _fold_unary(fn: Callable[[np.ndarray], np.ndarray]) -> _Convert:
    def fold(ctx: _Ctx) -> list[_Value]:
        return [np.asarray(fn(ctx.const(0, "X")))]

    return fold


def _divide(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if np.issubdtype(a.dtype, np.integer) and np.issubdtype(b.dtype, np.integer):
        return np.trunc(a / b).astype(np.result_type(a, b))
    return a / b


def _fold_reshaping(fn: Callable[[_Ctx, Shape], Shape]) -> _Convert:
    def fold(ctx: _Ctx) -> list[_Value]:
        x = ctx.const(0, "data")
        return [x.reshape(fn(ctx, x.shape))]

    return fold


def _fold_of_shape(ctx: _Ctx) -> list[_Value]:
    value = ctx.attr("value")
    fill = (
        numpy_helper.to_array(value).reshape(-1) if value is not None else np.zeros(1, np.float32)
    )
    return [np.full(ctx.const(0, "shape").astype(np.int64), fill[0], dtype=fill.dtype)]


_FOLDERS: dict[str, _Convert] = {
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
    "Reshape": _fold_reshaping(_reshape_shape),
    "Flatten": _fold_reshaping(_flatten_shape),
    "Squeeze": _fold_reshaping(_squeeze_shape),
    "Unsqueeze": _fold_reshaping(_unsqueeze_shape),
    "Transpose": lambda ctx: [
        np.transpose(ctx.const(0, "data"), _perm(ctx, ctx.const(0, "data").ndim))
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

_SHAPE_OPS = {"Shape", "Size"}  # constant whatever their input


# ----------------------------------------------------------------- converters
def _alias(ctx: _Ctx) -> list[_Value]:
    """``Identity``, ``Dropout`` (inference: identity, mask not modelled), float ``Cast``."""
    if ctx.node.op_type == "Cast" and int(ctx.attr("to")) not in _FLOAT_TYPES:
        raise ctx.unsupported(f"attribute to={ctx.attr('to')}: only casts to floats are supported")
    if ctx.node.op_type == "Dropout" and ctx.has(2) and ctx.const(2, "training_mode").any():
        raise ctx.unsupported("training_mode=True (only inference dropout is supported)")
    return [ctx.data(0), None]


def _relabel(fn: Callable[[_Ctx, Shape], Shape]) -> _Convert:
    """Shape-only ops: same IR node, new full shape."""

    def convert(ctx: _Ctx) -> list[_Value]:
        x = ctx.data(0)
        return [_Data(x.node, fn(ctx, x.shape))]

    return convert


def _convert_transpose(ctx: _Ctx) -> list[_Value]:
    x = ctx.data(0)
    perm = _perm(ctx, len(x.shape))
    moved = [p for p in perm if x.shape[p] != 1]
    if moved != sorted(moved):
        raise ctx.unsupported(
            f"attribute perm={perm} moves data of shape {list(x.shape)} "
            "(only transposes that act as reshapes are supported)"
        )
    return [_Data(x.node, tuple(x.shape[p] for p in perm))]


def _activation(make: Callable[[_Ctx], Op]) -> _Convert:
    def convert(ctx: _Ctx) -> list[_Value]:
        x = ctx.data(0)
        return [_Data(ctx.add(make(ctx), [x.node]), x.shape)]

    return convert


def _matmul_right(ctx: _Ctx, x: _Data, weight: np.ndarray, bias: np.ndarray | None) -> _Data:
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


def _matmul_left(ctx: _Ctx, weight: np.ndarray, x: _Data, bias: np.ndarray | None) -> _Data:
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
    ctx: _Ctx, x: _Data, matrix: np.ndarray, bias: np.ndarray | None, out_shape: Shape
) -> _Data:
    if bias is None:
        flat_bias = np.zeros(matrix.shape[0])
    else:
        try:
            flat_bias = np.broadcast_to(bias.astype(np.float64), out_shape).reshape(-1)
        except ValueError:
            raise ctx.invalid(f"bias {list(bias.shape)} does not fit {list(out_shape)}") from None
    flat = ctx.view(x, (math.prod(x.shape),))
    return _Data(ctx.add(Dense(as_tensor(matrix), as_tensor(flat_bias)), [flat]), out_shape)


def _convert_matmul(ctx: _Ctx) -> list[_Value]:
    a, b = ctx.inputs[0], ctx.inputs[1]
    if isinstance(a, _Data) and isinstance(b, np.ndarray) and b.ndim == 2:
        return [_matmul_right(ctx, a, b, None)]
    if isinstance(a, _Data) and isinstance(b, np.ndarray) and b.ndim == 1:  # [..., K] @ [K]
        out = _matmul_right(ctx, a, b[:, None], None)
        return [_Data(out.node, out.shape[:-1])]
    if isinstance(a, np.ndarray) and isinstance(b, _Data) and a.ndim == 2:
        return [_matmul_left(ctx, a, b, None)]
    raise ctx.unsupported("only products of a data tensor with a constant matrix are supported")


def _convert_gemm(ctx: _Ctx) -> list[_Value]:
    alpha, beta = float(ctx.attr("alpha", 1.0)), float(ctx.attr("beta", 1.0))
    trans_a, trans_b = int(ctx.attr("transA", 0)), int(ctx.attr("transB", 0))
    bias = beta * ctx.const(2, "C").astype(np.float64) if ctx.has(2) else None
    a, b = ctx.inputs[0], ctx.inputs[1]
    if isinstance(a, _Data) and isinstance(b, np.ndarray):
        if trans_a and min(a.shape) > 1:
            raise ctx.unsupported(f"attribute transA=1 on data of shape {list(a.shape)}")
        x = _Data(a.node, a.shape[::-1]) if trans_a else a
        weight = alpha * (b.T if trans_b else b).astype(np.float64)
        return [_matmul_right(ctx, x, weight, bias)]
    if isinstance(a, np.ndarray) and isinstance(b, _Data):
        if trans_b and min(b.shape) > 1:
            raise ctx.unsupported(f"attribute transB=1 on data of shape {list(b.shape)}")
        x = _Data(b.node, b.shape[::-1]) if trans_b else b
        weight = alpha * (a.T if trans_a else a).astype(np.float64)
        return [_matmul_left(ctx, weight, x, bias)]
    raise ctx.unsupported("only products of a data tensor with a constant matrix are supported")


def _spatial(ctx: _Ctx, x: _Data) -> tuple[str, tuple[int, int]]:
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
    ctx: _Ctx, sizes: Sequence[int], kernel: Sequence[int], dilations: Sequence[int]
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


def _out_shape(x: _Data, channels: int, ir_shape: Shape) -> Shape:
    """Full ONNX output shape of a 1-D/2-D conv or pool from the IR ``(C, H, W)`` shape."""
    return (1, channels, *ir_shape[1:]) if len(x.shape) == 4 else (1, channels, ir_shape[2])


def _convert_conv(ctx: _Ctx) -> list[_Value]:
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
    return [_Data(out, _out_shape(x, weight.shape[0], ctx.builder.shapes[out]))]


def _convert_pool(ctx: _Ctx) -> list[_Value]:
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
    return [_Data(out, _out_shape(x, x.shape[1], ctx.builder.shapes[out])), None]


def _convert_global_pool(ctx: _Ctx) -> list[_Value]:
    x = ctx.data(0)
    node, sizes = _spatial(ctx, x)
    out = ctx.add(AvgPool2d(sizes, (1, 1)), [node])
    return [_Data(out, _out_shape(x, x.shape[1], ctx.builder.shapes[out]))]


def _affine(ctx: _Ctx, x: _Data, scale: np.ndarray, shift: np.ndarray) -> list[_Value]:
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
    return [_Data(ctx.add(op, [node]), out_shape)]


def _convert_arithmetic(ctx: _Ctx) -> list[_Value]:
    kind = ctx.node.op_type
    a, b = ctx.inputs[0], ctx.inputs[1]
    one, zero = np.ones(()), np.zeros(())
    if isinstance(a, _Data) and isinstance(b, _Data):
        if kind not in ("Add", "Sub"):
            raise ctx.unsupported(f"{kind} of two data tensors is not supported (not affine)")
        return [_add_data(ctx, a, b, kind == "Sub")]
    if isinstance(a, _Data) and isinstance(b, np.ndarray):
        b = b.astype(np.float64)
        if kind == "Div":
            if not np.all(b != 0):
                raise ctx.invalid("division by zero")
            return _affine(ctx, a, 1.0 / b, zero)
        scale, shift = {"Add": (one, b), "Sub": (one, -b), "Mul": (b, zero)}[kind]
        return _affine(ctx, a, scale, shift)
    if isinstance(a, np.ndarray) and isinstance(b, _Data):
        a = a.astype(np.float64)
        if kind == "Div":
            raise ctx.unsupported("division by a data tensor is not supported (not affine)")
        scale, shift = {"Add": (one, a), "Sub": (-one, a), "Mul": (a, zero)}[kind]
        return _affine(ctx, b, scale, shift)
    raise ctx.unsupported("unexpected operands")


def _add_data(ctx: _Ctx, a: _Data, b: _Data, subtract: bool) -> _Data:
    try:
        out_shape = tuple(np.broadcast_shapes(a.shape, b.shape))
    except ValueError:
        raise ctx.invalid(f"shapes {list(a.shape)} and {list(b.shape)} do not broadcast") from None
    if not math.prod(a.shape) == math.prod(b.shape) == math.prod(out_shape):
        raise ctx.unsupported(f"broadcasting {list(a.shape)} with {list(b.shape)}")
    layout = sample_shape(out_shape)
    left, right = ctx.view(a, layout), ctx.view(b, layout)
    if subtract:
        right = ctx.add(ElementwiseAffine(as_tensor(-1.0), as_tensor(0.0)), [right])
    return _Data(ctx.add(Add(), [left, right]), out_shape)


def _convert_neg(ctx: _Ctx) -> list[_Value]:
    return _affine(ctx, ctx.data(0), -np.ones(()), np.zeros(()))


def _convert_batchnorm(ctx: _Ctx) -> list[_Value]:
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


def _convert_pad(ctx: _Ctx) -> list[_Value]:
    x = ctx.data(0)
    rank = len(x.shape)
    if ctx.opset < 11:
        pads, value = [int(p) for p in ctx.attr("pads")], float(ctx.attr("value", 0.0))
    else:
        pads = [int(p) for p in ctx.const(1, "pads").reshape(-1)]
        value = float(ctx.const(2, "constant_value").reshape(-1)[0]) if ctx.has(2) else 0.0
    axes = (
        [_axis(ctx, int(a), rank) for a in ctx.const(3, "axes").reshape(-1)]
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
    return [_Data(out, out_shape)]


def _convert_concat(ctx: _Ctx) -> list[_Value]:
    values = [ctx.data(i) for i in range(len(ctx.inputs))]
    rank = len(values[0].shape)
    axis = _axis(ctx, int(ctx.attr("axis")), rank)
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
    return [_Data(out, out_shape)]


_CONVERTERS: dict[str, _Convert] = {
    "Identity": _alias,
    "Dropout": _alias,
    "Cast": _alias,
    "Flatten": _relabel(_flatten_shape),
    "Reshape": _relabel(_reshape_shape),
    "Squeeze": _relabel(_squeeze_shape),
    "Unsqueeze": _relabel(_unsqueeze_shape),
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
    return tuple(sorted(set(_CONVERTERS) | set(_FOLDERS)))


# ---------------------------------------------------------- static validation
def _attribute_problems(node: onnx.NodeProto, opset: int) -> list[str]:
    """Attribute values that no input shape could make supported."""
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    attrs = {k: v.decode() if isinstance(v, bytes) else v for k, v in attrs.items()}
    problems = []

    def bad(name: str, why: str = "") -> None:
        problems.append(f"node {_where(node)}: attribute {name}={attrs[name]!r} {why}".rstrip())

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


def _unsupported(nodes: Sequence[onnx.NodeProto], constants: set[str], opset: int) -> list[str]:
    """Every unsupported (op type, node) pair and attribute, without converting anything."""
    constants = set(constants)
    problems = []
    for node in nodes:
        if node.domain not in ("", "ai.onnx"):
            problems.append(f"{node.op_type} (node {node.name!r}, domain {node.domain!r})")
            continue
        foldable = node.op_type in _FOLDERS and (
            node.op_type in _SHAPE_OPS or all(i == "" or i in constants for i in node.input)
        )
        if foldable:
            constants.update(node.output)
        elif node.op_type not in _CONVERTERS:
            problems.append(f"{node.op_type} (node {node.name or node.output[0]!r})")
        else:
            problems.extend(_attribute_problems(node, opset))
    return problems


# ------------------------------------------------------------------- loading
#: Largest ONNX file read (protobuf's hard limit; larger models use external data).
MAX_MODEL_BYTES = 2**31 - 1


def _read_model(path: str | os.PathLike) -> onnx.ModelProto:
    file = Path(path)
    if file.is_dir():
        raise ModelLoadError(f"{file}: is a folder, not an ONNX file")
    if not file.is_file():
        raise ModelLoadError(f"{file}: no such ONNX file")
    size = file.stat().st_size
    if size > MAX_MODEL_BYTES:
        raise ModelLoadError(
            f"{file}: {size / 2**30:.1f} GiB is over ONNX's 2 GiB protobuf limit; "
            "a model this large must keep its weights as external data"
        )
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise ModelLoadError(f"{file}: cannot read the file ({exc.strerror})") from None
    if not data:
        raise ModelLoadError(f"{file}: the file is empty, not an ONNX model")
    try:
        model = onnx.load_model_from_string(data)
    except Exception:  # protobuf raises DecodeError and friends
        raise ModelLoadError(
            f"{file}: not a valid ONNX model (truncated or corrupt file)"
        ) from None
    uses_external = any(
        t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer
    )
    if uses_external:
        try:
            onnx.external_data_helper.load_external_data_for_model(model, str(file.parent))
        except Exception as exc:
            raise ModelLoadError(f"{file}: cannot read the model's external data ({exc})") from None
    return model


def _opset(model: onnx.ModelProto, source: str) -> int:
    versions = [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")]
    opset = versions[0] if versions else 0
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise UnsupportedModelError(
            f"{source}: ONNX opset {opset} is not supported (supported: {MIN_OPSET} to {MAX_OPSET})"
        )
    return opset


def _model_input(graph: onnx.GraphProto, constants: set[str], source: str) -> tuple[str, list]:
    inputs = [i for i in graph.input if i.name not in constants]
    if len(inputs) != 1:
        raise UnsupportedModelError(
            f"{source}: verifiNN supports models with exactly one input, got "
            f"{[i.name for i in inputs]}"
        )
    value = inputs[0]
    tensor = value.type.tensor_type
    if not value.type.HasField("tensor_type") or not tensor.HasField("shape"):
        raise ModelLoadError(f"{source}: input {value.name!r} has no static shape")
    if tensor.elem_type not in _FLOAT_TYPES:
        raise UnsupportedModelError(f"{source}: input {value.name!r} is not a float tensor")
    dims: list = []
    for k, d in enumerate(tensor.shape.dim):
        if d.HasField("dim_value") and d.dim_value > 0:
            dims.append(int(d.dim_value))
        elif k == 0 and len(tensor.shape.dim) >= 2:
            dims.append(d.dim_param or None)  # symbolic batch dimension
        else:
            raise ModelLoadError(
                f"{source}: input {value.name!r} has a dynamic dimension "
                f"{d.dim_param or '?'!r} at axis {k}; only the batch axis (0) may be dynamic"
            )
    return value.name, dims


def _live_nodes(graph: onnx.GraphProto, output: str) -> list[onnx.NodeProto]:
    producer = {o: n for n in graph.node for o in n.output if o}
    needed, seen = [output], set()
    while needed:
        name = needed.pop()
        node = producer.get(name)
        if node is not None and id(node) not in seen:
            seen.add(id(node))
            needed.extend(i for i in node.input if i)
    return [n for n in graph.node if id(n) in seen]


def load_onnx(path: str | os.PathLike, labeler: str = "argmax") -> Network:
    """Load an ONNX model file as a :class:`~verifiNN.models.network.Network`.

    Args:
        path: the ``.onnx`` file.
        labeler: ``'argmax'`` or ``'argmin'`` (how :meth:`Network.classify` reads the outputs).

    Returns:
        The simplified network. ``network.input_shape`` is the per-sample input
        shape and ``network.onnx_input_shape`` the model's full input shape (a
        symbolic batch dimension appears as its name, or None).

    Raises:
        ModelLoadError: a missing, empty, truncated or corrupt file, an invalid
            model or a dynamic non-batch input dimension.
        UnsupportedModelError: operators or attributes verifiNN does not
            support (all of them are listed).
    """
    return onnx_to_network(_read_model(path), labeler=labeler, source=str(path))


def onnx_to_network(
    model: onnx.ModelProto, labeler: str = "argmax", source: str = "<onnx model>"
) -> Network:
    """Convert an in-memory ONNX model (see :func:`load_onnx`).

    Args:
        model: the ONNX model.
        labeler: ``'argmax'`` or ``'argmin'``.
        source: how error messages name the model (a path).

    Returns:
        The simplified network, with ``onnx_input_shape`` set.

    Raises:
        ModelLoadError: an invalid model or a dynamic non-batch input dimension.
        UnsupportedModelError: unsupported operators or attributes, all listed.
    """
    if labeler not in LABELERS:
        raise InvalidNetworkError(f"unknown labeler {labeler!r}: expected one of {LABELERS}")
    graph = model.graph
    if not graph.node or not graph.output:
        raise ModelLoadError(f"{source}: not an ONNX model (no graph nodes or outputs)")
    opset = _opset(model, source)
    constants = {t.name: t for t in graph.initializer}
    input_name, dims = _model_input(graph, set(constants), source)
    if len(graph.output) != 1:
        names = [o.name for o in graph.output]
        raise UnsupportedModelError(
            f"{source}: models with several outputs ({names}) are not supported"
        )
    output = graph.output[0].name
    nodes = _live_nodes(graph, output)
    problems = _unsupported(nodes, set(constants), opset)
    if problems:
        raise UnsupportedModelError(
            f"{source}: {len(problems)} unsupported operator(s)/attribute(s): "
            + "; ".join(problems)
        )
    try:
        onnx.checker.check_model(model)
    except Exception as exc:  # onnxruntime runs many models the checker rejects
        lines = str(exc).strip().splitlines() or [type(exc).__name__]
        logger.warning("%s: the ONNX checker reports: %s", source, lines[0][:300])
    full = tuple(1 if d is None or isinstance(d, str) else d for d in dims)
    network = _convert(nodes, constants, input_name, full, output, opset, labeler, source)
    network.onnx_input_shape = tuple(dims)
    network.onnx_model = model.SerializeToString()  # for onnxruntime's second opinion
    return network


def _convert(
    nodes: Sequence[onnx.NodeProto],
    initializers: dict[str, onnx.TensorProto],
    input_name: str,
    full: Shape,
    output: str,
    opset: int,
    labeler: str,
    source: str,
) -> Network:
    builder = _Builder(input_name, sample_shape(full), source)
    env: dict[str, _Value] = {}
    for name, tensor in initializers.items():
        try:
            env[name] = numpy_helper.to_array(tensor)
        except Exception:
            raise ModelLoadError(f"{source}: cannot read initializer {name!r}") from None
    env[input_name] = _Data(input_name, full)
    for node in nodes:
        inputs: list[_Value] = []
        for name in node.input:
            if name and name not in env:
                raise ModelLoadError(f"{source}: node {_where(node)} reads unknown tensor {name!r}")
            if name and env[name] is None:
                raise UnsupportedModelError(
                    f"{source}: node {_where(node)} reads {name!r}, an auxiliary output "
                    "(mask, indices or training statistic) that verifiNN does not model"
                )
            inputs.append(env[name] if name else None)
        ctx = _Ctx(node, inputs, opset, builder)
        constant = all(not isinstance(v, _Data) for v in inputs)
        if node.op_type in _FOLDERS and (constant or node.op_type in _SHAPE_OPS):
            outputs = [np.asarray(v) for v in _FOLDERS[node.op_type](ctx)]
        else:
            outputs = _CONVERTERS[node.op_type](ctx)
        for name, value in zip(node.output, outputs):
            if name:
                env[name] = value
    result = env.get(output)
    if not isinstance(result, _Data):
        raise ModelLoadError(f"{source}: output {output!r} does not depend on the input")
    last = builder.view(result, sample_shape(result.shape), f"{output!r} (output)")
    try:
        network = Network.from_graph(
            builder.shapes[input_name], builder.nodes, last, labeler, input_name
        )
    except InvalidNetworkError as exc:
        raise ModelLoadError(f"{source}: {exc}") from None
    return simplify(network)
