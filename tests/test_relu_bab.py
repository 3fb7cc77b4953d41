"""ReLU-splitting branch and bound (beta-CROWN): soundness against grids and the MILP."""

from __future__ import annotations

import csv
import itertools

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import random_mlp_params, ticking_budget
from verifiNN.budget import Budget
from verifiNN.io import load_onnx, load_vnnlib
from verifiNN.models.network import Network
from verifiNN.results import Outcome, Verdict
from verifiNN.search.milp import milp_verify
from verifiNN.search.relu_bab import ReluBaBOptions, _Disjunct, relu_split_bab
from verifiNN.search.relu_domains import DomainPool, Domains
from verifiNN.specs import Box, Case, HalfSpaces, LpBall, Specification

SMALL = ReluBaBOptions(batch_size=8, root_iterations=5, iterations=4)


def _grid(lower: np.ndarray, upper: np.ndarray, points: int) -> np.ndarray:
    axes = [np.linspace(lo, up, points) for lo, up in zip(lower, upper, strict=True)]
    return np.array(list(itertools.product(*axes)))


def _problem(seed: int, quantile: float, shift: float) -> tuple[Network, Specification]:
    """A random ReLU MLP and a box property ``y_i - y_j <= t`` near the grid minimum."""
    rng = np.random.default_rng(seed)
    n_in = int(rng.integers(2, 4))
    widths = [n_in, *rng.integers(4, 10, size=int(rng.integers(1, 4))), 3]
    network = Network(*random_mlp_params(rng, [int(w) for w in widths]))
    centre = rng.uniform(-1, 1, n_in)
    radius = rng.uniform(0.2, 1.0, n_in)
    lower, upper = centre - radius, centre + radius
    ys = network.get_output(_grid(lower, upper, 9))
    disjuncts = []
    for _ in range(int(rng.integers(1, 3))):
        i, j = rng.choice(3, size=2, replace=False)
        row = np.zeros(3)
        row[i], row[j] = 1.0, -1.0
        t = float(np.quantile(ys @ row, quantile)) - shift
        disjuncts.append(HalfSpaces(row[None, :], np.array([t])))
    return network, Specification([Case(Box(lower, upper), tuple(disjuncts))])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    quantile=st.sampled_from([0.0, 0.0, 0.02]),
    shift=st.floats(-0.05, 0.3),
)
def test_never_disagrees_with_the_grid_or_the_milp(seed: int, quantile: float, shift: float):
    network, spec = _problem(seed, quantile, shift)
    box = spec.cases[0].input_region
    grid = _grid(box.lower, box.upper, 41 if box.lower.size == 2 else 17)
    grid_violated = bool(spec.violations(grid, network.get_output(grid)).any())
    result = relu_split_bab(network, spec, Budget.start(20), SMALL)
    milp = milp_verify(network, spec, Budget.start(20)).verdict
    if result.verdict is Verdict.SAT:
        x, y = result.counterexample
        assert spec.is_violated_by(x, network.get_output(x))
        assert np.allclose(y, network.get_output(x))
        assert milp is not Verdict.UNSAT
    if result.verdict is Verdict.UNSAT:
        assert not grid_violated, "unsat where the grid finds a violation"
        assert milp is not Verdict.SAT, "unsat where the MILP finds a violation"
    # With the grid minimum as threshold and a shift below the proof tolerance
    # (1e-9 relative), the property is decided by less than float64 can certify.
    # At shift 0 the grid point itself ties with the threshold: its margin is 0
    # or a rounding error either side, depending on how the forward pass is
    # batched (seed 0: 0.0 in a batch, 3e-16 alone), so neither answer can be
    # certified either.
    near_tie = quantile == 0.0 and 0.0 <= shift < 1e-6
    if not near_tie:
        assert result.verdict in (Verdict.SAT, Verdict.UNSAT), "complete on tiny networks"
        if milp in (Verdict.SAT, Verdict.UNSAT):
            assert result.verdict is milp


def test_proves_what_the_root_bound_cannot() -> None:
    """A property that needs splitting: CROWN fails at the root, BaB proves it."""
    rng = np.random.default_rng(11)
    network = Network(*random_mlp_params(rng, [4, 16, 16, 2]))
    box = Box(np.full(4, -1.0), np.full(4, 1.0))
    ys = network.get_output(_grid(box.lower, box.upper, 11))
    t = float((ys[:, 0] - ys[:, 1]).min()) - 0.05
    spec = Specification([Case(box, HalfSpaces(np.array([[1.0, -1.0]]), np.array([t])))])
    result = relu_split_bab(network, spec, Budget.start(60), SMALL)
    assert milp_verify(network, spec, Budget.start(60)).verdict is Verdict.UNSAT
    assert result.verdict is Verdict.UNSAT
    assert result.statistics["domains"] > 1


def _preactivations(network: Network, xs: np.ndarray) -> list[np.ndarray]:
    mlp = network.as_mlp()
    pre, a = [], xs
    for w, b in zip(mlp.weights[:-1], mlp.biases[:-1]):
        z = a @ w.T + b
        pre.append(z)
        a = np.maximum(z, 0)
    return pre


def _in_subdomain(pre: list[np.ndarray], domains: Domains, k: int) -> np.ndarray:
    """Which samples (by their pre-activations ``pre``) satisfy domain ``k``'s splits."""
    inside = np.ones(len(pre[0]), dtype=bool)
    for z, split in zip(pre, domains.split):
        s = split[k].numpy()
        inside &= np.all((s == 0) | (s * z >= 0), axis=1)
    return inside


def _assert_no_sample_below_the_margins(
    network: Network, rows: HalfSpaces, problem: _Disjunct, domains: Domains, xs: np.ndarray
) -> None:
    pre = _preactivations(network, xs)
    margin = network.get_output(xs) @ rows.C[0] - problem.threshold.item()
    for k in range(len(domains)):
        inside = _in_subdomain(pre, domains, k)
        if inside.any():
            assert margin[inside].min() >= float(domains.margin[k]) - 1e-9


def test_beta_bound_is_sound_on_split_domains() -> None:
    """Every bounded child domain's bound holds for sampled points that satisfy its splits."""
    rng = np.random.default_rng(5)
    network = Network(*random_mlp_params(rng, [3, 10, 10, 2]))
    box = Box(np.full(3, -1.0), np.full(3, 1.0))
    rows = HalfSpaces(np.array([[1.0, -1.0]]), np.array([-100.0]))
    from verifiNN.bounds import bound_graph, compute_bounds
    from verifiNN.regions import as_batch

    graph = bound_graph(network)
    input_set = as_batch(box, 3)
    root_bounds = compute_bounds(graph, input_set, rows.C, method="crown", bound_upper=False)
    problem = _Disjunct(graph, input_set, rows, dict(root_bounds.bounds), SMALL)
    domains, _ = problem.bound(problem.root(), 3)
    for _ in range(4):  # four levels of splits: 16 domains
        domains, _ = problem.bound(problem.children(domains), 10)
    xs = rng.uniform(-1, 1, (20_000, 3))
    _assert_no_sample_below_the_margins(network, rows, problem, domains, xs)


def test_l2_ball_input() -> None:
    rng = np.random.default_rng(2)
    network = Network(*random_mlp_params(rng, [3, 8, 8, 2]))
    ball = LpBall(np.zeros(3), 0.5, "2")
    pts = rng.normal(size=(20_000, 3))
    pts = 0.5 * pts / np.linalg.norm(pts, axis=1, keepdims=True) * rng.uniform(0, 1, (20_000, 1))
    ys = network.get_output(pts)
    t = float((ys[:, 0] - ys[:, 1]).min()) - 0.2
    spec = Specification([Case(ball, HalfSpaces(np.array([[1.0, -1.0]]), np.array([t])))])
    assert relu_split_bab(network, spec, Budget.start(30), SMALL).verdict is Verdict.UNSAT


def _hard_problem() -> tuple[Network, Specification]:
    rng = np.random.default_rng(3)
    network = Network(*random_mlp_params(rng, [20, 60, 60, 60, 2]))
    box = Box(np.full(20, -1.0), np.full(20, 1.0))
    row = np.array([[1.0, -1.0]])
    corners = rng.choice([-1.0, 1.0], size=(4000, 20))  # the extremes of ReLU nets sit there
    lowest = float((network.get_output(corners) @ row[0]).min())
    t = lowest - 0.2 * abs(lowest)  # below every sample: unsat, and it takes many splits
    return network, Specification([Case(box, HalfSpaces(row, np.array([t])))])


def test_budget_is_honoured() -> None:
    """The search looks at its budget in every round: a budget that runs out after
    a few looks stops it with ``timeout`` within a few rounds."""
    network, spec = _hard_problem()
    result = relu_split_bab(network, spec, ticking_budget(6), SMALL)
    assert result.verdict is Verdict.TIMEOUT
    assert result.statistics["rounds"] <= 6


def test_domain_cap_gives_unknown() -> None:
    """More live domains than the cap end the search with ``unknown``."""
    network, spec = _hard_problem()
    options = ReluBaBOptions(batch_size=4, root_iterations=2, iterations=2, max_domains=6)
    result = relu_split_bab(network, spec, Budget.start(None), options)
    assert result.verdict is Verdict.UNKNOWN
    assert result.statistics["peak_domains"] > 6


@pytest.mark.slow
@pytest.mark.parametrize("vnnlib", ["prop_1_0.03.vnnlib", "prop_0_0.05.vnnlib"])
def test_mnist_256x2(benchmark_data, vnnlib: str) -> None:
    """Instances alpha-CROWN alone cannot decide (one unsat, one sat that
    alpha-beta-CROWN missed), answered as expected.csv says."""
    folder = benchmark_data / "mnistfc"
    with open(folder / "expected.csv") as f:
        expected = {(r[0], r[1]): r[3] for r in csv.reader(f)}[("mnist-net_256x2.onnx", vnnlib)]
    network = load_onnx(folder / "mnist-net_256x2.onnx")
    spec = load_vnnlib(folder / vnnlib, network)
    torch.manual_seed(0)
    result = relu_split_bab(network, spec, Budget.start(100))
    assert result.verdict.value == expected
    if result.verdict is Verdict.SAT:
        x, _ = result.counterexample
        assert spec.is_violated_by(x, network.get_output(x))


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_pattern_lp_finds_points_and_certifies_emptiness(seed: int) -> None:
    """The phase pattern of a sampled point: a row it satisfies gives a candidate
    inside the pattern's region; a row below the box-wide minimum is certified safe."""
    from verifiNN.bounds import bound_graph
    from verifiNN.solvers.pattern_lp import pattern_lp

    rng = np.random.default_rng(seed)
    network = Network(*random_mlp_params(rng, [3, 6, 6, 2]))
    graph = bound_graph(network)
    lower, upper = np.full(3, -1.0), np.full(3, 1.0)
    x0 = rng.uniform(-1, 1, 3)
    values, phases = {graph.input_name: torch.as_tensor(x0).reshape(1, -1)}, {}
    for node in graph.nodes:
        inputs = [values[i] for i in node.inputs]
        values[node.name] = node.op.forward(*inputs)
        if node.op.kind == "ReLU":
            phases[node.name] = torch.where(inputs[0].flatten() >= 0, 1.0, -1.0).double()
    y0 = network.get_output(x0)
    C = np.array([[1.0, -1.0]])
    found = pattern_lp(graph, lower, upper, phases, C, C @ y0 + 1e-6)
    assert found.status is Outcome.CANDIDATE
    assert np.all(found.x >= lower - 1e-9) and np.all(found.x <= upper + 1e-9)
    assert (C @ network.get_output(found.x))[0] <= (C @ y0)[0] + 1e-5
    grid = _grid(lower, upper, 21)
    floor = float((network.get_output(grid) @ C[0]).min())
    hull = floor - 10.0 * (1.0 + abs(floor))  # far below anything reachable
    assert pattern_lp(graph, lower, upper, phases, C, np.array([hull])).status is Outcome.EMPTY


def _deep_problem(seed: int) -> tuple[Network, _Disjunct]:
    from verifiNN.bounds import bound_graph, compute_bounds
    from verifiNN.regions import as_batch

    rng = np.random.default_rng(seed)
    network = Network(*random_mlp_params(rng, [3, 12, 12, 12, 12, 2]))
    box = Box(np.full(3, -1.0), np.full(3, 1.0))
    rows = HalfSpaces(np.array([[1.0, -1.0]]), np.array([-100.0]))
    graph = bound_graph(network)
    input_set = as_batch(box, 3)
    root = compute_bounds(graph, input_set, rows.C, method="crown", bound_upper=False)
    return network, _Disjunct(graph, input_set, rows, dict(root.bounds), SMALL)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), levels=st.integers(1, 4))
def test_retightened_bounds_contain_every_sample_of_the_subdomain(seed: int, levels: int) -> None:
    """Split first-layer neurons, re-tighten the later layers: every sampled input that
    satisfies a child's splits has its pre-activations inside the child's bounds, and a
    child with such an input is never dropped as empty."""
    network, problem = _deep_problem(seed)
    domains = problem.root()
    first = domains.lower[0][0]
    unstable = ((first < 0) & (domains.upper[0][0] > 0)).nonzero().squeeze(1)
    for neuron in unstable[:levels].tolist():
        domains.branch = torch.full((len(domains),), neuron, dtype=torch.long)
        kids = problem.children(domains)
        before = [(lo.clone(), up.clone()) for lo, up in zip(kids.lower, kids.upper)]
        kept, empty = problem.retighten(kids, torch.zeros(len(kids), dtype=torch.long))
        assert len(kept) + empty == len(kids)
        if empty == 0:
            for (lo, up), new_lo, new_up in zip(before, kept.lower, kept.upper):
                assert torch.all(new_lo >= lo) and torch.all(new_up <= up), "never looser"
        domains = kept
    xs = np.random.default_rng(seed).uniform(-1, 1, (20_000, 3))
    pre = _preactivations(network, xs)
    covered = np.zeros(len(xs), dtype=bool)
    for k in range(len(domains)):
        inside = _in_subdomain(pre, domains, k)
        covered |= inside
        for z, lo, up in zip(pre, domains.lower, domains.upper):
            assert np.all(z[inside] >= lo[k].numpy() - 1e-9)
            assert np.all(z[inside] <= up[k].numpy() + 1e-9)
    # The children that were dropped held no sample: the kept ones cover them all.
    assert covered.all()


def test_retightening_tightens_later_layers_after_an_early_split() -> None:
    """On a deep net, fixing a first-layer phase narrows some later pre-activation."""
    tightened = 0
    for seed in range(5):
        _, problem = _deep_problem(seed)
        domains = problem.root()
        first = domains.lower[0][0]
        unstable = ((first < 0) & (domains.upper[0][0] > 0)).nonzero().squeeze(1)
        if not len(unstable):
            continue
        domains.branch = unstable[:1].clone()
        kids = problem.children(domains)
        widths = [float((up - lo).sum()) for lo, up in zip(kids.lower[1:], kids.upper[1:])]
        kept, _ = problem.retighten(kids, torch.zeros(2, dtype=torch.long))
        after = [float((up - lo).sum()) for lo, up in zip(kept.lower[1:], kept.upper[1:])]
        tightened += sum(a < w - 1e-9 for a, w in zip(after, widths))
    assert tightened > 0


VARIANTS = {
    "babsr, no re-tightening": ReluBaBOptions(
        batch_size=8, root_iterations=5, iterations=4, fsb_candidates=1, retighten_work=0
    ),
    "fsb, re-tightening": ReluBaBOptions(
        batch_size=8, root_iterations=5, iterations=4, fsb_candidates=4, retighten_work=4.0
    ),
    "float64 search steps": ReluBaBOptions(
        batch_size=8, root_iterations=5, iterations=4, search_dtype=torch.float64
    ),
}


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), shift=st.floats(0.01, 0.3))
def test_branching_rules_agree_with_the_milp(seed: int, shift: float) -> None:
    """BaBSR alone, filtered smart branching with re-tightened bounds, and the search
    steps in float32 (the default) or float64 are all complete on tiny nets and agree
    with the MILP."""
    network, spec = _problem(seed, 0.0, shift)
    milp = milp_verify(network, spec, Budget.start(20)).verdict
    for name, options in VARIANTS.items():
        result = relu_split_bab(network, spec, Budget.start(20), options)
        assert result.verdict in (Verdict.SAT, Verdict.UNSAT), name
        if milp in (Verdict.SAT, Verdict.UNSAT):
            assert result.verdict is milp, name
        if result.verdict is Verdict.SAT:
            x, _ = result.counterexample
            assert spec.is_violated_by(x, network.get_output(x)), name


def test_float32_steps_report_float64_bounds() -> None:
    """With float32 optimisation steps, the margins, slopes and multipliers the search
    keeps are float64 (slopes in [0, 1], multipliers >= 0), and no sampled input of a
    domain lies below its margin."""
    rng = np.random.default_rng(8)
    network = Network(*random_mlp_params(rng, [3, 10, 10, 2]))
    box = Box(np.full(3, -1.0), np.full(3, 1.0))
    rows = HalfSpaces(np.array([[1.0, -1.0]]), np.array([-100.0]))
    from verifiNN.bounds import bound_graph, compute_bounds
    from verifiNN.regions import as_batch

    graph = bound_graph(network)
    fast = (bound_graph(network, torch.float32), as_batch(box, 3, torch.float32))
    input_set = as_batch(box, 3)
    root = compute_bounds(graph, input_set, rows.C, method="crown", bound_upper=False)
    problem = _Disjunct(graph, input_set, rows, dict(root.bounds), SMALL, fast)
    domains, _ = problem.bound(problem.root(), 3)
    for _ in range(3):
        domains, _ = problem.bound(problem.children(domains), 6)
    assert domains.margin.dtype == torch.float64
    assert all(a.dtype == torch.float64 and a.min() >= 0 and a.max() <= 1 for a in domains.alpha)
    assert all(b.dtype == torch.float64 and b.min() >= 0 for b in domains.beta)
    xs = rng.uniform(-1, 1, (20_000, 3))
    _assert_no_sample_below_the_margins(network, rows, problem, domains, xs)


def test_a_budget_that_runs_out_in_the_steps_proves_nothing() -> None:
    """When the budget ends during the float32 steps, no float64 pass follows: every
    child is left unproved (margin -inf) and unbranched, and the search says timeout."""
    network, problem = _deep_problem(4)
    from verifiNN.bounds import bound_graph
    from verifiNN.regions import as_batch

    box = Box(np.full(3, -1.0), np.full(3, 1.0))
    fast = (bound_graph(network, torch.float32), as_batch(box, 3, torch.float32))
    problem = _Disjunct(
        problem.graph, problem.input_set, problem.rows, problem.root_bounds, SMALL, fast
    )
    domains, _ = problem.bound(problem.root(), 3, ticking_budget(0))
    assert torch.all(torch.isinf(domains.margin)) and torch.all(domains.margin < 0)
    assert torch.all(domains.branch == -1)
    easy = HalfSpaces(np.array([[1.0, -1.0]]), np.array([-1e6]))
    spec = Specification([Case(box, easy)])
    assert relu_split_bab(network, spec, Budget.start(None), SMALL).verdict is Verdict.UNSAT
    # The same property with a budget that is gone: an honest timeout, never a proof.
    assert relu_split_bab(network, spec, ticking_budget(1), SMALL).verdict is Verdict.TIMEOUT


def _random_domains(rng: np.random.Generator, n: int, start: int) -> Domains:
    """Domains whose every entry records its identity ``start + i`` (to follow them)."""
    ids = torch.arange(start, start + n, dtype=torch.float64)
    grid = ids.reshape(n, 1).expand(n, 3).clone()
    deep = ids.reshape(n, 1, 1).expand(n, 2, 3).clone()
    return Domains(
        [grid.clone()],
        [grid + 1],
        [torch.as_tensor(rng.integers(-1, 2, (n, 3)), dtype=torch.int8)],
        [deep.clone()],
        [deep + 2],
        ids.clone(),
        torch.arange(start, start + n),
    )


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    steps=st.lists(st.tuples(st.booleans(), st.integers(0, 40)), min_size=1, max_size=25),
)
def test_the_live_pool_keeps_exactly_the_domains_added_and_not_removed(seed, steps) -> None:
    """Random adds and removals: the pool holds what a plain dict of the same
    domains holds, each domain's tensors intact, and removals return the right ones."""

    rng = np.random.default_rng(seed)
    pool, reference, next_id = DomainPool(_random_domains(rng, 1, 0), 64), {0}, 1
    for add, count in steps:
        if add:
            pool.add(_random_domains(rng, count, next_id))
            reference |= set(range(next_id, next_id + count))
            next_id += count
        elif len(pool):
            k = min(count, len(pool))
            index = torch.as_tensor(rng.choice(len(pool), size=k, replace=False))
            expected = {int(v) for v in pool.margin[index]}
            taken = pool.remove(index)
            assert {int(v) for v in taken.margin} == expected
            reference -= expected
        held = pool.margin.tolist()
        assert sorted(int(v) for v in held) == sorted(reference)
        n = len(pool)
        ids = pool.margin
        assert torch.equal(pool.store.lower[0][:n][:, 0], ids)
        assert torch.equal(pool.store.upper[0][:n][:, 2], ids + 1)
        assert torch.equal(pool.store.beta[0][:n][:, 1, 0], ids + 2)
        assert torch.equal(pool.branch.to(torch.float64), ids)
