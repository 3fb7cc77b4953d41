"""A model with its property: both loaded, the model specialised to what the property fixes.

:func:`load_instance` is the front door for a VNN-COMP style instance (an ONNX
model and a VNN-LIB property). It loads the model as it is; only when a node
needs a constant input that depends on the network input
(:class:`~verifiNN.io.onnx.specialise.NeedsConstantInputError`: a slice start,
a scatter index, ...) does it read the property, take the input entries that
every case fixes (``lower == upper``), specialise the model to them
(:func:`~verifiNN.io.onnx.specialise.specialise`) and load it again. Such a
network is valid on the property's input box only (its ``origin`` keeps the
original model, on which onnxruntime re-checks counterexamples).
"""

from __future__ import annotations

import hashlib
import math
import os

import numpy as np

from verifiNN.errors import SpecError, UnsupportedModelError
from verifiNN.io.onnx.loader import load_onnx, read_model
from verifiNN.io.onnx.specialise import FixedEntries, NeedsConstantInputError
from verifiNN.io.vnnlib import load_vnnlib
from verifiNN.models.network import Network
from verifiNN.specs import Specification

__all__ = ["box_key", "fixed_entries", "load_instance", "specialised_network"]


def fixed_entries(spec: Specification) -> FixedEntries:
    """The property's input box (the hull of its cases), exact on the entries every case
    fixes to one value."""
    box = spec.bounding_box()
    return FixedEntries(np.asarray(box.lower, np.float64), np.asarray(box.upper, np.float64))


def box_key(spec: Specification) -> str:
    """A digest of the property's input box: a specialised network is valid on that box."""
    fixed = fixed_entries(spec)
    return hashlib.sha1(fixed.lower.tobytes() + fixed.upper.tobytes()).hexdigest()


def specialised_network(
    model: str | os.PathLike,
    spec: Specification,
    labeler: str = "argmax",
    reason: NeedsConstantInputError | None = None,
) -> Network:
    """``model`` specialised to the input entries ``spec`` fixes, loaded.

    Args:
        model: the ONNX file.
        spec: its property.
        labeler: as for :func:`~verifiNN.io.onnx.load_onnx`.
        reason: the error of the plain load, reported when fixing entries does not help.

    Raises:
        UnsupportedModelError: the model still needs constants it does not get.
        SpecError: the property does not fit the model's input.
    """
    parsed = read_model(model)
    if len(parsed.inputs) != 1:
        raise reason or UnsupportedModelError(f"{model}: a model of several inputs")
    (tensor,) = parsed.inputs
    size = math.prod(tensor.full)
    if spec.num_inputs != size:  # the property cannot fix anything: the model's own error
        if reason is not None:
            raise reason
        raise SpecError(f"property has {spec.num_inputs} inputs, the model {size}", path=spec.path)
    fixed = fixed_entries(spec)
    count = int(fixed.known.sum())
    try:
        if count == 0:
            raise reason or NeedsConstantInputError(f"{model}: the model needs constant inputs")
        network = load_onnx(model, labeler, fixed_inputs={tensor.name: fixed})
    except NeedsConstantInputError as exc:
        raise UnsupportedModelError(
            f"{exc} (after fixing the {count} input entries the property fixes)"
        ) from None
    spec.validate_for(network)
    return network


def load_instance(
    model: str | os.PathLike, prop: str | os.PathLike, labeler: str = "argmax"
) -> tuple[Network, Specification]:
    """Load a model and its property, specialising the model when it needs values the
    property fixes (see the module docstring).

    Args:
        model: the ONNX file (``.gz`` read when needed).
        prop: the VNN-LIB file.
        labeler: as for :func:`~verifiNN.io.onnx.load_onnx`.

    Returns:
        ``(network, spec)``, the spec checked against the network's sizes.

    Raises:
        ModelLoadError, UnsupportedModelError: the model cannot be loaded (even specialised).
        SpecError: the property is malformed or does not fit the model.
    """
    try:
        network = load_onnx(model, labeler)
    except NeedsConstantInputError as exc:
        spec = load_vnnlib(prop)
        return specialised_network(model, spec, labeler, exc), spec
    return network, load_vnnlib(prop, network)
