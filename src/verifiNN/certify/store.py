"""Crash-safe, resumable results: an append-only JSON-lines file.

The first line describes the run (model and data digests, epsilons, norm,
method, time limit); each further line holds one finished sample's rows, written
with a single ``write``, flushed and ``fsync``-ed before the next sample is
taken, so a crash or Ctrl-C loses at most the samples still running. A torn
last line (the process died mid-write) is cut off when the file is reopened.
Reopening with the same run skips the samples already in the file; reopening
with a different run is refused rather than mixing two runs' answers.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from verifiNN.errors import ResultFileError

__all__ = ["ResultStore", "digest", "network_digest"]


def digest(*arrays: np.ndarray | bytes) -> str:
    """SHA-256 of arrays (shape, dtype and bytes) or raw bytes, hex."""
    h = hashlib.sha256()
    for a in arrays:
        if isinstance(a, bytes):
            h.update(a)
        else:
            a = np.ascontiguousarray(a)
            h.update(f"{a.shape}{a.dtype}".encode())
            h.update(a.tobytes())
    return h.hexdigest()


def network_digest(network: Any) -> str:
    """SHA-256 of a network's graph: node names, op types and every op attribute."""
    h = hashlib.sha256(f"{network.input_shape}{network.labeler}".encode())
    for node in network.nodes:
        h.update(f"{node.name}:{type(node.op).__name__}:{node.inputs}".encode())
        for key, value in sorted(vars(node.op).items()) if hasattr(node.op, "__dict__") else ():
            h.update(key.encode())
            if hasattr(value, "detach"):
                value = value.detach().cpu().numpy()
            h.update(
                digest(value).encode() if isinstance(value, np.ndarray) else repr(value).encode()
            )
    return h.hexdigest()


class ResultStore:
    """The JSON-lines results of one certification run (``path``; ``None``: in memory).

    Args:
        path: the ``.jsonl`` file (created with its parent folder when missing).
        run: the run's description; must equal the one already in the file.

    Raises:
        ResultFileError: the file cannot be read or written, or holds another run.
    """

    def __init__(self, path: str | os.PathLike | None, run: dict[str, Any]) -> None:
        self.path = None if path is None else Path(path)
        self.run = json.loads(json.dumps(run))  # as it reads back
        self.rows: dict[int, list[dict]] = {}
        self._handle = None
        if self.path is not None:
            self._open()

    def _open(self) -> None:
        assert self.path is not None
        existing = next(p for p in self.path.parents if p.exists())
        if not existing.is_dir():
            raise ResultFileError(f"{existing}: not a folder")
        if self.path.exists() and not self.path.is_file():
            raise ResultFileError(f"{self.path}: not a regular file")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if self.path.exists():
                self._load()
            else:
                self.path.write_text(json.dumps({"run": self.run}) + "\n")
            self._handle = open(self.path, "a", encoding="utf-8")  # noqa: SIM115
        except OSError as exc:
            raise ResultFileError(f"{self.path}: {exc.strerror or exc}") from exc

    def _load(self) -> None:
        assert self.path is not None
        data = self.path.read_bytes()
        good = data.rfind(b"\n") + 1  # a torn last line has no newline yet
        if good < len(data):
            with open(self.path, "r+b") as handle:
                handle.truncate(good)
        lines = data[:good].decode("utf-8").splitlines()
        if not lines:
            self.path.write_text(json.dumps({"run": self.run}) + "\n")
            return
        try:
            header = json.loads(lines[0])["run"]
        except (ValueError, KeyError, TypeError) as exc:
            raise ResultFileError(f"{self.path}: not a verifiNN results file") from exc
        if header != self.run:
            changed = sorted(
                k for k in set(header) | set(self.run) if header.get(k) != self.run.get(k)
            )
            raise ResultFileError(
                f"{self.path}: holds the results of another run (different {', '.join(changed)}); "
                "choose another output folder or delete it"
            )
        for number, line in enumerate(lines[1:], start=2):
            try:
                record = json.loads(line)
                self.rows[int(record["sample"])] = list(record["rows"])
            except (ValueError, KeyError, TypeError) as exc:
                raise ResultFileError(f"{self.path}, line {number}: malformed record") from exc

    def done(self, sample: int) -> bool:
        return sample in self.rows

    def add(self, rows: list[dict]) -> None:
        """Record one sample's rows (durably, when backed by a file)."""
        sample = int(rows[0]["sample"])
        self.rows[sample] = rows
        if self._handle is not None:
            try:
                self._handle.write(json.dumps({"sample": sample, "rows": rows}) + "\n")
                self._handle.flush()
                os.fsync(self._handle.fileno())
            except OSError as exc:
                raise ResultFileError(f"{self.path}: {exc.strerror or exc}") from exc

    def table(self) -> list[dict]:
        """Every row, by sample then epsilon."""
        return [row for sample in sorted(self.rows) for row in self.rows[sample]]

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
