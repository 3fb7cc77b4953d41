"""The names of verifiNN's methods, in one place.

Nothing here imports an engine, so the command line can list the methods
instantly; each engine registry is keyed by these names (the portfolio checks
its registry against them when it is imported).
"""

from __future__ import annotations

__all__ = ["BOUND_METHODS", "BOUND_PROPAGATION", "COMPLETE_METHODS", "METHODS"]

BOUND_PROPAGATION = ("ibp", "crown", "alpha-crown", "lp")
"""The methods of :func:`verifiNN.bounds.compute_bounds`, loosest first."""

BOUND_METHODS = (*BOUND_PROPAGATION, "sdp")
"""Incomplete methods (:func:`verifiNN.search.prove`): they prove (``unsat``) or answer
``unknown``."""

COMPLETE_METHODS = ("bab", "relu-bab", "milp")
"""Complete engines, in the order the portfolio tries them: input splitting, ReLU
splitting, the MILP."""

METHODS = ("auto", "attack", *BOUND_METHODS, *COMPLETE_METHODS)
"""Every value of ``verify(method=...)``."""
