"""SDP benchmark: tightness against the LP, chordal vs single-block scaling, digits CNN.

Usage::

    python benchmarks/sdp.py tightness [--count 50] [--seed 0]
    python benchmarks/sdp.py scaling [--widths 8 16 24 32 40]
    python benchmarks/sdp.py digits [--eps 0.05] [--images 40] [--time-limit 120]

``tightness``: random fully connected ReLU nets (2 to 10 inputs, 2 or 3 hidden
layers of 10 to 30 neurons, 3 outputs), an L-inf box of radius 0.1-0.5 around
a Gaussian point, one random objective ``c . y``. CROWN's intermediate bounds
are computed once and given to both the LP (``compute_bounds(method='lp')``)
and the SDP (chordal, Clarabel). Writes ``benchmarks/out/sdp_tightness.csv``.

``scaling``: 3 inputs, two hidden layers of width ``w``, one objective;
the same SDP in the chordal and the single-block formulation (Clarabel), its
wall time (modelling + solve + sound bound) and both bounds. Writes
``benchmarks/out/sdp_scaling.csv``.

``digits``: the conv net of ``examples/digits`` (input 64 in [0, 1], conv
4x3x3 pad 1, ReLU, conv 8x4x4 stride 2 pad 1, ReLU, dense 128 -> 10) on the
first ``--images`` test images at L-inf radius ``--eps`` (clipped to [0, 1]):
``prove(method='lp')`` then, where the LP fails, the SDP (``prove(method='sdp')``, the
time limit per image). Writes
``benchmarks/out/sdp_digits.csv``.

Every table is printed as Markdown.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import sys
import time
from pathlib import Path

import numpy as np
import torch

from verifiNN.bounds import compute_bounds
from verifiNN.bounds.api import bound_graph, prepare_rows
from verifiNN.budget import Budget
from verifiNN.io import load_onnx
from verifiNN.models.network import Network
from verifiNN.regions import as_batch
from verifiNN.results import Verdict
from verifiNN.search.prove import prove
from verifiNN.solvers.sdp import SDPOptions, sdp_bound
from verifiNN.specs import Box, robustness_spec

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def _write(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"\nwrote {path.relative_to(ROOT)}")


def _random_net(rng: np.random.Generator, widths: list[int]) -> Network:
    weights = [
        rng.normal(0.0, 1.0 / np.sqrt(a), size=(b, a)) for a, b in itertools.pairwise(widths)
    ]
    biases = [rng.normal(0.0, 0.5, size=b) for b in widths[1:]]
    return Network(weights, biases, activation="ReLU")


def _lp_and_sdp(net: Network, box: Box, c: np.ndarray, options: SDPOptions):
    """``(crown, lp, sdp, lp seconds, sdp seconds)`` with the same CROWN intermediate bounds."""
    C = c[None]
    crown = compute_bounds(net, box, C, "crown", bound_upper=False)
    start = time.perf_counter()
    lp = compute_bounds(net, box, C, "lp", bounds=crown.bounds, bound_upper=False)
    lp_seconds = time.perf_counter() - start
    graph = bound_graph(net)
    input_set = as_batch(box, net.input_size, torch.float64, None)
    rows = prepare_rows(C, net.output_size, 1, torch.float64, torch.device("cpu"))
    start = time.perf_counter()
    sdp, stats = sdp_bound(graph, input_set, crown.bounds, rows, options)
    sdp_seconds = time.perf_counter() - start
    return (
        float(crown.lower[0, 0]),
        float(lp.lower[0, 0]),
        float(sdp[0, 0]),
        lp_seconds,
        sdp_seconds,
        stats,
    )


def tightness(count: int, seed: int) -> None:
    """SDP vs LP on ``count`` random FC nets (see the module docstring)."""
    rng = np.random.default_rng(seed)
    rows = []
    for k in range(count):
        n_in = int(rng.integers(2, 11))
        hidden = [int(rng.integers(10, 31)) for _ in range(int(rng.integers(2, 4)))]
        net = _random_net(rng, [n_in, *hidden, 3])
        x0, eps = rng.normal(size=n_in), float(rng.uniform(0.1, 0.5))
        c = rng.normal(size=3)
        crown, lp, sdp, lp_s, sdp_s, stats = _lp_and_sdp(
            net, Box(x0 - eps, x0 + eps), c, SDPOptions()
        )
        gap = sdp - lp
        rows.append({
            "instance": k, "inputs": n_in, "hidden": "x".join(map(str, hidden)),
            "eps": round(eps, 4), "crown": crown, "lp": lp, "sdp": sdp, "sdp_minus_lp": gap,
            "relative_gain": gap / max(1e-12, abs(lp)), "lp_seconds": round(lp_s, 3),
            "sdp_seconds": round(sdp_s, 3), "max_block": int(stats["max_block"]),
        })  # fmt: skip
        print(f"{k:3d} {n_in:2d} {'x'.join(map(str, hidden)):>9}  lp {lp:9.4f}  sdp {sdp:9.4f}"
              f"  gain {gap:8.4f}  {sdp_s:6.2f} s", flush=True)  # fmt: skip
    _write(HERE / "out" / "sdp_tightness.csv", rows)
    gaps = np.array([r["sdp_minus_lp"] for r in rows])
    scale = np.array([1 + abs(r["lp"]) for r in rows])
    below = int((gaps < -1e-5 * scale).sum())
    tighter = int((gaps > 1e-4 * scale).sum())
    print("\n| instances | SDP < LP - 1e-5(1+abs LP) | SDP > LP + 1e-4(1+abs LP) "
          "| median gain SDP-LP | median gain / abs LP | median LP s | median SDP s |")  # fmt: skip
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    print(
        f"| {len(rows)} | {below} | {tighter} ({100 * tighter / len(rows):.0f}%) "
        f"| {np.median(gaps):.4f} | {np.median([r['relative_gain'] for r in rows]):.3f} "
        f"| {np.median([r['lp_seconds'] for r in rows]):.2f} "
        f"| {np.median([r['sdp_seconds'] for r in rows]):.2f} |"
    )


def scaling(widths: list[int], seed: int) -> None:
    """Chordal vs single-block wall time against the hidden width."""
    rows = []
    for w in widths:
        rng = np.random.default_rng(seed + w)
        net = _random_net(rng, [3, w, w, w, 2])
        x0 = rng.normal(size=3)
        box = Box(x0 - 0.3, x0 + 0.3)
        c = np.array([1.0, -1.0])
        row = {"width": w, "layers": 3}
        for form in ("chordal", "single"):
            options = SDPOptions(formulation=form, solver="clarabel")
            _, lp, sdp, _, seconds, stats = _lp_and_sdp(net, box, c, options)
            row.update({f"{form}_seconds": round(seconds, 3), f"{form}_bound": sdp,
                        f"{form}_block": int(stats["max_block"])})  # fmt: skip
        row["lp"] = lp
        rows.append(row)
        print(row, flush=True)
    _write(HERE / "out" / "sdp_scaling.csv", rows)
    print("\n| width | chordal block | chordal s | single block | single s | speed-up "
          "| chordal bound | single bound | LP bound |")  # fmt: skip
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(
            f"| {r['width']} | {r['chordal_block']} | {r['chordal_seconds']:.2f} "
            f"| {r['single_block']} | {r['single_seconds']:.2f} "
            f"| {r['single_seconds'] / r['chordal_seconds']:.1f}x "
            f"| {r['chordal_bound']:.4f} | {r['single_bound']:.4f} | {r['lp']:.4f} |"
        )


def _lp_radius(net: Network, x: np.ndarray, label: int, high: float = 0.3) -> float:
    """The largest L-inf radius the LP proves, by 12 bisection steps in ``[0, high]``."""
    low = 0.0
    for _ in range(12):
        mid = 0.5 * (low + high)
        spec = robustness_spec(net, x, mid, label=label, domain=(0, 1))
        if prove(net, spec, "lp").verdict is Verdict.UNSAT:
            low = mid
        else:
            high = mid
    return high


def digits(
    eps: float,
    images: int,
    time_limit: float | None,
    accuracy: float,
    model: str,
    solver: str = "scs",
    factor: float | None = None,
) -> None:
    """LP vs SDP verification on a digits CNN (see the module docstring). With
    ``factor``, each image's radius is ``factor`` times the smallest radius the LP
    fails on (found by bisection), instead of ``eps``."""
    folder = ROOT / "examples" / "digits"
    net = load_onnx(folder / model)
    data = np.load(folder / "digits_test.npz")
    X, Y = data["x"].astype(np.float64), data["y"]
    options = SDPOptions(solver=solver, accuracy=accuracy)
    rows, start = [], time.perf_counter()
    for i in range(min(images, len(X))):
        label = int(Y[i])
        if int(net.classify(X[i])) != label:
            rows.append({"image": i, "label": label, "correct": False, "eps": "", "lp": "",
                         "sdp": "", "lp_margin": "",
                         "lp_seconds": "", "sdp_seconds": "", "sdp_margin": ""})  # fmt: skip
            continue
        radius = eps if factor is None else factor * _lp_radius(net, X[i], label)
        spec = robustness_spec(net, X[i], radius, label=label, domain=(0, 1))
        t = time.perf_counter()
        lp = prove(net, spec, "lp")
        lp_s = time.perf_counter() - t
        sdp, sdp_s, margin = "", "", ""
        if lp.verdict is not Verdict.UNSAT:
            t = time.perf_counter()
            result = prove(net, spec, "sdp", options=options, budget=Budget.start(time_limit))
            sdp_s, sdp = round(time.perf_counter() - t, 2), result.verdict.value
            margin = result.statistics["worst_margin"]
        rows.append({"image": i, "label": label, "correct": True, "eps": round(radius, 6),
                     "lp": lp.verdict.value,
                     "sdp": sdp, "lp_seconds": round(lp_s, 2), "sdp_seconds": sdp_s,
                     "sdp_margin": margin,
                     "lp_margin": lp.statistics["worst_margin"]})  # fmt: skip
        print(rows[-1], flush=True)
    _write(HERE / "out" / "sdp_digits.csv", rows)
    correct = [r for r in rows if r["correct"]]
    lp_ok = sum(r["lp"] == "unsat" for r in correct)
    tried = [r for r in correct if r["lp"] != "unsat"]
    sdp_ok = sum(r["sdp"] == "unsat" for r in tried)
    print("\n| eps | images | correct | LP proves | SDP tried (LP failed) | SDP proves of those "
          "| SDP seconds (median) | total seconds |")  # fmt: skip
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    med = np.median([r["sdp_seconds"] for r in tried]) if tried else float("nan")
    label = eps if factor is None else f"{factor} x LP radius"
    print(f"| {label} | {len(rows)} | {len(correct)} | {lp_ok} | {len(tried)} | {sdp_ok} "
          f"| {med:.1f} | {time.perf_counter() - start:.0f} |")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    t = sub.add_parser("tightness")
    t.add_argument("--count", type=int, default=50)
    t.add_argument("--seed", type=int, default=0)
    s = sub.add_parser("scaling")
    s.add_argument("--widths", type=int, nargs="+", default=[8, 16, 24, 32])
    s.add_argument("--seed", type=int, default=0)
    d = sub.add_parser("digits")
    d.add_argument("--eps", type=float, default=0.05)
    d.add_argument("--images", type=int, default=40)
    d.add_argument("--time-limit", type=float, default=120.0, help="seconds per SDP solve")
    d.add_argument("--accuracy", type=float, default=1e-4, help="SCS tolerance")
    d.add_argument(
        "--model", default="digits_cnn.onnx", help="in examples/digits (or digits_cnn_tiny.onnx)"
    )
    d.add_argument("--solver", default="scs", help="SDP solver (clarabel for the tiny CNN)")
    d.add_argument(
        "--lp-radius-factor", type=float,
        help="per image: this many times the LP's certified radius (overrides --eps)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if args.mode == "tightness":
        tightness(args.count, args.seed)
    elif args.mode == "scaling":
        scaling(args.widths, args.seed)
    else:
        digits(args.eps, args.images, args.time_limit, args.accuracy, args.model,
               args.solver, args.lp_radius_factor)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
