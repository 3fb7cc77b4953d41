"""Second opinion on counterexamples: the original ONNX model run by onnxruntime.

A counterexample found on verifiNN's own graph is confirmed by a float64
forward pass of that graph; when the network came from an ONNX file, it is
also run through onnxruntime on the *original* model (its own op
implementations, float32 as the file says), so a conversion bug cannot turn
into a wrong ``sat``.
"""

from __future__ import annotations

import hashlib
import logging
from functools import lru_cache
from typing import Any

import numpy as np
import onnx

from verifiNN.models.network import ModelOrigin, Network

__all__ = ["onnxruntime_output"]

logger = logging.getLogger(__name__)


@lru_cache(maxsize=8)
def _session(model: bytes, key: str) -> Any:  # key: keeps the cache keyed by content
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def onnxruntime_output(network: Network, x: np.ndarray) -> np.ndarray | None:
    """The original ONNX model's output at ``x`` (flat float64), or ``None`` when the
    network did not come from ONNX (``network.origin``) or onnxruntime cannot run it.

    A network composed from several models (a VNN-LIB 2.0 query) is evaluated
    part by part, as :class:`~verifiNN.models.network.ModelOrigin` describes.
    """
    origin = network.origin
    if origin is None or (origin.onnx_model is None and not origin.parts):
        return None
    x = np.asarray(x, np.float64).ravel()
    try:
        if origin.onnx_model is not None:
            session = _session(origin.onnx_model, hashlib.sha1(origin.onnx_model).hexdigest())
            (inp,) = session.get_inputs()
            shape = [1 if not isinstance(d, int) else d for d in inp.shape]
            outputs = session.run(None, {inp.name: x.astype(_dtype(inp.type)).reshape(shape)})
            return np.asarray(outputs[0], np.float64).ravel()
        return _composite_output(origin, x)
    except Exception as exc:  # onnxruntime rejects some models we load: no second opinion
        logger.debug("onnxruntime cannot run the model: %s", exc)
        return None


def _dtype(onnx_type: str) -> type:
    return np.float64 if onnx_type == "tensor(double)" else np.float32


def _composite_output(origin: ModelOrigin, x: np.ndarray) -> np.ndarray:
    """Run every part on its slices of ``x``; output ``j`` multiplies ``w[output_terms[j]]``."""
    values = []
    for part in origin.parts:
        names = tuple(name for name, _ in part.fetches)
        model = _with_outputs(part.onnx_model, names)
        session = _session(model, hashlib.sha1(model).hexdigest())
        types = {i.name: i.type for i in session.get_inputs()}
        feeds = {
            name: x[start : start + size].astype(_dtype(types[name])).reshape(shape)
            for name, start, size, shape in part.feeds
        }
        for value in session.run(list(names), feeds):
            values.append(np.asarray(value, np.float64).ravel())
    w = np.concatenate([*values, x])
    return np.array([float(np.prod(w[list(term)])) for term in origin.output_terms])


@lru_cache(maxsize=16)
def _with_outputs(model: bytes, names: tuple[str, ...]) -> bytes:
    """The model with ``names`` added to its graph outputs (intermediate tensors)."""
    proto = onnx.load_model_from_string(model)
    present = {o.name for o in proto.graph.output}
    for name in names:
        if name not in present:
            proto.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    return proto.SerializeToString()
