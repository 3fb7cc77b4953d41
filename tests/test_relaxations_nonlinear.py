"""The nonlinear elementwise ops, Max/Min, and the composite ONNX converters built on them.

Per op of :mod:`verifiNN.ops.elementwise`:

* relaxation level: on 10,000 sampled points of random input boxes (points,
  tiny, wide and huge boxes, ends at 0 and at domain edges) the linear bounds
  and the interval transfer contain the function, for CROWN's parameters and
  for random and extreme ones (plus a hypothesis property test of single
  boxes); the backward rule bounds random linear functions (also with
  per-row parameters, as alpha-CROWN uses them); where the literature gives
  the tight lines (tangents, chords) they are the ones returned;
* graph level: on a small network using the op, IBP contains CROWN contains
  sampled outputs (corners, uniform points and projected-gradient extremes),
  CROWN without IBP is sound too, alpha-CROWN is inside CROWN, and the LP
  (for elementwise ops) is sound;
* ONNX level: hand-built models with the operators and the composites
  (Softmax, LogSoftmax, LayerNormalization, Gelu, Div and MatMul of data, a
  small attention block) agree with onnxruntime (relative 1e-5), and the
  attention block's bounds contain sampled outputs.

Points where an op is undefined (NaN: ``log`` and ``sqrt`` of negatives, ...)
are skipped: the relaxations bound the domain part of an interval.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from test_bounds_soundness import assert_contains, outputs, random_boxes, sample_points
from verifiNN.bounds import AlphaOptions, CrownOptions, compute_bounds
from verifiNN.bounds.relaxations import RELAXATIONS, LinearBounds
from verifiNN.io.onnx import load_onnx
from verifiNN.models.network import Network, Node
from verifiNN.ops import (
    Abs,
    Clip,
    Cos,
    Dense,
    Erf,
    Exp,
    Log,
    Max,
    Min,
    Pow,
    Reciprocal,
    Sign,
    Sin,
    Sqrt,
    as_tensor,
)

torch.set_num_threads(1)
TOL = 1e-12  # relative to the magnitudes a line's evaluation involves
OPS = {
    "exp": Exp(),
    "log": Log(),
    "reciprocal": Reciprocal(),
    "sqrt": Sqrt(),
    "sin": Sin(),
    "cos": Cos(),
    "sign": Sign(),
    "abs": Abs(),
    "erf": Erf(),
    "clip": Clip(-0.5, 1.2),
    "clip_low": Clip(low=0.3),
    "clip_high": Clip(high=-0.2),
    "clip_point": Clip(0.4, 0.4),
    "clip_crossed": Clip(1.0, -1.0),
    **{f"pow{p:g}": Pow(p) for p in (0.0, 1.0, 2.0, 3.0, 4.0, 5.0, -1.0, -2.0, -3.0)},
    **{f"pow{p:g}": Pow(p) for p in (0.5, 0.3, 1.5, 2.5, -0.5)},
}
PAIRS = {"max": Max(), "min": Min()}
TESTED_TYPES = {type(op) for op in OPS.values()} | {type(op) for op in PAIRS.values()}
"""The registry entries this file tests (read by ``test_bounds_relaxations``)."""


# ------------------------------------------------------------------ sampling
def sample_boxes(rng: np.random.Generator, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Boxes of every scale: points, tiny, wide and huge ones, ends at 0 and just above it."""
    center = rng.normal(0.0, 1.0, n) * rng.choice([0.01, 1.0, 5.0, 40.0], n)
    width = 10.0 ** rng.uniform(-10, 1.5, n)
    huge = rng.random(n) < 0.1
    width[huge] = 10.0 ** rng.uniform(1.5, 3, huge.sum())
    lower = center - width * rng.uniform(0, 1, n)
    upper = lower + width
    q = n // 10
    lower[:q] = 0.0  # ends exactly at the kink, jump or domain edge
    upper[q : 2 * q] = 0.0
    upper[2 * q : 3 * q] = lower[2 * q : 3 * q]  # points
    lower[3 * q : 4 * q] = 10.0 ** rng.uniform(-12, -1, q)  # just inside a domain edge
    upper[4 * q : 4 * q + q // 4] = lower[4 * q : 4 * q + q // 4] = 0.0
    lower, upper = np.minimum(lower, upper), np.maximum(lower, upper)
    return torch.tensor(lower), torch.tensor(upper)


def points_in(lower: torch.Tensor, upper: torch.Tensor, count: int, rng) -> torch.Tensor:
    """``(n, count)`` points of each box: both ends, then uniform samples (clamped inside)."""
    t = torch.tensor(rng.uniform(0, 1, (lower.shape[0], count)))
    t[:, 0], t[:, 1] = 0.0, 1.0
    x = lower[:, None] + (upper - lower)[:, None] * t
    return torch.minimum(torch.maximum(x, lower[:, None]), upper[:, None])


def alphas(mode: str, record, op, lower, upper, rng):
    default = record.default_alpha(op, lower, upper, True)
    if mode == "default":
        return default
    if mode == "random":
        return tuple(
            None if a is None else torch.tensor(rng.uniform(0, 1, a.shape)) for a in default
        )
    return tuple(
        None if a is None else torch.tensor(rng.integers(0, 2, a.shape) * 1.0) for a in default
    )


def _line(slope: torch.Tensor, icpt: torch.Tensor | None, x: torch.Tensor):
    icpt = torch.zeros_like(slope) if icpt is None else icpt
    term = slope[..., None] * x
    return term + icpt[..., None], term.abs() + icpt.abs()[..., None]


def check_contains(op, lower, upper, lin: LinearBounds, x: torch.Tensor) -> None:
    """Lines and interval contain ``f`` at ``x`` (NaN points skipped, infinities exact)."""
    record = RELAXATIONS[type(op)]
    for name, value in (("lw", lin.lw), ("lb", lin.lb), ("uw", lin.uw), ("ub", lin.ub)):
        assert value is None or not bool(torch.isnan(value).any()), f"{op}: NaN in {name}"
    f = op.forward(x)
    finite = torch.isfinite(f)
    low, low_size = _line(lin.lw, lin.lb, x)
    high, high_size = _line(lin.uw, lin.ub, x)
    zero = torch.zeros_like(f)
    slack_low = torch.where(finite, TOL * (1 + f.abs() + low_size), zero)
    slack_high = torch.where(finite, TOL * (1 + f.abs() + high_size), zero)
    below = finite & ~(low <= f + slack_low) | (f == -math.inf) & (low != -math.inf)
    above = finite & ~(high >= f - slack_high) | (f == math.inf) & (high != math.inf)
    for bad, side in ((below, "lower line above f"), (above, "upper line below f")):
        if bool(bad.any()):
            i, j = (int(v) for v in bad.nonzero()[0])
            box = f"[{lower[i].item()!r}, {upper[i].item()!r}]"
            raise AssertionError(
                f"{op}: {side} on {box} at x={x[i, j].item()!r}: f={f[i, j].item()!r}, "
                f"lines {low[i, j].item()!r} / {high[i, j].item()!r}"
            )
    lo, hi = record.interval(op, lower, upper)
    assert not bool(torch.isnan(lo).any() | torch.isnan(hi).any()), f"{op}: NaN interval"
    slack = torch.where(finite, TOL * (1 + f.abs()), zero)
    outside = finite & ~((lo[:, None] <= f + slack) & (hi[:, None] >= f - slack))
    outside |= (f == math.inf) & (hi[:, None] != math.inf) | (f == -math.inf) & (
        lo[:, None] != -math.inf
    )
    assert not bool(outside.any()), f"{op}: interval misses f on box {int(outside.nonzero()[0, 0])}"


# ------------------------------------------------------- relaxation level
@pytest.mark.parametrize("name", sorted(OPS))
@pytest.mark.parametrize("mode", ["default", "random", "extreme"])
def test_relaxation_and_interval_contain_the_function(name, mode):
    op = OPS[name]
    rng = np.random.default_rng(sorted(OPS).index(name))
    lower, upper = sample_boxes(rng, 500)
    lin = RELAXATIONS[type(op)].relax(
        op, lower, upper, alphas(mode, RELAXATIONS[type(op)], op, lower, upper, rng)
    )
    check_contains(op, lower, upper, lin, points_in(lower, upper, 20, rng))  # 10,000 points


@settings(max_examples=400, deadline=None)
@given(
    name=st.sampled_from(sorted(OPS)),
    lower=st.floats(-60, 60),
    log_width=st.floats(-12, 2.7),
    edge=st.sampled_from(["none", "lower at 0", "upper at 0", "point", "at 0"]),
    alpha=st.tuples(st.floats(0, 1), st.floats(0, 1)),
)
def test_relaxation_property(name, lower, log_width, edge, alpha):
    op = OPS[name]
    upper = lower + 10.0**log_width
    lower, upper = {
        "none": (lower, upper),
        "lower at 0": (0.0, abs(upper - lower)),
        "upper at 0": (-abs(upper - lower), 0.0),
        "point": (lower, lower),
        "at 0": (0.0, 0.0),
    }[edge]
    lo, hi = torch.tensor([lower], dtype=torch.float64), torch.tensor([upper], dtype=torch.float64)
    a = tuple(torch.tensor([v], dtype=torch.float64) for v in alpha)
    lin = RELAXATIONS[type(op)].relax(op, lo, hi, a)
    check_contains(op, lo, hi, lin, points_in(lo, hi, 300, np.random.default_rng(0)))


def check_backward(op, lower, upper, lin, rng, rows: int) -> None:
    """``lam^T f(x) >= new^T x + bias`` on corners and inner points (NaN/inf rows skipped)."""
    record = RELAXATIONS[type(op)]
    batch, shape = lower.shape[0], tuple(lower.shape[1:])
    lam = torch.tensor(rng.normal(size=(batch, rows, *shape)))
    lam = lam * torch.tensor(rng.random((batch, rows, *shape)) < 0.8)
    new, bias = record.backward(op, lin, lam)
    bias = torch.zeros(batch, rows, dtype=torch.float64) if bias is None else bias
    count = 48
    corner = torch.where(torch.rand(batch, count, *shape) < 0.5, lower[:, None], upper[:, None])
    inner = lower[:, None] + (upper - lower)[:, None] * torch.rand(batch, count, *shape)
    x = torch.minimum(torch.maximum(torch.cat([corner, inner], 1), lower[:, None]), upper[:, None])
    y = op.forward(x)
    usable = torch.isfinite(y.flatten(2)).all(-1)  # (B, P)
    y = torch.where(torch.isfinite(y), y, torch.zeros_like(y))
    lhs = torch.einsum("bm...,bp...->bmp", lam, y)
    rhs = torch.einsum("bm...,bp...->bmp", new.expand(batch, *new.shape[1:]), x) + bias[..., None]
    size = torch.einsum("bm...,bp...->bmp", lam.abs(), y.abs() + x.abs() * new.abs().amax((0, 1)))
    ok = (lhs >= rhs - TOL * 10 * (1 + size)) | ~usable[:, None, :] | (rhs == -math.inf)
    assert bool(ok.all()), f"{op}: backward bound above lam^T f by {(rhs - lhs)[~ok].max()}"


@pytest.mark.parametrize("name", sorted(OPS))
def test_backward_bounds_linear_functions(name):
    op = OPS[name]
    rng = np.random.default_rng(100 + sorted(OPS).index(name))
    record = RELAXATIONS[type(op)]
    lower, upper = sample_boxes(rng, 480)
    keep = upper - lower < 50  # beyond that exp and powers overflow the sampled sums
    lower, upper = lower[keep][:360].reshape(30, 3, 4), upper[keep][:360].reshape(30, 3, 4)
    default = record.default_alpha(op, lower, upper, True)
    check_backward(op, lower, upper, record.relax(op, lower, upper, default), rng, rows=4)
    per_row = tuple(
        None if a is None else torch.tensor(rng.uniform(0, 1, (30, 5, 3, 4))) for a in default
    )
    lin = record.relax(op, lower.unsqueeze(1), upper.unsqueeze(1), per_row)
    check_backward(op, lower, upper, lin, rng, rows=5)


def _pair_boxes(rng, n: int):
    (lx, ux), (ly, uy) = sample_boxes(rng, n), sample_boxes(rng, n)
    close = slice(0, n // 4)  # overlapping boxes: the interesting case
    ly[close], uy[close] = lx[close] + 0.1, ux[close] + 0.1
    return (lx, ly), (ux, uy)


@pytest.mark.parametrize("name", sorted(PAIRS))
def test_max_min_planes_and_interval_contain_the_function(name):
    op = PAIRS[name]
    rng = np.random.default_rng(7)
    record = RELAXATIONS[type(op)]
    (lx, ly), (ux, uy) = _pair_boxes(rng, 500)
    pb = record.relax(op, (lx, ly), (ux, uy), (None, None))
    x, y = points_in(lx, ux, 20, rng), points_in(ly, uy, 20, rng)
    x[:, 2], y[:, 2] = lx, uy  # the other two corners
    x[:, 3], y[:, 3] = ux, ly
    z = op.forward(x, y)
    low = pb.a_lower[:, None] * x + pb.b_lower[:, None] * y + pb.c_lower[:, None]
    high = pb.a_upper[:, None] * x + pb.b_upper[:, None] * y + pb.c_upper[:, None]
    tol = TOL * (1 + z.abs() + x.abs() + y.abs())
    assert bool((low <= z + tol).all()), f"{op}: lower plane above by {(low - z).max()}"
    assert bool((high >= z - tol).all()), f"{op}: upper plane below by {(z - high).max()}"
    lo, hi = record.interval(op, (lx, ly), (ux, uy))
    assert bool((lo[:, None] <= z).all()) and bool((hi[:, None] >= z).all())
    assert record.split_points(op) == (0.0,)


@pytest.mark.parametrize("name", sorted(PAIRS))
def test_max_min_backward_bounds_linear_functions(name):
    op = PAIRS[name]
    rng = np.random.default_rng(8)
    record = RELAXATIONS[type(op)]
    (lx, ly), (ux, uy) = _pair_boxes(rng, 240)
    keep = (ux - lx < 50) & (uy - ly < 50)
    lx, ly, ux, uy = (v[keep][:180].reshape(15, 3, 4) for v in (lx, ly, ux, uy))
    pb = record.relax(op, (lx, ly), (ux, uy), (None, None))
    lam = torch.tensor(rng.normal(size=(15, 5, 3, 4)))
    (lam_x, lam_y), bias = record.backward(op, pb, lam)
    x = lx[:, None] + (ux - lx)[:, None] * torch.rand(15, 128, 3, 4, dtype=torch.float64)
    y = ly[:, None] + (uy - ly)[:, None] * torch.rand(15, 128, 3, 4, dtype=torch.float64)
    lhs = torch.einsum("bm...,bp...->bmp", lam, op.forward(x, y))
    rhs = (
        torch.einsum("bm...,bp...->bmp", lam_x, x)
        + torch.einsum("bm...,bp...->bmp", lam_y, y)
        + bias[..., None]
    )
    size = torch.einsum("bm...,bp...->bmp", lam.abs(), x.abs() + y.abs())
    assert bool((lhs >= rhs - 1e-10 * (1 + size)).all()), f"{(rhs - lhs).max()}"


# ------------------------------------------------------------ tightness
def _lines(op, lower: float, upper: float, alpha=(0.5, 0.5)):
    lo, hi = torch.tensor([lower], dtype=torch.float64), torch.tensor([upper], dtype=torch.float64)
    a = tuple(torch.tensor([v], dtype=torch.float64) for v in alpha)
    lin = RELAXATIONS[type(op)].relax(op, lo, hi, a)
    return tuple(0.0 if v is None else float(v) for v in (lin.lw, lin.lb, lin.uw, lin.ub))


@pytest.mark.parametrize(
    ("op", "lower", "upper", "convex"),
    [
        (Exp(), -1.0, 2.0, True),
        (Reciprocal(), 0.5, 3.0, True),
        (Reciprocal(), -3.0, -0.5, False),
        (Log(), 0.5, 4.0, False),
        (Sqrt(), 0.25, 9.0, False),
        (Pow(2.0), -1.0, 3.0, True),
        (Pow(0.3), 0.1, 2.0, False),
        (Pow(-2.0), -3.0, -1.0, True),
        (Sin(), -2.5, -0.5, True),  # sin <= 0: convex
        (Cos(), -1.2, 1.0, False),  # cos >= 0: concave
    ],
    ids=repr,
)
def test_convex_pieces_get_the_tangent_and_the_chord(op, lower, upper, convex):
    alpha = 0.3
    lw, lb, uw, ub = _lines(op, lower, upper, (alpha, alpha))
    t = lower + alpha * (upper - lower)
    f = lambda v: float(op.forward(torch.tensor([v], dtype=torch.float64)))  # noqa: E731
    slope = (f(upper) - f(lower)) / (upper - lower)
    h = 1e-6
    tangent_slope = (f(t + h) - f(t - h)) / (2 * h)
    tangent, chord = (lw, lb) if convex else (uw, ub), (uw, ub) if convex else (lw, lb)
    assert tangent[0] == pytest.approx(tangent_slope, rel=1e-6)
    assert tangent[0] * t + tangent[1] == pytest.approx(f(t), rel=1e-9, abs=1e-12)
    assert chord[0] == pytest.approx(slope, rel=1e-9)
    assert chord[0] * lower + chord[1] == pytest.approx(f(lower), rel=1e-9, abs=1e-12)


@pytest.mark.parametrize(
    ("op", "lower", "upper"),
    [
        (Sin(), -1.0, 1.3),
        (Cos(), 0.4, 2.9),
        (Sin(), 2.0, 4.5),
        (Erf(), -0.7, 1.9),
        (Pow(3.0), -1, 2),
    ],
    ids=repr,
)
def test_lines_across_one_inflection_touch_the_function(op, lower, upper):
    """The S-shape lines are tangent to (or through an end of) the function on both sides."""
    lw, lb, uw, ub = _lines(op, lower, upper, (0.0, 0.0))
    x = torch.linspace(lower, upper, 20001, dtype=torch.float64)
    f = op.forward(x)
    gap_low, gap_high = float((f - (lw * x + lb)).min()), float((uw * x + ub - f).min())
    assert -1e-9 <= gap_low <= 1e-6 and -1e-9 <= gap_high <= 1e-6


def test_piecewise_ops_are_exact_off_their_split_points():
    for op, lower, upper in [
        (Sign(), 0.5, 2.0),
        (Sign(), -2.0, -0.1),
        (Abs(), -3.0, -1.0),
        (Clip(-1.0, 1.0), -0.5, 0.7),
        (Clip(-1.0, 1.0), 1.5, 4.0),
    ]:
        lw, lb, uw, ub = _lines(op, lower, upper)
        assert (lw, lb) == pytest.approx((uw, ub)), op
    record = RELAXATIONS[Clip]
    assert record.split_points(Clip(-1.0, 2.0)) == (-1.0, 2.0)
    assert record.split_points(Clip(high=0.5)) == (0.5,)
    assert RELAXATIONS[Sign].split_points(Sign()) == (0.0,)
    assert RELAXATIONS[Exp].split_points(Exp()) == ()


def test_sign_lines_pass_through_the_jump_ends():
    lw, lb, uw, ub = _lines(Sign(), -1.0, 2.0, (1.0, 1.0))
    assert (lw, lb) == pytest.approx((1.0, -1.0))  # through (0-, -1) and (2, 1)
    assert (uw, ub) == pytest.approx((2.0, 1.0))  # through (-1, -1) and (0+, 1)
    lw, lb, _, _ = _lines(Sign(), 0.0, 4.0, (1.0, 1.0))
    assert (lw, lb) == pytest.approx((0.25, 0.0))  # through sign(0) = 0 and (4, 1)


def test_unbounded_sides_are_infinite_constants():
    lw, lb, uw, ub = _lines(Reciprocal(), -1.0, 2.0)
    assert (lw, lb, uw, ub) == (0.0, -math.inf, 0.0, math.inf)
    lw, lb, _, _ = _lines(Log(), -1.0, 2.0)
    assert (lw, lb) == (0.0, -math.inf)
    _, _, uw, ub = _lines(Pow(-2.0), -1.0, 2.0)
    assert (uw, ub) == (0.0, math.inf)


# ------------------------------------------------------------ graph level
POSITIVE_INPUT = {
    "log",
    "reciprocal",
    "sqrt",
    "pow-1",
    "pow-2",
    "pow0.5",
    "pow0.3",
    "pow-0.5",
    "pow1.5",
}
GRAPH_OPS = [
    "exp",
    "log",
    "reciprocal",
    "sqrt",
    "sin",
    "cos",
    "sign",
    "abs",
    "erf",
    "clip",
    "pow2",
    "pow3",
    "pow-1",
    "pow-2",
    "pow0.5",
    "pow-0.5",
    "pow1.5",
]
FAST_ALPHA = AlphaOptions(iterations=5, lr=0.3)
RAW_CROWN = CrownOptions(intersect_ibp=False)


def _dense(rng, n_in: int, n_out: int, scale: float = 1.0) -> Dense:
    w = rng.normal(0.0, scale / np.sqrt(n_in), size=(n_out, n_in))
    return Dense(as_tensor(w), as_tensor(rng.normal(0.0, 0.5, size=n_out)))


def _lifted(first: Dense, lower: np.ndarray, upper: np.ndarray, floor: float) -> Dense:
    """``first`` with its bias raised so that its outputs stay above ``floor`` on the boxes."""
    w = first.weight.numpy()
    center, radius = (lower + upper) / 2, (upper - lower) / 2
    least = (center @ w.T - radius @ np.abs(w).T).min(0) + first.bias.numpy()
    return Dense(first.weight, as_tensor(first.bias.numpy() + np.maximum(floor - least, 0.0)))


def op_network(name: str, rng, lower: np.ndarray, upper: np.ndarray) -> Network:
    """``input -> Dense -> op -> Dense -> ReLU -> Dense`` (Max/Min: of two Dense branches)."""
    first = _dense(rng, 3, 5)
    if name in PAIRS:
        nodes = [
            Node("fc0", first, ("input",)),
            Node("fc0b", _dense(rng, 3, 5), ("input",)),
            Node("act", PAIRS[name], ("fc0", "fc0b")),
        ]
    else:
        if name in POSITIVE_INPUT:
            first = _lifted(first, lower, upper, 0.2)
        nodes = [Node("fc0", first, ("input",)), Node("act", OPS[name], ("fc0",))]
    nodes += [
        Node("fc1", _dense(rng, 5, 4), ("act",)),
        Node("relu", OPS["clip_low"].__class__(low=0.0), ("fc1",)),
        Node("out", _dense(rng, 4, 2, scale=2.0), ("relu",)),
    ]
    return Network.from_graph((3,), nodes)


def _bounds(network, lower, upper, C, method):
    options = {"alpha-crown": FAST_ALPHA, "raw-crown": RAW_CROWN}.get(method)
    name = "crown" if method == "raw-crown" else method
    return compute_bounds(network, (lower, upper), C, name, options=options)


@pytest.mark.parametrize("name", [*GRAPH_OPS, *sorted(PAIRS)])
def test_graph_bounds_are_ordered_and_contain_sampled_outputs(name):
    rng = np.random.default_rng(GRAPH_OPS.index(name) if name in GRAPH_OPS else 50)
    lower, upper = random_boxes(rng, 3, 3, 0.6)
    network = op_network(name, rng, lower, upper)
    C = rng.normal(size=(3, 2))
    values = outputs(network, sample_points(network, lower, upper, C, rng, 90))
    results = {m: _bounds(network, lower, upper, C, m) for m in ("ibp", "crown", "raw-crown")}
    results["alpha-crown"] = _bounds(network, lower, upper, C, "alpha-crown")
    for method, result in results.items():
        assert bool(torch.isfinite(result.lower).all() & torch.isfinite(result.upper).all()), method
        assert_contains(result, C, values, f"{method} on {name}")
    ibp, crown, alpha = results["ibp"], results["crown"], results["alpha-crown"]
    tol = 1e-9 * (1 + ibp.lower.abs() + ibp.upper.abs())
    assert bool((crown.lower >= ibp.lower - tol).all() & (crown.upper <= ibp.upper + tol).all())
    assert bool((alpha.lower >= crown.lower).all() & (alpha.upper <= crown.upper).all())


@pytest.mark.parametrize("name", ["exp", "log", "sin", "sign", "clip", "pow2", "pow3", "sqrt"])
def test_lp_is_sound_with_the_registry_encoding(name):
    rng = np.random.default_rng(60 + GRAPH_OPS.index(name))
    lower, upper = random_boxes(rng, 3, 2, 0.6)
    network = op_network(name, rng, lower, upper)
    C = rng.normal(size=(2, 2))
    values = outputs(network, sample_points(network, lower, upper, C, rng, 60))
    lp = compute_bounds(network, (lower, upper), C, "lp")
    crown = compute_bounds(network, (lower, upper), C, "crown")
    assert_contains(lp, C, values, f"lp on {name}")
    assert bool((lp.lower >= crown.lower - 1e-9 * (1 + crown.lower.abs())).all())


# ------------------------------------------------------------- ONNX level
FLOAT = TensorProto.FLOAT
MODEL_RNG = np.random.default_rng(2026)


def _f32(*shape: int) -> np.ndarray:
    return MODEL_RNG.normal(size=shape).astype(np.float32)


def _node(op: str, inputs: list[str], output: str, **attrs) -> onnx.NodeProto:
    return helper.make_node(op, inputs, [output], name=f"{op.lower()}_{output}", **attrs)


def _model(nodes, x_shape, inits=None, opset: int = 17) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes,
        "test",
        [helper.make_tensor_value_info("X", FLOAT, x_shape)],
        [helper.make_tensor_value_info("Y", FLOAT, None)],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in (inits or {}).items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def _positive(x: str = "X", out: str = "P", shift: float = 0.3) -> list[onnx.NodeProto]:
    """``P = |X| + shift`` (inputs inside every domain)."""
    return [_node("Abs", [x], f"{out}_abs"), _node("Add", [f"{out}_abs", f"{out}_c"], out)]


def _attention(opset: int = 17, shape=(1, 3, 4)) -> onnx.ModelProto:
    """``softmax(Q K^T / 2) V`` with ``Q, K, V`` products of ``X`` with constant matrices."""
    d = shape[-1]
    perm = [*range(len(shape) - 2), len(shape) - 1, len(shape) - 2]
    nodes = [
        _node("MatMul", ["X", "Wq"], "Q"),
        _node("MatMul", ["X", "Wk"], "K"),
        _node("MatMul", ["X", "Wv"], "V"),
        _node("Transpose", ["K"], "Kt", perm=perm),
        _node("MatMul", ["Q", "Kt"], "S"),
        _node("Mul", ["S", "half"], "Ss"),
        _node("Softmax", ["Ss"], "A", axis=-1),
        _node("MatMul", ["A", "V"], "Y"),
    ]
    inits = {"Wq": _f32(d, d), "Wk": _f32(d, d), "Wv": _f32(d, d), "half": np.float32(0.5)}
    return _model(nodes, list(shape), inits, opset)


def _unary(op: str, positive: bool = False, **attrs) -> onnx.ModelProto:
    if not positive:
        return _model([_node(op, ["X"], "Y", **attrs)], [1, 6])
    nodes = [*_positive(), _node(op, ["P"], "Y", **attrs)]
    return _model(nodes, [1, 6], {"P_c": np.float32(0.3)})


def _pow(exponent, positive: bool) -> onnx.ModelProto:
    x = "P" if positive else "X"
    nodes = [*(_positive() if positive else []), _node("Pow", [x, "e"], "Y")]
    return _model(nodes, [1, 6], {"P_c": np.float32(0.3), "e": np.asarray(exponent)})


ONNX_CASES = {
    **{
        op.lower(): (lambda op=op: _unary(op)) for op in ("Exp", "Erf", "Sin", "Cos", "Sign", "Abs")
    },
    **{op.lower(): (lambda op=op: _unary(op, True)) for op in ("Log", "Sqrt", "Reciprocal")},
    "pow2": lambda: _pow(np.float32(2.0), False),
    "pow3": lambda: _pow(np.float32(3.0), False),
    "pow_half": lambda: _pow(np.float32(0.5), True),
    "pow_neg_frac": lambda: _pow(np.float32(-1.5), True),
    "pow_int64_neg": lambda: _pow(np.int64(-2), True),
    "pow_const_base": lambda: _model(
        [_node("Pow", ["b", "X"], "Y")], [1, 6], {"b": np.float32(2.5)}
    ),
    "clip_inputs": lambda: _model(
        [_node("Clip", ["X", "lo", "hi"], "Y")],
        [1, 6],
        {"lo": np.float32(-0.3), "hi": np.float32(0.4)},
        opset=13,
    ),
    "clip_only_max": lambda: _model(
        [_node("Clip", ["X", "", "hi"], "Y")], [1, 6], {"hi": np.float32(0.1)}, opset=13
    ),
    "clip_attributes": lambda: _model(
        [_node("Clip", ["X"], "Y", min=-0.2, max=0.5)], [1, 6], opset=10
    ),
    "max_of_data": lambda: _model(
        [_node("Tanh", ["X"], "t"), _node("Max", ["X", "t"], "Y")], [1, 6]
    ),
    "max_variadic": lambda: _model(
        [_node("Sin", ["X"], "s"), _node("Max", ["X", "s", "c"], "Y")],
        [1, 6],
        {"c": np.float32(0.1)},
    ),
    "min_broadcast_constant": lambda: _model(
        [_node("Min", ["X", "c"], "Y")], [1, 2, 3], {"c": _f32(3)}
    ),
    "min_broadcast_data": lambda: _model(
        [
            _node("ReduceSum", ["X", "axes"], "r", keepdims=1),
            _node("Min", ["X", "r"], "Y"),
        ],
        [1, 2, 3],
        {"axes": np.array([2], np.int64)},
        opset=13,
    ),
    "softmax_last_axis": lambda: _model(
        [_node("Softmax", ["X"], "Y", axis=-1)], [1, 2, 5], opset=13
    ),
    "softmax_middle_axis": lambda: _model(
        [_node("Softmax", ["X"], "Y", axis=1)], [1, 3, 4], opset=13
    ),
    "softmax_opset11_coerced": lambda: _model(
        [_node("Softmax", ["X"], "Y", axis=1)], [1, 2, 5], opset=11
    ),
    "log_softmax": lambda: _model([_node("LogSoftmax", ["X"], "Y", axis=-1)], [1, 2, 5], opset=13),
    "layer_norm_last": lambda: _model(
        [_node("LayerNormalization", ["X", "g", "b"], "Y", axis=-1, epsilon=1e-5)],
        [1, 3, 4],
        {"g": _f32(4), "b": _f32(4)},
    ),
    "layer_norm_two_axes": lambda: _model(
        [_node("LayerNormalization", ["X", "g"], "Y", axis=1, epsilon=1e-3)],
        [1, 3, 4],
        {"g": _f32(3, 4)},
    ),
    "gelu_erf": lambda: _model([_node("Gelu", ["X"], "Y")], [1, 6], opset=20),
    "gelu_tanh": lambda: _model([_node("Gelu", ["X"], "Y", approximate="tanh")], [1, 6], opset=20),
    "gelu_as_exported": lambda: _model(
        [
            _node("Div", ["X", "r2"], "d"),
            _node("Erf", ["d"], "e"),
            _node("Add", ["e", "one"], "a"),
            _node("Mul", ["X", "a"], "m"),
            _node("Mul", ["m", "half"], "Y"),
        ],
        [1, 6],
        {"r2": np.float32(math.sqrt(2)), "one": np.float32(1.0), "half": np.float32(0.5)},
    ),
    "div_by_data": lambda: _model(
        [_node("Tanh", ["X"], "t"), *_positive("t"), _node("Div", ["X", "P"], "Y")],
        [1, 6],
        {"P_c": np.float32(0.5)},
    ),
    "div_constant_by_data": lambda: _model(
        [*_positive(), _node("Div", ["c", "P"], "Y")],
        [1, 2, 3],
        {"P_c": np.float32(0.5), "c": _f32(3)},
    ),
    "div_broadcast": lambda: _model(
        [
            *_positive(),
            _node("ReduceSum", ["P", "axes"], "s", keepdims=1),
            _node("Div", ["X", "s"], "Y"),
        ],
        [1, 2, 3],
        {"P_c": np.float32(0.5), "axes": np.array([2], np.int64)},
        opset=13,
    ),
    "matmul_vector_by_matrix": lambda: _model(
        [
            _node("Slice", ["X", "s0", "s1"], "a"),
            _node("Reshape", ["X", "shape"], "B"),
            _node("MatMul", ["a", "B"], "Y"),
        ],
        [6],
        {
            "s0": np.array([0], np.int64),
            "s1": np.array([3], np.int64),
            "shape": np.array([3, 2], np.int64),
        },
    ),
    "attention": lambda: _attention(),
    "attention_heads": lambda: _attention(shape=(1, 2, 3, 4)),
}


def _session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), options)


def _load_and_compare(model: onnx.ModelProto, tmp_path: Path, n: int = 8) -> Network:
    path = tmp_path / "model.onnx"
    onnx.save(model, path)
    network = load_onnx(path)
    full = [1 if d is None or isinstance(d, str) else d for d in network.origin.input_shape]
    X = MODEL_RNG.normal(size=(n, *full)).astype(np.float32)
    session = _session(path)
    ref = np.stack([session.run(None, {"X": x})[0].ravel() for x in X])
    ours = network.get_output(X.reshape(n, -1).astype(np.float64))
    scale = max(1.0, float(np.abs(ref).max()))
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-5 * scale)
    return network


@pytest.mark.parametrize("case", sorted(ONNX_CASES))
def test_onnx_models_match_onnxruntime(case, tmp_path):
    network = _load_and_compare(ONNX_CASES[case](), tmp_path)
    assert not any(type(node.op).__name__ == "Op" for node in network.nodes)


def test_attention_block_bounds_contain_sampled_outputs(tmp_path):
    network = _load_and_compare(_attention(), tmp_path)
    rng = np.random.default_rng(11)
    lower, upper = random_boxes(rng, network.input_size, 2, 0.15)
    C = rng.normal(size=(3, network.output_size))
    values = outputs(network, sample_points(network, lower, upper, C, rng, 90))
    crown = _bounds(network, lower, upper, C, "crown")
    for method in ("ibp", "raw-crown", "alpha-crown"):
        result = _bounds(network, lower, upper, C, method)
        assert not bool(torch.isnan(result.lower).any() | torch.isnan(result.upper).any())
        if method != "raw-crown":  # without IBP a sum of exps may get a bound below 0
            assert bool(torch.isfinite(result.lower).all()), method
        assert_contains(result, C, values, f"{method} on attention")
    assert_contains(crown, C, values, "crown on attention")


def test_softmax_outputs_are_bounded_inside_the_unit_interval(tmp_path):
    network = _load_and_compare(ONNX_CASES["softmax_last_axis"](), tmp_path)
    lower, upper = -np.ones((1, 10)), np.ones((1, 10))
    result = compute_bounds(network, (lower, upper), None, "crown")
    assert bool((result.lower >= -1e-9).all()) and bool((result.upper <= 1 + 1e-9).all())
    assert bool((result.lower > 0).all())  # exp > 0 and the sum is finite: strictly positive


@settings(max_examples=200, deadline=None)
@given(
    k=st.integers(-60, 60),
    scale=st.sampled_from([1.0, 1.5, 3.0, 0.7]),
    sign=st.sampled_from([1.0, -1.0]),
)
def test_exact_points_are_kept_exact_and_others_widened(k, scale, sign):
    """``exp(0) = 1`` and ``1 / 2^k`` are exact in floating point, so their intervals are not
    widened (a softmax's ``1 / (1 + ...)`` can then reach exactly 1); every other end is
    widened outward of the exact value (checked in rational arithmetic)."""
    from fractions import Fraction

    zero = torch.zeros(1, 1, dtype=torch.float64)
    low, high = RELAXATIONS[Exp].interval(Exp(), zero, zero)
    assert low.item() == 1.0 and high.item() == 1.0
    x = sign * scale * 2.0**k
    t = torch.full((1, 1), x, dtype=torch.float64)
    low, high = RELAXATIONS[Reciprocal].interval(Reciprocal(), t, t)
    exact = 1 / Fraction(x)
    assert Fraction(low.item()) <= exact <= Fraction(high.item())
    if scale == 1.0:
        assert low.item() == high.item() == float(exact)
    else:
        assert low.item() < high.item()
