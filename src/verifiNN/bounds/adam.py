"""Projected Adam on a list of tensors (Kingma and Ba 2015, "Adam: A Method for Stochastic
Optimization"), for the relaxation slopes of alpha-CROWN.

A dozen lines of arithmetic. ``torch.optim.Adam`` would work too, but its first
use imports ``torch._dynamo``, which costs 3-5 s in every fresh process (every
``verifinn verify`` run).
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["ProjectedAdam"]


class ProjectedAdam:
    """Adam steps that *decrease* a loss, followed by clamping to ``[low, high]``.

    Args:
        params: leaf tensors to optimise (updated in place).
        lr: initial step size.
        lr_decay: step size multiplied by this after every step.
        betas: moment decay rates.
        eps: denominator guard.
        low, high: the box every parameter is projected onto.
    """

    def __init__(
        self,
        params: list[Tensor],
        lr: float,
        lr_decay: float = 1.0,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        low: float = 0.0,
        high: float = 1.0,
    ) -> None:
        self.params = params
        self.lr, self.lr_decay, self.betas, self.eps = lr, lr_decay, betas, eps
        self.low, self.high = low, high
        self._m = [torch.zeros_like(p) for p in params]
        self._v = [torch.zeros_like(p) for p in params]
        self._t = 0

    @torch.no_grad()
    def step(self, grads: list[Tensor | None]) -> None:
        """One Adam step along ``-grads``, then the projection."""
        self._t += 1
        b1, b2 = self.betas
        scale = self.lr * (1 - b2**self._t) ** 0.5 / (1 - b1**self._t)
        for p, g, m, v in zip(self.params, grads, self._m, self._v):
            if g is None:
                continue
            m.mul_(b1).add_(g, alpha=1 - b1)
            v.mul_(b2).addcmul_(g, g, value=1 - b2)
            p.addcdiv_(m, v.sqrt().add_(self.eps), value=-scale).clamp_(self.low, self.high)
        self.lr *= self.lr_decay
