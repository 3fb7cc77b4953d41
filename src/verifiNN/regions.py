"""Input regions in batched tensor form: the engines' view of :class:`~verifiNN.specs.Box`
and :class:`~verifiNN.specs.LpBall`.

A :class:`~verifiNN.specs.Specification` holds one region per case (NumPy,
immutable, with membership tests). Engines work on ``B`` regions at once as
tensors: a :class:`BoxBatch` (boxes and L-inf balls) or a :class:`BallBatch`
(L1 or L2 balls, each intersected with its bounding box). Both answer the
questions every engine asks of a region set (auto_LiRPA's perturbation
interface, plus the projection of attacks):

* :meth:`box`: elementwise bounds (interval propagation, sampling);
* :meth:`concretize`: the minimum of ``A x + b`` over each region, for a batch
  of linear functions ``A`` of shape ``(B, m, n)``. Boxes are concretised
  exactly (``A mid - |A| rad``); balls by their dual norm (``A c - eps
  ||A||_q`` with ``1/p + 1/q = 1``, Zhang et al. 2018, Thm 3.2), tightened by
  the box bound (both are valid lower bounds over the intersection);
* :meth:`project`: the nearest point of the region (Madry et al. 2018 need it
  for projected gradient descent): a clamp for boxes; a radial rescaling for
  L2 balls; the sorting algorithm of Duchi, Shalev-Shwartz, Singer and
  Chandra 2008 ("Efficient Projections onto the l1-Ball for Learning in High
  Dimensions", Fig. 1) for L1 balls; then the clamp to the box. When the
  ball's centre lies in the box this lands in the intersection (the clamp
  moves every coordinate towards the centre, so no norm grows), though not
  always on its nearest point, which is all an attack needs; otherwise the
  two projections alternate (von Neumann), converging to a point of the
  intersection; callers re-check membership anyway.

:func:`as_batch` builds a batch from specification regions, ``(lower, upper)``
arrays or another batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from verifiNN.errors import InvalidInputError
from verifiNN.specs import DUAL_NORMS, NORM_ORDERS, Box, LpBall, normalize_norm

__all__ = [
    "BallBatch",
    "BoxBatch",
    "RegionBatch",
    "as_batch",
    "project_ball",
    "project_box",
    "project_l1_ball",
    "project_l2_ball",
    "project_region",
]


# ------------------------------------------------------------------ projections
def project_box(x: Tensor, lower: Tensor, upper: Tensor) -> Tensor:
    """Clamp ``x`` into ``[lower, upper]`` (shapes broadcast)."""
    return torch.minimum(torch.maximum(x, lower), upper)


def project_l2_ball(delta: Tensor, eps: Tensor) -> Tensor:
    """Project the rows of ``delta`` (``(..., n)``) onto L2 balls of radii ``eps`` (``(...)``)."""
    norm = torch.linalg.vector_norm(delta, ord=2, dim=-1)
    eps = eps.to(delta.dtype).expand_as(norm)
    scale = torch.where(norm > eps, eps / torch.clamp(norm, min=torch.finfo(delta.dtype).tiny), 1.0)
    return delta * scale.unsqueeze(-1)


def project_l1_ball(delta: Tensor, eps: Tensor) -> Tensor:
    """Project the rows of ``delta`` onto L1 balls of radii ``eps`` (Duchi et al. 2008).

    For a row ``v`` outside the ball: sort ``|v|`` decreasingly into ``u``, let
    ``rho`` be the largest ``j`` with ``u_j >= (sum_{i<=j} u_i - eps) / j``,
    ``theta = (sum_{i<=rho} u_i - eps) / rho``, and return
    ``sign(v) * max(|v| - theta, 0)``.

    Args:
        delta: ``(..., n)`` offsets from the centres.
        eps: ``(...)`` radii (broadcast to the leading dimensions), ``>= 0``.

    Returns:
        The projected offsets, same shape as ``delta``.
    """
    shape = delta.shape
    flat = delta.reshape(-1, shape[-1])
    radius = eps.to(delta.dtype).expand(shape[:-1]).reshape(-1)
    magnitude = flat.abs()
    outside = magnitude.sum(dim=1) > radius
    if not bool(outside.any()):
        return delta
    u = torch.sort(magnitude[outside], dim=1, descending=True).values
    cumulative = torch.cumsum(u, dim=1) - radius[outside].unsqueeze(1)
    index = torch.arange(1, u.shape[1] + 1, dtype=delta.dtype, device=delta.device)
    condition = u * index >= cumulative  # ">=" keeps j = 1 when eps = 0
    rho = condition.shape[1] - 1 - torch.argmax(condition.flip(1).to(torch.int8), dim=1)
    theta = cumulative.gather(1, rho.unsqueeze(1)) / (rho + 1).to(delta.dtype).unsqueeze(1)
    projected = flat.clone()
    projected[outside] = torch.sign(flat[outside]) * torch.clamp(
        magnitude[outside] - torch.clamp(theta, min=0.0), min=0.0
    )
    return projected.reshape(shape)


def project_ball(x: Tensor, center: Tensor, eps: Tensor, norm: str) -> Tensor:
    """Project ``x`` onto the ball ``||x - center||_p <= eps``, ``p`` = ``norm`` (inf, 2 or 1)."""
    delta = x - center
    if norm == "inf":
        radius = eps.to(x.dtype).unsqueeze(-1)
        delta = torch.minimum(torch.maximum(delta, -radius), radius)
    elif norm == "2":
        delta = project_l2_ball(delta, eps)
    elif norm == "1":
        delta = project_l1_ball(delta, eps)
    else:
        raise InvalidInputError(f"unknown norm {norm!r}")
    return center + delta


def project_region(
    x: Tensor,
    lower: Tensor,
    upper: Tensor,
    center: Tensor | None = None,
    eps: Tensor | None = None,
    norm: str = "inf",
    iterations: int = 20,
) -> Tensor:
    """Project ``x`` into ``box ∩ ball`` (just the box when ``center`` is ``None``).

    Args:
        x: ``(..., n)`` points.
        lower: box lower bounds, broadcastable to ``x``.
        upper: box upper bounds, broadcastable to ``x``.
        center: ball centres, broadcastable to ``x``, or ``None`` for a box only.
        eps: ball radii, broadcastable to ``x.shape[:-1]``.
        norm: ``'inf'``, ``'2'`` or ``'1'``.
        iterations: alternating projections when a centre lies outside its box.

    Returns:
        The projected points (always inside the box; inside the ball too when
        the centre lies in the box).
    """
    if center is None or eps is None:
        return project_box(x, lower, upper)
    centre_inside = bool(((center >= lower) & (center <= upper)).all())
    rounds = 1 if centre_inside else max(1, iterations)
    for _ in range(rounds):
        x = project_box(project_ball(x, center, eps, norm), lower, upper)
    return x


def _per_point(param: Tensor, x: Tensor) -> Tensor:
    """A ``(B, ...)`` parameter reshaped to broadcast against ``(B, S1, ..., n)`` points."""
    extra = x.dim() - 2
    if param.dim() == 2:  # (B, n)
        return param.reshape(param.shape[0], *([1] * extra), param.shape[1])
    return param.reshape(param.shape[0], *([1] * extra))  # (B,)


# ------------------------------------------------------------------ batches
@dataclass(frozen=True)
class BoxBatch:
    """``B`` boxes ``lower <= x <= upper`` over the flattened input.

    Attributes:
        lower: ``(B, n)`` lower bounds.
        upper: ``(B, n)`` upper bounds.
    """

    lower: Tensor
    upper: Tensor

    norm = "inf"

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
        # A+ l + A- u, not A mid - |A| rad: the two products of the centre-radius form
        # cancel and absorb smaller terms when A is huge, and are inf - inf for infinite
        # ends. With an infinite end, a zero coefficient contributes 0 (not 0 * inf).
        if bool(torch.isfinite(self.lower).all() & torch.isfinite(self.upper).all()):
            lower, upper = self.lower.unsqueeze(-1), self.upper.unsqueeze(-1)
            value = (A.clamp(min=0) @ lower).squeeze(-1) + (A.clamp(max=0) @ upper).squeeze(-1)
        else:
            ends = torch.where(A > 0, self.lower.unsqueeze(-2), self.upper.unsqueeze(-2))
            value = torch.where(A == 0, torch.zeros_like(A), A * ends).sum(-1)
        return value if b is None else value + b

    def project(self, x: Tensor) -> Tensor:
        """Project ``(B, ..., n)`` points into their boxes."""
        return project_box(x, _per_point(self.lower, x), _per_point(self.upper, x))

    def start(self) -> Tensor:
        """``(B, n)`` starting points of a search: the boxes' midpoints."""
        return (self.lower + self.upper) / 2

    def select(self, index: Tensor | slice) -> BoxBatch:
        """The regions ``index`` of the batch."""
        return BoxBatch(self.lower[index], self.upper[index])

    def to(self, dtype: torch.dtype, device: torch.device | str | None = None) -> BoxBatch:
        """The same boxes with tensors of ``dtype`` on ``device``."""
        return BoxBatch(
            self.lower.to(dtype=dtype, device=device), self.upper.to(dtype=dtype, device=device)
        )


@dataclass(frozen=True)
class BallBatch:
    """``B`` Lp balls ``||x - center||_p <= eps``, each intersected with a box.

    Attributes:
        center: ``(B, n)`` centres.
        eps: ``(B,)`` radii.
        norm: ``'2'`` or ``'1'`` (L-inf balls are boxes: :class:`BoxBatch`).
        lower: ``(B, n)`` box lower bounds (``-inf`` where absent).
        upper: ``(B, n)`` box upper bounds (``+inf`` where absent).
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
        q = NORM_ORDERS[DUAL_NORMS[self.norm]]
        ball = (A @ self.center.unsqueeze(-1)).squeeze(-1)
        ball = ball - self.eps.unsqueeze(-1) * torch.linalg.vector_norm(A, ord=q, dim=-1)
        low, high = self.box()
        value = torch.maximum(ball, BoxBatch(low, high).concretize(A))
        return value if b is None else value + b

    def project(self, x: Tensor) -> Tensor:
        """Project ``(B, ..., n)`` points into ball ∩ box (see the module docstring)."""
        low, high = self.box()
        return project_region(
            x,
            _per_point(low, x),
            _per_point(high, x),
            _per_point(self.center, x),
            _per_point(self.eps, x),
            self.norm,
        )

    def start(self) -> Tensor:
        """``(B, n)`` starting points of a search: the centres, projected."""
        return self.project(self.center.unsqueeze(1)).squeeze(1)

    def select(self, index: Tensor | slice) -> BallBatch:
        """The regions ``index`` of the batch."""
        return BallBatch(
            self.center[index], self.eps[index], self.norm, self.lower[index], self.upper[index]
        )

    def to(self, dtype: torch.dtype, device: torch.device | str | None = None) -> BallBatch:
        """The same balls with tensors of ``dtype`` on ``device``."""

        def move(t: Tensor) -> Tensor:
            return t.to(dtype=dtype, device=device)

        return BallBatch(
            move(self.center), move(self.eps), self.norm, move(self.lower), move(self.upper)
        )


RegionBatch = BoxBatch | BallBatch


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
) -> RegionBatch:
    kinds = {(type(r).__name__, getattr(r, "norm", "inf")) for r in regions}
    if len(kinds) != 1:
        raise InvalidInputError(f"a batch of regions must share one kind, got {sorted(kinds)}")
    first = regions[0]
    if isinstance(first, Box) or first.norm == "inf":
        boxes = [r.bounding_box() for r in regions]
        lower = _tensor(np.stack([b.lower for b in boxes]), dtype, device)
        upper = _tensor(np.stack([b.upper for b in boxes]), dtype, device)
        return BoxBatch(_batch2d(lower, n, "box lower"), _batch2d(upper, n, "box upper"))
    size = first.size

    def domain(r: LpBall, which: str, default: float) -> np.ndarray:
        value = getattr(r, which)
        return np.full(size, default) if value is None else np.asarray(value)

    return BallBatch(
        _batch2d(_tensor(np.stack([r.center for r in regions]), dtype, device), n, "center"),
        _tensor([r.epsilon for r in regions], dtype, device),
        first.norm,
        _tensor(np.stack([domain(r, "lower", -np.inf) for r in regions]), dtype, device),
        _tensor(np.stack([domain(r, "upper", np.inf) for r in regions]), dtype, device),
    )


def as_batch(
    region: object,
    n: int,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> RegionBatch:
    """Normalise a region argument into a batch of regions.

    Args:
        region: a :class:`~verifiNN.specs.Box` or :class:`~verifiNN.specs.LpBall`,
            a sequence of them (one kind), a ``(lower, upper)`` pair of arrays of
            shape ``(n,)`` or ``(B, n)``, or a :class:`BoxBatch` / :class:`BallBatch`.
        n: the flattened input size.
        dtype: tensor dtype.
        device: tensor device.

    Returns:
        A :class:`BoxBatch` (boxes and L-inf balls) or :class:`BallBatch`.

    Raises:
        InvalidInputError: sizes that do not match ``n``, mixed kinds, ``lower > upper``.
    """
    if isinstance(region, BoxBatch):
        out: RegionBatch = BoxBatch(
            _batch2d(_tensor(region.lower, dtype, device), n, "box lower"),
            _batch2d(_tensor(region.upper, dtype, device), n, "box upper"),
        )
    elif isinstance(region, BallBatch):
        center = _batch2d(_tensor(region.center, dtype, device), n, "center")
        batch = center.shape[0]
        out = BallBatch(
            center,
            _tensor(region.eps, dtype, device).reshape(-1).expand(batch).contiguous(),
            normalize_norm(region.norm),
            _tensor(region.lower, dtype, device).expand(batch, n).contiguous(),
            _tensor(region.upper, dtype, device).expand(batch, n).contiguous(),
        )
        if out.norm == "inf":
            out = BoxBatch(*out.box())
    elif isinstance(region, (Box, LpBall)):
        out = _from_regions([region], n, dtype, device)
    elif isinstance(region, (list, tuple)) and region and isinstance(region[0], (Box, LpBall)):
        out = _from_regions(list(region), n, dtype, device)
    elif isinstance(region, (list, tuple)) and len(region) == 2:
        lower = _batch2d(_tensor(region[0], dtype, device), n, "lower")
        upper = _batch2d(_tensor(region[1], dtype, device), n, "upper")
        out = BoxBatch(lower, upper)
    else:
        raise InvalidInputError(
            "region must be a Box, an LpBall, a sequence of them, a (lower, upper) pair, "
            f"or a BoxBatch/BallBatch; got {type(region).__name__}"
        )
    low, high = out.box()
    if low.shape != high.shape or not bool((low <= high).all()):
        raise InvalidInputError("input region is empty or malformed (lower > upper or NaN)")
    if isinstance(out, BoxBatch) and not bool(
        torch.isfinite(low).all() & torch.isfinite(high).all()
    ):
        raise InvalidInputError("box bounds must be finite")
    if isinstance(out, BallBatch) and not bool(
        (torch.isfinite(out.eps) & (out.eps >= 0)).all() & torch.isfinite(out.center).all()
    ):
        raise InvalidInputError("ball centres must be finite and radii finite and >= 0")
    return out
