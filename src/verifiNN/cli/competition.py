"""``verifinn bench`` (benchmark folders or one instance list) and ``verifinn score``."""

from __future__ import annotations

import argparse
import os
import sys

from verifiNN.cli.options import (
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_OK,
    common_options,
    count,
    executor_options,
    positive_float,
    set_threads,
    stdout_to_stderr,
)
from verifiNN.errors import InvalidInputError, ResultFileError
from verifiNN.executors import make_executor


def add_parsers(commands) -> None:
    """The ``bench`` and ``score`` subcommands."""
    bench = commands.add_parser(
        "bench",
        help="answer VNN-COMP benchmark folders (or one instance list) in one process",
        description="Answer every instance of VNN-COMP benchmark folders (each with its "
        "*instances.csv; rows: onnx, vnnlib, timeout) into the results folder --out DIR "
        "(results.csv, counterexample files, score.md, cactus.png); the same command resumes "
        "an interrupted run. With one INSTANCES.csv instead, append rows to --out FILE.csv. "
        "Answers are compared with each folder's expected.csv.",
    )
    bench.add_argument(
        "instances", nargs="+", metavar="FOLDER|INSTANCES.csv",
        help="benchmark folders, or one instance list",
    )  # fmt: skip
    bench.add_argument(
        "--root", metavar="DIR", help="folder the list's paths are relative to (default: its own)"
    )
    bench.add_argument(
        "--max-timeout", type=positive_float, metavar="S",
        help="cap every instance's (scaled) time limit at S seconds",
    )  # fmt: skip
    bench.add_argument(
        "--timeout-scale",
        type=positive_float,
        default=1.0,
        metavar="F",
        help="multiply every instance's time limit by F (default: 1)",
    )
    bench.add_argument(
        "--match",
        metavar="TEXT",
        help="answer only instances whose model or property path contains TEXT",
    )
    bench.add_argument(
        "--limit", type=count(0), metavar="N",
        help="answer only the first N instances (of each folder)",
    )  # fmt: skip
    bench.add_argument(
        "--out", metavar="DIR|FILE",
        help="the results folder (required with folders), or the CSV an instance list's "
        "onnx,vnnlib,result,seconds rows are appended to",
    )  # fmt: skip
    executor_options(bench, default_workers=1)
    common_options(bench)
    bench.set_defaults(handler=_cmd_bench)
    score_parser(commands)


def score_parser(commands) -> None:
    score = commands.add_parser(
        "score",
        help="the VNN-COMP score of result folders, side by side, with a cactus plot",
        description="Score verifinn results folders and peers' competition results.csv files "
        "(benchmark,onnx,vnnlib,prepare_time,result,run_time) by the VNN-COMP rules: +10 per "
        "correct sat or unsat, -150 per incorrect one (a sat whose counterexample fails an "
        "onnxruntime check included). Prints the Markdown table; writes score.md and cactus.png.",
    )
    score.add_argument(
        "runs", nargs="+", metavar="DIR|RESULTS.csv", help="results folders or results files"
    )
    score.add_argument(
        "--out", metavar="DIR",
        help="folder for score.md and cactus.png (default: the first results folder)",
    )  # fmt: skip
    score.add_argument(
        "--benchmarks", action="append", default=[], metavar="DIR",
        help="a benchmark folder, or a folder of them, for runs that do not record theirs "
        "(expected.csv, instance lists, files); may be repeated",
    )  # fmt: skip
    score.add_argument(
        "--label", action="append", default=[], metavar="NAME",
        help="the name of each run in turn (default: its folder or file name)",
    )  # fmt: skip
    score.add_argument("--no-plot", action="store_true", help="do not draw cactus.png")
    score.add_argument(
        "-q", "--quiet", action="store_true", help="no table on stdout, no notes on stderr"
    )
    score.add_argument("-v", "--verbose", action="store_true", help="log each phase on stderr")
    score.set_defaults(handler=_cmd_score)


def _cmd_bench(args: argparse.Namespace) -> int:
    paths = args.instances
    if len(paths) == 1 and not os.path.isdir(paths[0]):
        return _bench_list(args)
    for path in paths:
        if not os.path.isdir(path):
            raise InvalidInputError(f"{path}: not a benchmark folder (a list goes alone)")
    if args.out is None or os.path.isfile(args.out):
        raise InvalidInputError("benchmark folders need --out DIR, a results folder")
    if args.root is not None:
        raise InvalidInputError("--root goes with an instance list, not with benchmark folders")
    from verifiNN.scoreboard import to_markdown, write_report
    from verifiNN.scoring import read_run, score_runs
    from verifiNN.suite import run_suite

    set_threads(args.threads)
    with stdout_to_stderr():
        try:
            summary = run_suite(
                paths, args.out, timeout_scale=args.timeout_scale, max_timeout=args.max_timeout,
                method=args.method, device=args.device, match=args.match, limit=args.limit,
                executor=make_executor(args.backend, args.workers, args.address),
                progress=not args.quiet, lines=not args.quiet,
            )  # fmt: skip
        except KeyboardInterrupt:
            print(f"verifinn: interrupted; the finished instances are kept in {args.out}: "
                  "run the same command again to resume", file=sys.stderr)  # fmt: skip
            return EXIT_INTERRUPTED
        report = score_runs([read_run(args.out)])
        written = write_report(report, args.out)
    print(summary.format() + "\n\n" + to_markdown(report), end="", flush=True)
    if not args.quiet:
        print(f"verifinn: wrote {', '.join(map(str, written))}", file=sys.stderr)
    if summary.wrong:
        print(f"verifinn: {len(summary.wrong)} WRONG answer(s) against expected.csv (listed above)",
              file=sys.stderr)  # fmt: skip
    return _internal_errors(summary.internal_errors)


def _bench_list(args: argparse.Namespace) -> int:
    from verifiNN.bench import run_benchmark

    set_threads(args.threads)
    with stdout_to_stderr():
        summary = run_benchmark(
            args.instances[0],
            root=args.root,
            timeout_scale=args.timeout_scale,
            limit=args.limit,
            match=args.match,
            out=args.out,
            method=args.method,
            progress=not args.quiet,
            device=args.device,
            executor=make_executor(args.backend, args.workers, args.address),
            max_timeout=args.max_timeout,
        )
    print(summary.format(), flush=True)
    return _internal_errors(summary.internal_errors)


def _internal_errors(failed: list) -> int:
    if failed:
        print(
            f"verifinn: {len(failed)} instance(s) failed by an internal error (tracebacks above)",
            file=sys.stderr,
        )
        return EXIT_INTERNAL
    return EXIT_OK


def _cmd_score(args: argparse.Namespace) -> int:
    if len(args.label) > len(args.runs):
        raise InvalidInputError(f"{len(args.label)} labels for {len(args.runs)} runs")
    out = args.out or next((p for p in args.runs if os.path.isdir(p)), None)
    if out is None:
        raise InvalidInputError("no results folder among the runs: say where with --out DIR")
    if not os.path.isdir(out):
        raise ResultFileError(f"{out}: no such folder")
    from verifiNN.scoreboard import to_markdown, write_report
    from verifiNN.scoring import read_run, score_runs

    labels = args.label + [None] * (len(args.runs) - len(args.label))
    with stdout_to_stderr():
        runs = [read_run(path, label) for path, label in zip(args.runs, labels)]
        names = [r.name for r in runs]
        if len(set(names)) < len(names):
            raise InvalidInputError(f"two runs are named alike ({', '.join(names)}): use --label")
        report = score_runs(runs, args.benchmarks)
        written = write_report(report, out, plot=not args.no_plot)
    if not args.quiet:
        print(to_markdown(report), end="", flush=True)
        print(f"verifinn: wrote {', '.join(map(str, written))}", file=sys.stderr)
    return EXIT_OK
