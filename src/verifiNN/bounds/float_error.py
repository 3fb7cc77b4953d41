"""How far a network computed in floating point can drift from the same network in real arithmetic.

VNN-LIB 2.0 gives a query over ``float32`` variables the semantics of the
model *as computed in float32* (the standard's section on element types): a
proof over the reals is not a proof over float32, because rounding moves the
outputs. :func:`rounding_error_bound` computes, over an input box, a bound
``E`` per output entry with ``|f_float(x) - f_real(x)| <= E`` for every
float ``x`` in the box. A verifier then proves the float property by proving
the real one with its unsafe set widened by ``|C| E``, and accepts a
counterexample whose real violation exceeds ``|C| E`` even where no float
evaluation is at hand.

The error model is forward error analysis (Higham, "Accuracy and Stability of
Numerical Algorithms", 2nd ed. 2002, Lemma 3.1 and Section 3.1; the same
propagation as Miné, "Relational abstract domains for the detection of
floating-point run-time errors", ESOP 2004). With unit roundoff ``u``
(``2^-24`` for float32) and ``gamma_n = n u / (1 - n u)``, a dot product of
``n`` terms plus a bias, summed in *any* order, with or without fused
multiply-adds, satisfies ``|fl(w . x + b) - (w . x + b)| <= gamma_{n+1}
(|w| . |x| + |b|)``, and a term ``(n + 1) eta`` (``eta`` the smallest
subnormal) covers underflow. Propagated node by node on the graph as the
model file wrote it (before :func:`~verifiNN.models.passes.simplify` merges
layers), with the float value of every node within ``[l - e, u + e]`` of its
real interval ``[l, u]``:

* affine ops (Dense, Conv2d, ConvTranspose2d, ConstMatMul, ElementwiseAffine,
  AvgPool2d, ReduceSum): ``e' = |W| e + gamma_{n+k} (|W| m + |b|)`` with
  ``m = max(|l|, |u|) + e`` and ``n`` the terms per output;
* exact ops (Flatten, Reshape, Identity, Concat, ConcatWithConstants, Slice,
  Gather, Transpose, Broadcast, Pad, ReLU, MaxPool2d): ``e`` moves with the
  entries (constants are exact; ReLU and max are 1-Lipschitz and round
  nothing);
* Add: ``e1 + e2 + u (m1 + m2)``; LeakyReLU: ``max(1, |a|) e + u |a| m``;
  Mul: ``m1 e2 + m2 e1 + e1 e2 + u m1 m2``;
* Sigmoid and Tanh: their largest slope on ``[l - e, u + e]`` times ``e``, plus
  :data:`TRANSCENDENTAL_ERROR` relative to the largest output and
  :data:`TRANSCENDENTAL_FLOOR` absolute: an *assumption* about the runtime's
  ``exp``/``tanh`` (onnxruntime's are accurate to a few ulps; stated here so it
  can be checked).
* the other elementwise functions (:mod:`verifiNN.ops.elementwise`): their
  largest slope (Lipschitz constant) on ``[l - e, u + e]`` times ``e`` (for
  ``Sqrt`` and ``x^p``, ``0 < p < 1``, also the Hoelder bound ``e^p``), plus
  the runtime's own error: one unit roundoff relative for the correctly rounded
  ``Sqrt`` and ``Reciprocal``, the same assumption as for Sigmoid for ``Exp``,
  ``Log``, ``Pow``, ``Sin``, ``Cos`` and ``Erf``; ``Abs``, ``Clip``, ``Max``
  and ``Min`` are 1-Lipschitz and round nothing; ``Sign`` jumps by up to 2
  where ``[l - e, u + e]`` reaches 0 (and ``e > 0``), ``Step`` by 1 there, and
  ``Trunc`` by up to ``e + 1`` where ``[l - e, u + e]`` holds more than one
  integer cell (``|trunc a - trunc b| <= |a - b| + 1``). A float input that may
  leave the function's domain (``Log``, ``Sqrt``, ``Reciprocal``, powers)
  gives an infinite bound, which is refused.

``k`` (:data:`SLACK_ROUNDINGS`) extra roundings per op cover constants the
loader folds in float64 that a runtime folds in float32 (a normalisation
``(x - mean) / std`` becomes one affine op), and fused kernels. Nodes the
caller marks *exact* (a query's own slices and products of declared
variables, which VNN-LIB evaluates in real arithmetic) propagate ``e``
without rounding terms. An op with no rule, or a value that may overflow the
format, raises :class:`~verifiNN.errors.UnsupportedModelError`: the query must
then be declared over ``real`` to be analysed at all.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from verifiNN.bounds.graph import check_supported, interval_step
from verifiNN.bounds.types import Interval
from verifiNN.errors import UnsupportedModelError
from verifiNN.models.network import Network, Node
from verifiNN.ops import (
    Abs,
    Add,
    AvgPool2d,
    Broadcast,
    Clip,
    Concat,
    ConcatWithConstants,
    ConstMatMul,
    Conv2d,
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
    Sigmoid,
    Sign,
    Sin,
    Slice,
    Sqrt,
    Step,
    Tanh,
    Transpose,
    Trunc,
)

__all__ = [
    "FLOAT_FORMATS",
    "SLACK_ROUNDINGS",
    "TRANSCENDENTAL_ERROR",
    "TRANSCENDENTAL_FLOOR",
    "FloatFormat",
    "error_rule_ops",
    "rounding_error_bound",
]


@dataclass(frozen=True)
class FloatFormat:
    """An IEEE binary format: unit roundoff, smallest subnormal, largest finite value."""

    name: str
    unit_roundoff: float
    smallest_subnormal: float
    largest: float

    def gamma(self, n: int) -> float:
        """Higham's ``gamma_n = n u / (1 - n u)`` (``inf`` when ``n u >= 1``)."""
        nu = n * self.unit_roundoff
        return math.inf if nu >= 1 else nu / (1 - nu)


FLOAT_FORMATS: dict[str, FloatFormat] = {
    "float64": FloatFormat("float64", 2.0**-53, 2.0**-1074, float(np.finfo(np.float64).max)),
    "float32": FloatFormat("float32", 2.0**-24, 2.0**-149, float(np.finfo(np.float32).max)),
    "bfloat16": FloatFormat("bfloat16", 2.0**-8, 2.0**-133, 3.3895313892515355e38),
    "float16": FloatFormat("float16", 2.0**-11, 2.0**-24, float(np.finfo(np.float16).max)),
}
"""The formats whose rounding :func:`rounding_error_bound` can bound, by VNN-LIB name."""

SLACK_ROUNDINGS = 8
"""Extra roundings allowed per op (folded constants, fused kernels; see the module docstring)."""

TRANSCENDENTAL_ERROR = 64
"""Assumed error of a runtime's sigmoid/tanh, in units of ``u`` times the largest output."""

TRANSCENDENTAL_FLOOR = 64
"""Assumed absolute error floor of a runtime's sigmoid/tanh, in units of ``u``."""

_BOUND_INFLATION = 1.0 + 2.0**-40  # covers the float64 rounding of the bound arithmetic


@dataclass(frozen=True)
class _State:
    """A node's real interval and the bound ``e`` on its float value's distance from it."""

    lower: Tensor
    upper: Tensor
    error: Tensor

    @property
    def magnitude(self) -> Tensor:
        """A bound on ``|float value|``: ``max(|l|, |u|) + e``."""
        return torch.maximum(self.lower.abs(), self.upper.abs()) + self.error


Rule = Callable[[Op, list[_State], FloatFormat, bool], Tensor]


# ------------------------------------------------------------------ rules
def _weighted(op: Dense | Conv2d | ElementwiseAffine, inputs, fmt, exact) -> Tensor:
    """``|W| e + gamma_{n+1+k} (|W| m + |b|)``: the op itself, run with absolute parameters."""
    (x,) = inputs
    if isinstance(op, ElementwiseAffine):
        terms = 1
        absolute = dataclasses.replace(op, scale=op.scale.abs(), shift=op.shift.abs())
        linear = dataclasses.replace(absolute, shift=torch.zeros_like(op.shift))
    else:
        terms = math.prod(op.weight.shape[1:])
        absolute = dataclasses.replace(op, weight=op.weight.abs(), bias=op.bias.abs())
        linear = dataclasses.replace(absolute, bias=torch.zeros_like(op.bias))
    carried = linear.forward(x.error)
    if exact:
        return carried
    n = terms + 1 + SLACK_ROUNDINGS
    return carried + fmt.gamma(n) * absolute.forward(x.magnitude) + n * fmt.smallest_subnormal


def _avg_pool(op: AvgPool2d, inputs, fmt, exact) -> Tensor:
    (x,) = inputs
    carried = op.forward(x.error)  # positive weights: |W| e
    if exact:
        return carried
    n = math.prod(op.kernel) + 1 + SLACK_ROUNDINGS
    return carried + fmt.gamma(n) * op.forward(x.magnitude) + n * fmt.smallest_subnormal


def _moves(op: Op, inputs, fmt, exact) -> Tensor:
    """Exact rearrangements and 1-Lipschitz ops that round nothing: ``e`` moves along
    (padding values and constant blocks are exact: their ``e`` is 0)."""
    if isinstance(op, Pad):
        op = dataclasses.replace(op, value=0.0)
    if isinstance(op, ConcatWithConstants):
        op = dataclasses.replace(op, constant=torch.zeros_like(op.constant))
    return op.forward(*(x.error for x in inputs))


def _matmul(op: ConstMatMul, inputs, fmt, exact) -> Tensor:
    """``|W| e + gamma_{K+1+k} (|W| m + |b|)``, ``K`` the inner dimension."""
    (x,) = inputs
    absolute = dataclasses.replace(op, weight=op.weight.abs(), bias=op.bias.abs())
    carried = dataclasses.replace(absolute, bias=torch.zeros_like(op.bias)).forward(x.error)
    if exact:
        return carried
    n = int(op.weight.shape[-1 if op.left else -2]) + 1 + SLACK_ROUNDINGS
    return carried + fmt.gamma(n) * absolute.forward(x.magnitude) + n * fmt.smallest_subnormal


def _conv_transpose(op: ConvTranspose2d, inputs, fmt, exact) -> Tensor:
    """As :func:`_weighted`; an output sums at most ``C_in / groups * kH * kW`` terms."""
    (x,) = inputs
    absolute = dataclasses.replace(op, weight=op.weight.abs(), bias=op.bias.abs())
    carried = dataclasses.replace(absolute, bias=torch.zeros_like(op.bias)).forward(x.error)
    if exact:
        return carried
    terms = op.weight.shape[0] // op.groups * math.prod(op.weight.shape[2:])
    n = terms + 1 + SLACK_ROUNDINGS
    return carried + fmt.gamma(n) * absolute.forward(x.magnitude) + n * fmt.smallest_subnormal


def _reduce(op: ReduceSum, inputs, fmt, exact) -> Tensor:
    """A sum of ``n`` terms times a constant: ``|s| sum(e) + gamma_{n+1+k} |s| sum(m)``."""
    (x,) = inputs
    absolute = dataclasses.replace(op, scale=abs(op.scale))
    carried = absolute.forward(x.error)
    if exact:
        return carried
    terms = math.prod(x.error.shape[a + 1] for a in op.axes)
    n = terms + 1 + SLACK_ROUNDINGS
    return carried + fmt.gamma(n) * absolute.forward(x.magnitude) + n * fmt.smallest_subnormal


def _add(op: Add, inputs, fmt, exact) -> Tensor:
    a, b = inputs
    carried = a.error + b.error
    if exact:
        return carried
    return carried + fmt.unit_roundoff * (a.magnitude + b.magnitude) + fmt.smallest_subnormal


def _leaky(op: LeakyReLU, inputs, fmt, exact) -> Tensor:
    (x,) = inputs
    slope = abs(op.alpha)
    carried = max(1.0, slope) * x.error
    if exact:
        return carried
    return carried + fmt.unit_roundoff * slope * x.magnitude + fmt.smallest_subnormal


def _product(op: Mul, inputs, fmt, exact) -> Tensor:
    a, b = inputs
    ma, mb = a.magnitude, b.magnitude
    carried = ma * b.error + mb * a.error + a.error * b.error
    if exact:
        return carried
    return carried + fmt.unit_roundoff * ma * mb + fmt.smallest_subnormal


def _transcendental(slope_at: Callable[[Tensor], Tensor]) -> Rule:
    """Sigmoid or tanh: the largest slope on ``[l - e, u + e]`` (at the point nearest 0,
    both being steepest there) times ``e``, plus the runtime's own error."""

    def rule(op: Op, inputs, fmt, exact) -> Tensor:
        (x,) = inputs
        nearest = torch.clamp(torch.zeros_like(x.lower), x.lower - x.error, x.upper + x.error)
        carried = slope_at(nearest) * x.error
        if exact:
            return carried
        u = fmt.unit_roundoff
        return carried + u * (TRANSCENDENTAL_ERROR + TRANSCENDENTAL_FLOOR)  # outputs within 1

    return rule


def _sigmoid_slope(v: Tensor) -> Tensor:
    s = torch.sigmoid(v)
    return s * (1 - s) * _BOUND_INFLATION


def _tanh_slope(v: Tensor) -> Tensor:
    return (1 - torch.tanh(v) ** 2) * _BOUND_INFLATION


# ------------------------------------------- the other elementwise functions
def _hull(x: _State) -> tuple[Tensor, Tensor]:
    """Where the float input may lie: ``[l - e, u + e]``."""
    return x.lower - x.error, x.upper + x.error


def _carry(slope: Tensor, error: Tensor) -> Tensor:
    """``slope * e``, 0 where ``e = 0`` (even for an infinite slope)."""
    return torch.where(error > 0, slope * error, torch.zeros_like(error))


def _assumed(fmt: FloatFormat, magnitude: Tensor) -> Tensor:
    """A library function's own error: the Sigmoid/Tanh assumption, relative to ``magnitude``."""
    u = fmt.unit_roundoff
    return u * (TRANSCENDENTAL_ERROR * magnitude + TRANSCENDENTAL_FLOOR)


def _rounded(fmt: FloatFormat, magnitude: Tensor) -> Tensor:
    """A correctly rounded IEEE operation: one unit roundoff of ``magnitude``."""
    return fmt.unit_roundoff * magnitude + fmt.smallest_subnormal


def _nearest_to_zero(x: _State) -> Tensor:
    """The smallest ``|v|`` over ``[l - e, u + e]`` (0 when it holds 0)."""
    lo, hi = _hull(x)
    return torch.where(lo > 0, lo, torch.where(hi < 0, -hi, torch.zeros_like(lo)))


def _exp_rule(op: Exp, inputs, fmt, exact) -> Tensor:
    (x,) = inputs
    top = torch.exp(_hull(x)[1]) * _BOUND_INFLATION
    carried = _carry(top, x.error)
    return carried if exact else carried + _assumed(fmt, top)


def _log_rule(op: Log, inputs, fmt, exact) -> Tensor:
    (x,) = inputs
    lo, hi = _hull(x)
    inside = lo > 0
    safe = torch.where(inside, lo, torch.ones_like(lo))
    slope = torch.where(inside, 1.0 / safe, torch.full_like(lo, math.inf)) * _BOUND_INFLATION
    carried = _carry(slope, x.error)
    if exact:
        return carried
    size = torch.maximum(torch.log(safe).abs(), torch.log(hi.clamp(min=1e-300)).abs())
    return carried + _assumed(fmt, torch.where(inside, size, torch.full_like(lo, math.inf)))


def _reciprocal_rule(op: Reciprocal, inputs, fmt, exact) -> Tensor:
    """``|1/a - 1/b| = |a - b| / (|a| |b|)``; infinite when the hull holds 0."""
    (x,) = inputs
    near = _nearest_to_zero(x)
    real_near = torch.where(
        x.lower > 0, x.lower, torch.where(x.upper < 0, -x.upper, torch.zeros_like(near))
    )
    carried = _carry(1.0 / (near * real_near) * _BOUND_INFLATION, x.error)
    return carried if exact else carried + _rounded(fmt, 1.0 / near)


def _sqrt_rule(op: Sqrt, inputs, fmt, exact) -> Tensor:
    """``|sqrt a - sqrt b| <= min(sqrt|a - b|, |a - b| / (sqrt a + sqrt b))``."""
    (x,) = inputs
    lo, hi = _hull(x)
    outside = (lo < 0) & (x.error > 0)  # the float input may be negative: NaN
    roots = torch.sqrt(lo.clamp(min=0)) + torch.sqrt(x.lower.clamp(min=0))
    lipschitz = torch.where(roots > 0, x.error / roots, torch.full_like(lo, math.inf))
    carried = torch.minimum(torch.sqrt(x.error), lipschitz) * _BOUND_INFLATION
    carried = torch.where(outside, torch.full_like(lo, math.inf), carried)
    return carried if exact else carried + _rounded(fmt, torch.sqrt(hi.clamp(min=0)))


def _pow_rule(op: Pow, inputs, fmt, exact) -> Tensor:
    (x,) = inputs
    p = float(op.exponent)
    if p == 0:
        return torch.zeros_like(x.error)
    lo, hi = _hull(x)
    inf = torch.full_like(lo, math.inf)
    if op.is_integer:
        far = torch.maximum(lo.abs(), hi.abs())
        near = _nearest_to_zero(x)
        edge = far if p > 0 else torch.where(near > 0, near, inf)
        slope, size = abs(p) * edge ** (p - 1), edge**p
    else:
        outside = (lo < 0) & (x.error > 0)
        base = hi.clamp(min=0) if p > 1 else lo.clamp(min=0)
        slope = torch.where(base > 0, abs(p) * base ** (p - 1), inf if p < 1 else 0.0)
        size = torch.where(base > 0, base**p, inf) if p < 0 else hi.clamp(min=0) ** p
        slope = torch.where(outside, inf, slope)
    carried = _carry(slope * _BOUND_INFLATION, x.error)
    if 0 < p < 1:  # Hoelder: |a^p - b^p| <= |a - b|^p on x >= 0
        carried = torch.minimum(carried, x.error**p * _BOUND_INFLATION)
        carried = torch.where((lo < 0) & (x.error > 0), inf, carried)
    if exact or p == 1:
        return carried
    return carried + _assumed(fmt, size)


def _wave_rule(op: Sin | Cos, inputs, fmt, exact) -> Tensor:
    """1-Lipschitz with values in [-1, 1]."""
    (x,) = inputs
    carried = torch.clamp(x.error, max=2.0)
    return carried if exact else carried + _assumed(fmt, torch.ones_like(carried))


def _erf_slope(v: Tensor) -> Tensor:
    return 2.0 / math.sqrt(math.pi) * torch.exp(-v * v) * _BOUND_INFLATION


def _sign_rule(op: Sign, inputs, fmt, exact) -> Tensor:
    """A jump of up to 2 where the float input may be on the other side of 0."""
    (x,) = inputs
    lo, hi = _hull(x)
    jumps = (x.error > 0) & (lo <= 0) & (hi >= 0)
    return torch.where(jumps, torch.full_like(lo, 2.0), torch.zeros_like(lo))


def _step_rule(op: Step, inputs, fmt, exact) -> Tensor:
    """A jump of 1 where the float input may be on the other side of 0."""
    (x,) = inputs
    lo, hi = _hull(x)
    jumps = (x.error > 0) & (lo <= 0) & (hi >= 0)
    return torch.where(jumps, torch.ones_like(lo), torch.zeros_like(lo))


def _trunc_rule(op: Trunc, inputs, fmt, exact) -> Tensor:
    """``|trunc a - trunc b| <= |a - b| + 1``; 0 where the hull stays in one integer cell."""
    (x,) = inputs
    lo, hi = _hull(x)
    moves = (x.error > 0) & (torch.trunc(lo) != torch.trunc(hi))
    return torch.where(moves, x.error + 1.0, torch.zeros_like(lo))


def _lipschitz_one(op: Abs | Clip, inputs, fmt, exact) -> Tensor:
    """1-Lipschitz and exact in floating point: ``e`` carries over."""
    return inputs[0].error.clone()


def _extremum(op: Max | Min, inputs, fmt, exact) -> Tensor:
    """``|max(a', b') - max(a, b)| <= max(|a' - a|, |b' - b|)`` (same for min); exact."""
    a, b = inputs
    return torch.maximum(a.error, b.error)


_RULES: dict[type[Op], Rule] = {
    Dense: _weighted,
    Conv2d: _weighted,
    ElementwiseAffine: _weighted,
    AvgPool2d: _avg_pool,
    Flatten: _moves,
    Reshape: _moves,
    Identity: _moves,
    Concat: _moves,
    Slice: _moves,
    Pad: _moves,
    ReLU: _moves,
    MaxPool2d: _moves,
    Add: _add,
    LeakyReLU: _leaky,
    Mul: _product,
    Sigmoid: _transcendental(_sigmoid_slope),
    Tanh: _transcendental(_tanh_slope),
    ConstMatMul: _matmul,
    ConvTranspose2d: _conv_transpose,
    ReduceSum: _reduce,
    Transpose: _moves,
    Gather: _moves,
    Broadcast: _moves,
    ConcatWithConstants: _moves,
    Exp: _exp_rule,
    Log: _log_rule,
    Reciprocal: _reciprocal_rule,
    Sqrt: _sqrt_rule,
    Pow: _pow_rule,
    Sin: _wave_rule,
    Cos: _wave_rule,
    Erf: _transcendental(_erf_slope),
    Sign: _sign_rule,
    Step: _step_rule,
    Trunc: _trunc_rule,
    Abs: _lipschitz_one,
    Clip: _lipschitz_one,
    Max: _extremum,
    Min: _extremum,
}


def error_rule_ops() -> frozenset[type[Op]]:
    """The IR op types :func:`rounding_error_bound` has a rule for."""
    return frozenset(_RULES)


# ------------------------------------------------------------------ the pass
def rounding_error_bound(
    network: Network,
    lower: np.ndarray,
    upper: np.ndarray,
    fmt: FloatFormat | str,
    exact_nodes: Collection[str] = (),
) -> np.ndarray:
    """A bound on ``|f_float(x) - f_real(x)|`` per output entry, for every ``x`` in the box.

    Args:
        network: the network as the model file wrote it (unsimplified; see the
            module docstring).
        lower, upper: the input box (flat).
        fmt: the floating-point format the model is computed in (a
            :class:`FloatFormat` or its name, ``'float32'``, ...).
        exact_nodes: nodes computed in real arithmetic (a query's own nodes).

    Returns:
        Flat float64 array of the output's size, non-negative.

    Raises:
        UnsupportedModelError: an op without a rule (naming it), or a value
            that may overflow the format.
    """
    fmt = FLOAT_FORMATS[fmt] if isinstance(fmt, str) else fmt
    check_supported(network)
    missing = sorted({n.op.kind for n in network.nodes if type(n.op) not in _RULES})
    if missing:
        raise UnsupportedModelError(
            f"no floating-point error rule for {', '.join(missing)}: declare the query's "
            "variables as real to analyse it in real arithmetic"
        )
    shape = (1, *network.input_shape)
    lo = torch.tensor(np.asarray(lower, np.float64)).reshape(shape)
    hi = torch.tensor(np.asarray(upper, np.float64)).reshape(shape)
    intervals: dict[str, Interval] = {network.input_name: Interval(lo, hi)}
    states: dict[str, _State] = {network.input_name: _State(lo, hi, torch.zeros_like(lo))}
    exact = frozenset(exact_nodes)
    with torch.no_grad():
        for node in network.nodes:
            states[node.name] = _step(node, intervals, states, fmt, node.name in exact)
    out = states[network.output_name].error.reshape(-1).numpy()
    return np.asarray(out, np.float64).copy()


def _step(
    node: Node,
    intervals: dict[str, Interval],
    states: Mapping[str, _State],
    fmt: FloatFormat,
    exact: bool,
) -> _State:
    interval = interval_step(node, intervals)
    intervals[node.name] = interval
    inputs = [states[name] for name in node.inputs]
    error = _RULES[type(node.op)](node.op, inputs, fmt, exact) * _BOUND_INFLATION
    state = _State(interval.lower, interval.upper, error)
    reach = float(state.magnitude.max()) if state.magnitude.numel() else 0.0
    if not math.isfinite(reach) or reach > fmt.largest / 2:
        raise UnsupportedModelError(
            f"node {node.name} ({node.op.kind}) may reach {reach:.3g} on this input box, "
            f"beyond what {fmt.name} represents reliably: no rounding bound"
        )
    return state
