"""The one result vocabulary of verifiNN: every word a result can hold is an enum here.

* :class:`Verdict`: what a verification run concluded about a property whose
  VNN-LIB asserts describe the *unsafe* region (the VNN-COMP convention):
  ``sat`` (a counterexample, confirmed by a plain forward pass), ``unsat``
  (sound arithmetic proved the unsafe region unreachable), ``unknown`` (the
  method cannot decide), ``timeout`` (the time limit ran out first),
  ``error`` (the run failed; only batch runners use it).
* :class:`RobustnessStatus` and :class:`VerificationStatus`: the seed's words
  (``robust`` / ``not_robust`` / ``unknown``, ``verified`` / ``unverified``),
  derived from a verdict in one place (:meth:`RobustnessStatus.from_verdict`).
* :class:`DistanceStatus`: how much is known of a pointwise-robustness
  distance (``exact``, ``bracket``, ``robust``, ...).
* :class:`Outcome`: what an engine concluded about one subproblem (a MILP, a
  phase-pattern LP) before any verdict is drawn;
* :class:`SampleVerdict`: a certification table's word for one sample.

The enums derive from :class:`str`, so ``Verdict.SAT == "sat"`` and results
print as plain words; code compares enum members. The VNN-COMP words come from
:func:`verifiNN.io.vnncomp.vnncomp_word` only.

Result containers:

* :class:`EngineResult`: what an engine (branch and bound, the MILP, a bound
  proof) hands back: a verdict, a confirmed counterexample, statistics;
* :class:`VerificationResult`: what the front door returns, a ``dict`` with
  attribute access (like :class:`scipy.optimize.OptimizeResult`) carrying the
  seed's keys, built by :meth:`VerificationResult.make` (the one place the
  verdict's seed keys are derived).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

__all__ = [
    "DistanceStatus",
    "EngineResult",
    "Outcome",
    "Result",
    "RobustnessStatus",
    "SampleVerdict",
    "Verdict",
    "VerificationResult",
    "VerificationStatus",
]


class _Word(str, Enum):
    """An enum whose members are also their words."""

    def __str__(self) -> str:
        return self.value


class Verdict(_Word):
    """Outcome of a verification query (VNN-COMP vocabulary)."""

    SAT = "sat"
    UNSAT = "unsat"
    UNKNOWN = "unknown"
    TIMEOUT = "timeout"
    ERROR = "error"

    @property
    def decided(self) -> bool:
        """Whether the verdict is definite (``sat`` or ``unsat``)."""
        return self in (Verdict.SAT, Verdict.UNSAT)


class RobustnessStatus(_Word):
    """The seed's robustness vocabulary."""

    ROBUST = "robust"
    NOT_ROBUST = "not_robust"
    UNKNOWN = "unknown"

    @classmethod
    def from_verdict(cls, verdict: Verdict) -> RobustnessStatus:
        """Map a verdict on the unsafe region to the robustness vocabulary."""
        if verdict is Verdict.UNSAT:
            return cls.ROBUST
        if verdict is Verdict.SAT:
            return cls.NOT_ROBUST
        return cls.UNKNOWN


class VerificationStatus(_Word):
    """The seed's ``verification_status``: did the method reach a definite conclusion?"""

    VERIFIED = "verified"
    UNVERIFIED = "unverified"


class DistanceStatus(_Word):
    """What is known of the distance from ``x_0`` to its nearest adversarial example.

    ``EXACT``: the distance, to the method's tolerance; ``BRACKET``: a proved
    lower bound and a confirmed example's distance; ``UPPER_BOUND``: an example
    only; ``LOWER_BOUND``: a proof only; ``ROBUST``: no adversarial example
    within ``epsilon``; ``UNKNOWN``: neither.
    """

    EXACT = "exact"
    BRACKET = "bracket"
    UPPER_BOUND = "upper_bound"
    LOWER_BOUND = "lower_bound"
    ROBUST = "robust"
    UNKNOWN = "unknown"


class SampleVerdict(_Word):
    """A data-set certification table's word for one sample at one radius."""

    ROBUST = "robust"
    NOT_ROBUST = "not_robust"
    MISCLASSIFIED = "misclassified"
    UNKNOWN = "unknown"
    TIMEOUT = "timeout"
    ERROR = "error"


class Outcome(_Word):
    """What an engine concluded about one subproblem (a disjunct's MILP, a pattern LP).

    ``EMPTY``: proved to hold no counterexample; ``FOUND``: a counterexample
    confirmed by a forward pass; ``CANDIDATE``: a solver point still to be
    confirmed; ``UNCONFIRMED``: a candidate no forward pass confirmed;
    ``TIMEOUT`` and ``UNKNOWN``: undecided.
    """

    EMPTY = "empty"
    FOUND = "found"
    CANDIDATE = "candidate"
    UNCONFIRMED = "unconfirmed"
    TIMEOUT = "timeout"
    UNKNOWN = "unknown"


@dataclass
class EngineResult:
    """What an engine concluded about a whole specification.

    Attributes:
        verdict: ``sat``, ``unsat``, ``unknown`` or ``timeout``.
        counterexample: ``(x, y)``, flat float64 arrays confirmed by a float64
            forward pass, for ``sat``; else ``None``.
        statistics: the engine's counters and timings.
    """

    verdict: Verdict
    counterexample: tuple[Any, Any] | None = None
    statistics: dict[str, Any] = field(default_factory=dict)


class Result(dict):
    """A ``dict`` whose keys are also attributes (cf. ``scipy.optimize.OptimizeResult``)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError as exc:
            raise AttributeError(name) from exc

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    def __delattr__(self, name: str) -> None:
        try:
            del self[name]
        except KeyError as exc:
            raise AttributeError(name) from exc

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | set(self.keys()))

    def __repr__(self) -> str:
        if not self:
            return f"{type(self).__name__}()"
        width = max(len(k) for k in self) + 1
        lines = [f"{k.rjust(width)}: {_short(v)}" for k, v in self.items()]
        return "\n".join(lines)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


class VerificationResult(Result):
    """Result of a verification call, with the seed's keys.

    Keys always present:
        verdict: the :class:`Verdict` on the unsafe region.
        verification_status: :class:`VerificationStatus`, ``'verified'`` when
            the method reached a definite conclusion, else ``'unverified'``.
        robustness_status: :class:`RobustnessStatus`.
        pointwise_robustness: distance to the adversarial example found (an
            upper bound on the true minimal distance), or ``None``.
        adversarial_example: the confirmed counterexample input, or ``None``.
        method: the method that decided.

    The verifier classes add the keys of
    :data:`verifiNN.verifiers.base.ROBUSTNESS_KEYS`; :func:`verifiNN.verify`
    adds ``counterexample`` and ``statistics``.
    """

    @classmethod
    def make(
        cls,
        verdict: Verdict,
        *,
        method: str,
        adversarial_example: Any = None,
        pointwise_robustness: float | None = None,
        **extra: Any,
    ) -> VerificationResult:
        """Build a result whose seed keys are derived from ``verdict``."""
        robustness = RobustnessStatus.from_verdict(verdict)
        decided = robustness is not RobustnessStatus.UNKNOWN
        result = cls(
            verdict=verdict,
            verification_status=(
                VerificationStatus.VERIFIED if decided else VerificationStatus.UNVERIFIED
            ),
            robustness_status=robustness,
            pointwise_robustness=pointwise_robustness,
            adversarial_example=adversarial_example,
            method=method,
        )
        result.update(extra)
        return result
