"""Input entries a VNN-LIB query leaves free: pinned when nothing asserted depends on them.

A query may bound only some input entries (``X[0,0,2,2]`` in ``[5, 6]``) and
leave the others free: they range over their whole type. verifiNN analyses
a network over a box, so :func:`boxed_cases` gives every case a finite box:

* a free entry that no asserted output depends on is *pinned* to its one
  bound (or 0): every value of it gives the same asserted outputs, so the
  query's answer, and any witness, are the same with the pinned value;
* a free entry the asserted outputs may depend on is refused with a
  :class:`~verifiNN.errors.SpecError` naming it. Giving it its type's whole
  range instead would not be sound in practice: the engines bound the network
  in float64, and over a box of +-3.4e38 (every finite float32) their own
  rounding errors would dwarf the proof margin; an infinite box breaks them.

Independence is decided by one forward pass of the model graph with the free
entries NaN and the others at their box centres: an output entry that reads
a NaN input is NaN when every op propagates NaN (IEEE arithmetic:
``0 * NaN = NaN``; NaN-propagating max, min and clamp). That holds for the ops
of :data:`NAN_FAITHFUL` only (``tests/test_onnx_gaps.py`` checks each one
against its Jacobian); a graph with any other op (``Sign``: ``sign(NaN) =
0``; comparisons, casts to integers, selections by data) has its free entries
refused.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from verifiNN.errors import SpecError
from verifiNN.models.network import Network
from verifiNN.ops import (
    Abs,
    Add,
    AvgPool2d,
    Broadcast,
    Clip,
    Concat,
    ConcatWithConstants,
    ConstMatMul,
    Conv2d,
    ConvTranspose2d,
    Cos,
    Dense,
    ElementwiseAffine,
    Erf,
    Exp,
    Flatten,
    Gather,
    Identity,
    LeakyReLU,
    Log,
    Max,
    MaxPool2d,
    Min,
    Mul,
    Pad,
    Pow,
    Reciprocal,
    ReduceSum,
    ReLU,
    Reshape,
    Sigmoid,
    Sin,
    Slice,
    Sqrt,
    Tanh,
    Transpose,
)
from verifiNN.specs import Box, Case, HalfSpaces

__all__ = ["NAN_FAITHFUL", "boxed_cases"]

NAN_FAITHFUL = (
    Dense, Conv2d, ConvTranspose2d, ConstMatMul, ElementwiseAffine, AvgPool2d, ReduceSum,
    MaxPool2d, Flatten, Reshape, Identity, Concat, ConcatWithConstants, Slice, Gather,
    Transpose, Broadcast, Pad, Add, Mul, ReLU, LeakyReLU, Sigmoid, Tanh, Exp, Log, Sqrt,
    Reciprocal, Pow, Sin, Cos, Erf, Abs, Clip, Max, Min,
)  # fmt: skip
"""IR ops whose forward pass is NaN in every output entry that depends on a NaN input
(``x ** 0 = 1`` for NaN too, and rightly: it depends on nothing)."""

RawCase = tuple[np.ndarray, np.ndarray, tuple[HalfSpaces, ...]]
"""``(lower, upper, unsafe)`` of one case; a free entry has an infinite bound."""


def boxed_cases(
    cases: Sequence[RawCase],
    graph: Network | None,
    entry_name: Callable[[int], str],
    path: str | None = None,
) -> list[Case]:
    """The cases with every input entry in a finite box (see the module docstring).

    Args:
        cases: the compiled cases.
        graph: the network the unsafe half-spaces read (the model as written);
            ``None``: free entries are refused.
        entry_name: how messages name the input entry of a flat index (``X[0,1]``).
        path: the query file, for messages.

    Raises:
        SpecError: free entries that the unsafe set may depend on, named.
    """
    boxed = []
    for lower, upper, unsafe in cases:
        free = ~np.isfinite(lower) | ~np.isfinite(upper)
        if free.any() and not _independent(graph, lower, upper, free, unsafe):
            raise SpecError(
                _free_message(lower, upper, np.flatnonzero(free), entry_name), path=path
            )
        pin = np.where(np.isfinite(lower), lower, np.where(np.isfinite(upper), upper, 0.0))
        boxed.append(Case(Box(np.where(free, pin, lower), np.where(free, pin, upper)), unsafe))
    return boxed


def _independent(
    graph: Network | None,
    lower: np.ndarray,
    upper: np.ndarray,
    free: np.ndarray,
    unsafe: Sequence[HalfSpaces],
) -> bool:
    """Whether no output column that ``unsafe`` reads depends on the ``free`` entries."""
    if graph is None or not all(isinstance(node.op, NAN_FAITHFUL) for node in graph.nodes):
        return False
    centre = (np.where(free, 0.0, lower) + np.where(free, 0.0, upper)) / 2
    y = np.asarray(graph.get_output(np.where(free, np.nan, centre)), np.float64).ravel()
    read = np.zeros(y.size, bool)
    for half_spaces in unsafe:
        read |= np.any(half_spaces.C != 0, axis=0)
    return not np.isnan(y[read]).any()


def _free_message(
    lower: np.ndarray, upper: np.ndarray, free: np.ndarray, entry_name: Callable[[int], str]
) -> str:
    named = []
    for index in free[:4]:
        missing = [w for w, b in (("lower", lower), ("upper", upper)) if not np.isfinite(b[index])]
        named.append(f"{entry_name(int(index))} (no {' or '.join(missing)} bound)")
    more = f" and {free.size - 4} more" if free.size > 4 else ""
    return (
        f"input entr{'ies' if free.size > 1 else 'y'} {', '.join(named)}{more} left free, and "
        "the asserted outputs may depend on them: bound each by its valid range (verifiNN "
        "analyses the network over a box)"
    )
