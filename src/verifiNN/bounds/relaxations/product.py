"""The product ``z = x y`` of two nodes (arity 2): McCormick's envelope.

McCormick 1976, "Computability of global solutions to factorable nonconvex
programs": ``z >= ly x + lx y - lx ly``, ``z >= uy x + ux y - ux uy``,
``z <= uy x + lx y - lx uy``, ``z <= ly x + ux y - ux ly``; a linear bound
uses the average of each pair (valid as a convex combination of valid planes),
as for the attention products of Shi et al. 2020, "Robustness Verification
for Transformers". Its interval is the min/max of the four corner products
(``0 * inf`` taken as 0, as interval arithmetic does); with an infinite bound
the planes are the constant interval bounds.
"""

from __future__ import annotations

import torch
from torch import Tensor

from verifiNN.bounds.relaxations.base import (
    NO_ALPHA,
    Alpha,
    PlaneBounds,
    Relaxation,
    bounded_planes,
    everywhere,
    no_alpha,
    no_free,
    plane_backward,
)
from verifiNN.ops import Mul, Op

__all__ = ["PRODUCT_RELAXATIONS"]


def _product_interval(op: Mul, lowers, uppers) -> tuple[Tensor, Tensor]:
    """Min and max of the four corner products (``0 * inf`` is 0: the other corners
    carry the unbounded products)."""
    (lx, ly), (ux, uy) = lowers, uppers
    corners = torch.stack([lx * ly, lx * uy, ux * ly, ux * uy])
    known = ~(torch.isnan(lx) | torch.isnan(ux) | torch.isnan(ly) | torch.isnan(uy))
    corners = torch.where(torch.isnan(corners) & known, torch.zeros_like(corners), corners)
    return corners.min(0).values, corners.max(0).values


def _product_relax(op: Mul, lowers, uppers, alpha: Alpha = NO_ALPHA) -> PlaneBounds:
    """McCormick's two lower and two upper planes, averaged (see the module docstring)."""
    (lx, ly), (ux, uy) = lowers, uppers
    planes = PlaneBounds(
        a_lower=(ly + uy) / 2,
        b_lower=(lx + ux) / 2,
        c_lower=-(lx * ly + ux * uy) / 2,
        a_upper=(uy + ly) / 2,
        b_upper=(lx + ux) / 2,
        c_upper=-(lx * uy + ux * ly) / 2,
    )
    finite = torch.isfinite(lx) & torch.isfinite(ux) & torch.isfinite(ly) & torch.isfinite(uy)
    if bool(finite.all()):
        return planes
    return bounded_planes(planes, *_product_interval(op, lowers, uppers), finite)


PRODUCT_RELAXATIONS: dict[type[Op], Relaxation] = {
    Mul: Relaxation(
        name="product",
        interval=_product_interval,
        relax=_product_relax,
        backward=plane_backward,
        free=no_free,
        default_alpha=no_alpha,
        needs_bounds=everywhere,
        elementwise=False,
        arity=2,
    ),
}
"""The product of two nodes."""
