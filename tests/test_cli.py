"""The ``verifinn`` command: verdicts, result files, bad input, ``bench``, the time limit.

Models and properties are written into ``tmp_path`` by the tests themselves
(ONNX graphs built with ``onnx.helper``). Counterexamples in result files are
checked with onnxruntime, independently of verifiNN's own loader. The
end-to-end cases run the installed console script in a subprocess; the many
bad-input cases call :func:`verifiNN.cli.main` in-process (same code path, no
interpreter start-up), and one of them also runs as a subprocess.
"""

from __future__ import annotations

import csv
import gzip
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from conftest import random_mlp_params
from verifiNN._version import SOLVER_NAME, __version__
from verifiNN.bench import run_benchmark
from verifiNN.cli import main
from verifiNN.io import load_vnnlib, read_result
from verifiNN.models.network import Network
from verifiNN.results import Verdict
from verifiNN.search.attack import attack
from verifiNN.specs import Box, Case, HalfSpaces, Specification

# y = (|x0|, |x1|) on [-1, 1]^2: hidden relu(x), relu(-x), then sums.
ABS_WEIGHTS = [
    np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]]),
    np.array([[1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 0.0, 1.0]]),
]
ABS_BIASES = [np.zeros(4), np.zeros(2)]
SAT_PROPERTY = "(assert (>= Y_0 (+ Y_1 0.5)))"  # |x0| >= |x1| + 0.5: e.g. x = (1, 0)
UNSAT_PROPERTY = "(assert (>= (+ Y_0 Y_1) 2.5))"  # |x0| + |x1| <= 2 < 2.5


def write_mlp_onnx(path: Path, weights: list[np.ndarray], biases: list[np.ndarray]) -> Path:
    """Write a Gemm/Relu chain with input ``X`` of shape ``[1, n_in]`` as an ONNX file."""
    nodes, inits, previous = [], [], "X"
    for k, (w, b) in enumerate(zip(weights, biases)):
        inits += [
            numpy_helper.from_array(np.asarray(w, np.float32), f"W{k}"),
            numpy_helper.from_array(np.asarray(b, np.float32), f"B{k}"),
        ]
        out = "Y" if k == len(weights) - 1 else f"h{k}"
        nodes.append(helper.make_node("Gemm", [previous, f"W{k}", f"B{k}"], [out], transB=1))
        if out != "Y":
            nodes.append(helper.make_node("Relu", [out], [f"r{k}"]))
            out = f"r{k}"
        previous = out
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, weights[0].shape[1]])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, weights[-1].shape[0]])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 7
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def write_vnnlib(path: Path, lower, upper, n_out: int, output_asserts: str) -> Path:
    """Write a VNN-LIB file: the box ``lower <= X <= upper`` and the given unsafe asserts."""
    lines = [f"(declare-const X_{i} Real)" for i in range(len(lower))]
    lines += [f"(declare-const Y_{j} Real)" for j in range(n_out)]
    for i, (lo, hi) in enumerate(zip(lower, upper)):
        lines += [f"(assert (>= X_{i} {lo!r}))", f"(assert (<= X_{i} {hi!r}))"]
    path.write_text("\n".join([*lines, output_asserts]) + "\n")
    return path


def onnx_forward(model: Path, x: np.ndarray) -> np.ndarray:
    """The model's output on ``x`` by onnxruntime (float32, as the model is stored)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(model), options)
    name = session.get_inputs()[0].name
    shape = session.get_inputs()[0].shape
    return session.run(None, {name: x.astype(np.float32).reshape(shape)})[0].ravel()


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run the installed ``verifinn`` console script."""
    return subprocess.run(
        ["verifinn", *args], capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """The tiny |x| model, its sat and unsat properties, and broken files."""
    root = tmp_path_factory.mktemp("cli")
    box = ([-1.0, -1.0], [1.0, 1.0])
    return {
        "model": write_mlp_onnx(root / "abs.onnx", ABS_WEIGHTS, ABS_BIASES),
        "sat": write_vnnlib(root / "sat.vnnlib", *box, 2, SAT_PROPERTY),
        "unsat": write_vnnlib(root / "unsat.vnnlib", *box, 2, UNSAT_PROPERTY),
        "three_inputs": write_vnnlib(root / "three.vnnlib", [0.0] * 3, [1.0] * 3, 2, SAT_PROPERTY),
        "syntax": _write(
            root / "syntax.vnnlib", "(declare-const X_0 Real)\n(assert (<= X_0 1.0)\n"
        ),
        "corrupt": _write(root / "corrupt.onnx", "this is not an ONNX model\n"),
        "root": root,
    }


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# ----------------------------------------------------------------- verdicts
def test_module_entry_point_exits_at_once_with_the_answer_written(files, tmp_path):
    """``python -m verifiNN.cli verify`` ends without interpreter teardown
    (``QUICK_EXIT_COMMANDS``): stdout, stderr and the result file must all be complete."""
    out = tmp_path / "result.txt"
    proc = subprocess.run(
        [sys.executable, "-m", "verifiNN.cli", "verify", str(files["model"]),
         str(files["unsat"]), "--timeout", "60", "--out", str(out)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "unsat\n" and "unsat by" in proc.stderr
    assert read_result(out)[0] is Verdict.UNSAT


def test_verify_sat_writes_a_real_counterexample(files, tmp_path):
    out = tmp_path / "result.txt"
    proc = run_cli("verify", str(files["model"]), str(files["sat"]), "--timeout", "60",
                   "--out", str(out))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == "sat"
    verdict, x, y = read_result(out)
    assert verdict is Verdict.SAT and x.shape == (2,) and y.shape == (2,)
    spec = load_vnnlib(files["sat"])
    y_ort = onnx_forward(files["model"], x)
    assert spec.is_violated_by(x, y_ort, tol=1e-5)  # float32 onnxruntime vs float64
    np.testing.assert_allclose(y, y_ort, atol=1e-5)
    assert "sat" in proc.stderr  # the human summary


def test_verify_unsat(files, tmp_path, capfd):
    out = tmp_path / "result.txt"
    assert main(["verify", str(files["model"]), str(files["unsat"]), "--out", str(out), "-q"]) == 0
    captured = capfd.readouterr()
    assert captured.out.splitlines() == ["unsat"]
    assert captured.err == ""
    assert read_result(out) == (Verdict.UNSAT, None, None)


def test_no_solver_banner_leaks_while_the_command_guards_stdout():
    """HiGHS announces itself on C-level stdout the first time a solver starts in
    a process. While a command runs, stdout is pointed at stderr (so the verdict
    stays the first stdout line); the banner must not reach either stream."""
    script = (
        "import numpy as np, scipy.sparse as sp\n"
        "from verifiNN.cli.options import stdout_to_stderr\n"
        "from verifiNN.solvers.highs import HighsModel, LinearProgram\n"
        "lp = LinearProgram(np.ones(1), sp.csr_matrix(np.ones((1, 1))), np.zeros(1),"
        " np.ones(1), np.zeros(1), np.ones(1))\n"
        "with stdout_to_stderr():\n"
        "    HighsModel(lp, 1).solve()\n"
        "print('done')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "done\n"
    assert "HiGHS" not in proc.stderr, proc.stderr


def test_bad_input_in_a_subprocess(files):
    proc = run_cli("verify", str(files["root"] / "missing.onnx"), str(files["sat"]))
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("verifinn: error: ")
    assert "missing.onnx" in lines[0]


@pytest.mark.parametrize(
    ("model", "spec", "out", "needle"),
    [
        ("missing", "sat", None, "missing.onnx"),
        ("corrupt", "sat", None, "corrupt.onnx"),
        ("model", "syntax", None, "syntax.vnnlib"),
        ("model", "three_inputs", None, "3 inputs"),
        ("model", "missing_spec", None, "nope.vnnlib"),
        ("model", "sat", "no/such/dir/out.txt", "out.txt"),
        ("model", "sat", ".", "directory"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(files, capfd, model, spec, out, needle):
    paths = dict(files, missing=files["root"] / "missing.onnx")
    paths["missing_spec"] = files["root"] / "nope.vnnlib"
    argv = ["verify", str(paths[model]), str(paths[spec])]
    if out is not None:
        argv += ["--out", str(files["root"] / out) if out != "." else str(files["root"])]
    assert main(argv) == 2
    captured = capfd.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("verifinn: error: ") and needle in lines[0]


def test_usage_errors_exit_2(capfd):
    assert main([]) == 2
    capfd.readouterr()
    assert main(["verify", "a.onnx", "b.vnnlib", "--timeout", "-3"]) == 2
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--timeout" in err[0]


def test_version_and_name_are_bare_lines(capfd):
    # the VNN-LIB solver interface: --version prints the version string alone
    assert main(["--version"]) == 0
    assert capfd.readouterr().out == f"{__version__}\n"
    assert main(["--name"]) == 0
    assert capfd.readouterr().out == f"{SOLVER_NAME}\n"


# ----------------------------------------------------------------- bench
def test_bench_writes_rows_and_a_summary(files, tmp_path, capfd):
    root = files["root"]
    instances = tmp_path / "instances.csv"
    instances.write_text(
        "abs.onnx,sat.vnnlib,60\nabs.onnx,unsat.vnnlib,60\ncorrupt.onnx,sat.vnnlib,60\n"
        "abs.onnx,unsat.vnnlib,60\n"
    )
    (tmp_path / "expected.csv").write_text(
        "onnx,vnnlib,timeout_s,expected\n"
        "abs.onnx,sat.vnnlib,60,sat\nabs.onnx,unsat.vnnlib,60,sat\n"  # the 2nd is a planted lie
    )
    out = tmp_path / "results.csv"
    # an earlier run, killed after its last row lost its line break: appended to, not merged
    out.write_text("onnx,vnnlib,result,seconds\nold.onnx,old.vnnlib,unsat,1.000")
    code = main(["bench", str(instances), "--root", str(root), "--out", str(out),
                 "--limit", "3", "--timeout-scale", "0.5"])  # fmt: skip
    proc = capfd.readouterr()
    assert code == 0, proc.err
    with open(out, newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["onnx", "vnnlib", "result", "seconds"]
    assert [r[:3] for r in rows[1:]] == [
        ["old.onnx", "old.vnnlib", "unsat"],
        ["abs.onnx", "sat.vnnlib", "sat"],
        ["abs.onnx", "unsat.vnnlib", "unsat"],
        ["corrupt.onnx", "sat.vnnlib", "error"],
    ]
    assert all(float(r[3]) >= 0 for r in rows[1:])
    summary = dict(line.split(": ", 1) for line in proc.out.splitlines())
    assert summary["instances"] == "3"
    assert summary["solved"] == "2 (sat 1, unsat 1)"
    assert summary["unknown"] == "0" and summary["timeouts"] == "0"
    assert summary["errors"] == "1"
    assert summary["wrong"] == "1"
    assert "WRONG" in summary and "unsat.vnnlib" in summary["WRONG"]
    assert float(summary["total seconds"]) >= float(summary["median seconds"]) > 0
    assert "corrupt.onnx" in proc.err  # the error is logged, and the run went on


def test_bench_rows_are_on_disk_as_soon_as_known(files, tmp_path):
    instances = tmp_path / "instances.csv"
    instances.write_text(f"onnx,vnnlib,timeout\nabs.onnx,{tmp_path}/unsat.vnnlib.gz,30\n"
                         "abs.onnx,sat.vnnlib,30\n")  # fmt: skip
    with gzip.open(tmp_path / "unsat.vnnlib.gz", "wt") as handle:  # a compressed property
        handle.write(files["unsat"].read_text())
    out = tmp_path / "results.csv"
    last_lines = []
    summary = run_benchmark(
        instances,
        root=files["root"],
        out=out,
        progress=False,
        on_result=lambda r: last_lines.append(out.read_text().splitlines()[-1]),
    )
    assert [line.rsplit(",", 1)[0] for line in last_lines] == [
        f"abs.onnx,{tmp_path}/unsat.vnnlib.gz,unsat",
        "abs.onnx,sat.vnnlib,sat",
    ]
    assert (summary.unsat, summary.sat, summary.errors, summary.has_expected) == (1, 1, 0, False)


def test_a_list_drawn_from_a_folder_is_judged_by_the_folders_answers(files, tmp_path):
    root = tmp_path / "folder"
    root.mkdir()
    for name in ("model", "sat", "unsat"):
        shutil.copy(files[name], root / files[name].name)
    (root / "expected.csv").write_text(
        "onnx,vnnlib,timeout_s,expected\nabs.onnx,unsat.vnnlib,60,sat\n"  # a planted lie
    )
    sample = tmp_path / "lists" / "sample.csv"  # no expected.csv beside it
    sample.parent.mkdir()
    sample.write_text("abs.onnx,unsat.vnnlib,30\nabs.onnx,sat.vnnlib,30\n")
    summary = run_benchmark(sample, root=root, out=tmp_path / "r.csv", progress=False)
    assert summary.has_expected
    assert [r.vnnlib for r in summary.wrong] == ["unsat.vnnlib"]


def test_bench_match_keeps_only_matching_instances(files, tmp_path, capfd):
    instances = tmp_path / "instances.csv"
    instances.write_text("abs.onnx,sat.vnnlib,30\nabs.onnx,unsat.vnnlib,30\n")
    out = tmp_path / "results.csv"
    code = main(["bench", str(instances), "--root", str(files["root"]), "--out", str(out),
                 "--match", "unsat", "-q"])  # fmt: skip
    assert code == 0, capfd.readouterr().err
    rows = list(csv.reader(out.open(newline="")))
    assert [r[1:3] for r in rows[1:]] == [["unsat.vnnlib", "unsat"]]


def test_bench_bad_instance_list(tmp_path, capfd):
    bad = tmp_path / "instances.csv"
    bad.write_text("abs.onnx,sat.vnnlib,soon\nabs.onnx\n")
    assert main(["bench", str(bad), "-q"]) == 2
    err = capfd.readouterr().err.splitlines()
    assert len(err) == 1 and "instances.csv:2" in err[0]
    assert main(["bench", str(tmp_path / "none.csv"), "-q"]) == 2


# ----------------------------------------------------------------- time limit
def test_time_limit_on_a_hard_instance(tmp_path, capfd):
    rng = np.random.default_rng(11)
    weights, biases = random_mlp_params(rng, [16, 256, 256, 256, 256, 256, 256, 2])
    model = write_mlp_onnx(tmp_path / "hard.onnx", weights, biases)
    # 5% above the best margin y0 - y1 an attack finds: neither refuted nor proved in 3 s
    box = Box(-np.ones(16), np.ones(16))
    probe = Specification((Case(box, (HalfSpaces([-1.0, 1.0], -1e6),)),))
    best = 1e6 - attack(Network(weights, biases), probe, seed=1).margin
    threshold = best + 0.05 * abs(best)
    spec = write_vnnlib(
        tmp_path / "hard.vnnlib", [-1.0] * 16, [1.0] * 16, 2,
        f"(assert (>= Y_0 (+ Y_1 {threshold!r})))",
    )  # fmt: skip
    code = main(["verify", str(model), str(spec), "--timeout", "3", "--out", str(tmp_path / "r")])
    captured = capfd.readouterr()
    assert code == 0, captured.err
    assert captured.out.splitlines()[0] == "timeout"
    assert (tmp_path / "r").read_text().splitlines()[0] == "timeout"


# ----------------------------------------------------------------- VNN-COMP data
def _test_instances(root: Path) -> list[tuple[str, str, str]]:
    with open(root / "test" / "expected.csv", newline="") as handle:
        return [(r["onnx"], r["vnnlib"], r["expected"]) for r in csv.DictReader(handle)]


def test_benchmark_test_instances(benchmark_data, capfd, tmp_path):
    for onnx_name, vnnlib_name, expected in _test_instances(benchmark_data):
        folder = benchmark_data / "test"
        out = tmp_path / f"{onnx_name}.{vnnlib_name}.txt"
        code = main(["verify", str(folder / onnx_name), str(folder / vnnlib_name),
                     "--timeout", "60", "--out", str(out), "-q"])  # fmt: skip
        captured = capfd.readouterr()
        assert code == 0, captured.err
        assert captured.out.splitlines()[0] == expected, (onnx_name, vnnlib_name)
        verdict, x, _ = read_result(out)
        assert verdict.value == expected
        if verdict is Verdict.SAT:
            spec = load_vnnlib(folder / vnnlib_name)
            assert spec.is_violated_by(x, onnx_forward(folder / onnx_name, x), tol=1e-5)


@pytest.mark.parametrize("named", ["plain", "gz", "gz-named-plain"])
def test_vnncomp_scripts(files, tmp_path, named):
    # the competition ships model.onnx.gz and names it model.onnx in instances.csv
    scripts = Path(__file__).resolve().parents[1] / "vnncomp"
    model, spec = files["model"], files["sat"]
    if named != "plain":
        for path in (model, spec):
            gz = tmp_path / (path.name + ".gz")
            gz.write_bytes(gzip.compress(path.read_bytes()))
        model, spec = tmp_path / (model.name + ".gz"), tmp_path / (spec.name + ".gz")
        if named == "gz-named-plain":
            model, spec = model.with_suffix(""), spec.with_suffix("")
    prepare = [str(scripts / "prepare_instance.sh"), "v1", "test"]
    done = subprocess.run([*prepare, str(model), str(spec)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert subprocess.run([*prepare, "missing.onnx", str(spec)], capture_output=True).returncode
    out = tmp_path / "result.txt"
    run = [str(scripts / "run_instance.sh"), "v1", "test", str(model), str(spec), str(out), "30"]
    proc = subprocess.run(run, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    verdict, x, _ = read_result(out)
    assert verdict is Verdict.SAT
    assert load_vnnlib(files["sat"]).is_violated_by(x, onnx_forward(files["model"], x))


@pytest.mark.slow
def test_install_tool_installs_a_working_verifinn():
    script = Path(__file__).resolve().parents[1] / "vnncomp" / "install_tool.sh"
    assert subprocess.run([str(script)], capture_output=True).returncode != 0  # no "v1"
    proc = subprocess.run([str(script), "v1"], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr
    assert "installed verifiNN" in proc.stderr


# ----------------------------------------------------------------- robustness
def _robustness_files(tmp_path: Path) -> tuple[Path, Path, Network]:
    rng = np.random.default_rng(41)
    weights, biases = random_mlp_params(rng, [3, 6, 3])
    model = write_mlp_onnx(tmp_path / "mlp.onnx", weights, biases)
    x = tmp_path / "x.npy"
    np.save(x, rng.uniform(-0.5, 0.5, 3))
    network = Network(
        [w.astype(np.float32) for w in weights], [b.astype(np.float32) for b in biases]
    )
    return model, x, network


@pytest.mark.parametrize("norm", ["inf", "2"])
def test_robustness_exact_distance_and_example(tmp_path, capfd, norm):
    model, x, network = _robustness_files(tmp_path)
    example = tmp_path / "adv.npy"
    code = main(["robustness", str(model), "--input", str(x), "--exact", "--norm", norm,
                 "--epsilon", "3", "--save-example", str(example), "-q"])  # fmt: skip
    out = capfd.readouterr().out.splitlines()
    assert code == 0
    word, value = out[0].split()
    assert word == "exact"
    fields = dict(line.split(": ", 1) for line in out[1:])
    x0, adv = np.load(x), np.load(example)
    assert network.classify(adv) != network.classify(x0) == int(fields["label"])
    distance = np.linalg.norm(adv - x0, np.inf if norm == "inf" else 2)
    assert float(value) <= distance <= float(value) + 1e-4
    assert float(fields["lower bound"]) == pytest.approx(float(value))


def test_robustness_bracket_holds_the_exact_distance(tmp_path, capfd):
    model, x, _ = _robustness_files(tmp_path)
    assert (
        main(["robustness", str(model), "--input", str(x), "--epsilon", "3", "--exact", "-q"]) == 0
    )
    exact = float(capfd.readouterr().out.split()[1])
    assert main(["robustness", str(model), "--input", str(x), "--epsilon", "3", "-q"]) == 0
    out = capfd.readouterr().out.splitlines()
    fields = dict(line.split(": ", 1) for line in out[1:])
    assert float(fields["lower bound"]) <= exact + 1e-6
    if fields["upper bound"] != "none":
        assert exact <= float(fields["upper bound"]) + 1e-6


@pytest.mark.parametrize(
    ("make_input", "needle"),
    [
        (lambda p: np.save(p, np.zeros(5)), "5 values"),
        (lambda p: p.write_text("not numpy"), "cannot read"),
        (lambda p: np.save(p, np.array([0.0, np.nan, 0.0])), "NaN"),
    ],
)
def test_robustness_bad_input_is_one_line(tmp_path, capfd, make_input, needle):
    model, _, _ = _robustness_files(tmp_path)
    bad = tmp_path / "bad.npy"
    make_input(bad)
    assert main(["robustness", str(model), "--input", str(bad)]) == 2
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bad.npy" in err[0] and needle in err[0]


def test_bench_with_two_worker_processes_gives_the_same_answers(files, tmp_path, capfd):
    instances = tmp_path / "instances.csv"
    instances.write_text("abs.onnx,sat.vnnlib,60\nabs.onnx,unsat.vnnlib,60\n"
                         "corrupt.onnx,sat.vnnlib,60\n")  # fmt: skip
    answers = {}
    for workers in ("1", "2"):
        out = tmp_path / f"results_{workers}.csv"
        code = main(["bench", str(instances), "--root", str(files["root"]), "--out", str(out),
                     "--workers", workers, "-q"])  # fmt: skip
        assert code == 0, capfd.readouterr().err
        rows = list(csv.reader(out.open(newline="")))[1:]
        answers[workers] = sorted((r[0], r[1], r[2]) for r in rows)
    assert answers["2"] == answers["1"]
    assert [a[2] for a in answers["1"]] == ["sat", "unsat", "error"]


@pytest.mark.slow
def test_timeout_is_honoured_on_a_hard_instance_with_no_child_left(benchmark_data):
    """ACAS Xu 3_3 prop_2 (no tool decides it in seconds): ``--timeout 5`` ends the whole
    command with ``timeout`` and leaves no process behind (how long after the limit is
    measured in benchmarks/time_limits.py)."""
    folder = benchmark_data / "acasxu"
    exe = shutil.which("verifinn")
    if exe is None:
        pytest.skip("verifinn entry point not installed (pip install -e .)")
    process = subprocess.Popen(
        [exe, "verify", str(folder / "ACASXU_run2a_3_3_batch_2000.onnx"),
         str(folder / "prop_2.vnnlib"), "--timeout", "5"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert out.splitlines()[0] == "timeout"
    with pytest.raises(ProcessLookupError):  # nothing is left in the command's process group
        os.killpg(process.pid, 0)
