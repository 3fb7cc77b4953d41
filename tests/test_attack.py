"""Tests of the falsifying attack (verifiNN.search.attack) and its projections."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import random_mlp_params
from verifiNN.budget import Budget
from verifiNN.errors import InvalidInputError, SpecError
from verifiNN.io import load_onnx, load_vnnlib
from verifiNN.models.network import Network
from verifiNN.regions import (
    project_ball,
    project_l1_ball,
    project_l2_ball,
    project_region,
)
from verifiNN.search import attack, attack_domains
from verifiNN.specs import Box, Case, HalfSpaces, LpBall, Specification


def tiny_net(seed: int, widths: list[int]) -> Network:
    weights, biases = random_mlp_params(np.random.default_rng(seed), widths)
    return Network(weights, biases)


def one_case_spec(region, C, d) -> Specification:
    return Specification((Case(region, (HalfSpaces(C, d),)),))


def grid(lower: np.ndarray, upper: np.ndarray, points: int) -> np.ndarray:
    axes = [np.linspace(lo, hi, points) for lo, hi in zip(lower, upper)]
    return np.stack([g.ravel() for g in np.meshgrid(*axes, indexing="ij")], axis=1)


def grid_margin(network: Network, spec: Specification, points: int = 201) -> float:
    """Smallest margin ``min_k max_i (C_i y - d_i)`` over a dense grid of the (one) case's box."""
    case = spec.cases[0]
    box = case.input_region.bounding_box()
    X = grid(box.lower, box.upper, points)
    X = X[case.input_region.contains_batch(X)]
    Y = network.get_output(X)
    margins = np.min([np.max(Y @ h.C.T - h.d, axis=1) for h in case.unsafe], axis=0)
    return float(margins.min())


# ------------------------------------------------------------- soundness
@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n_in=st.integers(1, 3),
    threshold=st.floats(-2.0, 2.0),
    norm=st.sampled_from(["box", "inf", "2", "1"]),
)
def test_every_counterexample_satisfies_the_spec(seed, n_in, threshold, norm):
    rng = np.random.default_rng(seed)
    network = tiny_net(seed, [n_in, 6, 6, 2])
    center = rng.uniform(-1, 1, n_in)
    region = (
        Box(center - 0.5, center + 0.5)
        if norm == "box"
        else LpBall(center, 0.5, norm, lower=center - 0.4, upper=center + 0.6)
    )
    spec = Specification(
        (
            Case(
                region,
                (HalfSpaces([[1.0, -1.0]], [threshold]), HalfSpaces([[0.0, 1.0]], [threshold])),
            ),
        )
    )
    result = attack(network, spec, restarts=8, steps=20, samples=64, seed=seed)
    if result.found:
        x = result.counterexample
        assert spec.check_counterexample(network, x)
        assert region.contains(x)
        np.testing.assert_array_equal(result.y, network.get_output(x))
        assert result.case == 0
        assert result.margin <= 0
    else:
        assert result.counterexample is None and result.y is None and result.margin > 0


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("n_in", [1, 2])
def test_finds_a_violation_that_a_dense_grid_finds(seed, n_in):
    network = tiny_net(100 + seed, [n_in, 8, 8, 1])
    box = Box(-np.ones(n_in), np.ones(n_in))
    Y = network.get_output(grid(box.lower, box.upper, 101))
    threshold = float(np.quantile(Y, 0.02))  # a small but not tiny unsafe set
    spec = one_case_spec(box, [[1.0]], [threshold])
    assert grid_margin(network, spec) <= 0
    result = attack(network, spec, seed=seed)
    assert result.found
    assert spec.check_counterexample(network, result.counterexample)


def test_no_counterexample_when_the_grid_margin_is_positive():
    network = tiny_net(7, [2, 8, 8, 1])
    box = Box([-1.0, -1.0], [1.0, 1.0])
    low = network.get_output(grid(box.lower, box.upper, 101)).min()
    spec = one_case_spec(box, [[1.0]], [low - 10.0])  # far below anything reachable
    result = attack(network, spec, restarts=16, steps=30)
    assert not result.found and result.margin > 0


def test_a_tie_on_the_boundary_is_a_counterexample():
    network = Network([np.eye(2)], [np.zeros(2)])  # y = x
    box = Box([0.0, 0.0], [1.0, 1.0])
    result = attack(network, one_case_spec(box, [[1.0, 1.0]], [0.0]), samples=16)
    assert result.found
    np.testing.assert_array_equal(result.counterexample, [0.0, 0.0])
    missed = attack(network, one_case_spec(box, [[1.0, 1.0]], [-1e-12]), restarts=4, steps=10)
    assert not missed.found


def test_picks_the_violated_case_and_disjunct():
    network = Network([np.eye(2)], [np.zeros(2)])
    unreachable = HalfSpaces([[1.0, 0.0]], [-5.0])
    reachable = HalfSpaces([[1.0, 0.0], [0.0, -1.0]], [0.2, -0.7])  # x0 <= 0.2 and x1 >= 0.7
    spec = Specification(
        (
            Case(Box([0.5, 0.5], [1.0, 1.0]), (unreachable,)),
            Case(Box([0.0, 0.0], [1.0, 1.0]), (unreachable, reachable)),
        )
    )
    result = attack(network, spec, seed=3)
    assert result.found and result.case == 1
    assert result.counterexample[0] <= 0.2 and result.counterexample[1] >= 0.7


def test_piecewise_constant_outputs_get_random_search_not_a_crash():
    """``sign(w . x)``: no gradient anywhere; the attack still finds the unsafe side
    (a fifth of the box) by its fresh uniform starts, and its point violates the spec."""
    from verifiNN.models.network import Node
    from verifiNN.ops import Dense, Sign, as_tensor

    w = as_tensor(np.array([[1.0, 1.0]]))
    nodes = [Node("fc", Dense(w, as_tensor(np.array([-1.2]))), ("input",)),
             Node("out", Sign(), ("fc",))]  # fmt: skip
    network = Network.from_graph((2,), nodes)
    spec = Specification((Case(Box(np.zeros(2), np.ones(2)), (HalfSpaces([[-1.0]], [-0.5]),)),))
    found = attack(network, spec, budget=Budget.start(5.0), seed=0)
    assert found.counterexample is not None
    x = found.counterexample
    assert spec.is_violated_by(x, network.get_output(x)) and x.sum() > 1.2


def test_float64_search_and_empty_unsafe_region():
    network = tiny_net(3, [2, 5, 2])
    box = Box([-1.0, -1.0], [1.0, 1.0])
    spec = Specification((Case(box, ()),), num_outputs=2)
    assert not attack(network, spec, dtype=torch.float64).found
    always = Specification((Case(box, (HalfSpaces(np.zeros((0, 2)), np.zeros(0)),)),))
    result = attack(network, always, dtype=torch.float64)
    assert result.found and always.check_counterexample(network, result.counterexample)


def test_timeout_is_honoured():
    network = tiny_net(11, [3, 16, 16, 2])
    box = Box(-np.ones(3), np.ones(3))
    spec = one_case_spec(box, [[1.0, 0.0]], [-1e6])  # unreachable
    steps, restarts = 1_000_000, 8
    result = attack(network, spec, restarts=restarts, steps=steps, budget=Budget.start(0.2))
    assert result.timed_out and not result.found
    assert result.evaluations < restarts * steps
    nothing = attack(network, spec, budget=Budget.start(0.0))
    assert nothing.timed_out and nothing.evaluations <= 2


def test_bad_arguments():
    network = tiny_net(1, [2, 3, 2])
    box = Box([0.0, 0.0], [1.0, 1.0])
    with pytest.raises(InvalidInputError):
        attack(network, one_case_spec(box, [[1.0, 0.0]], [0.0]), budget=Budget.start(-1))
    with pytest.raises(SpecError):
        attack(network, one_case_spec(Box([0.0], [1.0]), [[1.0, 0.0]], [0.0]))


# ------------------------------------------------------------- domains (for BaB)
def test_attack_domains_margins_are_forward_pass_margins():
    network = tiny_net(5, [2, 8, 8, 3])
    rng = np.random.default_rng(0)
    lower = rng.uniform(-1, 0, (6, 2))
    upper = lower + rng.uniform(0, 1, (6, 2))
    C = np.array([[1.0, -1.0, 0.0], [0.0, 1.0, -1.0], [1.0, 0.0, 0.0]])
    d = np.array([0.0, 0.0, 0.1])
    result = attack_domains(network, lower, upper, C, d, groups=[2, 1], restarts=4, steps=10)
    assert result.x.shape == (6, 2) and result.margin.shape == (6,)
    assert np.all(result.x >= lower) and np.all(result.x <= upper)
    Y = network.get_output(result.x)
    expected = np.minimum(np.max(Y @ C[:2].T - d[:2], axis=1), Y @ C[2] - d[2])
    np.testing.assert_allclose(result.margin, expected, rtol=1e-12, atol=1e-12)
    Yc = network.get_output((lower + upper) / 2)
    centre = np.minimum(np.max(Yc @ C[:2].T - d[:2], axis=1), Yc @ C[2] - d[2])
    assert np.all(result.margin <= centre + 1e-6)  # the centres are among the samples


def test_attack_domains_starts_from_x_init():
    network = Network([np.array([[1.0, 1.0]])], [np.zeros(1)])  # y = x0 + x1
    lower, upper = np.zeros((1, 2)), np.ones((1, 2))
    result = attack_domains(
        network, lower, upper, [[1.0]], [0.0], x_init=[[0.0, 0.0]], restarts=1, steps=1, samples=0
    )
    assert result.found[0]
    with pytest.raises(InvalidInputError):
        attack_domains(network, lower, upper, [[1.0]], [0.0], groups=[2])


# ------------------------------------------------------------- projections
vectors = st.lists(st.floats(-10, 10), min_size=1, max_size=12)


@settings(max_examples=200, deadline=None)
@given(values=vectors, eps=st.floats(0.0, 5.0))
def test_l1_projection_lands_in_the_ball_and_is_nearest(values, eps):
    v = torch.tensor(values, dtype=torch.float64)
    p = project_l1_ball(v.unsqueeze(0), torch.tensor([eps], dtype=torch.float64))[0]
    assert p.abs().sum() <= eps * (1 + 1e-12) + 1e-12
    if v.abs().sum() <= eps:
        assert torch.equal(p, v)
    else:  # optimality: p = soft-threshold of v, so no ball point is closer than p
        rng = np.random.default_rng(len(values))
        for _ in range(20):
            q = rng.normal(size=len(values))
            q = q * eps / max(np.abs(q).sum(), 1e-300) * rng.uniform()
            assert np.linalg.norm(v.numpy() - q) >= np.linalg.norm(v.numpy() - p.numpy()) - 1e-9


@settings(max_examples=200, deadline=None)
@given(values=vectors, eps=st.floats(0.0, 5.0), norm=st.sampled_from(["inf", "2", "1"]))
def test_ball_projection_keeps_points_in_the_ball(values, eps, norm):
    x = torch.tensor(values, dtype=torch.float64).unsqueeze(0)
    center = torch.full_like(x, 0.25)
    p = project_ball(x, center, torch.tensor([eps], dtype=torch.float64), norm)
    order = {"inf": np.inf, "2": 2, "1": 1}[norm]
    assert np.linalg.norm((p - center).numpy().ravel(), order) <= eps * (1 + 1e-12) + 1e-12
    again = project_ball(p, center, torch.tensor([eps], dtype=torch.float64), norm)
    torch.testing.assert_close(again, p, rtol=1e-12, atol=1e-12)


@settings(max_examples=100, deadline=None)
@given(values=vectors, eps=st.floats(0.01, 3.0), norm=st.sampled_from(["2", "1"]))
def test_region_projection_is_in_box_and_ball(values, eps, norm):
    x = torch.tensor(values, dtype=torch.float64).unsqueeze(0)
    n = x.shape[1]
    center = torch.zeros(1, n, dtype=torch.float64)
    lower = torch.full((1, n), -0.3, dtype=torch.float64)
    upper = torch.ones(1, n, dtype=torch.float64)
    p = project_region(x, lower, upper, center, torch.tensor([eps], dtype=torch.float64), norm)
    ball = LpBall(np.zeros(n), eps, norm, lower=-0.3, upper=1.0)
    assert ball.contains(p.numpy()[0])


def test_l2_projection_scales_radially():
    p = project_l2_ball(torch.tensor([[3.0, 4.0]]), torch.tensor([1.0]))
    torch.testing.assert_close(p, torch.tensor([[0.6, 0.8]]))


# ------------------------------------------------------------- benchmarks
def sat_rows(folder, names):
    with open(folder / "expected.csv", newline="") as handle:
        return [r for r in csv.DictReader(handle) if (r["onnx"], r["vnnlib"]) in names]


ACAS_SAT = {
    ("ACASXU_run2a_2_1_batch_2000.onnx", "prop_2.vnnlib"),
    ("ACASXU_run2a_3_9_batch_2000.onnx", "prop_2.vnnlib"),
    ("ACASXU_run2a_1_7_batch_2000.onnx", "prop_3.vnnlib"),
    ("ACASXU_run2a_1_9_batch_2000.onnx", "prop_4.vnnlib"),
}


def test_attack_finds_known_acasxu_counterexamples(benchmark_data):
    folder = benchmark_data / "acasxu"
    rows = sat_rows(folder, ACAS_SAT)
    assert len(rows) == len(ACAS_SAT) and all(r["expected"] == "sat" for r in rows)
    for row in rows:
        network = load_onnx(folder / row["onnx"])
        spec = load_vnnlib(folder / row["vnnlib"], network)
        result = attack(network, spec, budget=Budget.start(30))
        assert result.found, row
        assert spec.check_counterexample(network, result.counterexample)


def test_attack_on_the_test_instances(benchmark_data):
    folder = benchmark_data / "test"
    spec = load_vnnlib(folder / "test_prop.vnnlib")
    sat = load_onnx(folder / "test_sat.onnx")
    result = attack(sat, spec, budget=Budget.start(30))
    assert result.found and spec.check_counterexample(sat, result.counterexample)
    unsat = load_onnx(folder / "test_unsat.onnx")
    assert not attack(unsat, spec, restarts=16, steps=30).found  # expected: unsat


def test_attack_finds_an_mnist_counterexample(benchmark_data):
    folder = benchmark_data / "mnistfc"
    network = load_onnx(folder / "mnist-net_256x2.onnx")
    spec = load_vnnlib(folder / "prop_7_0.05.vnnlib", network)
    result = attack(network, spec, budget=Budget.start(30))
    assert result.found and spec.check_counterexample(network, result.counterexample)


@pytest.mark.parametrize("cell", [(17, 41), (0, 62), (62, 0)])
def test_the_grid_tries_every_integer_cell_of_two_free_coordinates(tmp_path, cell):
    """A patch-position model (cctsdb_yolo's pattern): the output is 1 on one integer cell of
    two truncated coordinates in [0, 62] and 0 elsewhere; the other inputs are fixed. No
    gradient leads there and random points hit it rarely; the grid finds it every time."""
    import onnx
    from onnx import TensorProto, helper

    from conftest import save_onnx

    int64 = TensorProto.INT64
    nodes = [
        helper.make_node("Cast", ["X"], ["xi"], to=int64),
        helper.make_node("Equal", ["xi", "target"], ["hit"]),
        helper.make_node("Cast", ["hit"], ["Y"], to=TensorProto.FLOAT),
    ]
    target = helper.make_tensor("target", int64, [1, 6], [cell[0], 7, 7, cell[1], 7, 7])
    path = save_onnx(tmp_path / "cell.onnx", nodes, [("X", [1, 6])], [("Y", [1, 6])])
    model = onnx.load(path)
    model.graph.initializer.append(target)
    onnx.save(model, path)
    network = load_onnx(path)
    lower = np.array([0.0, 7.5, 7.5, 0.0, 7.5, 7.5])
    upper = np.array([62.0, 7.5, 7.5, 62.0, 7.5, 7.5])
    unsafe = HalfSpaces(-np.eye(6), np.full(6, -0.5))  # every entry >= 0.5: both on the cell
    spec = Specification((Case(Box(lower, upper), (unsafe,)),), 6, 6)
    result = attack(network, spec, samples=16, restarts=2, steps=2)
    assert result.counterexample is not None
    assert tuple(np.trunc(result.counterexample[[0, 3]]).astype(int)) == cell
    assert np.all(network.get_output(result.counterexample) == 1.0)
