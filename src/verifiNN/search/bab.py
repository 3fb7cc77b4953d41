"""Branch and bound over the input space (input splitting), batched.

For networks with few inputs (ACAS Xu: 5) the cheapest complete method is to
split the input box: bound every subdomain with CROWN (Zhang et al. 2018) in
large batches, drop the subdomains on which the unsafe region is provably
empty, look for a counterexample among the rest, and bisect what is left.
The dimension to split is where the final linear lower bound ``A x + c`` of
the worst unproved row varies most across the box, ``argmax_j |A_j| (u_j -
l_j)`` (the "sb" input split of alpha-beta-CROWN; Wang et al. 2021,
"Beta-CROWN"); without linear bounds (non-MLP graphs) the smear heuristic
(gradient at the centre times width; Kearfott 1996, as used by Wang et al.
2018, "Efficient Formal Safety Analysis of Neural Networks") decides.

For ReLU MLPs the bounds come from :mod:`verifiNN.bounds.symbolic`
(forward symbolic intervals tightened by CROWN on the unstable neurons, then
one backward pass for the property rows), else from
:func:`verifiNN.bounds.compute_bounds`. Candidate counterexamples are the
centres of the open boxes and the corners minimising the worst row's linear
lower bound, each confirmed by a float64 forward pass.

The unsafe region of a case is a disjunction of conjunctions ``C_k y <= d_k``.
A subdomain is safe when every disjunct ``k`` has a row ``i`` whose CROWN lower
bound proves ``C_{k,i} y > d_{k,i}``. A disjunct proved on a domain stays
proved on its children, so children only carry the disjuncts still open.

Near ties defeat bisection: on ACAS Xu 3_3 prop_2 the margin stays about
1e-3 across a 4-D slab, and boxes small enough for CROWN to resolve it number
in the millions. Once a search has run a while, an open box with few unstable
ReLUs is therefore handed to the exact MILP (Tjeng et al. 2019) with the
box's intermediate bounds and stable ReLUs substituted away
(:func:`verifiNN.solvers.milp.encode_mlp_compact`, decided by
:func:`verifiNN.search.milp.milp_verify`): tens of columns, ~25 ms.
This mixes input splitting with an exact leaf solver much as nnenum mixes
overapproximation with exact star sets (Bak et al. 2020).

Memory is bounded: when more than ``max_domains`` subdomains are alive the
search stops with ``unknown`` (documented, never a wrong verdict).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from verifiNN.bounds import AlphaOptions, CrownOptions, bound_graph, compute_bounds
from verifiNN.bounds.symbolic import LinearRowBounds, mlp_bounder
from verifiNN.bounds.types import PROOF_TOLERANCE
from verifiNN.budget import Budget
from verifiNN.errors import SpecError
from verifiNN.models.network import Network
from verifiNN.regions import BoxBatch
from verifiNN.results import EngineResult, Verdict
from verifiNN.search.milp import milp_verify
from verifiNN.search.unsafe_region import clip_to_unsafe, combine_conjunctions
from verifiNN.specs import Box, Case, Specification

__all__ = ["BaBOptions", "confirm_candidates", "input_split_bab"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BaBOptions:
    """Options of input-splitting branch and bound.

    Attributes:
        batch_size: subdomains bounded per call (a few hundred keeps the
            backward passes in cache).
        max_domains: cap on live subdomains; reaching it ends the search with
            ``unknown``.
        proof_margin: a row counts as proved when its lower bound exceeds its
            threshold by ``proof_margin * (1 + |d|)`` (absorbs float64
            rounding in the bound arithmetic).
        dtype: bound arithmetic precision (float64 keeps proofs sound).
        engine: ``'mlp'`` (forward linear intermediate bounds tightened by
            backward CROWN on the unstable neurons, see
            :mod:`verifiNN.bounds.symbolic`; ReLU MLPs only), ``'crown'``
            (:func:`verifiNN.bounds.compute_bounds`) or ``'auto'`` (``'mlp'``
            when the network is a ReLU MLP, else ``'crown'``).
        branching: which scores choose the dimension to bisect (see
            :func:`_branching_score`): ``'linear'``, ``'smear'``, ``'widest'``
            or ``'mixed'`` (all three, each scaled to a maximum of 1). On
            ACAS Xu, linear + smear alone needed >12k domains on 1_4 prop_1
            where adding the width needs 97; either linear score alone needs
            >27k on 3_7 prop_1 where their sum needs 1.3k.
        reuse_parent_bounds: intersect each box's intermediate bounds with its
            parent's (MLP engine; sound, float32 rounded outwards). Off: CROWN
            is not monotone in the intermediate bounds (its adaptive slopes
            flip), and on ACAS Xu it cut 5_1 prop_1 from 4k to 0.6k domains
            but blew 1_1 prop_3 and prop_5 up from 6-8k to over 150k.
        clip: shrink each open box to the part its linear bounds leave
            possibly unsafe before it is split
            (:func:`verifiNN.search.unsafe_region.clip_to_unsafe`).
        alpha_iterations: boxes the cheap bounds leave open are bounded again
            by alpha-CROWN with optimised intermediate slopes (Xu et al. 2021,
            "Fast and Complete") for this many steps before being split (0:
            never). On ACAS Xu property 1 three steps prove ~8x more of the
            open boxes at ~12x the cost of a cheap bound, but the search was
            slower overall (3_7 prop_1: 7k domains in 60 s vs 27k), hence off.
        leaf_milp_unstable: once the search has bounded ``leaf_milp_after``
            domains, an open box with at most this many unstable ReLUs (MLP
            engine) is decided by the exact MILP (:func:`verifiNN.search.milp.
            milp_verify`, given the box's intermediate bounds) instead of being
            split; a MILP that does not finish in ``leaf_milp_timeout`` seconds
            leaves its box to splitting. 0: never. For near ties (ACAS Xu 3_3
            prop_2: a margin of 1e-3 over a 4-D slab) input splitting alone
            needs millions of boxes, while a MILP with 30 binaries takes about
            0.1 s; on easy properties the search ends before ``leaf_milp_after``.
    """

    batch_size: int = 512
    clip: bool = True
    leaf_milp_unstable: int = 30
    leaf_milp_after: int = 5_000
    leaf_milp_timeout: float = 5.0
    alpha_iterations: int = 0
    reuse_parent_bounds: bool = False
    engine: str = "auto"
    branching: str = "mixed"
    max_domains: int = 500_000
    proof_margin: float = PROOF_TOLERANCE
    dtype: torch.dtype = torch.float64


@dataclass
class _Rows:
    """A case's disjuncts stacked: rows ``C @ y <= d``, row ``i`` in disjunct ``owner[i]``."""

    C: Tensor
    d: Tensor
    owner: Tensor
    num_disjuncts: int
    conjunctive: bool

    @classmethod
    def of(cls, case: Case, dtype: torch.dtype) -> _Rows:
        C = np.concatenate([h.C for h in case.unsafe])
        d = np.concatenate([h.d for h in case.unsafe])
        owner = np.concatenate([np.full(h.C.shape[0], k) for k, h in enumerate(case.unsafe)])
        return cls(
            torch.as_tensor(C, dtype=dtype),
            torch.as_tensor(d, dtype=dtype),
            torch.as_tensor(owner),
            len(case.unsafe),
            any(h.C.shape[0] > 1 for h in case.unsafe),
        )

    def disjunct_proved(self, row_proved: Tensor) -> Tensor:
        """``(B, K)``: disjunct ``k`` proved empty when any of its rows is proved."""
        out = torch.zeros(row_proved.shape[0], self.num_disjuncts, dtype=torch.int64)
        return out.index_add_(1, self.owner, row_proved.to(torch.int64)) > 0


def input_split_bab(
    network: Network,
    spec: Specification,
    budget: Budget | None = None,
    options: BaBOptions | None = None,
) -> EngineResult:
    """Decide ``spec`` by input splitting and CROWN bounds.

    Args:
        network: the network (any graph CROWN supports).
        spec: the property; every case's input region must be a box.
        budget: time budget (default: unlimited).
        options: search options.

    Returns:
        The verdict (``unsat``, ``sat``, ``unknown`` at the domain cap, or
        ``timeout``) with a confirmed counterexample for ``sat``; statistics:
        domains bounded, batches, peak live domains, leaf MILPs run and
        proved, seconds.
    """
    budget = budget or Budget.start(None)
    options = options or BaBOptions()
    start = time.perf_counter()
    stats = dict.fromkeys(
        ("domains", "batches", "peak_domains", "leaf_milps", "leaf_milps_proved"), 0.0
    )
    bounder = _Bounder(network, options)
    for case in spec.cases:
        if not isinstance(case.input_region, Box):
            raise SpecError("input splitting needs box input regions", path=spec.path)
        verdict, example = _search_case(bounder, spec, case, budget, options, stats)
        if verdict is not Verdict.UNSAT:
            stats["seconds"] = time.perf_counter() - start
            return EngineResult(verdict, example, stats)
    stats["seconds"] = time.perf_counter() - start
    return EngineResult(Verdict.UNSAT, None, stats)


class _Bounder:
    """Lower bounds of the rows on a batch of boxes, with their linear form when known."""

    def __init__(self, network: Network, options: BaBOptions) -> None:
        self.network = network
        self.options = options
        self.mlp = mlp_bounder(network) if options.dtype == torch.float64 else None
        self.graph = None
        self.dense = [n.name for n in network.nodes if n.op.kind == "Dense"]
        if self.mlp is None or options.engine == "crown":
            self.graph = bound_graph(network, dtype=options.dtype)
        self.alpha_graph = None
        if options.alpha_iterations:
            self.alpha_graph = self.graph or bound_graph(network, dtype=options.dtype)

    def __call__(
        self, lo: Tensor, up: Tensor, C: Tensor, parent: Tensor | None = None
    ) -> tuple[Tensor, LinearRowBounds | None, Tensor | None]:
        """``(lower (B, m), the linear bounds or None, packed intermediate bounds or None)``.

        ``parent``: packed intermediate bounds of enclosing boxes (MLP engine).
        """
        if self.graph is None:
            rows = self.mlp.rows(lo, up, C, parent)
            return rows.lower, rows, rows.packed
        result = compute_bounds(
            self.graph,
            BoxBatch(lo, up),
            C=C,
            method="crown",
            bound_upper=False,
            options=CrownOptions(chunk_regions=lo.shape[0]),
        )
        if self.mlp is None or len(self.dense) != len(self.mlp.weights):
            return result.lower, None, None
        bounds = [
            (result.bounds[name].lower.flatten(1), result.bounds[name].upper.flatten(1))
            for name in self.dense[:-1]
        ]
        rows = self.mlp.rows_from(lo, up, C, bounds)
        return torch.maximum(result.lower, rows.lower), rows, None


def _search_case(
    bounder: _Bounder,
    spec: Specification,
    case: Case,
    budget: Budget,
    options: BaBOptions,
    stats: dict[str, float],
) -> tuple[Verdict, tuple[np.ndarray, np.ndarray] | None]:
    """Depth-first batched input splitting on one case (see the module docstring)."""
    if not case.unsafe:  # an empty disjunction: nothing is unsafe in this case
        return Verdict.UNSAT, None
    rows = _Rows.of(case, options.dtype)
    threshold = rows.d + options.proof_margin * (1.0 + rows.d.abs())
    lower = torch.tensor(np.array(case.input_region.lower), dtype=options.dtype).unsqueeze(0)
    upper = torch.tensor(np.array(case.input_region.upper), dtype=options.dtype).unsqueeze(0)
    open_disjuncts = torch.ones(1, rows.num_disjuncts, dtype=torch.bool)
    hidden: Tensor | None = None  # packed intermediate bounds of the parents (MLP engine)
    network = bounder.network
    while lower.shape[0]:
        if budget.expired():
            return Verdict.TIMEOUT, None
        take = min(options.batch_size, lower.shape[0])
        lo, up, todo = lower[-take:], upper[-take:], open_disjuncts[-take:]
        lower, upper, open_disjuncts = lower[:-take], upper[:-take], open_disjuncts[:-take]
        parent = hidden[-take:] if hidden is not None else None
        hidden = hidden[:-take] if hidden is not None else None

        bound, linear, packed = bounder(lo, up, rows.C, parent)
        stats["domains"] += take
        stats["batches"] += 1
        still_open = todo & ~rows.disjunct_proved(bound > threshold)
        keep = still_open.any(dim=1)
        if keep.any() and options.alpha_iterations and bounder.alpha_graph is not None:
            bound, still_open = _alpha_pass(bounder, lo, up, rows, bound, todo, keep, threshold)
            keep = still_open.any(dim=1)
        if keep.any() and linear is not None and options.clip:
            lo, up, still_open = _use_linear_bounds(lo, up, linear, rows, still_open, options)
            keep = still_open.any(dim=1)
        if keep.any() and packed is not None and _leaf_milp_due(options, stats):
            outcome = _leaf_milps(
                bounder, spec, case, (lo, up, packed), keep, still_open, budget, stats
            )
            if outcome is not None:
                return outcome
            keep = keep & still_open.any(dim=1)
        if not keep.any():
            continue
        lo, up, still_open, bound = lo[keep], up[keep], still_open[keep], bound[keep]
        A = linear.A[keep] if linear is not None else None
        packed = packed[keep] if packed is not None else None
        worst_row = _worst_rows(rows, bound, still_open)
        if logger.isEnabledFor(logging.DEBUG):
            slack = (bound - rows.d).gather(1, worst_row.unsqueeze(1))
            logger.debug(
                "batch %d: %d open of %d, live %d, worst slack %.4g, min width %.3g",
                stats["batches"],
                lo.shape[0],
                take,
                lower.shape[0],
                slack.min(),
                (up - lo).max(1).values.min(),
            )
        example = _find_counterexample(network, spec, lo, up, A, worst_row)
        if example is not None:
            return Verdict.SAT, example
        score = _branching_score(network, lo, up, rows.C[worst_row], A, worst_row, options)
        left_up, right_lo = _bisect(lo, up, score)
        lower = torch.cat([lower, lo, right_lo])
        upper = torch.cat([upper, left_up, up])
        open_disjuncts = torch.cat([open_disjuncts, still_open, still_open])
        if packed is not None and options.reuse_parent_bounds:
            hidden = (
                torch.cat([hidden, packed, packed])
                if hidden is not None
                else packed.repeat(2, 1, 1)
            )
        stats["peak_domains"] = max(stats["peak_domains"], float(lower.shape[0]))
        if lower.shape[0] > options.max_domains:
            logger.info("input split: %d live domains exceed the cap", lower.shape[0])
            return Verdict.UNKNOWN, None
    return Verdict.UNSAT, None


def _leaf_milp_due(options: BaBOptions, stats: dict[str, float]) -> bool:
    return options.leaf_milp_unstable > 0 and stats["domains"] >= options.leaf_milp_after


def _leaf_milps(
    bounder: _Bounder,
    spec: Specification,
    case: Case,
    boxes: tuple[Tensor, Tensor, Tensor],
    keep: Tensor,
    still_open: Tensor,
    budget: Budget,
    stats: dict[str, float],
) -> tuple[Verdict, tuple[np.ndarray, np.ndarray] | None] | None:
    """Decide the open boxes with few unstable ReLUs by the exact MILP (see
    :attr:`BaBOptions.leaf_milp_unstable`), given their intermediate bounds.

    A box the MILP proves gets its disjuncts closed in ``still_open`` (in
    place); boxes whose MILP times out stay open for splitting.

    Returns:
        ``(sat, (x, y))`` for a counterexample (confirmed by the MILP's forward
        pass), ``(timeout, None)`` when the budget ran out, else ``None``.
    """
    lo, up, packed = boxes
    options = bounder.options
    unstable = ((packed[:, 0] < 0) & (packed[:, 1] > 0)).sum(dim=1)
    layer_ends = np.cumsum([w.shape[0] for w in bounder.mlp.weights[:-1]])[:-1]
    for i in (keep & (unstable <= options.leaf_milp_unstable)).nonzero().squeeze(1).tolist():
        if budget.expired():
            return Verdict.TIMEOUT, None
        disjuncts = tuple(h for h, is_open in zip(case.unsafe, still_open[i].tolist()) if is_open)
        leaf = Case(Box(lo[i].numpy(), up[i].numpy()), disjuncts)
        low, high = (np.split(part.double().numpy(), layer_ends) for part in packed[i])
        hidden = list(zip(low, high))
        result = milp_verify(
            bounder.network,
            Specification((leaf,), spec.num_inputs, spec.num_outputs),
            budget.sub(options.leaf_milp_timeout),
            hidden_bounds=hidden,
            polish=False,
        )
        stats["leaf_milps"] += 1
        if result.verdict is Verdict.SAT:
            return Verdict.SAT, result.counterexample
        if result.verdict is Verdict.UNSAT:
            still_open[i] = False
            stats["leaf_milps_proved"] += 1
    return None


def _use_linear_bounds(
    lo: Tensor,
    up: Tensor,
    linear: LinearRowBounds,
    rows: _Rows,
    still_open: Tensor,
    options: BaBOptions,
) -> tuple[Tensor, Tensor, Tensor]:
    """Close disjuncts by row combinations and clip the boxes to their possibly
    unsafe part (:mod:`verifiNN.search.unsafe_region`).

    Returns:
        ``(lo, up, still_open)``.
    """
    A, c, d, owner = linear.A, linear.c, rows.d.expand(lo.shape[0], -1), rows.owner
    if rows.conjunctive:
        combined = combine_conjunctions(lo, up, A, c, rows.d, owner, rows.num_disjuncts)
        margin = options.proof_margin * (1.0 + combined.d.abs())
        still_open = still_open & ~(combined.lower > combined.d + margin)
        A = torch.cat([A, combined.A], dim=1)
        c = torch.cat([c, combined.c], dim=1)
        d = torch.cat([d, combined.d], dim=1)
        owner = torch.cat([owner, torch.arange(rows.num_disjuncts)])
    return clip_to_unsafe(lo, up, A, c, d, owner, still_open)


def _alpha_pass(
    bounder: _Bounder,
    lo: Tensor,
    up: Tensor,
    rows: _Rows,
    bound: Tensor,
    todo: Tensor,
    keep: Tensor,
    threshold: Tensor,
) -> tuple[Tensor, Tensor]:
    """Re-bound the open boxes ``keep`` by alpha-CROWN; the tighter bound is kept.

    Returns:
        The bounds and the disjuncts still open.
    """
    idx = keep.nonzero().squeeze(1)
    result = compute_bounds(
        bounder.alpha_graph,
        BoxBatch(lo[idx], up[idx]),
        C=rows.C,
        method="alpha-crown",
        bound_upper=False,
        options=AlphaOptions(
            iterations=bounder.options.alpha_iterations,
            crown=CrownOptions(chunk_regions=idx.numel()),
        ),
    )
    bound = bound.clone()
    bound[idx] = torch.maximum(bound[idx], result.lower.detach())
    return bound, todo & ~rows.disjunct_proved(bound > threshold)


def _worst_rows(rows: _Rows, bound: Tensor, still_open: Tensor) -> Tensor:
    """Per domain, the row to work on: in the open disjunct whose best row is
    furthest from proved, that best row (proving any row closes the disjunct)."""
    slack = bound - rows.d
    open_rows = still_open[:, rows.owner]
    best = slack.masked_fill(~open_rows, float("-inf"))
    per_disjunct = torch.full(
        (bound.shape[0], rows.num_disjuncts), float("-inf"), dtype=bound.dtype
    ).scatter_reduce_(1, rows.owner.expand_as(best), best, "amax")
    per_disjunct = per_disjunct.masked_fill(~still_open, float("inf"))
    worst_disjunct = per_disjunct.argmin(dim=1, keepdim=True)
    in_worst = rows.owner.unsqueeze(0) == worst_disjunct
    return best.masked_fill(~in_worst, float("-inf")).argmax(dim=1)


_SCORES = {
    "linear": ("linear",),
    "smear": ("smear",),
    "widest": ("width",),
    "mixed": ("linear", "smear", "width"),
}


def _branching_score(
    network: Network,
    lo: Tensor,
    up: Tensor,
    worst_rows: Tensor,
    A: Tensor | None,
    worst_row: Tensor,
    options: BaBOptions,
) -> Tensor:
    """``(B, n)``: how much splitting each input dimension is worth.

    The components, each scaled to a maximum of 1 per box and summed:

    * ``linear``: ``|A_j| (u_j - l_j)``, the input coefficient of the worst
      row's final linear bound times the width (the "sb" input split of
      alpha-beta-CROWN, Wang et al. 2021); needs linear bounds, else smear;
    * ``smear``: the gradient of the worst row at the centre times the width
      (Kearfott 1996; Wang et al. 2018, "Efficient Formal Safety Analysis");
    * ``width``: the width itself, which shrinks the relaxation error of the
      unstable neurons that neither linear score sees.
    """
    width = up - lo
    parts = []
    for name in _SCORES[options.branching]:
        if name == "linear" and A is not None:
            coef = A[torch.arange(A.shape[0]), worst_row]
            parts.append(coef.abs() * width)
        elif name in ("linear", "smear"):
            parts.append(_smear(network, lo, up, worst_rows))
        else:
            parts.append(width)
    score = sum(p / p.amax(1, keepdim=True).clamp(min=1e-300) for p in parts)
    return score + 1e-12 * width  # never split a dimension of width zero


def _bisect(lo: Tensor, up: Tensor, score: Tensor) -> tuple[Tensor, Tensor]:
    """Split each box in half along its best-scoring dimension.

    Returns:
        ``(upper bound of the left halves, lower bound of the right halves)``;
        the left halves keep ``lo``, the right halves keep ``up``.
    """
    dim = score.argmax(dim=1, keepdim=True)
    mid = ((lo + up) / 2).gather(1, dim)
    return up.clone().scatter_(1, dim, mid), lo.clone().scatter_(1, dim, mid)


def _smear(network: Network, lo: Tensor, up: Tensor, rows: Tensor) -> Tensor:
    """Gradient magnitude of the rows at the centres times the widths (Kearfott 1996)."""
    centre = ((lo + up) / 2).requires_grad_(True)
    with torch.enable_grad():
        out = network.forward(centre.to(_param_dtype(network)))
        (grad,) = torch.autograd.grad((out * rows.to(out.dtype)).sum(), centre)
    return grad.abs().to(lo.dtype) * (up - lo)


def _param_dtype(network: Network) -> torch.dtype:
    for node in network.nodes:
        for param in node.op.parameters().values():
            return param.dtype
    return torch.float64


def _find_counterexample(
    network: Network,
    spec: Specification,
    lo: Tensor,
    up: Tensor,
    A: Tensor | None = None,
    worst_row: Tensor | None = None,
) -> tuple[np.ndarray, np.ndarray] | None:
    """Check the boxes' centres and, given the linear bounds, the corners
    minimising the worst row's linear lower bound; a hit is confirmed by a
    float64 forward pass."""
    points = [(lo + up) / 2]
    if A is not None and worst_row is not None:
        coef = A[torch.arange(A.shape[0]), worst_row]
        points.append(torch.where(coef > 0, lo, up))
    return confirm_candidates(network, spec, torch.cat(points))


def confirm_candidates(
    network: Network, spec: Specification, points: Tensor | None
) -> tuple[np.ndarray, np.ndarray] | None:
    """The first of ``(N, n)`` candidate points that violates ``spec``, confirmed by a
    float64 forward pass of that point alone, as ``(x, y)``; else ``None``."""
    if points is None or points.shape[0] == 0:
        return None
    candidates = points.detach().cpu().double().numpy()
    outputs = network.get_output(candidates)
    hits = np.flatnonzero(spec.violations(candidates, outputs))
    for i in hits[:8]:
        x = candidates[i]
        y = network.get_output(x)
        if spec.is_violated_by(x, y):
            return x, y
    return None
