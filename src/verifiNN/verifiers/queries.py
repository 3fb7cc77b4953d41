"""Deciding a VNN-LIB 2.0 query, in the arithmetic its element types declare.

A :class:`~verifiNN.io.query.Query` over ``real`` variables is decided as is.
A query over float variables (``float32``, ...) asks about the model *as a
float runtime computes it* (the standard's section on element types), so
:func:`verify_query`:

1. bounds, per case, how far rounding can move each output
   (:func:`verifiNN.bounds.float_error.rounding_error_bound`, ``E``);
2. proves ``unsat`` on the real network with every unsafe half-space
   ``C y <= d`` widened to ``C y <= d + |C| E``: a float output inside the
   original set has a real twin inside the widened one, so a proof of the
   widened property covers the float model;
3. accepts ``sat`` only for an input rounded to the declared type and lying in
   the case's box *exactly*, whose float outputs (onnxruntime on the original
   models) satisfy the original assertions; where onnxruntime cannot run the
   models, a real violation deeper than ``|C| E`` is accepted instead.

A counterexample of the widened property that fails step 3 is reported as
``unknown`` with that reason; it is never turned into ``sat``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from verifiNN.bounds.float_error import rounding_error_bound
from verifiNN.budget import Budget
from verifiNN.io.ort import onnxruntime_output
from verifiNN.io.query import Query, Variable
from verifiNN.results import Verdict
from verifiNN.specs import Box, Case, HalfSpaces, Specification
from verifiNN.verifiers.portfolio import verify

__all__ = ["QueryResult", "verify_query", "widen_for_rounding"]

logger = logging.getLogger(__name__)

_TORCH_TYPES = {
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "float32": torch.float32,
    "float64": torch.float64,
}


@dataclass(frozen=True)
class QueryResult:
    """The answer to a query.

    Attributes:
        verdict: ``sat``, ``unsat``, ``unknown`` or ``timeout``.
        assignment: for ``sat``, every declared variable with its value, in
            declaration order; else ``None``.
        method: the engine that decided.
        reason: why the answer is not definite, when it is not.
        statistics: the portfolio's statistics, and ``rounding_error`` (the
            largest ``E`` entry) for float queries.
    """

    verdict: Verdict
    assignment: tuple[tuple[Variable, np.ndarray], ...] | None = None
    method: str = "auto"
    reason: str | None = None
    statistics: dict[str, Any] = field(default_factory=dict)


def widen_for_rounding(spec: Specification, errors: list[np.ndarray]) -> Specification:
    """``spec`` with each case's half-spaces ``C y <= d`` widened to ``C y <= d + |C| E``.

    Args:
        spec: the property.
        errors: per case, the rounding bound ``E`` per output entry.
    """
    cases = []
    for case, error in zip(spec.cases, errors, strict=True):
        unsafe = tuple(
            HalfSpaces(h.C, np.nextafter(h.d + np.abs(h.C) @ error, np.inf)) for h in case.unsafe
        )
        cases.append(Case(case.input_region, unsafe))
    return Specification(tuple(cases), spec.num_inputs, spec.num_outputs, spec.path, spec.name)


def verify_query(
    query: Query,
    *,
    timeout: float | None = None,
    method: str = "auto",
    device: str = "cpu",
    seed: int = 0,
) -> QueryResult:
    """Decide a compiled VNN-LIB 2.0 query (see the module docstring).

    Raises:
        UnsupportedModelError: a float query whose models have an op without
            a rounding rule, or values beyond the format's range (declare the
            variables ``real`` to analyse it in real arithmetic).
    """
    budget = Budget.start(timeout)
    errors = _rounding_errors(query)
    spec = query.spec if errors is None else widen_for_rounding(query.spec, errors)
    result = verify(
        query.network, spec, method=method, timeout=budget.timeout(), device=device, seed=seed
    )
    statistics = dict(result.statistics)
    if errors is not None:
        statistics["rounding_error"] = max((float(e.max(initial=0.0)) for e in errors), default=0.0)
    if result.verdict is not Verdict.SAT:
        reason = None if result.verdict is Verdict.UNSAT else f"{result.method}: no decision"
        return QueryResult(result.verdict, None, result.method, reason, statistics)
    x, _ = result.counterexample
    assignment = _confirm(query, np.asarray(x, np.float64), errors)
    if assignment is None:
        reason = (
            f"the counterexample {result.method} found does not satisfy the query in "
            f"{query.float_format or 'real'} arithmetic"
        )
        return QueryResult(Verdict.UNKNOWN, None, result.method, reason, statistics)
    return QueryResult(Verdict.SAT, assignment, result.method, None, statistics)


def _rounding_errors(query: Query) -> list[np.ndarray] | None:
    if query.float_format is None:
        return None
    graph = query.graph if query.graph is not None else query.network
    return [
        rounding_error_bound(
            graph,
            case.input_region.lower,
            case.input_region.upper,
            query.float_format,
            query.exact_nodes,
        )
        for case in query.spec.cases
    ]


def _confirm(
    query: Query, x: np.ndarray, errors: list[np.ndarray] | None
) -> tuple[tuple[Variable, np.ndarray], ...] | None:
    """The assignment of a confirmed counterexample near ``x``, or ``None``."""
    spec = query.spec
    for index, case in enumerate(spec.cases):
        box = case.input_region
        if not isinstance(box, Box):
            continue
        point = _representable_point(x, box, query.float_format)
        if point is None:
            continue
        single = Specification((case,), spec.num_inputs, spec.num_outputs)
        y_float = onnxruntime_output(query.network, point) if query.float_format else None
        if y_float is not None:
            if single.is_violated_by(point, y_float, input_tol=0.0):
                return tuple(query.assignment(point, y_float))
            continue
        y = np.asarray(query.network.get_output(point), np.float64).ravel()
        if errors is not None:
            margin = [np.abs(h.C) @ errors[index] for h in case.unsafe]
            deep = Specification(
                (Case(box, tuple(HalfSpaces(h.C, h.d - m) for h, m in zip(case.unsafe, margin))),),
                spec.num_inputs,
                spec.num_outputs,
            )
            if deep.is_violated_by(point, y, input_tol=0.0):
                return tuple(query.assignment(point, y))
        elif single.is_violated_by(point, y, input_tol=0.0):
            return tuple(query.assignment(point, y))
    return None


def _representable_point(x: np.ndarray, box: Box, fmt: str | None) -> np.ndarray | None:
    """``x`` clipped into ``box`` and rounded to ``fmt`` (``None``: real, kept in float64),
    moved one step inward where rounding left the box; ``None`` when that fails."""
    point = np.clip(x, box.lower, box.upper)
    if fmt is None:
        return point
    dtype = _TORCH_TYPES[fmt]
    rounded = torch.as_tensor(point).to(dtype).to(torch.float64).numpy()
    if fmt in ("float16", "float32", "float64"):
        step = np.dtype(fmt).type
        low, high = rounded < box.lower, rounded > box.upper
        rounded[low] = np.nextafter(rounded[low].astype(step), step(np.inf)).astype(np.float64)
        rounded[high] = np.nextafter(rounded[high].astype(step), step(-np.inf)).astype(np.float64)
    if np.all(rounded >= box.lower) and np.all(rounded <= box.upper):
        return rounded
    logger.debug("no %s point of the box near the counterexample", fmt)
    return None
