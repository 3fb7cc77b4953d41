"""Max pooling: a lower window cell and an upper line through the largest one.

Lower ``y >= x_j`` with ``j`` the window's largest lower bound; upper
``y <= M + (u_k - M) / (u_k - l_k) (x_k - l_k)`` with ``k`` the largest upper
bound and ``M`` the window's second largest upper bound (``y = x_k`` when
``l_k >= M``). Valid because ``max(x) <= max(x_k, M) = M + relu(x_k - M)``. A dilated window
(cells ``dilation`` apart) is handled alike: only which cells form a window changes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from verifiNN.bounds.relaxations.base import (
    NO_ALPHA,
    Alpha,
    Relaxation,
    WindowBounds,
    everywhere,
    monotone_interval,
    no_alpha,
    no_free,
)
from verifiNN.ops import MaxPool2d, Op

__all__ = ["POOLING_RELAXATIONS"]


# ------------------------------------------------------------------ MaxPool
def _windows(op: MaxPool2d, x: Tensor) -> tuple[Tensor, tuple[int, int]]:
    """``(B, C, H, W) -> (B, C, K, L)`` windows of the ``-inf``-padded input."""
    top, left, bottom, right = op.padding
    padded = F.pad(x, (left, right, top, bottom), value=float("-inf"))
    cols = F.unfold(padded, op.kernel, dilation=op.dilation, stride=op.stride)
    b, c = x.shape[:2]
    return cols.reshape(b, c, op.kernel[0] * op.kernel[1], -1), tuple(padded.shape[-2:])


def _maxpool_relax(op: MaxPool2d, lower: Tensor, upper: Tensor, alpha: Alpha = NO_ALPHA):
    low, size = _windows(op, lower)
    high, _ = _windows(op, upper)
    lower_index = low.argmax(dim=2)
    if high.shape[2] > 1:
        top2 = high.topk(2, dim=2)
        upper_index, u_k, second = top2.indices[:, :, 0], top2.values[:, :, 0], top2.values[:, :, 1]
    else:
        upper_index, u_k = high.argmax(dim=2), high.max(dim=2).values
        second = torch.full_like(u_k, float("-inf"))
    l_k = low.gather(2, upper_index.unsqueeze(2)).squeeze(2)
    exact = l_k >= second
    safe_m = torch.where(exact, u_k, second)
    gap = torch.where(exact, torch.ones_like(u_k), u_k - l_k)
    slope = torch.where(exact, torch.ones_like(u_k), (u_k - safe_m) / gap)
    intercept = torch.where(exact, torch.zeros_like(u_k), safe_m - slope * l_k)
    return WindowBounds(lower_index, upper_index, slope, intercept, size)


def _maxpool_backward(op: MaxPool2d, wb: WindowBounds, lam: Tensor) -> tuple[Tensor, Tensor | None]:
    _, channels, length = wb.lower_index.shape
    # one set of window bounds may serve a batch of domains (ReLU BaB) and vice versa
    batch = max(lam.shape[0], wb.lower_index.shape[0])
    rows = lam.shape[1]
    lam = lam.expand(batch, *lam.shape[1:]).reshape(batch, rows, channels, length)
    pos = lam.clamp(min=0)
    neg = lam - pos
    k = op.kernel[0] * op.kernel[1]
    shape = (batch, rows, channels, 1, length)
    cols = lam.new_zeros(batch, rows, channels, k, length)
    cols = cols.scatter_add(3, wb.lower_index[:, None, :, None, :].expand(shape), pos.unsqueeze(3))
    upper_part = (neg * wb.uw.unsqueeze(1)).unsqueeze(3)
    cols = cols.scatter_add(3, wb.upper_index[:, None, :, None, :].expand(shape), upper_part)
    bias = (neg * wb.ub.unsqueeze(1)).sum((2, 3))
    folded = F.fold(
        cols.reshape(batch * rows, channels * k, length),
        wb.padded_size,
        op.kernel,
        dilation=op.dilation,
        stride=op.stride,
    )
    top, left, bottom, right = op.padding
    height, width = wb.padded_size[0] - top - bottom, wb.padded_size[1] - left - right
    folded = folded[:, :, top : top + height, left : left + width]
    return folded.reshape(batch, rows, channels, height, width), bias


POOLING_RELAXATIONS: dict[type[Op], Relaxation] = {
    MaxPool2d: Relaxation(
        name="maxpool",
        interval=monotone_interval,
        relax=_maxpool_relax,
        backward=_maxpool_backward,
        free=no_free,
        default_alpha=no_alpha,
        needs_bounds=everywhere,
        elementwise=False,
    ),
}
"""Max pooling."""
