"""The VNN-COMP score of result folders, side by side, with a cactus plot.

Source of the rules: the organisers' scoring scripts of VNN-COMP 2025,
https://github.com/VNN-COMP/vnncomp2025_results (``SCORING/process_results.py``:
``get_score``; ``SCORING/settings.py``: ``PENALTY_INCORRECT = -150``,
``COUNTEREXAMPLE_ATOL = 1e-4``, ``COUNTEREXAMPLE_RTOL = 1e-3``;
``SCORING/counterexamples.py``: the counterexample check). The 2026 scripts
(https://github.com/VNN-COMP/vnncomp2026_results, ``SCORING/``; rules at
https://github.com/VNN-COMP/vnncomp2026/blob/main/rules.md) keep the points,
the penalty and the tolerances, but replay the counterexample in onnxruntime
instead of trusting the file's ``Y``, and allow the 1e-4 on the input box only.
Implemented:

* **+10** (:data:`POINTS_CORRECT`) per correct ``sat`` or ``unsat``; the time
  bonus of earlier years is off in 2025/2026 (``add_time_bonus = False``), so
  there is none here. ``unknown``, ``timeout`` and ``error`` score 0.
* **-150** (:data:`PENALTY_INCORRECT`) per incorrect answer: an ``unsat`` where
  the instance is ``sat``; a ``sat`` whose counterexample is missing or fails
  the check below (VNN-COMP penalises a ``sat`` without a valid witness
  whatever the other tools said).
* The counterexample check (:func:`check_counterexample`): the model (read
  gzip-aware) runs in onnxruntime on the file's ``X`` (cast to the model's
  input type); when the file gives ``Y``, it must match onnxruntime's output to
  a relative L-inf error of 1e-3 (:data:`CE_RTOL`, the 2025 rule). The property
  is then evaluated on onnxruntime's output, as in 2026: *correct* when ``X``
  lies in a case's input box and the output in its unsafe set exactly;
  *correct up to tolerance* when it does so only with 1e-4 (:data:`CE_ATOL`,
  absolute; the 2025 rule) of slack on the box and on every output
  constraint. Both are accepted for the tool that gave them;
  only an exactly correct one proves the instance ``sat`` (the competition's
  ``CORRECT`` vs ``CORRECT_UP_TO_TOLERANCE``).
* What an instance *is* (the competition takes it from the tools' answers and
  their checked counterexamples): ``sat`` when the benchmark's
  ``expected.csv`` says so or any scored run gave an exactly correct
  counterexample; else ``unsat`` when ``expected.csv`` says so; else unknown.
  On an instance without an expected answer an ``unsat`` scores +10 unless
  some run's counterexample proves it ``sat`` (as in the competition, where a
  ``holds`` is correct unless a tool's witness is valid), and a ``sat`` scores
  by its counterexample check. A confirmed counterexample on an instance
  ``expected.csv`` calls ``unsat`` is accepted and listed as a conflict:
  ``expected.csv`` or the check is wrong, and either way a person must look.
* Peer results in the competition's ``results.csv`` format (``benchmark,onnx,
  vnnlib,prepare_time,result,run_time``, header optional; ``holds`` /
  ``violated`` read as ``unsat`` / ``sat``, the competition's other words
  mapped as its ``CSV_SUBSTITUTIONS`` do) come without counterexample files:
  their ``sat`` answers are scored as given (+10 unless the instance is known
  ``unsat``), and the tables say so. Their seconds are ``run_time``.
* The competition's total: per benchmark, each run's score as a percentage of
  the best run's (0 when negative), summed over the benchmarks.

Not implemented: the competition's per-benchmark instance-count checks across
tools, its overhead accounting, and its tracks (regular / extended).
"""

from __future__ import annotations

import csv
import logging
import os
import re
import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from functools import lru_cache
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from verifiNN.errors import ModelLoadError, ResultFileError, VerifiNNError
from verifiNN.io import load_vnnlib, read_result
from verifiNN.io.files import read_bytes, resolve
from verifiNN.results import Verdict
from verifiNN.specs import Box, Specification
from verifiNN.suite import (
    RESULT_COLUMNS,
    RESULTS_FILE,
    Benchmark,
    find_instance_list,
    load_benchmark,
    read_results,
    read_settings,
)

__all__ = [
    "CE_ATOL",
    "CE_RTOL",
    "PENALTY_INCORRECT",
    "POINTS_CORRECT",
    "Answer",
    "Check",
    "CounterexampleCheck",
    "Judged",
    "Run",
    "ScoreReport",
    "Tally",
    "check_counterexample",
    "read_run",
    "score_runs",
]

logger = logging.getLogger(__name__)

POINTS_CORRECT = 10
PENALTY_INCORRECT = -150
CE_ATOL = 1e-4
"""Absolute slack on the input box and each output constraint (VNN-COMP's COUNTEREXAMPLE_ATOL)."""
CE_RTOL = 1e-3
"""Relative L-inf error allowed between the file's ``Y`` and onnxruntime's (COUNTEREXAMPLE_RTOL)."""


# ------------------------------------------------------------------ counterexample check
class Check(str, Enum):
    """Outcome of a counterexample check (the competition's ``CounterexampleResult``)."""

    CORRECT = "correct"
    UP_TO_TOLERANCE = "correct up to tolerance"
    NO_COUNTEREXAMPLE = "no counterexample"
    MALFORMED = "malformed counterexample file"
    WRONG_SHAPE = "wrong shape"
    OUTPUT_MISMATCH = "Y does not match onnxruntime"
    NOT_VIOLATED = "property not violated"
    UNCHECKED = "not checked"

    @property
    def accepted(self) -> bool:
        """Whether the answer stands (not penalised)."""
        return self in (Check.CORRECT, Check.UP_TO_TOLERANCE)


@dataclass(frozen=True)
class CounterexampleCheck:
    """A check's outcome and why."""

    status: Check
    detail: str = ""


def _stamp(path: str | os.PathLike) -> tuple[str, int, int]:
    """A cache key that changes with the file: its path, size and modification time."""
    file = resolve(path)
    try:
        info = file.stat()
    except OSError:
        return str(file), -1, -1
    return str(file), info.st_size, info.st_mtime_ns


@lru_cache(maxsize=4)
def _session(stamp: tuple[str, int, int]) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    model = read_bytes(stamp[0], ModelLoadError, "ONNX file")
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


@lru_cache(maxsize=64)
def _spec(stamp: tuple[str, int, int]) -> Specification:
    return load_vnnlib(stamp[0])


_ORT_TYPES = {"tensor(double)": np.float64, "tensor(float16)": np.float16}


def _replay(session: Any, x: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """``(x as the model saw it, its output)``, both flat float64; ``None`` on a size mismatch."""
    inputs = session.get_inputs()
    if len(inputs) != 1:
        raise ModelLoadError(f"the model has {len(inputs)} inputs")
    shape = [d if isinstance(d, int) and d > 0 else 1 for d in inputs[0].shape]
    if x.size != int(np.prod(shape)):
        return None
    fed = x.astype(_ORT_TYPES.get(inputs[0].type, np.float32)).reshape(shape)
    output = session.run(None, {inputs[0].name: fed})[0]
    return fed.astype(np.float64).ravel(), np.asarray(output, np.float64).ravel()


def _violated_within(spec: Specification, x: np.ndarray, y: np.ndarray, atol: float) -> bool:
    """Whether some case holds ``x`` (box slack ``atol``, absolute) and ``y`` (slack ``atol``)."""
    for case in spec.cases:
        region = case.input_region
        if isinstance(region, Box):
            inside = bool(np.all(x >= region.lower - atol) and np.all(x <= region.upper + atol))
        else:
            inside = region.contains(x, atol)
        if inside and bool(case.unsafe_batch(y[None, :], atol)[0]):
            return True
    return False


def check_counterexample(
    onnx: str | os.PathLike, vnnlib: str | os.PathLike, result_file: str | os.PathLike
) -> CounterexampleCheck:
    """Check a ``sat`` result file's counterexample with onnxruntime, as VNN-COMP does.

    Args:
        onnx: the model (``PATH.gz`` is read when ``PATH`` is absent).
        vnnlib: the property (likewise).
        result_file: the VNN-COMP result file (``sat`` and the assignment).

    Returns:
        The :class:`CounterexampleCheck` (see the module docstring for the rules);
        :attr:`Check.UNCHECKED` when the model or property cannot be run here.
    """
    if not Path(result_file).is_file():
        return CounterexampleCheck(Check.NO_COUNTEREXAMPLE, f"{result_file}: no such file")
    try:
        verdict, x, y_file = read_result(result_file)
    except ResultFileError as exc:
        return CounterexampleCheck(Check.MALFORMED, str(exc))
    if verdict is not Verdict.SAT or x is None:
        return CounterexampleCheck(Check.NO_COUNTEREXAMPLE, f"{result_file}: no assignment to X")
    try:
        spec = _spec(_stamp(vnnlib))
        replayed = _replay(_session(_stamp(onnx)), x)
    except Exception as exc:  # onnxruntime's own errors too: no verdict on the tool
        return CounterexampleCheck(Check.UNCHECKED, f"cannot replay: {exc}")
    if replayed is None or spec.num_inputs != x.size:
        return CounterexampleCheck(Check.WRONG_SHAPE, f"{x.size} input values")
    x_seen, y = replayed
    if y.size != spec.num_outputs:
        return CounterexampleCheck(Check.WRONG_SHAPE, f"the model gives {y.size} outputs")
    if y_file is not None:
        scale = float(np.max(np.abs(y_file))) if y_file.size else 0.0
        error = float(np.max(np.abs(y - y_file))) if y_file.size == y.size else np.inf
        relative = 0.0 if scale < 1e-6 and np.isfinite(error) else error / max(scale, 1e-300)
        if relative > CE_RTOL:
            return CounterexampleCheck(
                Check.OUTPUT_MISMATCH, f"relative L-inf error {relative:.3g} > {CE_RTOL:g}"
            )
    if spec.is_violated_by(x_seen, y, tol=0.0, input_tol=0.0):
        return CounterexampleCheck(Check.CORRECT)
    if _violated_within(spec, x_seen, y, CE_ATOL):
        return CounterexampleCheck(Check.UP_TO_TOLERANCE, f"within {CE_ATOL:g} of the property")
    return CounterexampleCheck(Check.NOT_VIOLATED, "onnxruntime's output is not unsafe")


# ------------------------------------------------------------------ reading runs
@dataclass(frozen=True)
class Answer:
    """One run's answer to one instance.

    Attributes:
        benchmark: the benchmark name as the run wrote it.
        onnx: the model path as the run wrote it.
        vnnlib: the property path as the run wrote it.
        result: ``sat``, ``unsat``, ``unknown``, ``timeout`` or ``error``.
        seconds: the run's time for it.
        counterexample: the result file with the counterexample (verifinn runs).
        message: the run's note (an error's reason).
    """

    benchmark: str
    onnx: str
    vnnlib: str
    result: str
    seconds: float
    counterexample: Path | None = None
    message: str = ""


@dataclass
class Run:
    """The answers of one tool run.

    Attributes:
        name: the run's label in tables and plots.
        source: the folder or file it was read from.
        answers: its answers.
        folders: benchmark name -> benchmark folder, where the run recorded it.
        checked: whether its ``sat`` answers come with counterexample files to check.
    """

    name: str
    source: Path
    answers: list[Answer] = field(default_factory=list)
    folders: dict[str, Path] = field(default_factory=dict)
    checked: bool = True


_WORDS = (
    ("unsat", "unsat"), ("holds", "unsat"), ("sat", "sat"), ("violated", "sat"),
    ("run_instance_timeout", "timeout"), ("prepare_instance_timeout", "timeout"),
    ("timeout", "timeout"), ("error_nonmaximal", "unknown"), ("error", "error"),
)  # fmt: skip
"""Result-word prefixes and what they mean; anything else is ``unknown``."""


def _competition_word(text: str) -> str:
    """A competition result word in verifinn's vocabulary (the 2025 ``CSV_SUBSTITUTIONS``)."""
    word = text.strip().lower()
    return next((to for prefix, to in _WORDS if word.startswith(prefix)), "unknown")


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if np.isfinite(value) else None


def _read_competition_csv(path: Path) -> list[Answer]:
    """Rows ``benchmark,onnx,vnnlib,prepare_time,result,run_time`` (header optional)."""
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError) as exc:
        raise ResultFileError(f"cannot read {path}: {exc}") from exc
    answers = []
    for line, row in enumerate(rows, start=1):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) < 6:
            raise ResultFileError(f"{path}:{line}: expected 6 columns, got {len(row)}")
        seconds = _number(row[5])
        if seconds is None:
            if line == 1:
                continue  # a header
            raise ResultFileError(f"{path}:{line}: run_time {row[5]!r} is not a number")
        answers.append(
            Answer(
                row[0].strip(), row[1].strip(), row[2].strip(), _competition_word(row[4]), seconds
            )
        )
    return answers


def _our_answers(path: Path, folder: Path) -> list[Answer]:
    answers = []
    for row in read_results(path):
        seconds = _number(row["seconds"])
        relative = row["counterexample"]
        answers.append(Answer(
            row["benchmark"], row["onnx"], row["vnnlib"], row["result"].strip().lower(),
            0.0 if seconds is None else seconds,
            folder / relative if relative else None, row["message"],
        ))  # fmt: skip
    return answers


def _is_ours(path: Path) -> bool:
    with open(path, newline="", encoding="utf-8", errors="replace") as handle:
        return tuple(next(csv.reader(handle), ())) == RESULT_COLUMNS


def read_run(path: str | os.PathLike, name: str | None = None) -> Run:
    """Read a run: a verifinn results folder (or its ``results.csv``), or a competition
    ``results.csv`` (a file, or a folder holding one without ``run.json``).

    Args:
        path: the folder or file.
        name: its label (default: the folder's name; for a file, its name without
            extension, or its folder's name when it is called ``results.csv``).

    Raises:
        ResultFileError: nothing readable there.
    """
    path = Path(path)
    file = path / RESULTS_FILE if path.is_dir() else path
    if not file.is_file():
        raise ResultFileError(f"{path}: no {RESULTS_FILE} there")
    name = name or _default_name(path)
    if _is_ours(file):
        settings = read_settings(file.parent) or {}
        folders = {
            b["name"]: Path(b["folder"])
            for b in settings.get("benchmarks", [])
            if isinstance(b, dict) and "name" in b and "folder" in b
        }
        return Run(name, path, _our_answers(file, file.parent), folders, checked=True)
    return Run(name, path, _read_competition_csv(file), checked=False)


def _default_name(path: Path) -> str:
    path = path.resolve()
    if path.is_dir():
        return path.name
    return path.parent.name if path.name == RESULTS_FILE else path.stem


# ------------------------------------------------------------------ matching instances
def _canonical(name: str) -> str:
    """A benchmark name without its year (``acasxu_2023``, ``2024_cora``) and separators."""
    name = re.sub(r"^20\d\d_|_20\d\d$", "", name.strip().lower())
    return re.sub(r"[^a-z0-9]", "", name)


def _parts(path: str) -> tuple[str, ...]:
    clean = path.strip().replace("\\", "/").removesuffix(".gz")
    return tuple(p for p in PurePosixPath(clean).parts if p not in ("/", "."))


class _Index:
    """The known benchmark folders; maps any run's (benchmark, onnx, vnnlib) to one key."""

    def __init__(self, benchmarks: Iterable[Benchmark]) -> None:
        self.benchmarks = {b.name: b for b in benchmarks}
        self.by_canonical = {_canonical(n): n for n in self.benchmarks}
        self._expected: dict[str, dict[tuple[str, str], str]] = {}
        self.paths: dict[str, dict[str, set[tuple[str, ...]]]] = {}
        for b in self.benchmarks.values():
            self.paths[b.name] = {
                "onnx": {_parts(i.onnx) for i in b.instances},
                "vnnlib": {_parts(i.vnnlib) for i in b.instances},
            }

    def benchmark(self, name: str) -> str:
        """The known benchmark ``name`` stands for (itself when none)."""
        if name in self.benchmarks:
            return name
        return self.by_canonical.get(_canonical(name), name)

    def key(self, answer: Answer) -> tuple[str, tuple[str, str]]:
        """``(benchmark, instance key)``; a peer's full paths matched to the instance list."""
        name = self.benchmark(answer.benchmark)
        onnx, vnnlib = _parts(answer.onnx), _parts(answer.vnnlib)
        known = self.paths.get(name)
        if known is not None:
            onnx, vnnlib = self._match(onnx, known["onnx"]), self._match(vnnlib, known["vnnlib"])
        return name, ("/".join(onnx), "/".join(vnnlib))

    def expected(self, name: str, key: tuple[str, str]) -> str:
        """The expected answer of an instance (``''`` when unknown)."""
        if name not in self._expected:
            b = self.benchmarks.get(name)
            self._expected[name] = {
                ("/".join(_parts(o)), "/".join(_parts(v))): word
                for (o, v), word in (b.expected.items() if b is not None else ())
            }
        word = self._expected[name].get(key, "")
        return word if word in ("sat", "unsat") else ""

    @staticmethod
    def _match(parts: tuple[str, ...], known: set[tuple[str, ...]]) -> tuple[str, ...]:
        for start in range(len(parts)):
            if parts[start:] in known:
                return parts[start:]
        return parts


# ------------------------------------------------------------------ judging
@dataclass(frozen=True)
class Judged:
    """One answer with its points.

    Attributes:
        run: the run's name.
        benchmark: the benchmark (a known folder's name where one matched).
        key: the instance key.
        answer: the answer.
        points: +10, -150 or 0.
        check: the counterexample check of a ``sat`` (``None`` when not checked).
        reason: why it was penalised, or how it was scored when that is worth saying.
    """

    run: str
    benchmark: str
    key: tuple[str, str]
    answer: Answer
    points: int
    check: CounterexampleCheck | None = None
    reason: str = ""


@dataclass
class Tally:
    """One run on one benchmark (or on all of them: ``benchmark == 'all'``)."""

    run: str
    benchmark: str
    checked: bool
    judged: list[Judged] = field(default_factory=list)
    percent: float = 0.0

    def _count(self, word: str) -> int:
        return sum(j.points > 0 and j.answer.result == word for j in self.judged)

    @property
    def instances(self) -> int:
        return len(self.judged)

    @property
    def sat(self) -> int:
        """Correct ``sat`` answers."""
        return self._count("sat")

    @property
    def unsat(self) -> int:
        """Correct ``unsat`` answers."""
        return self._count("unsat")

    @property
    def solved(self) -> int:
        return self.sat + self.unsat

    @property
    def wrong(self) -> int:
        """Penalised answers."""
        return sum(j.points < 0 for j in self.judged)

    @property
    def score(self) -> int:
        return sum(j.points for j in self.judged)

    @property
    def total_seconds(self) -> float:
        return float(sum(j.answer.seconds for j in self.judged))

    @property
    def median_seconds(self) -> float:
        seconds = [j.answer.seconds for j in self.judged]
        return float(statistics.median(seconds)) if seconds else 0.0


@dataclass
class ScoreReport:
    """The score of several runs, per benchmark and in total.

    Attributes:
        runs: the runs, in the order given.
        tallies: one per (benchmark, run) that answered something there, by benchmark.
        notes: wrong answers, conflicts, error reasons, how peers were scored.
    """

    runs: list[Run]
    tallies: list[Tally]
    notes: list[str] = field(default_factory=list)

    def total(self, run: str) -> Tally:
        """The run's tally over every benchmark; its ``percent`` is the competition's total."""
        mine = [t for t in self.tallies if t.run == run]
        checked = next((r.checked for r in self.runs if r.name == run), True)
        return Tally(
            run, "all", checked, [j for t in mine for j in t.judged], sum(t.percent for t in mine)
        )

    def judged(self, run: str) -> list[Judged]:
        """Every judged answer of ``run``."""
        return [j for t in self.tallies if t.run == run for j in t.judged]


def _judge(
    result: str,
    expected: str,
    proven: bool,
    check: CounterexampleCheck | None,
) -> tuple[int, str]:
    """``(points, reason)`` for one answer (the rules of the module docstring)."""
    if result not in ("sat", "unsat"):
        return 0, ""
    if result == "unsat":
        if proven:
            return PENALTY_INCORRECT, "unsat, but a run's counterexample proves it sat"
        if expected == "sat":
            return PENALTY_INCORRECT, "unsat, expected sat"
        return POINTS_CORRECT, ""
    if check is None or check.status is Check.UNCHECKED:
        how = "scored as given" if check is None else f"counterexample not checked: {check.detail}"
        if expected == "unsat" and not proven:
            return PENALTY_INCORRECT, f"sat, expected unsat ({how})"
        return POINTS_CORRECT, how
    if not check.status.accepted:
        detail = f" ({check.detail})" if check.detail else ""
        return PENALTY_INCORRECT, f"counterexample rejected: {check.status.value}{detail}"
    if expected == "unsat":
        return POINTS_CORRECT, (
            f"CONFLICT: expected.csv says unsat, the counterexample is {check.status.value}"
        )
    return POINTS_CORRECT, ""


def _known_benchmarks(
    runs: Sequence[Run], extra: Sequence[str | os.PathLike], notes: list[str]
) -> list[Benchmark]:
    """The benchmark folders the runs recorded, and those under ``extra``."""
    candidates: list[Path] = [f for run in runs for f in run.folders.values()]
    for place in map(Path, extra):
        try:
            find_instance_list(place)
            candidates.append(place)
        except VerifiNNError:
            candidates += sorted(p for p in place.iterdir() if p.is_dir()) if place.is_dir() else []
    found: dict[str, Benchmark] = {}
    for folder in candidates:
        if folder.resolve().name in found:
            continue
        try:
            benchmark = load_benchmark(folder)
        except VerifiNNError as exc:
            if any(folder == f for run in runs for f in run.folders.values()):
                notes.append(f"benchmark folder {folder} cannot be read: {exc}")
            continue
        found[benchmark.name] = benchmark
    return list(found.values())


def _check(run: Run, index: _Index, name: str, answer: Answer) -> CounterexampleCheck | None:
    """The counterexample check of a ``sat`` answer (``None`` for a run without files)."""
    if answer.result != "sat" or not run.checked:
        return None
    benchmark = index.benchmarks.get(name)
    if benchmark is None:
        return CounterexampleCheck(Check.UNCHECKED, f"no benchmark folder for {name}")
    if answer.counterexample is None:
        return CounterexampleCheck(Check.NO_COUNTEREXAMPLE, "no counterexample file recorded")
    return check_counterexample(
        benchmark.folder / answer.onnx, benchmark.folder / answer.vnnlib, answer.counterexample
    )


def score_runs(
    runs: Sequence[Run], benchmark_folders: Sequence[str | os.PathLike] = ()
) -> ScoreReport:
    """Score runs side by side (the rules of the module docstring).

    Args:
        runs: the runs (:func:`read_run`); their names must differ.
        benchmark_folders: more places to find benchmark folders (a benchmark
            folder, or a folder of them), for peers and moved runs: their
            ``expected.csv``, instance lists and files.

    Returns:
        The :class:`ScoreReport`.
    """
    notes: list[str] = []
    index = _Index(_known_benchmarks(runs, benchmark_folders, notes))
    placed: list[tuple[Run, dict[tuple[str, tuple[str, str]], Answer]]] = []
    for run in runs:
        answers: dict[tuple[str, tuple[str, str]], Answer] = {}
        for answer in run.answers:
            answers[index.key(answer)] = answer  # a repeated instance: the last row counts
        if len(answers) < len(run.answers):
            notes.append(f"{run.name}: {len(run.answers) - len(answers)} repeated rows ignored")
        placed.append((run, answers))
    checks = {
        (run.name, where): _check(run, index, where[0], answer)
        for run, answers in placed
        for where, answer in answers.items()
    }
    proven = {where for (_, where), c in checks.items() if c and c.status is Check.CORRECT}
    tallies: dict[tuple[str, str], Tally] = {}
    for run, answers in placed:
        for (name, key), answer in answers.items():
            check = checks[(run.name, (name, key))]
            points, reason = _judge(
                answer.result, index.expected(name, key), (name, key) in proven, check
            )
            tally = tallies.setdefault((name, run.name), Tally(run.name, name, run.checked))
            tally.judged.append(Judged(run.name, name, key, answer, points, check, reason))
    ordered = [tallies[k] for k in sorted(tallies, key=lambda k: (k[0], _order(runs, k[1])))]
    _percentages(ordered)
    notes += _notes(runs, ordered, index)
    return ScoreReport(list(runs), ordered, notes)


def _order(runs: Sequence[Run], name: str) -> int:
    return next(i for i, r in enumerate(runs) if r.name == name)


def _percentages(tallies: list[Tally]) -> None:
    """Each tally's score as a percentage of its benchmark's best (0 when not positive)."""
    best: dict[str, int] = defaultdict(int)
    for t in tallies:
        best[t.benchmark] = max(best[t.benchmark], t.score)
    for t in tallies:
        top = best[t.benchmark]
        t.percent = max(0.0, 100.0 * t.score / top) if top > 0 else 0.0


def _notes(runs: Sequence[Run], tallies: list[Tally], index: _Index) -> list[str]:
    """What a reader must know: penalties, conflicts, unchecked answers, error reasons."""
    notes = [
        f"{r.name}: no counterexample files; its sat answers are scored as given"
        for r in runs
        if not r.checked
    ]
    sizes: dict[str, dict[str, int]] = defaultdict(dict)
    for t in tallies:
        sizes[t.benchmark][t.run] = t.instances
    for name, counts in sizes.items():
        if len(set(counts.values())) > 1:
            shown = ", ".join(f"{run} {n}" for run, n in counts.items())
            notes.append(f"{name}: the runs answered different numbers of instances ({shown})")
    for t in tallies:
        if t.benchmark not in index.benchmarks:
            notes.append(f"{t.run}, {t.benchmark}: no benchmark folder found; scored without "
                         "expected answers or counterexample checks")  # fmt: skip
        for j in t.judged:
            where = f"{t.run}, {t.benchmark}: {j.answer.onnx} {j.answer.vnnlib}"
            if j.points < 0:
                notes.append(f"**WRONG** ({PENALTY_INCORRECT}) {where}: {j.reason}")
            elif j.reason.startswith("CONFLICT") or j.reason.startswith("counterexample not"):
                notes.append(f"{where}: {j.reason}")
        reasons: dict[str, int] = defaultdict(int)
        for j in t.judged:
            if j.answer.result == "error":
                reasons[j.answer.message or "no reason recorded"] += 1
        for reason, count in sorted(reasons.items(), key=lambda item: -item[1])[:3]:
            notes.append(f"{t.run}, {t.benchmark}: {count} error{'s' * (count != 1)}: {reason}")
    return notes
