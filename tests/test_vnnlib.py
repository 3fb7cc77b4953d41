"""Tests of the VNN-LIB reader (verifiNN.io.vnnlib)."""

from __future__ import annotations

import gzip
import os
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from verifiNN.errors import SpecError
from verifiNN.io.vnnlib import load_vnnlib, parse_vnnlib
from verifiNN.specs import Box

REPO = Path(__file__).resolve().parents[1]
BENCH = Path(os.environ.get("VERIFINN_BENCHMARKS", REPO.parent / "shared" / "benchmarks"))
VNNLIB_FILES = sorted(BENCH.rglob("*.vnnlib")) if BENCH.is_dir() else []
NUM = r"[-+]?[\d.]+(?:[eE][-+]?\d+)?"
FLAT_X = re.compile(rf"^\(assert \((<=|>=) X_(\d+) ({NUM})\)\)", re.MULTILINE)


@pytest.fixture(scope="session")
def bench() -> Path:
    """The shared benchmark folder (VERIFINN_BENCHMARKS or ../shared/benchmarks)."""
    if not BENCH.is_dir():
        pytest.skip(f"benchmark folder {BENCH} not found (set VERIFINN_BENCHMARKS)")
    return BENCH


def header(n_in: int, n_out: int) -> str:
    decls = [f"(declare-const X_{i} Real)" for i in range(n_in)]
    decls += [f"(declare-const Y_{j} Real)" for j in range(n_out)]
    return "\n".join(decls) + "\n"


def unit_box(n: int) -> str:
    return "".join(f"(assert (>= X_{i} 0))\n(assert (<= X_{i} 1))\n" for i in range(n))


def disjunct_set(case) -> set[tuple]:
    return {(tuple(map(tuple, h.C)), tuple(h.d)) for h in case.unsafe}


# ----- every benchmark file -------------------------------------------------


@pytest.mark.parametrize(
    "path", VNNLIB_FILES or [None], ids=lambda p: f"{p.parent.name}/{p.name}" if p else "none"
)
def test_every_benchmark_file_parses(path: Path | None) -> None:
    if path is None:
        pytest.skip(f"benchmark folder {BENCH} not found (set VERIFINN_BENCHMARKS)")
    text = path.read_text()
    spec = load_vnnlib(path)
    assert spec.num_inputs == len(re.findall(r"declare-const X_\d+ Real", text))
    assert spec.num_outputs == len(re.findall(r"declare-const Y_\d+ Real", text))
    assert spec.path == str(path) and spec.name == path.stem
    for case in spec:
        assert np.all(np.isfinite(case.input_region.lower))
        assert np.all(case.input_region.lower <= case.input_region.upper)
        assert len(case.unsafe) >= 1
    flat = FLAT_X.findall(text)
    if flat and len(spec) == 1:  # every flat bound must be in the (single) box
        box = spec.cases[0].input_region
        for op, index, value in flat:
            bound = box.upper if op == "<=" else box.lower
            assert bound[int(index)] == float(value)


def test_acasxu_prop1(bench: Path) -> None:
    path = bench / "acasxu" / "prop_1.vnnlib"
    text = path.read_text()
    spec = load_vnnlib(path)
    expected_lo, expected_hi = np.zeros(5), np.zeros(5)
    for op, index, value in FLAT_X.findall(text):
        (expected_hi if op == "<=" else expected_lo)[int(index)] = float(value)
    threshold = float(re.search(rf"\(assert \(>= Y_0 ({NUM})\)\)", text).group(1))
    assert (spec.num_inputs, spec.num_outputs, len(spec)) == (5, 5, 1)
    case = spec.cases[0]
    assert case.input_region == Box(expected_lo, expected_hi)
    assert len(case.unsafe) == 1
    (half,) = case.unsafe
    np.testing.assert_array_equal(half.C, [[-1.0, 0, 0, 0, 0]])
    np.testing.assert_array_equal(half.d, [-threshold])
    x = (expected_lo + expected_hi) / 2
    assert spec.is_violated_by(x, [threshold + 1e-6, 9, 9, 9, 9])
    assert not spec.is_violated_by(x, [threshold - 1e-6, -9, -9, -9, -9])
    assert not spec.is_violated_by(expected_hi + 1e-3, [threshold + 1, 0, 0, 0, 0])


def test_acasxu_prop6_two_boxes(bench: Path) -> None:
    path = bench / "acasxu" / "prop_6.vnnlib"
    text = path.read_text()
    boxes = []
    for line in re.findall(r"^\s*\(and (\(.*X_.*\))\)\s*$", text, re.MULTILINE):
        lo, hi = np.full(5, np.nan), np.full(5, np.nan)
        for op, index, value in re.findall(rf"\((<=|>=) X_(\d) ({NUM})\)", line):
            (hi if op == "<=" else lo)[int(index)] = float(value)
        boxes.append(Box(lo, hi))
    assert len(boxes) == 2
    y_pairs = re.findall(r"\(and \(<= Y_(\d) Y_(\d)\)\)", text)
    expected = set()
    for a, b in y_pairs:  # y_a - y_b <= 0
        row = [0.0] * 5
        row[int(a)], row[int(b)] = 1.0, -1.0
        expected.add(((tuple(row),), (0.0,)))
    spec = load_vnnlib(path)
    assert [c.input_region for c in spec] == boxes
    for case in spec:
        assert disjunct_set(case) == expected


@pytest.mark.parametrize("eps", ["0.03", "0.05"])
def test_mnist_property(bench: Path, eps: str) -> None:
    path = bench / "mnistfc" / f"prop_0_{eps}.vnnlib"
    text = path.read_text()
    label = int(re.search(r"label: (\d+)", text).group(1))
    lo, hi = np.full(784, np.nan), np.full(784, np.nan)
    for op, index, value in FLAT_X.findall(text):
        (hi if op == "<=" else lo)[int(index)] = float(value)
    spec = load_vnnlib(path)
    assert (spec.num_inputs, spec.num_outputs, len(spec)) == (784, 10, 1)
    box = spec.cases[0].input_region
    np.testing.assert_array_equal(box.lower, lo)
    np.testing.assert_array_equal(box.upper, hi)
    # the box is the eps-ball around an image in [0, 1], clipped (float32 rounding)
    assert np.all(lo >= 0) and np.all(hi <= 1)
    assert np.all(hi - lo <= 2 * float(eps) + 1e-7)
    unclipped = (lo > 0) & (hi < 1)
    np.testing.assert_allclose((hi - lo)[unclipped], 2 * float(eps), atol=1e-7)
    expected = set()
    for j in map(int, re.findall(rf"\(and \(>= Y_(\d+) Y_{label}\)\)", text)):
        row = [0.0] * 10
        row[label], row[j] = 1.0, -1.0
        expected.add(((tuple(row),), (0.0,)))
    assert len(expected) == 9
    assert disjunct_set(spec.cases[0]) == expected


# ----- language features ----------------------------------------------------


def test_fast_and_general_paths_agree() -> None:
    flat = header(3, 2) + unit_box(3) + "(assert (>= Y_0 0.5))\n(assert (<= Y_1 -2e-3))\n"
    nested = header(3, 2) + (
        "(assert (and (>= X_0 0) (<= X_0 1) (and (>= X_1 0.0) (<= X_1 1.0))))\n"
        "(assert (<= 0 X_2 1))\n"  # a chain
        "(assert (and (<= 0.5 Y_0) (> -0.002 Y_1)))\n"  # constant first, strict
    )
    assert parse_vnnlib(flat) == parse_vnnlib(nested)


@settings(max_examples=50, deadline=None)
@given(
    bounds=st.lists(st.tuples(st.floats(-1e6, 1e6), st.floats(0, 1e3)), min_size=1, max_size=6),
    wrap=st.booleans(),
)
def test_bounds_round_trip_through_text(bounds: list[tuple[float, float]], wrap: bool) -> None:
    lo = np.array([b[0] for b in bounds])
    hi = lo + np.array([b[1] for b in bounds])
    lines = []
    for i, (a, b) in enumerate(zip(lo, hi)):
        if wrap:
            lines.append(f"(assert (and (<= X_{i} {float(b)!r}) (>= X_{i} {float(a)!r})))")
        else:
            lines.append(f"(assert (<= X_{i} {float(b)!r}))\n(assert (>= X_{i} {float(a)!r}))")
    spec = parse_vnnlib(header(len(bounds), 1) + "\n".join(lines) + "\n(assert (<= Y_0 0))")
    assert spec.cases[0].input_region == Box(lo, hi)


def test_linear_terms_and_comments() -> None:
    text = (
        header(1, 3)
        + unit_box(1)
        + (
            "; a comment with (parens\n"
            "(assert (<= (+ Y_0 (* -2 Y_1) (/ Y_2 4)) 3.5e0)) ; trailing ) comment\n"
            "(assert (>= (- Y_0 Y_2) (- .5)))\n"
        )
    )
    (case,) = parse_vnnlib(text).cases
    (half,) = case.unsafe
    np.testing.assert_array_equal(half.C, [[1, -2, 0.25], [-1, 0, 1]])
    np.testing.assert_array_equal(half.d, [3.5, 0.5])


def test_equality_and_ignored_commands() -> None:
    text = (
        "(set-logic QF_LRA)\n"
        + header(2, 1)
        + (
            "(assert (= X_0 0.25))\n(assert (>= X_1 -1))\n(assert (<= X_1 1))\n"
            "(assert (= Y_0 2))\n(check-sat)\n(get-model)\n(exit)\n"
        )
    )
    (case,) = parse_vnnlib(text).cases
    assert case.input_region == Box([0.25, -1], [0.25, 1])
    np.testing.assert_array_equal(case.unsafe[0].C, [[1.0], [-1.0]])
    np.testing.assert_array_equal(case.unsafe[0].d, [2.0, -2.0])


def test_mixed_dnf_gives_separate_cases() -> None:
    text = header(1, 2) + (
        "(assert (>= Y_1 -10))\n"
        "(assert (or (and (>= X_0 0) (<= X_0 1) (>= Y_0 5))\n"
        "            (and (>= X_0 1) (<= X_0 2) (<= Y_0 -5))\n"
        "            (and (>= X_0 0) (<= X_0 1) (<= Y_0 Y_1))))\n"
    )
    spec = parse_vnnlib(text)
    assert [c.input_region for c in spec] == [Box([0], [1]), Box([1], [2])]
    assert [len(c.unsafe) for c in spec] == [2, 1]

    def unsafe(x: float, y0: float, y1: float) -> bool:
        return y1 >= -10 and (
            (0 <= x <= 1 and y0 >= 5) or (1 <= x <= 2 and y0 <= -5) or (0 <= x <= 1 and y0 <= y1)
        )

    rng = np.random.default_rng(0)
    for x, y0, y1 in rng.uniform(-12, 12, size=(2000, 3)) * [0.25, 1, 1]:
        assert spec.is_violated_by([x], [y0, y1]) == unsafe(x, y0, y1)


def test_product_of_disjunctions() -> None:
    text = (
        header(1, 2)
        + unit_box(1)
        + ("(assert (or (>= Y_0 1) (<= Y_0 -1)))\n(assert (or (>= Y_1 1) (<= Y_1 -1)))\n")
    )
    spec = parse_vnnlib(text)
    assert len(spec) == 1 and len(spec.cases[0].unsafe) == 4
    rng = np.random.default_rng(1)
    for y in rng.uniform(-2, 2, size=(500, 2)):
        assert spec.is_violated_by([0.5], y) == bool(np.all(np.abs(y) >= 1))


def test_empty_terms_are_dropped_and_full_contradiction_is_an_error() -> None:
    text = header(1, 1) + (
        "(assert (or (and (>= X_0 0) (<= X_0 1)) (and (>= X_0 3) (<= X_0 2))))\n"
        "(assert (>= Y_0 0))\n"
    )
    assert [c.input_region for c in parse_vnnlib(text)] == [Box([0], [1])]
    with pytest.raises(SpecError, match="contradictory"):
        parse_vnnlib(header(1, 1) + "(assert (<= X_0 -1))\n(assert (>= X_0 0))\n")


def test_gzip_and_network_check(tmp_path: Path) -> None:
    text = header(2, 1) + unit_box(2) + "(assert (>= Y_0 0))\n"
    plain, packed = tmp_path / "p.vnnlib", tmp_path / "p.vnnlib.gz"
    plain.write_text(text)
    with gzip.open(packed, "wt") as handle:
        handle.write(text)
    assert load_vnnlib(packed) == load_vnnlib(plain)
    assert load_vnnlib(packed).name == "p"

    class Net:
        input_size, output_size = 3, 1

    with pytest.raises(SpecError, match=r"2 inputs and 1 outputs.*3 inputs and 1 outputs"):
        load_vnnlib(plain, network=Net())
    with pytest.raises(SpecError, match=re.escape("missing.vnnlib")):
        load_vnnlib(tmp_path / "missing.vnnlib")


# ----- errors with positions ------------------------------------------------

ERRORS = [
    ("unclosed", "(declare-const X_0 Real)\n  (assert (<= X_0 1)\n", "never closed", 2, 3),
    ("extra close", "(declare-const X_0 Real))\n", "no matching", 1, 25),
    ("undeclared fast", header(1, 1) + unit_box(1) + "(assert (<= Y_3 2))", "'Y_3'", 5, 13),
    ("undeclared nested", header(1, 1) + "(assert (or (>= X_9 2)))", "'X_9'", 3, 17),
    ("bad number", header(1, 1) + "(assert (<= X_0 1.2.3))", "unknown token '1.2.3'", 3, 17),
    ("bad token", header(1, 1) + "(assert\n (<= X_0 @))", "unknown token '@'", 4, 10),
    ("unknown op", header(1, 1) + "(assert (foo X_0 1))", "unknown operator 'foo'", 3, 10),
    ("not", header(1, 1) + "(assert (not (<= X_0 1)))", "unsupported operator 'not'", 3, 10),
    ("non-linear", header(1, 2) + "(assert (<= (* Y_0 Y_1) 1))", "non-linear", 4, 13),
    ("coupled inputs", header(2, 1) + "(assert (<= X_0 X_1))", "several inputs", 4, 9),
    ("mixed", header(1, 1) + "(assert (<= X_0 Y_0))", "mixing inputs and outputs", 3, 9),
    ("bad sort", "(declare-const X_0 Int)", "unsupported sort 'Int'", 1, 20),
    ("bad name", "(declare-const Z Real)", "unsupported variable name 'Z'", 1, 16),
    ("twice", "(declare-const X_0 Real)\n(declare-const X_0 Real)", "declared twice", 2, 16),
    ("unknown command", "(push 1)", "unknown command 'push'", 1, 2),
    ("stray atom", "hello", "outside a command", 1, 1),
    ("nested assert", "(assert (and (assert (<= X_0 1))))", "top level", 1, 14),
    ("huge number", header(1, 1) + "(assert (<= X_0 1e999))", "out of range", 3, 17),
    (
        "missing upper",
        header(2, 1) + "(assert (>= X_0 0))\n(assert (<= X_0 1))\n(assert (>= X_1 0))",
        "X_1 has no finite upper bound",
        2,
        16,
    ),
]


@pytest.mark.parametrize(
    ("name", "text", "message", "line", "column"), ERRORS, ids=[e[0] for e in ERRORS]
)
def test_errors_have_positions(name: str, text: str, message: str, line: int, column: int) -> None:
    with pytest.raises(SpecError, match=re.escape(message)) as info:
        parse_vnnlib(text, path="prop.vnnlib")
    assert (info.value.line, info.value.column) == (line, column)
    assert info.value.path == "prop.vnnlib"
    assert str(info.value).startswith(f"prop.vnnlib:{line}:{column}: ")


def test_index_gaps_and_missing_outputs() -> None:
    with pytest.raises(SpecError, match="X_1 is not declared"):
        parse_vnnlib("(declare-const X_0 Real)(declare-const X_2 Real)(declare-const Y_0 Real)")
    with pytest.raises(SpecError, match="no Y_ variables"):
        parse_vnnlib("(declare-const X_0 Real)" + unit_box(1))
