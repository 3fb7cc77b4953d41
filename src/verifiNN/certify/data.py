"""Data sets to certify: ``.npz`` files of inputs and labels, checked before any work."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from verifiNN.errors import InvalidInputError
from verifiNN.models.network import Network

__all__ = ["Dataset", "check_dataset", "load_dataset"]

#: Accepted ``(inputs, labels)`` key pairs of a ``.npz`` file, in order of preference.
KEYS = (("x", "y"), ("inputs", "labels"), ("X", "y"), ("data", "target"))


@dataclass(frozen=True)
class Dataset:
    """Inputs (``(N, input_size)`` float64) and integer labels (``(N,)``)."""

    inputs: np.ndarray
    labels: np.ndarray
    source: str = "<memory>"

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def load_dataset(path: str | os.PathLike, network: Network) -> Dataset:
    """Read ``path`` (``.npz`` with arrays ``x`` and ``y``; also ``inputs``/``labels``)
    and check it against ``network`` (:func:`check_dataset`).

    Raises:
        InvalidInputError: an unreadable file, missing arrays, or data that do
            not fit the network (each message names the file).
    """
    name = os.fspath(path)
    try:
        with np.load(name, allow_pickle=False) as archive:
            keys = set(archive.files)
            pair = next(((a, b) for a, b in KEYS if a in keys and b in keys), None)
            if pair is None:
                raise InvalidInputError(
                    f"{name}: expected arrays 'x' (inputs) and 'y' (labels), "
                    f"found {sorted(keys) or 'none'}"
                )
            inputs, labels = archive[pair[0]], archive[pair[1]]
    except InvalidInputError:
        raise
    except (OSError, ValueError, EOFError) as exc:
        raise InvalidInputError(f"{name}: cannot read a NumPy .npz file: {exc}") from exc
    return check_dataset(inputs, labels, network, source=name)


def check_dataset(inputs, labels, network: Network, source: str = "<memory>") -> Dataset:
    """Validate inputs and labels against ``network``.

    ``inputs`` is ``(N, *input_shape)`` or ``(N, input_size)``; ``labels`` holds
    ``N`` integers in ``[0, output_size)``.

    Raises:
        InvalidInputError: wrong shapes, non-numeric or non-finite inputs,
            non-integer or out-of-range labels, or no samples (naming ``source``
            and the first offending sample).
    """
    x, y = np.asarray(inputs), np.asarray(labels)
    if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
        raise InvalidInputError(f"{source}: inputs must be real numbers, got dtype {x.dtype}")
    if x.ndim < 1 or x.shape[0] == 0:
        raise InvalidInputError(f"{source}: no samples (inputs of shape {x.shape})")
    n = x.shape[0]
    size = int(np.prod(x.shape[1:], dtype=np.int64)) if x.ndim > 1 else 1
    if size != network.input_size:
        raise InvalidInputError(
            f"{source}: each input has {size} values (shape {x.shape[1:]}), but the network "
            f"takes {network.input_size} (shape {network.input_shape})"
        )
    x = x.reshape(n, size).astype(np.float64)
    bad = np.flatnonzero(~np.isfinite(x).all(axis=1))
    if bad.size:
        raise InvalidInputError(f"{source}: input {bad[0]} contains NaN or inf")
    if y.shape != (n,):
        raise InvalidInputError(
            f"{source}: expected {n} labels (one per input), got labels of shape {y.shape}"
        )
    if not np.issubdtype(y.dtype, np.number) or not np.all(np.isfinite(y)):
        raise InvalidInputError(f"{source}: labels must be integers, got dtype {y.dtype}")
    if np.any(y != np.round(y)):
        first = int(np.flatnonzero(y != np.round(y))[0])
        raise InvalidInputError(f"{source}: label {first} is not an integer ({y[first]})")
    y = y.astype(np.int64)
    out = np.flatnonzero((y < 0) | (y >= network.output_size))
    if out.size:
        raise InvalidInputError(
            f"{source}: label {y[out[0]]} of sample {out[0]} is not a class of a "
            f"{network.output_size}-output network"
        )
    return Dataset(x, y, source)
