"""Sound bounds on neural networks: IBP, CROWN, alpha-CROWN and the triangle LP.

One entry point, :func:`compute_bounds` (bounds of ``C y`` and of every node over
a batch of input regions, one call shape for every method), one verdict
function, :func:`verify`, and the seed-API verifier :class:`CROWNVerifier`.

Layout (how a node is bounded kept apart from how the graph is walked):

* :mod:`~verifiNN.bounds.relaxations`: the one registry of nonlinearity
  relaxations (:data:`RELAXATIONS`), read by IBP, CROWN, alpha-CROWN and the LP;
* :mod:`~verifiNN.bounds.affine`: backward (vector-Jacobian) and interval rules
  of the affine ops;
* :mod:`~verifiNN.bounds.graph`: the bound graph and the backward DAG walk;
* :mod:`~verifiNN.bounds.interval`, :mod:`~verifiNN.bounds.crown`,
  :mod:`~verifiNN.bounds.alpha`, :mod:`~verifiNN.bounds.lp`: the methods;
* :mod:`~verifiNN.bounds.regions`: batched input sets (boxes, Lp balls).

Soundness: bounds follow from the relaxations in exact arithmetic and are
computed in float64 (by default) without directed rounding, like CROWN and
alpha-beta-CROWN; the LP's bound is a weak-duality bound evaluated explicitly.
For branch and bound, every function takes the per-node bounds as an argument
(``bounds=``): given intermediate bounds, it computes the rest.
"""

from verifiNN.bounds.api import bound_graph, compute_bounds
from verifiNN.bounds.graph import BoundGraph
from verifiNN.bounds.regions import BallInput, BoxInput, as_input_set
from verifiNN.bounds.relaxations import RELAXATIONS, Relaxation
from verifiNN.bounds.types import (
    METHODS,
    AlphaOptions,
    BoundsResult,
    CrownOptions,
    Interval,
    LPOptions,
)
from verifiNN.bounds.verifier import CROWNVerifier
from verifiNN.bounds.verify import verify

__all__ = [
    "METHODS",
    "RELAXATIONS",
    "AlphaOptions",
    "BallInput",
    "BoundGraph",
    "BoundsResult",
    "BoxInput",
    "CROWNVerifier",
    "CrownOptions",
    "Interval",
    "LPOptions",
    "Relaxation",
    "as_input_set",
    "bound_graph",
    "compute_bounds",
    "verify",
]
