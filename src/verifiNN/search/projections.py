"""Euclidean projections onto input regions, and batched regions for searches (torch).

Projected gradient methods (Madry et al. 2018, "Towards Deep Learning Models
Resistant to Adversarial Attacks") need the nearest point of the input region:

* a box (and an L-inf ball, which is a box): a clamp;
* an L2 ball: a radial rescaling of ``x - center``;
* an L1 ball: the sorting algorithm of Duchi, Shalev-Shwartz, Singer and
  Chandra 2008, "Efficient Projections onto the l1-Ball for Learning in High
  Dimensions" (Fig. 1), O(n log n) per point;
* a ball intersected with a box: the ball's projection followed by the box's.
  When the ball's centre lies in the box this lands in the intersection (the
  clamp moves every coordinate towards the centre, so no norm grows), though
  not always on its nearest point, which is all an attack needs. When the
  centre lies outside the box the two projections are alternated (von
  Neumann's alternating projections), which converges to a point of the
  intersection; callers re-check membership anyway.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = [
    "Regions",
    "project_ball",
    "project_box",
    "project_l1_ball",
    "project_l2_ball",
    "project_region",
]


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
        raise ValueError(f"unknown norm {norm!r}")
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


@dataclass
class Regions:
    """``D`` input regions for batched searches: boxes, optionally meeting Lp balls of one norm.

    Attributes:
        lower: ``(D, n)`` box lower bounds (finite).
        upper: ``(D, n)`` box upper bounds.
        center: ``(D, n)`` ball centres, or ``None`` for boxes only.
        eps: ``(D,)`` ball radii, or ``None``.
        norm: the balls' norm, ``'inf'``, ``'2'`` or ``'1'``.
    """

    lower: Tensor
    upper: Tensor
    center: Tensor | None = None
    eps: Tensor | None = None
    norm: str = "inf"

    def to(self, dtype: torch.dtype, device: torch.device | str) -> Regions:
        def move(t: Tensor | None) -> Tensor | None:
            return None if t is None else t.to(dtype=dtype, device=device)

        return Regions(
            move(self.lower), move(self.upper), move(self.center), move(self.eps), self.norm
        )

    @property
    def centre(self) -> Tensor:
        """``(D, n)`` starting points: the ball centres projected, or the box midpoints."""
        middle = (self.lower + self.upper) / 2 if self.center is None else self.center
        return self.project(middle.unsqueeze(1)).squeeze(1)

    def project(self, x: Tensor) -> Tensor:
        """Project ``(D, S, n)`` points into their domains."""
        if self.center is None or self.eps is None:
            return project_region(x, self.lower.unsqueeze(1), self.upper.unsqueeze(1))
        return project_region(
            x,
            self.lower.unsqueeze(1),
            self.upper.unsqueeze(1),
            self.center.unsqueeze(1),
            self.eps.unsqueeze(1),
            self.norm,
        )

    def step(self, x: Tensor, grad: Tensor, alpha: Tensor) -> Tensor:
        """One steepest-descent step of ``(D, S, n)`` points with relative sizes ``alpha``.

        Boxes and L-inf balls: ``alpha * width * sign(grad)``; L2 balls: the
        normalised gradient times ``2 eps alpha``; L1 balls: a sign step on
        the top 5% coordinates of ``|grad|`` with L1 length ``2 eps alpha``.
        """
        alpha = alpha.unsqueeze(-1)
        if self.center is None or self.eps is None or self.norm == "inf":
            width = (self.upper - self.lower).unsqueeze(1)
            return x - alpha * width * torch.sign(grad)
        size = 2 * alpha * self.eps.reshape(-1, 1, 1)
        if self.norm == "2":
            norm = torch.linalg.vector_norm(grad, dim=-1, keepdim=True)
            return x - size * grad / torch.clamp(norm, min=1e-30)
        k = max(1, math.ceil(0.05 * grad.shape[-1]))
        kth = torch.topk(grad.abs(), k, dim=-1).values[..., -1:]
        direction = torch.sign(grad) * (grad.abs() >= kth) * (grad.abs() > 0)
        count = torch.clamp(direction.abs().sum(dim=-1, keepdim=True), min=1.0)
        return x - size * direction / count

    def uniform(self, count: int, generator: torch.Generator) -> Tensor:
        """``(D, count, n)`` uniform points of the bounding boxes, projected."""
        shape = (self.lower.shape[0], count, self.lower.shape[1])
        u = torch.rand(shape, generator=generator, dtype=self.lower.dtype).to(self.lower.device)
        return self.project(self.lower.unsqueeze(1) + u * (self.upper - self.lower).unsqueeze(1))

    def corners(self, count: int, generator: torch.Generator) -> Tensor:
        """``(D, count, n)`` random corners of the bounding boxes, projected."""
        shape = (self.lower.shape[0], count, self.lower.shape[1])
        bits = torch.rand(shape, generator=generator, dtype=self.lower.dtype) < 0.5
        bits = bits.to(self.lower.device)
        return self.project(torch.where(bits, self.upper.unsqueeze(1), self.lower.unsqueeze(1)))
