"""Soundness over the real benchmark models: every VNN-COMP family of the shared data.

For three instances of each family (the first, middle and last distinct
``(model, property)`` rows of its instance list, moved to rows of other models
where the family has several: :func:`chosen_instances`):

* **agreement**: verifiNN's forward pass matches onnxruntime running the
  original model on 1,000 points of the property's input regions (every case's
  lower and upper corners and centre, then uniform points);
* **soundness**: the CROWN bounds of every node (hence of the outputs) contain
  the values of 10,000 sampled inputs (corners, centre, random vertices, uniform
  points and the iterates of a few projected-gradient steps towards each
  output's minimum and maximum, Madry et al. 2018, "Towards Deep Learning
  Models Resistant to Adversarial Attacks"); IBP bounds contain them too and
  contain CROWN's output bounds.

Tolerances. onnxruntime runs the model as stored (float32) on float32 points;
verifiNN's graph cast to float32 must agree within
``|ours - ort| <= 1e-5 (|ort| + s)``, ``s`` the largest ``|ort|`` over the points
and outputs (rounding grows with the size of a model's intermediate values, not
with an output that happens to be near zero), and the float64 network the
engines analyse within ``1e-4 (|ort| + s)`` (float32's own rounding). A
sampled value may exceed a bound by ``1e-9 (1 + |bound|)`` at most: both are
float64 computations of real-arithmetic quantities, and their rounding is not
what this test is about (``bounds/sound_fp.py`` is).

Large models. Full CROWN runs a backward pass per unstable neuron; on the
families in :data:`IBP_INTERMEDIATE` that takes minutes per instance on two
CPU cores, so there the intermediate bounds are IBP's, passed as ``bounds=``,
and only the final bound is a CROWN backward pass (CROWN-IBP, Zhang et al.
2020, "Towards Stable and Efficient Training of Verifiably Robust Neural
Networks"): it still goes through every node's backward rule and relaxation.

Costly models get fewer points (:func:`point_count`: at most 6e9 multiply-adds of
samples per instance, at least 50 points): the carvana U-Nets, cgan's generators and
the larger traffic-sign and ResNet models.

Models are loaded by ``verifiNN.io.load_instance(model, property)`` when it
exists (it may specialise a model to the input entries a property fixes), else
by ``load_onnx`` and ``load_vnnlib``. Select a family with ``-k NAME``.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

import verifiNN.io
from verifiNN.bench import Instance, read_instances
from verifiNN.bounds.api import compute_bounds
from verifiNN.bounds.types import Interval
from verifiNN.errors import ModelLoadError
from verifiNN.io import load_onnx, load_vnnlib
from verifiNN.io.files import read_bytes
from verifiNN.models.network import Network
from verifiNN.specs import Box, Specification
from verifiNN.suite import find_instance_list

FAMILIES = (
    "acasxu",
    "carvana_unet_2022",
    "cctsdb_yolo",
    "cgan",
    "cifar10_resnet",
    "collins_rul_cnn",
    "cora",
    "dist_shift",
    "linearizenn",
    "lsnc",
    "marabou-cifar10",
    "ml4acopf",
    "mnistfc",
    "oval21",
    "reach_prob_density",
    "rl_benchmarks",
    "safenlp",
    "sri_resnet_a",
    "test",
    "traffic_signs_recognition",
    "vit",
)
"""The families of the shared data (checked against the folders present)."""

IBP_INTERMEDIATE = frozenset(
    {"carvana_unet_2022", "cgan", "traffic_signs_recognition", "vit/onnx/ibp_3_3_8.onnx"}
)
"""Families (or ``family/model``) whose full CROWN takes minutes per instance on two shared
cores (measured: over 120 s for every instance tried; vit's ``ibp_3_3_8`` over 900 s, its
``pgd_2_3_16`` 9 s); they get CROWN's final pass on IBP's intermediate bounds."""

AGREEMENT_POINTS = 1_000
SOUNDNESS_POINTS = 10_000
POINT_BUDGET = 6e9
"""Multiply-adds (:func:`multiply_adds`) one instance's samples may cost: a model costing
more than ``POINT_BUDGET / 1000`` per point gets fewer points than the nominal counts (on
two shared cores a float64 forward pass runs about 1e9 multiply-adds a second)."""
MIN_POINTS = 50
"""The fewest points an instance gets (the U-Nets of carvana: 2e8 multiply-adds a point)."""
RTOL = 1e-5
"""Relative tolerance of the agreement with onnxruntime in the model's own precision (and
of its floor, times the output scale)."""
FLOAT32_RTOL = 1e-4
"""The same between the float64 network the engines analyse and a float32 model: float32's
rounding reaches 2e-5 of ACAS Xu's output scale (``ACASXU_run2a_5_8``, whose float64
outputs equal onnxruntime's on a float64 copy of the model exactly)."""
SOUND_TOL = 1e-9
"""How far (relative to ``1 + |bound|``) a float64 sample may pass a bound."""
PGD_OUTPUTS = 8
PGD_STEPS = 10
FORWARD_BYTES = 1 << 28
"""Memory a chunk of a forward pass may keep (every node's values), and the samples too."""
CHUNK = 64
"""Points per forward chunk at most (float64 convolutions slow down on larger batches)."""


# ------------------------------------------------------------------- instances
def distinct_rows(instances: list[Instance]) -> list[Instance]:
    """The rows with distinct ``(onnx, vnnlib)``, in order."""
    seen: set[tuple[str, str]] = set()
    rows = []
    for row in instances:
        if (row.onnx, row.vnnlib) not in seen:
            seen.add((row.onnx, row.vnnlib))
            rows.append(row)
    return rows


def chosen_instances(instances: list[Instance]) -> list[Instance]:
    """The first, middle and last distinct rows, each moved to the nearest row of a
    model not chosen yet where there is one (so a family with several models covers
    several), else to the nearest row not chosen yet."""
    rows = distinct_rows(instances)
    chosen: list[int] = []
    for target in (0, len(rows) // 2, len(rows) - 1):
        order = sorted(range(len(rows)), key=lambda j: (abs(j - target), j))
        models = {rows[j].onnx for j in chosen}
        fresh = [j for j in order if j not in chosen and rows[j].onnx not in models]
        left = [j for j in order if j not in chosen]
        if fresh or left:
            chosen.append((fresh or left)[0])
    return [rows[j] for j in chosen]


@dataclass(frozen=True)
class Problem:
    """One loaded instance: the network, its property, and how onnxruntime is fed."""

    name: str
    network: Network
    spec: Specification
    reference: bytes
    """The ONNX model onnxruntime runs (the original file, or ``origin.onnx_model`` when the
    network's outputs are not the file's, e.g. a final ``ArgMax`` cut off)."""


def _load(model: Path, prop: Path) -> tuple[Network, Specification]:
    helper = getattr(verifiNN.io, "load_instance", None)
    if helper is None:
        network = load_onnx(model)
        return network, load_vnnlib(prop, network)
    loaded = helper(model, prop)
    if isinstance(loaded, tuple):
        return loaded[0], loaded[1]
    return loaded.network, loaded.spec


def _input_size(model: bytes) -> int:
    proto = onnx.load_model_from_string(model)
    constants = {t.name for t in proto.graph.initializer}
    (value,) = [v for v in proto.graph.input if v.name not in constants]
    dims = value.type.tensor_type.shape.dim
    return math.prod(d.dim_value if d.dim_value > 0 else 1 for d in dims)


def _output_size(model: bytes) -> int | None:
    proto = onnx.load_model_from_string(model)
    dims = proto.graph.output[0].type.tensor_type.shape.dim
    if not dims or any(d.dim_value <= 0 for d in dims[1:]):
        return None
    return math.prod(d.dim_value if d.dim_value > 0 else 1 for d in dims)


def _reference(network: Network, model: Path) -> bytes:
    original = read_bytes(model, ModelLoadError, "ONNX file")
    cut = network.origin.onnx_model if network.origin is not None else None
    if cut is None or _output_size(original) == network.output_size:
        return original
    return cut


@functools.cache
def load_problem(folder: str, onnx_name: str, vnnlib_name: str) -> Problem:
    """Load one instance of a family (cached: both tests read the same instances)."""
    model, prop = Path(folder) / onnx_name, Path(folder) / vnnlib_name
    network, spec = _load(model, prop)
    reference = _reference(network, model)
    # a network specialised to the entries a property fixes still reads the full input
    assert _input_size(reference) == network.input_size, (
        f"{onnx_name}: the network reads {network.input_size} inputs, the model "
        f"{_input_size(reference)}"
    )
    return Problem(f"{Path(folder).name}/{onnx_name}", network, spec, reference)


def family_problems(data: Path, family: str) -> list[tuple[Instance, Problem]]:
    folder = data / family
    instances = chosen_instances(read_instances(find_instance_list(folder)))
    return [(i, load_problem(str(folder), i.onnx, i.vnnlib)) for i in instances]


# ------------------------------------------------------------------- sampling
def multiply_adds(network: Network) -> int:
    """A deterministic estimate of one point's forward cost: the multiply-adds of the
    dense, convolution and matrix-product nodes, one per output value of every other."""
    total = 0
    for node in network.nodes:
        out = network.shapes[node.name]
        weight = getattr(node.op, "weight", None)
        if weight is None:
            total += math.prod(out)
        elif node.op.kind == "Dense":
            total += weight.numel()
        elif node.op.kind == "Conv2d":
            total += weight.numel() * math.prod(out[1:])
        elif node.op.kind == "ConvTranspose2d":
            total += weight.numel() * math.prod(network.shapes[node.inputs[0]][1:])
        else:  # a product with a constant matrix: the contracted length per output value
            total += math.prod(out) * weight.shape[-1 if getattr(node.op, "left", False) else -2]
    return total


def point_count(network: Network, nominal: int) -> int:
    """``nominal`` points, fewer for a model whose points cost more than :data:`POINT_BUDGET`
    in all (never under :data:`MIN_POINTS`)."""
    return int(max(MIN_POINTS, min(nominal, POINT_BUDGET / max(1, multiply_adds(network)))))


def region_batches(
    region, count: int, rng: np.random.Generator, vertices: float = 0.0
) -> Iterator[np.ndarray]:
    """``count`` points of a region, in batches of at most :data:`CHUNK`: the lower corner,
    upper corner and centre of its bounding box, a share ``vertices`` of random vertices,
    then uniform points (projected onto the region, which leaves a box's points as they are)."""
    box = region.bounding_box()
    corners = np.stack([box.lower, box.upper, box.center])[:count]
    n_vertices = int(vertices * count)
    n_uniform = max(0, count - len(corners) - n_vertices)
    free = np.flatnonzero(box.lower < box.upper)  # entries a property fixes are not drawn
    low, high = box.lower[free], box.upper[free]
    batches = [corners]
    for n, draw in ((n_vertices, "vertex"), (n_uniform, "uniform")):
        for start in range(0, n, CHUNK):
            size = (min(CHUNK, n - start), free.size)
            if draw == "vertex":
                values = np.where(rng.random(size) < 0.5, high, low)
            else:
                values = rng.uniform(low, high, size)
            points = np.repeat(box.lower[None], size[0], axis=0)
            points[:, free] = values
            batches.append(points)
    for points in batches:
        yield points if isinstance(region, Box) else np.stack([region.project(p) for p in points])


def region_points(region, count: int, rng: np.random.Generator) -> np.ndarray:
    """The points of :func:`region_batches` (without vertices) as one array."""
    return np.concatenate(list(region_batches(region, count, rng)))


def spec_points(spec: Specification, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` points over all cases of ``spec`` (split evenly, corners of each case first)."""
    per_case = max(3, -(-count // len(spec.cases)))
    points = [region_points(c.input_region, per_case, rng) for c in spec.cases]
    return np.concatenate(points)[:count] if len(spec.cases) > 1 else points[0]


def pgd_points(network: Network, box: Box, count: int, rng: np.random.Generator) -> np.ndarray:
    """About ``count / 4`` points: every iterate of signed-gradient steps towards the min
    and the max of up to :data:`PGD_OUTPUTS` outputs (evenly spread; fewer for a small
    ``count``), each started at a uniform point of ``box``."""
    wanted = max(1, min(PGD_OUTPUTS, network.output_size, count // 40))
    outputs = np.unique(np.linspace(0, network.output_size - 1, wanted).round().astype(int))
    index = torch.as_tensor(np.concatenate([outputs, outputs]))
    sign = torch.cat([torch.ones(len(outputs)), -torch.ones(len(outputs))]).double()
    lower, upper = torch.tensor(box.lower), torch.tensor(box.upper)
    x = torch.as_tensor(rng.uniform(box.lower, box.upper, (len(index), box.size)))
    step = (upper - lower) / 4
    iterates = []
    for _ in range(max(1, min(PGD_STEPS, count // (4 * len(index))))):
        x = x.detach().requires_grad_(True)
        y = network.forward(x)
        objective = (sign * y[torch.arange(len(index)), index]).sum()
        (grad,) = torch.autograd.grad(objective, x)
        x = torch.minimum(torch.maximum(x.detach() + step * grad.sign(), lower), upper)
        iterates.append(x)
        step = step * 0.7
    return torch.cat(iterates).numpy()


# --------------------------------------------------------------------- forward
def chunk_size(network: Network) -> int:
    """Points per chunk so that every node's values of a chunk fit :data:`FORWARD_BYTES`."""
    per_point = sum(math.prod(s) for s in network.shapes.values()) * 8
    return max(1, min(CHUNK, FORWARD_BYTES // per_point))


def node_ranges(network: Network, batches: Iterable[np.ndarray]) -> dict[str, tuple]:
    """Per node: elementwise ``(min, argmin, max, argmax)`` of its values over the points
    (float64 rows of the batches, numbered in order), computed in chunks."""
    ranges: dict[str, list] = {}
    size, seen = chunk_size(network), 0
    with torch.no_grad():
        for X in batches:
            for start in range(0, len(X), size):
                x = torch.as_tensor(X[start : start + size])
                values = {network.input_name: x.reshape(len(x), *network.input_shape)}
                for node in network.nodes:
                    values[node.name] = node.op.forward(*(values[i] for i in node.inputs))
                for name, value in values.items():
                    _merge(ranges, name, value.reshape(len(x), -1), seen)
                seen += len(x)
    return {name: tuple(r) for name, r in ranges.items()}


def _merge(ranges: dict[str, list], name: str, value: torch.Tensor, start: int) -> None:
    low, arg_low = value.min(0)
    high, arg_high = value.max(0)
    arg_low, arg_high = arg_low + start, arg_high + start
    if name not in ranges:
        ranges[name] = [low, arg_low, high, arg_high]
        return
    old_low, old_arg_low, old_high, old_arg_high = ranges[name]
    ranges[name] = [
        torch.minimum(old_low, low),
        torch.where(low < old_low, arg_low, old_arg_low),
        torch.maximum(old_high, high),
        torch.where(high > old_high, arg_high, old_arg_high),
    ]


def ours(network: Network, X: np.ndarray) -> np.ndarray:
    """verifiNN's outputs on the rows of ``X``, in chunks."""
    size = chunk_size(network)
    with torch.no_grad():
        return np.concatenate(
            [
                network.forward(torch.as_tensor(X[s : s + size])).numpy()
                for s in range(0, len(X), size)
            ]
        )


@functools.lru_cache(maxsize=4)
def _session(model: bytes):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def onnxruntime_outputs(problem: Problem, X: np.ndarray) -> np.ndarray:
    """onnxruntime's outputs of the reference model at the rows of ``X``: batched when the
    model's batch dimension is symbolic, else one point at a time."""
    session = _session(problem.reference)
    (value,) = session.get_inputs()
    dtype = np.float64 if value.type == "tensor(double)" else np.float32
    dims = list(value.shape)
    batched = len(dims) >= 2 and not isinstance(dims[0], int)
    shape = [d if isinstance(d, int) else 1 for d in dims]
    if not batched:
        runs = [session.run(None, {value.name: x.astype(dtype).reshape(shape)})[0] for x in X]
        return np.stack([np.asarray(r, np.float64).ravel() for r in runs])
    size = chunk_size(problem.network)
    parts = []
    for start in range(0, len(X), size):
        chunk = X[start : start + size].astype(dtype).reshape(-1, *shape[1:])
        (out,) = session.run(None, {value.name: chunk})[:1]
        parts.append(np.asarray(out, np.float64).reshape(len(chunk), -1))
    return np.concatenate(parts)


# ----------------------------------------------------------------------- tests
def test_the_family_list_matches_the_data(benchmark_data):
    present = {p.name for p in benchmark_data.iterdir() if list(p.glob("*instances.csv"))}
    assert present == set(FAMILIES)


def test_chosen_instances_cover_first_middle_last_and_several_models():
    models = ["m0"] * 7 + ["m1"] * 2 + ["m2"] * 3
    rows = [Instance(f"{m}.onnx", f"p{k}.vnnlib", 1.0) for k, m in enumerate(models)]
    rows.insert(1, rows[0])  # a repeated row counts once
    # the middle row (p6) is m0's, chosen already: the nearest row of another model is p7
    assert [r.vnnlib for r in chosen_instances(rows)] == ["p0.vnnlib", "p7.vnnlib", "p11.vnnlib"]
    one_model = [Instance("m.onnx", f"p{k}.vnnlib", 1.0) for k in range(5)]
    picked = [r.vnnlib for r in chosen_instances(one_model)]
    assert picked == ["p0.vnnlib", "p2.vnnlib", "p4.vnnlib"]
    assert len(chosen_instances(one_model[:2])) == 2


def test_the_soundness_check_finds_a_missed_value_and_a_nan_bound():
    network = Network([[[1.0, -1.0], [0.5, 2.0]], [[1.0, 1.0]]], [[0.0, -1.0], [0.5]])
    box = Box([-1.0, -1.0], [1.0, 1.0])
    crown = compute_bounds(network, [box], method="crown")
    ranges = node_ranges(network, region_batches(box, 500, np.random.default_rng(0), 0.2))
    assert _first_unsound(network, crown.bounds, ranges, 0) is None
    out = network.output_name
    exact = ranges[out][2].reshape(1, 1)  # the largest sampled output
    for upper in (exact - 1e-6, torch.full_like(exact, float("nan"))):
        bounds = {**crown.bounds, out: Interval(crown.bounds[out].lower, upper)}
        found = _first_unsound(network, bounds, ranges, 0)
        assert found is not None and found.startswith(f"node {out!r} (Dense) entry 0")


def _assert_agree(mine: np.ndarray, ort: np.ndarray, rtol: float, what: str) -> None:
    """``|mine - ort| <= rtol (|ort| + s)`` everywhere, ``s`` the largest ``|ort|``."""
    assert mine.shape == ort.shape, f"{what}: shapes {mine.shape} vs {ort.shape}"
    scale = float(np.abs(ort).max())
    excess = np.abs(mine - ort) - rtol * (np.abs(ort) + scale)
    worst = np.unravel_index(int(np.argmax(excess)), excess.shape)
    assert excess[worst] <= 0, (
        f"{what}: point {worst[0]} output {worst[1]}: verifiNN {mine[worst]!r}, "
        f"onnxruntime {ort[worst]!r} (output scale {scale:.3g}, tolerance {rtol:g})"
    )


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_forward_pass_agrees_with_onnxruntime(benchmark_data, family):
    rng = np.random.default_rng(17)
    for instance, problem in family_problems(benchmark_data, family):
        count = point_count(problem.network, AGREEMENT_POINTS)
        X = spec_points(problem.spec, count, rng).astype(np.float32)
        ort = onnxruntime_outputs(problem, X)
        what = f"{problem.name} {instance.vnnlib}"
        analysed = ours(problem.network, X.astype(np.float64))
        if _session(problem.reference).get_inputs()[0].type == "tensor(double)":
            _assert_agree(analysed, ort, RTOL, what)
            continue
        _assert_agree(ours(problem.network.to(torch.float32), X), ort, RTOL, f"{what} (float32)")
        _assert_agree(analysed, ort, FLOAT32_RTOL, f"{what} (float64)")


def _bounds(network: Network, regions: list, name: str):
    """IBP's and CROWN's bounds (on IBP's intermediate bounds for :data:`IBP_INTERMEDIATE`)."""
    ibp = compute_bounds(network, regions, method="ibp")
    given = None
    if name in IBP_INTERMEDIATE or name.split("/")[0] in IBP_INTERMEDIATE:
        skip = {network.input_name, network.output_name}
        given = {node: b for node, b in ibp.bounds.items() if node not in skip}
    return ibp, compute_bounds(network, regions, method="crown", bounds=given)


def _misses(value: torch.Tensor, bound: torch.Tensor, sign: float) -> torch.Tensor:
    """How far ``value`` passes ``bound`` (a lower bound for ``sign = 1``, an upper one for
    ``-1``) beyond :data:`SOUND_TOL`; ``-inf`` where it does not, ``inf`` for a NaN. Infinite
    values are compared, not subtracted (``exp`` of a large logit is ``inf`` and within an
    ``inf`` bound)."""
    slack = SOUND_TOL * (1 + bound.abs())
    limit = torch.where(torch.isinf(bound), bound, bound - sign * slack)
    passed = sign * (limit - value) > 0
    excess = torch.where(
        passed, (sign * (bound - value)).nan_to_num(torch.inf, torch.inf), -torch.inf
    )
    return torch.where(torch.isnan(value) | torch.isnan(bound), torch.inf, excess)


def _first_unsound(network: Network, bounds, ranges, case: int) -> str | None:
    """The first node (topological order) whose bounds miss a sampled value (a NaN bound
    or value counts as a miss), described."""
    ops = {node.name: node.op.kind for node in network.nodes}
    for name in [network.input_name, *(n.name for n in network.nodes)]:
        low, arg_low, high, arg_high = ranges[name]
        lower = bounds[name].lower[case].reshape(-1)
        upper = bounds[name].upper[case].reshape(-1)
        for excess, value, bound, arg, side in (
            (_misses(low, lower, 1.0), low, lower, arg_low, "below its lower"),
            (_misses(high, upper, -1.0), high, upper, arg_high, "above its upper"),
        ):
            k = int(torch.argmax(excess))
            if excess[k] > -torch.inf:
                return (
                    f"node {name!r} ({ops.get(name, 'input')}) entry {k}: sample "
                    f"{int(arg[k])} gives {float(value[k])!r}, {side} bound {float(bound[k])!r}"
                )
    return None


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_crown_bounds_contain_sampled_values(benchmark_data, family):
    rng = np.random.default_rng(18)
    for instance, problem in family_problems(benchmark_data, family):
        network, spec = problem.network, problem.spec
        regions = [case.input_region for case in spec.cases]
        ibp, crown = _bounds(network, regions, problem.name)
        per_case = -(-point_count(network, SOUNDNESS_POINTS) // len(regions))
        for k, region in enumerate(regions):
            pgd = pgd_points(network, region, per_case, rng) if isinstance(region, Box) else []
            rest = region_batches(region, per_case - len(pgd), rng, vertices=0.2)
            ranges = node_ranges(network, itertools.chain([pgd] if len(pgd) else [], rest))
            for method, result in (("CROWN", crown), ("IBP", ibp)):
                found = _first_unsound(network, result.bounds, ranges, k)
                assert found is None, f"{method} {problem.name} {instance.vnnlib} case {k}: {found}"
        tol = SOUND_TOL * (1 + crown.lower.abs())
        assert torch.all(ibp.lower <= crown.lower + tol), f"{problem.name}: CROWN below IBP"
        tol = SOUND_TOL * (1 + crown.upper.abs())
        assert torch.all(crown.upper <= ibp.upper + tol), f"{problem.name}: CROWN above IBP"
