"""Verdicts from bounds: ``prove`` and ``CROWNVerifier``."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from test_bounds_soundness import mlp, outputs
from verifiNN import Network
from verifiNN.bounds import AlphaOptions
from verifiNN.errors import InvalidInputError, SpecError
from verifiNN.results import Verdict
from verifiNN.search.prove import prove
from verifiNN.specs import Box, Case, HalfSpaces, LpBall, Specification, robustness_spec
from verifiNN.verifiers import CROWNVerifier

torch.set_num_threads(1)
METHODS = ("ibp", "crown", "alpha-crown", "lp")
FAST = {"alpha-crown": AlphaOptions(iterations=5)}


def _identity_net() -> Network:
    return Network([np.eye(2)], [np.zeros(2)])


def _spec(region, *disjuncts) -> Specification:
    return Specification((Case(region, tuple(disjuncts)),))


@pytest.mark.parametrize("method", METHODS)
def test_a_conjunction_is_empty_when_one_row_is_refuted(method):
    net = _identity_net()
    box = Box([0.0, 0.0], [1.0, 1.0])
    refuted = HalfSpaces([[1.0, 0.0], [0.0, 1.0]], [-1.0, 0.5])  # y0 <= -1 and y1 <= 0.5
    assert prove(net, _spec(box, refuted), method).verdict is Verdict.UNSAT
    reachable = HalfSpaces([[0.0, 1.0]], [0.5])
    result = prove(net, _spec(box, refuted, reachable), method)  # ... or y1 <= 0.5
    assert result.verdict is Verdict.UNKNOWN and result.statistics["cases_proved"] == 0


def test_cases_of_several_kinds_must_all_be_proved():
    net = _identity_net()
    far = HalfSpaces([[1.0, 1.0]], [-5.0])  # y0 + y1 <= -5
    spec = Specification(
        (
            Case(Box([0, 0], [1, 1]), (far,)),
            Case(LpBall([0.5, 0.5], 0.5, "2"), (far,)),
            Case(LpBall([0.5, 0.5], 0.5, "1", lower=0.0), (far,)),
        )
    )
    result = prove(net, spec, "crown")
    assert result.verdict is Verdict.UNSAT and result.statistics["cases_proved"] == 3
    near = HalfSpaces([[1.0, 1.0]], [0.1])
    spec = Specification((*spec.cases, Case(Box([0, 0], [1, 1]), (near,))))
    result = prove(net, spec, "crown")
    assert result.verdict is Verdict.UNKNOWN and result.statistics["cases_proved"] == 3


def test_degenerate_unsafe_regions():
    net = _identity_net()
    box = Box([0.0, 0.0], [1.0, 1.0])
    everything = HalfSpaces(np.zeros((0, 2)), np.zeros(0))  # no constraint: all outputs unsafe
    assert prove(net, _spec(box, everything), "crown").verdict is Verdict.UNKNOWN
    assert prove(net, Specification((Case(box, ()),), 2, 2), "crown").verdict is Verdict.UNSAT


def test_mismatched_specification_and_bad_method():
    net = _identity_net()
    spec = _spec(Box([0.0], [1.0]), HalfSpaces([[1.0, 0.0, 0.0]], [0.0]))
    with pytest.raises(SpecError):
        prove(net, spec, "crown")
    with pytest.raises(InvalidInputError):
        prove(net, _spec(Box([0, 0], [1, 1]), HalfSpaces([[1.0, 0.0]], [0.0])), "magic")


def _random_spec(rng: np.random.Generator, n_in: int, n_out: int) -> Specification:
    cases = []
    for _ in range(rng.integers(1, 3)):
        center = rng.normal(size=n_in)
        region = Box(center - 0.3, center + 0.3)
        disjuncts = tuple(
            HalfSpaces(rng.normal(size=(k, n_out)), rng.normal(size=k) - 1.0)
            for k in rng.integers(1, 3, size=rng.integers(1, 3))
        )
        cases.append(Case(region, disjuncts))
    return Specification(tuple(cases))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_never_unsat_when_a_counterexample_exists(seed):
    rng = np.random.default_rng(seed)
    net = mlp(rng, [3, 8, 8, 3])
    spec = _random_spec(rng, 3, 3)
    has_counterexample = False
    for case in spec.cases:
        box = case.input_region
        x = rng.uniform(box.lower, box.upper, size=(3000, 3))
        y = outputs(net, x[None])[0]
        has_counterexample |= bool(case.unsafe_batch(y).any())
    verdicts = {m: prove(net, spec, m, options=FAST.get(m)).verdict for m in METHODS}
    if has_counterexample:
        assert set(verdicts.values()) == {Verdict.UNKNOWN}
    if verdicts["ibp"] is Verdict.UNSAT:
        assert set(verdicts.values()) == {Verdict.UNSAT}  # tighter methods prove it too


def test_benchmark_sanity_instances(benchmark_data):
    from verifiNN.io import load_onnx, load_vnnlib

    folder = benchmark_data / "test"
    for onnx_name, vnnlib, expected in (
        ("test_tiny", "test_tiny", "unsat"),
        ("test_small", "test_small", "unsat"),
        ("test_sat", "test_prop", "sat"),
        ("test_unsat", "test_prop", "unsat"),
    ):
        net = load_onnx(folder / f"{onnx_name}.onnx")
        spec = load_vnnlib(folder / f"{vnnlib}.vnnlib")
        verdict = prove(net, spec, "crown").verdict
        assert verdict is (Verdict.UNSAT if expected == "unsat" else Verdict.UNKNOWN)


# ----------------------------------------------------------- CROWNVerifier
def _margin_net(rng) -> tuple[Network, np.ndarray]:
    net = mlp(rng, [4, 16, 16, 3])
    x0 = rng.normal(size=4)
    return net, x0


@pytest.mark.parametrize("method", ["crown", "alpha-crown"])
def test_crown_verifier_robust_for_small_epsilon(method):
    net, x0 = _margin_net(np.random.default_rng(21))
    verifier = CROWNVerifier(method, options=FAST.get(method))
    result = verifier.verify_epsilon_robustness(net, x0, 1e-4)
    assert result.robustness_status == "robust" and result.verdict is Verdict.UNSAT
    assert result.verification_status == "verified"
    assert result.lower_bound == 1e-4 and result.label == net.classify(x0)
    assert result.pointwise_robustness is None and result.adversarial_example is None


def test_crown_verifier_unknown_on_a_tie():
    net = Network([np.array([[1.0, 0.0], [1.0, 0.0]])], [np.zeros(2)])  # two equal scores
    result = CROWNVerifier().verify_epsilon_robustness(net, [0.3, 0.1], 0.01)
    assert result.robustness_status == "unknown" and result.verdict is Verdict.UNKNOWN
    pointwise = CROWNVerifier().compute_pointwise_robustness(net, [0.3, 0.1], 0.01)
    assert pointwise.lower_bound == 0.0


@pytest.mark.parametrize("method", ["crown", "alpha-crown"])
def test_pointwise_lower_bound_is_certified(method):
    rng = np.random.default_rng(22)
    net, x0 = _margin_net(rng)
    verifier = CROWNVerifier(method, options=FAST.get(method), tolerance=1e-2)
    result = verifier.compute_pointwise_robustness(net, x0, 2.0)
    bound = result.lower_bound
    assert 0.0 < bound < 2.0 and result.robustness_status in ("unknown", "not_robust")
    if result.adversarial_example is not None:  # the attack's upper bound
        assert net.classify(result.adversarial_example) != net.classify(x0)
        assert bound <= result.upper_bound == result.pointwise_robustness
    assert verifier.verify_epsilon_robustness(net, x0, bound).robustness_status == "robust"
    # no sampled point closer than the bound changes the label
    label = net.classify(x0)
    directions = rng.choice([-1.0, 1.0], size=(20000, 4)) * rng.uniform(0, 1, size=(20000, 4))
    x = x0 + bound * directions
    assert np.all(net.classify(x) == label)
    # and the largest distance that is proved is below the distance of any adversarial example
    far = x0 + 2.0 * rng.uniform(-1, 1, size=(20000, 4))
    flipped = far[net.classify(far) != label]
    if len(flipped):
        assert bound <= np.min(np.max(np.abs(flipped - x0), axis=1))


def test_pointwise_robust_at_epsilon():
    net, x0 = _margin_net(np.random.default_rng(23))
    result = CROWNVerifier().compute_pointwise_robustness(net, x0, 1e-4)
    assert result.robustness_status == "robust" and result.lower_bound == 1e-4


def test_crown_verifier_validates_arguments():
    net, x0 = _margin_net(np.random.default_rng(24))
    with pytest.raises(InvalidInputError):
        CROWNVerifier("lp")
    with pytest.raises(InvalidInputError):
        CROWNVerifier().verify_epsilon_robustness(net, x0, -1.0)
    with pytest.raises(InvalidInputError):
        CROWNVerifier().compute_pointwise_robustness(net, x0[:2], 0.1)


def test_robustness_spec_agrees_with_verifier():
    net, x0 = _margin_net(np.random.default_rng(25))
    spec = robustness_spec(net, x0, 1e-3)
    assert prove(net, spec, "crown").verdict is Verdict.UNSAT
