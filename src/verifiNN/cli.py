"""The ``verifinn`` command line: thin, every command is a library call."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from verifiNN._version import __version__

__all__ = ["main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="verifinn",
        description="Sound and complete robustness verification of neural networks.",
    )
    parser.add_argument("--version", action="version", version=f"verifinn {__version__}")
    parser.add_subparsers(dest="command", metavar="COMMAND")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
