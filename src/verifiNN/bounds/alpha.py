"""alpha-CROWN: CROWN with relaxation slopes optimised by projected gradient.

Xu et al. 2021, "Fast and Complete: Enabling Complete Neural Network
Verification with Rapid and Massively Parallel Incomplete Verifiers". Every
free parameter of the relaxation registry (the lower slope of unstable ReLUs,
the tangent points of Sigmoid/Tanh, ...) becomes a tensor ``alpha`` in
``[0, 1]`` with a separate copy per region, per row of ``C`` and per node that
a backward pass starts from; Adam maximises the bound of ``C y``, and the
slopes are projected back to ``[0, 1]`` after each step.

With ``optimize_intermediate`` every intermediate bound is recomputed in each
iteration from its own slopes (as in the paper), intersected with the CROWN
bounds it started from, and the gradient flows through them; otherwise the
intermediate bounds stay CROWN's and only the final pass is optimised.

Any slopes give a sound bound, so the best bound seen per row is kept; the
first iteration uses CROWN's slopes, hence alpha-CROWN is never looser than
CROWN. The loop stops early once ``done(best - threshold)`` holds (e.g. every
row proved).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping

import torch
from torch import Tensor

from verifiNN.bounds.adam import ProjectedAdam
from verifiNN.bounds.crown import (
    backward_worthwhile,
    crown_linear_bound,
    needs_rows,
    row_bounds,
    uses_forms,
)
from verifiNN.bounds.graph import BoundGraph, RelaxFn
from verifiNN.bounds.relaxations import RELAXATIONS, input_bounds
from verifiNN.bounds.types import AlphaOptions, CrownOptions, Interval
from verifiNN.budget import Budget, time_left
from verifiNN.memory import allowance
from verifiNN.models.network import Node
from verifiNN.regions import BoxBatch, RegionBatch

__all__ = ["alpha_crown", "alpha_relax"]

Params = dict[str, list[Tensor | None]]


def _init_params(
    graph: BoundGraph,
    bounds: Mapping[str, Interval],
    start: str,
    rows: int,
    adaptive: bool,
) -> Params:
    """Fresh slopes, at CROWN's choice, for a pass from ``start`` with ``rows`` rows."""
    params: Params = {}
    for name in graph.ancestors[start]:
        node = graph.node(name)
        record = RELAXATIONS[type(node.op)]
        free = record.free(node.op)
        if not any(free):
            continue
        b = bounds[node.inputs[0]]
        defaults = record.default_alpha(node.op, b.lower, b.upper, adaptive)
        params[name] = [
            a.unsqueeze(1).expand(a.shape[0], rows, *a.shape[1:]).clone().requires_grad_()
            if flag and a is not None
            else None
            for a, flag in zip(defaults, free)
        ]
    return params


def alpha_relax(bounds: Mapping[str, Interval], params: Params) -> RelaxFn:
    """Relaxations of one backward pass: free nodes use ``params``, the rest CROWN's default."""
    cache: dict[str, object] = {}

    def relax(node: Node) -> object:
        found = cache.get(node.name)
        if found is None:
            record = RELAXATIONS[type(node.op)]
            alpha = params.get(node.name)
            if alpha is None:
                lower, upper = input_bounds(record, node, bounds)
                default = record.default_alpha(node.op, lower, upper, True)
                found = record.relax(node.op, lower, upper, default)
            else:
                b = bounds[node.inputs[0]]  # ops with free parameters have one input
                found = record.relax(
                    node.op, b.lower.unsqueeze(1), b.upper.unsqueeze(1), tuple(alpha)
                )
            cache[node.name] = found
        return found

    return relax


def _seconds_left(budget: Budget | None) -> float:
    """Seconds before the earlier of ``budget``'s and the enforced deadline."""
    return min(math.inf if budget is None else budget.remaining(), time_left())


def _starts(
    graph: BoundGraph,
    input_set: RegionBatch,
    bounds: Mapping[str, Interval],
    given: Mapping[str, Interval] | None,
    crown: CrownOptions,
) -> list[tuple[Node, Tensor]]:
    """Intermediate nodes whose bounds are re-optimised, with their neuron rows (not
    those CROWN left to forward forms, :func:`~verifiNN.bounds.crown.backward_worthwhile`)."""
    box = isinstance(input_set, BoxBatch)
    forms = uses_forms(graph, input_set, crown)
    starts = []
    for node in graph.nodes:
        if node.name not in graph.preactivations or (given and node.name in given):
            continue
        if box and graph.reads_input_only(node.name):
            continue
        if not any(
            any(RELAXATIONS[type(graph.node(a).op)].free(graph.node(a).op))
            for a in graph.ancestors[node.name]
        ):
            continue
        index = needs_rows(graph, node.name, bounds[node.name])
        if index is not None and backward_worthwhile(graph, node.name, index, forms, crown):
            starts.append((node, index))
    return starts


def _pass_bytes(graph: BoundGraph, start: str, batch: int, rows: int, itemsize: int) -> int:
    """Memory of one optimised pass from ``start``: per row and region, the slopes with
    their gradient and Adam moments, and the coefficients autograd keeps, at every node
    the pass crosses (an estimate: ``6`` values per crossed neuron)."""
    crossed = sum(int(torch.Size(graph.shapes[a]).numel()) for a in graph.ancestors[start])
    inputs = int(torch.Size(graph.shapes[graph.input_name]).numel())
    return batch * rows * (6 * crossed + inputs) * itemsize


def _affordable_starts(
    graph: BoundGraph,
    starts: list[tuple[Node, Tensor]],
    batch: int,
    rows: int,
    itemsize: int,
) -> list[tuple[Node, Tensor]] | None:
    """``starts`` when the whole optimisation fits the memory allowance; else no
    intermediate starts if the final pass alone fits; else ``None`` (no optimisation)."""
    limit = allowance()
    final = _pass_bytes(graph, graph.output_name, batch, rows, itemsize)
    total = final + sum(
        _pass_bytes(graph, node.name, batch, 2 * int(index.shape[1]), itemsize)
        for node, index in starts
    )
    if total <= limit:
        return starts
    return [] if final <= limit else None


def _scatter(interval: Interval, index: Tensor, low: Tensor, high: Tensor) -> Interval:
    """``interval`` with neurons ``index`` (``(B, K)``) tightened to ``[low, high]``."""
    lower = interval.lower.flatten(1)
    upper = interval.upper.flatten(1)
    lower = lower.scatter(1, index, torch.maximum(lower.gather(1, index), low))
    upper = upper.scatter(1, index, torch.minimum(upper.gather(1, index), high))
    return Interval(lower.reshape(interval.shape), upper.reshape(interval.shape))


def _objective(lower: Tensor, threshold: Tensor | None) -> Tensor:
    """Rows below their threshold count by their gap; rows without one by their bound."""
    if threshold is None:
        return lower
    finite = torch.isfinite(threshold)
    gap = (lower - torch.where(finite, threshold, torch.zeros_like(threshold))).clamp(max=0)
    return torch.where(finite, gap, lower)


def alpha_crown(
    graph: BoundGraph,
    input_set: RegionBatch,
    C: Tensor,
    bounds: Mapping[str, Interval],
    crown_lower: Tensor,
    options: AlphaOptions | None = None,
    given: Mapping[str, Interval] | None = None,
    threshold: Tensor | None = None,
    done: Callable[[Tensor], bool] | None = None,
    budget: Budget | None = None,
) -> tuple[Tensor, dict[str, Interval], dict[str, float]]:
    """Optimise the relaxation slopes for the lower bound of ``C y``.

    Args:
        graph: the bound graph.
        input_set: the regions.
        C: ``(B or 1, m, n_out)`` rows; each row gets its own slopes.
        bounds: CROWN's node bounds (the starting point).
        crown_lower: CROWN's ``(B, m)`` bound (the best bound so far).
        options: alpha-CROWN options.
        given: nodes whose bounds are fixed (never re-optimised).
        threshold: ``(B or 1, m)``: a row counts as proved once its bound
            exceeds it; proved rows stop pulling on the loss.
        done: early-stop test on the best ``(B, m)`` margin ``best - threshold``
            so far (default: every margin positive; never without a threshold).
        budget: no further iteration starts once it has run out (``None``:
            no limit); every iterate is a sound bound, the best is kept.

    Returns:
        ``(lower, bounds, statistics)``: the best ``(B, m)`` bound per row, the
        node bounds tightened by every iteration, and ``{'iterations': n}``.
    """
    options = options or AlphaOptions()
    if threshold is None:
        done = None
    elif done is None:

        def done(margin: Tensor) -> bool:
            return bool((margin > 0).all())

    best = crown_lower.detach().clone()
    best_bounds = dict(bounds)
    out_of_time = budget is not None and budget.expired()
    if (
        options.iterations <= 0
        or out_of_time
        or (options.early_stop and done and done(best - threshold))
    ):
        return best, best_bounds, {"iterations": 0}
    adaptive = options.crown.adaptive_relu
    starts = (
        _starts(graph, input_set, bounds, given, options.crown)
        if options.optimize_intermediate
        else []
    )
    affordable = _affordable_starts(
        graph, starts, input_set.batch, int(C.shape[1]), crown_lower.element_size()
    )
    if affordable is None:  # even the final pass's slopes do not fit: CROWN's bound stands
        return best, best_bounds, {"iterations": 0, "memory_skipped": 1.0}
    starts = affordable
    params = {
        node.name: _init_params(graph, bounds, node.name, 2 * int(index.shape[1]), adaptive)
        for node, index in starts
    }
    params[graph.output_name] = _init_params(
        graph, bounds, graph.output_name, int(C.shape[1]), adaptive
    )
    leaves = [a for p in params.values() for pair in p.values() for a in pair if a is not None]
    if not leaves:
        return best, best_bounds, {"iterations": 0}
    optimizer = ProjectedAdam(leaves, lr=options.lr, lr_decay=options.lr_decay)
    iterations, took = 0, 0.0
    for _ in range(options.iterations):
        if took > _seconds_left(budget):  # the next iteration would end past the deadline
            break
        began = time.perf_counter()
        iterations += 1
        current = dict(bounds)
        for node, index in starts:
            low, high = row_bounds(
                graph,
                node,
                index,
                alpha_relax(current, params[node.name]),
                input_set,
                patches=options.crown.patches,
            )
            current[node.name] = _scatter(current[node.name], index, low, high)
        relax = alpha_relax(current, params[graph.output_name])
        lower = crown_linear_bound(
            graph, input_set, relax, C, chunked=False, patches=options.crown.patches
        )
        best = torch.maximum(best, lower.detach())
        for node, _rows in starts:
            best_bounds[node.name] = best_bounds[node.name].intersect(current[node.name].detach())
        if options.early_stop and done is not None and done(best - threshold):
            break
        if budget is not None and budget.expired():
            break
        loss = -_objective(lower, threshold).sum()
        if not loss.requires_grad:  # no slope reaches the bound (e.g. a constant output)
            break
        optimizer.step(list(torch.autograd.grad(loss, leaves, allow_unused=True)))
        took = time.perf_counter() - began
    return best, best_bounds, {"iterations": float(iterations)}
