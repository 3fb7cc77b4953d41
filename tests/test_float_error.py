"""Rounding-error bounds: a float32 (or float16) evaluation stays within E of the real one.

Random small graphs of every op with a rule, float32-representable
parameters; the "real" value is the float64 evaluation (its own error is ~1e-16
relative, far below the float32 bounds checked here), the float one a float32
(float16) evaluation of the same graph by PyTorch, at random points and box
corners.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from verifiNN.bounds.affine import AFFINE_RULES
from verifiNN.bounds.float_error import error_rule_ops, rounding_error_bound
from verifiNN.bounds.relaxations import RELAXATIONS
from verifiNN.errors import UnsupportedModelError
from verifiNN.models.network import Network, Node
from verifiNN.ops import (
    Add,
    AvgPool2d,
    Broadcast,
    Concat,
    ConcatWithConstants,
    ConstMatMul,
    Conv2d,
    ConvTranspose2d,
    Dense,
    ElementwiseAffine,
    Flatten,
    Gather,
    LeakyReLU,
    MaxPool2d,
    Mul,
    Pad,
    ReduceSum,
    ReLU,
    Sigmoid,
    Slice,
    Tanh,
    Transpose,
)
from verifiNN.ops.elementwise import (
    Abs,
    Clip,
    Cos,
    Erf,
    Exp,
    Log,
    Max,
    Min,
    Pow,
    Reciprocal,
    Sign,
    Sin,
    Sqrt,
)

torch.set_num_threads(1)


def _param(rng: np.random.Generator, *shape: int, scale: float = 1.0) -> torch.Tensor:
    values = rng.normal(0.0, scale, size=shape).astype(np.float32)  # representable in float32
    return torch.tensor(values.astype(np.float64))


def _conv_net(rng) -> Network:
    nodes = [
        Node("c1", Conv2d(_param(rng, 4, 2, 3, 3), _param(rng, 4), (1, 1), (1, 0, 1, 2)), ("x",)),
        Node("r1", ReLU(), ("c1",)),
        Node("p1", MaxPool2d((2, 2), (2, 2)), ("r1",)),
        Node("a1", AvgPool2d((2, 2), (1, 1), (0, 0, 1, 1)), ("c1",)),
        Node("pad", Pad((1, 0, 0, 1), 0.5), ("p1",)),
        Node("f1", Flatten(), ("pad",)),
        Node("f2", Flatten(), ("a1",)),
        Node("cat", Concat(0), ("f1", "f2")),
        Node("d1", Dense(_param(rng, 6, 64 + 144, scale=0.2), _param(rng, 6)), ("cat",)),
        Node("t1", Tanh(), ("d1",)),
        Node("o", Dense(_param(rng, 3, 6), _param(rng, 3)), ("t1",)),
    ]
    return Network.from_graph((2, 6, 6), nodes, "o", "argmax", "x")


def _mlp_net(rng) -> Network:
    nodes = [
        Node("e", ElementwiseAffine(_param(rng, 5), _param(rng, 5)), ("x",)),
        Node("d1", Dense(_param(rng, 8, 5), _param(rng, 8)), ("e",)),
        Node("l1", LeakyReLU(0.1), ("d1",)),
        Node("s1", Sigmoid(), ("d1",)),
        Node("m", Mul(), ("l1", "s1")),
        Node("add", Add(), ("m", "d1")),
        Node("sl", Slice(0, 1, 7, 2), ("add",)),
        Node("o", Dense(_param(rng, 4, 3), _param(rng, 4)), ("sl",)),
    ]
    return Network.from_graph((5,), nodes, "o", "argmax", "x")


def _structure_net(rng) -> Network:
    """Transposed convolution, selections, sums and products with constant matrices."""
    conv = ConvTranspose2d(_param(rng, 2, 3, 3, 3), _param(rng, 3), (2, 2), (1, 1, 0, 0), (1, 0))
    nodes = [
        Node("ct", conv, ("x",)),
        Node("r", ReLU(), ("ct",)),
        Node("t", Transpose((1, 2, 0)), ("r",)),
        Node("g", Gather(0, (0, 4, 4, 8)), ("t",)),
        Node("sum", ReduceSum((1,), 0.25), ("g",)),
        Node("b", Broadcast((4, 2, 3)), ("sum",)),
        Node("mm", ConstMatMul(_param(rng, 3, 5), _param(rng, 5)), ("b",)),
        Node("cat", ConcatWithConstants(1, _param(rng, 4, 1, 5), (-1, 1)), ("mm",)),
        Node("f", Flatten(), ("cat",)),
        Node("o", Dense(_param(rng, 3, 60, scale=0.2), _param(rng, 3)), ("f",)),
    ]
    return Network.from_graph((2, 4, 4), nodes, "o", "argmax", "x")


NETS = {"conv": _conv_net, "mlp": _mlp_net, "structure": _structure_net}


def _values(network: Network, dtype: torch.dtype, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every node's value, the network evaluated with parameters and values in ``dtype``."""
    values = {network.input_name: x.to(dtype)}
    for node in network.nodes:
        params = {k: v.to(dtype) for k, v in node.op.parameters().items()}
        op = dataclasses.replace(node.op, **params) if params else node.op
        values[node.name] = op.forward(*(values[i] for i in node.inputs))
    return values


def _in_format(network: Network, dtype: torch.dtype, x: torch.Tensor) -> torch.Tensor:
    return _values(network, dtype, x)[network.output_name].to(torch.float64)


def _check(network: Network, lower, upper, fmt: str, dtype: torch.dtype, rng) -> np.ndarray:
    error = rounding_error_bound(network, lower, upper, fmt)
    n = 200
    t = torch.tensor(rng.uniform(0, 1, size=(n, *network.input_shape)))
    t[: n // 4] = torch.round(t[: n // 4])  # box corners
    lo = torch.tensor(lower).reshape(network.input_shape)
    hi = torch.tensor(upper).reshape(network.input_shape)
    x = (lo + (hi - lo) * t).to(dtype).to(torch.float64)  # points the float model can take
    x = torch.clamp(x, lo, hi)
    real = _in_format(network, torch.float64, x).reshape(n, -1).numpy()
    rounded = _in_format(network, dtype, x).reshape(n, -1).numpy()
    gap = np.abs(rounded - real)
    assert np.all(gap <= error + 1e-12 * (1 + np.abs(real))), f"gap {(gap - error).max()}"
    scale = max(float(v.abs().max()) for v in _values(network, torch.float64, x).values())
    return error, scale


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    width=st.floats(0.0, 3.0),
    which=st.sampled_from(sorted(NETS)),
)
def test_float32_evaluation_stays_within_the_bound(seed, width, which):
    rng = np.random.default_rng(seed)
    network = NETS[which](rng)
    center = rng.normal(0, 1, network.input_size)
    lower, upper = center - width, center + width
    error, scale = _check(network, lower, upper, "float32", torch.float32, rng)
    # and the bound is informative: a small fraction of the values the graph computes
    assert float(error.max()) < 1e-2 * (1 + scale)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_float16_evaluation_stays_within_the_bound(seed):
    rng = np.random.default_rng(seed)
    network = _mlp_net(rng)
    for node in network.nodes:  # float16 parameters: round them first
        for value in node.op.parameters().values():
            value.copy_(value.to(torch.float16).to(torch.float64))
    center = rng.normal(0, 1, network.input_size)
    _check(network, center - 0.5, center + 0.5, "float16", torch.float16, rng)


def test_one_dense_layer_matches_the_hand_computed_bound():
    # y = w . x + b with n = 3 terms on the point x = (1, 2, -1): Higham's bound
    # gamma_{n+1+k} (|w| . |x| + |b|) plus (n+1+k) subnormals, k = 8 slack roundings
    w = torch.tensor([[0.5, -0.25, 2.0]], dtype=torch.float64)
    b = torch.tensor([1.0], dtype=torch.float64)
    network = Network.from_graph((3,), [Node("d", Dense(w, b), ("x",))], "d", "argmax", "x")
    x = np.array([1.0, 2.0, -1.0])
    (error,) = rounding_error_bound(network, x, x, "float32")
    n, u = 3 + 1 + 8, 2.0**-24
    expected = n * u / (1 - n * u) * (0.5 + 0.5 + 2.0 + 1.0) + n * 2.0**-149
    assert expected <= error <= expected * (1 + 1e-9)


def test_bounds_grow_with_the_format_and_vanish_for_exact_nodes():
    rng = np.random.default_rng(0)
    network = _mlp_net(rng)
    lower, upper = -np.ones(5), np.ones(5)
    e64 = rounding_error_bound(network, lower, upper, "float64")
    e32 = rounding_error_bound(network, lower, upper, "float32")
    e16 = rounding_error_bound(network, lower, upper, "float16")
    assert np.all(e64 < e32) and np.all(e32 < e16)
    exact = rounding_error_bound(network, lower, upper, "float32", {n.name for n in network.nodes})
    assert np.all(exact == 0.0)


def test_overflow_is_refused_by_name():
    big = torch.full((2, 2), 100.0, dtype=torch.float64)  # d1 reaches 200, d2 40000
    nodes = [
        Node("d1", Dense(big, torch.zeros(2, dtype=torch.float64)), ("x",)),
        Node("d2", Dense(big, torch.zeros(2, dtype=torch.float64)), ("d1",)),
    ]
    network = Network.from_graph((2,), nodes, "d2", "argmax", "x")
    with pytest.raises(UnsupportedModelError, match="d2"):
        rounding_error_bound(network, -np.ones(2), np.ones(2), "float16")
    rounding_error_bound(network, -np.ones(2), np.ones(2), "float32")  # fits float32


def test_every_bounded_op_has_a_rule():
    assert set(AFFINE_RULES) | set(RELAXATIONS) == set(error_rule_ops())


# ------------------------------------------- the other elementwise functions
def _elementwise_net(rng) -> Network:
    """Every elementwise function of :mod:`verifiNN.ops.elementwise`, inputs in their domains."""

    def shifted(name: str, source: str, shift: float) -> Node:
        return Node(name, ElementwiseAffine(torch.tensor(1.0), torch.tensor(shift)), (source,))

    nodes = [
        Node("d", Dense(_param(rng, 6, 4, scale=0.5), _param(rng, 6)), ("x",)),
        Node("exp", Exp(), ("d",)),
        shifted("exp+1", "exp", 1.0),
        Node("log", Log(), ("exp+1",)),
        Node("rec", Reciprocal(), ("exp+1",)),
        Node("abs", Abs(), ("d",)),
        shifted("abs+.5", "abs", 0.5),
        Node("sqrt", Sqrt(), ("abs+.5",)),
        Node("root", Pow(0.5), ("abs+.5",)),
        Node("inv", Pow(-1.5), ("abs+.5",)),
        Node("sq", Pow(2.0), ("d",)),
        Node("cube", Pow(3.0), ("d",)),
        Node("sin", Sin(), ("d",)),
        Node("cos", Cos(), ("d",)),
        Node("erf", Erf(), ("d",)),
        Node("sign", Sign(), ("d",)),
        Node("clip", Clip(-0.5, 0.7), ("d",)),
        Node("max", Max(), ("sin", "cos")),
        Node("min", Min(), ("erf", "clip")),
    ]
    names = [n.name for n in nodes[1:] if n.name not in ("exp+1", "abs+.5")]
    nodes.append(Node("cat", Concat(0), tuple(names)))
    nodes.append(
        Node("o", Dense(_param(rng, 3, 6 * len(names), scale=0.2), _param(rng, 3)), ("cat",))
    )
    return Network.from_graph((4,), nodes, "o", "argmax", "x")


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), width=st.floats(0.0, 1.5))
def test_float32_elementwise_functions_stay_within_the_bound(seed, width):
    rng = np.random.default_rng(seed)
    network = _elementwise_net(rng)
    center = rng.normal(0, 1, network.input_size)
    _check(network, center - width, center + width, "float32", torch.float32, rng)


def test_domain_edges_and_jumps_are_refused_or_charged():
    one = torch.ones(1, 1, dtype=torch.float64)
    dense = Dense(one, torch.zeros(1, dtype=torch.float64))
    for op in (Log(), Sqrt(), Reciprocal(), Pow(-1.0), Pow(0.5)):  # the float input may be <= 0
        nodes = [Node("d", dense, ("x",)), Node("f", op, ("d",))]
        network = Network.from_graph((1,), nodes, "f", "argmax", "x")
        with pytest.raises(UnsupportedModelError, match="f"):
            rounding_error_bound(network, np.zeros(1), np.ones(1), "float32")
    nodes = [Node("d", dense, ("x",)), Node("s", Sign(), ("d",))]
    network = Network.from_graph((1,), nodes, "s", "argmax", "x")
    assert rounding_error_bound(network, -np.ones(1), np.ones(1), "float32")[0] == pytest.approx(2)
    assert rounding_error_bound(network, np.ones(1), 2 * np.ones(1), "float32")[0] == 0.0
