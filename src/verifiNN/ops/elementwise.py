"""Elementwise nonlinear primitives beyond the classic activations, with ONNX's semantics.

Every op here computes what onnxruntime computes for the ONNX operator of the
same name (IEEE special values included: ``Log(0) = -inf``, ``Reciprocal(0) =
inf``, ``Sqrt`` and ``Log`` of negatives and non-integer powers of negatives
are NaN). The relaxations in :mod:`verifiNN.bounds.relaxations` bound each op
on the part of an input interval inside its *domain*:

* ``Log``: ``x > 0`` (``x = 0`` gives ``-inf``);
* ``Sqrt``: ``x >= 0``;
* ``Reciprocal``: ``x != 0`` (an interval holding 0 is unbounded);
* ``Pow(p)``: every ``x`` for an integer ``p >= 0``; ``x != 0`` for an integer
  ``p < 0``; ``x >= 0`` for a non-integer ``p > 0``; ``x > 0`` for a
  non-integer ``p < 0``.

Points outside the domain give NaN, which no VNN-LIB constraint accepts and
which every op of the IR propagates (``torch.maximum``, ``torch.clamp``, ...
return NaN for NaN), so bounds of the domain part are sound for verification.

``Max`` and ``Min`` take two graph nodes of the same shape (like ``Mul``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from verifiNN.ops.base import Op, Shape

__all__ = [
    "Abs",
    "Clip",
    "Cos",
    "Erf",
    "Exp",
    "Log",
    "Max",
    "Min",
    "Pow",
    "Reciprocal",
    "Sign",
    "Sin",
    "Sqrt",
]


class _Unary(Op):
    def output_shape(self, *input_shapes: Shape) -> Shape:
        return input_shapes[0]


@dataclass(frozen=True, eq=False, repr=False)
class Exp(_Unary):
    """``e^x``."""

    def forward(self, *inputs: Tensor) -> Tensor:
        return torch.exp(inputs[0])


@dataclass(frozen=True, eq=False, repr=False)
class Log(_Unary):
    """Natural logarithm (domain ``x > 0``)."""

    def forward(self, *inputs: Tensor) -> Tensor:
        return torch.log(inputs[0])


@dataclass(frozen=True, eq=False, repr=False)
class Reciprocal(_Unary):
    """``1 / x`` (domain ``x != 0``)."""

    def forward(self, *inputs: Tensor) -> Tensor:
        return torch.reciprocal(inputs[0])


@dataclass(frozen=True, eq=False, repr=False)
class Sqrt(_Unary):
    """Square root (domain ``x >= 0``)."""

    def forward(self, *inputs: Tensor) -> Tensor:
        return torch.sqrt(inputs[0])


@dataclass(frozen=True, eq=False, repr=False)
class Pow(_Unary):
    """``x ** exponent`` for a constant exponent (see the module docstring for the domain).

    Attributes:
        exponent: the constant exponent (any finite float; integer values
            allow negative bases).
    """

    exponent: float = 2.0

    def __post_init__(self) -> None:
        if not math.isfinite(self.exponent):
            raise ValueError(f"Pow needs a finite exponent, got {self.exponent}")

    @property
    def is_integer(self) -> bool:
        """True when the exponent is an integer (negative bases allowed)."""
        return float(self.exponent).is_integer()

    def forward(self, *inputs: Tensor) -> Tensor:
        return torch.pow(inputs[0], self.exponent)


@dataclass(frozen=True, eq=False, repr=False)
class Sin(_Unary):
    """Sine."""

    def forward(self, *inputs: Tensor) -> Tensor:
        return torch.sin(inputs[0])


@dataclass(frozen=True, eq=False, repr=False)
class Cos(_Unary):
    """Cosine."""

    def forward(self, *inputs: Tensor) -> Tensor:
        return torch.cos(inputs[0])


@dataclass(frozen=True, eq=False, repr=False)
class Sign(_Unary):
    """``-1``, ``0`` or ``1`` by the sign of ``x`` (``Sign(0) = 0``)."""

    def forward(self, *inputs: Tensor) -> Tensor:
        return torch.sign(inputs[0])


@dataclass(frozen=True, eq=False, repr=False)
class Abs(_Unary):
    """``|x|``."""

    def forward(self, *inputs: Tensor) -> Tensor:
        return torch.abs(inputs[0])


@dataclass(frozen=True, eq=False, repr=False)
class Erf(_Unary):
    """The error function ``2 / sqrt(pi) * integral_0^x exp(-t^2) dt``."""

    def forward(self, *inputs: Tensor) -> Tensor:
        return torch.erf(inputs[0])


@dataclass(frozen=True, eq=False, repr=False)
class Clip(_Unary):
    """``min(max(x, low), high)`` with constant bounds (ONNX ``Clip``).

    Attributes:
        low: the lower bound (``-inf``: none).
        high: the upper bound (``inf``: none). When ``low > high`` every output
            is ``high`` (as in onnxruntime and ``torch.clamp``).
    """

    low: float = -math.inf
    high: float = math.inf

    def __post_init__(self) -> None:
        if math.isnan(self.low) or math.isnan(self.high):
            raise ValueError("Clip bounds must not be NaN")

    def forward(self, *inputs: Tensor) -> Tensor:
        low = None if self.low == -math.inf else self.low
        high = None if self.high == math.inf else self.high
        if low is None and high is None:
            return inputs[0].clone()
        return torch.clamp(inputs[0], low, high)


class _Binary(Op):
    arity = 2

    def output_shape(self, *input_shapes: Shape) -> Shape:
        if input_shapes[0] != input_shapes[1]:
            raise ValueError(f"{self.kind} of differently shaped nodes: {input_shapes}")
        return input_shapes[0]


@dataclass(frozen=True, eq=False, repr=False)
class Max(_Binary):
    """The elementwise maximum of two graph nodes of the same shape."""

    def forward(self, *inputs: Tensor) -> Tensor:
        return torch.maximum(inputs[0], inputs[1])


@dataclass(frozen=True, eq=False, repr=False)
class Min(_Binary):
    """The elementwise minimum of two graph nodes of the same shape."""

    def forward(self, *inputs: Tensor) -> Tensor:
        return torch.minimum(inputs[0], inputs[1])
