"""A :class:`~verifiNN.scoring.ScoreReport` as a Markdown table and a cactus plot.

:func:`to_markdown` gives ``score.md``: the total per run (with the
competition's total: per benchmark, the score as a percentage of the best
run's, summed), one row per benchmark and run, and the notes (every penalty,
conflict and error reason). :func:`cactus_plot` draws ``cactus.png``: for each
run, how many instances it solved correctly within a given time per instance
(log time axis), as in the competition's reports. :func:`write_report` writes
both into a folder.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from verifiNN.errors import ResultFileError
from verifiNN.scoring import CE_ATOL, CE_RTOL, PENALTY_INCORRECT, POINTS_CORRECT, ScoreReport, Tally

__all__ = ["CACTUS_FILE", "SCORE_FILE", "cactus_plot", "to_markdown", "write_report"]

SCORE_FILE = "score.md"
CACTUS_FILE = "cactus.png"

#: Shortest time drawn on the log axis (an instance answered in no measurable time).
MIN_SECONDS = 1e-3

_AS_GIVEN = "†"


def _row(cells: list[object]) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _header(cells: list[str]) -> list[str]:
    return [_row(cells), "|" + " --- |" * len(cells)]


def _counts(t: Tally) -> list[object]:
    wrong = f"**{t.wrong}**" if t.wrong else "0"
    return [t.instances, t.solved, t.sat, t.unsat, wrong, t.score]


def to_markdown(report: ScoreReport) -> str:
    """The report as Markdown (see the module docstring)."""
    lines = [
        "# VNN-COMP score",
        "",
        f"VNN-COMP 2025 rules (`verifiNN.scoring`): {POINTS_CORRECT:+d} per correct sat or "
        f"unsat, {PENALTY_INCORRECT} per incorrect answer; a sat whose counterexample fails "
        f"the onnxruntime check (Y within {CE_RTOL:g} relative, property within {CE_ATOL:g}) "
        "is incorrect. sat and unsat count correct answers; wrong counts penalties.",
        "",
        "## Total",
        "",
        *_header(["run", "benchmarks", "instances", "solved", "sat", "unsat", "wrong", "score",
                  "VNN-COMP total", "total s", "median s", "sat answers"]),
    ]  # fmt: skip
    for run in report.runs:
        t = report.total(run.name)
        benchmarks = len({x.benchmark for x in report.tallies if x.run == run.name})
        how = "checked with onnxruntime" if run.checked else "scored as given (no counterexamples)"
        lines.append(_row([run.name, benchmarks, *_counts(t), f"{t.percent:.1f}",
                           f"{t.total_seconds:.1f}", f"{t.median_seconds:.2f}", how]))  # fmt: skip
    lines += [
        "",
        "VNN-COMP total: per benchmark, the score as a percentage of the best run's there "
        "(0 when negative), summed over the benchmarks.",
        "",
        "## Per benchmark",
        "",
        *_header(["benchmark", "run", "instances", "solved", "sat", "unsat", "wrong", "score",
                  "% of best", "errors", "total s", "median s"]),
    ]  # fmt: skip
    for t in report.tallies:
        name = t.run if t.checked else f"{t.run} {_AS_GIVEN}"
        errors = sum(j.answer.result == "error" for j in t.judged)
        lines.append(_row([t.benchmark, name, *_counts(t), f"{t.percent:.1f}", errors,
                           f"{t.total_seconds:.1f}", f"{t.median_seconds:.2f}"]))  # fmt: skip
    if any(not run.checked for run in report.runs):
        lines += ["", f"{_AS_GIVEN} no counterexample files: sat answers scored as given."]
    if report.notes:
        lines += ["", "## Notes", "", *[f"- {note}" for note in report.notes]]
    return "\n".join(lines) + "\n"


def cactus_plot(report: ScoreReport, path: str | os.PathLike, title: str | None = None) -> Path:
    """Draw the cactus plot of ``report`` into ``path`` (PNG, matplotlib's Agg backend).

    One step line per run: the number of instances it solved correctly (points
    > 0) in at most a given time per instance, on a log time axis.

    Returns:
        The path written.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, MaxNLocator, NullFormatter

    figure = Figure(figsize=(6.4, 4.2), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    solved = {
        run.name: sorted(
            max(j.answer.seconds, MIN_SECONDS) for j in report.judged(run.name) if j.points > 0
        )
        for run in report.runs
    }
    every = [t for times in solved.values() for t in times] or [1.0]
    left = 10.0 ** np.floor(np.log10(min(every)))
    right = 10.0 ** np.ceil(np.log10(max(every) * 1.05))
    styles = ("-", "--", "-.", ":")
    for k, run in enumerate(report.runs):
        times = solved[run.name]
        style = styles[k % len(styles)]
        label = f"{run.name} ({len(times)} solved)"
        if not times:
            axes.plot([], [], style, label=label)
            continue
        x = np.array([times[0], *times, right])  # from 0 at the first answer to the right edge
        y = np.array([0, *range(1, len(times) + 1), len(times)])
        axes.step(x, y, where="post", linestyle=style, linewidth=1.8, label=label)
    axes.set_xscale("log")
    axes.set_xlim(left, right)
    axes.set_ylim(bottom=0)
    axes.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axes.xaxis.set_minor_formatter(NullFormatter())
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel("time per instance (s)")
    axes.set_ylabel("instances solved")
    axes.set_title(title or "Instances solved within a time per instance")
    axes.grid(True, which="major", alpha=0.45)
    axes.grid(True, which="minor", alpha=0.15)
    axes.legend(loc="upper left", frameon=False)
    path = Path(path)
    try:
        figure.savefig(path, dpi=200)
    except OSError as exc:
        raise ResultFileError(f"cannot write {path}: {exc.strerror or exc}") from exc
    return path


def write_report(report: ScoreReport, folder: str | os.PathLike, plot: bool = True) -> list[Path]:
    """Write ``score.md`` (and ``cactus.png`` unless ``plot`` is false) into ``folder``.

    Returns:
        The paths written.

    Raises:
        ResultFileError: a file cannot be written.
    """
    folder = Path(folder)
    markdown = folder / SCORE_FILE
    try:
        markdown.write_text(to_markdown(report), encoding="utf-8")
    except OSError as exc:
        raise ResultFileError(f"cannot write {markdown}: {exc.strerror or exc}") from exc
    written = [markdown]
    if plot:
        written.append(cactus_plot(report, folder / CACTUS_FILE))
    return written
