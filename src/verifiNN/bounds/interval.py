"""Interval bound propagation (IBP).

Every node's bounds follow from its inputs' bounds by the op's interval rule
(Gowal et al. 2018, "On the Effectiveness of Interval Bound Propagation for
Training Verifiably Robust Models"): ``W+ l + W- u`` for affine ops
(:func:`verifiNN.bounds.affine.split_interval`), the relaxation registry's
interval transfer for nonlinear ones.
"""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor

from verifiNN.bounds.graph import BoundGraph, interval_step
from verifiNN.bounds.types import Interval
from verifiNN.regions import BoxBatch, RegionBatch

__all__ = ["input_interval", "interval_bounds", "interval_linear_bound"]


def input_interval(
    graph: BoundGraph, input_set: RegionBatch, given: Mapping[str, Interval] | None = None
) -> Interval:
    """The input's box as ``(B, *input_shape)`` bounds (intersected with ``given``)."""
    lower, upper = input_set.box()
    shape = (lower.shape[0], *graph.shapes[graph.input_name])
    box = Interval(lower.reshape(shape), upper.reshape(shape))
    if given and graph.input_name in given:
        box = box.intersect(given[graph.input_name])
    return box


def interval_bounds(
    graph: BoundGraph, input_set: RegionBatch, given: Mapping[str, Interval] | None = None
) -> dict[str, Interval]:
    """Interval bounds of every node.

    Args:
        graph: the bound graph.
        input_set: the batch of input regions.
        given: bounds to intersect with (e.g. branch-and-bound splits).

    Returns:
        Node name -> :class:`Interval` of shape ``(B, *node_shape)``.
    """
    bounds = {graph.input_name: input_interval(graph, input_set, given)}
    for node in graph.nodes:
        interval = interval_step(node, bounds)
        if given and node.name in given:
            interval = interval.intersect(given[node.name])
        bounds[node.name] = interval
    return bounds


def interval_linear_bound(C: Tensor, output: Interval) -> Tensor:
    """Lower bound of ``C y`` over the output box: ``C+ l + C- u``.

    Args:
        C: ``(B or 1, m, n_out)``.
        output: the output node's bounds.

    Returns:
        ``(B, m)`` lower bounds.
    """
    box = BoxBatch(output.lower.flatten(1), output.upper.flatten(1))
    return box.concretize(C)  # a zero row entry ignores an infinite end (no 0 * inf)
