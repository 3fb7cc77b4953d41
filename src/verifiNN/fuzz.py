"""Fuzzing and differential testing of every verification method against oracles.

:func:`random_case` draws a reproducible problem from one integer seed: a
random network (one of :data:`KINDS`, together covering every op of
:mod:`verifiNN.ops` and the layers :func:`~verifiNN.io.torch.from_torch`
imports) and a random specification (box, L-inf, L1 and L2 regions, robustness
properties, random disjunctions of half-spaces, several cases, degenerate
boxes, empty unsafe sets). :func:`check_case` runs every method of
:func:`verifiNN.verify` on it and compares the answers with oracles
that do not use the engines under test:

* dense sampling (the centre, box corners, random points) with a float64
  forward pass, for every network: a sampled counterexample refutes ``unsat``;
* on tiny ReLU MLPs, exhaustive enumeration of the activation regions with one
  LP (:func:`scipy.optimize.linprog`) per region, case and disjunct, which gives
  the exact minimal margin and a witness (:func:`region_oracle`);
* on small ReLU MLPs, the MILP (``method='milp'``) as the reference complete
  method; more generally every complete method is compared with every other:
  a ``sat`` comes with a counterexample, so it refutes any ``unsat``.

The *margin* of an input is ``min over cases containing x, disjuncts of
max_i (C_i y - d_i)`` (``y`` the output); the property is violated (``sat``)
exactly when the minimal margin over the input regions is ``<= 0``. Answers
within :data:`TIE_TOL` of a tie (a minimal margin or a counterexample's margin
within it of 0) are accepted either way and counted as near-ties.

Findings of a case (:class:`CaseReport`):

* ``unsound``: an ``unsat`` refuted by a counterexample (sampled, the region
  oracle's witness or another method's), a ``sat`` whose counterexample a plain
  forward pass does not confirm or that lies outside the input region, or bounds
  from :func:`verifiNN.bounds.compute_bounds` that miss a sampled output;
* ``disagreement``: a decided answer that contradicts the region oracle
  otherwise (a confirmed ``sat`` where the oracle proves ``unsat``), an
  answer other than ``unsat``/``unknown``/``timeout`` from a bound method,
  an imported network that does not compute its torch module, or a region
  oracle whose witness a forward pass does not confirm (a broken oracle).
"""

from __future__ import annotations

import itertools
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.optimize import linprog
from torch import nn

from verifiNN.bounds import AlphaOptions, compute_bounds
from verifiNN.errors import SpecError, UnsupportedModelError
from verifiNN.io.torch import from_torch
from verifiNN.models.network import Network, Node
from verifiNN.ops import (
    Add,
    AvgPool2d,
    Concat,
    Conv2d,
    Dense,
    ElementwiseAffine,
    Flatten,
    Identity,
    LeakyReLU,
    MaxPool2d,
    Mul,
    Op,
    Pad,
    ReLU,
    Reshape,
    Sigmoid,
    Slice,
    Tanh,
    as_tensor,
)
from verifiNN.results import Verdict
from verifiNN.specs import Box, Case, HalfSpaces, LpBall, Specification, robustness_spec
from verifiNN.verifiers.portfolio import BOUND_METHODS, METHODS, verify

__all__ = [
    "COMPLETE_METHODS",
    "KINDS",
    "TIE_TOL",
    "CaseReport",
    "FuzzCase",
    "Timeouts",
    "check_case",
    "margins",
    "random_case",
    "random_network",
    "random_spec",
    "region_oracle",
    "relu_regions",
]

KINDS = ("tiny", "mlp", "cnn", "dag", "torch")
"""Network families: tiny ReLU MLPs (region oracle), MLPs with every activation,
small CNNs (conv, pad, pooling, reshape), DAGs (residual add, concat) and
``nn.Sequential`` modules imported by :func:`~verifiNN.io.torch.from_torch`."""

COMPLETE_METHODS = ("auto", "bab", "relu-bab", "milp")
"""Methods that may answer both ``sat`` and ``unsat``."""

TIE_TOL = 1e-6
"""Absolute margin within which either answer is accepted (a near-tie)."""

BOUND_TOL = 1e-7
"""Slack of the bound-containment check (relative above magnitude 1)."""

#: Tiny nets have at most this many ReLUs, so the region oracle solves few LPs.
MAX_REGION_RELUS = 6


# ---------------------------------------------------------------- networks
def _dense(rng: np.random.Generator, n_in: int, n_out: int) -> Dense:
    weight = rng.normal(0.0, 1.0 / np.sqrt(n_in), size=(n_out, n_in))
    return Dense(as_tensor(weight), as_tensor(rng.normal(0.0, 0.5, size=n_out)))


def _activation(rng: np.random.Generator, relu_weight: float = 0.5) -> Op:
    if rng.random() < relu_weight:
        return ReLU()
    choice = int(rng.integers(4))
    if choice == 0:
        return LeakyReLU(float(rng.choice([0.01, 0.1, 0.5, 2.0])))
    return (Sigmoid(), Tanh(), Identity())[choice - 1]


class _Graph:
    """A small helper that names nodes while a random graph is built."""

    def __init__(self) -> None:
        self.nodes: list[Node] = []

    def add(self, op: Op, *inputs: str) -> str:
        name = f"n{len(self.nodes)}_{op.kind.lower()}"
        self.nodes.append(Node(name, op, inputs))
        return name


def _tiny(rng: np.random.Generator) -> Network:
    n_in = int(rng.integers(1, 4))
    hidden = [int(h) for h in rng.integers(2, 4, size=int(rng.integers(1, 3)))]
    widths = [n_in, *hidden, int(rng.integers(1, 4))]
    layers = [_dense(rng, a, b) for a, b in itertools.pairwise(widths)]
    return Network(
        [d.weight.numpy() for d in layers], [d.bias.numpy() for d in layers], activation="ReLU"
    )


def _mlp(rng: np.random.Generator) -> Network:
    n_in = int(rng.integers(1, 6))
    graph, previous, width = _Graph(), "input", n_in
    relu_only = rng.random() < 0.4
    if rng.random() < 0.3:  # input normalisation
        scale = as_tensor(rng.uniform(0.5, 2.0, size=n_in) * rng.choice([-1, 1], size=n_in))
        previous = graph.add(ElementwiseAffine(scale, as_tensor(rng.normal(size=n_in))), previous)
    for _ in range(int(rng.integers(1, 3))):
        new = int(rng.integers(2, 6))
        previous = graph.add(_dense(rng, width, new), previous)
        width = new
        previous = graph.add(ReLU() if relu_only else _activation(rng), previous)
    n_out = int(rng.integers(1, 4))
    graph.add(_dense(rng, width, n_out), previous)
    return Network.from_graph((n_in,), graph.nodes, labeler=str(rng.choice(["argmax", "argmin"])))


def _pool_op(rng: np.random.Generator, shape: tuple[int, ...]) -> Op | None:
    kernel = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
    stride = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
    # padding below the kernel size: a window of padding alone would give -inf or 0/0
    pads = tuple(int(rng.integers(0, kernel[i % 2])) for i in range(4))
    if rng.random() < 0.5:
        op: Op = MaxPool2d(kernel, stride, pads)
    else:
        op = AvgPool2d(kernel, stride, pads, bool(rng.random() < 0.5))
    try:
        op.output_shape(shape)
    except ValueError:
        return None
    return op


def _cnn(rng: np.random.Generator) -> Network:
    c, h, w = int(rng.integers(1, 3)), int(rng.integers(2, 5)), int(rng.integers(2, 5))
    graph, previous, shape = _Graph(), "input", (c, h, w)
    in_shape = shape
    if rng.random() < 0.3:
        pads = tuple(int(p) for p in rng.integers(0, 2, size=4))
        previous = graph.add(Pad(pads, float(rng.normal())), previous)
        shape = (c, h + pads[0] + pads[2], w + pads[1] + pads[3])
    for _ in range(int(rng.integers(1, 3))):
        groups = c if c > 1 and rng.random() < 0.3 else 1
        c_out = groups * int(rng.integers(1, 3))
        kernel = (int(rng.integers(1, min(3, shape[1]) + 1)), int(rng.integers(1, 3)))
        weight = rng.normal(
            0, 1 / np.sqrt(kernel[0] * kernel[1] * c), (c_out, c // groups, *kernel)
        )
        conv = Conv2d(
            as_tensor(weight),
            as_tensor(rng.normal(0.0, 0.5, size=c_out)),
            (int(rng.integers(1, 3)), int(rng.integers(1, 3))),
            tuple(int(p) for p in rng.integers(0, 2, size=4)),
            (1, 1),  # float64 dilated convolutions are ~50x slower in torch on CPU
            groups,
        )
        try:
            new_shape = conv.output_shape(shape)
        except ValueError:
            continue
        previous = graph.add(conv, previous)
        previous = graph.add(_activation(rng, 0.6), previous)
        shape, c = new_shape, c_out
        pool = _pool_op(rng, shape) if rng.random() < 0.5 else None
        if pool is not None:
            previous = graph.add(pool, previous)
            shape = pool.output_shape(shape)
    flat = int(np.prod(shape))
    flatten: Op = Flatten() if rng.random() < 0.7 else Reshape((flat,))
    previous = graph.add(flatten, previous)
    if rng.random() < 0.5:
        hidden = int(rng.integers(2, 6))
        previous = graph.add(_dense(rng, flat, hidden), previous)
        previous = graph.add(_activation(rng), previous)
        flat = hidden
    graph.add(_dense(rng, flat, int(rng.integers(2, 4))), previous)
    return Network.from_graph(in_shape, graph.nodes)


def _dag(rng: np.random.Generator) -> Network:
    n_in, width = int(rng.integers(1, 5)), int(rng.integers(2, 5))
    graph = _Graph()
    first = graph.add(_dense(rng, n_in, width), "input")
    act = graph.add(_activation(rng), first)
    second = graph.add(_dense(rng, width, width), act)
    skip = first if rng.random() < 0.5 else graph.add(_dense(rng, n_in, width), "input")
    summed = graph.add(Add(), second, skip)
    top = graph.add(_activation(rng), summed)
    if rng.random() < 0.3:
        top = graph.add(Mul(), top, act)  # a product of two nodes
    if rng.random() < 0.5:
        top = graph.add(Concat(0), top, act)
        width *= 2
    if rng.random() < 0.3:
        start, step = int(rng.integers(0, width - 1)), int(rng.integers(1, 3))
        top = graph.add(Slice(0, start, width, step), top)
        width = len(range(start, width, step))
    graph.add(_dense(rng, width, int(rng.integers(1, 4))), top)
    return Network.from_graph((n_in,), graph.nodes)


def _torch_module(rng: np.random.Generator) -> tuple[nn.Sequential, tuple[int, ...]]:
    torch.manual_seed(int(rng.integers(2**31)))
    acts = [nn.ReLU, nn.Sigmoid, nn.Tanh, lambda: nn.LeakyReLU(0.2)]

    def act() -> nn.Module:
        return acts[int(rng.integers(len(acts)))]()

    if rng.random() < 0.5:
        n_in, hidden = int(rng.integers(1, 5)), int(rng.integers(2, 6))
        layers = [nn.Linear(n_in, hidden), nn.BatchNorm1d(hidden), act()]
        layers += [nn.Dropout(0.5), nn.Linear(hidden, int(rng.integers(1, 4)))]
        shape: tuple[int, ...] = (n_in,)
    else:
        c, h = int(rng.integers(1, 3)), int(rng.integers(3, 5))
        pool = nn.MaxPool2d(2, 1) if rng.random() < 0.5 else nn.AvgPool2d(2, 1, padding=1)
        layers = [nn.ZeroPad2d((1, 0, 0, 1)), nn.Conv2d(c, 2, 2, stride=1, padding=1)]
        layers += [nn.BatchNorm2d(2), act(), pool, nn.Flatten()]
        shape = (c, h, h)
        layers.append(nn.Linear(nn.Sequential(*layers).eval()(torch.zeros(1, *shape)).shape[1], 2))
    module = nn.Sequential(*layers).double()
    for layer in module:
        if isinstance(layer, (nn.BatchNorm1d, nn.BatchNorm2d)):
            n = layer.num_features
            layer.running_mean.copy_(torch.from_numpy(rng.normal(0.0, 0.5, n)))
            layer.running_var.copy_(torch.from_numpy(rng.uniform(0.3, 2.0, n)))
            layer.weight.data.copy_(torch.from_numpy(rng.normal(1.0, 0.5, n)))
    return module.eval(), shape


def random_network(rng: np.random.Generator, kind: str) -> Network:
    """A random network of one of the :data:`KINDS` (see there)."""
    if kind == "tiny":
        return _tiny(rng)
    if kind == "mlp":
        return _mlp(rng)
    if kind == "cnn":
        return _cnn(rng)
    if kind == "dag":
        return _dag(rng)
    if kind == "torch":
        module, shape = _torch_module(rng)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            network = from_torch(module, shape)
        network.torch_module = module  # type: ignore[attr-defined]  # checked by check_case
        return network
    raise ValueError(f"unknown network kind {kind!r}: expected one of {KINDS}")


# ---------------------------------------------------------------- specifications
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


# ---------------------------------------------------------------- region oracle
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


# ---------------------------------------------------------------- checking
@dataclass(frozen=True)
class Timeouts:
    """Per-method time limits (seconds) of :func:`check_case`."""

    attack: float = 0.02
    complete: float = 0.1
    auto: float = 0.3


@dataclass
class CaseReport:
    """What :func:`check_case` found on one problem.

    Attributes:
        seed: rebuilds the problem with :func:`random_case`.
        kind: the network family.
        verdicts: method -> ``'sat'``, ``'unsat'``, ``'unknown'``, ``'timeout'``,
            ``'n/a'`` (the method does not apply), ``'error'``, or ``'sat (false)'``
            (a counterexample a forward pass does not confirm).
        oracle: ``'regions'`` (exact minimal margin known), else ``'sampling'``.
        oracle_margin: the region oracle's minimal margin (``None`` without it).
        best_margin: the lowest margin of a confirmed counterexample (``inf``: none).
        unsound, disagreements, errors: one message per finding (see the module docstring;
            ``errors`` are exceptions other than "does not apply").
        near_tie: some answer was accepted only because the case is within :data:`TIE_TOL`.
        rejected: counterexamples an engine reported and the portfolio's check rejected.
        seconds: wall time per method, and ``'total'``.
    """

    seed: int
    kind: str
    verdicts: dict[str, str] = field(default_factory=dict)
    oracle: str = "sampling"
    oracle_margin: float | None = None
    best_margin: float = np.inf
    unsound: list[str] = field(default_factory=list)
    disagreements: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    near_tie: bool = False
    rejected: int = 0
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def clean(self) -> bool:
        """No unsound answer, disagreement or error."""
        return not (self.unsound or self.disagreements or self.errors)

    def summary(self) -> str:
        """One line per finding, each naming the seed."""
        lines = [f"seed {self.seed} ({self.kind}): unsound: {m}" for m in self.unsound]
        lines += [f"seed {self.seed} ({self.kind}): disagreement: {m}" for m in self.disagreements]
        lines += [f"seed {self.seed} ({self.kind}): error: {m}" for m in self.errors]
        return "\n".join(lines)


def _confirmed_margin(case: FuzzCase, x: object) -> float:
    """The margin of ``x`` by a plain float64 forward pass; ``inf`` outside every region."""
    x = np.asarray(x, dtype=np.float64).reshape(1, -1)
    if x.shape[1] != case.spec.num_inputs or not np.all(np.isfinite(x)):
        return np.inf
    y = np.asarray(case.network.get_output(x), dtype=np.float64).reshape(1, -1)
    return float(margins(case.spec, x, y)[0])


def _check_import(case: FuzzCase, X: np.ndarray, Y: np.ndarray, report: CaseReport) -> None:
    module = getattr(case.network, "torch_module", None)
    if module is None:
        return
    with torch.no_grad():
        expected = module(torch.from_numpy(X.reshape(-1, *case.network.input_shape)))
    expected = expected.reshape(X.shape[0], -1).numpy()
    gap = float(np.max(np.abs(expected - Y) / (1.0 + np.abs(expected)), initial=0.0))
    if gap > 1e-9:
        report.disagreements.append(f"from_torch network differs from its module by {gap:.3g}")


def _check_bounds(case: FuzzCase, X: np.ndarray, Y: np.ndarray, report: CaseReport) -> None:
    """``compute_bounds`` of every method must contain the sampled outputs (and ``C y``)."""
    for index, spec_case in enumerate(case.spec.cases):
        inside = spec_case.input_region.contains_batch(X)
        rows = [np.eye(case.network.output_size), *(h.C for h in spec_case.unsafe)]
        C = np.vstack(rows)
        values = Y[inside] @ C.T
        for method in ("ibp", "crown", "alpha-crown"):  # 'lp' runs as a verify method
            try:
                options = AlphaOptions(iterations=3) if method == "alpha-crown" else None
                found = compute_bounds(
                    case.network, spec_case.input_region, C, method, options=options
                )
            except UnsupportedModelError:
                continue
            except Exception as exc:  # a crash is a finding too
                report.errors.append(f"compute_bounds({method!r}): {type(exc).__name__}: {exc}")
                continue
            lower, upper = found.lower.numpy()[0], found.upper.numpy()[0]
            slack = BOUND_TOL * np.maximum(1.0, np.abs(values))
            below = values < lower - slack
            above = values > upper + slack
            if below.any() or above.any():
                report.unsound.append(
                    f"compute_bounds({method!r}) case {index}: a sampled value of C y lies outside "
                    f"[{lower.min():.6g}.., ..{upper.max():.6g}] by "
                    f"{max(np.max(lower - values), np.max(values - upper)):.3g}"
                )


def _run_methods(
    case: FuzzCase, methods: Sequence[str], timeouts: Timeouts, report: CaseReport
) -> list[float]:
    """Run each method; record verdicts and return the margins of their counterexamples."""
    found: list[float] = []
    for method in methods:
        limit = {"attack": timeouts.attack, "auto": timeouts.auto}.get(method, timeouts.complete)
        if method in BOUND_METHODS:
            limit = None  # bound methods run to the end; a limit would only turn unknown to timeout
        start = time.perf_counter()
        try:
            result = verify(case.network, case.spec, method=method, timeout=limit, seed=case.seed)
        except (UnsupportedModelError, SpecError):
            report.verdicts[method] = "n/a"
            continue
        except Exception as exc:
            report.verdicts[method] = "error"
            report.errors.append(f"{method}: {type(exc).__name__}: {exc}")
            continue
        finally:
            report.seconds[method] = time.perf_counter() - start
        verdict = Verdict(result.verdict)
        report.verdicts[method] = verdict.value
        report.rejected += int(result["statistics"].get("rejected_counterexamples", 0) or 0)
        if verdict is Verdict.SAT:
            pair = result.get("counterexample")
            margin = np.inf if pair is None else _confirmed_margin(case, pair[0])
            if margin > 0:
                report.verdicts[method] = "sat (false)"  # judged here, not by _judge
                report.unsound.append(
                    f"{method}: sat, but its counterexample is not confirmed "
                    f"(margin {margin:.3g} by a float64 forward pass, or outside the region)"
                )
            else:
                found.append(margin)
        elif method in BOUND_METHODS and verdict not in (
            Verdict.UNSAT,
            Verdict.UNKNOWN,
            Verdict.TIMEOUT,
        ):
            report.disagreements.append(f"{method} is a bound method but answered {verdict.value}")
    return found


def _judge(report: CaseReport) -> None:
    """Compare every decided answer with the oracles (see the module docstring)."""
    oracle, best = report.oracle_margin, report.best_margin
    for method, verdict in report.verdicts.items():
        if verdict == "unsat":
            if oracle is not None and oracle < -TIE_TOL:
                report.unsound.append(
                    f"{method}: unsat, but the region oracle finds margin {oracle:.6g}"
                )
            elif best < -TIE_TOL:
                report.unsound.append(
                    f"{method}: unsat, but a confirmed counterexample has margin {best:.6g}"
                )
            elif best <= 0 or (oracle is not None and oracle <= TIE_TOL):
                report.near_tie = True
        elif verdict == "sat" and oracle is not None:
            if oracle > TIE_TOL:
                report.disagreements.append(
                    f"{method}: sat with a confirmed counterexample, but the region oracle "
                    f"proves margin {oracle:.6g} > 0"
                )
            elif oracle >= -TIE_TOL:
                report.near_tie = True


def check_case(
    case: FuzzCase,
    methods: Sequence[str] | None = None,
    timeouts: Timeouts = Timeouts(),
    samples: int = 128,
    sdp: bool | None = None,
) -> CaseReport:
    """Run every method on ``case`` and compare the answers with the oracles.

    Args:
        case: the problem (see :func:`random_case`).
        methods: the methods to run (default: every one of
            :data:`verifiNN.verifiers.portfolio.METHODS`); methods that raise
            ``UnsupportedModelError`` or ``SpecError`` are recorded as ``'n/a'``.
        timeouts: per-method time limits.
        samples: random points per input region for the sampling oracle.
        sdp: run ``'sdp'`` (slow); default: only on tiny networks.

    Returns:
        The :class:`CaseReport`; ``report.clean`` is False on any finding.
    """
    start = time.perf_counter()
    report = CaseReport(case.seed, case.kind)
    methods = list(METHODS if methods is None else methods)
    if not (case.kind == "tiny" if sdp is None else sdp) and "sdp" in methods:
        methods.remove("sdp")
    rng = np.random.default_rng([case.seed, 1])
    X = np.vstack([sample_region(c.input_region, rng, samples) for c in case.spec.cases])
    Y = np.asarray(case.network.get_output(X), dtype=np.float64).reshape(X.shape[0], -1)
    sampled = margins(case.spec, X, Y)
    found = [float(sampled.min(initial=np.inf))]
    _check_import(case, X, Y, report)
    try:
        oracle, witness = region_oracle(case.network, case.spec)
    except UnsupportedModelError:
        pass
    else:
        report.oracle, report.oracle_margin = "regions", oracle
        if oracle > found[0] + TIE_TOL:
            report.disagreements.append(
                f"region oracle margin {oracle:.6g} exceeds a sampled margin {found[0]:.6g}"
            )
        if witness is not None:
            confirmed = _confirmed_margin(case, witness)
            if confirmed > oracle + TIE_TOL:
                report.disagreements.append(
                    f"region oracle witness has margin {confirmed:.6g}, not {oracle:.6g}"
                )
            found.append(confirmed)
    report.seconds["oracle"] = time.perf_counter() - start
    found += _run_methods(case, methods, timeouts, report)
    report.best_margin = min(m for m in found if m <= 0) if min(found) <= 0 else np.inf
    _judge(report)
    bounds_start = time.perf_counter()
    _check_bounds(case, X, Y, report)
    report.seconds["bounds"] = time.perf_counter() - bounds_start
    report.seconds["total"] = time.perf_counter() - start
    return report
