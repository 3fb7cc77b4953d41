"""Data-set certification: executors agree, runs resume, bad data is refused up front."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import REPO_ROOT
from verifiNN.certify import certify, load_dataset, summarise
from verifiNN.cli import main
from verifiNN.errors import InvalidInputError, ResultFileError
from verifiNN.executors import InProcessExecutor, ProcessExecutor, make_executor
from verifiNN.io import load_onnx

DIGITS = REPO_ROOT / "examples" / "digits"
EPS = [0.02, 0.05]


@pytest.fixture(scope="module")
def digits():
    network = load_onnx(DIGITS / "digits_mlp.onnx")
    data = load_dataset(DIGITS / "digits_test.npz", network)
    return network, data.inputs[:10], data.labels[:10]


def _comparable(rows: list[dict]) -> list[tuple]:
    """The table without wall-clock columns (``seconds``; ``method``, which engine
    of the portfolio decided first, may depend on timing)."""
    return [tuple(v for k, v in row.items() if k not in ("seconds", "method")) for row in rows]


def _check_table(network, inputs, labels, rows):
    """Every row is consistent with a plain forward pass of its sample."""
    for row in rows:
        predicted = int(network.classify(inputs[row["sample"]]))
        assert row["predicted"] == predicted
        assert row["correct"] == (predicted == labels[row["sample"]])
        assert row["verdict"] in ("robust", "not_robust", "misclassified", "timeout", "unknown")
        assert (row["verdict"] == "misclassified") == (not row["correct"])


@pytest.mark.slow
def test_executors_give_identical_tables(digits):
    network, inputs, labels = digits
    common = dict(epsilons=EPS, timeout_per_sample=60, domain=(0.0, 1.0))
    tables = {}
    for name, executor in (
        ("inprocess", InProcessExecutor()),
        ("processes", ProcessExecutor(2)),
        ("ray", "ray"),
    ):
        if name == "ray":
            pytest.importorskip("ray", reason="Ray is not installed (pip install 'verifiNN[ray]')")
        result = certify(network, inputs, labels, executor=executor, workers=2, **common)
        tables[name] = result.rows
    _check_table(network, inputs, labels, tables["inprocess"])
    assert len(tables["inprocess"]) == len(inputs) * len(EPS)
    assert _comparable(tables["processes"]) == _comparable(tables["inprocess"])
    assert _comparable(tables["ray"]) == _comparable(tables["inprocess"])
    verdicts = {row["verdict"] for row in tables["inprocess"]}
    assert "robust" in verdicts and "not_robust" in verdicts, "the data should exercise both"


def test_a_refuted_epsilon_refutes_every_larger_one(digits):
    network, inputs, labels = digits
    result = certify(network, inputs, labels, [0.02, 0.05, 0.1], executor="inprocess",
                     timeout_per_sample=60, domain=(0.0, 1.0))  # fmt: skip
    for sample in range(len(inputs)):
        verdicts = [r["verdict"] for r in result.rows if r["sample"] == sample]
        if "not_robust" in verdicts:
            first = verdicts.index("not_robust")
            assert all(v == "not_robust" for v in verdicts[first:])


def test_interrupted_run_resumes_to_the_same_table(digits, tmp_path):
    network, inputs, labels = digits
    common = dict(epsilons=EPS, timeout_per_sample=60, domain=(0.0, 1.0), executor="inprocess")
    full = certify(network, inputs, labels, **common)
    seen = []

    def interrupt_after_four(rows):
        seen.append(rows)
        if len(seen) == 4:
            raise KeyboardInterrupt

    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        certify(network, inputs, labels, out=out, on_sample=interrupt_after_four, **common)
    lines = (out / "results.jsonl").read_text().splitlines()
    assert len(lines) == 1 + 4  # the run header and the four finished samples
    with open(out / "results.jsonl", "a") as handle:
        handle.write('{"sample": 9, "rows": [{"sam')  # a torn line: the process died mid-write
    resumed_samples = []
    resumed = certify(network, inputs, labels, out=out, on_sample=resumed_samples.append, **common)
    assert len(resumed_samples) == len(inputs) - 4, "finished samples were not skipped"
    assert _comparable(resumed.rows) == _comparable(full.rows)
    assert _summary_without_seconds(resumed.summary) == _summary_without_seconds(full.summary)
    for kind in ("csv", "summary", "plot", "report"):
        assert resumed.files[kind].stat().st_size > 0
    assert "certified_accuracy.png" in resumed.files["report"].read_text()


def _summary_without_seconds(summary):
    return {**summary, "epsilons": [{k: v for k, v in e.items() if k != "seconds"}
                                    for e in summary["epsilons"]]}  # fmt: skip


def test_another_run_in_the_same_folder_is_refused(digits, tmp_path):
    network, inputs, labels = digits
    certify(network, inputs[:2], labels[:2], [0.01], executor="inprocess", out=tmp_path)
    with pytest.raises(ResultFileError, match=r"another run.*epsilons"):
        certify(network, inputs[:2], labels[:2], [0.02], executor="inprocess", out=tmp_path)


@pytest.mark.parametrize(
    "inputs, labels, message",
    [
        (np.zeros((3, 63)), np.zeros(3), "63 values"),
        (np.zeros((3, 64)), np.zeros(4), "expected 3 labels"),
        (np.zeros((3, 64)), np.array([0, 10, 1]), "label 10 of sample 1"),
        (np.zeros((3, 64)), np.array([0, -1, 1]), "label -1 of sample 1"),
        (np.zeros((3, 64)), np.array([0, 1.5, 1]), "label 1 is not an integer"),
        (np.where(np.arange(192).reshape(3, 64) == 70, np.nan, 0.0), np.zeros(3), "input 1"),
        (np.zeros((0, 64)), np.zeros(0), "no samples"),
    ],
)
def test_bad_data_is_refused_before_any_work(digits, tmp_path, inputs, labels, message):
    network = digits[0]
    calls = []
    with pytest.raises(InvalidInputError, match=message):
        certify(network, inputs, labels, [0.01], executor="inprocess", on_sample=calls.append,
                out=tmp_path / "out")  # fmt: skip
    assert calls == [] and not (tmp_path / "out").exists()


def test_bad_files_and_options_name_the_problem(digits, tmp_path, capfd):
    network, inputs, labels = digits
    np.savez(tmp_path / "keys.npz", a=inputs, b=labels)
    with pytest.raises(InvalidInputError, match=r"keys\.npz.*'x'"):
        load_dataset(tmp_path / "keys.npz", network)
    (tmp_path / "junk.npz").write_text("not a zip")
    code = main(["certify", str(DIGITS / "digits_mlp.onnx"), "--data", str(tmp_path / "junk.npz"),
                 "--out", str(tmp_path / "o")])  # fmt: skip
    err = capfd.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "junk.npz" in err[0]
    for bad in (dict(epsilons=[]), dict(epsilons=[-0.1]), dict(epsilons=[0.1], method="nope")):
        with pytest.raises(InvalidInputError):
            certify(network, inputs, labels, **{"executor": "inprocess", **bad})
    with pytest.raises(InvalidInputError, match="backend"):
        make_executor("slurm")
    with pytest.raises(InvalidInputError, match="workers"):
        make_executor("local", 0)


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.tuples(st.booleans(), st.lists(st.sampled_from(["robust", "not_robust", "timeout"]),
                                          min_size=3, max_size=3)),
        min_size=1, max_size=20,
    )
)  # fmt: skip
def test_summary_brackets_robust_accuracy(samples):
    rows = []
    for i, (correct, verdicts) in enumerate(samples):
        for eps, verdict in zip((0.1, 0.2, 0.3), verdicts, strict=True):
            rows.append({"sample": i, "epsilon": eps, "correct": correct, "seconds": 0.0,
                         "verdict": verdict if correct else "misclassified"})  # fmt: skip
    summary = summarise(rows)
    clean = sum(c for c, _ in samples) / len(samples)
    assert summary["clean_accuracy"] == pytest.approx(clean)
    for e in summary["epsilons"]:
        assert 0 <= e["certified_accuracy"] <= e["attack_accuracy"] <= clean + 1e-12
        robust = sum(c and v[[0.1, 0.2, 0.3].index(e["epsilon"])] == "robust" for c, v in samples)
        assert e["certified_accuracy"] == pytest.approx(robust / len(samples))


@pytest.mark.slow
def test_cli_certify_survives_ctrl_c_and_resumes(tmp_path):
    """A real process: SIGINT midway leaves a consistent file; the same command finishes it."""
    out = tmp_path / "run"
    command = [sys.executable, "-m", "verifiNN.cli", "certify", str(DIGITS / "digits_mlp.onnx"),
               "--data", str(DIGITS / "digits_test.npz"), "--eps", "0.05,0.1", "--limit", "80",
               "--domain", "0", "1", "--timeout", "60", "--workers", "1",
               "--out", str(out)]  # fmt: skip
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # a shell without job control starts background jobs with SIGINT ignored
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    results = out / "results.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if results.exists() and len(results.read_text().splitlines()) >= 3:
            break
        time.sleep(0.05)
    if process.poll() is not None:
        pytest.skip("the run finished before it could be interrupted")
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    if process.returncode == 0:
        pytest.skip("the run finished before the signal arrived")
    assert process.returncode == 130, err
    assert "resume" in err and "Traceback" not in err
    records = [json.loads(line) for line in results.read_text().splitlines()]
    assert "run" in records[0] and all(len(r["rows"]) == 2 for r in records[1:])
    done_before = len(records) - 1
    finished = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr
    table = [line.split(",") for line in (out / "results.csv").read_text().splitlines()[1:]]
    assert len(table) == 80 * 2 and len({row[0] for row in table}) == 80
    assert done_before < 80
    assert finished.stdout.startswith("samples: 80")
    assert os.path.getsize(out / "certified_accuracy.png") > 1000


@pytest.mark.slow
def test_a_script_without_the_main_guard_fails_at_once_with_one_message(tmp_path):
    """Spawned workers re-import the script; one that starts the local executor at
    import used to hang with pages of tracebacks. Now: one line, a clean exit."""
    script = tmp_path / "unguarded.py"
    script.write_text(
        "from verifiNN.certify import certify, load_dataset\n"
        "from verifiNN.io import load_onnx\n"
        f"network = load_onnx({str(DIGITS / 'digits_mlp.onnx')!r})\n"
        f"data = load_dataset({str(DIGITS / 'digits_test.npz')!r}, network)\n"
        "certify(network, data.inputs[:4], data.labels[:4], [0.01], executor='local',"
        " workers=2)\n"
    )
    finished = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120
    )
    assert finished.returncode != 0
    assert "__name__" in finished.stderr and "inprocess" in finished.stderr
    assert finished.stderr.count("Traceback") <= 1  # the parent's own, nothing from workers
