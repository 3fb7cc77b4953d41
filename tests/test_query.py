"""VNN-LIB 2.0 queries end to end: compiled by io.query, decided by verifiers.queries.

Every answer here is derived by hand or by brute force on the tiny ONNX
models each test builds; a ``sat`` answer's assignment is checked against the
query's own assertions, with the outputs re-run through onnxruntime.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import helper

from conftest import benchmarks_dir, save_onnx
from verifiNN.errors import InvalidInputError, SpecError
from verifiNN.io.query import load_query, query_spec
from verifiNN.io.vnnlib import load_vnnlib, parse_vnnlib
from verifiNN.results import Verdict
from verifiNN.verifiers.queries import verify_query


# ------------------------------------------------------------------ models
def _dense_relu(path: Path, W: np.ndarray, b: np.ndarray, shape=None) -> Path:
    """``Y = relu(W x + b)`` on an input of ``shape`` (flattened), with the pre-activation
    tensor named ``pre`` (a hidden variable)."""
    shape = shape or [W.shape[1]]
    nodes = [
        helper.make_node("Flatten", ["X"], ["flat"], axis=0),
        helper.make_node("Gemm", ["flat", "W", "b"], ["pre"], transB=1),
        helper.make_node("Relu", ["pre"], ["Y"]),
    ]
    return save_onnx(path, nodes, [("X", shape)], [("Y", [1, W.shape[0]])], [("W", W), ("b", b)])


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _run(model: Path, y: list[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    return session.run(y, feeds)


# ------------------------------------------------------------------ single network
@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 10_000), above=st.booleans())
def test_tensor_indexed_query_agrees_with_brute_force(tmp_path_factory, seed, above):
    # Y = relu(W x + b), x a 2x2 tensor in a box; the largest Y[0,1] is attained at a
    # corner of the box (a linear function, then a monotone one), so 16 corners decide
    # whether Y[0,1] >= c is reachable.
    tmp = tmp_path_factory.mktemp("q")
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(3, 4)).astype(np.float32)
    b = rng.normal(size=3).astype(np.float32)
    model = _dense_relu(tmp / "net.onnx", W, b, shape=[2, 2])
    low = np.round(rng.uniform(-1, 0, 4), 3)
    high = np.round(low + rng.uniform(0.1, 1, 4), 3)
    corners = np.array(list(itertools.product(*zip(low, high))))
    best = np.max(np.maximum(corners @ W.astype(np.float64).T + b, 0)[:, 1])
    c = round(best + (0.05 if above else -0.05), 4)
    bounds = "\n".join(
        f"(assert (>= X[{i // 2},{i % 2}] {lo}))\n(assert (<= X[{i // 2},{i % 2}] {hi}))"
        for i, (lo, hi) in enumerate(zip(low, high))
    )
    query = _write(
        tmp / "q.vnnlib",
        "(vnnlib-version <2.0>)\n(declare-network N\n  (declare-input X real [2,2])\n"
        f"  (declare-output Y real [1,3]))\n{bounds}\n(assert (>= Y[0,1] {c}))\n",
    )
    result = verify_query(load_query(query, {"N": model}), timeout=60)
    assert result.verdict is (Verdict.UNSAT if above else Verdict.SAT)
    if not above:
        (x_var, x), (y_var, y) = result.assignment
        assert (x_var.name, y_var.name) == ("X", "Y")
        assert np.all(x >= low) and np.all(x <= high) and y[1] >= c
        (ort_y,) = _run(model, ["Y"], {"X": x.reshape(2, 2).astype(np.float32)})
        assert np.allclose(ort_y.ravel(), y, atol=1e-5)


def test_float32_semantics_differ_from_real_arithmetic(tmp_path):
    # y = x + 1e-8 at x = 1: the real value exceeds 1, float32 rounds it to exactly 1.
    model = save_onnx(
        tmp_path / "add.onnx",
        [helper.make_node("Add", ["X", "t"], ["Y"])],
        [("X", [1])],
        [("Y", [1])],
        [("t", [1e-8])],
    )

    def query(dtype: str) -> Path:
        return _write(
            tmp_path / f"{dtype}.vnnlib",
            f"(vnnlib-version <2.0>)\n(declare-network N (declare-input X {dtype} [1])"
            f" (declare-output Y {dtype} [1]))\n(assert (>= X[0] 1.0))\n(assert (<= X[0] 1.0))\n"
            "(assert (<= Y[0] 1.0))\n",
        )

    real = verify_query(load_query(query("real"), {"N": model}), timeout=30)
    assert real.verdict is Verdict.UNSAT  # 1 + 1e-8 > 1 (the constant is float32's 1e-8)
    rounded = verify_query(load_query(query("float32"), {"N": model}), timeout=30)
    assert rounded.verdict is Verdict.SAT
    (_, x), (_, y) = rounded.assignment
    assert x[0] == 1.0 and y[0] == 1.0


def test_float32_proof_needs_a_margin_above_the_rounding_error(tmp_path):
    # y = x in float32 exactly; asserting y <= 1 - 1e-9 on x in [1, 1] is unsat in both
    # arithmetics, and the rounding bound (zero for a copy) does not block the proof
    model = save_onnx(
        tmp_path / "id.onnx", [helper.make_node("Relu", ["X"], ["Y"])], [("X", [1])], [("Y", [1])]
    )
    text = (
        "(vnnlib-version <2.0>)\n(declare-network N (declare-input X float32 [1])"
        " (declare-output Y float32 [1]))\n(assert (>= X[0] 1.0))\n(assert (<= X[0] 1.0))\n"
        "(assert (<= Y[0] 0.999))\n"
    )
    result = verify_query(load_query(_write(tmp_path / "q.vnnlib", text), {"N": model}))
    assert result.verdict is Verdict.UNSAT


# ------------------------------------------------------------------ several networks
def _monotone_query(tmp_path: Path, relation: str) -> Path:
    return _write(
        tmp_path / f"mono_{relation}.vnnlib",
        f"""(vnnlib-version <2.0>)
(declare-network A
    (declare-input X real [1])
    (declare-output Y real [1]))
(declare-network B
    ({relation} A)
    (declare-input X2 real [1])
    (declare-output Y2 real [1]))
(assert (>= X[0] -2.0))
(assert (<= X[0] 2.0))
(assert (>= X2[0] -2.0))
(assert (<= X2[0] 2.0))
(assert (>= X2[0] X[0]))
(assert (< Y2[0] (- Y[0] 0.5)))
""",
    )


def _single_input_net(path: Path, w1: float, w2: float) -> Path:
    """``y = w2 relu(w1 x) + relu(x)``: increasing when ``w1, w2 >= 0``."""
    nodes = [
        helper.make_node("Mul", ["X", "w1"], ["a"]),
        helper.make_node("Relu", ["a"], ["r"]),
        helper.make_node("Mul", ["r", "w2"], ["s"]),
        helper.make_node("Relu", ["X"], ["q"]),
        helper.make_node("Add", ["s", "q"], ["Y"]),
    ]
    inits = [("w1", [w1]), ("w2", [w2])]
    return save_onnx(path, nodes, [("X", [1])], [("Y", [1])], inits)


def test_monotonicity_across_two_copies_of_one_network(tmp_path):
    # equal-to: one model for both copies; x2 >= x1 and f(x2) < f(x1) - 0.5 is impossible
    # for an increasing f and possible for a decreasing part (w2 = -3: f(x) = -2x on x > 0)
    increasing = _single_input_net(tmp_path / "inc.onnx", 1.0, 2.0)
    decreasing = _single_input_net(tmp_path / "dec.onnx", 1.0, -3.0)
    query = _monotone_query(tmp_path, "equal-to")
    assert verify_query(load_query(query, {"A": increasing})).verdict is Verdict.UNSAT
    result = verify_query(load_query(query, {"A": decreasing}))
    assert result.verdict is Verdict.SAT
    values = {v.name: x[0] for v, x in result.assignment}
    assert values["X2"] >= values["X"] and values["Y2"] < values["Y"] - 0.5
    for x, y in (("X", "Y"), ("X2", "Y2")):
        (out,) = _run(decreasing, ["Y"], {"X": np.array([values[x]], np.float32)})
        assert out[0] == pytest.approx(values[y], abs=1e-6)


def test_isomorphic_networks_bring_their_own_models(tmp_path):
    increasing = _single_input_net(tmp_path / "inc.onnx", 1.0, 2.0)
    decreasing = _single_input_net(tmp_path / "dec.onnx", 1.0, -3.0)
    query = _monotone_query(tmp_path, "isomorphic-to")
    # B = the decreasing net: x2 = x1 = 2 gives f_B(2) = -4 < f_A(2) - 0.5 = 5.5
    result = verify_query(load_query(query, {"A": increasing, "B": decreasing}))
    assert result.verdict is Verdict.SAT
    swapped = verify_query(load_query(query, {"A": increasing, "B": increasing}))
    assert swapped.verdict is Verdict.UNSAT


def test_networks_given_must_match_the_declarations(tmp_path):
    net = _single_input_net(tmp_path / "inc.onnx", 1.0, 2.0)
    query = _monotone_query(tmp_path, "isomorphic-to")
    with pytest.raises(InvalidInputError, match="no --network for B"):
        load_query(query, {"A": net})
    with pytest.raises(InvalidInputError, match="C is not a network of the query"):
        load_query(query, {"A": net, "B": net, "C": net})
    equal = _monotone_query(tmp_path, "equal-to")
    with pytest.raises(InvalidInputError, match="B is not a network"):
        load_query(equal, {"A": net, "B": net})


# ------------------------------------------------------------------ hidden, multi-IO, products
def test_hidden_variable_names_an_intermediate_tensor(tmp_path):
    # pre = 2 x - 1 for x in [0, 1]: H = pre reaches -1 (Y = relu(pre) never does)
    model = _dense_relu(tmp_path / "h.onnx", np.array([[2.0]]), np.array([-1.0]))
    text = """(vnnlib-version <2.0>)
(declare-network N
    (declare-input X real [1])
    (declare-hidden H real [1,1] "pre")
    (declare-output Y real [1,1]))
(assert (>= X[0] 0.0))
(assert (<= X[0] 1.0))
(assert (<= H[0,0] {c}))
"""
    sat = verify_query(load_query(_write(tmp_path / "a.vnnlib", text.format(c=-0.9)), {"N": model}))
    assert sat.verdict is Verdict.SAT
    values = {v.name: x for v, x in sat.assignment}
    assert [v.name for v, _ in sat.assignment] == ["X", "H", "Y"]
    assert values["H"][0] <= -0.9 and values["H"][0] == pytest.approx(2 * values["X"][0] - 1)
    unsat = load_query(_write(tmp_path / "b.vnnlib", text.format(c=-1.1)), {"N": model})
    assert verify_query(unsat).verdict is Verdict.UNSAT


def test_two_inputs_and_two_outputs(tmp_path):
    # S = A + B, D = A - B with A in [0, 1], B in [2, 3]: D <= -1 always, S >= 2 always
    nodes = [
        helper.make_node("Add", ["A", "B"], ["S"]),
        helper.make_node("Sub", ["A", "B"], ["D"]),
    ]
    inputs, outputs = [("A", [1]), ("B", [1])], [("S", [1]), ("D", [1])]
    model = save_onnx(tmp_path / "io.onnx", nodes, inputs, outputs)
    text = """(vnnlib-version <2.0>)
(declare-network N
    (declare-input A real [1])
    (declare-input B real [1])
    (declare-output S real [1])
    (declare-output D real [1]))
(assert (>= A[0] 0.0))
(assert (<= A[0] 1.0))
(assert (>= B[0] 2.0))
(assert (<= B[0] 3.0))
(assert (or (>= D[0] {d}) (<= S[0] {s})))
"""
    unsat = load_query(_write(tmp_path / "u.vnnlib", text.format(d=-0.9, s=1.9)), {"N": model})
    assert verify_query(unsat).verdict is Verdict.UNSAT
    sat = load_query(_write(tmp_path / "s.vnnlib", text.format(d=-1.1, s=1.9)), {"N": model})
    result = verify_query(sat)
    assert result.verdict is Verdict.SAT
    values = {v.name: x[0] for v, x in result.assignment}
    assert values["D"] >= -1.1 and values["D"] == pytest.approx(values["A"] - values["B"])


@pytest.mark.parametrize(("c", "expected"), [(0.26, Verdict.UNSAT), (0.24, Verdict.SAT)])
def test_product_of_outputs(tmp_path, c, expected):
    # Y = (x, 1 - x) on [0, 1]: Y0 * Y1 = x (1 - x) peaks at 1/4
    nodes = [
        helper.make_node("Sub", ["one", "X"], ["Z"]),
        helper.make_node("Concat", ["X", "Z"], ["Y"], axis=0),
    ]
    model = save_onnx(tmp_path / "p.onnx", nodes, [("X", [1])], [("Y", [2])], [("one", [1.0])])
    text = f"""(vnnlib-version <2.0>)
(declare-network N (declare-input X real [1]) (declare-output Y real [2]))
(assert (>= X[0] 0.0))
(assert (<= X[0] 1.0))
(assert (>= (* Y[0] Y[1]) {c}))
"""
    result = verify_query(load_query(_write(tmp_path / "q.vnnlib", text), {"N": model}), timeout=60)
    assert result.verdict is expected
    if expected is Verdict.SAT:
        y = dict((v.name, x) for v, x in result.assignment)["Y"]
        assert y[0] * y[1] >= c


def test_polynomial_of_inputs_and_outputs(tmp_path):
    # Y = 2 X on [-1, 1]: X * Y - 2 X * X = 0 everywhere, so "> 0.01" is unsat
    model = save_onnx(
        tmp_path / "d.onnx",
        [helper.make_node("Mul", ["X", "two"], ["Y"])],
        [("X", [1])],
        [("Y", [1])],
        [("two", [2.0])],
    )
    text = """(vnnlib-version <2.0>)
(declare-network N (declare-input X real [1]) (declare-output Y real [1]))
(assert (>= X[0] -1.0))
(assert (<= X[0] 1.0))
(assert (> (- (* X[0] Y[0]) (* 2.0 X[0] X[0])) 0.01))
"""
    query = load_query(_write(tmp_path / "q.vnnlib", text), {"N": model})
    assert verify_query(query, timeout=60).verdict is Verdict.UNSAT


# ------------------------------------------------------------------ errors
@pytest.mark.parametrize(
    ("body", "words"),
    [
        (
            "(declare-network N (declare-input X int64 [1]) (declare-output Y real [1]))\n"
            "(assert (>= X[0] 0))",
            "element type",
        ),
        (
            "(declare-network N (declare-input X real [1]) (declare-output Y real [1]))\n"
            "(assert (>= X[0] 0.0))\n(assert (<= Y[0] 1.0))",
            "no upper bound",
        ),
        (
            "(declare-network N (declare-input X real [1]) (declare-output Y real [1]))\n"
            "(assert (>= X[0] 0.0)\n",
            "line",
        ),
        (
            "(declare-network N (declare-input X real [1]) (declare-output Y real [1]))\n"
            "(assert (>= Q[0] 0.0))",
            "Q",
        ),
    ],
    ids=["integer type", "unbounded input", "syntax", "undeclared"],
)
def test_bad_queries_raise_spec_errors_that_name_the_problem(tmp_path, body, words):
    model = save_onnx(
        tmp_path / "r.onnx", [helper.make_node("Relu", ["X"], ["Y"])], [("X", [1])], [("Y", [1])]
    )
    path = _write(tmp_path / "bad.vnnlib", "(vnnlib-version <2.0>)\n" + body + "\n")
    with pytest.raises(SpecError, match=words):
        load_query(path, {"N": model})


def test_declared_type_must_match_the_model(tmp_path):
    model = save_onnx(
        tmp_path / "r.onnx", [helper.make_node("Relu", ["X"], ["Y"])], [("X", [1])], [("Y", [1])]
    )
    text = (
        "(vnnlib-version <2.0>)\n(declare-network N (declare-input X float64 [1]) "
        "(declare-output Y float64 [1]))\n(assert (>= X[0] 0.0))\n(assert (<= X[0] 1.0))\n"
    )
    with pytest.raises(SpecError, match=r"declared float64.*float32"):
        load_query(_write(tmp_path / "q.vnnlib", text), {"N": model})


# ------------------------------------------------------------------ 1.0 and 2.0 agree
def _as_vnnlib2(text: str) -> str:
    """A VNN-LIB 1.0 property rewritten in 2.0 syntax (X_i -> X[i], one network)."""
    n_in = len(set(re.findall(r"declare-const X_(\d+)", text)))
    n_out = len(set(re.findall(r"declare-const Y_(\d+)", text)))
    body = re.sub(r"\(declare-const [XY]_\d+ Real\)", "", text)
    body = re.sub(r"\b([XY])_(\d+)\b", r"\1[\2]", body)
    body = re.sub(r"(?<![\d.])(-?\d+)(?![\d.\]])", r"\1.0", body)  # integers as reals
    header = (
        f"(vnnlib-version <2.0>)\n(declare-network N (declare-input X real [{n_in}]) "
        f"(declare-output Y real [{n_out}]))\n"
    )
    return header + body


@pytest.mark.parametrize("prop", range(1, 11))
def test_acas_properties_read_the_same_in_both_versions(prop):
    folder = benchmarks_dir() / "acasxu"
    path = folder / f"prop_{prop}.vnnlib"
    if not (path.exists() or Path(str(path) + ".gz").exists()):
        pytest.skip(f"ACAS Xu data absent ({folder})")
    old = load_vnnlib(path)
    text = path.read_text() if path.exists() else None
    if text is None:
        import gzip

        text = gzip.decompress(Path(str(path) + ".gz").read_bytes()).decode()
    new = query_spec(_as_vnnlib2(text), None)
    assert new == old
    assert new == parse_vnnlib(text)
