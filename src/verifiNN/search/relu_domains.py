"""The subdomains of ReLU branch and bound: their tensors, and the pool of live ones.

A subdomain of :mod:`verifiNN.search.relu_bab` is a set of fixed ReLU phases
with the pre-activation bounds, slopes and multipliers that go with it;
:class:`Domains` stacks many of them along dim 0, and :class:`DomainPool` keeps
the live ones so that taking a batch out or putting children back copies only
that batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["DomainPool", "Domains"]


@dataclass
class Domains:
    """Live subdomains of one disjunct, stacked along dim 0 (``N`` domains).

    Per split layer ``l`` (a node read by a ReLU, flattened to ``n_l``):
    ``lower[l]``/``upper[l]`` ``(N, n_l)`` pre-activation bounds, ``split[l]``
    ``(N, n_l)`` phases (+1 active, -1 inactive, 0 free), ``alpha[l]`` and
    ``beta[l]`` ``(N, m, n_l)`` warm starts. ``margin`` ``(N,)``: the best
    row's bound minus its threshold; ``branch`` ``(N,)``: the flat index (over
    all layers) of the neuron to split next, -1 when none is left.
    """

    lower: list[Tensor]
    upper: list[Tensor]
    split: list[Tensor]
    alpha: list[Tensor]
    beta: list[Tensor]
    margin: Tensor
    branch: Tensor

    def __len__(self) -> int:
        return int(self.margin.shape[0])

    def take(self, index: Tensor) -> Domains:
        def pick(ts: list[Tensor]) -> list[Tensor]:
            return [t[index] for t in ts]

        return Domains(
            pick(self.lower),
            pick(self.upper),
            pick(self.split),
            pick(self.alpha),
            pick(self.beta),
            self.margin[index],
            self.branch[index],
        )

    def bytes_per_domain(self) -> int:
        total = 0
        for group in (self.lower, self.upper, self.split, self.alpha, self.beta):
            total += sum(t[0].numel() * t.element_size() for t in group)
        return total + 16


class DomainPool:
    """The live domains in tensors with spare capacity (doubled when full, up to
    ``rows`` domains, so the spare room never outgrows the memory cap).

    Adding a batch writes it behind the last domain; removing a batch fills its
    holes with domains from the end. Either copies only the batch, so a round
    costs the same with a thousand live domains as with a million (copying the
    whole live set every round took seconds on a ResNet with gigabytes of them,
    between two looks at the clock).
    """

    FIELDS = ("lower", "upper", "split", "alpha", "beta")

    def __init__(self, first: Domains, rows: int) -> None:
        self.store = first.take(torch.arange(len(first)))
        self.size = len(first)
        self.rows = rows  # doubling stops here (the domain cap plus a round of children)

    def __len__(self) -> int:
        return self.size

    @property
    def capacity(self) -> int:
        return int(self.store.margin.shape[0])

    @property
    def margin(self) -> Tensor:
        return self.store.margin[: self.size]

    @property
    def branch(self) -> Tensor:
        return self.store.branch[: self.size]

    def _tensors(self, domains: Domains) -> list[Tensor]:
        ts = [t for name in self.FIELDS for t in getattr(domains, name)]
        return [*ts, domains.margin, domains.branch]

    def add(self, domains: Domains) -> None:
        """Append ``domains`` (copied)."""
        n = len(domains)
        if n == 0:
            return
        need = self.size + n
        if need > self.capacity:
            grown = max(need, min(2 * self.capacity, self.rows))
            self.store = Domains(
                *(
                    [self._resized(t, grown) for t in getattr(self.store, name)]
                    for name in self.FIELDS
                ),
                self._resized(self.store.margin, grown),
                self._resized(self.store.branch, grown),
            )
        for mine, theirs in zip(self._tensors(self.store), self._tensors(domains)):
            mine[self.size : need] = theirs
        self.size = need

    def _resized(self, t: Tensor, rows: int) -> Tensor:
        out = t.new_empty((rows, *t.shape[1:]))
        out[: self.size] = t[: self.size]
        return out

    def remove(self, index: Tensor) -> Domains:
        """Take out the domains at ``index`` (distinct positions) and return them."""
        taken = self.store.take(index)
        n, k = self.size, int(index.numel())
        gone = torch.zeros(n, dtype=torch.bool)
        gone[index] = True
        holes = index[index < n - k]
        tail = torch.arange(n - k, n)
        movers = tail[~gone[tail]]
        if len(holes):
            for t in self._tensors(self.store):
                t[holes] = t[movers]
        self.size = n - k
        return taken

    def bytes_per_domain(self) -> int:
        return self.store.bytes_per_domain()
