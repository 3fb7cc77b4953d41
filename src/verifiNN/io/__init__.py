"""Loaders and writers for models, properties and result files."""

from verifiNN.io.inputs import load_input
from verifiNN.io.instance import load_instance
from verifiNN.io.onnx import load_onnx
from verifiNN.io.onnx.specialise import FixedEntries, NeedsConstantInputError
from verifiNN.io.torch import from_torch
from verifiNN.io.vnncomp import read_result, vnncomp_word, word_to_verdict, write_result
from verifiNN.io.vnnlib import load_vnnlib, parse_vnnlib

__all__ = [
    "FixedEntries",
    "NeedsConstantInputError",
    "from_torch",
    "load_input",
    "load_instance",
    "load_onnx",
    "load_vnnlib",
    "parse_vnnlib",
    "read_result",
    "vnncomp_word",
    "word_to_verdict",
    "write_result",
]
