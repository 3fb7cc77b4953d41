"""Per-rule soundness: every registry relaxation and every affine backward rule.

For each entry of ``RELAXATIONS``: on 1,000 sampled intervals (wide, tiny,
one-sided, across the inflection, endpoints at 0) the linear bounds and the
interval transfer contain the function at sampled points, for CROWN's default
parameters and for random and extreme ones; the backward rule bounds random
linear functions. For each affine rule: the backward step is the exact
vector-Jacobian product and the interval rule is exact on boxes.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from test_relaxations_integer import TESTED_TYPES as INTEGER_TESTED
from test_relaxations_nonlinear import TESTED_TYPES as NONLINEAR_TESTED
from verifiNN.bounds.affine import AFFINE_RULES, generic_rule
from verifiNN.bounds.relaxations import RELAXATIONS
from verifiNN.ops import (
    Add,
    AvgPool2d,
    Broadcast,
    Concat,
    ConcatWithConstants,
    ConstMatMul,
    Conv2d,
    ConvTranspose2d,
    Dense,
    ElementwiseAffine,
    Flatten,
    Gather,
    Identity,
    LeakyReLU,
    MaxPool2d,
    Mul,
    Pad,
    ReduceSum,
    ReLU,
    Reshape,
    Sigmoid,
    Slice,
    Tanh,
    Transpose,
    as_tensor,
)

torch.set_num_threads(1)
TOL = 1e-10
ELEMENTWISE = [
    ReLU(),
    LeakyReLU(0.01),
    LeakyReLU(0.3),
    LeakyReLU(-0.5),
    LeakyReLU(2.5),
    Sigmoid(),
    Tanh(),
]
POOLS = [
    (MaxPool2d((2, 2), (1, 2), (1, 0, 0, 1)), (2, 4, 5)),
    (MaxPool2d((3, 3), (2, 2), (1, 1, 1, 1)), (1, 5, 5)),
    (MaxPool2d((1, 2), (1, 2), (0, 0, 0, 0)), (3, 2, 4)),
]


def sample_intervals(rng: np.random.Generator, n: int = 1000) -> tuple[torch.Tensor, torch.Tensor]:
    """Intervals of many scales; a quarter touch 0 or sit near the inflection."""
    center = rng.normal(0.0, 1.0, n) * rng.choice([0.01, 1.0, 5.0], n)
    width = 10.0 ** rng.uniform(-9, 1.3, n)
    lower = center - width * rng.uniform(0, 1, n)
    upper = lower + width
    q = n // 8
    lower[:q], upper[q : 2 * q] = 0.0, 0.0  # endpoints exactly at the kink / inflection
    upper[2 * q : 3 * q] = lower[2 * q : 3 * q]  # point intervals
    lower, upper = np.minimum(lower, upper), np.maximum(lower, upper)
    return torch.tensor(lower), torch.tensor(upper)


def _alphas(mode: str, record, op, lower, upper, rng):
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


def check_elementwise(op, lower, upper, alpha) -> None:
    record = RELAXATIONS[type(op)]
    lin = record.relax(op, lower, upper, alpha)
    t = torch.linspace(0, 1, 41, dtype=torch.float64)
    x = lower[:, None] + (upper - lower)[:, None] * t  # endpoints included
    x = torch.cat([x, upper[:, None]], dim=1)
    f = op.forward(x)
    lb = 0 if lin.lb is None else lin.lb[:, None]
    ub = 0 if lin.ub is None else lin.ub[:, None]
    low = lin.lw[:, None] * x + lb
    high = lin.uw[:, None] * x + ub
    tol = TOL * (1 + f.abs())
    assert bool((low <= f + tol).all()), f"{op}: lower line above f by {(low - f).max()}"
    assert bool((high >= f - tol).all()), f"{op}: upper line below f by {(f - high).max()}"
    lo, hi = record.interval(op, lower, upper)
    assert bool((lo[:, None] <= f + tol).all()) and bool((hi[:, None] >= f - tol).all())


@pytest.mark.parametrize("op", ELEMENTWISE, ids=repr)
@pytest.mark.parametrize("mode", ["default", "random", "extreme"])
def test_elementwise_relaxation_contains_function(op, mode):
    rng = np.random.default_rng(0)
    lower, upper = sample_intervals(rng)
    alpha = _alphas(mode, RELAXATIONS[type(op)], op, lower, upper, rng)
    check_elementwise(op, lower, upper, alpha)


@settings(max_examples=200, deadline=None)
@given(
    lower=st.floats(-30, 30),
    width=st.floats(0, 40),
    alpha=st.tuples(st.floats(0, 1), st.floats(0, 1)),
    which=st.sampled_from(ELEMENTWISE),
)
def test_relaxation_property(lower, width, alpha, which):
    lo = torch.tensor([lower], dtype=torch.float64)
    hi = lo + width
    check_elementwise(which, lo, hi, tuple(torch.tensor([a], dtype=torch.float64) for a in alpha))


def test_relu_is_exact_when_stable_and_triangle_otherwise():
    record = RELAXATIONS[ReLU]
    lower = torch.tensor([-2.0, 0.5, -3.0, -1.0])
    upper = torch.tensor([-1.0, 2.0, 1.0, 3.0])
    lin = record.relax(ReLU(), lower, upper, record.default_alpha(ReLU(), lower, upper, True))
    assert lin.lw.tolist() == [0.0, 1.0, 0.0, 1.0]  # adaptive: 1 iff u > -l
    assert lin.uw.tolist() == [0.0, 1.0, 0.25, 0.75]
    assert lin.ub.tolist() == [0.0, 0.0, 0.75, 0.75]


def _random_lambda(rng, batch: int, rows: int, shape) -> torch.Tensor:
    lam = torch.tensor(rng.normal(size=(batch, rows, *shape)))
    return lam * torch.tensor(rng.random((batch, rows, *shape)) < 0.8)  # some exact zeros


def _check_backward(op, lower, upper, lin, rng, rows: int) -> None:
    record = RELAXATIONS[type(op)]
    batch, shape = lower.shape[0], tuple(lower.shape[1:])
    out_shape = tuple(op.forward(lower).shape[1:])
    lam = _random_lambda(rng, batch, rows, out_shape)
    new, bias = record.backward(op, lin, lam)
    bias = torch.zeros(batch, rows, dtype=torch.float64) if bias is None else bias
    points = 64
    corner = torch.where(torch.rand(batch, points, *shape) < 0.5, lower[:, None], upper[:, None])
    inner = lower[:, None] + (upper - lower)[:, None] * torch.rand(batch, points, *shape)
    x = torch.cat([corner, inner], dim=1).to(torch.float64)
    y = op.forward(x.reshape(-1, *shape)).reshape(batch, 2 * points, *out_shape)
    lhs = torch.einsum("bm...,bp...->bmp", lam, y)
    rhs = torch.einsum("bm...,bp...->bmp", new.expand(batch, *new.shape[1:]), x) + bias[..., None]
    assert bool((lhs >= rhs - TOL * (1 + lhs.abs())).all()), f"{op}: {(rhs - lhs).max()}"


@pytest.mark.parametrize("op", ELEMENTWISE, ids=repr)
def test_elementwise_backward_bounds_linear_functions(op):
    rng = np.random.default_rng(1)
    record = RELAXATIONS[type(op)]
    lower, upper = sample_intervals(rng, 600)
    lower, upper = lower.reshape(50, 3, 4), upper.reshape(50, 3, 4)
    default = record.default_alpha(op, lower, upper, True)
    _check_backward(op, lower, upper, record.relax(op, lower, upper, default), rng, rows=4)
    # per-row parameters, as alpha-CROWN uses them: shape (B, rows, *shape)
    alpha = tuple(
        None if a is None else torch.tensor(rng.uniform(0, 1, (50, 5, 3, 4))) for a in default
    )
    lin = record.relax(op, lower.unsqueeze(1), upper.unsqueeze(1), alpha)
    _check_backward(op, lower, upper, lin, rng, rows=5)


@pytest.mark.parametrize(("op", "shape"), POOLS, ids=lambda v: repr(v))
def test_maxpool_relaxation_bounds_linear_functions(op, shape):
    rng = np.random.default_rng(2)
    record = RELAXATIONS[MaxPool2d]
    center = torch.tensor(rng.normal(size=(40, *shape)))
    radius = torch.tensor(rng.uniform(0, 1, size=(40, *shape)) ** 3)
    lower, upper = center - radius, center + radius
    _check_backward(op, lower, upper, record.relax(op, lower, upper, (None, None)), rng, rows=6)
    lo, hi = record.interval(op, lower, upper)
    x = lower + (upper - lower) * torch.rand_like(lower)
    y = op.forward(x)
    assert bool((lo <= y).all()) and bool((y <= hi).all())


def _product_boxes(rng, n: int):
    lows = [sample_intervals(rng, n) for _ in range(2)]
    return tuple(lo for lo, _ in lows), tuple(hi for _, hi in lows)


def test_product_relaxation_contains_function():
    rng = np.random.default_rng(3)
    record = RELAXATIONS[Mul]
    (lx, ly), (ux, uy) = _product_boxes(rng, 1000)
    pb = record.relax(Mul(), (lx, ly), (ux, uy), ())
    t = torch.rand(1000, 64, 2, dtype=torch.float64)
    t[:, :4] = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])  # the corners
    x = lx[:, None] + (ux - lx)[:, None] * t[..., 0]
    y = ly[:, None] + (uy - ly)[:, None] * t[..., 1]
    z = x * y
    low = pb.a_lower[:, None] * x + pb.b_lower[:, None] * y + pb.c_lower[:, None]
    high = pb.a_upper[:, None] * x + pb.b_upper[:, None] * y + pb.c_upper[:, None]
    tol = TOL * (1 + z.abs() + (x * y).abs())
    assert bool((low <= z + tol).all()), f"lower plane above x*y by {(low - z).max()}"
    assert bool((high >= z - tol).all()), f"upper plane below x*y by {(z - high).max()}"
    lo, hi = record.interval(Mul(), (lx, ly), (ux, uy))
    assert bool((lo[:, None] <= z + tol).all()) and bool((hi[:, None] >= z - tol).all())
    # the interval is tight: attained at a corner
    corner = z[:, :4]
    assert torch.allclose(corner.min(1).values, lo) and torch.allclose(corner.max(1).values, hi)


def test_product_backward_bounds_linear_functions():
    rng = np.random.default_rng(4)
    record = RELAXATIONS[Mul]
    (lx, ly), (ux, uy) = _product_boxes(rng, 240)
    lx, ly, ux, uy = (v.reshape(20, 3, 4) for v in (lx, ly, ux, uy))
    pb = record.relax(Mul(), (lx, ly), (ux, uy), ())
    lam = _random_lambda(rng, 20, 5, (3, 4))
    (lam_x, lam_y), bias = record.backward(Mul(), pb, lam)
    x = lx[:, None] + (ux - lx)[:, None] * torch.rand(20, 128, 3, 4, dtype=torch.float64)
    y = ly[:, None] + (uy - ly)[:, None] * torch.rand(20, 128, 3, 4, dtype=torch.float64)
    lhs = torch.einsum("bm...,bp...->bmp", lam, x * y)
    rhs = (
        torch.einsum("bm...,bp...->bmp", lam_x, x)
        + torch.einsum("bm...,bp...->bmp", lam_y, y)
        + bias[..., None]
    )
    assert bool((lhs >= rhs - TOL * (1 + lhs.abs())).all()), f"{(rhs - lhs).max()}"


def test_every_registry_entry_is_tested():
    """Here or in ``test_relaxations_nonlinear`` (the elementwise functions, Max and Min)."""
    tested = {type(op) for op in ELEMENTWISE} | {MaxPool2d, Mul} | NONLINEAR_TESTED | INTEGER_TESTED
    assert tested == set(RELAXATIONS)
    assert all(callable(record.split_points) for record in RELAXATIONS.values())
    assert RELAXATIONS[ReLU].split_points(ReLU()) == (0.0,)


# -------------------------------------------------------------- affine rules
def _t(rng, *shape, scale=1.0):
    return as_tensor(rng.normal(0.0, scale, size=shape))


def affine_cases(rng):
    """``(op, input shapes)`` for every affine op type, with awkward geometry."""
    return [
        (Dense(_t(rng, 5, 7), _t(rng, 5)), [(7,)]),
        (Conv2d(_t(rng, 4, 3, 3, 2), _t(rng, 4), (2, 1), (1, 0, 2, 1), (1, 1), 1), [(3, 7, 6)]),
        (Conv2d(_t(rng, 4, 1, 2, 3), _t(rng, 4), (1, 2), (0, 1, 1, 0), (2, 1), 2), [(2, 6, 7)]),
        (Conv2d(_t(rng, 6, 1, 3, 3), _t(rng, 6), (3, 2), (1, 1, 1, 1), (1, 1), 3), [(3, 8, 8)]),
        (ElementwiseAffine(_t(rng, 2, 1, 1), _t(rng, 1, 3, 1)), [(2, 3, 4)]),
        (AvgPool2d((2, 3), (2, 1), (1, 1, 0, 1), count_include_pad=False), [(2, 5, 6)]),
        (AvgPool2d((3, 3), (2, 2), (1, 1, 1, 1), count_include_pad=True), [(2, 6, 5)]),
        (AvgPool2d((2, 2), (2, 2), (0, 0, 0, 0)), [(1, 4, 4)]),
        (Flatten(), [(2, 3, 2)]),
        (Reshape((3, 4)), [(12,)]),
        (Identity(), [(5,)]),
        (Pad((1, 0, 2, 1), 0.7), [(2, 3, 3)]),
        (Pad((0, 2, 0, 0), 0.0), [(1, 2, 2)]),
        (Concat(0), [(2, 3), (1, 3), (4, 3)]),
        (Concat(1), [(2, 2, 2), (2, 3, 2)]),
        (Add(), [(3, 2), (3, 2)]),
        (Slice(1, 1, 6, 2), [(2, 7, 3)]),
        (Slice(0, 0, 1), [(3, 2)]),
        (ConstMatMul(_t(rng, 3, 4, 5), _t(rng, 5)), [(3, 2, 4)]),
        (ConstMatMul(_t(rng, 3, 4, 5), _t(rng, 3, 1, 5)), [(1, 2, 4)]),  # data broadcast
        (ConstMatMul(_t(rng, 6, 4), _t(rng, 6, 1), left=True), [(2, 4, 3)]),
        (
            ConvTranspose2d(_t(rng, 4, 3, 3, 2), _t(rng, 3), (2, 1), (1, 0, 0, 1), (1, 0), (1, 2)),
            [(4, 3, 4)],
        ),
        (
            ConvTranspose2d(
                _t(rng, 4, 1, 2, 2), _t(rng, 2), (2, 2), (0, 1, 1, 0), (1, 1), (1, 1), 2
            ),
            [(4, 3, 3)],
        ),
        (ReduceSum((0, 2), 0.5), [(2, 3, 4)]),
        (ReduceSum((1,), -1.5), [(3, 4)]),
        (Transpose((2, 0, 1)), [(2, 3, 4)]),
        (Gather(1, (2, 0, 0, 3)), [(2, 4, 3)]),
        (Broadcast((3, 2, 4)), [(1, 2, 1)]),
        (ConcatWithConstants(1, _t(rng, 2, 3, 2), (-1, 1, -1, 2)), [(2, 2, 2), (2, 1, 2)]),
    ]


AFFINE_CASES = len(affine_cases(np.random.default_rng(0)))


def test_every_affine_op_has_a_case():
    ops = {type(op) for op, _ in affine_cases(np.random.default_rng(0))}
    assert ops == set(AFFINE_RULES)


@pytest.mark.parametrize("index", range(AFFINE_CASES))
@pytest.mark.parametrize("generic", [False, True])
def test_affine_backward_is_the_exact_transpose(index, generic):
    rng = np.random.default_rng(index)
    op, shapes = affine_cases(rng)[index]
    rule = generic_rule() if generic else AFFINE_RULES[type(op)]
    xs = [_t(rng, 3, *s) for s in shapes]
    y = op.forward(*xs)
    lam = _t(rng, 3, 4, *y.shape[1:])
    grads, bias = rule.backward(op, lam, shapes)
    bias = 0.0 if bias is None else bias
    lhs = torch.einsum("bm...,b...->bm", lam, y)
    rhs = sum(torch.einsum("bm...,b...->bm", g, x) for g, x in zip(grads, xs)) + bias
    torch.testing.assert_close(lhs, rhs, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("index", range(AFFINE_CASES))
def test_affine_interval_is_exact_on_boxes(index):
    rng = np.random.default_rng(100 + index)
    op, shapes = affine_cases(rng)[index]
    centers = [_t(rng, 2, *s) for s in shapes]
    radii = [as_tensor(rng.uniform(0, 1, size=(2, *s))) for s in shapes]
    lowers = [c - r for c, r in zip(centers, radii)]
    uppers = [c + r for c, r in zip(centers, radii)]
    lo, hi = AFFINE_RULES[type(op)].interval(op, lowers, uppers)
    ref_lo, ref_hi = generic_rule().interval(op, lowers, uppers)
    torch.testing.assert_close(lo, ref_lo, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(hi, ref_hi, rtol=1e-10, atol=1e-10)
    xs = [
        lo_ + (hi_ - lo_) * torch.rand(50, *lo_.shape[1:], dtype=torch.float64)
        for lo_, hi_ in zip([x[:1] for x in lowers], [x[:1] for x in uppers])
    ]
    y = op.forward(*xs)
    assert bool((y >= lo[:1] - 1e-12).all()) and bool((y <= hi[:1] + 1e-12).all())
