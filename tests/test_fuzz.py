"""Fuzzing and differential testing (:mod:`verifiNN.fuzz`) at CI size.

A few hundred random problems (every network family, every method) must come
out clean: no unsound answer, no disagreement, no crash. The oracles themselves
are tested first: the region oracle against a hand-computed margin and against
dense sampling, and :func:`~verifiNN.fuzz.check_case` must catch a method that
lies. ``python benchmarks/fuzz.py --n 10000`` is the long run.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from verifiNN import fuzz, ops
from verifiNN.bounds import compute_bounds
from verifiNN.errors import UnsupportedModelError
from verifiNN.fuzz import (
    GRAPH_KINDS,
    FuzzCase,
    Timeouts,
    check_case,
    margins,
    random_case,
    region_oracle,
)
from verifiNN.models.network import Network
from verifiNN.results import Verdict, VerificationResult
from verifiNN.specs import Box, Case, HalfSpaces, LpBall, Specification

#: CI cases: CHUNKS x PER_CHUNK seeds, away from the benchmark's seeds 0..9999.
FIRST_SEED, CHUNKS, PER_CHUNK = 1_000_000, 10, 25

#: Seeds of the newer kinds (:data:`verifiNN.fuzz.GRAPH_KINDS`): a few per kind in the fast
#: tier, NEW_CHUNKS x NEW_PER_CHUNK per kind in the slow one.
FAST_SEEDS, NEW_FIRST_SEED, NEW_CHUNKS, NEW_PER_CHUNK = 8, 2_000_000, 3, 5


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _abs_net() -> Network:
    """``y = relu(x) + relu(-x) = |x|`` on one input."""
    return Network([[[1.0], [-1.0]], [[1.0, 1.0]]], [[0.0, 0.0], [0.0]])


def _spec(region, C, d) -> Specification:
    return Specification((Case(region, (HalfSpaces(C, d),)),), region.size, 1)


@pytest.mark.parametrize(
    ("region", "threshold", "expected"),
    [
        (Box([-1.0], [2.0]), -0.5, 0.5),  # |x| <= -0.5: min |x| + 0.5 at x = 0
        (Box([0.5], [2.0]), 1.0, -0.5),  # |x| <= 1: min |x| - 1 at x = 0.5
        (LpBall([1.0], 0.25, "1"), 0.0, 0.75),
    ],
)
def test_region_oracle_exact_margin(region, threshold: float, expected: float) -> None:
    network = _abs_net()
    spec = _spec(region, [[1.0]], [threshold])
    margin, witness = region_oracle(network, spec)
    assert margin == pytest.approx(expected, abs=1e-9)
    y = network.get_output(witness)
    assert margins(spec, witness[None], y[None])[0] == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("seed", range(20))
def test_region_oracle_is_below_every_sample(seed: int) -> None:
    case = random_case(seed, kinds=["tiny"])
    try:
        margin, _ = region_oracle(case.network, case.spec)
    except UnsupportedModelError:
        pytest.skip("an L2 region: no region oracle")
    rng = np.random.default_rng(seed)
    X = np.vstack([fuzz.sample_region(c.input_region, rng, 2000) for c in case.spec.cases])
    sampled = margins(case.spec, X, case.network.get_output(X)).min()
    assert margin <= sampled + 1e-9
    assert margin >= sampled - 0.5  # dense samples get near the minimum on 1-3 inputs


def test_cases_are_reproducible_and_cover_every_op() -> None:
    first, again = random_case(7), random_case(7)
    x = np.zeros(first.network.input_size)
    assert np.array_equal(first.network.get_output(x), again.network.get_output(x))
    assert first.spec == again.spec
    cases = [random_case(s) for s in range(300)]
    seen = {type(node.op).__name__ for case in cases for node in case.network.nodes}
    every_op = {name for name in ops.__all__ if name not in ("Op", "Shape", "as_tensor")}
    assert every_op <= seen, every_op - seen
    assert {case.kind for case in cases} == set(fuzz.KINDS)


@pytest.mark.parametrize("kind", sorted(GRAPH_KINDS))
def test_new_kinds_are_finite_and_crown_contains_their_outputs(kind: str) -> None:
    """The graphs of the newer kinds compute finite values on dense samples of their
    regions, and CROWN's bounds of every output contain the sampled outputs."""
    for seed in range(FAST_SEEDS):
        case = random_case(seed, kinds=[kind])
        assert case.kind == kind
        network, rng = case.network, np.random.default_rng(seed)
        for spec_case in case.spec.cases:
            X = fuzz.sample_region(spec_case.input_region, rng, 400)
            Y = network.get_output(X)
            assert np.isfinite(Y).all(), f"seed {seed}: non-finite outputs"
            found = compute_bounds(network, spec_case.input_region, method="crown")
            lower, upper = found.lower.numpy()[0], found.upper.numpy()[0]
            slack = 1e-7 * np.maximum(1.0, np.abs(Y))
            assert not np.isnan(lower).any() and not np.isnan(upper).any(), f"seed {seed}"
            assert (lower - Y <= slack).all(), f"seed {seed}: below CROWN's lower bound"
            assert (Y - upper <= slack).all(), f"seed {seed}: above CROWN's upper bound"


def test_an_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown network kind"):
        fuzz.random_network(np.random.default_rng(0), "nope")


def _always(verdict: Verdict, example=None):
    def fake(network, spec, *, method, timeout=None, seed=0):
        return VerificationResult.make(
            verdict, method=method, adversarial_example=example, statistics={}
        )

    return fake


def test_check_case_catches_a_wrong_unsat(monkeypatch: pytest.MonkeyPatch) -> None:
    network = _abs_net()
    case = FuzzCase(0, "tiny", network, _spec(Box([-1.0], [1.0]), [[1.0]], [0.5]))  # sat
    monkeypatch.setattr(fuzz.check, "verify", _always(Verdict.UNSAT))
    report = check_case(case, methods=["crown", "milp"])
    assert not report.clean and len(report.unsound) == 2
    assert "region oracle" in report.unsound[0]


def test_check_case_catches_a_false_counterexample(monkeypatch: pytest.MonkeyPatch) -> None:
    network = _abs_net()
    case = FuzzCase(0, "tiny", network, _spec(Box([-1.0], [1.0]), [[1.0]], [-0.5]))  # unsat
    fake = _always(Verdict.SAT)

    def lying(network, spec, **kwargs):
        result = fake(network, spec, **kwargs)
        result["counterexample"] = (np.array([0.0]), np.array([-1.0]))
        return result

    monkeypatch.setattr(fuzz.check, "verify", lying)
    report = check_case(case, methods=["bab"])
    assert any("not confirmed" in m for m in report.unsound)
    assert not report.disagreements  # a false counterexample is unsound, not a disagreement


def test_check_case_accepts_near_ties() -> None:
    # |x| <= 0 on [-1, 1]: the only counterexample is x = 0, margin exactly 0
    case = FuzzCase(0, "tiny", _abs_net(), _spec(Box([-1.0], [1.0]), [[1.0]], [0.0]))
    report = check_case(case)
    assert report.clean, report.summary()
    assert report.oracle_margin == pytest.approx(0.0, abs=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("chunk", range(CHUNKS))
def test_fuzz_cases(chunk: int) -> None:
    """Every method on PER_CHUNK random problems: clean, and the seed in every message."""
    timeouts = Timeouts(attack=0.02, complete=0.1, auto=0.3)
    findings = []
    for i in range(PER_CHUNK):
        report = check_case(random_case(FIRST_SEED + chunk * PER_CHUNK + i), timeouts=timeouts)
        assert set(report.verdicts) >= {"auto", "attack", "ibp", "crown", "bab", "milp"}
        if not report.clean:
            findings.append(report.summary())
    assert not findings, "\n".join(findings)


@pytest.mark.slow
@pytest.mark.parametrize("chunk", range(NEW_CHUNKS))
@pytest.mark.parametrize("kind", sorted(GRAPH_KINDS))
def test_fuzz_new_kinds(kind: str, chunk: int) -> None:
    """Every method on NEW_PER_CHUNK problems of a newer kind: no unsound answer or bound,
    no disagreement; methods that do not support an op answer 'n/a', never crash."""
    findings = []
    for i in range(NEW_PER_CHUNK):
        seed = NEW_FIRST_SEED + chunk * NEW_PER_CHUNK + i
        report = check_case(random_case(seed, kinds=[kind]))
        assert "error" not in report.verdicts.values(), report.summary()
        if report.unsound or report.disagreements:
            findings.append(report.summary())
    assert not findings, "\n".join(findings)
