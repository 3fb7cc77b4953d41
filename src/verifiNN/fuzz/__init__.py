"""Fuzzing and differential testing of every verification method against oracles.

:func:`random_case` draws a reproducible problem from one integer seed: a
random network (one of :data:`KINDS`, together covering every op of
:mod:`verifiNN.ops` and the layers :func:`~verifiNN.io.torch.from_torch`
imports; the newer op families are built in :mod:`verifiNN.fuzz.graphs`) and
a random specification (box, L-inf, L1 and L2 regions, robustness
properties, random disjunctions of half-spaces, several cases, degenerate
boxes, empty unsafe sets). :func:`check_case` runs every method of
:func:`verifiNN.verify` on it and compares the answers with oracles
that do not use the engines under test:

* dense sampling (the centre, box corners, random points) with a float64
  forward pass, for every network: a sampled counterexample refutes ``unsat``;
* on tiny ReLU MLPs, exhaustive enumeration of the activation regions with one
  LP (:func:`scipy.optimize.linprog`) per region, case and disjunct, which gives
  the exact minimal margin and a witness (:func:`region_oracle`);
* on small ReLU MLPs, the MILP (``method='milp'``) as the reference complete
  method; more generally every complete method is compared with every other:
  a ``sat`` comes with a counterexample, so it refutes any ``unsat``.

The *margin* of an input is ``min over cases containing x, disjuncts of
max_i (C_i y - d_i)`` (``y`` the output); the property is violated (``sat``)
exactly when the minimal margin over the input regions is ``<= 0``. Answers
within :data:`TIE_TOL` of a tie (a minimal margin or a counterexample's margin
within it of 0) are accepted either way and counted as near-ties.

Findings of a case (:class:`CaseReport`):

* ``unsound``: an ``unsat`` refuted by a counterexample (sampled, the region
  oracle's witness or another method's), a ``sat`` whose counterexample a plain
  forward pass does not confirm or that lies outside the input region, or bounds
  from :func:`verifiNN.bounds.compute_bounds` that miss a sampled output or are
  NaN (on a network whose sampled outputs are finite);
* ``disagreement``: a decided answer that contradicts the region oracle
  otherwise (a confirmed ``sat`` where the oracle proves ``unsat``), an
  answer other than ``unsat``/``unknown``/``timeout`` from a bound method,
  an imported network that does not compute its torch module, or a region
  oracle whose witness a forward pass does not confirm (a broken oracle).

The package: :mod:`.graphs` and :mod:`.networks` (the network families),
:mod:`.problems` (problems, region sampling, margins), :mod:`.oracle` (the
region oracle), :mod:`.check` (:func:`check_case`).
"""

from __future__ import annotations

from verifiNN.fuzz.check import (
    BOUND_TOL,
    COMPLETE_METHODS,
    TIE_TOL,
    CaseReport,
    Timeouts,
    check_case,
)
from verifiNN.fuzz.graphs import GRAPH_KINDS
from verifiNN.fuzz.networks import KINDS, random_network
from verifiNN.fuzz.oracle import MAX_REGION_RELUS, region_oracle, relu_regions
from verifiNN.fuzz.problems import FuzzCase, margins, random_case, random_spec, sample_region

__all__ = [
    "BOUND_TOL",
    "COMPLETE_METHODS",
    "GRAPH_KINDS",
    "KINDS",
    "MAX_REGION_RELUS",
    "TIE_TOL",
    "CaseReport",
    "FuzzCase",
    "Timeouts",
    "check_case",
    "margins",
    "random_case",
    "random_network",
    "random_spec",
    "region_oracle",
    "relu_regions",
    "sample_region",
]
