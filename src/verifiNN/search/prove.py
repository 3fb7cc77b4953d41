"""Verdicts from bounds alone: a specification is ``unsat`` when every unsafe disjunct is empty.

A case's unsafe region is a disjunction of conjunctions ``C y <= d``. A
conjunction is empty over the input region as soon as ONE of its rows is always
violated, i.e. the sound lower bound of ``C_i y - d_i`` is positive (by more
than :data:`~verifiNN.bounds.types.PROOF_TOLERANCE`, which absorbs rounding). The
property holds (``unsat``) when, for every case, every disjunct is empty;
otherwise bounds alone cannot decide (``unknown``: a counterexample search is
another engine's job).

:func:`prove` takes every bound method: ``'ibp'``, ``'crown'``,
``'alpha-crown'`` and ``'lp'`` through :func:`verifiNN.bounds.compute_bounds`
(cases whose regions have the same kind and whose disjuncts have the same row
counts are bounded in one batched call; alpha-CROWN stops early once every
disjunct of the batch is proved), and ``'sdp'`` through
:func:`verifiNN.solvers.sdp.sdp_bound`: per case the intermediate-bound method
(CROWN by default) runs first and its bound of every row is kept; only
disjuncts it leaves open go to the SDP, row by row, until one of their rows is
proved. The first disjunct the SDP cannot refute ends the call.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from typing import Any

import numpy as np
import torch
from torch import Tensor

from verifiNN.bounds.api import bound_graph, compute_bounds, prepare_rows, run_method
from verifiNN.bounds.graph import BoundGraph
from verifiNN.bounds.types import AlphaOptions, CrownOptions, LPOptions, proof_threshold
from verifiNN.budget import Budget
from verifiNN.errors import InvalidInputError, SpecError
from verifiNN.methods import BOUND_METHODS
from verifiNN.models.network import Network
from verifiNN.regions import as_batch
from verifiNN.results import EngineResult, Verdict
from verifiNN.solvers.sdp import SDPOptions, empty_statistics, sdp_bound
from verifiNN.specs import Case, Specification

__all__ = ["PROVE_METHODS", "case_margins", "prove"]

PROVE_METHODS = BOUND_METHODS
"""The bound methods :func:`prove` takes, loosest (and cheapest) first."""


def _group_key(case: Case) -> tuple:
    region = case.input_region
    return (
        type(region).__name__,
        getattr(region, "norm", "inf"),
        tuple(h.num_constraints for h in case.unsafe),
    )


def _disjunct_margins(margins: Tensor, sizes: tuple[int, ...]) -> Tensor:
    """``(B, m)`` row margins -> ``(B, k)`` disjunct margins (best row of each)."""
    parts = torch.split(margins, list(sizes), dim=1)
    return torch.stack([p.max(dim=1).values for p in parts], dim=1)


def case_margins(
    graph: BoundGraph,
    cases: list[Case],
    method: str,
    options: CrownOptions | AlphaOptions | LPOptions | None,
    dtype: torch.dtype,
    budget: Budget | None = None,
) -> np.ndarray:
    """Worst disjunct margin of each case (positive: the case is proved safe).

    A disjunct's margin is the largest lower bound of ``C_i y - d_i`` over its
    rows (``-inf`` for a disjunct without rows, which nothing can refute).

    Args:
        graph: the bound graph.
        cases: cases of one group (same region kind and disjunct row counts).
        method: a :func:`~verifiNN.bounds.compute_bounds` method.
        options: its options.
        dtype: computation dtype.
        budget: the time limit of alpha-CROWN and the LP.

    Returns:
        ``(len(cases),)`` margins (``+inf`` for a case with no disjunct).
    """
    sizes = _group_key(cases[0])[2]
    if not sizes:
        return np.full(len(cases), np.inf)
    if min(sizes) == 0:
        return np.full(len(cases), -np.inf)
    network = graph.network
    input_set = as_batch([c.input_region for c in cases], network.input_size, dtype, graph.device)
    ref = input_set.reference
    C = np.stack([np.concatenate([h.C for h in c.unsafe]) for c in cases])
    d = np.stack([np.concatenate([h.d for h in c.unsafe]) for c in cases])
    rows = prepare_rows(C, network.output_size, len(cases), dtype, ref.device)
    threshold = proof_threshold(torch.as_tensor(d, dtype=dtype, device=ref.device))

    def done(margin: Tensor) -> bool:
        return bool((_disjunct_margins(margin, sizes) > 0).all())

    with torch.set_grad_enabled(method == "alpha-crown"):
        lower, _, _ = run_method(
            method, graph, input_set, rows, None, options, threshold, done, budget
        )
    margins = _disjunct_margins(lower.detach() - threshold, sizes)
    return margins.min(dim=1).values.cpu().numpy()


def _sdp_case_margin(
    graph: BoundGraph, case: Case, options: SDPOptions, stats: dict, budget: Budget
) -> float:
    """Worst disjunct margin of one case by the SDP (positive: proved); stops at the
    first open disjunct. Rows not solved within ``budget`` keep their first bound."""
    network = graph.network
    if not case.unsafe:
        return math.inf
    if any(h.num_constraints == 0 for h in case.unsafe):
        return -math.inf
    C = np.concatenate([h.C for h in case.unsafe])
    d = np.concatenate([h.d for h in case.unsafe])
    sizes = [h.num_constraints for h in case.unsafe]
    crown = options.crown if options.intermediate == "crown" else None
    first = compute_bounds(
        graph, case.input_region, C, options.intermediate, bound_upper=False, options=crown
    )
    input_set = as_batch(case.input_region, network.input_size, torch.float64, graph.device)
    rows = prepare_rows(C, network.output_size, 1, torch.float64, input_set.reference.device)
    threshold = proof_threshold(d)
    lower = first.lower[0].cpu().numpy().astype(np.float64).copy()
    worst, start = math.inf, 0
    for size in sizes:
        part = slice(start, start + size)
        start += size
        if (lower[part] > threshold[part]).any():
            worst = min(worst, float((lower[part] - threshold[part]).max()))
            continue
        best = -math.inf
        for i in range(part.start, part.stop):
            skip = torch.ones(1, C.shape[0], dtype=torch.bool)
            skip[0, i] = False
            sdp, solved = sdp_bound(graph, input_set, first.bounds, rows, options, skip, budget)
            for key, value in solved.items():
                stats[key] = max(stats[key], value) if key == "max_block" else stats[key] + value
            lower[i] = max(lower[i], float(sdp[0, i]))
            best = max(best, lower[i] - threshold[i])
            if best > 0:
                break
        worst = min(worst, best)
        if best <= 0:
            break
    return worst


def _margins(
    graph: BoundGraph,
    spec: Specification,
    method: str,
    options: Any,
    budget: Budget,
    dtype: torch.dtype,
    stats: dict[str, Any],
) -> np.ndarray:
    """Each case's worst disjunct margin; the SDP stops at the first unproved case
    (the cases after it are missing)."""
    if method == "sdp":
        options = options or SDPOptions()
        stats.update(empty_statistics())
        margins = []
        for case in spec.cases:
            margins.append(_sdp_case_margin(graph, case, options, stats, budget))
            if margins[-1] <= 0:
                break
        return np.array(margins)
    groups: dict[tuple, list[int]] = defaultdict(list)
    for i, case in enumerate(spec.cases):
        groups[_group_key(case)].append(i)
    margins = np.empty(len(spec.cases))
    for indices in groups.values():
        cases = [spec.cases[i] for i in indices]
        margins[indices] = case_margins(graph, cases, method, options, dtype, budget)
    return margins


def prove(
    network: Network,
    spec: Specification,
    method: str = "crown",
    *,
    options: CrownOptions | AlphaOptions | LPOptions | SDPOptions | None = None,
    budget: Budget | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> EngineResult:
    """Prove a specification by bounds alone: ``unsat`` or ``unknown``.

    Args:
        network: the network (``'lp'`` and ``'sdp'``: a chain of affine maps
            and elementwise activations, ReLUs for the SDP).
        spec: the property (VNN-COMP convention: its constraints describe the
            unsafe outputs).
        method: one of :data:`PROVE_METHODS`.
        options: the method's options (:class:`~verifiNN.solvers.sdp.SDPOptions`
            for ``'sdp'``).
        budget: the time limit (``None``: none): alpha-CROWN stops iterating,
            the LP and the SDP start no solve once it has run out (the SDP
            not even one whose set-up is estimated to overrun it). The answer
            is ``timeout`` when that kept a proof from being completed.
        dtype: computation dtype (the SDP always works in float64).
        device: computation device.

    Returns:
        An :class:`~verifiNN.results.EngineResult` (no counterexample);
        ``statistics`` holds ``cases``, ``cases_proved``, ``worst_margin``
        (the smallest case margin; positive iff proved), ``seconds``, and for
        the SDP ``sdp_solves``, ``sdp_seconds``, ``max_block`` and
        ``skipped_for_time``.

    Raises:
        InvalidInputError: unknown method.
        SpecError: the property does not fit the network's sizes.
        UnsupportedModelError: a network the method cannot bound.
    """
    if method not in PROVE_METHODS:
        raise InvalidInputError(f"unknown bound method {method!r}: expected one of {PROVE_METHODS}")
    if not isinstance(spec, Specification):
        raise SpecError(f"expected a Specification, got {type(spec).__name__}")
    start = time.perf_counter()
    budget = budget or Budget.start(None)
    graph = bound_graph(network, torch.float64 if method == "sdp" else dtype, device)
    spec.validate_for(graph.network)
    stats: dict[str, Any] = {}
    margins = _margins(graph, spec, method, options, budget, dtype, stats)
    proved = margins > 0
    complete = len(margins) == len(spec.cases)
    verdict = Verdict.UNSAT if complete and bool(proved.all()) else Verdict.UNKNOWN
    if verdict is Verdict.UNKNOWN and stats.get("skipped_for_time"):
        verdict = Verdict.TIMEOUT
    stats = {
        "cases": len(spec.cases),
        "cases_proved": int(proved.sum()),
        "worst_margin": float(margins.min(initial=math.inf)),
        **stats,
        "seconds": time.perf_counter() - start,
    }
    return EngineResult(verdict, None, stats)
