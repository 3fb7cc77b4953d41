"""The SDP relaxation (Raghunathan et al. 2018) with chordal decomposition and sound duals.

:func:`sdp_bound` has the call shape of the LP's bound; verdicts from it are
:func:`verifiNN.search.prove` (``method='sdp'``), and the front door offers
``verifiNN.verify(network, spec, method='sdp')`` and
:class:`verifiNN.SDPVerifier` (the seed's API). The relaxation
(:mod:`~verifiNN.solvers.sdp.formulation`) contains the triangle LP with the same
intermediate bounds as linear cuts, so its optimum is never below the LP's
(Batten et al. 2021); the chordal form (one PSD block per pair of adjacent
layers, Newton and Papachristodoulou 2021) has the single block's optimum.
The bound is recomputed from the solver's multipliers by weak duality with a
PSD repair term (:mod:`~verifiNN.solvers.sdp.dual`, Jansson et al. 2007).

When to use which method (measured 2026-11-24 on a 2-core CPU,
``benchmarks/sdp.py``):

* CROWN / alpha-CROWN: first, always: milliseconds, batched, any graph; the
  SDP and the LP start from their intermediate bounds anyway.
* LP (``'lp'``): when CROWN falls a little short on a chain network; about
  0.07 s per row on the 50 random FC nets (2-10 inputs, 2-3 layers of 10-30).
* SDP (``'sdp'``): when the LP falls a little short on a *small* chain
  network: on those 50 nets it beat the LP on every instance (median gain
  0.067, 12% of ``|LP|``) at about 1.6 s per row (25x the LP). Its cost grows
  with the widest pair of layers (PSD blocks up to ~60 with Clarabel: 0.06 s
  at 11, 2 s at 33, 19 s at 56; the single block is 2-4x slower). Not for
  conv nets of real size on a CPU: the digits CNN's blocks (~300-350, mostly
  active neurons) need SCS, which in 150 s neither converges nor gives a
  useful sound bound.
* Branch and bound (``'bab'``, ``'relu-bab'``, ``'milp'``): when a verdict is
  needed (complete) or the bound methods leave a visible gap; on small nets
  the MILP is often faster than one SDP.
"""

from verifiNN.solvers.sdp.bound import SDPOptions, empty_statistics, region_sdp, sdp_bound
from verifiNN.solvers.sdp.dual import sound_bound
from verifiNN.solvers.sdp.formulation import FORMULATIONS, SDPData, build_sdp, reduce_layers
from verifiNN.solvers.sdp.solve import SOLVERS, solve_sdp

__all__ = [
    "FORMULATIONS",
    "SOLVERS",
    "SDPData",
    "SDPOptions",
    "build_sdp",
    "empty_statistics",
    "reduce_layers",
    "region_sdp",
    "sdp_bound",
    "solve_sdp",
    "sound_bound",
]
