"""Samples per second of ``verifiNN.certify`` on 1 process, 2 local processes and Ray.

The digits CNN shipped in ``examples/digits`` at one epsilon, the first N test
samples. Wall time includes starting the workers (process spawn, Ray start), as
a user sees it. The tables of the three runs are compared (every column but
``seconds`` and ``method``).

Usage:
    python benchmarks/certify.py [--model examples/digits/digits_cnn.onnx]
        [--eps 0.03] [--samples 120] [--timeout 10] [--out benchmarks/out/certify_scaling.csv]
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

from verifiNN.certify import certify, load_dataset
from verifiNN.executors import InProcessExecutor, ProcessExecutor, RayExecutor
from verifiNN.io import load_onnx

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(ROOT / "examples/digits/digits_cnn.onnx"))
    parser.add_argument("--data", default=str(ROOT / "examples/digits/digits_test.npz"))
    parser.add_argument("--eps", type=float, default=0.03)
    parser.add_argument("--samples", type=int, default=120)
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument("--out", default=str(ROOT / "benchmarks/out/certify_scaling.csv"))
    args = parser.parse_args()
    network = load_onnx(args.model)
    data = load_dataset(args.data, network)
    x, y = data.inputs[: args.samples], data.labels[: args.samples]
    runs = []
    reference = None
    for name, executor in (
        ("1 process", InProcessExecutor()),
        ("2 local processes", ProcessExecutor(2)),
        ("Ray, local instance, 2 CPUs", RayExecutor(workers=2)),
    ):
        start = time.perf_counter()
        result = certify(network, x, y, [args.eps], timeout_per_sample=args.timeout,
                         executor=executor, domain=(0.0, 1.0))  # fmt: skip
        seconds = time.perf_counter() - start
        table = [(r["sample"], r["verdict"]) for r in result.rows]
        reference = reference or table
        runs.append(
            {
                "executor": name,
                "samples": len(x),
                "seconds": round(seconds, 2),
                "samples_per_second": round(len(x) / seconds, 2),
                "certified_accuracy": round(result.summary["epsilons"][0]["certified_accuracy"], 4),
                "attack_accuracy": round(result.summary["epsilons"][0]["attack_accuracy"], 4),
                "same_table": table == reference,
            }
        )
        print(runs[-1], flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(runs[0]))
        writer.writeheader()
        writer.writerows(runs)
    base = runs[0]["seconds"]
    print("| executor | seconds | samples/s | speed-up | same table |")
    print("|:---|---:|---:|---:|:---|")
    for run in runs:
        print(f"| {run['executor']} | {run['seconds']} | {run['samples_per_second']} | "
              f"{base / run['seconds']:.2f}x | {run['same_table']} |")  # fmt: skip


if __name__ == "__main__":
    main()
