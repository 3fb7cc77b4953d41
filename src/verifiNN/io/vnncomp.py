"""VNN-COMP result files.

The competition's runner reads one small text file per instance::

    sat
    (
    (X_0 0.123)
    (X_1 -0.5)
    (Y_0 3.99)
    )

The first line is the verdict word (``sat``, ``unsat``, ``unknown``,
``timeout``, ``error``); for ``sat`` the counterexample follows as an
s-expression of ``(name value)`` pairs, inputs first, values written with
``repr`` so they read back bit for bit. :func:`read_result` also accepts the
older variants: ``holds`` / ``violated`` for ``unsat`` / ``sat``, and the
assignment without its outer parentheses.

The mapping between :class:`~verifiNN.results.Verdict` and the competition
words lives here only: :func:`vnncomp_word` (and its inverse
:func:`word_to_verdict`, which adds the old aliases).
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from typing import Any

import numpy as np

from verifiNN.errors import InvalidInputError, ResultFileError
from verifiNN.results import Verdict

__all__ = ["read_result", "vnncomp_word", "word_to_verdict", "write_result"]

_WORDS: dict[Verdict, str] = {
    Verdict.SAT: "sat",
    Verdict.UNSAT: "unsat",
    Verdict.UNKNOWN: "unknown",
    Verdict.TIMEOUT: "timeout",
    Verdict.ERROR: "error",
}
_ALIASES: dict[str, Verdict] = {"holds": Verdict.UNSAT, "violated": Verdict.SAT}
_FIRST_WORD = re.compile(r"\s*([A-Za-z_]+)")
_ENTRY = re.compile(r"\(\s*([XY])_(\d+)\s+([^\s()]+)\s*\)")


def vnncomp_word(verdict: Verdict | str) -> str:
    """Return the competition word for ``verdict`` (the one place this mapping lives).

    Args:
        verdict: a :class:`Verdict` or its value (``'sat'``, ``'unsat'``, ...).

    Returns:
        ``'sat'``, ``'unsat'``, ``'unknown'``, ``'timeout'`` or ``'error'``.
    """
    try:
        return _WORDS[Verdict(str(verdict).strip().lower())]
    except (ValueError, KeyError) as exc:
        raise InvalidInputError(f"not a verdict: {verdict!r}") from exc


def word_to_verdict(word: str) -> Verdict:
    """Return the :class:`Verdict` a result-file word stands for (case-insensitive).

    Args:
        word: a competition word, or the old aliases ``holds`` / ``violated``.

    Returns:
        The verdict.
    """
    key = word.strip().lower()
    for verdict, text in _WORDS.items():
        if text == key:
            return verdict
    if key in _ALIASES:
        return _ALIASES[key]
    raise InvalidInputError(f"unknown verdict word {word!r}")


def _assignment(counterexample: Any) -> str:
    try:
        x, y = counterexample
        x = np.asarray(x, dtype=np.float64).ravel()
        y = np.asarray(y, dtype=np.float64).ravel()
    except (TypeError, ValueError) as exc:
        raise InvalidInputError("counterexample must be a pair (x, y) of numeric arrays") from exc
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise InvalidInputError("counterexample values must be finite")
    lines = [f"(X_{i} {float(v)!r})" for i, v in enumerate(x)]
    lines += [f"(Y_{j} {float(v)!r})" for j, v in enumerate(y)]
    return "(\n" + "\n".join(lines) + "\n)\n"


def write_result(
    path: str | os.PathLike, verdict: Verdict | str, counterexample: Any = None
) -> None:
    """Write a VNN-COMP result file atomically (temporary file, then ``os.replace``).

    An existing file that is not a regular file (``/dev/stdout``, a pipe) is
    written in place instead: replacing it would swap the device for a file.

    Args:
        path: the result file.
        verdict: the verdict to write.
        counterexample: for ``sat`` only, an ``(x, y)`` pair of flat arrays.

    Raises:
        InvalidInputError: on an unknown verdict, a counterexample with a non-sat
            verdict, or non-finite values.
        ResultFileError: when the file cannot be written (names the path).
    """
    word = vnncomp_word(verdict)
    text = word + "\n"
    if counterexample is not None:
        if word != "sat":
            raise InvalidInputError(f"a counterexample only goes with 'sat', not {word!r}")
        text += _assignment(counterexample)
    path = os.fspath(path)
    if os.path.exists(path) and not os.path.isfile(path):
        _write_special(path, text)  # a device or pipe (/dev/stdout): never replace it
        return
    directory = os.path.dirname(os.path.abspath(path))
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(
            dir=directory, prefix="." + os.path.basename(path) + ".", suffix=".tmp"
        )
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        raise ResultFileError(f"cannot write result file {path}: {exc.strerror or exc}") from exc
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def _write_special(path: str, text: str) -> None:
    """Write ``text`` straight into an existing non-regular file (a device or a pipe)."""
    if os.path.isdir(path):
        raise ResultFileError(f"cannot write result file {path}: it is a folder")
    try:
        with open(path, "w", encoding="ascii") as handle:
            handle.write(text)
            handle.flush()
    except OSError as exc:
        raise ResultFileError(f"cannot write result file {path}: {exc.strerror or exc}") from exc


def read_result(
    path: str | os.PathLike,
) -> tuple[Verdict, np.ndarray | None, np.ndarray | None]:
    """Read a VNN-COMP result file (current or older format).

    Args:
        path: the result file.

    Returns:
        ``(verdict, x, y)``; ``x`` and ``y`` are float64 arrays when the file
        holds an assignment for them, else ``None``.

    Raises:
        ResultFileError: when the file cannot be read or is malformed (names the path).
    """
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise ResultFileError(f"cannot read result file {path}: {exc}") from exc
    match = _FIRST_WORD.match(text)
    if match is None:
        raise ResultFileError(f"result file {path} does not start with a verdict word")
    try:
        verdict = word_to_verdict(match.group(1))
    except InvalidInputError as exc:
        raise ResultFileError(f"result file {path}: {exc}") from exc
    rest = text[match.end() :]
    values: dict[str, dict[int, float]] = {"X": {}, "Y": {}}
    for name, index, number in _ENTRY.findall(rest):
        try:
            value = float(number)
        except ValueError:
            value = float("nan")
        if not np.isfinite(value):
            raise ResultFileError(f"result file {path}: bad value {number!r} for {name}_{index}")
        if int(index) in values[name]:
            raise ResultFileError(f"result file {path}: {name}_{index} appears twice")
        values[name][int(index)] = value
    leftover = "".join(_ENTRY.sub(" ", rest).split())
    if leftover not in ("", "()"):
        raise ResultFileError(
            f"result file {path}: cannot read the assignment near {leftover[:40]!r}"
        )
    if (values["X"] or values["Y"]) and verdict is not Verdict.SAT:
        raise ResultFileError(f"result file {path}: an assignment with verdict {verdict.value!r}")
    return verdict, _dense(values["X"], "X", path), _dense(values["Y"], "Y", path)


def _dense(entries: dict[int, float], name: str, path: str) -> np.ndarray | None:
    if not entries:
        return None
    n = len(entries)
    if max(entries) != n - 1:
        missing = next(i for i in range(n) if i not in entries)
        raise ResultFileError(f"result file {path}: {name}_{missing} is missing")
    return np.array([entries[i] for i in range(n)], dtype=np.float64)
