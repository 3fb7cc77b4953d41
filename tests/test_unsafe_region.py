"""Row combination and box clipping never lose a counterexample."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import random_mlp_params
from verifiNN.bounds.symbolic import mlp_bounder
from verifiNN.models.network import Network
from verifiNN.search.unsafe_region import clip_to_unsafe, combine_conjunctions


def _problem(seed: int):
    """A random ReLU MLP, a batch of boxes and a spec of 1-2 disjuncts of 1-3 rows
    whose thresholds are quantiles of sampled outputs (so some points violate)."""
    rng = np.random.default_rng(seed)
    n_in, n_out = int(rng.integers(2, 5)), 4
    widths = [n_in, *rng.integers(4, 12, size=int(rng.integers(1, 3))), n_out]
    network = Network(*random_mlp_params(rng, [int(w) for w in widths]))
    centre = rng.uniform(-1, 1, size=(6, n_in))
    radius = rng.uniform(0.05, 0.8, size=(6, n_in))
    lo, up = centre - radius, centre + radius
    rows_per_disjunct = rng.integers(1, 4, size=int(rng.integers(1, 3)))
    C = rng.normal(size=(int(rows_per_disjunct.sum()), n_out))
    owner = np.repeat(np.arange(len(rows_per_disjunct)), rows_per_disjunct)
    points = lo[:, None, :] + (up - lo)[:, None, :] * rng.random((6, 400, n_in))
    values = network.get_output(points.reshape(-1, n_in)) @ C.T
    d = np.quantile(values, rng.uniform(0.3, 0.9), axis=0)
    return network, lo, up, C, d, owner, points


def _violating(network, points, C, d, owner):
    """``(B, N, K)``: point ``p`` of box ``b`` violates disjunct ``k``."""
    B, N, n = points.shape
    values = (network.get_output(points.reshape(-1, n)) @ C.T).reshape(B, N, -1)
    K = int(owner.max()) + 1
    return np.stack([(values[..., owner == k] <= d[owner == k]).all(-1) for k in range(K)], -1)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 100_000))
def test_clipping_and_combination_keep_every_violating_point(seed: int) -> None:
    network, lo, up, C, d, owner, points = _problem(seed)
    lo_t, up_t = torch.tensor(lo), torch.tensor(up)
    rows = mlp_bounder(network).rows(lo_t, up_t, torch.tensor(C))
    owner_t, d_t = torch.tensor(owner), torch.tensor(d)
    K = int(owner.max()) + 1
    violating = _violating(network, points, C, d, owner)

    combined = combine_conjunctions(lo_t, up_t, rows.A, rows.c, d_t, owner_t, K)
    at_points = torch.einsum("bkn,bpn->bpk", combined.A, torch.tensor(points)) + combined.c[:, None]
    slack = 1e-9 * (1 + combined.d.abs())[:, None]
    satisfied = (at_points <= combined.d[:, None] + slack).numpy()
    assert satisfied[violating].all(), "a violating point breaks its combined row"
    assert (combined.lower <= at_points.amin(1) + 1e-9).all(), "combined lower bound too high"

    all_open = torch.ones(lo.shape[0], K, dtype=torch.bool)
    new_lo, new_up, still_open = clip_to_unsafe(lo_t, up_t, rows.A, rows.c, d_t, owner_t, all_open)
    inside = ((points >= new_lo.numpy()[:, None]) & (points <= new_up.numpy()[:, None])).all(-1)
    for b, p, k in zip(*np.nonzero(violating), strict=True):
        assert still_open[b, k], f"disjunct {k} of box {b} closed but violated at {points[b, p]}"
        assert inside[b, p], f"violating point {points[b, p]} clipped off box {b}"
    assert (new_lo >= lo_t).all() and (new_up <= up_t).all(), "clipping grew a box"


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 100_000))
def test_clipping_by_one_halfspace_is_tight(seed: int) -> None:
    """For one constraint ``a x <= b`` each clipped bound is attained by a feasible point."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 6))
    lo = rng.uniform(-2, 0, size=(1, n))
    up = lo + rng.uniform(0.1, 2, size=(1, n))
    a = rng.normal(size=(1, 1, n))
    box_min = float((np.minimum(a[0, 0] * lo[0], a[0, 0] * up[0])).sum())
    b = box_min + rng.uniform(0.0, 1.0) * float(np.abs(a).sum())
    new_lo, new_up, still_open = clip_to_unsafe(
        torch.tensor(lo),
        torch.tensor(up),
        torch.tensor(a),
        torch.zeros(1, 1, dtype=torch.float64),
        torch.tensor([b]),
        torch.zeros(1, dtype=torch.int64),
        torch.ones(1, 1, dtype=torch.bool),
    )
    assert still_open.all()
    new_lo, new_up = new_lo.numpy()[0], new_up.numpy()[0]
    cheapest = np.where(a[0, 0] > 0, lo[0], up[0])
    for j in range(n):
        for value in (new_lo[j], new_up[j]):
            x = cheapest.copy()
            x[j] = value
            assert float(a[0, 0] @ x) <= b + 1e-6 * (1 + abs(b)), "a clipped bound is infeasible"
