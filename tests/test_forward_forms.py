"""Forward linear bounds (:mod:`verifiNN.bounds.forward`) inside CROWN.

Networks with few inputs get forward forms at every node, and the backward
passes of intermediate bounds only where they are cheap. The forms alone
(``backward_work=0``: no intermediate backward pass at all) must be sound on
every fuzz family (every op of the IR), tighter than interval propagation
where there is depth to gain, and sound over L-inf and L2 regions alike.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from verifiNN.bounds import AlphaOptions, CrownOptions, bound_graph, compute_bounds
from verifiNN.bounds import crown as crown_module
from verifiNN.bounds.crown import crown_bounds
from verifiNN.bounds.forward import FORWARD_INPUT_LIMIT
from verifiNN.bounds.graph import interval_step
from verifiNN.errors import UnsupportedModelError
from verifiNN.fuzz import KINDS, random_case, sample_region
from verifiNN.models.network import Network, Node
from verifiNN.ops import Conv2d, ConvTranspose2d, Dense, Flatten, Pad, ReLU, Reshape, Tanh
from verifiNN.regions import BoxBatch
from verifiNN.specs import Box, LpBall

FORMS_ONLY = CrownOptions(backward_work=0)
NO_FORMS = CrownOptions(forward_forms=False)


def _contains(network: Network, region, options: CrownOptions, X: np.ndarray, method: str):
    Y = network.get_output(X)
    if method == "alpha-crown":
        options = AlphaOptions(iterations=3, crown=options)
    found = compute_bounds(network, region, method=method, options=options)
    lower, upper = found.lower.numpy()[0], found.upper.numpy()[0]
    slack = 1e-7 * np.maximum(1.0, np.abs(Y))
    assert np.all(lower - slack <= Y) and np.all(upper + slack >= Y)
    return lower, upper


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("seed", range(6))
def test_forms_alone_contain_sampled_outputs_on_every_family(kind, seed):
    case = random_case(7_000 + seed, kinds=[kind])
    rng = np.random.default_rng(seed)
    for spec_case in case.spec.cases:
        region = spec_case.input_region
        X = sample_region(region, rng, 400)
        for method in ("crown", "alpha-crown"):
            try:
                _contains(case.network, region, FORMS_ONLY, X, method)
            except UnsupportedModelError:
                pytest.skip("a model bound propagation refuses")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("seed", range(6))
def test_windowed_passes_contain_sampled_outputs_on_every_family(kind, seed, monkeypatch):
    monkeypatch.setattr(crown_module, "backward_worthwhile", lambda *args: False)
    case = random_case(8_000 + seed, kinds=[kind])
    rng = np.random.default_rng(seed)
    for spec_case in case.spec.cases:
        region = spec_case.input_region
        X = sample_region(region, rng, 400)
        try:
            _contains(case.network, region, CrownOptions(backward_work=2**40), X, "crown")
        except UnsupportedModelError:
            pytest.skip("a model bound propagation refuses")


def _deep_relu_net(rng: np.random.Generator, n_in: int, width: int, depth: int) -> Network:
    sizes = [n_in, *[width] * depth, 3]
    weights = [rng.normal(size=(b, a)) / np.sqrt(a) for a, b in itertools.pairwise(sizes)]
    biases = [rng.normal(size=b) * 0.1 for b in sizes[1:]]
    return Network(weights, biases)


def test_without_backward_passes_the_forms_beat_interval_propagation(monkeypatch):
    rng = np.random.default_rng(0)
    network = _deep_relu_net(rng, 4, 24, 6)
    calls = []
    original = crown_module.row_bounds
    monkeypatch.setattr(
        crown_module, "row_bounds", lambda *a, **k: calls.append(1) or original(*a, **k)
    )
    graph = bound_graph(network)
    box = BoxBatch(*(torch.full((1, 4), v, dtype=torch.float64) for v in (-0.5, 0.5)))
    forms, _ = crown_bounds(graph, box, options=FORMS_ONLY)
    assert not calls  # no intermediate backward pass ran
    crown_module.crown_bounds(
        graph, box, options=CrownOptions(forward_forms=False, backward_work=0)
    )
    assert calls  # without forms CROWN's passes run whatever the work
    ibp = {graph.input_name: forms[graph.input_name]}
    for node in graph.nodes:
        ibp[node.name] = interval_step(node, ibp)
    last = [n.name for n in graph.nodes if n.name in graph.preactivations][-1]

    def width(interval):
        return float((interval.upper - interval.lower).sum())

    assert width(forms[last]) < 0.9 * width(ibp[last])
    X = rng.uniform(-0.5, 0.5, size=(2000, 4))
    for name, interval in forms.items():
        if name == graph.input_name:
            continue
        values = _node_values(network, name, X)
        assert np.all(values >= interval.lower.numpy()[0].ravel() - 1e-9), name
        assert np.all(values <= interval.upper.numpy()[0].ravel() + 1e-9), name


def _node_values(network: Network, name: str, X: np.ndarray) -> np.ndarray:
    values = {network.input_name: torch.from_numpy(X)}
    for node in network.nodes:
        values[node.name] = node.op.forward(*(values[i] for i in node.inputs))
        if node.name == name:
            return values[name].flatten(1).numpy()
    raise KeyError(name)


def _generator(rng: np.random.Generator) -> Network:
    """A small GAN-style generator: dense, transposed convolutions, a padded conv, tanh."""

    def t(*shape):
        return torch.from_numpy(rng.normal(size=shape) * 0.4)

    nodes = [
        Node("d", Dense(t(2 * 3 * 3, 3), t(2 * 3 * 3)), ("input",)),
        Node("r", Reshape((2, 3, 3)), ("d",)),
        Node("t1", ConvTranspose2d(t(2, 3, 3, 3), t(3), (2, 2), (1, 1, 1, 1)), ("r",)),
        Node("a1", ReLU(), ("t1",)),
        Node("p", Pad((1, 0, 0, 1), 0.3), ("a1",)),
        Node("c", Conv2d(t(2, 3, 2, 2), t(2), (1, 1), (0, 0, 0, 0)), ("p",)),
        Node("a2", Tanh(), ("c",)),
        Node("f", Flatten(), ("a2",)),
    ]
    return Network.from_graph((3,), nodes)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    radius=st.sampled_from([0.0, 1e-6, 0.05, 0.5, 3.0]),
    norm=st.sampled_from(["box", "inf", "2"]),
)
def test_forms_of_a_generator_contain_sampled_outputs(seed, radius, norm):
    rng = np.random.default_rng(seed)
    network = _generator(rng)
    center = rng.normal(size=3)
    if norm == "box":
        region = Box(center - radius * rng.uniform(size=3), center + radius)
    else:
        region = LpBall(center, radius, norm)
    X = sample_region(region, rng, 300)
    lower, upper = _contains(network, region, FORMS_ONLY, X, "crown")
    assert np.all(np.isfinite(lower)) and np.all(np.isfinite(upper))
    _contains(network, region, NO_FORMS, X, "crown")


def test_forms_are_not_used_for_many_inputs():
    rng = np.random.default_rng(1)
    network = _deep_relu_net(rng, FORWARD_INPUT_LIMIT + 1, 8, 2)
    graph = bound_graph(network)
    n = FORWARD_INPUT_LIMIT + 1
    box = BoxBatch(torch.zeros(1, n, dtype=torch.float64), torch.ones(1, n, dtype=torch.float64))
    assert not crown_module.uses_forms(graph, box, CrownOptions())
    small = bound_graph(_deep_relu_net(rng, 3, 8, 2))
    three = BoxBatch(torch.zeros(1, 3, dtype=torch.float64), torch.ones(1, 3, dtype=torch.float64))
    assert crown_module.uses_forms(small, three, CrownOptions())
    assert not crown_module.uses_forms(small, three, NO_FORMS)


def test_windowed_passes_end_at_the_forms_soundly_and_tighter_than_the_forms(monkeypatch):
    """Backward passes that stop WINDOW_LAYERS layers back and take the forms there: sound
    at every node, and tighter than the forms alone on a deep net."""
    from verifiNN.bounds import forward

    rng = np.random.default_rng(5)
    network = _deep_relu_net(rng, 4, 24, 6)
    graph = bound_graph(network)
    box = BoxBatch(*(torch.full((1, 4), v, dtype=torch.float64) for v in (-0.5, 0.5)))
    forms_only, _ = crown_bounds(graph, box, options=FORMS_ONLY)
    used = []
    original = forward.ForwardForms._substitute
    monkeypatch.setattr(
        forward.ForwardForms,
        "_substitute",
        lambda self, name, lam: used.append(name) or original(self, name, lam),
    )
    monkeypatch.setattr(crown_module, "backward_worthwhile", lambda *args: False)
    windowed, _ = crown_bounds(graph, box, options=CrownOptions(backward_work=2**40))
    assert used  # the passes did end at forms
    last = [n.name for n in graph.nodes if n.name in graph.preactivations][-1]

    def width(interval):
        return float((interval.upper - interval.lower).sum())

    assert width(windowed[last]) < 0.9 * width(forms_only[last])
    X = np.vstack([rng.uniform(-0.5, 0.5, size=(3000, 4)), np.array(list(itertools.product(
        [-0.5, 0.5], repeat=4)))])  # fmt: skip
    for name, interval in windowed.items():
        if name == graph.input_name:
            continue
        values = _node_values(network, name, X)
        assert np.all(values >= interval.lower.numpy()[0].ravel() - 1e-9), name
        assert np.all(values <= interval.upper.numpy()[0].ravel() + 1e-9), name
