"""Typed errors a user can cause.

Every error that bad input can trigger (a malformed model or property file, an
unsupported operator, a shape mismatch, NaN weights, a negative epsilon) is one
of these classes, with a message that names the file, node or line at fault.
The command line turns them into one line on stderr and exit code 2; anything
else is an internal bug and is not swallowed.

The input-validation errors also derive from :class:`ValueError`, so code that
caught ``ValueError`` around the seed's API keeps working.
"""

from __future__ import annotations

__all__ = [
    "InvalidInputError",
    "InvalidNetworkError",
    "ModelLoadError",
    "ResourceLimitError",
    "ResultFileError",
    "SolverError",
    "SpecError",
    "UnsupportedModelError",
    "VerifiNNError",
]


class VerifiNNError(Exception):
    """Base class of every error verifiNN raises on purpose."""


class InvalidNetworkError(VerifiNNError, ValueError):
    """A network's parameters or structure are invalid (shapes, NaN, unknown names)."""


class InvalidInputError(VerifiNNError, ValueError):
    """An argument of a verification call is invalid (x_0's shape, epsilon, norm, ...)."""


class ModelLoadError(VerifiNNError, ValueError):
    """A model file cannot be read (missing, truncated, corrupt, dynamic shapes)."""


class UnsupportedModelError(ModelLoadError):
    """A model uses operators or attributes that verifiNN does not support.

    The message lists every unsupported operator with its node name, so one
    attempt tells the user everything that needs to change.
    """


class SpecError(VerifiNNError, ValueError):
    """A property (VNN-LIB file or specification object) is malformed.

    Attributes:
        path: the file, when the property came from one.
        line: 1-based line of the fault, when known.
        column: 1-based column of the fault, when known.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        line: int | None = None,
        column: int | None = None,
    ) -> None:
        self.path = path
        self.line = line
        self.column = column
        where = ""
        if path is not None:
            where = str(path)
            if line is not None:
                where += f":{line}"
                if column is not None:
                    where += f":{column}"
            where += ": "
        elif line is not None:
            where = f"line {line}" + (f", column {column}" if column is not None else "") + ": "
        super().__init__(where + message)


class ResultFileError(VerifiNNError, OSError):
    """A result file cannot be written or read (unwritable path, disk full, bad format)."""


class ResourceLimitError(VerifiNNError, MemoryError):
    """A computation would need more memory than the machine can give it: the answer is
    ``unknown`` with this reason, never a crash."""


class SolverError(VerifiNNError, RuntimeError):
    """An optimisation back-end failed in a way that leaves no sound conclusion."""
