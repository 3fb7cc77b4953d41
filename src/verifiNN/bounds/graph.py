"""How the graph is walked: bound-graph analysis and the backward linear pass.

Kept apart from how one node is bounded (:mod:`~verifiNN.bounds.affine`,
:mod:`~verifiNN.bounds.relaxations`), as in jax_verify. :func:`backward` is
the DAG walk of CROWN (Zhang et al. 2018) / DeepPoly (Singh et al. 2019): linear
functions ``lam`` seeded at some nodes travel to the network input in reverse
topological order; a node with several consumers sums their contributions,
Add sends its ``lam`` to both inputs and Concat splits it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import torch
from torch import Tensor

from verifiNN.bounds.affine import affine_rule, dense_backward
from verifiNN.bounds.patches import Patches, patch_backward, patch_supported
from verifiNN.bounds.relaxations import RELAXATIONS, input_bounds
from verifiNN.bounds.types import Interval
from verifiNN.budget import checkpoint
from verifiNN.errors import UnsupportedModelError
from verifiNN.models.network import Network, Node
from verifiNN.ops import Dense, Shape

__all__ = ["BoundGraph", "RelaxFn", "Substitute", "backward", "check_supported", "interval_step"]

RelaxFn = Callable[[Node], Any]
"""Returns the relaxation of a nonlinear node used by one backward pass."""

Substitute = Callable[[str, Tensor], "tuple[Tensor, Tensor] | None"]
"""Ends a backward pass at a node with linear bounds of it in the input (or ``None``)."""


def check_supported(network: Network) -> None:
    """Raise before any work when some op has neither an affine rule nor a relaxation.

    Raises:
        UnsupportedModelError: listing every unsupported node.
    """
    bad = [
        f"{node.name} ({node.op.kind})"
        for node in network.nodes
        if not node.op.affine and type(node.op) not in RELAXATIONS
    ]
    if bad:
        raise UnsupportedModelError(
            "bound propagation does not support these nodes: " + ", ".join(bad)
        )


@dataclass(frozen=True)
class BoundGraph:
    """A network seen by bound propagation (built once per network).

    Attributes:
        network: the network.
        nodes: nodes in topological order.
        index: node name -> position in ``nodes``.
        shapes: per-sample shape of every node (and the input).
        consumers: node name -> nodes that read it.
        preactivations: affine nodes read by a nonlinear op: CROWN computes
            their bounds by a backward pass of their own.
        ancestors: node name -> names of the nonlinear nodes it depends on.
    """

    network: Network
    nodes: tuple[Node, ...]
    index: Mapping[str, int]
    shapes: Mapping[str, Shape]
    consumers: Mapping[str, tuple[Node, ...]]
    preactivations: frozenset[str]
    ancestors: Mapping[str, frozenset[str]]

    @classmethod
    def of(cls, network: Network) -> BoundGraph:
        """Analyse ``network`` (raises :class:`UnsupportedModelError` on unknown ops)."""
        check_supported(network)
        consumers: dict[str, list[Node]] = {network.input_name: []}
        ancestors: dict[str, frozenset[str]] = {network.input_name: frozenset()}
        for node in network.nodes:
            consumers[node.name] = []
            for name in node.inputs:
                consumers[name].append(node)
            own = frozenset() if node.op.affine else frozenset({node.name})
            ancestors[node.name] = own.union(*(ancestors[i] for i in node.inputs))
        preacts = {
            name
            for name, users in consumers.items()
            if name != network.input_name and any(not user.op.affine for user in users)
        }
        by_name = {node.name: node for node in network.nodes}
        preacts = {name for name in preacts if by_name[name].op.affine}
        return cls(
            network=network,
            nodes=tuple(network.nodes),
            index={node.name: i for i, node in enumerate(network.nodes)},
            shapes=dict(network.shapes),
            consumers={k: tuple(v) for k, v in consumers.items()},
            preactivations=frozenset(preacts),
            ancestors=ancestors,
        )

    @property
    def input_name(self) -> str:
        """Name of the network input."""
        return self.network.input_name

    @property
    def output_name(self) -> str:
        """Name of the output node."""
        return self.network.output_name

    @property
    def device(self) -> torch.device | None:
        """Device of the parameters (``None`` for a network without parameters)."""
        for node in self.nodes:
            for param in node.op.parameters().values():
                return param.device
        return None

    def node(self, name: str) -> Node:
        """The node called ``name``."""
        return self.nodes[self.index[name]]

    @cached_property
    def entries_up_to(self) -> Mapping[str, int]:
        """Node name -> per-sample entries of it and every node before it (what a
        backward pass from it crosses at most), computed once per graph."""
        total, out = 0, {}
        for node in self.nodes:
            total += int(torch.Size(self.shapes[node.name]).numel())
            out[node.name] = total
        return out

    @cached_property
    def patch_cone(self) -> frozenset[str]:
        """Nodes from which a backward pass can run to the input in patches form
        (:mod:`~verifiNN.bounds.patches`): the node and every node it depends on
        have a patches rule, and the input is a ``(C, H, W)`` map."""
        if len(self.shapes[self.input_name]) != 3:
            return frozenset()
        cone = {self.input_name}
        for node in self.nodes:
            if patch_supported(node, self.shapes) and all(i in cone for i in node.inputs):
                cone.add(node.name)
        return frozenset(cone - {self.input_name})

    def reads_input_only(self, name: str) -> bool:
        """True when ``name`` is an affine op applied directly to the network input."""
        node = self.node(name)
        return node.op.affine and all(i == self.input_name for i in node.inputs)


def interval_step(node: Node, bounds: Mapping[str, Interval]) -> Interval:
    """Interval bound propagation through one node (Gowal et al. 2018)."""
    inputs = [bounds[name] for name in node.inputs]
    if node.op.affine:
        lower, upper = affine_rule(node.op).interval(
            node.op, [b.lower for b in inputs], [b.upper for b in inputs]
        )
    else:
        record = RELAXATIONS[type(node.op)]
        lower, upper = record.interval(node.op, *input_bounds(record, node, bounds))
    return Interval(lower, upper)


Coefficients = Tensor | Patches
"""A pass's linear function at one node: dense ``(B, m, *shape)`` or in patches form."""


def _accumulate(old: Coefficients | None, new: Coefficients) -> Coefficients:
    """``old + new``, in patches form when both are or the dense one converts cheaply."""
    if old is None:
        return new
    if isinstance(old, Patches) != isinstance(new, Patches):
        patches, dense = (old, new) if isinstance(old, Patches) else (new, old)
        converted = Patches.from_dense(dense)
        if converted is None:
            return patches.to_dense() + dense
        old, new = patches, converted
    return old + new  # type: ignore[operator]


def _dense_step(
    graph: BoundGraph, node: Node, lam: Tensor, relax: RelaxFn
) -> tuple[list[Tensor], Tensor | None]:
    """The backward step of dense coefficients through ``node``."""
    op = node.op
    if op.affine:
        if isinstance(op, Dense):
            return [dense_backward(op, lam)], lam @ op.bias
        shapes = [graph.shapes[name] for name in node.inputs]
        return affine_rule(op).backward(op, lam, shapes)
    rule = RELAXATIONS[type(op)]
    new, b = rule.backward(op, relax(node), lam)
    return (list(new) if rule.arity > 1 else [new]), b


def _step(
    graph: BoundGraph, node: Node, lam: Coefficients, relax: RelaxFn, patches: bool
) -> tuple[list[Coefficients], Tensor | None]:
    """The backward step through ``node``, in patches form where it can be and pays."""
    if patches and isinstance(lam, Tensor) and node.name in graph.patch_cone:
        lam = Patches.from_dense(lam) or lam
    if isinstance(lam, Patches):
        relaxation = None if node.op.affine else relax(node)
        shapes = [graph.shapes[name] for name in node.inputs]
        moved = patch_backward(node, lam, relaxation, shapes)
        if moved is not None:
            in_lams, bias = moved
            return [p if p.pays() else p.to_dense() for p in in_lams], bias
        lam = lam.to_dense()
    return _dense_step(graph, node, lam, relax)  # type: ignore[return-value]


def backward(
    graph: BoundGraph,
    seeds: Mapping[str, Coefficients],
    relax: RelaxFn,
    bias: Tensor | None = None,
    record: dict[str, Tensor] | None = None,
    substitute: Substitute | None = None,
    patches: bool = False,
) -> tuple[Coefficients | None, Tensor | None]:
    """Propagate linear functions back to the network input.

    Computes ``A, c`` with ``sum_s lam_s^T v_s >= A^T x + c`` for every input
    ``x`` of the region whose node values ``v`` lie within the bounds behind
    ``relax`` (the lower-bound direction; negate ``lam`` for upper bounds).

    Args:
        graph: the bound graph.
        seeds: node name -> ``(B or 1, m, *shape)`` coefficients (or
            :class:`~verifiNN.bounds.patches.Patches`).
        relax: the relaxation of each nonlinear node met on the way.
        bias: initial ``(B or 1, m)`` offset.
        record: when given, receives the coefficients ``lam`` of every node the
            pass goes through (dense; e.g. a ReLU's output coefficients, which
            branching heuristics score).
        substitute: ``(name, lam) -> (A, c)`` or ``None``: where it answers, the
            pass stops at that node (not a seed) and takes ``lam^T v >= A^T x + c``
            from linear bounds of ``v`` in the input (forward forms) instead.
        patches: carry the coefficients in patches form through the
            convolutional part of the graph (:attr:`BoundGraph.patch_cone`)
            wherever the windows stay small; ``A`` may then come back as
            :class:`~verifiNN.bounds.patches.Patches`.

    Returns:
        ``(A, c)``: ``A`` of shape ``(B or 1, m, *input_shape)`` (``None`` when
        the seeds do not depend on the input) and ``c`` (``None`` when zero).
    """
    lams: dict[str, Coefficients] = dict(seeds)
    dense_from: set[str] = set()  # reached dense from the cone: windows only grow backward
    last = max(graph.index.get(name, -1) for name in seeds)
    for node in reversed(graph.nodes[: last + 1]):
        lam = lams.pop(node.name, None)
        if lam is None:
            continue
        checkpoint()  # one node's step can take a second on large convolutions
        if record is not None:
            record[node.name] = lam.to_dense() if isinstance(lam, Patches) else lam
        found = None
        if substitute is not None and node.name not in seeds:
            dense = lam.to_dense() if isinstance(lam, Patches) else lam
            found = substitute(node.name, dense)
        if found is not None:
            A, b = found
            lams[graph.input_name] = _accumulate(lams.get(graph.input_name), A)
            bias = b if bias is None else bias + b
            continue
        in_lams, b = _step(graph, node, lam, relax, patches and node.name not in dense_from)
        if b is not None:
            bias = b if bias is None else bias + b
        for name, new in zip(node.inputs, in_lams):
            lams[name] = _accumulate(lams.get(name), new)
            if isinstance(new, Tensor) and node.name in graph.patch_cone:
                dense_from.add(name)  # dense although patches were tried at ``node``
    return lams.get(graph.input_name), bias
