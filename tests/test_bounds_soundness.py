"""Network-level soundness of every bound method: sampled outputs lie within the bounds.

Random networks cover every op of the IR (Dense, Conv2d with stride, asymmetric
padding, dilation and groups, AvgPool2d, MaxPool2d, residual Add, Concat, Pad,
Reshape, Flatten, ElementwiseAffine, Identity, ReLU, LeakyReLU, Sigmoid, Tanh).
Points are box corners, uniform samples and the end points of a few steps of
projected gradient ascent/descent on every bounded row. The 10,000-point version
is marked slow.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from verifiNN.bounds import AlphaOptions, CrownOptions, LPOptions, compute_bounds
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
    Pad,
    ReLU,
    Reshape,
    Sigmoid,
    Tanh,
    as_tensor,
)

torch.set_num_threads(1)
SLACK = 1e-6
FAST_ALPHA = AlphaOptions(iterations=4, lr=0.3)
RAW_CROWN = CrownOptions(intersect_ibp=False)  # CROWN alone, not hidden behind IBP
OPTIONS = {"alpha-crown": FAST_ALPHA, "raw-crown": RAW_CROWN}


# ---------------------------------------------------------------- networks
def _dense(rng: np.random.Generator, n_in: int, n_out: int, scale: float = 1.0) -> Dense:
    w = rng.normal(0.0, scale / np.sqrt(n_in), size=(n_out, n_in))
    return Dense(as_tensor(w), as_tensor(rng.normal(0.0, 0.3, size=n_out)))


def _conv(rng, c_in, c_out, k, stride=(1, 1), padding=(0, 0, 0, 0), dilation=(1, 1), groups=1):
    w = rng.normal(
        0.0, 1.0 / np.sqrt(c_in // groups * k[0] * k[1]), size=(c_out, c_in // groups, *k)
    )
    return Conv2d(
        as_tensor(w), as_tensor(rng.normal(0.0, 0.2, size=c_out)), stride, padding, dilation, groups
    )


def mlp(rng: np.random.Generator, widths: list[int], act=ReLU) -> Network:
    """Dense layers with ``act`` between them."""
    nodes, prev = [], "input"
    for k in range(len(widths) - 1):
        nodes.append(Node(f"fc{k}", _dense(rng, widths[k], widths[k + 1]), (prev,)))
        prev = f"fc{k}"
        if k < len(widths) - 2:
            nodes.append(Node(f"act{k}", act(), (prev,)))
            prev = f"act{k}"
    return Network.from_graph((widths[0],), nodes)


def conv_net(rng: np.random.Generator) -> Network:
    """Conv (stride, asymmetric pad), ReLU, grouped dilated conv, AvgPool, MaxPool, Dense."""
    nodes = [
        Node(
            "norm",
            ElementwiseAffine(
                as_tensor(rng.uniform(0.5, 2, (2, 1, 1))), as_tensor(rng.normal(0, 0.1, (2, 1, 1)))
            ),
            ("input",),
        ),
        Node("conv1", _conv(rng, 2, 4, (3, 3), (2, 1), (1, 0, 1, 2)), ("norm",)),
        Node("relu1", ReLU(), ("conv1",)),
        Node("conv2", _conv(rng, 4, 4, (2, 2), (1, 1), (1, 1, 0, 0), (1, 2), groups=2), ("relu1",)),
        Node("leaky", LeakyReLU(0.1), ("conv2",)),
        Node("avg", AvgPool2d((2, 2), (1, 1), (1, 0, 0, 1), count_include_pad=False), ("leaky",)),
        Node("max", MaxPool2d((2, 2), (2, 1), (0, 1, 1, 0)), ("avg",)),
        Node("flat", Flatten(), ("max",)),
    ]
    size = int(np.prod(Network.from_graph((2, 7, 6), nodes).output_shape))
    nodes.append(Node("fc", _dense(rng, size, 3), ("flat",)))
    return Network.from_graph((2, 7, 6), nodes)


def residual_net(rng: np.random.Generator) -> Network:
    """Residual Add, Concat of a ReLU and a Tanh branch, Pad, Reshape, Sigmoid, Identity."""
    nodes = [
        Node("fc0", _dense(rng, 4, 6), ("input",)),
        Node("r0", ReLU(), ("fc0",)),
        Node("fc1", _dense(rng, 6, 6), ("r0",)),
        Node("add", Add(), ("fc1", "fc0")),
        Node("r1", ReLU(), ("add",)),
        Node("b1", _dense(rng, 6, 4), ("r1",)),
        Node("t1", Tanh(), ("b1",)),
        Node("b2", _dense(rng, 6, 4), ("r1",)),
        Node("r2", ReLU(), ("b2",)),
        Node("cat", Concat(0), ("t1", "r2", "r1")),
        Node("id", Identity(), ("cat",)),
        Node("img", Reshape((1, 2, 7)), ("id",)),
        Node("pad", Pad((1, 0, 0, 1), 0.5), ("img",)),
        Node("flat", Flatten(), ("pad",)),
        Node("fc2", _dense(rng, 24, 5), ("flat",)),
        Node("s", Sigmoid(), ("fc2",)),
        Node("fc3", _dense(rng, 5, 3, scale=3.0), ("s",)),
    ]
    return Network.from_graph((4,), nodes)


def shallow_net(rng: np.random.Generator) -> Network:
    """One nonlinearity of each kind right before the output (their relaxations matter most)."""
    nodes = [
        Node("pool", MaxPool2d((3, 2), (2, 1), (1, 0, 1, 1)), ("input",)),
        Node("flat", Flatten(), ("pool",)),
        Node("fc", _dense(rng, 18, 6), ("flat",)),
        Node("sig", Sigmoid(), ("fc",)),
        Node("tanh", Tanh(), ("fc",)),
        Node("cat", Concat(0), ("sig", "tanh", "flat")),
        Node("out", _dense(rng, 30, 3, scale=2.0), ("cat",)),
    ]
    return Network.from_graph((2, 5, 3), nodes)


def random_boxes(rng: np.random.Generator, n: int, batch: int, width: float) -> tuple:
    center = rng.normal(0.0, 1.0, size=(batch, n))
    radius = rng.uniform(0.0, width, size=(batch, n))
    return center - radius, center + radius


NETWORKS = {
    "relu_mlp": lambda rng: mlp(rng, [3, 8, 8, 2]),
    "leaky_mlp": lambda rng: mlp(rng, [3, 7, 6, 2], lambda: LeakyReLU(0.2)),
    "sigmoid_mlp": lambda rng: mlp(rng, [3, 6, 6, 2], Sigmoid),
    "tanh_mlp": lambda rng: mlp(rng, [3, 6, 6, 2], Tanh),
    "conv": conv_net,
    "residual": residual_net,
    "shallow": shallow_net,
}


# ---------------------------------------------------------------- sampling
def sample_points(
    network: Network, lower: np.ndarray, upper: np.ndarray, C: np.ndarray, rng, per_region: int
) -> np.ndarray:
    """``(B, P, n)`` points: corners, uniform samples and projected-gradient extremes of ``C y``."""
    batch, n = lower.shape
    k = per_region // 3
    corners = np.where(rng.random((batch, k, n)) < 0.5, lower[:, None], upper[:, None])
    uniform = rng.uniform(lower[:, None], upper[:, None], size=(batch, k, n))
    m = C.shape[0]
    starts = rng.uniform(lower[:, None], upper[:, None], size=(batch, 2 * m, n))
    x = torch.tensor(starts, requires_grad=True)
    lo, hi = torch.tensor(lower)[:, None], torch.tensor(upper)[:, None]
    signs = torch.tensor(np.concatenate([C, -C]))  # ascend and descend every row
    step = (hi - lo) / 8
    for _ in range(10):
        y = network.forward(x.reshape(-1, *network.input_shape)).reshape(batch, 2 * m, -1)
        objective = (y * signs).sum()
        (grad,) = torch.autograd.grad(objective, x)
        with torch.no_grad():
            x = torch.minimum(torch.maximum(x + step * grad.sign(), lo), hi)
        x.requires_grad_(True)
    return np.concatenate([corners, uniform, x.detach().numpy()], axis=1)


def outputs(network: Network, points: np.ndarray) -> np.ndarray:
    batch, count, _ = points.shape
    with torch.no_grad():
        y = network.forward(torch.tensor(points.reshape(-1, *network.input_shape)))
    return y.numpy().reshape(batch, count, -1)


def assert_contains(result, C: np.ndarray, values: np.ndarray, what: str) -> None:
    """``values``: ``(B, P, n_out)`` outputs; every ``C y`` within ``[lower, upper]``."""
    cy = values @ C.T  # (B, P, m)
    low = result.lower.numpy()[:, None]
    high = result.upper.numpy()[:, None]
    slack = SLACK * (1 + np.abs(cy))
    assert np.all(cy >= low - slack), f"{what}: lower bound violated by {np.max(low - cy)}"
    assert np.all(cy <= high + slack), f"{what}: upper bound violated by {np.max(cy - high)}"


def check_network(network: Network, seed: int, methods, points: int, width: float) -> None:
    rng = np.random.default_rng(seed)
    n = network.input_size
    lower, upper = random_boxes(rng, n, 3, width)
    C = rng.normal(size=(2, network.output_size))
    values = outputs(network, sample_points(network, lower, upper, C, rng, points))
    for method in methods:
        options = OPTIONS.get(method)
        name = "crown" if method == "raw-crown" else method
        result = compute_bounds(network, (lower, upper), C, name, options=options)
        assert_contains(result, C, values, f"{method} on seed {seed}")
        node_bounds = result.bounds[network.output_name]
        y = values.reshape(3, -1, network.output_size)
        assert np.all(y >= node_bounds.lower.numpy().reshape(3, 1, -1) - SLACK * (1 + abs(y)))
        assert np.all(y <= node_bounds.upper.numpy().reshape(3, 1, -1) + SLACK * (1 + abs(y)))


# ------------------------------------------------------------------- tests
@pytest.mark.parametrize("name", sorted(NETWORKS))
@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31 - 1))
def test_bounds_contain_sampled_outputs(name, seed):
    network = NETWORKS[name](np.random.default_rng(seed))
    check_network(network, seed, ("ibp", "crown", "raw-crown", "alpha-crown"), points=60, width=0.6)


@settings(max_examples=4, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_lp_bounds_contain_sampled_outputs(seed):
    rng = np.random.default_rng(seed)
    network = mlp(rng, [3, 8, 8, 2])
    check_network(network, seed, ("lp",), points=60, width=0.8)
    lower, upper = random_boxes(rng, 3, 2, 0.8)
    C = rng.normal(size=(2, 2))
    values = outputs(network, sample_points(network, lower, upper, C, rng, 60))
    tight = compute_bounds(network, (lower, upper), C, "lp", options=LPOptions(tighten=True))
    assert_contains(tight, C, values, "lp with per-neuron tightening")


def test_lp_on_conv_chain_and_sigmoid():
    rng = np.random.default_rng(5)
    nodes = [
        Node("conv", _conv(rng, 1, 2, (3, 3), (2, 2), (1, 1, 0, 0)), ("input",)),
        Node("relu", ReLU(), ("conv",)),
        Node("flat", Flatten(), ("relu",)),
        Node("fc", _dense(rng, 18, 4), ("flat",)),
        Node("sig", Sigmoid(), ("fc",)),
        Node("out", _dense(rng, 4, 2), ("sig",)),
    ]
    network = Network.from_graph((1, 6, 6), nodes)
    check_network(network, 5, ("lp",), points=60, width=0.5)


def test_ball_regions_are_sound():
    from verifiNN.specs import LpBall

    rng = np.random.default_rng(3)
    network = residual_net(rng)
    C = rng.normal(size=(2, 3))
    for norm in ("1", "2", "inf"):
        balls = [
            LpBall(rng.uniform(-0.8, 1.3, size=4), 0.4, norm, lower=-1.0, upper=1.5)
            for _ in range(3)
        ]
        points = []
        for ball in balls:
            d = rng.normal(size=(400, 4))
            d /= np.linalg.norm(d, ord=ball.ord, axis=1, keepdims=True)
            x = ball.center + d * ball.epsilon * rng.uniform(0, 1, size=(400, 1)) ** 0.25
            x = x[ball.contains_batch(x)]
            points.append(x[:200])
        k = min(len(p) for p in points)
        values = outputs(network, np.stack([p[:k] for p in points]))
        for method in ("ibp", "crown", "raw-crown", "alpha-crown"):
            name = "crown" if method == "raw-crown" else method
            result = compute_bounds(network, balls, C, name, options=OPTIONS.get(method))
            assert_contains(result, C, values, f"{method}, L{norm} ball")


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_ten_thousand_points(name):
    network = NETWORKS[name](np.random.default_rng(11))
    check_network(network, 11, ("ibp", "crown", "raw-crown", "alpha-crown"), points=3400, width=0.6)


def test_activation_on_the_input_and_at_the_output():
    rng = np.random.default_rng(6)
    nodes = [
        Node("relu_in", ReLU(), ("input",)),
        Node("fc", _dense(rng, 3, 4), ("relu_in",)),
        Node("relu_out", ReLU(), ("fc",)),
    ]
    network = Network.from_graph((3,), nodes)
    check_network(network, 6, ("ibp", "crown", "raw-crown", "alpha-crown", "lp"), 60, 1.0)
