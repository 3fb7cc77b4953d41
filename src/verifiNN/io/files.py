"""Files as the competition ships them: ``PATH`` is read from ``PATH.gz`` when it is absent.

VNN-COMP benchmark folders list ``onnx/net.onnx`` and ``vnnlib/prop.vnnlib`` in
their ``instances.csv`` and ship ``onnx/net.onnx.gz`` and ``vnnlib/prop.vnnlib.gz``.
Every loader reads through :func:`read_bytes`, so a path named either way works:
the plain file when it exists, else its gzip-compressed twin; a ``.gz`` path
named directly is decompressed.
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

__all__ = ["MAX_FILE_BYTES", "read_bytes", "resolve"]

MAX_FILE_BYTES = 2**31 - 1
"""Largest (decompressed) file read: protobuf's limit for an ONNX model."""


def resolve(path: str | os.PathLike) -> Path:
    """The file that holds ``path``'s data: ``path`` itself, or ``path.gz`` when only that
    exists (``path`` unchanged when neither does, so errors name what was asked for)."""
    file = Path(path)
    if not file.exists():
        twin = file.with_name(file.name + ".gz")
        if twin.is_file():
            return twin
    return file


def read_bytes(path: str | os.PathLike, error: type[Exception], what: str) -> bytes:
    """The contents of ``path`` (decompressed when it is, or resolves to, a ``.gz`` file).

    Args:
        path: the file as named by the user or an instance list.
        error: the exception type raised for a missing, unreadable or corrupt file.
        what: what the file should be, for messages (``'ONNX file'``).

    Raises:
        error: naming the path.
    """
    file = resolve(path)
    if file.is_dir():
        raise error(f"{path}: is a folder, not an {what}")
    if not file.is_file():
        raise error(f"{path}: no such {what} (nor {Path(path).name}.gz)")
    try:
        if file.suffix != ".gz":
            if file.stat().st_size > MAX_FILE_BYTES:
                raise error(f"{file}: larger than {MAX_FILE_BYTES} bytes")
            return file.read_bytes()
        with gzip.open(file, "rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except (OSError, EOFError, zlib.error) as exc:
        raise error(f"{file}: cannot read the {what} ({exc})") from None
    if len(data) > MAX_FILE_BYTES:
        raise error(f"{file}: decompresses to more than {MAX_FILE_BYTES} bytes")
    return data
