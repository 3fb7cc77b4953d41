"""Every benchmark model against onnxruntime, and its CROWN bounds against samples.

For every model of every family of the data folder (each model with the first
instance of the family's list that uses it), one row of
``benchmarks/out/model_agreement.csv``:

* ``load_s``: loading the model and its property (``verifiNN.io.load_instance``,
  which specialises a model to the input entries the property fixes, when it exists;
  else ``load_onnx`` + ``load_vnnlib``);
* ``rel_err``: the largest ``|ours - ort| / (|ort| + s)`` over ``N`` points of the
  property's input regions (corners, centre, uniform) and every output, ``s`` the
  largest ``|ort|``: verifiNN's float64 forward pass (the network the engines
  analyse) against onnxruntime running the original model (float32, as stored) on
  the same float32-rounded points (``tests/test_shared_models.py`` asks for at most
  ``1e-4``: float32's own rounding);
* ``rel_err32``: the same for verifiNN's graph cast to float32 (the test asks for at
  most ``1e-5``; empty for a float64 model);
* ``crown_s``, ``crown``: CROWN's time and mode: ``full``, or ``ibp-intermediate``
  (CROWN's final pass on IBP's intermediate bounds, Zhang et al. 2020) when full CROWN
  did not finish within ``--crown-limit`` seconds (``crown_s`` is then the sum);
* ``outside``: the largest margin by which any of the ``N`` sampled outputs (float64
  points in the regions) falls outside CROWN's output bounds: it must be ``<= 0``
  (a positive value is an unsound bound, or float64 rounding when tiny);
* ``outside_rel``: the same margin over ``1 + |bound|`` (the test allows ``1e-9``);
* ``rss_mb``: the process's peak resident memory so far (it only grows).

A model that does not load gets its error in ``error``. A Markdown table is printed.

Usage:
    python benchmarks/model_agreement.py [DATA_FOLDER] [--points 1000] [--crown-limit 60]
        [--families acasxu,vit] [--out benchmarks/out/model_agreement.csv]

The data folder defaults to ``$VERIFINN_BENCHMARKS`` or ``../shared/benchmarks`` next to
the repository. Torch and onnxruntime run on one thread.
"""

from __future__ import annotations

import argparse
import csv
import os
import resource
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import onnx
import torch

import verifiNN.io
from verifiNN.bench import Instance, read_instances
from verifiNN.bounds.api import compute_bounds
from verifiNN.budget import Budget, DeadlineReached
from verifiNN.errors import ModelLoadError, VerifiNNError
from verifiNN.io import load_onnx, load_vnnlib
from verifiNN.io.files import read_bytes
from verifiNN.models.network import Network
from verifiNN.specs import Specification
from verifiNN.suite import find_instance_list

REPO_ROOT = Path(__file__).resolve().parents[1]
CHUNK = 64
"""Points per forward chunk (float64 convolutions slow down on larger batches)."""


@dataclass
class Row:
    """One model's measurements (see the module docstring)."""

    family: str
    model: str
    vnnlib: str
    inputs: int = 0
    outputs: int = 0
    points: int = 0
    load_s: float = float("nan")
    rel_err: float = float("nan")
    rel_err32: float = float("nan")
    crown: str = ""
    crown_s: float = float("nan")
    outside: float = float("nan")
    outside_rel: float = float("nan")
    rss_mb: float = float("nan")
    error: str = field(default="")


def first_instances(folder: Path) -> list[Instance]:
    """Each model of a family with the first instance that uses it, in list order."""
    seen: dict[str, Instance] = {}
    for instance in read_instances(find_instance_list(folder)):
        seen.setdefault(instance.onnx, instance)
    return list(seen.values())


def load(model: Path, prop: Path) -> tuple[Network, Specification]:
    """``load_instance`` when the library has it, else ``load_onnx`` + ``load_vnnlib``."""
    helper = getattr(verifiNN.io, "load_instance", None)
    if helper is None:
        network = load_onnx(model)
        return network, load_vnnlib(prop, network)
    loaded = helper(model, prop)
    return (loaded[0], loaded[1]) if isinstance(loaded, tuple) else (loaded.network, loaded.spec)


def sample(spec: Specification, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` points over the cases: each case's corners and centre, then uniform points
    (projected onto a ball region)."""
    per_case = max(3, -(-count // len(spec.cases)))
    parts = []
    for case in spec.cases:
        region = case.input_region
        box = region.bounding_box()
        uniform = rng.uniform(box.lower, box.upper, (max(0, per_case - 3), box.size))
        points = np.concatenate([np.stack([box.lower, box.upper, box.center]), uniform])
        if hasattr(region, "center"):  # a ball: keep the points inside it
            points = np.stack([region.project(p) for p in points])
        parts.append(points)
    return np.concatenate(parts)[:count]


def forward(network: Network, X: np.ndarray) -> np.ndarray:
    """verifiNN's outputs at the rows of ``X``, in chunks."""
    with torch.no_grad():
        return np.concatenate(
            [
                network.forward(torch.as_tensor(X[s : s + CHUNK])).numpy()
                for s in range(0, len(X), CHUNK)
            ]
        )


def reference_model(network: Network, model: Path) -> bytes:
    """The original file, or ``origin.onnx_model`` when the network's outputs are not the
    file's (a final ``ArgMax`` cut off)."""
    original = read_bytes(model, ModelLoadError, "ONNX file")
    cut = network.origin.onnx_model if network.origin is not None else None
    dims = onnx.load_model_from_string(original).graph.output[0].type.tensor_type.shape.dim
    size = int(np.prod([d.dim_value if d.dim_value > 0 else 1 for d in dims])) if dims else -1
    return original if cut is None or size == network.output_size else cut


def relative_error(ours: np.ndarray, ort: np.ndarray) -> float:
    """The largest ``|ours - ort| / (|ort| + s)``, ``s`` the largest ``|ort|``."""
    scale = float(np.abs(ort).max())
    return float(np.max(np.abs(ours - ort) / (np.abs(ort) + scale + 1e-300)))


def onnxruntime_outputs(model: bytes, X: np.ndarray) -> tuple[np.ndarray, bool]:
    """onnxruntime's outputs at the rows of ``X`` (batched when the model's batch dimension
    is symbolic, else one point at a time) and whether the model reads float32."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    (value,) = session.get_inputs()
    single = value.type != "tensor(double)"
    dtype = np.float32 if single else np.float64
    dims = list(value.shape)
    shape = [d if isinstance(d, int) else 1 for d in dims]
    if len(dims) >= 2 and not isinstance(dims[0], int):
        chunks = [X[s : s + CHUNK].astype(dtype) for s in range(0, len(X), CHUNK)]
        parts = [session.run(None, {value.name: c.reshape(-1, *shape[1:])})[0] for c in chunks]
        out = np.concatenate([np.asarray(p, np.float64).reshape(len(p), -1) for p in parts])
        return out, single
    runs = [session.run(None, {value.name: x.astype(dtype).reshape(shape)})[0] for x in X]
    return np.stack([np.asarray(r, np.float64).ravel() for r in runs]), single


def crown(network: Network, spec: Specification, limit: float) -> tuple[str, float, object]:
    """``(mode, seconds, result)``: full CROWN within ``limit`` seconds, else CROWN's final
    pass on IBP's intermediate bounds."""
    regions = [case.input_region for case in spec.cases]
    start = time.perf_counter()
    try:
        with Budget.start(limit).enforce():
            result = compute_bounds(network, regions, method="crown")
        return "full", time.perf_counter() - start, result
    except DeadlineReached:
        ibp = compute_bounds(network, regions, method="ibp")
        skip = {network.input_name, network.output_name}
        given = {name: b for name, b in ibp.bounds.items() if name not in skip}
        result = compute_bounds(network, regions, method="crown", bounds=given)
        return "ibp-intermediate", time.perf_counter() - start, result


def outside_margin(spec: Specification, X: np.ndarray, Y: np.ndarray, result) -> tuple:
    """The largest ``max(lower - y, y - upper)`` over the samples of each case, absolute and
    over ``1 + |bound|``."""
    worst, relative = -np.inf, -np.inf
    lower, upper = result.lower.numpy(), result.upper.numpy()
    for k, case in enumerate(spec.cases):
        inside = case.input_region.contains_batch(X, tol=0.0)
        if inside.any():
            below, above = lower[k] - Y[inside], Y[inside] - upper[k]
            worst = max(worst, float(np.max(np.maximum(below, above))))
            scaled = np.maximum(below / (1 + abs(lower[k])), above / (1 + abs(upper[k])))
            relative = max(relative, float(np.max(scaled)))
    return worst, relative


def measure(family: str, folder: Path, instance: Instance, args) -> Row:
    """One model's row."""
    row = Row(family, instance.onnx, instance.vnnlib)
    start = time.perf_counter()
    try:
        network, spec = load(folder / instance.onnx, folder / instance.vnnlib)
    except (VerifiNNError, OSError) as exc:
        row.error = f"{type(exc).__name__}: {str(exc)[:200]}"
        return row
    row.load_s = time.perf_counter() - start
    row.inputs, row.outputs = network.input_size, network.output_size
    X = sample(spec, args.points, np.random.default_rng(0))
    row.points = len(X)
    X32 = X.astype(np.float32)
    ort, single = onnxruntime_outputs(reference_model(network, folder / instance.onnx), X32)
    row.rel_err = relative_error(forward(network, X32.astype(np.float64)), ort)
    if single:
        row.rel_err32 = relative_error(forward(network.to(torch.float32), X32), ort)
    try:
        row.crown, row.crown_s, result = crown(network, spec, args.crown_limit)
        row.outside, row.outside_rel = outside_margin(spec, X, forward(network, X), result)
    except VerifiNNError as exc:
        row.error = f"CROWN: {type(exc).__name__}: {str(exc)[:200]}"
    return row


def table(rows: list[Row]) -> str:
    """The rows as a Markdown table."""
    lines = [
        "| family | model | in | out | points | load s | rel err f64 | rel err f32 | CROWN "
        "| CROWN s | outside | outside rel | RSS MB |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        if r.error and not r.points:
            cells = "| " * 10
            lines.append(f"| {r.family} | {r.model} {cells}| error: {r.error[:80]} |")
            continue
        mode = r.crown or f"error: {r.error[:60]}"
        lines.append(
            f"| {r.family} | {r.model} | {r.inputs} | {r.outputs} | {r.points} | {r.load_s:.2f} "
            f"| {r.rel_err:.1e} | {r.rel_err32:.1e} | {mode} | {r.crown_s:.2f} "
            f"| {r.outside:.2e} | {r.outside_rel:.1e} | {r.rss_mb:.0f} |"
        )
    return "\n".join(lines)


def families(data: Path, wanted: str | None) -> list[str]:
    names = sorted(p.name for p in data.iterdir() if p.is_dir() and list(p.glob("*instances.csv")))
    return [n for n in names if n in wanted.split(",")] if wanted else names


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = os.environ.get("VERIFINN_BENCHMARKS", REPO_ROOT.parent / "shared" / "benchmarks")
    parser.add_argument("data", nargs="?", type=Path, default=Path(default))
    parser.add_argument("--points", type=int, default=1000, help="sampled points per model")
    parser.add_argument("--crown-limit", type=float, default=60.0, help="seconds of full CROWN")
    parser.add_argument("--families", help="comma-separated family names (default: all)")
    parser.add_argument(
        "--out", type=Path, default=REPO_ROOT / "benchmarks/out/model_agreement.csv"
    )
    args = parser.parse_args(argv)
    if not args.data.is_dir():
        parser.error(f"benchmark folder {args.data} not found")
    torch.set_num_threads(1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    rows: list[Row] = []
    with args.out.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(asdict(Row("", "", ""))))
        writer.writeheader()
        for family in families(args.data, args.families):
            for instance in first_instances(args.data / family):
                row = measure(family, args.data / family, instance, args)
                row.rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
                writer.writerow(asdict(row))
                handle.flush()
                rows.append(row)
                print(f"{family} {instance.onnx}: {row.crown or row.error}", flush=True)
    print()
    print(table(rows))
    outside = sum(r.outside > 0 for r in rows)
    unsound = sum(r.outside_rel > 1e-9 for r in rows)
    print(
        f"\n{len(rows)} models; with a sample outside CROWN's bounds: {outside}; "
        f"by more than 1e-9 (1 + |bound|): {unsound}"
    )
    print(f"CSV: {args.out}")


if __name__ == "__main__":
    main()
