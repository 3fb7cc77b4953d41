"""Batched bounds of ReLU MLPs on many small input boxes, in plain matmuls (symbolic intervals).

For networks with few inputs (ACAS Xu: 5) the intermediate bounds are cheapest
as *forward* linear bounds: every neuron carries a lower and an upper linear
function of the input ``x`` with ``n_in + 1`` coefficients (symbolic
intervals, Wang et al. 2018, "Formal Security Analysis of Neural Networks
using Symbolic Intervals"; the linear relaxation of Neurify, Wang et al. 2018,
"Efficient Formal Safety Analysis of Neural Networks"). Each layer costs
``O(width^2 * (n_in + 1))`` per box instead of a backward pass per layer. The
concrete bounds are intersected with interval propagation (Gowal et al. 2018).

The property rows are then bounded by one backward CROWN pass (Zhang et al.
2018, "Efficient Neural Network Robustness Certification with General
Activation Functions") from the output to the input, with those intermediate
bounds. It returns the final linear lower bound ``A x + c`` of every row,
which drives branching (split where ``|A_j| (u_j - l_j)`` is largest) and the
counterexample candidate (the box corner minimising ``A x``).

The ReLU's linear relaxation is the registry's
(:func:`verifiNN.bounds.relaxations.relu_parts`), in its forward and backward
form. Everything is float64; the rounding of a few thousand float64 operations on
values of moderate size is far below the proof margin used by the search.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from verifiNN.bounds.relaxations import relu_parts
from verifiNN.errors import UnsupportedModelError
from verifiNN.models.network import Network

__all__ = ["LinearRowBounds", "MLPBounder", "mlp_bounder", "pack"]


@dataclass
class LinearRowBounds:
    """Lower bounds of the rows ``C y`` on a batch of boxes.

    Attributes:
        lower: ``(B, m)`` concrete lower bounds.
        A: ``(B, m, n_in)`` input coefficients of the linear lower bounds.
        c: ``(B, m)`` their constants: ``C y >= A x + c`` on the box.
        packed: the intermediate bounds, ``(B, 2, H)`` float32 (:func:`pack`).
    """

    lower: Tensor
    A: Tensor
    c: Tensor
    packed: Tensor | None = None


def _conc(M: Tensor, lo: Tensor, up: Tensor) -> Tensor:
    """Min over the boxes of linear functions stored as ``(B, n + 1, h)``."""
    n = lo.shape[1]
    W, c = M[:, :n], M[:, n]
    pos, neg = W.clamp(min=0), W.clamp(max=0)
    return (
        c + torch.bmm(lo.unsqueeze(1), pos).squeeze(1) + torch.bmm(up.unsqueeze(1), neg).squeeze(1)
    )


def _concretize(W: Tensor, c: Tensor, lo: Tensor, up: Tensor, lower: bool) -> Tensor:
    """Min (``lower``) or max of ``W x + c`` over the boxes; ``W`` is ``(B, k, n)``."""
    pos, neg = W.clamp(min=0), W.clamp(max=0)
    a, b = (lo, up) if lower else (up, lo)
    return c + torch.bmm(pos, a.unsqueeze(2)).squeeze(2) + torch.bmm(neg, b.unsqueeze(2)).squeeze(2)


class MLPBounder:
    """Forward linear intermediate bounds plus a backward CROWN pass for the rows.

    Args:
        weights: one ``(n_out, n_in)`` float64 matrix per layer.
        biases: one ``(n_out,)`` vector per layer.
        relu: ``relu[k]`` tells whether layer ``k``'s output goes through a ReLU
            (false: identity); every layer but the last.
        backward_from: first layer whose unstable neurons are tightened by a
            backward CROWN pass (layers 0 and 1 gain nothing from it: the
            forward bounds of the second layer equal CROWN's).
    """

    def __init__(
        self, weights: list[Tensor], biases: list[Tensor], relu: list[bool], backward_from: int = 2
    ) -> None:
        self.backward_from = backward_from
        self.weights = weights
        self.biases = biases
        self.relu = relu
        self.pos = [w.clamp(min=0) for w in weights]
        self.neg = [w.clamp(max=0) for w in weights]

    def intermediate(
        self, lo: Tensor, up: Tensor, parent: Tensor | None = None
    ) -> list[tuple[Tensor, Tensor]]:
        """Concrete bounds of every hidden pre-activation, ``[(l_k, u_k)]`` of ``(B, h_k)``.

        Every layer takes forward linear bounds intersected with interval
        propagation; from layer ``backward_from`` on, the neurons still
        unstable are tightened by a backward CROWN pass each (only those rows:
        the cost follows the number of unstable neurons, which shrinks as the
        boxes do). ``parent``: packed bounds (:func:`pack`) valid on boxes
        containing these ones (their parents in branch and bound), intersected in.
        """
        B, n = lo.shape
        offset = 0
        # Linear bounds as (B, n + 1, h): rows 0..n-1 coefficients, row n the constant.
        L = U = torch.eye(n + 1, n, dtype=lo.dtype).expand(B, n + 1, n)
        al, au = lo, up
        out: list[tuple[Tensor, Tensor]] = []
        for k, act in enumerate(self.relu):
            b, P, N = self.biases[k], self.pos[k], self.neg[k]
            zL = L @ P.T + U @ N.T
            zU = U @ P.T + L @ N.T
            zL[:, n] += b
            zU[:, n] += b
            lb = torch.maximum(_conc(zL, lo, up), al @ P.T + au @ N.T + b)
            ub = torch.minimum(-_conc(-zU, lo, up), au @ P.T + al @ N.T + b)
            if parent is not None:
                h = b.shape[0]
                lb = torch.maximum(lb, parent[:, 0, offset : offset + h].to(lb.dtype))
                ub = torch.minimum(ub, parent[:, 1, offset : offset + h].to(ub.dtype))
                offset += h
            if k >= self.backward_from and act:
                lb, ub = self._refine(k, out, lo, up, lb, ub)
            out.append((lb, ub))
            if act:
                L, U = self._relu_forward(lb, ub, zL, zU, n)
                al, au = lb.clamp(min=0), ub.clamp(min=0)
            else:
                L, U, al, au = zL, zU, lb, ub
        return out

    def _refine(self, k: int, bounds, lo: Tensor, up: Tensor, lb: Tensor, ub: Tensor):
        """Tighten the unstable neurons of layer ``k`` by backward CROWN."""
        unstable = (lb < 0) & (ub > 0)
        r = int(unstable.sum(dim=1).max())
        if r == 0:
            return lb, ub
        order = torch.sort(unstable.to(torch.int8), dim=1, descending=True, stable=True)
        idx = order.indices[:, :r]  # (B, r): each box's unstable neurons first
        valid = order.values[:, :r].bool()
        W, b = self.weights[k][idx], self.biases[k][idx]  # (B, r, h_in), (B, r)
        lam, const = self._backward(torch.cat([W, -W], 1), torch.cat([b, -b], 1), bounds, k - 1)
        low = _concretize(lam, const, lo, up, True)
        new_l = torch.where(valid, torch.maximum(lb.gather(1, idx), low[:, :r]), lb.gather(1, idx))
        new_u = torch.where(valid, torch.minimum(ub.gather(1, idx), -low[:, r:]), ub.gather(1, idx))
        return lb.scatter(1, idx, new_l), ub.scatter(1, idx, new_u)

    def _backward(self, lam: Tensor, const: Tensor, bounds, top: int) -> tuple[Tensor, Tensor]:
        """Backward CROWN from the output of the activation after layer ``top``."""
        for k in range(top, -1, -1):
            if self.relu[k]:
                lb, ub = bounds[k]
                lam, const = self._relu_backward(lam, const, lb, ub)
            const = const + lam @ self.biases[k]
            lam = lam @ self.weights[k]
        return lam, const

    @staticmethod
    def _relu_forward(lb, ub, zL, zU, n):
        """Linear bounds of ``relu(z)`` from those of ``z`` (the registry's ReLU relaxation,
        CROWN's adaptive lower slope)."""
        lo_slope, up_slope, up_shift = relu_parts(lb, ub, None)
        L = zL * lo_slope.unsqueeze(1)
        U = zU * up_slope.unsqueeze(1)
        U[:, n] += up_shift
        return L, U

    def rows(
        self, lo: Tensor, up: Tensor, C: Tensor, parent: Tensor | None = None
    ) -> LinearRowBounds:
        """Lower bounds of ``C y`` (``C`` is ``(m, n_out)``) on each box ``[lo, up]``.

        ``parent``: packed intermediate bounds valid on enclosing boxes; the
        result's ``packed`` holds this call's, for the boxes' children.
        """
        bounds = self.intermediate(lo, up, parent)
        rows = self.rows_from(lo, up, C, bounds)
        rows.packed = pack(bounds) if bounds else None
        return rows

    def rows_from(
        self, lo: Tensor, up: Tensor, C: Tensor, bounds: list[tuple[Tensor, Tensor]]
    ) -> LinearRowBounds:
        """Like :meth:`rows` with given pre-activation bounds ``[(l_k, u_k)]``."""
        B = lo.shape[0]
        last = len(self.weights) - 1
        lam = (C.to(lo.dtype) @ self.weights[last]).expand(B, C.shape[0], -1)
        const = (C.to(lo.dtype) @ self.biases[last]).expand(B, -1)
        lam, const = self._backward(lam, const, bounds, last - 1)
        lower = _concretize(lam, const, lo, up, True)
        return LinearRowBounds(lower, lam, const)

    @staticmethod
    def _relu_backward(lam: Tensor, const: Tensor, lb: Tensor, ub: Tensor) -> tuple[Tensor, Tensor]:
        """CROWN's step through a ReLU for a lower bound of ``lam . relu(z)``.

        Positive multipliers take the lower relaxation ``a z``, negative ones
        the upper ``s (z - lb)``: ``lam' = s lam + (a - s) max(lam, 0)``.
        """
        lo_slope, up_slope, up_shift = relu_parts(lb, ub, None)
        up_shift = up_shift.unsqueeze(2)
        pos = lam.clamp(min=0)
        const = const + torch.bmm(lam, up_shift).squeeze(2) - torch.bmm(pos, up_shift).squeeze(2)
        out = lam * up_slope.unsqueeze(1)
        out.addcmul_(pos, (lo_slope - up_slope).unsqueeze(1))
        return out, const


def pack(bounds: list[tuple[Tensor, Tensor]]) -> Tensor:
    """Intermediate bounds as one ``(B, 2, H)`` float32 tensor, rounded outwards.

    Half the memory of float64 for the boxes waiting in branch and bound;
    rounding down the lower and up the upper bounds keeps them sound.
    """
    lower = torch.cat([lb for lb, _ in bounds], dim=1)
    upper = torch.cat([ub for _, ub in bounds], dim=1)
    low32, up32 = lower.float(), upper.float()
    low32 = torch.where(
        low32.double() > lower, torch.nextafter(low32, torch.full_like(low32, -math.inf)), low32
    )
    up32 = torch.where(
        up32.double() < upper, torch.nextafter(up32, torch.full_like(up32, math.inf)), up32
    )
    return torch.stack([low32, up32], dim=1)


def mlp_bounder(network: Network) -> MLPBounder | None:
    """The :class:`MLPBounder` of ``network``, or ``None`` when it is not a ReLU MLP."""
    try:
        mlp = network.as_mlp()
    except (UnsupportedModelError, AttributeError, ValueError):
        return None
    weights = [torch.as_tensor(w, dtype=torch.float64) for w in mlp.weights]
    biases = [torch.as_tensor(b, dtype=torch.float64) for b in mlp.biases]
    relu = [a == "ReLU" for a in mlp.activations]
    if len(relu) != len(weights) - 1 or any(a not in ("ReLU", "Id") for a in mlp.activations):
        return None
    return MLPBounder(weights, biases, relu)
