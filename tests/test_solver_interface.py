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
