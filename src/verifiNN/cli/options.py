"""What every ``verifinn`` command shares: argument types, exit codes, stdout and logging
discipline, time budgets."""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import os
import sys
import warnings
from collections.abc import Iterator
from typing import NoReturn

from verifiNN._stdio import descriptor_1_to
from verifiNN.budget import Budget
from verifiNN.cores import fair_threads
from verifiNN.errors import ResultFileError, VerifiNNError
from verifiNN.executors import BACKENDS
from verifiNN.methods import METHODS

EXIT_OK, EXIT_INTERNAL, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


# ------------------------------------------------------------------ parsing
def seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number of seconds >= 0, got {text!r}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def network_option(text: str) -> tuple[str, str]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"expected NAME=MODEL.onnx, got {text!r}")
    return name, path


def count(minimum: int) -> type:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {text!r}")
        return value

    return parse  # type: ignore[return-value]


def common_options(parser: argparse.ArgumentParser) -> None:
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
        type=count(1),
        metavar="N",
        help="torch CPU threads (default: the cores other jobs leave free, at least 1)",
    )
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="no summary, progress bar or warnings on stderr"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log each phase on stderr")


class Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line on stderr (exit 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def executor_options(parser: argparse.ArgumentParser, default_workers: int | None) -> None:
    default = "every core" if default_workers is None else str(default_workers)
    parser.add_argument(
        "--backend", choices=BACKENDS, default="local",
        help="'local' processes or a 'ray' cluster (default: local)",
    )  # fmt: skip
    parser.add_argument(
        "--workers", type=count(1), default=default_workers, metavar="N",
        help=f"tasks run at once (default: {default})",
    )  # fmt: skip
    parser.add_argument(
        "--address", metavar="ADDR",
        help="Ray cluster address (default: start a local Ray instance)",
    )  # fmt: skip


def epsilons(text: str) -> list[float]:
    try:
        values = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers, got {text!r}"
        ) from None
    if not values or not all(math.isfinite(v) and v > 0 for v in values):
        raise argparse.ArgumentTypeError(f"epsilons must be positive numbers, got {text!r}")
    return values


# ------------------------------------------------------------------ running
@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Send everything written to stdout (Python and C level) to stderr for a while:
    descriptor 1 itself is pointed at descriptor 2 (native libraries write to it
    whatever ``sys.stdout`` is) and ``sys.stdout`` at ``sys.stderr``."""
    with descriptor_1_to(2), contextlib.redirect_stdout(sys.stderr):
        try:
            yield
        finally:
            sys.stderr.flush()


@contextlib.contextmanager
def logging_to_stderr(quiet: bool, verbose: bool) -> Iterator[None]:
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


def check_writable(path: str) -> None:
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


def command_budget(args: argparse.Namespace) -> Budget:
    """The ``--timeout`` budget: counted from the process start when ``verifinn`` is
    the command (``main()`` with no argument list), else from now; less
    :data:`EXIT_RESERVE` for the answer to get out."""
    if args.timeout is None:
        return Budget.start(None)
    seconds = max(0.0, args.timeout - EXIT_RESERVE)
    if args.from_command_line:
        return Budget.since_process_start(seconds)
    return Budget.start(seconds)


def set_threads(threads: int | None) -> None:
    """Set torch's CPU threads: ``threads``, or by default this run's fair share of the
    machine's cores (:func:`verifiNN.cores.fair_threads`: the cores other jobs leave free)."""
    import torch  # the face loads the library only when a command runs

    torch.set_num_threads(threads if threads is not None else fair_threads())


def check_exists(path: str, error: type[VerifiNNError], what: str) -> None:
    """Fail before loading the library when ``path`` (or ``path.gz``) does not exist."""
    if not (os.path.exists(path) or os.path.exists(path + ".gz")):
        raise error(f"{path}: no such {what}")


def summary(word: str, method: str, budget: Budget, statistics: dict) -> None:
    """One line on stderr: the verdict, the engine, the seconds per phase; and why the
    answer is undecided when an engine said (e.g. a phase that did not fit in memory)."""
    phases = ", ".join(f"{k} {v:.2f} s" for k, v in statistics.get("phases", {}).items())
    print(
        f"{word} by {method} in {budget.elapsed():.2f} s" + (f" ({phases})" if phases else ""),
        file=sys.stderr,
    )
    if statistics.get("reason"):
        print(f"verifinn: {statistics['reason']}", file=sys.stderr)


def number(value: float | None) -> str:
    return "none" if value is None else f"{value:.9g}"
