"""Elementwise nonlinear functions: activations and the product of two nodes."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from verifiNN.ops.base import Op, Shape

__all__ = ["Identity", "LeakyReLU", "Mul", "ReLU", "Sigmoid", "Tanh"]


class _Elementwise(Op):
    def output_shape(self, *input_shapes: Shape) -> Shape:
        return input_shapes[0]


@dataclass(frozen=True, eq=False, repr=False)
class ReLU(_Elementwise):
    """``max(x, 0)``."""

    def forward(self, *inputs: Tensor) -> Tensor:
        return torch.relu(inputs[0])


@dataclass(frozen=True, eq=False, repr=False)
class Identity(_Elementwise):
    """``x`` (the seed's ``'Id'`` activation)."""

    affine = True

    def forward(self, *inputs: Tensor) -> Tensor:
        return inputs[0]


@dataclass(frozen=True, eq=False, repr=False)
class LeakyReLU(_Elementwise):
    """``x`` for ``x >= 0``, ``alpha * x`` otherwise."""

    alpha: float = 0.01

    def forward(self, *inputs: Tensor) -> Tensor:
        return torch.nn.functional.leaky_relu(inputs[0], self.alpha)


@dataclass(frozen=True, eq=False, repr=False)
class Sigmoid(_Elementwise):
    """``1 / (1 + exp(-x))``."""

    def forward(self, *inputs: Tensor) -> Tensor:
        return torch.sigmoid(inputs[0])


@dataclass(frozen=True, eq=False, repr=False)
class Tanh(_Elementwise):
    """Hyperbolic tangent."""

    def forward(self, *inputs: Tensor) -> Tensor:
        return torch.tanh(inputs[0])


@dataclass(frozen=True, eq=False, repr=False)
class Mul(Op):
    """The elementwise product ``x * y`` of two graph nodes of the same shape."""

    arity = 2

    def forward(self, *inputs: Tensor) -> Tensor:
        return inputs[0] * inputs[1]

    def output_shape(self, *input_shapes: Shape) -> Shape:
        if input_shapes[0] != input_shapes[1]:
            raise ValueError(f"Mul of differently shaped nodes: {input_shapes}")
        return input_shapes[0]
