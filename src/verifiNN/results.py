"""The one result vocabulary of verifiNN.

A :class:`Verdict` is what a verification run concluded about a property whose
VNN-LIB asserts describe the *unsafe* region (the VNN-COMP convention):

* ``sat``: a counterexample exists and was confirmed by a plain forward pass;
* ``unsat``: sound arithmetic proved the unsafe region unreachable;
* ``unknown``: the method used cannot decide;
* ``timeout``: the time limit ran out first;
* ``error``: the run failed (only the command line and batch runners use it).

:class:`VerificationResult` carries the verdict together with the seed's keys
(``verification_status``, ``robustness_status``, ``pointwise_robustness``,
``adversarial_example``, ...). It is a ``dict`` with attribute access, like
:class:`scipy.optimize.OptimizeResult`, so both ``result['robustness_status']``
and ``result.robustness_status`` work.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

__all__ = ["Result", "RobustnessStatus", "Verdict", "VerificationResult"]


class Verdict(str, Enum):
    """Outcome of a verification query (VNN-COMP vocabulary)."""

    SAT = "sat"
    UNSAT = "unsat"
    UNKNOWN = "unknown"
    TIMEOUT = "timeout"
    ERROR = "error"

    def __str__(self) -> str:
        return self.value


class RobustnessStatus(str, Enum):
    """The seed's robustness vocabulary."""

    ROBUST = "robust"
    NOT_ROBUST = "not_robust"
    UNKNOWN = "unknown"

    def __str__(self) -> str:
        return self.value

    @classmethod
    def from_verdict(cls, verdict: Verdict) -> RobustnessStatus:
        """Map a verdict on the unsafe region to the robustness vocabulary."""
        if verdict is Verdict.UNSAT:
            return cls.ROBUST
        if verdict is Verdict.SAT:
            return cls.NOT_ROBUST
        return cls.UNKNOWN


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
        verification_status: ``'verified'`` when the method reached a definite
            conclusion (robust or not robust), else ``'unverified'``.
        robustness_status: ``'robust'``, ``'not_robust'`` or ``'unknown'``.
        pointwise_robustness: distance to the adversarial example found (an
            upper bound on the true minimal distance), or ``None``.
        adversarial_example: the confirmed counterexample input, or ``None``.
        method: the method that decided.
    Optional keys (filled in where they make sense): ``problem_status``,
    ``optimal_value``, ``adversarial_label``, ``lower_bound``, ``upper_bound``,
    ``statistics``.
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
        result = cls(
            verdict=verdict,
            verification_status=(
                "unverified" if robustness is RobustnessStatus.UNKNOWN else "verified"
            ),
            robustness_status=robustness.value,
            pointwise_robustness=pointwise_robustness,
            adversarial_example=adversarial_example,
            method=method,
        )
        result.update(extra)
        return result
