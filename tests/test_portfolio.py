"""The portfolio verifier and its time budget: verdicts against brute force, soundness guards.

Brute force: a tiny network on a 2-D box is evaluated on a dense grid. A grid
point in the unsafe set makes ``sat`` the only right answer; a threshold above
the grid maximum plus a Lipschitz bound of the gap between grid points makes
the property true by construction (``unsat``), with no solver involved.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import random_mlp_params
from verifiNN.bounds import compute_bounds
from verifiNN.budget import Budget, DeadlineReached, checkpoint
from verifiNN.errors import InvalidInputError, SpecError
from verifiNN.models.network import Network
from verifiNN.results import EngineResult, Verdict
from verifiNN.specs import Box, Case, HalfSpaces, LpBall, Specification
from verifiNN.verifiers import portfolio
from verifiNN.verifiers.portfolio import verify

GRID = 201  # points per axis on [-1, 1]


def _spec_above(n_in: int, n_out: int, threshold: float, lo: float = -1.0, hi: float = 1.0):
    """Unsafe when ``y_0 >= threshold`` on the box ``[lo, hi]^n_in``."""
    row = np.zeros(n_out)
    row[0] = -1.0
    case = Case(Box(np.full(n_in, lo), np.full(n_in, hi)), (HalfSpaces(row, -threshold),))
    return Specification((case,), n_in, n_out)


def _tiny_net(seed: int) -> Network:
    weights, biases = random_mlp_params(np.random.default_rng(seed), [2, 8, 8, 2])
    return Network(weights, biases)


def _grid_max_and_gap(network: Network) -> tuple[float, float]:
    """Max of ``y_0`` on the grid, and a bound on how much the true max can exceed it."""
    axis = np.linspace(-1.0, 1.0, GRID)
    points = np.stack(np.meshgrid(axis, axis), axis=-1).reshape(-1, 2)
    grid_max = float(network.get_output(points)[:, 0].max())
    mlp = network.as_mlp()
    lipschitz = np.prod([np.abs(w).sum(axis=1).max() for w in mlp.weights[:-1]])
    lipschitz *= np.abs(mlp.weights[-1][0]).sum()  # output 0 only; ReLU is 1-Lipschitz
    half_spacing = (axis[1] - axis[0]) / 2  # every x is this close (L-inf) to a grid point
    return grid_max, float(lipschitz * half_spacing)


def _assert_confirmed(network: Network, spec: Specification, result) -> None:
    x, y = result.counterexample
    assert spec.is_violated_by(x, network.get_output(x))
    np.testing.assert_allclose(y, network.get_output(x))
    np.testing.assert_array_equal(result.adversarial_example, x)


# ----------------------------------------------------------------- brute force
@pytest.mark.parametrize("seed", range(5))
def test_sat_when_a_grid_point_violates(seed):
    network = _tiny_net(seed)
    grid_max, _ = _grid_max_and_gap(network)
    spec = _spec_above(2, 2, grid_max - 0.05 * (abs(grid_max) + 1))
    result = verify(network, spec, timeout=10)
    assert result.verdict is Verdict.SAT
    _assert_confirmed(network, spec, result)
    assert result.robustness_status == "not_robust"


@pytest.mark.parametrize("seed", range(5))
def test_unsat_when_true_by_construction(seed):
    network = _tiny_net(seed)
    grid_max, gap = _grid_max_and_gap(network)
    spec = _spec_above(2, 2, grid_max + gap + 1e-6)
    result = verify(network, spec, timeout=5)
    assert result.verdict is Verdict.UNSAT, result.statistics
    assert result.counterexample is None and result.adversarial_example is None
    assert result.robustness_status == "robust"


@pytest.mark.parametrize("seed", range(5, 11))
def test_never_unsat_at_the_grid_maximum(seed):
    # threshold exactly at a grid point's output: that point is unsafe (the set uses <=)
    network = _tiny_net(seed)
    grid_max, _ = _grid_max_and_gap(network)
    spec = _spec_above(2, 2, grid_max)
    result = verify(network, spec, timeout=1)
    assert result.verdict is not Verdict.UNSAT
    if result.verdict is Verdict.SAT:
        _assert_confirmed(network, spec, result)


def test_disjunction_over_cases_and_outputs():
    # y = (x0, x1) through an identity-like ReLU net on [0, 1]^2
    network = Network([np.eye(2), np.eye(2)], [np.zeros(2), np.zeros(2)])
    box = Box([0.0, 0.0], [1.0, 1.0])
    never = HalfSpaces([-1.0, 0.0], -2.0)  # y0 >= 2
    sometimes = HalfSpaces([[0.0, -1.0], [1.0, 0.0]], [-0.9, 0.1])  # y1 >= 0.9 and y0 <= 0.1
    sat = Specification((Case(box, (never,)), Case(box, (never, sometimes))))
    unsat = Specification((Case(box, (never,)), Case(box, (never, HalfSpaces([0.0, 1.0], -0.1)))))
    result = verify(network, sat, timeout=20)
    assert result.verdict is Verdict.SAT
    _assert_confirmed(network, sat, result)
    assert verify(network, unsat, timeout=20).verdict is Verdict.UNSAT


# ----------------------------------------------------------------- single methods
def test_single_methods():
    network = _tiny_net(0)
    grid_max, _ = _grid_max_and_gap(network)
    easy = _spec_above(2, 2, grid_max + 100.0)
    for method in ("ibp", "crown", "alpha-crown"):
        result = verify(network, easy, method=method)
        assert result.verdict is Verdict.UNSAT and result.method == method
        assert method in result.statistics["phases"]
    violated = _spec_above(2, 2, grid_max - 0.5)
    result = verify(network, violated, method="attack", timeout=20)
    assert result.verdict is Verdict.SAT and result.method == "attack"
    _assert_confirmed(network, violated, result)
    # a bound method never answers sat
    assert verify(network, violated, method="crown").verdict is Verdict.UNKNOWN


def test_result_keys():
    network = _tiny_net(1)
    grid_max, _ = _grid_max_and_gap(network)
    result = verify(network, _spec_above(2, 2, grid_max - 0.5), timeout=20)
    for key in ("verdict", "counterexample", "method", "statistics", "verification_status"):
        assert key in result
    assert set(result.statistics["phases"]) >= {"attack"}
    assert result.statistics["seconds"] >= sum(result.statistics["phases"].values()) - 1e-6
    x, y = result.counterexample
    assert x.dtype == y.dtype == np.float64 and x.shape == (2,) and y.shape == (2,)


# ----------------------------------------------------------------- soundness guards
def test_a_counterexample_that_fails_the_recheck_is_never_reported(monkeypatch):
    network = _tiny_net(2)
    grid_max, gap = _grid_max_and_gap(network)
    spec = _spec_above(2, 2, grid_max + gap + 1.0)  # true: nothing is unsafe
    real_attack = portfolio.attack

    def lying_attack(net, sp, **kwargs):
        found = real_attack(net, sp, **kwargs)
        x = np.zeros(2)
        return type(found)(x, net.get_output(x), 0, 0.0, 1)  # claims (0, 0) violates

    monkeypatch.setattr(portfolio, "attack", lying_attack)
    for method in ("attack", "auto"):
        result = verify(network, spec, method=method, timeout=2)
        assert result.verdict is not Verdict.SAT
        assert result.counterexample is None
        assert result.statistics["rejected_counterexamples"] >= 1


def test_no_sat_from_a_complete_engine_without_a_real_counterexample(monkeypatch):
    network = _tiny_net(3)
    grid_max, gap = _grid_max_and_gap(network)
    spec = _spec_above(2, 2, grid_max + gap + 1.0)
    assert portfolio.complete_methods(network, spec) == ["bab", "milp"]
    for method in ("bab", "milp"):
        bogus = EngineResult(Verdict.SAT, (np.zeros(2), np.zeros(2)))
        monkeypatch.setitem(portfolio.COMPLETE_ENGINES, method, lambda *a, b=bogus, **k: b)
        result = verify(network, spec, method=method, timeout=20)
        assert result.verdict is not Verdict.SAT
        assert result.statistics["rejected_counterexamples"] == 1


def test_complete_engines_by_problem():
    network = _tiny_net(0)
    assert portfolio.complete_methods(network, _spec_above(2, 2, 0.0)) == ["bab", "milp"]
    wide = Network(*random_mlp_params(np.random.default_rng(0), [40, 8, 2]))
    assert portfolio.complete_methods(wide, _spec_above(40, 2, 0.0)) == ["relu-bab", "milp"]
    lower, upper = np.zeros(40), np.zeros(40)
    upper[[3, 17]] = 1.0  # a fixed image and two free entries (a patch position)
    patch = Specification((Case(Box(lower, upper), (HalfSpaces([-1.0, 0.0], 0.0),)),), 40, 2)
    assert portfolio.complete_methods(wide, patch) == ["bab", "milp"]
    ball = Specification((Case(LpBall(np.zeros(2), 0.5, "2"), (HalfSpaces([-1.0, 0.0], 0.0),)),))
    assert portfolio.complete_methods(network, ball) == ["relu-bab", "milp"]
    with pytest.raises(SpecError, match="box"):
        verify(network, ball, method="bab")


# ----------------------------------------------------------------- time limit
def _hard_instance() -> tuple[Network, Specification]:
    """A wide, deep random MLP whose property is neither easy to prove nor to refute.

    The threshold sits well above the best ``y_0`` an attack finds (so attacks
    fail) yet far below what bounds can prove on a deep random network, and
    the MILP has hundreds of unstable ReLUs.
    """
    rng = np.random.default_rng(7)
    weights, biases = random_mlp_params(rng, [12, 128, 128, 128, 128, 128, 2])
    network = Network(weights, biases)
    best = 1e6 - portfolio.attack(network, _spec_above(12, 2, 1e6), seed=1).margin
    return network, _spec_above(12, 2, best + 0.5 * abs(best))


@pytest.mark.parametrize("timeout", [0.0, 1.5])
def test_time_limit_is_honoured(timeout):
    """The instance is decided by nothing in the limit: the portfolio stops and says so
    (how far past the limit it ends is measured in benchmarks/time_limits.py)."""
    network, spec = _hard_instance()
    result = verify(network, spec, timeout=timeout)
    assert result.verdict is Verdict.TIMEOUT, result.statistics
    assert result.verdict is not Verdict.ERROR
    if result.verdict is Verdict.SAT:
        _assert_confirmed(network, spec, result)


@pytest.mark.slow
@pytest.mark.parametrize("method", portfolio.METHODS)
def test_every_method_honours_a_short_time_limit(method):
    """Each engine alone gets the call's budget: bound methods included (the LP,
    alpha-CROWN and the SDP, whose set-up cannot be interrupted, must not start
    work that would overrun it)."""
    network, spec = _hard_instance()
    result = verify(network, spec, timeout=0.5, method=method)
    assert result.verdict is not Verdict.ERROR
    if result.verdict is Verdict.SAT:
        _assert_confirmed(network, spec, result)
    if method in ("sdp", "milp", "bab", "relu-bab", "auto"):
        assert result.verdict is Verdict.TIMEOUT, result.statistics


# ----------------------------------------------------------------- argument errors
def test_bad_arguments():
    network = _tiny_net(0)
    spec = _spec_above(2, 2, 0.0)
    with pytest.raises(InvalidInputError, match="method"):
        verify(network, spec, method="magic")
    with pytest.raises(InvalidInputError, match="timeout"):
        verify(network, spec, timeout=-1)
    with pytest.raises(SpecError, match="3 inputs"):
        verify(network, _spec_above(3, 2, 0.0))
    with pytest.raises(InvalidInputError, match="device"):
        verify(network, spec, device="tpu")
    if not torch.cuda.is_available():
        with pytest.raises(InvalidInputError, match="CUDA"):
            verify(network, spec, device="cuda")


# ----------------------------------------------------------------- budget
class _FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_budget_arithmetic():
    clock = _FakeClock()
    budget = Budget.start(10.0, clock)
    assert budget.limited and budget.remaining() == 10.0 and budget.timeout() == 10.0
    child = budget.sub(3.0)
    longer = budget.sub(50.0)  # never past the parent's deadline
    early = budget.reserve(1.5)  # ends 1.5 s before the parent
    assert child.remaining() == 3.0 and longer.remaining() == 10.0 and early.remaining() == 8.5
    clock.now += 4.0
    assert child.expired() and child.remaining() == 0.0
    assert not budget.expired() and budget.remaining() == 6.0 and budget.elapsed() == 4.0
    assert budget.reserve(7.0).expired() and budget.reserve(7.0).remaining() == 0.0
    clock.now += 7.0
    assert budget.expired() and budget.remaining() == 0.0 and budget.timeout() == 0.0


def test_budget_unlimited_and_invalid():
    budget = Budget.start(None)
    assert not budget.limited and not budget.expired()
    assert budget.remaining() == float("inf") and budget.timeout() is None
    assert budget.sub(2.0).remaining() <= 2.0 and budget.sub(None).timeout() is None
    assert budget.reserve(5.0).timeout() is None
    assert Budget.start(0.0).expired()
    for bad in (-1.0, float("nan"), "soon"):
        with pytest.raises(InvalidInputError):
            Budget.start(bad)


def test_checkpoint_raises_only_past_an_enforced_deadline():
    clock = _FakeClock()
    checkpoint()  # nothing enforced: a no-op
    with Budget.start(None).enforce():
        checkpoint()  # unlimited: a no-op
    outer = Budget.start(5.0, clock)
    with outer.enforce():
        checkpoint()
        with Budget.start(50.0, clock).enforce():  # a later inner deadline keeps the outer one
            clock.now += 6.0
            with pytest.raises(DeadlineReached):
                checkpoint()
        with Budget.start(None).enforce(), pytest.raises(DeadlineReached):
            checkpoint()  # an unlimited inner block keeps the outer deadline too
    checkpoint()  # the block is over: nothing enforced again
    clock.now = 0.0
    with Budget.start(10.0, clock).enforce(), Budget.start(1.0, clock).enforce():
        clock.now = 2.0  # the earlier inner deadline counts
        with pytest.raises(DeadlineReached):
            checkpoint()


def test_row_chunks_are_sized_by_the_time_a_row_takes(monkeypatch):
    """Intermediate rows go in chunks that take about PASS_SECONDS each (and at most half
    of what an enforced deadline leaves), every row exactly once, in order."""
    from verifiNN.bounds import crown

    clock = _FakeClock()
    monkeypatch.setattr(crown.time, "perf_counter", lambda: clock.now)
    index = torch.arange(1000).reshape(1, 1000)
    per_row = 0.002  # seconds a row's pass takes
    sizes, seen = [], []
    for chunk in crown._timed_chunks(index, most=300):
        sizes.append(int(chunk.shape[1]))
        seen.extend(chunk[0].tolist())
        clock.now += per_row * chunk.shape[1]
    assert seen == list(range(1000))
    assert sizes[0] == crown.PROBE_ROWS
    target = round(crown.PASS_SECONDS / per_row)  # 250 rows
    assert all(s == min(300, target) for s in sizes[1:-1]) and sizes[-1] <= target
    sizes = []
    with Budget.start(3.0, clock).enforce():  # 3 s left, 1 s of rows: at most 1.5 s a chunk
        for chunk in crown._timed_chunks(index, most=3000):
            sizes.append(int(chunk.shape[1]))
            clock.now += 1e-3 * chunk.shape[1]
    assert sum(sizes) == 1000 and max(sizes) <= 1500
    seen = []
    with Budget.start(1.0, clock).enforce():  # 1 s of rows, 1 s left: the rest stays IBP's
        for chunk in crown._timed_chunks(index, most=300):
            seen.extend(chunk[0].tolist())
            clock.now += 1e-3 * chunk.shape[1]
    assert seen == list(range(len(seen))) and 0 < len(seen) < 1000


def test_alpha_crown_starts_no_iteration_that_would_end_past_its_budget(monkeypatch):
    from verifiNN.bounds import AlphaOptions, alpha

    ticks = iter(range(10_000))
    monkeypatch.setattr(alpha.time, "perf_counter", lambda: float(next(ticks)))  # 1 s a step
    network = Network(*random_mlp_params(np.random.default_rng(3), [4, 16, 16, 3]))
    box = Box(-np.ones(4), np.ones(4))
    options = AlphaOptions(iterations=6, early_stop=False)
    clock = _FakeClock()
    few = compute_bounds(network, box, method="alpha-crown", options=options,
                         budget=Budget.start(0.5, clock))  # fmt: skip
    assert few.statistics["iterations"] == 1  # the first took 1 s, more than the 0.5 s left
    many = compute_bounds(network, box, method="alpha-crown", options=options,
                          budget=Budget.start(100.0, clock))  # fmt: skip
    assert many.statistics["iterations"] == 6


def test_a_bound_pass_stops_at_an_enforced_deadline():
    network = _tiny_net(3)
    box = Box(np.full(2, -1.0), np.full(2, 1.0))
    compute_bounds(network, box, method="crown")  # runs to the end without a deadline
    clock = _FakeClock()
    budget = Budget.start(1.0, clock)
    clock.now += 2.0
    with budget.enforce(), pytest.raises(DeadlineReached):
        compute_bounds(network, box, method="crown")


def test_a_phase_past_the_deadline_ends_timeout_not_unknown():
    """CROWN proves this property, but with no time left its pass stops at the first
    checkpoint and the call answers ``timeout`` (never a proof it did not finish)."""
    network = _tiny_net(4)
    grid_max, gap = _grid_max_and_gap(network)
    spec = _spec_above(2, 2, grid_max + gap + 1e3)
    assert verify(network, spec, method="crown").verdict is Verdict.UNSAT
    result = verify(network, spec, method="crown", timeout=0.0)
    assert result.verdict is Verdict.TIMEOUT, result.statistics


@pytest.mark.parametrize("x0", [0.3, 0.1, 0.7, 0.123456789])
def test_boundary_counterexamples_lie_inside_the_ball_exactly(x0):
    # unsafe exactly when x >= x0 + eps (float64 sum), the ball's edge: any counterexample
    # reported must be within eps of x0 *as computed*, never 4e-17 beyond it
    eps = 0.05
    edge = x0 + eps
    network = Network([np.array([[-1.0], [0.0]])], [np.array([edge, 0.0])])  # y0 = edge - x
    spec = Specification((Case(LpBall([x0], eps), HalfSpaces([[1.0, -1.0]], [0.0])),))
    result = verify(network, spec, timeout=10)
    assert result.verdict in (Verdict.SAT, Verdict.UNKNOWN, Verdict.TIMEOUT)
    if result.verdict is Verdict.SAT:
        x, y = result.counterexample
        assert abs(x[0] - x0) <= eps and y[0] <= y[1]
        assert spec.cases[0].input_region.contains(x, tol=0.0)


def test_fair_threads_leave_busy_cores_to_other_jobs():
    from verifiNN.cores import fair_threads, usable_cores

    assert fair_threads(load=0.0, cores=2) == 2
    assert fair_threads(load=1.0, cores=2) == 1
    assert fair_threads(load=6.0, cores=2) == 1  # never below one
    assert fair_threads(load=0.4, cores=8) == 8 and fair_threads(load=2.6, cores=8) == 5
    assert fair_threads(load=float("nan"), cores=4) == 1
    assert 1 <= fair_threads() <= usable_cores()
