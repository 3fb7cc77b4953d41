"""The exact LP of a subdomain whose every ReLU phase is fixed.

When branch and bound has fixed (by splits or by bounds) the phase of every
ReLU of a piecewise-linear network, the network is affine on the subdomain
``D = {x in box : s_j z_j(x) >= 0 for every ReLU j}``, with ``s_j = +1`` for
active and ``-1`` for inactive neurons and ``z_j`` the pre-activations, affine
in ``x`` given the phases (the seed's activation-region LP, here over a box).
Whether a conjunction ``C y <= d`` meets ``D`` is then the LP

    min t  s.t.  C_i y(x) - d_i <= t,  s_j z_j(x) >= 0,  x in box.

``t* <= 0`` gives a candidate counterexample (confirmed by the caller's
forward pass); ``t* > 0`` is certified by weak duality on HiGHS's row duals
(:func:`verifiNN.solvers.highs.dual_bound`), and infeasibility by HiGHS's Farkas
ray (checked the same way, on a zero cost). Anything not certified is
``unknown``. The affine maps are read off one batched forward pass with the
ReLUs replaced by their 0/1 phase masks, at ``0`` and at the unit vectors.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

from verifiNN.bounds.graph import BoundGraph
from verifiNN.bounds.types import proof_threshold
from verifiNN.ops import ReLU
from verifiNN.results import Outcome
from verifiNN.solvers.highs import INF, HighsModel, LinearProgram, LPStatus, dual_bound

__all__ = ["PatternOutcome", "pattern_lp", "piecewise_linear"]

#: Bound on ``|t|`` that keeps the LP bounded (far beyond any real margin).
_T_MAX = 1e9


@dataclass(frozen=True)
class PatternOutcome:
    """``EMPTY`` (certified: no point of the subdomain meets the conjunction),
    ``CANDIDATE`` (``x`` to confirm) or ``UNKNOWN``."""

    status: Outcome
    x: np.ndarray | None = None


def piecewise_linear(graph: BoundGraph) -> bool:
    """True when every nonlinear node of the graph is a ReLU."""
    return all(node.op.affine or isinstance(node.op, ReLU) for node in graph.nodes)


def _affine_maps(graph: BoundGraph, masks: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """``name -> (n_name, n_in + 1)`` array ``[A | c]`` of each masked-ReLU input and the output."""
    net = graph.network
    n = net.input_size
    dtype = next(iter(masks.values())).dtype
    points = torch.cat([torch.zeros(1, n, dtype=dtype), torch.eye(n, dtype=dtype)])
    values = {graph.input_name: points.reshape(n + 1, *net.input_shape)}
    for node in graph.nodes:
        inputs = [values[i] for i in node.inputs]
        if node.name in masks:
            values[node.name] = inputs[0] * masks[node.name].reshape(inputs[0].shape[1:])
        else:
            values[node.name] = node.op.forward(*inputs)
    maps = {}
    wanted = [graph.node(name).inputs[0] for name in masks] + [graph.output_name]
    for name in wanted:
        v = values[name].reshape(n + 1, -1).detach().cpu().double().numpy()
        maps[name] = np.hstack([(v[1:] - v[0]).T, v[0][:, None]])
    return maps


def pattern_lp(
    graph: BoundGraph,
    lower: np.ndarray,
    upper: np.ndarray,
    phases: dict[str, torch.Tensor],
    C: np.ndarray,
    d: np.ndarray,
) -> PatternOutcome:
    """Decide whether ``C y <= d`` meets the subdomain of a fixed ReLU phase pattern.

    Args:
        graph: a bound graph whose nonlinear nodes are all ReLUs.
        lower: ``(n_in,)`` input box lower bounds.
        upper: ``(n_in,)`` input box upper bounds.
        phases: ReLU node name -> flat ``+1``/``-1`` phase of every neuron.
        C: ``(m, n_out)`` rows of the conjunction.
        d: ``(m,)`` thresholds.
    """
    masks = {name: (s > 0).to(torch.float64) for name, s in phases.items()}
    maps = _affine_maps(graph, masks)
    n = lower.shape[0]
    rows, row_lower = [], []
    for name, s in phases.items():
        A = maps[graph.node(name).inputs[0]]
        signed = s.cpu().double().numpy()[:, None] * A
        constant = ~np.any(signed[:, :n] != 0, axis=1)
        offsets = signed[constant, n]
        if np.any(offsets < -proof_threshold(0.0) * (1.0 + np.abs(offsets))):
            return PatternOutcome(Outcome.EMPTY)  # a neuron of constant value in the wrong phase
        signed = signed[~constant]
        rows.append(np.hstack([signed[:, :n], np.zeros((len(signed), 1))]))
        row_lower.append(-signed[:, n])
    out = maps[graph.output_name]
    gap = C @ out  # C y = gap[:, :n] x + gap[:, n]
    rows.append(np.hstack([gap[:, :n], -np.ones((len(gap), 1))]))
    A = np.vstack(rows)
    region_rows = A.shape[0] - len(gap)
    lp = LinearProgram(
        cost=np.r_[np.zeros(n), 1.0],
        A=sp.csr_matrix(A),
        row_lower=np.r_[np.concatenate(row_lower) if row_lower else [], np.full(len(gap), -INF)],
        row_upper=np.r_[np.full(region_rows, INF), d - gap[:, n]],
        col_lower=np.r_[lower, -_T_MAX],
        col_upper=np.r_[upper, _T_MAX],
    )
    model = HighsModel(lp)
    solution = model.solve()
    if solution.status is LPStatus.OPTIMAL and solution.objective is not None:
        if solution.objective <= 0:
            return PatternOutcome(Outcome.CANDIDATE, solution.x[:n].copy())
        if solution.row_duals is not None:
            bound = dual_bound(lp, lp.cost, solution.row_duals)
            if bound > proof_threshold(0.0):
                return PatternOutcome(Outcome.EMPTY)
        return PatternOutcome(Outcome.UNKNOWN)
    if solution.status is LPStatus.INFEASIBLE:
        model.set_option("presolve", "off")
        model.solve()
        ray = model.dual_ray()
        if ray is not None:
            zero = np.zeros_like(lp.cost)
            scale = 1.0 + float(np.abs(ray).max())
            if max(dual_bound(lp, zero, ray), dual_bound(lp, zero, -ray)) > 1e-9 * scale:
                return PatternOutcome(Outcome.EMPTY)
    return PatternOutcome(Outcome.UNKNOWN)
