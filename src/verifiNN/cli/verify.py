"""``verifinn verify`` (the VNN-LIB solver interface, and the VNN-COMP form) and
``verifinn supports``."""

from __future__ import annotations

import argparse
import os
import sys

from verifiNN.cli.options import (
    EXIT_OK,
    check_exists,
    check_writable,
    command_budget,
    common_options,
    count,
    network_option,
    seconds,
    set_threads,
    stdout_to_stderr,
    summary,
)
from verifiNN.errors import InvalidInputError, ModelLoadError, ResultFileError, SpecError

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


def add_parsers(commands) -> None:
    """The ``verify`` and ``supports`` subcommands."""
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
        "--network", action="append", type=network_option, default=[],
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
        type=seconds,
        metavar="S",
        help="seconds for the whole command, counted from its start (default: none)",
    )
    run.add_argument(
        "--out", metavar="FILE", help="write the VNN-COMP result file (counterexample for sat)"
    )
    run.add_argument("--seed", type=count(0), default=0, metavar="N", help="random seed")
    run.add_argument(
        "--sound-fp", action="store_true",
        help="answer unsat only when bounds with rigorous floating-point error "
        "re-prove it (ReLU MLPs on boxes)",
    )  # fmt: skip
    common_options(run)
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


def _cmd_verify(args: argparse.Namespace) -> int:
    if args.network or len(args.files) == 1:
        return _verify_query(args)
    if len(args.files) != 2:
        raise InvalidInputError("verify takes QUERY --network NAME=MODEL ..., or MODEL PROP")
    if args.serialise_assignments is not None:
        raise InvalidInputError("--serialise-assignments goes with a query and --network")
    budget = command_budget(args)
    model, prop = args.files
    if args.out is not None:
        check_writable(args.out)
    check_exists(model, ModelLoadError, "ONNX file")
    check_exists(prop, SpecError, "VNN-LIB file")
    from verifiNN.io import load_instance, vnncomp_word, write_result
    from verifiNN.results import Verdict
    from verifiNN.verifiers import verify

    set_threads(args.threads)
    with stdout_to_stderr():
        network, spec = load_instance(model, prop)  # specialised when the model needs it
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
        summary(vnncomp_word(result.verdict), result.method, budget, result.statistics)
    return EXIT_OK


def _verify_query(args: argparse.Namespace) -> int:
    """The VNN-LIB solver interface's ``verify`` (see :mod:`verifiNN.solver_interface`)."""
    budget = command_budget(args)
    if len(args.files) != 1:
        raise InvalidInputError("with --network, verify takes one query file")
    if args.out is not None or args.sound_fp:
        raise InvalidInputError("--out and --sound-fp go with the MODEL PROP form")
    (path,) = args.files
    check_exists(path, SpecError, "VNN-LIB file")
    networks: dict[str, str] = {}
    for name, model in args.network:
        if name in networks:
            raise InvalidInputError(f"--network {name} is given twice")
        check_exists(model, ModelLoadError, "ONNX file")
        networks[name] = model
    if args.serialise_assignments is not None and os.path.isfile(args.serialise_assignments):
        raise ResultFileError(f"{args.serialise_assignments}: a file, not a folder")
    from verifiNN.io.query import load_query
    from verifiNN.results import Verdict
    from verifiNN.solver_interface import result_text, serialise_assignment, verdict_line
    from verifiNN.verifiers.queries import verify_query

    set_threads(args.threads)
    with stdout_to_stderr():
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
        summary(verdict_line(result.verdict), result.method, budget, result.statistics)
        if result.reason:
            print(f"verifinn: {result.reason}", file=sys.stderr)
    return EXIT_OK


def _cmd_supports(args: argparse.Namespace) -> int:
    from verifiNN.solver_interface import CAPABILITIES

    sys.stdout.write("".join(f"{line}\n" for line in CAPABILITIES[args.capability]()))
    return EXIT_OK
