"""Tests of the property types (verifiNN.specs)."""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from verifiNN.errors import InvalidInputError, SpecError
from verifiNN.models.network import Network
from verifiNN.specs import (
    INPUT_TOL,
    Box,
    Case,
    HalfSpaces,
    LpBall,
    Specification,
    robustness_spec,
)

REPO = Path(__file__).resolve().parents[1]
BENCH = Path(os.environ.get("VERIFINN_BENCHMARKS", REPO.parent / "shared" / "benchmarks"))


@pytest.fixture(scope="session")
def bench() -> Path:
    """The shared benchmark folder (VERIFINN_BENCHMARKS or ../shared/benchmarks)."""
    if not BENCH.is_dir():
        pytest.skip(f"benchmark folder {BENCH} not found (set VERIFINN_BENCHMARKS)")
    return BENCH


class AffineNet:
    """Stand-in network y = W x + b with the attributes specs rely on."""

    def __init__(self, W, b, labeler: str = "argmax") -> None:
        self.W, self.b = np.asarray(W, dtype=float), np.asarray(b, dtype=float)
        self.output_size, self.input_size = self.W.shape
        self.labeler = labeler
        self.calls = 0

    def get_output(self, x) -> np.ndarray:
        self.calls += 1
        return self.W @ np.ravel(x) + self.b

    def classify(self, x) -> int:
        y = self.get_output(x)
        return int(np.argmax(y) if self.labeler == "argmax" else np.argmin(y))


# ----- regions --------------------------------------------------------------


@pytest.mark.parametrize(
    ("lower", "upper", "message"),
    [
        ([0, 2], [1, 1], "lower\\[1\\] = 2.0 > upper\\[1\\] = 1.0"),
        ([0, np.nan], [1, 1], "finite"),
        ([0, 0], [1, np.inf], "finite"),
        ([0, 0], [1], "differ in length"),
        (["a"], [1], "numeric"),
    ],
)
def test_box_validation(lower, upper, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        Box(lower, upper)


def test_box_is_a_frozen_copy() -> None:
    lower = np.zeros((2, 2))
    box = Box(lower, np.ones(4))
    lower[0, 0] = -5
    assert box.lower.shape == (4,) and box.lower[0] == 0
    with pytest.raises(ValueError):
        box.lower[0] = 1
    with pytest.raises(AttributeError):
        box.lower = np.ones(4)
    assert box == Box([-0.0] * 4, [1] * 4) and hash(box) == hash(Box([0.0] * 4, [1] * 4))
    assert box != Box([0] * 4, [2] * 4)
    assert "Box(size=4" in repr(box)


def test_box_membership_tolerance() -> None:
    box = Box([0.0, -1e6], [1.0, 1e6])
    assert box.contains([1 + 0.5 * INPUT_TOL, 0])
    assert not box.contains([1 + 2 * INPUT_TOL, 0])
    assert box.contains([0.5, 1e6 * (1 + 0.5 * INPUT_TOL)])  # relative for large bounds
    assert not box.contains([0.5, 1e6 * (1 + 2 * INPUT_TOL)])
    assert not box.contains([1 + 0.5 * INPUT_TOL, 0], tol=0.0)
    assert box.contains([0.0, -1e6], tol=0.0) and box.contains([1.0, 1e6], tol=0.0)  # closed
    np.testing.assert_array_equal(box.contains_batch([[0, 0], [2, 0], [1, 1e6]]), [1, 0, 1])
    with pytest.raises(InvalidInputError, match="3 entries per row, expected 2"):
        box.contains([0, 0, 0])


@settings(max_examples=100, deadline=None)
@given(
    center=st.lists(st.floats(-5, 5), min_size=1, max_size=5),
    eps=st.floats(0, 3),
    norm=st.sampled_from(["inf", "1", "2"]),
    seed=st.integers(0, 2**32 - 1),
)
def test_lpball_membership_matches_the_norm(center, eps, norm, seed) -> None:
    ball = LpBall(center, eps, norm)
    rng = np.random.default_rng(seed)
    for x in np.asarray(center) + rng.uniform(-2 * eps - 0.1, 2 * eps + 0.1, (20, len(center))):
        diffs = [abs(a - c) for a, c in zip(x, center)]
        dist = {"inf": max(diffs), "1": sum(diffs), "2": math.sqrt(sum(d * d for d in diffs))}[norm]
        if abs(dist - eps) > 1e-6:
            assert ball.contains(x) == (dist <= eps)
    box = ball.bounding_box()
    np.testing.assert_array_equal(box.lower, np.asarray(center) - eps)
    np.testing.assert_array_equal(box.upper, np.asarray(center) + eps)


def test_lpball_with_domain() -> None:
    ball = LpBall([0.1, 0.9], 0.3, "2", lower=0, upper=1)
    np.testing.assert_allclose(ball.bounding_box().lower, [0.0, 0.6])
    np.testing.assert_allclose(ball.bounding_box().upper, [0.4, 1.0])
    assert ball.contains([0.0, 0.95]) and not ball.contains([-0.05, 0.9])
    assert LpBall([0.5], 0.1, np.inf).norm == "inf" and LpBall([0.5], 0.1, 1).ord == 1
    with pytest.raises(InvalidInputError, match="empty"):
        LpBall([2.0, 2.0], 1.1, "2", lower=0, upper=1)  # distance sqrt(2) > 1.1
    LpBall([2.0, 2.0], 1.1, "inf", lower=0, upper=1)  # inf-distance 1 <= 1.1: fine
    for bad in (-0.1, np.nan, np.inf, "x"):
        with pytest.raises(InvalidInputError, match="epsilon"):
            LpBall([0.0], bad)
    with pytest.raises(InvalidInputError, match="norm"):
        LpBall([0.0], 0.1, "3")


# ----- output constraints and specifications --------------------------------


def test_halfspaces_validation_and_repr() -> None:
    half = HalfSpaces([1.0, -1.0, 0.0], 0.0)
    assert half.C.shape == (1, 3) and half.num_outputs == 3
    assert repr(half) == "HalfSpaces(y_0 - y_1 <= 0)"
    assert HalfSpaces(np.zeros((0, 2)), []).contains([5, 5])  # no constraint: always true
    with pytest.raises(SpecError, match="shape"):
        HalfSpaces(np.zeros((2, 3)), [0.0])
    with pytest.raises(SpecError, match="finite"):
        HalfSpaces([[np.nan]], [0.0])


def brute_violated(cases, x, y) -> bool:
    """Plain-Python evaluation of the specification semantics."""
    for lo, hi, disjuncts in cases:
        if not all(a <= v <= b for a, v, b in zip(lo, x, hi)):
            continue
        for rows in disjuncts:
            if all(sum(c * v for c, v in zip(row, y)) <= d for row, d in rows):
                return True
    return False


@st.composite
def random_spec(draw):
    n_in, n_out = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    grid = st.integers(-8, 8).map(lambda k: k / 4)
    cases = []
    for _ in range(draw(st.integers(1, 3))):
        lo = [draw(grid) for _ in range(n_in)]
        hi = [a + draw(st.integers(0, 8)) / 4 for a in lo]
        disjuncts = []
        for _ in range(draw(st.integers(0, 3))):
            rows = [
                ([draw(st.integers(-2, 2)) for _ in range(n_out)], draw(st.integers(-3, 3)))
                for _ in range(draw(st.integers(0, 3)))
            ]
            disjuncts.append(rows)
        cases.append((lo, hi, disjuncts))
    points = draw(
        st.lists(
            st.tuples(
                st.lists(grid, min_size=n_in, max_size=n_in),
                st.lists(st.integers(-3, 3), min_size=n_out, max_size=n_out),
            ),
            min_size=1,
            max_size=10,
        )
    )
    return n_in, n_out, cases, points


def make_spec(n_in, n_out, cases) -> Specification:
    built = []
    for lo, hi, disjuncts in cases:
        halves = tuple(
            HalfSpaces(
                np.array([r for r, _ in rows], dtype=float).reshape(len(rows), n_out),
                [d for _, d in rows],
            )
            for rows in disjuncts
        )
        built.append(Case(Box(lo, hi), halves))
    return Specification(built, n_in, n_out)


@settings(max_examples=200, deadline=None)
@given(random_spec())
def test_is_violated_by_matches_brute_force(data) -> None:
    n_in, n_out, cases, points = data
    spec = make_spec(n_in, n_out, cases)
    expected = [brute_violated(cases, x, y) for x, y in points]
    assert [spec.is_violated_by(x, y) for x, y in points] == expected
    X = np.array([x for x, _ in points], dtype=float)
    Y = np.array([y for _, y in points], dtype=float)
    np.testing.assert_array_equal(spec.violations(X, Y), expected)


def test_output_tolerance() -> None:
    spec = Specification([Case(Box([0], [1]), HalfSpaces([[1.0]], [0.0]))])
    assert not spec.is_violated_by([0.5], [1e-7])
    assert spec.is_violated_by([0.5], [1e-7], tol=1e-6)


def test_specification_validation() -> None:
    case = Case(Box([0, 0], [1, 1]), (HalfSpaces([1.0, 0.0, 0.0], 0.0),))
    spec = Specification([case], name="p")
    assert (spec.num_inputs, spec.num_outputs, len(spec)) == (2, 3, 1)
    assert "Specification('p', num_inputs=2, num_outputs=3, 1 case" in repr(spec)
    with pytest.raises(SpecError, match="at least one"):
        Specification([])
    with pytest.raises(SpecError, match="expected 3"):
        Specification([case, Case(Box([0, 0, 0], [1, 1, 1]), ())], 3, 3)
    with pytest.raises(SpecError, match="4 outputs"):
        Specification([case], 2, 4)
    with pytest.raises(SpecError, match="different output sizes"):
        Case(Box([0], [1]), (HalfSpaces([1.0], 0), HalfSpaces([1.0, 1.0], 0)))
    two = Specification([case, Case(Box([-1, 0.5], [0.5, 2]), ())], 2, 3)
    assert two.bounding_box() == Box([-1, 0], [1, 2])


def test_check_counterexample_and_validate_for() -> None:
    net = AffineNet([[1.0, 0.0], [0.0, 1.0]], [0.0, 0.0])
    spec = Specification([Case(Box([0, 0], [1, 1]), HalfSpaces([[1.0, -1.0]], [0.0]))])
    assert spec.check_counterexample(net, [0.2, 0.7])  # y_1 >= y_0
    assert not spec.check_counterexample(net, [0.7, 0.2])
    assert not spec.check_counterexample(net, [-0.5, 0.7])  # outside the box
    assert not spec.check_counterexample(net, [np.nan, 0.7])
    assert net.calls == 2  # it ran the network for the in-box candidates
    wide = AffineNet(np.eye(3), np.zeros(3))
    with pytest.raises(SpecError, match="2 inputs and 2 outputs, but the network has 3 inputs"):
        spec.validate_for(wide)
    with pytest.raises(SpecError):
        spec.check_counterexample(wide, [0, 0, 0])


# ----- robustness_spec ------------------------------------------------------


def test_robustness_spec_argmax_and_argmin() -> None:
    net = AffineNet(np.eye(3), [0.0, 0.0, 0.0])
    spec = robustness_spec(net, [0.1, 0.9, 0.3], 0.2)
    (case,) = spec.cases
    np.testing.assert_allclose(case.input_region.lower, [-0.1, 0.7, 0.1])
    np.testing.assert_allclose(case.input_region.upper, [0.3, 1.1, 0.5])
    rows = {(tuple(h.C[0]), h.d[0]) for h in case.unsafe}
    assert rows == {((-1.0, 1.0, 0.0), 0.0), ((0.0, 1.0, -1.0), 0.0)}  # label 1
    net.labeler = "argmin"
    spec = robustness_spec(net, [0.1, 0.9, 0.3], 0.2)  # label 0 from classify
    rows = {(tuple(h.C[0]), h.d[0]) for h in spec.cases[0].unsafe}
    assert rows == {((-1.0, 1.0, 0.0), 0.0), ((-1.0, 0.0, 1.0), 0.0)}
    spec = robustness_spec(net, [0.1, 0.9, 0.3], 0.2, label=2, labeler="argmax")
    rows = {(tuple(h.C[0]), h.d[0]) for h in spec.cases[0].unsafe}
    assert rows == {((-1.0, 0.0, 1.0), 0.0), ((0.0, -1.0, 1.0), 0.0)}


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    eps=st.floats(0.01, 1.0),
    labeler=st.sampled_from(["argmax", "argmin"]),
)
def test_robustness_spec_semantics(seed: int, eps: float, labeler: str) -> None:
    rng = np.random.default_rng(seed)
    net = AffineNet(rng.normal(size=(4, 3)), rng.normal(size=4), labeler)
    x0 = rng.uniform(0, 1, 3)
    spec = robustness_spec(net, x0, eps, domain=(0.0, 1.0))
    label = net.classify(x0)
    box = spec.cases[0].input_region
    np.testing.assert_allclose(box.lower, np.clip(x0 - eps, 0, 1))
    np.testing.assert_allclose(box.upper, np.clip(x0 + eps, 0, 1))
    for x in rng.uniform(box.lower, box.upper, (30, 3)):
        y = net.get_output(x)
        better = [y[j] >= y[label] if labeler == "argmax" else y[j] <= y[label] for j in range(4)]
        assert spec.is_violated_by(x, y) == any(b for j, b in enumerate(better) if j != label)
    assert not spec.is_violated_by(x0, net.get_output(x0)) or len(set(net.get_output(x0))) < 4


def test_robustness_spec_other_norms_and_errors() -> None:
    net = AffineNet(np.eye(2), [0.0, 0.0])
    spec = robustness_spec(net, [0.5, 0.2], 0.3, norm="2", domain=(0, 1))
    region = spec.cases[0].input_region
    assert isinstance(region, LpBall) and region.norm == "2" and region.epsilon == 0.3
    assert region.contains([0.5, 0.0]) and not region.contains([0.5, -0.01])
    with pytest.raises(InvalidInputError, match="epsilon"):
        robustness_spec(net, [0.5, 0.2], -1)
    with pytest.raises(InvalidInputError, match="norm"):
        robustness_spec(net, [0.5, 0.2], 0.1, norm="0")
    with pytest.raises(InvalidInputError, match="3 entries, the network takes 2"):
        robustness_spec(net, [0.5, 0.2, 0.1], 0.1)
    with pytest.raises(InvalidInputError, match="out of range"):
        robustness_spec(net, [0.5, 0.2], 0.1, label=2)
    with pytest.raises(InvalidInputError, match="labeler"):
        robustness_spec(net, [0.5, 0.2], 0.1, labeler="softmax")
    with pytest.raises(InvalidInputError, match="domain"):
        robustness_spec(net, [5.0, 0.2], 0.1, domain=(0, 1))


def test_seed_example_with_real_network() -> None:
    W1, b1 = np.array([[1, 0], [0, 1]]), np.array([1, 1])
    W2, b2 = np.array([[0, 1], [1, 0]]), np.array([2, 2])
    network = Network([W1, W2], [b1, b2], activation="ReLU", labeler="argmax")
    spec = robustness_spec(network, np.array([1, 2]), 1.5)
    assert spec.check_counterexample(network, [1.5, 1.5])  # the seed's adversarial example
    assert not spec.check_counterexample(network, [1.0, 2.0])


@pytest.mark.parametrize("name", ["prop_0_0.03", "prop_7_0.05", "prop_14_0.05"])
def test_robustness_spec_matches_mnist_vnnlib(bench: Path, name: str) -> None:
    from verifiNN.io.vnnlib import load_vnnlib

    path = bench / "mnistfc" / f"{name}.vnnlib"
    file_spec = load_vnnlib(path)
    lo, hi = file_spec.cases[0].input_region.lower, file_spec.cases[0].input_region.upper
    label = int(re.search(r"label: (\d+)", path.read_text()).group(1))
    free = (lo > 0) & (hi < 1)
    eps = float(np.median((hi - lo)[free]) / 2)
    assert eps == pytest.approx(float(name.split("_")[-1]), abs=1e-7)
    x0 = np.where(free, (lo + hi) / 2, np.where(lo <= 0, hi - eps, lo + eps))
    net = AffineNet(np.zeros((10, 784)), np.eye(10)[label])  # classifies everything as label
    spec = robustness_spec(net, x0, eps, domain=(0.0, 1.0))
    box = spec.cases[0].input_region
    np.testing.assert_allclose(box.lower, lo, rtol=0, atol=1e-7)
    np.testing.assert_allclose(box.upper, hi, rtol=0, atol=1e-7)

    def as_set(s: Specification) -> set:
        return {(h.C.tobytes(), h.d.tobytes()) for h in s.cases[0].unsafe}

    assert len(as_set(spec)) == 9 and as_set(spec) == as_set(file_spec)


# ------------------------------------------------------------------ exact projection
@settings(max_examples=200, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    norm=st.sampled_from(["inf", "1", "2"]),
    eps=st.sampled_from([0.05, 0.1, 1 / 3, 1e-7, 2.5]),
    domain=st.booleans(),
)
def test_projection_lands_inside_exactly(seed, norm, eps, domain):
    # the user's case: x_0 + eps may sit 4e-17 beyond eps from x_0 in float64
    rng = np.random.default_rng(seed)
    center = rng.uniform(0.05, 0.95, 6)
    lower, upper = (0.0, 1.0) if domain else (None, None)
    ball = LpBall(center, eps, norm, lower, upper)
    for x in (center + eps * rng.choice([-1.0, 1.0], 6), center + rng.normal(0, eps, 6)):
        p = ball.project(x)
        assert ball.contains(p, tol=0.0)
        assert np.linalg.norm(p - center, ball.ord) <= eps
        if ball.contains(x, tol=0.0):
            assert np.allclose(p, x, rtol=0, atol=1e-12)  # a point inside barely moves
    box = Box(center - eps, center + eps)
    x = center + 2 * eps * rng.normal(size=6)
    assert box.contains(box.project(x), tol=0.0)
