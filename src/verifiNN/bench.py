"""Run a VNN-COMP instance list in one process and summarise the answers.

An instance list is the competition's CSV: one row ``onnx,vnnlib,timeout`` per
instance, paths relative to a root folder (by default the CSV's own folder);
the property may be gzip-compressed (``.vnnlib.gz``). :func:`run_benchmark`
loads every model once (networks and properties are cached by path), answers
each instance with :func:`verifiNN.verify` within its (scaled) time
limit (optionally capped), appends one row ``onnx,vnnlib,result,seconds``
per instance to the output CSV as soon as it is known (flushed, so a killed run
loses nothing), and returns a :class:`BenchSummary`. Seconds include loading
the model and the property.

When an ``expected.csv`` (columns ``onnx,vnnlib,...,expected``) sits next to
the instance list (or, for a list elsewhere, in its ``root`` folder), each
answer is compared with it: ``sat`` where ``unsat`` is
expected, or the reverse, counts as *wrong* (a soundness bug).

A file a user got wrong (missing model, corrupt ONNX, malformed property) makes
that instance's result ``error`` and the run goes on. An internal failure is
recorded the same way but logged with its traceback and flagged
(:attr:`BenchSummary.internal_errors`), so it is never silent.

:class:`InstanceRunner` answers one instance at a time with its own caches;
:func:`run_benchmark` hands the instances to an executor
(:mod:`verifiNN.executors`: this process, local processes or Ray), one
instance per task and one runner per worker. Whole benchmark folders, with
resume and counterexample files, are :mod:`verifiNN.suite`'s.
"""

from __future__ import annotations

import csv
import logging
import os
import statistics
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from verifiNN.budget import Budget
from verifiNN.errors import InvalidInputError, ResultFileError, VerifiNNError
from verifiNN.executors import Executor, make_executor
from verifiNN.io import NeedsConstantInputError, load_onnx, load_vnnlib, vnncomp_word
from verifiNN.io.instance import box_key, specialised_network
from verifiNN.models.network import Network
from verifiNN.results import Verdict
from verifiNN.specs import Specification
from verifiNN.verifiers.portfolio import METHODS, check_device, verify

__all__ = [
    "OUTPUT_COLUMNS",
    "BenchSummary",
    "Instance",
    "InstanceResult",
    "InstanceRunner",
    "check_run_options",
    "instance_key",
    "read_expected",
    "read_instances",
    "run_benchmark",
]

logger = logging.getLogger(__name__)

OUTPUT_COLUMNS = ("onnx", "vnnlib", "result", "seconds")
"""Header of the per-instance output CSV."""

EXPECTED_FILE = "expected.csv"

SPECIALISED_CACHE = 4
"""Networks specialised to a property's input box kept per worker (each fits one box)."""


@dataclass(frozen=True)
class Instance:
    """One row of an instance list (paths as written, relative to the root)."""

    onnx: str
    vnnlib: str
    timeout: float


@dataclass(frozen=True)
class InstanceResult:
    """The answer to one instance.

    Attributes:
        onnx: the model path as written in the instance list.
        vnnlib: the property path as written.
        result: the competition word (``sat``, ``unsat``, ``unknown``,
            ``timeout``, ``error``).
        seconds: wall time, loading included.
        expected: the expected answer from ``expected.csv``, if any.
        message: why the instance failed, for ``error``; why it stayed undecided, for an
            ``unknown`` with a reason (a phase that did not fit in memory).
        internal: whether the failure was an internal error (a bug) rather
            than a bad input file.
        benchmark: the benchmark (folder) name, in a suite run.
        timeout: the time limit the instance ran under (scaled and capped).
        counterexample: for ``sat``, the ``(x, y)`` flat arrays of the
            confirmed counterexample (not compared, not shown).
    """

    onnx: str
    vnnlib: str
    result: str
    seconds: float
    expected: str | None = None
    message: str | None = None
    internal: bool = False
    benchmark: str = ""
    timeout: float | None = None
    counterexample: tuple[Any, Any] | None = field(default=None, compare=False, repr=False)

    @property
    def wrong(self) -> bool:
        """``sat`` where ``unsat`` is expected, or the reverse."""
        return {self.result, self.expected} == {"sat", "unsat"}


@dataclass
class BenchSummary:
    """All answers of a run, with the counts a summary reports."""

    results: list[InstanceResult] = field(default_factory=list)
    has_expected: bool = False

    def count(self, word: str) -> int:
        """Number of instances answered ``word``."""
        return sum(r.result == word for r in self.results)

    @property
    def sat(self) -> int:
        return self.count("sat")

    @property
    def unsat(self) -> int:
        return self.count("unsat")

    @property
    def unknown(self) -> int:
        return self.count("unknown")

    @property
    def timeouts(self) -> int:
        return self.count("timeout")

    @property
    def errors(self) -> int:
        return self.count("error")

    @property
    def solved(self) -> int:
        """Instances answered ``sat`` or ``unsat``."""
        return self.sat + self.unsat

    @property
    def unsolved(self) -> int:
        """Instances answered anything but ``sat`` or ``unsat``."""
        return len(self.results) - self.solved

    @property
    def wrong(self) -> list[InstanceResult]:
        """Answers that contradict ``expected.csv``."""
        return [r for r in self.results if r.wrong]

    @property
    def internal_errors(self) -> list[InstanceResult]:
        """Instances that failed by an internal error (a bug, logged with its traceback)."""
        return [r for r in self.results if r.internal]

    @property
    def total_seconds(self) -> float:
        return float(sum(r.seconds for r in self.results))

    @property
    def median_seconds(self) -> float:
        return float(statistics.median(r.seconds for r in self.results)) if self.results else 0.0

    def format(self) -> str:
        """A short human-readable summary (several lines)."""
        wrong = str(len(self.wrong)) if self.has_expected else "n/a (no expected.csv)"
        lines = [
            f"instances: {len(self.results)}",
            f"solved: {self.solved} (sat {self.sat}, unsat {self.unsat})",
            f"unknown: {self.unknown}",
            f"timeouts: {self.timeouts}",
            f"errors: {self.errors}",
            f"wrong: {wrong}",
            f"total seconds: {self.total_seconds:.2f}",
            f"median seconds: {self.median_seconds:.3f}",
        ]
        for r in self.wrong:
            lines.append(f"WRONG: {r.onnx} {r.vnnlib}: answered {r.result}, expected {r.expected}")
        return "\n".join(lines)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_instances(csv_path: str | os.PathLike) -> list[Instance]:
    """Read a VNN-COMP instance list (``onnx,vnnlib,timeout`` rows, optional header).

    Raises:
        InvalidInputError: the file cannot be read or a row is malformed
            (names the file and line).
    """
    path = os.fspath(csv_path)
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"cannot read instance list {path}: {exc}") from exc
    instances = []
    for line, row in enumerate(rows, start=1):
        row = [cell.strip() for cell in row]
        if not any(row) or row[0].startswith("#"):
            continue
        if line == 1 and len(row) >= 3 and not _is_number(row[2]):
            continue  # a header
        if len(row) < 3 or not row[0] or not row[1] or not _is_number(row[2]):
            raise InvalidInputError(f"{path}:{line}: expected 'onnx,vnnlib,timeout', got {row}")
        timeout = float(row[2])
        if not timeout > 0:
            raise InvalidInputError(f"{path}:{line}: the timeout must be positive, got {row[2]}")
        instances.append(Instance(row[0], row[1], timeout))
    return instances


def read_expected(path: str | os.PathLike) -> dict[tuple[str, str], str]:
    """Read ``expected.csv``: ``(onnx, vnnlib) -> expected word`` (paths normalised).

    Raises:
        InvalidInputError: unreadable, or without ``onnx``, ``vnnlib`` and ``expected`` columns.
    """
    path = os.fspath(path)
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            if not {"onnx", "vnnlib", "expected"} <= set(reader.fieldnames or ()):
                raise InvalidInputError(f"{path}: needs the columns onnx, vnnlib and expected")
            return {
                instance_key(row["onnx"], row["vnnlib"]): (row["expected"] or "").strip().lower()
                for row in reader
            }
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"cannot read {path}: {exc}") from exc


def instance_key(onnx: str, vnnlib: str) -> tuple[str, str]:
    """The key that identifies an instance: its two paths, stripped and normalised."""
    return os.path.normpath(onnx.strip()), os.path.normpath(vnnlib.strip())


class InstanceRunner:
    """Answers instances one at a time, caching networks and properties by path.

    One runner per process (or per worker of a distributed executor): call it
    on each :class:`Instance`. It never raises for a bad instance; the result
    says ``error`` instead. A model that failed to load is not loaded again:
    the next instances on it fail at once with the same message.

    Args:
        root: folder the instance paths are relative to.
        timeout_scale: multiplies every instance's time limit.
        method: the :func:`~verifiNN.verify` method.
        device: ``'cpu'`` or ``'cuda'``.
        expected: ``(onnx, vnnlib) -> expected word`` (see :func:`read_expected`).
        max_timeout: cap on every scaled time limit, in seconds (``None``: no cap).
    """

    def __init__(
        self,
        root: str | os.PathLike,
        timeout_scale: float = 1.0,
        method: str = "auto",
        device: str = "cpu",
        expected: Mapping[tuple[str, str], str] | None = None,
        max_timeout: float | None = None,
    ) -> None:
        self.root = Path(root)
        self.timeout_scale = float(timeout_scale)
        self.max_timeout = None if max_timeout is None else float(max_timeout)
        self.method = method
        self.device = device
        self.expected = dict(expected or {})
        self._networks: dict[str, Network] = {}
        self._failed: dict[str, VerifiNNError | OSError] = {}
        self._specs: dict[str, Specification] = {}
        self._specialised: dict[tuple[str, str], Network] = {}  # (model, box digest) -> network

    def limit(self, instance: Instance) -> float:
        """The seconds ``instance`` runs under: its timeout, scaled, then capped."""
        seconds = instance.timeout * self.timeout_scale
        return seconds if self.max_timeout is None else min(seconds, self.max_timeout)

    def __call__(self, instance: Instance) -> InstanceResult:
        """Answer ``instance``; its seconds include loading its files."""
        start = time.perf_counter()
        word, message, internal, counterexample = self._answer(instance)
        seconds = time.perf_counter() - start
        expected = self.expected.get(instance_key(instance.onnx, instance.vnnlib))
        return InstanceResult(
            instance.onnx, instance.vnnlib, word, seconds, expected, message, internal,
            timeout=self.limit(instance), counterexample=counterexample,
        )  # fmt: skip

    def _answer(self, instance: Instance) -> tuple[str, str | None, bool, Any]:
        """``(word, error message, internal, counterexample)`` for one instance."""
        budget = Budget.start(self.limit(instance))
        try:
            network, spec = self._instance(instance)
            result = verify(
                network, spec, method=self.method, timeout=budget.remaining(), device=self.device
            )
            example = result.counterexample if result.verdict is Verdict.SAT else None
            reason = result.statistics.get("reason")  # e.g. a phase that did not fit in memory
            return vnncomp_word(result.verdict), reason, False, example
        except (VerifiNNError, OSError) as exc:
            logger.warning("%s %s: %s", instance.onnx, instance.vnnlib, exc)
            return vnncomp_word(Verdict.ERROR), str(exc), False, None
        except Exception as exc:  # a bug: logged with its traceback, flagged, the run goes on
            logger.exception("internal error on %s %s", instance.onnx, instance.vnnlib)
            return vnncomp_word(Verdict.ERROR), f"internal error: {exc!r}", True, None

    def _instance(self, instance: Instance) -> tuple[Network, Specification]:
        """The instance's network and property; a model that needs values its property
        fixes is specialised to them (:func:`verifiNN.io.load_instance`), cached per model
        and input box."""
        model = self.root / instance.onnx
        try:
            network = self._network(model)
        except NeedsConstantInputError as exc:
            spec = self._property(self.root / instance.vnnlib)
            key = (str(model.resolve()), box_key(spec))
            if key not in self._specialised:
                if len(self._specialised) >= SPECIALISED_CACHE:
                    self._specialised.pop(next(iter(self._specialised)))
                self._specialised[key] = specialised_network(model, spec, reason=exc)
            return self._specialised[key], spec
        return network, self._spec(self.root / instance.vnnlib, network)

    def _network(self, path: Path) -> Network:
        key = str(path.resolve())
        if key in self._failed:
            raise self._failed[key]
        if key not in self._networks:
            try:
                self._networks[key] = load_onnx(path)
            except (VerifiNNError, OSError) as exc:
                self._failed[key] = exc
                raise
        return self._networks[key]

    def _spec(self, path: Path, network: Network) -> Specification:
        spec = self._property(path)
        spec.validate_for(network)
        return spec

    def _property(self, path: Path) -> Specification:
        key = str(path.resolve())
        if key not in self._specs:
            self._specs[key] = load_vnnlib(path)
        return self._specs[key]


@dataclass(frozen=True)
class _RunnerSettings:
    """What every worker's :class:`InstanceRunner` is built from."""

    root: Path
    timeout_scale: float
    method: str
    device: str
    expected: Mapping[tuple[str, str], str]
    max_timeout: float | None = None


_RUNNERS: dict[tuple, InstanceRunner] = {}


def _answer(settings: _RunnerSettings, instance: Instance) -> InstanceResult:
    """One instance, by this process's runner for ``settings`` (its caches persist)."""
    key = (
        str(settings.root), settings.timeout_scale, settings.method, settings.device,
        tuple(sorted(settings.expected.items())), settings.max_timeout,
    )  # fmt: skip
    if key not in _RUNNERS:
        _RUNNERS.clear()
        _RUNNERS[key] = InstanceRunner(
            settings.root, settings.timeout_scale, settings.method, settings.device,
            settings.expected, settings.max_timeout,
        )  # fmt: skip
    return _RUNNERS[key](instance)


class _Output:
    """The per-instance CSV, opened for appending; every row is flushed at once.

    A new (or empty) file gets the header; a file whose last line was cut off
    (a run killed mid-write) gets a line break first, so rows never merge.
    """

    def __init__(self, path: str | os.PathLike | None) -> None:
        self.handle = None
        if path is None:
            return
        path = os.fspath(path)
        try:
            cut_off = _ends_mid_line(path)
            self.handle = open(path, "a", newline="", encoding="utf-8")  # noqa: SIM115
        except OSError as exc:
            raise ResultFileError(f"cannot write {path}: {exc.strerror or exc}") from exc
        self.writer = csv.writer(self.handle, lineterminator="\n")
        if cut_off:
            self.handle.write("\n")
        if self.handle.tell() == 0:
            self.write(OUTPUT_COLUMNS)

    def write(self, row: tuple) -> None:
        if self.handle is not None:
            self.writer.writerow(row)
            self.handle.flush()

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()


def _ends_mid_line(path: str) -> bool:
    """Whether ``path`` exists, is not empty and does not end with a line break."""
    try:
        with open(path, "rb") as handle:
            if handle.seek(0, os.SEEK_END) == 0:
                return False
            handle.seek(-1, os.SEEK_END)
            return handle.read(1) != b"\n"
    except FileNotFoundError:
        return False


def check_run_options(
    timeout_scale: float,
    max_timeout: float | None,
    limit: int | None,
    method: str,
    device: str,
) -> None:
    """Reject bad run options before any work.

    Raises:
        InvalidInputError: a non-positive ``timeout_scale`` or ``max_timeout``, a
            negative ``limit``, an unknown ``method`` or ``device``.
    """
    if not timeout_scale > 0:
        raise InvalidInputError(f"timeout_scale must be positive, got {timeout_scale}")
    if max_timeout is not None and not max_timeout > 0:
        raise InvalidInputError(f"max_timeout must be positive, got {max_timeout}")
    if limit is not None and limit < 0:
        raise InvalidInputError(f"limit must be >= 0, got {limit}")
    if method not in METHODS:
        raise InvalidInputError(f"unknown method {method!r}: expected one of {', '.join(METHODS)}")
    check_device(device)


def run_benchmark(
    csv_path: str | os.PathLike,
    root: str | os.PathLike | None = None,
    timeout_scale: float = 1.0,
    limit: int | None = None,
    out: str | os.PathLike | None = None,
    method: str = "auto",
    match: str | None = None,
    progress: bool = True,
    device: str = "cpu",
    on_result: Callable[[InstanceResult], None] | None = None,
    executor: Executor | None = None,
    max_timeout: float | None = None,
) -> BenchSummary:
    """Answer every instance of a VNN-COMP instance list, one instance per task.

    Args:
        csv_path: the instance list.
        root: folder the list's paths are relative to (default: the list's folder).
        timeout_scale: multiplies every instance's time limit.
        limit: answer only the first ``limit`` instances (after ``match``).
        out: CSV to append ``onnx,vnnlib,result,seconds`` rows to (header when new).
        method: the :func:`~verifiNN.verify` method.
        progress: show a progress bar on stderr (only when stderr is a terminal).
        device: ``'cpu'`` or ``'cuda'``.
        on_result: called with each instance's result as soon as it is known.
        match: keep only the instances whose model or property path contains
            this text (e.g. ``'256x2'`` for one net of ``mnistfc``).
        executor: where the instances run (:mod:`verifiNN.executors`; default:
            one after the other in this process). With several workers the
            rows arrive, and are written, in the order the instances finish.
        max_timeout: cap on every scaled time limit, in seconds (``None``: no cap).

    Returns:
        The :class:`BenchSummary`.

    Raises:
        InvalidInputError: an unreadable or malformed instance list or
            ``expected.csv``, a bad ``timeout_scale``, ``limit``, ``method`` or
            ``device``.
        ResultFileError: ``out`` cannot be opened for appending.
    """
    check_run_options(timeout_scale, max_timeout, limit, method, device)
    csv_path = Path(csv_path)
    instances = read_instances(csv_path)
    if match is not None:
        instances = [i for i in instances if match in i.onnx or match in i.vnnlib]
    instances = instances[:limit]
    root_dir = Path(root) if root is not None else csv_path.parent
    expected_path = csv_path.parent / EXPECTED_FILE
    if not expected_path.is_file():  # a list drawn from a folder: the folder's answers
        expected_path = root_dir / EXPECTED_FILE
    expected = read_expected(expected_path) if expected_path.is_file() else {}
    summary = BenchSummary(has_expected=bool(expected))
    runner = executor if executor is not None else make_executor("local", 1)
    settings = _RunnerSettings(root_dir, timeout_scale, method, device, expected, max_timeout)
    output = _Output(out)
    bar = tqdm(
        total=len(instances),
        unit="inst",
        file=sys.stderr,
        disable=not progress or not sys.stderr.isatty(),
        dynamic_ncols=True,
    )
    try:
        for result in runner.run(_answer, settings, instances):
            summary.results.append(result)
            output.write((result.onnx, result.vnnlib, result.result, f"{result.seconds:.3f}"))
            if result.wrong:
                logger.error(
                    "WRONG answer %s (expected %s) on %s %s",
                    result.result,
                    result.expected,
                    result.onnx,
                    result.vnnlib,
                )
            if on_result is not None:
                on_result(result)
            bar.set_postfix(sat=summary.sat, unsat=summary.unsat, other=summary.unsolved)
            bar.update()
    finally:
        bar.close()
        output.close()
    return summary
