"""Instance specialisation (:mod:`verifiNN.io.onnx.specialise`) and tabulation
(:mod:`verifiNN.io.onnx.tabulate`), and the front door :func:`verifiNN.io.load_instance`.

* A model whose slice starts come from input entries loads only once those entries
  are fixed, and then agrees with onnxruntime on the original model at random
  points of the box; without them it raises the typed
  :class:`NeedsConstantInputError` (naming the node), and a property that does not
  fix them gives a clear :class:`UnsupportedModelError`.
* When the free entries are only read through integer casts over a bounded box,
  the model is tabulated, and the table agrees with the original everywhere in
  the box (run by our loader and by onnxruntime).
* The element-level known masks follow the rules of the module docstring
  (moves, broadcasting, ``Where``, ``Pad``, shapes of data-dependent tensors).
* Benchmark data (slow): the carvana and cctsdb_yolo models load with one of their
  properties, agree with onnxruntime on 200 random points of the box, and CROWN
  bounds contain the sampled outputs.
"""

from __future__ import annotations

import csv
import gzip
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from verifiNN.bench import Instance, InstanceRunner
from verifiNN.bounds import CrownOptions, compute_bounds
from verifiNN.errors import ModelLoadError, UnsupportedModelError
from verifiNN.io import FixedEntries, NeedsConstantInputError, load_instance, load_onnx
from verifiNN.io.onnx.knowledge import evaluate_all, propagate
from verifiNN.io.onnx.specialise import specialise
from verifiNN.io.ort import onnxruntime_output

FLOAT, INT64 = TensorProto.FLOAT, TensorProto.INT64


def _node(op: str, inputs: list[str], output: str, **attrs) -> onnx.NodeProto:
    return helper.make_node(op, inputs, [output], name=f"{op}_{output}", **attrs)


def _model(nodes, x_shape, inits, out_type=FLOAT, opset: int = 13) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes,
        "special",
        [helper.make_tensor_value_info("X", FLOAT, x_shape)],
        [helper.make_tensor_value_info("Y", out_type, None)],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def window_model() -> onnx.ModelProto:
    """``X`` of 10 entries: a window of 3 of the first 8 starting at ``trunc(X[8])``, kept
    where above ``X[9]`` (the patch position and threshold read from the input)."""
    nodes = [
        _node("Slice", ["X", "zero", "eight", "axis"], "data"),
        _node("Gather", ["X", "at8"], "p"),
        _node("Cast", ["p"], "start", to=INT64),
        _node("Add", ["start", "three"], "end"),
        _node("Slice", ["data", "start", "end", "axis"], "window"),
        _node("Gather", ["X", "at9"], "c"),
        _node("Greater", ["window", "c"], "above"),
        _node("Cast", ["above"], "keep", to=FLOAT),
        _node("Mul", ["window", "keep"], "Y"),
    ]
    inits = {
        "zero": np.array([0], np.int64),
        "eight": np.array([8], np.int64),
        "axis": np.array([0], np.int64),
        "at8": np.array([8], np.int64),
        "at9": np.array([9], np.int64),
        "three": np.array([3], np.int64),
    }
    return _model(nodes, [10], inits)


def _save(path: Path, model: onnx.ModelProto) -> Path:
    path.write_bytes(model.SerializeToString())
    return path


def _session(model: onnx.ModelProto):
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def _box(lower, upper) -> FixedEntries:
    return FixedEntries(np.asarray(lower, np.float64), np.asarray(upper, np.float64))


def _agree(network, model, box: FixedEntries, count: int = 200, seed: int = 0) -> None:
    session = _session(model)
    rng = np.random.default_rng(seed)
    lower, upper = box.lower.ravel(), box.upper.ravel()
    name = session.get_inputs()[0].name
    shape = [d if isinstance(d, int) else 1 for d in session.get_inputs()[0].shape]
    for _ in range(count):
        x = lower + (upper - lower) * rng.random(lower.size)
        want = np.asarray(session.run(None, {name: x.astype(np.float32).reshape(shape)})[0])
        got = network.get_output(x)
        np.testing.assert_allclose(got, want.astype(np.float64).ravel(), rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------- fixed entries
def test_slice_starts_from_the_input_need_fixed_entries(tmp_path):
    path = _save(tmp_path / "window.onnx", window_model())
    with pytest.raises(NeedsConstantInputError, match=r"Slice_window.*needs constant input"):
        load_onnx(path)
    box = _box([-1] * 8 + [2.0, -0.5], [1] * 8 + [2.0, 0.5])
    network = load_onnx(path, fixed_inputs={"X": box})
    _agree(network, window_model(), box)
    # the counterexample re-check runs the original model, not the specialised one
    assert network.origin.onnx_model == window_model().SerializeToString()
    x = box.point()
    session = _session(window_model())
    want = session.run(None, {"X": x.astype(np.float32)})[0]
    np.testing.assert_allclose(onnxruntime_output(network, x), want, rtol=1e-6)


def test_fixing_the_wrong_entries_gives_a_clear_typed_error(tmp_path):
    path = _save(tmp_path / "window.onnx", window_model())
    free_start = FixedEntries.from_values(np.zeros(10), np.arange(10) != 8)
    with pytest.raises(NeedsConstantInputError, match="needs constant input"):
        load_onnx(path, fixed_inputs={"X": free_start})
    with pytest.raises(ModelLoadError, match="has 10 entries"):
        load_onnx(path, fixed_inputs={"X": _box(np.zeros(9), np.zeros(9))})
    with pytest.raises(ModelLoadError, match="no graph input named 'Z'"):
        load_onnx(path, fixed_inputs={"Z": _box(np.zeros(10), np.zeros(10))})


def test_every_entry_fixed_gives_a_constant_network(tmp_path):
    path = _save(tmp_path / "window.onnx", window_model())
    x = np.array([0.3, -0.2, 0.9, 0.1, -0.7, 0.4, 0.8, -0.1, 3.0, 0.0])
    network = load_onnx(path, fixed_inputs={"X": _box(x, x)})
    want = _session(window_model()).run(None, {"X": x.astype(np.float32)})[0]
    np.testing.assert_allclose(network.get_output(x), want, rtol=1e-6)


# ----------------------------------------------------------------- tables
def test_a_free_start_over_a_bounded_box_is_tabulated(tmp_path):
    path = _save(tmp_path / "window.onnx", window_model())
    data = np.array([0.3, -0.2, 0.9, 0.1, -0.7, 0.4, 0.8, -0.1])
    box = _box([*data, 0.0, 0.05], [*data, 4.5, 0.05])
    network = load_onnx(path, fixed_inputs={"X": box})
    _agree(network, window_model(), box, count=300)
    # the table is a valid ONNX model of its own, equal to the original on the box
    table = specialise(window_model(), {"X": box})
    assert len(table.graph.node) < len(window_model().graph.node) + 12
    original, tabulated = _session(window_model()), _session(table)
    for start in np.linspace(0.0, 4.5, 19):
        x = np.array([*data, start, 0.05], np.float32)
        np.testing.assert_allclose(
            tabulated.run(None, {"X": x})[0], original.run(None, {"X": x})[0], rtol=1e-6
        )


def test_a_lower_threshold_is_proved_by_intervals_on_a_table(tmp_path):
    path = _save(tmp_path / "window.onnx", window_model())
    data = np.array([0.3, -0.2, 0.9, 0.1, -0.7, 0.4, 0.8, -0.1])
    box = _box([*data, 0.0, -1.0], [*data, 5.9, -1.0])  # every window kept: Y = window
    network = load_onnx(path, fixed_inputs={"X": box})
    C = np.eye(3)
    result = compute_bounds(network, (box.lower, box.upper), C, "ibp")
    lows = [min(data[s + k] for s in range(6)) for k in range(3)]
    np.testing.assert_allclose(result.lower.numpy().ravel(), lows, atol=1e-6)


def test_tables_need_every_other_entry_fixed(tmp_path):
    path = _save(tmp_path / "window.onnx", window_model())
    box = _box([-1] * 8 + [0.0, 0.0], [1] * 8 + [4.5, 0.0])
    with pytest.raises(NeedsConstantInputError):
        load_onnx(path, fixed_inputs={"X": box})


# ----------------------------------------------------------- known masks
def _masks(nodes, inits, known, x_shape=(1, 6), opset: int = 13):
    model = _model(nodes, list(x_shape), inits, opset=opset)
    values = evaluate_all(model, {"X": np.linspace(-1, 1, int(np.prod(x_shape))).reshape(x_shape)})
    return propagate(model, {"X": np.asarray(known).reshape(x_shape)}, values)


def test_masks_follow_moves_broadcasts_and_where():
    known = [True, True, False, True, False, True]
    nodes = [
        _node("Transpose", ["X"], "t", perm=[1, 0]),
        _node("Slice", ["X", "s0", "s1", "ax"], "first"),  # X[:, :1], known
        _node("Add", ["X", "first"], "sum"),  # broadcast: known where X is
        _node("Pad", ["X", "pads"], "padded"),  # padding constants are known
        _node("Greater", ["X", "zero"], "cond"),
        _node("Where", ["cond", "X", "zero"], "Y"),
    ]
    inits = {
        "s0": np.array([0], np.int64),
        "s1": np.array([1], np.int64),
        "ax": np.array([1], np.int64),
        "pads": np.array([0, 2, 0, 1], np.int64),
        "zero": np.float32(0.0),
    }
    know = _masks(nodes, inits, known)
    assert know.masks["t"].ravel().tolist() == known
    assert know.full("first")
    assert know.masks["sum"].ravel().tolist() == known
    assert know.masks["padded"].ravel().tolist() == [True, True, *known, True]
    # Where: X = linspace(-1, 1): entries 0-2 pick the constant 0, entries 3-5 pick X
    assert know.masks["Y"].ravel().tolist() == [True, True, False, True, False, True]


def test_a_shape_that_depends_on_unknown_values_is_unknown():
    nodes = [
        _node("Gather", ["X", "at"], "p", axis=1),
        _node("Cast", ["p"], "start", to=INT64),
        _node("Reshape", ["start", "flat"], "starts"),
        _node("Slice", ["X", "starts", "end", "ax"], "tail"),
        _node("Shape", ["tail"], "shape"),
        _node("Shape", ["X"], "Y"),
    ]
    inits = {
        "at": np.array([0], np.int64),
        "flat": np.array([1], np.int64),
        "end": np.array([6], np.int64),
        "ax": np.array([1], np.int64),
    }
    unknown = _masks(nodes, inits, [False, True, True, True, True, True])
    assert not unknown.masks["shape"].any() and unknown.full("Y")
    fixed = _masks(nodes, inits, [True, False, False, False, False, False])
    assert fixed.full("shape") and not fixed.masks["tail"].any()


# ------------------------------------------------------------ front door
def _vnnlib(path: Path, lower, upper, unsafe: str) -> Path:
    lines = [f"(declare-const X_{i} Real)" for i in range(len(lower))]
    lines += ["(declare-const Y_0 Real)", "(declare-const Y_1 Real)", "(declare-const Y_2 Real)"]
    for i, (lo, hi) in enumerate(zip(lower, upper)):
        lines += [f"(assert (>= X_{i} {lo}))", f"(assert (<= X_{i} {hi}))"]
    lines.append(f"(assert {unsafe})")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_load_instance_specialises_only_when_needed(tmp_path):
    model = _save(tmp_path / "window.onnx", window_model())
    prop = _vnnlib(tmp_path / "p.vnnlib", [-1] * 8 + [1.5, 0.0], [1] * 8 + [1.5, 0.2], "(>= Y_0 5)")
    network, spec = load_instance(model, prop)
    assert spec.num_inputs == 10 and network.output_size == 3
    _agree(network, window_model(), _box(*[[-1] * 8 + [1.5, 0.0], [1] * 8 + [1.5, 0.2]]))
    loose = _vnnlib(tmp_path / "q.vnnlib", [-1] * 10, [1] * 8 + [2, 1], "(>= Y_0 5)")
    with pytest.raises(UnsupportedModelError, match="after fixing the 0 input entries"):
        load_instance(model, loose)


def test_the_bench_runner_answers_specialised_instances(tmp_path):
    _save(tmp_path / "window.onnx", window_model())
    _vnnlib(tmp_path / "unsat.vnnlib", [-1] * 8 + [2.0, 2.0], [1] * 8 + [2.0, 2.0], "(>= Y_0 5)")
    _vnnlib(tmp_path / "sat.vnnlib", [-1] * 8 + [2.0, -2.0], [1] * 8 + [2.0, -2.0], "(>= Y_0 0.5)")
    runner = InstanceRunner(tmp_path, max_timeout=20)
    answers = {
        name: runner(Instance("window.onnx", f"{name}.vnnlib", 20)) for name in ("unsat", "sat")
    }
    assert {k: r.result for k, r in answers.items()} == {"unsat": "unsat", "sat": "sat"}
    assert answers["sat"].counterexample is not None


# ---------------------------------------------------------- benchmark data
def _first(folder: Path, model: str) -> Path:
    with open(folder / "instances.csv", newline="") as handle:
        for row in csv.reader(handle):
            if row and row[0] == f"onnx/{model}":
                return folder / row[1]
    raise AssertionError(f"no instance of {model}")


def _original(path: Path) -> onnx.ModelProto:
    return onnx.load_model_from_string(gzip.open(str(path) + ".gz").read())


def _sub_box(spec, free: int, width: float = 1.0) -> FixedEntries:
    """The instance's box with its first ``free`` varying entries free (their range
    narrowed to ``width`` of it about the centre), the others fixed at the centre: a
    corner of a picture, as CROWN on wide convolutions costs per unstable neuron."""
    box = spec.bounding_box()
    lower, upper = box.lower.copy(), box.upper.copy()
    centre, varying = (lower + upper) / 2, np.flatnonzero(lower < upper)
    lower[varying[free:]] = upper[varying[free:]] = centre[varying[free:]]
    moving = varying[:free]
    lower[moving] = centre[moving] - width * (centre[moving] - lower[moving])
    upper[moving] = centre[moving] + width * (upper[moving] - centre[moving])
    return FixedEntries(lower, upper)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("folder", "model"),
    [
        ("carvana_unet_2022", "unet_simp_small.onnx"),
        ("carvana_unet_2022", "unet_upsample_small.onnx"),
        ("cctsdb_yolo", "patch-1.onnx"),
        ("cctsdb_yolo", "patch-3.onnx"),
    ],
)
def test_benchmark_models_load_and_agree_with_onnxruntime(benchmark_data, folder, model):
    root = benchmark_data / folder
    path = root / "onnx" / model
    network, spec = load_instance(path, _first(root, model))
    box = spec.bounding_box()
    _agree(network, _original(path), FixedEntries(box.lower, box.upper), count=200)
    # CROWN contains sampled outputs where two entries move (yolo's patch position, two
    # corner pixels of carvana; of the upsampling U-Net, whose CROWN pass costs minutes
    # per unstable pixel, over a thousandth of their range), IBP on the whole box too
    rng = np.random.default_rng(1)
    small = _sub_box(spec, free=2, width=1e-3 if "upsample" in model else 1.0)
    C = np.eye(network.output_size)
    crown = CrownOptions(chunk_rows=256)  # bounded memory on 128-channel layers
    bounds = compute_bounds(network, (small.lower, small.upper), C, "crown", options=crown)
    whole = compute_bounds(network, (box.lower, box.upper), C, "ibp")
    for _ in range(200):
        x = small.lower + (small.upper - small.lower) * rng.random(small.lower.size)
        y = network.get_output(x)
        assert np.all(bounds.lower.numpy().ravel() <= y + 1e-6)
        assert np.all(y <= bounds.upper.numpy().ravel() + 1e-6)
        assert np.all(whole.lower.numpy().ravel() <= y + 1e-6)
        assert np.all(y <= whole.upper.numpy().ravel() + 1e-6)
