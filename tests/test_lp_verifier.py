"""LPVerifier: the seed's activation-region LP, checked against independent oracles."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog

from conftest import random_mlp_params
from verifiNN import LPVerifier, Network
from verifiNN.errors import InvalidInputError, UnsupportedModelError
from verifiNN.models.network import Node
from verifiNN.ops import Dense, Sigmoid, as_tensor


def region_affine_maps(weights, biases, activation, x_0):
    """Collapse the network on x_0's activation region into affine maps.

    Returns the sign constraints ``G x + g >= 0`` of the region and the output map ``(A, c)``.
    """
    A, c = np.eye(len(x_0)), np.zeros(len(x_0))
    rows, offsets = [], []
    for k, (w, b) in enumerate(zip(weights, biases)):
        A, c = w @ A, w @ c + b
        if k == len(weights) - 1:
            break
        if activation == "ReLU":
            z = A @ x_0 + c
            active = z > 0
            sign = np.where(active, 1.0, -1.0)
            rows.append(sign[:, None] * A)
            offsets.append(sign * c)
            A, c = A * active[:, None], c * active
    G = np.vstack(rows) if rows else np.zeros((0, len(x_0)))
    g = np.concatenate(offsets) if offsets else np.zeros(0)
    return G, g, A, c


def oracle_class_distance(weights, biases, activation, labeler, x_0, epsilon, label, target):
    """The region LP for one class, written collapsed and solved by SciPy."""
    n = len(x_0)
    G, g, A, c = region_affine_maps(weights, biases, activation, x_0)
    sign = 1.0 if labeler == "argmax" else -1.0
    gap_row = sign * (A[target] - A[label])
    gap_off = sign * (c[target] - c[label])
    # variables (x, t); constraints as A_ub @ v <= b_ub
    ub_rows = [np.hstack([-G, np.zeros((len(g), 1))]), np.hstack([-gap_row, [0.0]])[None]]
    ub_vals = [g, [gap_off]]
    eye = np.eye(n)
    ub_rows += [np.hstack([eye, -np.ones((n, 1))]), np.hstack([-eye, -np.ones((n, 1))])]
    ub_vals += [x_0, -x_0]
    bounds = [(x - epsilon, x + epsilon) for x in x_0] + [(0, None)]
    res = linprog(
        np.r_[np.zeros(n), 1.0],
        A_ub=np.vstack(ub_rows),
        b_ub=np.concatenate(ub_vals),
        bounds=bounds,
        method="highs",
    )
    return res.fun if res.status == 0 else None


networks = st.builds(
    lambda seed, widths, act, labeler: (np.random.default_rng(seed), widths, act, labeler),
    st.integers(0, 2**32 - 1),
    st.lists(st.integers(2, 6), min_size=2, max_size=4),
    st.sampled_from(["ReLU", "Id"]),
    st.sampled_from(["argmax", "argmin"]),
)


@settings(max_examples=60, deadline=None)
@given(case=networks, epsilon=st.floats(0.05, 2.0))
def test_reported_example_is_real_and_nearest(case, epsilon):
    rng, widths, activation, labeler = case
    weights, biases = random_mlp_params(rng, widths)
    network = Network(weights, biases, activation=activation, labeler=labeler)
    x_0 = rng.normal(size=widths[0])
    label = network.classify(x_0)
    result = LPVerifier().compute_pointwise_robustness(network, x_0, epsilon)

    oracle = {
        j: oracle_class_distance(weights, biases, activation, labeler, x_0, epsilon, label, j)
        for j in range(widths[-1])
        if j != label
    }
    reachable = {j: d for j, d in oracle.items() if d is not None}
    if result.robustness_status == "not_robust":
        x_hat = result.adversarial_example
        assert result.verification_status == "verified"
        assert np.max(np.abs(x_hat - x_0)) <= epsilon + 1e-12
        assert network.classify(x_hat) != label
        assert result.adversarial_label == network.classify(x_hat)
        assert abs(result.pointwise_robustness - np.max(np.abs(x_hat - x_0))) <= 1e-6
        # nearest over all classes, each solved separately by the oracle
        assert reachable, "the oracle finds no reachable class"
        assert result.optimal_value == pytest.approx(min(reachable.values()), abs=1e-6)
        assert result.pointwise_robustness >= result.optimal_value - 1e-9
        assert result.pointwise_robustness <= result.optimal_value + 1e-4
        for j, d in reachable.items():
            assert result.statistics["class_distances"][j] == pytest.approx(d, abs=1e-6)
    else:
        assert result.robustness_status == "unknown"
        assert result.verification_status == "unverified"
        assert result.adversarial_example is None
        assert not reachable


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 5), classes=st.integers(2, 5))
def test_affine_network_distance_has_a_closed_form(seed, n, classes):
    """For y = W x + b, the L-inf distance to y_j >= y_l is gap / ||w_j - w_l||_1."""
    rng = np.random.default_rng(seed)
    W, b = rng.normal(size=(classes, n)), rng.normal(size=classes)
    network = Network([W], [b], activation="Id")
    x_0 = rng.normal(size=n)
    label = network.classify(x_0)
    y = W @ x_0 + b
    distances = [
        (y[label] - y[j]) / np.abs(W[j] - W[label]).sum() for j in range(classes) if j != label
    ]
    epsilon = 10.0 * max(distances) + 1.0
    result = LPVerifier().compute_pointwise_robustness(network, x_0, epsilon)
    assert result.robustness_status == "not_robust"
    assert result.optimal_value == pytest.approx(min(distances), rel=1e-6, abs=1e-9)


def test_feasibility_version_finds_a_confirmed_example_or_says_unknown():
    rng = np.random.default_rng(3)
    weights, biases = random_mlp_params(rng, [3, 8, 8, 4])
    network = Network(weights, biases)
    x_0 = rng.normal(size=3)
    vf = LPVerifier()
    nearest = vf.compute_pointwise_robustness(network, x_0, 5.0)
    feasible = vf.verify_epsilon_robustness(network, x_0, 5.0)
    assert feasible.robustness_status == nearest.robustness_status
    if feasible.robustness_status == "not_robust":
        assert network.classify(feasible.adversarial_example) != network.classify(x_0)
        assert feasible.pointwise_robustness >= nearest.optimal_value - 1e-9
    small = vf.verify_epsilon_robustness(network, x_0, 0.0)
    assert small.robustness_status == "unknown"


def test_result_is_a_mapping_with_attribute_access():
    network = Network([np.eye(2)], [np.zeros(2)])
    result = LPVerifier().compute_pointwise_robustness(network, [1.0, 0.0], 1.0)
    assert result["robustness_status"] == result.robustness_status == "not_robust"
    for key in (
        "verification_status",
        "pointwise_robustness",
        "adversarial_example",
        "optimal_value",
    ):
        assert key in result
    assert result.statistics["problem_status"] == "optimal"


@pytest.mark.parametrize(
    ("x_0", "epsilon", "message"),
    [
        ([1.0, 2.0, 3.0], 0.1, "shape"),
        ([np.nan, 1.0], 0.1, "NaN"),
        ([1.0, 2.0], -0.5, ">= 0"),
        ([1.0, 2.0], float("nan"), ">= 0"),
        ([1.0, 2.0], float("inf"), ">= 0"),
        ([1.0, 2.0], "big", "number"),
    ],
)
def test_invalid_queries_raise_clear_errors(x_0, epsilon, message):
    network = Network([np.eye(2)], [np.zeros(2)])
    with pytest.raises(InvalidInputError, match=message):
        LPVerifier().compute_pointwise_robustness(network, x_0, epsilon)
    with pytest.raises(InvalidInputError, match=message):
        LPVerifier().verify_epsilon_robustness(network, x_0, epsilon)


def test_non_piecewise_linear_networks_are_refused_clearly():
    nodes = [
        Node("d0", Dense(as_tensor(np.eye(2)), as_tensor(np.zeros(2))), ("input",)),
        Node("s", Sigmoid(), ("d0",)),
        Node("d1", Dense(as_tensor(np.eye(2)), as_tensor(np.zeros(2))), ("s",)),
    ]
    network = Network.from_graph((2,), nodes)
    with pytest.raises(UnsupportedModelError, match="Sigmoid"):
        LPVerifier().compute_pointwise_robustness(network, [0.0, 1.0], 0.5)
