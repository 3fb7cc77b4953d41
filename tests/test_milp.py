"""Tests of the big-M MILP (verifiNN.solvers.milp) against brute force and the attack.

The oracle enumerates every activation pattern of a tiny network: on each
pattern the network is affine and the pattern is a polytope of inputs, so the
exact minimum of ``c . y`` is the smallest of one LP per pattern (solved by
``scipy.optimize.linprog``, independent of verifiNN's solver code).
"""

from __future__ import annotations

import csv
import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog

from conftest import random_mlp_params
from verifiNN.budget import Budget
from verifiNN.errors import InvalidInputError, UnsupportedModelError
from verifiNN.io import load_onnx, load_vnnlib
from verifiNN.models.network import Network, Node
from verifiNN.ops import Dense, ReLU, Sigmoid, as_tensor
from verifiNN.results import Verdict
from verifiNN.search import attack
from verifiNN.search.milp import milp_verify
from verifiNN.solvers.milp import (
    encode_mlp,
    encode_mlp_compact,
    layer_bounds,
    milp_minimum,
    mlp_layers,
)
from verifiNN.specs import Box, Case, HalfSpaces, LpBall, Specification


def tiny_net(seed: int, widths: list[int]) -> Network:
    weights, biases = random_mlp_params(np.random.default_rng(seed), widths)
    return Network(weights, biases)


def brute_force_min(weights, biases, c, lower, upper, l1=None, final_relu=False) -> float:
    """Exact ``min c . y`` over the box (and an L1 ball ``(center, eps)``) by enumeration."""
    n = lower.size
    hidden = [w.shape[0] for w in weights[:-1]] + ([weights[-1].shape[0]] if final_relu else [])
    best = np.inf
    extra = 0 if l1 is None else n  # L1: auxiliary s >= |x - center|, sum s <= eps
    for pattern in itertools.product([0.0, 1.0], repeat=sum(hidden)):
        M, m = np.eye(n), np.zeros(n)
        rows, rhs, start = [], [], 0
        for k, (w, b) in enumerate(zip(weights, biases)):
            M, m = w @ M, w @ m + b
            if k == len(weights) - 1 and not final_relu:
                break
            on = np.array(pattern[start : start + w.shape[0]])
            start += w.shape[0]
            sign = np.where(on > 0, -1.0, 1.0)  # on: -z <= 0; off: z <= 0
            rows.append(sign[:, None] * M)
            rhs.append(-sign * m)
            M, m = on[:, None] * M, on * m
        A = np.concatenate(rows) if rows else np.zeros((0, n))
        bounds = list(zip(lower, upper))
        if l1 is not None:
            center, eps = l1
            eye = np.eye(n)
            A = np.block(
                [
                    [A, np.zeros((A.shape[0], n))],
                    [eye, -eye],
                    [-eye, -eye],
                    [np.zeros((1, n)), np.ones((1, n))],
                ]
            )
            rhs = [*rhs, center, -center, [eps]]
            bounds += [(0, None)] * n
        cost = np.concatenate([c @ M, np.zeros(extra)])
        b_ub = np.concatenate(rhs) if rhs else np.zeros(0)
        res = linprog(
            cost, A_ub=A if A.size else None, b_ub=b_ub if A.size else None, bounds=bounds
        )
        if res.status == 0:
            best = min(best, res.fun + c @ m)
    return best


def one_case_spec(region, C, d) -> Specification:
    return Specification((Case(region, (HalfSpaces(C, d),)),))


def grid_margin(network: Network, spec: Specification, points: int = 201) -> float:
    case = spec.cases[0]
    box = case.input_region.bounding_box()
    axes = [np.linspace(lo, hi, points) for lo, hi in zip(box.lower, box.upper)]
    X = np.stack([g.ravel() for g in np.meshgrid(*axes, indexing="ij")], axis=1)
    Y = network.get_output(X)
    return float(np.min([np.max(Y @ h.C.T - h.d, axis=1) for h in case.unsafe], axis=0).min())


# ------------------------------------------------------------- exact minimum
@pytest.mark.parametrize("seed", range(8))
def test_milp_minimum_equals_brute_force(seed):
    rng = np.random.default_rng(seed)
    widths = [2 + seed % 2, 4, 4, 2]
    network = tiny_net(seed, widths)
    lower = rng.uniform(-1.0, 0.0, widths[0])
    upper = lower + rng.uniform(0.2, 1.5, widths[0])
    c = rng.normal(size=2)
    mlp = network.as_mlp()
    expected = brute_force_min(mlp.weights, mlp.biases, c, lower, upper)
    for method in ("ibp", "crown"):
        found = milp_minimum(network, Box(lower, upper), c, bounds_method=method)
        assert found.status == "optimal"
        assert found.value == pytest.approx(expected, abs=1e-6)
        assert found.lower_bound <= expected + 1e-6
        assert np.all(found.x >= lower) and np.all(found.x <= upper)


@pytest.mark.parametrize("seed", range(4))
def test_milp_minimum_over_an_l1_ball_equals_brute_force(seed):
    rng = np.random.default_rng(50 + seed)
    network = tiny_net(50 + seed, [3, 4, 3, 1])
    center = rng.uniform(-0.5, 0.5, 3)
    ball = LpBall(center, 0.6, "1", lower=-0.7, upper=0.7)
    box = ball.bounding_box()
    mlp = network.as_mlp()
    expected = brute_force_min(
        mlp.weights, mlp.biases, np.ones(1), box.lower, box.upper, (center, 0.6)
    )
    found = milp_minimum(network, ball, [1.0])
    assert found.value == pytest.approx(expected, abs=1e-6)
    assert ball.contains(found.x)


def test_network_ending_in_relu_is_encoded():
    rng = np.random.default_rng(3)
    weights, biases = random_mlp_params(rng, [2, 4, 2])
    nodes = [
        Node("d0", Dense(as_tensor(weights[0]), as_tensor(biases[0])), ("input",)),
        Node("r0", ReLU(), ("d0",)),
        Node("d1", Dense(as_tensor(weights[1]), as_tensor(biases[1])), ("r0",)),
        Node("r1", ReLU(), ("d1",)),
    ]
    network = Network.from_graph((2,), nodes)
    c = np.array([1.0, -2.0])
    expected = brute_force_min(weights, biases, c, -np.ones(2), np.ones(2), final_relu=True)
    found = milp_minimum(network, Box(-np.ones(2), np.ones(2)), c)
    assert found.value == pytest.approx(expected, abs=1e-6)


def test_binaries_are_the_unstable_relus():
    network = tiny_net(9, [2, 6, 6, 1])
    box = Box([-1.0, -1.0], [1.0, 1.0])
    mlp, _ = mlp_layers(network)
    counts = {}
    for method in ("ibp", "crown"):
        pairs, _, _ = layer_bounds(network, box, None, method)
        unstable = sum(int(np.sum((lo < 0) & (hi > 0))) for lo, hi in pairs[:-1])
        counts[method] = encode_mlp(mlp, box, pairs).binaries
        assert counts[method] == unstable
    assert counts["crown"] <= counts["ibp"]


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), l1=st.booleans())
def test_compact_encoding_has_the_same_minimum_as_the_sparse_one(seed, l1):
    """Substituting stable ReLUs away (encode_mlp_compact) changes the model, not
    its optimum: both encodings' minima agree, on boxes and L1 balls, on nets
    too wide for enumeration."""
    rng = np.random.default_rng(seed)
    n_in = int(rng.integers(2, 5))
    widths = [n_in, *(int(w) for w in rng.integers(6, 14, size=int(rng.integers(2, 4)))), 3]
    network = tiny_net(seed, widths)
    center = rng.uniform(-0.5, 0.5, n_in)
    radius = float(rng.uniform(0.1, 0.8))
    region = LpBall(center, radius, "1") if l1 else Box(center - radius, center + radius)
    c = rng.normal(size=3)
    compact = milp_minimum(network, region, c, compact=True, bounds_method="crown")
    sparse = milp_minimum(network, region, c, compact=False, bounds_method="crown")
    assert compact.status == sparse.status == "optimal"
    assert compact.value == pytest.approx(sparse.value, abs=1e-6 * (1 + abs(sparse.value)))
    assert region.contains(compact.x)


def test_compact_encoding_has_one_binary_per_unstable_relu_and_few_columns():
    network = tiny_net(9, [2, 16, 16, 1])
    box = Box([-0.3, -0.3], [0.3, 0.3])
    mlp, _ = mlp_layers(network)
    pairs, _, _ = layer_bounds(network, box, None, "crown")
    unstable = sum(int(np.sum((lo < 0) & (hi > 0))) for lo, hi in pairs[:-1])
    compact = encode_mlp_compact(mlp, box, pairs)
    assert compact.binaries == encode_mlp(mlp, box, pairs).binaries == unstable
    # input + (output, binary) per unstable ReLU + the output
    assert compact.lp.num_cols == 2 + 2 * unstable + 1


@pytest.mark.parametrize("seed", range(6))
def test_given_hidden_bounds_give_the_same_verdicts(seed):
    """milp_verify(hidden_bounds=...) (branch and bound's leaves) decides as the
    MILP with its own bounds, on both sides of the exact minimum."""
    network = tiny_net(400 + seed, [3, 8, 8, 2])
    box = Box(-np.ones(3), np.ones(3))
    row = np.array([[1.0, -1.0]])
    minimum = milp_minimum(network, box, row[0]).value
    pairs, _, _ = layer_bounds(network, box, None, "crown")
    for t, expected in ((minimum - 1e-4, Verdict.UNSAT), (minimum + 1e-4, Verdict.SAT)):
        spec = one_case_spec(box, row, np.array([t]))
        given_ = milp_verify(network, spec, hidden_bounds=pairs[:-1])
        assert given_.verdict is expected
        assert milp_verify(network, spec).verdict is expected
    with pytest.raises(InvalidInputError, match="hidden bound pairs"):
        milp_verify(network, one_case_spec(box, row, np.array([0.0])), hidden_bounds=pairs)


# ------------------------------------------------------------- verdicts
@pytest.mark.slow
@pytest.mark.parametrize("seed", range(10))
def test_milp_verify_is_exact_on_tiny_nets(seed):
    rng = np.random.default_rng(200 + seed)
    network = tiny_net(200 + seed, [2, 4, 4, 1])
    box = Box([-1.0, -1.0], [1.0, 1.0])
    mlp = network.as_mlp()
    true_min = brute_force_min(mlp.weights, mlp.biases, np.ones(1), box.lower, box.upper)
    for threshold in (true_min - 0.05, true_min + 0.05, true_min + rng.uniform(0.001, 0.01)):
        spec = one_case_spec(box, [[1.0]], [threshold])  # unsafe: y <= threshold
        result = milp_verify(network, spec)
        if threshold < true_min:
            assert result.verdict is Verdict.UNSAT
        else:
            assert result.verdict is Verdict.SAT
            assert spec.check_counterexample(network, result.counterexample[0])
            x, y = result.counterexample
            np.testing.assert_array_equal(y, network.get_output(x))


@pytest.mark.parametrize("seed", range(8))
def test_milp_verify_never_contradicts_a_grid_or_the_attack(seed):
    rng = np.random.default_rng(300 + seed)
    network = tiny_net(300 + seed, [2, 5, 3])
    box = Box([-1.0, -1.0], [1.0, 1.0])
    C = rng.normal(size=(2, 3))
    Y = network.get_output(rng.uniform(-1, 1, (500, 2)))
    d = np.quantile(Y @ C.T, rng.uniform(0.0, 0.3), axis=0)
    spec = one_case_spec(box, C, d)
    result = milp_verify(network, spec)
    if grid_margin(network, spec) <= 0:
        assert result.verdict is not Verdict.UNSAT
    if result.verdict is Verdict.SAT:
        assert spec.check_counterexample(network, result.counterexample[0])
    else:
        assert result.counterexample is None
    if attack(network, spec, restarts=8, steps=20).found:
        assert result.verdict is Verdict.SAT


def test_cases_and_disjuncts():
    network = Network([np.eye(2)], [np.zeros(2)])  # y = x
    never = HalfSpaces([[1.0, 0.0]], [-5.0])
    corner = HalfSpaces([[1.0, 0.0], [0.0, -1.0]], [0.2, -0.7])  # x0 <= 0.2 and x1 >= 0.7
    spec = Specification(
        (
            Case(Box([0.5, 0.5], [1.0, 1.0]), (never, corner)),
            Case(Box([0.0, 0.0], [1.0, 1.0]), (never, corner)),
        )
    )
    result = milp_verify(network, spec)
    assert result.verdict is Verdict.SAT and result.statistics["case"] == 1
    assert spec.check_counterexample(network, result.counterexample[0])
    safe = Specification(spec.cases[:1])
    proved = milp_verify(network, safe)
    assert proved.verdict is Verdict.UNSAT
    assert proved.statistics["proved_by_bounds"] == 2  # linear net: CROWN is exact


def test_l2_ball_is_relaxed_soundly():
    network = tiny_net(4, [2, 6, 1])
    ball = LpBall([0.0, 0.0], 0.5, "2")
    X = np.random.default_rng(0).normal(size=(2000, 2))
    X *= 0.5 * np.minimum(1.0, 1.0 / np.linalg.norm(X, axis=1, keepdims=True))  # in the ball
    Y = network.get_output(X)
    spec = one_case_spec(ball, [[1.0]], [float(Y.min())])
    result = milp_verify(network, spec)
    assert result.verdict in (Verdict.SAT, Verdict.UNKNOWN)
    if result.verdict is Verdict.SAT:
        assert ball.contains(result.counterexample[0])
    with pytest.raises(InvalidInputError):
        milp_minimum(network, ball, [1.0])


def test_timeout_and_unsupported_networks():
    network = tiny_net(12, [2, 4, 4, 1])
    box = Box([-1.0, -1.0], [1.0, 1.0])
    mlp = network.as_mlp()
    true_min = brute_force_min(mlp.weights, mlp.biases, np.ones(1), box.lower, box.upper)
    spec = one_case_spec(box, [[1.0]], [true_min - 1e-3])  # unsat, not by bounds alone
    assert milp_verify(network, spec, Budget.start(0.0)).verdict is Verdict.TIMEOUT
    assert milp_verify(network, spec, Budget.start(60)).verdict is Verdict.UNSAT
    nodes = [
        Node("d0", Dense(as_tensor(np.ones((2, 2))), as_tensor(np.zeros(2))), ("input",)),
        Node("s0", Sigmoid(), ("d0",)),
        Node("d1", Dense(as_tensor(np.ones((1, 2))), as_tensor(np.zeros(1))), ("s0",)),
    ]
    with pytest.raises(UnsupportedModelError):
        milp_verify(Network.from_graph((2,), nodes), spec)


# ------------------------------------------------------------- benchmarks
def test_milp_decides_the_test_instances(benchmark_data):
    folder = benchmark_data / "test"
    with open(folder / "expected.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert rows
    for row in rows:
        network = load_onnx(folder / row["onnx"])
        spec = load_vnnlib(folder / row["vnnlib"], network)
        result = milp_verify(network, spec, Budget.start(60))
        assert result.verdict.value == row["expected"], row
        if result.verdict is Verdict.SAT:
            assert spec.check_counterexample(network, result.counterexample[0])
