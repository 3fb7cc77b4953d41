"""Random IR graphs of the newer op families, built node by node for the fuzzer.

Each builder takes a :class:`numpy.random.Generator` and returns a small
:class:`~verifiNN.models.network.Network` whose values stay finite and
meaningful on the fuzzer's input regions (centres in ``[-0.9, 0.9]``, radii up
to about the input size):

* ``elementwise`` (:func:`elementwise_net`): MLPs whose hidden layers split
  into slices, each through its own small nonlinear *unit*: Exp, Log, Sqrt,
  Reciprocal and Pow fed by data kept inside their domains (softplus
  ``log(1 + e^z)`` and its sharp form ``log(1 + e^(k z)) / k``, whose
  exponential spans many decades, ``log(c + |z|)``, ``sqrt(relu(z))`` on the
  domain's edge, ``1 / (c + |z|)``, ``-1 / (c + e^z)``, fractional and
  negative powers of positive data, integer powers of signed data), Sin and
  Cos over several periods, Erf and GELU, Sign, Abs, Clip (one- and
  two-sided, and the degenerate ``low > high``), Max and Min of two
  activations of the same slice, and products of two activations (SiLU,
  ``tanh * sin``, ``z * z``);
* ``attention`` (:func:`attention_net`): one self-attention block on a
  ``(T, D)`` input (Vaswani et al. 2017, "Attention Is All You Need"):
  optional layer normalisation (Ba et al. 2016) by ReduceSum, Broadcast,
  ``Pow(2)`` and ``Pow(-1/2)`` of the variance plus epsilon; query, key and
  value projections by ConstMatMul; scores as a Mul of broadcast queries and
  keys summed by ReduceSum; a softmax as Exp, ReduceSum, Reciprocal,
  Broadcast and Mul (or as ``exp(s - log sum exp s)``); a residual Add and a
  GELU (Erf) or ReLU head;
* ``tensor`` (:func:`tensor_net`): the shape and wiring ops on ``(C, H, W)``
  data: ConvTranspose2d (strides, crops, output padding, groups), Transpose,
  Gather (repeats and reversals), ConstMatMul from either side with broadcast
  weights and biases, mean removal by ReduceSum and Broadcast,
  ConcatWithConstants, Slice, Pad and pooling;
* ``integer`` (:func:`integer_net`): the integer-valued constructions of
  :mod:`verifiNN.io.onnx.integer`: quantisation by Trunc, the one-hot ArgMax
  of Steps (strict against earlier classes, not strict against later ones),
  ``Equal`` of integers as ``relu(1 - |a - b|)``, Sign and Clip of integers,
  and a ``Where`` (gate) as the product of a one-hot vector and data. Ties
  happen only on purpose: between truncated (integer) values, where they are
  frequent and exact.

:class:`Graph` and :func:`dense` are shared with the older kinds of
:mod:`verifiNN.fuzz.networks`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import numpy as np

from verifiNN.models.network import INPUT, Network, Node
from verifiNN.ops import (
    Abs,
    Add,
    AvgPool2d,
    Broadcast,
    Clip,
    Concat,
    ConcatWithConstants,
    ConstMatMul,
    ConvTranspose2d,
    Cos,
    Dense,
    ElementwiseAffine,
    Erf,
    Exp,
    Flatten,
    Gather,
    Identity,
    LeakyReLU,
    Log,
    Max,
    MaxPool2d,
    Min,
    Mul,
    Op,
    Pad,
    Pow,
    Reciprocal,
    ReduceSum,
    ReLU,
    Reshape,
    Shape,
    Sigmoid,
    Sign,
    Sin,
    Slice,
    Sqrt,
    Step,
    Tanh,
    Transpose,
    Trunc,
    as_tensor,
)

__all__ = [
    "GRAPH_KINDS",
    "Graph",
    "attention_net",
    "dense",
    "elementwise_net",
    "integer_net",
    "tensor_net",
]

Rng = np.random.Generator


class Graph:
    """Names nodes while a random graph is built, and tracks their shapes.

    Args:
        input_shape: the per-sample input shape; without it shapes are not tracked.
    """

    def __init__(self, input_shape: Shape | None = None) -> None:
        self.nodes: list[Node] = []
        self.shapes: dict[str, Shape] = {} if input_shape is None else {INPUT: input_shape}

    def add(self, op: Op, *inputs: str) -> str:
        """Append ``op(*inputs)``; returns the new node's name.

        Raises:
            ValueError: (with tracked shapes) the inputs' shapes do not fit ``op``.
        """
        name = f"n{len(self.nodes)}_{op.kind.lower()}"
        if self.shapes:
            self.shapes[name] = tuple(op.output_shape(*(self.shapes[i] for i in inputs)))
        self.nodes.append(Node(name, op, inputs))
        return name

    def shape(self, name: str) -> Shape:
        """The tracked per-sample shape of a node."""
        return self.shapes[name]

    def affine(self, x: str, scale: object = 1.0, shift: object = 0.0) -> str:
        """``x * scale + shift`` (scalars or arrays broadcasting to ``x``)."""
        return self.add(ElementwiseAffine(as_tensor(scale), as_tensor(shift)), x)

    def network(self, labeler: str = "argmax") -> Network:
        """The network of the nodes so far (output: the last node)."""
        return Network.from_graph(self.shapes[INPUT], self.nodes, labeler=labeler)


def dense(rng: Rng, n_in: int, n_out: int, gain: float = 1.0) -> Dense:
    """A dense layer with ``N(0, gain^2 / n_in)`` weights and ``N(0, 1/4)`` biases."""
    weight = rng.normal(0.0, gain / np.sqrt(n_in), size=(n_out, n_in))
    return Dense(as_tensor(weight), as_tensor(rng.normal(0.0, 0.5, size=n_out)))


def _pick(rng: Rng, options: tuple) -> object:
    return options[int(rng.integers(len(options)))]


def _smooth(rng: Rng) -> Op:
    return _pick(rng, (ReLU(), Tanh(), Sigmoid(), Sin(), Identity(), LeakyReLU(0.1), Erf()))


# ------------------------------------------------------------ elementwise units
# A unit maps a node of shape (w,) to a node of the same shape; each keeps the
# domain-restricted ops inside their domains on every input.
Unit = Callable[[Graph, Rng, str], str]


def _exp_unit(g: Graph, rng: Rng, x: str) -> str:
    return g.add(Exp(), g.affine(x, rng.uniform(0.3, 1.0), rng.uniform(-1.0, 0.5)))


def _log_unit(g: Graph, rng: Rng, x: str) -> str:
    style = int(rng.integers(4))
    if style == 0:  # softplus log(1 + e^z)
        inner = g.affine(g.add(Exp(), x), 1.0, 1.0)
    elif style == 3:  # a sharp softplus log(1 + e^(k z)) / k: e^(k z) spans many decades
        k = float(rng.choice([4.0, 8.0]))
        inner = g.affine(g.add(Exp(), g.affine(x, k)), 1.0, 1.0)
        return g.affine(g.add(Log(), inner), 1.0 / k)
    elif style == 1:  # log(c + |z|), c small: steep near the domain's edge
        inner = g.affine(g.add(Abs(), x), 1.0, rng.choice([0.05, 0.3, 1.0]))
    else:  # log-sigmoid
        inner = g.add(Sigmoid(), x)
    return g.add(Log(), inner)


def _sqrt_unit(g: Graph, rng: Rng, x: str) -> str:
    if rng.random() < 0.5:  # sqrt(relu(z)): the domain's edge 0 is reached
        return g.add(Sqrt(), g.add(ReLU(), x))
    square = g.add(Pow(2.0), x)  # a smooth |z|
    return g.add(Sqrt(), g.affine(square, 1.0, rng.choice([1e-3, 0.1, 1.0])))


def _reciprocal_unit(g: Graph, rng: Rng, x: str) -> str:
    c = float(rng.choice([0.1, 0.5, 1.0]))
    if rng.random() < 0.5:  # c / (c + |z|) in (0, 1]
        inner = g.affine(g.add(Abs(), x), 1.0, c)
    else:  # -c / (c + e^z): the negative branch of 1/x
        inner = g.affine(g.add(Exp(), g.affine(x, 0.5)), -1.0, -c)
    return g.affine(g.add(Reciprocal(), inner), c)


def _pow_unit(g: Graph, rng: Rng, x: str) -> str:
    style = int(rng.integers(4))
    if style == 0:  # integer powers of signed data (0 and 1 are exact)
        p = float(rng.choice([2.0, 3.0, 4.0, 0.0, 1.0], p=[0.3, 0.3, 0.2, 0.1, 0.1]))
        return g.add(Pow(p), g.affine(x, 0.6))
    if style == 1:  # fractional powers of positive data, and of data reaching 0
        base = g.affine(g.add(Exp(), g.affine(x, 0.5)), 1.0, 0.1)
        if rng.random() < 0.3:
            base = g.add(ReLU(), x)
        return g.add(Pow(float(rng.choice([0.5, 1.5, 2.5, 0.3]))), base)
    if style == 2:  # negative powers of positive data: x^-1/2 as in layer normalisation
        base = g.affine(g.add(Abs(), x), 1.0, float(rng.choice([0.2, 1.0])))
        return g.add(Pow(float(rng.choice([-0.5, -1.5, -1.0, -2.0]))), base)
    # negative integer powers of negative data
    base = g.affine(g.add(Exp(), g.affine(x, 0.5)), -1.0, -0.5)
    return g.add(Pow(float(rng.choice([-1.0, -2.0, -3.0]))), base)


def _periodic_unit(g: Graph, rng: Rng, x: str) -> str:
    op: Op = Sin() if rng.random() < 0.5 else Cos()
    return g.add(op, g.affine(x, rng.uniform(0.5, 3.0), rng.uniform(-np.pi, np.pi)))


def _erf_unit(g: Graph, rng: Rng, x: str) -> str:
    if rng.random() < 0.5:
        return g.add(Erf(), g.affine(x, rng.uniform(0.5, 2.0)))
    # GELU: x * (1 + erf(x / sqrt 2)) / 2, a product of two nodes of x
    half = g.affine(g.add(Erf(), g.affine(x, 1 / math.sqrt(2))), 0.5, 0.5)
    return g.add(Mul(), x, half)


def _piecewise_unit(g: Graph, rng: Rng, x: str) -> str:
    style = int(rng.integers(3))
    if style == 0:
        return g.add(Sign(), x)
    if style == 1:
        return g.add(Abs(), x)
    low, high = sorted(rng.normal(0.0, 0.7, size=2))
    choice = rng.random()
    if choice < 0.2:
        low = -math.inf
    elif choice < 0.4:
        high = math.inf
    elif choice < 0.5:
        low, high = high, low  # low > high: every output is high
    return g.add(Clip(float(low), float(high)), x)


def _extremum_unit(g: Graph, rng: Rng, x: str) -> str:
    a = g.add(_smooth(rng), x)
    b = g.add(_smooth(rng), g.affine(x, rng.choice([-1.0, 0.5, 2.0]), rng.normal(0.0, 0.5)))
    return g.add(Max() if rng.random() < 0.5 else Min(), a, b)


def _product_unit(g: Graph, rng: Rng, x: str) -> str:
    style = int(rng.integers(3))
    if style == 0:  # SiLU
        return g.add(Mul(), x, g.add(Sigmoid(), x))
    if style == 1:  # a square as a product of a node with itself
        return g.add(Mul(), x, x)
    a, b = g.add(_smooth(rng), x), g.add(_smooth(rng), g.affine(x, rng.uniform(-2.0, 2.0)))
    return g.add(Mul(), a, b)


def _classic_unit(g: Graph, rng: Rng, x: str) -> str:
    return g.add(_smooth(rng), x)


UNITS: tuple[Unit, ...] = (
    _exp_unit,
    _log_unit,
    _sqrt_unit,
    _reciprocal_unit,
    _pow_unit,
    _periodic_unit,
    _erf_unit,
    _piecewise_unit,
    _extremum_unit,
    _product_unit,
    _classic_unit,
)


def elementwise_net(rng: Rng) -> Network:
    """An MLP whose hidden layers apply several elementwise units to slices (module docstring)."""
    n_in = int(rng.integers(1, 5))
    g = Graph((n_in,))
    previous, width = INPUT, n_in
    for _ in range(int(rng.integers(1, 3))):
        widths = [int(w) for w in rng.integers(1, 3, size=int(rng.integers(2, 5)))]
        z = g.add(dense(rng, width, sum(widths)), previous)
        parts, offset = [], 0
        for w in widths:
            piece = g.add(Slice(0, offset, offset + w), z)
            parts.append(UNITS[int(rng.integers(len(UNITS)))](g, rng, piece))
            offset += w
        previous, width = g.add(Concat(0), *parts), sum(widths)
    g.add(dense(rng, width, int(rng.integers(1, 4))), previous)
    return g.network(str(rng.choice(["argmax", "argmin"])))


# ------------------------------------------------------------------ attention
def _matmul(rng: Rng, g: Graph, x: str, n_out: int) -> str:
    """``x @ W + b`` on a ``(T, D)`` node (a token-wise projection)."""
    d = g.shape(x)[-1]
    weight = rng.normal(0.0, 1.0 / np.sqrt(d), size=(d, n_out))
    return g.add(ConstMatMul(as_tensor(weight), as_tensor(rng.normal(0.0, 0.3, size=n_out))), x)


def _subtract(g: Graph, x: str, y: str) -> str:
    return g.add(Add(), x, g.affine(y, -1.0))


def _layer_norm(rng: Rng, g: Graph, x: str) -> str:
    """``(x - mean) * (var + eps)^(-1/2) * gamma + beta`` over the last axis."""
    t, d = g.shape(x)
    mean = g.add(Broadcast((t, d)), g.add(ReduceSum((1,), 1.0 / d), x))
    centred = _subtract(g, x, mean)
    variance = g.add(ReduceSum((1,), 1.0 / d), g.add(Pow(2.0), centred))
    eps = float(rng.choice([1e-2, 0.1, 1.0]))
    inverse = g.add(Pow(-0.5), g.affine(variance, 1.0, eps))
    normal = g.add(Mul(), centred, g.add(Broadcast((t, d)), inverse))
    return g.affine(normal, rng.normal(1.0, 0.3, size=d), rng.normal(0.0, 0.3, size=d))


def _softmax(rng: Rng, g: Graph, scores: str, axis: int) -> str:
    """Softmax of a node along ``axis`` (several equivalent graphs)."""
    shape = g.shape(scores)
    if rng.random() < 0.3:  # exp(s - log sum exp s)
        total = g.add(ReduceSum((axis,)), g.add(Exp(), scores))
        log_total = g.add(Broadcast(shape), g.add(Log(), total))
        return g.add(Exp(), _subtract(g, scores, log_total))
    exps = g.add(Exp(), scores)
    total = g.add(ReduceSum((axis,)), exps)
    return g.add(Mul(), exps, g.add(Broadcast(shape), g.add(Reciprocal(), total)))


def attention_net(rng: Rng) -> Network:
    """One self-attention block on a ``(T, D)`` input (module docstring)."""
    t, d = int(rng.integers(2, 4)), int(rng.integers(1, 4))
    g = Graph((t, d))
    x = _layer_norm(rng, g, INPUT) if rng.random() < 0.5 else INPUT
    k = int(rng.integers(1, 3))
    query, key, value = (_matmul(rng, g, x, k) for _ in range(3))
    queries = g.add(Broadcast((t, t, k)), g.add(Reshape((t, 1, k)), query))
    keys = g.add(Broadcast((t, t, k)), g.add(Reshape((1, t, k)), key))
    scores = g.add(ReduceSum((2,), 1.0 / math.sqrt(k)), g.add(Mul(), queries, keys))
    weights = _softmax(rng, g, scores, 1)  # (t, t, 1): query i's weights over keys j
    values = g.add(Broadcast((t, t, k)), g.add(Reshape((1, t, k)), value))
    mixed = g.add(Mul(), g.add(Broadcast((t, t, k)), weights), values)
    attended = g.add(Reshape((t, k)), g.add(ReduceSum((1,)), mixed))
    out = _matmul(rng, g, attended, d)
    if rng.random() < 0.7:
        out = g.add(Add(), out, x)  # residual
    if rng.random() < 0.5:
        out = g.add(Transpose((1, 0)), out)
    head = g.add(_smooth(rng), _matmul(rng, g, out, int(rng.integers(1, 3))))
    flat = g.add(Flatten(), head)
    g.add(dense(rng, g.shape(flat)[0], int(rng.integers(1, 4))), flat)
    return g.network()


# ------------------------------------------------------------------ tensors
def _conv_transpose(rng: Rng, g: Graph, x: str) -> str:
    c = g.shape(x)[0]
    for _ in range(10):
        groups = c if c > 1 and rng.random() < 0.4 else 1
        c_out = groups * int(rng.integers(1, 3))
        kernel = (int(rng.integers(1, 4)), int(rng.integers(1, 3)))
        stride = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
        scale = 1.0 / np.sqrt(c * kernel[0] * kernel[1])
        op = ConvTranspose2d(
            as_tensor(rng.normal(0.0, scale, (c, c_out // groups, *kernel))),
            as_tensor(rng.normal(0.0, 0.3, size=c_out)),
            stride,
            tuple(int(p) for p in rng.integers(0, 2, size=4)),
            tuple(int(rng.integers(0, s)) for s in stride),
            (int(rng.integers(1, 3)), 1),
            groups,
        )
        try:
            return g.add(op, x)
        except ValueError:
            continue
    return x


def _shape_op(rng: Rng, g: Graph, x: str) -> str:
    """One random rearrangement or affine tensor op on a rank-3 node."""
    shape = g.shape(x)
    axis = int(rng.integers(len(shape)))
    style = int(rng.integers(6))
    if style == 0:
        return g.add(Transpose(tuple(int(p) for p in rng.permutation(len(shape)))), x)
    if style == 1:  # repeats, reversals and subsets
        indices = rng.integers(0, shape[axis], size=int(rng.integers(1, shape[axis] + 2)))
        if rng.random() < 0.3:
            indices = np.arange(shape[axis])[::-1]
        return g.add(Gather(axis, tuple(int(i) for i in indices)), x)
    if style == 2:  # mean removal over some axes
        axes = tuple(a for a in range(len(shape)) if rng.random() < 0.5) or (axis,)
        n = math.prod(shape[a] for a in axes)
        mean = g.add(Broadcast(shape), g.add(ReduceSum(axes, -1.0 / n), x))
        return g.add(Add(), x, mean)
    if style == 3:  # constant blocks before and/or after
        before, after = int(rng.integers(0, 2)), int(rng.integers(1, 3))
        fixed = [*shape[:axis], before + after, *shape[axis + 1 :]]
        pieces = (*((before,) if before else ()), -1, after)
        block = as_tensor(rng.normal(0.0, 1.0, size=fixed))
        return g.add(ConcatWithConstants(axis, block, pieces), x)
    if style == 4:
        return _const_matmul(rng, g, x)
    start = int(rng.integers(0, shape[axis]))
    return g.add(Slice(axis, start, shape[axis], int(rng.integers(1, 3))), x)


def _const_matmul(rng: Rng, g: Graph, x: str) -> str:
    """``W @ x`` or ``x @ W`` with a rank-2 or broadcast rank-3 ``W`` and a broadcast bias."""
    shape = g.shape(x)
    left = bool(rng.random() < 0.5)
    inner, n = shape[-2] if left else shape[-1], int(rng.integers(1, 4))
    core = (n, inner) if left else (inner, n)
    lead = (shape[0],) if rng.random() < 0.4 else ()
    weight = rng.normal(0.0, 1.0 / np.sqrt(inner), size=(*lead, *core))
    out = (*shape[:-2], n, shape[-1]) if left else (*shape[:-1], n)
    bias_shape = _pick(rng, ((), (out[-1],), (out[-2], 1), out))
    bias = rng.normal(0.0, 0.3, size=bias_shape)
    return g.add(ConstMatMul(as_tensor(weight), as_tensor(bias), left), x)


def _tensor_pool(rng: Rng, g: Graph, x: str) -> str:
    shape = g.shape(x)
    if min(shape[1:]) < 2:
        return x
    kernel = (2, int(rng.integers(1, 3)))
    op: Op = MaxPool2d(kernel, (1, 1), (0, 0, 0, 0))
    if rng.random() < 0.5:
        op = AvgPool2d(kernel, (1, 1), (0, 0, 0, 0), True)
    return g.add(op, x)


def tensor_net(rng: Rng) -> Network:
    """Shape and wiring ops on ``(C, H, W)`` data (module docstring)."""
    shape = (int(rng.integers(1, 3)), int(rng.integers(1, 4)), int(rng.integers(2, 4)))
    g = Graph(shape)
    x = INPUT
    if rng.random() < 0.3:
        x = g.add(Pad(tuple(int(p) for p in rng.integers(0, 2, size=4)), rng.normal()), x)
    x = g.add(_smooth(rng), _conv_transpose(rng, g, x))
    for _ in range(int(rng.integers(2, 5))):
        x = _shape_op(rng, g, x)
        if math.prod(g.shape(x)) > 60:  # keep the nets small
            x = g.add(Slice(0, 0, 1), x) if g.shape(x)[0] > 1 else x
        if rng.random() < 0.4:
            x = g.add(_smooth(rng), x)
    if rng.random() < 0.3:
        x = _tensor_pool(rng, g, x)
    flat = g.add(Flatten(), x)
    g.add(dense(rng, g.shape(flat)[0], int(rng.integers(1, 4))), flat)
    return g.network()


# ------------------------------------------------------------------ integers
def _one_hot_of_max(g: Graph, x: str) -> str:
    """The one-hot ArgMax of a flat node (ties to the first index, as ONNX's ArgMax)."""
    k = g.shape(x)[0]
    if k == 1:
        return g.affine(x, 0.0, 1.0)
    earlier = [(c, j) for c, j in itertools.permutations(range(k), 2) if j < c]
    later = [(c, j) for c, j in itertools.permutations(range(k), 2) if j > c]
    bits = []
    for pairs, strict in ((earlier, True), (later, False)):
        diff = np.zeros((len(pairs), k))
        for row, (c, j) in enumerate(pairs):
            diff[row, c], diff[row, j] = 1.0, -1.0
        d = g.add(Dense(as_tensor(diff), as_tensor(np.zeros(len(pairs)))), x)
        bits.append(g.add(Step(strict), d))
    total = np.zeros((k, 2 * len(earlier)))  # class c wins when all its k - 1 bits are 1
    for row, (c, _) in enumerate(earlier + later):
        total[c, row] = 1.0
    votes = g.add(Dense(as_tensor(total), as_tensor(np.full(k, 2.0 - k))), g.add(Concat(0), *bits))
    return g.add(ReLU(), votes)


def _quantise(rng: Rng, g: Graph, x: str, n: int) -> str:
    z = g.add(dense(rng, g.shape(x)[0], n, gain=float(rng.choice([1.0, 2.0, 4.0]))), x)
    return g.add(Trunc(), z)


def _integer_feature(rng: Rng, g: Graph, q: str) -> str:
    """An integer-valued feature of the integer node ``q``."""
    n = g.shape(q)[0]
    style = int(rng.integers(4))
    if style == 0:  # Equal(q_i, q_j) = relu(1 - |q_i - q_j|)
        i, j = rng.integers(n, size=2)
        diff = np.zeros((1, n))
        diff[0, i] += 1.0
        diff[0, j] -= 1.0
        d = g.add(Dense(as_tensor(diff), as_tensor([float(rng.integers(-1, 2))])), q)
        return g.add(ReLU(), g.affine(g.add(Abs(), d), -1.0, 1.0))
    if style == 1:
        return g.add(Sign(), q)
    if style == 2:
        return g.add(Clip(float(rng.integers(-2, 1)), float(rng.integers(0, 3))), q)
    return g.add(Step(bool(rng.random() < 0.5)), g.affine(q, 1.0, float(rng.integers(-1, 2))))


def integer_net(rng: Rng) -> Network:
    """Quantisation, ArgMax one-hots, comparisons and gates (module docstring)."""
    n_in = int(rng.integers(1, 5))
    g = Graph((n_in,))
    k = int(rng.integers(2, 4))
    q = _quantise(rng, g, INPUT, k)
    # ArgMax of integers (ties on purpose, and frequent) or of data (ties by chance only)
    logits = q if rng.random() < 0.7 else g.add(dense(rng, n_in, k), INPUT)
    one_hot = _one_hot_of_max(g, logits)
    data = g.add(_smooth(rng), g.add(dense(rng, n_in, k), INPUT))
    parts = [g.add(Mul(), one_hot, data), _integer_feature(rng, g, q)]  # a Where, a feature
    if rng.random() < 0.5:
        index = Dense(as_tensor(np.arange(k, dtype=float)[None]), as_tensor([0.0]))
        parts.append(g.add(index, one_hot))  # ArgMax's index: sum_c c onehot_c
    if rng.random() < 0.4:
        parts.append(g.add(Step(bool(rng.random() < 0.5)), g.add(dense(rng, n_in, 2), INPUT)))
    features = g.add(Concat(0), *parts)
    g.add(dense(rng, g.shape(features)[0], int(rng.integers(1, 4))), features)
    return g.network()


GRAPH_KINDS: dict[str, Callable[[Rng], Network]] = {
    "elementwise": elementwise_net,
    "attention": attention_net,
    "tensor": tensor_net,
    "integer": integer_net,
}
"""The network kinds of this module and their builders."""
