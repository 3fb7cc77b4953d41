"""Graph simplification passes run by the model loaders.

Every pass is a pure function ``Network -> Network`` that returns a network
computing exactly the same function (up to floating-point rounding of the
folded parameters, done in the parameters' own dtype, float64 by default); it
returns its argument unchanged when it finds nothing to do. Bound propagation,
the LP and the MILP all rely on this, so each rewrite is local, needs the fused
node to be the only reader of the node it absorbs, and is tested on random
inputs.

The passes, in the order :func:`simplify` runs them:

1. :func:`remove_identities`: drop ``Identity`` ops, reshapes to the shape they
   already have and elementwise maps ``x * 1 + 0``.
2. :func:`merge_reshapes`: a reshape of a reshape is one reshape.
3. :func:`merge_affines`: two elementwise affine maps in a row are one.
4. :func:`fold_affine_into_previous`: ``Dense``/``Conv2d`` followed by an
   elementwise affine map (bias add, batch norm, output scaling) becomes one
   layer (for ``Conv2d`` when the map is per channel).
5. :func:`fold_affine_into_next`: an elementwise affine map (input
   normalisation ``(x - mean) / std``) followed, possibly through reshapes, by a
   ``Dense`` layer, or directly by a ``Conv2d`` (per-channel map; a shift only
   when the convolution does not pad), is folded into that layer.
6. :func:`merge_dense`: ``Dense`` followed by ``Dense`` becomes one ``Dense``
   when the product is no larger than the two factors.

Nodes no longer read by anything are pruned after every rewrite.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence

import torch
from torch import Tensor

from verifiNN.models.network import Network, Node
from verifiNN.ops import Conv2d, Dense, ElementwiseAffine, Flatten, Identity, Reshape, Shape

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_PASSES",
    "Pass",
    "fold_affine_into_next",
    "fold_affine_into_previous",
    "merge_affines",
    "merge_dense",
    "merge_reshapes",
    "prune_dead_nodes",
    "remove_identities",
    "simplify",
]

Pass = Callable[[Network], Network]

_RESHAPES = (Flatten, Reshape)


# --------------------------------------------------------------------- helpers
def _rebuild(network: Network, nodes: Iterable[Node], output: str) -> Network:
    """A network like ``network`` with other nodes and output, dead nodes pruned."""
    nodes = _live(list(nodes), output)
    return Network.from_graph(
        network.input_shape, nodes, output, network.labeler, network.input_name, network.origin
    )


def _live(nodes: list[Node], output: str) -> list[Node]:
    needed = {output}
    keep = []
    for node in reversed(nodes):
        if node.name in needed:
            keep.append(node)
            needed.update(node.inputs)
    return keep[::-1]


def _readers(network: Network) -> dict[str, int]:
    """How many times each value is read (the network output counts as a read)."""
    counts: dict[str, int] = {network.output_name: 1}
    for node in network.nodes:
        for name in node.inputs:
            counts[name] = counts.get(name, 0) + 1
    return counts


def _producers(network: Network) -> dict[str, Node]:
    return {node.name: node for node in network.nodes}


def _rename_inputs(nodes: Sequence[Node], old: str, new: str) -> list[Node]:
    return [
        Node(n.name, n.op, tuple(new if i == old else i for i in n.inputs))
        if old in n.inputs
        else n
        for n in nodes
    ]


def _replace(nodes: Sequence[Node], name: str, node: Node | None) -> list[Node]:
    """Put ``node`` where the node called ``name`` was (drop it when ``node`` is None)."""
    out: list[Node] = []
    for n in nodes:
        if n.name != name:
            out.append(n)
        elif node is not None:
            out.append(node)
    return out


def _full(param: Tensor, shape: Shape) -> Tensor:
    """``param`` broadcast to ``shape`` (a contiguous copy)."""
    return param.expand(torch.broadcast_shapes(tuple(param.shape), shape)).reshape(shape).clone()


def _per_channel(param: Tensor, shape: Shape) -> Tensor | None:
    """The ``(C,)`` vector of a parameter constant over the spatial dims of ``(C, H, W)``."""
    if param.dim() > len(shape):
        return None
    aligned = param.reshape((1,) * (len(shape) - param.dim()) + tuple(param.shape))
    if any(d != 1 for d in aligned.shape[1:]):
        return None
    return aligned.reshape(-1).expand(shape[0]).clone()


def _is_trivial_affine(op: ElementwiseAffine) -> bool:
    return bool(torch.all(op.scale == 1)) and bool(torch.all(op.shift == 0))


# ---------------------------------------------------------------------- passes
def _fuse_pairs(network: Network, op_type: type, fuse: Callable[..., object]) -> Network:
    """Replace ``second(first(x))`` by ``fuse(first, second)(x)`` for ops of ``op_type``.

    Applies when ``first`` is read only by ``second``; ``fuse`` may return
    ``None`` to leave a pair alone.
    """
    readers = _readers(network)
    producers = _producers(network)
    nodes = list(network.nodes)
    absorbed: set[str] = set()
    for node in network.nodes:
        first = producers.get(node.inputs[0])
        if (
            not isinstance(node.op, op_type)
            or first is None
            or not isinstance(first.op, op_type)
            or readers[first.name] != 1
            or first.name in absorbed
        ):
            continue
        fused = fuse(first.op, node.op)
        if fused is None:
            continue
        nodes = _replace(nodes, node.name, Node(node.name, fused, first.inputs))
        absorbed.add(node.name)
    if not absorbed:
        return network
    return _rebuild(network, nodes, network.output_name)


def prune_dead_nodes(network: Network) -> Network:
    """Drop nodes the output does not depend on.

    Args:
        network: the network to simplify.

    Returns:
        The network without dead nodes (``network`` itself when there are none).
    """
    live = _live(list(network.nodes), network.output_name)
    if len(live) == len(network.nodes):
        return network
    return _rebuild(network, live, network.output_name)


def remove_identities(network: Network) -> Network:
    """Bypass nodes that compute their input unchanged.

    These are ``Identity`` ops, ``Flatten``/``Reshape`` to the shape the value
    already has, and ``ElementwiseAffine`` with scale 1 and shift 0 that keep
    the shape.

    Args:
        network: the network to simplify.

    Returns:
        An equivalent network without such nodes.
    """
    alias: dict[str, str] = {}  # removed node -> the value it passed through
    kept: list[Node] = []
    for node in network.nodes:
        op = node.op
        inputs = tuple(alias.get(name, name) for name in node.inputs)
        same_shape = network.shapes[node.name] == network.shapes[node.inputs[0]]
        trivial = isinstance(op, Identity)
        trivial |= isinstance(op, _RESHAPES) and same_shape
        trivial |= isinstance(op, ElementwiseAffine) and same_shape and _is_trivial_affine(op)
        if trivial:
            alias[node.name] = inputs[0]
        else:
            kept.append(Node(node.name, op, inputs) if inputs != node.inputs else node)
    if not alias:
        return network
    output = alias.get(network.output_name, network.output_name)
    return _rebuild(network, kept, output)


def merge_reshapes(network: Network) -> Network:
    """Replace a reshape of a reshape by one reshape of the original value.

    Reshapes (and flattens) only relabel the C-order data, so the composition
    is the last reshape alone.

    Args:
        network: the network to simplify.

    Returns:
        An equivalent network.
    """
    producers = _producers(network)
    nodes = list(network.nodes)
    changed = False
    for node in network.nodes:
        first = producers.get(node.inputs[0]) if isinstance(node.op, _RESHAPES) else None
        if first is None or not isinstance(first.op, _RESHAPES):
            continue
        # follow the chain back to the first value that is not a reshape
        while first.inputs[0] in producers and isinstance(producers[first.inputs[0]].op, _RESHAPES):
            first = producers[first.inputs[0]]
        nodes = _replace(nodes, node.name, Node(node.name, node.op, first.inputs))
        changed = True
    return _rebuild(network, nodes, network.output_name) if changed else network


def merge_affines(network: Network) -> Network:
    """Merge ``y = (x * s1 + t1) * s2 + t2`` into ``y = x * (s1 s2) + (t1 s2 + t2)``.

    Applies when the first map is read only by the second.

    Args:
        network: the network to simplify.

    Returns:
        An equivalent network.
    """

    def fuse(first: ElementwiseAffine, second: ElementwiseAffine) -> ElementwiseAffine:
        s1, t1, s2, t2 = first.scale, first.shift, second.scale, second.shift
        return ElementwiseAffine(s1 * s2, t1 * s2 + t2)

    return _fuse_pairs(network, ElementwiseAffine, fuse)


def fold_affine_into_previous(network: Network) -> Network:
    """Fold an elementwise affine map into the ``Dense`` or ``Conv2d`` that feeds it.

    ``s * (W x + b) + t = (s W) x + (s b + t)``; for a convolution ``s`` and
    ``t`` must be constant over the spatial dimensions (per output channel).
    Applies when the layer is read only by the affine map.

    Args:
        network: the network to simplify.

    Returns:
        An equivalent network.
    """
    readers = _readers(network)
    producers = _producers(network)
    nodes = list(network.nodes)
    absorbed: set[str] = set()
    for node in network.nodes:
        layer = producers.get(node.inputs[0])
        if (
            not isinstance(node.op, ElementwiseAffine)
            or layer is None
            or readers[layer.name] != 1
            or layer.name in absorbed
        ):
            continue
        shape = network.shapes[layer.name]
        fused = _fold_after(layer.op, node.op, shape)
        if fused is None:
            continue
        nodes = _replace(nodes, node.name, Node(node.name, fused, layer.inputs))
        absorbed.add(node.name)
    if not absorbed:
        return network
    return _rebuild(network, nodes, network.output_name)


def _fold_after(layer: object, affine: ElementwiseAffine, shape: Shape) -> Dense | Conv2d | None:
    if isinstance(layer, Dense):
        s, t = _full(affine.scale, shape), _full(affine.shift, shape)
        return Dense(s[:, None] * layer.weight, s * layer.bias + t)
    if isinstance(layer, Conv2d):
        s, t = _per_channel(affine.scale, shape), _per_channel(affine.shift, shape)
        if s is None or t is None:
            return None
        return Conv2d(
            layer.weight * s[:, None, None, None],
            layer.bias * s + t,
            layer.stride,
            layer.padding,
            layer.dilation,
            layer.groups,
        )
    return None


def fold_affine_into_next(network: Network) -> Network:
    """Fold an elementwise affine map into the layer that reads it.

    ``W (s x + t) + b = (W diag(s)) x + (W t + b)``. The map may reach a
    ``Dense`` layer through reshapes (they only relabel the data). A
    ``Conv2d`` must read the map directly, the map must be per input channel,
    and a non-zero shift needs a convolution without padding (padded cells are
    zero after the map, not ``t``). The map, and every reshape on the way, must
    have no other reader.

    Args:
        network: the network to simplify.

    Returns:
        An equivalent network.
    """
    readers = _readers(network)
    consumers: dict[str, Node] = {}
    for node in network.nodes:
        for name in node.inputs:
            consumers[name] = node
    nodes = list(network.nodes)
    used: set[str] = set()
    for node in network.nodes:
        if not isinstance(node.op, ElementwiseAffine) or readers[node.name] != 1:
            continue
        chain = [consumers.get(node.name)]
        while (
            chain[-1] is not None
            and isinstance(chain[-1].op, _RESHAPES)
            and readers[chain[-1].name] == 1
        ):
            chain.append(consumers.get(chain[-1].name))
        layer = chain[-1]
        if layer is None or {n.name for n in chain} & used or len(layer.inputs) != 1:
            continue
        if len(chain) > 1 and not isinstance(layer.op, Dense):
            continue
        fused = _fold_before(node.op, layer.op, network.shapes[node.name])
        if fused is None:
            continue
        used.update(n.name for n in chain)
        nodes = _replace(nodes, layer.name, Node(layer.name, fused, layer.inputs))
        nodes = _rename_inputs(nodes, node.name, node.inputs[0])
    if not used:
        return network
    return _rebuild(network, nodes, network.output_name)


def _fold_before(affine: ElementwiseAffine, layer: object, shape: Shape) -> Dense | Conv2d | None:
    if isinstance(layer, Dense):
        s = _full(affine.scale, shape).reshape(-1)
        t = _full(affine.shift, shape).reshape(-1)
        return Dense(layer.weight * s[None, :], layer.bias + layer.weight @ t)
    if isinstance(layer, Conv2d):
        s, t = _per_channel(affine.scale, shape), _per_channel(affine.shift, shape)
        if s is None or t is None or (any(layer.padding) and bool(torch.any(t != 0))):
            return None
        c_out, c_group = layer.weight.shape[:2]
        # input channel read by weight[o, j]: group(o) * c_group + j
        group = torch.arange(c_out) // (c_out // layer.groups)
        channel = group[:, None] * c_group + torch.arange(c_group)[None, :]
        weight = layer.weight * s[channel][:, :, None, None]
        bias = layer.bias + (layer.weight * t[channel][:, :, None, None]).sum(dim=(1, 2, 3))
        return Conv2d(weight, bias, layer.stride, layer.padding, layer.dilation, layer.groups)
    return None


def merge_dense(network: Network) -> Network:
    """Merge ``W2 (W1 x + b1) + b2`` into one ``Dense`` layer.

    Applies when the first layer is read only by the second and the product
    ``W2 W1`` has no more entries than ``W1`` and ``W2`` together (so a
    bottleneck is never expanded).

    Args:
        network: the network to simplify.

    Returns:
        An equivalent network.
    """

    def fuse(first: Dense, second: Dense) -> Dense | None:
        w1, b1, w2, b2 = first.weight, first.bias, second.weight, second.bias
        if w2.shape[0] * w1.shape[1] > w1.numel() + w2.numel():
            return None
        return Dense(w2 @ w1, w2 @ b1 + b2)

    return _fuse_pairs(network, Dense, fuse)


DEFAULT_PASSES: tuple[Pass, ...] = (
    prune_dead_nodes,
    remove_identities,
    merge_reshapes,
    merge_affines,
    fold_affine_into_previous,
    fold_affine_into_next,
    merge_dense,
)
"""The passes :func:`simplify` runs, in order."""


def simplify(
    network: Network, passes: Sequence[Pass] = DEFAULT_PASSES, max_rounds: int = 20
) -> Network:
    """Run ``passes`` in order, repeatedly, until none changes the network.

    Args:
        network: the network to simplify.
        passes: the passes to run (default :data:`DEFAULT_PASSES`).
        max_rounds: the most rounds over all passes.

    Returns:
        An equivalent, simplified network (``network`` itself when nothing applies).
    """
    for _ in range(max_rounds):
        before = network
        for simplify_pass in passes:
            network = simplify_pass(network)
        if network is before:
            break
    logger.debug("simplified network: %r", network)
    return network
