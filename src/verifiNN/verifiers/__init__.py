"""The front door: the seed-API verifier classes, the portfolio and pointwise robustness.

* :class:`LPVerifier` (the seed's activation-region LP), :class:`CROWNVerifier`,
  :class:`MILPVerifier` and :class:`SDPVerifier`: the seed's two methods,
  ``compute_pointwise_robustness`` and ``verify_epsilon_robustness``, with one
  result key set (:data:`~verifiNN.verifiers.base.ROBUSTNESS_KEYS`);
* :func:`verify`: the portfolio that decides a
  :class:`~verifiNN.specs.Specification` within a time limit;
* :func:`pointwise_robustness`: the distance to the nearest adversarial example.

Data-set certification (:mod:`verifiNN.certify`) builds on these. Everything
here turns user arguments (seconds, arrays) into the engines' types
(:class:`~verifiNN.budget.Budget`, specifications, region batches) and the
engines' results into :class:`~verifiNN.results.VerificationResult`.
"""

from verifiNN.verifiers.base import ROBUSTNESS_KEYS, Verifier
from verifiNN.verifiers.crown import CROWNVerifier
from verifiNN.verifiers.lp import LPVerifier
from verifiNN.verifiers.milp import MILPVerifier
from verifiNN.verifiers.portfolio import METHODS, verify
from verifiNN.verifiers.robustness import pointwise_robustness
from verifiNN.verifiers.sdp import SDPVerifier

__all__ = [
    "METHODS",
    "ROBUSTNESS_KEYS",
    "CROWNVerifier",
    "LPVerifier",
    "MILPVerifier",
    "SDPVerifier",
    "Verifier",
    "pointwise_robustness",
    "verify",
]
