"""The network: a DAG of operations in topological order.

``Network(weights, biases, activation, labeler)`` is the seed's constructor and
builds the chain ``Dense -> activation -> ... -> Dense``; loaders (ONNX,
PyTorch) build arbitrary DAGs through :meth:`Network.from_graph`. Every engine
reads the same graph.

Difference from verifiNN 0.0.0.dev10: the seed also applied the activation to
the output layer. Here the output layer is affine (the outputs are logits, the
usual meaning); hidden layers use the activation.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from verifiNN.errors import InvalidInputError, InvalidNetworkError, UnsupportedModelError
from verifiNN.ops import Dense, Identity, Op, ReLU, Shape, as_tensor

__all__ = ["INPUT", "LABELERS", "MLP", "ModelOrigin", "Network", "Node", "OnnxPart"]

INPUT = "input"
"""Default name of the network's input node."""

LABELERS = ("argmax", "argmin")
_ACTIVATIONS: dict[str, type[Op]] = {"relu": ReLU, "id": Identity, "identity": Identity}


@dataclass(frozen=True)
class Node:
    """One node of the graph: ``name = op(*inputs)``."""

    name: str
    op: Op
    inputs: tuple[str, ...]


@dataclass(frozen=True)
class OnnxPart:
    """One ONNX model inside a network composed from several (a VNN-LIB 2.0 query).

    Attributes:
        onnx_model: the serialised model.
        feeds: ``(graph input name, first index in the network input, size,
            full shape)`` of each of its inputs.
        fetches: ``(tensor name, size)`` of each tensor whose values the
            composite's outputs are made of (outputs or intermediate tensors).
    """

    onnx_model: bytes
    feeds: tuple[tuple[str, int, int, tuple[int, ...]], ...]
    fetches: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class ModelOrigin:
    """Where a network came from, for a second opinion on its outputs.

    Attributes:
        source: how messages name the model (its path).
        onnx_model: the serialised ONNX model the network was converted from;
            counterexamples are re-run on it by onnxruntime
            (:mod:`verifiNN.io.ort`), so a conversion bug cannot become a
            wrong ``sat``.
        input_shape: the model's full input shape (a symbolic batch dimension
            appears as its name, or ``None``).
        parts: for a network composed from several models (``onnx_model`` is
            then ``None``): the models, in order. Their fetched values, then
            the network input, form a vector ``w``.
        output_terms: with ``parts``: output ``j`` of the network is the product
            of the entries ``w[i]`` for ``i`` in ``output_terms[j]``.
    """

    source: str
    onnx_model: bytes | None = None
    input_shape: tuple[int | str | None, ...] | None = None
    parts: tuple[OnnxPart, ...] = ()
    output_terms: tuple[tuple[int, ...], ...] = ()


@dataclass(frozen=True)
class MLP:
    """A fully connected network as plain arrays (what LP and MILP encoders read).

    ``activations[k]`` is applied after layer ``k`` for every layer but the last.
    """

    weights: tuple[np.ndarray, ...]
    biases: tuple[np.ndarray, ...]
    activations: tuple[str, ...]

    @property
    def num_hidden_layers(self) -> int:
        return len(self.weights) - 1


class Network:
    """A neural network: a DAG of :class:`~verifiNN.ops.Op` nodes.

    Args:
        weights: one ``(n_out, n_in)`` matrix per layer (lists or arrays of any
            real numeric dtype).
        biases: one ``(n_out,)`` vector per layer.
        activation: ``'ReLU'`` or ``'Id'``, applied after every hidden layer.
        labeler: ``'argmax'`` (class = highest score) or ``'argmin'`` (lowest
            score, e.g. ACAS Xu advisories). Ties go to the lowest index.

    Attributes:
        origin: the file the network was loaded from (:class:`ModelOrigin`),
            or ``None`` for a network built in Python.

    Raises:
        InvalidNetworkError: shapes that do not chain, non-finite or non-numeric
            parameters, or an unknown activation or labeler.
    """

    origin: ModelOrigin | None

    def __init__(
        self,
        weights: Sequence[object],
        biases: Sequence[object],
        activation: str = "ReLU",
        labeler: str = "argmax",
    ) -> None:
        act = _ACTIVATIONS.get(str(activation).lower())
        if act is None:
            raise InvalidNetworkError(f"unknown activation {activation!r}: expected 'ReLU' or 'Id'")
        mats = [_real_array(w, f"weights[{k}]") for k, w in enumerate(weights)]
        vecs = [_real_array(b, f"biases[{k}]") for k, b in enumerate(biases)]
        _check_layer_shapes(mats, vecs)
        nodes: list[Node] = []
        previous = INPUT
        for k, (w, b) in enumerate(zip(mats, vecs)):
            nodes.append(Node(f"dense_{k}", Dense(as_tensor(w), as_tensor(b)), (previous,)))
            previous = f"dense_{k}"
            if k < len(mats) - 1:
                nodes.append(Node(f"{act.__name__.lower()}_{k}", act(), (previous,)))
                previous = nodes[-1].name
        self._init_graph((mats[0].shape[1],), nodes, previous, labeler, INPUT)
        self.activation = "ReLU" if act is ReLU else "Id"
        self.origin = None

    @classmethod
    def from_graph(
        cls,
        input_shape: Sequence[int],
        nodes: Iterable[Node],
        output: str | None = None,
        labeler: str = "argmax",
        input_name: str = INPUT,
        origin: ModelOrigin | None = None,
    ) -> Network:
        """Build a network from nodes in topological order.

        Args:
            input_shape: per-sample input shape (no batch dimension).
            nodes: the nodes, each reading the input or earlier nodes.
            output: the output node's name (default: the last node).
            labeler: ``'argmax'`` or ``'argmin'``.
            input_name: the name nodes use to read the network input.
            origin: where the network came from (loaders set it).

        Raises:
            InvalidNetworkError: unknown or later node references, duplicate
                names, shapes that do not fit an op.
        """
        network = cls.__new__(cls)
        nodes = list(nodes)
        network._init_graph(
            tuple(int(d) for d in input_shape),
            nodes,
            output or (nodes[-1].name if nodes else input_name),
            labeler,
            input_name,
        )
        network.activation = None
        network.origin = origin
        return network

    def _init_graph(
        self, input_shape: Shape, nodes: list[Node], output: str, labeler: str, input_name: str
    ) -> None:
        if labeler not in LABELERS:
            raise InvalidNetworkError(f"unknown labeler {labeler!r}: expected one of {LABELERS}")
        if not input_shape or any(d <= 0 for d in input_shape):
            raise InvalidNetworkError(f"input shape {input_shape} must have positive dimensions")
        shapes: dict[str, Shape] = {input_name: tuple(input_shape)}
        for node in nodes:
            if node.name in shapes:
                raise InvalidNetworkError(f"duplicate node name {node.name!r}")
            if node.op.arity is not None and len(node.inputs) != node.op.arity:
                raise InvalidNetworkError(
                    f"node {node.name!r} ({node.op.kind}) takes {node.op.arity} inputs, "
                    f"got {len(node.inputs)}"
                )
            missing = [name for name in node.inputs if name not in shapes]
            if missing or not node.inputs:
                raise InvalidNetworkError(
                    f"node {node.name!r} reads {missing or 'nothing'}: inputs must be the "
                    "network input or earlier nodes"
                )
            try:
                shapes[node.name] = tuple(node.op.output_shape(*(shapes[i] for i in node.inputs)))
            except ValueError as exc:
                raise InvalidNetworkError(f"node {node.name!r} ({node.op.kind}): {exc}") from exc
            for name, param in node.op.parameters().items():
                if not np.isfinite(param.detach().cpu().numpy()).all():
                    raise InvalidNetworkError(
                        f"node {node.name!r} ({node.op.kind}): parameter {name!r} has NaN or inf"
                    )
        if output not in shapes:
            raise InvalidNetworkError(f"output node {output!r} is not in the graph")
        self.input_name = input_name
        self.input_shape: Shape = tuple(input_shape)
        self.nodes: tuple[Node, ...] = tuple(nodes)
        self.output_name = output
        self.shapes = shapes
        self.output_shape: Shape = shapes[output]
        self.labeler = labeler

    # ------------------------------------------------------------------ shape
    @property
    def input_size(self) -> int:
        """Number of scalar inputs (product of ``input_shape``)."""
        return math.prod(self.input_shape)

    @property
    def output_size(self) -> int:
        """Number of scalar outputs (scores)."""
        return math.prod(self.output_shape)

    def __repr__(self) -> str:
        ops = " -> ".join(node.op.kind for node in self.nodes)
        return (
            f"Network(input_shape={self.input_shape}, output_size={self.output_size}, "
            f"labeler={self.labeler!r}, ops=[{ops}])"
        )

    # ---------------------------------------------------------------- forward
    def forward(self, x: Tensor) -> Tensor:
        """Batched torch forward pass.

        Args:
            x: ``(B, *input_shape)`` or ``(B, input_size)`` tensor with the
                dtype/device of the network's parameters.

        Returns:
            The ``(B, output_size)`` flattened outputs.
        """
        values: dict[str, Tensor] = {self.input_name: x.reshape(x.shape[0], *self.input_shape)}
        for node in self.nodes:
            values[node.name] = node.op.forward(*(values[i] for i in node.inputs))
        return values[self.output_name].reshape(x.shape[0], -1)

    def get_output(self, x: object) -> np.ndarray:
        """Output scores for one input or a batch.

        Args:
            x: one input (shape ``input_shape`` or flat) or a batch (leading
                batch dimension).

        Returns:
            ``(output_size,)`` for one input, ``(B, output_size)`` for a batch.
        """
        batch, single = self._as_batch(x)
        with torch.no_grad():
            tensor = torch.from_numpy(np.require(batch, requirements=["C", "W"]))
            out = self.forward(tensor).numpy()
        return out[0] if single else out

    def classify(self, x: object) -> int | np.ndarray:
        """Class label(s) by the network's labeler (ties: lowest index).

        Returns:
            An ``int`` for one input, an integer array for a batch.
        """
        scores = self.get_output(x)
        labels = np.argmax(scores, axis=-1) if self.labeler == "argmax" else np.argmin(scores, -1)
        return int(labels) if np.ndim(labels) == 0 else labels

    def _as_batch(self, x: object) -> tuple[np.ndarray, bool]:
        """Return ``(flat float64 batch, was_single)`` or raise InvalidInputError."""
        try:
            arr = np.asarray(x, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(f"input is not a numeric array: {exc}") from exc
        n = self.input_size
        if arr.shape == self.input_shape or (arr.ndim == 1 and arr.size == n):
            return arr.reshape(1, n), True
        if arr.ndim >= 2 and (arr.shape[1:] == self.input_shape or arr.shape[1:] == (n,)):
            return arr.reshape(arr.shape[0], n), False
        raise InvalidInputError(
            f"input of shape {arr.shape} does not fit the network's input shape "
            f"{self.input_shape} (one input) or (batch, {n}) (a batch)"
        )

    # ------------------------------------------------------------- structure
    def to(
        self, dtype: torch.dtype | None = None, device: torch.device | str | None = None
    ) -> Network:
        """Copy of the network with parameters moved to ``dtype``/``device``."""
        nodes = [Node(n.name, n.op.to(dtype, device), n.inputs) for n in self.nodes]
        copy = Network.from_graph(
            self.input_shape, nodes, self.output_name, self.labeler, self.input_name, self.origin
        )
        copy.activation = self.activation
        return copy

    def with_origin(self, origin: ModelOrigin | None) -> Network:
        """This network (the same object) with ``origin`` recorded; returns it."""
        self.origin = origin
        return self

    def as_mlp(self) -> MLP:
        """The network as a chain of dense layers and elementwise activations.

        Leading ``Flatten``/``Reshape`` nodes are skipped (they do not change a
        flat input); ``Identity`` activations are kept as ``'Id'``.

        Raises:
            UnsupportedModelError: when the graph is not such a chain of
                ``Dense``, ``ReLU`` and ``Identity`` nodes.
        """
        weights, biases, acts = [], [], []
        previous = self.input_name
        for node in self.nodes:
            if node.inputs != (previous,):
                raise UnsupportedModelError(f"node {node.name!r} branches: not a plain MLP")
            op = node.op
            if isinstance(op, Dense):
                if len(weights) > len(acts):
                    acts.append("Id")  # two dense layers in a row
                weights.append(op.weight.detach().cpu().double().numpy())
                biases.append(op.bias.detach().cpu().double().numpy())
            elif isinstance(op, (ReLU, Identity)) and len(weights) == len(acts) + 1:
                acts.append("ReLU" if isinstance(op, ReLU) else "Id")
            elif op.kind in ("Flatten", "Reshape") and not weights:
                pass
            else:
                raise UnsupportedModelError(
                    f"node {node.name!r} ({op.kind}) is not supported here: this method needs a "
                    "fully connected network of Dense layers with ReLU or identity activations"
                )
            previous = node.name
        if not weights or len(acts) != len(weights) - 1 or previous != self.output_name:
            raise UnsupportedModelError(
                "this method needs a fully connected network that ends in a Dense layer"
            )
        return MLP(tuple(weights), tuple(biases), tuple(acts))


def _real_array(value: object, name: str) -> np.ndarray:
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise InvalidNetworkError(f"{name} is not an array: {exc}") from exc
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.integer)
        or np.issubdtype(arr.dtype, np.floating)
        or arr.dtype == np.bool_
    ):
        raise InvalidNetworkError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    if not np.isfinite(arr).all():
        raise InvalidNetworkError(f"{name} contains NaN or inf")
    return arr


def _check_layer_shapes(weights: list[np.ndarray], biases: list[np.ndarray]) -> None:
    if not weights:
        raise InvalidNetworkError("a network needs at least one layer (weights is empty)")
    if len(weights) != len(biases):
        raise InvalidNetworkError(
            f"got {len(weights)} weight matrices but {len(biases)} bias vectors"
        )
    for k, (w, b) in enumerate(zip(weights, biases)):
        if w.ndim != 2 or 0 in w.shape:
            raise InvalidNetworkError(f"weights[{k}] must be a non-empty 2-D matrix, got {w.shape}")
        if b.shape != (w.shape[0],):
            raise InvalidNetworkError(
                f"biases[{k}] has shape {b.shape}, expected ({w.shape[0]},) to match weights[{k}]"
            )
        if k and w.shape[1] != weights[k - 1].shape[0]:
            raise InvalidNetworkError(
                f"weights[{k}] takes {w.shape[1]} inputs but layer {k - 1} has "
                f"{weights[k - 1].shape[0]} outputs"
            )
