"""The SDP relaxation: soundness against the MILP and samples, tightness against the LP."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import random_mlp_params
from verifiNN import verify
from verifiNN.bounds import compute_bounds
from verifiNN.bounds.api import bound_graph, prepare_rows
from verifiNN.bounds.lp import chain_stages
from verifiNN.errors import InvalidInputError, UnsupportedModelError
from verifiNN.models.network import Network, Node
from verifiNN.ops import AvgPool2d, Conv2d, Dense, Flatten, ReLU, Reshape, Tanh
from verifiNN.regions import as_batch
from verifiNN.results import Verdict
from verifiNN.solvers.milp import milp_minimum
from verifiNN.solvers.sdp import SDPOptions, sdp_bound, solve_sdp, sound_bound
from verifiNN.solvers.sdp.bound import region_sdp
from verifiNN.specs import Box, LpBall, robustness_spec
from verifiNN.verifier import MILPVerifier, SDPVerifier
from verifiNN.verifiers.portfolio import BOUND_METHODS, METHODS

torch.set_num_threads(1)
TOL = 1e-5  # solver tolerance for "SDP >= LP" and "SDP == SDP"


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a, np.float64))


def _conv_net(rng: np.random.Generator, channels: int, pool: bool) -> Network:
    """1x5x5 input: conv (pad 1), ReLU, [AvgPool], conv (stride 2), ReLU, Dense."""
    k1 = rng.normal(0, 1 / 3, size=(channels, 1, 3, 3))
    k2 = rng.normal(0, 1 / np.sqrt(4 * channels), size=(2, channels, 2, 2))
    nodes = [
        Node("img", Reshape((1, 5, 5)), ("input",)),
        Node("conv1", Conv2d(_t(k1), _t(rng.normal(0, 0.3, channels)), (1, 1), (1, 1, 1, 1)),
             ("img",)),
        Node("relu1", ReLU(), ("conv1",)),
    ]  # fmt: skip
    prev, side = "relu1", 5
    if pool:
        nodes.append(Node("pool", AvgPool2d((2, 2), (1, 1), (0, 0, 0, 0)), (prev,)))
        prev, side = "pool", 4
    nodes += [
        Node("conv2", Conv2d(_t(k2), _t(rng.normal(0, 0.3, 2)), (2, 2), (0, 0, 0, 0)), (prev,)),
        Node("relu2", ReLU(), ("conv2",)),
        Node("flat", Flatten(), ("relu2",)),
    ]
    side = (side - 2) // 2 + 1
    w = rng.normal(0, 1 / np.sqrt(2 * side * side), size=(3, 2 * side * side))
    nodes.append(Node("fc", Dense(_t(w), _t(rng.normal(0, 0.3, 3))), ("flat",)))
    return Network.from_graph((25,), nodes)


def _as_mlp(network: Network) -> Network:
    """The same function as a dense MLP: the folded affine maps between the ReLUs."""
    stages = chain_stages(bound_graph(network))
    weights = [s.weight.toarray() for s in stages]
    return Network(weights, [s.bias for s in stages], activation="ReLU")


def _bounds(network, region, c, options=None):
    """``(sdp, lp, crown)`` lower bounds of ``c . y`` with the same (CROWN) intermediate bounds."""
    C = np.asarray(c, np.float64)[None]
    crown = compute_bounds(network, region, C, "crown", bound_upper=False)
    lp = compute_bounds(network, region, C, "lp", bounds=crown.bounds, bound_upper=False)
    graph = bound_graph(network)
    input_set = as_batch(region, network.input_size, torch.float64, None)
    rows = prepare_rows(C, network.output_size, 1, torch.float64, torch.device("cpu"))
    sdp, _ = sdp_bound(graph, input_set, crown.bounds, rows, options)
    return float(sdp[0, 0]), float(lp.lower[0, 0]), float(crown.lower[0, 0])


def _sampled_min(network, region, c, rng, n=2000) -> float:
    if isinstance(region, Box):
        x = rng.uniform(region.lower, region.upper, size=(n, region.size))
        corners = rng.integers(0, 2, size=(n // 4, region.size))
        x = np.vstack([x, np.where(corners, region.upper, region.lower)])
    else:
        d = rng.normal(size=(n, region.size))
        d /= np.linalg.norm(d, axis=1, keepdims=True)
        x = region.center + region.epsilon * d * rng.uniform(0, 1, size=(n, 1)) ** (1 / region.size)
    y = np.asarray(network.get_output(x), np.float64).reshape(len(x), -1)
    return float((y @ np.asarray(c, np.float64)).min())


# ------------------------------------------------------------ FC nets: MILP oracle
@settings(max_examples=10, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    n_in=st.integers(2, 4),
    hidden=st.lists(st.integers(3, 7), min_size=1, max_size=2),
    eps=st.floats(0.05, 1.0),
)
def test_fc_sdp_sound_and_never_looser_than_lp(seed, n_in, hidden, eps):
    rng = np.random.default_rng(seed)
    weights, biases = random_mlp_params(rng, [n_in, *hidden, 3])
    net = Network(weights, biases, activation="ReLU")
    x0 = rng.normal(size=n_in)
    box = Box(x0 - eps, x0 + eps)
    c = rng.normal(size=3)
    sdp, lp, crown = _bounds(net, box, c)
    exact = milp_minimum(net, box, c).value
    scale = 1 + abs(exact)
    assert sdp <= exact + 1e-7 * scale, (sdp, exact)
    assert sdp <= _sampled_min(net, box, c, rng) + 1e-9
    assert sdp >= lp - TOL * scale, (sdp, lp)
    assert sdp >= crown - TOL * scale or sdp >= lp - TOL * scale


# ------------------------------------------------------------ conv nets
@pytest.mark.slow
@settings(max_examples=4, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), pool=st.booleans(), eps=st.floats(0.05, 0.3))
def test_conv_sdp_sound(seed, pool, eps):
    rng = np.random.default_rng(seed)
    net = _conv_net(rng, 1, pool)
    x0 = rng.uniform(0, 1, size=25)
    box = Box(x0 - eps, x0 + eps)
    c = rng.normal(size=3)
    sdp, lp, _ = _bounds(net, box, c)
    assert sdp <= _sampled_min(net, box, c, rng) + 1e-9
    mlp = _as_mlp(net)
    xs = rng.uniform(box.lower, box.upper, size=(50, 25))
    np.testing.assert_allclose(mlp.get_output(xs), net.get_output(xs), atol=1e-9)
    exact = milp_minimum(mlp, box, c).value
    assert sdp <= exact + 1e-7 * (1 + abs(exact)), (sdp, exact)
    assert sdp >= lp - TOL * (1 + abs(lp))


# ------------------------------------------------------------ formulations, L2, duals
def test_chordal_and_single_block_agree():
    rng = np.random.default_rng(3)
    weights, biases = random_mlp_params(rng, [3, 8, 8, 8, 2])
    net = Network(weights, biases, activation="ReLU")
    box = Box(np.full(3, -0.5), np.full(3, 0.5))
    c = np.array([1.0, -1.0])
    chordal = _bounds(net, box, c, SDPOptions(formulation="chordal"))[0]
    single = _bounds(net, box, c, SDPOptions(formulation="single"))[0]
    assert abs(chordal - single) <= 1e-5 * (1 + abs(single))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_l2_ball_sound_and_tighter_than_its_box(seed):
    rng = np.random.default_rng(seed)
    weights, biases = random_mlp_params(rng, [4, 8, 8, 3])
    net = Network(weights, biases, activation="ReLU")
    ball = LpBall(rng.normal(size=4), 0.6, "2")
    c = rng.normal(size=3)
    sdp, lp, _ = _bounds(net, ball, c)
    assert sdp <= _sampled_min(net, ball, c, rng, 4000) + 1e-9
    assert sdp >= lp - TOL * (1 + abs(lp))  # the LP sees the ball's bounding box


def test_sound_bound_holds_for_any_multipliers():
    """Weak duality is evaluated rigorously: perturbed or random multipliers only loosen it."""
    rng = np.random.default_rng(7)
    weights, biases = random_mlp_params(rng, [3, 6, 6, 2])
    net = Network(weights, biases, activation="ReLU")
    box = Box(np.full(3, -1.0), np.full(3, 1.0))
    c = np.array([1.0, -1.0])
    crown = compute_bounds(net, box, c[None], "crown", bound_upper=False)
    input_set = as_batch(box, 3, torch.float64, None)
    data = region_sdp(bound_graph(net), input_set, crown.bounds, 0)(c)
    exact = milp_minimum(net, box, c).value
    result = solve_sdp(data, "clarabel")
    best = sound_bound(data, result.y)
    assert best <= exact + 1e-9
    assert abs(best - result.value) <= 1e-4 * (1 + abs(best))
    for scale in (1e-3, 1e-1, 1.0):
        noisy = result.y * (1 + scale * rng.normal(size=result.y.size))
        assert sound_bound(data, noisy) <= exact + 1e-9
    for _ in range(5):
        assert sound_bound(data, rng.normal(size=result.y.size)) <= exact + 1e-9
    assert sound_bound(data, np.zeros(result.y.size)) <= exact + 1e-9
    assert isinstance(data.A, sp.csr_matrix)


def test_scs_multipliers_give_a_sound_bound():
    rng = np.random.default_rng(11)
    weights, biases = random_mlp_params(rng, [3, 6, 6, 2])
    net = Network(weights, biases, activation="ReLU")
    box = Box(np.full(3, -0.5), np.full(3, 0.5))
    c = np.array([-1.0, 1.0])
    clarabel = _bounds(net, box, c, SDPOptions(solver="clarabel"))[0]
    scs = _bounds(net, box, c, SDPOptions(solver="scs", accuracy=1e-6))[0]
    assert scs <= milp_minimum(net, box, c).value + 1e-9
    assert scs <= clarabel + 1e-6 * (1 + abs(clarabel))


# ------------------------------------------------------------ verifiers and registration
def test_seed_example_bracket():
    W1, b1 = np.array([[1, 0], [0, 1]]), np.array([1, 1])
    W2, b2 = np.array([[0, 1], [1, 0]]), np.array([2, 2])
    net = Network([W1, W2], [b1, b2], activation="ReLU")
    x0 = np.array([1, 2])
    result = SDPVerifier().compute_pointwise_robustness(net, x0, 1.5)
    assert result.robustness_status == "not_robust"
    assert result.lower_bound <= 0.5 + 1e-9 <= result.upper_bound + 1e-9
    assert result.lower_bound > 0.45
    assert net.classify(result.adversarial_example) != net.classify(x0)
    assert SDPVerifier().verify_epsilon_robustness(net, x0, 0.4).verdict is Verdict.UNSAT
    assert SDPVerifier().verify_epsilon_robustness(net, x0, 0.6).verdict is Verdict.UNKNOWN


@pytest.mark.parametrize("seed", [0, 5])
def test_certified_radius_below_exact_distance(seed):
    rng = np.random.default_rng(seed)
    weights, biases = random_mlp_params(rng, [3, 6, 6, 3])
    net = Network(weights, biases, activation="ReLU")
    x0 = rng.normal(size=3)
    exact = MILPVerifier().compute_pointwise_robustness(net, x0, 2.0)
    sdp = SDPVerifier(steps=4, attack=False).compute_pointwise_robustness(net, x0, 2.0)
    truth = exact.pointwise_robustness if exact.pointwise_robustness is not None else 2.0
    assert sdp.lower_bound <= truth + 1e-7


def test_registered_in_portfolio_and_spec_verdicts():
    assert "sdp" in BOUND_METHODS and "sdp" in METHODS
    rng = np.random.default_rng(2)
    weights, biases = random_mlp_params(rng, [2, 6, 3])
    net = Network(weights, biases, activation="ReLU")
    x0 = rng.normal(size=2)
    tiny = verify(net, robustness_spec(net, x0, 1e-3), method="sdp")
    assert tiny.verdict is Verdict.UNSAT
    huge = robustness_spec(net, x0, 50.0)
    assert verify(net, huge, method="milp").verdict is Verdict.SAT
    assert verify(net, huge, method="sdp").verdict is Verdict.UNKNOWN


def test_errors():
    with pytest.raises(InvalidInputError):
        SDPOptions(formulation="dense")
    with pytest.raises(InvalidInputError):
        SDPOptions(solver="cplex")
    nodes = [
        Node("fc0", Dense(_t(np.eye(2)), _t(np.zeros(2))), ("input",)),
        Node("act", Tanh(), ("fc0",)),
        Node("fc1", Dense(_t(np.eye(2)), _t(np.zeros(2))), ("act",)),
    ]
    net = Network.from_graph((2,), nodes)
    with pytest.raises(UnsupportedModelError):
        verify(net, robustness_spec(net, np.array([0.3, 0.1]), 0.5), method="sdp")
