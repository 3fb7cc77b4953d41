"""Bound benchmark: CROWN / alpha-CROWN timings and proof counts on VNN-COMP 2021 data.

Usage::

    python benchmarks/bounds.py [DATA_DIR] [--threads 1] [--quick] [--skip-counts]

With ``--threads 2`` on a machine shared with other jobs, run under
``OMP_WAIT_POLICY=PASSIVE`` (spinning OpenMP workers otherwise slow every call
down several times).

``DATA_DIR`` defaults to ``$VERIFINN_BENCHMARKS`` or ``../shared/benchmarks``.
Writes ``benchmarks/out/bounds_timing.csv``, ``bounds_counts.csv`` and
``bounds_instances.csv`` and prints a Markdown summary.

Timings: one ``compute_bounds`` call (intermediate bounds included, lower
bounds of the property's rows only), the best of a few runs after a warm-up.
Single region: the property's input box. Batch of 1,024 regions: for MNIST the
15 properties' boxes shrunk towards their centres by factors in ``[0.5, 1]``;
for ACAS Xu the property box cut into a 4^5 grid (what input splitting feeds a
bound engine). alpha-CROWN runs exactly 20 iterations (no early stop).

Counts: ``prove(network, spec, method)`` on the 15 mnistfc 256x2 properties at
eps 0.03 and on ACAS Xu properties 1-4 for all 45 networks (no branching). A
``wrong`` count is an ``unsat`` where ``expected.csv`` says ``sat`` (must be 0).
"""

from __future__ import annotations

import argparse
import csv
import functools
import itertools
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from verifiNN.bounds import AlphaOptions, compute_bounds
from verifiNN.bounds.api import bound_graph
from verifiNN.io import load_onnx, load_vnnlib
from verifiNN.search.prove import prove

HERE = Path(__file__).resolve().parent
ALPHA_FIXED = AlphaOptions(iterations=20, early_stop=False)
ALPHA_FINAL_ONLY = AlphaOptions(iterations=20, early_stop=False, optimize_intermediate=False)


def _best_time(fn, repeats: int, warm_up: bool = True) -> float:
    if warm_up:
        fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def _case(spec):
    case = spec.cases[0]
    box = case.input_region.bounding_box()
    C = np.concatenate([h.C for h in case.unsafe])
    return box.lower, box.upper, C


def _mnist_batch(data: Path, count: int) -> tuple[np.ndarray, np.ndarray]:
    boxes = [_case(load_vnnlib(data / "mnistfc" / f"prop_{i}_0.03.vnnlib"))[:2] for i in range(15)]
    lowers, uppers = [], []
    for i in range(count):
        lower, upper = boxes[i % 15]
        scale = 0.5 + 0.5 * (i // 15) / max(1, (count - 1) // 15)
        center, radius = (lower + upper) / 2, (upper - lower) / 2
        lowers.append(center - scale * radius)
        uppers.append(center + scale * radius)
    return np.array(lowers), np.array(uppers)


def _grid(lower: np.ndarray, upper: np.ndarray, parts: int) -> tuple[np.ndarray, np.ndarray]:
    edges = [np.linspace(lo, hi, parts + 1) for lo, hi in zip(lower, upper)]
    cells = list(itertools.product(range(parts), repeat=len(lower)))
    low = np.array([[edges[d][k] for d, k in enumerate(cell)] for cell in cells])
    high = np.array([[edges[d][k + 1] for d, k in enumerate(cell)] for cell in cells])
    return low, high


def timing_rows(data: Path, quick: bool) -> list[dict]:
    """Time CROWN and alpha-CROWN per single region and per batch."""
    rows = []
    batch = 128 if quick else 1024
    cases = [
        ("mnist 256x2", data / "mnistfc" / "mnist-net_256x2.onnx", "mnist"),
        ("mnist 256x6", data / "mnistfc" / "mnist-net_256x6.onnx", "mnist"),
        ("acasxu 1_1", data / "acasxu" / "ACASXU_run2a_1_1_batch_2000.onnx", "acas"),
    ]
    for label, onnx_path, kind in cases:
        network = load_onnx(onnx_path)
        spec_path = (
            data / "mnistfc" / "prop_0_0.03.vnnlib"
            if kind == "mnist"
            else data / "acasxu" / "prop_1.vnnlib"
        )
        lower, upper, C = _case(load_vnnlib(spec_path))
        if kind == "mnist":
            many = _mnist_batch(data, batch)
        else:
            many = _grid(lower, upper, 4)
            many = (many[0][:batch], many[1][:batch])
        runs = [
            ("crown", None, "float64", 1, (lower, upper)),
            ("crown", None, "float32", 1, (lower, upper)),
            ("alpha-crown", ALPHA_FIXED, "float64", 1, (lower, upper)),
            ("alpha-crown (final only)", ALPHA_FINAL_ONLY, "float64", 1, (lower, upper)),
            ("crown", None, "float64", len(many[0]), many),
            ("crown", None, "float32", len(many[0]), many),
            ("alpha-crown (final only)", ALPHA_FINAL_ONLY, "float64", len(many[0]), many),
        ]
        if kind == "acas":  # on MNIST: ~20 full CROWN passes per region, minutes per batch
            runs.append(("alpha-crown", ALPHA_FIXED, "float64", len(many[0]), many))
        for method, options, dtype_name, regions, region in runs:
            dtype = torch.float32 if dtype_name == "float32" else torch.float64
            graph = bound_graph(network, dtype)
            name = method.split(" ")[0]
            heavy = regions > 1 and (kind == "mnist" or name == "alpha-crown")
            seconds = _best_time(
                functools.partial(
                    compute_bounds,
                    graph,
                    region,
                    C,
                    name,
                    bound_upper=False,
                    options=options,
                    dtype=dtype,
                ),
                repeats=1 if heavy else 5,
                warm_up=not heavy,
            )
            rows.append(
                {
                    "network": label,
                    "method": method,
                    "dtype": dtype_name,
                    "regions": regions,
                    "seconds": round(seconds, 4),
                    "ms_per_region": round(1000 * seconds / regions, 3),
                }
            )
            print(
                f"  timed {label} {method} {dtype_name} x{regions}: {seconds:.3f} s",
                file=sys.stderr,
            )
    return rows


def _expected(folder: Path) -> dict[tuple[str, str], str]:
    with open(folder / "expected.csv") as handle:
        return {(r["onnx"], r["vnnlib"]): r["expected"] for r in csv.DictReader(handle)}


def count_rows(data: Path, quick: bool) -> tuple[list[dict], list[dict]]:
    """Proof counts without branching; every instance's verdict and time."""
    instances = []
    mnist = [("mnistfc", "mnist-net_256x2.onnx", f"prop_{i}_0.03.vnnlib") for i in range(15)]
    nets = [f"ACASXU_run2a_{a}_{b}_batch_2000.onnx" for a in range(1, 6) for b in range(1, 10)]
    acas = [("acasxu", n, f"prop_{p}.vnnlib") for p in range(1, 5) for n in nets]
    if quick:
        acas = acas[::9]
    groups = {"mnistfc 256x2 eps 0.03": mnist, "acasxu props 1-4": acas}
    counts = []
    for group, items in groups.items():
        tally = {}
        for folder, onnx_name, vnnlib_name in items:
            expected = _expected(data / folder).get((onnx_name, vnnlib_name), "unknown")
            network = load_onnx(data / folder / onnx_name)
            spec = load_vnnlib(data / folder / vnnlib_name)
            for method in ("crown", "alpha-crown"):
                start = time.perf_counter()
                verdict = prove(network, spec, method).verdict.value
                seconds = time.perf_counter() - start
                instances.append(
                    {
                        "group": group,
                        "onnx": onnx_name,
                        "vnnlib": vnnlib_name,
                        "method": method,
                        "verdict": verdict,
                        "expected": expected,
                        "seconds": round(seconds, 4),
                    }
                )
                t = tally.setdefault(method, {"proved": 0, "wrong": 0, "seconds": 0.0})
                t["proved"] += verdict == "unsat"
                t["wrong"] += verdict == "unsat" and expected == "sat"
                t["seconds"] += seconds
        unsat = sum(_expected(data / f).get((o, v)) == "unsat" for f, o, v in items)
        for method, t in tally.items():
            counts.append(
                {
                    "group": group,
                    "method": method,
                    "instances": len(items),
                    "expected_unsat": unsat,
                    "proved": t["proved"],
                    "wrong": t["wrong"],
                    "seconds": round(t["seconds"], 2),
                }
            )
    return counts, instances


def _write(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _markdown(rows: list[dict]) -> str:
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "| " + " | ".join("---" for _ in keys) + " |"]
    lines += ["| " + " | ".join(str(r[k]) for k in keys) + " |" for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", default=None, help="benchmark data folder")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--quick", action="store_true", help="smaller batches and fewer instances")
    parser.add_argument("--skip-counts", action="store_true", help="timings only")
    args = parser.parse_args(argv)
    data = Path(
        args.data
        or os.environ.get("VERIFINN_BENCHMARKS")
        or HERE.parent.parent / "shared" / "benchmarks"
    )
    if not data.is_dir():
        print(f"benchmark data not found at {data}", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    out = HERE / "out"
    timings = timing_rows(data, args.quick)
    _write(out / "bounds_timing.csv", timings)
    print(f"## Bound timings ({args.threads} threads)\n")
    print(_markdown(timings))
    if not args.skip_counts:
        counts, instances = count_rows(data, args.quick)
        _write(out / "bounds_counts.csv", counts)
        _write(out / "bounds_instances.csv", instances)
        print("\n## Proved without branching\n")
        print(_markdown(counts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
