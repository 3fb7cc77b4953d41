"""Sound lower bounds of ``C y`` by the SDP relaxation, with the call shape of the LP's.

:func:`sdp_bound` takes the intermediate bounds another method computed (by
default CROWN's, as the LP does; alpha-CROWN's or LP-tightened ones may be
given), builds the relaxation of :mod:`verifiNN.solvers.sdp.formulation` for every
region and row, solves it (:mod:`verifiNN.solvers.sdp.solve`) and turns the solver's
multipliers into a rigorous bound (:mod:`verifiNN.solvers.sdp.dual`). Rows whose
bound is already known to be high enough (``skip``) are not solved.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from verifiNN.bounds.graph import BoundGraph
from verifiNN.bounds.lp import chain_stages
from verifiNN.bounds.types import CrownOptions, Interval
from verifiNN.budget import Budget
from verifiNN.errors import InvalidInputError
from verifiNN.regions import BallBatch, RegionBatch
from verifiNN.solvers.sdp.dual import sound_bound
from verifiNN.solvers.sdp.formulation import FORMULATIONS, SDPData, build_sdp, reduce_layers
from verifiNN.solvers.sdp.solve import SOLVERS, setup_seconds, solve_sdp

__all__ = ["SDPOptions", "region_sdp", "sdp_bound"]


@dataclass(frozen=True)
class SDPOptions:
    """Options of the SDP relaxation.

    Attributes:
        formulation: ``'chordal'`` (one PSD block per pair of adjacent layers)
            or ``'single'`` (one block for the whole network); same optimum.
        solver: ``'auto'``, ``'clarabel'``, ``'scs'`` or ``'mosek'``.
        accuracy: the solver's tolerances.
        intermediate: the method of the intermediate bounds: ``'crown'`` or
            ``'alpha-crown'`` (ignored where bounds are given).
        crown: options of the CROWN pass.
    """

    formulation: str = "chordal"
    solver: str = "auto"
    accuracy: float = 1e-8
    intermediate: str = "crown"
    crown: CrownOptions = field(default_factory=CrownOptions)

    def __post_init__(self) -> None:
        if self.formulation not in FORMULATIONS:
            raise InvalidInputError(
                f"unknown formulation {self.formulation!r}: expected one of {FORMULATIONS}"
            )
        if self.solver not in SOLVERS:
            raise InvalidInputError(f"unknown solver {self.solver!r}: expected one of {SOLVERS}")
        if self.intermediate not in ("crown", "alpha-crown"):
            raise InvalidInputError("intermediate must be 'crown' or 'alpha-crown'")


def _flat(t: Tensor, region: int) -> np.ndarray:
    return t[region].detach().reshape(-1).cpu().double().numpy()


def region_sdp(
    graph: BoundGraph,
    input_set: RegionBatch,
    bounds: Mapping[str, Interval],
    region: int,
    formulation: str = "chordal",
):
    """``(build(c) -> SDPData)`` for region ``region`` of the batch.

    The layers are reduced once; each objective row builds its own program.
    """
    stages = chain_stages(graph)
    low, high = (t[region].detach().cpu().double().numpy() for t in input_set.box())
    flat = {}
    for stage in stages:
        for name in (stage.name, None if stage.act is None else stage.act.name):
            if name is not None:
                flat[name] = (_flat(bounds[name].lower, region), _flat(bounds[name].upper, region))
    layers, cuts, output = reduce_layers(stages, (low, high), flat)
    ball = None
    if isinstance(input_set, BallBatch) and input_set.norm == "2":
        ball = (_flat(input_set.center, region), float(input_set.eps[region]))

    def build(c: np.ndarray) -> SDPData:
        return build_sdp(layers, cuts, output, c, formulation, ball)

    return build


def empty_statistics() -> dict[str, float]:
    """The counters of :func:`sdp_bound`, at zero."""
    return dict.fromkeys(("sdp_solves", "sdp_seconds", "max_block", "skipped_for_time"), 0.0)


def sdp_bound(
    graph: BoundGraph,
    input_set: RegionBatch,
    bounds: Mapping[str, Interval],
    C: Tensor,
    options: SDPOptions | None = None,
    skip: Tensor | None = None,
    budget: Budget | None = None,
) -> tuple[Tensor, dict[str, float]]:
    """Sound lower bounds of ``C y`` by the SDP relaxation.

    Args:
        graph: a chain network of affine maps and ReLUs (MLPs, conv nets).
        input_set: boxes or L2 balls (exact); L1 balls by their bounding box.
        bounds: node bounds of every pre-activation and activation.
        C: ``(B or 1, m, n_out)`` rows.
        options: :class:`SDPOptions`.
        skip: optional ``(B, m)`` mask of rows not to solve (``-inf`` returned).
        budget: the time limit (``None``: none): no solve starts once it has
            run out (rows left get ``-inf``), nor one whose set-up alone is
            estimated to overrun it (:func:`~verifiNN.solvers.sdp.solve.setup_seconds`);
            each solve gets what is left.

    Returns:
        ``(lower, statistics)``: ``(B, m)`` bounds (``-inf`` where a solve
        failed or was skipped) and ``sdp_solves``, ``sdp_seconds``,
        ``max_block`` (largest PSD block order), ``skipped_for_time``
        (regions or rows left unsolved for lack of time).
    """
    options = options or SDPOptions()
    batch, m = input_set.batch, C.shape[1]
    rows = C.expand(batch, *C.shape[1:]).detach().cpu().double().numpy()
    out = np.full((batch, m), -np.inf)
    stats = empty_statistics()
    start = time.perf_counter()
    for region in range(batch):
        todo = [i for i in range(m) if skip is None or not bool(skip[region, i])]
        if not todo:
            continue
        if budget is not None and budget.expired():
            stats["skipped_for_time"] += 1
            continue
        build = region_sdp(graph, input_set, bounds, region, options.formulation)
        for i in todo:
            data = build(rows[region, i])
            stats["max_block"] = max(stats["max_block"], float(max(data.sizes)))
            if budget is not None and budget.remaining() <= setup_seconds(data):
                stats["skipped_for_time"] += 1  # its set-up alone would overrun
                break
            result = solve_sdp(data, options.solver, budget, options.accuracy)
            stats["sdp_solves"] += 1
            if result.y is not None:
                out[region, i] = sound_bound(data, result.y)
    stats["sdp_seconds"] = time.perf_counter() - start
    return torch.as_tensor(out, dtype=C.dtype, device=C.device), stats
