"""How far past its time limit each method ends (tests check limits by counting, not timing).

Two measurements, both on problems no method decides within the limit:

* every ``verify(method=...)`` on a random 12-128x5-2 ReLU MLP whose property
  sits halfway between the best margin an attack finds and the bound (the
  instance ``tests/test_portfolio.py`` uses), at a 0.5 s and a 3 s limit;
* ``verifinn verify --timeout 5`` as a whole process (start-up included) on
  ACAS Xu 3_3 prop_2 (VNN-COMP data; skipped when it is absent);
* ``verifinn verify --timeout T`` (``--process-limit``, 10 s by default) as a
  whole process on the first instance of each convolutional family in
  :data:`CNN_FAMILIES` whose one CROWN pass alone can outlast the limit.

Writes ``benchmarks/out/time_limits.csv`` and prints a Markdown table: the
wall time and the overrun (wall time minus limit) of each run, and the largest
overrun. Run on a quiet machine and say how loaded it was.

    python benchmarks/time_limits.py [DATA_FOLDER]
"""

from __future__ import annotations

import argparse
import csv
import itertools
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from verifiNN import Network, verify
from verifiNN.budget import Budget
from verifiNN.methods import METHODS
from verifiNN.search.attack import attack
from verifiNN.specs import Box, Case, HalfSpaces, Specification

HERE = Path(__file__).resolve().parent
#: Families whose models are big enough that one bound pass lasts seconds on a CPU.
CNN_FAMILIES = ("cifar10_resnet", "sri_resnet_a", "oval21", "marabou-cifar10", "vit", "cgan")


def data_folder(arg: str | None) -> Path:
    """The data folder: the argument, ``VERIFINN_BENCHMARKS`` or ``../shared/benchmarks``."""
    default = HERE.parent.parent / "shared" / "benchmarks"
    return Path(arg or os.environ.get("VERIFINN_BENCHMARKS", default))


def hard_instance() -> tuple[Network, Specification]:
    """A property no method decides in seconds (see the module docstring)."""
    rng = np.random.default_rng(7)
    widths = [12, 128, 128, 128, 128, 128, 2]
    weights = [rng.normal(size=(o, i)) / np.sqrt(i) for i, o in itertools.pairwise(widths)]
    biases = [0.1 * rng.normal(size=o) for o in widths[1:]]
    network = Network(weights, biases)
    box = Box(-np.ones(12), np.ones(12))

    def above(t: float) -> Specification:
        return Specification((Case(box, (HalfSpaces([[-1.0, 1.0]], [-t]),)),))

    best = 1e6 - attack(network, above(1e6), budget=Budget.start(5), seed=1).margin
    return network, above(best + 0.5 * abs(best))


def first_instance(folder: Path) -> tuple[Path, Path] | None:
    """The first ``(model, property)`` of a family's instance list, or ``None``."""
    lists = sorted(folder.glob("*instances.csv"))
    if not lists:
        return None
    with lists[0].open() as handle:
        onnx, vnnlib = handle.readline().strip().split(",")[:2]
    return folder / onnx, folder / vnnlib


def process_run(exe: str, model: Path, prop: Path, limit: float, label: str) -> dict:
    """One ``verifinn verify --timeout limit`` process, timed from outside."""
    start = time.perf_counter()
    done = subprocess.run(
        [exe, "verify", str(model), str(prop), "--timeout", str(limit)],
        capture_output=True, text=True,
    )  # fmt: skip
    wall = time.perf_counter() - start
    return {"run": f"verifinn verify --timeout {limit:g} ({label}, process)", "limit_s": limit,
            "verdict": done.stdout.split("\n")[0], "wall_s": round(wall, 3),
            "overrun_s": round(wall - limit, 3)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", help="benchmark data folder")
    parser.add_argument("--limits", default="0.5,3", help="time limits in seconds")
    parser.add_argument("--process-limit", type=float, default=10.0,
                        help="limit of the whole-process runs on the CNN families")  # fmt: skip
    args = parser.parse_args()
    torch.set_num_threads(1)
    network, spec = hard_instance()
    rows = []
    for limit in (float(x) for x in args.limits.split(",")):
        for method in METHODS:
            start = time.perf_counter()
            result = verify(network, spec, method=method, timeout=limit)
            wall = time.perf_counter() - start
            rows.append({"run": f"verify(method={method!r})", "limit_s": limit,
                         "verdict": str(result.verdict), "wall_s": round(wall, 3),
                         "overrun_s": round(wall - limit, 3)})  # fmt: skip
            print(rows[-1], flush=True)
    data = data_folder(args.data)
    acas = data / "acasxu"
    exe = shutil.which("verifinn")
    if exe and (acas / "prop_2.vnnlib").exists():
        model = acas / "ACASXU_run2a_3_3_batch_2000.onnx"
        rows.append(process_run(exe, model, acas / "prop_2.vnnlib", 5.0, "ACAS Xu 3_3 prop_2"))
        print(rows[-1], flush=True)
    for family in CNN_FAMILIES if exe else ():
        found = first_instance(data / family)
        if found is not None:
            rows.append(process_run(exe, *found, args.process_limit, family))
            print(rows[-1], flush=True)
    out = HERE / "out" / "time_limits.csv"
    out.parent.mkdir(exist_ok=True)
    with out.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print("\n| run | limit s | verdict | wall s | overrun s |\n| --- | --- | --- | --- | --- |")
    for r in rows:
        print(
            f"| {r['run']} | {r['limit_s']} | {r['verdict']} | {r['wall_s']} | {r['overrun_s']} |"
        )
    print(f"\nlargest overrun: {max(r['overrun_s'] for r in rows):.3f} s "
          f"(python {sys.version.split()[0]}, torch {torch.__version__})")  # fmt: skip


if __name__ == "__main__":
    main()
