"""The seed's module path of its verifier: ``from verifiNN.verifier import LPVerifier``.

verifiNN 0.0.0.dev10 documented this import; it keeps working. The verifier
classes live in :mod:`verifiNN.verifiers`.
"""

from verifiNN.verifiers import CROWNVerifier, LPVerifier, MILPVerifier, SDPVerifier, Verifier

__all__ = ["CROWNVerifier", "LPVerifier", "MILPVerifier", "SDPVerifier", "Verifier"]
