"""Constant folding: ONNX nodes evaluated at load time when all their inputs are constant.

Any node whose inputs are all constants is evaluated by ONNX's own reference
implementation (:class:`onnx.reference.ReferenceEvaluator`, one node at a
time), so folding follows the operator specification rather than a local
re-implementation; :func:`folds` says which operator types it can evaluate.
Two folders of our own remain, where the reference cannot serve:

* ``Shape`` and ``Size`` fold whatever their input (shapes are static), so the
  ``Shape -> Gather -> Concat -> Reshape`` chains of exported models become
  constants before any conversion, even when they start from data;
* ``Constant`` is read directly (the most frequent node, cheaper than an
  evaluator).

Nondeterministic operators (``RandomNormal``, ``Bernoulli``, training-mode
``Dropout``, ...) and control flow (``If``, ``Loop``, ``Scan``) are never
folded.
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np
import onnx
from onnx import helper, numpy_helper
from onnx.reference import ReferenceEvaluator
from onnx.reference.ops import load_op

from verifiNN.io.onnx.graph import Converter, NodeContext, Value

__all__ = ["FOLDERS", "NEVER_FOLDED", "SHAPE_OPS", "evaluate", "fold", "folds"]

NEVER_FOLDED = frozenset(
    {
        "Bernoulli",
        "Multinomial",
        "RandomNormal",
        "RandomNormalLike",
        "RandomUniform",
        "RandomUniformLike",
        "If",
        "Loop",
        "Scan",
        "SequenceMap",
    }
)
"""Operators never evaluated at load time (random or control flow)."""


# -------------------------------------------------------------------- folders
def _fold_constant(ctx: NodeContext) -> list[Value]:
    for name in ("value", "value_float", "value_floats", "value_int", "value_ints"):
        value = ctx.attr(name)
        if value is None:
            continue
        if name == "value":
            return [numpy_helper.to_array(value)]
        return [np.array(value, dtype=np.float32 if "float" in name else np.int64)]
    return _fold_by_reference(ctx)


def _fold_shape(ctx: NodeContext) -> list[Value]:
    value = ctx.inputs[0]
    shape = np.array(value.shape, dtype=np.int64)  # type: ignore[union-attr]
    if ctx.node.op_type == "Size":
        return [np.array(math.prod(shape), dtype=np.int64)]
    start, end = int(ctx.attr("start", 0)), ctx.attr("end")
    return [shape[start : None if end is None else int(end)]]


def evaluate(node: onnx.NodeProto, feeds: dict[str, np.ndarray], opset: int) -> list:
    """``node``'s outputs on ``feeds`` (its inputs by name), by ONNX's reference
    implementation of the default-domain ``opset``.

    Raises:
        Exception: whatever the reference raises on bad inputs.
    """
    names = list(dict.fromkeys(i for i in node.input if i))
    graph = helper.make_graph(
        [node],
        "fold",
        [onnx.ValueInfoProto(name=name) for name in names],
        [onnx.ValueInfoProto(name=name) for name in node.output if name],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    outputs = iter(ReferenceEvaluator(model).run(None, {name: feeds[name] for name in names}))
    return [next(outputs) if name else None for name in node.output]


def _fold_by_reference(ctx: NodeContext) -> list[Value]:
    """Evaluate the node on its constant inputs with ONNX's reference implementation."""
    node = ctx.node
    if node.op_type == "Dropout" and ctx.has(2) and ctx.const(2, "training_mode").any():
        raise ctx.unsupported("training_mode=True (random dropout) cannot be folded")
    feeds = {name: value for name, value in zip(node.input, ctx.inputs) if name}
    try:
        outputs = evaluate(node, feeds, ctx.opset)  # type: ignore[arg-type]
    except Exception as exc:  # the reference raises whatever numpy raises
        raise ctx.invalid(f"cannot be evaluated on its constant inputs ({exc})") from None
    return [None if out is None else np.asarray(out) for out in outputs]


FOLDERS: dict[str, Converter] = {
    "Constant": _fold_constant,
    "Shape": _fold_shape,
    "Size": _fold_shape,
}
"""Our own folders: op type -> evaluation (every other op goes to the reference)."""

SHAPE_OPS = {"Shape", "Size"}  # constant whatever their input


@cache
def folds(op_type: str, opset: int) -> bool:
    """Whether nodes of ``op_type`` (default domain) are folded when their inputs are constant."""
    if op_type in FOLDERS:
        return True
    if op_type in NEVER_FOLDED:
        return False
    try:
        load_op("", op_type, opset)
    except Exception:  # not implemented by the reference (or no such operator)
        return False
    return True


def fold(ctx: NodeContext) -> list[Value]:
    """The outputs of a node whose inputs are constants (or a ``Shape``/``Size`` node)."""
    folder = FOLDERS.get(ctx.node.op_type, _fold_by_reference)
    return folder(ctx)
