"""The SDP relaxation (Raghunathan et al. 2018) with chordal decomposition and sound duals."""

from verifiNN.sdp.bound import SDPOptions, sdp_bound
from verifiNN.sdp.dual import sound_bound
from verifiNN.sdp.formulation import FORMULATIONS, SDPData, build_sdp, reduce_layers
from verifiNN.sdp.solve import SOLVERS, solve_sdp
from verifiNN.sdp.verifier import SDPVerifier, sdp_verify

__all__ = [
    "FORMULATIONS",
    "SOLVERS",
    "SDPData",
    "SDPOptions",
    "SDPVerifier",
    "build_sdp",
    "reduce_layers",
    "sdp_bound",
    "sdp_verify",
    "solve_sdp",
    "sound_bound",
]
