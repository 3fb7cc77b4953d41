"""Every kind of bad input gets a typed error naming the file, node or line, and the
command line prints exactly one line and exits 2 (issue 8, item 3)."""

from __future__ import annotations

import errno
import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from conftest import REPO_ROOT
from verifiNN.certify import certify
from verifiNN.cli import main
from verifiNN.errors import (
    InvalidInputError,
    ModelLoadError,
    ResultFileError,
    SpecError,
    UnsupportedModelError,
)
from verifiNN.io import load_onnx, load_vnnlib
from verifiNN.specs import robustness_spec

DIGITS = REPO_ROOT / "examples" / "digits"
MODEL = str(DIGITS / "digits_mlp.onnx")
DATA = str(DIGITS / "digits_test.npz")


def _vnnlib(n_in: int, n_out: int, lower: float = 0.0, upper: float = 0.01) -> str:
    lines = [f"(declare-const X_{i} Real)" for i in range(n_in)]
    lines += [f"(declare-const Y_{i} Real)" for i in range(n_out)]
    lines += [f"(assert (>= X_{i} {lower}))" for i in range(n_in)]
    lines += [f"(assert (<= X_{i} {upper}))" for i in range(n_in)]
    return "\n".join([*lines, "(assert (>= Y_0 Y_1))", ""])


def _onnx(node, inputs, output, inits=()) -> onnx.ModelProto:
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, inputs)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, output)], list(inits),
    )  # fmt: skip
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.fixture(scope="module")
def bad(tmp_path_factory):
    """Every bad file, by name."""
    d = tmp_path_factory.mktemp("bad")
    (d / "corrupt.onnx").write_bytes(bytes(range(256)) * 8)
    (d / "empty.onnx").write_bytes(b"")
    with open(d / "huge.onnx", "wb") as handle:  # sparse: no disk used
        handle.truncate(3 * 2**30)
    onnx.save(_onnx(helper.make_node("Hardmax", ["x"], ["y"], name="the_hardmax"), [1, 4], [1, 4]),
              d / "unsupported_op.onnx")  # fmt: skip
    node = helper.make_node("AveragePool", ["x"], ["y"], name="the_pool", kernel_shape=[2, 2],
                            ceil_mode=1, strides=[3, 3])  # fmt: skip
    onnx.save(_onnx(node, [1, 1, 4, 4], [1, 1, 2, 2]), d / "unsupported_attribute.onnx")
    node = helper.make_node("MaxPool", ["x"], ["y"], name="padded_pool", kernel_shape=[2, 2],
                            pads=[2, 2, 2, 2])  # fmt: skip
    onnx.save(_onnx(node, [1, 1, 4, 4], [1, 1, 5, 5]), d / "pool_padding.onnx")
    onnx.save(_onnx(helper.make_node("Relu", ["x"], ["y"], name="r"), [1, "M"], [1, "M"]),
              d / "dynamic.onnx")  # fmt: skip
    model = onnx.load(MODEL)
    weight = numpy_helper.to_array(model.graph.initializer[0]).copy()
    weight.flat[3] = np.nan
    model.graph.initializer[0].CopyFrom(
        numpy_helper.from_array(weight, model.graph.initializer[0].name)
    )
    onnx.save(model, d / "nan_weight.onnx")
    (d / "ok.vnnlib").write_text(_vnnlib(64, 10))
    (d / "syntax.vnnlib").write_text("(declare-const X_0 Real)\n(assert (>= X_0 0.5)\n")
    (d / "empty_box.vnnlib").write_text(_vnnlib(64, 10, lower=0.5, upper=0.4))
    (d / "shape.vnnlib").write_text(_vnnlib(5, 10))
    np.save(d / "x.npy", np.full(64, 0.5))
    np.save(d / "nan.npy", np.where(np.arange(64) == 9, np.inf, 0.5))
    np.save(d / "x63.npy", np.zeros(63))
    x, y = np.load(DATA)["x"][:3].copy(), np.load(DATA)["y"][:3]
    np.savez(d / "labels.npz", x=x, y=np.array([0, 12, 1]))
    x[1, 5] = np.nan
    np.savez(d / "nan_data.npz", x=x, y=y)
    (d / "a_file").write_text("not a folder")
    return d


CASES = {
    # name: (arguments, text the one-line message must contain)
    "corrupt ONNX": ("verify {d}/corrupt.onnx {d}/ok.vnnlib", "corrupt.onnx: not a valid ONNX"),
    "empty ONNX": ("verify {d}/empty.onnx {d}/ok.vnnlib", "empty.onnx: the file is empty"),
    "huge ONNX": ("verify {d}/huge.onnx {d}/ok.vnnlib", "huge.onnx: 3.0 GiB is over"),
    "unsupported op": (
        "verify {d}/unsupported_op.onnx {d}/ok.vnnlib",
        "Hardmax (node 'the_hardmax')",
    ),
    "unsupported attribute": (
        "verify {d}/unsupported_attribute.onnx {d}/ok.vnnlib",
        "node 'the_pool' (AveragePool): attribute ceil_mode",
    ),
    "pooling padding": (
        "verify {d}/pool_padding.onnx {d}/ok.vnnlib",
        "'padded_pool' (MaxPool): MaxPool2d padding",
    ),
    "dynamic shape": ("verify {d}/dynamic.onnx {d}/ok.vnnlib", "dynamic dimension 'M' at axis 1"),
    "NaN weight": ("verify {d}/nan_weight.onnx {d}/ok.vnnlib", "parameter 'weight' has NaN or inf"),
    "vnnlib syntax": ("verify {m} {d}/syntax.vnnlib", "syntax.vnnlib:2:1: unbalanced parentheses"),
    "empty input box": ("verify {m} {d}/empty_box.vnnlib", "empty input box: X_0 in [0.5, 0.4]"),
    "shape mismatch (property)": ("verify {m} {d}/shape.vnnlib", "property has 5 inputs"),
    "shape mismatch (input)": ("robustness {m} --input {d}/x63.npy", "x63.npy: 63 values"),
    "NaN input": ("robustness {m} --input {d}/nan.npy", "nan.npy: the input contains NaN or inf"),
    "NaN data": ("certify {m} --data {d}/nan_data.npz --out {d}/o1", "input 1 contains NaN"),
    "label out of range": (
        "certify {m} --data {d}/labels.npz --out {d}/o2",
        "label 12 of sample 1",
    ),
    "negative epsilon": ("robustness {m} --input {d}/x.npy --epsilon -1", "--epsilon"),
    "NaN epsilon": ("robustness {m} --input {d}/x.npy --epsilon nan", "--epsilon"),
    "negative epsilons": ("certify {m} --data {d}/labels.npz --eps 0.1,-0.2", "--eps"),
    "missing model": ("verify {d}/missing.onnx {d}/ok.vnnlib", "missing.onnx: no such ONNX file"),
    "folder as model": ("verify {d} {d}/ok.vnnlib", "is a folder"),
    "missing property": ("verify {m} {d}/missing.vnnlib", "missing.vnnlib"),
    "missing data": ("certify {m} --data {d}/missing.npz --out {d}/o3", "missing.npz"),
    "unwritable result": ("verify {m} {d}/ok.vnnlib --out {d}/a_file/r.txt", "no directory"),
    "unwritable output folder": ("certify {m} --data {data} --out {d}/a_file/out", "not a folder"),
    "disk full (result file)": ("verify {m} {d}/ok.vnnlib --out /dev/full", "No space left"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_cli_prints_one_line_and_exits_2(case, bad, capfd):
    arguments, message = CASES[case]
    code = main(arguments.format(d=bad, m=MODEL, data=DATA).split())
    captured = capfd.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 2, captured.err
    assert len(lines) == 1, captured.err
    assert "error" in lines[0] and message in lines[0], lines[0]
    assert captured.out == "", "a verdict printed for bad input"


@pytest.mark.parametrize(
    "name, error",
    [
        ("corrupt.onnx", ModelLoadError),
        ("empty.onnx", ModelLoadError),
        ("huge.onnx", ModelLoadError),
        ("unsupported_op.onnx", UnsupportedModelError),
        ("unsupported_attribute.onnx", UnsupportedModelError),
        ("dynamic.onnx", ModelLoadError),
        ("nan_weight.onnx", ModelLoadError),
    ],
)
def test_bad_models_raise_typed_errors_naming_the_file(bad, name, error):
    with pytest.raises(error, match=name.replace(".", r"\.")):
        load_onnx(bad / name)


def test_bad_properties_and_arguments_raise_typed_errors(bad):
    network = load_onnx(MODEL)
    for name in ("syntax.vnnlib", "empty_box.vnnlib"):
        with pytest.raises(SpecError, match=name.replace(".", r"\.")):
            load_vnnlib(bad / name, network)
    for eps in (-0.1, float("nan"), float("inf")):
        with pytest.raises(InvalidInputError, match="epsilon"):
            robustness_spec(network, np.zeros(64), eps)


def test_disk_full_on_the_results_file_keeps_what_was_written(bad, tmp_path, monkeypatch):
    """``ENOSPC`` while appending a sample: a typed error, and the file still holds every
    earlier sample intact (a re-run resumes from them)."""
    network = load_onnx(MODEL)
    data = np.load(DATA)
    x, y = data["x"][:4], data["y"][:4]
    written = []
    real_fsync = __import__("os").fsync

    def fsync_then_fill(fd):
        written.append(fd)
        if len(written) > 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr("verifiNN.certify.store.os.fsync", fsync_then_fill)
    with pytest.raises(ResultFileError, match="No space left on device"):
        certify(network, x, y, [0.01], executor="inprocess", out=tmp_path)
    monkeypatch.undo()
    lines = (tmp_path / "results.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]  # every line complete
    assert "run" in records[0] and len(records) >= 3
    resumed = certify(network, x, y, [0.01], executor="inprocess", out=tmp_path)
    assert len(resumed.rows) == 4
