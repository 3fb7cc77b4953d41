"""Bounds stay sound at extreme magnitudes: the fuzzer's findings, as regression tests.

* an affine layer with huge weights after a ReLU (``0.5 - relu(1e17 x)``): the
  centre-radius interval form cancels ``W mid`` against ``|W| rad`` and absorbs
  the 0.5 (IBP and CROWN said ``y <= 0`` where ``y(0) = 0.5``);
* ``exp`` over a wide interval: its chord's slope is 2^53 times its tangent's,
  and the shortcut ``lam uw + lam+ (lw - uw)`` lost the lower slope (CROWN said
  ``exp(x) >= 1`` on [-60, 60]);
* infinite interval ends through affine ops give infinities, never NaN;
* alpha-CROWN on a network whose output is constant (nothing to optimise).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from verifiNN.bounds import compute_bounds
from verifiNN.bounds.affine import AFFINE_RULES
from verifiNN.models.network import Network, Node
from verifiNN.ops import Clip, ConstMatMul, Conv2d, Dense, ElementwiseAffine, Exp, as_tensor
from verifiNN.regions import BoxBatch
from verifiNN.results import Verdict
from verifiNN.specs import Box, Case, HalfSpaces, Specification
from verifiNN.verifiers import verify

METHODS = ["ibp", "crown", "alpha-crown"]


def _dense(w, b) -> Dense:
    return Dense(as_tensor(np.atleast_2d(w)), as_tensor(np.atleast_1d(b)))


@pytest.mark.parametrize("scale", [1e8, 1e12, 1e17, 1e30])
@pytest.mark.parametrize("method", METHODS)
def test_huge_weights_do_not_absorb_the_bias(scale, method):
    network = Network([[[scale]], [[-1.0]]], [[0.0], [0.5]])  # 0.5 - relu(scale x)
    bounds = compute_bounds(network, Box(np.zeros(1), np.ones(1)), np.eye(1), method)
    x = np.concatenate([np.zeros(1), np.linspace(0, 1, 101)])[:, None]
    y = network.get_output(x).ravel()
    assert bounds.lower[0, 0] <= y.min() and bounds.upper[0, 0] >= y.max() == 0.5


@pytest.mark.parametrize("method", ["crown", "alpha-crown"])
def test_exp_over_a_wide_interval_keeps_its_lower_slope(method):
    network = Network.from_graph(
        (1,), [Node("fc", _dense(1.0, 0.0), ("input",)), Node("exp", Exp(), ("fc",))]
    )
    for half in (20.0, 60.0, 85.0):
        bounds = compute_bounds(network, Box([-half], [half]), np.eye(1), method)
        assert bounds.lower[0, 0] <= math.exp(-half), half
    unsafe = Specification((Case(Box([-85.0], [85.0]), (HalfSpaces([[1.0]], [0.5]),)),))
    assert verify(network, unsafe, method=method).verdict is not Verdict.UNSAT
    assert verify(network, unsafe).verdict is Verdict.SAT


def _conv() -> Conv2d:
    rng = np.random.default_rng(0)
    weight = rng.normal(size=(2, 1, 2, 2))
    weight[0, 0, 0, 0] = 0.0  # a zero weight meets an infinite end: 0 * inf
    return Conv2d(as_tensor(weight), as_tensor(rng.normal(size=2)), (1, 1), (0, 0, 0, 0))


@pytest.mark.parametrize(
    "op, shape",
    [
        (_dense(np.array([[0.0, 1.0], [2.0, -1.0]]), np.zeros(2)), (2,)),
        (ElementwiseAffine(as_tensor(np.array([0.0, -2.0])), as_tensor(np.ones(2))), (2,)),
        (ConstMatMul(as_tensor(np.array([[0.0, 1.0], [1.0, 0.0]])), as_tensor(0.0)), (2, 2)),
        (_conv(), (1, 3, 3)),
    ],
    ids=["dense", "elementwise", "matmul", "conv"],
)
def test_infinite_ends_give_infinities_not_nan(op, shape):
    rule = AFFINE_RULES[type(op)]
    lower = torch.zeros(1, *shape, dtype=torch.float64)
    upper = torch.ones(1, *shape, dtype=torch.float64)
    lower.view(-1)[0], upper.view(-1)[-1] = -math.inf, math.inf
    low, high = rule.interval(op, [lower], [upper])
    assert not (torch.isnan(low).any() or torch.isnan(high).any())
    rng = np.random.default_rng(1)
    for _ in range(200):  # finite points of the box, extreme ones included
        x = torch.tensor(rng.uniform(0, 1, (1, *shape)))
        x.view(-1)[0], x.view(-1)[-1] = -1e300 * rng.random(), 1e300 * rng.random()
        y = op.forward(x)
        assert bool((low <= y).all() & (high >= y).all())


def test_box_concretization_with_huge_coefficients_and_infinite_ends():
    box = BoxBatch(torch.tensor([[0.0, -math.inf]], dtype=torch.float64),
                   torch.tensor([[1.0, 2.0]], dtype=torch.float64))  # fmt: skip
    A = torch.tensor([[[1e17, 0.0], [-1e17, 1.0]]], dtype=torch.float64)
    value = box.concretize(A, torch.tensor([[0.5, 0.5]], dtype=torch.float64))
    assert value[0, 0] == 0.5 and value[0, 1] == -math.inf


def test_alpha_crown_on_a_constant_output():
    network = Network.from_graph(
        (1,), [Node("fc", _dense(1.0, 0.0), ("input",)), Node("clip", Clip(0.5, 0.0), ("fc",))]
    )
    bounds = compute_bounds(network, Box([-1.0], [1.0]), np.eye(1), "alpha-crown")
    y = network.get_output(np.linspace(-1, 1, 11)[:, None]).ravel()
    assert bounds.lower[0, 0] <= y.min() and bounds.upper[0, 0] >= y.max()
