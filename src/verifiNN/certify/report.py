"""Summaries and reports of a certification run: CSV, JSON, a plot and Markdown."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

from verifiNN.certify.sample import NOT_ROBUST, ROBUST, ROW_FIELDS

__all__ = ["summarise", "write_report"]


def summarise(rows: list[dict], samples: int | None = None) -> dict[str, Any]:
    """Clean accuracy and, per epsilon, the bracket of robust accuracy.

    ``certified_accuracy`` (a lower bound: correct and proved robust) and
    ``attack_accuracy`` (an upper bound: correct and not refuted by a confirmed
    counterexample); the true robust accuracy lies between them. Also counts
    per verdict. ``samples`` defaults to the number of samples in ``rows``.
    """
    by_sample: dict[int, bool] = {}
    per_eps: dict[float, list[dict]] = {}
    for row in rows:
        by_sample[row["sample"]] = bool(row["correct"])
        per_eps.setdefault(float(row["epsilon"]), []).append(row)
    n = samples if samples is not None else len(by_sample)
    clean = sum(by_sample.values())
    epsilons = []
    for eps in sorted(per_eps):
        group = per_eps[eps]
        counts: dict[str, int] = {}
        for row in group:
            counts[row["verdict"]] = counts.get(row["verdict"], 0) + 1
        robust = counts.get(ROBUST, 0)
        refuted = counts.get(NOT_ROBUST, 0)
        epsilons.append(
            {
                "epsilon": eps,
                "certified_accuracy": robust / n if n else 0.0,
                "attack_accuracy": (clean - refuted) / n if n else 0.0,
                "counts": dict(sorted(counts.items())),
                "seconds": round(sum(float(r["seconds"]) for r in group), 3),
            }
        )
    return {
        "samples": n,
        "clean_accuracy": clean / n if n else 0.0,
        "epsilons": epsilons,
    }


def write_report(
    folder: str | os.PathLike, rows: list[dict], summary: dict[str, Any], run: dict[str, Any]
) -> dict[str, Path]:
    """Write ``results.csv``, ``summary.json``, ``certified_accuracy.png`` and
    ``report.md`` into ``folder``; returns their paths by kind."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {
        "csv": folder / "results.csv",
        "summary": folder / "summary.json",
        "plot": folder / "certified_accuracy.png",
        "report": folder / "report.md",
    }
    with open(paths["csv"], "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(ROW_FIELDS))
        writer.writeheader()
        writer.writerows(
            {k: ("" if row.get(k) is None else row[k]) for k in ROW_FIELDS} for row in rows
        )
    paths["summary"].write_text(json.dumps({"run": run, **summary}, indent=2) + "\n")
    _plot(paths["plot"], summary, run)
    paths["report"].write_text(_markdown(summary, run, paths["plot"].name))
    return paths


def _plot(path: Path, summary: dict[str, Any], run: dict[str, Any]) -> None:
    """Certified (lower) and attack (upper) accuracy against epsilon, clean accuracy at 0."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    eps = [0.0] + [e["epsilon"] for e in summary["epsilons"]]
    clean = summary["clean_accuracy"]
    certified = [clean] + [e["certified_accuracy"] for e in summary["epsilons"]]
    attack = [clean] + [e["attack_accuracy"] for e in summary["epsilons"]]
    figure, axes = plt.subplots(figsize=(6, 4), dpi=100)
    axes.fill_between(eps, certified, attack, color="tab:orange", alpha=0.2, label="undecided")
    axes.plot(eps, attack, "o--", color="tab:red", label="attack accuracy (upper bound)")
    axes.plot(eps, certified, "o-", color="tab:blue", label="certified accuracy (lower bound)")
    axes.set_xlabel(f"epsilon (L{'∞' if run.get('norm') == 'inf' else run.get('norm')})")
    axes.set_ylabel("accuracy")
    axes.set_ylim(0, 1.02)
    axes.set_xlim(left=0)
    axes.grid(alpha=0.3)
    axes.set_title(f"{Path(str(run.get('model', 'model'))).name}: {summary['samples']} samples")
    axes.legend(loc="lower left")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def _markdown(summary: dict[str, Any], run: dict[str, Any], plot: str) -> str:
    lines = [
        f"# Certification of {Path(str(run.get('model', 'model'))).name}",
        "",
        f"- data: `{run.get('data')}`, {summary['samples']} samples",
        f"- norm: L{run.get('norm')}, method: `{run.get('method')}`, "
        f"time limit per sample: {run.get('timeout') or 'none'} s",
        f"- clean accuracy: {summary['clean_accuracy']:.2%}",
        "",
        "Certified accuracy counts samples proved robust (a lower bound of the robust",
        "accuracy); attack accuracy counts samples not refuted by a confirmed",
        "counterexample (an upper bound). The true robust accuracy lies between.",
        "",
        "| epsilon | certified accuracy | attack accuracy | verdicts | seconds |",
        "|---:|---:|---:|:---|---:|",
    ]
    for e in summary["epsilons"]:
        counts = ", ".join(f"{k} {v}" for k, v in e["counts"].items())
        lines.append(
            f"| {e['epsilon']:g} | {e['certified_accuracy']:.2%} | {e['attack_accuracy']:.2%} "
            f"| {counts} | {e['seconds']:.1f} |"
        )
    lines += ["", f"![certified and attack accuracy against epsilon]({plot})", ""]
    return "\n".join(lines)
