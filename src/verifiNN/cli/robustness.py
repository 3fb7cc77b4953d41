"""``verifinn robustness`` (the distance to the nearest adversarial example) and
``verifinn certify`` (certified accuracy of a data set)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from verifiNN.cli.options import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    check_exists,
    check_writable,
    command_budget,
    common_options,
    count,
    epsilons,
    executor_options,
    number,
    positive_float,
    seconds,
    set_threads,
    stdout_to_stderr,
)
from verifiNN.errors import InvalidInputError, ModelLoadError
from verifiNN.executors import make_executor


def add_parsers(commands) -> None:
    """The ``robustness`` and ``certify`` subcommands."""
    robustness_parser(commands)
    certify_parser(commands)


def certify_parser(commands) -> None:
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
        "--eps", type=epsilons, default=[0.01, 0.02, 0.05], metavar="E1,E2,...",
        help="radii (default: 0.01,0.02,0.05)",
    )  # fmt: skip
    cert.add_argument("--norm", choices=("inf", "1", "2"), default="inf", help="default: inf")
    cert.add_argument(
        "--timeout", type=seconds, default=10.0, metavar="S",
        help="seconds per sample, shared by its epsilons (default: 10)",
    )  # fmt: skip
    cert.add_argument("--out", default="certify_out", metavar="DIR", help="default: certify_out")
    cert.add_argument(
        "--domain", nargs=2, type=float, metavar=("LO", "HI"),
        help="valid input range, e.g. 0 1 for images (default: unbounded)",
    )  # fmt: skip
    cert.add_argument("--limit", type=count(1), metavar="N", help="only the first N samples")
    cert.add_argument("--radius", action="store_true", help="also each sample's CROWN radius")
    cert.add_argument("--seed", type=count(0), default=0, metavar="N", help="random seed")
    executor_options(cert, default_workers=None)
    common_options(cert)
    cert.set_defaults(handler=_cmd_certify)


def robustness_parser(commands) -> None:
    robust = commands.add_parser(
        "robustness",
        help="distance from an input to the nearest adversarial example",
        description="Bracket the distance from an input to the nearest adversarial example "
        "(a certified radius from bounds and an attack's example), or compute it exactly by "
        "MILP with --exact. The first stdout line is the status and the distance or bracket.",
    )
    robust.add_argument("model", metavar="MODEL.onnx", help="the network")
    robust.add_argument("--input", required=True, metavar="X.npy", help="the reference input")
    robust.add_argument("--label", type=count(0), metavar="L", help="class to keep (default: "
                        "the network's class of the input)")  # fmt: skip
    robust.add_argument("--norm", choices=("inf", "1", "2"), default="inf", help="default: inf")
    robust.add_argument(
        "--epsilon",
        type=positive_float,
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
    robust.add_argument("--timeout", type=seconds, metavar="S", help="seconds (default: none)")
    robust.add_argument("--save-example", metavar="FILE.npy", help="write the adversarial example")
    robust.add_argument(
        "--threads",
        type=count(1),
        metavar="N",
        help="torch CPU threads (default: the cores other jobs leave free)",
    )
    robust.add_argument("-q", "--quiet", action="store_true", help="nothing on stderr")
    robust.add_argument("-v", "--verbose", action="store_true", help="log on stderr")
    robust.set_defaults(handler=_cmd_robustness)


def _cmd_robustness(args: argparse.Namespace) -> int:
    budget = command_budget(args)
    if args.save_example is not None:
        check_writable(args.save_example)
    check_exists(args.model, ModelLoadError, "ONNX file")
    check_exists(args.input, InvalidInputError, "input file")
    import numpy as np

    from verifiNN.io import load_input, load_onnx
    from verifiNN.verifiers.robustness import pointwise_robustness, summary_line

    set_threads(args.threads)
    with stdout_to_stderr():
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
    print(f"lower bound: {number(result.lower_bound)}")
    print(f"upper bound: {number(result.upper_bound)}")
    if result.adversarial_example is not None:
        print(f"adversarial label: {result.adversarial_label}")
    print(f"method: {result.method}")
    print(f"seconds: {budget.elapsed():.3f}")
    return EXIT_OK


def _cmd_certify(args: argparse.Namespace) -> int:
    check_exists(args.model, ModelLoadError, "ONNX file")
    check_exists(args.data, InvalidInputError, "data file")
    from verifiNN.certify import certify, load_dataset
    from verifiNN.io import load_onnx

    set_threads(args.threads)
    executor = make_executor(args.backend, args.workers, args.address)
    with stdout_to_stderr():
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
