"""Affine operations: dense layers, convolutions and elementwise affine maps."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from verifiNN.ops.base import Op, Shape

__all__ = ["Conv2d", "Dense", "ElementwiseAffine"]


@dataclass(frozen=True, eq=False, repr=False)
class Dense(Op):
    """``y = W x + b`` on a flat input.

    Attributes:
        weight: ``(out_features, in_features)``.
        bias: ``(out_features,)``.
    """

    weight: Tensor
    bias: Tensor
    affine = True

    def forward(self, *inputs: Tensor) -> Tensor:
        return torch.nn.functional.linear(inputs[0], self.weight, self.bias)

    def output_shape(self, *input_shapes: Shape) -> Shape:
        (shape,) = input_shapes
        if shape != (self.weight.shape[1],):
            raise ValueError(
                f"Dense expects a flat input of {self.weight.shape[1]} features, got shape {shape}"
            )
        return (self.weight.shape[0],)


@dataclass(frozen=True, eq=False, repr=False)
class Conv2d(Op):
    """2-D convolution on ``(C, H, W)`` inputs (ONNX ``Conv`` semantics).

    Attributes:
        weight: ``(C_out, C_in / groups, kH, kW)``.
        bias: ``(C_out,)``.
        stride: ``(sH, sW)``.
        padding: ``(top, left, bottom, right)`` zero padding.
        dilation: ``(dH, dW)``.
        groups: number of groups.
    """

    weight: Tensor
    bias: Tensor
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int, int, int] = (0, 0, 0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1
    affine = True

    @property
    def symmetric_padding(self) -> tuple[int, int] | None:
        """``(pH, pW)`` when the padding is symmetric, else ``None``."""
        top, left, bottom, right = self.padding
        return (top, left) if (top, left) == (bottom, right) else None

    def forward(self, *inputs: Tensor) -> Tensor:
        x = inputs[0]
        pad = self.symmetric_padding
        if pad is None:
            top, left, bottom, right = self.padding
            x = F.pad(x, (left, right, top, bottom))
            pad = (0, 0)
        return F.conv2d(x, self.weight, self.bias, self.stride, pad, self.dilation, self.groups)

    def output_shape(self, *input_shapes: Shape) -> Shape:
        (shape,) = input_shapes
        c_out, c_in_per_group, kh, kw = self.weight.shape
        if len(shape) != 3 or shape[0] != c_in_per_group * self.groups:
            raise ValueError(
                f"Conv2d expects (C={c_in_per_group * self.groups}, H, W) inputs, got {shape}"
            )
        top, left, bottom, right = self.padding
        h = (shape[1] + top + bottom - self.dilation[0] * (kh - 1) - 1) // self.stride[0] + 1
        w = (shape[2] + left + right - self.dilation[1] * (kw - 1) - 1) // self.stride[1] + 1
        if h <= 0 or w <= 0:
            raise ValueError(f"Conv2d kernel {kh}x{kw} does not fit input {shape}")
        return (c_out, h, w)


@dataclass(frozen=True, eq=False, repr=False)
class ElementwiseAffine(Op):
    """``y = x * scale + shift`` with NumPy broadcasting against the per-sample shape.

    Covers input normalisation (Sub/Div/Mul/Add by constants) and batch
    normalisation that could not be folded into a preceding layer.
    """

    scale: Tensor
    shift: Tensor
    affine = True

    def forward(self, *inputs: Tensor) -> Tensor:
        return inputs[0] * self.scale + self.shift

    def output_shape(self, *input_shapes: Shape) -> Shape:
        (shape,) = input_shapes
        try:
            out = torch.broadcast_shapes(shape, tuple(self.scale.shape), tuple(self.shift.shape))
        except RuntimeError as exc:
            raise ValueError(f"ElementwiseAffine parameters do not broadcast to {shape}") from exc
        if tuple(out) != tuple(shape):
            raise ValueError(f"ElementwiseAffine parameters would change the shape {shape}")
        return tuple(shape)
