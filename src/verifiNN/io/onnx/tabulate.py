"""Tabulation: a model that reads its free input entries only through integer casts, as a table.

Some properties leave free a few entries that the model only *truncates* to
integers: a patch position in ``[0, 62]`` read as ``Cast(x, to=INT64)`` and
used as slice starts. Fixing the other entries
(:func:`verifiNN.io.onnx.specialise.specialise`) does not make those slices
constant, but the model takes finitely many values: one per combination of
the truncated entries (a *cell*). :func:`tabulate` finds such models and
replaces them by the table of their outputs.

Conditions (else :func:`tabulate` gives ``None`` and the specialised model
stands, whose loading names the node that still needs constants):

1. the *cuts*: casts to an integer type whose input is not fully known and
   whose unknown elements are copies of graph-input entries (through moves
   only: ``Gather``, ``Slice``, ``Reshape``, ...), the *cut entries*;
2. every cut entry has a finite box ``[l, u]``; its cells are the integers
   ``trunc(l), ..., trunc(u)``, at most :data:`MAX_CELLS` combinations;
3. the knowledge propagation of :mod:`~verifiNN.io.onnx.knowledge`, with the
   cuts' outputs taken as known, makes every graph output fully known.

By the soundness of that propagation, (3) means the outputs are a function of
the fixed entries and the cuts' values; on a cell every cut entry truncates to
the same integer, so the outputs are constant there. The table holds, per
cell, the original model's outputs computed by onnxruntime at the point of the
cell nearest its integer (``clip(k, l, u)``, whose truncation is ``k``; a
point whose rounding to the input's type leaves the cell is refused).

The table as an ONNX model (same input and outputs), with ``[c]`` the cell
index and ``e`` the cut entries::

    t_e = Cast(Gather(Reshape(X, [-1]), [e]), to=INT64)
    hot_e = Cast(Equal(t_e, values_e), DOUBLE)        # one-hot over entry e's integers
    Y = Reshape(ref + sum_c (T[c] - ref) prod_e hot_e[c_e])

(``T[c]``: the outputs on cell ``c``), the sum contracted one entry at a time:
the last by a product with a constant matrix, each other by a product of data
with its one-hot and a sum, so every intermediate stays small (two entries of
63 integers: 63 products, not 3969). ``ref`` is the smallest output over the
cells, so that ``Y >= ref`` follows from ``hot >= 0`` alone (an interval bound
proves a lower threshold at once), and every product is exact (one ``hot_e``
entry is 1, the others 0).
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Mapping

import numpy as np
import onnx
from onnx import helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from verifiNN.errors import UnsupportedModelError
from verifiNN.io.onnx.integer import INTEGER_TYPES
from verifiNN.io.onnx.knowledge import (
    MOVE_OPS,
    Knowledge,
    apply_move,
    graph_inputs,
    opset_of,
    propagate,
)

__all__ = ["MAX_CELLS", "MAX_TABLE_ENTRIES", "tabulate"]

logger = logging.getLogger(__name__)

MAX_CELLS = 1 << 14
"""Most cells (combinations of the cut entries' integers) a model is tabulated over."""
MAX_TABLE_ENTRIES = 1 << 24
"""Most table entries (cells times output entries)."""

_PREFIX = "table"


# ------------------------------------------------------------------ origins
def _origins(model: onnx.ModelProto, know: Knowledge, values) -> dict[str, np.ndarray]:
    """Tensors whose elements copy graph-input entries: the flat index of the entry each
    element copies (-1: not a copy), through moves only."""
    (x,) = graph_inputs(model)
    origins = {x.name: np.arange(values[x.name].size, dtype=np.int64).reshape(values[x.name].shape)}
    opset = opset_of(model)
    for node in model.graph.node:
        if node.op_type not in MOVE_OPS:
            continue
        data = MOVE_OPS[node.op_type] or tuple(range(len(node.input)))
        names = [node.input[i] for i in data if i < len(node.input) and node.input[i]]
        if not any(name in origins for name in names):
            continue
        arrays = {
            name: origins.get(name, np.full(values[name].shape, -1, np.int64)) for name in names
        }
        moved = apply_move(node, arrays, know, values, opset, np.array(-1, np.int64))
        for name, out in zip(node.output, moved or []):
            if name and out is not None and out.shape == values[name].shape:
                origins[name] = out
    return origins


def _cast_target(node: onnx.NodeProto) -> int | None:
    for a in node.attribute:
        if a.name == "to":
            return int(a.i)
    return None


def _cuts(model: onnx.ModelProto, know: Knowledge, values) -> tuple[list[str], list[int]]:
    """The cuts' outputs and the sorted cut entries (condition 1 of the module docstring)."""
    origins = _origins(model, know, values)
    outputs, entries = [], set()
    for node in model.graph.node:
        if node.op_type != "Cast" or _cast_target(node) not in INTEGER_TYPES:
            continue
        name = node.input[0]
        if know.full(name) or name not in origins:
            continue
        unknown = origins[name][~know.masks[name]]
        if unknown.size and bool(np.all(unknown >= 0)):
            outputs.append(node.output[0])
            entries.update(int(e) for e in unknown)
    return outputs, sorted(entries)


# -------------------------------------------------------------------- cells
def _cells(entries: list[int], lower: np.ndarray, upper: np.ndarray) -> list[np.ndarray] | None:
    """Each cut entry's integers, or ``None`` when a box is unbounded or there are too many."""
    columns = []
    for e in entries:
        low, high = float(lower.flat[e]), float(upper.flat[e])
        if not (math.isfinite(low) and math.isfinite(high)):
            return None
        columns.append(np.arange(math.trunc(low), math.trunc(high) + 1, dtype=np.int64))
    if math.prod(len(c) for c in columns) > MAX_CELLS:
        return None
    return columns


def _runner(model: onnx.ModelProto):
    """``feeds -> outputs`` of the original model (onnxruntime, else the reference)."""
    try:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.log_severity_level = 3
        session = ort.InferenceSession(
            model.SerializeToString(), options, providers=["CPUExecutionProvider"]
        )
        return lambda feeds: session.run(None, feeds)
    except Exception as exc:  # onnxruntime refuses some models: the reference is slower
        logger.info("onnxruntime cannot run the model (%s); tabulating with the reference", exc)
        reference = ReferenceEvaluator(model)
        return lambda feeds: reference.run(None, feeds)


def _table(
    model: onnx.ModelProto,
    entries: list[int],
    columns: list[np.ndarray],
    lower: np.ndarray,
    upper: np.ndarray,
    point: np.ndarray,
    source: str,
) -> tuple[np.ndarray, list[np.ndarray]]:
    """``(cells, outputs)``: the cells' integers ``(N, E)`` and per graph output ``(N, size)``."""
    (x,) = graph_inputs(model)
    dtype = np.dtype(helper.tensor_dtype_to_np_dtype(x.type.tensor_type.elem_type))
    run = _runner(model)
    cells = np.array(list(itertools.product(*columns)), np.int64).reshape(-1, len(entries))
    rows: list[list[np.ndarray]] = []
    flat = point.reshape(-1).astype(np.float64)
    for cell in cells:
        sample = flat.copy()
        for e, k in zip(entries, cell):
            sample[e] = min(max(float(k), float(lower.flat[e])), float(upper.flat[e]))
        typed = sample.astype(dtype)
        if not np.array_equal(np.trunc(typed[entries].astype(np.float64)), cell):
            raise UnsupportedModelError(
                f"{source}: cell {cell.tolist()} of input entries {entries} has no point of the "
                f"input's type ({dtype}) in the property's box"
            )
        outs = run({x.name: typed.reshape(point.shape)})
        rows.append([np.asarray(o, np.float64).reshape(-1) for o in outs])
    return cells, [np.stack([r[k] for r in rows]) for k in range(len(model.graph.output))]


# -------------------------------------------------------------------- model
def _init(graph: onnx.GraphProto, name: str, value: np.ndarray) -> str:
    graph.initializer.append(numpy_helper.from_array(np.asarray(value), name))
    return name


def _node(graph: onnx.GraphProto, op: str, inputs: list[str], output: str, **attrs) -> str:
    graph.node.append(helper.make_node(op, inputs, [output], name=output, **attrs))
    return output


def _one_hots(graph: onnx.GraphProto, x: str, entries: list[int], columns) -> list[str]:
    """Per cut entry ``e``: ``Cast(Equal(trunc(x[e]), column_e), DOUBLE)``, its cell one-hot."""
    shape = _init(graph, f"{_PREFIX}/shape", np.array([-1], np.int64))
    flat = _node(graph, "Reshape", [x, shape], f"{_PREFIX}/flat")
    hots = []
    for k, (e, column) in enumerate(zip(entries, columns)):
        index = _init(graph, f"{_PREFIX}/index{k}", np.array([e], np.int64))
        picked = _node(graph, "Gather", [flat, index], f"{_PREFIX}/entry{k}")
        cast = _node(graph, "Cast", [picked], f"{_PREFIX}/trunc{k}", to=onnx.TensorProto.INT64)
        cells = _init(graph, f"{_PREFIX}/cells{k}", np.asarray(column, np.int64))
        equal = _node(graph, "Equal", [cast, cells], f"{_PREFIX}/equal{k}")
        hots.append(_node(graph, "Cast", [equal], f"{_PREFIX}/hot{k}", to=onnx.TensorProto.DOUBLE))
    return hots


def _contract(
    graph: onnx.GraphProto,
    hots: list[str],
    sizes: list[int],
    steps: np.ndarray,
    stem: str,
    opset: int,
) -> str:
    """``sum_c steps[c] prod_e hot_e[c_e]`` (``steps``: ``(n_1, ..., n_E, M)``), the last entry
    by a product with a constant matrix, the others one at a time by a product of data and a
    sum (sizes shrink at each step)."""
    last = len(sizes) - 1
    matrix = np.moveaxis(steps, last, 0).reshape(sizes[last], -1)
    value = _node(
        graph, "MatMul", [hots[last], _init(graph, f"{stem}/steps", matrix)], f"{stem}/v{last}"
    )
    width = steps.shape[-1]
    for k in range(last - 1, -1, -1):
        rows = int(np.prod(sizes[:k], dtype=np.int64))
        grid = _init(graph, f"{stem}/grid{k}", np.array([rows, sizes[k], width], np.int64))
        shaped = _node(graph, "Reshape", [value, grid], f"{stem}/grid{k}/v")
        column = _init(graph, f"{stem}/column{k}", np.array([1, sizes[k], 1], np.int64))
        hot = _node(graph, "Reshape", [hots[k], column], f"{stem}/hot{k}")
        terms = _node(graph, "Mul", [shaped, hot], f"{stem}/terms{k}")
        value = _sum_axis1(graph, terms, f"{stem}/v{k}", opset)
    return value


def _sum_axis1(graph: onnx.GraphProto, x: str, output: str, opset: int) -> str:
    """``ReduceSum`` over axis 1 (its axes an input from opset 13 on)."""
    if opset >= 13:
        axes = _init(graph, f"{output}/axes", np.array([1], np.int64))
        return _node(graph, "ReduceSum", [x, axes], output, keepdims=0)
    return _node(graph, "ReduceSum", [x], output, axes=[1], keepdims=0)


def _table_model(
    model: onnx.ModelProto,
    entries: list[int],
    columns,
    tables: list[np.ndarray],
    shapes: list[tuple[int, ...]],
) -> onnx.ModelProto:
    """The table as an ONNX model (the module docstring's formula)."""
    (x,) = graph_inputs(model)
    name = f"{model.graph.name or 'model'}_table"
    graph = helper.make_graph([], name, [x], list(model.graph.output))
    hots = _one_hots(graph, x.name, entries, columns)
    sizes = [len(c) for c in columns]
    for out, table, dims in zip(model.graph.output, tables, shapes):
        ref = table.min(0)
        stem = f"{_PREFIX}/{out.name}"
        steps = (table - ref).reshape(*sizes, -1)
        taken = _contract(graph, hots, sizes, steps, stem, opset_of(model))
        flat = _node(
            graph,
            "Reshape",
            [taken, _init(graph, f"{stem}/width", np.array([-1]))],
            f"{stem}/taken",
        )
        added = _node(graph, "Add", [flat, _init(graph, f"{stem}/ref", ref)], f"{stem}/flat")
        shape = _init(graph, f"{stem}/dims", np.array(dims, np.int64))
        shaped = _node(graph, "Reshape", [added, shape], f"{stem}/double")
        _node(graph, "Cast", [shaped], out.name, to=out.type.tensor_type.elem_type)
    table_model = helper.make_model(graph, opset_imports=list(model.opset_import))
    table_model.ir_version = model.ir_version
    return table_model


def tabulate(
    model: onnx.ModelProto,
    lower: Mapping[str, np.ndarray],
    upper: Mapping[str, np.ndarray],
    values: Mapping[str, np.ndarray],
    source: str = "<onnx model>",
) -> onnx.ModelProto | None:
    """The table of ``model`` over the integer cells of its cut entries, or ``None`` when the
    module docstring's conditions do not hold.

    Args:
        model: the original model (one graph input).
        lower, upper: per graph input, its box (full shape); fixed entries have
            ``lower == upper``.
        values: every tensor at a point of the box
            (:func:`~verifiNN.io.onnx.knowledge.evaluate_all`).
        source: how messages name the model.

    Raises:
        UnsupportedModelError: a cell that the input's type cannot reach inside the box.
    """
    inputs = graph_inputs(model)
    if len(inputs) != 1:
        return None
    name = inputs[0].name
    masks = {name: np.asarray(lower[name]) == np.asarray(upper[name])}
    know = propagate(model, masks, values)
    cuts, entries = _cuts(model, know, values)
    if not cuts:
        return None
    columns = _cells(entries, np.asarray(lower[name]), np.asarray(upper[name]))
    if columns is None:
        logger.info("%s: entries %s have too many integer cells to tabulate", source, entries)
        return None
    told = propagate(model, masks, values, assumed=cuts)
    if not all(told.full(o.name) for o in model.graph.output):
        return None
    sizes = sum(int(np.asarray(values[o.name]).size) for o in model.graph.output)
    if math.prod(len(c) for c in columns) * sizes > MAX_TABLE_ENTRIES:
        return None
    point = np.where(masks[name], lower[name], values[name].astype(np.float64))
    cells, tables = _table(
        model, entries, columns, np.asarray(lower[name]), np.asarray(upper[name]), point, source
    )
    logger.info("%s: tabulated over %d cells of input entries %s", source, len(cells), entries)
    shapes = [tuple(np.asarray(values[o.name]).shape) for o in model.graph.output]
    return _table_model(model, entries, columns, tables, shapes)
