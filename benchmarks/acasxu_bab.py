"""Input-splitting branch and bound alone on ACAS Xu instances.

Runs :func:`verifiNN.search.bab.input_split_bab` (no attack phase) on a list
of ``acasxu/expected.csv`` instances, checks every verdict against the known
answer (a wrong ``sat``/``unsat`` raises) and writes one CSV row per instance
to ``benchmarks/out/acasxu_bab.csv`` plus the totals on stdout. Loading the
model and property is not timed. One torch thread (the machine has 2 cores).

Usage:
    python benchmarks/acasxu_bab.py [DATA] [--every 6] [--extra 3_7:prop_1 ...]
        [--limit N] [--timeout 60] [--no-clip] [--out benchmarks/out/acasxu_bab.csv]

``DATA`` defaults to ``$VERIFINN_BENCHMARKS`` or ``../shared/benchmarks``.
``--every k`` takes every k-th instance of ``acasxu_instances.csv`` (1: all);
``--extra NET:PROP`` adds instances such as ``3_7:prop_1``.
"""

from __future__ import annotations

import argparse
import csv
import os
import time
from pathlib import Path

import torch

from verifiNN.budget import Budget
from verifiNN.io import load_onnx, load_vnnlib
from verifiNN.search.bab import BaBOptions, input_split_bab

DEFAULT_EXTRA = ("3_7:prop_1", "5_1:prop_1", "1_1:prop_5")


def data_folder(argument: str | None) -> Path:
    """The benchmark data folder from the argument, the environment or the default."""
    if argument:
        return Path(argument)
    default = Path(__file__).resolve().parents[2] / "shared" / "benchmarks"
    return Path(os.environ.get("VERIFINN_BENCHMARKS", default))


def select(folder: Path, every: int, extra: list[str], limit: int | None) -> list[dict[str, str]]:
    """Every ``every``-th instance plus the named extras, with their expected answers."""
    with open(folder / "expected.csv", newline="") as handle:
        known = {(r["onnx"], r["vnnlib"]): r for r in csv.DictReader(handle)}
    with open(folder / "acasxu_instances.csv", newline="") as handle:
        order = [(r[0], r[1]) for r in csv.reader(handle) if r]
    chosen = order[::every]
    for item in extra:
        net, prop = item.split(":")
        key = (f"ACASXU_run2a_{net}_batch_2000.onnx", f"{prop}.vnnlib")
        if key not in chosen:
            chosen.append(key)
    return [known[key] for key in chosen[:limit]]


def run_one(folder: Path, row: dict[str, str], timeout: float, options: BaBOptions) -> dict:
    """Run BaB on one instance; raises on a verdict contradicting the known answer."""
    network = load_onnx(folder / row["onnx"])
    spec = load_vnnlib(folder / row["vnnlib"], network)
    start = time.perf_counter()
    result = input_split_bab(network, spec, Budget.start(timeout), options)
    seconds = time.perf_counter() - start
    verdict = result.verdict.value
    if verdict in ("sat", "unsat") and verdict != row["expected"]:
        raise AssertionError(f"wrong verdict {verdict} on {row['onnx']} {row['vnnlib']}")
    if verdict == "sat" and not spec.is_violated_by(*result.counterexample):
        raise AssertionError(f"unconfirmed counterexample on {row['onnx']} {row['vnnlib']}")
    return {
        "onnx": row["onnx"],
        "vnnlib": row["vnnlib"],
        "expected": row["expected"],
        "verdict": verdict,
        "seconds": round(seconds, 3),
        "domains": int(result.statistics.get("domains", 0)),
        "abcrown_s": row.get("abcrown_s", ""),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?")
    parser.add_argument("--every", type=int, default=6)
    parser.add_argument("--extra", nargs="*", default=list(DEFAULT_EXTRA))
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--engine", default="auto")
    parser.add_argument("--branching", default=BaBOptions.branching)
    parser.add_argument("--batch-size", type=int, default=BaBOptions.batch_size)
    parser.add_argument("--no-clip", action="store_true", help="do not clip boxes")
    parser.add_argument("--out", default=str(Path(__file__).parent / "out" / "acasxu_bab.csv"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    folder = data_folder(args.data) / "acasxu"
    options = BaBOptions(
        engine=args.engine,
        branching=args.branching,
        batch_size=args.batch_size,
        clip=not args.no_clip,
    )
    rows = []
    for row in select(folder, args.every, args.extra, args.limit):
        rows.append(run_one(folder, row, args.timeout, options))
        r = rows[-1]
        print(
            f"{r['onnx'][13:-15]:5s} {r['vnnlib']:15s} {r['expected']:6s} {r['verdict']:8s}"
            f" {r['seconds']:8.2f}s {r['domains']:8d}  (abcrown {r['abcrown_s']} s)",
            flush=True,
        )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    solved = sum(r["verdict"] == r["expected"] for r in rows)
    total = sum(r["seconds"] for r in rows)
    print(f"solved {solved}/{len(rows)}, total {total:.1f} s -> {args.out}")


if __name__ == "__main__":
    main()
