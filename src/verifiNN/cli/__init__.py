"""The ``verifinn`` command line: thin, every command is a library call.

Commands:

* ``verifinn verify QUERY.vnnlib --network NAME=MODEL.onnx ...``: the VNN-LIB
  standard's solver interface (its chapter 5): the verdict (``sat``,
  ``unsat``, ``unknown``, ``timed-out``) on the first stdout line and, for
  ``sat``, every declared variable's value (or ``--serialise-assignments
  DIR``); :mod:`verifiNN.solver_interface`.
* ``verifinn verify MODEL.onnx SPEC.vnnlib``: the VNN-COMP form; the verdict
  word (``sat``, ``unsat``, ``unknown``, ``timeout``) is the first line on
  stdout, ``--out`` writes the VNN-COMP result file.
* ``verifinn supports --CAPABILITY``, ``verifinn --name``, ``verifinn
  --version``: the interface's capability queries.
* ``verifinn bench FOLDER ... --out DIR``: answer VNN-COMP benchmark folders
  into a results folder that resumes (:func:`verifiNN.suite.run_suite`), with
  the score and a cactus plot; ``verifinn bench INSTANCES.csv``: one instance
  list (:func:`verifiNN.bench.run_benchmark`).
* ``verifinn score DIR|RESULTS.csv ...``: the VNN-COMP score of result folders
  and peers' results files side by side (:mod:`verifiNN.scoring`).
* ``verifinn robustness MODEL.onnx --input X.npy``: the distance from ``X`` to
  the nearest adversarial example, exact (``--exact``, by MILP) or bracketed by
  a certified radius and an attack; the first stdout line is the status and
  the distance or bracket.
* ``verifinn certify MODEL.onnx --data D.npz --eps ...``: certified accuracy of
  a data set.

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
import os
import sys
import traceback
from collections.abc import Sequence
from typing import NoReturn

from verifiNN._version import SOLVER_NAME, __version__
from verifiNN.cli import competition, robustness, verify
from verifiNN.cli.options import (
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    Parser,
    logging_to_stderr,
)
from verifiNN.cli.verify import SUPPORTS_FLAGS
from verifiNN.errors import VerifiNNError

__all__ = ["QUICK_EXIT_COMMANDS", "SUPPORTS_FLAGS", "build_parser", "main", "run"]

#: Commands whose process ends as soon as its answer is written: a verification's time
#: limit covers the whole process (``--timeout`` counts from its start), and tearing the
#: interpreter down (PyTorch's modules, a large model's tensors) took 1.8 s on a loaded
#: machine after the answer was out.
QUICK_EXIT_COMMANDS = frozenset({"verify"})


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``verifinn`` and its subcommands."""
    parser = Parser(
        prog="verifinn",
        description="Sound and complete robustness verification of neural networks.",
        epilog="Exit codes: 0 answered (any verdict), 2 bad input, 1 internal error.",
    )
    parser.add_argument("--version", action="version", version=__version__)
    parser.add_argument(
        "--name", action="version", version=SOLVER_NAME, help="show the solver's name and exit"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    verify.add_parsers(commands)
    competition.add_parsers(commands)
    robustness.add_parsers(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``verifinn``; returns the process exit code."""
    return _main(argv)[0]


def run() -> NoReturn:
    """The ``verifinn`` executable: :func:`main`, then the process exits with its code,
    at once (no interpreter teardown) after the commands of :data:`QUICK_EXIT_COMMANDS`."""
    code, command = _main(None)
    if command in QUICK_EXIT_COMMANDS:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


def _main(argv: Sequence[str] | None) -> tuple[int, str | None]:
    """``(exit code, command)`` of one invocation."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error (already printed)
        return int(exc.code or 0), None
    args.from_command_line = argv is None
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE, None
    return _dispatch(args), args.command


def _dispatch(args: argparse.Namespace) -> int:
    try:
        with logging_to_stderr(args.quiet, args.verbose):
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
    run()
