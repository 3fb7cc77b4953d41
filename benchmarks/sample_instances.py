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

With ``--match TEXT`` (repeatable) the draw is made per text, in order, among
the instances whose model or property path contains it (``--match 256x4
--match 256x6 --count 3``: three of each MNIST net).
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
    parser.add_argument("--match", action="append", help="draw per text in the paths")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    lists = sorted(args.folder.glob("*instances.csv"))
    if not lists:
        raise SystemExit(f"{args.folder}: no *instances.csv")
    instances = read_instances(lists[0])
    if args.known:
        expected = read_expected(args.folder / "expected.csv")
        instances = [
            i for i in instances if expected.get(instance_key(i.onnx, i.vnnlib)) in ("sat", "unsat")
        ]
    rng = np.random.default_rng(args.seed)
    groups = (
        [[i for i in instances if text in i.onnx or text in i.vnnlib] for text in args.match]
        if args.match
        else [instances]
    )
    chosen = []
    for group in groups:
        count = args.count if args.count is not None else round(len(group) * args.fraction)
        picks = sorted(rng.choice(len(group), size=min(count, len(group)), replace=False))
        chosen.extend(group[k] for k in picks)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        for instance in chosen:
            writer.writerow([instance.onnx, instance.vnnlib, instance.timeout])
    print(f"{len(chosen)} of {len(instances)} instances -> {args.out}")


if __name__ == "__main__":
    main()
