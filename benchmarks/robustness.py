"""Exact L-inf pointwise robustness on the MNIST 256x2 net (VNN-COMP mnistfc).

The images are recovered from the centres of the ``prop_i_0.03`` boxes: a pixel
box is ``[max(x - eps, 0), min(x + eps, 1)]``, so ``x = lo + eps`` where
``lo > 0`` and ``x = up - eps`` otherwise (exact for ``eps < 0.5``). For each
image the script records:

* the exact minimal L-inf adversarial distance (inputs kept in ``[0, 1]``) by
  :func:`verifiNN.robustness.exact_robustness` (certified radius, attack,
  seeded MILP, then radius bisection by ReLU branch and bound), or its bracket
  when the time limit cuts it short;
* the cheap bracket: the alpha-CROWN certified radius and the attack's
  upper bound (:func:`verifiNN.robustness.pointwise_robustness`).

Usage:
    python benchmarks/robustness.py [DATA] [--images 10] [--epsilon 0.06]
        [--timeout 120] [--out benchmarks/out/robustness.csv]
"""

from __future__ import annotations

import argparse
import csv
import os
import time
from pathlib import Path

import numpy as np
import torch

from verifiNN.budget import Budget
from verifiNN.io import load_onnx, load_vnnlib
from verifiNN.verifiers.robustness import exact_robustness, pointwise_robustness


def data_folder(argument: str | None) -> Path:
    """The benchmark data folder from the argument, the environment or the default."""
    if argument:
        return Path(argument)
    default = Path(__file__).resolve().parents[2] / "shared" / "benchmarks"
    return Path(os.environ.get("VERIFINN_BENCHMARKS", default))


def recover_image(lower: np.ndarray, upper: np.ndarray, eps: float) -> np.ndarray:
    """The image whose ``eps`` box clipped to ``[0, 1]`` is ``[lower, upper]``."""
    return np.where(lower > 0, lower + eps, upper - eps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?")
    parser.add_argument("--images", type=int, default=10)
    parser.add_argument("--epsilon", type=float, default=0.06, help="search radius")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per exact distance")
    parser.add_argument("--out", default=str(Path(__file__).parent / "out" / "robustness.csv"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    folder = data_folder(args.data) / "mnistfc"
    network = load_onnx(folder / "mnist-net_256x2.onnx")
    rows = []
    for i in range(args.images):
        box = load_vnnlib(folder / f"prop_{i}_0.03.vnnlib", network).cases[0].input_region
        x = recover_image(np.asarray(box.lower), np.asarray(box.upper), 0.03)
        start = time.perf_counter()
        exact = exact_robustness(
            network, x, args.epsilon, "inf", budget=Budget.start(args.timeout), domain=(0.0, 1.0)
        )
        exact_s = time.perf_counter() - start
        start = time.perf_counter()
        cheap = pointwise_robustness(network, x, args.epsilon, "inf", domain=(0.0, 1.0))
        cheap_s = time.perf_counter() - start
        upper = exact.upper_bound
        stats = exact.statistics
        row = {
            "image": i,
            "label": exact.label,
            "status": exact.status,
            "lower": round(exact.lower_bound, 7),
            "upper": "" if upper is None else round(upper, 7),
            "width": "" if upper is None else f"{upper - exact.lower_bound:.1e}",
            "exact_s": round(exact_s, 2),
            "milp_binaries": int(stats.get("milp_binaries", 0)),
            "bisection_steps": int(stats.get("bisection_steps", 0)),
            "certified": round(cheap.lower_bound, 6),
            "attack": "" if cheap.upper_bound is None else round(cheap.upper_bound, 6),
            "bracket_s": round(cheap_s, 2),
        }
        rows.append(row)
        print(", ".join(f"{k} {v}" for k, v in row.items()), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


if __name__ == "__main__":
    main()
