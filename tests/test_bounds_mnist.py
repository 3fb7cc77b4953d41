"""Tightness ordering on the real MNIST MLPs: alpha-CROWN >= CROWN >= IBP and LP >= CROWN."""

from __future__ import annotations

import numpy as np
import pytest

from verifiNN import load_onnx, load_vnnlib
from verifiNN.bounds import AlphaOptions, compute_bounds


@pytest.mark.parametrize("prop", ["prop_0_0.03"])
def test_mnist_bounds_are_ordered(benchmark_data, prop):
    folder = benchmark_data / "mnistfc"
    network = load_onnx(folder / "mnist-net_256x2.onnx")
    case = load_vnnlib(folder / f"{prop}.vnnlib", network).cases[0]
    C = np.concatenate([h.C for h in case.unsafe])
    region = case.input_region

    ibp = compute_bounds(network, region, C, "ibp", bound_upper=False).lower
    crown = compute_bounds(network, region, C, "crown", bound_upper=False)
    alpha = compute_bounds(
        network,
        region,
        C,
        "alpha-crown",
        bound_upper=False,
        options=AlphaOptions(iterations=10, optimize_intermediate=False),
    ).lower
    lp = compute_bounds(network, region, C, "lp", bounds=crown.bounds, bound_upper=False).lower

    tol = 1e-6 * (1 + crown.lower.abs())
    assert (crown.lower >= ibp - tol).all()
    assert (alpha >= crown.lower - tol).all()
    assert (lp >= crown.lower - tol).all()
    # and all of them are sound at the box centre
    y = network.get_output(region.center)
    assert (lp.numpy()[0] <= C @ y + 1e-6).all()
    # the relaxations are not all identical: the LP is strictly tighter somewhere
    assert (lp > crown.lower + 1e-6).any()
