"""verifiNN: robustness verification of neural networks with optimisation methods.

The seed's front door::

    from verifiNN import Network, LPVerifier
    network = Network(weights, biases, activation="ReLU", labeler="argmax")
    result = LPVerifier().compute_pointwise_robustness(network, x_0, epsilon)

The names below load on first use (PEP 562), so ``import verifiNN`` itself is
instant and the first name used pays for PyTorch once.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from verifiNN._version import __version__

if TYPE_CHECKING:  # pragma: no cover
    from verifiNN.bounds import compute_bounds
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
    from verifiNN.results import Verdict, VerificationResult
    from verifiNN.specs import Box, HalfSpaces, LpBall, Specification, robustness_spec
    from verifiNN.verifiers import (
        CROWNVerifier,
        LPVerifier,
        MILPVerifier,
        SDPVerifier,
        pointwise_robustness,
        verify,
    )

_EXPORTS = {
    "Box": "verifiNN.specs",
    "CROWNVerifier": "verifiNN.verifiers",
    "HalfSpaces": "verifiNN.specs",
    "InvalidInputError": "verifiNN.errors",
    "InvalidNetworkError": "verifiNN.errors",
    "LPVerifier": "verifiNN.verifiers",
    "LpBall": "verifiNN.specs",
    "MILPVerifier": "verifiNN.verifiers",
    "ModelLoadError": "verifiNN.errors",
    "Network": "verifiNN.models.network",
    "SDPVerifier": "verifiNN.verifiers",
    "SpecError": "verifiNN.errors",
    "Specification": "verifiNN.specs",
    "UnsupportedModelError": "verifiNN.errors",
    "Verdict": "verifiNN.results",
    "VerifiNNError": "verifiNN.errors",
    "VerificationResult": "verifiNN.results",
    "compute_bounds": "verifiNN.bounds",
    "from_torch": "verifiNN.io",
    "load_onnx": "verifiNN.io",
    "load_vnnlib": "verifiNN.io",
    "pointwise_robustness": "verifiNN.verifiers",
    "read_result": "verifiNN.io",
    "robustness_spec": "verifiNN.specs",
    "verify": "verifiNN.verifiers",
    "write_result": "verifiNN.io",
}

__all__ = [
    "Box",
    "CROWNVerifier",
    "HalfSpaces",
    "InvalidInputError",
    "InvalidNetworkError",
    "LPVerifier",
    "LpBall",
    "MILPVerifier",
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
    "pointwise_robustness",
    "read_result",
    "robustness_spec",
    "verify",
    "write_result",
]


def __getattr__(name: str) -> object:
    """Load an exported name from its module on first use."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
