"""The operation interface of the graph IR.

An :class:`Op` is a pure function of one or more tensors with constant
parameters. Tensors always carry a leading batch dimension: an op whose input
has per-sample shape ``(C, H, W)`` receives a tensor of shape
``(B, C, H, W)``. Ops hold their parameters as torch tensors (float64 on the
CPU by default) and only define semantics: how each op is bounded (interval,
linear relaxation, LP/MILP encoding) lives in :mod:`verifiNN.bounds`, keyed by
the op's type, so adding an op means one class here plus its transfer rules
there.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor

Shape = tuple[int, ...]

__all__ = ["Op", "Shape", "as_tensor"]


def as_tensor(value: object, dtype: torch.dtype = torch.float64) -> Tensor:
    """Convert an array-like parameter to a contiguous tensor of ``dtype``."""
    if isinstance(value, Tensor):
        return value.detach().to(dtype=dtype).contiguous()
    # np.array copies: parameters never alias read-only buffers (ONNX initializers, views)
    return torch.as_tensor(np.array(value, dtype=np.float64), dtype=dtype).contiguous()


class Op(ABC):
    """One operation of the graph IR.

    Subclasses are frozen dataclasses whose tensor fields are the op's
    constant parameters.

    Attributes:
        arity: number of graph inputs the op takes (``None``: any number >= 1).
        affine: True when the op is an affine function of its inputs; bound
            propagation treats affine ops as linear maps.
    """

    arity: ClassVar[int | None] = 1
    affine: ClassVar[bool] = False

    @abstractmethod
    def forward(self, *inputs: Tensor) -> Tensor:
        """Apply the op to batched tensors (leading dimension = batch)."""

    @abstractmethod
    def output_shape(self, *input_shapes: Shape) -> Shape:
        """Per-sample output shape for the given per-sample input shapes.

        Raises:
            ValueError: when the input shapes do not fit the op's parameters.
        """

    def forward_numpy(self, *inputs: np.ndarray) -> np.ndarray:
        """NumPy convenience wrapper around :meth:`forward` (batched, float64)."""
        tensors = [torch.as_tensor(np.asarray(x, dtype=np.float64)) for x in inputs]
        with torch.no_grad():
            return self.to(torch.float64).forward(*tensors).numpy()

    def to(self, dtype: torch.dtype | None = None, device: torch.device | str | None = None) -> Op:
        """Copy of the op with its tensor parameters moved to ``dtype``/``device``."""
        changes = {}
        for field in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, field.name)
            if isinstance(value, Tensor):
                changes[field.name] = value.to(dtype=dtype if dtype else value.dtype, device=device)
        return dataclasses.replace(self, **changes) if changes else self  # type: ignore[type-var]

    def parameters(self) -> dict[str, Tensor]:
        """The op's tensor parameters by field name."""
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)  # type: ignore[arg-type]
            if isinstance(getattr(self, f.name), Tensor)
        }

    @property
    def kind(self) -> str:
        """Short name of the op (its class name)."""
        return type(self).__name__

    def __repr__(self) -> str:
        parts = []
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            parts.append(
                f"{f.name}=<{tuple(value.shape)}>"
                if isinstance(value, Tensor)
                else f"{f.name}={value!r}"
            )
        return f"{self.kind}({', '.join(parts)})"
