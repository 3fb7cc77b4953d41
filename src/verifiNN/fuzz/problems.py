"""Reproducible random problems: a network of :data:`~verifiNN.fuzz.networks.KINDS` and a
random specification (box, L-inf, L1 and L2 regions, robustness properties, random
disjunctions of half-spaces, several cases, degenerate boxes, empty unsafe sets), plus the
sampling of input regions and the margins the oracles compare."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from verifiNN.fuzz.networks import KINDS, random_network
from verifiNN.models.network import Network
from verifiNN.specs import Box, Case, HalfSpaces, LpBall, Specification, robustness_spec

__all__ = ["FuzzCase", "margins", "random_case", "random_spec", "sample_region"]


def sample_region(region: Box | LpBall, rng: np.random.Generator, m: int) -> np.ndarray:
    """About ``m`` points of ``region``: its centre, box corners or ball vertices, random points.

    Every returned row lies in the region (rows that rounding pushed out are dropped).
    """
    box = region.bounding_box()
    n = box.size
    if isinstance(region, Box) or region.norm == "inf":
        if n <= 6:
            signs = np.array(list(itertools.product([0.0, 1.0], repeat=n)))
        else:
            signs = rng.integers(0, 2, size=(m // 4, n)).astype(float)
        corners = box.lower + signs * (box.upper - box.lower)
        inside = rng.uniform(box.lower, box.upper, size=(m, n))
        points = np.vstack([box.center, corners, inside])
    else:
        center, eps = region.center, region.epsilon
        vertices = center + eps * np.vstack([np.eye(n), -np.eye(n)])
        draw = rng.laplace(size=(m, n)) if region.norm == "1" else rng.normal(size=(m, n))
        norms = np.linalg.norm(draw, ord=region.ord, axis=1, keepdims=True)
        radii = eps * rng.uniform(size=(m, 1)) ** (1.0 / n)
        points = np.vstack([center, vertices, center + draw / np.maximum(norms, 1e-300) * radii])
        # the centre lies in the domain, so clipping only moves points towards it
        points = np.clip(points, box.lower, box.upper)
    return points[region.contains_batch(points)]


def margins(spec: Specification, X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Per row, the margin ``min over cases containing x, disjuncts of max_i (C_i y - d_i)``.

    ``<= 0`` exactly when the row is a counterexample; ``+inf`` outside every
    input region (or when its cases have no unsafe set).
    """
    X, Y = np.atleast_2d(X), np.atleast_2d(Y)
    best = np.full(X.shape[0], np.inf)
    for case in spec.cases:
        inside = case.input_region.contains_batch(X)
        for half in case.unsafe:
            value = np.max(Y @ half.C.T - half.d, axis=1)
            best = np.where(inside, np.minimum(best, value), best)
    return best


def _random_region(rng: np.random.Generator, n: int, center: np.ndarray) -> Box | LpBall:
    scale = float(rng.choice([0.0, 0.05, 0.2, 0.5, 1.0], p=[0.03, 0.22, 0.3, 0.3, 0.15]))
    kind = rng.choice(["box", "inf", "1", "2"], p=[0.45, 0.2, 0.2, 0.15])
    if kind == "box":
        radius = scale * rng.uniform(0.0, 1.0, size=n)
        return Box(center - radius, center + radius)
    domain = (-1.0, 1.0) if rng.random() < 0.3 else (None, None)
    eps = scale * (np.sqrt(n) if kind == "2" else n if kind == "1" else 1.0)
    return LpBall(center, eps, str(kind), *domain)


def _random_unsafe(
    rng: np.random.Generator, network: Network, region: Box | LpBall
) -> tuple[HalfSpaces, ...]:
    """1-3 disjuncts of 1-2 half-spaces whose thresholds lie near the sampled outputs."""
    n_out = network.output_size
    Y = network.get_output(sample_region(region, rng, 64)).reshape(-1, n_out)
    disjuncts = []
    for _ in range(int(rng.choice([1, 1, 2, 3]))):
        rows = []
        for _ in range(int(rng.integers(1, 3))):
            style = rng.integers(3)
            row = rng.normal(size=n_out) if style == 0 else np.zeros(n_out)
            if style > 0:
                i, j = rng.integers(n_out, size=2)
                row[i] = rng.choice([-1.0, 1.0])
                if style == 2 and j != i:
                    row[j] = -row[i]
            rows.append(row)
        C = np.array(rows)
        values = Y @ C.T
        low, high = values.min(axis=0), values.max(axis=0)
        d = low + (high - low) * rng.uniform(-0.25, 0.35, size=len(rows))
        disjuncts.append(HalfSpaces(C, d))
    return tuple(disjuncts)


def random_spec(rng: np.random.Generator, network: Network) -> Specification:
    """A random property of ``network`` (see the module docstring for the mix)."""
    n = network.input_size
    center = rng.uniform(-0.9, 0.9, size=n)
    if network.output_size >= 2 and rng.random() < 0.3:
        norm = str(rng.choice(["inf", "1", "2"]))
        eps = float(rng.choice([0.0, 0.05, 0.2, 0.5], p=[0.05, 0.35, 0.35, 0.25]))
        label = None if rng.random() < 0.8 else int(rng.integers(network.output_size))
        domain = (-1.0, 1.0) if rng.random() < 0.3 else None
        return robustness_spec(network, center, eps, norm, label=label, domain=domain)
    cases = []
    for _ in range(1 if rng.random() < 0.8 else 2):
        region = _random_region(rng, n, center)
        unsafe = () if rng.random() < 0.02 else _random_unsafe(rng, network, region)
        cases.append(Case(region, unsafe))
        center = np.clip(center + rng.normal(0.0, 0.3, size=n), -1.0, 1.0)
    return Specification(tuple(cases), n, network.output_size)


@dataclass
class FuzzCase:
    """One problem: the seed that rebuilds it, its network family, network and property."""

    seed: int
    kind: str
    network: Network
    spec: Specification


def random_case(seed: int, kinds: Sequence[str] = KINDS) -> FuzzCase:
    """The problem of ``seed``: the same seed always gives the same network and property."""
    rng = np.random.default_rng(seed)
    weights = np.array([{"tiny": 6.0, "mlp": 2.0}.get(k, 1.0) for k in kinds])
    kind = str(kinds[int(rng.choice(len(kinds), p=weights / weights.sum()))])
    network = random_network(rng, kind)
    return FuzzCase(seed, kind, network, random_spec(rng, network))
