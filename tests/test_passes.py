"""Graph simplification passes: each keeps the network's function exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from verifiNN.models.network import Network, Node
from verifiNN.models.passes import (
    fold_affine_into_next,
    fold_affine_into_previous,
    merge_affines,
    merge_dense,
    merge_reshapes,
    prune_dead_nodes,
    remove_identities,
    simplify,
)
from verifiNN.ops import (
    Add,
    Conv2d,
    Dense,
    ElementwiseAffine,
    Flatten,
    Identity,
    ReLU,
    Reshape,
    as_tensor,
)

RNG = np.random.default_rng(7)


def _t(*shape: int) -> torch.Tensor:
    return as_tensor(RNG.normal(size=shape))


def _net(input_shape, nodes, output=None) -> Network:
    return Network.from_graph(input_shape, nodes, output)


def _kinds(network: Network) -> list[str]:
    return [node.op.kind for node in network.nodes]


def _assert_same_function(before: Network, after: Network, n: int = 200) -> None:
    assert after.input_shape == before.input_shape
    assert after.output_size == before.output_size
    x = RNG.normal(size=(n, *before.input_shape)) * 3
    ref = before.get_output(x)
    out = after.get_output(x)
    np.testing.assert_allclose(out, ref, rtol=1e-10, atol=1e-10 * max(1.0, np.abs(ref).max()))


def test_remove_identities_chain_at_output():
    nodes = [
        Node("d", Dense(_t(4, 3), _t(4)), ("input",)),
        Node("i1", Identity(), ("d",)),
        Node("r", Reshape((4,)), ("i1",)),
        Node("a", ElementwiseAffine(as_tensor(1.0), as_tensor(np.zeros(4))), ("r",)),
        Node("i2", Identity(), ("a",)),
    ]
    net = _net((3,), nodes)
    out = remove_identities(net)
    assert _kinds(out) == ["Dense"]
    assert out.output_name == "d"
    _assert_same_function(net, out)
    assert remove_identities(out) is out


def test_remove_identities_keeps_shape_changing_reshape_and_flatten_of_flat_input():
    nodes = [
        Node("f", Flatten(), ("input",)),  # flat input: a no-op, dropped
        Node("d", Dense(_t(6, 5), _t(6)), ("f",)),
        Node("r", Reshape((2, 3)), ("d",)),  # changes the shape: kept
    ]
    net = _net((5,), nodes)
    out = remove_identities(net)
    assert _kinds(out) == ["Dense", "Reshape"]
    _assert_same_function(net, out)


def test_merge_reshapes():
    nodes = [
        Node("r1", Reshape((2, 6)), ("input",)),
        Node("r2", Reshape((4, 3)), ("r1",)),
        Node("f", Flatten(), ("r2",)),
        Node("relu", ReLU(), ("f",)),
    ]
    net = _net((3, 4), nodes)
    out = simplify(net, [merge_reshapes, prune_dead_nodes])
    assert _kinds(out) == ["Flatten", "ReLU"]
    assert out.nodes[0].inputs == ("input",)
    _assert_same_function(net, out)


def test_merge_affines():
    nodes = [
        Node("a", ElementwiseAffine(_t(3, 1), _t(1, 4)), ("input",)),
        Node("b", ElementwiseAffine(_t(1, 4), _t(3, 4)), ("a",)),
        Node("relu", ReLU(), ("b",)),
    ]
    net = _net((3, 4), nodes)
    out = merge_affines(net)
    assert _kinds(out) == ["ElementwiseAffine", "ReLU"]
    _assert_same_function(net, out)


def test_affine_with_two_readers_is_not_merged():
    nodes = [
        Node("a", ElementwiseAffine(_t(4), _t(4)), ("input",)),
        Node("b", ElementwiseAffine(_t(4), _t(4)), ("a",)),
        Node("add", Add(), ("a", "b")),
    ]
    net = _net((4,), nodes)
    assert merge_affines(net) is net
    assert fold_affine_into_next(net) is net


def test_fold_affine_into_previous_dense():
    nodes = [
        Node("d", Dense(_t(5, 3), _t(5)), ("input",)),
        Node("a", ElementwiseAffine(_t(5), _t(5)), ("d",)),
        Node("relu", ReLU(), ("a",)),
    ]
    net = _net((3,), nodes)
    out = fold_affine_into_previous(net)
    assert _kinds(out) == ["Dense", "ReLU"]
    _assert_same_function(net, out)


@pytest.mark.parametrize("groups", [1, 2])
def test_fold_affine_into_previous_conv_per_channel(groups):
    conv = Conv2d(_t(4, 4 // groups, 3, 3), _t(4), (1, 1), (1, 0, 1, 2), (1, 1), groups)
    nodes = [
        Node("c", conv, ("input",)),
        Node("bn", ElementwiseAffine(_t(4, 1, 1), _t(4, 1, 1)), ("c",)),
    ]
    net = _net((4, 6, 6), nodes)
    out = fold_affine_into_previous(net)
    assert _kinds(out) == ["Conv2d"]
    _assert_same_function(net, out)


def test_conv_followed_by_spatial_affine_is_not_folded():
    conv = Conv2d(_t(2, 1, 2, 2), _t(2))
    nodes = [
        Node("c", conv, ("input",)),
        Node("a", ElementwiseAffine(_t(2, 3, 3), as_tensor(0.0)), ("c",)),
    ]
    net = _net((1, 4, 4), nodes)
    assert fold_affine_into_previous(net) is net


def test_fold_normalisation_through_flatten_into_dense():
    nodes = [
        Node("norm", ElementwiseAffine(_t(2, 1, 1), _t(2, 1, 1)), ("input",)),
        Node("flat", Flatten(), ("norm",)),
        Node("d", Dense(_t(3, 8), _t(3)), ("flat",)),
    ]
    net = _net((2, 2, 2), nodes)
    out = fold_affine_into_next(net)
    assert _kinds(out) == ["Flatten", "Dense"]
    _assert_same_function(net, out)


@pytest.mark.parametrize(
    ("padding", "shift_zero", "folds"),
    [((0, 0, 0, 0), False, True), ((1, 1, 0, 2), True, True), ((1, 1, 0, 2), False, False)],
)
@pytest.mark.parametrize("groups", [1, 3])
def test_fold_affine_into_next_conv(padding, shift_zero, folds, groups):
    shift = as_tensor(np.zeros((3, 1, 1))) if shift_zero else _t(3, 1, 1)
    conv = Conv2d(_t(6, 3 // groups, 2, 3), _t(6), (2, 1), padding, (1, 2), groups)
    nodes = [
        Node("norm", ElementwiseAffine(_t(3, 1, 1), shift), ("input",)),
        Node("c", conv, ("norm",)),
    ]
    net = _net((3, 7, 8), nodes)
    out = fold_affine_into_next(net)
    assert _kinds(out) == (["Conv2d"] if folds else ["ElementwiseAffine", "Conv2d"])
    _assert_same_function(net, out)


def test_merge_dense_and_bottleneck_guard():
    nodes = [
        Node("d1", Dense(_t(6, 4), _t(6)), ("input",)),
        Node("d2", Dense(_t(3, 6), _t(3)), ("d1",)),
    ]
    net = _net((4,), nodes)
    out = merge_dense(net)
    assert _kinds(out) == ["Dense"]
    _assert_same_function(net, out)
    bottleneck = _net(
        (40,),
        [
            Node("d1", Dense(_t(2, 40), _t(2)), ("input",)),
            Node("d2", Dense(_t(40, 2), _t(40)), ("d1",)),
        ],
    )
    assert merge_dense(bottleneck) is bottleneck


def test_residual_reader_blocks_fusion():
    nodes = [
        Node("d1", Dense(_t(4, 4), _t(4)), ("input",)),
        Node("a", ElementwiseAffine(_t(4), _t(4)), ("d1",)),
        Node("d2", Dense(_t(4, 4), _t(4)), ("d1",)),
        Node("sum", Add(), ("a", "d2")),
    ]
    net = _net((4,), nodes)
    out = simplify(net)
    assert _kinds(out) == _kinds(net)
    _assert_same_function(net, out)


def test_prune_dead_nodes():
    nodes = [
        Node("dead", Dense(_t(2, 3), _t(2)), ("input",)),
        Node("d", Dense(_t(4, 3), _t(4)), ("input",)),
    ]
    net = _net((3,), nodes)
    out = prune_dead_nodes(net)
    assert [n.name for n in out.nodes] == ["d"]
    _assert_same_function(net, out)


def test_simplify_turns_normalised_bn_mlp_into_plain_mlp():
    nodes = [
        Node("sub", ElementwiseAffine(as_tensor(1.0), _t(1, 6)), ("input",)),
        Node(
            "div",
            ElementwiseAffine(as_tensor(np.abs(RNG.normal(size=(1, 6))) + 0.5), as_tensor(0.0)),
            ("sub",),
        ),
        Node("flat", Flatten(), ("div",)),
        Node("d1", Dense(_t(8, 6), as_tensor(np.zeros(8))), ("flat",)),
        Node("bias", ElementwiseAffine(as_tensor(1.0), _t(8)), ("d1",)),
        Node("bn", ElementwiseAffine(_t(8), _t(8)), ("bias",)),
        Node("relu", ReLU(), ("bn",)),
        Node("id", Identity(), ("relu",)),
        Node("d2", Dense(_t(5, 8), _t(5)), ("id",)),
        Node("d3", Dense(_t(3, 5), _t(3)), ("d2",)),
        Node("out", ElementwiseAffine(_t(3), _t(3)), ("d3",)),
    ]
    net = _net((1, 6), nodes)
    out = simplify(net)
    assert _kinds(out) == ["Flatten", "Dense", "ReLU", "Dense"]
    mlp = out.as_mlp()
    assert [w.shape for w in mlp.weights] == [(8, 6), (3, 8)]
    _assert_same_function(net, out)


# ----------------------------------------------------- random chains (hypothesis)
_STEP = st.sampled_from(["dense", "affine", "relu", "identity", "reshape", "flatten"])


def _random_chain(steps: list[str], seed: int) -> Network:
    rng = np.random.default_rng(seed)
    nodes, previous, shape = [], "input", (2, 3)
    for k, step in enumerate(steps):
        size = int(np.prod(shape))
        if step == "dense":
            width = int(rng.integers(1, 7))
            w = rng.normal(size=(width, size))
            op = Dense(as_tensor(w), as_tensor(rng.normal(size=width)))
            if len(shape) > 1:
                nodes.append(Node(f"f{k}", Flatten(), (previous,)))
                previous = f"f{k}"
            shape = (width,)
        elif step == "affine":
            pshape = tuple(d if rng.random() < 0.5 else 1 for d in shape)
            op = ElementwiseAffine(
                as_tensor(rng.normal(size=pshape)), as_tensor(rng.normal(size=pshape))
            )
        elif step == "reshape":
            shape = (1, size) if len(shape) == 1 else (size,)
            op = Reshape(shape)
        else:
            op = {"relu": ReLU(), "identity": Identity(), "flatten": Flatten()}[step]
            shape = (size,) if step == "flatten" else shape
        nodes.append(Node(f"n{k}", op, (previous,)))
        previous = f"n{k}"
    return Network.from_graph((2, 3), nodes, previous)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_STEP, min_size=1, max_size=9), st.integers(0, 2**16))
def test_simplify_preserves_random_chains(steps, seed):
    net = _random_chain(steps, seed)
    out = simplify(net)
    _assert_same_function(net, out, n=50)
    assert len(out.nodes) <= len(net.nodes)
    assert simplify(out) is out  # a fixpoint
