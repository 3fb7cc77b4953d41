"""Small types shared by the bound-propagation methods: intervals, options, results.

Options are frozen dataclasses with defaults that work; a method reads only its
own options object, so a call never depends on global state.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from torch import Tensor

from verifiNN.methods import BOUND_PROPAGATION

__all__ = [
    "METHODS",
    "PROOF_TOLERANCE",
    "AlphaOptions",
    "BoundsResult",
    "CrownOptions",
    "Interval",
    "LPOptions",
    "proof_threshold",
]

METHODS = BOUND_PROPAGATION
"""The bound methods of :func:`verifiNN.bounds.compute_bounds`, loosest first."""

PROOF_TOLERANCE = 1e-9
"""A bound proves ``C_i y > d_i`` only when it exceeds ``d_i`` by this much times
``1 + |d_i|``: the bound arithmetic is float64 without directed rounding, so a
bound that merely touches ``d_i`` may be a rounding error away from a point on
the boundary (which the non-strict VNN-LIB inequality counts as unsafe)."""


def proof_threshold(d):
    """``d + PROOF_TOLERANCE * (1 + |d|)`` for a tensor or array ``d``."""
    return d + PROOF_TOLERANCE * (1.0 + abs(d))


@dataclass(frozen=True)
class Interval:
    """Elementwise bounds ``lower <= v <= upper`` of one node, batched over regions.

    Attributes:
        lower: ``(B, *shape)`` lower bounds.
        upper: ``(B, *shape)`` upper bounds.
    """

    lower: Tensor
    upper: Tensor

    def detach(self) -> Interval:
        """The same bounds, cut from any autograd graph."""
        return Interval(self.lower.detach(), self.upper.detach())

    def intersect(self, other: Interval) -> Interval:
        """The elementwise tighter of two sound bounds of the same node."""
        return Interval(
            torch.maximum(self.lower, other.lower), torch.minimum(self.upper, other.upper)
        )

    def select(self, index: Tensor) -> Interval:
        """Bounds of the regions ``index`` (a batch subset, e.g. for branch and bound)."""
        return Interval(self.lower[index], self.upper[index])

    @property
    def shape(self) -> tuple[int, ...]:
        """``(B, *shape)`` of the bounds."""
        return tuple(self.lower.shape)


@dataclass(frozen=True)
class CrownOptions:
    """Options of CROWN (Zhang et al. 2018) and DeepPoly (Singh et al. 2019).

    Attributes:
        intersect_ibp: intersect every intermediate bound with interval
            propagation (never looser; costs one cheap forward pass).
        adaptive_relu: the adaptive lower slope of unstable ReLUs (1 when
            ``u > -l``, else 0); ``False`` keeps slope 0 (DeepPoly's choice
            is adaptive too).
        chunk_rows: at most this many neurons per backward pass when computing
            intermediate bounds (bounds memory on wide layers).
        chunk_regions: at most this many regions are bounded together; larger
            batches are split (small chunks keep the working set in cache).
            Also applies to alpha-CROWN.
        chunk_elements: and at most as many regions as keep the largest
            backward coefficient tensor (``2 x`` widest pre-activation ``x``
            widest node per region) under this many elements.
        forward_forms: forward linear bounds of every node when the input has
            at most :data:`~verifiNN.bounds.forward.FORWARD_INPUT_LIMIT`
            entries (:mod:`verifiNN.bounds.forward`); never looser.
        backward_work: with forward forms, a node's neurons get backward passes
            only when those passes cross at most this many coefficient entries
            per region (rows times node entries; 2^28 is about 10 s on a cGAN
            generator on one core); CROWN's passes stay where they are affordable.
        patches: backward passes through convolutions carry each row's
            receptive field only (:mod:`verifiNN.bounds.patches`); the bounds
            are the same, the memory and time far smaller on large maps.
    """

    intersect_ibp: bool = True
    adaptive_relu: bool = True
    chunk_rows: int = 4096
    chunk_regions: int = 64
    chunk_elements: int = 2**19
    forward_forms: bool = True
    backward_work: int = 2**28
    patches: bool = True


@dataclass(frozen=True)
class AlphaOptions:
    """Options of alpha-CROWN (Xu et al. 2021, "Fast and Complete").

    Attributes:
        iterations: projected Adam steps.
        lr: Adam step size on the slopes (which live in ``[0, 1]``).
        lr_decay: step size multiplied by this factor after every step.
        early_stop: stop once every row (or every disjunct, in ``verify``) is proved.
        optimize_intermediate: also optimise the slopes used for every
            intermediate bound (one set per intermediate neuron, as in the
            paper); ``False`` keeps CROWN's intermediate bounds and optimises
            only the slopes of the final bound (far cheaper, the usual choice
            inside branch and bound).
        crown: options of the CROWN pass that initialises the slopes.

    The time limit is the ``budget`` of the call
    (:func:`~verifiNN.bounds.compute_bounds`): when it runs out the best bounds
    so far are returned.
    """

    iterations: int = 20
    lr: float = 0.25
    lr_decay: float = 0.98
    early_stop: bool = True
    optimize_intermediate: bool = True
    crown: CrownOptions = field(default_factory=CrownOptions)


@dataclass(frozen=True)
class LPOptions:
    """Options of the triangle LP relaxation (Ehlers 2017).

    Attributes:
        tighten: before bounding ``C y``, tighten every unstable neuron's bounds
            by two LPs (min and max), layer by layer.
        threads: HiGHS threads.
        crown: options of the CROWN pass that gives the default intermediate bounds.

    The time limit is the ``budget`` of the call: each solve gets what is left,
    and a row whose solve stops early or never starts keeps its CROWN bound
    (the answer stays sound, only looser).
    """

    tighten: bool = False
    threads: int = 1
    crown: CrownOptions = field(default_factory=CrownOptions)


@dataclass(frozen=True)
class BoundsResult:
    """Sound bounds of ``C y`` over a batch of input regions, and of every node.

    Attributes:
        lower: ``(B, m)`` lower bounds of ``C y``.
        upper: ``(B, m)`` upper bounds of ``C y`` (``+inf`` when not computed).
        bounds: per-node :class:`Interval` (the input, every intermediate node,
            the output), ready to be passed back as ``bounds=`` ("given these
            intermediate bounds, compute the rest").
        method: the method that produced them.
        statistics: counts and timings (e.g. alpha-CROWN iterations run).
    """

    lower: Tensor
    upper: Tensor
    bounds: Mapping[str, Interval]
    method: str
    statistics: Mapping[str, float] = field(default_factory=dict)
