"""Pooling: 2-D windows on ``(C, H, W)`` inputs (ONNX ``AveragePool`` / ``MaxPool``) and sums
or means over whole axes (``ReduceSum`` / ``ReduceMean``)."""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor

from verifiNN.ops.base import Op, Shape

__all__ = ["AvgPool2d", "MaxPool2d", "ReduceSum"]


def _window_reaches_input(
    size: int, kernel: int, stride: int, dilation: int, begin: int, count: int
) -> bool:
    """Whether each of ``count`` windows along one axis covers at least one input cell
    (cells ``start + j * dilation`` for ``j < kernel``, ``start = i * stride - begin``)."""
    for i in range(count):
        start = i * stride - begin
        first = max(0, -(start // dilation))  # least j with start + j * dilation >= 0
        if first >= kernel or start + first * dilation >= size:
            return False
    return True


def _pooled_shape(shape: Shape, kernel, stride, padding, name: str, dilation=(1, 1)) -> Shape:
    if len(shape) != 3:
        raise ValueError(f"{name} expects (C, H, W) inputs, got {shape}")
    top, left, bottom, right = padding
    problem = ValueError(
        f"{name} padding {tuple(padding)} must be smaller than the kernel {tuple(kernel)}: "
        "a window would cover padding only"
    )
    if name == "AvgPool2d" and (max(top, bottom) >= kernel[0] or max(left, right) >= kernel[1]):
        raise problem  # kept stricter than needed: the AvgPool rules assume it
    span = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]  # the dilated window's extent
    h = (shape[1] + top + bottom - span[0]) // stride[0] + 1
    w = (shape[2] + left + right - span[1]) // stride[1] + 1
    if h <= 0 or w <= 0:
        raise ValueError(f"{name} kernel {kernel} does not fit input {shape}")
    if not (
        _window_reaches_input(shape[1], kernel[0], stride[0], dilation[0], top, h)
        and _window_reaches_input(shape[2], kernel[1], stride[1], dilation[1], left, w)
    ):
        raise problem
    return (shape[0], h, w)


@dataclass(frozen=True, eq=False, repr=False)
class AvgPool2d(Op):
    """Average pooling; padded cells count in the average iff ``count_include_pad``.

    Attributes:
        kernel: ``(kH, kW)``; stride: ``(sH, sW)``; padding: ``(top, left, bottom, right)``.
    """

    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int, int, int] = (0, 0, 0, 0)
    count_include_pad: bool = False
    affine = True

    def forward(self, *inputs: Tensor) -> Tensor:
        top, left, bottom, right = self.padding
        x = inputs[0]
        if (
            (top, left) == (bottom, right)
            and 2 * top <= self.kernel[0]
            and 2 * left <= self.kernel[1]
        ):
            return F.avg_pool2d(
                x, self.kernel, self.stride, (top, left), count_include_pad=self.count_include_pad
            )
        padded = F.pad(x, (left, right, top, bottom))
        total = F.avg_pool2d(padded, self.kernel, self.stride, divisor_override=1)
        if self.count_include_pad:
            return total / (self.kernel[0] * self.kernel[1])
        ones = F.pad(x.new_ones((1, 1, *x.shape[2:])), (left, right, top, bottom))
        return total / F.avg_pool2d(ones, self.kernel, self.stride, divisor_override=1)

    def output_shape(self, *input_shapes: Shape) -> Shape:
        return _pooled_shape(input_shapes[0], self.kernel, self.stride, self.padding, "AvgPool2d")


@dataclass(frozen=True, eq=False, repr=False)
class MaxPool2d(Op):
    """Max pooling (padding with -inf, as ONNX), optionally dilated: a window's cells are
    ``dilation`` apart (ONNX ``dilations``).

    Attributes:
        kernel: ``(kH, kW)``; stride: ``(sH, sW)``; padding: ``(top, left, bottom, right)``;
        dilation: ``(dH, dW)``.
    """

    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int, int, int] = (0, 0, 0, 0)
    dilation: tuple[int, int] = (1, 1)

    def forward(self, *inputs: Tensor) -> Tensor:
        top, left, bottom, right = self.padding
        x = inputs[0]
        # torch pads symmetrically and at most half a kernel; pad by hand otherwise.
        if (
            (top, left) != (bottom, right)
            or 2 * top > self.kernel[0]
            or 2 * left > self.kernel[1]
            or tuple(self.dilation) != (1, 1)
        ):
            x = F.pad(x, (left, right, top, bottom), value=float("-inf"))
            top = left = 0
        return F.max_pool2d(x, self.kernel, self.stride, (top, left), self.dilation)

    def output_shape(self, *input_shapes: Shape) -> Shape:
        return _pooled_shape(
            input_shapes[0], self.kernel, self.stride, self.padding, "MaxPool2d", self.dilation
        )


@dataclass(frozen=True, eq=False, repr=False)
class ReduceSum(Op):
    """``scale * sum`` over per-sample ``axes``, kept as size-1 axes (ONNX ``ReduceSum``;
    ``ReduceMean`` with ``scale = 1 / n``). Affine.

    Attributes:
        axes: the summed per-sample axes (distinct, increasing).
        scale: the factor applied to the sums.
    """

    axes: tuple[int, ...]
    scale: float = 1.0
    affine = True

    def forward(self, *inputs: Tensor) -> Tensor:
        x = inputs[0]
        return x.sum(dim=[a + 1 for a in self.axes], keepdim=True) * self.scale

    def output_shape(self, *input_shapes: Shape) -> Shape:
        (shape,) = input_shapes
        if not self.axes or list(self.axes) != sorted(set(self.axes)):
            raise ValueError(f"ReduceSum axes {self.axes} must be distinct and increasing")
        if not all(0 <= a < len(shape) for a in self.axes):
            raise ValueError(f"ReduceSum axes {self.axes} do not fit shape {shape}")
        return tuple(1 if i in self.axes else d for i, d in enumerate(shape))
