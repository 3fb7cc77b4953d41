"""Time loading every benchmark model (ONNX) and property (VNN-LIB).

Each file is loaded 5 times; the median wall time goes to
``benchmarks/out/load_times.csv`` (columns ``file, kind, seconds``) and a
Markdown summary (per benchmark folder and kind: count, median and max
milliseconds) is printed. ONNX times include the simplification passes.

Usage:
    python benchmarks/load_times.py [DATA_FOLDER] [--repeat 5] [--threads 1]
        [--out benchmarks/out/load_times.csv]

The data folder defaults to ``$VERIFINN_BENCHMARKS`` or ``../shared/benchmarks``
next to the repository. Torch runs single-threaded by default: on a small,
shared machine its intra-op threads slow the per-layer parameter checks down
many times over.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from verifiNN.io.onnx import load_onnx

try:
    from verifiNN.io.vnnlib import load_vnnlib
except ImportError:  # the VNN-LIB parser is not there yet: time models only
    load_vnnlib = None

REPO_ROOT = Path(__file__).resolve().parents[1]


def median_seconds(load: Callable[[Path], object], path: Path, repeat: int) -> float:
    """Median wall time of ``load(path)`` over ``repeat`` runs."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        load(path)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(data: Path, repeat: int) -> list[tuple[str, str, float]]:
    """``(file relative to data, kind, median seconds)`` for every model and property."""
    loaders: dict[str, Callable[[Path], object]] = {".onnx": load_onnx}
    if load_vnnlib is not None:
        loaders[".vnnlib"] = load_vnnlib
    rows = []
    for path in sorted(data.rglob("*")):
        load = loaders.get(path.suffix)
        if load is not None and path.is_file():
            seconds = median_seconds(load, path, repeat)
            rows.append((str(path.relative_to(data)), path.suffix[1:], seconds))
    return rows


def summary(rows: list[tuple[str, str, float]]) -> str:
    """Markdown table: per folder and kind, count, median and max milliseconds."""
    groups: dict[tuple[str, str], list[float]] = {}
    for file, kind, seconds in rows:
        folder = Path(file).parts[0] if len(Path(file).parts) > 1 else "."
        groups.setdefault((folder, kind), []).append(seconds * 1e3)
    lines = ["| folder | kind | files | median ms | max ms |", "| --- | --- | --- | --- | --- |"]
    for (folder, kind), ms in sorted(groups.items()):
        lines.append(
            f"| {folder} | {kind} | {len(ms)} | {statistics.median(ms):.2f} | {max(ms):.2f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = os.environ.get("VERIFINN_BENCHMARKS", REPO_ROOT.parent / "shared" / "benchmarks")
    parser.add_argument("data", nargs="?", type=Path, default=Path(default))
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks/out/load_times.csv")
    args = parser.parse_args(argv)
    if not args.data.is_dir():
        parser.error(f"benchmark folder {args.data} not found")
    torch.set_num_threads(args.threads)
    rows = measure(args.data, args.repeat)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["file", "kind", "seconds"])
        writer.writerows((file, kind, f"{seconds:.6f}") for file, kind, seconds in rows)
    if load_vnnlib is None:
        print("verifiNN.io.vnnlib is not available: VNN-LIB files were not timed.\n")
    print(summary(rows))
    print(
        f"\n{len(rows)} files, median of {args.repeat} loads each, "
        f"{args.threads} torch thread(s); CSV: {args.out}"
    )


if __name__ == "__main__":
    main()
