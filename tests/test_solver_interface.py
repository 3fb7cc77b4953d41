"""The VNN-LIB solver interface (the standard's chapter 5) through ``verifinn``.

Exact output formats of ``verify`` and ``supports``, the serialised
assignment, errors on stderr with exit 2, and (slow) the independent
``vnnlib-satisfactory`` suite on a few of its categories with 0 ``fail``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from conftest import save_onnx
from verifiNN import solver_interface
from verifiNN.cli import SUPPORTS_FLAGS, main
from verifiNN.io.onnx import supported_ops
from verifiNN.io.onnx.converters import CONVERTERS
from verifiNN.io.onnx.folding import FOLDERS

QUERY = """(vnnlib-version <2.0>)
(declare-network N
    (declare-input X float32 [2,2])
    (declare-hidden H float32 [1,2] "pre")
    (declare-output Y float32 [1,2]))
(assert (>= X[0,0] 0.0))
(assert (<= X[0,0] 1.0))
(assert (>= X[0,1] 0.0))
(assert (<= X[0,1] 1.0))
(assert (>= X[1,0] -1.0))
(assert (<= X[1,0] 0.0))
(assert (>= X[1,1] 0.5))
(assert (<= X[1,1] 0.5))
(assert (>= Y[0,1] {c}))
"""


@pytest.fixture
def model(tmp_path: Path) -> Path:
    # pre = W flat(X), Y = relu(pre); Y[0,1] = relu(x00 - x01 + x10 + 2 x11) <= 2 on the box
    W = np.array([[1.0, 1.0, 1.0, 1.0], [1.0, -1.0, 1.0, 2.0]])
    nodes = [
        helper.make_node("Flatten", ["X"], ["flat"], axis=0),
        helper.make_node("MatMul", ["flat", "Wt"], ["pre"]),
        helper.make_node("Relu", ["pre"], ["Y"]),
    ]
    return save_onnx(tmp_path / "net.onnx", nodes, [("X", [2, 2])], [("Y", [1, 2])], [("Wt", W.T)])


def _query(tmp_path: Path, c: float) -> Path:
    path = tmp_path / f"q{c}.vnnlib"
    path.write_text(QUERY.format(c=c))
    return path


def _verify(capfd, *args: str) -> tuple[int, str, str]:
    code = main(["verify", *args])
    out, err = capfd.readouterr()
    return code, out, err


def test_sat_prints_the_verdict_then_every_variable_in_declaration_order(tmp_path, model, capfd):
    code, out, _ = _verify(capfd, str(_query(tmp_path, 1.5)), "--network", f"N={model}")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "sat" and out.endswith("\n")
    assert lines[1] == "X float32 [2,2]" and lines[6] == "H float32 [1,2]"
    assert lines[9] == "Y float32 [1,2]" and len(lines) == 12
    x = np.array([np.float32(v) for v in lines[2:6]]).reshape(2, 2)
    h = np.array([np.float32(v) for v in lines[7:9]])
    y = np.array([np.float32(v) for v in lines[10:12]])
    assert 0 <= x[0, 0] <= 1 and 0 <= x[0, 1] <= 1 and -1 <= x[1, 0] <= 0 and x[1, 1] == 0.5
    assert y[1] >= 1.5  # the assignment satisfies the query
    pre = x.ravel().astype(np.float64) @ np.array([[1, 1, 1, 1], [1, -1, 1, 2.0]]).T
    assert np.allclose(h, pre, atol=1e-6) and np.allclose(y, np.maximum(h, 0))


def test_unsat_prints_one_line(tmp_path, model, capfd):
    code, out, err = _verify(capfd, str(_query(tmp_path, 2.5)), "--network", f"N={model}")
    assert (code, out) == (0, "unsat\n")
    assert "unsat by" in err  # the summary goes to stderr


def test_no_time_prints_timed_out(tmp_path, model, capfd):
    args = (str(_query(tmp_path, 1.5)), "--network", f"N={model}", "--timeout", "0")
    code, out, _ = _verify(capfd, *args)
    assert (code, out) == (0, "timed-out\n")


def test_serialised_assignment_is_one_tensor_proto_per_variable(tmp_path, model, capfd):
    folder = tmp_path / "assignment"
    query = str(_query(tmp_path, 1.5))
    code, out, _ = _verify(capfd, query, "--network", f"N={model}", "--serialise-assignments",
                           str(folder))  # fmt: skip
    assert (code, out) == (0, "sat\n")
    tensors = {}
    for name in ("X", "H", "Y"):
        proto = onnx.TensorProto()
        proto.ParseFromString((folder / f"{name}.pb").read_bytes())
        assert proto.name == name and proto.data_type == onnx.TensorProto.FLOAT
        tensors[name] = numpy_helper.to_array(proto)
    assert tensors["X"].shape == (2, 2) and tensors["Y"].shape == (1, 2)
    assert tensors["Y"][0, 1] >= 1.5
    assert sorted(p.name for p in folder.iterdir()) == ["H.pb", "X.pb", "Y.pb"]


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        ([], "no --network for N"),
        (["--network", "M=MODEL"], "M is not a network of the query"),
        (["--network", "N=missing.onnx"], "missing.onnx: no such ONNX file"),
        (["--network", "N"], "expected NAME=MODEL.onnx"),
    ],
)
def test_user_errors_are_one_line_on_stderr_and_exit_2(tmp_path, model, capfd, extra, words):
    extra = [a.replace("MODEL", str(model)) for a in extra]
    code, out, err = _verify(capfd, str(_query(tmp_path, 1.5)), *extra)
    assert code == 2 and out == ""
    assert words in err and len(err.strip().splitlines()) == 1


def test_float_query_with_a_float64_model_is_refused(tmp_path, capfd):
    model = save_onnx(
        tmp_path / "d.onnx", [helper.make_node("Relu", ["X"], ["Y"])], [("X", [1])], [("Y", [1])],
        elem=onnx.TensorProto.DOUBLE,
    )  # fmt: skip
    query = tmp_path / "q.vnnlib"
    query.write_text(
        "(vnnlib-version <2.0>)\n(declare-network N (declare-input X float32 [1]) "
        "(declare-output Y float32 [1]))\n(assert (>= X[0] 0.0))\n(assert (<= X[0] 1.0))\n"
    )
    code, out, err = _verify(capfd, str(query), "--network", f"N={model}")
    assert code == 2 and out == "" and "declared float32" in err


# ------------------------------------------------------------------ supports
def _supports(capfd, flag: str) -> list[str]:
    assert main(["supports", f"--{flag}"]) == 0
    out = capfd.readouterr().out
    assert out.endswith("\n")
    return out.splitlines()


def test_every_capability_of_the_standard_is_answered(capfd):
    assert set(SUPPORTS_FLAGS) == set(solver_interface.CAPABILITIES)
    for flag in SUPPORTS_FLAGS:
        assert _supports(capfd, flag), flag


def test_capability_formats(capfd):
    low, high = _supports(capfd, "onnx-opset-versions")
    assert 0 < int(low) <= int(high)
    assert _supports(capfd, "vnnlib-versions") == ["1.0", "2.0"]
    assert _supports(capfd, "serialise-assignments") == ["true"]
    assert _supports(capfd, "optimised-disjunctive-reasoning") in (["true"], ["false"])
    assert "MENET" in _supports(capfd, "multiple-network-theories")
    assert "POLY" in _supports(capfd, "arithmetic-complexity-theories")
    operators = [line.split()[0] for line in _supports(capfd, "onnx-operators")]
    assert operators == list(supported_ops())


def test_float_types_are_claimed_only_with_a_rounding_rule_for_every_op(monkeypatch):
    assert solver_interface.element_types()[0] == "real"
    assert "float32" in solver_interface.element_types()
    monkeypatch.setattr(solver_interface, "error_rule_ops", lambda: frozenset())
    assert solver_interface.element_types() == ["real"]


def test_supports_needs_a_capability(capfd):
    assert main(["supports"]) == 2
    assert "required" in capfd.readouterr().err


# ------------------------------------------------------------------ the independent suite
SATISFACTORY_CATEGORIES = ("hidden", "multi_io", "network_equal", "arithmetic_poly")


@pytest.mark.slow
@pytest.mark.parametrize("category", SATISFACTORY_CATEGORIES)
def test_vnnlib_satisfactory_finds_no_wrong_verdict(tmp_path, category):
    runner = shutil.which("vnnlib-satisfactory")
    solver = shutil.which("verifinn")
    if runner is None or solver is None:
        pytest.skip("vnnlib-satisfactory or the verifinn entry point is not installed")
    subprocess.run(
        [runner, "run", "--solver", solver, "--test", category, "--timeout", "60"],
        cwd=tmp_path, capture_output=True, text=True, timeout=900, check=True,
    )  # fmt: skip
    report = json.loads((tmp_path / ".vnnlib-satisfactory" / "report.json").read_text())
    summary = report["summary"]
    assert summary["failed"] == 0, report["results"]
    assert summary["passed"] == summary["total"] > 0, report["results"]


# ------------------------------------------------------------------ operator and type gaps
def test_supports_lists_every_registered_op_and_marks_the_folded_only_ones(capfd):
    lines = _supports(capfd, "onnx-operators")
    full = {line for line in lines if " " not in line}
    partial = {line.split()[0] for line in lines if line.endswith(" * constant inputs only")}
    assert len(full) + len(partial) == len(lines)  # no other line shape
    assert set(CONVERTERS) <= full  # whatever is converted on data is claimed in full
    assert set(FOLDERS) <= full | partial
    assert partial.isdisjoint(CONVERTERS)
    assert {"Concat", "MaxPool", "Mul", "Slice", "Gather", "Softmax", "Pow"} <= full


def _run(capfd, query: Path, model: Path, *extra: str) -> tuple[int, list[str], str]:
    code, out, err = _verify(capfd, str(query), "--network", f"N={model}", *extra)
    return code, out.splitlines(), err


def _one_query(tmp_path: Path, x: str, y: str, asserts: str, name: str = "q") -> Path:
    path = tmp_path / f"{name}.vnnlib"
    path.write_text(
        f"(vnnlib-version <2.0>)\n(declare-network N (declare-input X {x}) "
        f"(declare-output Y {y}))\n{asserts}\n"
    )
    return path


def _box(entries: dict[str, tuple[float, float]]) -> str:
    return "\n".join(
        f"(assert (>= X[{k}] {lo}))\n(assert (<= X[{k}] {hi}))" for k, (lo, hi) in entries.items()
    )


@pytest.fixture
def shape_model(tmp_path: Path) -> Path:
    # Y = Shape(X): an int64 output that does not depend on X's values
    path = tmp_path / "shape.onnx"
    graph = helper.make_graph(
        [helper.make_node("Shape", ["X"], ["Y"])], "s",
        [helper.make_tensor_value_info("X", onnx.TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("Y", onnx.TensorProto.INT64, [2])],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


@pytest.mark.parametrize(
    ("assertion", "verdict"), [("(>= Y[1] 4)", "unsat"), ("(<= Y[0] 2)", "sat")]
)
def test_int64_outputs_are_exact_and_printed_as_integers(
    tmp_path, capfd, shape_model, assertion, verdict
):
    box = _box({f"{i},{j}": (0.0, 1.0) for i in range(2) for j in range(3)})
    query = _one_query(tmp_path, "float32 [2,3]", "int64 [2]", f"{box}\n(assert {assertion})")
    folder = tmp_path / "assignment"
    code, lines, _ = _run(capfd, query, shape_model)
    assert code == 0 and lines[0] == verdict
    if verdict == "sat":
        assert lines[-3:] == ["Y int64 [2]", "2", "3"]
        assert main(["verify", str(query), "--network", f"N={shape_model}",
                     "--serialise-assignments", str(folder)]) == 0  # fmt: skip
        capfd.readouterr()
        proto = onnx.TensorProto()
        proto.ParseFromString((folder / "Y.pb").read_bytes())
        assert proto.data_type == onnx.TensorProto.INT64
        assert numpy_helper.to_array(proto).tolist() == [2, 3]


def test_integer_variables_must_match_the_model_and_inputs_cannot_be_integers(
    tmp_path, capfd, shape_model
):
    box = _box({f"{i},{j}": (0.0, 1.0) for i in range(2) for j in range(3)})
    query = _one_query(tmp_path, "float32 [2,3]", "int32 [2]", f"{box}\n(assert (>= Y[0] 1))")
    code, _, err = _run(capfd, query, shape_model)
    assert code == 2 and "declared int32, but the model's 'Y' is int64" in err
    query = _one_query(tmp_path, "int64 [2,3]", "int64 [2]", "(assert (>= Y[0] 1))", "q2")
    code, _, err = _run(capfd, query, shape_model)
    assert code == 2 and "input X has element type int64: integer inputs are not supported" in err


def _pool_model(tmp_path: Path, **attrs) -> Path:
    node = helper.make_node("MaxPool", ["X"], ["Y"], **attrs)
    graph = helper.make_graph(
        [node], "p", [helper.make_tensor_value_info("X", onnx.TensorProto.FLOAT, [1, 1, 5, 5])],
        [helper.make_tensor_value_info("Y", onnx.TensorProto.FLOAT, None)],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / f"pool{len(list(tmp_path.glob('pool*')))}.onnx"
    onnx.save(model, path)
    return path


@pytest.mark.parametrize(("c", "verdict"), [(2.5, "unsat"), (1.5, "sat")])
def test_dilated_maxpool_query_agrees_with_brute_force(tmp_path, capfd, c, verdict):
    # Y[0,0,0,0] = max of X at rows/columns {0, 2}: the centre X[1,1] (up to 9) is skipped
    model = _pool_model(tmp_path, kernel_shape=[2, 2], dilations=[2, 2])
    bounds = {f"0,0,{i},{j}": (0.0, 9.0 if (i, j) == (1, 1) else 2.0) for i in range(5)
              for j in range(5)}  # fmt: skip
    query = _one_query(tmp_path, "float32 [1,1,5,5]", "float32 [1,1,3,3]",
                       f"{_box(bounds)}\n(assert (>= Y[0,0,0,0] {c}))")  # fmt: skip
    code, lines, _ = _run(capfd, query, model)
    assert code == 0 and lines[0] == verdict
    brute = max(bounds[f"0,0,{i},{j}"][1] for i in (0, 2) for j in (0, 2))
    assert (verdict == "sat") == (brute >= c)


def test_free_inputs_nothing_asserted_depends_on_are_pinned(tmp_path, capfd):
    # ceil_mode: the bottom-right window holds X[0,0,4,4] only; every other entry is free
    model = _pool_model(tmp_path, kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1)
    bounds = "(assert (>= X[0,0,4,4] 5.0))\n(assert (<= X[0,0,4,4] 6.0))"
    for c, verdict in ((5.5, "sat"), (6.5, "unsat")):
        query = _one_query(tmp_path, "float32 [1,1,5,5]", "float32 [1,1,3,3]",
                           f"{bounds}\n(assert (>= Y[0,0,2,2] {c}))", f"q{c}")  # fmt: skip
        code, lines, _ = _run(capfd, query, model)
        assert code == 0 and lines[0] == verdict
        if verdict == "sat":
            assert lines[1] == "X float32 [1,1,5,5]" and lines[2:26] == ["0.0"] * 24
            assert 5.5 <= float(lines[26]) <= 6.0


def test_free_inputs_the_assertions_depend_on_are_refused_by_name(tmp_path, capfd):
    model = _pool_model(tmp_path, kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1)
    query = _one_query(tmp_path, "float32 [1,1,5,5]", "float32 [1,1,3,3]",
                       "(assert (>= X[0,0,0,0] 5.0))\n(assert (>= Y[0,0,0,0] 5.5))")  # fmt: skip
    code, lines, err = _run(capfd, query, model)
    assert code == 2 and lines == []
    assert "X[0,0,0,0] (no upper bound), X[0,0,0,1] (no lower or upper bound)" in err
    assert "and 21 more left free" in err


def test_free_inputs_behind_an_op_that_loses_nan_are_refused(tmp_path, capfd):
    # sign(NaN) = 0: the forward pass could not tell that Y[0] depends on X[1]
    model = save_onnx(
        tmp_path / "sign.onnx", [helper.make_node("Sign", ["X"], ["s"]),
                                 helper.make_node("ReduceSum", ["s"], ["Y"], keepdims=0)],
        [("X", [2])], [("Y", [])],
    )  # fmt: skip
    query = _one_query(
        tmp_path,
        "float32 [2]",
        "float32 []",
        "(assert (>= X[0] 1.0))\n(assert (<= X[0] 2.0))\n(assert (>= Y 2.0))",
    )
    code, _, err = _run(capfd, query, model)
    assert code == 2 and "X[1] (no lower or upper bound)" in err


@pytest.mark.parametrize(("assertion", "verdict"), [("(>= Y[0] 2.0)", "unsat"),
                                                     ("(>= Y[2] 10.0)", "sat")])  # fmt: skip
def test_concat_with_a_constant(tmp_path, capfd, assertion, verdict):
    concat = helper.make_node("Concat", ["X", "c"], ["Y"], axis=0)
    model = save_onnx(tmp_path / "cat.onnx", [concat], [("X", [2])], [("Y", [4])],
                      [("c", np.array([10.0, 10.0]))])  # fmt: skip
    query = _one_query(
        tmp_path,
        "float32 [2]",
        "float32 [4]",
        f"{_box({'0': (0.0, 1.0), '1': (0.0, 1.0)})}\n(assert {assertion})",
    )
    code, lines, _ = _run(capfd, query, model)
    assert code == 0 and lines[0] == verdict
    if verdict == "sat":
        assert lines[-2:] == ["10.0", "10.0"]


@pytest.mark.parametrize(("assertion", "verdict"), [("(>= Y[1,1] 4.5)", "unsat"),
                                                     ("(>= Y[1,1] 3.5)", "sat")])  # fmt: skip
def test_mul_by_a_constant_that_broadcasting_enlarges(tmp_path, capfd, assertion, verdict):
    # Y = X * [1, 2]: X [2,1] becomes [2,2]; Y[1,1] = 2 X[1,0] <= 4
    model = save_onnx(tmp_path / "mul.onnx", [helper.make_node("Mul", ["X", "c"], ["Y"])],
                      [("X", [2, 1])], [("Y", [2, 2])], [("c", np.array([1.0, 2.0]))])  # fmt: skip
    query = _one_query(
        tmp_path,
        "real [2,1]",
        "real [2,2]",
        f"{_box({'0,0': (1.0, 2.0), '1,0': (1.0, 2.0)})}\n(assert {assertion})",
    )
    code, lines, _ = _run(capfd, query, model)
    assert code == 0 and lines[0] == verdict
