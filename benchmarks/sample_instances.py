"""A fixed random sample of a benchmark folder's instances, as an instance list.

For runs that do not fit a session at the competition's limits ("a fixed random
half of each family, said so"): the sample is drawn with a fixed seed from the
folder's ``instances.csv`` (only instances with a known answer in
``expected.csv`` when ``--known``), in the folder's order, and written as
``onnx,vnnlib,timeout`` rows that ``verifinn bench LIST.csv --root FOLDER``
answers::

    python benchmarks/sample_instances.py ../shared/benchmarks/oval21 --count 4 \\
        --known --out runs/oval21_sample.csv
    verifinn bench runs/oval21_sample.csv --root ../shared/benchmarks/oval21 \\
        --out runs/oval21_sample_results.csv --max-timeout 60
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

from verifiNN.bench import instance_key, read_expected, read_instances


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--count", type=int, help="instances to draw")
    parser.add_argument("--fraction", type=float, help="share of the instances to draw")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--known", action="store_true", help="only instances with an answer")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    instances = read_instances(args.folder / "instances.csv")
    if args.known:
        expected = read_expected(args.folder / "expected.csv")
        instances = [
            i for i in instances if expected.get(instance_key(i.onnx, i.vnnlib)) in ("sat", "unsat")
        ]
    count = args.count if args.count is not None else round(len(instances) * args.fraction)
    rng = np.random.default_rng(args.seed)
    chosen = sorted(rng.choice(len(instances), size=min(count, len(instances)), replace=False))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        for k in chosen:
            writer.writerow([instances[k].onnx, instances[k].vnnlib, instances[k].timeout])
    print(f"{len(chosen)} of {len(instances)} instances -> {args.out}")


if __name__ == "__main__":
    main()
