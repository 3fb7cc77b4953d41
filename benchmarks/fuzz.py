"""Fuzz every verification method against oracles on many random problems.

Case ``i`` is :func:`verifiNN.fuzz.random_case` of seed ``S + i`` (a random
network of every supported op and a random property) checked by
:func:`verifiNN.fuzz.check_case`: every method of ``verifiNN.verify``, compared
with dense sampling, exhaustive activation-region enumeration on tiny ReLU
MLPs, the MILP and each other. Prints the counts (cases, verdicts per method,
unsound answers, disagreements, errors, near-ties, seconds) and every finding
with its seed, and writes one CSV row per case. Exit status 1 when anything
was found.

Cases run in ``--workers`` spawned processes (:mod:`verifiNN.executors`,
one torch thread each); rows are written as cases finish, so the CSV is in
completion order (sort by ``seed``). Each case depends only on its seed.

Reproduce one case: ``python benchmarks/fuzz.py --n 1 --seed SEED``.

Usage:
    python benchmarks/fuzz.py --n 10000 [--seed 0] [--workers 2] [--out benchmarks/out/fuzz.csv]
"""

from __future__ import annotations

import argparse
import collections
import csv
import logging
import sys
import time
import warnings
from pathlib import Path

import torch

from verifiNN.executors import make_executor
from verifiNN.fuzz import CaseReport, check_case, random_case
from verifiNN.methods import METHODS

FIELDS = (
    "seed",
    "kind",
    "oracle",
    "oracle_margin",
    "best_margin",
    *METHODS,
    "near_tie",
    "rejected",
    "unsound",
    "disagreements",
    "errors",
    "seconds",
)


def row(report: CaseReport) -> dict[str, object]:
    """One CSV row of a case."""
    return {
        "seed": report.seed,
        "kind": report.kind,
        "oracle": report.oracle,
        "oracle_margin": "" if report.oracle_margin is None else f"{report.oracle_margin:.9g}",
        "best_margin": f"{report.best_margin:.9g}",
        **{m: report.verdicts.get(m, "") for m in METHODS},
        "near_tie": int(report.near_tie),
        "rejected": report.rejected,
        "unsound": " | ".join(report.unsound),
        "disagreements": " | ".join(report.disagreements),
        "errors": " | ".join(report.errors),
        "seconds": f"{report.seconds.get('total', 0.0):.3f}",
    }


def _quiet() -> None:
    warnings.simplefilter("ignore")
    logging.disable(logging.WARNING)  # rejected counterexamples are counted instead


def run_case(context: None, seed: int) -> CaseReport:
    """Build and check the case of ``seed`` (an executor task)."""
    _quiet()
    return check_case(random_case(seed))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100, help="number of cases")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first case")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out/fuzz.csv"))
    parser.add_argument("--threads", type=int, default=1, help="torch threads (one process)")
    parser.add_argument("--workers", type=int, default=1, help="processes (one thread each)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    _quiet()
    executor = make_executor("local", args.workers)
    args.out.parent.mkdir(parents=True, exist_ok=True)

    counts: dict[str, collections.Counter[str]] = {m: collections.Counter() for m in METHODS}
    kinds: collections.Counter[str] = collections.Counter()
    totals = collections.Counter()
    start = time.perf_counter()
    with args.out.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, FIELDS)
        writer.writeheader()
        seeds = range(args.seed, args.seed + args.n)
        for done, report in enumerate(executor.run(run_case, None, seeds), start=1):
            writer.writerow(row(report))
            handle.flush()
            kinds[report.kind] += 1
            for method, verdict in report.verdicts.items():
                counts[method][verdict] += 1
            totals["unsound"] += len(report.unsound)
            totals["disagreements"] += len(report.disagreements)
            totals["errors"] += len(report.errors)
            totals["near_ties"] += report.near_tie
            totals["rejected"] += report.rejected
            totals["region_oracle"] += report.oracle == "regions"
            if not report.clean:
                print(report.summary(), flush=True)
            if done % 500 == 0:
                print(f"... {done} cases, {time.perf_counter() - start:.0f} s", flush=True)
    seconds = time.perf_counter() - start

    print(
        f"\ncases: {args.n} (seeds {args.seed}..{args.seed + args.n - 1}), {seconds:.0f} s"
        f" on {executor.workers} worker(s)"
    )
    print("networks: " + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())))
    print(f"region oracle (exact) on {totals['region_oracle']} cases")
    print("verdicts per method:")
    for method in METHODS:
        shown = ", ".join(f"{v} {c}" for v, c in sorted(counts[method].items()))
        print(f"  {method:12s} {shown}")
    for key in ("unsound", "disagreements", "errors", "near_ties", "rejected"):
        print(f"{key}: {totals[key]}")
    print(f"CSV: {args.out}")
    return 1 if totals["unsound"] or totals["disagreements"] or totals["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
