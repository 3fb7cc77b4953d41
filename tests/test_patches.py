"""Backward passes in patches form (:mod:`verifiNN.bounds.patches`).

The patches form only reorders the dense pass's arithmetic, so on random
convolutional networks (stride, asymmetric padding, dilation, groups, a
residual Add, channel and spatial slices, per-channel scaling, ReLU, Sigmoid;
and a small U-Net: average pooling, a strided dilated transposed convolution,
a constant pad, channel and width concatenation)
every bound must equal the dense pass's to rounding, for CROWN and for
alpha-CROWN, and contain every sampled value. The windows themselves
round-trip to dense coefficients and add as dense coefficients do.
"""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from verifiNN.bounds import AlphaOptions, CrownOptions, compute_bounds
from verifiNN.bounds.graph import BoundGraph
from verifiNN.bounds.patches import Patches
from verifiNN.models.network import Network, Node
from verifiNN.ops import (
    Add,
    AvgPool2d,
    Concat,
    Conv2d,
    ConvTranspose2d,
    Dense,
    ElementwiseAffine,
    Flatten,
    Pad,
    ReLU,
    Sigmoid,
    Slice,
)

torch.set_num_threads(1)
SETTINGS = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _conv(rng, c_in, c_out, k, stride=(1, 1), padding=(0, 0, 0, 0), dilation=(1, 1), groups=1):
    w = rng.normal(0.0, 1.5 / np.sqrt(c_in // groups * k[0] * k[1]), (c_out, c_in // groups, *k))
    bias = torch.as_tensor(rng.normal(0.0, 0.2, c_out))
    return Conv2d(torch.as_tensor(w), bias, stride, padding, dilation, groups)


def _with_dense_head(rng: np.random.Generator, input_shape: tuple, nodes: list) -> Network:
    """``nodes`` (ending in a node ``flat``) followed by a dense layer of three outputs."""
    size = int(np.prod(Network.from_graph(input_shape, nodes).output_shape))
    w = torch.as_tensor(rng.normal(0, 1 / np.sqrt(size), (3, size)))
    nodes.append(Node("fc", Dense(w, torch.as_tensor(rng.normal(0, 0.1, 3))), ("flat",)))
    return Network.from_graph(input_shape, nodes)


def unet(rng: np.random.Generator) -> Network:
    """A small U-Net: average pooling down, a strided transposed convolution up, a
    constant pad, and the skip joined by channel concatenation (carvana's shape)."""
    up = ConvTranspose2d(
        torch.as_tensor(rng.normal(0, 0.4, (4, 3, 3, 2))),
        torch.as_tensor(rng.normal(0, 0.1, 3)),
        stride=(2, 2),
        padding=(1, 0, 2, 2),
        output_padding=(1, 0),
        dilation=(1, 2),
    )
    nodes = [
        Node("c1", _conv(rng, 2, 3, (3, 3), (1, 1), (1, 1, 1, 1)), ("input",)),
        Node("r1", ReLU(), ("c1",)),
        Node("down", AvgPool2d((2, 2), (2, 2)), ("r1",)),
        Node("c2", _conv(rng, 3, 4, (3, 3), (1, 1), (1, 1, 1, 1)), ("down",)),
        Node("r2", ReLU(), ("c2",)),
        Node("up", up, ("r2",)),
        Node("pad", Pad((0, 1, 1, 0), 0.25), ("up",)),
        Node("cat", Concat(0), ("r1", "pad")),
        Node("c3", _conv(rng, 6, 3, (3, 3), (1, 1), (1, 1, 1, 1)), ("cat",)),
        Node("r3", ReLU(), ("c3",)),
        Node("wide", Concat(2), ("r3", "r1")),
        Node("c4", _conv(rng, 3, 2, (1, 1)), ("wide",)),
        Node("r4", ReLU(), ("c4",)),
        Node("flat", Flatten(), ("r4",)),
    ]
    return _with_dense_head(rng, (2, 12, 14), nodes)


def _network(name: str, rng: np.random.Generator) -> tuple[Network, int]:
    """One of the test networks and its input size."""
    net = unet(rng) if name == "unet" else patch_net(rng)
    return net, int(np.prod(net.input_shape))


NAMES = st.sampled_from(["patch_net", "unet"])


def patch_net(rng: np.random.Generator) -> Network:
    """A channel slice of the input, scaling, two convolution paths joined by Add, a
    spatial slice, ReLU and Sigmoid, then a dense head (which stays dense)."""
    nodes = [
        Node("rgb", Slice(0, 0, 3), ("input",)),
        Node(
            "norm",
            ElementwiseAffine(
                torch.as_tensor(rng.uniform(0.5, 2, (3, 1, 1))),
                torch.as_tensor(rng.normal(0, 0.1, (3, 1, 1))),
            ),
            ("rgb",),
        ),
        Node("c1", _conv(rng, 3, 4, (3, 3), (1, 1), (1, 1, 1, 1)), ("norm",)),
        Node("r1", ReLU(), ("c1",)),
        Node("c2", _conv(rng, 4, 4, (3, 2), (1, 1), (2, 0, 0, 1), (1, 1), groups=2), ("r1",)),
        Node("skip", _conv(rng, 4, 4, (1, 1), (1, 1), (0, 0, 0, 0)), ("r1",)),
        Node("sum", Add(), ("c2", "skip")),
        Node("r2", ReLU(), ("sum",)),
        Node("c3", _conv(rng, 4, 2, (3, 3), (2, 1), (1, 0, 1, 2), (1, 2)), ("r2",)),
        Node("crop", Slice(1, 1, 4), ("c3",)),
        Node("s3", Sigmoid(), ("crop",)),
        Node("flat", Flatten(), ("s3",)),
    ]
    return _with_dense_head(rng, (4, 12, 14), nodes)


def _boxes(rng: np.random.Generator, n: int, batch: int, width: float):
    center = rng.normal(0.0, 1.0, (batch, n))
    radius = rng.uniform(0.0, width, (batch, n))
    return center - radius, center + radius


def test_the_convolutional_part_is_the_patch_cone():
    graph = BoundGraph.of(patch_net(np.random.default_rng(0)))
    expected = {"rgb", "norm", "c1", "r1", "c2", "skip", "sum", "r2", "c3", "crop", "s3"}
    assert set(graph.patch_cone) == expected
    graph = BoundGraph.of(unet(np.random.default_rng(0)))
    assert set(graph.patch_cone) == {n.name for n in graph.nodes} - {"flat", "fc"}


@SETTINGS
@given(name=NAMES, seed=st.integers(0, 10_000), batch=st.integers(1, 3), width=st.floats(0.01, 0.5))
def test_crown_bounds_equal_the_dense_pass(name, seed, batch, width):
    rng = np.random.default_rng(seed)
    net, size = _network(name, rng)
    box = _boxes(rng, size, batch, width)
    results = [
        compute_bounds(net, box, options=CrownOptions(patches=on, forward_forms=False))
        for on in (False, True)
    ]
    dense, patched = results
    for name in dense.bounds:
        for a, b in (
            (dense.bounds[name].lower, patched.bounds[name].lower),
            (dense.bounds[name].upper, patched.bounds[name].upper),
        ):
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(dense.lower, patched.lower, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(dense.upper, patched.upper, rtol=1e-9, atol=1e-9)


@SETTINGS
@given(name=NAMES, seed=st.integers(0, 10_000), width=st.floats(0.05, 0.5))
def test_alpha_crown_is_the_same_with_patches(name, seed, width):
    """With the intermediate bounds fixed, the same Adam trajectory to rounding. (With
    them optimised too, ties of ``max(CROWN, IBP)`` that rounding breaks either way send
    the gradient down another branch, so only soundness is compared: next test.)"""
    rng = np.random.default_rng(seed)
    net, size = _network(name, rng)
    box = _boxes(rng, size, 2, width)

    def run(on: bool):
        crown = CrownOptions(patches=on, forward_forms=False)
        options = AlphaOptions(
            iterations=3, lr=0.3, early_stop=False, optimize_intermediate=False, crown=crown
        )
        return compute_bounds(net, box, method="alpha-crown", options=options)

    dense, patched = run(False), run(True)
    torch.testing.assert_close(dense.lower, patched.lower, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(dense.upper, patched.upper, rtol=1e-9, atol=1e-9)


@SETTINGS
@given(name=NAMES, seed=st.integers(0, 10_000), width=st.floats(0.05, 1.0))
def test_patch_bounds_contain_sampled_values(name, seed, width):
    """CROWN and alpha-CROWN (intermediate slopes optimised) in patches form."""
    rng = np.random.default_rng(seed)
    net, size = _network(name, rng)
    lower, upper = _boxes(rng, size, 1, width)
    crown = CrownOptions(forward_forms=False)
    points = lower + (upper - lower) * rng.uniform(0, 1, (400, lower.shape[1]))
    points[:40] = np.where(rng.uniform(size=(40, lower.shape[1])) < 0.5, lower, upper)
    values = net.forward(torch.as_tensor(points))
    plain = compute_bounds(net, (lower, upper), options=crown)
    alpha = AlphaOptions(iterations=3, lr=0.3, early_stop=False, crown=crown)
    tuned = compute_bounds(net, (lower, upper), method="alpha-crown", options=alpha)
    for result in (plain, tuned):
        assert bool((values >= result.lower - 1e-9).all())
        assert bool((values <= result.upper + 1e-9).all())
    assert bool((tuned.lower >= plain.lower - 1e-9).all())


def _sparse_rows(rng: np.random.Generator, shape=(2, 3, 4, 6, 7)) -> torch.Tensor:
    """Coefficients whose rows are nonzero on small random windows."""
    lam = torch.zeros(shape, dtype=torch.float64)
    batch, m, _, h, w = shape
    for b in range(batch):
        for r in range(m):
            y, x = int(rng.integers(0, h - 1)), int(rng.integers(0, w - 2))
            lam[b, r, :, y : y + 2, x : x + 3] = torch.as_tensor(rng.normal(size=(shape[2], 2, 3)))
    return lam


@SETTINGS
@given(seed=st.integers(0, 10_000))
def test_windows_round_trip_to_dense(seed):
    lam = _sparse_rows(np.random.default_rng(seed))
    patches = Patches.from_dense(lam)
    assert patches is not None and patches.window[0] * patches.window[1] <= 0.25 * 6 * 7
    torch.testing.assert_close(patches.to_dense(), lam, rtol=0, atol=0)


@SETTINGS
@given(seed=st.integers(0, 10_000))
def test_patches_add_as_dense_coefficients(seed):
    rng = np.random.default_rng(seed)
    a, b = _sparse_rows(rng), _sparse_rows(rng)
    total = Patches.from_dense(a) + Patches.from_dense(b)
    torch.testing.assert_close(total.to_dense(), a + b, rtol=0, atol=1e-15)


def test_full_rows_stay_dense():
    lam = torch.ones(1, 2, 3, 6, 7, dtype=torch.float64)
    assert Patches.from_dense(lam) is None


def test_the_passes_run_in_patches_form(monkeypatch):
    import verifiNN.bounds.graph as graph_module

    stepped: list[str] = []
    original = graph_module.patch_backward

    def counting(node, lam, relaxation, shapes):
        stepped.append(node.name)
        return original(node, lam, relaxation, shapes)

    monkeypatch.setattr(graph_module, "patch_backward", counting)
    rng = np.random.default_rng(3)
    for name, expected in (
        # s3 is met only by the final pass, whose rows (a dense head) cover the whole map
        ("patch_net", {"c1", "r1", "c2", "skip", "sum", "r2", "c3", "crop", "norm", "rgb"}),
        # r2 (a 6 x 7 map) is met only by windows that cover more than a quarter of it
        ("unet", {"c1", "r1", "down", "c2", "up", "pad", "cat", "c3", "r3", "wide"}),
    ):
        stepped.clear()
        net, size = _network(name, rng)
        compute_bounds(net, _boxes(rng, size, 1, 0.3), options=CrownOptions(forward_forms=False))
        assert expected - set(stepped) == set()


@SETTINGS
@given(seed=st.integers(0, 10_000))
def test_one_regions_patches_add_to_several(seed):
    rng = np.random.default_rng(seed)
    one, several = _sparse_rows(rng, (1, 3, 4, 6, 7)), _sparse_rows(rng)
    for total in (
        Patches.from_dense(one) + Patches.from_dense(several),
        Patches.from_dense(several) + Patches.from_dense(one),
    ):
        torch.testing.assert_close(total.to_dense(), one + several, rtol=0, atol=1e-15)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    kind=st.sampled_from(["conv", "transposed", "average", "pad"]),
    kernel=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    stride=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    dilation=st.tuples(st.integers(1, 2), st.integers(1, 2)),
    padding=st.tuples(*[st.integers(0, 2)] * 4),
)
def test_each_rule_is_the_dense_step(seed, kind, kernel, stride, dilation, padding):
    """One backward step of sparse rows through a convolution-like op, in patches form,
    gives the dense rule's coefficients and offset."""
    from verifiNN.bounds.affine import affine_rule
    from verifiNN.bounds.patches import patch_backward

    rng = np.random.default_rng(seed)
    shape = (2, 7, 8)
    weight = torch.as_tensor(rng.normal(size=(2, 3, *kernel)))
    bias = torch.as_tensor(rng.normal(size=3))
    if kind == "conv":
        weight = torch.as_tensor(rng.normal(size=(3, 2, *kernel)))
        op = Conv2d(weight, bias, stride, padding, dilation)
    elif kind == "transposed":
        op = ConvTranspose2d(weight, bias, stride, padding, (0, 0), dilation)
    elif kind == "average":
        op = AvgPool2d(kernel, stride, padding, count_include_pad=True)
    else:
        op = Pad(padding, float(rng.normal()))
    if kind == "average" and any(2 * p > k for p, k in zip(padding[:2], kernel)):
        assume(False)  # ONNX's AveragePool pads at most half the kernel
    try:
        out = tuple(op.output_shape(shape))
    except ValueError:
        assume(False)
    assume(min(out[1:]) >= 4)
    lam = torch.zeros(2, 3, *out, dtype=torch.float64)
    for b in range(2):
        for r in range(3):
            y, x = int(rng.integers(0, out[1] - 1)), int(rng.integers(0, out[2] - 1))
            lam[b, r, :, y : y + 2, x : x + 2] = torch.as_tensor(rng.normal(size=(out[0], 2, 2)))
    dense, dense_bias = affine_rule(op).backward(op, lam, [shape])
    patches = Patches(
        lam, torch.zeros(2, 3, dtype=torch.long), torch.zeros(2, 3, dtype=torch.long), out
    )
    (moved,), moved_bias = patch_backward(Node("n", op, ("x",)), patches, None, [shape])
    torch.testing.assert_close(moved.to_dense(), dense[0] if isinstance(dense, list) else dense)
    if dense_bias is None:
        assert moved_bias is None or bool((moved_bias == 0).all())
    else:
        torch.testing.assert_close(moved_bias, dense_bias)
