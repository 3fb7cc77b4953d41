"""Tightness relations, closed forms and the public call shape of ``compute_bounds``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import ticking_budget
from test_bounds_soundness import (
    NETWORKS,
    assert_contains,
    mlp,
    outputs,
    random_boxes,
    residual_net,
    sample_points,
)
from verifiNN import Network
from verifiNN.bounds import (
    AlphaOptions,
    BoundGraph,
    CrownOptions,
    Interval,
    LPOptions,
    compute_bounds,
)
from verifiNN.bounds.api import bound_graph
from verifiNN.bounds.crown import crown_bounds, crown_linear_bound
from verifiNN.bounds.lp import lp_bound
from verifiNN.budget import Budget
from verifiNN.errors import InvalidInputError, UnsupportedModelError
from verifiNN.models.network import Node
from verifiNN.ops import Dense, Op, Shape, as_tensor
from verifiNN.regions import as_batch
from verifiNN.specs import Box, LpBall

torch.set_num_threads(1)
ALPHA = AlphaOptions(iterations=8, lr=0.3)


def _bounds(network, lower, upper, C, method, options=None):
    return compute_bounds(network, (lower, upper), C, method, options=options)


@pytest.mark.parametrize("name", sorted(NETWORKS))
@settings(max_examples=3, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_alpha_crown_ibp_ordering(name, seed):
    rng = np.random.default_rng(seed)
    network = NETWORKS[name](rng)
    lower, upper = random_boxes(rng, network.input_size, 3, 0.7)
    C = rng.normal(size=(3, network.output_size))
    ibp = _bounds(network, lower, upper, C, "ibp")
    crown = _bounds(network, lower, upper, C, "crown")
    alpha = _bounds(network, lower, upper, C, "alpha-crown", ALPHA)
    tol = 1e-9 * (1 + ibp.lower.abs())
    assert bool((crown.lower >= ibp.lower - tol).all())
    assert bool((alpha.lower >= crown.lower).all())
    assert bool((crown.upper <= ibp.upper + tol).all())
    assert bool((alpha.upper <= crown.upper).all())


@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), tighten=st.booleans())
def test_lp_is_at_least_crown_with_the_same_intermediate_bounds(seed, tighten):
    rng = np.random.default_rng(seed)
    network = mlp(rng, [4, 10, 10, 8, 3])
    lower, upper = random_boxes(rng, 4, 2, 0.8)
    C = torch.tensor(rng.normal(size=(1, 4, 3)))
    graph = bound_graph(network)
    regions = as_batch((lower, upper), 4)
    bounds, relax = crown_bounds(graph, regions, options=CrownOptions(intersect_ibp=False))
    crown = crown_linear_bound(graph, regions, relax, C)
    lp, _, _ = lp_bound(graph, regions, bounds, C, LPOptions(tighten=tighten))
    assert bool((lp >= crown - 1e-6 * (1 + crown.abs())).all()), (lp - crown).min()


def test_lp_budget_covers_the_whole_call_and_keeps_sound_bounds():
    """The budget bounds the whole LP call (the tightening LPs included): it stops
    solving when the budget runs out, and an early stop only loosens: the bounds
    stay >= CROWN's and below sampled outputs."""
    rng = np.random.default_rng(3)
    network = mlp(rng, [8, 48, 48, 3])
    lower, upper = random_boxes(rng, 8, 1, 0.8)
    C = rng.normal(size=(4, 3))
    crown = _bounds(network, lower, upper, C, "crown")
    options = LPOptions(tighten=True)
    full = compute_bounds(network, (lower, upper), C, "lp", options=options)
    cut = compute_bounds(
        network, (lower, upper), C, "lp", options=options, budget=ticking_budget(25)
    )
    assert 0 < cut.statistics["lp_solves"] < full.statistics["lp_solves"]
    assert bool((cut.lower >= crown.lower).all()) and bool((full.lower >= cut.lower - 1e-9).all())
    points = sample_points(network, lower, upper, C, rng, 600)
    assert_contains(cut, C, outputs(network, points), "lp")


def test_alpha_improves_on_crown_somewhere():
    rng = np.random.default_rng(7)
    network = mlp(rng, [5, 20, 20, 3])
    lower, upper = random_boxes(rng, 5, 2, 1.0)
    crown = _bounds(network, lower, upper, None, "crown")
    alpha = _bounds(network, lower, upper, None, "alpha-crown", AlphaOptions(iterations=20))
    gain = float((alpha.lower - crown.lower).sum() + (crown.upper - alpha.upper).sum())
    assert gain > 1e-3


@pytest.mark.parametrize("norm", ["inf", "2", "1"])
@pytest.mark.parametrize("method", ["crown", "alpha-crown", "lp"])
def test_linear_network_bounds_are_the_exact_dual_norm(norm, method):
    rng = np.random.default_rng(3)
    weights = [rng.normal(size=(6, 4)), rng.normal(size=(5, 6)), rng.normal(size=(3, 5))]
    biases = [rng.normal(size=6), rng.normal(size=5), rng.normal(size=3)]
    network = Network(weights, biases, activation="Id")
    centers = rng.normal(size=(2, 4))
    eps = 0.3
    C = rng.normal(size=(2, 3))
    A = C @ weights[2] @ weights[1] @ weights[0]
    offset = C @ (weights[2] @ (weights[1] @ biases[0] + biases[1]) + biases[2])
    dual = {"inf": 1, "2": 2, "1": np.inf}[norm]
    radius = eps * np.linalg.norm(A, ord=dual, axis=1)
    regions = [LpBall(c, eps, norm) for c in centers]
    result = compute_bounds(network, regions, C, method)
    middle = centers @ A.T + offset
    np.testing.assert_allclose(result.lower.numpy(), middle - radius, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(result.upper.numpy(), middle + radius, rtol=1e-9, atol=1e-9)


def test_single_layer_interval_is_exact_on_a_box():
    rng = np.random.default_rng(4)
    W, b = rng.normal(size=(3, 5)), rng.normal(size=3)
    network = Network([W], [b])
    lower, upper = random_boxes(rng, 5, 4, 1.0)
    result = _bounds(network, lower, upper, None, "ibp")
    mid, rad = (lower + upper) / 2, (upper - lower) / 2
    np.testing.assert_allclose(result.lower.numpy(), mid @ W.T + b - rad @ np.abs(W).T)


def test_given_bounds_are_kept_and_split_constraints_are_sound():
    rng = np.random.default_rng(8)
    network = mlp(rng, [3, 12, 12, 2])
    lower, upper = random_boxes(rng, 3, 1, 1.0)
    base = _bounds(network, lower, upper, None, "crown")
    again = compute_bounds(network, (lower, upper), None, "crown", bounds=base.bounds)
    torch.testing.assert_close(again.lower, base.lower)
    fc0 = base.bounds["fc0"]
    j = int(((fc0.lower < 0) & (fc0.upper > 0)).float().argmax())
    split = Interval(fc0.lower.clone(), fc0.upper.clone())
    split.lower[0, j] = 0.0  # branch: neuron j active
    active = compute_bounds(network, (lower, upper), None, "crown", bounds={"fc0": split})
    assert float(active.bounds["fc0"].lower[0, j]) == 0.0
    x = rng.uniform(lower, upper, size=(20000, 3))
    with torch.no_grad():
        z = network.nodes[0].op.forward(torch.tensor(x))[:, j].numpy()
    y = outputs(network, x[z >= 0][None])[0]
    assert np.all(y >= active.lower.numpy() - 1e-9) and np.all(y <= active.upper.numpy() + 1e-9)
    assert bool((active.lower >= base.lower - 1e-9).all())
    for method in ("alpha-crown", "lp"):
        split_result = compute_bounds(
            network, (lower, upper), None, method, bounds={"fc0": split}, options=None
        )
        assert np.all(y >= split_result.lower.numpy() - 1e-9)
        assert np.all(y <= split_result.upper.numpy() + 1e-9)


def test_chunked_batches_equal_separate_calls():
    rng = np.random.default_rng(9)
    network = residual_net(rng)
    lower, upper = random_boxes(rng, 4, 5, 0.5)
    C = rng.normal(size=(5, 2, 3))
    values = outputs(network, rng.uniform(lower[:, None], upper[:, None], size=(5, 300, 4)))
    for method in ("crown", "alpha-crown"):
        chunked_options = CrownOptions(chunk_regions=2)
        if method == "alpha-crown":
            chunked_options = AlphaOptions(iterations=5, crown=chunked_options)
        chunked = compute_bounds(network, (lower, upper), C, method, options=chunked_options)
        for start in range(0, 5, 2):
            part = slice(start, start + 2)
            alone = compute_bounds(
                network, (lower[part], upper[part]), C[part], method, options=chunked_options
            )
            torch.testing.assert_close(chunked.lower[part], alone.lower)
            torch.testing.assert_close(chunked.bounds["fc2"].upper[part], alone.bounds["fc2"].upper)
        cy = np.einsum("bmn,bpn->bpm", C, values)
        assert np.all(cy >= chunked.lower.numpy()[:, None] - 1e-9)


def test_regions_in_every_accepted_form_agree():
    rng = np.random.default_rng(10)
    network = mlp(rng, [3, 6, 2])
    lower, upper = random_boxes(rng, 3, 2, 0.5)
    a = compute_bounds(network, (lower, upper))
    b = compute_bounds(network, [Box(lower[0], upper[0]), Box(lower[1], upper[1])])
    c = compute_bounds(network, (torch.tensor(lower), torch.tensor(upper)))
    torch.testing.assert_close(a.lower, b.lower)
    torch.testing.assert_close(a.upper, c.upper)
    ball = compute_bounds(network, LpBall((lower[0] + upper[0]) / 2, 0.1, "inf"))
    assert ball.lower.shape == (1, 2)


def test_float32_and_bound_upper_false():
    rng = np.random.default_rng(11)
    network = mlp(rng, [3, 8, 2])
    lower, upper = random_boxes(rng, 3, 2, 0.5)
    f64 = compute_bounds(network, (lower, upper))
    f32 = compute_bounds(network, (lower, upper), dtype=torch.float32, bound_upper=False)
    assert f32.lower.dtype == torch.float32
    torch.testing.assert_close(f32.lower.double(), f64.lower, rtol=1e-4, atol=1e-4)
    assert bool(torch.isinf(f32.upper).all())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu():
    rng = np.random.default_rng(12)
    network = residual_net(rng)
    lower, upper = random_boxes(rng, 4, 3, 0.5)
    for method in ("ibp", "crown", "alpha-crown"):
        cpu = compute_bounds(network, (lower, upper), None, method)
        gpu = compute_bounds(network, (lower, upper), None, method, device="cuda")
        assert gpu.lower.device.type == "cuda"
        torch.testing.assert_close(gpu.lower.cpu(), cpu.lower, rtol=1e-6, atol=1e-6)


@dataclass(frozen=True, eq=False, repr=False)
class _Cube(Op):
    def forward(self, *inputs):
        return inputs[0] ** 3

    def output_shape(self, *input_shapes: Shape) -> Shape:
        return input_shapes[0]


def test_errors_name_what_is_wrong():
    rng = np.random.default_rng(13)
    network = mlp(rng, [3, 4, 2])
    lower, upper = random_boxes(rng, 3, 1, 0.5)
    with pytest.raises(InvalidInputError, match="method"):
        compute_bounds(network, (lower, upper), method="magic")
    with pytest.raises(InvalidInputError, match="C has shape"):
        compute_bounds(network, (lower, upper), np.ones((2, 5)))
    with pytest.raises(InvalidInputError):
        compute_bounds(network, (lower[:, :2], upper[:, :2]))
    with pytest.raises(InvalidInputError, match="empty"):
        compute_bounds(network, (upper, lower - 1))
    cube = Network.from_graph(
        (2,),
        [
            Node("fc", Dense(as_tensor(np.eye(2)), as_tensor(np.zeros(2))), ("input",)),
            Node("cube", _Cube(), ("fc",)),
            Node("cube2", _Cube(), ("cube",)),
        ],
    )
    with pytest.raises(UnsupportedModelError, match=r"cube \(_Cube\), cube2 \(_Cube\)"):
        BoundGraph.of(cube)
    with pytest.raises(UnsupportedModelError, match="chain"):
        compute_bounds(residual_net(rng), (np.zeros(4), np.ones(4)), method="lp")


def test_alpha_time_limit_returns_the_best_bound_so_far():
    rng = np.random.default_rng(14)
    network = mlp(rng, [5, 20, 20, 3])
    lower, upper = random_boxes(rng, 5, 2, 1.0)
    crown = _bounds(network, lower, upper, None, "crown")
    stopped = compute_bounds(network, (lower, upper), method="alpha-crown", budget=Budget.start(0))
    assert stopped.statistics["iterations"] == 0
    torch.testing.assert_close(stopped.lower, crown.lower)
