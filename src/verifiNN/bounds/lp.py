"""The triangle LP relaxation (Ehlers 2017) on HiGHS, with sound dual bounds.

Ehlers 2017, "Formal Verification of Piece-Wise Linear Feed-Forward Neural
Networks". The network must be a chain of affine maps and elementwise
activations (MLPs, plain conv nets): every maximal run of affine nodes is
folded into one sparse matrix (a Dense layer directly, any other run by
evaluating it on the basis vectors, as nnenum does), with a variable for its
output ``z`` (bounded by the intermediate bounds given, by default CROWN's) and,
after an activation, a variable ``a``. The activation's constraints come from
the relaxation registry: the linear bounds of the op at each parameter value in
its ``lp_alphas`` (for the ReLU, slopes 0 and 1 with the upper chord: the
triangle). L1-ball regions are encoded exactly, L2 balls by their bounding box.

Soundness: HiGHS's optimum is only accurate to its tolerances, so the reported
bound is recomputed by weak duality. For row duals ``y`` (any ``y`` is dual
feasible once the box of every column is kept), the Lagrangian
``min_{x in col box, w in row box} c^T x - y^T (A x - w)`` equals
``sum_i min(y_i rl_i, y_i ru_i) + sum_j min(r_j cl_j, r_j cu_j)`` with
``r = c - A^T y``, and it is a valid lower bound of the LP (hence of ``C y`` on
the network), up to floating-point rounding of that explicit evaluation. Duals
whose required row bound is infinite are set to zero first. A solve that fails
or stops early gives ``-inf`` for that row (the caller keeps CROWN's bound).
Optionally (``LPOptions.tighten``) every unstable neuron's bounds are first
tightened by two LPs, layer by layer, with the same dual-bound rule.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

from verifiNN.bounds.graph import BoundGraph, interval_step
from verifiNN.bounds.relaxations import RELAXATIONS, LinearBounds
from verifiNN.bounds.types import Interval, LPOptions
from verifiNN.budget import Budget
from verifiNN.errors import UnsupportedModelError
from verifiNN.models.network import Node
from verifiNN.ops import Dense
from verifiNN.regions import BallBatch, RegionBatch
from verifiNN.solvers.highs import INF, HighsModel, LinearProgram, LPStatus, dual_bound

__all__ = ["Stage", "chain_stages", "lp_bound"]


@dataclass(frozen=True)
class Stage:
    """``z = weight @ a_prev + bias`` (bounds of node ``name``), then ``act`` (or none)."""

    weight: sp.csr_matrix
    bias: np.ndarray
    name: str
    act: Node | None


def _fold(graph: BoundGraph, run: list[Node], source: str) -> tuple[sp.csr_matrix, np.ndarray]:
    """The affine map of a run of single-input affine nodes, as a sparse matrix."""
    if len(run) == 1 and isinstance(run[0].op, Dense):
        op = run[0].op
        return sp.csr_matrix(op.weight.detach().cpu().double().numpy()), (
            op.bias.detach().cpu().double().numpy()
        )
    shape = graph.shapes[source]
    n = int(np.prod(shape))
    ref = next((p for node in run for p in node.op.parameters().values()), None)
    dtype = torch.float64
    device = ref.device if ref is not None else None
    with torch.no_grad():
        values = torch.cat([torch.zeros(1, n), torch.eye(n)]).to(dtype=dtype, device=device)
        values = values.reshape(n + 1, *shape)
        for node in run:
            values = node.op.to(dtype).forward(values)
        values = values.reshape(n + 1, -1).cpu().numpy()
    offset = values[0]
    return sp.csr_matrix((values[1:] - offset).T), offset


def chain_stages(graph: BoundGraph) -> list[Stage]:
    """Split a chain network into stages (affine run + activation).

    Raises:
        UnsupportedModelError: a branching graph or an op without an LP encoding.
    """
    stages: list[Stage] = []
    previous, source, run = graph.input_name, graph.input_name, []
    for node in graph.nodes:
        if node.inputs != (previous,):
            raise UnsupportedModelError(
                f"the LP needs a chain of layers; node {node.name!r} reads {node.inputs}"
            )
        record = RELAXATIONS.get(type(node.op))
        if node.op.affine:
            run.append(node)
        elif record is None or not record.elementwise or not record.lp_alphas:
            raise UnsupportedModelError(f"node {node.name!r} ({node.op.kind}) has no LP encoding")
        else:
            stages.append(_stage(graph, run, source, previous, node))
            run, source = [], node.name
        previous = node.name
    stages.append(_stage(graph, run, source, previous, None))
    return stages


def _stage(graph: BoundGraph, run: list[Node], source: str, name: str, act: Node | None) -> Stage:
    if run:
        weight, bias = _fold(graph, run, source)
    else:
        n = int(np.prod(graph.shapes[source]))
        weight, bias = sp.identity(n, format="csr"), np.zeros(n)
    return Stage(weight, bias, name, act)


@dataclass
class _Builder:
    """Assemble one region's LP (columns: input, [L1 slack], then z / a per stage)."""

    blocks: list[tuple[list[tuple[sp.spmatrix, int]], int]]
    row_lower: list[np.ndarray]
    row_upper: list[np.ndarray]
    col_lower: list[np.ndarray]
    col_upper: list[np.ndarray]
    num_cols: int = 0

    def add_cols(self, lower: np.ndarray, upper: np.ndarray) -> int:
        """Append columns with these bounds; returns the index of the first."""
        start = self.num_cols
        self.col_lower.append(lower)
        self.col_upper.append(upper)
        self.num_cols += lower.size
        return start

    def add_rows(self, parts: list[tuple[sp.spmatrix, int]], lower: object, upper: object) -> None:
        """Rows ``lower <= sum_k M_k x[start_k:] <= upper`` for ``parts = [(M_k, start_k)]``."""
        n = parts[0][0].shape[0]
        self.blocks.append((parts, n))
        self.row_lower.append(np.broadcast_to(lower, (n,)).astype(np.float64))
        self.row_upper.append(np.broadcast_to(upper, (n,)).astype(np.float64))

    def program(self) -> LinearProgram:
        """The assembled program (zero cost: callers set the objective)."""
        rows = []
        for parts, n in self.blocks:
            mats = [sp.coo_matrix(m) for m, _ in parts]
            r = np.concatenate([m.row for m in mats])
            c = np.concatenate([m.col + start for m, (_, start) in zip(mats, parts)])
            v = np.concatenate([m.data for m in mats])
            rows.append(sp.csr_matrix((v, (r, c)), shape=(n, self.num_cols)))
        A = sp.vstack(rows, format="csc") if rows else sp.csc_matrix((0, self.num_cols))
        return LinearProgram(
            np.zeros(self.num_cols),
            A,
            np.concatenate(self.row_lower) if self.row_lower else np.zeros(0),
            np.concatenate(self.row_upper) if self.row_upper else np.zeros(0),
            np.concatenate(self.col_lower),
            np.concatenate(self.col_upper),
        )


def _np(t: Tensor | None, n: int) -> np.ndarray:
    return np.zeros(n) if t is None else t.detach().reshape(-1).cpu().double().numpy()


def _activation_rows(builder: _Builder, act: Node, z: int, a: int, low: Tensor, high: Tensor):
    """Add the registry's LP encoding of ``act`` between columns ``z`` and ``a``."""
    record = RELAXATIONS[type(act.op)]
    n = low.numel()
    eye = sp.identity(n, format="csr")
    seen_lower: list[tuple[np.ndarray, np.ndarray]] = []
    seen_upper: list[tuple[np.ndarray, np.ndarray]] = []
    for al, au in record.lp_alphas:
        alpha = (torch.full_like(low, al), torch.full_like(low, au))
        lin: LinearBounds = record.relax(act.op, low, high, alpha)
        for slope, icpt, seen, lower in (
            (lin.lw, lin.lb, seen_lower, True),
            (lin.uw, lin.ub, seen_upper, False),
        ):
            w, b = _np(slope, n), _np(icpt, n)
            keep = np.ones(n, dtype=bool)
            for w0, b0 in seen:
                keep &= (w != w0) | (b != b0)
            seen.append((w, b))
            if not keep.any():
                continue
            pick = eye[keep]
            parts = [(pick, a), (pick @ sp.diags(-w), z)]
            bound = b[keep]
            builder.add_rows(parts, bound if lower else -INF, INF if lower else bound)


def _build(
    stages: list[Stage],
    bounds: Mapping[str, Interval],
    input_set: RegionBatch,
    region: int,
    depth: int,
) -> tuple[LinearProgram, list[int]]:
    """The LP of region ``region`` up to stage ``depth`` (its ``z`` only); z column starts."""
    builder = _Builder([], [], [], [], [])
    low, high = (t[region].cpu().double().numpy() for t in input_set.box())
    prev = builder.add_cols(low, high)
    if isinstance(input_set, BallBatch) and input_set.norm == "1":
        eps = float(input_set.eps[region])
        center = input_set.center[region].cpu().double().numpy()
        n = center.size
        t = builder.add_cols(np.zeros(n), np.full(n, eps))
        eye = sp.identity(n, format="csr")
        builder.add_rows([(eye, t), (-eye, prev)], -center, INF)
        builder.add_rows([(eye, t), (eye, prev)], center, INF)
        builder.add_rows([(sp.csr_matrix(np.ones((1, n))), t)], -INF, eps)
    z_starts = []
    for k, stage in enumerate(stages[: depth + 1]):
        zb = bounds[stage.name]
        z = builder.add_cols(*(_np(v[region], v[region].numel()) for v in (zb.lower, zb.upper)))
        z_starts.append(z)
        n = stage.bias.size
        builder.add_rows(
            [(sp.identity(n, format="csr"), z), (-stage.weight, prev)], stage.bias, stage.bias
        )
        if k == depth or stage.act is None:
            break
        ab = bounds[stage.act.name]
        a = builder.add_cols(_np(ab.lower[region], n), _np(ab.upper[region], n))
        _activation_rows(
            builder, stage.act, z, a, zb.lower[region : region + 1], zb.upper[region : region + 1]
        )
        prev = a
    return builder.program(), z_starts


def _minimise(
    model: HighsModel,
    lp: LinearProgram,
    cols: np.ndarray,
    coefs: np.ndarray,
    budget: Budget,
    stats: dict[str, float],
) -> float:
    """Sound lower bound of ``min coefs . x[cols]`` (``-inf`` when the solve fails
    or ``budget`` has run out)."""
    if budget.expired():
        return -INF
    stats["lp_solves"] += 1
    model.set_costs(np.arange(lp.num_cols), np.zeros(lp.num_cols))
    model.set_costs(cols, coefs)
    solution = model.solve(budget)
    if solution.status is not LPStatus.OPTIMAL or solution.row_duals is None:
        return -INF
    cost = np.zeros(lp.num_cols)
    cost[cols] = coefs
    return dual_bound(lp, cost, solution.row_duals)


def _tighten(
    graph: BoundGraph,
    stages: list[Stage],
    bounds: dict[str, Interval],
    input_set: RegionBatch,
    budget: Budget,
    threads: int,
    stats: dict[str, float],
) -> dict[str, Interval]:
    """Per-neuron LP bounds of every unstable pre-activation, layer by layer
    (until ``budget`` runs out; later neurons keep their given bounds)."""
    for k, stage in enumerate(stages[:-1]):
        zb = bounds[stage.name]
        record = RELAXATIONS[type(stage.act.op)]
        lower, upper = zb.lower.flatten(1).clone(), zb.upper.flatten(1).clone()
        for region in range(input_set.batch):
            mask = record.needs_bounds(stage.act.op, lower[region], upper[region])
            rows = mask.nonzero().squeeze(1).tolist()
            if not rows or budget.expired():
                continue
            lp, z_starts = _build(stages, bounds, input_set, region, k)
            model = HighsModel(lp, threads)
            for j in rows:
                col = np.array([z_starts[k] + j])
                lo = _minimise(model, lp, col, np.array([1.0]), budget, stats)
                hi = -_minimise(model, lp, col, np.array([-1.0]), budget, stats)
                lower[region, j] = max(float(lower[region, j]), lo)
                upper[region, j] = min(float(upper[region, j]), hi)
        bounds[stage.name] = Interval(lower.reshape(zb.shape), upper.reshape(zb.shape))
        bounds[stage.act.name] = interval_step(stage.act, bounds)
    return bounds


def lp_bound(
    graph: BoundGraph,
    input_set: RegionBatch,
    bounds: Mapping[str, Interval],
    C: Tensor,
    options: LPOptions | None = None,
    budget: Budget | None = None,
) -> tuple[Tensor, dict[str, Interval], dict[str, float]]:
    """Sound lower bounds of ``C y`` by the triangle LP.

    Args:
        graph: a chain network's bound graph.
        input_set: the regions (boxes, L1 balls exactly; L2 balls by their box).
        bounds: intermediate node bounds (e.g. CROWN's) used as variable bounds.
        C: ``(B or 1, m, n_out)`` rows.
        options: LP options.
        budget: time limit of the whole call (``None``: none); rows not
            solved in time get ``-inf``.

    Returns:
        ``(lower, bounds, statistics)``: ``(B, m)`` dual bounds (``-inf`` where a
        solve failed or did not start in time), the node bounds (tightened when
        ``options.tighten``), and ``lp_solves``: the LPs solved.
    """
    options = options or LPOptions()
    budget = budget or Budget.start(None)
    stats = {"lp_solves": 0.0}
    stages = chain_stages(graph)
    bounds = dict(bounds)
    if options.tighten:
        bounds = _tighten(graph, stages, bounds, input_set, budget, options.threads, stats)
    batch, m = input_set.batch, C.shape[1]
    rows = C.expand(batch, *C.shape[1:]).detach().cpu().double().numpy()
    out = np.full((batch, m), -INF)
    depth = len(stages) - 1
    for region in range(batch):
        if budget.expired():
            break
        lp, z_starts = _build(stages, bounds, input_set, region, depth)
        model = HighsModel(lp, options.threads)
        cols = z_starts[depth] + np.arange(rows.shape[-1])
        for i in range(m):
            out[region, i] = _minimise(model, lp, cols, rows[region, i], budget, stats)
    lower = torch.as_tensor(out, dtype=C.dtype, device=C.device)
    return lower, bounds, stats
