"""Shape and wiring operations: flatten, reshape, slice, pad, concat and residual add."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from verifiNN.ops.base import Op, Shape

__all__ = ["Add", "Concat", "Flatten", "Pad", "Reshape", "Slice"]


@dataclass(frozen=True, eq=False, repr=False)
class Flatten(Op):
    """Flatten every per-sample dimension into one (C-order, as ONNX)."""

    affine = True

    def forward(self, *inputs: Tensor) -> Tensor:
        return inputs[0].reshape(inputs[0].shape[0], -1)

    def output_shape(self, *input_shapes: Shape) -> Shape:
        return (math.prod(input_shapes[0]),)


@dataclass(frozen=True, eq=False, repr=False)
class Reshape(Op):
    """Reshape each sample to ``shape`` (C-order)."""

    shape: tuple[int, ...]
    affine = True

    def forward(self, *inputs: Tensor) -> Tensor:
        return inputs[0].reshape(inputs[0].shape[0], *self.shape)

    def output_shape(self, *input_shapes: Shape) -> Shape:
        if math.prod(input_shapes[0]) != math.prod(self.shape):
            raise ValueError(f"cannot reshape {input_shapes[0]} to {self.shape}")
        return tuple(self.shape)


@dataclass(frozen=True, eq=False, repr=False)
class Pad(Op):
    """Constant padding of the last two dimensions of ``(C, H, W)`` inputs.

    Attributes:
        pads: ``(top, left, bottom, right)``.
        value: the padding constant.
    """

    pads: tuple[int, int, int, int]
    value: float = 0.0
    affine = True

    def forward(self, *inputs: Tensor) -> Tensor:
        top, left, bottom, right = self.pads
        return F.pad(inputs[0], (left, right, top, bottom), value=self.value)

    def output_shape(self, *input_shapes: Shape) -> Shape:
        (shape,) = input_shapes
        if len(shape) < 2:
            raise ValueError(f"Pad needs at least 2 spatial dimensions, got {shape}")
        top, left, bottom, right = self.pads
        return (*shape[:-2], shape[-2] + top + bottom, shape[-1] + left + right)


@dataclass(frozen=True, eq=False, repr=False)
class Concat(Op):
    """Concatenate the inputs along per-sample ``axis`` (0 = first non-batch dim)."""

    axis: int = 0
    arity = None
    affine = True

    def forward(self, *inputs: Tensor) -> Tensor:
        return torch.cat(inputs, dim=self.axis + 1)

    def output_shape(self, *input_shapes: Shape) -> Shape:
        first = input_shapes[0]
        for shape in input_shapes[1:]:
            if len(shape) != len(first) or any(
                a != b for i, (a, b) in enumerate(zip(shape, first)) if i != self.axis
            ):
                raise ValueError(f"Concat inputs {input_shapes} differ off axis {self.axis}")
        total = sum(shape[self.axis] for shape in input_shapes)
        return (*first[: self.axis], total, *first[self.axis + 1 :])


@dataclass(frozen=True, eq=False, repr=False)
class Add(Op):
    """Sum of two graph nodes of the same shape (residual connections)."""

    arity = 2
    affine = True

    def forward(self, *inputs: Tensor) -> Tensor:
        return inputs[0] + inputs[1]

    def output_shape(self, *input_shapes: Shape) -> Shape:
        if input_shapes[0] != input_shapes[1]:
            raise ValueError(f"Add of differently shaped nodes: {input_shapes}")
        return input_shapes[0]


@dataclass(frozen=True, eq=False, repr=False)
class Slice(Op):
    """``x[..., start:stop:step, ...]`` along per-sample ``axis`` (0 = first non-batch dim).

    A selection of entries, hence affine (every output is one input entry).
    """

    axis: int
    start: int
    stop: int
    step: int = 1
    affine = True

    def _index(self, rank: int) -> tuple[slice, ...]:
        index = [slice(None)] * (rank + 1)
        index[self.axis + 1] = slice(self.start, self.stop, self.step)
        return tuple(index)

    def forward(self, *inputs: Tensor) -> Tensor:
        x = inputs[0]
        return x[self._index(x.dim() - 1)]

    def output_shape(self, *input_shapes: Shape) -> Shape:
        (shape,) = input_shapes
        if not 0 <= self.axis < len(shape):
            raise ValueError(f"Slice axis {self.axis} is out of range for shape {shape}")
        if self.step <= 0:
            raise ValueError(f"Slice step must be positive, got {self.step}")
        size = len(range(*slice(self.start, self.stop, self.step).indices(shape[self.axis])))
        if size == 0:
            raise ValueError(f"Slice {self.start}:{self.stop}:{self.step} of {shape} is empty")
        return (*shape[: self.axis], size, *shape[self.axis + 1 :])
