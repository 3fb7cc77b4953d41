"""Certify one sample at every epsilon: the unit of work an executor schedules."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np

from verifiNN.budget import Budget
from verifiNN.errors import VerifiNNError
from verifiNN.models.network import Network
from verifiNN.results import SampleVerdict, Verdict
from verifiNN.specs import norm_distance, robustness_spec
from verifiNN.verifiers.portfolio import verify
from verifiNN.verifiers.robustness import certified_radius

__all__ = ["ROW_FIELDS", "CertifyOptions", "certify_sample"]

logger = logging.getLogger(__name__)

ROW_FIELDS = (
    "sample",
    "epsilon",
    "label",
    "predicted",
    "correct",
    "verdict",
    "method",
    "seconds",
    "radius",
)
"""Columns of the per-sample table (one row per sample and epsilon)."""

ROBUST, NOT_ROBUST, MISCLASSIFIED = (
    SampleVerdict.ROBUST,
    SampleVerdict.NOT_ROBUST,
    SampleVerdict.MISCLASSIFIED,
)


@dataclass(frozen=True)
class CertifyOptions:
    """What every sample is asked (shipped once to each worker with the network).

    Attributes:
        network: the classifier.
        epsilons: radii, ascending.
        norm: ``'inf'``, ``'1'`` or ``'2'``.
        method: the :func:`verifiNN.verify` method.
        timeout: seconds per sample, shared by its epsilons (``None``: no limit).
        domain: optional ``(lo, hi)`` valid-input box (e.g. ``(0, 1)`` for images).
        radius: also compute each sample's certified radius (CROWN bisection).
        seed: base seed; sample ``i`` uses ``seed + i`` whatever the executor.
    """

    network: Network
    epsilons: tuple[float, ...]
    norm: str = "inf"
    method: str = "auto"
    timeout: float | None = None
    domain: tuple[float, float] | None = None
    radius: bool = False
    seed: int = 0


def certify_sample(options: CertifyOptions, task: tuple[int, np.ndarray, int]) -> list[dict]:
    """The table rows of one sample ``(index, x, label)``, one per epsilon.

    Epsilons are decided in ascending order. A counterexample at one epsilon
    lies in every larger ball, so the larger ones inherit ``not_robust``
    (``method='inherited'``) without more work. A misclassified sample is
    ``misclassified`` at every epsilon. A sample whose verification fails with
    an error gets ``error`` rows (logged), never a lost or made-up answer.
    """
    index, x, label = task
    network = options.network
    x = np.asarray(x, np.float64).ravel()
    start = time.perf_counter()
    budget = Budget.start(options.timeout)
    predicted = int(network.classify(x))
    correct = predicted == int(label)
    rows: list[dict] = []
    refuted = False
    for k, eps in enumerate(options.epsilons):
        step = time.perf_counter()
        method = ""
        if not correct:
            verdict = MISCLASSIFIED
        elif refuted:
            verdict, method = NOT_ROBUST, "inherited"
        else:
            left = budget.remaining()
            share = None if left is None else left / (len(options.epsilons) - k)
            seed = options.seed + int(index)
            verdict, method = _decide(network, x, int(label), eps, options, share, seed)
            refuted = verdict == NOT_ROBUST
        rows.append(
            {
                "sample": int(index),
                "epsilon": float(eps),
                "label": int(label),
                "predicted": predicted,
                "correct": correct,
                "verdict": verdict,
                "method": method,
                "seconds": round(time.perf_counter() - step, 4),
                "radius": None,
            }
        )
    if options.radius and correct:
        radius = _radius(network, x, int(label), options)
        for row in rows:
            row["radius"] = radius
    logger.debug("sample %d done in %.2f s", index, time.perf_counter() - start)
    return rows


def _decide(
    network: Network,
    x: np.ndarray,
    label: int,
    eps: float,
    options: CertifyOptions,
    timeout: float | None,
    seed: int,
) -> tuple[SampleVerdict, str]:
    """``(verdict word, deciding method)`` of the ``eps`` ball around ``x``."""
    spec = robustness_spec(network, x, eps, options.norm, label=label, domain=options.domain)
    try:
        if options.method == "auto":  # most balls of a data set fall to CROWN in milliseconds
            result = verify(network, spec, method="crown")
            if Verdict(result.verdict) is Verdict.UNSAT:
                return ROBUST, "crown"
            timeout = None if timeout is None else max(0.0, timeout - result.statistics["seconds"])
        result = verify(network, spec, method=options.method, timeout=timeout, seed=seed)
    except VerifiNNError as exc:
        logger.warning("epsilon %g: %s", eps, exc)
        return SampleVerdict.ERROR, options.method
    verdict = Verdict(result.verdict)
    if verdict is Verdict.UNSAT:
        return ROBUST, str(result.get("method", options.method))
    if verdict is Verdict.SAT:
        # the portfolio confirmed it; check once more here: in the ball, label changed
        example = np.asarray(result.counterexample[0], np.float64).ravel()
        inside = norm_distance(example, x, options.norm) <= eps * (1 + 1e-9) + 1e-12
        if inside and int(network.classify(example)) != label:
            return NOT_ROBUST, str(result.get("method", options.method))
        logger.error("epsilon %g: counterexample failed the re-check; answering unknown", eps)
        return SampleVerdict.UNKNOWN, options.method
    return SampleVerdict(verdict.value), str(result.get("method", options.method))


def _radius(network: Network, x: np.ndarray, label: int, options: CertifyOptions) -> float:
    """The CROWN certified radius up to twice the largest epsilon."""
    radius, _ = certified_radius(
        network, x, 2 * max(options.epsilons), options.norm, label=label, domain=options.domain
    )
    return float(radius)
