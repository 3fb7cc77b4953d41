"""The seed's published example runs unchanged (with its module path filled in)."""

from __future__ import annotations

import numpy as np
import pytest

from verifiNN import LPVerifier as TopLevelLPVerifier
from verifiNN import Network as TopLevelNetwork
from verifiNN.models.network import Network
from verifiNN.verifier import LPVerifier


def test_seed_import_paths_are_the_same_objects():
    assert TopLevelNetwork is Network
    assert TopLevelLPVerifier is LPVerifier


def test_seed_example_verbatim():
    W1 = np.array([[1, 0], [0, 1]])
    b1 = np.array([1, 1])
    W2 = np.array([[0, 1], [1, 0]])
    b2 = np.array([2, 2])
    network = Network([W1, W2], [b1, b2], activation="ReLU", labeler="argmax")
    x_0 = np.array([1, 2])
    assert network.classify(x_0) == 0
    result = LPVerifier().compute_pointwise_robustness(network, x_0, 1.5)
    assert result["verification_status"] == "verified"
    assert result["robustness_status"] == "not_robust"
    assert np.round(result["pointwise_robustness"], decimals=5) == 0.5
    x_hat = result["adversarial_example"]
    assert np.round(x_hat[0], decimals=5) == 1.5
    assert np.round(x_hat[1], decimals=5) == 1.5
    assert network.classify(x_hat) == 1
    assert result["optimal_value"] == pytest.approx(0.5, abs=1e-9)


def test_every_public_name_resolves():
    import verifiNN

    missing = [name for name in verifiNN.__all__ if not hasattr(verifiNN, name)]
    assert not missing
