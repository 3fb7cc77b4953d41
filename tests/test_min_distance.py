"""Exact minimal adversarial distance: the MILP against brute force over activation regions."""

from __future__ import annotations

import itertools

import cvxpy as cp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog

from conftest import random_mlp_params
from verifiNN.budget import Budget
from verifiNN.errors import InvalidInputError
from verifiNN.models.network import Network
from verifiNN.results import DistanceStatus, RobustnessStatus, Verdict
from verifiNN.search.distance import minimal_adversarial_distance
from verifiNN.verifiers import CROWNVerifier, LPVerifier, MILPVerifier, SDPVerifier
from verifiNN.verifiers.base import ROBUSTNESS_KEYS
from verifiNN.verifiers.robustness import (
    certified_radius,
    descend_regions,
    exact_robustness,
    narrow_radius,
)

ORD = {"inf": np.inf, "1": 1, "2": 2}


def _tiny_net(seed: int) -> Network:
    rng = np.random.default_rng(seed)
    n_in = int(rng.integers(2, 4))
    hidden = [int(h) for h in rng.integers(2, 5, size=int(rng.integers(1, 3)))]
    return Network(*random_mlp_params(rng, [n_in, *hidden, 3]))


def _regions(network: Network):
    """Every activation pattern as ``(G, h, Y, y0)``: the region ``G x + h >= 0``
    on which the network is ``y = Y x + y0``."""
    mlp = network.as_mlp()
    sizes = [w.shape[0] for w in mlp.weights[:-1]]
    for bits in itertools.product([0.0, 1.0], repeat=sum(sizes)):
        n = mlp.weights[0].shape[1]
        A, c = np.eye(n), np.zeros(n)
        G, h, offset = [], [], 0
        for W, b, size in zip(mlp.weights[:-1], mlp.biases[:-1], sizes, strict=True):
            zA, zc = W @ A, W @ c + b
            phase = np.array(bits[offset : offset + size])
            offset += size
            sign = 2 * phase - 1  # active: z >= 0, inactive: -z >= 0
            G.append(sign[:, None] * zA)
            h.append(sign * zc)
            A, c = phase[:, None] * zA, phase * zc
        yield (
            np.vstack(G),
            np.concatenate(h),
            mlp.weights[-1] @ A,
            mlp.weights[-1] @ c + mlp.biases[-1],
        )


def _brute_force(network: Network, x0: np.ndarray, eps: float, norm: str, label: int) -> float:
    """Min over activation regions and classes of the distance to ``y_j >= y_label``."""
    n, best = x0.size, np.inf
    for G, h, Y, y0 in _regions(network):
        for j in range(Y.shape[0]):
            if j == label:
                continue
            # feasibility of region, class and the L-inf box of the ball
            A_ub = np.vstack([-G, -(Y[j] - Y[label])[None]])
            b_ub = np.concatenate([h, [y0[j] - y0[label]]])
            bounds = list(zip(x0 - eps, x0 + eps, strict=True))
            if linprog(np.zeros(n), A_ub=A_ub, b_ub=b_ub, bounds=bounds).status != 0:
                continue
            x = cp.Variable(n)
            cons = [A_ub @ x <= b_ub, cp.abs(x - x0) <= eps]
            problem = cp.Problem(cp.Minimize(cp.norm(x - x0, ORD[norm])), cons)
            problem.solve(solver=cp.CLARABEL, tol_gap_abs=1e-10, tol_gap_rel=1e-10, tol_feas=1e-10)
            if problem.status in ("optimal", "optimal_inaccurate"):
                best = min(best, float(problem.value))
    return best


@pytest.mark.slow
@pytest.mark.parametrize("norm", ["inf", "1", "2"])
@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 100_000), eps=st.floats(0.1, 1.5))
def test_exact_distance_matches_brute_force(norm: str, seed: int, eps: float) -> None:
    network = _tiny_net(seed)
    rng = np.random.default_rng(seed + 1)
    x0 = rng.uniform(-1, 1, network.input_size)
    label = int(network.classify(x0))
    truth = _brute_force(network, x0, eps, norm, label)
    result = minimal_adversarial_distance(network, x0, eps, norm)
    assert result.label == label
    if truth > eps + 1e-6:
        assert result.status == "robust"
        assert result.lower == pytest.approx(eps) and result.example is None
        return
    if truth > eps - 1e-6:
        return  # a tie with the ball's radius: either answer is right
    assert result.status == "exact"
    assert abs(result.lower - truth) <= 1e-6, (result.lower, truth)
    x = result.example
    assert network.classify(x) != label, "the example does not change the label"
    distance = float(np.linalg.norm(x - x0, ORD[norm]))
    assert distance == pytest.approx(result.upper, abs=1e-12)
    assert result.lower - 1e-9 <= result.upper <= eps + 1e-6
    assert result.upper - result.lower <= 1e-4


def test_seed_example_distances() -> None:
    """The seed's toy network: the boundary x1 = x2 is 0.5 (L-inf), 1 (L-1), 1/sqrt(2) (L-2)
    away from x_0 = (1, 2)."""
    W1, b1 = np.eye(2), np.ones(2)
    W2, b2 = np.array([[0.0, 1.0], [1.0, 0.0]]), np.full(2, 2.0)
    network = Network([W1, W2], [b1, b2], activation="ReLU", labeler="argmax")
    for norm, expected in (("inf", 0.5), ("1", 1.0), ("2", 1 / np.sqrt(2))):
        result = minimal_adversarial_distance(network, np.array([1.0, 2.0]), 1.5, norm)
        assert result.status == "exact"
        assert result.lower == pytest.approx(expected, abs=1e-6)
        assert network.classify(result.example) == 1


# ------------------------------------------------------------ the verifiers' brackets
@pytest.mark.slow
@pytest.mark.parametrize("norm", ["inf", "1", "2"])
@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 100_000), eps=st.floats(0.2, 2.0))
def test_every_bracket_contains_the_exact_distance(norm: str, seed: int, eps: float) -> None:
    network = _tiny_net(seed)
    x0 = np.random.default_rng(seed + 2).uniform(-1, 1, network.input_size)
    label = int(network.classify(x0))
    exact = MILPVerifier().compute_pointwise_robustness(network, x0, eps, norm)
    verifiers = [CROWNVerifier(attack_timeout=5.0), CROWNVerifier("alpha-crown")]
    if norm == "inf":
        verifiers.append(LPVerifier())
    for verifier in verifiers:
        result = verifier.compute_pointwise_robustness(network, x0, eps, norm)
        name = type(verifier).__name__
        if result.lower_bound is not None:
            truth = exact.pointwise_robustness if exact.status == "exact" else eps
            assert result.lower_bound <= truth + 1e-6, f"{name} lower bound above the truth"
        if result.adversarial_example is not None:
            x = np.asarray(result.adversarial_example)
            assert network.classify(x) != label, f"{name} example keeps the label"
            distance = float(np.linalg.norm(x - x0, ORD[norm]))
            assert distance == pytest.approx(result.upper_bound, abs=1e-9)
            assert exact.status == "exact", f"{name} found an example the MILP missed"
            assert exact.pointwise_robustness <= result.upper_bound + 1e-6
            assert result.upper_bound <= eps + 1e-6
        if result.status == "robust":
            assert exact.status == "robust", f"{name} claims robustness the MILP refutes"


def test_seed_example_gives_half_with_every_verifier() -> None:
    W1, b1 = np.eye(2), np.ones(2)
    W2, b2 = np.array([[0.0, 1.0], [1.0, 0.0]]), np.full(2, 2.0)
    network = Network([W1, W2], [b1, b2], activation="ReLU", labeler="argmax")
    for verifier in (LPVerifier(), MILPVerifier(), CROWNVerifier(), CROWNVerifier("alpha-crown")):
        result = verifier.compute_pointwise_robustness(network, np.array([1, 2]), 1.5)
        assert result.robustness_status == "not_robust"
        assert np.round(result.pointwise_robustness, 3) == 0.5, type(verifier).__name__
        assert network.classify(result.adversarial_example) == 1


# ------------------------------------------------- seeds, radius bisection, region descent
@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 100_000), eps=st.floats(0.2, 1.5))
def test_seeded_milp_agrees_with_the_unseeded(seed: int, eps: float) -> None:
    """A certified lower bound and an attack incumbent shrink the MILP, not its answer."""
    network = _tiny_net(seed)
    x0 = np.random.default_rng(seed + 3).uniform(-1, 1, network.input_size)
    plain = minimal_adversarial_distance(network, x0, eps, "inf")
    if plain.status != "exact":
        return
    certified, _ = certified_radius(network, x0, eps, "inf")
    assert certified <= plain.lower + 1e-6
    incumbent = plain.example + 0.5 * (plain.example - x0)  # further out, still adversarial?
    if network.classify(incumbent) == network.classify(x0):
        incumbent = plain.example
    seeded = minimal_adversarial_distance(
        network, x0, eps, "inf", lower_bound=certified, incumbent=incumbent
    )
    assert seeded.status == "exact"
    assert seeded.lower == pytest.approx(plain.lower, abs=1e-6)
    assert network.classify(seeded.example) != network.classify(x0)


def test_seeded_milp_rejects_a_non_adversarial_incumbent() -> None:
    network = _tiny_net(7)
    x0 = np.zeros(network.input_size)
    with pytest.raises(InvalidInputError, match="incumbent"):
        minimal_adversarial_distance(network, x0, 1.0, incumbent=x0)


@pytest.mark.slow
@pytest.mark.parametrize("norm", ["inf", "2"])
@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 100_000), eps=st.floats(0.3, 1.5))
def test_radius_bisection_brackets_the_exact_distance(norm: str, seed: int, eps: float) -> None:
    network = _tiny_net(seed)
    x0 = np.random.default_rng(seed + 4).uniform(-1, 1, network.input_size)
    label = int(network.classify(x0))
    exact = minimal_adversarial_distance(network, x0, eps, norm)
    lower, upper, example, steps = narrow_radius(
        network, x0, eps, norm, label=label, budget=Budget.start(20), width=1e-4
    )
    truth = exact.lower if exact.status == "exact" else eps
    assert steps >= 1
    assert lower <= truth + 1e-6
    if example is None:
        assert exact.status != "exact" or exact.lower > lower - 1e-6
        return
    assert network.classify(example) != label
    assert float(np.linalg.norm(example - x0, ORD[norm])) == pytest.approx(upper, abs=1e-12)
    assert truth <= upper + 1e-6
    assert exact.status == "exact", "bisection found an example the MILP missed"


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 100_000))
def test_region_descent_only_moves_closer(seed: int) -> None:
    network = _tiny_net(seed)
    rng = np.random.default_rng(seed + 5)
    x0 = rng.uniform(-1, 1, network.input_size)
    label = int(network.classify(x0))
    points = x0 + rng.uniform(-3, 3, (200, network.input_size))
    adversarial = points[network.classify(points) != label]
    if adversarial.size == 0:
        return
    start = adversarial[np.argmax(np.abs(adversarial - x0).max(axis=1))]
    better = descend_regions(network, x0, start, label, domain=(-10.0, 10.0))
    assert network.classify(better) != label
    assert np.abs(better - x0).max() <= np.abs(start - x0).max() + 1e-12
    assert np.all(better >= -10.0) and np.all(better <= 10.0)


def test_exact_robustness_is_exact_when_the_milp_is_starved() -> None:
    """With no MILP time at all, the bisection alone closes the bracket."""
    W1, b1 = np.eye(2), np.ones(2)
    W2, b2 = np.array([[0.0, 1.0], [1.0, 0.0]]), np.full(2, 2.0)
    network = Network([W1, W2], [b1, b2], activation="ReLU", labeler="argmax")
    result = exact_robustness(
        network, np.array([1.0, 2.0]), 1.5, budget=Budget.start(30), milp_share=0.0
    )
    assert result.status == "exact"
    assert result.pointwise_robustness == pytest.approx(0.5, abs=1e-6)
    assert result.statistics["bisection_steps"] >= 1


def test_every_verifier_returns_the_documented_keys():
    """All four verifiers, both methods: exactly :data:`ROBUSTNESS_KEYS`, one vocabulary."""
    network = Network(
        [np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([[0.0, 1.0], [1.0, 0.0]])],
        [np.array([1.0, 1.0]), np.array([2.0, 2.0])],
    )
    x_0 = np.array([1.0, 2.0])
    verifiers = [LPVerifier(), CROWNVerifier(), MILPVerifier(), SDPVerifier(steps=1)]
    for verifier in verifiers:
        for result in (
            verifier.compute_pointwise_robustness(network, x_0, 1.5),
            verifier.verify_epsilon_robustness(network, x_0, 0.3),
            verifier.verify_epsilon_robustness(network, x_0, 1.5),
        ):
            assert set(result) == set(ROBUSTNESS_KEYS), (verifier.name, set(result))
            assert isinstance(result.verdict, Verdict)
            assert isinstance(result.status, DistanceStatus)
            assert RobustnessStatus.from_verdict(result.verdict) is result.robustness_status
            if result.adversarial_example is not None:
                assert network.classify(result.adversarial_example) == result.adversarial_label
                assert result.adversarial_label != result.label
