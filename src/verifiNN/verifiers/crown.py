"""``CROWNVerifier``: the seed's verifier API backed by CROWN or alpha-CROWN bounds.

``verify_epsilon_robustness`` answers ``robust`` or ``unknown`` from the bounds
alone. ``compute_pointwise_robustness`` brackets the distance to the nearest
adversarial example: a *certified lower bound*, the largest radius in
``[0, epsilon]`` that the bounds prove (a batched bisection over radii), and,
unless switched off, an attack's *upper bound* with its adversarial example.
"""

from __future__ import annotations

import numpy as np
import torch

from verifiNN.bounds.types import AlphaOptions, CrownOptions
from verifiNN.budget import Budget
from verifiNN.errors import InvalidInputError
from verifiNN.models.network import Network
from verifiNN.results import Verdict, VerificationResult
from verifiNN.search.prove import prove
from verifiNN.specs import robustness_spec
from verifiNN.verifiers.base import Verifier, check_point, robustness_result
from verifiNN.verifiers.robustness import bracket_robustness

__all__ = ["CROWNVerifier"]


class CROWNVerifier(Verifier):
    """Robustness by CROWN (Zhang et al. 2018) or alpha-CROWN (Xu et al. 2021) bounds.

    Args:
        method: ``'crown'`` or ``'alpha-crown'``.
        options: :class:`CrownOptions` or :class:`AlphaOptions`.
        grid: radii bounded per batched call of the bisection.
        tolerance: the bisection stops when the bracket is below
            ``tolerance * epsilon``.
        attack: look for adversarial examples (an upper bound of the distance)
            in ``compute_pointwise_robustness``.
        attack_timeout: seconds for that search.
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
        attack: bool = True,
        attack_timeout: float | None = 10.0,
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
        self.attack = attack
        self.attack_timeout = attack_timeout

    def verify_epsilon_robustness(
        self, network: Network, x_0: object, epsilon: float
    ) -> VerificationResult:
        """``robust`` when the bounds prove that no label changes within ``epsilon`` (L-inf).

        Returns:
            Verdict ``unsat``/``robust`` when proved, else ``unknown``;
            ``lower_bound`` is the proved radius (``epsilon`` or ``None``).
        """
        x, eps = check_point(network, x_0, epsilon)
        label = int(network.classify(np.array(x)))
        spec = robustness_spec(network, x, eps, label=label)
        result = prove(
            network, spec, self.method, options=self.options, dtype=self.dtype, device=self.device
        )
        proved = result.verdict is Verdict.UNSAT
        return robustness_result(
            network, self.method, label, "inf", eps, eps if proved else None, None, None,
            statistics=result.statistics,
        )  # fmt: skip

    def compute_pointwise_robustness(
        self, network: Network, x_0: object, epsilon: float, norm: str = "inf"
    ) -> VerificationResult:
        """Bracket the distance to the nearest adversarial example within ``epsilon``.

        ``lower_bound`` is the largest radius the bounds prove
        (:func:`verifiNN.verifiers.robustness.certified_radius`); with ``attack`` on,
        ``upper_bound`` is the distance of the nearest adversarial example a
        PGD attack finds (:func:`verifiNN.verifiers.robustness.attack_radius`), which
        is also ``pointwise_robustness`` and ``adversarial_example``.

        Returns:
            ``robust`` (verdict ``unsat``) when ``epsilon`` itself is proved,
            ``not_robust`` (``sat``) when an example was found, else
            ``unknown``; ``status`` is ``robust``, ``exact`` (the bounds
            meet to ``tolerance``), ``bracket``, ``upper_bound`` or ``lower_bound``.
        """
        x, eps = check_point(network, x_0, epsilon)
        return bracket_robustness(
            network, x, eps, norm, method=self.method, options=self.options,
            attack=self.attack, attack_budget=Budget.start(self.attack_timeout), grid=self.grid,
            tolerance=self.tolerance, dtype=self.dtype, device=self.device,
        )  # fmt: skip
