"""Forward semantics of every IR op against torch.nn and onnxruntime references."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from verifiNN.ops import (
    Add,
    AvgPool2d,
    Concat,
    Conv2d,
    Dense,
    ElementwiseAffine,
    Flatten,
    Identity,
    LeakyReLU,
    MaxPool2d,
    Pad,
    ReLU,
    Reshape,
    Sigmoid,
    Tanh,
    as_tensor,
)

RNG = np.random.default_rng(1234)


def _f32(*shape: int) -> np.ndarray:
    """Random float32 values (exactly representable in both precisions)."""
    return RNG.normal(size=shape).astype(np.float32)


def _run_onnx_node(node: onnx.NodeProto, x: np.ndarray, inits: dict[str, np.ndarray]) -> np.ndarray:
    """Run one ONNX node (input ``X``, output ``Y``) in onnxruntime."""
    graph = helper.make_graph(
        [node],
        "op",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, list(x.shape))],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(model.SerializeToString(), options)
    return session.run(None, {"X": x})[0]


def _ours(op, *xs: np.ndarray) -> np.ndarray:
    out = op.forward_numpy(*xs)
    assert out.shape[1:] == tuple(op.output_shape(*(x.shape[1:] for x in xs)))
    return out


def _close(ours: np.ndarray, ref: np.ndarray, rtol: float = 1e-5) -> None:
    assert ours.shape == ref.shape
    scale = max(1.0, float(np.abs(ref).max()))
    np.testing.assert_allclose(ours, ref, rtol=rtol, atol=rtol * scale)


def test_dense_matches_linear():
    layer = torch.nn.Linear(7, 4).double()
    op = Dense(as_tensor(layer.weight), as_tensor(layer.bias))
    x = RNG.normal(size=(5, 7))
    with torch.no_grad():
        ref = layer(torch.from_numpy(x)).numpy()
    _close(_ours(op, x), ref, 1e-12)
    with pytest.raises(ValueError, match="7 features"):
        op.output_shape((6,))


CONV_CASES = [
    # (C_in, C_out, kernel, stride, pads (t, l, b, r), dilation, groups)
    (3, 4, (3, 3), (1, 1), (0, 0, 0, 0), (1, 1), 1),
    (3, 4, (3, 3), (2, 1), (1, 1, 1, 1), (1, 1), 1),
    (4, 6, (3, 2), (1, 2), (2, 0, 1, 1), (1, 1), 2),
    (4, 4, (3, 3), (1, 1), (1, 2, 0, 3), (2, 1), 4),
    (2, 3, (2, 3), (3, 2), (0, 1, 2, 0), (1, 2), 1),
]


@pytest.mark.parametrize(
    ("c_in", "c_out", "kernel", "stride", "pads", "dilation", "groups"), CONV_CASES
)
def test_conv2d_matches_onnxruntime(c_in, c_out, kernel, stride, pads, dilation, groups):
    x = _f32(1, c_in, 9, 8)
    w, b = _f32(c_out, c_in // groups, *kernel), _f32(c_out)
    node = helper.make_node(
        "Conv",
        ["X", "W", "B"],
        ["Y"],
        strides=list(stride),
        pads=[pads[0], pads[1], pads[2], pads[3]],
        dilations=list(dilation),
        group=groups,
    )
    ref = _run_onnx_node(node, x, {"W": w, "B": b})
    op = Conv2d(as_tensor(w), as_tensor(b), stride, pads, dilation, groups)
    _close(_ours(op, x.astype(np.float64)), ref.astype(np.float64))


def test_conv2d_symmetric_matches_torch():
    layer = torch.nn.Conv2d(2, 3, 3, stride=2, padding=1, dilation=2, groups=1).double()
    op = Conv2d(as_tensor(layer.weight), as_tensor(layer.bias), (2, 2), (1, 1, 1, 1), (2, 2), 1)
    assert op.symmetric_padding == (1, 1)
    x = RNG.normal(size=(3, 2, 10, 9))
    with torch.no_grad():
        ref = layer(torch.from_numpy(x)).numpy()
    _close(_ours(op, x), ref, 1e-12)


POOL_CASES = [
    # (kernel, stride, pads (t, l, b, r), count_include_pad)
    ((2, 2), (2, 2), (0, 0, 0, 0), False),
    ((3, 3), (1, 1), (1, 1, 1, 1), False),
    ((3, 3), (1, 1), (1, 1, 1, 1), True),
    ((3, 2), (2, 1), (2, 0, 1, 1), False),
    ((3, 2), (2, 1), (2, 0, 1, 1), True),
    ((3, 3), (2, 2), (2, 2, 2, 2), False),  # pads larger than half the kernel
]


@pytest.mark.parametrize(("kernel", "stride", "pads", "include"), POOL_CASES)
def test_avgpool_matches_onnxruntime(kernel, stride, pads, include):
    x = _f32(1, 3, 7, 8)
    node = helper.make_node(
        "AveragePool",
        ["X"],
        ["Y"],
        kernel_shape=list(kernel),
        strides=list(stride),
        pads=list(pads),
        count_include_pad=int(include),
    )
    ref = _run_onnx_node(node, x, {})
    op = AvgPool2d(kernel, stride, pads, include)
    _close(_ours(op, x.astype(np.float64)), ref.astype(np.float64))


@pytest.mark.parametrize(("kernel", "stride", "pads", "include"), POOL_CASES)
def test_maxpool_matches_onnxruntime(kernel, stride, pads, include):
    x = _f32(1, 3, 7, 8)
    node = helper.make_node(
        "MaxPool", ["X"], ["Y"], kernel_shape=list(kernel), strides=list(stride), pads=list(pads)
    )
    ref = _run_onnx_node(node, x, {})
    op = MaxPool2d(kernel, stride, pads)
    _close(_ours(op, x.astype(np.float64)), ref.astype(np.float64))


def test_pools_match_torch_with_count_include_pad():
    x = torch.from_numpy(RNG.normal(size=(2, 3, 6, 6)))
    for include in (False, True):
        ref = torch.nn.AvgPool2d(3, 2, 1, count_include_pad=include)(x).numpy()
        _close(_ours(AvgPool2d((3, 3), (2, 2), (1, 1, 1, 1), include), x.numpy()), ref, 1e-12)
    ref = torch.nn.MaxPool2d(3, 2, 1)(x).numpy()
    _close(_ours(MaxPool2d((3, 3), (2, 2), (1, 1, 1, 1)), x.numpy()), ref, 1e-12)


def test_pad_matches_onnxruntime_asymmetric():
    x = _f32(1, 2, 4, 5)
    pads = (1, 0, 2, 3)  # top, left, bottom, right
    onnx_pads = np.array([0, 0, pads[0], pads[1], 0, 0, pads[2], pads[3]], dtype=np.int64)
    node = helper.make_node("Pad", ["X", "P", "V"], ["Y"], mode="constant")
    ref = _run_onnx_node(node, x, {"P": onnx_pads, "V": np.array(1.5, dtype=np.float32)})
    _close(_ours(Pad(pads, 1.5), x.astype(np.float64)), ref.astype(np.float64))


def test_elementwise_affine_broadcasts_per_channel():
    scale, shift = RNG.normal(size=(3, 1, 1)), RNG.normal(size=(1, 4, 1))
    op = ElementwiseAffine(as_tensor(scale), as_tensor(shift))
    x = RNG.normal(size=(2, 3, 4, 5))
    _close(_ours(op, x), x * scale + shift, 1e-12)
    with pytest.raises(ValueError):
        op.output_shape((3, 4))
    with pytest.raises(ValueError, match="change the shape"):
        ElementwiseAffine(as_tensor(np.ones((2, 3))), as_tensor(0.0)).output_shape((3,))


@pytest.mark.parametrize(
    ("op", "module"),
    [
        (ReLU(), torch.nn.ReLU()),
        (LeakyReLU(0.2), torch.nn.LeakyReLU(0.2)),
        (Sigmoid(), torch.nn.Sigmoid()),
        (Tanh(), torch.nn.Tanh()),
        (Identity(), torch.nn.Identity()),
    ],
)
def test_activations_match_torch(op, module):
    x = RNG.normal(size=(4, 3, 2)) * 3
    ref = module(torch.from_numpy(x)).numpy()
    _close(_ours(op, x), ref, 1e-12)


def test_structure_ops():
    x = RNG.normal(size=(2, 3, 4))
    y = RNG.normal(size=(2, 3, 4))
    _close(_ours(Flatten(), x), x.reshape(2, -1), 0)
    _close(_ours(Reshape((4, 3)), x), x.reshape(2, 4, 3), 0)
    _close(_ours(Add(), x, y), x + y, 0)
    _close(_ours(Concat(1), x, y), np.concatenate([x, y], axis=2), 0)
    with pytest.raises(ValueError):
        Reshape((5,)).output_shape((3, 4))
    with pytest.raises(ValueError):
        Add().output_shape((3, 4), (4, 3))
    with pytest.raises(ValueError):
        Concat(0).output_shape((3, 4), (3, 5))


def test_op_to_changes_dtype_and_keeps_semantics():
    op = Conv2d(as_tensor(_f32(2, 1, 2, 2)), as_tensor(_f32(2)), (1, 1), (1, 0, 0, 1))
    x = RNG.normal(size=(1, 1, 4, 4))
    single = op.to(torch.float32)
    assert single.weight.dtype == torch.float32
    out32 = single.forward(torch.from_numpy(x).float()).double().numpy()
    _close(out32, _ours(op, x), 1e-5)
