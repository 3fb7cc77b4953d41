"""Tests of VNN-COMP result files (verifiNN.io.vnncomp)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from verifiNN.errors import InvalidInputError, ResultFileError
from verifiNN.io.vnncomp import read_result, vnncomp_word, word_to_verdict, write_result
from verifiNN.results import Verdict

finite = st.floats(allow_nan=False, allow_infinity=False)


@pytest.mark.parametrize("verdict", list(Verdict))
def test_verdict_round_trip(tmp_path: Path, verdict: Verdict) -> None:
    path = tmp_path / "out.txt"
    write_result(path, verdict)
    assert path.read_text().strip() == vnncomp_word(verdict)
    assert read_result(path) == (verdict, None, None)
    assert word_to_verdict(vnncomp_word(verdict)) is verdict


def test_competition_words() -> None:
    words = {vnncomp_word(v) for v in Verdict}
    assert words == {"sat", "unsat", "unknown", "timeout", "error"}
    assert vnncomp_word("SAT") == "sat"
    assert word_to_verdict("holds") is Verdict.UNSAT
    assert word_to_verdict("Violated") is Verdict.SAT
    with pytest.raises(InvalidInputError):
        vnncomp_word("robust")
    with pytest.raises(InvalidInputError):
        word_to_verdict("maybe")


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    x=st.lists(finite, min_size=1, max_size=20),
    y=st.lists(finite, min_size=1, max_size=10),
)
def test_counterexample_round_trip_is_exact(tmp_path: Path, x: list, y: list) -> None:
    path = tmp_path / "result.txt"
    write_result(path, Verdict.SAT, (np.array(x), y))
    verdict, x_read, y_read = read_result(path)
    assert verdict is Verdict.SAT
    assert x_read.tobytes() == np.array(x, dtype=float).tobytes()  # bit for bit, incl. -0.0
    assert y_read.tobytes() == np.array(y, dtype=float).tobytes()


def test_written_layout(tmp_path: Path) -> None:
    path = tmp_path / "r.txt"
    write_result(path, "sat", ([0.1, -2e-300], [3.0]))
    lines = path.read_text().splitlines()
    assert lines == ["sat", "(", "(X_0 0.1)", "(X_1 -2e-300)", "(Y_0 3.0)", ")"]
    assert os.stat(path).st_mode & 0o777 == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.txt"]  # no temporary left


@pytest.mark.parametrize(
    ("text", "verdict", "x", "y"),
    [
        ("holds\n", Verdict.UNSAT, None, None),
        ("violated\n(X_0 1.5)\n(X_1 -2)\n(Y_0 0.25)\n", Verdict.SAT, [1.5, -2], [0.25]),
        ("sat\n((X_0 1e-3)\n (Y_1 2)\n (Y_0 -1))", Verdict.SAT, [1e-3], [-1, 2]),
        ("  TIMEOUT  \n", Verdict.TIMEOUT, None, None),
        ("sat\n", Verdict.SAT, None, None),
    ],
)
def test_reads_older_variants(tmp_path: Path, text: str, verdict: Verdict, x, y) -> None:
    path = tmp_path / "r.txt"
    path.write_text(text)
    got_verdict, got_x, got_y = read_result(path)
    assert got_verdict is verdict
    for got, want in ((got_x, x), (got_y, y)):
        if want is None:
            assert got is None
        else:
            np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "verdict word"),
        ("maybe\n", "unknown verdict word"),
        ("unsat\n((X_0 1))", "assignment with verdict 'unsat'"),
        ("sat\n((X_0 1) (X_0 2))", "X_0 appears twice"),
        ("sat\n((X_0 1) (X_2 2))", "X_1 is missing"),
        ("sat\n((X_0 one))", "bad value"),
        ("sat\n((X_0 nan))", "bad value"),
        ("sat\n((X_0 1) junk)", "cannot read the assignment"),
        ("sat\n(((X_0 1))", "cannot read the assignment"),
    ],
)
def test_malformed_files(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.txt"
    path.write_text(text)
    with pytest.raises(ResultFileError, match=re.escape(message)) as info:
        read_result(path)
    assert str(path) in str(info.value)


def test_unwritable_paths(tmp_path: Path) -> None:
    missing_dir = tmp_path / "no" / "such" / "dir" / "r.txt"
    with pytest.raises(ResultFileError, match=re.escape(str(missing_dir))):
        write_result(missing_dir, Verdict.UNSAT)
    a_directory = tmp_path / "d"
    a_directory.mkdir()
    with pytest.raises(ResultFileError, match=re.escape(str(a_directory))):
        write_result(a_directory, Verdict.UNSAT)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]  # the temporary was removed
    with pytest.raises(ResultFileError, match="cannot read"):
        read_result(tmp_path / "absent.txt")


def test_overwrite_and_invalid_arguments(tmp_path: Path) -> None:
    path = tmp_path / "r.txt"
    write_result(path, Verdict.SAT, ([1.0], [2.0]))
    write_result(path, Verdict.UNKNOWN)
    assert read_result(path) == (Verdict.UNKNOWN, None, None)
    with pytest.raises(InvalidInputError, match="only goes with 'sat'"):
        write_result(path, Verdict.UNSAT, ([1.0], [2.0]))
    with pytest.raises(InvalidInputError, match="finite"):
        write_result(path, Verdict.SAT, ([np.inf], [2.0]))
    with pytest.raises(InvalidInputError, match="pair"):
        write_result(path, Verdict.SAT, [1.0, 2.0, 3.0])
    with pytest.raises(InvalidInputError, match="not a verdict"):
        write_result(path, "robust")
    assert read_result(path) == (Verdict.UNKNOWN, None, None)  # untouched by the failures
