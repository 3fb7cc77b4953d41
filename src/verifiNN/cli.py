"""The ``verifinn`` command line: thin, every command is a library call.

Commands:

* ``verifinn verify MODEL.onnx SPEC.vnnlib``: decide one property; the verdict
  word (``sat``, ``unsat``, ``unknown``, ``timeout``) is the first line on
  stdout, ``--out`` writes the VNN-COMP result file.
* ``verifinn bench INSTANCES.csv``: answer a VNN-COMP instance list in one
  process (:func:`verifiNN.bench.run_benchmark`) and print a summary.
* ``verifinn robustness MODEL.onnx --input X.npy``: the distance from ``X`` to
  the nearest adversarial example, exact (``--exact``, by MILP) or bracketed by
  a certified radius and an attack; the first stdout line is the status and
  the distance or bracket.

Exit codes: 0 when the command ran (whatever the verdicts), 2 for bad input
(a file the user got wrong: one line ``verifinn: error: ...`` on stderr), 1 for
an internal error (a traceback and a one-line summary on stderr; for ``bench``
also when any instance failed by an internal error), 130 when interrupted.
Nothing but the answer goes to stdout: logging and progress go to stderr, and
stdout is pointed at stderr at the file-descriptor level while engines run, so
no native library can print before the verdict.

The library (PyTorch with it) is imported by each command when it runs, after
its arguments and files are checked: ``--help``, a usage error or a missing
file answer in a fraction of a second.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import os
import sys
import traceback
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import NoReturn

from verifiNN._stdio import descriptor_1_to
from verifiNN._version import SOLVER_NAME, __version__
from verifiNN.budget import Budget
from verifiNN.errors import (
    InvalidInputError,
    ModelLoadError,
    ResultFileError,
    SpecError,
    VerifiNNError,
)
from verifiNN.executors import BACKENDS, make_executor
from verifiNN.methods import METHODS

__all__ = ["build_parser", "main"]

logger = logging.getLogger("verifiNN.cli")

EXIT_OK, EXIT_INTERNAL, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

SUPPORTS_FLAGS = (
    "onnx-opset-versions",
    "onnx-element-types",
    "onnx-operators",
    "vnnlib-versions",
    "hidden-node-theories",
    "multiple-input-output-theories",
    "multiple-network-theories",
    "multiple-node-comparison-theories",
    "arithmetic-complexity-theories",
    "optimised-disjunctive-reasoning",
    "serialise-assignments",
    "unsat-proofs",
)
"""The capabilities of the VNN-LIB standard's ``supports`` command (its section 5.4);
the answers come from :data:`verifiNN.solver_interface.CAPABILITIES`."""


# ------------------------------------------------------------------ parsing
def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number of seconds >= 0, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _network_option(text: str) -> tuple[str, str]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"expected NAME=MODEL.onnx, got {text!r}")
    return name, path


def _count(minimum: int) -> type:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {text!r}")
        return value

    return parse  # type: ignore[return-value]


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--method",
        choices=METHODS,
        default="auto",
        help="engine: 'auto' runs the portfolio (attack, CROWN, alpha-CROWN, complete "
        "search); the others run one engine alone (default: auto)",
    )
    parser.add_argument(
        "--device", choices=("cpu", "cuda"), default="cpu", help="tensor device (default: cpu)"
    )
    parser.add_argument(
        "--threads",
        type=_count(1),
        metavar="N",
        help="torch CPU threads (default: torch's own choice)",
    )
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="no summary, progress bar or warnings on stderr"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log each phase on stderr")


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line on stderr (exit 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``verifinn`` and its subcommands."""
    parser = _Parser(
        prog="verifinn",
        description="Sound and complete robustness verification of neural networks.",
        epilog="Exit codes: 0 answered (any verdict), 2 bad input, 1 internal error.",
    )
    parser.add_argument("--version", action="version", version=__version__)
    parser.add_argument(
        "--name", action="version", version=SOLVER_NAME, help="show the solver's name and exit"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = commands.add_parser(
        "verify",
        help="decide a VNN-LIB query (2.0 with --network, or MODEL.onnx PROP.vnnlib)",
        description="Decide one query. The standard's form, verify QUERY.vnnlib --network "
        "NAME=MODEL.onnx ..., prints the verdict (sat, unsat, unknown, timed-out) on the first "
        "stdout line and, for sat, the assignment of every declared variable (the VNN-LIB "
        "solver interface). The VNN-COMP form, verify MODEL.onnx PROP.vnnlib, prints sat, "
        "unsat, unknown or timeout; --out writes its result file. A summary goes to stderr.",
    )
    run.add_argument(
        "files", nargs="+", metavar="QUERY|MODEL [PROP]",
        help="a VNN-LIB 2.0 query (with --network), or an ONNX model and a property",
    )  # fmt: skip
    run.add_argument(
        "--network", action="append", type=_network_option, default=[],
        metavar="NAME=MODEL.onnx",
        help="the model of a network the query declares (once per network that is not "
        "equal-to another)",
    )  # fmt: skip
    run.add_argument(
        "--serialise-assignments", metavar="DIR",
        help="for sat, write each variable as DIR/NAME.pb (ONNX TensorProto) instead of "
        "printing the assignment",
    )  # fmt: skip
    run.add_argument(
        "--timeout",
        type=_seconds,
        metavar="S",
        help="seconds for the whole command, counted from its start (default: none)",
    )
    run.add_argument(
        "--out", metavar="FILE", help="write the VNN-COMP result file (counterexample for sat)"
    )
    run.add_argument("--seed", type=_count(0), default=0, metavar="N", help="random seed")
    run.add_argument(
        "--sound-fp", action="store_true",
        help="answer unsat only when bounds with rigorous floating-point error "
        "re-prove it (ReLU MLPs on boxes)",
    )  # fmt: skip
    _common(run)
    run.set_defaults(handler=_cmd_verify)

    supports = commands.add_parser(
        "supports",
        help="what verifinn can verify (the VNN-LIB solver interface's capabilities)",
        description="Print one capability of the VNN-LIB solver interface, one item per line: "
        "ONNX opsets, element types and operators, VNN-LIB versions and theories, "
        "assignment serialisation, unsat proofs.",
    )
    which = supports.add_mutually_exclusive_group(required=True)
    for name in SUPPORTS_FLAGS:
        which.add_argument(f"--{name}", dest="capability", action="store_const", const=name)
    supports.set_defaults(handler=_cmd_supports, quiet=True, verbose=False)

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
        "--max-timeout", type=_positive_float, metavar="S",
        help="cap every instance's (scaled) time limit at S seconds",
    )  # fmt: skip
    bench.add_argument(
        "--timeout-scale",
        type=_positive_float,
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
        "--limit", type=_count(0), metavar="N",
        help="answer only the first N instances (of each folder)",
    )  # fmt: skip
    bench.add_argument(
        "--out", metavar="DIR|FILE",
        help="the results folder (required with folders), or the CSV an instance list's "
        "onnx,vnnlib,result,seconds rows are appended to",
    )  # fmt: skip
    _executor_options(bench, default_workers=1)
    _common(bench)
    bench.set_defaults(handler=_cmd_bench)
    _score_parser(commands)
    _robustness_parser(commands)
    _certify_parser(commands)
    return parser


def _score_parser(commands) -> None:
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


def _executor_options(parser: argparse.ArgumentParser, default_workers: int | None) -> None:
    default = "every core" if default_workers is None else str(default_workers)
    parser.add_argument(
        "--backend", choices=BACKENDS, default="local",
        help="'local' processes or a 'ray' cluster (default: local)",
    )  # fmt: skip
    parser.add_argument(
        "--workers", type=_count(1), default=default_workers, metavar="N",
        help=f"tasks run at once (default: {default})",
    )  # fmt: skip
    parser.add_argument(
        "--address", metavar="ADDR",
        help="Ray cluster address (default: start a local Ray instance)",
    )  # fmt: skip


def _epsilons(text: str) -> list[float]:
    try:
        values = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers, got {text!r}"
        ) from None
    if not values or not all(math.isfinite(v) and v > 0 for v in values):
        raise argparse.ArgumentTypeError(f"epsilons must be positive numbers, got {text!r}")
    return values


def _certify_parser(commands) -> None:
    cert = commands.add_parser(
        "certify",
        help="certified and attack accuracy of a data set at several epsilons",
        description="Certify every sample of DATA.npz (arrays x and y) at every epsilon. "
        "Results stream to OUT/results.jsonl (re-running resumes); at the end OUT holds "
        "results.csv, summary.json, certified_accuracy.png and report.md. The summary "
        "table goes to stdout.",
    )
    cert.add_argument("model", metavar="MODEL.onnx", help="the classifier")
    cert.add_argument("--data", required=True, metavar="DATA.npz", help="inputs x and labels y")
    cert.add_argument(
        "--eps", type=_epsilons, default=[0.01, 0.02, 0.05], metavar="E1,E2,...",
        help="radii (default: 0.01,0.02,0.05)",
    )  # fmt: skip
    cert.add_argument("--norm", choices=("inf", "1", "2"), default="inf", help="default: inf")
    cert.add_argument(
        "--timeout", type=_seconds, default=10.0, metavar="S",
        help="seconds per sample, shared by its epsilons (default: 10)",
    )  # fmt: skip
    cert.add_argument("--out", default="certify_out", metavar="DIR", help="default: certify_out")
    cert.add_argument(
        "--domain", nargs=2, type=float, metavar=("LO", "HI"),
        help="valid input range, e.g. 0 1 for images (default: unbounded)",
    )  # fmt: skip
    cert.add_argument("--limit", type=_count(1), metavar="N", help="only the first N samples")
    cert.add_argument("--radius", action="store_true", help="also each sample's CROWN radius")
    cert.add_argument("--seed", type=_count(0), default=0, metavar="N", help="random seed")
    _executor_options(cert, default_workers=None)
    _common(cert)
    cert.set_defaults(handler=_cmd_certify)


def _robustness_parser(commands) -> None:
    robust = commands.add_parser(
        "robustness",
        help="distance from an input to the nearest adversarial example",
        description="Bracket the distance from an input to the nearest adversarial example "
        "(a certified radius from bounds and an attack's example), or compute it exactly by "
        "MILP with --exact. The first stdout line is the status and the distance or bracket.",
    )
    robust.add_argument("model", metavar="MODEL.onnx", help="the network")
    robust.add_argument("--input", required=True, metavar="X.npy", help="the reference input")
    robust.add_argument("--label", type=_count(0), metavar="L", help="class to keep (default: "
                        "the network's class of the input)")  # fmt: skip
    robust.add_argument("--norm", choices=("inf", "1", "2"), default="inf", help="default: inf")
    robust.add_argument(
        "--epsilon",
        type=_positive_float,
        default=1.0,
        metavar="E",
        help="largest distance searched (default: 1)",
    )
    robust.add_argument("--exact", action="store_true", help="exact distance by MILP (MLPs)")
    robust.add_argument(
        "--bounds",
        choices=("crown", "alpha-crown"),
        default="alpha-crown",
        help="bound method of the certified radius (default: alpha-crown)",
    )
    robust.add_argument(
        "--domain",
        nargs=2,
        type=float,
        metavar=("LO", "HI"),
        help="valid input range, e.g. 0 1 for images",
    )
    robust.add_argument("--timeout", type=_seconds, metavar="S", help="seconds (default: none)")
    robust.add_argument("--save-example", metavar="FILE.npy", help="write the adversarial example")
    robust.add_argument(
        "--threads", type=_count(1), metavar="N", help="torch CPU threads (default: torch's)"
    )
    robust.add_argument("-q", "--quiet", action="store_true", help="nothing on stderr")
    robust.add_argument("-v", "--verbose", action="store_true", help="log on stderr")
    robust.set_defaults(handler=_cmd_robustness)


# ------------------------------------------------------------------ helpers
@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """Send everything written to stdout (Python and C level) to stderr for a while:
    descriptor 1 itself is pointed at descriptor 2 (native libraries write to it
    whatever ``sys.stdout`` is) and ``sys.stdout`` at ``sys.stderr``."""
    with descriptor_1_to(2), contextlib.redirect_stdout(sys.stderr):
        try:
            yield
        finally:
            sys.stderr.flush()


@contextlib.contextmanager
def _logging_to_stderr(quiet: bool, verbose: bool) -> Iterator[None]:
    """Route the library's log records to stderr for one command, then restore the logger.

    ``quiet`` keeps errors only and silences Python warnings.
    """
    level = logging.ERROR if quiet else logging.INFO if verbose else logging.WARNING
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("verifinn: %(levelname)s: %(message)s"))
    package = logging.getLogger("verifiNN")
    saved = (package.handlers[:], package.level, package.propagate)
    package.handlers[:] = [handler]
    package.setLevel(level)
    package.propagate = False
    try:
        with warnings.catch_warnings():
            if quiet:
                warnings.simplefilter("ignore")
            yield
    finally:
        package.handlers[:], package.level, package.propagate = saved


def _check_writable(path: str) -> None:
    """Fail early, before any work, when the result file cannot be created."""
    directory = os.path.dirname(os.path.abspath(path)) or "."
    if os.path.isdir(path):
        raise ResultFileError(f"cannot write result file {path}: it is a directory")
    if not os.path.isdir(directory):
        raise ResultFileError(f"cannot write result file {path}: no directory {directory}")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise ResultFileError(f"cannot write result file {path}: {directory} is not writable")


#: Seconds of ``--timeout`` kept back for printing the answer and exiting.
EXIT_RESERVE = 0.25


def _command_budget(args: argparse.Namespace) -> Budget:
    """The ``--timeout`` budget: counted from the process start when ``verifinn`` is
    the command (``main()`` with no argument list), else from now; less
    :data:`EXIT_RESERVE` for the answer to get out."""
    if args.timeout is None:
        return Budget.start(None)
    seconds = max(0.0, args.timeout - EXIT_RESERVE)
    if args.from_command_line:
        return Budget.since_process_start(seconds)
    return Budget.start(seconds)


def _set_threads(threads: int | None) -> None:
    if threads is not None:
        import torch  # the face loads the library only when a command runs

        torch.set_num_threads(threads)


def _check_exists(path: str, error: type[VerifiNNError], what: str) -> None:
    """Fail before loading the library when ``path`` (or ``path.gz``) does not exist."""
    if not (os.path.exists(path) or os.path.exists(path + ".gz")):
        raise error(f"{path}: no such {what}")


# ------------------------------------------------------------------ commands
def _cmd_verify(args: argparse.Namespace) -> int:
    if args.network or len(args.files) == 1:
        return _verify_query(args)
    if len(args.files) != 2:
        raise InvalidInputError("verify takes QUERY --network NAME=MODEL ..., or MODEL PROP")
    if args.serialise_assignments is not None:
        raise InvalidInputError("--serialise-assignments goes with a query and --network")
    budget = _command_budget(args)
    model, prop = args.files
    if args.out is not None:
        _check_writable(args.out)
    _check_exists(model, ModelLoadError, "ONNX file")
    _check_exists(prop, SpecError, "VNN-LIB file")
    from verifiNN.io import load_onnx, load_vnnlib, vnncomp_word, write_result
    from verifiNN.results import Verdict
    from verifiNN.verifiers import verify

    _set_threads(args.threads)
    with _stdout_to_stderr():
        network = load_onnx(model)
        spec = load_vnnlib(prop, network)
        result = verify(
            network,
            spec,
            method=args.method,
            timeout=budget.timeout(),
            device=args.device,
            seed=args.seed,
            sound_fp=args.sound_fp,
        )
        if args.out is not None:
            sat = result.verdict is Verdict.SAT
            write_result(args.out, result.verdict, result.counterexample if sat else None)
    print(vnncomp_word(result.verdict), flush=True)
    if not args.quiet:
        _summary(vnncomp_word(result.verdict), result.method, budget, result.statistics)
    return EXIT_OK


def _summary(word: str, method: str, budget: Budget, statistics: dict) -> None:
    phases = ", ".join(f"{k} {v:.2f} s" for k, v in statistics.get("phases", {}).items())
    print(
        f"{word} by {method} in {budget.elapsed():.2f} s" + (f" ({phases})" if phases else ""),
        file=sys.stderr,
    )


def _verify_query(args: argparse.Namespace) -> int:
    """The VNN-LIB solver interface's ``verify`` (see :mod:`verifiNN.solver_interface`)."""
    budget = _command_budget(args)
    if len(args.files) != 1:
        raise InvalidInputError("with --network, verify takes one query file")
    if args.out is not None or args.sound_fp:
        raise InvalidInputError("--out and --sound-fp go with the MODEL PROP form")
    (path,) = args.files
    _check_exists(path, SpecError, "VNN-LIB file")
    networks: dict[str, str] = {}
    for name, model in args.network:
        if name in networks:
            raise InvalidInputError(f"--network {name} is given twice")
        _check_exists(model, ModelLoadError, "ONNX file")
        networks[name] = model
    if args.serialise_assignments is not None and os.path.isfile(args.serialise_assignments):
        raise ResultFileError(f"{args.serialise_assignments}: a file, not a folder")
    from verifiNN.io.query import load_query
    from verifiNN.results import Verdict
    from verifiNN.solver_interface import result_text, serialise_assignment, verdict_line
    from verifiNN.verifiers.queries import verify_query

    _set_threads(args.threads)
    with _stdout_to_stderr():
        query = load_query(path, networks)
        result = verify_query(
            query, timeout=budget.timeout(), method=args.method, device=args.device,
            seed=args.seed,
        )  # fmt: skip
        serialise = args.serialise_assignments is not None and result.verdict is Verdict.SAT
        if serialise and result.assignment:
            serialise_assignment(result.assignment, args.serialise_assignments)
    sys.stdout.write(result_text(result, with_assignment=not serialise))
    sys.stdout.flush()
    if not args.quiet:
        _summary(verdict_line(result.verdict), result.method, budget, result.statistics)
        if result.reason:
            print(f"verifinn: {result.reason}", file=sys.stderr)
    return EXIT_OK


def _cmd_supports(args: argparse.Namespace) -> int:
    from verifiNN.solver_interface import CAPABILITIES

    sys.stdout.write("".join(f"{line}\n" for line in CAPABILITIES[args.capability]()))
    return EXIT_OK


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

    _set_threads(args.threads)
    with _stdout_to_stderr():
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

    _set_threads(args.threads)
    with _stdout_to_stderr():
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
    with _stdout_to_stderr():
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


def _cmd_robustness(args: argparse.Namespace) -> int:
    budget = _command_budget(args)
    if args.save_example is not None:
        _check_writable(args.save_example)
    _check_exists(args.model, ModelLoadError, "ONNX file")
    _check_exists(args.input, InvalidInputError, "input file")
    import numpy as np

    from verifiNN.io import load_input, load_onnx
    from verifiNN.verifiers.robustness import pointwise_robustness, summary_line

    _set_threads(args.threads)
    with _stdout_to_stderr():
        network = load_onnx(args.model)
        x_0 = load_input(args.input, network)
        if args.label is not None and args.label >= network.output_size:
            raise InvalidInputError(
                f"--label {args.label}: the network has {network.output_size} classes"
            )
        domain = tuple(args.domain) if args.domain else None
        result = pointwise_robustness(
            network,
            x_0,
            args.epsilon,
            args.norm,
            exact=args.exact,
            label=args.label,
            bounds=args.bounds,
            domain=domain,
            timeout=budget.timeout(),
        )
        if args.save_example is not None and result.adversarial_example is not None:
            np.save(args.save_example, np.asarray(result.adversarial_example))
    print(summary_line(result, args.epsilon), flush=True)
    print(f"label: {result.label}")
    print(f"norm: {result.norm}")
    print(f"lower bound: {_number(result.lower_bound)}")
    print(f"upper bound: {_number(result.upper_bound)}")
    if result.adversarial_example is not None:
        print(f"adversarial label: {result.adversarial_label}")
    print(f"method: {result.method}")
    print(f"seconds: {budget.elapsed():.3f}")
    return EXIT_OK


def _cmd_certify(args: argparse.Namespace) -> int:
    _check_exists(args.model, ModelLoadError, "ONNX file")
    _check_exists(args.data, InvalidInputError, "data file")
    from verifiNN.certify import certify, load_dataset
    from verifiNN.io import load_onnx

    _set_threads(args.threads)
    executor = make_executor(args.backend, args.workers, args.address)
    with _stdout_to_stderr():
        network = load_onnx(args.model)
        data = load_dataset(args.data, network)
        count = len(data) if args.limit is None else min(args.limit, len(data))
        resume = os.path.join(args.out, "results.jsonl")
        try:
            result = certify(
                network,
                data.inputs[:count],
                data.labels[:count],
                args.eps,
                norm=args.norm,
                method=args.method,
                timeout_per_sample=args.timeout,
                executor=executor,
                out=args.out,
                radius=args.radius,
                domain=tuple(args.domain) if args.domain else None,
                seed=args.seed,
                progress=not args.quiet and sys.stderr.isatty(),
                run_info={"model": Path(args.model).name, "data": Path(args.data).name},
            )
        except KeyboardInterrupt:
            print(
                f"verifinn: interrupted; finished samples are kept in {resume}: "
                "run the same command again to resume",
                file=sys.stderr,
            )
            return EXIT_INTERRUPTED
    summary = result.summary
    print(f"samples: {summary['samples']}  clean accuracy: {summary['clean_accuracy']:.4f}")
    print("epsilon  certified  attack")
    for e in summary["epsilons"]:
        print(f"{e['epsilon']:<8g} {e['certified_accuracy']:<10.4f} {e['attack_accuracy']:.4f}")
    if not args.quiet:
        print(f"report: {result.files['report']}", file=sys.stderr)
    return EXIT_OK


def _number(value: float | None) -> str:
    return "none" if value is None else f"{value:.9g}"


# ------------------------------------------------------------------ entry
def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``verifinn``; returns the process exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error (already printed)
        return int(exc.code or 0)
    args.from_command_line = argv is None
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        with _logging_to_stderr(args.quiet, args.verbose):
            return args.handler(args)
    except (VerifiNNError, OSError) as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"verifinn: error: {message}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("verifinn: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        traceback.print_exc(file=sys.stderr)
        print(f"verifinn: internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
