"""``verifinn bench FOLDER ... --out DIR`` and ``verifinn score``: the competition as a command.

Every benchmark folder is built here, in ``tmp_path``, the way the competition
ships them (``instances.csv`` naming ``onnx/x.onnx`` and ``vnnlib/y.vnnlib``,
the files themselves gzipped, an ``expected.csv``), from tiny MLPs whose
answers are known by hand: ``y = (|x0|, |x1|)`` on ``[-1, 1]^2``. The scores are
checked against hand computations; no test looks at the wall clock.
"""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from conftest import random_mlp_params
from test_cli import (
    ABS_BIASES,
    ABS_WEIGHTS,
    SAT_PROPERTY,
    UNSAT_PROPERTY,
    write_mlp_onnx,
    write_vnnlib,
)
from verifiNN.cli import main
from verifiNN.io import read_result, write_result
from verifiNN.scoreboard import to_markdown
from verifiNN.scoring import Check, check_counterexample, read_run, score_runs
from verifiNN.suite import RESULT_COLUMNS, counterexample_name

BOX = ([-1.0, -1.0], [1.0, 1.0])

#: Properties of the |x| model: name -> (unsafe asserts, answer).
PROPERTIES = {
    "sat": (SAT_PROPERTY, "sat"),  # |x0| >= |x1| + 0.5, e.g. x = (1, 0)
    "unsat": (UNSAT_PROPERTY, "unsat"),  # |x0| + |x1| >= 2.5
    "unsat2": (UNSAT_PROPERTY, "unsat"),
    "sat2": (SAT_PROPERTY, "sat"),
    "open": ("(assert (>= Y_0 0.9))", "unknown"),  # sat, but expected.csv does not know
    "open2": ("(assert (>= Y_0 1.5))", "unknown"),  # unsat
    "edge": ("(assert (>= Y_0 1.00005))", "unknown"),  # unsat; x = (1, 0) within 1e-4
    "missing": ("(assert (>= Y_1 0.9))", "unknown"),
    "later": (SAT_PROPERTY, "sat"),
}


def _gzip(path: Path) -> None:
    with gzip.open(path.with_name(path.name + ".gz"), "wb") as handle:
        handle.write(path.read_bytes())
    path.unlink()


def make_benchmark(
    root: Path, name: str, properties: list[str], extra_models: bool = False
) -> Path:
    """A competition-style benchmark folder on the |x| model (plus, with ``extra_models``,
    a random MLP and a model file that does not load)."""
    folder = root / name
    (folder / "onnx").mkdir(parents=True)
    (folder / "vnnlib").mkdir()
    write_mlp_onnx(folder / "onnx" / "abs.onnx", ABS_WEIGHTS, ABS_BIASES)
    rows = [("onnx/abs.onnx", f"vnnlib/{p}.vnnlib", PROPERTIES[p][1]) for p in properties]
    if extra_models:
        weights, biases = random_mlp_params(np.random.default_rng(3), [2, 6, 2])
        write_mlp_onnx(folder / "onnx" / "random.onnx", weights, biases)
        (folder / "onnx" / "broken.onnx").write_text("not an ONNX model\n")
        rows += [("onnx/random.onnx", "vnnlib/sat.vnnlib", "unknown"),
                 ("onnx/broken.onnx", "vnnlib/sat.vnnlib", "unknown")]  # fmt: skip
    for p in {p for p in properties} | ({"sat"} if extra_models else set()):
        write_vnnlib(folder / "vnnlib" / f"{p}.vnnlib", *BOX, 2, PROPERTIES[p][0])
    for file in [*folder.glob("onnx/*"), *folder.glob("vnnlib/*")]:
        _gzip(file)
    (folder / "instances.csv").write_text("".join(f"{o},{v},30\n" for o, v, _ in rows))
    (folder / "expected.csv").write_text(
        "onnx,vnnlib,timeout_s,expected\n" + "".join(f"{o},{v},30,{e}\n" for o, v, e in rows)
    )
    return folder


def rows_of(out: Path) -> list[dict[str, str]]:
    with open(out / "results.csv", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture()
def suite(tmp_path) -> dict[str, Path]:
    """Two benchmark folders: ``tiny`` (sat, unsat, a random MLP, a broken model) and ``duo``."""
    bench = tmp_path / "benchmarks"
    return {
        "tiny": make_benchmark(bench, "tiny", ["sat", "unsat"], extra_models=True),
        "duo": make_benchmark(bench, "duo", ["unsat", "sat"]),
        "out": tmp_path / "run",
    }


# ----------------------------------------------------------------- bench FOLDER ...
def test_a_folder_run_writes_rows_counterexamples_and_a_score(suite, capfd):
    code = main(["bench", str(suite["tiny"]), str(suite["duo"]), "--out", str(suite["out"])])
    proc = capfd.readouterr()
    assert code == 0, proc.err
    rows = rows_of(suite["out"])
    assert list(rows[0]) == list(RESULT_COLUMNS)
    assert [(r["benchmark"], r["onnx"], r["vnnlib"]) for r in rows] == [
        ("tiny", "onnx/abs.onnx", "vnnlib/sat.vnnlib"),
        ("tiny", "onnx/abs.onnx", "vnnlib/unsat.vnnlib"),
        ("tiny", "onnx/random.onnx", "vnnlib/sat.vnnlib"),
        ("tiny", "onnx/broken.onnx", "vnnlib/sat.vnnlib"),
        ("duo", "onnx/abs.onnx", "vnnlib/unsat.vnnlib"),
        ("duo", "onnx/abs.onnx", "vnnlib/sat.vnnlib"),
    ]
    words = [r["result"] for r in rows]
    assert words[:2] == ["sat", "unsat"] and words[4:] == ["unsat", "sat"]
    assert words[3] == "error" and "broken.onnx" in rows[3]["message"]  # reported, not skipped
    assert all(r["timeout"] == "30" for r in rows)
    for row in rows:
        if row["result"] == "sat":  # each sat has its result file, confirmed by onnxruntime
            file = suite["out"] / row["counterexample"]
            assert file.name == counterexample_name(row["onnx"], row["vnnlib"])
            assert read_result(file)[0].value == "sat"
            folder = suite[row["benchmark"]]
            check = check_counterexample(folder / row["onnx"], folder / row["vnnlib"], file)
            assert check.status.accepted, check
        else:
            assert row["counterexample"] == ""
    assert (suite["out"] / "counterexamples" / "tiny" / "abs__sat.txt").is_file()
    progress = [line for line in proc.err.splitlines() if line.startswith("[")]
    assert len(progress) == 6 and progress[0].startswith("[1/6] tiny onnx/abs.onnx")
    assert "(solved 1/1)" in progress[0]
    assert "| tiny | 4 | 4 |" in proc.out  # the summary table: instances, answered
    assert "errors in tiny (1 instance)" in proc.out and "broken.onnx" in proc.out
    assert "# VNN-COMP score" in proc.out
    for name in ("score.md", "cactus.png", "run.json"):
        assert (suite["out"] / name).is_file()
    settings = json.loads((suite["out"] / "run.json").read_text())
    assert [b["name"] for b in settings["benchmarks"]] == ["tiny", "duo"]
    assert (settings["timeout_scale"], settings["method"]) == (1.0, "auto")


def test_wrong_answers_are_shouted(suite, capfd):
    expected = suite["duo"] / "expected.csv"  # plant a lie: unsat.vnnlib "is" sat
    expected.write_text(
        expected.read_text().replace("unsat.vnnlib,30,unsat", "unsat.vnnlib,30,sat")
    )
    assert main(["bench", str(suite["duo"]), "--out", str(suite["out"])]) == 0
    proc = capfd.readouterr()
    assert "ERROR: WRONG answer unsat (expected sat)" in proc.err
    assert "WRONG: duo onnx/abs.onnx vnnlib/unsat.vnnlib: answered unsat, expected sat" in proc.out
    assert "**WRONG** (-150)" in proc.out and "1 WRONG answer(s)" in proc.err


def test_an_interrupted_run_resumes_with_one_row_per_instance(suite, capfd):
    folders = [str(suite["tiny"]), str(suite["duo"])]
    assert main(["bench", *folders, "--out", str(suite["out"]), "--limit", "1", "-q"]) == 0
    assert len(rows_of(suite["out"])) == 2  # the first of each folder
    capfd.readouterr()
    assert main(["bench", *folders, "--out", str(suite["out"])]) == 0
    err = capfd.readouterr().err
    assert "resuming" in err and "2 of 6 selected instances done, 4 left" in err
    keys = [(r["benchmark"], r["onnx"], r["vnnlib"]) for r in rows_of(suite["out"])]
    assert len(keys) == len(set(keys)) == 6
    assert main(["bench", *folders, "--out", str(suite["out"])]) == 0  # nothing left
    assert "6 of 6 selected instances done, 0 left" in capfd.readouterr().err
    assert len(rows_of(suite["out"])) == 6


def test_a_torn_last_line_is_dropped_and_its_instance_answered_again(suite, capfd):
    folder = str(suite["duo"])
    assert main(["bench", folder, "--out", str(suite["out"]), "-q"]) == 0
    results = suite["out"] / "results.csv"
    text = results.read_text()
    results.write_text(text[: text.rindex("\n", 0, len(text) - 1) + 12])  # killed mid-row
    assert not results.read_text().endswith("\n")
    assert main(["bench", folder, "--out", str(suite["out"])]) == 0
    err = capfd.readouterr().err
    assert "torn last line" in err and "1 of 2 selected instances done, 1 left" in err
    with open(results, newline="") as handle:
        rows = list(csv.reader(handle))
    assert all(len(r) == len(RESULT_COLUMNS) for r in rows)
    assert [r[2] for r in rows[1:]] == ["vnnlib/unsat.vnnlib", "vnnlib/sat.vnnlib"]


@pytest.mark.parametrize(
    "change",
    [["--timeout-scale", "0.5"], ["--max-timeout", "5"], ["--method", "attack"], ["other"]],
    ids=["timeout-scale", "max-timeout", "method", "folders"],
)
def test_a_folder_made_with_other_settings_is_refused(suite, capfd, change):
    assert main(["bench", str(suite["duo"]), "--out", str(suite["out"]), "-q"]) == 0
    before = (suite["out"] / "results.csv").read_text()
    capfd.readouterr()
    args = [str(suite["duo"]), "--out", str(suite["out"])]
    args = [str(suite["tiny"]), *args] if change == ["other"] else [*args, *change]
    assert main(["bench", *args, "-q"]) == 2
    err = capfd.readouterr().err
    assert "other settings" in err and err.count("\n") == 1
    assert (suite["out"] / "results.csv").read_text() == before


def test_bad_suite_arguments_are_usage_errors(suite, tmp_path, capfd):
    assert main(["bench", str(suite["duo"]), "-q"]) == 2  # no --out
    assert main(["bench", str(suite["duo"]), str(tmp_path / "nope"), "--out", "x", "-q"]) == 2
    assert main(["bench", str(tmp_path), "--out", str(tmp_path / "o"), "-q"]) == 2  # no list
    stray = tmp_path / "stray"
    stray.mkdir()
    (stray / "results.csv").write_text("a,b\n")
    assert main(["bench", str(suite["duo"]), "--out", str(stray), "-q"]) == 2
    err = capfd.readouterr().err.splitlines()
    assert len(err) == 4 and all(line.startswith("verifinn: error:") for line in err)


# ----------------------------------------------------------------- score
def _our_run(tmp_path: Path, bench: Path) -> Path:
    """A results folder written by hand: every scoring case once (see test_score_by_hand)."""
    tiny = make_benchmark(bench, "tiny", list(PROPERTIES))
    other = make_benchmark(bench, "other", ["unsat"])
    out = tmp_path / "ours"
    (out / "counterexamples").mkdir(parents=True)
    settings = {"benchmarks": [{"name": "tiny", "folder": str(tiny)},
                               {"name": "other", "folder": str(other)}],
                "timeout_scale": 1.0, "max_timeout": None, "method": "auto"}  # fmt: skip
    (out / "run.json").write_text(json.dumps(settings))
    answers = {  # property -> (result, seconds, counterexample (x, y) or None)
        "sat": ("sat", 0.5, ([1.0, 0.0], [1.0, 0.0])),  # exactly correct: +10
        "unsat": ("unsat", 2.0, None),  # +10
        "unsat2": ("sat", 1.0, ([1.0, 1.0], [1.0, 1.0])),  # not unsafe: -150
        "sat2": ("sat", 1.0, ([1.0, 0.0], [5.0, 0.0])),  # Y is not the model's: -150
        "open": ("sat", 3.0, ([0.95, 0.1], [0.95, 0.1])),  # exactly correct: +10
        "open2": ("unsat", 4.0, None),  # +10: nobody shows otherwise
        "edge": ("sat", 5.0, ([1.0, 0.0], [1.0, 0.0])),  # correct up to 1e-4: +10
        "missing": ("sat", 6.0, None),  # no counterexample file: -150
        "later": ("timeout", 30.0, None),  # 0
    }
    lines = [",".join(RESULT_COLUMNS)]
    for prop, (word, seconds, cex) in answers.items():
        relative = ""
        if cex is not None:
            relative = f"counterexamples/{prop}.txt"
            write_result(out / relative, "sat", cex)
        lines.append(f"tiny,onnx/abs.onnx,vnnlib/{prop}.vnnlib,{word},{seconds},30,{relative},")
    lines.append("other,onnx/abs.onnx,vnnlib/unsat.vnnlib,unsat,1.5,30,,")  # +10
    (out / "results.csv").write_text("\n".join(lines) + "\n")
    return out


def _peer_csv(path: Path, header: bool) -> Path:
    """A peer's results in the competition's format, with its own paths and words."""
    words = {"sat": "violated", "unsat": "violated", "unsat2": "holds", "sat2": "unknown",
             "open": "holds", "open2": "unsat", "edge": "run_instance_timeout",
             "missing": "sat", "later": "sat"}  # fmt: skip
    base = "/home/peer/vnncomp2025_benchmarks/benchmarks/tiny_2023"
    lines = ["benchmark,onnx,vnnlib,prepare_time,result,run_time"] if header else []
    lines += [f"tiny_2023,{base}/onnx/abs.onnx,{base}/vnnlib/{p}.vnnlib,0.5,{w},{i + 1}.0"
              for i, (p, w) in enumerate(words.items())]  # fmt: skip
    lines.append(f"other,{base}/../other/onnx/abs.onnx,./vnnlib/unsat.vnnlib,0.5,timeout,30")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def test_counterexample_checks(tmp_path):
    folder = make_benchmark(tmp_path, "tiny", ["sat", "edge"])
    onnx = folder / "onnx" / "abs.onnx"
    sat, edge = folder / "vnnlib" / "sat.vnnlib", folder / "vnnlib" / "edge.vnnlib"

    def check(x, y=None, prop=sat, text=None):
        file = tmp_path / "cex.txt"
        if text is not None:
            file.write_text(text)
        else:
            write_result(file, "sat", (x, onnx_y(x) if y is None else y))
        return check_counterexample(onnx, prop, file).status

    def onnx_y(x):
        return np.abs(np.asarray(x, float))

    assert check([1.0, 0.0]) is Check.CORRECT
    assert check([1.0, 0.0], prop=edge) is Check.UP_TO_TOLERANCE  # y0 = 1 >= 1.00005 - 1e-4
    assert check([1.00005, 0.0]) is Check.UP_TO_TOLERANCE  # outside the box by 5e-5
    assert check([1.001, 0.0]) is Check.NOT_VIOLATED  # outside the box by more than 1e-4
    assert check([0.2, 0.1]) is Check.NOT_VIOLATED  # inside, but |x0| < |x1| + 0.5
    assert check([1.0, 0.0], y=[1.0005, 0.0]) is Check.CORRECT  # Y within 1e-3 relative
    assert check([1.0, 0.0], y=[1.1, 0.0]) is Check.OUTPUT_MISMATCH
    assert check([1.0, 0.0, 0.0]) is Check.WRONG_SHAPE
    assert check(None, text="sat\n((X_0 1.0)\n(Y_0 oops))\n") is Check.MALFORMED
    assert check(None, text="sat\n") is Check.NO_COUNTEREXAMPLE
    assert check_counterexample(onnx, sat, tmp_path / "none.txt").status is Check.NO_COUNTEREXAMPLE


def test_score_by_hand(tmp_path):
    ours = _our_run(tmp_path, tmp_path / "benchmarks")
    report = score_runs([read_run(ours)])
    judged = {j.answer.vnnlib.split("/")[-1].split(".")[0]: j for j in report.judged("ours")
              if j.benchmark == "tiny"}  # fmt: skip
    points = {name: j.points for name, j in judged.items()}
    assert points == {"sat": 10, "unsat": 10, "unsat2": -150, "sat2": -150, "open": 10,
                      "open2": 10, "edge": 10, "missing": -150, "later": 0}  # fmt: skip
    assert judged["unsat2"].check.status is Check.NOT_VIOLATED
    assert judged["sat2"].check.status is Check.OUTPUT_MISMATCH
    assert judged["edge"].check.status is Check.UP_TO_TOLERANCE
    assert judged["missing"].check.status is Check.NO_COUNTEREXAMPLE
    tiny = next(t for t in report.tallies if t.benchmark == "tiny")
    assert (tiny.instances, tiny.solved, tiny.sat, tiny.unsat, tiny.wrong) == (9, 5, 3, 2, 3)
    assert tiny.score == 5 * 10 - 3 * 150 == -400
    assert tiny.total_seconds == pytest.approx(52.5) and tiny.median_seconds == 3.0
    total = report.total("ours")
    assert (total.score, total.solved, total.wrong) == (-390, 6, 3)
    assert total.percent == pytest.approx(100.0)  # other: 100 % of the best; tiny: negative, 0
    markdown = to_markdown(report)
    assert "| ours | 2 | 10 | 6 | 3 | 3 | **3** | -390 | 100.0 |" in markdown
    assert "| tiny | ours | 9 | 5 | 3 | 2 | **3** | -400 | 0.0 |" in markdown
    assert markdown.count("**WRONG** (-150)") == 3


def test_a_peer_is_scored_beside_ours(tmp_path, capfd):
    ours = _our_run(tmp_path, tmp_path / "benchmarks")
    peer = _peer_csv(tmp_path / "peer" / "results.csv", header=False)
    report = score_runs([read_run(ours), read_run(peer)])
    peer_points = {j.answer.vnnlib.split("/")[-1].split(".")[0]: j.points
                   for j in report.judged("peer") if j.benchmark == "tiny"}  # fmt: skip
    assert peer_points == {"sat": 10, "unsat": -150, "unsat2": 10, "sat2": 0,
                           "open": -150,  # holds, but our exactly correct counterexample
                           "open2": 10, "edge": 0, "missing": 10, "later": 10}  # fmt: skip
    peer_total = report.total("peer")
    assert (peer_total.score, peer_total.solved, peer_total.wrong) == (-250, 5, 2)
    assert peer_total.percent == 0.0  # tiny: negative; other: 0 of ours' 10
    assert report.total("ours").score == -390

    table = tmp_path / "table"
    table.mkdir()
    with_header = _peer_csv(tmp_path / "peer2.csv", header=True)
    assert main(["score", str(ours), str(with_header), "--out", str(table),
                 "--label", "verifiNN", "--label", "alpha-beta-CROWN"]) == 0  # fmt: skip
    proc = capfd.readouterr()
    markdown = (table / "score.md").read_text()
    assert proc.out == markdown
    assert "| verifiNN | 2 | 10 | 6 | 3 | 3 | **3** | -390 | 100.0 |" in markdown
    assert "| alpha-beta-CROWN | 2 | 10 | 5 | 3 | 2 | **2** | -250 | 0.0 |" in markdown
    assert "scored as given (no counterexamples)" in markdown
    assert "| tiny | alpha-beta-CROWN † |" in markdown and "† no counterexample files" in markdown
    assert (table / "cactus.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_score_command_writes_into_the_first_folder(tmp_path, capfd):
    ours = _our_run(tmp_path, tmp_path / "benchmarks")
    peer_folder = _peer_csv(tmp_path / "nnenum" / "results.csv", header=True).parent
    assert main(["score", str(ours), str(peer_folder), "-q", "--no-plot"]) == 0
    assert capfd.readouterr().out == ""
    markdown = (ours / "score.md").read_text()
    assert "| nnenum | 2 | 10 |" in markdown and not (ours / "cactus.png").exists()
    assert main(["score", str(ours), "-q"]) == 0
    png = ours / "cactus.png"
    assert png.read_bytes()[:4] == b"\x89PNG" and png.stat().st_size > 10_000
    assert main(["score", str(tmp_path / "peer.csv"), "-q"]) == 2  # no folder to write into
    assert main(["score", str(ours), str(ours), "-q"]) == 2  # two runs named alike
