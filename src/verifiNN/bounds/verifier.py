"""``CROWNVerifier``: the seed's verifier API backed by CROWN or alpha-CROWN bounds.

Bounds prove robustness but never find adversarial examples, so the answers
are ``robust`` or ``unknown`` (never ``not_robust``), and
``pointwise_robustness`` (the distance of an adversarial example found) stays
``None``. ``compute_pointwise_robustness`` reports instead a *certified lower
bound* on the distance to the nearest adversarial example: the largest L-inf
radius in ``[0, epsilon]`` that the bounds prove, found by a batched
bisection (a grid of radii is bounded in one batched call, then the grid is
refined around the largest proved radius).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from verifiNN.bounds.api import bound_graph, prepare_rows, run_method
from verifiNN.bounds.graph import BoundGraph
from verifiNN.bounds.regions import BoxInput
from verifiNN.bounds.types import AlphaOptions, CrownOptions
from verifiNN.bounds.verify import verify
from verifiNN.errors import InvalidInputError
from verifiNN.models.network import Network
from verifiNN.results import Verdict, VerificationResult
from verifiNN.specs import robustness_spec
from verifiNN.verifier import Verifier, check_point

__all__ = ["CROWNVerifier"]


class CROWNVerifier(Verifier):
    """Robustness by CROWN (Zhang et al. 2018) or alpha-CROWN (Xu et al. 2021) bounds.

    Args:
        method: ``'crown'`` or ``'alpha-crown'``.
        options: :class:`CrownOptions` or :class:`AlphaOptions`.
        grid: radii bounded per batched call of the bisection.
        tolerance: the bisection stops when the bracket is below
            ``tolerance * epsilon``.
        dtype: computation dtype.
        device: computation device.
    """

    def __init__(
        self,
        method: str = "crown",
        options: CrownOptions | AlphaOptions | None = None,
        grid: int = 16,
        tolerance: float = 1e-3,
        dtype: torch.dtype = torch.float64,
        device: torch.device | str | None = None,
    ) -> None:
        if method not in ("crown", "alpha-crown"):
            raise InvalidInputError(f"method must be 'crown' or 'alpha-crown', got {method!r}")
        if grid < 2 or not (0 < tolerance < 1):
            raise InvalidInputError("grid must be >= 2 and tolerance in (0, 1)")
        self.method = method
        self.name = method
        self.options = options
        self.grid = int(grid)
        self.tolerance = float(tolerance)
        self.dtype = dtype
        self.device = device

    def verify_epsilon_robustness(
        self, network: Network, x_0: object, epsilon: float
    ) -> VerificationResult:
        """``robust`` when the bounds prove that no label changes within ``epsilon`` (L-inf).

        Returns:
            Verdict ``unsat``/``robust`` when proved, else ``unknown``; ``label``
            is the class of ``x_0`` and ``lower_bound`` the proved radius
            (``epsilon`` or ``None``).
        """
        x, eps = check_point(network, x_0, epsilon)
        label = int(network.classify(np.array(x)))
        spec = robustness_spec(network, x, eps, label=label)
        result = verify(
            network, spec, self.method, options=self.options, dtype=self.dtype, device=self.device
        )
        proved = result.verdict is Verdict.UNSAT
        return VerificationResult.make(
            result.verdict,
            method=self.method,
            label=label,
            lower_bound=eps if proved else None,
            statistics=result.statistics,
        )

    def compute_pointwise_robustness(
        self, network: Network, x_0: object, epsilon: float
    ) -> VerificationResult:
        """Certified lower bound on the distance to the nearest adversarial example.

        Returns:
            ``robust`` (verdict ``unsat``) when ``epsilon`` itself is proved,
            else ``unknown``; ``lower_bound`` is the largest proved radius in
            ``[0, epsilon]`` (0.0 when not even ``x_0`` itself is proved, e.g.
            on a tie); ``pointwise_robustness`` and ``adversarial_example`` are
            ``None`` (bounds find no examples).
        """
        x, eps = check_point(network, x_0, epsilon)
        label = int(network.classify(np.array(x)))
        graph = bound_graph(network, self.dtype, self.device)
        spec = robustness_spec(graph.network, x, eps, label=label)
        C = prepare_rows(
            np.concatenate([h.C for h in spec.cases[0].unsafe]),
            graph.network.output_size,
            1,
            self.dtype,
            graph.device,
        )
        center = torch.as_tensor(x, dtype=self.dtype, device=graph.device)
        best, high = 0.0, eps  # best: largest proved radius; high: an unproved one
        if bool(self._proved(graph, C, center, np.array([eps]))[0]):
            best = eps
        calls = 1
        rounds = 1 + math.ceil(math.log(1 / self.tolerance) / math.log(self.grid + 1))
        while calls <= rounds and high - best > self.tolerance * eps:
            radii = best + (high - best) * np.arange(1, self.grid + 1) / (self.grid + 1)
            ok = self._proved(graph, C, center, radii)
            calls += 1
            if ok.any():
                k = int(np.flatnonzero(ok).max())
                best, high = float(radii[k]), float(radii[k + 1]) if k + 1 < len(radii) else high
            else:
                high = float(radii[0])
        verdict = Verdict.UNSAT if best >= eps else Verdict.UNKNOWN
        return VerificationResult.make(
            verdict,
            method=self.method,
            label=label,
            lower_bound=best,
            upper_bound=None,
            statistics={"bound_calls": calls, "unproved_radius": high},
        )

    def _proved(
        self, graph: BoundGraph, C: torch.Tensor, center: torch.Tensor, radii: np.ndarray
    ) -> np.ndarray:
        """Which L-inf radii around ``center`` the bounds prove (one batched call)."""
        r = torch.as_tensor(radii, dtype=self.dtype, device=center.device).unsqueeze(1)
        zero = torch.zeros(1, C.shape[1], dtype=self.dtype, device=center.device)
        with torch.set_grad_enabled(self.method == "alpha-crown"):
            lower, _, _ = run_method(
                self.method,
                graph,
                BoxInput(center - r, center + r),
                C,
                None,
                self.options,
                zero,
                lambda margin: bool((margin > 0).all()),
            )
        return (lower.detach() > 0).all(dim=1).cpu().numpy()
