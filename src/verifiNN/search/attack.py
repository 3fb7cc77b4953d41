"""Falsification: search for an input that violates a specification.

Two phases, both batched (one forward pass per step for all cases and restarts):

1. sampling: the centre, random corners and uniform random points of every
   case's input region, in chunks (an easy counterexample costs one chunk);
   when a region has at most :data:`GRID_MAX_FREE` coordinates of positive
   width (a patch position over a fixed image), first a regular grid of
   :data:`GRID_POINTS` points over them, finer than a unit step on a range
   of 63, so a model that truncates those coordinates to integers is tried
   on every integer cell;
2. projected gradient descent (PGD, Madry et al. 2018, "Towards Deep Learning
   Models Resistant to Adversarial Attacks") from several starts at once: the
   centre, the best samples and random points. The batch is sized to the
   network (:func:`default_batch`: 512 starts on ACAS Xu, 64 on MNIST MLPs).

The loss of an output ``y`` for a case is the margin of its unsafe region, a
disjunction of conjunctions ``C y <= d``:
``margin(y) = min over disjuncts of max_i (C_i y - d_i)``; ``margin <= 0``
exactly when ``y`` is unsafe. With several disjuncts, the starts are spread
over single disjuncts (targeted) and their minimum. Steps follow the sign of
the gradient on boxes and L-inf balls, the normalised gradient on L2 balls and
a sparse sign step on L1 balls, each followed by a projection onto the region
(:mod:`verifiNN.regions`); half of the starts keep a constant step,
the other half adapt theirs (undo a step that made things worse and halve it).
Starts stuck on a flat region (zero gradient) are moved to fresh random points.

The search may run in float32 for speed; every candidate is re-checked in
float64: the point is projected again in float64 and
``spec.is_violated_by(x, network.get_output(x))`` must hold with tolerance 0 on
the output constraints before it is returned. A point whose margin is exactly 0
(a tie) is a counterexample, since the unsafe set uses ``<=``; one that fails by
rounding is not reported.

:func:`attack_domains` is the same search on a batch of boxes with one margin
per box, for branch and bound (which confirms what it reports itself).
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from verifiNN.budget import Budget
from verifiNN.errors import InvalidInputError, SpecError
from verifiNN.memory import allowance, check_fits
from verifiNN.models.network import Network
from verifiNN.regions import BallBatch, BoxBatch, RegionBatch
from verifiNN.specs import Box, Case, LpBall, Specification

__all__ = ["AttackResult", "DomainAttackResult", "attack", "attack_domains", "default_batch"]

logger = logging.getLogger(__name__)

#: Relative slack below which a low-precision margin counts as a candidate to confirm.
_CANDIDATE_SLACK = {torch.float64: 1e-9, torch.float32: 1e-4, torch.float16: 1e-2}

GRID_MAX_FREE = 3
"""Regions with at most this many coordinates of positive width are first searched on a grid."""

GRID_POINTS = 4096
"""Points of that grid per region (64 per coordinate for two free coordinates)."""

# A confirmation: float64 points and their domains -> (confirmed mask, float64 margins).
Confirm = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class AttackResult:
    """Outcome of :func:`attack`.

    Attributes:
        counterexample: a flat float64 input confirmed by a forward pass, or ``None``.
        y: its output (float64), or ``None``.
        case: index of the specification case it violates, or ``None``.
        seconds: wall time.
        evaluations: network evaluations (points forwarded, gradients included).
        margin: smallest float64 margin seen at a projected point (``<= 0`` when
            a counterexample was found; ``inf`` when nothing was evaluated).
        timed_out: whether the time limit cut the search short.
    """

    counterexample: np.ndarray | None
    y: np.ndarray | None
    case: int | None
    seconds: float
    evaluations: int
    margin: float = math.inf
    timed_out: bool = False

    @property
    def found(self) -> bool:
        """Whether a confirmed counterexample was found."""
        return self.counterexample is not None

    @property
    def statistics(self) -> dict[str, Any]:
        """Counts and timings, for result records."""
        return {
            "seconds": self.seconds,
            "evaluations": self.evaluations,
            "margin": self.margin,
            "timed_out": self.timed_out,
        }


@dataclass(frozen=True)
class DomainAttackResult:
    """Outcome of :func:`attack_domains`.

    Attributes:
        x: ``(B, n)`` float64 best point of each box (inside it).
        margin: ``(B,)`` float64 margin at ``x`` (an upper bound of the box's minimum).
        seconds: wall time.
        evaluations: network evaluations.
        timed_out: whether the time limit cut the search short.
    """

    x: np.ndarray
    margin: np.ndarray
    seconds: float
    evaluations: int
    timed_out: bool = False

    @property
    def found(self) -> np.ndarray:
        """``(B,)`` whether the margin at ``x`` is ``<= 0`` (still to be confirmed on a spec)."""
        return self.margin <= 0


# ------------------------------------------------------------------ pieces
@dataclass
class _Objective:
    """Margins ``min_k max_r (C[k, r] y - d[k, r])`` of ``D`` padded disjunctions.

    Padding rows inside a disjunct have ``C = 0, d = +inf`` (never the max);
    padding disjuncts have ``d = -inf`` (never the min).
    """

    C: Tensor  # (D, k, r, n_out)
    d: Tensor  # (D, k, r)

    def to(self, dtype: torch.dtype, device: torch.device | str) -> _Objective:
        return _Objective(
            self.C.to(dtype=dtype, device=device), self.d.to(dtype=dtype, device=device)
        )

    def disjuncts(self, y: Tensor) -> Tensor:
        """``(D, S, n_out)`` outputs -> ``(D, S, k)`` margins of each disjunct."""
        count, k, r, n_out = self.C.shape
        values = torch.bmm(y, self.C.reshape(count, k * r, n_out).transpose(1, 2))
        values = values.reshape(count, -1, k, r) - self.d.unsqueeze(1)
        return values.amax(dim=-1)

    def targets(self, restarts: int) -> Tensor:
        """``(D, R, k)`` penalties: start ``r`` of a domain with ``k_D`` disjuncts aims
        at disjunct ``r mod (k_D + 1)``, or at all of them when that is ``k_D``
        (``0`` where aimed at, ``+inf`` elsewhere)."""
        k = self.d.shape[1]
        real = ~torch.isneginf(self.d).all(dim=-1)  # (D, k)
        sizes = real.sum(dim=1, keepdim=True)  # (D, 1)
        aim = torch.arange(restarts, device=self.d.device).unsqueeze(0) % (sizes + 1)  # (D, R)
        columns = torch.arange(k, device=self.d.device).reshape(1, 1, k)
        allowed = (columns == aim.unsqueeze(-1)) | (aim == sizes).unsqueeze(-1)
        zero = torch.zeros((), dtype=self.d.dtype, device=self.d.device)
        return torch.where(allowed, zero, torch.full_like(zero, math.inf))


def _pad_disjunctions(disjunctions: Sequence[Sequence[tuple[np.ndarray, np.ndarray]]], n_out: int):
    """Stack per-domain lists of ``(C, d)`` conjunctions into a padded :class:`_Objective`."""
    k = max(1, max(len(conj) for conj in disjunctions))
    r = max([1] + [c.shape[0] for conj in disjunctions for c, _ in conj])
    C = np.zeros((len(disjunctions), k, r, n_out))
    d = np.full((len(disjunctions), k, r), -np.inf)
    for i, conj in enumerate(disjunctions):
        for j, (rows, rhs) in enumerate(conj):
            C[i, j, : rows.shape[0]] = rows
            d[i, j, : rows.shape[0]] = rhs
            d[i, j, rows.shape[0] :] = np.inf
    return _Objective(torch.from_numpy(C), torch.from_numpy(d))


def _numpy_margins(Y: np.ndarray, conjunctions: Sequence[tuple[np.ndarray, np.ndarray]]):
    """Float64 margins of the rows of ``Y`` for one disjunction (``+inf`` when it is empty)."""
    margins = np.full(Y.shape[0], np.inf)
    for rows, rhs in conjunctions:
        values = Y @ rows.T - rhs
        best = values.max(axis=1) if rows.shape[0] else np.full(Y.shape[0], -np.inf)
        margins = np.minimum(margins, best)
    return margins


def _with_dtype(network: Network, dtype: torch.dtype, device: torch.device | str) -> Network:
    """``network`` itself when its parameters already have ``dtype``/``device``, else a copy."""
    target = torch.device(device)
    params = [p for node in network.nodes for p in node.op.parameters().values()]
    if params and params[0].dtype == dtype and params[0].device.type == target.type:
        return network
    return network.to(dtype, device)


# ------------------------------------------------------------------ moves
def _uniform(domains: RegionBatch, count: int, generator: torch.Generator) -> Tensor:
    """``(D, count, n)`` uniform points of the bounding boxes, projected into the regions."""
    low, high = domains.box()
    shape = (low.shape[0], count, low.shape[1])
    u = torch.rand(shape, generator=generator, dtype=low.dtype).to(low.device)
    return domains.project(low.unsqueeze(1) + u * (high - low).unsqueeze(1))


def _corners(domains: RegionBatch, count: int, generator: torch.Generator) -> Tensor:
    """``(D, count, n)`` random corners of the bounding boxes, projected into the regions."""
    low, high = domains.box()
    shape = (low.shape[0], count, low.shape[1])
    bits = (torch.rand(shape, generator=generator, dtype=low.dtype) < 0.5).to(low.device)
    return domains.project(torch.where(bits, high.unsqueeze(1), low.unsqueeze(1)))


def _step(domains: RegionBatch, x: Tensor, grad: Tensor, alpha: Tensor) -> Tensor:
    """One steepest-descent step of ``(D, S, n)`` points with relative sizes ``alpha``.

    Boxes (and L-inf balls): ``alpha * width * sign(grad)``; L2 balls: the
    normalised gradient times ``2 eps alpha``; L1 balls: a sign step on the
    top 5% coordinates of ``|grad|`` with L1 length ``2 eps alpha``.
    """
    alpha = alpha.unsqueeze(-1)
    if isinstance(domains, BoxBatch):
        low, high = domains.box()
        return x - alpha * (high - low).unsqueeze(1) * torch.sign(grad)
    size = 2 * alpha * domains.eps.reshape(-1, 1, 1)
    if domains.norm == "2":
        norm = torch.linalg.vector_norm(grad, dim=-1, keepdim=True)
        return x - size * grad / torch.clamp(norm, min=1e-30)
    k = max(1, math.ceil(0.05 * grad.shape[-1]))
    kth = torch.topk(grad.abs(), k, dim=-1).values[..., -1:]
    direction = torch.sign(grad) * (grad.abs() >= kth) * (grad.abs() > 0)
    count = torch.clamp(direction.abs().sum(dim=-1, keepdim=True), min=1.0)
    return x - size * direction / count


# ------------------------------------------------------------------ search
@dataclass
class _Search:
    """One batched search over ``D`` domains (state and counters)."""

    net: Network
    domains64: RegionBatch
    objective: _Objective
    confirm: Confirm
    budget: Budget
    generator: torch.Generator
    stop_on_first: bool
    evaluations: int = 0
    found: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    best_x: Tensor | None = None
    best_value: Tensor | None = None
    confirmed_x: np.ndarray | None = None
    domains: RegionBatch | None = None
    first: Tensor | None = None
    sample_chunk: int = 1024

    def __post_init__(self) -> None:
        reference = self.objective.C
        self.domains = self.domains64.to(reference.dtype, reference.device)
        count, n = self.domains.reference.shape
        self.found = np.zeros(count, dtype=bool)
        self.best_x = self.domains.start().detach().clone()
        self.best_value = torch.full((count,), math.inf, dtype=self.best_x.dtype)
        self.confirmed_x = np.zeros((count, n))

    @property
    def done(self) -> bool:
        return bool(self.found.any()) if self.stop_on_first else bool(self.found.all())

    def margins(self, x: Tensor) -> Tensor:
        """``(D, S, n)`` points -> ``(D, S, k)`` disjunct margins (differentiable in ``x``)."""
        count, samples, n = x.shape
        self.evaluations += count * samples
        y = self.net.forward(x.reshape(count * samples, n)).reshape(count, samples, -1)
        return self.objective.disjuncts(y)

    def record(self, x: Tensor, values: Tensor) -> None:
        """Keep each domain's best point; confirm those whose margin is (nearly) <= 0."""
        values = torch.nan_to_num(values.detach(), nan=math.inf)
        best, index = values.min(dim=1)
        rows = torch.arange(x.shape[0], device=x.device)
        better = best.cpu() < self.best_value
        self.best_value = torch.where(better, best.cpu(), self.best_value)
        self.best_x[better.to(x.device)] = x.detach()[rows, index][better.to(x.device)]
        slack = _CANDIDATE_SLACK.get(x.dtype, 1e-4) * (1 + best.abs().cpu())
        candidates = np.flatnonzero(((best.cpu() <= slack).numpy()) & ~self.found)
        if candidates.size:
            self._confirm(x.detach()[rows, index][candidates], candidates)

    def _confirm(self, points: Tensor, domains: np.ndarray) -> None:
        x64 = self._project64(points, domains)
        ok, _ = self.confirm(x64, domains)
        self.evaluations += len(domains)
        self.found[domains[ok]] = True
        self.confirmed_x[domains[ok]] = x64[ok]

    def _project64(self, points: Tensor, domains: np.ndarray) -> np.ndarray:
        part = self.domains64.select(torch.as_tensor(domains))
        return part.project(points.to("cpu", torch.float64).unsqueeze(1)).squeeze(1).numpy()

    def sample(self, count: int, keep: int, chunk: int | None = None) -> Tensor | None:
        """Evaluate the centres, then random corners and uniform points in chunks (of
        ``sample_chunk`` per domain by default), stopping once one is confirmed; return
        the best ``keep`` points per domain."""
        chunk = self.sample_chunk if chunk is None else chunk
        best: tuple[Tensor, Tensor] | None = None
        done = 0
        while done < count and not (self.done or self.budget.expired()):
            size = min(chunk, count - done)
            parts = [self.domains.start().unsqueeze(1)] if done == 0 else []
            corners = (size - len(parts)) // 2
            uniform = size - len(parts) - corners
            parts.append(_corners(self.domains, corners, self.generator))
            parts.append(_uniform(self.domains, uniform, self.generator))
            points = torch.cat(parts, dim=1)
            with torch.no_grad():
                values = self.margins(points).amin(dim=-1)
            self.record(points, values)
            if best is not None:
                points = torch.cat([best[0], points], dim=1)
                values = torch.cat([best[1], values], dim=1)
            order = torch.nan_to_num(values, nan=math.inf).argsort(dim=1)[:, : max(keep, 1)]
            best = (
                points.gather(1, order.unsqueeze(-1).expand(-1, -1, points.shape[2])),
                values.gather(1, order),
            )
            done += size
        return None if best is None else best[0]

    def grid(self, points: int, chunk: int) -> None:
        """Evaluate a regular grid over the coordinates of positive width (the others at
        the centre) when there are at most :data:`GRID_MAX_FREE` of them."""
        low, high = self.domains.box()
        free = torch.nonzero((high > low).any(dim=0)).flatten()
        if not 0 < free.numel() <= GRID_MAX_FREE:
            return
        per_axis = max(2, int(points ** (1.0 / free.numel())))
        ticks = torch.linspace(0.0, 1.0, per_axis, dtype=low.dtype, device=low.device)
        grid = torch.cartesian_prod(*[ticks] * free.numel()).reshape(-1, free.numel())
        centre = self.domains.start()
        width = (high - low)[:, free].unsqueeze(1)
        for part in grid.split(chunk):
            if self.done or self.budget.expired():
                return
            x = centre.unsqueeze(1).repeat(1, part.shape[0], 1)
            x[:, :, free] = low[:, free].unsqueeze(1) + part.unsqueeze(0) * width
            x = self.domains.project(x)
            with torch.no_grad():
                values = self.margins(x).amin(dim=-1)
            self.record(x, values)

    def pgd(self, starts: Tensor, steps: int, alpha0: float) -> None:
        """Projected sign/normalised gradient descent from ``(D, R, n)`` starts.

        Every other start keeps its own step size (relative to the domain's
        width): a step that raises the margin is undone and the step size
        halved, one that lowers it grows the step size by 25% (capped at
        ``alpha0``), in the spirit of APGD's step-size control (Croce and Hein
        2020); the remaining starts keep the constant step ``alpha0``, which
        explores better on wide high-dimensional boxes (MNIST). A start whose
        gradient vanishes (a flat region, e.g. all ReLUs of a layer off) is
        moved to a fresh uniform point. With several disjuncts, the starts
        are spread over them (targeted attacks) and over their minimum.
        """
        x = starts.detach().clone()
        alpha = torch.full(x.shape[:2], alpha0, dtype=x.dtype, device=x.device)
        penalty = self.objective.targets(x.shape[1])
        adaptive = (torch.arange(x.shape[1], device=x.device) % 2 == 1).unsqueeze(0)
        previous: tuple[Tensor, Tensor, Tensor] | None = None
        for _ in range(steps):
            if self.done or self.budget.expired():
                return
            x.requires_grad_(True)
            disjuncts = self.margins(x)
            values = (disjuncts + penalty).amin(dim=-1)
            grad = _gradient(values.sum(), x)
            x, values = x.detach(), values.detach()
            self.record(x, disjuncts.detach().amin(dim=-1))
            if self.done:
                return
            with torch.no_grad():
                if previous is not None:
                    x, values, grad, alpha = _keep_improving(
                        x, values, grad, alpha, previous, adaptive
                    )
                    alpha = torch.clamp(alpha, max=alpha0)
                flat = grad.abs().amax(dim=-1) == 0
                previous = (x, values, grad)
                x = self.domains.project(_step(self.domains, x, grad, alpha))
                if bool(flat.any()):
                    fresh = _uniform(self.domains, x.shape[1], self.generator)
                    x = torch.where(flat.unsqueeze(-1), fresh, x)
                    alpha = torch.where(flat, alpha0, alpha)
                    previous = (previous[0], torch.where(flat, math.inf, values), grad)
        if not (self.done or self.budget.expired()):
            with torch.no_grad():
                self.record(x, self.margins(x).amin(dim=-1))

    def final_margins(self) -> tuple[np.ndarray, np.ndarray]:
        """Float64 best points and margins (the confirmed points where found)."""
        count = self.found.size
        x64 = self._project64(self.best_x, np.arange(count))
        ok, margins = self.confirm(x64, np.arange(count))
        self.confirmed_x[ok & ~self.found] = x64[ok & ~self.found]
        self.found |= ok
        x64[self.found] = self.confirmed_x[self.found]
        if self.found.any():
            _, found_margins = self.confirm(x64[self.found], np.flatnonzero(self.found))
            margins[self.found] = found_margins
        return x64, margins


def _gradient(total: Tensor, x: Tensor) -> Tensor:
    """``d total / d x`` (NaNs zeroed); zero where the margin does not depend on ``x``
    differentiably (piecewise-constant outputs: Sign, ArgMax, steps), which sends every
    start to a fresh uniform point, i.e. random search."""
    if not total.requires_grad:
        return torch.zeros_like(x)
    (grad,) = torch.autograd.grad(total, x, allow_unused=True)
    return torch.zeros_like(x) if grad is None else torch.nan_to_num(grad)


def _keep_improving(
    x: Tensor,
    values: Tensor,
    grad: Tensor,
    alpha: Tensor,
    previous: tuple[Tensor, Tensor, Tensor],
    adaptive: Tensor,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """For the ``adaptive`` starts: undo steps that raised the margin (halving their
    step size) and grow the step size of the others."""
    last_x, last_values, last_grad = previous
    worse = (values > last_values) & adaptive
    mask = worse.unsqueeze(-1)
    return (
        torch.where(mask, last_x, x),
        torch.where(worse, last_values, values),
        torch.where(mask, last_grad, grad),
        torch.where(worse, alpha * 0.5, torch.where(adaptive, alpha * 1.25, alpha)),
    )


def _starts(search: _Search, ranked: Tensor | None, restarts: int) -> Tensor:
    """``(D, restarts, n)`` PGD starts: the centre, the best samples, then uniform points."""
    parts = [search.domains.start().unsqueeze(1) if search.first is None else search.first]
    if ranked is not None and restarts > 1:
        parts.append(ranked[:, : max(0, (restarts - 1) // 2)])
    have = sum(p.shape[1] for p in parts)
    if restarts > have:
        parts.append(_uniform(search.domains, restarts - have, search.generator))
    return torch.cat(parts, dim=1)[:, : max(1, restarts)]


def _run(search: _Search, samples: int, restarts: int, steps: int, alpha0: float) -> None:
    ranked = search.sample(samples, max(0, (restarts - 1) // 2))
    if search.done or search.budget.expired() or steps <= 0:
        return
    search.pgd(_starts(search, ranked, restarts), steps, alpha0)


# ------------------------------------------------------------------ public API
def _region_key(region: Box | LpBall) -> str:
    return "inf" if isinstance(region, Box) else region.norm


def _case_domains(cases: Sequence[Case], key: str) -> RegionBatch:
    boxes = [c.input_region.bounding_box() for c in cases]
    lower = torch.from_numpy(np.stack([b.lower for b in boxes]))
    upper = torch.from_numpy(np.stack([b.upper for b in boxes]))
    if key == "inf":
        return BoxBatch(lower, upper)
    center = torch.from_numpy(np.stack([c.input_region.center for c in cases]))
    eps = torch.tensor([c.input_region.epsilon for c in cases], dtype=torch.float64)
    return BallBatch(center, eps, key, lower, upper)


def _spec_confirm(net64: Network, cases: Sequence[Case], spec: Specification) -> Confirm:
    """Confirmation by the specification itself: region membership and a float64 forward pass."""

    def confirm(x64: np.ndarray, domains: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        Y = np.asarray(net64.get_output(x64), dtype=np.float64).reshape(len(domains), -1)
        ok = np.zeros(len(domains), dtype=bool)
        margins = np.empty(len(domains))
        for i, dom in enumerate(domains):
            case = cases[dom]
            margins[i] = _numpy_margins(Y[i : i + 1], [(h.C, h.d) for h in case.unsafe])[0]
            if np.all(np.isfinite(Y[i])) and case.input_region.contains(x64[i]):
                ok[i] = spec.is_violated_by(x64[i], Y[i])
        return ok, margins

    return confirm


def memory_batches(network: Network, dtype: torch.dtype, regions: int = 1) -> tuple[int, int]:
    """``(PGD starts, forward samples)`` per region that fit the memory allowance
    (:func:`verifiNN.memory.allowance`): a PGD start keeps every activation for the
    gradient (about three values per neuron), a sample only the widest layer's.

    Raises:
        ResourceLimitError: when not even one PGD start per region fits.
    """
    sizes = [int(torch.Size(s).numel()) for s in network.shapes.values()]
    itemsize = torch.empty(0, dtype=dtype).element_size()
    per_start = regions * 3 * sum(sizes) * itemsize
    check_fits(per_start, "one PGD start of the attack per region")
    per_sample = regions * 3 * max(sizes) * itemsize
    return max(1, allowance() // per_start), max(1, allowance() // per_sample)


def default_batch(network: Network, regions: int = 1) -> int:
    """PGD starts per region: about ``2**23`` weights touched per step, in ``[64, 512]``.

    Small networks get wide batches for free (the per-step overhead dominates:
    ACAS Xu, 13k weights, runs 512 starts about as fast as 64, and finds more
    counterexamples); large ones keep 64. With several regions the starts are
    shared out, at least 8 each.
    """
    weights = sum(p.numel() for node in network.nodes for p in node.op.parameters().values())
    per_step = min(512, max(64, 2**23 // max(weights, 1)))
    return max(8, per_step // max(regions, 1))


def attack(
    network: Network,
    spec: Specification,
    *,
    restarts: int | None = None,
    steps: int = 100,
    samples: int | None = None,
    step_size: float = 0.25,
    budget: Budget | None = None,
    seed: int = 0,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> AttackResult:
    """Search for a counterexample to ``spec`` by sampling, then PGD with restarts.

    Args:
        network: the network (any graph the forward pass supports).
        spec: the property; its unsafe region is what the search aims for.
        restarts: PGD starts per case, run as one batch; ``None`` sizes the
            batch to the network (:func:`default_batch`).
        steps: PGD steps.
        samples: random points per case in the sampling phase (centre, corners,
            uniform); ``None``: 16 per restart, within ``[1024, 8192]``.
        step_size: largest step as a fraction of the box width (or of the ball
            diameter); adaptive starts shrink it (see ``_Search.pgd``).
        budget: the time budget (``None``: no limit).
        seed: seed of the random starts.
        device: torch device of the search (confirmation runs on the CPU in float64).
        dtype: dtype of the search; ``torch.float32`` is fastest.

    Returns:
        An :class:`AttackResult`; ``counterexample`` is set only when a float64
        forward pass confirms ``spec.is_violated_by(x, y)``.

    Raises:
        SpecError: the property does not fit the network.
    """
    if not isinstance(spec, Specification):
        raise SpecError(f"expected a Specification, got {type(spec).__name__}")
    spec.validate_for(network)
    budget = budget or Budget.start(None)
    net = _with_dtype(network, dtype, device)
    net64 = _with_dtype(network, torch.float64, "cpu")
    generator = torch.Generator().manual_seed(int(seed))
    groups: dict[str, list[int]] = {}
    for i, case in enumerate(spec.cases):
        if case.unsafe:
            groups.setdefault(_region_key(case.input_region), []).append(i)
    evaluations, best = 0, (math.inf, None, None, None)
    for key, indices in groups.items():
        cases = [spec.cases[i] for i in indices]
        starts_fit, samples_fit = memory_batches(network, dtype, len(cases))
        per_case = min(default_batch(network, len(cases)), starts_fit)
        restarts_here = per_case if restarts is None else min(restarts, starts_fit)
        samples_here = min(8192, max(1024, 16 * per_case)) if samples is None else samples
        conjunctions = [[(h.C, h.d) for h in c.unsafe] for c in cases]
        search = _Search(
            net,
            _case_domains(cases, key),
            _pad_disjunctions(conjunctions, spec.num_outputs).to(dtype, device),
            _spec_confirm(net64, cases, spec),
            budget,
            generator,
            stop_on_first=True,
            sample_chunk=min(1024, samples_fit),
        )
        search.grid(GRID_POINTS, search.sample_chunk)
        _run(search, samples_here, restarts_here, steps, step_size)
        x64, margins = search.final_margins()
        evaluations += search.evaluations + 2 * len(cases)
        for j in np.flatnonzero(search.found):
            y = np.asarray(net64.get_output(x64[j]), dtype=np.float64).ravel()
            if spec.is_violated_by(x64[j], y):
                return AttackResult(
                    x64[j], y, indices[j], budget.elapsed(), evaluations, float(margins[j]), False
                )
        j = int(np.argmin(margins))
        if margins[j] < best[0]:
            best = (float(margins[j]), x64[j], indices[j], None)
        if budget.expired():
            break
    logger.debug("attack found nothing; best margin %.3g", best[0])
    return AttackResult(None, None, None, budget.elapsed(), evaluations, best[0], budget.expired())


def _domain_confirm(net64: Network, objective: _Objective) -> Confirm:
    def confirm(x64: np.ndarray, domains: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with torch.no_grad():
            y = net64.forward(torch.from_numpy(np.ascontiguousarray(x64)))
            values = torch.einsum("mkrn,mn->mkr", objective.C[domains], y) - objective.d[domains]
        margins = values.amax(dim=-1).amin(dim=-1).numpy()
        return margins <= 0, margins

    return confirm


def attack_domains(
    network: Network,
    lower: Any,
    upper: Any,
    C: Any,
    d: Any,
    *,
    groups: Sequence[int] | None = None,
    restarts: int = 8,
    steps: int = 20,
    samples: int = 16,
    step_size: float = 0.25,
    x_init: Any = None,
    budget: Budget | None = None,
    seed: int = 0,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> DomainAttackResult:
    """Minimise a per-box margin over a batch of boxes (for branch and bound).

    The margin of box ``b`` at ``x`` is ``min over groups g of max over rows i
    in g of (C[b, i] @ network(x) - d[b, i])``: the rows of ``C`` are split into
    consecutive groups of sizes ``groups`` (the disjuncts; default one group,
    i.e. one conjunction). The search stops when every box has a point with
    margin ``<= 0``, when ``budget`` runs out, or after ``steps``.

    Args:
        network: the network.
        lower: ``(B, n)`` (or ``(n,)``) box lower bounds.
        upper: ``(B, n)`` box upper bounds.
        C: ``(m, n_out)`` rows shared by all boxes, or ``(B, m, n_out)``.
        d: ``(m,)`` or ``(B, m)`` right-hand sides.
        groups: disjunct sizes summing to ``m``; ``None`` for one conjunction.
        restarts: PGD starts per box.
        steps: PGD steps.
        samples: random points per box before PGD.
        step_size: first step as a fraction of the box width.
        x_init: optional ``(B, n)`` first start of each box (instead of its centre),
            e.g. a MILP solution to polish.
        budget: the time budget (``None``: no limit).
        seed: random seed.
        device: torch device of the search.
        dtype: dtype of the search.

    Returns:
        A :class:`DomainAttackResult`: each box's best point and its float64
        margin, computed by a float64 forward pass (``found`` is ``margin <= 0``;
        a verdict on a specification still needs its own check).

    Raises:
        InvalidInputError: shapes that do not fit, empty boxes, groups that do not sum to ``m``.
    """
    budget = budget or Budget.start(None)
    lo = torch.as_tensor(np.atleast_2d(np.array(lower, dtype=np.float64)))
    hi = torch.as_tensor(np.atleast_2d(np.array(upper, dtype=np.float64)))
    if lo.shape != hi.shape or lo.shape[1] != network.input_size or bool((lo > hi).any()):
        raise InvalidInputError(
            f"boxes must be (B, {network.input_size}) with lower <= upper, "
            f"got {tuple(lo.shape)} and {tuple(hi.shape)}"
        )
    objective = _domain_objective(C, d, groups, lo.shape[0], network.output_size)
    net64 = _with_dtype(network, torch.float64, "cpu")
    search = _Search(
        _with_dtype(network, dtype, device),
        BoxBatch(lo, hi),
        objective.to(dtype, device),
        _domain_confirm(net64, objective),
        budget,
        torch.Generator().manual_seed(int(seed)),
        stop_on_first=False,
    )
    if x_init is not None:
        first = torch.as_tensor(np.asarray(x_init, dtype=np.float64).reshape(lo.shape))
        search.first = search.domains.project(first.to(search.domains.reference).unsqueeze(1))
        search.best_x = search.first.squeeze(1).clone()
    _run(search, samples, restarts, steps, step_size)
    x64, margins = search.final_margins()
    return DomainAttackResult(
        x64, margins, budget.elapsed(), search.evaluations + 2 * lo.shape[0], budget.expired()
    )


def _domain_objective(
    C: Any, d: Any, groups: Sequence[int] | None, batch: int, n_out: int
) -> _Objective:
    rows = np.asarray(C, dtype=np.float64)
    rhs = np.asarray(d, dtype=np.float64)
    rows = np.broadcast_to(rows.reshape((-1, *rows.shape[-2:])), (batch, *rows.shape[-2:]))
    rhs = np.broadcast_to(rhs.reshape(-1, rhs.shape[-1]), (batch, rhs.shape[-1]))
    m = rows.shape[1]
    if rows.shape[2] != n_out or rhs.shape[1] != m:
        raise InvalidInputError(f"C must be (m, {n_out}) or (B, m, {n_out}) with d (m,) or (B, m)")
    sizes = [m] if groups is None else [int(g) for g in groups]
    if sum(sizes) != m or min(sizes, default=0) < 0:
        raise InvalidInputError(f"groups {sizes} must be non-negative and sum to {m}")
    bounds = np.cumsum([0, *sizes])
    disjunctions = [
        [(rows[b, s:e], rhs[b, s:e]) for s, e in itertools.pairwise(bounds)] for b in range(batch)
    ]
    return _pad_disjunctions(disjunctions, n_out)
