"""Per-family table of a ``verifinn bench`` suite run beside each folder's ``expected.csv``.

For every benchmark of a results folder: instances, the agreed answers
(``expected``: sat / unsat), ours (solved, sat, unsat, wrong, errors), how many
alpha-beta-CROWN solved at the competition (``abcrown`` column of
``expected.csv``, full time limits, on a GPU), and how far past its limit the
slowest instance ended (``overrun``: ``seconds - timeout``; the promise is
under 2 s).

Usage:
    python benchmarks/suite_table.py RESULTS_DIR [DATA_FOLDER]

The data folder defaults to ``$VERIFINN_BENCHMARKS`` or ``../shared/benchmarks``.
"""

from __future__ import annotations

import argparse
import csv
import os
from collections import Counter, defaultdict
from pathlib import Path

from verifiNN.bench import instance_key

REPO_ROOT = Path(__file__).resolve().parents[1]
DECIDED = ("sat", "unsat")
#: alpha-beta-CROWN's answer in ``expected.csv`` (the 2021 folders name its year).
ABCROWN_COLUMNS = ("abcrown", "vnncomp2021_abcrown")


def _key(onnx: str, vnnlib: str) -> tuple[str, str]:
    """:func:`verifiNN.bench.instance_key` of the paths without their ``.gz``."""
    return instance_key(onnx.removesuffix(".gz"), vnnlib.removesuffix(".gz"))


def expected_rows(folder: Path) -> dict[tuple[str, str], dict[str, str]]:
    """``(onnx, vnnlib) -> row`` of the folder's ``expected.csv`` (empty when absent)."""
    path = folder / "expected.csv"
    if not path.is_file():
        return {}
    with path.open(newline="") as handle:
        return {_key(r["onnx"], r["vnnlib"]): r for r in csv.DictReader(handle)}


def table(results: Path, data: Path) -> str:
    """The Markdown table of ``results/results.csv``."""
    rows: dict[str, list[dict[str, str]]] = defaultdict(list)
    with (results / "results.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            rows[row["benchmark"]].append(row)
    lines = [
        "| benchmark | instances | expected sat / unsat | solved | sat | unsat | wrong | errors "
        "| abcrown solved | worst overrun s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    total: Counter[str] = Counter()
    for name in sorted(rows):
        expected = expected_rows(data / name)
        ours: Counter[str] = Counter()
        overrun = -float("inf")
        for row in rows[name]:
            word = row["result"]
            ours[word] += 1
            truth = expected.get(_key(row["onnx"], row["vnnlib"]), {})
            if word in DECIDED and truth.get("expected") in DECIDED and word != truth["expected"]:
                ours["wrong"] += 1
            overrun = max(overrun, float(row["seconds"]) - float(row["timeout"]))
        agreed = Counter(r["expected"] for r in expected.values())
        column = next((c for c in ABCROWN_COLUMNS if any(c in r for r in expected.values())), None)
        abcrown = None if column is None else sum(r[column] in DECIDED for r in expected.values())
        counts = {
            "instances": len(rows[name]),
            "solved": ours["sat"] + ours["unsat"],
            "sat": ours["sat"],
            "unsat": ours["unsat"],
            "wrong": ours["wrong"],
            "errors": ours["error"],
            "abcrown": abcrown,
            "expected_sat": agreed["sat"],
            "expected_unsat": agreed["unsat"],
        }
        total.update({k: v for k, v in counts.items() if v is not None})
        lines.append(_line(name, counts, f"{overrun:.2f}"))
    lines.append(_line("**total**", total, ""))
    return "\n".join(lines)


def _line(name: str, c: dict[str, int | None] | Counter[str], overrun: str) -> str:
    abcrown = "n/a" if c["abcrown"] is None else c["abcrown"]
    return (
        f"| {name} | {c['instances']} | {c['expected_sat']} / {c['expected_unsat']} "
        f"| {c['solved']} | {c['sat']} | {c['unsat']} | {c['wrong']} | {c['errors']} "
        f"| {abcrown} | {overrun} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="a `verifinn bench --out` folder")
    default = os.environ.get("VERIFINN_BENCHMARKS", REPO_ROOT.parent / "shared" / "benchmarks")
    parser.add_argument("data", type=Path, nargs="?", default=Path(default))
    args = parser.parse_args()
    print(table(args.results, args.data))


if __name__ == "__main__":
    main()
