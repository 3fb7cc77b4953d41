"""Sound bounds on neural networks: IBP, CROWN, alpha-CROWN and the triangle LP.

One entry point, :func:`compute_bounds`: bounds of ``C y`` and of every node
over a batch of input regions, with one call shape for every method. Turning
bounds into a verdict on a specification is the search layer's job
(:func:`verifiNN.search.prove`).

Layout (how a node is bounded kept apart from how the graph is walked):

* :mod:`~verifiNN.bounds.relaxations`: the one registry of nonlinearity
  relaxations (:data:`RELAXATIONS`), read by IBP, CROWN, alpha-CROWN, the LP,
  the MILP and the SDP;
* :mod:`~verifiNN.bounds.affine`: backward (vector-Jacobian) and interval rules
  of the affine ops;
* :mod:`~verifiNN.bounds.graph`: the bound graph and the backward DAG walk;
* :mod:`~verifiNN.bounds.interval`, :mod:`~verifiNN.bounds.crown`,
  :mod:`~verifiNN.bounds.alpha`, :mod:`~verifiNN.bounds.lp`: the methods;
* :mod:`~verifiNN.bounds.symbolic`: forward symbolic intervals for ReLU MLPs
  with few inputs (input-splitting branch and bound);
* :mod:`~verifiNN.bounds.sound_fp`: CROWN in rigorous interval arithmetic.

Input regions come as :mod:`verifiNN.regions` batches.

Soundness: bounds follow from the relaxations in exact arithmetic and are
computed in float64 (by default) without directed rounding, like CROWN and
alpha-beta-CROWN; the LP's bound is a weak-duality bound evaluated explicitly.
For branch and bound, every function takes the per-node bounds as an argument
(``bounds=``): given intermediate bounds, it computes the rest.
"""

from verifiNN.bounds.api import bound_graph, compute_bounds
from verifiNN.bounds.graph import BoundGraph
from verifiNN.bounds.relaxations import RELAXATIONS, Relaxation
from verifiNN.bounds.types import (
    METHODS,
    AlphaOptions,
    BoundsResult,
    CrownOptions,
    Interval,
    LPOptions,
)

__all__ = [
    "METHODS",
    "RELAXATIONS",
    "AlphaOptions",
    "BoundGraph",
    "BoundsResult",
    "CrownOptions",
    "Interval",
    "LPOptions",
    "Relaxation",
    "bound_graph",
    "compute_bounds",
]
