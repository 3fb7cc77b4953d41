"""Pointwise robustness: the distance from ``x_0`` to the nearest adversarial example.

Three ways to pin the distance down, in any of the norms L-inf, L-1, L-2:

* :func:`certified_radius`: a proved lower bound, the largest radius on which
  sound bounds (CROWN, Zhang et al. 2018; alpha-CROWN, Xu et al. 2021) show
  that no class beats the label, by a batched bisection over radii;
* :func:`attack_radius`: an upper bound, the distance of a confirmed
  adversarial example. PGD (Madry et al. 2018) searches a ball, the example is
  pulled back along the segment to ``x_0`` as far as it stays adversarial,
  and the radius is bisected between the certified bound and the best
  example;
* :func:`verifiNN.search.distance.minimal_adversarial_distance`: the exact
  minimum by MILP (Tjeng et al. 2019), for MLPs small enough;
* :func:`narrow_radius`: a bisection of the radius whose every step is a
  complete verification query (ReLU-splitting branch and bound).

:func:`exact_robustness` and :func:`bracket_robustness` chain them into the
result of ``compute_pointwise_robustness``; :func:`pointwise_robustness` is the
user's entry point. Stage functions take a :class:`~verifiNN.budget.Budget`;
the entry point takes seconds.

An adversarial example changes the label under the network's tie rule (the
lowest index wins), checked by a plain float64 forward pass.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch

from verifiNN.bounds.api import bound_graph, prepare_rows, run_method
from verifiNN.bounds.types import AlphaOptions, CrownOptions
from verifiNN.budget import Budget
from verifiNN.errors import InvalidInputError, UnsupportedModelError
from verifiNN.models.network import Network
from verifiNN.regions import BallBatch, BoxBatch
from verifiNN.results import DistanceStatus, Verdict, VerificationResult
from verifiNN.search.attack import attack
from verifiNN.search.distance import minimal_adversarial_distance
from verifiNN.search.relu_bab import relu_split_bab, supports_relu_split
from verifiNN.solvers.milp import mlp_layers
from verifiNN.solvers.region_lp import RegionLP
from verifiNN.specs import norm_distance, normalize_norm, robustness_spec
from verifiNN.verifiers.base import robustness_result

__all__ = [
    "attack_radius",
    "bracket_robustness",
    "certified_radius",
    "descend_regions",
    "exact_robustness",
    "narrow_radius",
    "pointwise_robustness",
    "summary_line",
]


def certified_radius(
    network: Network,
    x_0: np.ndarray,
    epsilon: float,
    norm: str = "inf",
    *,
    method: str = "crown",
    label: int | None = None,
    options: CrownOptions | AlphaOptions | None = None,
    domain: tuple[float, float] | None = None,
    grid: int = 16,
    tolerance: float = 1e-3,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> tuple[float, int]:
    """The largest radius in ``[0, epsilon]`` on which the bounds prove the label.

    A grid of ``grid`` radii is bounded in one batched call, then the grid is
    refined between the largest proved and the smallest unproved radius until
    the bracket is below ``tolerance * epsilon``.

    Args:
        network: the network (any graph the bounds support).
        x_0: the reference input.
        epsilon: the largest radius considered.
        norm: ``'inf'``, ``'1'`` or ``'2'``.
        method: ``'crown'`` or ``'alpha-crown'``.
        label: the class to keep (default: the network's class of ``x_0``).
        options: options of ``method``.
        domain: optional ``(lo, hi)`` valid-input box the balls are clipped to.
        grid: radii bounded per call.
        tolerance: relative accuracy of the radius.
        dtype: bound arithmetic precision.
        device: computation device.

    Returns:
        ``(radius, bound calls)``; the radius is ``0.0`` when not even a tiny
        ball is proved (e.g. on a tie at ``x_0``).
    """
    if method not in ("crown", "alpha-crown"):
        raise InvalidInputError(f"method must be 'crown' or 'alpha-crown', got {method!r}")
    if grid < 2 or not 0 < tolerance < 1:
        raise InvalidInputError("grid must be >= 2 and tolerance in (0, 1)")
    norm = normalize_norm(norm)
    x_0 = np.asarray(x_0, np.float64).ravel()
    graph = bound_graph(network, dtype, device)
    spec = robustness_spec(graph.network, x_0, epsilon, norm, label=label)
    C = prepare_rows(
        np.concatenate([h.C for h in spec.cases[0].unsafe]),
        graph.network.output_size,
        1,
        dtype,
        graph.device,
    )
    center = torch.as_tensor(x_0, dtype=dtype, device=graph.device)
    low, high = (-math.inf, math.inf) if domain is None else domain

    def proved(radii: np.ndarray) -> np.ndarray:
        r = torch.as_tensor(radii, dtype=dtype, device=graph.device)
        B = r.shape[0]
        lo = torch.full((B, center.numel()), low, dtype=dtype, device=graph.device)
        hi = torch.full((B, center.numel()), high, dtype=dtype, device=graph.device)
        centers = center.expand(B, -1)
        if norm == "inf":
            region = BoxBatch(
                torch.maximum(centers - r[:, None], lo), torch.minimum(centers + r[:, None], hi)
            )
        else:
            region = BallBatch(centers, r, norm, lo, hi)
        zero = torch.zeros(1, C.shape[1], dtype=dtype, device=graph.device)
        with torch.set_grad_enabled(method == "alpha-crown"):
            lower, _, _ = run_method(
                method, graph, region, C, None, options, zero, lambda m: bool((m > 0).all())
            )
        return (lower.detach() > 0).all(dim=1).cpu().numpy()

    best, unproved = 0.0, float(epsilon)
    if bool(proved(np.array([epsilon]))[0]):
        return float(epsilon), 1
    calls = 1
    rounds = 1 + math.ceil(math.log(1 / tolerance) / math.log(grid + 1))
    while calls <= rounds and unproved - best > tolerance * epsilon:
        radii = best + (unproved - best) * np.arange(1, grid + 1) / (grid + 1)
        ok = proved(radii)
        calls += 1
        if ok.any():
            k = int(np.flatnonzero(ok).max())
            best = float(radii[k])
            unproved = float(radii[k + 1]) if k + 1 < len(radii) else unproved
        else:
            unproved = float(radii[0])
    return best, calls


def attack_radius(
    network: Network,
    x_0: np.ndarray,
    epsilon: float,
    norm: str = "inf",
    *,
    label: int | None = None,
    lower: float = 0.0,
    domain: tuple[float, float] | None = None,
    budget: Budget | None = None,
    rounds: int = 8,
    round_seconds: float = 1.0,
    seed: int = 0,
) -> tuple[float | None, np.ndarray | None]:
    """The distance of the nearest adversarial example an attack finds within ``epsilon``.

    PGD searches the ``epsilon`` ball; a confirmed example is pulled back
    along the segment to ``x_0`` (bisection on the segment) as far as it stays
    adversarial. Then the radius is bisected between ``lower`` (e.g. a
    certified radius) and the best distance, ``rounds`` times, each attack
    capped at ``round_seconds`` (and a share of ``budget``). In L-inf the best
    example then descends over activation regions (:func:`descend_regions`).

    Returns:
        ``(distance, example)``, or ``(None, None)`` when no example was found.
    """
    norm = normalize_norm(norm)
    x_0 = np.asarray(x_0, np.float64).ravel()
    label = int(network.classify(x_0)) if label is None else int(label)
    budget = budget or Budget.start(None)
    best_distance, best_example = None, None
    low, high = float(lower), float(epsilon)
    radius = high
    for round_ in range(rounds + 1):
        if budget.expired() or radius <= 0:
            break
        spec = robustness_spec(network, x_0, radius, norm, label=label, domain=domain)
        share = min(round_seconds, budget.remaining() / (rounds + 1 - round_))
        found = attack(network, spec, budget=budget.sub(share), seed=seed + round_)
        example = None
        if found.counterexample is not None:
            example = _pull_back(network, x_0, found.counterexample, label)
        if example is not None:
            distance = norm_distance(example, x_0, norm)
            if best_distance is None or distance < best_distance:
                best_distance, best_example = distance, example
            high = min(high, distance)
        else:
            if best_distance is None:
                break  # nothing within epsilon: no point in smaller balls
            low = radius
        radius = 0.5 * (low + high)
        if best_distance is not None and high - low <= 1e-3 * high:
            break
    if best_example is not None and norm == "inf":
        best_example = descend_regions(network, x_0, best_example, label, domain)
        best_distance = norm_distance(best_example, x_0, norm)
    return best_distance, best_example


def descend_regions(
    network: Network,
    x_0: np.ndarray,
    example: np.ndarray,
    label: int,
    domain: tuple[float, float] | None = None,
    rounds: int = 8,
) -> np.ndarray:
    """A nearer L-inf adversarial example by local search over activation regions.

    Inside the activation region of ``example`` the network is affine, so the
    nearest point of that region where the example's class beats ``label`` is
    one LP (the seed's region LP, :class:`verifiNN.solvers.region_lp.RegionLP`,
    centred at ``x_0`` but on ``example``'s region). Its optimum lies on the
    region's boundary; the next round starts from the region found there.
    Every point is confirmed by a forward pass; the nearest confirmed one is
    returned (``example`` itself when no LP improves on it).
    """
    if not _is_mlp(network):
        return example
    mlp = network.as_mlp()
    best, best_distance = example, norm_distance(example, x_0, "inf")
    scale = max(1.0, float(np.max(np.abs(network.get_output(x_0)))))
    for _ in range(rounds):
        target = int(network.classify(best))
        lp = RegionLP(
            mlp, x_0, best_distance, label, network.labeler, region_of=best, domain=domain
        )
        found = lp.solve_class(target, margin=1e-9 * scale)
        if found.x is None or int(network.classify(found.x)) == label:
            break
        distance = norm_distance(found.x, x_0, "inf")
        if distance >= best_distance * (1 - 1e-9):
            break
        best, best_distance = found.x, distance
    return best


def _pull_back(
    network: Network, x_0: np.ndarray, x: np.ndarray, label: int, steps: int = 40
) -> np.ndarray | None:
    """The point nearest ``x_0`` on the segment ``[x_0, x]`` found adversarial by bisection
    (``x`` itself when it is the only one); ``None`` when ``x`` is not adversarial."""
    if int(network.classify(x)) == label:
        return None
    inside, outside = 0.0, 1.0  # x_0 + t (x - x_0): label kept at `inside`, changed at `outside`
    ts = np.linspace(0.0, 1.0, 33)[1:]
    labels = network.classify(x_0 + ts[:, None] * (x - x_0))
    changed = np.flatnonzero(labels != label)
    outside = float(ts[changed[0]])
    inside = float(ts[changed[0] - 1]) if changed[0] > 0 else 0.0
    for _ in range(steps):
        mid = 0.5 * (inside + outside)
        if int(network.classify(x_0 + mid * (x - x_0))) == label:
            inside = mid
        else:
            outside = mid
    point = x_0 + outside * (x - x_0)
    return point if int(network.classify(point)) != label else None


def narrow_radius(
    network: Network,
    x_0: np.ndarray,
    epsilon: float,
    norm: str = "inf",
    *,
    label: int | None = None,
    lower: float = 0.0,
    example: np.ndarray | None = None,
    domain: tuple[float, float] | None = None,
    budget: Budget | None = None,
    width: float = 1e-6,
) -> tuple[float, float | None, np.ndarray | None, int]:
    """Bisect the radius with a complete verifier: the bracket ``[lower, upper]``
    of the distance, narrowed until ``upper - lower <= width`` or time runs out.

    Each step decides "no adversarial example within ``r``" by ReLU-splitting
    branch and bound (beta-CROWN, :func:`verifiNN.search.relu_bab.relu_split_bab`),
    the bisection on the radius that reduces a minimal-distance question to
    verification queries (as in Carlini et al. 2017, "Provably Minimally-Distorted
    Adversarial Examples"). ``unsat`` at ``r`` proves ``lower = r``; ``sat``
    gives a confirmed example, pulled back towards ``x_0``, whose distance is
    the new ``upper``. A step that cannot decide in its share of the time is
    retried at a radius nearer ``lower`` (easier to prove).

    Args:
        lower: a proved lower bound to start from (e.g. :func:`certified_radius`).
        example: a confirmed adversarial example to start from (its distance is
            the starting upper bound).
        budget: the time limit of the whole narrowing; each step gets a share
            of what is left.

    Returns:
        ``(lower, upper, example, steps)``; ``upper`` and ``example`` are
        ``None`` when no adversarial example within ``epsilon`` is known.
    """
    norm = normalize_norm(norm)
    x_0 = np.asarray(x_0, np.float64).ravel()
    label = int(network.classify(x_0)) if label is None else int(label)
    upper = None if example is None else norm_distance(example, x_0, norm)
    budget = budget or Budget.start(None)
    steps = 0
    if not supports_relu_split(network):
        return lower, upper, example, steps
    # A new example is often the nearest (after the region descent): first try
    # to prove the radius just below it, which closes the bracket in one step.
    closing = upper is not None
    fraction = 0.5  # where in [lower, upper] to bisect; halved after an undecided step
    while True:
        high = float(epsilon) if upper is None else upper
        remaining = budget.remaining()
        if high - lower <= width or remaining <= 0:
            break
        if upper is None and steps == 0:  # the whole ball: a robust proof ends it at once
            radius = high
        elif closing:
            radius = max(lower, high - 0.5 * width)
        else:
            radius = lower + fraction * (high - lower)
        spec = robustness_spec(network, x_0, radius, norm, label=label, domain=domain)
        share = (0.35 if closing else 0.25) * remaining
        if share < 0.5 and steps > 0:
            break  # too little time for a branch and bound to decide anything
        found = relu_split_bab(network, spec, budget=budget.sub(share))
        steps += 1
        if found.verdict is Verdict.UNSAT:
            lower, fraction, closing = radius, 0.5, False
        elif found.verdict is Verdict.SAT and found.counterexample is not None:
            point = _pull_back(network, x_0, found.counterexample[0], label)
            if point is None:
                break
            if norm == "inf":
                point = descend_regions(network, x_0, point, label, domain)
            example, upper = point, norm_distance(point, x_0, norm)
            # close again only after a real improvement (else it is a near tie)
            closing = high - upper > 0.1 * (high - lower)
            fraction = 0.5
        elif closing:
            closing = False
        else:
            fraction *= 0.5  # an easier radius, nearer the proved one
    return lower, upper, example, steps


def exact_robustness(
    network: Network,
    x_0: np.ndarray,
    epsilon: float,
    norm: str = "inf",
    *,
    label: int | None = None,
    budget: Budget | None = None,
    tolerance: float = 1e-6,
    domain: tuple[float, float] | None = None,
    milp_share: float = 0.2,
) -> VerificationResult:
    """The exact distance as a ``compute_pointwise_robustness`` result.

    Four stages, each seeded with the bracket of the ones before:

    1. :func:`certified_radius` (CROWN) proves a lower bound;
    2. :func:`attack_radius` finds an upper bound (a short PGD);
    3. the MILP minimum (:func:`verifiNN.search.distance.minimal_adversarial_distance`,
       MLPs only) on the ball of the best example, with the distance bounded
       below by the certified radius, for ``milp_share`` of the time (30 s
       without a time limit): exact at once on small networks;
    4. :func:`narrow_radius` bisects the rest of the bracket with ReLU-splitting
       branch and bound, which scales further than HiGHS's MILP.

    When time runs out, the bracket found so far (status ``bracket``).
    """
    start = time.perf_counter()
    budget = budget or Budget.start(None)
    norm = normalize_norm(norm)
    x_0 = np.asarray(x_0, np.float64).ravel()
    label = int(network.classify(x_0)) if label is None else int(label)
    left = budget.timeout()  # the MILP's share is of the whole limit

    stats: dict[str, float] = {}
    lower, stats["bound_calls"] = certified_radius(
        network, x_0, epsilon, norm, label=label, domain=domain
    )
    upper, example = None, None
    if lower < epsilon:
        upper, example = attack_radius(
            network, x_0, epsilon, norm, label=label, lower=lower, domain=domain,
            budget=budget.sub(min(2.0, 0.05 * (budget.timeout() or 40.0))), round_seconds=0.25,
        )  # fmt: skip
    exact = None
    if lower < epsilon and _is_mlp(network):
        milp_budget = budget.sub(30.0 if left is None else milp_share * left)
        found = minimal_adversarial_distance(
            network, x_0, epsilon, norm, label, milp_budget, tolerance, domain=domain,
            lower_bound=lower, incumbent=example,
        )  # fmt: skip
        stats.update({f"milp_{k}": v for k, v in found.statistics.items()})
        lower = max(lower, found.lower)
        if found.example is not None:
            upper, example = found.upper, found.example
            if found.status is not DistanceStatus.EXACT and norm == "inf":
                example = descend_regions(network, x_0, example, label, domain)
                upper = norm_distance(example, x_0, norm)
        if found.status is DistanceStatus.EXACT:
            exact = found.lower
        elif found.status is DistanceStatus.ROBUST:
            lower = epsilon
    if exact is None and lower < epsilon:
        high = float(epsilon) if upper is None else upper
        if high - lower > tolerance:
            lower, upper, example, stats["bisection_steps"] = narrow_radius(
                network, x_0, epsilon, norm, label=label, lower=lower, example=example,
                domain=domain, budget=budget, width=tolerance,
            )  # fmt: skip
    stats["seconds"] = time.perf_counter() - start
    closed = (
        exact is not None or lower >= epsilon or (upper is not None and upper - lower <= tolerance)
    )
    return robustness_result(
        network, "milp", label, norm, epsilon, lower, upper, example, tolerance,
        exact=exact, timed_out=not closed, statistics=stats,
    )  # fmt: skip


def _is_mlp(network: Network) -> bool:
    """Whether ``network`` is a ReLU MLP the MILP encodes."""
    try:
        mlp = mlp_layers(network)[0]
    except UnsupportedModelError:
        return False
    return all(a in ("ReLU", "Id") for a in mlp.activations)


def bracket_robustness(
    network: Network,
    x_0: np.ndarray,
    epsilon: float,
    norm: str = "inf",
    *,
    label: int | None = None,
    method: str = "alpha-crown",
    options: CrownOptions | AlphaOptions | None = None,
    domain: tuple[float, float] | None = None,
    attack: bool = True,
    attack_budget: Budget | None = None,
    grid: int = 16,
    tolerance: float = 1e-3,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> VerificationResult:
    """The bracket ``[certified_radius, attack_radius]`` as a
    ``compute_pointwise_robustness`` result.

    ``method``, ``options``, ``grid``, ``tolerance``, ``dtype`` and ``device``
    go to :func:`certified_radius`; with ``attack``, :func:`attack_radius`
    searches within ``attack_budget`` above the certified radius.
    """
    x_0 = np.asarray(x_0, np.float64).ravel()
    label = int(network.classify(x_0)) if label is None else int(label)
    lower, calls = 0.0, 0
    if epsilon > 0:
        lower, calls = certified_radius(
            network, x_0, epsilon, norm, method=method, label=label, options=options,
            domain=domain, grid=grid, tolerance=tolerance, dtype=dtype, device=device,
        )  # fmt: skip
    upper, example = None, None
    if attack and lower < epsilon:
        upper, example = attack_radius(
            network, x_0, epsilon, norm, label=label, lower=lower, domain=domain,
            budget=attack_budget,
        )  # fmt: skip
    return robustness_result(
        network, method, label, norm, epsilon, lower, upper, example, tolerance,
        statistics={"bound_calls": calls},
    )  # fmt: skip


def pointwise_robustness(
    network: Network,
    x_0: np.ndarray,
    epsilon: float,
    norm: str = "inf",
    *,
    exact: bool = False,
    label: int | None = None,
    bounds: str = "alpha-crown",
    domain: tuple[float, float] | None = None,
    timeout: float | None = None,
) -> VerificationResult:
    """The distance from ``x_0`` to the nearest adversarial example within ``epsilon``.

    With ``exact`` the MILP minimum (:func:`exact_robustness`; ``timeout``
    bounds the whole call), else the bracket of :func:`bracket_robustness`
    with ``bounds`` (``timeout`` bounds the attack; the certified bisection is
    a handful of batched bound calls). The result has the keys of
    ``Verifier.compute_pointwise_robustness`` (``status``, ``lower_bound``,
    ``upper_bound``, ``pointwise_robustness``, ``adversarial_example``).
    """
    norm = normalize_norm(norm)
    budget = Budget.start(timeout)
    if exact:
        return exact_robustness(
            network, x_0, epsilon, norm, label=label, budget=budget, domain=domain
        )
    return bracket_robustness(
        network, x_0, epsilon, norm, label=label, method=bounds, domain=domain,
        attack_budget=budget,
    )  # fmt: skip


def summary_line(result: VerificationResult, epsilon: float) -> str:
    """One line: the status and the distance (``exact``), bracket or proved radius."""
    status = DistanceStatus(result.get("status", DistanceStatus.UNKNOWN))
    if status is DistanceStatus.EXACT:
        return f"exact {result.pointwise_robustness:.9g}"
    if status in (DistanceStatus.BRACKET, DistanceStatus.UPPER_BOUND):
        return f"bracket {result.lower_bound or 0.0:.9g} {result.upper_bound:.9g}"
    if status is DistanceStatus.ROBUST:
        return f"robust >{epsilon:.9g}"
    if status is DistanceStatus.LOWER_BOUND:
        return f"lower_bound {result.lower_bound:.9g}"
    return "unknown"
