"""The piecewise-constant ops (:mod:`verifiNN.ops.integer`): Step (strict and not) and Trunc.

* relaxation level: on 10,000 sampled points of random boxes (points, tiny,
  wide and huge boxes, ends exactly at the jump 0 and at integers) the linear
  bounds and the interval contain the function, for CROWN's parameters and for
  random and extreme ones, plus a hypothesis property over single boxes; the
  backward rule bounds random linear functions (also with per-row parameters,
  as alpha-CROWN uses them); the lines are the hull's edges where the
  literature says so, and constant off the jumps;
* graph level: on small networks using the ops (and the arg-max encoding of
  :mod:`verifiNN.io.onnx.integer`), IBP contains CROWN contains the sampled
  outputs, and alpha-CROWN is inside CROWN;
* rounding: a float32 evaluation stays within the rounding-error bound.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from test_bounds_soundness import assert_contains, outputs, random_boxes
from test_relaxations_nonlinear import (
    alphas,
    check_backward,
    check_contains,
    points_in,
    sample_boxes,
)
from verifiNN.bounds import AlphaOptions, CrownOptions, compute_bounds
from verifiNN.bounds.float_error import rounding_error_bound
from verifiNN.bounds.relaxations import RELAXATIONS
from verifiNN.models.network import Network, Node
from verifiNN.ops import Add, Dense, ElementwiseAffine, ReLU, Step, Trunc, as_tensor

torch.set_num_threads(1)
OPS = {"step_strict": Step(strict=True), "step": Step(strict=False), "trunc": Trunc()}
TESTED_TYPES = {type(op) for op in OPS.values()}
"""The registry entries this file tests (read by ``test_bounds_relaxations``)."""


def integer_boxes(rng: np.random.Generator, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`sample_boxes` with a third of the ends moved to integers (Trunc's jumps)."""
    lower, upper = sample_boxes(rng, n)
    pick = torch.tensor(rng.random(n) < 0.33)
    lower = torch.where(pick, torch.round(lower), lower)
    pick = torch.tensor(rng.random(n) < 0.33)
    upper = torch.where(pick, torch.round(upper), upper)
    return torch.minimum(lower, upper), torch.maximum(lower, upper)


def _with_jumps(x: torch.Tensor, lower: torch.Tensor, upper: torch.Tensor) -> torch.Tensor:
    """Sampled points plus the jump points inside each box (0 and integers near the ends)."""
    extra = torch.stack([torch.zeros_like(lower), torch.ceil(lower), torch.floor(upper)], 1)
    extra = torch.minimum(torch.maximum(extra, lower[:, None]), upper[:, None])
    return torch.cat([x, extra], 1)


# ------------------------------------------------------- relaxation level
@pytest.mark.parametrize("name", sorted(OPS))
@pytest.mark.parametrize("mode", ["default", "random", "extreme"])
def test_relaxation_and_interval_contain_the_function(name, mode):
    op = OPS[name]
    rng = np.random.default_rng(sorted(OPS).index(name))
    lower, upper = integer_boxes(rng, 500)
    record = RELAXATIONS[type(op)]
    lin = record.relax(op, lower, upper, alphas(mode, record, op, lower, upper, rng))
    x = _with_jumps(points_in(lower, upper, 20, rng), lower, upper)  # 10,000 points and more
    check_contains(op, lower, upper, lin, x)


@settings(max_examples=400, deadline=None)
@given(
    name=st.sampled_from(sorted(OPS)),
    lower=st.floats(-60, 60),
    log_width=st.floats(-12, 2.7),
    edge=st.sampled_from(["none", "lower at 0", "upper at 0", "point", "integer ends"]),
    alpha=st.tuples(st.floats(0, 1), st.floats(0, 1)),
)
def test_relaxation_property(name, lower, log_width, edge, alpha):
    op = OPS[name]
    upper = lower + 10.0**log_width
    lower, upper = {
        "none": (lower, upper),
        "lower at 0": (0.0, abs(upper - lower)),
        "upper at 0": (-abs(upper - lower), 0.0),
        "point": (lower, lower),
        "integer ends": (float(np.floor(lower)), float(np.ceil(upper))),
    }[edge]
    lo, hi = torch.tensor([lower], dtype=torch.float64), torch.tensor([upper], dtype=torch.float64)
    a = tuple(torch.tensor([v], dtype=torch.float64) for v in alpha)
    lin = RELAXATIONS[type(op)].relax(op, lo, hi, a)
    x = _with_jumps(points_in(lo, hi, 300, np.random.default_rng(0)), lo, hi)
    check_contains(op, lo, hi, lin, x)


@pytest.mark.parametrize("name", sorted(OPS))
def test_backward_bounds_linear_functions(name):
    op = OPS[name]
    rng = np.random.default_rng(100 + sorted(OPS).index(name))
    record = RELAXATIONS[type(op)]
    lower, upper = integer_boxes(rng, 480)
    keep = upper - lower < 50
    lower, upper = lower[keep][:360].reshape(30, 3, 4), upper[keep][:360].reshape(30, 3, 4)
    default = record.default_alpha(op, lower, upper, True)
    check_backward(op, lower, upper, record.relax(op, lower, upper, default), rng, rows=4)
    per_row = tuple(torch.tensor(rng.uniform(0, 1, (30, 5, 3, 4))) for _ in default)
    lin = record.relax(op, lower.unsqueeze(1), upper.unsqueeze(1), per_row)
    check_backward(op, lower, upper, lin, rng, rows=5)


def _lines(op, lower: float, upper: float, alpha=(1.0, 1.0)):
    lo, hi = torch.tensor([lower], dtype=torch.float64), torch.tensor([upper], dtype=torch.float64)
    a = tuple(torch.tensor([v], dtype=torch.float64) for v in alpha)
    lin = RELAXATIONS[type(op)].relax(op, lo, hi, a)
    return tuple(float(v) for v in (lin.lw, lin.lb, lin.uw, lin.ub))


def test_step_lines_are_the_hull_edges_across_the_jump():
    lw, lb, uw, ub = _lines(Step(strict=True), -2.0, 4.0)
    assert (lw, lb, uw, ub) == pytest.approx((0.25, 0.0, 0.5, 1.0))  # through (4, 1) and (-2, 0)
    lw, lb, uw, ub = _lines(Step(strict=False), -2.0, 4.0, (0.0, 0.0))
    assert (lw, lb, uw, ub) == (0.0, 0.0, 0.0, 1.0)


@pytest.mark.parametrize(
    ("op", "lower", "upper", "value"),
    [
        (Step(strict=True), -3.0, 0.0, 0.0),  # 0 maps to 0
        (Step(strict=False), 0.0, 2.0, 1.0),  # 0 maps to 1
        (Step(strict=True), 1e-9, 5.0, 1.0),
        (Step(strict=False), -5.0, -1e-9, 0.0),
        (Trunc(), 2.0, 2.999, 2.0),
        (Trunc(), -0.999, 0.999, 0.0),
        (Trunc(), -3.5, -3.0, -3.0),
    ],
    ids=repr,
)
def test_exact_off_the_jumps(op, lower, upper, value):
    assert _lines(op, lower, upper) == (0.0, value, 0.0, value)
    assert RELAXATIONS[type(op)].needs_bounds(
        op, torch.tensor([lower]), torch.tensor([upper])
    ).tolist() == [False]


def test_split_points():
    assert RELAXATIONS[Step].split_points(Step()) == (0.0,)
    assert RELAXATIONS[Trunc].split_points(Trunc()) == ()


def test_trunc_lines_are_valid_on_unbounded_intervals():
    lw, lb, uw, ub = _lines(Trunc(), -np.inf, np.inf, (0.3, 0.7))
    assert (lw, uw) == (1.0, 1.0) and lb == pytest.approx(-1.0) and ub == pytest.approx(1.0)


# ------------------------------------------------------------ graph level
FAST_ALPHA = AlphaOptions(iterations=5, lr=0.3)


def _dense(rng, n_in: int, n_out: int, scale: float = 1.0) -> Dense:
    w = rng.normal(0.0, scale / np.sqrt(n_in), size=(n_out, n_in))
    return Dense(as_tensor(w), as_tensor(rng.normal(0.0, 0.5, size=n_out)))


def _pairs_matrix(k: int) -> np.ndarray:
    """Rows ``x_c - x_j`` for every ordered pair ``c != j``."""
    rows = []
    for c in range(k):
        for j in range(k):
            if j != c:
                row = np.zeros(k)
                row[c], row[j] = 1.0, -1.0
                rows.append(row)
    return np.array(rows)


def op_network(name: str, rng) -> Network:
    """``input -> Dense -> op -> Dense -> ReLU -> Dense``; ``argmax``: the one-hot encoding
    of an arg-max of 3 logits (steps of the pairwise differences, an AND by a ReLU)."""
    if name == "argmax":
        pairs = _pairs_matrix(3)
        strict = [(c, j) for c in range(3) for j in range(3) if j != c]
        and_matrix = np.zeros((3, 6))
        for col, (c, _) in enumerate(strict):
            and_matrix[c, col] = 1.0
        nodes = [
            Node("logits", _dense(rng, 3, 3, scale=2.0), ("input",)),
            Node("d", Dense(as_tensor(pairs), as_tensor(np.zeros(6))), ("logits",)),
            Node("steps", Step(strict=True), ("d",)),
            Node("and", Dense(as_tensor(and_matrix), as_tensor(-np.ones(3))), ("steps",)),
            Node("hot", ReLU(), ("and",)),
            Node(
                "out", Dense(as_tensor(rng.normal(size=(2, 3))), as_tensor(np.zeros(2))), ("hot",)
            ),
        ]
        return Network.from_graph((3,), nodes)
    nodes = [
        Node("fc0", _dense(rng, 3, 5, scale=3.0), ("input",)),
        Node("act", OPS[name], ("fc0",)),
        Node("fc1", _dense(rng, 5, 4), ("act",)),
        Node("skip", _dense(rng, 3, 4), ("input",)),
        Node("sum", Add(), ("fc1", "skip")),
        Node("relu", ReLU(), ("sum",)),
        Node("out", _dense(rng, 4, 2, scale=2.0), ("relu",)),
    ]
    return Network.from_graph((3,), nodes)


def _samples(lower: np.ndarray, upper: np.ndarray, rng, count: int) -> np.ndarray:
    """``(B, P, n)``: corners and uniform points (gradients vanish on steps)."""
    batch, n = lower.shape
    corners = np.where(rng.random((batch, count, n)) < 0.5, lower[:, None], upper[:, None])
    uniform = rng.uniform(lower[:, None], upper[:, None], size=(batch, 4 * count, n))
    return np.concatenate([corners, uniform], axis=1)


@pytest.mark.parametrize("name", [*sorted(OPS), "argmax"])
@pytest.mark.parametrize("seed", [0, 1])
def test_graph_bounds_are_ordered_and_contain_sampled_outputs(name, seed):
    rng = np.random.default_rng(10 * seed + len(name))
    network = op_network(name, rng)
    lower, upper = random_boxes(rng, 3, 3, 0.8)
    C = rng.normal(size=(3, 2))
    values = outputs(network, _samples(lower, upper, rng, 100))
    results = {m: compute_bounds(network, (lower, upper), C, m) for m in ("ibp", "crown")}
    results["raw-crown"] = compute_bounds(
        network, (lower, upper), C, "crown", options=CrownOptions(intersect_ibp=False)
    )
    results["alpha-crown"] = compute_bounds(
        network, (lower, upper), C, "alpha-crown", options=FAST_ALPHA
    )
    for method, result in results.items():
        assert bool(torch.isfinite(result.lower).all() & torch.isfinite(result.upper).all())
        assert_contains(result, C, values, f"{method} on {name}")
    ibp, crown, alpha = results["ibp"], results["crown"], results["alpha-crown"]
    tol = 1e-9 * (1 + ibp.lower.abs() + ibp.upper.abs())
    assert bool((crown.lower >= ibp.lower - tol).all() & (crown.upper <= ibp.upper + tol).all())
    assert bool((alpha.lower >= crown.lower - tol).all() & (alpha.upper <= crown.upper + tol).all())


def test_crown_is_exact_where_the_steps_are_decided():
    rng = np.random.default_rng(3)
    network = op_network("argmax", rng)
    x = np.array([[0.3, -0.4, 0.9]])
    lower, upper = x - 1e-6, x + 1e-6
    C = np.eye(2)
    result = compute_bounds(network, (lower, upper), C, "crown")
    y = network.get_output(x.ravel())
    np.testing.assert_allclose(result.lower.numpy().ravel(), y, atol=1e-9)
    np.testing.assert_allclose(result.upper.numpy().ravel(), y, atol=1e-9)


# ---------------------------------------------------------------- rounding
@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), width=st.floats(0.0, 2.0))
def test_float32_evaluation_stays_within_the_rounding_bound(seed, width):
    rng = np.random.default_rng(seed)
    nodes = [
        Node("d", _dense(rng, 4, 6, scale=3.0), ("x",)),
        Node("s", Step(strict=True), ("d",)),
        Node("w", Step(strict=False), ("d",)),
        Node("t", Trunc(), ("d",)),
        Node("a", ElementwiseAffine(as_tensor(1.0), as_tensor(0.5)), ("t",)),
        Node("u", Add(), ("s", "w")),
        Node("o", Add(), ("u", "a")),
    ]
    network = Network.from_graph((4,), nodes, "o", "argmax", "x")
    center = rng.normal(0, 1, 4)
    lower, upper = center - width, center + width
    error = rounding_error_bound(network, lower, upper, "float32")
    x = torch.tensor(rng.uniform(lower, upper, size=(300, 4))).to(torch.float32).to(torch.float64)
    x = torch.clamp(x, torch.tensor(lower), torch.tensor(upper))
    with torch.no_grad():
        real = network.forward(x).numpy()
        rounded = network.to(torch.float32).forward(x.to(torch.float32)).double().numpy()
    assert np.all(np.abs(rounded - real) <= error + 1e-12)
