"""How many known counterexamples the falsifying attack finds, and how fast.

Runs :func:`verifiNN.search.attack` (sampling + PGD, default settings) on every
instance whose ``expected`` is ``sat`` in ``acasxu/expected.csv`` and
``mnistfc/expected.csv``, checks every counterexample by a forward pass, and
writes one CSV row per instance plus a Markdown summary (found, median and
max seconds). Loading the model and property is not timed.

Usage:
    python benchmarks/attack.py [DATA] [--timeout 30] [--seeds 1] [--out benchmarks/out/attack.csv]

``DATA`` defaults to ``$VERIFINN_BENCHMARKS`` or ``../shared/benchmarks``.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys
import time
from pathlib import Path

import torch

from verifiNN.budget import Budget
from verifiNN.io import load_onnx, load_vnnlib
from verifiNN.search import attack

BENCHMARKS = ("acasxu", "mnistfc")


def data_folder(argument: str | None) -> Path:
    if argument:
        return Path(argument)
    default = Path(__file__).resolve().parents[2] / "shared" / "benchmarks"
    return Path(os.environ.get("VERIFINN_BENCHMARKS", default))


def sat_instances(folder: Path) -> list[dict[str, str]]:
    with open(folder / "expected.csv", newline="") as handle:
        return [row for row in csv.DictReader(handle) if row["expected"] == "sat"]


def run_one(folder: Path, row: dict[str, str], timeout: float, seed: int) -> dict[str, object]:
    network = load_onnx(folder / row["onnx"])
    spec = load_vnnlib(folder / row["vnnlib"], network)
    start = time.perf_counter()
    result = attack(network, spec, budget=Budget.start(timeout), seed=seed)
    seconds = time.perf_counter() - start
    confirmed = result.found and spec.check_counterexample(network, result.counterexample)
    if result.found and not confirmed:
        raise AssertionError(f"unconfirmed counterexample on {row['onnx']} {row['vnnlib']}")
    return {
        "benchmark": folder.name,
        "onnx": row["onnx"],
        "vnnlib": row["vnnlib"],
        "seed": seed,
        "found": int(confirmed),
        "seconds": round(seconds, 4),
        "evaluations": result.evaluations,
        "margin": f"{result.margin:.4g}",
    }


def summary(rows: list[dict[str, object]]) -> str:
    lines = [
        "| benchmark | sat instances | found | median s | max s | median s (found) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name in sorted({str(r["benchmark"]) for r in rows}):
        part = [r for r in rows if r["benchmark"] == name]
        times = [float(r["seconds"]) for r in part]
        hits = [float(r["seconds"]) for r in part if r["found"]]
        lines.append(
            f"| {name} | {len(part)} | {sum(int(r['found']) for r in part)} | "
            f"{statistics.median(times):.3f} | {max(times):.3f} | "
            f"{statistics.median(hits) if hits else float('nan'):.3f} |"
        )
    missed = [f"{r['benchmark']}/{r['onnx']} {r['vnnlib']}" for r in rows if not r["found"]]
    if missed:
        lines.append("")
        lines.append("Not found: " + ", ".join(missed))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", help="benchmark folder (default: ../shared/benchmarks)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per instance")
    parser.add_argument("--seeds", type=int, default=1, help="attack seeds per instance")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out/attack.csv"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    root = data_folder(args.data)
    if not root.is_dir():
        sys.exit(f"benchmark folder {root} not found")
    rows = []
    for name in BENCHMARKS:
        folder = root / name
        for row in sat_instances(folder):
            for seed in range(args.seeds):
                rows.append(run_one(folder, row, args.timeout, seed))
                print(
                    f"{name} {row['onnx']} {row['vnnlib']} seed={seed}: "
                    f"found={rows[-1]['found']} {rows[-1]['seconds']} s",
                    flush=True,
                )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    text = summary(rows)
    args.out.with_suffix(".md").write_text(text + "\n")
    print()
    print(text)


if __name__ == "__main__":
    main()
