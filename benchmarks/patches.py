"""CROWN with and without patches-form passes, on competition instances.

Times one CROWN bound (every intermediate bound and the property's rows) of
each instance with dense coefficients and with patches
(:mod:`verifiNN.bounds.patches`), in this process one after the other, and
checks that the bounds agree::

    python benchmarks/patches.py ../shared/benchmarks/cifar10_resnet \\
        onnx/resnet_2b.onnx.gz \\
        vnnlib_properties_pgd_filtered/resnet2b_pgd_filtered/prop_0_eps_0.008.vnnlib.gz \\
        --threads 1 --out runs/patches.csv

Pairs of ``MODEL PROPERTY`` paths are relative to the folder. ``--skip-dense``
times the patches pass alone (where the dense one takes too long).
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import torch

from verifiNN.bounds import CrownOptions, compute_bounds
from verifiNN.io import load_instance


def _time(network, box, patches: bool):
    began = time.perf_counter()
    result = compute_bounds(network, box, bound_upper=False, options=CrownOptions(patches=patches))
    return time.perf_counter() - began, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("paths", nargs="+", help="MODEL PROPERTY pairs, relative to FOLDER")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--skip-dense", action="store_true")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if len(args.paths) % 2:
        raise SystemExit("paths come in MODEL PROPERTY pairs")
    torch.set_num_threads(args.threads)
    rows = []
    for model, prop in zip(args.paths[::2], args.paths[1::2]):
        network, spec = load_instance(args.folder / model, args.folder / prop)
        box = spec.bounding_box()
        box = (box.lower, box.upper)
        patched_s, patched = _time(network, box, True)
        dense_s, gap = float("nan"), float("nan")
        if not args.skip_dense:
            dense_s, dense = _time(network, box, False)
            gap = float((dense.lower - patched.lower).abs().max())
        row = {
            "family": args.folder.name,
            "model": model,
            "property": prop,
            "dense_s": f"{dense_s:.2f}",
            "patches_s": f"{patched_s:.2f}",
            "largest_difference": f"{gap:.3g}",
        }
        print(row, flush=True)
        rows.append(row)
    if args.out:
        new = not args.out.exists()
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with args.out.open("a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            if new:
                writer.writeheader()
            writer.writerows(rows)


if __name__ == "__main__":
    main()
