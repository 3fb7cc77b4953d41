"""Rigorous floating-point bounds (``--sound-fp``) and onnxruntime's second opinion."""

from __future__ import annotations

import dataclasses
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import random_mlp_params
from verifiNN.bounds import compute_bounds
from verifiNN.bounds.sound_fp import sound_lower_bounds, sound_verify
from verifiNN.budget import Budget
from verifiNN.errors import UnsupportedModelError
from verifiNN.models.network import Network
from verifiNN.results import Verdict
from verifiNN.specs import Box, Case, HalfSpaces, Specification, robustness_spec
from verifiNN.verifiers.portfolio import verify


def _exact_output(network: Network, x: np.ndarray) -> list[Fraction]:
    """The network's output at ``x`` in exact rational arithmetic."""
    mlp = network.as_mlp()
    a = [Fraction(float(v)) for v in x]
    for k, (W, b) in enumerate(zip(mlp.weights, mlp.biases, strict=True)):
        z = [
            sum((Fraction(float(w)) * v for w, v in zip(row, a, strict=True)), Fraction(0))
            + Fraction(float(bias))
            for row, bias in zip(W, b, strict=True)
        ]
        a = [max(v, Fraction(0)) for v in z] if k < len(mlp.weights) - 1 else z
    return a


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), radius=st.floats(1e-3, 1.0))
def test_sound_bounds_are_below_exact_outputs(seed, radius):
    rng = np.random.default_rng(seed)
    sizes = [int(rng.integers(2, 5)), *rng.integers(2, 7, size=2).tolist(), 3]
    network = Network(*random_mlp_params(rng, sizes))
    centre = rng.uniform(-1, 1, sizes[0])
    box = Box(centre - radius, centre + radius)
    C = rng.normal(size=(2, 3))
    sound = sound_lower_bounds(network, box, C)
    for x in rng.uniform(box.lower, box.upper, (5, sizes[0])):
        exact = _exact_output(network, x)
        for row, bound in zip(C, sound, strict=True):
            value = sum((Fraction(float(c)) * y for c, y in zip(row, exact, strict=True)))
            assert Fraction(float(bound)) <= value  # exact comparison, no tolerance
    # not vacuous: within the reach of CROWN's own (differently relaxed) bound
    crown = compute_bounds(network, box, C, method="crown").lower.numpy().ravel()
    assert np.all(sound >= crown - 2.0 * (1 + np.abs(crown)))


@pytest.mark.slow
def test_an_exact_tie_is_never_proved():
    """y_0 - y_1 is exactly 0 at a point of the box: no rigorous bound may prove it > 0."""
    W1 = np.array([[1.0, 0.0], [0.0, 1.0]])
    W2 = np.array([[1.0, 0.0], [0.0, 1.0]])
    network = Network([W1, W2], [np.zeros(2), np.array([0.1, 0.0])], activation="ReLU")
    # unsafe: y_1 >= y_0, i.e. x_1 >= x_0 + 0.1 (relu); reached exactly at (0.2, 0.3)
    spec = Specification(
        (Case(Box([0.2, 0.0], [0.3, 0.3]), (HalfSpaces(np.array([[1.0, -1.0]]), [0.0]),)),)
    )
    assert not sound_verify(network, spec, budget=Budget.start(5)).proved
    result = verify(network, spec, timeout=10, sound_fp=True)
    assert result.verdict is not Verdict.UNSAT


def test_sound_fp_confirms_easy_proofs_and_rejects_unsupported_inputs():
    rng = np.random.default_rng(3)
    network = Network(*random_mlp_params(rng, [3, 8, 8, 3]))
    x = rng.uniform(-1, 1, 3)
    spec = robustness_spec(network, x, 1e-3)
    plain = verify(network, spec, timeout=30)
    checked = verify(network, spec, timeout=30, sound_fp=True)
    assert plain.verdict is Verdict.UNSAT
    assert checked.verdict is Verdict.UNSAT
    assert checked.statistics["engine"]["sound_fp_boxes"] >= 1
    with pytest.raises(UnsupportedModelError, match="sound-fp"):
        verify(network, robustness_spec(network, x, 0.1, norm="2"), sound_fp=True)
    import torch

    from verifiNN.io.torch import from_torch

    tanh = from_torch(torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh()), (3,))
    with pytest.raises(UnsupportedModelError, match="sound-fp"):
        verify(tanh, robustness_spec(tanh, x, 0.1), sound_fp=True)


def test_onnxruntime_must_agree_with_a_counterexample(tmp_path, monkeypatch):
    """A network from ONNX: a counterexample that onnxruntime's run of the original
    file does not confirm is rejected (here the file is swapped for a different model)."""
    import torch

    from verifiNN.io import load_onnx

    model = torch.nn.Sequential(torch.nn.Linear(2, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    with torch.no_grad():  # y = x, written as relu(x) - relu(-x)
        model[0].weight.copy_(torch.tensor([[1.0, 0], [0, 1], [-1, 0], [0, -1]]))
        model[0].bias.zero_()
        model[2].weight.copy_(torch.tensor([[1.0, 0, -1, 0], [0, 1, 0, -1]]))
        model[2].bias.zero_()
    path = tmp_path / "m.onnx"
    torch.onnx.export(model, (torch.zeros(1, 2),), str(path), dynamo=False)
    network = load_onnx(path)
    x = np.array([1.0, 0.0])
    label = int(network.classify(x))
    spec = robustness_spec(network, x, 2.0, label=label)
    found = verify(network, spec, timeout=30)
    assert found.verdict is Verdict.SAT  # a wide ball: some other class is reachable
    with torch.no_grad():
        model[2].weight.zero_()
        model[2].bias.copy_(torch.tensor([1.0, 0.0]) if label == 0 else torch.tensor([0.0, 1.0]))
    other = tmp_path / "other.onnx"
    torch.onnx.export(model, (torch.zeros(1, 2),), str(other), dynamo=False)
    # onnxruntime now always answers `label`
    network = network.with_origin(
        dataclasses.replace(network.origin, onnx_model=other.read_bytes())
    )
    assert verify(network, spec, timeout=5, method="attack").verdict is not Verdict.SAT
