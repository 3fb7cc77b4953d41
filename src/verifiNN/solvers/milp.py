"""Mixed-integer linear programs of ReLU MLPs: the encodings, their bounds and a minimiser.

The encoding is the big-M formulation of Tjeng, Xiao and Tedrake 2019,
"Evaluating Robustness of Neural Networks with Mixed Integer Programming"
(ICLR), on HiGHS (:class:`~verifiNN.solvers.highs.HighsModel`). For a network
``network.as_mlp()`` with layers ``z_k = W_k a_{k-1} + b_k``, ``a_k = relu(z_k)``
and sound bounds ``l_k <= z_k <= u_k`` from the bound engine
(:func:`verifiNN.bounds.compute_bounds`: alpha-CROWN, or CROWN on large
unstable counts, by default; :func:`auto_layer_bounds`):

* variables: the input ``x`` (the region's box), every ``z_k`` (bounded by
  ``[l_k, u_k]``), every ``a_k``, the output ``y``;
* stable ReLUs need no binary: ``a = z`` when ``l >= 0``, ``a = 0`` when ``u <= 0``;
* each unstable ReLU (``l < 0 < u``) gets a binary ``delta`` and the rows
  ``a >= z``, ``a >= 0``, ``a <= z - l (1 - delta)``, ``a <= u delta``;
* identity activations are ``a = z``; an L1-ball input adds ``s >= |x - c|``,
  ``sum s <= eps`` (exact); an L2 ball is relaxed to its bounding box (sound
  for proofs; the decision procedure cuts MILP points outside the ball).

Networks with few inputs (at most :data:`COMPACT_MAX_INPUTS`, e.g. ACAS Xu)
get :func:`encode_mlp_compact` instead: the same MILP with the stable ReLUs
substituted away, so only the input, the unstable ReLUs and the output have
columns.

:func:`milp_minimum` minimises a linear function of the output exactly (the
test oracle of the bound methods). Deciding a specification with these
encodings is :func:`verifiNN.search.milp.milp_verify`; the exact minimal
adversarial distance is :func:`verifiNN.search.distance.minimal_adversarial_distance`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from verifiNN.bounds import compute_bounds
from verifiNN.budget import Budget
from verifiNN.errors import InvalidInputError
from verifiNN.models.network import MLP, Network
from verifiNN.ops import Dense, Identity, ReLU
from verifiNN.regions import project_ball
from verifiNN.solvers.highs import INF, HighsModel, LinearProgram
from verifiNN.specs import Box, LpBall

__all__ = [
    "COMPACT_MAX_INPUTS",
    "MilpEncoding",
    "MilpMinimum",
    "as_float64",
    "auto_layer_bounds",
    "encode_mlp",
    "encode_mlp_compact",
    "encoder_for",
    "layer_bounds",
    "milp_minimum",
    "milp_model",
    "mlp_layers",
    "region_point",
    "with_margin_objective",
]

#: ``bounds_method='auto'`` runs alpha-CROWN only up to this many unstable ReLUs
#: after CROWN (ACAS Xu: ~250; MNIST 256x6 at eps 0.05: ~1400, where 20 alpha steps
#: cost 6-10 s and remove 1% of the binaries).
AUTO_ALPHA_MAX_UNSTABLE = 500

#: HiGHS's MIP presolve is skipped above this many binaries: it does not check the
#: time limit (13 s on a 1,536-binary 16x256x6 MLP against a 3 s limit), and MILPs
#: that large rarely finish anyway. Below it, presolve pays (MNIST 256x2: 1.5 s vs 6.7 s).
PRESOLVE_MAX_BINARIES = 500


@dataclass(frozen=True)
class MilpEncoding:
    """The big-M MILP of an MLP over an input region (no objective yet).

    Attributes:
        lp: the constraints (``cost`` is zero), with the integrality mask.
        x: column indices of the input.
        y: column indices of the output.
        binaries: number of binary columns (unstable ReLUs).
        exact: ``False`` when the region was relaxed (an L2 ball to its box).
    """

    lp: LinearProgram
    x: np.ndarray
    y: np.ndarray
    binaries: int
    exact: bool


@dataclass(frozen=True)
class MilpMinimum:
    """Result of :func:`milp_minimum`.

    Attributes:
        value: ``c . network(x)`` at the best ``x`` found, by a float64 forward
            pass (an upper bound of the true minimum; equal to it up to the
            solver's tolerances when ``status`` is ``'optimal'``).
        lower_bound: the solver's dual bound (accurate to its tolerances).
        x: the minimiser found (inside the region's box), or ``None``.
        status: the solver status (``'optimal'``, ``'time_limit'``, ...).
        seconds: wall time, bounds included.
        binaries: number of binary variables.
    """

    value: float
    lower_bound: float
    x: np.ndarray | None
    status: str
    seconds: float
    binaries: int


# ---------------------------------------------------------------- encoding
@dataclass
class _Builder:
    """Columns and sparse rows of a MILP, appended block by block."""

    col_lower: list[np.ndarray] = field(default_factory=list)
    col_upper: list[np.ndarray] = field(default_factory=list)
    integer: list[np.ndarray] = field(default_factory=list)
    blocks: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=list)
    row_lower: list[np.ndarray] = field(default_factory=list)
    row_upper: list[np.ndarray] = field(default_factory=list)
    num_cols: int = 0
    num_rows: int = 0

    def columns(self, lower: np.ndarray, upper: np.ndarray, integer: bool = False) -> np.ndarray:
        lower, upper = np.asarray(lower, np.float64), np.asarray(upper, np.float64)
        index = np.arange(self.num_cols, self.num_cols + lower.size)
        self.col_lower.append(lower)
        self.col_upper.append(upper)
        self.integer.append(np.full(lower.size, integer))
        self.num_cols += lower.size
        return index

    def rows(self, terms: list[tuple[np.ndarray, Any]], lower: Any, upper: Any) -> None:
        """Add rows ``lower <= sum_j M_j @ v[cols_j] <= upper`` for ``terms = [(cols_j, M_j)]``."""
        count = sp.coo_matrix(terms[0][1]).shape[0]
        for cols, matrix in terms:
            m = sp.coo_matrix(matrix)
            self.blocks.append((m.data, m.row + self.num_rows, cols[m.col]))
        self.row_lower.append(np.broadcast_to(np.asarray(lower, np.float64), (count,)))
        self.row_upper.append(np.broadcast_to(np.asarray(upper, np.float64), (count,)))
        self.num_rows += count

    def program(self) -> LinearProgram:
        data, rows, cols = (
            np.concatenate([b[i] for b in self.blocks]) if self.blocks else np.zeros(0, int)
            for i in range(3)
        )
        A = sp.csr_matrix((data, (rows, cols)), shape=(self.num_rows, self.num_cols))
        return LinearProgram(
            cost=np.zeros(self.num_cols),
            A=A,
            row_lower=np.concatenate(self.row_lower) if self.row_lower else np.zeros(0),
            row_upper=np.concatenate(self.row_upper) if self.row_upper else np.zeros(0),
            col_lower=np.concatenate(self.col_lower),
            col_upper=np.concatenate(self.col_upper),
            integrality=np.concatenate(self.integer),
        )


def _eye(n: int) -> sp.spmatrix:
    return sp.identity(n, format="coo")


def _input_columns(builder: _Builder, region: Box | LpBall) -> tuple[np.ndarray, bool]:
    box = region.bounding_box()
    x = builder.columns(box.lower, box.upper)
    if isinstance(region, Box) or region.norm == "inf":
        return x, True
    if region.norm == "2":
        return x, False
    n = x.size  # L1 ball: s >= x - c, s >= c - x, sum s <= eps
    s = builder.columns(np.zeros(n), np.full(n, INF))
    builder.rows([(s, _eye(n)), (x, -_eye(n))], -region.center, INF)
    builder.rows([(s, _eye(n)), (x, _eye(n))], region.center, INF)
    builder.rows([(s, np.ones((1, n)))], -INF, region.epsilon)
    return x, True


def _relu_layer(builder: _Builder, z: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Columns ``a = relu(z)`` by the big-M rows of Tjeng et al. for unstable neurons."""
    a = builder.columns(np.maximum(low, 0.0), np.maximum(high, 0.0))
    active = np.flatnonzero(low >= 0)
    if active.size:
        builder.rows([(a[active], _eye(active.size)), (z[active], -_eye(active.size))], 0.0, 0.0)
    unstable = np.flatnonzero((low < 0) & (high > 0))
    if unstable.size:
        k, lo, hi = unstable.size, low[unstable], high[unstable]
        delta = builder.columns(np.zeros(k), np.ones(k), integer=True)
        au, zu = a[unstable], z[unstable]
        builder.rows([(au, _eye(k)), (zu, -_eye(k))], 0.0, INF)  # a >= z
        builder.rows(  # a <= z - l (1 - delta)
            [(au, _eye(k)), (zu, -_eye(k)), (delta, sp.diags(-lo, format="coo"))], -INF, -lo
        )
        builder.rows([(au, _eye(k)), (delta, sp.diags(-hi, format="coo"))], -INF, 0.0)
    return a


def _layers_with_bounds(
    mlp: MLP, bounds: list[tuple[np.ndarray, np.ndarray]]
) -> list[tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray]]]:
    """``(weight, bias, (low, high))`` per layer, the bounds checked against the sizes.

    Raises:
        InvalidInputError: bounds that do not match the layers.
    """
    if len(bounds) != len(mlp.weights):
        raise InvalidInputError(f"need {len(mlp.weights)} bound pairs, got {len(bounds)}")
    layers = []
    for k, (weight, bias) in enumerate(zip(mlp.weights, mlp.biases)):
        low, high = (np.asarray(b, np.float64).ravel() for b in bounds[k])
        if low.size != weight.shape[0] or high.size != weight.shape[0]:
            raise InvalidInputError(f"bounds of layer {k} do not have {weight.shape[0]} entries")
        layers.append((weight, bias, (low, high)))
    return layers


def encode_mlp(
    mlp: MLP,
    region: Box | LpBall,
    bounds: list[tuple[np.ndarray, np.ndarray]],
) -> MilpEncoding:
    """Encode ``mlp`` over ``region`` as a big-M MILP (Tjeng et al. 2019).

    Args:
        mlp: the network as plain arrays (``Network.as_mlp()``).
        region: the input region (a box, or an L-inf/L1/L2 ball).
        bounds: sound ``(lower, upper)`` bounds of every layer's output before
            its activation, one pair per layer including the last (the output ``y``).

    Returns:
        The :class:`MilpEncoding`.

    Raises:
        InvalidInputError: bounds that do not match the layers.
    """
    builder = _Builder()
    x, exact = _input_columns(builder, region)
    previous = x
    binaries = 0
    for k, (weight, bias, (low, high)) in enumerate(_layers_with_bounds(mlp, bounds)):
        z = builder.columns(low, np.maximum(high, low))
        builder.rows([(z, _eye(z.size)), (previous, -sp.coo_matrix(weight))], bias, bias)
        if k == len(mlp.weights) - 1:
            return MilpEncoding(builder.program(), x, z, binaries, exact)
        if mlp.activations[k] == "ReLU":
            previous = _relu_layer(builder, z, low, high)
            binaries += int(np.sum((low < 0) & (high > 0)))
        else:
            previous = z
    raise AssertionError("unreachable")  # pragma: no cover


def encode_mlp_compact(
    mlp: MLP,
    region: Box | LpBall,
    bounds: list[tuple[np.ndarray, np.ndarray]],
) -> MilpEncoding:
    """The MILP of :func:`encode_mlp` with every stable ReLU substituted away.

    Each layer's input is kept as an affine expression of the *basis*
    columns: the input ``x`` and the outputs of the unstable ReLUs so far. A
    stably active neuron passes its expression on, a stably inactive one
    gives zero, and only an unstable neuron gets columns (its output and its
    binary) and the three big-M rows, written on its pre-activation's
    expression; the output ``y`` gets columns bound to its expression. On a
    small box with a few dozen unstable ReLUs among hundreds (branch-and-bound
    leaves on ACAS Xu) the model has tens of columns instead of over a
    thousand, and the time goes to search instead of presolve. The
    pre-activation bounds of unstable neurons enter only through the big-M
    rows (no columns carry them), which never removes a real point.

    The rows are dense in the basis, so this suits networks with few inputs;
    :func:`encode_mlp` keeps every layer sparse.
    """
    builder = _Builder()
    x, exact = _input_columns(builder, region)
    basis = x  # the columns the expressions are written on
    E, e = np.eye(x.size), np.zeros(x.size)  # layer input = E @ v[basis] + e
    binaries = 0
    for k, (weight, bias, (low, high)) in enumerate(_layers_with_bounds(mlp, bounds)):
        Z, z0 = weight @ E, weight @ e + bias  # pre-activation = Z @ v[basis] + z0
        if k == len(mlp.weights) - 1:
            y = builder.columns(low, np.maximum(high, low))
            builder.rows([(y, _eye(y.size)), (basis, -Z)], z0, z0)
            return MilpEncoding(builder.program(), x, y, binaries, exact)
        if mlp.activations[k] != "ReLU":
            E, e = Z, z0
            continue
        active, unstable = low >= 0, (low < 0) & (high > 0)
        u = np.flatnonzero(unstable)
        k_u, lo, hi, Zu, zu = u.size, low[u], high[u], Z[u], z0[u]
        a = builder.columns(np.zeros(k_u), hi)
        delta = builder.columns(np.zeros(k_u), np.ones(k_u), integer=True)
        if k_u:
            builder.rows([(a, _eye(k_u)), (basis, -Zu)], zu, INF)  # a >= z
            builder.rows(  # a <= z - l (1 - delta)
                [(a, _eye(k_u)), (basis, -Zu), (delta, sp.diags(-lo, format="coo"))],
                -INF,
                zu - lo,
            )
            builder.rows([(a, _eye(k_u)), (delta, sp.diags(-hi, format="coo"))], -INF, 0.0)
        binaries += k_u
        E_next = np.zeros((weight.shape[0], basis.size + k_u))
        E_next[active, : basis.size] = Z[active]
        E_next[u, basis.size + np.arange(k_u)] = 1.0
        E, e = E_next, np.where(active, z0, 0.0)
        basis = np.concatenate([basis, a])
    raise AssertionError("unreachable")  # pragma: no cover


#: Inputs up to which :func:`~verifiNN.search.milp.milp_verify` and :func:`milp_minimum` use
#: :func:`encode_mlp_compact` by default.
COMPACT_MAX_INPUTS = 16


def encoder_for(mlp: MLP, compact: bool | None = None):
    """:func:`encode_mlp_compact` or :func:`encode_mlp` (``None``: by the input size)."""
    if compact is None:
        compact = mlp.weights[0].shape[1] <= COMPACT_MAX_INPUTS
    return encode_mlp_compact if compact else encode_mlp


# ---------------------------------------------------------------- bounds
def mlp_layers(network: Network) -> tuple[MLP, list[str]]:
    """``network.as_mlp()`` and the node names whose bounds are each layer's ``z``.

    A network that ends in an activation (e.g. ``Dense -> ReLU``) gets an extra
    identity layer, whose ``z`` is the activation's output.

    Raises:
        UnsupportedModelError: not a chain of dense layers and activations.
    """
    names = [node.name for node in network.nodes if isinstance(node.op, Dense)]
    last = network.nodes[-1] if network.nodes else None
    if last is None or not isinstance(last.op, (ReLU, Identity)) or len(network.nodes) < 2:
        return network.as_mlp(), names
    head = Network.from_graph(
        network.input_shape,
        network.nodes[:-1],
        network.nodes[-2].name,
        network.labeler,
        network.input_name,
    )
    mlp = head.as_mlp()
    size = mlp.weights[-1].shape[0]
    act = "ReLU" if isinstance(last.op, ReLU) else "Id"
    return (
        MLP(
            (*mlp.weights, np.eye(size)),
            (*mlp.biases, np.zeros(size)),
            (*mlp.activations, act),
        ),
        [*names, last.name],
    )


def layer_bounds(
    network: Network,
    region: Box | LpBall,
    C: np.ndarray | None,
    method: str = "crown",
    options: Any = None,
) -> tuple[list[tuple[np.ndarray, np.ndarray]], np.ndarray | None, np.ndarray | None]:
    """Pre-activation bounds of every layer and bounds of ``C y`` over ``region``.

    Returns:
        ``(per-layer (lower, upper) pairs, lower of C y, upper of C y)``; the
        last two are ``None`` when ``C`` is ``None`` or has no rows.
    """
    rows = None if C is None or C.shape[0] == 0 else C
    result = compute_bounds(network, region, rows, method=method, options=options)
    names = mlp_layers(network)[1]
    pairs = [
        (
            result.bounds[name].lower.reshape(-1).cpu().numpy(),
            result.bounds[name].upper.reshape(-1).cpu().numpy(),
        )
        for name in names
    ]
    if rows is None:
        return pairs, None, None
    return pairs, result.lower[0].cpu().numpy(), result.upper[0].cpu().numpy()


# ---------------------------------------------------------------- solving
def auto_layer_bounds(network: Network, region: Box | LpBall, C, method: str, options: Any):
    """:func:`layer_bounds` by ``method``; ``'auto'`` runs CROWN, then alpha-CROWN when at
    most :data:`AUTO_ALPHA_MAX_UNSTABLE` ReLUs are unstable (its cost grows with them)."""
    if method != "auto":
        return layer_bounds(network, region, C, method, options)
    crown = layer_bounds(network, region, C, "crown")
    unstable = sum(int(np.sum((lo < 0) & (hi > 0))) for lo, hi in crown[0][:-1])
    if unstable > AUTO_ALPHA_MAX_UNSTABLE:
        return crown
    return layer_bounds(network, region, C, "alpha-crown", options)


def with_margin_objective(encoding: MilpEncoding, C: np.ndarray, d: np.ndarray, t_lower: float):
    """The encoding plus a column ``t`` and rows ``C y - t <= d``; cost ``t``."""
    lp = encoding.lp
    n, m = lp.num_cols, C.shape[0]
    coo = sp.coo_matrix(C)
    rows = np.concatenate([coo.row, np.arange(m)])
    cols = np.concatenate([encoding.y[coo.col], np.full(m, n)])
    data = np.concatenate([coo.data, -np.ones(m)])
    extra = sp.csr_matrix((data, (rows, cols)), shape=(m, n + 1))
    A = sp.vstack([sp.hstack([lp.A, sp.csr_matrix((lp.num_rows, 1))]), extra], format="csr")
    cost = np.zeros(n + 1)
    cost[n] = 1.0
    return LinearProgram(
        cost=cost,
        A=A,
        row_lower=np.concatenate([lp.row_lower, np.full(m, -INF)]),
        row_upper=np.concatenate([lp.row_upper, d]),
        col_lower=np.concatenate([lp.col_lower, [t_lower]]),
        col_upper=np.concatenate([lp.col_upper, [INF]]),
        integrality=np.concatenate([lp.integrality, [False]]),
    )


def milp_model(
    lp: LinearProgram, encoding: MilpEncoding, threads: int, tolerance: float | None = None
) -> HighsModel:
    """A HiGHS model of ``lp`` (presolve off on large MILPs, optional tight tolerances)."""
    model = HighsModel(lp, threads)
    if encoding.binaries > PRESOLVE_MAX_BINARIES:
        model.set_option("presolve", "off")
    if tolerance is not None:
        model.set_option("mip_feasibility_tolerance", tolerance)
        model.set_option("primal_feasibility_tolerance", tolerance)
    return model


def as_float64(network: Network) -> Network:
    """``network`` with float64 CPU parameters (itself when it has them already)."""
    params = [p for node in network.nodes for p in node.op.parameters().values()]
    if not params or (params[0].dtype == torch.float64 and params[0].device.type == "cpu"):
        return network
    return network.to(torch.float64, "cpu")


def region_point(region: Box | LpBall, x: np.ndarray) -> np.ndarray:
    """``x`` clipped into the region's box and, for a ball, projected onto it."""
    box = region.bounding_box()
    x = np.clip(np.asarray(x, np.float64), box.lower, box.upper)
    if isinstance(region, LpBall) and region.norm != "inf":
        t = project_ball(
            torch.from_numpy(x)[None],
            torch.from_numpy(np.array(region.center))[None],
            torch.tensor([region.epsilon], dtype=torch.float64),
            region.norm,
        )
        x = np.clip(t[0].numpy(), box.lower, box.upper)
    return x


def milp_minimum(
    network: Network,
    region: Box | LpBall,
    c: Any,
    *,
    budget: Budget | None = None,
    bounds_method: str = "auto",
    bounds_options: Any = None,
    threads: int = 1,
    tolerance: float | None = 1e-9,
    compact: bool | None = None,
) -> MilpMinimum:
    """The exact minimum of ``c . network(x)`` over ``region`` by the big-M MILP.

    Used as the test oracle of the bound methods and for exact pointwise
    robustness. The MILP is solved to a zero relative gap (absolute gap
    ``1e-9``) with feasibility tolerances ``tolerance``; the reported
    ``value`` is re-evaluated by a float64 forward pass at the minimiser.

    Args:
        network: a fully connected ReLU network.
        region: a :class:`~verifiNN.specs.Box` or an L-inf / L1
            :class:`~verifiNN.specs.LpBall` (an L2 ball is not linear).
        c: ``(n_out,)`` objective coefficients.
        budget: the time limit (``None``: none); HiGHS gets what is left
            after the bounds.
        bounds_method: bound method for the big-M constants.
        bounds_options: its options.
        threads: HiGHS threads.
        tolerance: HiGHS primal/MIP feasibility tolerance (``None``: HiGHS's defaults).
        compact: use :func:`encode_mlp_compact` (``None``: when the network
            has at most :data:`COMPACT_MAX_INPUTS` inputs).

    Returns:
        A :class:`MilpMinimum`.

    Raises:
        InvalidInputError: an L2 ball, or ``c`` of the wrong size.
        UnsupportedModelError: the network is not a plain MLP.
    """
    start = time.perf_counter()
    if isinstance(region, LpBall) and region.norm == "2":
        raise InvalidInputError("milp_minimum needs a linear region: a box, an L-inf or L1 ball")
    c = np.asarray(c, np.float64).ravel()
    if c.size != network.output_size:
        raise InvalidInputError(f"c has {c.size} entries, the network has {network.output_size}")
    mlp = mlp_layers(network)[0]
    pairs, _, _ = auto_layer_bounds(network, region, None, bounds_method, bounds_options)
    encoding = encoder_for(mlp, compact)(mlp, region, pairs)
    lp = encoding.lp
    cost = np.zeros(lp.num_cols)
    cost[encoding.y] = c
    lp = LinearProgram(
        cost, lp.A, lp.row_lower, lp.row_upper, lp.col_lower, lp.col_upper, lp.integrality
    )
    model = milp_model(lp, encoding, threads, tolerance)
    solution = model.solve_mip(budget, rel_gap=0.0, abs_gap=1e-9)
    x, value = None, INF
    if solution.x is not None:
        x = region_point(region, solution.x[encoding.x])
        value = float(c @ np.asarray(as_float64(network).get_output(x), np.float64).ravel())
    return MilpMinimum(
        value,
        solution.dual_bound,
        x,
        solution.status.value,
        time.perf_counter() - start,
        encoding.binaries,
    )
