"""Shared test fixtures: random networks and the benchmark data folder."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import settings

REPO_ROOT = Path(__file__).resolve().parents[1]

torch.set_num_threads(1)

# The default profile is derandomised so that CI is reproducible: a run passes
# or fails the same way on every machine.  Fuzz with fresh examples locally via
# ``HYPOTHESIS_PROFILE=explore python -m pytest``.
settings.register_profile("default", derandomize=True, print_blob=True)
settings.register_profile("explore", max_examples=200, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


def benchmarks_dir() -> Path:
    """The shared VNN-COMP data folder (``VERIFINN_BENCHMARKS`` or ``../shared/benchmarks``)."""
    return Path(os.environ.get("VERIFINN_BENCHMARKS", REPO_ROOT.parent / "shared" / "benchmarks"))


@pytest.fixture(scope="session")
def benchmark_data() -> Path:
    """Path to ``../shared/benchmarks``; skips the test when the folder is absent."""
    path = benchmarks_dir()
    if not path.is_dir():
        pytest.skip(f"benchmark data not found at {path} (set VERIFINN_BENCHMARKS)")
    return path


def random_mlp_params(
    rng: np.random.Generator, widths: list[int], scale: float = 1.0
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Random Gaussian weights/biases for the layer widths ``[n_in, h1, ..., n_out]``."""
    weights = [
        rng.normal(0.0, scale / np.sqrt(n_in), size=(n_out, n_in))
        for n_in, n_out in itertools.pairwise(widths)
    ]
    biases = [rng.normal(0.0, 0.5 * scale, size=n_out) for n_out in widths[1:]]
    return weights, biases


def save_onnx(path: Path, nodes, inputs, outputs, inits=(), elem: int = 1) -> Path:
    """Write a one-graph ONNX model (opset 17): ``inputs``/``outputs`` are ``(name, shape)``,
    ``inits`` ``(name, values)`` float32 initializers, ``elem`` the tensors' element type
    (``onnx.TensorProto.FLOAT`` by default)."""
    from onnx import helper, numpy_helper

    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info(n, elem, s) for n, s in inputs],
        [helper.make_tensor_value_info(n, elem, s) for n, s in outputs],
        [numpy_helper.from_array(np.asarray(v, np.float32), name=k) for k, v in inits],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.write_bytes(model.SerializeToString())
    return path


def ticking_budget(reads: int):
    """A :class:`~verifiNN.budget.Budget` that runs out after its clock is read
    ``reads`` times: time limits tested by counting, never by the wall clock."""
    from verifiNN.budget import Budget

    ticks = itertools.count()
    return Budget.start(reads, clock=lambda: float(next(ticks)))
