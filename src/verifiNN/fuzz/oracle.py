"""The region oracle: the exact minimal margin of a property of a tiny ReLU MLP, by one LP
(:func:`scipy.optimize.linprog`) per activation region, case and disjunct."""

from __future__ import annotations

import itertools

import numpy as np
from scipy.optimize import linprog

from verifiNN.errors import UnsupportedModelError
from verifiNN.models.network import Network
from verifiNN.specs import Box, HalfSpaces, LpBall, Specification

__all__ = ["MAX_REGION_RELUS", "region_oracle", "relu_regions"]

#: Tiny nets have at most this many ReLUs, so the region oracle solves few LPs.
MAX_REGION_RELUS = 6


def relu_regions(
    network: Network, lower: np.ndarray, upper: np.ndarray
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """The activation regions of a ReLU MLP that may meet the box ``[lower, upper]``.

    Returns ``(G, h, Y, y0)`` per activation pattern: on the polyhedron
    ``G x + h >= 0`` the network is the affine map ``y = Y x + y0``. ReLUs whose
    phase interval arithmetic fixes over the box are not split (their
    constraints hold on the whole box and are left out).

    Raises:
        UnsupportedModelError: not a ReLU MLP, or more than
            :data:`MAX_REGION_RELUS` undecided ReLUs.
    """
    mlp = network.as_mlp()
    if any(act != "ReLU" for act in mlp.activations):
        raise UnsupportedModelError("the region oracle needs ReLU activations only")
    # interval arithmetic over the box fixes the phase of stable ReLUs
    lo, hi, fixed = lower, upper, []
    for W, b in zip(mlp.weights[:-1], mlp.biases[:-1]):
        mid, rad = W @ ((lo + hi) / 2) + b, np.abs(W) @ ((hi - lo) / 2)
        z_lo, z_hi = mid - rad, mid + rad
        phase = np.where(z_lo >= 0, 1.0, np.where(z_hi <= 0, 0.0, np.nan))
        fixed.append(phase)
        lo, hi = np.maximum(z_lo, 0.0), np.maximum(z_hi, 0.0)
    free = int(sum(np.isnan(p).sum() for p in fixed))
    if free > MAX_REGION_RELUS:
        raise UnsupportedModelError(f"{free} undecided ReLUs: too many regions to enumerate")
    regions = []
    for bits in itertools.product([0.0, 1.0], repeat=free):
        A, c = np.eye(lower.size), np.zeros(lower.size)
        G, h, used = [], [], 0
        for W, b, phase in zip(mlp.weights[:-1], mlp.biases[:-1], fixed):
            zA, zc = W @ A, W @ c + b
            open_ = np.isnan(phase)
            phase = phase.copy()
            phase[open_] = bits[used : used + int(open_.sum())]
            used += int(open_.sum())
            sign = (2 * phase - 1)[open_]  # active: z >= 0, inactive: -z >= 0
            G.append(sign[:, None] * zA[open_])
            h.append(sign * zc[open_])
            A, c = phase[:, None] * zA, phase * zc
        Y, y0 = mlp.weights[-1] @ A, mlp.weights[-1] @ c + mlp.biases[-1]
        regions.append(
            (np.vstack([np.zeros((0, lower.size)), *G]), np.concatenate([[], *h]), Y, y0)
        )
    return regions


def _min_margin_lp(
    region: Box | LpBall,
    half: HalfSpaces,
    G: np.ndarray,
    h: np.ndarray,
    Y: np.ndarray,
    y0: np.ndarray,
) -> tuple[float, np.ndarray] | None:
    """``min max_i (C_i (Y x + y0) - d_i)`` over ``x`` in the region and ``G x + h >= 0``.

    One LP in ``(x, t[, s])``; ``None`` when it is infeasible.
    """
    box = region.bounding_box()
    n, k = box.size, half.num_constraints
    l1 = isinstance(region, LpBall) and region.norm == "1"
    width = n + 1 + (n if l1 else 0)
    CY = half.C @ Y
    rows = [np.hstack([-G, np.zeros((G.shape[0], width - n))])]
    rhs = [h]
    rows.append(np.hstack([CY, -np.ones((k, 1)), np.zeros((k, width - n - 1))]))
    rhs.append(half.d - half.C @ y0)
    if l1:  # |x - center| <= s, sum(s) <= epsilon
        eye, zero = np.eye(n), np.zeros((n, 1))
        rows += [np.hstack([eye, zero, -eye]), np.hstack([-eye, zero, -eye])]
        rows.append(np.hstack([np.zeros((1, n + 1)), np.ones((1, n))]))
        rhs += [region.center, -region.center, [region.epsilon]]
    bounds = list(zip(box.lower, box.upper)) + [(None, None)] + [(0, None)] * (width - n - 1)
    cost = np.zeros(width)
    cost[n] = 1.0
    res = linprog(cost, A_ub=np.vstack(rows), b_ub=np.concatenate(rhs), bounds=bounds)
    if res.status == 2:
        return None
    if res.status != 0:
        raise RuntimeError(f"region LP failed: {res.message}")
    return float(res.fun), res.x[:n]


def region_oracle(network: Network, spec: Specification) -> tuple[float, np.ndarray | None]:
    """The exact minimal margin of ``spec`` on a tiny ReLU MLP, and an input attaining it.

    Enumerates the activation regions (:func:`relu_regions`) and solves one LP
    per region, case and disjunct. The property is violated exactly when the
    margin is ``<= 0``; ``(inf, None)`` when no case has an unsafe set.

    Raises:
        UnsupportedModelError: not a ReLU MLP with few undecided ReLUs, or an
            L2 ball (not a linear region).
    """
    best, witness = np.inf, None
    for case in spec.cases:
        region = case.input_region
        if isinstance(region, LpBall) and region.norm == "2":
            raise UnsupportedModelError("the region oracle needs box, L-inf or L1 regions")
        box = region.bounding_box()
        for G, h, Y, y0 in relu_regions(network, box.lower, box.upper):
            for half in case.unsafe:
                found = _min_margin_lp(region, half, G, h, Y, y0)
                if found is not None and found[0] < best:
                    best, witness = found
    return best, witness
