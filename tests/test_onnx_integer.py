"""Integer-valued ONNX operators on data (:mod:`verifiNN.io.onnx.integer`) against onnxruntime.

Every hand-built model uses one operator (or a small composite such as a
segmentation tail: ``ArgMax -> OneHot -> Equal -> ReduceSum``) and is run on
random inputs drawn from a few small integers, so that ties (the hard case of
``ArgMax``: the first index wins, or the last with ``select_last_index``) and
exact equalities occur often, and on continuous inputs. Integer outputs must
agree with onnxruntime exactly, float outputs to a relative 1e-5. The
integer-valuedness analysis is checked too: a cast of an integer-valued node to
an integer type adds no ``Trunc``.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from verifiNN.errors import UnsupportedModelError
from verifiNN.io.onnx import onnx_to_network
from verifiNN.ops import Trunc

FLOAT, INT64, BOOL = TensorProto.FLOAT, TensorProto.INT64, TensorProto.BOOL


def _model(nodes, x_shape, out_type=FLOAT, inits=None, opset: int = 17, extra_inputs=()):
    graph = helper.make_graph(
        nodes,
        "integer",
        [helper.make_tensor_value_info("X", FLOAT, x_shape), *extra_inputs],
        [helper.make_tensor_value_info("Y", out_type, None)],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in (inits or {}).items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def _node(op: str, inputs: list[str], output: str, **attrs) -> onnx.NodeProto:
    return helper.make_node(op, inputs, [output], name=f"{op}_{output}", **attrs)


def _inputs(rng, shape, count: int, kind: str) -> np.ndarray:
    """``count`` inputs: small integers (ties), halves (ties after truncation) or reals."""
    size = (count, *shape)
    if kind == "ties":
        return rng.integers(-2, 3, size).astype(np.float32)
    if kind == "halves":
        return (rng.integers(-6, 7, size) / 2).astype(np.float32)
    return rng.normal(0, 2, size).astype(np.float32)


def check_against_onnxruntime(model: onnx.ModelProto, shape, count: int = 60, seed: int = 0):
    """The loaded network agrees with onnxruntime on tie-rich and continuous inputs."""
    network = onnx_to_network(model)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(seed)
    for kind in ("ties", "halves", "reals"):
        for x in _inputs(rng, shape, count, kind):
            expected = np.asarray(session.run(None, {"X": x})[0])
            got = network.get_output(x.astype(np.float64).ravel())
            want = expected.astype(np.float64).ravel()
            if expected.dtype.kind in "biu":
                assert np.array_equal(got, want), f"{kind} input {x.ravel()}: {got} != {want}"
            else:
                np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    return network


def _kinds(network) -> list[str]:
    return [node.op.kind for node in network.nodes]


# ------------------------------------------------------------------- argmax
@pytest.mark.parametrize("op", ["ArgMax", "ArgMin"])
@pytest.mark.parametrize("axis", [0, 1, 2, -1])
@pytest.mark.parametrize("keepdims", [0, 1])
@pytest.mark.parametrize("last", [0, 1])
def test_arg_extrema_match_onnxruntime_ties_included(op, axis, keepdims, last):
    nodes = [
        _node(op, ["X"], "a", axis=axis, keepdims=keepdims, select_last_index=last),
        _node("Cast", ["a"], "Y", to=INT64),  # a final ArgMax would be cut (logits kept)
    ]
    model = _model(nodes, [1, 3, 4], INT64)
    check_against_onnxruntime(model, (1, 3, 4), count=40)


@pytest.mark.parametrize("k", [1, 2, 5])
def test_argmax_of_k_classes(k):
    nodes = [_node("ArgMax", ["X"], "a", axis=1, keepdims=0), _node("Cast", ["a"], "Y", to=INT64)]
    model = _model(nodes, [1, k], INT64)
    check_against_onnxruntime(model, (1, k))


# ------------------------------------------------------------------- one-hot
@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_one_hot_of_an_argmax(axis):
    nodes = [
        _node("ArgMax", ["X"], "i", axis=1, keepdims=0),
        _node("OneHot", ["i", "depth", "values"], "Y", axis=axis),
    ]
    inits = {"depth": np.array(4, np.int64), "values": np.array([0.5, 3.0], np.float32)}
    model = _model(nodes, [2, 4, 3], FLOAT, inits, opset=11)
    network = check_against_onnxruntime(model, (2, 4, 3))
    assert "Trunc" not in _kinds(network)  # the argmax index is known to be an integer


def test_one_hot_of_signed_truncated_indices():
    """Indices from data: truncated first; negative ones count from the end; out of range
    gives all ``off``."""
    nodes = [
        _node("Mul", ["X", "three"], "s"),
        _node("OneHot", ["s", "depth", "values"], "Y"),
    ]
    inits = {
        "three": np.float32(3.0),
        "depth": np.array([5], np.int64),
        "values": np.array([-1, 2], np.int64),
    }
    model = _model(nodes, [1, 6], INT64, inits, opset=11)
    network = check_against_onnxruntime(model, (1, 6))
    assert "Trunc" in _kinds(network)


# --------------------------------------------------------------- comparisons
COMPARISONS = ["Equal", "Greater", "Less", "GreaterOrEqual", "LessOrEqual"]


@pytest.mark.parametrize("op", COMPARISONS)
@pytest.mark.parametrize("operand", ["data", "constant", "constant_first", "integers"])
def test_comparisons_match_onnxruntime(op, operand):
    nodes = [_node("Neg", ["X"], "n"), _node("Add", ["n", "shift"], "m")]
    inits = {"shift": np.array([0.0, 1.0, -1.0, 2.0], np.float32), "c": np.float32(1.0)}
    if operand == "data":
        nodes.append(_node(op, ["X", "m"], "b"))
    elif operand == "constant":
        nodes.append(_node(op, ["X", "c"], "b"))
    elif operand == "constant_first":
        nodes.append(_node(op, ["c", "X"], "b"))
    else:  # both integer-valued: the clip / hat encodings
        nodes += [
            _node("Cast", ["X"], "xi", to=INT64),
            _node("Cast", ["m"], "mi", to=INT64),
            _node(op, ["xi", "mi"], "b"),
        ]
    nodes.append(_node("Cast", ["b"], "Y", to=INT64))
    model = _model(nodes, [1, 4], INT64, inits, opset=13)
    check_against_onnxruntime(model, (1, 4))


def test_equal_broadcasts_its_operands():
    nodes = [
        _node("ReduceSum", ["X", "axes"], "r", keepdims=1),
        _node("Equal", ["X", "r"], "b"),
        _node("Cast", ["b"], "Y", to=FLOAT),
    ]
    model = _model(nodes, [1, 2, 3], FLOAT, {"axes": np.array([1], np.int64)}, opset=13)
    check_against_onnxruntime(model, (1, 2, 3))


# --------------------------------------------------------------------- logic
@pytest.mark.parametrize("op", ["And", "Or", "Xor"])
@pytest.mark.parametrize("constant", [False, True])
def test_logic_of_bools(op, constant):
    nodes = [_node("Greater", ["X", "zero"], "p")]
    if constant:
        nodes.append(_node(op, ["p", "mask"], "q"))
    else:
        nodes += [_node("Less", ["X", "one"], "r"), _node(op, ["p", "r"], "q")]
    nodes += [_node("Not", ["q"], "nq"), _node("Cast", ["nq"], "Y", to=INT64)]
    inits = {
        "zero": np.float32(0.0),
        "one": np.float32(1.0),
        "mask": np.array([True, False, True, False, False]),
    }
    check_against_onnxruntime(_model(nodes, [1, 5], INT64, inits), (1, 5))


# ---------------------------------------------------------------------- cast
@pytest.mark.parametrize("to", [TensorProto.INT32, INT64, TensorProto.INT8, TensorProto.INT16])
def test_cast_to_integers_truncates_toward_zero(to):
    nodes = [_node("Cast", ["X"], "i", to=to), _node("Cast", ["i"], "Y", to=FLOAT)]
    network = check_against_onnxruntime(_model(nodes, [1, 7]), (1, 7))
    assert _kinds(network).count("Trunc") == 1


def test_cast_to_bool_is_nonzero():
    nodes = [
        _node("Cast", ["X"], "b", to=BOOL),  # reals: |x| > 0
        _node("Cast", ["X"], "i", to=INT64),
        _node("Cast", ["i"], "c", to=BOOL),  # integers: clip(|x|, 1)
        _node("And", ["b", "c"], "both"),
        _node("Cast", ["both"], "Y", to=INT64),
    ]
    check_against_onnxruntime(_model(nodes, [1, 6], INT64), (1, 6))


def test_casts_of_integer_values_add_no_trunc():
    nodes = [
        _node("ArgMax", ["X"], "a", axis=1, keepdims=1),
        _node("Cast", ["a"], "f", to=FLOAT),
        _node("Mul", ["f", "two"], "g"),
        _node("Cast", ["g"], "h", to=TensorProto.INT32),
        _node("Cast", ["h"], "Y", to=INT64),
    ]
    model = _model(nodes, [1, 3], INT64, {"two": np.float32(2.0)})
    assert "Trunc" not in _kinds(check_against_onnxruntime(model, (1, 3)))


def test_cast_to_a_string_is_refused():
    model = _model([_node("Cast", ["X"], "Y", to=TensorProto.STRING)], [1, 3], TensorProto.STRING)
    with pytest.raises(UnsupportedModelError, match="to=8"):
        onnx_to_network(model)


# ------------------------------------------------------------- composite
def test_segmentation_tail_counts_matching_pixels():
    """The carvana tail: softmax, argmax over classes, one-hot, class 1 compared with a
    mask channel (cast through int32), the matches summed."""
    nodes = [
        _node("Slice", ["X", "s0", "s1", "ax"], "logits"),
        _node("Gather", ["X", "mask_index"], "mask", axis=1),
        _node("Softmax", ["logits"], "p", axis=1),
        _node("Gather", ["p", "zero"], "p0", axis=0),
        _node("ArgMax", ["p0"], "cls", axis=0, keepdims=0),
        _node("OneHot", ["cls", "depth", "values"], "hot", axis=-1),
        _node("Transpose", ["hot"], "hotT", perm=[2, 0, 1]),
        _node("Cast", ["hotT"], "hot64", to=INT64),
        _node("Gather", ["hot64", "one"], "pred", axis=0),
        _node("Cast", ["pred"], "pred32", to=TensorProto.INT32),
        _node("Cast", ["mask"], "mask32", to=TensorProto.INT32),
        _node("Equal", ["pred32", "mask32"], "same"),
        _node("Cast", ["same"], "same64", to=INT64),
        _node("ReduceSum", ["same64"], "Y", keepdims=0),
    ]
    inits = {
        "s0": np.array([0], np.int64),
        "s1": np.array([2], np.int64),
        "ax": np.array([1], np.int64),
        "mask_index": np.array(2, np.int64),
        "zero": np.array(0, np.int64),
        "one": np.array(1, np.int64),
        "depth": np.array(2, np.int64),
        "values": np.array([0, 1], np.int64),
    }
    model = _model(nodes, [1, 3, 4, 5], INT64, inits, opset=13)
    network = onnx_to_network(model)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(5)
    for _ in range(50):
        x = rng.normal(size=(1, 3, 4, 5)).astype(np.float32)
        x[0, 2] = rng.integers(0, 2, (4, 5))
        x[0, 1, :2] = x[0, 0, :2]  # ties between the two classes
        want = float(session.run(None, {"X": x})[0])
        assert network.get_output(x.astype(np.float64).ravel())[0] == want
    assert [type(n.op) for n in network.nodes].count(Trunc) == 1  # the mask only


# ------------------------------------------------------ argmax of a softmax
@pytest.mark.parametrize("opset", [11, 13])
def test_argmax_of_a_softmax_reads_the_logits(opset):
    """``ArgMax(Gather(Transpose(Softmax(x))))`` along the softmax's axis: the softmax is
    skipped (same order in real arithmetic), ties included."""
    nodes = [
        _node("Transpose", ["X"], "t", perm=[0, 3, 2, 1]),
        _node("Softmax", ["t"], "p", axis=3),
        _node("Transpose", ["p"], "q", perm=[0, 3, 2, 1]),
        _node("Gather", ["q", "zero"], "g", axis=0),
        _node("ArgMax", ["g"], "a", axis=0, keepdims=0),
        _node("Cast", ["a"], "Y", to=INT64),
    ]
    model = _model(nodes, [1, 3, 2, 4], INT64, {"zero": np.array(0, np.int64)}, opset=opset)
    network = check_against_onnxruntime(model, (1, 3, 2, 4))
    assert not {"Exp", "Reciprocal"} & set(_kinds(network))


def test_a_softmax_read_elsewhere_is_kept():
    nodes = [
        _node("Softmax", ["X"], "p", axis=1),
        _node("ArgMax", ["p"], "a", axis=1, keepdims=1),
        _node("Cast", ["a"], "af", to=FLOAT),
        _node("Add", ["p", "af"], "Y"),
    ]
    network = check_against_onnxruntime(_model(nodes, [1, 4], FLOAT), (1, 4))
    assert "Exp" in _kinds(network)


# ------------------------------------------------------------ constant folds
def test_integer_operators_on_constants_fold():
    """``Range``, ``Equal``, ``ArgMax``, ``OneHot``, ``ScatterND``, ``ConstantOfShape`` and
    integer casts on constants are evaluated at load time (ONNX's reference)."""
    nodes = [
        _node("Shape", ["X"], "shape"),
        _node("ConstantOfShape", ["shape"], "zeros"),
        _node("Range", ["start", "limit", "delta"], "r"),
        _node("Equal", ["r", "two"], "is_two"),
        _node("Cast", ["is_two"], "mask", to=FLOAT),
        _node("ArgMax", ["w"], "k", axis=0, keepdims=1),
        _node("OneHot", ["k", "depth", "values"], "hot"),
        _node("Cast", ["hot"], "hotf", to=FLOAT),
        _node("ScatterND", ["zeros", "indices", "updates"], "scattered"),
        _node("Add", ["mask", "hotf"], "m"),
        _node("Mul", ["X", "m"], "xm"),
        _node("Add", ["xm", "scattered"], "Y"),
    ]
    inits = {
        "start": np.array(0, np.int64),
        "limit": np.array(5, np.int64),
        "delta": np.array(1, np.int64),
        "two": np.array(2, np.int64),
        "w": np.array([0.1, 0.9, 0.9, 0.2, 0.3], np.float32),
        "depth": np.array(5, np.int64),
        "values": np.array([0, 3], np.int64),
        "indices": np.array([[0, 4]], np.int64),
        "updates": np.array([7.0], np.float32),
    }
    network = check_against_onnxruntime(_model(nodes, [1, 5], FLOAT, inits, opset=13), (1, 5))
    assert set(_kinds(network)) <= {"ElementwiseAffine", "Flatten", "Reshape", "Dense"}
