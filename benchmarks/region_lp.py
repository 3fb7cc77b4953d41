"""Time the seed's region LP: verifiNN's sparse HiGHS model vs the same LP in cvxpy.

The cvxpy formulation is the 0.0.0.dev10 approach (a modelling layer, one
problem per competing class). Both answer the same question for every competing
class: the nearest point of x_0's activation region, within epsilon in L-inf,
where the class scores at least as high as x_0's label. The script checks that
the optima agree to 1e-6 and reports the time per call (all classes).

Usage:
    python benchmarks/region_lp.py [--inputs 3] [--out benchmarks/out/region_lp.csv]
"""

from __future__ import annotations

import argparse
import csv
import itertools
import statistics
import time
from pathlib import Path

import cvxpy as cp
import numpy as np

from verifiNN import LPVerifier, Network
from verifiNN.solvers.region_lp import mlp_forward


def random_mlp(rng: np.random.Generator, widths: list[int]) -> Network:
    weights = [rng.normal(0, 1 / np.sqrt(a), size=(b, a)) for a, b in itertools.pairwise(widths)]
    biases = [rng.normal(0, 0.1, size=b) for b in widths[1:]]
    return Network(weights, biases)


def cvxpy_class_distances(network: Network, x_0: np.ndarray, eps: float, solver: str | None):
    """The region LP written with cvxpy, one problem per competing class."""
    mlp = network.as_mlp()
    pre, scores = mlp_forward(mlp, x_0)
    label = int(np.argmax(scores))
    phases = [(z > 0).astype(float) for z in pre]
    distances = {}
    for j in range(len(scores)):
        if j == label:
            continue
        x = cp.Variable(len(x_0))
        t = cp.Variable()
        constraints = [cp.abs(x - x_0) <= t, cp.abs(x - x_0) <= eps]
        a = x
        for k, (w, b) in enumerate(zip(mlp.weights[:-1], mlp.biases[:-1])):
            z = cp.Variable(len(b))
            constraints.append(z == w @ a + b)
            constraints.append(cp.multiply(2 * phases[k] - 1, z) >= 0)
            a = cp.multiply(phases[k], z)
        y = mlp.weights[-1] @ a + mlp.biases[-1]
        constraints.append(y[j] >= y[label])
        problem = cp.Problem(cp.Minimize(t), constraints)
        try:
            problem.solve(solver=solver)
        except (cp.error.SolverError, ValueError):  # cvxpy could not unpack the solver's answer
            distances[j] = float("nan")
            continue
        if problem.status == cp.OPTIMAL:
            distances[j] = float(problem.value)
    return distances


def time_call(fn, repeats: int) -> tuple[float, object]:
    times, value = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=3, help="random inputs per network")
    parser.add_argument("--epsilon", type=float, default=0.5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out/region_lp.csv"))
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(2026)
    solvers = [("cvxpy (default solver)", None), ("cvxpy + HiGHS", "HIGHS")]
    rows = []
    for widths in ([784, 256, 256, 10], [784] + [256] * 6 + [10]):
        network = random_mlp(rng, widths)
        name = "784-" + "-".join(map(str, widths[1:]))
        for i in range(args.inputs):
            x_0 = rng.uniform(0, 1, size=784)
            ours_s, ours = time_call(
                lambda x_0=x_0, network=network: LPVerifier().compute_pointwise_robustness(
                    network, x_0, args.epsilon
                ),
                args.repeats,
            )
            row = {"network": name, "input": i, "verifinn_highs_s": ours_s}
            for _, solver in solvers:
                their_s, theirs = time_call(
                    lambda x_0=x_0, solver=solver, network=network: cvxpy_class_distances(
                        network, x_0, args.epsilon, solver
                    ),
                    1,
                )
                gap = max(
                    [abs(theirs[j] - ours.class_distances.get(j, np.inf)) for j in theirs]
                    + [0.0 if set(theirs) == set(ours.class_distances) else np.inf]
                )
                key = "cvxpy_highs" if solver else "cvxpy_default"
                row[f"{key}_s"] = their_s
                row[f"{key}_max_gap"] = gap
            row["reachable_classes"] = len(ours.class_distances)
            rows.append(row)
            print(row, flush=True)
    with args.out.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(
        "\n| network | inputs | verifiNN HiGHS (s/call) | cvxpy default (s/call) "
        "| cvxpy+HiGHS (s/call) | speed-up vs default | speed-up vs cvxpy+HiGHS "
        "| max gap vs cvxpy+HiGHS | max gap vs cvxpy default |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for name in dict.fromkeys(r["network"] for r in rows):
        sel = [r for r in rows if r["network"] == name]
        ours = statistics.median(r["verifinn_highs_s"] for r in sel)
        dflt = statistics.median(r["cvxpy_default_s"] for r in sel)
        hig = statistics.median(r["cvxpy_highs_s"] for r in sel)
        gap_h = max(r["cvxpy_highs_max_gap"] for r in sel)
        gap_d = max(r["cvxpy_default_max_gap"] for r in sel)
        print(
            f"| {name} | {len(sel)} | {ours:.3f} | {dflt:.3f} | {hig:.3f} | {dflt / ours:.1f}x "
            f"| {hig / ours:.1f}x | {gap_h:.1e} | {gap_d:.1e} |"
        )
    print("(gap inf: that solver missed a reachable class or reported an extra one)")


if __name__ == "__main__":
    main()
