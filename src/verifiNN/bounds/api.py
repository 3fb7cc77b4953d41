"""One call shape for every bound method: :func:`compute_bounds`.

``compute_bounds(network, region, C, method)`` returns sound lower/upper bounds
of ``C y`` (``y`` the flattened network output) over each input region, and
the bounds of every node, whatever the method (jax_verify's single entry
point). Methods, loosest first:

* ``'ibp'``: interval bound propagation;
* ``'crown'``: CROWN/DeepPoly backward linear bounds (intermediate bounds by
  CROWN intersected with interval propagation);
* ``'alpha-crown'``: CROWN with optimised slopes (never looser than CROWN);
* ``'lp'``: the triangle LP relaxation on HiGHS with CROWN's intermediate
  bounds (chains of affine maps and elementwise activations, e.g. MLPs).

Each method's final bound is also intersected with the interval bound of the
output computed from the (tightened) node bounds, and ``'lp'`` keeps CROWN's
bound where it is tighter (a solver failure falls back to it): every one of
these is sound, so the tighter one is kept.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping

import numpy as np
import torch
from torch import Tensor

from verifiNN.bounds.alpha import alpha_crown
from verifiNN.bounds.crown import crown_bounds, crown_linear_bound
from verifiNN.bounds.graph import BoundGraph
from verifiNN.bounds.interval import interval_bounds, interval_linear_bound
from verifiNN.bounds.lp import lp_bound
from verifiNN.bounds.types import (
    METHODS,
    AlphaOptions,
    BoundsResult,
    CrownOptions,
    Interval,
    LPOptions,
)
from verifiNN.budget import Budget
from verifiNN.errors import InvalidInputError
from verifiNN.models.network import Network
from verifiNN.regions import RegionBatch, as_batch

__all__ = ["bound_graph", "compute_bounds", "prepare_rows", "run_method"]

Options = CrownOptions | AlphaOptions | LPOptions


def bound_graph(
    network: Network | BoundGraph,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> BoundGraph:
    """The :class:`BoundGraph` of ``network`` with parameters of ``dtype`` on ``device``."""
    graph = network if isinstance(network, BoundGraph) else None
    net = graph.network if graph is not None else network
    if not isinstance(net, Network):
        raise InvalidInputError(f"expected a verifiNN Network, got {type(network).__name__}")
    params = [p for node in net.nodes for p in node.op.parameters().values()]
    target = torch.device(device) if device is not None else None
    if params and (params[0].dtype != dtype or (target is not None and params[0].device != target)):
        net = net.to(dtype, device)
        graph = None
    return graph if graph is not None else BoundGraph.of(net)


def prepare_rows(
    C: object, n_out: int, batch: int, dtype: torch.dtype, device: torch.device
) -> Tensor:
    """``C`` as a ``(B or 1, m, n_out)`` tensor (identity when ``None``).

    Raises:
        InvalidInputError: on a shape that does not fit.
    """
    if C is None:
        return torch.eye(n_out, dtype=dtype, device=device).unsqueeze(0)
    if isinstance(C, Tensor):
        rows = C.detach().to(dtype=dtype, device=device)
    else:
        rows = torch.as_tensor(np.asarray(C, dtype=np.float64), dtype=dtype, device=device)
    if rows.dim() == 1:
        rows = rows.reshape(1, 1, -1)
    elif rows.dim() == 2:
        rows = rows.unsqueeze(0)
    if rows.dim() != 3 or rows.shape[-1] != n_out or rows.shape[0] not in (1, batch):
        raise InvalidInputError(
            f"C has shape {tuple(rows.shape)}: expected (m, {n_out}) or ({batch}, m, {n_out})"
        )
    if not torch.isfinite(rows).all():
        raise InvalidInputError("C contains NaN or inf")
    return rows


def _given(
    bounds: Mapping[str, Interval] | None, graph: BoundGraph, dtype, device
) -> dict[str, Interval] | None:
    if not bounds:
        return None
    unknown = [name for name in bounds if name not in graph.shapes]
    if unknown:
        raise InvalidInputError(f"bounds given for unknown nodes: {unknown}")
    return {
        name: Interval(
            b.lower.to(dtype=dtype, device=device), b.upper.to(dtype=dtype, device=device)
        )
        for name, b in bounds.items()
    }


def _threshold(threshold: object, rows: Tensor, m: int, bound_upper: bool) -> Tensor | None:
    if threshold is None:
        return None
    value = torch.as_tensor(threshold, dtype=rows.dtype, device=rows.device)
    value = value.reshape(-1, m) if value.dim() else value.expand(1, m)
    if bound_upper:  # upper rows have no target: never counted as proved
        value = torch.cat([value, torch.full_like(value, float("inf"))], dim=1)
    return value


def _crown_options(options: Options | None) -> CrownOptions:
    if isinstance(options, CrownOptions):
        return options
    return options.crown if options is not None else CrownOptions()


def _chunk_size(graph: BoundGraph, options: CrownOptions, rows: int) -> int:
    """Regions per chunk: ``chunk_regions``, fewer when ``rows`` coefficient rows are large."""
    widest = max(math.prod(shape) for shape in graph.shapes.values())
    return max(1, min(options.chunk_regions, options.chunk_elements // (rows * widest)))


def _rows_of(t: Tensor | None, index: slice) -> Tensor | None:
    return t if t is None or t.shape[0] == 1 else t[index]


def _select(bounds: Mapping[str, Interval] | None, index: slice) -> dict[str, Interval] | None:
    return {k: v.select(index) for k, v in bounds.items()} if bounds else None


Chunk = tuple[Tensor, dict[str, Interval], dict[str, float]]


def _chunked(batch: int, size: int, run: Callable[[slice], Chunk]) -> Chunk:
    """Run ``run`` on consecutive slices of the batch and concatenate the results."""
    parts = [run(slice(start, start + size)) for start in range(0, batch, size)]
    if len(parts) == 1:
        return parts[0]
    stats: dict[str, float] = {}
    for _, _, part in parts:
        for key, value in part.items():
            stats[key] = max(stats.get(key, value), value)
    merged = {
        name: Interval(
            torch.cat([p[1][name].lower for p in parts]),
            torch.cat([p[1][name].upper for p in parts]),
        )
        for name in parts[0][1]
    }
    return torch.cat([p[0] for p in parts]), merged, stats


def _crown_chunk(
    graph: BoundGraph,
    input_set: RegionBatch,
    rows: Tensor,
    given: dict[str, Interval] | None,
    options: CrownOptions,
) -> Chunk:
    bounds, relax = crown_bounds(graph, input_set, given, options)
    lower = crown_linear_bound(graph, input_set, relax, rows, patches=options.patches)
    if options.intersect_ibp:
        lower = torch.maximum(lower, interval_linear_bound(rows, bounds[graph.output_name]))
    return lower, bounds, {}


def run_method(
    method: str,
    graph: BoundGraph,
    input_set: RegionBatch,
    rows: Tensor,
    given: dict[str, Interval] | None,
    options: Options | None,
    threshold: Tensor | None,
    done: Callable[[Tensor], bool] | None = None,
    budget: Budget | None = None,
) -> Chunk:
    """Lower bounds of ``rows`` by ``method``, the batch split into chunks of regions.

    CROWN runs on chunks small enough for its intermediate passes; alpha-CROWN
    then runs on chunks sized for its own passes (larger when only the final
    pass is optimised); the LP runs region by region anyway.

    Args:
        method: one of :data:`METHODS`.
        graph: the bound graph.
        input_set: ``B`` regions.
        rows: ``(B or 1, M, n_out)`` rows.
        given: node bounds to keep.
        options: the method's options.
        threshold: ``(B or 1, M)`` targets (alpha-CROWN's early stop and loss).
        done: alpha-CROWN's early-stop test on ``(B, M)`` margins.
        budget: the time limit of alpha-CROWN's iterations and the LP's solves
            (IBP and CROWN are single passes); ``None``: no limit.

    Returns:
        ``(lower, node bounds, statistics)`` for the whole batch.
    """
    batch = input_set.batch
    if method == "ibp":
        bounds = interval_bounds(graph, input_set, given)
        return interval_linear_bound(rows, bounds[graph.output_name]), bounds, {}
    crown = _crown_options(options)
    widest_pre = max((math.prod(graph.shapes[n]) for n in graph.preactivations), default=1)
    lower, bounds, stats = _chunked(
        batch,
        _chunk_size(graph, crown, 2 * widest_pre),
        lambda i: _crown_chunk(
            graph, input_set.select(i), _rows_of(rows, i), _select(given, i), crown
        ),
    )
    if method == "alpha-crown":
        alpha = options if isinstance(options, AlphaOptions) else AlphaOptions()
        size = 2 * widest_pre if alpha.optimize_intermediate else rows.shape[1]
        crown_lower, crown_bounds_ = lower, bounds
        lower, bounds, stats = _chunked(
            batch,
            _chunk_size(graph, crown, size),
            lambda i: alpha_crown(
                graph,
                input_set.select(i),
                _rows_of(rows, i),
                _select(crown_bounds_, i),
                crown_lower[i],
                alpha,
                _select(given, i),
                _rows_of(threshold, i),
                done,
                budget,
            ),
        )
    elif method == "lp":
        lp_options = options if isinstance(options, LPOptions) else LPOptions()
        lp_lower, bounds, stats = lp_bound(graph, input_set, bounds, rows, lp_options, budget)
        lower = torch.maximum(lower, lp_lower)
    return lower, bounds, stats


def compute_bounds(
    network: Network | BoundGraph,
    region: object,
    C: object = None,
    method: str = "crown",
    *,
    bounds: Mapping[str, Interval] | None = None,
    bound_upper: bool = True,
    threshold: object = None,
    options: Options | None = None,
    budget: Budget | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> BoundsResult:
    """Sound bounds of ``C y`` over each input region, by one of four methods.

    Args:
        network: the network (or a prebuilt :class:`BoundGraph`).
        region: a :class:`~verifiNN.specs.Box` or :class:`~verifiNN.specs.LpBall`,
            a list of them (one batch), a ``(lower, upper)`` pair of ``(n,)`` or
            ``(B, n)`` arrays, or a :class:`~verifiNN.regions.BoxBatch` /
            :class:`~verifiNN.regions.BallBatch`.
        C: ``(m, n_out)`` or ``(B, m, n_out)`` rows; ``None`` bounds ``y`` itself.
        method: ``'ibp'``, ``'crown'``, ``'alpha-crown'`` or ``'lp'``.
        bounds: node name -> :class:`Interval` to keep (intersected with what
            the method computes; no backward pass is run for them).
        bound_upper: also bound ``C y`` from above (costs a second set of rows).
        threshold: ``(m,)``, ``(B, m)`` or a scalar: alpha-CROWN treats a row as
            proved once its lower bound exceeds it (early stop, loss focus).
        options: :class:`CrownOptions`, :class:`AlphaOptions` or :class:`LPOptions`.
        budget: time limit of alpha-CROWN and the LP, which return the bounds
            found so far when it runs out (sound, only looser); ``None``: none.
        dtype: computation dtype (float64 by default).
        device: computation device (e.g. ``'cuda'``); default: the network's.

    Returns:
        A :class:`BoundsResult`; its tensors have shape ``(B, m)``.

    Raises:
        InvalidInputError: unknown method, shapes that do not fit.
        UnsupportedModelError: an op without bound rules (or, for ``'lp'``, a
            graph that is not a chain of affine maps and elementwise activations).
    """
    if method not in METHODS:
        raise InvalidInputError(f"unknown bound method {method!r}: expected one of {METHODS}")
    start = time.perf_counter()
    graph = bound_graph(network, dtype, device)
    device = graph.device or device
    input_set = as_batch(region, graph.network.input_size, dtype, device)
    n_out = graph.network.output_size
    C_rows = prepare_rows(C, n_out, input_set.batch, dtype, input_set.reference.device)
    m = C_rows.shape[1]
    rows = torch.cat([C_rows, -C_rows], dim=1) if bound_upper else C_rows
    given = _given(bounds, graph, dtype, input_set.reference.device)
    target = _threshold(threshold, rows, m, bound_upper)
    with torch.set_grad_enabled(method == "alpha-crown"):
        lower, node_bounds, stats = run_method(
            method, graph, input_set, rows, given, options, target, budget=budget
        )
    lower = lower.detach()
    low = lower[:, :m]
    high = -lower[:, m:] if bound_upper else torch.full_like(low, float("inf"))
    node_bounds = {name: b.detach() for name, b in node_bounds.items()}
    if C is None and bound_upper:
        out = graph.output_name
        shape = node_bounds[out].shape
        node_bounds[out] = node_bounds[out].intersect(
            Interval(low.reshape(shape), high.reshape(shape))
        )
    stats = {**stats, "seconds": time.perf_counter() - start, "regions": float(input_set.batch)}
    return BoundsResult(low, high, node_bounds, method, stats)
