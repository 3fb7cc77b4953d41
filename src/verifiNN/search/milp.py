"""Exact verification of ReLU MLPs by mixed-integer linear programming.

The MILP is the big-M encoding of Tjeng, Xiao and Tedrake 2019
(:mod:`verifiNN.solvers.milp`). Each disjunct ``C y <= d`` of a case is
decided by minimising ``t`` subject to ``C_i y - d_i <= t`` (so ``t`` is the
disjunct's margin ``max_i (C_i y - d_i)``):

* HiGHS stops as soon as an incumbent with ``t <= 0`` appears; its ``x`` is
  re-checked by a plain float64 forward pass against the specification and, if
  that fails (big-M and tolerance fuzz), polished by a short float64 PGD from
  ``x`` (:func:`verifiNN.search.attack.attack_domains`). Only a confirmed input
  is reported as ``sat``; otherwise the answer is ``unknown``. Over an L2 ball
  (relaxed to its box in the encoding), MILP points outside the ball are cut
  off by tangent planes (outer approximation, a bounded number of rounds).
* The solver's cutoff (``objective_bound``) is the safety margin
  ``tau = margin * scale`` with ``scale = max(1, max_i |bounds of C_i y - d_i|)``
  (the bounded range of the rows over the region) and ``margin = 1e-6`` by
  default. A disjunct counts as empty only when HiGHS finishes with no
  incumbent at or below ``tau`` (it showed that ``t > tau``, up to its own
  tolerances) or reports a dual bound above ``tau``; incumbents in
  ``(0, tau]`` (ties within the solver's accuracy) give ``unknown``.
  Why a margin and not a certificate: HiGHS's feasibility and integrality
  tolerances (``1e-7``, ``1e-6``) only *enlarge* the set it searches (a
  near-feasible point or a fractional binary is accepted), which errs on the
  safe side for a proof of emptiness; the unsafe direction is a node pruned
  on an LP bound that is optimistic by up to the dual feasibility tolerance
  (``1e-7``, relative to the scaled objective). ``tau`` is ten times that,
  relative to the rows' range. A rigorous certificate for a MILP would need
  every pruned node's dual solution, which HiGHS does not expose.
* A disjunct whose bound already shows ``max_i (lower_i - d_i) > 0`` is
  skipped without a MILP.

``unsat`` requires every disjunct of every case to be empty. Disjuncts are
tried weakest bound first (the likeliest to hold a counterexample). Callers
that already hold intermediate bounds (branch and bound) pass them as
``hidden_bounds``. The budget is handed to HiGHS as its time limit; the bound
computation and HiGHS's model setup are not interruptible (HiGHS's MIP
presolve, which ignores the limit, is switched off above
:data:`~verifiNN.solvers.milp.PRESOLVE_MAX_BINARIES` binaries), so a call can
overrun by a fraction of a second on large networks.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from verifiNN.bounds.types import proof_threshold
from verifiNN.budget import Budget
from verifiNN.errors import InvalidInputError, SpecError
from verifiNN.models.network import MLP, Network
from verifiNN.results import EngineResult, Outcome, Verdict
from verifiNN.search.attack import attack_domains
from verifiNN.solvers.highs import INF, HighsModel, LPStatus, MipSolution
from verifiNN.solvers.milp import (
    MilpEncoding,
    as_float64,
    auto_layer_bounds,
    encoder_for,
    milp_model,
    mlp_layers,
    region_point,
    with_margin_objective,
)
from verifiNN.specs import Box, Case, HalfSpaces, LpBall, Specification

__all__ = ["DEFAULT_MARGIN", "MAX_L2_CUTS", "milp_verify"]

logger = logging.getLogger(__name__)

#: Default relative safety margin of a MILP proof (see the module docstring).
DEFAULT_MARGIN = 1e-6

#: Tangent cuts added per disjunct when MILP points fall outside an L2 ball.
MAX_L2_CUTS = 20


@dataclass
class _Query:
    """Per-call state of :func:`milp_verify`."""

    network: Network
    mlp: MLP
    spec: Specification
    budget: Budget
    margin: float
    threads: int
    polish: bool
    stats: dict[str, float]
    hidden_bounds: list[tuple[np.ndarray, np.ndarray]] | None = None


def _confirm(query: _Query, case: Case, half: HalfSpaces, x: np.ndarray):
    """A confirmed ``(x, y)`` near the MILP's ``x`` (forward pass, then a float64 PGD polish)."""
    point = region_point(case.input_region, x)
    y = np.asarray(query.network.get_output(point), np.float64).ravel()
    if query.spec.is_violated_by(point, y):
        return point, y
    if not query.polish:
        return None
    box = case.input_region.bounding_box()
    found = attack_domains(
        query.network,
        box.lower,
        box.upper,
        half.C,
        half.d,
        x_init=point[None],
        restarts=4,
        steps=30,
        samples=0,
        step_size=1e-3,
        budget=query.budget,
        dtype=torch.float64,
    )
    point = region_point(case.input_region, found.x[0])
    y = np.asarray(query.network.get_output(point), np.float64).ravel()
    query.stats["polished"] += 1
    return (point, y) if query.spec.is_violated_by(point, y) else None


def _add_l2_cut(
    model: HighsModel, region: Box | LpBall, encoding: MilpEncoding, solution: np.ndarray
) -> bool:
    """Cut a MILP point that lies outside an L2 ball by the ball's tangent plane.

    For ``x`` outside ``||x - c||_2 <= eps`` and ``g = (x - c) / ||x - c||``,
    every point of the ball satisfies ``g . (x - c) <= eps`` (Cauchy-Schwarz)
    while ``x`` does not: a valid cut (Kelley's outer approximation).

    Returns:
        Whether a cut was added.
    """
    if not (isinstance(region, LpBall) and region.norm == "2"):
        return False
    offset = solution[encoding.x] - region.center
    distance = float(np.linalg.norm(offset))
    if distance <= region.epsilon * (1 + 1e-9):
        return False
    g = offset / distance
    row = sp.csr_matrix((g, (np.zeros(g.size, int), encoding.x)), shape=(1, model.lp.num_cols))
    model.add_rows(row, np.array([-INF]), np.array([region.epsilon + g @ region.center]))
    return True


def _classify(solution: MipSolution, tau: float) -> Outcome:
    """``CANDIDATE`` (an incumbent with ``t <= 0``), ``EMPTY`` (no point with
    ``t <= tau``), ``TIMEOUT`` or ``UNKNOWN``."""
    objective = solution.objective
    if solution.x is not None and objective is not None and objective <= 0:
        return Outcome.CANDIDATE
    no_incumbent = objective is None or objective > tau
    if no_incumbent and (
        solution.dual_bound > tau or solution.status in (LPStatus.OPTIMAL, LPStatus.INFEASIBLE)
    ):
        return Outcome.EMPTY
    return Outcome.TIMEOUT if solution.status is LPStatus.TIME_LIMIT else Outcome.UNKNOWN


def _solve_disjunct(
    query: _Query, encoding: MilpEncoding, case: Case, half: HalfSpaces, low, high
) -> tuple[Outcome, tuple[np.ndarray, np.ndarray] | None]:
    """Minimise the disjunct's margin ``t``; return ``(outcome, counterexample)``.

    ``outcome`` is ``FOUND`` (with the confirmed ``(x, y)``), ``UNCONFIRMED``
    (an incumbent with ``t <= 0`` that no forward pass confirms), ``EMPTY``,
    ``TIMEOUT`` or ``UNKNOWN``. Over an L2 ball, unconfirmed points outside
    the ball are cut off and the MILP re-solved (at most :data:`MAX_L2_CUTS` times).
    """
    margins = np.concatenate([low - half.d, high - half.d])
    scale = max(1.0, float(np.max(np.abs(margins[np.isfinite(margins)]), initial=0.0)))
    tau = query.margin * scale
    t_lower = float(np.max(low - half.d)) if half.num_constraints else -1.0
    lp = with_margin_objective(encoding, half.C, half.d, t_lower if np.isfinite(t_lower) else -INF)
    model = milp_model(lp, encoding, query.threads)
    for _ in range(MAX_L2_CUTS + 1):
        solution = model.solve_mip(
            query.budget, cutoff=tau, stop_at_objective=0.0, stop_at_bound=tau
        )
        query.stats["milp_nodes"] += solution.nodes
        query.stats["milps"] += 1
        outcome = _classify(solution, tau)
        if outcome is not Outcome.CANDIDATE:
            return outcome, None
        pair = _confirm(query, case, half, solution.x[encoding.x])
        if pair is not None:
            return Outcome.FOUND, pair
        if not _add_l2_cut(model, case.input_region, encoding, solution.x):
            break
    logger.info("MILP point (t = %.3g) not confirmed by a forward pass", solution.objective)
    return Outcome.UNCONFIRMED, None


def _with_output_bounds(
    mlp: MLP, hidden: list[tuple[np.ndarray, np.ndarray]], C: np.ndarray | None
) -> tuple[list[tuple[np.ndarray, np.ndarray]], np.ndarray | None, np.ndarray | None]:
    """Given hidden pre-activation bounds, the output's and ``C y``'s by interval arithmetic."""
    if len(hidden) != len(mlp.weights) - 1:
        raise InvalidInputError(
            f"need {len(mlp.weights) - 1} hidden bound pairs, got {len(hidden)}"
        )
    lo, hi = hidden[-1]
    if mlp.activations[-1] == "ReLU":
        lo, hi = np.maximum(lo, 0.0), np.maximum(hi, 0.0)
    y = _affine_interval(mlp.weights[-1], mlp.biases[-1], lo, hi)
    if C is None or C.shape[0] == 0:
        return [*hidden, y], None, None
    return [*hidden, y], *_affine_interval(C, 0.0, *y)


def _affine_interval(W: np.ndarray, b, lo: np.ndarray, hi: np.ndarray):
    """Bounds of ``W v + b`` over the box ``lo <= v <= hi``."""
    pos, neg = np.maximum(W, 0.0), np.minimum(W, 0.0)
    return pos @ lo + neg @ hi + b, pos @ hi + neg @ lo + b


def _verify_case(query: _Query, case: Case, method: str, options: Any):
    """Decide one case: a confirmed ``(x, y)``, or the list of undecided outcomes."""
    C = np.concatenate([h.C for h in case.unsafe]) if case.unsafe else None
    if query.hidden_bounds is not None:
        pairs, low, high = _with_output_bounds(query.mlp, query.hidden_bounds, C)
    else:
        pairs, low, high = auto_layer_bounds(query.network, case.input_region, C, method, options)
    encoding = encoder_for(query.mlp)(query.mlp, case.input_region, pairs)
    query.stats["binaries"] = max(query.stats["binaries"], encoding.binaries)
    offsets = np.cumsum([0] + [h.num_constraints for h in case.unsafe])
    parts = []
    for j, half in enumerate(case.unsafe):
        lo = low[offsets[j] : offsets[j + 1]] if low is not None else np.zeros(0)
        hi = high[offsets[j] : offsets[j + 1]] if high is not None else np.zeros(0)
        parts.append((float(np.max(lo - proof_threshold(half.d), initial=-INF)), half, lo, hi))
    undecided: list[Outcome] = []
    for bound_margin, half, lo, hi in sorted(parts, key=lambda p: p[0]):
        if bound_margin > 0:
            query.stats["proved_by_bounds"] += 1
            continue
        if query.budget.expired():
            undecided.append(Outcome.TIMEOUT)
            continue
        outcome, pair = _solve_disjunct(query, encoding, case, half, lo, hi)
        if outcome is Outcome.FOUND:
            return pair
        if outcome is Outcome.UNCONFIRMED:
            query.stats["unconfirmed"] += 1
            undecided.append(Outcome.UNKNOWN)
        elif outcome is Outcome.EMPTY:
            query.stats["proved_by_milp"] += 1
        else:
            undecided.append(outcome)
    return undecided


def milp_verify(
    network: Network,
    spec: Specification,
    budget: Budget | None = None,
    bounds_method: str = "auto",
    *,
    bounds_options: Any = None,
    margin: float = DEFAULT_MARGIN,
    threads: int = 1,
    polish: bool = True,
    hidden_bounds: list[tuple[np.ndarray, np.ndarray]] | None = None,
) -> EngineResult:
    """Decide ``spec`` on an MLP exactly by the big-M MILP (Tjeng et al. 2019).

    Args:
        network: a fully connected ReLU network (``network.as_mlp()`` must work).
        spec: the property (VNN-COMP convention: the unsafe outputs).
        budget: the time limit of the whole call (``None``: none); what is
            left is handed to HiGHS.
        bounds_method: the :func:`~verifiNN.bounds.compute_bounds` method for the
            big-M constants (``'ibp'``, ``'crown'``, ``'alpha-crown'``, ``'lp'``),
            or ``'auto'``: alpha-CROWN unless CROWN leaves more than
            :data:`~verifiNN.solvers.milp.AUTO_ALPHA_MAX_UNSTABLE` unstable
            ReLUs. alpha-CROWN's tighter intermediate bounds remove 15-30% of
            the binaries on ACAS Xu and halve the MILP time there; its final
            bounds also settle more disjuncts before any MILP.
        bounds_options: options of that method (alpha-CROWN's under ``'auto'``).
        margin: relative safety margin of a proof (see the module docstring).
        threads: HiGHS threads.
        polish: polish unconfirmed MILP solutions by a short float64 PGD.
        hidden_bounds: sound ``(lower, upper)`` pre-activation bounds of every
            hidden layer, valid on every case's input region (e.g. from branch
            and bound, which has them for free); used instead of
            ``bounds_method``, the output's bounds following by interval
            arithmetic.

    Returns:
        An :class:`~verifiNN.results.EngineResult`: ``sat`` with a
        counterexample confirmed by a forward pass, ``unsat`` when every
        disjunct of every case is empty, ``timeout`` when the time ran out,
        else ``unknown``. ``statistics`` counts MILPs, nodes, binaries and
        disjuncts proved by bounds and by the MILP; ``case`` is the index of
        the violated case for ``sat``.

    Raises:
        UnsupportedModelError: the network is not a plain MLP.
        SpecError: the property does not fit the network.
    """
    start = time.perf_counter()
    if not isinstance(spec, Specification):
        raise SpecError(f"expected a Specification, got {type(spec).__name__}")
    budget = budget or Budget.start(None)
    spec.validate_for(network)
    query = _Query(
        as_float64(network),
        mlp_layers(network)[0],
        spec,
        budget,
        float(margin),
        int(threads),
        polish,
        dict.fromkeys(("milps", "milp_nodes", "binaries", "proved_by_bounds", "proved_by_milp"), 0)
        | {"unconfirmed": 0, "polished": 0},
        hidden_bounds,
    )
    undecided: list[Outcome] = []
    for index, case in enumerate(spec.cases):
        if budget.expired():
            undecided.append(Outcome.TIMEOUT)
            break
        outcome = _verify_case(query, case, bounds_method, bounds_options)
        if isinstance(outcome, tuple):
            query.stats["seconds"] = time.perf_counter() - start
            query.stats["case"] = index
            return EngineResult(Verdict.SAT, outcome, query.stats)
        undecided.extend(outcome)
    query.stats["seconds"] = time.perf_counter() - start
    if not undecided:
        verdict = Verdict.UNSAT
    elif Outcome.TIMEOUT in undecided or budget.expired():
        verdict = Verdict.TIMEOUT
    else:
        verdict = Verdict.UNKNOWN
    return EngineResult(verdict, None, query.stats)
