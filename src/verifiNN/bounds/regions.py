"""Batched input sets and their concretisation.

An input set holds ``B`` regions over the flattened network input and answers
two questions (auto_LiRPA's perturbation interface):

* :meth:`box`: elementwise bounds of the input (for interval propagation);
* :meth:`concretize`: the minimum of ``A x + b`` over each region, for a batch
  of linear functions ``A`` of shape ``(B, m, n)``.

Boxes are concretised exactly (``A mid - |A| rad``); Lp balls by their dual norm
(``A c - eps ||A||_q`` with ``1/p + 1/q = 1``, cf. Zhang et al. 2018, Thm 3.2);
a ball clipped to a box by the better of the ball's and the box's bound (both
are valid lower bounds over the intersection).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from verifiNN.errors import InvalidInputError
from verifiNN.specs import Box, LpBall, normalize_norm

__all__ = ["BallInput", "BoxInput", "InputSet", "as_input_set"]

_DUAL = {"inf": 1.0, "2": 2.0, "1": float("inf")}


@dataclass(frozen=True)
class BoxInput:
    """``B`` boxes ``lower <= x <= upper``.

    Attributes:
        lower: ``(B, n)`` lower bounds.
        upper: ``(B, n)`` upper bounds.
    """

    lower: Tensor
    upper: Tensor

    @property
    def batch(self) -> int:
        """Number of regions ``B``."""
        return int(self.lower.shape[0])

    @property
    def reference(self) -> Tensor:
        """A tensor with the set's dtype and device."""
        return self.lower

    def box(self) -> tuple[Tensor, Tensor]:
        """``(lower, upper)``, each ``(B, n)``."""
        return self.lower, self.upper

    def concretize(self, A: Tensor, b: Tensor | None = None) -> Tensor:
        """``min_x A x + b`` over each box.

        Args:
            A: ``(B or 1, m, n)`` coefficients.
            b: ``(B or 1, m)`` offsets, or ``None``.

        Returns:
            ``(B, m)`` lower bounds.
        """
        mid = ((self.upper + self.lower) / 2).unsqueeze(-1)
        rad = ((self.upper - self.lower) / 2).unsqueeze(-1)
        value = (A @ mid).squeeze(-1) - (A.abs() @ rad).squeeze(-1)
        return value if b is None else value + b

    def select(self, index: Tensor) -> BoxInput:
        """The regions ``index`` of the batch."""
        return BoxInput(self.lower[index], self.upper[index])


@dataclass(frozen=True)
class BallInput:
    """``B`` Lp balls ``||x - center||_p <= eps``, each optionally clipped to a box.

    Attributes:
        center: ``(B, n)`` centres.
        eps: ``(B,)`` radii.
        norm: ``'2'`` or ``'1'`` (L-inf balls are boxes: use :class:`BoxInput`).
        lower: ``(B, n)`` clipping box lower bounds (``-inf`` where absent).
        upper: ``(B, n)`` clipping box upper bounds (``+inf`` where absent).
    """

    center: Tensor
    eps: Tensor
    norm: str
    lower: Tensor
    upper: Tensor

    @property
    def batch(self) -> int:
        """Number of regions ``B``."""
        return int(self.center.shape[0])

    @property
    def reference(self) -> Tensor:
        """A tensor with the set's dtype and device."""
        return self.center

    def box(self) -> tuple[Tensor, Tensor]:
        """The bounding box ``clip(center -+ eps, lower, upper)``."""
        radius = self.eps.unsqueeze(-1)
        low = torch.maximum(self.center - radius, self.lower)
        high = torch.minimum(self.center + radius, self.upper)
        return low, torch.maximum(high, low)

    def concretize(self, A: Tensor, b: Tensor | None = None) -> Tensor:
        """``min_x A x + b`` over each ball (dual norm), tightened by its bounding box."""
        q = _DUAL[self.norm]
        ball = (A @ self.center.unsqueeze(-1)).squeeze(-1)
        ball = ball - self.eps.unsqueeze(-1) * torch.linalg.vector_norm(A, ord=q, dim=-1)
        low, high = self.box()
        value = torch.maximum(ball, BoxInput(low, high).concretize(A))
        return value if b is None else value + b

    def select(self, index: Tensor) -> BallInput:
        """The regions ``index`` of the batch."""
        return BallInput(
            self.center[index], self.eps[index], self.norm, self.lower[index], self.upper[index]
        )


InputSet = BoxInput | BallInput


def _tensor(value: object, dtype: torch.dtype, device: torch.device | str | None) -> Tensor:
    if isinstance(value, Tensor):
        return value.detach().to(dtype=dtype, device=device)
    return torch.as_tensor(np.array(value, dtype=np.float64), dtype=dtype, device=device)


def _batch2d(value: Tensor, n: int, what: str) -> Tensor:
    value = value.reshape(-1, n) if value.numel() % n == 0 and value.numel() else value
    if value.dim() != 2 or value.shape[1] != n:
        raise InvalidInputError(f"{what} has shape {tuple(value.shape)}, expected (B, {n})")
    return value


def _from_regions(
    regions: Sequence[Box | LpBall], n: int, dtype: torch.dtype, device
) -> BoxInput | BallInput:
    kinds = {(type(r).__name__, getattr(r, "norm", "inf")) for r in regions}
    if len(kinds) != 1:
        raise InvalidInputError(f"a batch of regions must share one kind, got {sorted(kinds)}")
    first = regions[0]
    if isinstance(first, Box) or first.norm == "inf":
        boxes = [r.bounding_box() for r in regions]
        lower = _tensor(np.stack([b.lower for b in boxes]), dtype, device)
        upper = _tensor(np.stack([b.upper for b in boxes]), dtype, device)
        return BoxInput(_batch2d(lower, n, "box lower"), _batch2d(upper, n, "box upper"))
    size = first.size

    def domain(r: LpBall, which: str, default: float) -> np.ndarray:
        value = getattr(r, which)
        return np.full(size, default) if value is None else np.asarray(value)

    return BallInput(
        _batch2d(_tensor(np.stack([r.center for r in regions]), dtype, device), n, "center"),
        _tensor([r.epsilon for r in regions], dtype, device),
        first.norm,
        _tensor(np.stack([domain(r, "lower", -np.inf) for r in regions]), dtype, device),
        _tensor(np.stack([domain(r, "upper", np.inf) for r in regions]), dtype, device),
    )


def as_input_set(
    region: object,
    n: int,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> BoxInput | BallInput:
    """Normalise a region argument into a batched input set.

    Args:
        region: a :class:`~verifiNN.specs.Box` or :class:`~verifiNN.specs.LpBall`,
            a sequence of them (one kind), a ``(lower, upper)`` pair of arrays of
            shape ``(n,)`` or ``(B, n)``, or a :class:`BoxInput`/:class:`BallInput`.
        n: the flattened input size.
        dtype: tensor dtype.
        device: tensor device.

    Returns:
        A :class:`BoxInput` (boxes and L-inf balls) or :class:`BallInput`.

    Raises:
        InvalidInputError: sizes that do not match ``n``, mixed kinds, ``lower > upper``.
    """
    if isinstance(region, BoxInput):
        out: BoxInput | BallInput = BoxInput(
            _batch2d(_tensor(region.lower, dtype, device), n, "box lower"),
            _batch2d(_tensor(region.upper, dtype, device), n, "box upper"),
        )
    elif isinstance(region, BallInput):
        center = _batch2d(_tensor(region.center, dtype, device), n, "center")
        batch = center.shape[0]
        out = BallInput(
            center,
            _tensor(region.eps, dtype, device).reshape(-1).expand(batch).contiguous(),
            normalize_norm(region.norm),
            _tensor(region.lower, dtype, device).expand(batch, n).contiguous(),
            _tensor(region.upper, dtype, device).expand(batch, n).contiguous(),
        )
        if out.norm == "inf":
            out = BoxInput(*out.box())
    elif isinstance(region, (Box, LpBall)):
        out = _from_regions([region], n, dtype, device)
    elif isinstance(region, (list, tuple)) and region and isinstance(region[0], (Box, LpBall)):
        out = _from_regions(list(region), n, dtype, device)
    elif isinstance(region, (list, tuple)) and len(region) == 2:
        lower = _batch2d(_tensor(region[0], dtype, device), n, "lower")
        upper = _batch2d(_tensor(region[1], dtype, device), n, "upper")
        out = BoxInput(lower, upper)
    else:
        raise InvalidInputError(
            "region must be a Box, an LpBall, a sequence of them, a (lower, upper) pair, "
            f"or a BoxInput/BallInput; got {type(region).__name__}"
        )
    low, high = out.box()
    if low.shape != high.shape or not bool((low <= high).all()):
        raise InvalidInputError("input region is empty or malformed (lower > upper or NaN)")
    if isinstance(out, BoxInput) and not bool(
        torch.isfinite(low).all() & torch.isfinite(high).all()
    ):
        raise InvalidInputError("box bounds must be finite")
    if isinstance(out, BallInput) and not bool(
        (torch.isfinite(out.eps) & (out.eps >= 0)).all() & torch.isfinite(out.center).all()
    ):
        raise InvalidInputError("ball centres must be finite and radii finite and >= 0")
    return out
