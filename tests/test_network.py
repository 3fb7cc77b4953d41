"""The seed's Network: construction, validation, batched forward and labelling."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import random_mlp_params
from verifiNN import Network
from verifiNN.errors import InvalidInputError, InvalidNetworkError


def reference_output(weights, biases, activation, x):
    """Plain NumPy forward pass with an affine output layer."""
    a = np.asarray(x, dtype=float)
    for k, (w, b) in enumerate(zip(weights, biases)):
        a = np.asarray(w, float) @ a + np.asarray(b, float)
        if k < len(weights) - 1 and activation == "ReLU":
            a = np.maximum(a, 0.0)
    return a


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    widths=st.lists(st.integers(1, 7), min_size=2, max_size=5),
    activation=st.sampled_from(["ReLU", "Id"]),
    batch=st.integers(1, 6),
)
def test_batched_forward_matches_plain_numpy(seed, widths, activation, batch):
    rng = np.random.default_rng(seed)
    weights, biases = random_mlp_params(rng, widths)
    network = Network(weights, biases, activation=activation)
    xs = rng.normal(size=(batch, widths[0]))
    expected = np.stack([reference_output(weights, biases, activation, x) for x in xs])
    np.testing.assert_allclose(network.get_output(xs), expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(network.get_output(xs[0]), expected[0], rtol=1e-12, atol=1e-12)
    labels = network.classify(xs)
    assert labels.shape == (batch,)
    assert [network.classify(x) for x in xs] == list(labels)
    assert all(isinstance(network.classify(x), int) for x in xs)


def test_output_layer_is_affine_and_hidden_layers_use_the_activation():
    # a negative output is only possible when the output layer has no ReLU
    network = Network([np.eye(2), -np.eye(2)], [np.zeros(2), np.zeros(2)], "ReLU")
    np.testing.assert_allclose(network.get_output([1.0, -3.0]), [-1.0, 0.0])


def test_identity_network_is_affine():
    rng = np.random.default_rng(0)
    weights, biases = random_mlp_params(rng, [3, 4, 2])
    network = Network(weights, biases, activation="Id")
    x, y = rng.normal(size=3), rng.normal(size=3)
    lhs = network.get_output(0.3 * x + 0.7 * y)
    rhs = 0.3 * network.get_output(x) + 0.7 * network.get_output(y)
    np.testing.assert_allclose(lhs, rhs, rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.int8, np.int64, np.float32, np.float64, np.uint16])
def test_any_real_numeric_dtype_is_accepted(dtype):
    network = Network([np.array([[1, 2], [3, 4]], dtype=dtype)], [np.array([1, 0], dtype=dtype)])
    np.testing.assert_allclose(network.get_output(np.array([1, 1], dtype=dtype)), [4.0, 7.0])


def test_lists_are_accepted():
    network = Network([[[1, 0], [0, 1]]], [[0, 0]])
    assert network.classify([0.0, 1.0]) == 1


def test_ties_go_to_the_lowest_index_for_both_labelers():
    scores_net = Network([np.zeros((4, 1))], [np.array([1.0, 3.0, 3.0, 1.0])], labeler="argmax")
    assert scores_net.classify([0.0]) == 1
    low_net = Network([np.zeros((4, 1))], [np.array([2.0, 0.5, 3.0, 0.5])], labeler="argmin")
    assert low_net.classify([0.0]) == 1


def test_argmin_labeler_picks_the_smallest_score():
    network = Network([np.eye(3)], [np.zeros(3)], labeler="argmin")
    assert network.classify([0.5, -2.0, 1.0]) == 1
    np.testing.assert_array_equal(network.classify([[3, 2, 1], [0, 1, 2]]), [2, 0])


@pytest.mark.parametrize(
    ("weights", "biases", "kwargs", "message"),
    [
        ([np.eye(2)], [np.zeros(3)], {}, "biases[0]"),
        ([np.eye(2), np.ones((2, 3))], [np.zeros(2), np.zeros(2)], {}, "weights[1]"),
        ([np.eye(2)], [np.zeros(2), np.zeros(2)], {}, "bias vectors"),
        ([], [], {}, "at least one layer"),
        ([np.array([[np.nan, 0], [0, 1]])], [np.zeros(2)], {}, "NaN"),
        ([np.eye(2)], [np.array([np.inf, 0])], {}, "NaN or inf"),
        ([np.array([["a", "b"]])], [np.zeros(1)], {}, "real numbers"),
        ([np.eye(2)], [np.zeros(2)], {"activation": "tanh"}, "activation"),
        ([np.eye(2)], [np.zeros(2)], {"labeler": "softmax"}, "labeler"),
        ([np.ones(3)], [np.zeros(3)], {}, "2-D"),
    ],
)
def test_invalid_networks_raise_clear_errors(weights, biases, kwargs, message):
    with pytest.raises(InvalidNetworkError, match=message.replace("[", r"\[").replace("]", r"\]")):
        Network(weights, biases, **kwargs)


def test_invalid_network_error_is_a_value_error():
    with pytest.raises(ValueError):
        Network([np.eye(2)], [np.zeros(3)])


def test_input_of_the_wrong_size_is_rejected():
    network = Network([np.eye(2)], [np.zeros(2)])
    with pytest.raises(InvalidInputError, match="shape"):
        network.get_output([1.0, 2.0, 3.0])
    with pytest.raises(InvalidInputError):
        network.classify(np.ones((4, 3)))


def test_mlp_view_round_trips_the_parameters():
    rng = np.random.default_rng(1)
    weights, biases = random_mlp_params(rng, [3, 5, 4, 2])
    mlp = Network(weights, biases).as_mlp()
    assert mlp.activations == ("ReLU", "ReLU")
    for w, w2 in zip(weights, mlp.weights):
        np.testing.assert_array_equal(w, w2)
