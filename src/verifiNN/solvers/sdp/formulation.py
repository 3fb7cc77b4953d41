"""The SDP relaxation of a ReLU chain network as sparse data in a standard form.

Raghunathan, Steinhardt and Liang 2018, "Semidefinite relaxations for certifying
robustness to adversarial examples". Write the network as a chain of folded
affine maps and ReLUs, ``z_k = W_k a_{k-1} + b_k``, ``a_k = max(z_k, 0)``,
``a_0 = x`` (:func:`verifiNN.bounds.lp.chain_stages` folds every affine run:
Dense, Conv, AvgPool, Flatten, ... into one sparse matrix, exactly). The ReLU is
the three constraints ``a >= 0``, ``a >= z`` and ``a * (a - z) = 0``; the
products of variables are lifted into a moment matrix
``P = [1, v^T; v, V]`` (``V`` standing for ``v v^T``) relaxed to ``P >= 0``
(positive semidefinite). The relaxation holds:

* the ReLU equality lifted: ``V[a_j, a_j] = sum_i W_ji V[a_i, a_j] + b_j a_j``;
* every variable's interval ``[l, u]``, linearly and lifted,
  ``V[v, v] <= (l + u) v - l u`` (the input box; the post-activation bounds
  that CROWN, alpha-CROWN or the LP computed);
* an L2 input ball lifted: ``trace V_xx - 2 c^T x + c^T c <= eps^2``;
* the triangle LP (Ehlers 2017) as linear cuts: ``a >= 0``, ``a >= z``, the
  upper chord ``a <= u (z - l) / (u - l)`` of unstable neurons, ``a = z`` for
  active ones and the pre-activation bounds ``l <= z <= u`` of every neuron
  (the output's too). The relaxation's feasible set therefore projects into
  the LP's with the same intermediate bounds, so its optimum is never below
  the LP's (Batten et al. 2021, "Efficient neural network verification via
  layer-based semidefinite relaxations and linear cuts").

Neurons with ``l = u`` (inactive ReLUs, fixed inputs) are constants and are
folded into the biases; they take no place in a PSD block.

Two formulations: ``'single'``, one PSD block over ``(1, x, a_1, ..., a_K)``;
``'chordal'`` (default), one block per pair of adjacent layers
``(1, a_{k-1}, a_k)`` whose overlaps ``(1, a_k)`` are equal. Every constraint
and the objective touch only entries inside one such clique, and the graph
of the cliques is chordal, so by the PSD completion theorem (Grone et al.
1984) both have the same optimum (Newton and Papachristodoulou 2021, "Exploiting
sparsity for neural network verification"); the chordal form costs grows with
the widest pair of layers, not the whole network.

The standard form: block matrices ``P_k`` (stacked row-major into one vector
``p``), range rows ``lower <= A p <= upper`` (equalities when they meet) and
the objective ``c^T p + constant``. ``trace_bound[k]`` bounds ``trace P_k``
over the feasible set (``1 + sum max(l^2, u^2)`` over its variables, implied
by the lifted interval rows), which the sound dual bound needs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

from verifiNN.bounds.lp import Stage
from verifiNN.bounds.relaxations import relu_parts
from verifiNN.errors import UnsupportedModelError
from verifiNN.ops import ReLU

__all__ = ["FORMULATIONS", "Layer", "SDPData", "build_sdp", "reduce_layers"]

FORMULATIONS = ("chordal", "single")
"""``'chordal'``: one PSD block per pair of adjacent layers; ``'single'``: one block."""

INF = np.inf


@dataclass(frozen=True)
class Layer:
    """The variables of one layer (the input, or a ReLU's output), fixed ones folded out.

    Attributes:
        lower: bounds of the layer's variable entries.
        upper: their upper bounds.
        keep: indices (into the full layer) of the variable entries.
        value: the full layer's value where fixed (``lower`` elsewhere; unused there).
        weight: ``W`` of the affine map into this layer's pre-activation, rows
            ``keep``, columns the previous layer's variables (``None`` for the input).
        bias: its bias, the previous layer's constants folded in.
        z_lower: pre-activation lower bounds of the ``keep`` rows.
        z_upper: their upper bounds.
    """

    lower: np.ndarray
    upper: np.ndarray
    keep: np.ndarray
    value: np.ndarray
    weight: sp.csr_matrix | None = None
    bias: np.ndarray | None = None
    z_lower: np.ndarray | None = None
    z_upper: np.ndarray | None = None

    @property
    def size(self) -> int:
        """Number of variable entries."""
        return int(self.keep.size)


@dataclass(frozen=True)
class ZCut:
    """Pre-activation bound rows ``lower <= weight a_prev + bias <= upper`` (all neurons)."""

    weight: sp.csr_matrix
    bias: np.ndarray
    lower: np.ndarray
    upper: np.ndarray


def _reduce(
    weight: sp.csr_matrix, bias: np.ndarray, prev: Layer
) -> tuple[sp.csr_matrix, np.ndarray]:
    """``W a + b`` on the previous layer's variables, its constants folded into ``b``."""
    fixed = np.ones(prev.value.size, dtype=bool)
    fixed[prev.keep] = False
    const = np.where(fixed, prev.value, 0.0)
    return sp.csr_matrix(weight[:, prev.keep]), bias + weight @ const


def reduce_layers(
    stages: list[Stage],
    box: tuple[np.ndarray, np.ndarray],
    bounds: Mapping[str, tuple[np.ndarray, np.ndarray]],
) -> tuple[list[Layer], list[ZCut], tuple[sp.csr_matrix, np.ndarray]]:
    """The layers of a ReLU chain with their variable entries, cuts and output map.

    Args:
        stages: :func:`verifiNN.bounds.lp.chain_stages` of the network.
        box: ``(lower, upper)`` of the input.
        bounds: node name -> flat ``(lower, upper)`` of every stage's
            pre-activation (``stage.name``) and activation (``stage.act.name``).

    Returns:
        ``(layers, cuts, (W_out, b_out))``: ``layers[0]`` the input, then one per
        ReLU; ``cuts[k]`` the pre-activation rows into layer ``k + 1`` (the last
        the output's); the output map on the last layer's variables.

    Raises:
        UnsupportedModelError: an activation other than the ReLU.
    """
    low, high = (np.asarray(v, np.float64).ravel() for v in box)
    keep = np.flatnonzero(high > low)
    layers = [Layer(low[keep], high[keep], keep, low.copy())]
    cuts: list[ZCut] = []
    for stage in stages:
        prev = layers[-1]
        w, b = _reduce(stage.weight.tocsr(), np.asarray(stage.bias, np.float64), prev)
        zl, zu = (np.asarray(v, np.float64).ravel() for v in bounds[stage.name])
        if stage.act is None:
            cuts.append(ZCut(w, b, zl, zu))
            return layers, cuts, (w, b)
        if not isinstance(stage.act.op, ReLU):
            raise UnsupportedModelError(
                f"the SDP relaxation needs ReLU activations; node {stage.act.name!r} is "
                f"{stage.act.op.kind}"
            )
        al, au = (np.asarray(v, np.float64).ravel() for v in bounds[stage.act.name])
        al = np.maximum(al, np.maximum(zl, 0.0))
        au = np.minimum(au, np.maximum(zu, 0.0))
        au = np.maximum(au, al)
        active = zl >= 0
        cut_lower = np.where(active, np.maximum(zl, al), zl)
        cut_upper = np.where(active, np.minimum(zu, au), zu)
        cuts.append(ZCut(w, b, cut_lower, cut_upper))
        keep = np.flatnonzero(au > al)
        layers.append(
            Layer(al[keep], au[keep], keep, al.copy(), sp.csr_matrix(w[keep]), b[keep],
                  zl[keep], zu[keep])
        )  # fmt: skip
    raise UnsupportedModelError("the network has no output stage")  # pragma: no cover


@dataclass(frozen=True)
class SDPData:
    """``min c^T p + constant`` s.t. ``lower <= A p <= upper``, every block ``P_k >= 0``.

    Attributes:
        sizes: order ``m_k`` of each block.
        offsets: start of block ``k`` in ``p`` (row-major ``m_k x m_k`` entries).
        A: ``(rows, sum m_k^2)`` constraint matrix (on entries of the blocks).
        lower: row lower bounds (``-inf`` where none).
        upper: row upper bounds (``+inf`` where none).
        cost: ``(sum m_k^2,)`` objective coefficients.
        constant: the objective's constant.
        diag_bound: per block, ``(m_k,)`` bounds of the diagonal of ``P_k``
            over the feasible set (``1`` and ``max(l^2, u^2)``: implied by the rows).
    """

    sizes: tuple[int, ...]
    offsets: tuple[int, ...]
    A: sp.csr_matrix
    lower: np.ndarray
    upper: np.ndarray
    cost: np.ndarray
    constant: float
    diag_bound: tuple[np.ndarray, ...]

    @property
    def trace_bound(self) -> np.ndarray:
        """``(K,)`` bounds of ``trace P_k`` over the feasible set."""
        return np.array([float(d.sum()) for d in self.diag_bound])

    @property
    def num_entries(self) -> int:
        """Length of ``p``."""
        return int(sum(m * m for m in self.sizes))


class _Rows:
    """COO accumulator of range rows on block entries."""

    def __init__(self) -> None:
        self.r: list[np.ndarray] = []
        self.c: list[np.ndarray] = []
        self.v: list[np.ndarray] = []
        self.lower: list[np.ndarray] = []
        self.upper: list[np.ndarray] = []
        self.count = 0

    def add(self, r, c, v, lower, upper, n: int) -> None:
        """Append ``n`` rows; ``r`` counts from 0 within them."""
        self.r.append(np.asarray(r, np.int64) + self.count)
        self.c.append(np.asarray(c, np.int64))
        self.v.append(np.asarray(v, np.float64))
        self.lower.append(np.broadcast_to(np.asarray(lower, np.float64), (n,)).copy())
        self.upper.append(np.broadcast_to(np.asarray(upper, np.float64), (n,)).copy())
        self.count += n

    def matrix(self, cols: int) -> sp.csr_matrix:
        if not self.r:
            return sp.csr_matrix((0, cols))
        return sp.csr_matrix(
            (np.concatenate(self.v), (np.concatenate(self.r), np.concatenate(self.c))),
            shape=(self.count, cols),
        )


@dataclass(frozen=True)
class _Block:
    layers: tuple[int, ...]
    start: dict[int, int]  # layer -> position of its first variable in the block
    size: int
    offset: int

    def entry(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Indices in ``p`` of entries ``(a, b)`` (upper triangle)."""
        a, b = np.minimum(a, b), np.maximum(a, b)
        return self.offset + a * self.size + b

    def pos(self, layer: int) -> np.ndarray:
        """Positions of ``layer``'s variables."""
        return self.start[layer] + np.arange(self._n[layer])

    _n: dict[int, int]


def _blocks(layers: list[Layer], formulation: str) -> list[_Block]:
    groups: list[tuple[int, ...]]
    if formulation == "single" or len(layers) == 1:
        groups = [tuple(range(len(layers)))]
    elif formulation == "chordal":
        groups = [(k - 1, k) for k in range(1, len(layers))]
    else:
        raise ValueError(f"unknown formulation {formulation!r}: expected one of {FORMULATIONS}")
    blocks, offset = [], 0
    for group in groups:
        start, pos = {}, 1
        for k in group:
            start[k] = pos
            pos += layers[k].size
        blocks.append(_Block(group, start, pos, offset, {k: layers[k].size for k in group}))
        offset += pos * pos
    return blocks


def _sparse_rows(rows: _Rows, block: _Block, parts, lower, upper) -> None:
    """Rows ``lower <= sum_k M_k v_{layer_k} <= upper`` on first-order entries of ``block``."""
    n = parts[0][1].shape[0]
    rs, cs, vs = [], [], []
    for layer, mat in parts:
        coo = sp.coo_matrix(mat)
        rs.append(coo.row)
        cs.append(block.entry(np.zeros_like(coo.col), block.start[layer] + coo.col))
        vs.append(coo.data)
    rows.add(np.concatenate(rs), np.concatenate(cs), np.concatenate(vs), lower, upper, n)


def _home(blocks: list[_Block], *layers: int) -> _Block:
    return next(b for b in blocks if all(k in b.layers for k in layers))


def _layer_rows(rows: _Rows, blocks: list[_Block], layers: list[Layer], k: int) -> None:
    """Interval rows of layer ``k`` (linear and lifted) and overlap equalities."""
    layer, home = layers[k], _home(blocks, k)
    n = layer.size
    if n == 0:
        return
    pos, i = home.pos(k), np.arange(n)
    zero = np.zeros(n, np.int64)
    rows.add(i, home.entry(zero, pos), np.ones(n), layer.lower, layer.upper, n)
    # (l + u) v - V_vv >= l u
    rows.add(
        np.concatenate([i, i]),
        np.concatenate([home.entry(zero, pos), home.entry(pos, pos)]),
        np.concatenate([layer.lower + layer.upper, -np.ones(n)]),
        layer.lower * layer.upper, INF, n,
    )  # fmt: skip
    for other in blocks:
        if other is home or k not in other.layers:
            continue
        a, b = np.triu_indices(n + 1)
        ha = np.where(a == 0, 0, home.start[k] + a - 1)
        hb = np.where(b == 0, 0, home.start[k] + b - 1)
        oa = np.where(a == 0, 0, other.start[k] + a - 1)
        ob = np.where(b == 0, 0, other.start[k] + b - 1)
        keep = ~((a == 0) & (b == 0))
        m, j = int(keep.sum()), np.arange(int(keep.sum()))
        rows.add(
            np.concatenate([j, j]),
            np.concatenate([home.entry(ha[keep], hb[keep]), other.entry(oa[keep], ob[keep])]),
            np.concatenate([np.ones(m), -np.ones(m)]),
            0.0, 0.0, m,
        )  # fmt: skip


def _relu_rows(rows: _Rows, blocks: list[_Block], layers: list[Layer], k: int) -> None:
    """The ReLU equality (lifted), ``a >= z``, the chord and ``a = z`` of layer ``k``."""
    layer, block = layers[k], _home(blocks, k - 1, k)
    n = layer.size
    if n == 0:
        return
    w, b = layer.weight, layer.bias
    eye = sp.identity(n, format="csr")
    # a - W a_prev >= b (equality for active neurons)
    active = layer.z_lower >= 0
    _sparse_rows(rows, block, [(k, eye), (k - 1, -w)], b, np.where(active, b, INF))
    unstable = np.flatnonzero((layer.z_lower < 0) & (layer.z_upper > 0))
    if unstable.size:
        # the registry's upper line of the ReLU, a <= s z + c (the triangle's chord)
        _, slope, intercept = relu_parts(
            torch.from_numpy(layer.z_lower[unstable]),
            torch.from_numpy(layer.z_upper[unstable]),
            None,
        )
        s, c = slope.numpy(), intercept.numpy()
        pick = eye[unstable]
        # s (W a_prev + b) - a >= -c
        _sparse_rows(
            rows, block, [(k, -pick), (k - 1, sp.diags(s) @ w[unstable])], -c - s * b[unstable],
            INF,
        )  # fmt: skip
    # V[a_j, a_j] - sum_i W_ji V[prev_i, a_j] - b_j a_j = 0
    coo = sp.coo_matrix(w)
    pos, prev = block.pos(k), block.pos(k - 1)
    j = np.arange(n)
    zero = np.zeros(n, np.int64)
    rows.add(
        np.concatenate([j, coo.row, j]),
        np.concatenate([
            block.entry(pos, pos), block.entry(prev[coo.col], pos[coo.row]), block.entry(zero, pos)
        ]),
        np.concatenate([np.ones(n), -coo.data, -b]),
        0.0, 0.0, n,
    )  # fmt: skip


def build_sdp(
    layers: list[Layer],
    cuts: list,
    output: tuple[sp.csr_matrix, np.ndarray],
    c: np.ndarray,
    formulation: str = "chordal",
    ball: tuple[np.ndarray, float] | None = None,
) -> SDPData:
    """The SDP relaxation of ``min c^T y`` (see the module docstring).

    Args:
        layers: :func:`reduce_layers`'s layers.
        cuts: its pre-activation cuts.
        output: its output map.
        c: ``(n_out,)`` objective on the output.
        formulation: ``'chordal'`` or ``'single'``.
        ball: ``(center, eps)`` of an L2 input ball (the box of ``layers[0]``
            then being its bounding box), or ``None``.

    Returns:
        The :class:`SDPData`.
    """
    blocks = _blocks(layers, formulation)
    rows = _Rows()
    total = sum(b.size * b.size for b in blocks)
    for block in blocks:
        rows.add([0], [block.entry(np.array(0), np.array(0))], [1.0], 1.0, 1.0, 1)
    for k in range(len(layers)):
        _layer_rows(rows, blocks, layers, k)
        if k:
            _relu_rows(rows, blocks, layers, k)
    for k, cut in enumerate(cuts):
        # the cut into layer k + 1 reads layer k
        if layers[k].size == 0:
            continue
        block = _home(blocks, k)
        _sparse_rows(rows, block, [(k, cut.weight)], cut.lower - cut.bias, cut.upper - cut.bias)
    if ball is not None:
        _ball_rows(rows, _home(blocks, 0), layers[0], *ball)
    w_out, b_out = output
    last = len(layers) - 1
    cost = np.zeros(total)
    coefs = np.asarray(w_out.T @ c).ravel()
    home = _home(blocks, last)
    if layers[last].size:
        pos = home.pos(last)
        cost[home.entry(np.zeros_like(pos), pos)] = coefs
    diag = tuple(
        np.concatenate(
            [[1.0], *(np.maximum(layers[k].lower ** 2, layers[k].upper ** 2) for k in b.layers)]
        )
        for b in blocks
    )
    return SDPData(
        tuple(b.size for b in blocks),
        tuple(b.offset for b in blocks),
        rows.matrix(total),
        np.concatenate(rows.lower),
        np.concatenate(rows.upper),
        cost,
        float(c @ b_out),
        diag,
    )


def _ball_rows(rows: _Rows, block: _Block, layer: Layer, center: np.ndarray, eps: float) -> None:
    """``sum_i (V_ii - 2 c_i x_i) <= eps^2 - |c|^2`` over the input (fixed entries folded)."""
    fixed = np.ones(layer.value.size, dtype=bool)
    fixed[layer.keep] = False
    c = np.asarray(center, np.float64).ravel()
    rhs = eps**2 - float(c @ c) - float(((layer.value - 2 * c) * layer.value)[fixed].sum())
    n = layer.size
    if n == 0:
        return
    pos = block.pos(0)
    zero = np.zeros(n, np.int64)
    rows.add(
        np.zeros(2 * n, np.int64),
        np.concatenate([block.entry(pos, pos), block.entry(zero, pos)]),
        np.concatenate([np.ones(n), -2.0 * c[layer.keep]]),
        -INF, rhs, 1,
    )  # fmt: skip
