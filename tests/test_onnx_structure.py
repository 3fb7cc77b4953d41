"""Structural and affine ONNX operators: hand-built graphs against onnxruntime, bounded soundly.

Every case is a small model run by onnxruntime and by verifiNN's loaded network
on random inputs (relative 1e-5); the same networks are then bounded by IBP and
CROWN over a small box and every sampled output must lie within the bounds.
Constant folding (ONNX's reference evaluator), ``ArgMax`` outputs and the
static check of unsupported inputs and attributes are tested at the end.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from verifiNN.bounds import compute_bounds
from verifiNN.errors import UnsupportedModelError
from verifiNN.io.onnx import load_onnx, onnx_to_network
from verifiNN.io.ort import onnxruntime_output

RNG = np.random.default_rng(7)
FLOAT = TensorProto.FLOAT


def _f32(*shape: int) -> np.ndarray:
    return RNG.normal(size=shape).astype(np.float32)


def _i64(*values: int) -> np.ndarray:
    return np.array(values, dtype=np.int64)


def _model(nodes, x_shape, inits=None, opset: int = 17, outputs=("Y",)) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes,
        "test",
        [helper.make_tensor_value_info("X", FLOAT, x_shape)],
        [helper.make_tensor_value_info(name, FLOAT, None) for name in outputs],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in (inits or {}).items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def _node(op: str, inputs: list[str], output: str = "Y", **attrs) -> onnx.NodeProto:
    return helper.make_node(op, inputs, [output], name=f"{op.lower()}_{output}", **attrs)


def _session(model: onnx.ModelProto) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), options)


def _check_against_ort(model: onnx.ModelProto, tmp_path: Path, n: int = 6):
    """Load ``model`` from a file; compare with onnxruntime on ``n`` random inputs."""
    path = tmp_path / "model.onnx"
    onnx.save(model, path)
    network = load_onnx(path)
    session = _session(model)
    full = [1 if not isinstance(d, int) else d for d in network.origin.input_shape]
    X = RNG.normal(size=(n, *full)).astype(np.float32)
    ref = np.stack([session.run(None, {"X": x})[0].ravel() for x in X]).astype(np.float64)
    ours = network.get_output(X.reshape(n, -1).astype(np.float64))
    scale = max(1.0, float(np.abs(ref).max()))
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-5 * scale)
    return network


# ------------------------------------------------------------------- cases
CASES = {
    # Transpose
    "transpose_nhwc_conv": lambda: _model(
        [
            _node("Transpose", ["X"], "t", perm=[0, 3, 1, 2]),
            _node("Conv", ["t", "W"], "c", strides=[2, 1]),
            _node("Relu", ["c"], "r"),
            _node("Transpose", ["r"], "back", perm=[0, 2, 3, 1]),
            _node("Reshape", ["back", "s"], "f"),
            _node("MatMul", ["f", "M"]),
        ],
        [1, 5, 4, 3],
        {"W": _f32(2, 3, 2, 2), "s": _i64(1, -1), "M": _f32(12, 3)},
        opset=9,
    ),
    "transpose_default_perm_and_batch_axis": lambda: _model(
        [_node("Transpose", ["X"], "t"), _node("Transpose", ["t"], perm=[1, 0, 3, 2])],
        [1, 2, 3, 4],
    ),
    "transpose_two_by_three": lambda: _model(
        [_node("Transpose", ["X"], "t", perm=[1, 0]), _node("Relu", ["t"])], [2, 3]
    ),
    # Slice, Gather, Split, Tile
    "slice_negative_steps_and_axes": lambda: _model(
        [
            _node("Slice", ["X", "s", "e", "a", "k"], "sl"),
            _node("Slice", ["sl", "s2", "e2"]),
        ],
        [1, 4, 7, 6],
        {
            "s": _i64(-1, 1, 0),
            "e": _i64(-(2**63), 7, 100),
            "a": _i64(-1, 2, 1),
            "k": _i64(-2, 2, 1),
            "s2": _i64(0, 1),
            "e2": _i64(1, 3),
        },
    ),
    "slice_opset9_attributes": lambda: _model(
        [_node("Slice", ["X"], starts=[1, -3], ends=[3, 100], axes=[1, 2])], [1, 4, 5], opset=9
    ),
    "gather_scalar_vector_matrix": lambda: _model(
        [
            _node("Gather", ["X", "i0"], "g0", axis=1),
            _node("Gather", ["X", "i1"], "g1", axis=-1),
            _node("Gather", ["g1", "i2"], "g2", axis=1),
            _node("Reshape", ["g2", "flat"], "f2"),
            _node("Reshape", ["g0", "flat"], "f0"),
            _node("Concat", ["f0", "f2"], axis=1),
        ],
        [1, 3, 4],
        {
            "i0": np.array(-1, np.int64),
            "i1": _i64(3, 0, 0, -2),
            "i2": np.array([[2, 0], [1, 1]], np.int64),
            "flat": _i64(1, -1),
        },
    ),
    "gather_batch_axis": lambda: _model(
        [_node("Gather", ["X", "i"], "g", axis=0), _node("Sigmoid", ["g"])],
        [1, 2, 3],
        {"i": np.array(0, np.int64)},
    ),
    "split_input_sizes": lambda: _model(
        [
            helper.make_node("Split", ["X", "sp"], ["a", "b"], axis=1, name="split"),
            _node("Mul", ["a", "c"], "ac"),
            _node("Sub", ["ac", "b"]),
        ],
        [1, 6, 2],
        {"sp": _i64(3, 3), "c": _f32(3, 1)},
        opset=13,
    ),
    "split_attribute_and_num_outputs": lambda: _model(
        [
            helper.make_node("Split", ["X"], ["a", "b", "c"], axis=-1, num_outputs=3, name="s"),
            _node("Concat", ["c", "a", "b"], axis=-1),
        ],
        [1, 2, 8],
        opset=18,
    ),
    "tile": lambda: _model(
        [_node("Tile", ["X", "r"], "t"), _node("Relu", ["t"])], [1, 2, 3], {"r": _i64(1, 3, 2)}
    ),
    # broadcasting
    "expand_and_enlarging_constants": lambda: _model(
        [
            _node("Expand", ["X", "shape"], "e"),
            _node("Mul", ["e", "c"], "m"),
            _node("Sub", ["k", "m"]),
        ],
        [1, 3, 1],
        {"shape": _i64(2, 1, 3, 4), "c": _f32(3, 1), "k": _f32(4)},
    ),
    "constant_times_scalar_data": lambda: _model(
        [
            _node("Slice", ["X", "s", "e", "a"], "x0"),
            _node("Mul", ["C", "x0"], "m"),
            _node("Sub", ["x0", "v"], "d"),
            _node("MatMul", ["m", "W"], "mw"),
            _node("Add", ["mw", "d"]),
        ],
        [1, 3],
        {"s": _i64(1), "e": _i64(2), "a": _i64(1), "C": _f32(3, 4), "v": _f32(4), "W": _f32(4, 4)},
    ),
    "add_and_mul_of_broadcast_data": lambda: _model(
        [
            _node("ReduceSum", ["X", "ax"], "rows"),
            _node("ReduceMean", ["X"], "cols", axes=[1], keepdims=1),
            _node("Add", ["rows", "cols"], "s"),
            _node("Mul", ["rows", "cols"], "p"),
            _node("Sub", ["p", "s"]),
        ],
        [1, 3, 4],
        {"ax": _i64(2)},
        opset=13,
    ),
    # Where, Concat with constants
    "where_constant_condition": lambda: _model(
        [
            _node("Relu", ["X"], "r"),
            _node("Where", ["c", "X", "big"], "w1"),
            _node("Where", ["c2", "r", "X"], "w2"),
            _node("Where", ["c3", "w1", "w2"], "w3"),
            _node("Concat", ["w3", "w1"], axis=0),
        ],
        [1, 3, 4],
        {
            "c": np.arange(12).reshape(3, 4) % 3 == 0,
            "big": np.where(np.arange(12).reshape(3, 4) % 3 == 0, np.inf, _f32(3, 4)).astype(
                np.float32
            ),  # its infinities are never chosen
            "c2": RNG.random((1, 4)) < 0.5,
            "c3": RNG.random((2, 3, 1)) < 0.5,
        },
    ),
    "where_data_condition": lambda: _model(
        [
            _node("Greater", ["X", "t"], "c"),
            _node("Relu", ["X"], "r"),
            _node("Where", ["c", "X", "low"], "w1"),  # data, a broadcast constant
            _node("Less", ["r", "t2"], "c2"),
            _node("Where", ["c2", "w1", "r"], "w2"),  # both data
            _node("Where", ["c", "k", "w2"]),  # a constant first
        ],
        [1, 3, 4],
        {
            "t": _f32(3, 4) * 0.5,
            "low": _f32(1, 4),
            "t2": np.float32(0.4),
            "k": _f32(2, 1, 4),  # broadcasts the output up
        },
    ),
    # Pow with an exponent tensor: one Pow per distinct exponent
    "pow_exponent_tensor": lambda: _model(
        [_node("Pow", ["X", "e"])],
        [1, 3, 4],
        {"e": np.array([[2.0], [3.0], [1.0]], np.float32)},
    ),
    "pow_exponent_tensor_broadcast_up": lambda: _model(
        [_node("Relu", ["X"], "r"), _node("Pow", ["r", "e"])],
        [1, 2, 4],
        {"e": np.array([[[2.0]], [[0.5]], [[4.0]]], np.float32)},
    ),
    "concat_with_constants": lambda: _model(
        [
            _node("Concat", ["cls", "X", "tail"], "c", axis=1),
            _node("Add", ["c", "pos"], "p"),
            _node("Concat", ["p", "row"], "q", axis=-1),
            _node("Concat", ["q", "q", "plane"], axis=0),
        ],
        [1, 4, 3],
        {
            "cls": _f32(1, 1, 3),
            "tail": _f32(1, 2, 3),
            "pos": _f32(7, 3),
            "row": _f32(1, 7, 2),
            "plane": _f32(1, 7, 5),
        },
    ),
    # Pad
    "pad_modes_and_axes": lambda: _model(
        [
            _node("Pad", ["X", "p1", "v"], "a", mode="constant"),
            _node("Pad", ["a", "p2"], "b", mode="reflect"),
            _node("Pad", ["b", "p3"], "c", mode="edge"),
            _node("Pad", ["c", "p4", "", "ax"], mode="wrap"),
        ],
        [1, 2, 4, 5],
        {
            "p1": _i64(0, 1, 0, -1, 0, 2, -1, 0),
            "v": np.array(0.5, np.float32),
            "p2": _i64(0, 0, 2, 1, 0, 0, 1, 3),
            "p3": _i64(0, 1, 1, 0, 0, 0, 0, 2),
            "ax": _i64(-1),
            "p4": _i64(2, 1),
        },
        opset=19,
    ),
    # standalone batch norm, reductions
    "batchnorm_on_tokens": lambda: _model(
        [
            _node("Transpose", ["X"], "t", perm=[0, 2, 1]),
            _node("BatchNormalization", ["t", "g", "b", "m", "v"], "bn"),
            _node("Transpose", ["bn"], "tt", perm=[0, 2, 1]),
            _node("ReduceMean", ["tt"], axes=[1], keepdims=0),
        ],
        [1, 5, 3],
        {"g": _f32(3), "b": _f32(3), "m": _f32(3), "v": np.abs(_f32(3)) + 0.5},
        opset=9,
    ),
    "reduce_variants": lambda: _model(
        [
            _node("ReduceSum", ["X", "a1"], "s1", keepdims=0),
            _node("ReduceMean", ["X", "a2"], "s2", keepdims=1),
            _node("ReduceSum", ["X"], "s3", keepdims=0),
            _node("ReduceSum", ["X", "none"], "s4", noop_with_empty_axes=1),
            _node("Reshape", ["s1", "flat"], "f1"),
            _node("Reshape", ["s2", "flat"], "f2"),
            _node("Reshape", ["s3", "flat"], "f3"),
            _node("Reshape", ["s4", "flat"], "f4"),
            _node("Concat", ["f1", "f2", "f3", "f4"], axis=1),
        ],
        [1, 2, 3, 4],
        {"a1": _i64(-1, 1), "a2": _i64(0, 2), "none": _i64(), "flat": _i64(1, -1)},
        opset=18,
    ),
    # products with constants
    "matmul_batched_weights": lambda: _model(
        [
            _node("MatMul", ["X", "W3"], "a"),
            _node("MatMul", ["L", "a"], "b"),
            _node("MatMul", ["b", "w"], "c"),
            _node("MatMul", ["v", "a"], "d"),
            _node("Reshape", ["c", "flat"], "cf"),
            _node("Reshape", ["d", "flat"], "df"),
            _node("Concat", ["cf", "df"], axis=1),
        ],
        [1, 5, 4],
        {
            "W3": _f32(2, 4, 3),
            "L": _f32(6, 5),
            "w": _f32(3),
            "v": _f32(5),
            "flat": _i64(1, -1),
        },
    ),
    "matmul_left_batched": lambda: _model(
        [_node("MatMul", ["W", "X"], "m"), _node("Add", ["m", "b"])],
        [1, 4, 3],
        {"W": _f32(2, 5, 4), "b": _f32(5, 1)},
    ),
    "gemm_transposed_data": lambda: _model(
        [
            _node("Gemm", ["X", "B", "C"], "g", transA=1, alpha=0.5),
            _node("Gemm", ["A", "g", "C2"], transB=1, beta=2.0),
        ],
        [4, 2],
        {"B": _f32(4, 3), "C": _f32(3), "A": _f32(5, 3), "C2": _f32(5, 1)},
    ),
    # transposed convolutions
    "conv_transpose_pads_groups": lambda: _model(
        [
            _node(
                "ConvTranspose",
                ["X", "W", "B"],
                "ct",
                strides=[2, 1],
                pads=[1, 0, 0, 2],
                output_padding=[1, 0],
                dilations=[1, 2],
                group=2,
            ),
            _node("Relu", ["ct"]),
        ],
        [1, 4, 3, 5],
        {"W": _f32(4, 3, 3, 2), "B": _f32(6)},
    ),
    "conv_transpose_output_shape_and_1d": lambda: _model(
        [
            _node("ConvTranspose", ["X", "W"], "a", strides=[2], output_shape=[12]),
            _node("ConvTranspose", ["a", "W2"], strides=[3], auto_pad="SAME_UPPER"),
        ],
        [1, 2, 6],
        {"W": _f32(2, 3, 3), "W2": _f32(3, 1, 4)},
    ),
    "conv_transpose_same_lower": lambda: _model(
        [_node("ConvTranspose", ["X", "W"], strides=[2, 2], auto_pad="SAME_LOWER")],
        [1, 2, 3, 3],
        {"W": _f32(2, 2, 3, 4)},
    ),
    # resizing
    "upsample_nearest_opset9": lambda: _model(
        [_node("Upsample", ["X", "s"], mode="nearest")],
        [1, 2, 3, 2],
        {"s": np.array([1, 1, 2, 3], np.float32)},
        opset=9,
    ),
    "upsample_linear_opset7": lambda: _model(
        [_node("Upsample", ["X"], mode="linear", scales=[1.0, 1.0, 2.0, 1.5])],
        [1, 2, 3, 4],
        opset=7,
    ),
    "resize_nearest_asymmetric_floor": lambda: _model(
        [
            _node(
                "Resize",
                ["X", "roi", "s"],
                coordinate_transformation_mode="asymmetric",
                mode="nearest",
                nearest_mode="floor",
            )
        ],
        [1, 3, 2, 2],
        {"roi": np.zeros(0, np.float32), "s": np.array([1, 1, 2, 2], np.float32)},
        opset=11,
    ),
    "resize_opset10_nearest_and_linear": lambda: _model(
        [
            _node("Resize", ["X", "s"], "a", mode="nearest"),
            _node("Resize", ["a", "s2"], mode="linear"),
        ],
        [1, 2, 3, 4],
        {"s": np.array([1, 1, 1.5, 0.5], np.float32), "s2": np.array([1, 1, 2, 3], np.float32)},
        opset=10,
    ),
    "resize_linear_half_pixel_sizes": lambda: _model(
        [_node("Resize", ["X", "", "", "sz"], mode="linear")],
        [1, 2, 4, 3],
        {"sz": _i64(1, 2, 7, 5)},
        opset=13,
    ),
    "resize_linear_align_corners_and_cubic": lambda: _model(
        [
            _node(
                "Resize",
                ["X", "", "s"],
                "a",
                mode="linear",
                coordinate_transformation_mode="align_corners",
            ),
            _node(
                "Resize",
                ["a", "", "s2"],
                mode="cubic",
                coordinate_transformation_mode="pytorch_half_pixel",
            ),
        ],
        [1, 1, 3, 4],
        {"s": np.array([1, 1, 2, 0.5], np.float32), "s2": np.array([1, 1, 0.5, 3], np.float32)},
        opset=13,
    ),
    "resize_nearest_ceil_axes_opset18": lambda: _model(
        [
            _node(
                "Resize",
                ["X", "", "s"],
                mode="nearest",
                nearest_mode="round_prefer_ceil",
                axes=[3, 2],
            )
        ],
        [1, 2, 3, 4],
        {"s": np.array([1.5, 2.5], np.float32)},
        opset=18,
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_structural_graph_matches_onnxruntime(case, tmp_path):
    _check_against_ort(CASES[case](), tmp_path)


@pytest.mark.parametrize("case", sorted(CASES))
def test_structural_graph_is_bounded_soundly(case, tmp_path):
    network = _check_against_ort(CASES[case](), tmp_path, n=1)
    rng = np.random.default_rng(len(case))
    center = rng.normal(size=network.input_size)
    lower, upper = center - 0.3, center + 0.3
    t = rng.uniform(size=(200, network.input_size))
    t[:50] = np.round(t[:50])  # corners
    outputs = network.get_output(lower + (upper - lower) * t)
    for method in ("ibp", "crown"):
        result = compute_bounds(network, (lower, upper), method=method)
        lo, hi = (v.detach().numpy()[0] for v in (result.lower, result.upper))
        slack = 1e-7 * (1 + np.abs(outputs))
        assert np.all(outputs >= lo - slack) and np.all(outputs <= hi + slack), method


def test_layouts_and_fast_rules(tmp_path):
    kinds = {
        case: {n.op.kind for n in _check_against_ort(CASES[case](), tmp_path, n=1).nodes}
        for case in ("transpose_nhwc_conv", "conv_transpose_pads_groups", "upsample_nearest_opset9")
    }
    assert "Transpose" in kinds["transpose_nhwc_conv"]
    assert "ConvTranspose2d" in kinds["conv_transpose_pads_groups"]
    assert "Gather" in kinds["upsample_nearest_opset9"]  # nearest resizing selects
    net = _check_against_ort(CASES["transpose_two_by_three"](), tmp_path)
    assert net.input_shape == (2, 3)
    net = _check_against_ort(
        _model([_node("Transpose", ["X"], perm=[1, 0])], [1, 6]), tmp_path
    )  # only a size-1 axis moves: a relabelling
    assert "Transpose" not in {n.op.kind for n in net.nodes}


# --------------------------------------------------------- constant folding
def test_any_constant_subgraph_is_folded_by_the_reference(tmp_path):
    # ml4acopf-like index arithmetic: Shape, ConstantOfShape, Range, Equal, Where,
    # Expand, Cast to ints, Pow and Gather, all on constants
    nodes = [
        _node("Shape", ["X"], "shape"),
        _node("ConstantOfShape", ["shape"], "ones", value=numpy_helper.from_array(_i64(1))),
        _node("Cast", ["ones"], "onesf", to=FLOAT),
        _node("Range", ["zero", "four", "one"], "r"),
        _node("Equal", ["r", "two"], "eq"),
        _node("Where", ["eq", "r", "three"], "w"),
        _node("Cast", ["w"], "wf", to=FLOAT),
        _node("Pow", ["wf", "twof"], "sq"),
        _node("Expand", ["sq", "shape"], "e"),
        _node("Gather", ["e", "idx"], "g", axis=2),
        _node("Mul", ["g", "onesf"], "k"),
        _node("Mul", ["X", "k"]),
    ]
    inits = {
        "zero": np.array(0, np.int64),
        "four": np.array(4, np.int64),
        "one": np.array(1, np.int64),
        "two": np.array(2, np.int64),
        "three": np.array(3, np.int64),
        "twof": np.array(2.0, np.float32),
        "idx": _i64(3, 2, 1, 0),
    }
    net = _check_against_ort(_model(nodes, [1, 2, 4], inits), tmp_path)
    assert [n.op.kind for n in net.nodes] == ["ElementwiseAffine"]


def test_folding_follows_the_model_opset(tmp_path):
    # Unsqueeze takes its axes as an attribute before opset 13
    nodes = [
        _node("Unsqueeze", ["c"], "u", axes=[0]),
        _node("Add", ["X", "u"]),
    ]
    _check_against_ort(_model(nodes, [1, 3], {"c": _f32(3)}, opset=11), tmp_path)


# ------------------------------------------------------------------- ArgMax
def test_argmax_output_loads_the_logits(tmp_path):
    model = _model(
        [
            _node("Gemm", ["X", "W", "b"], "logits", transB=1),
            _node("ArgMax", ["logits"], axis=1, keepdims=1),
        ],
        [1, 4],
        {"W": _f32(3, 4), "b": _f32(3)},
    )
    model.graph.output[0].type.tensor_type.elem_type = TensorProto.INT64
    path = tmp_path / "argmax.onnx"
    onnx.save(model, path)
    network = load_onnx(path)
    assert network.output_size == 3 and network.labeler == "argmax"
    x = RNG.normal(size=4)
    W, b = (numpy_helper.to_array(t) for t in model.graph.initializer)
    np.testing.assert_allclose(network.get_output(x), W @ x + b, rtol=1e-5)
    # the second opinion runs the model truncated at the logits too
    np.testing.assert_allclose(onnxruntime_output(network, x), W @ x + b, rtol=1e-5)
    assert network.classify(x) == int(np.argmax(W @ x + b))


# ------------------------------------------------------------ static check
def test_unsupported_inputs_and_attributes_are_listed_before_work():
    model = _model(
        [
            _node("Relu", ["X"], "r"),
            _node("Greater", ["r", "zero"], "pos"),
            _node("Where", ["pos", "r", "X"], "w"),  # a data condition converts
            _node("Cast", ["w"], "ints", to=TensorProto.INT64),
            _node("Cast", ["ints"], "f", to=FLOAT),
            _node(
                "Resize", ["f", "", "s"], "z", coordinate_transformation_mode="tf_crop_and_resize"
            ),
            _node("Slice", ["z", "zero_i", "ints"]),
        ],
        [1, 2, 2, 2],
        {
            "zero": np.array(0, np.float32),
            "zero_i": _i64(0),
            "s": np.array([1, 1, 2, 2], np.float32),
        },
        opset=13,
    )
    with pytest.raises(UnsupportedModelError) as info:
        onnx_to_network(model, source="bad.onnx")
    message = str(info.value)
    for text in (  # Greater and casts to integers convert (io/onnx/integer.py)
        "tf_crop_and_resize",
        "slice_Y",
        "input 2 ('ints')",
    ):
        assert text in message, text
    assert "cast_f" not in message  # a cast to float is fine
