"""Branch and bound over ReLU phases with beta-CROWN bounds, batched.

Wang et al. 2021, "Beta-CROWN: Efficient Bound Propagation with Per-neuron
Split Constraints for Complete and Incomplete Neural Network Robustness
Verification". A subdomain fixes the phase of some unstable ReLUs: ``z_j >= 0``
(active) or ``z_j <= 0`` (inactive). Its bound is CROWN's backward pass with
the split neurons' pre-activation bounds clamped at 0 (so their relaxation is
exact) plus the split constraints through Lagrange multipliers ``beta >= 0``:
for ``s_j = +1`` (active) or ``-1`` (inactive),

    min_{x in D} c^T y(x)  >=  min_{x in box, relaxation} c^T y - sum_j beta_j s_j z_j,

because ``s_j z_j >= 0`` on the subdomain ``D``. The lower slopes ``alpha``
(Xu et al. 2021) and ``beta`` are optimised together by projected Adam, warm
started from the parent domain. Intermediate bounds start as the root's
(alpha-CROWN with optimised intermediate slopes), with the split neurons
clamped; after each split the layers behind the split neuron are re-bounded
by CROWN on the child (intersected with the parent's bounds), which is what
deep MLPs need: a fixed phase early on tightens every later layer. Children
whose re-tightened bounds cross contain no input and are dropped.

Branching: BaBSR (Bunel et al. 2020, "Branch and Bound for Piecewise Linear
Neural Network Verification"): an unstable neuron scores the bound it loses to
the intercept of its upper relaxation, ``max(-lam_j, 0) * u_j (-l_j) / (u_j -
l_j)``, ``lam_j`` being its output's coefficient in the domain's final
backward pass; the best-scoring neuron over all layers is split. With
``fsb_candidates > 1`` the few best-scoring neurons are tried first (filtered
smart branching, De Palma et al. 2021): each candidate's two children get one
backward pass at the domain's slopes and multipliers, and the candidate whose
worse child has the best bound is split. Measured on the MNIST 256x4 net it
bounds 1.6-2x more domains than BaBSR alone before the proof (the one-pass
estimate at the parent's multipliers ranks poorly what beta optimisation then
achieves), so it is off by default.

The unsafe region of a case is a disjunction of conjunctions ``C_k y <= d_k``;
each disjunct is searched on its own (easiest first): it is refuted on a
subdomain when some row's lower bound exceeds its threshold. Each round takes
the ``batch_size`` open domains with the worst bounds, splits each in two and
bounds the children together. The point minimising each open domain's linear
bound over the input box is checked for a counterexample (confirmed by a
float64 forward pass).

Memory is bounded: the number of live domains is capped by ``max_domains``
and by ``memory_bytes`` (whichever is smaller); reaching the cap ends the
search with ``unknown``. A domain whose ReLUs are all fixed but whose bound
still fails (the Lagrangian bound is exact there only at the optimal ``beta``)
is decided by the exact LP of its phase pattern
(:mod:`verifiNN.solvers.pattern_lp`); when even that is not certified the
search ends ``unknown`` rather than guess.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from verifiNN.bounds import AlphaOptions, CrownOptions, bound_graph, compute_bounds
from verifiNN.bounds.adam import ProjectedAdam
from verifiNN.bounds.alpha import alpha_relax
from verifiNN.bounds.crown import default_relax, tighten
from verifiNN.bounds.graph import BoundGraph, backward
from verifiNN.bounds.types import PROOF_TOLERANCE, Interval
from verifiNN.budget import Budget, memory_share
from verifiNN.models.network import Network
from verifiNN.ops import ReLU
from verifiNN.regions import BoxBatch, RegionBatch, as_batch
from verifiNN.results import EngineResult, Outcome, Verdict
from verifiNN.search.bab import confirm_candidates
from verifiNN.search.relu_domains import DomainPool, Domains
from verifiNN.solvers.pattern_lp import pattern_lp, piecewise_linear
from verifiNN.specs import Case, HalfSpaces, Specification

__all__ = ["ReluBaBOptions", "relu_split_bab", "supports_relu_split"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReluBaBOptions:
    """Options of ReLU-splitting branch and bound.

    Attributes:
        batch_size: parent domains split per round (their ``2 x batch_size``
            children are bounded together).
        iterations: alpha/beta Adam steps per round of children.
        root_iterations: alpha-CROWN steps at the root (intermediate slopes too).
        lr_alpha: Adam step size on the slopes (in ``[0, 1]``).
        lr_beta: Adam step size on the split multipliers (``>= 0``).
        max_domains: cap on live domains.
        memory_bytes: cap on the memory of the live domains' tensors (default:
            a quarter of the memory available when the options are made, at
            most 8 GiB; :func:`verifiNN.budget.memory_share`).
        proof_margin: a row counts as proved when its bound exceeds its
            threshold by ``proof_margin * (1 + |d|)``.
        dtype: bound arithmetic precision.
        retighten_work: re-tighten the intermediate bounds of each round's
            children by CROWN while that costs at most this many times their
            alpha/beta optimisation (estimated from rows and node sizes; 0: never).
        fsb_candidates: neurons per domain whose split is tried by one bound
            pass before choosing (filtered smart branching; 1: BaBSR alone,
            the default, which needed fewer domains on the MNIST nets).
        search_dtype: precision of the alpha/beta optimisation steps; every
            bound the search acts on is recomputed in ``dtype`` from the
            optimised values (float32 steps run about twice as fast on a CPU,
            convolutions more).
    """

    batch_size: int = 256
    iterations: int = 6
    root_iterations: int = 20
    lr_alpha: float = 0.1
    lr_beta: float = 0.05
    max_domains: int = 400_000
    memory_bytes: int = field(default_factory=memory_share)
    proof_margin: float = PROOF_TOLERANCE
    dtype: torch.dtype = torch.float64
    retighten_work: float = 1.0
    fsb_candidates: int = 1
    search_dtype: torch.dtype = torch.float32


def supports_relu_split(network: Network) -> bool:
    """True when the network has ReLUs to split and bound rules for every op."""
    return any(isinstance(node.op, ReLU) for node in network.nodes)


@dataclass(frozen=True)
class _Frame:
    """The bound graph, input set, rows and fixed node bounds in one precision."""

    graph: BoundGraph
    input_set: RegionBatch
    C: Tensor
    threshold: Tensor
    fixed: dict[str, Interval]

    @property
    def dtype(self) -> torch.dtype:
        return self.C.dtype

    @staticmethod
    def of(
        graph: BoundGraph,
        input_set: RegionBatch,
        rows: HalfSpaces,
        fixed: dict[str, Interval],
        proof_margin: float,
    ) -> _Frame:
        ref = input_set.reference
        C = torch.tensor(rows.C, dtype=ref.dtype, device=ref.device).unsqueeze(0)
        d = torch.tensor(rows.d, dtype=ref.dtype, device=ref.device)
        threshold = (d + proof_margin * (1.0 + d.abs())).unsqueeze(0)
        cast = {
            name: Interval(b.lower.to(ref.dtype), b.upper.to(ref.dtype))
            for name, b in fixed.items()
        }
        return _Frame(graph, input_set, C, threshold, cast)


class _Disjunct:
    """Beta-CROWN bounds and branching for one disjunct ``C y <= d`` of a case.

    Domain bounds, slopes and multipliers are kept in ``options.dtype`` (the exact
    frame); with a faster ``options.search_dtype`` the slopes and multipliers are
    optimised in that precision (the fast frame) and every reported bound comes
    from one more pass in the exact frame at the optimised values (any slopes in
    ``[0, 1]`` and multipliers ``>= 0`` give a sound bound there).
    """

    def __init__(
        self,
        graph: BoundGraph,
        input_set: RegionBatch,
        rows: HalfSpaces,
        root_bounds: dict[str, Interval],
        options: ReluBaBOptions,
        fast: tuple[BoundGraph, RegionBatch] | None = None,
    ) -> None:
        self.graph = graph
        self.input_set = input_set
        self.options = options
        self.rows = rows
        relus = [node for node in graph.nodes if isinstance(node.op, ReLU)]
        self.relu_names = [node.name for node in relus]
        self.layers = [node.inputs[0] for node in relus]
        self.shapes = [tuple(graph.shapes[name]) for name in self.layers]
        self.sizes = [int(np.prod(shape, dtype=np.int64)) for shape in self.shapes]
        self.offsets = np.cumsum([0, *self.sizes])
        split_layers = set(self.layers)
        self.fixed = {name: b for name, b in root_bounds.items() if name not in split_layers}
        self.root_bounds = root_bounds
        margin = options.proof_margin
        self.exact = _Frame.of(graph, input_set, rows, self.fixed, margin)
        self.fast = None if fast is None else _Frame.of(*fast, rows, self.fixed, margin)
        self.C = self.exact.C
        self.threshold = self.exact.threshold
        self.m = int(self.C.shape[1])

    # ------------------------------------------------------------ domains
    def root(self) -> Domains:
        lower = [self.root_bounds[n].lower.flatten(1) for n in self.layers]
        upper = [self.root_bounds[n].upper.flatten(1) for n in self.layers]
        alpha = [
            (u > -lo).to(lo.dtype).unsqueeze(1).expand(1, self.m, -1).clone()
            for lo, u in zip(lower, upper)
        ]
        beta = [torch.zeros_like(a) for a in alpha]
        split = [torch.zeros_like(lo, dtype=torch.int8) for lo in lower]
        empty = torch.zeros(1, dtype=lower[0].dtype)
        return Domains(lower, upper, split, alpha, beta, empty, torch.zeros(1, dtype=torch.long))

    def children(self, parents: Domains) -> Domains:
        """Both phases of each parent's branching neuron."""
        n = len(parents)
        kids = parents.take(torch.arange(n).repeat(2))
        active = torch.arange(2 * n) < n
        self._clamp(kids.lower, kids.upper, parents.branch.repeat(2), active, kids.split)
        return kids

    def _clamp(
        self,
        lower: list[Tensor],
        upper: list[Tensor],
        flat: Tensor,
        active: Tensor,
        split: list[Tensor] | None = None,
    ) -> None:
        """Fix neuron ``flat[i]`` of domain ``i`` active (``z >= 0``) or inactive, in place."""
        rows = torch.arange(len(flat))
        for layer, (start, size) in enumerate(zip(self.offsets[:-1], self.sizes)):
            hit = (flat >= start) & (flat < start + size)
            if not hit.any():
                continue
            r, j = rows[hit], flat[hit] - int(start)
            act = active[hit]
            low, up = lower[layer], upper[layer]
            low[r, j] = torch.where(act, low[r, j].clamp(min=0), low[r, j])
            up[r, j] = torch.where(act, up[r, j], up[r, j].clamp(max=0))
            if split is not None:
                split[layer][r, j] = torch.where(act, 1, -1).to(torch.int8)

    def layer_of(self, flat: Tensor) -> Tensor:
        """The split-layer index of flat neuron indices (over all layers)."""
        edges = torch.as_tensor(self.offsets[1:], dtype=flat.dtype, device=flat.device)
        return torch.bucketize(flat, edges, right=True)

    # ------------------------------------------------------------ re-tightening
    def retighten(
        self, domains: Domains, changed: Tensor, budget: Budget | None = None
    ) -> tuple[Domains, int]:
        """CROWN bounds of the split layers after each domain's newest split.

        A split fixes a neuron's phase, so its relaxation becomes exact and every
        later pre-activation may get tighter (the intermediate-bound refinement
        beta-CROWN's paper does with optimised slopes; here one CROWN pass with the
        adaptive slopes, intersected with the parent's bounds, so never looser).
        Layer ``k`` is re-bounded for the domains whose newest split lies in a
        layer before it, in order, so each pass uses the layers already
        tightened. The passes run while their estimated work (rows times the
        entries they cross, per domain) stays within ``options.retighten_work``
        times that of the domains' alpha/beta optimisation, and ``budget`` lasts.

        A domain whose bounds cross (lower above upper by more than the proof
        margin) contains no input: it is dropped (proved).

        Args:
            domains: the children, right after :meth:`children`.
            changed: ``(N,)`` split-layer index of each child's newest split.

        Returns:
            The domains left and how many were found empty.
        """
        opts = self.options
        n = len(domains)
        if opts.retighten_work <= 0 or n == 0 or len(self.layers) < 2:
            return domains, 0
        graph = self.graph
        passes = 3 * (opts.iterations + 1) * self.m
        allowed = opts.retighten_work * passes * n * graph.entries_up_to[graph.output_name]
        work = 0
        crown = CrownOptions()
        for k in range(1, len(self.layers)):
            if budget is not None and budget.expired():
                break
            chosen = (changed < k).nonzero().squeeze(1)
            if not len(chosen):
                continue
            low, up = domains.lower[k][chosen], domains.upper[k][chosen]
            rows = int(((low < 0) & (up > 0)).sum(1).max())
            if rows == 0:
                continue
            work += len(chosen) * 2 * rows * graph.entries_up_to[self.layers[k]]
            if work > allowed:
                break
            bounds = dict(self.fixed)
            for j in range(k + 1):
                shape = (len(chosen), *self.shapes[j])
                bounds[self.layers[j]] = Interval(
                    domains.lower[j][chosen].reshape(shape),
                    domains.upper[j][chosen].reshape(shape),
                )
            node = graph.node(self.layers[k])
            tight = tighten(
                graph, node, bounds[node.name], default_relax(bounds), self.input_set, crown
            )
            domains.lower[k][chosen] = tight.lower.flatten(1)
            domains.upper[k][chosen] = tight.upper.flatten(1)
        crossed = torch.zeros(n, dtype=torch.bool)
        for low, up in zip(domains.lower, domains.upper):
            gap = low - up
            crossed |= (gap > opts.proof_margin * (1.0 + up.abs())).any(1)
            # Rounding may cross bounds of a feasible domain slightly: widen them back.
            low.copy_(torch.minimum(low, up))
        empty = int(crossed.sum())
        if empty:
            domains = domains.take((~crossed).nonzero().squeeze(1))
        return domains, empty

    # ------------------------------------------------------------ bounding
    def _bounds(self, domains: Domains, frame: _Frame | None = None) -> dict[str, Interval]:
        frame = frame or self.exact
        bounds = dict(frame.fixed)
        for name, shape, low, up in zip(self.layers, self.shapes, domains.lower, domains.upper):
            n = low.shape[0]
            bounds[name] = Interval(
                low.reshape(n, *shape).to(frame.dtype), up.reshape(n, *shape).to(frame.dtype)
            )
        return bounds

    def _pass(
        self,
        domains: Domains,
        bounds: dict[str, Interval],
        alpha: list[Tensor],
        beta: list[Tensor],
        record: dict[str, Tensor] | None = None,
        frame: _Frame | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        """One backward pass: ``(lower (N, m), input coefficients A (N, m, n_in))``."""
        frame = frame or self.exact
        n = len(domains)
        params = {
            name: [a.reshape(n, self.m, *shape), None]
            for name, a, shape in zip(self.relu_names, alpha, self.shapes)
        }
        relax = alpha_relax(bounds, params)
        graph = frame.graph
        out_shape = graph.shapes[graph.output_name]
        seeds = {graph.output_name: frame.C.expand(n, -1, -1).reshape(n, self.m, *out_shape)}
        for name, shape, b, s in zip(self.layers, self.shapes, beta, domains.split):
            if bool(s.any()):
                term = -(b * s.unsqueeze(1).to(b.dtype))
                seeds[name] = term.reshape(n, self.m, *shape) + seeds.get(name, 0)
        A, c = backward(graph, seeds, relax, record=record)
        lower = frame.input_set.concretize(A.flatten(2), c)
        return lower, A

    def bound(
        self, domains: Domains, iterations: int, budget: Budget | None = None
    ) -> tuple[Domains, Tensor]:
        """Optimise alpha and beta on ``domains``; fills ``margin`` and ``branch``.

        Stops early when every domain is proved or ``budget`` runs out. Without a
        fast frame every iterate is a sound bound and the best one is kept; with
        one, the steps run in the fast precision and the margins come from one
        pass in the exact precision at each row's best iterate. The domains keep
        the last iterate either way (the children's warm start).

        Returns:
            The domains (updated in place) and ``A`` ``(N, m, n_in)`` of the
            last exact pass (for counterexample candidates).
        """
        opts = self.options
        frame = self.fast or self.exact
        exact_only = frame is self.exact
        bounds = self._bounds(domains, frame)
        alpha = [a.detach().to(frame.dtype).requires_grad_() for a in domains.alpha]
        beta = [b.detach().to(frame.dtype).requires_grad_() for b in domains.beta]
        adam_alpha = ProjectedAdam(alpha, lr=opts.lr_alpha, lr_decay=0.98)
        adam_beta = ProjectedAdam(beta, lr=opts.lr_beta, lr_decay=0.98, high=float("inf"))
        best = torch.full((len(domains), self.m), float("-inf"), dtype=frame.dtype)
        record: dict[str, Tensor] = {}
        # With a fast frame, each row's best slopes and multipliers (for the exact pass).
        kept = None if exact_only else [[t.detach().clone() for t in g] for g in (alpha, beta)]
        with torch.enable_grad():
            for step in range(iterations + 1):
                record.clear()
                lower, A = self._pass(domains, bounds, alpha, beta, record, frame)
                better = lower.detach() > best
                best = torch.maximum(best, lower.detach())
                if kept is not None:
                    for group, now in zip(kept, (alpha, beta)):
                        for t, value in zip(group, now):
                            t.copy_(torch.where(better.unsqueeze(-1), value.detach(), t))
                gap = (lower - frame.threshold).clamp(max=0)
                if step == iterations:
                    break
                if bool(((best - frame.threshold) > 0).any(1).all()):
                    break
                if budget is not None and budget.expired():
                    break
                loss = -gap.sum()
                grads = torch.autograd.grad(loss, alpha + beta, allow_unused=True)
                adam_alpha.step(list(grads[: len(alpha)]))
                adam_beta.step(list(grads[len(alpha) :]))
        # Children warm start from the last iterate (Adam's progress), as in the exact case.
        domains.alpha = [a.detach().to(opts.dtype) for a in alpha]
        domains.beta = [b.detach().to(opts.dtype) for b in beta]
        if kept is not None:
            if budget is not None and budget.expired():
                # No time for the exact pass: nothing is proved, and the search stops.
                domains.margin = torch.full((len(domains),), float("-inf"), dtype=opts.dtype)
                domains.branch = torch.full((len(domains),), -1, dtype=torch.long)
                return domains, A.detach().to(opts.dtype)
            record.clear()
            alpha, beta = ([t.to(opts.dtype) for t in group] for group in kept)
            with torch.no_grad():
                best, A = self._pass(domains, self._bounds(domains), alpha, beta, record)
        domains.margin = (best - self.threshold).max(1).values
        domains.branch = self._branch(domains, {k: v.detach() for k, v in record.items()}, budget)
        return domains, A.detach()

    def _branch(
        self, domains: Domains, record: dict[str, Tensor], budget: Budget | None = None
    ) -> Tensor:
        """BaBSR: per domain, the flat index of the unstable neuron to split (-1: none)."""
        scores = []
        for name, low, up in zip(self.relu_names, domains.lower, domains.upper):
            unstable = (low < 0) & (up > 0)
            lam = record.get(name)
            width = (up - low).clamp(min=1e-300)
            intercept = up * (-low) / width
            if lam is None:
                score = intercept
            else:
                lam = lam.flatten(2)
                score = (lam.clamp(max=0).neg() * intercept.unsqueeze(1)).sum(1)
                score = score + 1e-6 * (lam.abs().sum(1) * intercept)
            score = score + 1e-12 * intercept
            scores.append(torch.where(unstable, score, torch.full_like(score, float("-inf"))))
        joined = torch.cat(scores, dim=1)
        best = joined.argmax(1)
        none = torch.isinf(joined.gather(1, best.unsqueeze(1)).squeeze(1))
        if self.options.fsb_candidates > 1 and not bool(none.all()):
            best = self._filtered_smart(domains, joined, best, budget)
        return torch.where(none, torch.full_like(best, -1), best)

    def _filtered_smart(
        self, domains: Domains, scores: Tensor, fallback: Tensor, budget: Budget | None
    ) -> Tensor:
        """Filtered smart branching (De Palma et al. 2021, "Improved Branch and Bound
        for Neural Network Verification via Lagrangian Decomposition"): of the
        ``fsb_candidates`` best BaBSR scores of each domain, the neuron whose two
        children get the best worse-side margin from one backward pass at the
        domain's current slopes and multipliers (the new split's multiplier 0).
        Candidates not tried before ``budget`` runs out keep BaBSR's choice."""
        k = min(self.options.fsb_candidates, scores.shape[1])
        values, candidates = scores.topk(k, dim=1)
        best_value = torch.full_like(values[:, 0], float("-inf"))
        best = fallback.clone()
        n = len(domains)
        active = torch.ones(n, dtype=torch.bool)
        with torch.no_grad():
            for c in range(k):
                if budget is not None and budget.expired():
                    break
                flat = candidates[:, c]
                margins = []
                for side in (active, ~active):
                    lower = [t.clone() for t in domains.lower]
                    upper = [t.clone() for t in domains.upper]
                    self._clamp(lower, upper, flat, side)
                    view = Domains(lower, upper, domains.split, [], [], domains.margin, flat)
                    low, _ = self._pass(view, self._bounds(view), domains.alpha, domains.beta)
                    margins.append((low - self.threshold).max(1).values)
                value = torch.minimum(*margins)
                value = torch.where(torch.isinf(values[:, c]), float("-inf"), value)
                better = value > best_value
                best_value = torch.where(better, value, best_value)
                best = torch.where(better, flat, best)
        return best


def _candidates(input_set: RegionBatch, A: Tensor, margin: Tensor, top: int) -> Tensor | None:
    """Points minimising the worst domains' linear bounds over the input box."""
    if not isinstance(input_set, BoxBatch):
        return None
    order = torch.argsort(margin)[:top]
    coef = A[order].flatten(2).sum(1)
    lo, up = input_set.lower, input_set.upper
    return torch.where(coef > 0, lo, up)


def _settle_exhausted(
    network: Network, spec: Specification, problem: _Disjunct, domains: Domains
) -> tuple[bool, tuple[np.ndarray, np.ndarray] | None]:
    """Decide domains whose ReLUs are all fixed by the exact LP of their phase pattern.

    Returns:
        ``(all certified safe, confirmed counterexample or None)``.
    """
    box = problem.input_set
    if not isinstance(box, BoxBatch) or not piecewise_linear(problem.graph):
        return False, None
    lower = box.lower[0].cpu().double().numpy()
    upper = box.upper[0].cpu().double().numpy()
    C = problem.C[0].cpu().double().numpy()
    d = problem.rows.d
    settled = True
    for k in range(len(domains)):
        phases = {
            name: torch.where(
                split[k] != 0, split[k].to(low.dtype), torch.where(low[k] >= 0, 1.0, -1.0)
            )
            for name, split, low in zip(problem.relu_names, domains.split, domains.lower)
        }
        outcome = pattern_lp(problem.graph, lower, upper, phases, C, d)
        if outcome.status is Outcome.CANDIDATE:
            example = confirm_candidates(network, spec, torch.as_tensor(outcome.x).unsqueeze(0))
            if example is not None:
                return True, example
        settled = settled and outcome.status is Outcome.EMPTY
    return settled, None


def _search_disjunct(
    network: Network,
    spec: Specification,
    problem: _Disjunct,
    budget: Budget,
    stats: dict[str, float],
) -> tuple[Verdict, tuple[np.ndarray, np.ndarray] | None]:
    opts = problem.options
    root = problem.root()
    root, A = problem.bound(root, opts.iterations, budget)
    stats["domains"] += 1
    if bool(root.margin[0] > 0):
        return Verdict.UNSAT, None
    if budget.expired():
        return Verdict.TIMEOUT, None
    example = confirm_candidates(network, spec, _candidates(problem.input_set, A, root.margin, 1))
    if example is not None:
        return Verdict.SAT, example
    cap = min(opts.max_domains, opts.memory_bytes // max(1, root.bytes_per_domain()))
    live = DomainPool(root, cap + 2 * opts.batch_size)
    stuck = False
    while len(live):
        stats["worst_margin"] = float(live.margin.min())  # the disjunct's proven lower bound
        if budget.expired():
            return Verdict.TIMEOUT, None
        exhausted = (live.branch < 0).nonzero().squeeze(1)
        if len(exhausted):
            done = live.remove(exhausted)
            settled, example = _settle_exhausted(network, spec, problem, done)
            if example is not None:
                return Verdict.SAT, example
            stuck = stuck or not settled
            if not len(live):
                break
        take = min(opts.batch_size, len(live))
        worst = torch.topk(live.margin, take, largest=False).indices
        parents = live.remove(worst)
        kids = problem.children(parents)
        kids, empty = problem.retighten(kids, problem.layer_of(parents.branch).repeat(2), budget)
        stats["empty"] += empty
        if not len(kids):
            continue
        kids, A = problem.bound(kids, opts.iterations, budget)
        stats["domains"] += len(kids)
        stats["rounds"] += 1
        if budget.expired():  # the children's bounds may be unfinished: stop here
            return Verdict.TIMEOUT, None
        open_kids = (kids.margin <= 0).nonzero().squeeze(1)
        example = confirm_candidates(
            network, spec, _candidates(problem.input_set, A[open_kids], kids.margin[open_kids], 16)
        )
        if example is not None:
            return Verdict.SAT, example
        live.add(kids.take(open_kids))
        stats["peak_domains"] = max(stats["peak_domains"], float(len(live)))
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "round %d: %d live, worst margin %.4g",
                stats["rounds"],
                len(live),
                float(live.margin.min()) if len(live) else 0.0,
            )
        if len(live) > cap:
            logger.info("ReLU split: %d live domains exceed the cap %d", len(live), cap)
            return Verdict.UNKNOWN, None
    return (Verdict.UNKNOWN if stuck else Verdict.UNSAT), None


def relu_split_bab(
    network: Network,
    spec: Specification,
    budget: Budget | None = None,
    options: ReluBaBOptions | None = None,
) -> EngineResult:
    """Decide ``spec`` by ReLU splitting with beta-CROWN bounds.

    Args:
        network: a network with ReLUs (any graph the bound engine supports).
        spec: the property (box or Lp-ball input regions).
        budget: time budget (default: unlimited).
        options: search options.

    Returns:
        The verdict, with a counterexample confirmed by a float64 forward pass
        for ``sat``; statistics: domains bounded, rounds, peak live domains,
        children found empty by re-tightening, and ``worst_margin`` (the lowest
        margin of the live domains when the search last looked: how far from a
        proof it stopped).
    """
    budget = budget or Budget.start(None)
    options = options or ReluBaBOptions()
    start = time.perf_counter()
    stats = {"domains": 0.0, "rounds": 0.0, "peak_domains": 0.0, "empty": 0.0}
    graph = bound_graph(network, options.dtype)
    fast = (
        bound_graph(network, options.search_dtype)
        if options.search_dtype != options.dtype
        else None
    )
    verdict: Verdict = Verdict.UNSAT
    for case in spec.cases:
        verdict, example = _search_case(network, spec, case, graph, fast, budget, options, stats)
        if verdict is not Verdict.UNSAT:
            stats["seconds"] = time.perf_counter() - start
            return EngineResult(verdict, example, stats)
    stats["seconds"] = time.perf_counter() - start
    return EngineResult(verdict, None, stats)


def _search_case(
    network: Network,
    spec: Specification,
    case: Case,
    graph: BoundGraph,
    fast_graph: BoundGraph | None,
    budget: Budget,
    options: ReluBaBOptions,
    stats: dict[str, float],
) -> tuple[Verdict, tuple[np.ndarray, np.ndarray] | None]:
    """Root alpha-CROWN on all rows at once, then BaB on the open disjuncts, easiest first."""
    if not case.unsafe:  # an empty disjunction: nothing is unsafe in this case
        return Verdict.UNSAT, None
    input_set = as_batch(case.input_region, network.input_size, options.dtype)
    C = torch.tensor(np.concatenate([rows.C for rows in case.unsafe]), dtype=options.dtype)
    d = torch.tensor(np.concatenate([rows.d for rows in case.unsafe]), dtype=options.dtype)
    threshold = d + options.proof_margin * (1.0 + d.abs())
    result = compute_bounds(
        graph,
        input_set,
        C,
        method="alpha-crown",
        bound_upper=False,
        threshold=threshold,
        options=AlphaOptions(iterations=options.root_iterations),
        budget=budget,
    )
    if budget.expired():
        return Verdict.TIMEOUT, None
    margins = (result.lower[0] - threshold).tolist()
    roots, start = [], 0
    for rows in case.unsafe:
        margin = max(margins[start : start + rows.C.shape[0]])
        start += rows.C.shape[0]
        if margin <= 0:
            roots.append((margin, rows))
    roots.sort(key=lambda item: -item[0])
    verdict = Verdict.UNSAT
    for _margin, rows in roots:
        if budget.expired():
            return Verdict.TIMEOUT, None
        fast = None
        if fast_graph is not None:
            fast_set = as_batch(case.input_region, network.input_size, options.search_dtype)
            fast = (fast_graph, fast_set)
        problem = _Disjunct(graph, input_set, rows, dict(result.bounds), options, fast)
        found, example = _search_disjunct(network, spec, problem, budget, stats)
        if found in (Verdict.SAT, Verdict.TIMEOUT):
            return found, example
        if found is Verdict.UNKNOWN:
            verdict = Verdict.UNKNOWN
    return verdict, None
