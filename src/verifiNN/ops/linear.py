"""Affine operations: dense layers, products with constant matrices, convolutions (direct and
transposed) and elementwise affine maps."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from verifiNN.ops.base import Op, Shape

__all__ = ["ConstMatMul", "Conv2d", "ConvTranspose2d", "Dense", "ElementwiseAffine"]


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
        try:  # numpy's rule is torch's; torch.broadcast_shapes costs an import on first use
            out = np.broadcast_shapes(shape, tuple(self.scale.shape), tuple(self.shift.shape))
        except ValueError as exc:
            raise ValueError(f"ElementwiseAffine parameters do not broadcast to {shape}") from exc
        if tuple(out) != tuple(shape):
            raise ValueError(f"ElementwiseAffine parameters would change the shape {shape}")
        return tuple(shape)


@dataclass(frozen=True, eq=False, repr=False)
class ConstMatMul(Op):
    """``y = x @ W + b`` (``left=False``) or ``y = W @ x + b`` (``left=True``) for a
    per-sample input of rank >= 2 and a constant ``W`` (NumPy ``matmul`` broadcasting
    over the leading axes; ONNX ``MatMul``/``Gemm`` with a constant operand on data of any
    batch layout, and linear resizing along one axis).

    Attributes:
        weight: ``(..., K, N)`` (right) or ``(..., M, K)`` (left), rank at most the input's.
        bias: broadcastable to the output's per-sample shape.
        left: whether ``W`` multiplies from the left.
    """

    weight: Tensor
    bias: Tensor
    left: bool = False
    affine = True

    def forward(self, *inputs: Tensor) -> Tensor:
        x = inputs[0]
        product = torch.matmul(self.weight, x) if self.left else torch.matmul(x, self.weight)
        return product + self.bias

    def output_shape(self, *input_shapes: Shape) -> Shape:
        (shape,) = input_shapes
        w = tuple(self.weight.shape)
        if len(shape) < 2 or len(w) < 2 or len(w) > len(shape):
            raise ValueError(
                f"ConstMatMul of a {w} weight needs a per-sample rank >= 2, got {shape}"
            )
        inner, outer = (w[-1], shape[-2]) if self.left else (w[-2], shape[-1])
        if inner != outer:
            raise ValueError(f"ConstMatMul cannot multiply {shape} by a {w} weight")
        try:
            lead = np.broadcast_shapes(shape[:-2], w[:-2])
        except ValueError as exc:
            raise ValueError(f"ConstMatMul weight {w} does not broadcast with {shape}") from exc
        rows, cols = (w[-2], shape[-1]) if self.left else (shape[-2], w[-1])
        out = (*lead, rows, cols)
        try:
            full = np.broadcast_shapes(out, tuple(self.bias.shape))
        except ValueError as exc:
            raise ValueError(f"ConstMatMul bias does not broadcast to {out}") from exc
        if tuple(full) != out:
            raise ValueError(f"ConstMatMul bias {tuple(self.bias.shape)} enlarges {out}")
        return out


@dataclass(frozen=True, eq=False, repr=False)
class ConvTranspose2d(Op):
    """2-D transposed convolution on ``(C, H, W)`` inputs (ONNX ``ConvTranspose``).

    The output is the full transposed convolution (size ``s (n - 1) + d (k - 1) + 1``
    per axis), extended by ``output_padding`` zeros at the end, cropped by
    ``padding`` on each side, plus the bias.

    Attributes:
        weight: ``(C_in, C_out / groups, kH, kW)``.
        bias: ``(C_out,)``.
        stride: ``(sH, sW)``; padding: ``(top, left, bottom, right)`` (cropping);
        output_padding: ``(oH, oW)``; dilation: ``(dH, dW)``; groups.
    """

    weight: Tensor
    bias: Tensor
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int, int, int] = (0, 0, 0, 0)
    output_padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1
    affine = True

    def crop(self) -> tuple[int, int, int, int]:
        """``F.pad`` widths turning the full transposed convolution into the output."""
        top, left, bottom, right = self.padding
        out_h, out_w = self.output_padding
        return (-left, out_w - right, -top, out_h - bottom)

    def forward(self, *inputs: Tensor) -> Tensor:
        full = F.conv_transpose2d(
            inputs[0], self.weight, None, self.stride, 0, 0, self.groups, self.dilation
        )
        return F.pad(full, self.crop()) + self.bias.reshape(-1, 1, 1)

    def output_shape(self, *input_shapes: Shape) -> Shape:
        (shape,) = input_shapes
        c_in, c_out_per_group, kh, kw = self.weight.shape
        if len(shape) != 3 or shape[0] != c_in or c_in % self.groups:
            raise ValueError(f"ConvTranspose2d expects (C={c_in}, H, W) inputs, got {shape}")
        top, left, bottom, right = self.padding
        sizes = []
        for n, k, s, d, extra, lo, hi in zip(
            shape[1:],
            (kh, kw),
            self.stride,
            self.dilation,
            self.output_padding,
            (top, left),
            (bottom, right),
        ):
            sizes.append(s * (n - 1) + d * (k - 1) + 1 + extra - lo - hi)
        if min(sizes) <= 0 or min(self.padding) < 0 or min(self.output_padding) < 0:
            raise ValueError(f"ConvTranspose2d geometry gives an empty output for {shape}")
        return (c_out_per_group * self.groups, sizes[0], sizes[1])
