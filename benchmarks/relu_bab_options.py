"""ReLU branch and bound alone on one instance, under several option variants.

Measures what the branching rule, the re-tightening of intermediate bounds and
the precision of the alpha/beta steps do to the search (domains bounded, rounds,
time, the lowest margin left at the limit), one variant after the other in this
process, so that the variants see the same machine::

    python benchmarks/relu_bab_options.py ../shared/benchmarks/mnistfc \\
        mnist-net_256x4.onnx prop_0_0.03.vnnlib --timeout 60 --threads 1 \\
        --variant babsr --variant babsr+retighten --variant fsb3+retighten

A variant is ``babsr`` or ``fsbK`` (K candidates), optionally ``+retighten``
and ``+float64`` (float64 alpha/beta steps instead of float32). Rows are
appended to ``--out`` (CSV) when given.
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import torch

from verifiNN.budget import Budget
from verifiNN.io import load_instance
from verifiNN.search.relu_bab import ReluBaBOptions, relu_split_bab


def options_of(variant: str) -> ReluBaBOptions:
    """The options a variant name stands for (see the module docstring)."""
    head, *flags = variant.split("+")
    if head == "babsr":
        candidates = 1
    elif head.startswith("fsb") and head[3:].isdigit():
        candidates = int(head[3:])
    else:
        raise SystemExit(f"unknown branching {head!r}: expected 'babsr' or 'fsbK'")
    unknown = set(flags) - {"retighten", "float64"}
    if unknown:
        raise SystemExit(f"unknown flags {sorted(unknown)}: expected retighten, float64")
    return ReluBaBOptions(
        fsb_candidates=candidates,
        retighten_work=1.0 if "retighten" in flags else 0.0,
        search_dtype=torch.float64 if "float64" in flags else torch.float32,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("onnx")
    parser.add_argument("vnnlib")
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--variant", action="append", required=True)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    network, spec = load_instance(args.folder / args.onnx, args.folder / args.vnnlib)
    for variant in args.variant:
        options = options_of(variant)
        start = time.perf_counter()
        result = relu_split_bab(network, spec, Budget.start(args.timeout), options)
        seconds = time.perf_counter() - start
        stats = result.statistics
        row = {
            "onnx": args.onnx,
            "vnnlib": args.vnnlib,
            "variant": variant,
            "result": result.verdict.value,
            "seconds": round(seconds, 2),
            "domains": int(stats.get("domains", 0)),
            "rounds": int(stats.get("rounds", 0)),
            "empty": int(stats.get("empty", 0)),
            "worst_margin": round(float(stats.get("worst_margin", 0.0)), 5),
        }
        print(", ".join(f"{key} {value}" for key, value in row.items()), flush=True)
        if args.out is not None:
            new = not args.out.exists()
            with args.out.open("a", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=list(row))
                if new:
                    writer.writeheader()
                writer.writerow(row)


if __name__ == "__main__":
    main()
