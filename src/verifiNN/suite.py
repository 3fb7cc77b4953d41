"""Benchmark folders run as the competition runs them, into a results folder that resumes.

``verifinn bench FOLDER [FOLDER ...] --out DIR`` (:func:`run_suite`) answers
every instance of each VNN-COMP benchmark folder (its ``*instances.csv``; the
folder's name is the benchmark's name) and keeps in ``DIR``:

* ``results.csv``: one row per instance (:data:`RESULT_COLUMNS`:
  ``benchmark,onnx,vnnlib,result,seconds,timeout,counterexample,message``),
  appended and flushed as each instance finishes;
* ``counterexamples/<benchmark>/<model>__<property>.txt``: for each ``sat``,
  the VNN-COMP result file with its counterexample, written before its row
  (the row's ``counterexample`` column holds its path relative to ``DIR``);
* ``run.json`` (:data:`SETTINGS_FILE`): the run's settings.

Running the same command again resumes: instances already in ``results.csv``
are skipped (one line on stderr says how many are done and how many are left),
and a last line cut off by a kill is dropped and its instance answered again.
A ``DIR`` made with other settings (benchmark folders, time-limit scale or cap,
method) is refused: its rows would not be one run. ``--limit``, ``--match``,
the executor and the device may change between resumptions.

Answers that contradict a folder's ``expected.csv`` (``sat`` where ``unsat`` is
expected, or the reverse) are logged as errors as they come and listed in the
summary. A model that cannot be loaded (an operator not supported yet, say)
makes each of its instances ``error`` with the reason, in the rows and in the
summary; the run goes on. The score is :mod:`verifiNN.scoring`'s.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import re
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any

from tqdm import tqdm

from verifiNN._version import __version__
from verifiNN.bench import (
    EXPECTED_FILE,
    Instance,
    InstanceResult,
    InstanceRunner,
    check_run_options,
    instance_key,
    read_expected,
    read_instances,
)
from verifiNN.errors import InvalidInputError, ResultFileError
from verifiNN.executors import Executor, make_executor
from verifiNN.io import write_result

try:  # POSIX: one run at a time per results folder
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "COUNTEREXAMPLE_DIR",
    "RESULTS_FILE",
    "RESULT_COLUMNS",
    "SETTINGS_FILE",
    "Benchmark",
    "SuiteSummary",
    "counterexample_name",
    "find_instance_list",
    "load_benchmark",
    "read_results",
    "read_settings",
    "run_suite",
]

logger = logging.getLogger(__name__)

RESULTS_FILE = "results.csv"
SETTINGS_FILE = "run.json"
COUNTEREXAMPLE_DIR = "counterexamples"
RESULT_COLUMNS = (
    "benchmark", "onnx", "vnnlib", "result", "seconds", "timeout", "counterexample", "message",
)  # fmt: skip
"""Header of ``DIR/results.csv``."""

_COMPARED = ("benchmarks", "timeout_scale", "max_timeout", "method")
"""The settings a resumed run must share with the run that made the folder."""

_MESSAGE_CHARS = 500


# ------------------------------------------------------------------ benchmark folders
@dataclass(frozen=True)
class Benchmark:
    """One benchmark folder.

    Attributes:
        name: the folder's name.
        folder: the folder.
        instance_list: its ``*instances.csv``.
        instances: the rows of the instance list.
        expected: ``(onnx, vnnlib) -> expected word`` from ``expected.csv`` (empty
            when the folder has none).
    """

    name: str
    folder: Path
    instance_list: Path
    instances: tuple[Instance, ...]
    expected: Mapping[tuple[str, str], str] = field(default_factory=dict)


def find_instance_list(folder: str | os.PathLike) -> Path:
    """The instance list of a benchmark folder: ``instances.csv``, else its one ``*instances.csv``.

    Raises:
        InvalidInputError: not a folder, or no (or several) candidate lists.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InvalidInputError(f"{folder}: not a benchmark folder")
    plain = folder / "instances.csv"
    if plain.is_file():
        return plain
    found = sorted(p for p in folder.glob("*instances.csv") if p.is_file())
    if len(found) != 1:
        what = "no *instances.csv" if not found else f"several: {', '.join(p.name for p in found)}"
        raise InvalidInputError(f"{folder}: cannot pick the instance list ({what})")
    return found[0]


def load_benchmark(folder: str | os.PathLike) -> Benchmark:
    """Read a benchmark folder's instance list and ``expected.csv``.

    Raises:
        InvalidInputError: no instance list, or a malformed one or ``expected.csv``.
    """
    folder = Path(folder).resolve()
    listing = find_instance_list(folder)
    expected_path = folder / EXPECTED_FILE
    expected = read_expected(expected_path) if expected_path.is_file() else {}
    return Benchmark(folder.name, folder, listing, tuple(read_instances(listing)), expected)


def counterexample_name(onnx: str, vnnlib: str) -> str:
    """The counterexample file's name for an instance: ``<model>__<property>.txt``.

    Each path loses its first folder (``onnx/``, ``vnnlib/``) and its extension;
    deeper folders stay in the name (``medical_perturbations_0``), so two
    instances of one benchmark never share a file.
    """
    return f"{_flat(onnx, '.onnx')}__{_flat(vnnlib, '.vnnlib')}.txt"


def _flat(path: str, extension: str) -> str:
    parts = PurePosixPath(path.strip().replace("\\", "/")).parts
    parts = [p for p in parts if p not in ("/", ".", "..")]
    name = "_".join(parts[1:] if len(parts) > 1 else parts)
    for ending in (".gz", extension):
        name = name.removesuffix(ending)
    return re.sub(r"[^A-Za-z0-9._+-]", "_", name) or "instance"


# ------------------------------------------------------------------ the results folder
def read_settings(folder: str | os.PathLike) -> dict[str, Any] | None:
    """The settings a results folder was made with (``run.json``), or ``None`` if it has none.

    Raises:
        ResultFileError: ``run.json`` exists but cannot be read.
    """
    path = Path(folder) / SETTINGS_FILE
    if not path.exists():
        return None
    try:
        settings = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ResultFileError(f"cannot read {path}: {exc}") from exc
    if not isinstance(settings, dict):
        raise ResultFileError(f"{path}: not a settings object")
    return settings


def read_results(path: str | os.PathLike) -> list[dict[str, str]]:
    """The complete rows of a results file (a last line without its line break is left out).

    Raises:
        ResultFileError: the file cannot be read or its header is not :data:`RESULT_COLUMNS`.
    """
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ResultFileError(f"cannot read {path}: {exc}") from exc
    text = text[: text.rfind("\n") + 1]  # a torn last line is not a row
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header is None:
        return []
    if tuple(header) != RESULT_COLUMNS:
        raise ResultFileError(f"{path}: not a verifinn results file (header {header})")
    rows = []
    for line, row in enumerate(reader, start=2):
        if len(row) != len(RESULT_COLUMNS):
            logger.warning("%s:%d: skipped a malformed row", path, line)
            continue
        rows.append(dict(zip(RESULT_COLUMNS, row)))
    return rows


def _repair(path: Path) -> None:
    """Cut a torn last line (a run killed mid-write) off ``path``, so rows never merge."""
    if not path.is_file():
        return
    data = path.read_bytes()
    if not data or data.endswith(b"\n"):
        return
    keep = data.rfind(b"\n") + 1
    with open(path, "r+b") as handle:
        handle.truncate(keep)
    logger.warning(
        "%s: dropped a torn last line (%d bytes); its instance runs again", path, len(data) - keep
    )


def _settings(benchmarks: Sequence[Benchmark], timeout_scale: float,
              max_timeout: float | None, method: str) -> dict[str, Any]:  # fmt: skip
    return {
        "format": 1,
        "tool": "verifinn",
        "version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "benchmarks": [
            {"name": b.name, "folder": str(b.folder), "instances": b.instance_list.name}
            for b in benchmarks
        ],
        "timeout_scale": float(timeout_scale),
        "max_timeout": None if max_timeout is None else float(max_timeout),
        "method": method,
    }


def _adopt_settings(folder: Path, wanted: dict[str, Any]) -> bool:
    """Write ``run.json`` into a new results folder, or check an existing one matches.

    Returns:
        Whether the folder already held a run.

    Raises:
        InvalidInputError: the folder was made with other settings, or holds
            results without settings.
    """
    found = read_settings(folder)
    if found is None:
        if (folder / RESULTS_FILE).exists():
            raise InvalidInputError(
                f"{folder} holds a {RESULTS_FILE} but no {SETTINGS_FILE}: not a verifinn "
                "results folder; use another --out folder"
            )
        _write_json(folder / SETTINGS_FILE, wanted)
        return False
    differences = [
        f"{key}: {_show(found.get(key))} there, {_show(wanted[key])} here"
        for key in _COMPARED
        if _normal(found.get(key)) != _normal(wanted[key])
    ]
    if differences:
        raise InvalidInputError(
            f"{folder} was made by a run with other settings ({'; '.join(differences)}): "
            "resume with the same settings or use another --out folder"
        )
    return True


def _normal(value: Any) -> Any:
    if isinstance(value, list):  # the benchmarks, in any order
        return sorted(repr(sorted(v.items())) if isinstance(v, dict) else repr(v) for v in value)
    return float(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _show(value: Any) -> str:
    if isinstance(value, list):
        return (
            "["
            + ", ".join(v.get("folder", "?") if isinstance(v, dict) else str(v) for v in value)
            + "]"
        )
    return "none" if value is None else str(value)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` as JSON atomically (temporary file, then ``os.replace``)."""
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix="." + path.name + ".", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2)
            handle.write("\n")
        os.replace(tmp, path)
    except OSError as exc:
        raise ResultFileError(f"cannot write {path}: {exc.strerror or exc}") from exc


class _Rows:
    """``results.csv`` opened for appending and locked (one run at a time per folder).

    :meth:`start` writes the header into an empty file; every row is flushed.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / RESULTS_FILE
        self.taken: set[str] = set()
        try:
            self.handle = open(self.path, "a", newline="", encoding="utf-8")  # noqa: SIM115
        except OSError as exc:
            raise ResultFileError(f"cannot write {self.path}: {exc.strerror or exc}") from exc
        if fcntl is not None:
            try:
                fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                self.handle.close()
                raise InvalidInputError(f"another run is writing into {folder}") from None
        self.writer = csv.writer(self.handle, lineterminator="\n")

    def start(self, taken: set[str]) -> None:
        """Begin appending; ``taken``: the counterexample paths earlier rows use."""
        self.taken = set(taken)
        if os.fstat(self.handle.fileno()).st_size == 0:
            self._write(RESULT_COLUMNS)

    def add(self, result: InstanceResult) -> str:
        """Write ``result``'s counterexample file (for ``sat``), then its row; returns the
        counterexample's path relative to the folder (``''`` when there is none)."""
        relative = ""
        if result.result == "sat" and result.counterexample is not None:
            relative = self._counterexample_path(result)
            target = self.folder / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            write_result(target, "sat", result.counterexample)
        elif result.result == "sat":
            logger.error("sat without a counterexample on %s %s", result.onnx, result.vnnlib)
        message = " ".join((result.message or "").split())[:_MESSAGE_CHARS]
        timeout = "" if result.timeout is None else f"{result.timeout:g}"
        self._write((result.benchmark, result.onnx, result.vnnlib, result.result,
                     f"{result.seconds:.3f}", timeout, relative, message))  # fmt: skip
        return relative

    def _counterexample_path(self, result: InstanceResult) -> str:
        base = PurePosixPath(COUNTEREXAMPLE_DIR, _flat(result.benchmark, ""))
        name = counterexample_name(result.onnx, result.vnnlib)
        relative, n = str(base / name), 1
        while relative in self.taken:  # two instances flattened to one name
            n += 1
            relative = str(base / f"{name.removesuffix('.txt')}_{n}.txt")
        self.taken.add(relative)
        return relative

    def _write(self, row: Sequence[str]) -> None:
        self.writer.writerow(row)
        self.handle.flush()

    def close(self) -> None:
        self.handle.close()


# ------------------------------------------------------------------ running
@dataclass(frozen=True)
class _SuiteTask:
    """One instance of one benchmark, as handed to a worker."""

    benchmark: str
    root: str
    instance: Instance


@dataclass(frozen=True)
class _SuiteSettings:
    """What every worker's runners are built from."""

    timeout_scale: float
    max_timeout: float | None
    method: str
    device: str


_RUNNER: dict[tuple[str, _SuiteSettings], InstanceRunner] = {}


def _answer_task(settings: _SuiteSettings, task: _SuiteTask) -> InstanceResult:
    """One instance, by this process's runner for its folder (kept while the folder lasts)."""
    key = (task.root, settings)
    if key not in _RUNNER:
        _RUNNER.clear()  # the previous folder's networks go
        _RUNNER[key] = InstanceRunner(
            task.root, settings.timeout_scale, settings.method, settings.device,
            max_timeout=settings.max_timeout,
        )  # fmt: skip
    return replace(_RUNNER[key](task.instance), benchmark=task.benchmark)


class _Progress:
    """One line per finished instance on stderr, and a tqdm bar when stderr is a terminal."""

    def __init__(self, total: int, done: int, solved: int, lines: bool, bar: bool) -> None:
        self.total, self.done, self.solved, self.lines = total, done, solved, lines
        self.bar = tqdm(
            total=total, initial=done, unit="inst", file=sys.stderr, dynamic_ncols=True,
            disable=not bar or not sys.stderr.isatty(),
        )  # fmt: skip

    def update(self, result: InstanceResult) -> None:
        self.done += 1
        self.solved += result.result in ("sat", "unsat")
        if self.lines:
            line = (
                f"[{self.done}/{self.total}] {result.benchmark} {result.onnx} {result.vnnlib}: "
                f"{result.result} {result.seconds:.2f} s (solved {self.solved}/{self.done})"
            )
            if self.bar.disable:
                print(line, file=sys.stderr, flush=True)
            else:
                self.bar.write(line, file=sys.stderr)
        self.bar.update()

    def close(self) -> None:
        self.bar.close()


def _select(benchmark: Benchmark, match: str | None, limit: int | None) -> list[Instance]:
    chosen = [
        i for i in benchmark.instances if match is None or match in i.onnx or match in i.vnnlib
    ]
    return chosen[:limit]


def _load_benchmarks(folders: Sequence[str | os.PathLike]) -> list[Benchmark]:
    if not folders:
        raise InvalidInputError("no benchmark folder given")
    benchmarks = [load_benchmark(f) for f in folders]
    names = Counter(b.name for b in benchmarks)
    twice = sorted(n for n, k in names.items() if k > 1)
    if twice:
        raise InvalidInputError(f"two benchmark folders are named {', '.join(twice)}")
    return benchmarks


def _resumed(rows: list[dict[str, str]], benchmarks: Sequence[Benchmark]) -> list[InstanceResult]:
    """The rows already in the folder, as results (expected answers attached)."""
    expected = {b.name: b.expected for b in benchmarks}
    results = []
    for row in rows:
        key = instance_key(row["onnx"], row["vnnlib"])
        try:
            seconds = float(row["seconds"])
        except ValueError:
            seconds = 0.0
        timeout = float(row["timeout"]) if row["timeout"] else None
        message = row["message"] or None
        results.append(InstanceResult(
            row["onnx"], row["vnnlib"], row["result"], seconds,
            expected.get(row["benchmark"], {}).get(key), message,
            internal=(message or "").startswith("internal error"),
            benchmark=row["benchmark"], timeout=timeout,
        ))  # fmt: skip
    return results


def run_suite(
    folders: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    timeout_scale: float = 1.0,
    max_timeout: float | None = None,
    method: str = "auto",
    device: str = "cpu",
    match: str | None = None,
    limit: int | None = None,
    executor: Executor | None = None,
    progress: bool = True,
    lines: bool = True,
    on_result: Callable[[InstanceResult], None] | None = None,
) -> SuiteSummary:
    """Answer the instances of benchmark folders into the results folder ``out``, resuming it.

    Args:
        folders: the benchmark folders (each with its ``*instances.csv``).
        out: the results folder (created when missing; see the module docstring).
        timeout_scale: multiplies every instance's time limit.
        max_timeout: caps every scaled time limit, in seconds (``None``: no cap).
        method: the :func:`~verifiNN.verify` method.
        device: ``'cpu'`` or ``'cuda'``.
        match: keep only the instances whose model or property path contains this text.
        limit: answer only the first ``limit`` instances of each folder (after ``match``).
        executor: where the instances run (default: one after the other in this process).
        progress: a progress bar on stderr when it is a terminal.
        lines: one line per finished instance on stderr, terminal or not.
        on_result: called with each new result once its row is on disk.

    Returns:
        The :class:`SuiteSummary` of every row in ``out`` (earlier runs' included).

    Raises:
        InvalidInputError: bad options, a folder without a readable instance list,
            two folders of one name, or ``out`` made with other settings.
        ResultFileError: ``out`` cannot be written.
    """
    check_run_options(timeout_scale, max_timeout, limit, method, device)
    benchmarks = _load_benchmarks(folders)
    folder = Path(out)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ResultFileError(f"cannot create {folder}: {exc.strerror or exc}") from exc
    resuming = _adopt_settings(folder, _settings(benchmarks, timeout_scale, max_timeout, method))
    output = _Rows(folder)
    try:
        _repair(output.path)
        rows = read_results(output.path)
        output.start({r["counterexample"] for r in rows if r["counterexample"]})
        summary = SuiteSummary(benchmarks, _resumed(rows, benchmarks))
        settings = _SuiteSettings(float(timeout_scale), max_timeout, method, device)
        _resume(summary, output, settings, match, limit, executor, progress, lines, on_result,
                announce=resuming)  # fmt: skip
    finally:
        output.close()
    return summary


def _resume(
    summary: SuiteSummary,
    output: _Rows,
    settings: _SuiteSettings,
    match: str | None,
    limit: int | None,
    executor: Executor | None,
    progress: bool,
    lines: bool,
    on_result: Callable[[InstanceResult], None] | None,
    announce: bool,
) -> None:
    """Answer the selected instances not in ``summary`` yet, appending them to ``output``."""
    answered = {(r.benchmark, instance_key(r.onnx, r.vnnlib)): r for r in summary.results}
    tasks, selected = [], 0
    solved = 0  # among the selected instances answered before
    for b in summary.benchmarks:
        for instance in _select(b, match, limit):
            selected += 1
            earlier = answered.get((b.name, instance_key(instance.onnx, instance.vnnlib)))
            if earlier is None:
                tasks.append(_SuiteTask(b.name, str(b.folder), instance))
            else:
                solved += earlier.result in ("sat", "unsat")
    if announce and lines:
        print(
            f"verifinn: resuming {output.folder}: {selected - len(tasks)} of {selected} "
            f"selected instances done, {len(tasks)} left",
            file=sys.stderr,
            flush=True,
        )
    expected = {b.name: b.expected for b in summary.benchmarks}
    meter = _Progress(selected, selected - len(tasks), solved, lines, progress)
    runner = executor if executor is not None else make_executor("local", 1)
    try:
        for result in runner.run(_answer_task, settings, tasks) if tasks else ():
            result = replace(result, expected=expected[result.benchmark].get(
                instance_key(result.onnx, result.vnnlib)))  # fmt: skip
            output.add(result)
            summary.results.append(result)
            if result.wrong:
                _shout(result)
            meter.update(result)
            if on_result is not None:
                on_result(result)
    finally:
        meter.close()


def _shout(result: InstanceResult) -> None:
    logger.error(
        "WRONG answer %s (expected %s) on %s: %s %s",
        result.result, result.expected, result.benchmark, result.onnx, result.vnnlib,
    )  # fmt: skip


# ------------------------------------------------------------------ summary
@dataclass
class SuiteSummary:
    """Every row of a results folder, counted per benchmark.

    Attributes:
        benchmarks: the run's benchmarks, in order.
        results: one result per answered instance (earlier runs' included).
    """

    benchmarks: list[Benchmark]
    results: list[InstanceResult] = field(default_factory=list)

    @property
    def wrong(self) -> list[InstanceResult]:
        """Answers that contradict ``expected.csv``."""
        return [r for r in self.results if r.wrong]

    @property
    def internal_errors(self) -> list[InstanceResult]:
        """Instances that failed by an internal error (a bug)."""
        return [r for r in self.results if r.internal]

    def format(self) -> str:
        """A Markdown table per benchmark, then every wrong answer and every error reason."""
        head = ("benchmark", "instances", "answered", "sat", "unsat", "unknown", "timeout",
                "error", "wrong", "total s")  # fmt: skip
        lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
        by_name: dict[str, list[InstanceResult]] = {b.name: [] for b in self.benchmarks}
        for r in self.results:
            by_name.setdefault(r.benchmark, []).append(r)
        sizes = {b.name: len(b.instances) for b in self.benchmarks}
        for name, results in by_name.items():
            words = Counter(r.result for r in results)
            wrong = sum(r.wrong for r in results)
            seconds = f"{sum(r.seconds for r in results):.1f}"
            cells = [name, sizes.get(name, "?"), len(results), words["sat"], words["unsat"],
                     words["unknown"], words["timeout"], words["error"],
                     f"**{wrong}**" if wrong else 0, seconds]  # fmt: skip
            lines.append("| " + " | ".join(str(c) for c in cells) + " |")
        lines += [
            f"WRONG: {r.benchmark} {r.onnx} {r.vnnlib}: answered {r.result}, expected {r.expected}"
            for r in self.wrong
        ]
        for name, results in by_name.items():
            reasons = Counter(
                r.message or "no reason given" for r in results if r.result == "error"
            )
            for reason, count in reasons.most_common(3):
                lines.append(f"errors in {name} ({count} instance{'s' * (count != 1)}): {reason}")
        return "\n".join(lines)
