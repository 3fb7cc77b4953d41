"""The ONNX loader: hand-built graphs and the benchmark models against onnxruntime, bad files."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from conftest import benchmarks_dir
from verifiNN.errors import ModelLoadError, UnsupportedModelError
from verifiNN.io.onnx import constant_only_ops, load_onnx, onnx_to_network, supported_ops

RNG = np.random.default_rng(2024)
FLOAT = TensorProto.FLOAT


def _f32(*shape: int) -> np.ndarray:
    return RNG.normal(size=shape).astype(np.float32)


def _i64(*values: int) -> np.ndarray:
    return np.array(values, dtype=np.int64)


def _model(
    nodes: list[onnx.NodeProto],
    x_shape: list,
    inits: dict[str, np.ndarray] | None = None,
    opset: int = 17,
    inputs: list[onnx.ValueInfoProto] | None = None,
) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes,
        "test",
        inputs or [helper.make_tensor_value_info("X", FLOAT, x_shape)],
        [helper.make_tensor_value_info("Y", FLOAT, None)],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in (inits or {}).items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 7
    try:  # give the output its inferred type, as exporters do
        inferred = onnx.shape_inference.infer_shapes(model).graph.output[0]
        if inferred.type.tensor_type.HasField("shape"):
            model.graph.output[0].CopyFrom(inferred)
    except Exception:  # models meant to be invalid
        pass
    return model


def _session(model: onnx.ModelProto | str) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    data = model if isinstance(model, str) else model.SerializeToString()
    return ort.InferenceSession(data, options)


def _check_against_ort(model: onnx.ModelProto, tmp_path: Path, n: int = 8):
    """Load ``model`` from a file and compare with onnxruntime on ``n`` random inputs."""
    path = tmp_path / "model.onnx"
    onnx.save(model, path)
    network = load_onnx(path)
    session = _session(str(path))
    full = [1 if d is None or isinstance(d, str) else d for d in network.origin.input_shape]
    X = RNG.normal(size=(n, *full)).astype(np.float32)
    ref = np.stack([session.run(None, {"X": x})[0].ravel() for x in X])
    ours = network.get_output(X.reshape(n, -1).astype(np.float64))
    scale = max(1.0, float(np.abs(ref).max()))
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-5 * scale)
    return network


# ------------------------------------------------------------ hand-built graphs
def _node(op: str, inputs: list[str], output: str = "Y", **attrs) -> onnx.NodeProto:
    return helper.make_node(op, inputs, [output], name=f"{op.lower()}_{output}", **attrs)


CASES = {
    "gemm_transA_alpha_beta": lambda: _model(
        [_node("Gemm", ["X", "B", "C"], transA=1, alpha=0.5, beta=2.0)],
        [5, 1],
        {"B": _f32(5, 3), "C": _f32(3)},
    ),
    "gemm_transB_row_bias": lambda: _model(
        [_node("Gemm", ["X", "B", "C"], transB=1)], [1, 4], {"B": _f32(3, 4), "C": _f32(1, 3)}
    ),
    "gemm_constant_left": lambda: _model(
        [_node("Gemm", ["A", "X", "C"], alpha=1.5)], [4, 1], {"A": _f32(3, 4), "C": _f32(3, 1)}
    ),
    "matmul_rows_then_relu": lambda: _model(
        [_node("MatMul", ["X", "W"], "m"), _node("Relu", ["m"])], [1, 3, 4], {"W": _f32(4, 2)}
    ),
    "matmul_vector_weight": lambda: _model(
        [_node("MatMul", ["X", "w"], "m"), _node("Tanh", ["m"])], [1, 2, 4], {"w": _f32(4)}
    ),
    "matmul_constant_left_vector": lambda: _model(
        [_node("MatMul", ["W", "X"], "m"), _node("Add", ["m", "b"])],
        [4],
        {"W": _f32(3, 4), "b": _f32(3)},
    ),
    "matmul_constant_left_matrix": lambda: _model(
        [_node("MatMul", ["W", "X"])], [1, 4, 2], {"W": _f32(3, 4)}
    ),
    "conv_same_upper_stride2": lambda: _model(
        [_node("Conv", ["X", "W", "B"], auto_pad="SAME_UPPER", strides=[2, 2])],
        [1, 2, 7, 6],
        {"W": _f32(3, 2, 2, 3), "B": _f32(3)},
    ),
    "mul_of_data_tensors": lambda: _model(
        [_node("Gemm", ["X", "W"], "g"), _node("Relu", ["g"], "r"), _node("Mul", ["r", "g"])],
        [1, 3],
        {"W": _f32(3, 4)},
    ),
    "conv_same_lower_stride2": lambda: _model(
        [_node("Conv", ["X", "W"], auto_pad="SAME_LOWER", strides=[2, 1])],
        [1, 2, 6, 5],
        {"W": _f32(4, 2, 3, 2)},
    ),
    "conv_dilated_strided": lambda: _model(
        [_node("Conv", ["X", "W"], pads=[1, 0, 2, 1], dilations=[2, 1], strides=[1, 2])],
        [1, 2, 6, 6],
        {"W": _f32(4, 2, 2, 2)},
    ),
    "conv_valid_groups": lambda: _model(
        [_node("Conv", ["X", "W"], auto_pad="VALID", group=2)],
        [1, 4, 5, 5],
        {"W": _f32(6, 2, 3, 3)},
    ),
    "conv1d_pads_dilation_groups": lambda: _model(
        [_node("Conv", ["X", "W", "B"], pads=[2, 1], dilations=[2], strides=[2], group=3)],
        [1, 3, 11],
        {"W": _f32(6, 1, 3), "B": _f32(6)},
    ),
    "reshape_zero_minus_one_gemm": lambda: _model(
        [_node("Reshape", ["X", "s"], "r"), _node("Gemm", ["r", "W"])],
        [1, 2, 3, 4],
        {"s": _i64(0, -1), "W": _f32(24, 5)},
    ),
    "squeeze_unsqueeze_transpose": lambda: _model(
        [
            _node("Squeeze", ["X", "ax"], "s"),
            _node("Unsqueeze", ["s", "ax2"], "u"),
            _node("Transpose", ["u"], "t", perm=[1, 0, 2]),
            _node("Tanh", ["t"]),
        ],
        [1, 1, 5],
        {"ax": _i64(1), "ax2": _i64(0)},
    ),
    "opset11_squeeze_attrs": lambda: _model(
        [
            _node("Unsqueeze", ["X"], "u", axes=[1]),
            _node("Squeeze", ["u"], "s", axes=[1]),
            _node("Sigmoid", ["s"]),
        ],
        [1, 6],
        opset=11,
    ),
    "shape_gather_concat_reshape": lambda: _model(
        [
            _node("Shape", ["X"], "shape"),
            helper.make_node("Gather", ["shape", "zero"], ["n"], axis=0),
            _node("Unsqueeze", ["n", "ax"], "n1"),
            _node("Concat", ["n1", "minus1"], "target", axis=0),
            _node("Reshape", ["X", "target"], "flat"),
            _node("Gemm", ["flat", "W", "C"]),
        ],
        ["batch", 3, 4],
        {
            "zero": np.array(0, dtype=np.int64),
            "ax": _i64(0),
            "minus1": _i64(-1),
            "W": _f32(12, 2),
            "C": _f32(2),
        },
    ),
    "constant_nodes_folded": lambda: _model(
        [
            helper.make_node("Constant", [], ["w"], value=numpy_helper.from_array(_f32(4, 3), "w")),
            helper.make_node("Constant", [], ["half"], value_float=0.5),
            _node("Mul", ["w", "half"], "w2"),
            _node("MatMul", ["X", "w2"], "m"),
            _node("Sub", ["m", "half"]),
        ],
        [1, 4],
    ),
    "pad_constant_value": lambda: _model(
        [_node("Pad", ["X", "p", "v"], "pad", mode="constant"), _node("Relu", ["pad"])],
        [1, 2, 3, 4],
        {"p": _i64(0, 0, 1, 0, 0, 0, 2, 3), "v": np.array(-0.5, dtype=np.float32)},
    ),
    "pad_opset9_attrs": lambda: _model(
        [_node("Pad", ["X"], pads=[0, 0, 0, 2, 0, 0, 1, 0], value=1.0)], [1, 1, 3, 3], opset=9
    ),
    "arithmetic_with_constants": lambda: _model(
        [
            _node("Sub", ["X", "mean"], "a"),
            _node("Div", ["a", "std"], "b"),
            _node("Mul", ["two", "b"], "c"),
            _node("Sub", ["one", "c"], "d"),
            _node("Add", ["d", "bias"], "e"),
            _node("Neg", ["e"]),
        ],
        [1, 3, 2, 2],
        {
            "mean": _f32(1, 3, 1, 1),
            "std": np.abs(_f32(3, 1, 1)) + 0.5,
            "two": np.array(2.0, dtype=np.float32),
            "one": np.array([1.0], dtype=np.float32),
            "bias": _f32(2),
        },
    ),
    "add_sub_of_data": lambda: _model(
        [
            _node("Relu", ["X"], "r"),
            _node("Sigmoid", ["X"], "s"),
            _node("Sub", ["r", "s"], "d"),
            _node("Add", ["d", "X"], "e"),
            _node("LeakyRelu", ["e"], alpha=0.3),
        ],
        [1, 2, 3],
    ),
    "dropout_identity_cast": lambda: _model(
        [
            _node("Dropout", ["X", "ratio"], "d"),
            _node("Identity", ["d"], "i"),
            _node("Cast", ["i"], to=TensorProto.FLOAT),
        ],
        [1, 5],
        {"ratio": np.array(0.3, dtype=np.float32)},
    ),
    "pools": lambda: _model(
        [
            _node("AveragePool", ["X"], "a", kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1),
            _node("MaxPool", ["a"], "m", kernel_shape=[2, 1], pads=[1, 0, 0, 0]),
            _node("GlobalAveragePool", ["m"]),
        ],
        [1, 3, 6, 4],
    ),
    "maxpool1d_avgpool_same": lambda: _model(
        [
            _node("MaxPool", ["X"], "m", kernel_shape=[3], strides=[2], pads=[1, 1]),
            _node("AveragePool", ["m"], kernel_shape=[2], auto_pad="SAME_UPPER"),
        ],
        [1, 2, 9],
    ),
    "batchnorm_spatial_and_flat": lambda: _model(
        [
            _node("BatchNormalization", ["X", "g", "b", "m", "v"], "bn", epsilon=1e-3),
            _node("Flatten", ["bn"], "f"),
            _node("BatchNormalization", ["f", "g2", "b2", "m2", "v2"]),
        ],
        [1, 2, 3, 3],
        {
            "g": _f32(2),
            "b": _f32(2),
            "m": _f32(2),
            "v": np.abs(_f32(2)) + 0.1,
            "g2": _f32(18),
            "b2": _f32(18),
            "m2": _f32(18),
            "v2": np.abs(_f32(18)) + 0.1,
        },
    ),
    "concat_conv_branches": lambda: _model(
        [
            _node("Conv", ["X", "W1"], "c1", pads=[1, 1, 1, 1]),
            _node("Conv", ["X", "W2"], "c2"),
            _node("Concat", ["c1", "c2"], "cat", axis=1),
            _node("Flatten", ["cat"], "f"),
            _node("Concat", ["f", "f"], axis=-1),
        ],
        [1, 2, 4, 4],
        {"W1": _f32(3, 2, 3, 3), "W2": _f32(2, 2, 1, 1)},
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_hand_built_graph_matches_onnxruntime(case, tmp_path):
    _check_against_ort(CASES[case](), tmp_path)


def test_input_shapes_are_kept(tmp_path):
    net = _check_against_ort(CASES["shape_gather_concat_reshape"](), tmp_path)
    assert net.input_shape == (3, 4)
    assert net.origin.input_shape == ("batch", 3, 4)
    net = _check_against_ort(CASES["conv1d_pads_dilation_groups"](), tmp_path)
    assert (net.input_shape, net.origin.input_shape) == ((3, 11), (1, 3, 11))
    net = _check_against_ort(CASES["matmul_constant_left_vector"](), tmp_path)
    assert (net.input_shape, net.origin.input_shape) == ((4,), (4,))


def test_gemm_normalisation_folds_into_one_dense(tmp_path):
    net = _check_against_ort(CASES["reshape_zero_minus_one_gemm"](), tmp_path)
    assert [n.op.kind for n in net.nodes] == ["Flatten", "Dense"]
    net = _check_against_ort(CASES["constant_nodes_folded"](), tmp_path)
    assert [n.op.kind for n in net.nodes] == ["Dense"]


def test_labeler_is_passed_on(tmp_path):
    path = tmp_path / "m.onnx"
    onnx.save(CASES["gemm_transB_row_bias"](), path)
    assert load_onnx(path, labeler="argmin").labeler == "argmin"


def test_supported_ops_lists_the_registry():
    ops = supported_ops()
    assert {"Conv", "Gemm", "MatMul", "Relu", "Shape", "Constant"} <= set(ops)
    assert {"Range", "Equal", "ConstantOfShape", "Einsum"} <= set(ops)  # folded on constants
    assert "Einsum" in constant_only_ops() and "Slice" not in constant_only_ops()
    assert not {"RandomNormal", "Loop", "If"} & set(ops)  # never folded, never converted


# ------------------------------------------------------------------- bad files
def _saved(model: onnx.ModelProto, tmp_path: Path, name: str = "bad.onnx") -> Path:
    path = tmp_path / name
    path.write_bytes(model.SerializeToString())
    return path


def _assert_clean(exc: BaseException) -> None:
    """The error carries no protobuf traceback text."""
    assert exc.__cause__ is None
    assert "protobuf" not in str(exc).lower() and "Traceback" not in str(exc)


def test_missing_file(tmp_path):
    with pytest.raises(ModelLoadError, match=r"no_such\.onnx"):
        load_onnx(tmp_path / "no_such.onnx")
    with pytest.raises(ModelLoadError, match="is a folder"):
        load_onnx(tmp_path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.onnx"
    path.write_bytes(b"")
    with pytest.raises(ModelLoadError, match=r"empty\.onnx.*empty") as info:
        load_onnx(path)
    _assert_clean(info.value)


def test_truncated_file(tmp_path):
    data = CASES["batchnorm_spatial_and_flat"]().SerializeToString()
    path = tmp_path / "truncated.onnx"
    path.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(ModelLoadError, match=r"truncated\.onnx") as info:
        load_onnx(path)
    _assert_clean(info.value)


@pytest.mark.parametrize("seed", range(5))
def test_random_bytes(tmp_path, seed):
    path = tmp_path / "noise.onnx"
    path.write_bytes(np.random.default_rng(seed).bytes(2048))
    with pytest.raises(ModelLoadError, match=r"noise\.onnx") as info:
        load_onnx(path)
    _assert_clean(info.value)


def test_unsupported_ops_are_all_listed_before_work(tmp_path):
    model = _model(
        [
            _node("Einsum", ["X", "W"], "e", equation="ij,jk->ik"),
            _node("Relu", ["e"], "r"),
            _node("Hardmax", ["r"], "s", axis=1),
            helper.make_node("Gelu", ["s"], ["Y"], name="my_gelu", domain="com.example"),
        ],
        [1, 3],
        {"W": _f32(3, 3)},
    )
    model.opset_import.append(helper.make_opsetid("com.example", 1))
    with pytest.raises(UnsupportedModelError) as info:
        load_onnx(_saved(model, tmp_path))
    message = str(info.value)
    for text in ("bad.onnx", "Einsum", "einsum_e", "Hardmax", "hardmax_s", "Gelu", "my_gelu"):
        assert text in message
    assert "Relu" not in message


@pytest.mark.parametrize(
    ("node", "shape", "inits", "words"),
    [
        (
            _node("Pad", ["X", "p"], mode="mirror"),
            [1, 1, 3, 3],
            {"p": _i64(0, 0, 1, 1, 0, 0, 1, 1)},
            ["pad_Y", "mode", "mirror"],
        ),
        (
            _node("Conv", ["X", "W"], auto_pad="SAME_MIDDLE"),
            [1, 1, 3, 3],
            {"W": _f32(1, 1, 2, 2)},
            ["conv_Y", "auto_pad", "SAME_MIDDLE"],
        ),
        (
            _node("AveragePool", ["X"], kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1),
            [1, 1, 5, 5],
            {},
            ["averagepool_Y", "ceil_mode"],
        ),
        (
            _node("AveragePool", ["X"], kernel_shape=[2, 2], dilations=[2, 2]),
            [1, 1, 5, 5],
            {},
            ["averagepool_Y", "dilations"],
        ),
        (
            _node("Slice", ["X", "s", "X"]),
            [1, 2, 3],
            {"s": _i64(0)},
            ["slice_Y", "input 2", "'X'", "constant"],
        ),
        (_node("Cast", ["X"], to=TensorProto.STRING), [1, 3], {}, ["cast_Y", "to=8"]),
        (
            _node("Resize", ["X", "", "s"], coordinate_transformation_mode="tf_crop_and_resize"),
            [1, 1, 3, 3],
            {"s": np.array([1, 1, 2, 2], np.float32)},
            ["resize_Y", "coordinate_transformation_mode", "tf_crop_and_resize"],
        ),
        (
            _node("Conv", ["X", "W"]),
            [1, 1, 3, 3, 3],
            {"W": _f32(1, 1, 2, 2, 2)},
            ["conv_Y", "2-D"],
        ),
    ],
    ids=[
        "pad_mode",
        "auto_pad",
        "ceil_mode",
        "pool_dilation",
        "slice_of_data_bounds",
        "cast_to_string",
        "resize_crop",
        "3d",
    ],
)
def test_unsupported_attributes_name_node_and_attribute(tmp_path, node, shape, inits, words):
    with pytest.raises(UnsupportedModelError) as info:
        load_onnx(_saved(_model([node], shape, inits), tmp_path))
    for word in [*words, "bad.onnx"]:
        assert word in str(info.value)


def test_dynamic_non_batch_dimension(tmp_path):
    model = _model([_node("Relu", ["X"])], ["N", "width", 4])
    with pytest.raises(ModelLoadError, match=r"'X'.*'width'.*axis 1"):
        load_onnx(_saved(model, tmp_path))
    model = _model([_node("Relu", ["X"])], ["N"])
    with pytest.raises(ModelLoadError, match="'X'"):
        load_onnx(_saved(model, tmp_path))


def test_two_inputs_and_old_opset_are_rejected(tmp_path):
    inputs = [helper.make_tensor_value_info(n, FLOAT, [1, 2]) for n in ("X", "Z")]
    model = _model([_node("Add", ["X", "Z"])], [], inputs=inputs)
    with pytest.raises(UnsupportedModelError, match="one input"):
        load_onnx(_saved(model, tmp_path))
    with pytest.raises(UnsupportedModelError, match="opset 6"):
        load_onnx(_saved(_model([_node("Relu", ["X"])], [1, 2], opset=6), tmp_path))


def test_dropout_mask_reader_is_rejected(tmp_path):
    model = _model(
        [
            helper.make_node("Dropout", ["X"], ["d", "mask"], name="drop"),
            helper.make_node("Cast", ["mask"], ["mf"], to=FLOAT, name="cast"),
            _node("Add", ["d", "mf"]),
        ],
        [1, 3],
    )
    with pytest.raises(UnsupportedModelError, match="mask"):
        load_onnx(_saved(model, tmp_path))


def test_dangling_tensor_reference(tmp_path):
    model = _model([_node("Relu", ["X"], "r"), _node("Add", ["r", "undefined"])], [1, 3])
    with pytest.raises(ModelLoadError, match=r"bad\.onnx.*add_Y.*'undefined'") as info:
        load_onnx(_saved(model, tmp_path))
    assert not isinstance(info.value, UnsupportedModelError)


def test_constant_output_is_rejected():
    model = _model(
        [_node("Add", ["a", "a"], "s"), _node("Identity", ["s"])], [1, 2], {"a": _f32(2)}
    )
    with pytest.raises(ModelLoadError, match="does not depend on the input"):
        onnx_to_network(model)


# ---------------------------------------------------------- benchmark models
def _double_batched(model: onnx.ModelProto) -> tuple[onnx.ModelProto, bool]:
    """A float64 copy of ``model`` (a tight reference); batched when the input has rank >= 2."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    for i, tensor in enumerate(graph.initializer):
        if tensor.data_type == FLOAT:
            array = numpy_helper.to_array(tensor).astype(np.float64)
            graph.initializer[i].CopyFrom(numpy_helper.from_array(array, tensor.name))
    del graph.value_info[:]
    batched = len(graph.input[0].type.tensor_type.shape.dim) >= 2
    for value in (*graph.input, *graph.output):
        value.type.tensor_type.elem_type = TensorProto.DOUBLE
        if batched:
            value.type.tensor_type.shape.dim[0].dim_param = "N"
    return model, batched


def _box(vnnlib: Path) -> tuple[np.ndarray, np.ndarray]:
    """The input box of a property (the first case)."""
    try:
        from verifiNN.io.vnnlib import load_vnnlib
    except ImportError:  # the simple flat-box form, parsed by hand
        text = vnnlib.read_text()
        n = len(re.findall(r"declare-const X_\d+", text))
        lo, hi = np.full(n, -np.inf), np.full(n, np.inf)
        for op, i, value in re.findall(r"\((<=|>=) X_(\d+) ([-+.\deE]+)\)", text):
            (hi if op == "<=" else lo)[int(i)] = float(value)
        return lo, hi
    region = load_vnnlib(vnnlib).cases[0].input_region
    return region.lower, region.upper


def _benchmark_box(folder: Path, onnx_file: Path) -> tuple[np.ndarray, np.ndarray]:
    if folder.name == "acasxu":
        return _box(folder / "prop_1.vnnlib")
    if folder.name == "mnistfc":
        return np.zeros(784), np.ones(784)
    for name in folder.glob("*instances.csv"):
        with name.open() as f:
            for row in csv.reader(f):
                if row and row[0] == onnx_file.name:
                    return _box(folder / row[1])
    vnnlib = sorted(folder.glob("*.vnnlib"))
    return _box(vnnlib[0])


def _benchmark_files(folder: str) -> tuple[Path, list[Path]]:
    root = benchmarks_dir() / folder
    if not root.is_dir():
        pytest.skip(f"benchmark folder {root} not found (set VERIFINN_BENCHMARKS)")
    return root, sorted(root.glob("*.onnx"))


@pytest.mark.parametrize("folder", ["acasxu", "mnistfc", "test"])
def test_benchmark_models_match_onnxruntime(folder):
    root, files = _benchmark_files(folder)
    assert files, f"no .onnx files in {root}"
    rng = np.random.default_rng(0)
    for file in files:
        network = load_onnx(file)
        lo, hi = _benchmark_box(root, file)
        assert lo.size == network.input_size, file.name
        X = lo + (hi - lo) * rng.random((1000, lo.size))
        ours = network.get_output(X)
        model = onnx.load(file)
        reference, batched = _double_batched(model)
        session = _session(reference)
        name = session.get_inputs()[0].name
        full = [1 if isinstance(d, str) or d is None else d for d in network.origin.input_shape]
        if batched:
            ref = session.run(None, {name: X.reshape(len(X), *full[1:])})[0].reshape(len(X), -1)
        else:
            ref = np.stack([session.run(None, {name: x.reshape(full)})[0].ravel() for x in X])
        scale = float(np.abs(ref).max())
        np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-5 * scale, err_msg=file.name)
        # the model as stored (float32) agrees too, up to float32 rounding
        single = _session(model)
        x32 = X[:20].astype(np.float32)
        ref32 = np.stack([single.run(None, {name: x.reshape(full)})[0].ravel() for x in x32])
        np.testing.assert_allclose(ours[:20], ref32, rtol=1e-4, atol=1e-4 * scale)


@pytest.mark.parametrize("folder", ["acasxu", "mnistfc"])
def test_benchmark_mlps_are_plain_mlps_after_passes(folder):
    _, files = _benchmark_files(folder)
    for file in files:
        network = load_onnx(file, labeler="argmin" if folder == "acasxu" else "argmax")
        mlp = network.as_mlp()
        assert set(mlp.activations) == {"ReLU"}, file.name
        assert mlp.weights[0].shape[1] == network.input_size
        expected = (1, 1, 5) if folder == "acasxu" else (784, 1)
        assert network.input_shape == expected
        assert network.origin.input_shape == (1, *expected)
