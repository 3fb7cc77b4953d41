"""Piecewise-constant elementwise primitives: the steps and truncation behind integer operators.

ONNX's integer-valued operators on data (``ArgMax``, ``OneHot``, ``Equal``,
``Greater``, casts to integer and bool types, ...) are converted by
:mod:`verifiNN.io.onnx.integer` into these two ops composed with the affine
and piecewise-linear ops of the IR. Values stay floating point: integers up to
``2^24`` are exact in float32 and up to ``2^53`` in float64.

* :class:`Step`: the Heaviside step, ``1`` where ``x > 0`` (``strict``) or
  ``x >= 0`` (not strict), else ``0``. Both variants are needed to reproduce
  ties exactly (``ArgMax`` picks the first of equal maxima: class ``c`` beats
  an earlier class ``j`` only when ``x_c > x_j``, a later one when
  ``x_c >= x_j``).
* :class:`Trunc`: rounding toward zero, what a cast of a float to an integer
  type computes (C's conversion, and onnxruntime's).

A NaN input gives ``0`` for :class:`Step` (every comparison with NaN is false)
and NaN for :class:`Trunc`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from verifiNN.ops.base import Op, Shape

__all__ = ["Step", "Trunc"]


class _Unary(Op):
    def output_shape(self, *input_shapes: Shape) -> Shape:
        return input_shapes[0]


@dataclass(frozen=True, eq=False, repr=False)
class Step(_Unary):
    """The Heaviside step: ``1[x > 0]`` when ``strict``, else ``1[x >= 0]``.

    Attributes:
        strict: whether ``0`` maps to ``0`` (strict) or to ``1``.
    """

    strict: bool = True

    def forward(self, *inputs: Tensor) -> Tensor:
        x = inputs[0]
        hit = x > 0 if self.strict else x >= 0
        return hit.to(x.dtype)


@dataclass(frozen=True, eq=False, repr=False)
class Trunc(_Unary):
    """Rounding toward zero (``trunc(-2.7) = -2``), as a float-to-integer cast."""

    def forward(self, *inputs: Tensor) -> Tensor:
        return torch.trunc(inputs[0])
