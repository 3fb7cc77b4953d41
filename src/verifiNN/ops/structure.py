"""Shape and wiring operations: flatten, reshape, slice, gather, transpose, broadcast, pad,
concat (of nodes, or of nodes and constants) and residual add."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import torch
import torch.nn.functional as F
from torch import Tensor

from verifiNN.ops.base import Op, Shape

__all__ = [
    "Add",
    "Broadcast",
    "Concat",
    "ConcatWithConstants",
    "Flatten",
    "Gather",
    "Pad",
    "Reshape",
    "Slice",
    "Transpose",
]


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


@dataclass(frozen=True, eq=False, repr=False)
class Transpose(Op):
    """Permute the per-sample axes: output axis ``i`` is input axis ``perm[i]``.

    A rearrangement of entries, hence affine (ONNX ``Transpose``).
    """

    perm: tuple[int, ...]
    affine = True

    def forward(self, *inputs: Tensor) -> Tensor:
        return inputs[0].permute(0, *(p + 1 for p in self.perm)).contiguous()

    def output_shape(self, *input_shapes: Shape) -> Shape:
        (shape,) = input_shapes
        if sorted(self.perm) != list(range(len(shape))):
            raise ValueError(f"Transpose perm {self.perm} does not fit shape {shape}")
        return tuple(shape[p] for p in self.perm)


@dataclass(frozen=True, eq=False, repr=False)
class Gather(Op):
    """``x.take(indices, axis)``: entries ``indices`` (in order, repeats allowed) along
    per-sample ``axis`` (ONNX ``Gather`` with constant indices; also nearest-neighbour
    resizing, reflect/edge padding, tiling and reversed slices, all selections)."""

    axis: int
    indices: tuple[int, ...]
    affine = True

    @cached_property
    def index(self) -> Tensor:
        """The indices as a CPU ``int64`` tensor (cached)."""
        return torch.tensor(self.indices, dtype=torch.int64)

    def forward(self, *inputs: Tensor) -> Tensor:
        x = inputs[0]
        return x.index_select(self.axis + 1, self.index.to(x.device))

    def output_shape(self, *input_shapes: Shape) -> Shape:
        (shape,) = input_shapes
        if not 0 <= self.axis < len(shape):
            raise ValueError(f"Gather axis {self.axis} is out of range for shape {shape}")
        if not self.indices or not all(0 <= i < shape[self.axis] for i in self.indices):
            raise ValueError(f"Gather indices do not fit axis {self.axis} of shape {shape}")
        return (*shape[: self.axis], len(self.indices), *shape[self.axis + 1 :])


@dataclass(frozen=True, eq=False, repr=False)
class Broadcast(Op):
    """Repeat the entries along the size-1 axes of the input to reach ``shape``
    (NumPy broadcasting of the same rank: ONNX ``Expand``, or a data tensor
    enlarged by a broadcasting constant)."""

    shape: tuple[int, ...]
    affine = True

    def forward(self, *inputs: Tensor) -> Tensor:
        x = inputs[0]
        return x.expand(x.shape[0], *self.shape).contiguous()

    def output_shape(self, *input_shapes: Shape) -> Shape:
        (shape,) = input_shapes
        if len(shape) != len(self.shape) or any(
            a != b and a != 1 for a, b in zip(shape, self.shape)
        ):
            raise ValueError(f"cannot broadcast {shape} to {self.shape}")
        return tuple(self.shape)


@dataclass(frozen=True, eq=False, repr=False)
class ConcatWithConstants(Op):
    """Concatenate the inputs and constant blocks along per-sample ``axis``.

    Attributes:
        axis: the per-sample axis.
        constant: the constant blocks, concatenated along ``axis`` in order.
        pieces: per piece of the output, in order: ``-1`` for the next input,
            or the size along ``axis`` of the next constant block.
    """

    axis: int
    constant: Tensor
    pieces: tuple[int, ...]
    arity = None
    affine = True

    def blocks(self) -> list[Tensor | None]:
        """Per piece: its constant block (per-sample shape), ``None`` for an input."""
        out: list[Tensor | None] = []
        offset = 0
        for size in self.pieces:
            if size < 0:
                out.append(None)
            else:
                out.append(self.constant.narrow(self.axis, offset, size))
                offset += size
        return out

    def forward(self, *inputs: Tensor) -> Tensor:
        batch, dtype = inputs[0].shape[0], inputs[0].dtype
        remaining = iter(inputs)
        parts = [
            next(remaining) if block is None else block.to(dtype).expand(batch, *block.shape)
            for block in self.blocks()
        ]
        return torch.cat(parts, dim=self.axis + 1)

    def output_shape(self, *input_shapes: Shape) -> Shape:
        if len(input_shapes) != sum(1 for p in self.pieces if p < 0):
            raise ValueError(f"ConcatWithConstants expects {self.pieces} inputs")
        fixed = tuple(self.constant.shape)
        if not 0 <= self.axis < len(fixed) or fixed[self.axis] != sum(
            p for p in self.pieces if p >= 0
        ):
            raise ValueError(f"constant of shape {fixed} does not fit the pieces {self.pieces}")
        total = fixed[self.axis]
        for shape in input_shapes:
            if len(shape) != len(fixed) or any(
                a != b for i, (a, b) in enumerate(zip(shape, fixed)) if i != self.axis
            ):
                raise ValueError(
                    f"input of shape {shape} differs from {fixed} off axis {self.axis}"
                )
            total += shape[self.axis]
        return (*fixed[: self.axis], total, *fixed[self.axis + 1 :])
