"""Random networks of every family the fuzzer draws (:data:`KINDS`).

The older families are built here (tiny ReLU MLPs for the region oracle, MLPs
with the classic activations, small CNNs, DAGs with residual adds and concats,
and ``nn.Sequential`` modules imported by :func:`~verifiNN.io.torch.from_torch`);
the newer op families come from :mod:`verifiNN.fuzz.graphs`.
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import torch
from torch import nn

from verifiNN.fuzz.graphs import GRAPH_KINDS, Graph, dense
from verifiNN.io.torch import from_torch
from verifiNN.models.network import Network
from verifiNN.ops import (
    Add,
    AvgPool2d,
    Concat,
    Conv2d,
    ElementwiseAffine,
    Flatten,
    Identity,
    LeakyReLU,
    MaxPool2d,
    Mul,
    Op,
    Pad,
    ReLU,
    Reshape,
    Sigmoid,
    Slice,
    Tanh,
    as_tensor,
)

__all__ = ["KINDS", "random_network"]

KINDS = ("tiny", "mlp", "cnn", "dag", "torch", *GRAPH_KINDS)
"""Network families: tiny ReLU MLPs (region oracle), MLPs with the classic activations,
small CNNs (conv, pad, pooling, reshape), DAGs (residual add, concat, product),
``nn.Sequential`` modules imported by :func:`~verifiNN.io.torch.from_torch`, and the
families of :mod:`verifiNN.fuzz.graphs` (elementwise nonlinearities, attention,
tensor wiring, integer-valued ops)."""


def _activation(rng: np.random.Generator, relu_weight: float = 0.5) -> Op:
    if rng.random() < relu_weight:
        return ReLU()
    choice = int(rng.integers(4))
    if choice == 0:
        return LeakyReLU(float(rng.choice([0.01, 0.1, 0.5, 2.0])))
    return (Sigmoid(), Tanh(), Identity())[choice - 1]


def _tiny(rng: np.random.Generator) -> Network:
    n_in = int(rng.integers(1, 4))
    hidden = [int(h) for h in rng.integers(2, 4, size=int(rng.integers(1, 3)))]
    widths = [n_in, *hidden, int(rng.integers(1, 4))]
    layers = [dense(rng, a, b) for a, b in itertools.pairwise(widths)]
    return Network(
        [d.weight.numpy() for d in layers], [d.bias.numpy() for d in layers], activation="ReLU"
    )


def _mlp(rng: np.random.Generator) -> Network:
    n_in = int(rng.integers(1, 6))
    graph, previous, width = Graph(), "input", n_in
    relu_only = rng.random() < 0.4
    if rng.random() < 0.3:  # input normalisation
        scale = as_tensor(rng.uniform(0.5, 2.0, size=n_in) * rng.choice([-1, 1], size=n_in))
        previous = graph.add(ElementwiseAffine(scale, as_tensor(rng.normal(size=n_in))), previous)
    for _ in range(int(rng.integers(1, 3))):
        new = int(rng.integers(2, 6))
        previous = graph.add(dense(rng, width, new), previous)
        width = new
        previous = graph.add(ReLU() if relu_only else _activation(rng), previous)
    n_out = int(rng.integers(1, 4))
    graph.add(dense(rng, width, n_out), previous)
    return Network.from_graph((n_in,), graph.nodes, labeler=str(rng.choice(["argmax", "argmin"])))


def _pool_op(rng: np.random.Generator, shape: tuple[int, ...]) -> Op | None:
    kernel = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
    stride = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
    # padding below the kernel size: a window of padding alone would give -inf or 0/0
    pads = tuple(int(rng.integers(0, kernel[i % 2])) for i in range(4))
    if rng.random() < 0.5:
        op: Op = MaxPool2d(kernel, stride, pads)
    else:
        op = AvgPool2d(kernel, stride, pads, bool(rng.random() < 0.5))
    try:
        op.output_shape(shape)
    except ValueError:
        return None
    return op


def _cnn(rng: np.random.Generator) -> Network:
    c, h, w = int(rng.integers(1, 3)), int(rng.integers(2, 5)), int(rng.integers(2, 5))
    graph, previous, shape = Graph(), "input", (c, h, w)
    in_shape = shape
    if rng.random() < 0.3:
        pads = tuple(int(p) for p in rng.integers(0, 2, size=4))
        previous = graph.add(Pad(pads, float(rng.normal())), previous)
        shape = (c, h + pads[0] + pads[2], w + pads[1] + pads[3])
    for _ in range(int(rng.integers(1, 3))):
        groups = c if c > 1 and rng.random() < 0.3 else 1
        c_out = groups * int(rng.integers(1, 3))
        kernel = (int(rng.integers(1, min(3, shape[1]) + 1)), int(rng.integers(1, 3)))
        weight = rng.normal(
            0, 1 / np.sqrt(kernel[0] * kernel[1] * c), (c_out, c // groups, *kernel)
        )
        conv = Conv2d(
            as_tensor(weight),
            as_tensor(rng.normal(0.0, 0.5, size=c_out)),
            (int(rng.integers(1, 3)), int(rng.integers(1, 3))),
            tuple(int(p) for p in rng.integers(0, 2, size=4)),
            (1, 1),  # float64 dilated convolutions are ~50x slower in torch on CPU
            groups,
        )
        try:
            new_shape = conv.output_shape(shape)
        except ValueError:
            continue
        previous = graph.add(conv, previous)
        previous = graph.add(_activation(rng, 0.6), previous)
        shape, c = new_shape, c_out
        pool = _pool_op(rng, shape) if rng.random() < 0.5 else None
        if pool is not None:
            previous = graph.add(pool, previous)
            shape = pool.output_shape(shape)
    flat = int(np.prod(shape))
    flatten: Op = Flatten() if rng.random() < 0.7 else Reshape((flat,))
    previous = graph.add(flatten, previous)
    if rng.random() < 0.5:
        hidden = int(rng.integers(2, 6))
        previous = graph.add(dense(rng, flat, hidden), previous)
        previous = graph.add(_activation(rng), previous)
        flat = hidden
    graph.add(dense(rng, flat, int(rng.integers(2, 4))), previous)
    return Network.from_graph(in_shape, graph.nodes)


def _dag(rng: np.random.Generator) -> Network:
    n_in, width = int(rng.integers(1, 5)), int(rng.integers(2, 5))
    graph = Graph()
    first = graph.add(dense(rng, n_in, width), "input")
    act = graph.add(_activation(rng), first)
    second = graph.add(dense(rng, width, width), act)
    skip = first if rng.random() < 0.5 else graph.add(dense(rng, n_in, width), "input")
    summed = graph.add(Add(), second, skip)
    top = graph.add(_activation(rng), summed)
    if rng.random() < 0.3:
        top = graph.add(Mul(), top, act)  # a product of two nodes
    if rng.random() < 0.5:
        top = graph.add(Concat(0), top, act)
        width *= 2
    if rng.random() < 0.3:
        start, step = int(rng.integers(0, width - 1)), int(rng.integers(1, 3))
        top = graph.add(Slice(0, start, width, step), top)
        width = len(range(start, width, step))
    graph.add(dense(rng, width, int(rng.integers(1, 4))), top)
    return Network.from_graph((n_in,), graph.nodes)


def _torch_module(rng: np.random.Generator) -> tuple[nn.Sequential, tuple[int, ...]]:
    torch.manual_seed(int(rng.integers(2**31)))
    acts = [nn.ReLU, nn.Sigmoid, nn.Tanh, lambda: nn.LeakyReLU(0.2)]

    def act() -> nn.Module:
        return acts[int(rng.integers(len(acts)))]()

    if rng.random() < 0.5:
        n_in, hidden = int(rng.integers(1, 5)), int(rng.integers(2, 6))
        layers = [nn.Linear(n_in, hidden), nn.BatchNorm1d(hidden), act()]
        layers += [nn.Dropout(0.5), nn.Linear(hidden, int(rng.integers(1, 4)))]
        shape: tuple[int, ...] = (n_in,)
    else:
        c, h = int(rng.integers(1, 3)), int(rng.integers(3, 5))
        pool = nn.MaxPool2d(2, 1) if rng.random() < 0.5 else nn.AvgPool2d(2, 1, padding=1)
        layers = [nn.ZeroPad2d((1, 0, 0, 1)), nn.Conv2d(c, 2, 2, stride=1, padding=1)]
        layers += [nn.BatchNorm2d(2), act(), pool, nn.Flatten()]
        shape = (c, h, h)
        layers.append(nn.Linear(nn.Sequential(*layers).eval()(torch.zeros(1, *shape)).shape[1], 2))
    module = nn.Sequential(*layers).double()
    for layer in module:
        if isinstance(layer, (nn.BatchNorm1d, nn.BatchNorm2d)):
            n = layer.num_features
            layer.running_mean.copy_(torch.from_numpy(rng.normal(0.0, 0.5, n)))
            layer.running_var.copy_(torch.from_numpy(rng.uniform(0.3, 2.0, n)))
            layer.weight.data.copy_(torch.from_numpy(rng.normal(1.0, 0.5, n)))
    return module.eval(), shape


def random_network(rng: np.random.Generator, kind: str) -> Network:
    """A random network of one of the :data:`KINDS` (see there)."""
    if kind == "tiny":
        return _tiny(rng)
    if kind == "mlp":
        return _mlp(rng)
    if kind == "cnn":
        return _cnn(rng)
    if kind == "dag":
        return _dag(rng)
    if kind in GRAPH_KINDS:
        return GRAPH_KINDS[kind](rng)
    if kind == "torch":
        module, shape = _torch_module(rng)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            network = from_torch(module, shape)
        network.torch_module = module  # type: ignore[attr-defined]  # checked by check_case
        return network
    raise ValueError(f"unknown network kind {kind!r}: expected one of {KINDS}")
