"""Reference inputs from ``.npy`` files, checked against a network."""

from __future__ import annotations

import os

import numpy as np

from verifiNN.errors import InvalidInputError
from verifiNN.models.network import Network

__all__ = ["load_input"]


def load_input(path: str | os.PathLike, network: Network) -> np.ndarray:
    """A reference input from a ``.npy`` file, checked against the network's input size.

    Returns:
        The flat float64 input.

    Raises:
        InvalidInputError: an unreadable file, a size that does not fit, or
            values that are not finite (each message names the file).
    """
    try:
        x = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise InvalidInputError(f"{path}: cannot read a NumPy array: {exc}") from exc
    if not np.issubdtype(x.dtype, np.number):
        raise InvalidInputError(f"{path}: expected numbers, got dtype {x.dtype}")
    if x.size != network.input_size:
        raise InvalidInputError(
            f"{path}: {x.size} values of shape {x.shape}, but the network takes "
            f"{network.input_size} (shape {network.input_shape})"
        )
    x = x.astype(np.float64).ravel()
    if not np.all(np.isfinite(x)):
        raise InvalidInputError(f"{path}: the input contains NaN or inf")
    return x
