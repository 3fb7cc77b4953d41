"""Verdicts from bounds: a specification is ``unsat`` when every unsafe disjunct is empty.

A case's unsafe region is a disjunction of conjunctions ``C y <= d``. A
conjunction is empty over the input region as soon as ONE of its rows is always
violated, i.e. the sound lower bound of ``C_i y - d_i`` is positive (by more
than :data:`~verifiNN.bounds.types.PROOF_TOLERANCE`, which absorbs rounding). The
property holds (``unsat``) when, for every case, every disjunct is empty;
otherwise bounds alone cannot decide (``unknown``: a counterexample search is
another method's job).

Cases whose regions have the same kind and whose disjuncts have the same row
counts are bounded in one batched call; alpha-CROWN stops early once every
disjunct of the batch is proved.
"""

from __future__ import annotations

import time
from collections import defaultdict

import numpy as np
import torch
from torch import Tensor

from verifiNN.bounds.api import bound_graph, prepare_rows, run_method
from verifiNN.bounds.graph import BoundGraph
from verifiNN.bounds.regions import as_input_set
from verifiNN.bounds.types import METHODS, AlphaOptions, CrownOptions, LPOptions, proof_threshold
from verifiNN.errors import InvalidInputError, SpecError
from verifiNN.models.network import Network
from verifiNN.results import Verdict, VerificationResult
from verifiNN.specs import Case, Specification

__all__ = ["case_margins", "verify"]


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
) -> np.ndarray:
    """Worst disjunct margin of each case (positive: the case is proved safe).

    A disjunct's margin is the largest lower bound of ``C_i y - d_i`` over its
    rows (``-inf`` for a disjunct without rows, which nothing can refute).

    Args:
        graph: the bound graph.
        cases: cases of one group (same region kind and disjunct row counts).
        method: the bound method.
        options: its options.
        dtype: computation dtype.

    Returns:
        ``(len(cases),)`` margins (``+inf`` for a case with no disjunct).
    """
    sizes = _group_key(cases[0])[2]
    if not sizes:
        return np.full(len(cases), np.inf)
    if min(sizes) == 0:
        return np.full(len(cases), -np.inf)
    network = graph.network
    input_set = as_input_set(
        [c.input_region for c in cases], network.input_size, dtype, graph.device
    )
    ref = input_set.reference
    C = np.stack([np.concatenate([h.C for h in c.unsafe]) for c in cases])
    d = np.stack([np.concatenate([h.d for h in c.unsafe]) for c in cases])
    rows = prepare_rows(C, network.output_size, len(cases), dtype, ref.device)
    threshold = proof_threshold(torch.as_tensor(d, dtype=dtype, device=ref.device))

    def done(margin: Tensor) -> bool:
        return bool((_disjunct_margins(margin, sizes) > 0).all())

    with torch.set_grad_enabled(method == "alpha-crown"):
        lower, _, _ = run_method(method, graph, input_set, rows, None, options, threshold, done)
    margins = _disjunct_margins(lower.detach() - threshold, sizes)
    return margins.min(dim=1).values.cpu().numpy()


def verify(
    network: Network,
    spec: Specification,
    method: str = "crown",
    *,
    options: CrownOptions | AlphaOptions | LPOptions | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> VerificationResult:
    """Prove a specification by bounds alone: ``unsat`` or ``unknown``.

    Args:
        network: the network.
        spec: the property (VNN-COMP convention: its constraints describe the
            unsafe outputs).
        method: ``'ibp'``, ``'crown'``, ``'alpha-crown'`` or ``'lp'``.
        options: the method's options.
        dtype: computation dtype.
        device: computation device.

    Returns:
        A :class:`~verifiNN.results.VerificationResult` with verdict ``unsat``
        when every disjunct of every case is refuted, else ``unknown``;
        ``statistics`` holds ``cases``, ``cases_proved``, ``worst_margin`` (the
        smallest case margin; positive iff proved) and ``seconds``.

    Raises:
        InvalidInputError: unknown method.
        SpecError: the property does not fit the network's sizes.
    """
    if method not in METHODS:
        raise InvalidInputError(f"unknown bound method {method!r}: expected one of {METHODS}")
    if not isinstance(spec, Specification):
        raise SpecError(f"expected a Specification, got {type(spec).__name__}")
    start = time.perf_counter()
    graph = bound_graph(network, dtype, device)
    spec.validate_for(graph.network)
    groups: dict[tuple, list[int]] = defaultdict(list)
    for i, case in enumerate(spec.cases):
        groups[_group_key(case)].append(i)
    margins = np.empty(len(spec.cases))
    for indices in groups.values():
        cases = [spec.cases[i] for i in indices]
        margins[indices] = case_margins(graph, cases, method, options, dtype)
    proved = margins > 0
    verdict = Verdict.UNSAT if bool(proved.all()) else Verdict.UNKNOWN
    statistics = {
        "cases": len(spec.cases),
        "cases_proved": int(proved.sum()),
        "worst_margin": float(margins.min()),
        "seconds": time.perf_counter() - start,
    }
    return VerificationResult.make(verdict, method=method, statistics=statistics)
