"""Element-level knowledge of an ONNX model's tensors when some input entries are fixed.

The engine of :mod:`verifiNN.io.onnx.specialise` (see its docstring for the rules and
their soundness): :func:`evaluate_all` evaluates every tensor at one point,
:func:`propagate` gives every tensor a known mask, :func:`replace_known` turns the
fully known tensors into initializers.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from verifiNN.errors import ModelLoadError
from verifiNN.io.onnx.folding import NEVER_FOLDED, SHAPE_OPS, evaluate

__all__ = [
    "ELEMENTWISE_OPS",
    "MOVE_OPS",
    "SHAPE_INPUTS",
    "Knowledge",
    "apply_move",
    "evaluate_all",
    "graph_inputs",
    "opset_of",
    "propagate",
    "replace_known",
]

logger = logging.getLogger(__name__)


# -------------------------------------------------------------- which ops
MOVE_OPS: dict[str, tuple[int, ...]] = {
    "Identity": (0,),
    "Dropout": (0,),
    "Reshape": (0,),
    "Flatten": (0,),
    "Transpose": (0,),
    "Squeeze": (0,),
    "Unsqueeze": (0,),
    "Expand": (0,),
    "Tile": (0,),
    "Gather": (0,),
    "GatherElements": (0,),
    "GatherND": (0,),
    "Slice": (0,),
    "Concat": (),  # every input
    "Split": (0,),
    "Pad": (0,),
    "ScatterND": (0, 2),
    "ScatterElements": (0, 2),
    "DepthToSpace": (0,),
    "SpaceToDepth": (0,),
}
"""Operators that only move, select or repeat entries: op type -> its data inputs (the
others are indices, shapes or pads)."""

ELEMENTWISE_OPS = frozenset(
    {
        "Add",
        "Sub",
        "Mul",
        "Div",
        "Pow",
        "Max",
        "Min",
        "Sum",
        "Mean",
        "Mod",
        "Equal",
        "Greater",
        "Less",
        "GreaterOrEqual",
        "LessOrEqual",
        "And",
        "Or",
        "Xor",
        "Not",
        "Abs",
        "Neg",
        "Relu",
        "LeakyRelu",
        "Sigmoid",
        "Tanh",
        "Exp",
        "Log",
        "Sqrt",
        "Reciprocal",
        "Floor",
        "Ceil",
        "Round",
        "Sign",
        "Erf",
        "Sin",
        "Cos",
        "Tan",
        "Asin",
        "Acos",
        "Atan",
        "Sinh",
        "Cosh",
        "Asinh",
        "Acosh",
        "Atanh",
        "Softplus",
        "Softsign",
        "Elu",
        "Selu",
        "Celu",
        "HardSigmoid",
        "HardSwish",
        "Mish",
        "IsNaN",
        "IsInf",
        "Clip",
        "PRelu",
        "BitShift",
        "ThresholdedRelu",
        "Where",
        "Gelu",
    }
)
"""Operators whose every output element depends only on the broadcast input elements at
its position (``Clip``'s bounds and ``PRelu``'s slopes broadcast too)."""

_SHAPE_FROM_SHAPES = ELEMENTWISE_OPS | frozenset(
    {
        "Conv",
        "ConvTranspose",
        "MatMul",
        "Gemm",
        "MaxPool",
        "AveragePool",
        "GlobalAveragePool",
        "GlobalMaxPool",
        "LpPool",
        "BatchNormalization",
        "InstanceNormalization",
        "LayerNormalization",
        "LRN",
        "Softmax",
        "LogSoftmax",
        "Hardmax",
        "Flatten",
        "Transpose",
        "Identity",
        "Cast",
        "CastLike",
        "Dropout",
        "Concat",
        "Gather",
        "GatherElements",
        "GatherND",
        "ScatterND",
        "ScatterElements",
        "ArgMax",
        "ArgMin",
        "Einsum",
        "DepthToSpace",
        "SpaceToDepth",
        "CumSum",
        "Shape",
        "Size",
    }
)

SHAPE_INPUTS: dict[str, tuple[int, ...]] = {
    "Reshape": (1,),
    "Expand": (1,),
    "Tile": (1,),
    "Slice": (1, 2, 3, 4),
    "Pad": (1, 3),
    "ConstantOfShape": (0,),
    "Range": (0, 1, 2),
    "Resize": (1, 2, 3),
    "Upsample": (1,),
    "OneHot": (1,),
    "TopK": (1,),
    "Squeeze": (1,),
    "Unsqueeze": (1,),
    "Split": (1,),
    "ReduceSum": (1,),
    "ReduceMean": (1,),
    "ReduceMax": (1,),
    "ReduceMin": (1,),
    "ReduceProd": (1,),
    "ReduceL1": (1,),
    "ReduceL2": (1,),
    "ReduceLogSumExp": (1,),
    "ReduceSumSquare": (1,),
}
"""Operators whose output shape depends on the *values* of some inputs (these), beyond the
input shapes; the ones of :data:`_SHAPE_FROM_SHAPES` depend on input shapes only, any
other on everything."""


# ------------------------------------------------------------- evaluation
def opset_of(model: onnx.ModelProto) -> int:
    versions = [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")]
    return versions[0] if versions else 1


def graph_inputs(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    constants = {t.name for t in model.graph.initializer}
    return [v for v in model.graph.input if v.name not in constants]


def _input_dtype(value: onnx.ValueInfoProto) -> np.dtype:
    return np.dtype(helper.tensor_dtype_to_np_dtype(value.type.tensor_type.elem_type))


def _all_outputs(model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[str]]:
    names = list(dict.fromkeys(o for n in model.graph.node for o in n.output if o))
    exposed = onnx.ModelProto()
    exposed.CopyFrom(model)
    del exposed.graph.output[:]
    exposed.graph.output.extend(onnx.ValueInfoProto(name=name) for name in names)
    return exposed, names


def evaluate_all(model: onnx.ModelProto, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every node output of ``model`` at ``feeds`` (graph input name -> value, cast to the
    input's type), by onnxruntime, or ONNX's reference evaluator when onnxruntime refuses.

    Raises:
        ModelLoadError: neither can evaluate the model.
    """
    exposed, names = _all_outputs(model)
    typed = {v.name: np.asarray(feeds[v.name]).astype(_input_dtype(v)) for v in graph_inputs(model)}
    try:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.log_severity_level = 3
        session = ort.InferenceSession(
            exposed.SerializeToString(), options, providers=["CPUExecutionProvider"]
        )
        values = session.run(names, typed)
    except Exception as exc:  # onnxruntime rejects some models: the reference is slower
        logger.info("onnxruntime cannot evaluate the model (%s); using the reference", exc)
        try:
            values = ReferenceEvaluator(model).run(names, typed)
        except Exception as exc2:
            raise ModelLoadError(f"cannot evaluate the model to specialise it: {exc2}") from None
    out = {name: np.asarray(v) for name, v in zip(names, values)}
    out.update(typed)
    out.update({t.name: numpy_helper.to_array(t) for t in model.graph.initializer})
    return out


# ------------------------------------------------------------ propagation
@dataclass
class Knowledge:
    """Per tensor: its known mask and whether its shape is known (see the module docstring)."""

    masks: dict[str, np.ndarray] = field(default_factory=dict)
    shapes: dict[str, bool] = field(default_factory=dict)

    def full(self, name: str) -> bool:
        """Whether every element of ``name`` is known (the empty name: an absent input)."""
        return name == "" or bool(self.masks[name].all())

    def set(self, name: str, mask: np.ndarray, shape_known: bool) -> None:
        self.masks[name] = mask
        self.shapes[name] = shape_known or bool(mask.all())


def _has_subgraph(node: onnx.NodeProto) -> bool:
    return any(
        a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in node.attribute
    )


def _broadcast_and(masks: Sequence[np.ndarray], shape: tuple[int, ...]) -> np.ndarray:
    out = np.ones(shape, bool)
    for mask in masks:
        out &= np.broadcast_to(mask, shape)
    return out


def _where_mask(node, know: Knowledge, values, shape) -> np.ndarray:
    cond, a, b = node.input
    take_a = np.broadcast_to(values[cond].astype(bool), shape)
    masks = [np.broadcast_to(know.masks[name], shape) for name in (a, b)]
    picked = np.where(take_a, masks[0], masks[1])
    return np.broadcast_to(know.masks[cond], shape) & picked


def apply_move(
    node: onnx.NodeProto,
    arrays: Mapping[str, np.ndarray],
    know: Knowledge,
    values: Mapping[str, np.ndarray],
    opset: int,
    fill: np.ndarray,
) -> list[np.ndarray] | None:
    """A move (:data:`MOVE_OPS`) applied to per-element ``arrays`` of its data inputs
    (known masks, or which input entry each element copies), padding with ``fill``.

    Returns ``None`` when an index or shape input is not fully known or the reference
    cannot run the move on such arrays.
    """
    data = MOVE_OPS[node.op_type] or tuple(range(len(node.input)))
    feeds = {}
    for i, name in enumerate(node.input):
        if not name:
            continue
        if i in data:
            feeds[name] = arrays[name]
        elif node.op_type == "Pad" and i == 2:
            feeds[name] = fill  # padding constants are the fill
        elif not know.full(name):
            return None
        else:
            feeds[name] = values[name]
    if node.op_type == "Pad" and len(node.input) < 3 and _pad_mode(node) == "constant":
        node = _with_fill(node, feeds, fill)
    try:
        outs = evaluate(node, feeds, opset)
    except Exception:  # the reference cannot run it on such arrays: nothing known
        return None
    return [None if o is None else np.asarray(o).astype(fill.dtype) for o in outs]


def _pad_mode(node: onnx.NodeProto) -> str:
    for a in node.attribute:
        if a.name == "mode":
            return a.s.decode()
    return "constant"


def _with_fill(node: onnx.NodeProto, feeds: dict, fill: np.ndarray) -> onnx.NodeProto:
    """A ``Pad`` that pads with its default 0 made to pad with ``fill``."""
    padded = onnx.NodeProto()
    padded.CopyFrom(node)
    if len(padded.input) == 1:  # opset < 11: pads and value are attributes
        for a in padded.attribute:
            if a.name == "value":
                padded.attribute.remove(a)
                break
        padded.attribute.append(helper.make_attribute("value", float(fill)))
        return padded
    name = f"{node.output[0]}/fill"
    padded.input.append(name)
    feeds[name] = fill
    return padded


def _shape_known(node: onnx.NodeProto, know: Knowledge) -> bool:
    inputs = [i for i in node.input if i]
    if node.op_type in SHAPE_INPUTS:
        params = SHAPE_INPUTS[node.op_type]
        return all(
            know.full(name) if i in params else know.shapes.get(name, False)
            for i, name in enumerate(node.input)
            if name
        )
    if node.op_type in _SHAPE_FROM_SHAPES:
        return all(know.shapes.get(name, False) for name in inputs)
    return all(know.full(name) for name in inputs)


def _node_masks(node, know: Knowledge, values, opset: int) -> list[np.ndarray | None]:
    """The known masks of one node's outputs."""
    outputs = [o for o in node.output]
    shapes = [values[o].shape if o in values else () for o in outputs]
    nothing = [np.zeros(s, bool) for s in shapes]
    op = node.op_type
    if op in NEVER_FOLDED or _has_subgraph(node) or node.domain not in ("", "ai.onnx"):
        return nothing
    if op in SHAPE_OPS:
        return [np.full(shapes[0], know.shapes.get(node.input[0], False))]
    if op in ("Cast", "CastLike"):
        return [know.masks[node.input[0]].copy()]
    if op == "Where":
        return [_where_mask(node, know, values, shapes[0])]
    if op in ELEMENTWISE_OPS:
        masks = [know.masks[i] for i in node.input if i]
        return [_broadcast_and(masks, shapes[0])]
    if op in MOVE_OPS:
        moved = apply_move(node, know.masks, know, values, opset, np.array(True))
        if moved is not None:
            return [
                m if m is not None and m.shape == s else z
                for m, s, z in zip(moved, shapes, nothing)
            ]
        return nothing
    if all(know.full(i) for i in node.input):
        return [np.ones(s, bool) for s in shapes]
    return nothing


def propagate(
    model: onnx.ModelProto,
    known_inputs: Mapping[str, np.ndarray],
    values: Mapping[str, np.ndarray],
    assumed: Sequence[str] = (),
) -> Knowledge:
    """Known masks of every tensor of ``model`` (see the module docstring).

    Args:
        model: the model (nodes in topological order, as ONNX requires).
        known_inputs: graph input name -> boolean mask of its fixed entries.
        values: every tensor's value at one point of the property (:func:`evaluate_all`).
        assumed: node outputs to treat as fully known whatever their inputs (a case split
            fixes them; see :mod:`verifiNN.io.onnx.tabulate`).
    """
    know = Knowledge()
    for t in model.graph.initializer:
        know.set(t.name, np.ones(values[t.name].shape, bool), True)
    for v in graph_inputs(model):
        know.set(v.name, np.asarray(known_inputs[v.name], bool).reshape(values[v.name].shape), True)
    forced = set(assumed)
    opset = opset_of(model)
    for node in model.graph.node:
        masks = _node_masks(node, know, values, opset)
        shape_known = _shape_known(node, know)
        for name, mask in zip(node.output, masks):
            if not name:
                continue
            if name in forced:
                mask = np.ones(values[name].shape, bool)
            know.set(name, mask, shape_known or name in forced)
    return know


# ------------------------------------------------------------ replacement
def _known_nodes(model: onnx.ModelProto, know: Knowledge) -> set[int]:
    """Positions of the nodes all of whose outputs are fully known."""
    return {
        k
        for k, node in enumerate(model.graph.node)
        if all(know.full(o) for o in node.output if o) and any(node.output)
    }


def _constant_output(model: onnx.ModelProto, name: str) -> list[onnx.NodeProto]:
    """Nodes making graph output ``name`` (an initializer ``name/value``) depend on the graph
    input: ``value + 0 * sum(input)`` (exact for every finite input)."""
    (x,) = (v.name for v in graph_inputs(model))
    total, zero = f"{name}/input_sum", f"{name}/zero"
    return [
        helper.make_node("ReduceSum", [x], [total], keepdims=0, name=total),
        helper.make_node("Mul", [total, f"{name}/zero_scale"], [zero], name=zero),
        helper.make_node("Add", [f"{name}/value", zero], [name], name=f"{name}/constant"),
    ]


def replace_known(
    model: onnx.ModelProto, know: Knowledge, values: Mapping[str, np.ndarray]
) -> onnx.ModelProto:
    """``model`` with every fully known node removed and the known tensors that the rest
    (or the graph outputs) read turned into initializers."""
    graph = model.graph
    known = _known_nodes(model, know)
    kept = [n for k, n in enumerate(graph.node) if k not in known]
    produced_known = {o for k in known for o in graph.node[k].output if o}
    read = {i for n in kept for i in n.input if i}
    outputs = {o.name for o in graph.output}
    out = onnx.ModelProto()
    out.CopyFrom(model)
    del out.graph.node[:]
    extra_nodes: list[onnx.NodeProto] = []
    for name in sorted(produced_known & (read | outputs)):
        value = np.asarray(values[name])
        if name in outputs and len(graph_inputs(model)) == 1:
            out.graph.initializer.append(numpy_helper.from_array(value, f"{name}/value"))
            scale = np.zeros((), value.dtype if value.dtype.kind == "f" else np.float32)
            out.graph.initializer.append(numpy_helper.from_array(scale, f"{name}/zero_scale"))
            extra_nodes += _constant_output(model, name)
            if name in read:
                out.graph.initializer.append(numpy_helper.from_array(value, name))
        else:
            out.graph.initializer.append(numpy_helper.from_array(value, name))
    out.graph.node.extend(extra_nodes + kept)
    return out
