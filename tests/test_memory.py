"""Memory is a promise: bound passes and attacks fit the allowance, or end ``unknown``.

The allowance is made small by pretending the machine has little memory
(``verifiNN.memory.available_bytes``); the same bounds must come out in
chunks, and when not even one row fits the portfolio answers ``unknown`` with
the reason instead of crashing.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import random_mlp_params
from verifiNN import memory
from verifiNN.bounds import compute_bounds
from verifiNN.errors import ResourceLimitError
from verifiNN.models.network import Network
from verifiNN.results import Verdict
from verifiNN.search.attack import attack, memory_batches
from verifiNN.specs import Box, Case, HalfSpaces, Specification
from verifiNN.verifiers import verify


def _network(seed: int = 0, widths=(6, 40, 40, 30)) -> Network:
    weights, biases = random_mlp_params(np.random.default_rng(seed), list(widths))
    return Network(weights, biases)


def _pretend_available(monkeypatch, n_bytes: int) -> None:
    monkeypatch.setattr(memory, "available_bytes", lambda: n_bytes)


@pytest.mark.parametrize("method", ["crown", "alpha-crown"])
def test_bounds_are_the_same_in_chunks(monkeypatch, method):
    network = _network()
    rng = np.random.default_rng(1)
    C = rng.normal(size=(300, 30))  # many property rows
    box = Box(-np.ones(6), np.ones(6))
    full = compute_bounds(network, box, C, method)
    # room for about 8 rows per backward pass (a row: 3 x 40 + 6 float64 values)
    _pretend_available(monkeypatch, int(8 * (3 * 40 + 6) * 8 / memory.MEMORY_SHARE))
    chunked = compute_bounds(network, box, C, method)
    if method == "crown":
        torch.testing.assert_close(chunked.lower, full.lower, rtol=1e-9, atol=1e-9)
        torch.testing.assert_close(chunked.upper, full.upper, rtol=1e-9, atol=1e-9)
    else:  # slopes for 300 rows do not fit: alpha-CROWN keeps CROWN's sound bound
        crown = compute_bounds(network, box, C, "crown")
        torch.testing.assert_close(chunked.lower, crown.lower, rtol=1e-9, atol=1e-9)
        assert torch.all(full.lower >= crown.lower - 1e-9)


def test_a_pass_that_does_not_fit_is_refused_by_name(monkeypatch):
    _pretend_available(monkeypatch, 1000)
    with pytest.raises(ResourceLimitError, match="backward bound pass"):
        compute_bounds(_network(), Box(-np.ones(6), np.ones(6)), np.eye(30), "crown")


def test_verify_answers_unknown_with_the_reason_when_nothing_fits(monkeypatch):
    network = _network(widths=(30, 40, 40, 30))  # too wide for input splitting: bounds decide
    box = Box(-np.ones(30), np.ones(30))
    spec = Specification((Case(box, HalfSpaces(np.eye(30)[:1], [-1e6])),))
    assert verify(network, spec, timeout=20).verdict is Verdict.UNSAT  # with memory to spare
    _pretend_available(monkeypatch, 1000)
    result = verify(network, spec, timeout=20)
    assert result.verdict is Verdict.UNKNOWN
    assert "needs" in result.statistics["reason"] and "GiB" in result.statistics["reason"]


def test_attack_batches_shrink_to_the_allowance(monkeypatch):
    network = _network()
    starts, _ = memory_batches(network, torch.float32)
    _pretend_available(monkeypatch, int(5 * 3 * (6 + 40 + 40 + 40 + 40 + 30) * 4 / 0.25))
    few, _ = memory_batches(network, torch.float32)
    assert 1 <= few <= 6 < starts
    # the attack still finds an easy counterexample with the few starts it may use
    spec = Specification((Case(Box(-np.ones(6), np.ones(6)), HalfSpaces(np.eye(30)[:1], [1e6])),))
    found = attack(network, spec, steps=5)
    assert found.counterexample is not None
    assert spec.is_violated_by(found.counterexample, network.get_output(found.counterexample))
