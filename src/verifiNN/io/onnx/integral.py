"""Which IR nodes of a conversion hold integer values, and within which range.

The IR computes in floating point, so ONNX's integer and bool tensors are
floats there. A cast of data to an integer type must truncate unless the value
is already an integer; a one-hot encoding needs to know whether its indices
can be negative. :func:`value_range` answers both from the IR graph being
built: it walks the :class:`~verifiNN.io.onnx.graph.GraphBuilder`'s nodes once
(incrementally, as converters add them) and gives every node a
:class:`ValueRange` (integer-valued or not, and bounds on every entry that hold
for *every* input of the network).

Rules (a sound over-approximation; anything not listed is "any real"):

* integer by construction: ``Step`` (``[0, 1]``), ``Sign`` (``[-1, 1]``),
  ``Trunc`` (the truncated range of its input);
* moves and selections keep the range: ``Flatten``, ``Reshape``, ``Identity``,
  ``Transpose``, ``Slice``, ``Gather``, ``Broadcast``, ``MaxPool2d``;
  ``Concat`` joins its inputs, ``Pad`` and ``ConcatWithConstants`` their
  constants too;
* piecewise-linear ops map the range: ``ReLU``, ``Abs``, ``Clip`` (integer
  bounds keep integers), ``Max``, ``Min``;
* arithmetic: ``Add`` and ``Mul`` of integers are integers (interval sums and
  products); ``ElementwiseAffine``, ``Dense`` and ``ReduceSum`` with integer
  parameters map integers to integers (interval arithmetic on the ranges), as do
  ``ConstMatMul``, ``Conv2d`` and ``ConvTranspose2d`` (no range for the last two).

The graph input is any real (the loader cannot see the property).
"""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass, field

import torch
from torch import Tensor

from verifiNN.io.onnx.graph import GraphBuilder
from verifiNN.models.network import Node
from verifiNN.ops import (
    Abs,
    Add,
    Broadcast,
    Clip,
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
    Max,
    MaxPool2d,
    Min,
    Mul,
    Pad,
    ReduceSum,
    ReLU,
    Reshape,
    Sign,
    Slice,
    Step,
    Transpose,
    Trunc,
)

__all__ = ["ANY_REAL", "ValueRange", "is_integral", "value_range"]


@dataclass(frozen=True)
class ValueRange:
    """What is known of every entry of a node, for every network input.

    Attributes:
        integer: every entry is an integer (or NaN).
        low: a lower bound of every entry (``-inf``: none).
        high: an upper bound of every entry (``inf``: none).
    """

    integer: bool
    low: float = -math.inf
    high: float = math.inf

    def within(self, low: float, high: float) -> bool:
        """Whether every entry lies in ``[low, high]``."""
        return self.low >= low and self.high <= high


ANY_REAL = ValueRange(False)


def _integral_tensor(t: Tensor) -> bool:
    finite = t[torch.isfinite(t)]
    return bool(torch.all(finite == torch.round(finite)))


def is_integral(value: float | Tensor) -> bool:
    """Whether a constant (scalar or tensor) holds integers only (infinities allowed)."""
    if isinstance(value, Tensor):
        return _integral_tensor(value)
    return not math.isfinite(value) or float(value).is_integer()


def _span(values: Tensor) -> tuple[float, float]:
    """``(min, max)`` of a tensor with NaN as "anything" (``0 * inf`` products)."""
    if values.numel() == 0:
        return math.inf, -math.inf
    if bool(torch.isnan(values).any()):
        return -math.inf, math.inf
    return float(values.min()), float(values.max())


def _join(*ranges: ValueRange) -> ValueRange:
    return ValueRange(
        all(r.integer for r in ranges), min(r.low for r in ranges), max(r.high for r in ranges)
    )


def _constant(t: Tensor) -> ValueRange:
    low, high = _span(t.double())
    return ValueRange(_integral_tensor(t), low, high)


def _scaled(r: ValueRange, scale: Tensor, shift: Tensor) -> ValueRange:
    """``scale * x + shift`` for ``x`` in ``r`` (per-entry parameters)."""
    scale, shift = scale.double(), shift.double()
    integer = r.integer and _integral_tensor(scale) and _integral_tensor(shift)
    if not (math.isfinite(r.low) and math.isfinite(r.high)):
        if bool(torch.all(scale == 0)):
            return _join(_constant(shift), ValueRange(integer, math.inf, -math.inf))
        return ValueRange(integer)
    ends = torch.stack([scale * r.low + shift, scale * r.high + shift])
    low, high = _span(ends)
    return ValueRange(integer, low, high)


def _dense(op: Dense, r: ValueRange) -> ValueRange:
    w, b = op.weight.double(), op.bias.double()
    integer = r.integer and _integral_tensor(w) and _integral_tensor(b)
    if not (math.isfinite(r.low) and math.isfinite(r.high)):
        return ValueRange(integer)
    pos, neg = w.clamp(min=0).sum(1), w.clamp(max=0).sum(1)
    low, _ = _span(pos * r.low + neg * r.high + b)
    _, high = _span(pos * r.high + neg * r.low + b)
    return ValueRange(integer, low, high)


def _matmul(op: ConstMatMul, r: ValueRange) -> ValueRange:
    """A product with a constant matrix: per output, positive and negative weights summed
    over the contracted axis."""
    w, b = op.weight.double(), op.bias.double()
    integer = r.integer and _integral_tensor(w) and _integral_tensor(b)
    if not (math.isfinite(r.low) and math.isfinite(r.high)):
        return ValueRange(integer)
    axis = -1 if op.left else -2
    pos, neg = w.clamp(min=0).sum(axis), w.clamp(max=0).sum(axis)
    (low, _), (_, high) = _span(pos * r.low + neg * r.high), _span(pos * r.high + neg * r.low)
    bias_low, bias_high = _span(b.reshape(-1)) if b.numel() else (0.0, 0.0)
    return ValueRange(integer, low + bias_low, high + bias_high)


def _product(a: ValueRange, b: ValueRange) -> ValueRange:
    corners = torch.tensor([a.low * b.low, a.low * b.high, a.high * b.low, a.high * b.high])
    low, high = _span(corners)
    return ValueRange(a.integer and b.integer, low, high)


def _abs(r: ValueRange) -> ValueRange:
    if r.low <= 0 <= r.high:
        return ValueRange(r.integer, 0.0, max(-r.low, r.high))
    ends = sorted([abs(r.low), abs(r.high)])
    return ValueRange(r.integer, ends[0], ends[1])


def _clip(op: Clip, r: ValueRange) -> ValueRange:
    integer = r.integer and is_integral(op.low) and is_integral(op.high)
    if op.low > op.high:
        return ValueRange(is_integral(op.high), op.high, op.high)
    low, high = min(max(r.low, op.low), op.high), max(min(r.high, op.high), op.low)
    return ValueRange(integer, low, high)


def _truncated(value: float) -> float:
    return float(math.trunc(value)) if math.isfinite(value) else value


_MOVES = (Flatten, Reshape, Identity, Transpose, Slice, Gather, Broadcast, MaxPool2d)


def _rule(node: Node, inputs: list[ValueRange], shapes: list[tuple[int, ...]]) -> ValueRange:
    """The range of one node from its inputs' (see the module docstring)."""
    op = node.op
    if isinstance(op, Step):
        return ValueRange(True, 0.0, 1.0)
    if isinstance(op, Sign):
        return ValueRange(True, -1.0, 1.0)
    if isinstance(op, Trunc):
        (r,) = inputs
        return ValueRange(True, _truncated(r.low), _truncated(r.high))
    if isinstance(op, _MOVES):
        return inputs[0]
    if isinstance(op, Concat):
        return _join(*inputs)
    if isinstance(op, ConcatWithConstants):
        return _join(*inputs, _constant(op.constant))
    if isinstance(op, Pad):
        return _join(inputs[0], ValueRange(is_integral(op.value), op.value, op.value))
    if isinstance(op, ReLU):
        (r,) = inputs
        return ValueRange(r.integer, max(r.low, 0.0), max(r.high, 0.0))
    if isinstance(op, Abs):
        return _abs(inputs[0])
    if isinstance(op, Clip):
        return _clip(op, inputs[0])
    if isinstance(op, (Max, Min)):
        pick = max if isinstance(op, Max) else min
        a, b = inputs
        return ValueRange(a.integer and b.integer, pick(a.low, b.low), pick(a.high, b.high))
    if isinstance(op, Add):
        a, b = inputs
        return ValueRange(a.integer and b.integer, a.low + b.low, a.high + b.high)
    if isinstance(op, Mul):
        return _product(*inputs)
    if isinstance(op, ElementwiseAffine):
        return _scaled(inputs[0], op.scale, op.shift)
    if isinstance(op, Dense):
        return _dense(op, inputs[0])
    if isinstance(op, ConstMatMul):
        return _matmul(op, inputs[0])
    if isinstance(op, (Conv2d, ConvTranspose2d)):
        integer = _integral_tensor(op.weight) and _integral_tensor(op.bias)
        return ValueRange(inputs[0].integer and integer)
    if isinstance(op, ReduceSum):
        count = math.prod(shapes[0][a] for a in op.axes)
        scale = torch.tensor(float(op.scale) * count, dtype=torch.float64)
        r = _scaled(inputs[0], scale, torch.zeros((), dtype=torch.float64))
        return ValueRange(inputs[0].integer and is_integral(float(op.scale)), r.low, r.high)
    return ANY_REAL


@dataclass
class _Analysis:
    """The ranges found so far for one builder (nodes are only ever appended)."""

    seen: int = 0
    ranges: dict[str, ValueRange] = field(default_factory=dict)


_ANALYSES: weakref.WeakKeyDictionary[GraphBuilder, _Analysis] = weakref.WeakKeyDictionary()


def value_range(builder: GraphBuilder, name: str) -> ValueRange:
    """The :class:`ValueRange` of IR node ``name`` of ``builder`` (the input: any real)."""
    analysis = _ANALYSES.setdefault(builder, _Analysis())
    with torch.no_grad():
        for node in builder.nodes[analysis.seen :]:
            inputs = [analysis.ranges.get(i, ANY_REAL) for i in node.inputs]
            shapes = [builder.shapes[i] for i in node.inputs]
            analysis.ranges[node.name] = _rule(node, inputs, shapes)
    analysis.seen = len(builder.nodes)
    return analysis.ranges.get(name, ANY_REAL)
