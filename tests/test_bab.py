"""Input-splitting branch and bound: soundness against dense grids and MILP."""

from __future__ import annotations

import csv
import itertools

import numpy as np
import pytest
import torch

from conftest import random_mlp_params, ticking_budget
from verifiNN.bounds.symbolic import mlp_bounder
from verifiNN.budget import Budget
from verifiNN.io import load_onnx, load_vnnlib
from verifiNN.models.network import Network
from verifiNN.results import Verdict
from verifiNN.search.bab import BaBOptions, input_split_bab
from verifiNN.search.milp import milp_verify
from verifiNN.specs import Box, Case, HalfSpaces, Specification


def _grid(lower: np.ndarray, upper: np.ndarray, points: int) -> np.ndarray:
    axes = [np.linspace(lo, up, points) for lo, up in zip(lower, upper, strict=True)]
    return np.array(list(itertools.product(*axes)))


def _problem(seed: int) -> tuple[Network, Specification]:
    """A small random ReLU MLP and a box property ``y_i - y_j <= t`` (one or two disjuncts)."""
    rng = np.random.default_rng(seed)
    n_in = int(rng.integers(2, 4))
    widths = [n_in, *rng.integers(4, 9, size=int(rng.integers(1, 3))), 3]
    network = Network(*random_mlp_params(rng, [int(w) for w in widths]))
    centre = rng.uniform(-1, 1, n_in)
    radius = rng.uniform(0.2, 1.0, n_in)
    lower, upper = centre - radius, centre + radius
    grid = _grid(lower, upper, 9)
    ys = network.get_output(grid)
    disjuncts = []
    for _ in range(int(rng.integers(1, 3))):
        i, j = rng.choice(3, size=2, replace=False)
        row = np.zeros(3)
        row[i], row[j] = 1.0, -1.0
        values = ys @ row
        t = float(np.quantile(values, rng.choice([0.0, 0.0, 0.01]))) - rng.uniform(-0.02, 0.2)
        disjuncts.append(HalfSpaces(row[None, :], np.array([t])))
    return network, Specification([Case(Box(lower, upper), tuple(disjuncts))])


#: Every open box goes to the leaf MILP at once (the MLP engine has its bounds).
LEAF_MILP_ALWAYS = {"leaf_milp_after": 0, "leaf_milp_unstable": 10**6}


@pytest.mark.parametrize("engine", ["auto", "crown", "leaf-milp"])
@pytest.mark.parametrize("seed", range(16))
def test_random_properties_are_sound(seed: int, engine: str) -> None:
    network, spec = _problem(seed)
    box = spec.cases[0].input_region
    grid = _grid(box.lower, box.upper, 41 if box.lower.size == 2 else 17)
    grid_violated = bool(spec.violations(grid, network.get_output(grid)).any())
    if engine == "leaf-milp":
        options = BaBOptions(batch_size=64, **LEAF_MILP_ALWAYS)
    else:
        options = BaBOptions(engine=engine, batch_size=64, leaf_milp_unstable=0)
    result = input_split_bab(network, spec, Budget.start(20), options)
    if result.verdict is Verdict.SAT:
        x, y = result.counterexample
        assert spec.is_violated_by(x, network.get_output(x))
        assert np.allclose(y, network.get_output(x))
    else:
        assert not grid_violated, "BaB missed a counterexample the grid finds"
    if result.verdict is Verdict.UNSAT:
        assert milp_verify(network, spec, Budget.start(20)).verdict in (
            Verdict.UNSAT,
            Verdict.TIMEOUT,
            Verdict.UNKNOWN,
        )
    assert result.verdict in (Verdict.SAT, Verdict.UNSAT)


def test_mlp_bounds_are_sound() -> None:
    """Forward + backward bounds of the MLP engine hold on samples, linear form included."""
    rng = np.random.default_rng(7)
    network = Network(*random_mlp_params(rng, [3, 12, 12, 10, 4]))
    bounder = mlp_bounder(network)
    assert bounder is not None
    lo = torch.as_tensor(rng.uniform(-1, 0, (16, 3)))
    up = lo + torch.as_tensor(rng.uniform(0, 1, (16, 3)))
    C = torch.as_tensor(rng.normal(size=(5, 4)))
    rows = bounder.rows(lo, up, C)
    xs = lo[:, None] + (up - lo)[:, None] * torch.as_tensor(rng.uniform(size=(16, 400, 3)))
    ys = torch.as_tensor(network.get_output(xs.reshape(-1, 3).numpy())).reshape(16, 400, 4)
    values = ys @ C.T
    linear = xs @ rows.A.transpose(1, 2) + rows.c[:, None]
    assert (values >= rows.lower[:, None] - 1e-9).all()
    assert (values >= linear - 1e-9).all()
    assert (linear.min(dim=1).values >= rows.lower - 1e-9).all()


def _hard_problem() -> tuple[Network, Specification]:
    rng = np.random.default_rng(3)
    network = Network(*random_mlp_params(rng, [3, 30, 30, 30, 2]))
    box = Box(np.full(3, -1.0), np.full(3, 1.0))
    ys = network.get_output(_grid(box.lower, box.upper, 15))
    t = float((ys[:, 0] - ys[:, 1]).min()) - 1e-3  # tight: needs many splits
    return network, Specification([Case(box, HalfSpaces(np.array([[1.0, -1.0]]), np.array([t])))])


def test_budget_is_honoured() -> None:
    """The search looks at its budget before every batch: a budget that runs out
    after three looks stops it with ``timeout`` after at most three batches (the
    problem needs many more)."""
    network, spec = _hard_problem()
    result = input_split_bab(network, spec, ticking_budget(3), BaBOptions(batch_size=8))
    assert result.verdict is Verdict.TIMEOUT
    assert 0 < result.statistics["batches"] <= 3


def test_domain_cap_gives_unknown() -> None:
    """More live domains than the cap end the search with ``unknown``."""
    network, spec = _hard_problem()
    result = input_split_bab(
        network, spec, Budget.start(None), BaBOptions(batch_size=4, max_domains=6)
    )
    assert result.verdict is Verdict.UNKNOWN
    assert result.statistics["peak_domains"] > 6


FAST_ACAS = [
    ("ACASXU_run2a_1_1_batch_2000.onnx", "prop_1.vnnlib"),
    ("ACASXU_run2a_1_8_batch_2000.onnx", "prop_4.vnnlib"),
    ("ACASXU_run2a_2_1_batch_2000.onnx", "prop_2.vnnlib"),
    ("ACASXU_run2a_3_3_batch_2000.onnx", "prop_4.vnnlib"),
]


@pytest.mark.parametrize(("onnx", "vnnlib"), FAST_ACAS)
def test_acasxu_matches_expected(benchmark_data, onnx: str, vnnlib: str) -> None:
    folder = benchmark_data / "acasxu"
    with open(folder / "expected.csv", newline="") as handle:
        expected = {(r["onnx"], r["vnnlib"]): r["expected"] for r in csv.DictReader(handle)}
    network = load_onnx(folder / onnx)
    spec = load_vnnlib(folder / vnnlib, network)
    result = input_split_bab(network, spec, Budget.start(20))
    assert result.verdict.value == expected[(onnx, vnnlib)]
    if result.verdict is Verdict.SAT:
        assert spec.is_violated_by(*result.counterexample)


@pytest.mark.parametrize(("d", "expected"), [(-2.0, Verdict.UNSAT), (-0.5, Verdict.SAT)])
def test_network_without_hidden_layer(d: float, expected: Verdict) -> None:
    network = Network([np.eye(2)], [np.zeros(2)])  # y = x
    box = Box(np.zeros(2), np.ones(2))
    spec = Specification([Case(box, HalfSpaces(np.array([[1.0, -1.0]]), np.array([d])))])
    assert input_split_bab(network, spec).verdict is expected


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(6))
def test_leaf_milps_decide_near_ties_exactly(seed: int) -> None:
    """Thresholds a hair (1e-5 relative) below and above the true minimum (found
    by a separate whole-box MILP): with every open box sent to a leaf MILP, the
    search proves the first and refutes the second with a real counterexample."""
    from verifiNN.solvers.milp import milp_minimum

    rng = np.random.default_rng(300 + seed)
    network = Network(*random_mlp_params(rng, [3, 16, 16, 16, 2]))
    box = Box(-np.ones(3), np.ones(3))
    row = np.array([1.0, -1.0])
    minimum = milp_minimum(network, box, row).value
    hair = 1e-5 * (1 + abs(minimum))

    def spec(t: float) -> Specification:  # unsafe: y_0 - y_1 <= t
        return Specification([Case(box, (HalfSpaces(row[None, :], np.array([t])),))])

    options = BaBOptions(batch_size=8, **LEAF_MILP_ALWAYS)
    below = input_split_bab(network, spec(minimum - hair), options=options)
    assert below.verdict is Verdict.UNSAT
    assert below.statistics["leaf_milps_proved"] > 0
    above = input_split_bab(network, spec(minimum + hair), options=options)
    assert above.verdict is Verdict.SAT
    x, _ = above.counterexample
    assert spec(minimum + hair).is_violated_by(x, network.get_output(x))
