"""Time the VNN-LIB reader on every property file of the shared benchmarks.

For each ``.vnnlib`` file: the best and median wall time of ``parse_vnnlib`` on
the file's text (no disk I/O) over ``--repeats`` runs, and of ``load_vnnlib``
(read + parse). Writes a CSV and a short Markdown summary.

Usage:
    python benchmarks/load_times_vnnlib.py [--bench ../shared/benchmarks] [--repeats 20]
        [--out benchmarks/out/load_times_vnnlib.csv]
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import time
from pathlib import Path

from verifiNN.io.vnnlib import load_vnnlib, parse_vnnlib

REPO = Path(__file__).resolve().parents[1]


def time_calls(fn, repeats: int) -> list[float]:
    """Wall times in milliseconds of ``repeats`` calls of ``fn``."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return times


def main() -> None:
    default_bench = os.environ.get("VERIFINN_BENCHMARKS", REPO.parent / "shared" / "benchmarks")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bench", type=Path, default=Path(default_bench))
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/out/load_times_vnnlib.csv")
    args = parser.parse_args()

    rows = []
    for path in sorted(args.bench.rglob("*.vnnlib")):
        text = path.read_text()
        parse_ms = time_calls(lambda text=text, path=path: parse_vnnlib(text, path), args.repeats)
        load_ms = time_calls(lambda path=path: load_vnnlib(path), args.repeats)
        spec = load_vnnlib(path)
        rows.append(
            {
                "file": str(path.relative_to(args.bench)),
                "bytes": len(text.encode()),
                "inputs": spec.num_inputs,
                "cases": len(spec),
                "parse_best_ms": round(min(parse_ms), 3),
                "parse_median_ms": round(statistics.median(parse_ms), 3),
                "load_median_ms": round(statistics.median(load_ms), 3),
            }
        )
    if not rows:
        raise SystemExit(f"no .vnnlib files under {args.bench}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    worst = max(rows, key=lambda r: r["parse_median_ms"])
    summary = [
        "# VNN-LIB load times",
        "",
        f"{len(rows)} files, {args.repeats} repeats each; median of parse_vnnlib (text in memory).",
        "",
        "| file | inputs | cases | parse best ms | parse median ms | load median ms |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    shown = [r for r in rows if r["file"].endswith(("prop_1.vnnlib", "prop_6.vnnlib"))]
    shown += [r for r in rows if r["file"].endswith("prop_0_0.03.vnnlib")] + [worst]
    for r in shown:
        summary.append(
            f"| {r['file']} | {r['inputs']} | {r['cases']} | {r['parse_best_ms']} "
            f"| {r['parse_median_ms']} | {r['load_median_ms']} |"
        )
    total = sum(r["parse_median_ms"] for r in rows)
    summary += ["", f"Sum of medians over all files: {total:.1f} ms (last row: the slowest)."]
    args.out.with_suffix(".md").write_text("\n".join(summary) + "\n")
    print("\n".join(summary))


if __name__ == "__main__":
    main()
