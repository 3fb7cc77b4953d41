"""Instance-list results as a competition ``results.csv``, for ``verifinn score``.

``verifinn bench LIST.csv --out FILE.csv`` writes ``onnx,vnnlib,result,seconds``
rows without the benchmark's name. This writes them as the competition's
``benchmark,onnx,vnnlib,prepare_time,result,run_time`` rows, one benchmark per
``NAME=FILE.csv`` argument; with ``--abcrown`` it writes instead what
alpha-beta-CROWN answered at the competition on the same instances (the
``abcrown``/``abcrown_s`` columns of each folder's ``expected.csv``), so both can
be scored side by side::

    python benchmarks/as_competition_results.py \\
        cifar10_resnet=runs/half/cifar10_resnet_results.csv --out runs/half/verifinn.csv
    python benchmarks/as_competition_results.py \\
        cifar10_resnet=runs/half/cifar10_resnet_results.csv --abcrown --out runs/half/abcrown.csv
    verifinn score runs/half/verifinn.csv runs/half/abcrown.csv \\
        --benchmarks ../shared/benchmarks --out runs/half
"""

from __future__ import annotations

import argparse
import csv
import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
ABCROWN_COLUMNS = (("abcrown", "abcrown_s"), ("vnncomp2021_abcrown", "abcrown_s"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="BENCHMARK=RESULTS.csv")
    parser.add_argument("--abcrown", action="store_true", help="alpha-beta-CROWN's answers")
    parser.add_argument("--data", type=Path, help="the benchmark folders' parent")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    default = os.environ.get("VERIFINN_BENCHMARKS", REPO_ROOT.parent / "shared" / "benchmarks")
    data = args.data or Path(default)
    with args.out.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["benchmark", "onnx", "vnnlib", "prepare_time", "result", "run_time"])
        for item in args.runs:
            name, _, path = item.partition("=")
            if not path:
                raise SystemExit(f"expected BENCHMARK=RESULTS.csv, got {item!r}")
            with open(path, newline="") as f:
                rows = list(csv.DictReader(f))
            expected = {}
            if args.abcrown:
                with (data / name / "expected.csv").open(newline="") as f:
                    expected = {(r["onnx"], r["vnnlib"]): r for r in csv.DictReader(f)}
            for row in rows:
                result, seconds = row["result"], row["seconds"]
                if args.abcrown:
                    peer = expected[(row["onnx"], row["vnnlib"])]
                    answer, time_column = next(c for c in ABCROWN_COLUMNS if c[0] in peer)
                    result, seconds = peer[answer], peer[time_column] or "0"
                writer.writerow([name, row["onnx"], row["vnnlib"], 0, result, seconds])


if __name__ == "__main__":
    main()
