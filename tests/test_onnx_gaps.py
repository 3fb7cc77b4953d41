"""Operator gaps the VNN-LIB suite found, closed: checked against onnxruntime and for soundness.

* ``MaxPool`` with ``dilations`` and with a ``ceil_mode`` that enlarges the
  output (the ONNX rule: the last window starts inside the input or its begin
  padding): hand-built models against onnxruntime, the relaxation's linear
  bounds and interval on dense samples of random boxes (hypothesis over
  kernel, stride, dilation and padding), and IBP/CROWN/alpha-CROWN bounds of
  a small network containing a dilated pool;
* ``Concat`` of data with constants, ``Mul`` by a constant whose broadcasting
  enlarges the data: against onnxruntime;
* the NaN-faithful ops of :mod:`verifiNN.io.free_inputs`: a NaN input entry
  makes every output entry that depends on it NaN (the property the free-input
  rule relies on), and ``Sign`` is rightly left out.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from test_bounds_relaxations import _check_backward
from test_bounds_soundness import check_network
from verifiNN.bounds.relaxations import RELAXATIONS
from verifiNN.errors import ModelLoadError, UnsupportedModelError
from verifiNN.io.free_inputs import NAN_FAITHFUL
from verifiNN.io.onnx import load_onnx
from verifiNN.models.network import Network, Node
from verifiNN.ops import (
    Abs,
    Add,
    AvgPool2d,
    Broadcast,
    Clip,
    Concat,
    ConcatWithConstants,
    ConstMatMul,
    Conv2d,
    ConvTranspose2d,
    Cos,
    Dense,
    ElementwiseAffine,
    Erf,
    Exp,
    Flatten,
    Gather,
    Identity,
    LeakyReLU,
    Log,
    Max,
    MaxPool2d,
    Min,
    Mul,
    Pad,
    Pow,
    Reciprocal,
    ReduceSum,
    ReLU,
    Reshape,
    Sigmoid,
    Sign,
    Sin,
    Slice,
    Sqrt,
    Tanh,
    Transpose,
    as_tensor,
)

RNG = np.random.default_rng(17)


def _model(nodes, x_shape, inits=None, opset: int = 17) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes,
        "gaps",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, x_shape)],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in (inits or {}).items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def _against_ort(model: onnx.ModelProto, tmp_path: Path, n: int = 6) -> Network:
    path = tmp_path / "model.onnx"
    onnx.save(model, path)
    network = load_onnx(path)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options)
    shape = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    X = RNG.normal(size=(n, *shape)).astype(np.float32)
    ref = np.stack([session.run(None, {"X": x})[0].ravel() for x in X])
    ours = network.get_output(X.reshape(n, -1).astype(np.float64))
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-5)
    return network


def _pool(x_shape, **attrs) -> onnx.ModelProto:
    return _model([helper.make_node("MaxPool", ["X"], ["Y"], name="pool", **attrs)], x_shape)


POOL_CASES = {
    "dilated": ([1, 2, 7, 7], dict(kernel_shape=[2, 2], dilations=[2, 2])),
    "dilated_strided_padded": (
        [1, 2, 8, 7],
        dict(kernel_shape=[3, 2], dilations=[2, 3], strides=[2, 1], pads=[2, 1, 1, 1]),
    ),
    "dilated_1d": ([1, 3, 9], dict(kernel_shape=[3], dilations=[2], pads=[1, 2])),
    "dilated_valid": ([1, 1, 7, 6], dict(kernel_shape=[2, 3], dilations=[2, 2], auto_pad="VALID")),
    "ceil_mode": ([1, 1, 5, 5], dict(kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1)),
    "ceil_mode_last_window_dropped": (
        [1, 1, 5, 5],
        dict(kernel_shape=[2, 2], strides=[3, 3], pads=[1, 1, 1, 1], ceil_mode=1),
    ),
    "ceil_mode_dilated": (
        [1, 2, 8, 7],
        dict(kernel_shape=[3, 2], strides=[2, 2], dilations=[2, 1], pads=[1, 1, 0, 0], ceil_mode=1),
    ),
    "ceil_mode_1d": ([1, 2, 6], dict(kernel_shape=[3], strides=[2], ceil_mode=1)),
}


@pytest.mark.parametrize("name", sorted(POOL_CASES))
def test_maxpool_matches_onnxruntime(tmp_path, name):
    shape, attrs = POOL_CASES[name]
    _against_ort(_pool(shape, **attrs), tmp_path)


def test_a_dilated_window_over_padding_only_is_refused(tmp_path):
    # rows -2 and 0 of a 1-row input: the first window reads padding (-2) and row 0, the
    # second rows -1 and 1 -- padding only
    model = _pool([1, 1, 1, 4], kernel_shape=[2, 1], dilations=[2, 1], pads=[2, 0, 1, 0])
    onnx.save(model, tmp_path / "m.onnx")
    with pytest.raises(ModelLoadError, match="a window would cover padding only"):
        load_onnx(tmp_path / "m.onnx")


def test_dilations_with_same_padding_are_refused(tmp_path):
    # onnxruntime computes SAME padding as if undilated (7x6 -> 3x4 here), against the ONNX
    # specification and its reference (4x6): no semantics to verify against
    model = _pool([1, 1, 7, 6], kernel_shape=[2, 3], dilations=[2, 2], strides=[2, 1],
                  auto_pad="SAME_UPPER")  # fmt: skip
    onnx.save(model, tmp_path / "m.onnx")
    with pytest.raises(UnsupportedModelError, match=r"dilations.*runtimes disagree"):
        load_onnx(tmp_path / "m.onnx")


def test_average_pool_dilations_and_growing_ceil_mode_stay_refused(tmp_path):
    node = helper.make_node("AveragePool", ["X"], ["Y"], name="avg", kernel_shape=[2, 2],
                            dilations=[2, 2])  # fmt: skip
    onnx.save(_model([node], [1, 1, 6, 6], opset=19), tmp_path / "a.onnx")
    with pytest.raises(UnsupportedModelError, match=r"'avg' \(AveragePool\): attribute dilations"):
        load_onnx(tmp_path / "a.onnx")
    node = helper.make_node("AveragePool", ["X"], ["Y"], name="avg", kernel_shape=[2, 2],
                            strides=[2, 2], ceil_mode=1)  # fmt: skip
    onnx.save(_model([node], [1, 1, 5, 5]), tmp_path / "b.onnx")
    with pytest.raises(UnsupportedModelError, match="ceil_mode=1 changes the output size"):
        load_onnx(tmp_path / "b.onnx")


# ------------------------------------------------------------- MaxPool bounds
@st.composite
def dilated_pools(draw):
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    pads = tuple(draw(st.integers(0, 2)) for _ in range(4))
    shape = (draw(st.integers(1, 2)), draw(st.integers(2, 7)), draw(st.integers(2, 7)))
    op = MaxPool2d(kernel, stride, pads, dilation)
    try:
        op.output_shape(shape)
    except ValueError:
        assume(False)
    return op, shape


@settings(max_examples=40, deadline=None)
@given(case=dilated_pools(), seed=st.integers(0, 2**16))
def test_dilated_maxpool_relaxation_bounds_linear_functions(case, seed):
    op, shape = case
    rng = np.random.default_rng(seed)
    record = RELAXATIONS[MaxPool2d]
    center = torch.tensor(rng.normal(size=(12, *shape)))
    radius = torch.tensor(rng.uniform(0, 1, size=(12, *shape)) ** 3)
    lower, upper = center - radius, center + radius
    _check_backward(op, lower, upper, record.relax(op, lower, upper, (None, None)), rng, rows=3)
    lo, hi = record.interval(op, lower, upper)
    x = lower + (upper - lower) * torch.rand(256, *lower.shape, dtype=torch.float64)
    y = op.forward(x.reshape(-1, *shape)).reshape(256, *lo.shape)
    assert bool((lo <= y).all()) and bool((y <= hi).all())


def test_dilated_maxpool_forward_is_the_max_of_its_cells():
    op = MaxPool2d((2, 3), (2, 1), (1, 0, 2, 1), (3, 2))
    x = torch.tensor(RNG.normal(size=(2, 3, 6, 5)))
    padded = torch.nn.functional.pad(x, (0, 1, 1, 2), value=-np.inf)
    out = op.forward(x)
    assert tuple(out.shape[1:]) == op.output_shape((3, 6, 5))
    for i in range(out.shape[2]):
        for j in range(out.shape[3]):
            cells = padded[:, :, 2 * i : 2 * i + 4 : 3, j : j + 5 : 2]
            assert torch.equal(out[:, :, i, j], cells.amax(dim=(2, 3)))


def _dilated_pool_net(rng: np.random.Generator) -> Network:
    conv = Conv2d(as_tensor(rng.normal(size=(3, 2, 2, 2))), as_tensor(rng.normal(size=3)))
    nodes = [
        Node("conv", conv, ("input",)),
        Node("relu", ReLU(), ("conv",)),
        Node("pool", MaxPool2d((2, 2), (1, 2), (1, 0, 0, 1), (2, 2)), ("relu",)),
        Node("flat", Flatten(), ("pool",)),
    ]
    size = int(np.prod(Network.from_graph((2, 6, 6), nodes).output_shape))
    dense = Dense(as_tensor(rng.normal(size=(2, size)) / size**0.5), as_tensor(np.zeros(2)))
    nodes.append(Node("fc", dense, ("flat",)))
    return Network.from_graph((2, 6, 6), nodes)


@pytest.mark.parametrize("seed", [0, 1])
def test_bounds_of_a_network_with_a_dilated_pool_contain_sampled_outputs(seed):
    network = _dilated_pool_net(np.random.default_rng(seed))
    check_network(network, seed, ("ibp", "crown", "alpha-crown"), points=60, width=0.6)


# ------------------------------------------------------- Concat, Mul broadcasts
def test_concat_of_data_and_constants_matches_onnxruntime(tmp_path):
    nodes = [
        helper.make_node("Relu", ["X"], ["r"]),
        helper.make_node("Concat", ["c1", "r", "c2", "X"], ["Y"], axis=1),
    ]
    inits = {
        "c1": RNG.normal(size=(1, 2, 3, 3)).astype(np.float32),
        "c2": RNG.normal(size=(1, 1, 3, 3)).astype(np.float32),
    }
    _against_ort(_model(nodes, [1, 2, 3, 3], inits), tmp_path)


def test_concat_along_the_batch_axis_with_a_constant_matches_onnxruntime(tmp_path):
    nodes = [helper.make_node("Concat", ["X", "c"], ["Y"], axis=0)]
    _against_ort(_model(nodes, [2], {"c": np.array([10.0, 10.0], np.float32)}), tmp_path)


@pytest.mark.parametrize(
    ("x_shape", "c_shape"), [([2, 1], [1, 2]), ([1, 3], [2, 1, 3]), ([3], [4, 3])]
)
def test_mul_by_a_constant_that_enlarges_the_data_matches_onnxruntime(tmp_path, x_shape, c_shape):
    nodes = [helper.make_node("Mul", ["X", "c"], ["m"]), helper.make_node("Tanh", ["m"], ["Y"])]
    c = RNG.normal(size=c_shape).astype(np.float32)
    network = _against_ort(_model(nodes, x_shape, {"c": c}), tmp_path)
    assert network.output_size == int(np.prod(np.broadcast_shapes(x_shape, c_shape)))


# ------------------------------------------------------------- NaN-faithful ops
def _w(*shape: int) -> torch.Tensor:
    return as_tensor(RNG.normal(size=shape))


NAN_CASES: list[tuple[object, tuple[tuple[int, ...], ...]]] = [
    (Dense(_w(3, 4), _w(3)), ((4,),)),
    (Conv2d(_w(2, 2, 2, 2), _w(2), (1, 2), (1, 0, 0, 1), (2, 1)), ((2, 4, 5),)),
    (ConvTranspose2d(_w(2, 1, 2, 2), _w(1), (2, 1)), ((2, 3, 3),)),
    (ConstMatMul(_w(4, 2), _w(2)), ((3, 4),)),
    (ElementwiseAffine(as_tensor(np.array([0.0, 2.0, -1.0])), _w(3)), ((3,),)),
    (AvgPool2d((2, 2), (1, 1), (1, 0, 0, 1)), ((1, 3, 3),)),
    (ReduceSum((1,), 0.5), ((2, 3),)),
    (MaxPool2d((2, 2), (1, 1), (1, 1, 1, 1), (2, 1)), ((1, 4, 4),)),
    (Flatten(), ((2, 3),)),
    (Reshape((3, 2)), ((6,),)),
    (Identity(), ((4,),)),
    (Concat(0), ((2,), (3,))),
    (ConcatWithConstants(0, _w(2), (1, -1, 1)), ((3,),)),
    (Slice(0, 1, 4, 2), ((5,),)),
    (Gather(0, (2, 0, 2)), ((3,),)),
    (Transpose((1, 0)), ((2, 3),)),
    (Broadcast((2, 3)), ((1, 3),)),
    (Pad((1, 0, 0, 2), 0.5), ((1, 2, 2),)),
    (Add(), ((3,), (3,))),
    (Mul(), ((3,), (3,))),
    (ReLU(), ((4,),)),
    (LeakyReLU(0.1), ((4,),)),
    (Sigmoid(), ((4,),)),
    (Tanh(), ((4,),)),
    (Exp(), ((4,),)),
    (Log(), ((4,),)),
    (Sqrt(), ((4,),)),
    (Reciprocal(), ((4,),)),
    (Pow(3.0), ((4,),)),
    (Pow(0.0), ((4,),)),
    (Sin(), ((4,),)),
    (Cos(), ((4,),)),
    (Erf(), ((4,),)),
    (Abs(), ((4,),)),
    (Clip(0.0, 1.0), ((4,),)),
    (Max(), ((4,), (4,))),
    (Min(), ((4,), (4,))),
]


def _depends(op, inputs: list[torch.Tensor], which: int, entry: int) -> torch.Tensor:
    """Output entries whose derivative in ``inputs[which].flat[entry]`` is nonzero at
    some of a few random points (a dependence test that misses nothing at generic points)."""
    found = None
    for _ in range(3):
        point = [torch.tensor(RNG.uniform(0.2, 2.0, t.shape)).requires_grad_() for t in inputs]
        out = op.forward(*point).reshape(-1)
        rows = torch.stack(
            [torch.autograd.grad(o, point[which], retain_graph=True)[0].reshape(-1) for o in out]
        )
        hit = rows[:, entry] != 0
        found = hit if found is None else found | hit
    return found


@pytest.mark.parametrize(("op", "shapes"), NAN_CASES, ids=lambda v: repr(v)[:40])
def test_nan_faithful_ops_make_every_dependent_output_nan(op, shapes):
    inputs = [torch.tensor(RNG.uniform(0.2, 2.0, (1, *s))) for s in shapes]
    for which, tensor in enumerate(inputs):
        for entry in range(tensor.numel()):
            poisoned = [t.clone() for t in inputs]
            poisoned[which].view(-1)[entry] = float("nan")
            out = op.forward(*poisoned).reshape(-1)
            depends = _depends(op, inputs, which, entry)
            assert bool(torch.isnan(out[depends]).all()), (op, which, entry)


def test_every_nan_faithful_op_is_checked_and_sign_is_not_one():
    assert {type(op) for op, _ in NAN_CASES} == set(NAN_FAITHFUL)
    assert Sign not in NAN_FAITHFUL
    assert float(Sign().forward(torch.tensor([[float("nan")]]))) == 0.0  # why it is left out
