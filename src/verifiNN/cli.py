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
from verifiNN._version import __version__
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
    parser.add_argument("--version", action="version", version=f"verifinn {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = commands.add_parser(
        "verify",
        help="decide one VNN-LIB property on one ONNX model",
        description="Decide one property. Prints the verdict (sat, unsat, unknown, timeout) "
        "as the first line on stdout; a short summary goes to stderr.",
    )
    run.add_argument("model", metavar="MODEL.onnx", help="the network")
    run.add_argument("spec", metavar="SPEC.vnnlib", help="the property (may be .vnnlib.gz)")
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

    bench = commands.add_parser(
        "bench",
        help="answer a VNN-COMP instance list in one process",
        description="Answer every instance of a VNN-COMP instance list (rows: onnx, vnnlib, "
        "timeout) and print a summary; compares with expected.csv next to the list.",
    )
    bench.add_argument("instances", metavar="INSTANCES.csv", help="the instance list")
    bench.add_argument(
        "--root", metavar="DIR", help="folder the list's paths are relative to (default: its own)"
    )
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
        "--limit", type=_count(0), metavar="N", help="answer only the first N instances"
    )
    bench.add_argument(
        "--out", metavar="FILE", help="append onnx,vnnlib,result,seconds rows to this CSV"
    )
    _executor_options(bench, default_workers=1)
    _common(bench)
    bench.set_defaults(handler=_cmd_bench)
    _robustness_parser(commands)
    _certify_parser(commands)
    return parser


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
    budget = _command_budget(args)
    if args.out is not None:
        _check_writable(args.out)
    _check_exists(args.model, ModelLoadError, "ONNX file")
    _check_exists(args.spec, SpecError, "VNN-LIB file")
    from verifiNN.io import load_onnx, load_vnnlib, vnncomp_word, write_result
    from verifiNN.results import Verdict
    from verifiNN.verifiers import verify

    _set_threads(args.threads)
    with _stdout_to_stderr():
        network = load_onnx(args.model)
        spec = load_vnnlib(args.spec, network)
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
        phases = ", ".join(f"{k} {v:.2f} s" for k, v in result.statistics["phases"].items())
        print(
            f"{vnncomp_word(result.verdict)} by {result.method} in {budget.elapsed():.2f} s"
            + (f" ({phases})" if phases else ""),
            file=sys.stderr,
        )
    return EXIT_OK


def _cmd_bench(args: argparse.Namespace) -> int:
    from verifiNN.bench import run_benchmark

    _set_threads(args.threads)
    with _stdout_to_stderr():
        summary = run_benchmark(
            args.instances,
            root=args.root,
            timeout_scale=args.timeout_scale,
            limit=args.limit,
            match=args.match,
            out=args.out,
            method=args.method,
            progress=not args.quiet,
            device=args.device,
            executor=make_executor(args.backend, args.workers, args.address),
        )
    print(summary.format(), flush=True)
    if summary.internal_errors:
        print(
            f"verifinn: {len(summary.internal_errors)} instance(s) failed by an internal error "
            "(tracebacks above)",
            file=sys.stderr,
        )
        return EXIT_INTERNAL
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
