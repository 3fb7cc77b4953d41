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

from verifiNN.models.network import Network

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
    network did not come from ONNX (``network.origin``) or onnxruntime cannot run it."""
    origin = network.origin
    model = None if origin is None else origin.onnx_model
    if model is None:
        return None
    try:
        session = _session(model, hashlib.sha1(model).hexdigest())
        (inp,) = session.get_inputs()
        shape = [1 if not isinstance(d, int) else d for d in inp.shape]
        dtype = np.float64 if inp.type == "tensor(double)" else np.float32
        outputs = session.run(None, {inp.name: np.asarray(x, dtype).reshape(shape)})
    except Exception as exc:  # onnxruntime rejects some models we load: no second opinion
        logger.debug("onnxruntime cannot run the model: %s", exc)
        return None
    return np.asarray(outputs[0], np.float64).ravel()
