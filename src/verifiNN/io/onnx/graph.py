"""The state of an ONNX-to-IR conversion: tensors, the growing IR graph, one node's view.

A tensor of the ONNX graph is either a NumPy constant (folded at load time),
:class:`Data` (it depends on the network input: an IR node and its full ONNX
shape) or ``None`` (an auxiliary output verifiNN does not model). A converter
(:data:`Converter`) sees one ONNX node through a :class:`NodeContext` and adds
IR nodes to the :class:`GraphBuilder`. The shape helpers read the attributes
of shape-only operators (``Reshape``, ``Flatten``, ``Squeeze``, ...).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from onnx import helper

from verifiNN.errors import ModelLoadError, UnsupportedModelError
from verifiNN.models.network import Node
from verifiNN.ops import (
    Broadcast,
    Flatten,
    Op,
    Reshape,
    Shape,
)

logger = logging.getLogger(__name__)

MIN_OPSET = 7
"""Oldest default-domain opset accepted."""
MAX_OPSET = 23
"""Newest default-domain opset accepted."""
MAX_MATRIX_ENTRIES = 1 << 25
"""Largest dense matrix built for a ``MatMul``/``Gemm`` acting on a non-flat tensor."""

FLOAT_TYPES = {
    onnx.TensorProto.FLOAT,
    onnx.TensorProto.DOUBLE,
    onnx.TensorProto.FLOAT16,
    onnx.TensorProto.BFLOAT16,
}


@dataclass(frozen=True)
class Data:
    """A tensor that depends on the network input.

    Attributes:
        node: the IR node (or the network input) holding its values (C-order).
        shape: its full ONNX shape, batch dimension as 1.
    """

    node: str
    shape: Shape


Value = np.ndarray | Data | None  # None: an output verifiNN does not model


def sample_shape(shape: Sequence[int]) -> Shape:
    """Per-sample layout of a full ONNX shape: drop a leading 1 when the rank is >= 2."""
    shape = tuple(int(d) for d in shape)
    if len(shape) >= 2 and shape[0] == 1:
        return shape[1:]
    return shape or (1,)


# ------------------------------------------------------------------ building
class GraphBuilder:
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

    def view(self, value: Data, shape: Shape, where: str) -> str:
        """The IR node holding ``value`` laid out as ``shape`` (adds a reshape if needed;
        a scalar is laid out as ``(1,)``)."""
        shape = tuple(shape) or (1,)
        if self.shapes[value.node] == shape:
            return value.node
        key = (value.node, shape)
        if key not in self._views:
            op = Flatten() if len(shape) == 1 else Reshape(shape)
            self._views[key] = self.add(op, [value.node], f"{value.node}/reshape", where)
        return self._views[key]

    def canonical(self, value: Data, where: str) -> str:
        return self.view(value, sample_shape(value.shape), where)


@dataclass
class NodeContext:
    """What a converter sees of one ONNX node."""

    node: onnx.NodeProto
    inputs: list[Value]
    opset: int
    builder: GraphBuilder

    @property
    def where(self) -> str:
        return node_label(self.node)

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

    def data(self, i: int = 0) -> Data:
        value = self.inputs[i] if self.has(i) else None
        if not isinstance(value, Data):
            raise self.unsupported(f"input {i} must depend on the network input")
        return value

    def unsupported(self, what: str) -> UnsupportedModelError:
        return UnsupportedModelError(f"{self.source}: node {self.where}: {what}")

    def invalid(self, what: str) -> ModelLoadError:
        return ModelLoadError(f"{self.source}: node {self.where}: {what}")

    def add(self, op: Op, inputs: Sequence[str]) -> str:
        return self.builder.add(op, inputs, self.node.output[0] or self.node.op_type, self.where)

    def canonical(self, value: Data) -> str:
        return self.builder.canonical(value, self.where)

    def view(self, value: Data, shape: Shape) -> str:
        return self.builder.view(value, shape, self.where)

    def axis_view(self, value: Data, axes: Sequence[int]) -> tuple[str, int]:
        """``value``'s IR node laid out so that its ONNX ``axes`` are per-sample axes.

        Returns the node and the offset ``k``: ONNX axis ``a`` is per-sample axis
        ``a - k``. The leading batch dimension of 1 is dropped (``k = 1``) when no
        axis in ``axes`` is 0, as in :func:`sample_shape`; otherwise the full shape
        is the per-sample layout (``k = 0``).
        """
        shape = tuple(value.shape)
        if len(shape) >= 2 and shape[0] == 1 and 0 not in axes:
            return self.view(value, shape[1:]), 1
        return self.view(value, shape), 0

    def broadcast(self, value: Data, shape: Shape) -> Data:
        """``value`` broadcast (NumPy rules) to the full shape ``shape``."""
        shape = tuple(shape)
        if math.prod(shape) == math.prod(value.shape):
            return Data(value.node, shape)  # only size-1 axes appear or move
        padded = (1,) * (len(shape) - len(value.shape)) + tuple(value.shape)
        start = 1 if len(shape) >= 2 and shape[0] == 1 else 0
        node = self.view(Data(value.node, padded), padded[start:])
        return Data(self.add(Broadcast(shape[start:]), [node]), shape)


def node_label(node: onnx.NodeProto) -> str:
    return f"{node.name or node.output[0]!r} ({node.op_type})"


Converter = Callable[[NodeContext], list[Value]]


# ------------------------------------------------------------- shape helpers
def normalize_axis(ctx: NodeContext, axis: int, rank: int) -> int:
    if not -rank <= axis < rank:
        raise ctx.invalid(f"axis {axis} is out of range for rank {rank}")
    return axis % rank


def axes_of(ctx: NodeContext, index: int) -> list[int] | None:
    """``axes`` as an attribute (old opsets) or an input (opset 13+)."""
    if ctx.has(index):
        return [int(a) for a in ctx.const(index, "axes").reshape(-1)]
    axes = ctx.attr("axes")
    return None if axes is None else [int(a) for a in axes]


def reshape_shape(ctx: NodeContext, shape: Shape) -> Shape:
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


def flatten_shape(ctx: NodeContext, shape: Shape) -> Shape:
    axis = int(ctx.attr("axis", 1))
    if not -len(shape) <= axis <= len(shape):
        raise ctx.invalid(f"axis {axis} is out of range for rank {len(shape)}")
    axis = axis + len(shape) if axis < 0 else axis
    return (math.prod(shape[:axis]), math.prod(shape[axis:]))


def squeeze_shape(ctx: NodeContext, shape: Shape) -> Shape:
    axes = axes_of(ctx, 1)
    if axes is None:
        return tuple(d for d in shape if d != 1)
    axes = [normalize_axis(ctx, a, len(shape)) for a in axes]
    if any(shape[a] != 1 for a in axes):
        raise ctx.invalid(f"cannot squeeze axes {axes} of shape {list(shape)}")
    return tuple(d for i, d in enumerate(shape) if i not in axes)


def unsqueeze_shape(ctx: NodeContext, shape: Shape) -> Shape:
    axes = axes_of(ctx, 1)
    if axes is None:
        raise ctx.invalid("missing axes")
    rank = len(shape) + len(axes)
    axes = sorted(normalize_axis(ctx, a, rank) for a in axes)
    out = list(shape)
    for a in axes:
        out.insert(a, 1)
    return tuple(out)


def permutation(ctx: NodeContext, rank: int) -> list[int]:
    perm = ctx.attr("perm")
    perm = list(range(rank))[::-1] if perm is None else [int(p) for p in perm]
    if sorted(perm) != list(range(rank)):
        raise ctx.invalid(f"perm {perm} is not a permutation of {rank} axes")
    return perm
