"""CROWN / DeepPoly: backward linear bound propagation over the graph.

Zhang et al. 2018, "Efficient Neural Network Robustness Certification with
General Activation Functions" (CROWN); Singh et al. 2019, "An Abstract Domain
for Certifying Neural Networks" (DeepPoly).

Intermediate bounds are computed node by node in topological order: every
pre-activation node (an affine node read by a nonlinear op) gets a backward
pass of its own, seeded with ``+e_i`` and ``-e_i`` for the neurons whose
relaxation depends on their bounds (e.g. unstable ReLUs by the current interval
bounds; per region, padded to the largest count in the batch), and the result
is intersected with interval propagation (never looser). An affine node that
reads the input box directly is bounded exactly by interval arithmetic and
skips the backward pass. Every other node gets interval bounds from its
(tightened) inputs.

For a network with few inputs, every node also gets forward linear bounds
(:mod:`~verifiNN.bounds.forward`, ``n + 1`` op evaluations per node), and
backward passes run only where they are cheap next to them: on a generator
with 5 inputs the intermediate bounds take a second instead of minutes.

Everything is batched over ``B`` regions; the ``m`` rows of a backward pass are
batched too. ``given`` bounds are kept ("given intermediate bounds, compute the
rest"), which is how branch and bound will inject split constraints.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping

import torch
from torch import Tensor

from verifiNN.bounds.forward import ForwardForms
from verifiNN.bounds.graph import BoundGraph, RelaxFn, Substitute, backward, interval_step
from verifiNN.bounds.interval import input_interval
from verifiNN.bounds.patches import Patches, concretize_patches, grown_window
from verifiNN.bounds.relaxations import RELAXATIONS, input_bounds
from verifiNN.bounds.types import CrownOptions, Interval
from verifiNN.budget import checkpoint, time_left
from verifiNN.memory import allowance, check_fits
from verifiNN.models.network import Node
from verifiNN.ops import Dense
from verifiNN.regions import BoxBatch, RegionBatch

logger = logging.getLogger(__name__)

__all__ = [
    "backward_worthwhile",
    "concretize",
    "crown_bounds",
    "crown_linear_bound",
    "default_relax",
    "needs_rows",
    "patch_entries",
    "patches_apply",
    "row_bounds",
    "rows_per_pass",
    "tighten",
    "uses_forms",
]


def default_relax(bounds: Mapping[str, Interval], adaptive: bool = True) -> RelaxFn:
    """CROWN's relaxation of each nonlinear node, computed once from ``bounds`` and cached.

    Args:
        bounds: node bounds; a node's input bounds must be final when it is first relaxed.
        adaptive: adaptive lower slope of unstable ReLUs (else slope 0).
    """
    cache: dict[str, object] = {}

    def relax(node: Node) -> object:
        found = cache.get(node.name)
        if found is None:
            record = RELAXATIONS[type(node.op)]
            lower, upper = input_bounds(record, node, bounds)
            alpha = record.default_alpha(node.op, lower, upper, adaptive)
            found = cache[node.name] = record.relax(node.op, lower, upper, alpha)
        return found

    return relax


def patches_apply(input_set: RegionBatch) -> bool:
    """Whether backward passes over ``input_set`` may use patches: boxes with finite ends
    (:func:`~verifiNN.bounds.patches.concretize_patches`)."""
    if not isinstance(input_set, BoxBatch):
        return False
    return bool(torch.isfinite(input_set.lower).all() & torch.isfinite(input_set.upper).all())


def concretize(
    input_set: RegionBatch,
    A: Tensor | Patches | None,
    bias: Tensor | None,
    rows: int,
    like: Tensor,
) -> Tensor:
    """``min_x A x + bias`` over each region, as ``(B, rows)`` (or one row per domain
    when ``A`` or ``bias`` has more, e.g. subdomains of one region)."""
    batch = input_set.batch
    if isinstance(A, Patches) and not patches_apply(input_set):
        A = A.to_dense()
    if A is None:
        value = like.new_zeros(batch, rows)
        value = value if bias is None else value + bias
    elif isinstance(A, Patches):
        lower, upper = input_set.box()
        value = concretize_patches(
            A, lower.reshape(-1, *A.shape), upper.reshape(-1, *A.shape), bias
        )
    else:
        value = input_set.concretize(A.flatten(2), bias)
    # Bounds given per domain (branch and bound) may outnumber the regions: keep them.
    return value.expand(batch, rows) if value.shape[0] == 1 and batch > 1 else value


def needs_rows(graph: BoundGraph, name: str, interval: Interval) -> Tensor | None:
    """Per-region flat indices of the neurons of ``name`` whose bounds matter to a consumer.

    Returns:
        ``(B, K)`` indices, ``K`` the largest count over the regions; a region
        with fewer such neurons repeats its first one (recomputing a bound is
        harmless). ``None`` when no region has any.
    """
    mask = None
    for user in graph.consumers[name]:
        if not user.op.affine:
            m = RELAXATIONS[type(user.op)].needs_bounds(user.op, interval.lower, interval.upper)
            mask = m if mask is None else mask | m
    if mask is None:
        return None
    mask = mask.flatten(1)
    counts = mask.sum(1)
    k = int(counts.max())
    if k == 0:
        return None
    order = torch.argsort((~mask).to(torch.int8), dim=1, stable=True)[:, :k]
    valid = torch.arange(k, device=mask.device) < counts.unsqueeze(1)
    return torch.where(valid, order, order[:, :1])


def rows_per_pass(graph: BoundGraph, batch: int, like: Tensor) -> int:
    """How many rows one backward pass over ``batch`` regions may carry within the memory
    allowance (:func:`verifiNN.memory.allowance`): a row holds a coefficient tensor the size
    of the node it passes (about three alive at once) and of the input.

    Raises:
        ResourceLimitError: when not even one row fits.
    """
    largest = max(int(torch.Size(s).numel()) for s in graph.shapes.values())
    per_row = batch * (3 * largest + int(torch.Size(graph.shapes[graph.input_name]).numel()))
    per_row *= like.element_size()
    check_fits(per_row, "one row of a backward bound pass")
    return max(1, allowance() // per_row)


def _patch_pass(
    graph: BoundGraph, name: str, input_set: RegionBatch, substitute: Substitute | None
) -> bool:
    """Whether passes from the neurons of ``name`` start in patches form."""
    return substitute is None and name in graph.patch_cone and patches_apply(input_set)


def patch_entries(graph: BoundGraph, name: str) -> int:
    """The most coefficients one row of a patches pass from a neuron of ``name`` holds at
    a node: channels times the window, which every convolution grows by its kernel
    (:func:`~verifiNN.bounds.patches.grown_window`)."""
    windows = {name: (1, 1)}
    most = 0
    for node in reversed(graph.nodes[: graph.index[name] + 1]):
        window = windows.pop(node.name, None)
        if window is None:
            continue
        most = max(most, int(graph.shapes[node.name][0]) * window[0] * window[1])
        window = grown_window(node.op, window)
        for source in node.inputs:
            old = windows.get(source, (0, 0))
            windows[source] = (max(old[0], window[0]), max(old[1], window[1]))
    window = windows.get(graph.input_name, (1, 1))
    return max(most, int(graph.shapes[graph.input_name][0]) * window[0] * window[1])


def patch_rows_per_pass(graph: BoundGraph, name: str, batch: int, like: Tensor) -> int:
    """How many rows one patches pass from ``name`` may carry within the memory
    allowance: a row holds a few windows of :func:`patch_entries` values and their
    gather indices."""
    per_row = batch * 8 * patch_entries(graph, name) * max(like.element_size(), 8)
    check_fits(per_row, "one row of a backward bound pass")
    return max(1, allowance() // per_row)


def row_bounds(
    graph: BoundGraph,
    node: Node,
    index: Tensor,
    relax: RelaxFn,
    input_set: RegionBatch,
    substitute: Substitute | None = None,
    patches: bool = True,
) -> tuple[Tensor, Tensor]:
    """Lower and upper bounds of some neurons of ``node`` by one backward pass.

    Args:
        graph: the bound graph.
        node: an affine node.
        index: ``(B, K)`` flat neuron indices per region.
        relax: relaxations of the nonlinear nodes before ``node``.
        input_set: the regions.
        substitute: where the passes end early (:func:`verifiNN.bounds.graph.backward`).
        patches: pass convolutions in patches form where it applies.

    Returns:
        Two ``(B, K)`` tensors.
    """
    batch, k = index.shape
    op = node.op
    patches = patches and _patch_pass(graph, node.name, input_set, substitute)
    if patches:
        signs = torch.cat([torch.ones(k), -torch.ones(k)])
        twice = torch.cat([index, index], dim=1)
        ref = input_set.reference
        seeds = {node.name: Patches.of_neurons(twice, graph.shapes[node.name], signs, ref)}
        bias = None
    elif isinstance(op, Dense):
        w = op.weight[index]
        b = op.bias[index]
        seeds = {node.inputs[0]: torch.cat([w, -w], dim=1)}
        bias = torch.cat([b, -b], dim=1)
    else:
        shape = graph.shapes[node.name]
        size = int(torch.Size(shape).numel())
        ref = input_set.reference
        one = torch.zeros(batch, k, size, dtype=ref.dtype, device=ref.device)
        one = one.scatter(2, index.unsqueeze(-1), 1.0)
        seeds = {node.name: torch.cat([one, -one], dim=1).reshape(batch, 2 * k, *shape)}
        bias = None
    A, c = backward(graph, seeds, relax, bias, substitute=substitute, patches=patches)
    value = concretize(input_set, A, c, 2 * k, input_set.reference)
    return value[:, :k], -value[:, k:]


def uses_forms(graph: BoundGraph, input_set: RegionBatch, options: CrownOptions) -> bool:
    """True when intermediate bounds get forward forms too (few inputs, and they fit)."""
    itemsize = input_set.reference.element_size()
    return options.forward_forms and ForwardForms.affordable(graph, input_set.batch, itemsize)


def backward_worthwhile(
    graph: BoundGraph, name: str, index: Tensor, forms: bool, options: CrownOptions
) -> bool:
    """Whether the neurons ``index`` (``(B, K)``) of ``name`` get backward passes: always
    without forward forms; with them only when the passes' work per region (``2 K`` rows
    times the entries of the nodes they cross) is at most ``options.backward_work``."""
    if not forms:
        return True
    return 2 * index.shape[1] * graph.entries_up_to[name] <= options.backward_work


WINDOW_LAYERS = 2
"""Nonlinear layers a windowed backward pass crosses before it ends at forward forms."""

PASS_SECONDS = 0.5
"""Target seconds of one backward pass of intermediate rows: the bound passes check the
deadline between nodes and passes, so no step between two checks runs much longer."""

PROBE_ROWS = 16
"""Rows of the first pass of a node, which measures the time one row takes."""


def _timed_chunks(index: Tensor, most: int) -> Iterator[Tensor]:
    """``index`` split into chunks of rows sized by the time the previous chunk took
    (:data:`PASS_SECONDS`, at most half the enforced time left) and at most ``most``.

    The caller passes each chunk before asking for the next one. When the rows left
    would take more than half the enforced time left, no more chunks come: those
    neurons keep their interval bounds (sound, looser), and the time goes to the
    rest of the query instead of a pass that cannot finish."""
    start, step, total = 0, min(most, PROBE_ROWS), int(index.shape[1])
    while start < total:
        chunk = index[:, start : start + step]
        began = time.perf_counter()
        yield chunk
        per_row = max((time.perf_counter() - began) / chunk.shape[1], 1e-9)
        start += chunk.shape[1]
        left = time_left()
        if start < total and per_row * (total - start) > 0.5 * left:
            logger.info("CROWN: %d of %d rows left to interval bounds (time)", total - start, total)
            return
        step = max(1, min(most, int(min(PASS_SECONDS, 0.5 * left) / per_row)))


def tighten(
    graph: BoundGraph,
    node: Node,
    interval: Interval,
    relax: RelaxFn,
    input_set: RegionBatch,
    options: CrownOptions,
    forms: ForwardForms | None = None,
) -> Interval:
    """Replace the interval bounds of ``node``'s relevant neurons by CROWN's (intersected):
    full backward passes where they are worthwhile, else (with forward forms) passes
    through the last :data:`WINDOW_LAYERS` layers only, else none."""
    index = needs_rows(graph, node.name, interval)
    if index is None:
        return interval
    substitute = None
    if not backward_worthwhile(graph, node.name, index, forms is not None, options):
        substitute, crossed = forms.window(node.name, WINDOW_LAYERS)  # type: ignore[union-attr]
        if 2 * index.shape[1] * crossed > options.backward_work:
            return interval
    lower = interval.lower.flatten(1).clone()
    upper = interval.upper.flatten(1).clone()
    patches = options.patches and _patch_pass(graph, node.name, input_set, substitute)
    if patches:
        fit = patch_rows_per_pass(graph, node.name, index.shape[0], lower)
    else:
        fit = rows_per_pass(graph, index.shape[0], lower)
    rows = min(options.chunk_rows, max(1, fit // 2))
    for chunk in _timed_chunks(index, rows):
        checkpoint()
        low, high = row_bounds(graph, node, chunk, relax, input_set, substitute, patches)
        if options.intersect_ibp:
            low = torch.maximum(low, lower.gather(1, chunk))
            high = torch.minimum(high, upper.gather(1, chunk))
        lower.scatter_(1, chunk, low)
        upper.scatter_(1, chunk, high)
    return Interval(lower.reshape(interval.shape), upper.reshape(interval.shape))


def crown_bounds(
    graph: BoundGraph,
    input_set: RegionBatch,
    given: Mapping[str, Interval] | None = None,
    options: CrownOptions | None = None,
) -> tuple[dict[str, Interval], RelaxFn]:
    """CROWN bounds of every node.

    Args:
        graph: the bound graph.
        input_set: the batch of regions.
        given: node bounds to keep (intersected with interval propagation; no
            backward pass is run for them).
        options: CROWN options.

    Returns:
        ``(bounds, relax)``: node name -> :class:`Interval`, and the cached
        CROWN relaxations built from those bounds (for the final bound).
    """
    options = options or CrownOptions()
    bounds = {graph.input_name: input_interval(graph, input_set, given)}
    relax = default_relax(bounds, options.adaptive_relu)
    box = isinstance(input_set, BoxBatch)
    forms = ForwardForms(graph, input_set) if uses_forms(graph, input_set, options) else None
    for node in graph.nodes:
        checkpoint()
        interval = interval_step(node, bounds)
        if forms is not None:
            extremes = forms.bound(node, relax)
            interval = interval if extremes is None else interval.intersect(extremes)
        if given and node.name in given:
            interval = interval.intersect(given[node.name])
        elif node.name in graph.preactivations and not (box and graph.reads_input_only(node.name)):
            interval = tighten(graph, node, interval, relax, input_set, options, forms)
        bounds[node.name] = interval
        if forms is not None:
            forms.keep(node, interval)
    return bounds, relax


def crown_linear_bound(
    graph: BoundGraph,
    input_set: RegionBatch,
    relax: RelaxFn,
    C: Tensor,
    chunked: bool = True,
    patches: bool = True,
) -> Tensor:
    """Lower bound of ``C y`` by backward passes from the output (as many rows of ``C``
    per pass as the memory allowance takes: :func:`rows_per_pass`).

    Args:
        graph: the bound graph.
        input_set: the regions.
        relax: relaxations of the nonlinear nodes (e.g. from :func:`crown_bounds`).
        C: ``(B or 1, m, n_out)`` rows.
        chunked: split the rows to fit memory; ``False`` for relaxations with per-row
            parameters (alpha-CROWN's), which must see every row at once.
        patches: pass convolutions in patches form where the windows stay small.

    Returns:
        ``(B, m)`` lower bounds.
    """
    shape = graph.shapes[graph.output_name]
    rows = rows_per_pass(graph, input_set.batch, C) if chunked else C.shape[1]
    parts = []
    for chunk in C.split(rows, dim=1):
        lam = chunk.reshape(chunk.shape[0], chunk.shape[1], *shape)
        A, c = backward(
            graph, {graph.output_name: lam}, relax, patches=patches and patches_apply(input_set)
        )
        parts.append(concretize(input_set, A, c, chunk.shape[1], chunk))
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
