"""verifiNN: robustness verification of neural networks with optimisation methods.

The seed's front door::

    from verifiNN import Network, LPVerifier
    network = Network(weights, biases, activation="ReLU", labeler="argmax")
    result = LPVerifier().compute_pointwise_robustness(network, x_0, epsilon)
"""

from verifiNN._version import __version__
from verifiNN.bounds import CROWNVerifier, compute_bounds
from verifiNN.errors import (
    InvalidInputError,
    InvalidNetworkError,
    ModelLoadError,
    SpecError,
    UnsupportedModelError,
    VerifiNNError,
)
from verifiNN.io import from_torch, load_onnx, load_vnnlib, read_result, write_result
from verifiNN.models.network import Network
from verifiNN.portfolio import verify
from verifiNN.results import Verdict, VerificationResult
from verifiNN.specs import Box, HalfSpaces, LpBall, Specification, robustness_spec
from verifiNN.verifier import LPVerifier

__all__ = [
    "Box",
    "CROWNVerifier",
    "HalfSpaces",
    "InvalidInputError",
    "InvalidNetworkError",
    "LPVerifier",
    "LpBall",
    "ModelLoadError",
    "Network",
    "SDPVerifier",
    "SpecError",
    "Specification",
    "UnsupportedModelError",
    "Verdict",
    "VerifiNNError",
    "VerificationResult",
    "__version__",
    "compute_bounds",
    "from_torch",
    "load_onnx",
    "load_vnnlib",
    "read_result",
    "robustness_spec",
    "verify",
    "write_result",
]


def __getattr__(name: str) -> object:
    """``SDPVerifier`` is imported on first use (it loads cvxpy)."""
    if name == "SDPVerifier":
        from verifiNN.sdp.verifier import SDPVerifier

        return SDPVerifier
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
