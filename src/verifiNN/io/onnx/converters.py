"""Converters: ONNX operators whose values depend on the network input, into IR nodes.

:data:`CONVERTERS` maps each supported operator type to the function that adds
its IR nodes (a plain dict: other converter modules register theirs with
``CONVERTERS.update(...)``); :data:`CONSTANT_INPUTS` names the inputs each one
needs constant; :func:`unsupported_nodes` finds, before any conversion, every
operator, non-constant input and attribute value that no input shape could
make supported. The converters themselves live in
:mod:`verifiNN.io.onnx.layers` (affine layers) and
:mod:`verifiNN.io.onnx.shapes` (structural operators).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache

import onnx
from onnx import helper

from verifiNN.io.onnx.folding import FOLDERS, SHAPE_OPS, folds
from verifiNN.io.onnx.graph import (
    MAX_OPSET,
    Converter,
    Data,
    NodeContext,
    Value,
    flatten_shape,
    node_label,
    reshape_shape,
    squeeze_shape,
    unsqueeze_shape,
)
from verifiNN.io.onnx.integer import CAST_TYPES, INTEGER_CONSTANT_INPUTS, INTEGER_CONVERTERS
from verifiNN.io.onnx.layers import (
    convert_arithmetic,
    convert_batchnorm,
    convert_conv,
    convert_conv_transpose,
    convert_gemm,
    convert_global_pool,
    convert_matmul,
    convert_neg,
    convert_pool,
    convert_reduce,
)
from verifiNN.io.onnx.nonlinear import NONLINEAR_CONSTANT_INPUTS, NONLINEAR_CONVERTERS
from verifiNN.io.onnx.shapes import (
    convert_alias,
    convert_concat,
    convert_expand,
    convert_gather,
    convert_pad,
    convert_resize,
    convert_slice,
    convert_split,
    convert_tile,
    convert_transpose,
    relabel,
)
from verifiNN.ops import LeakyReLU, Op, ReLU, Sigmoid, Tanh

__all__ = [
    "CONSTANT_INPUTS",
    "CONVERTERS",
    "constant_only_ops",
    "supported_ops",
    "unsupported_nodes",
]


def _activation(make: Callable[[NodeContext], Op]) -> Converter:
    def convert(ctx: NodeContext) -> list[Value]:
        x = ctx.data(0)
        return [Data(ctx.add(make(ctx), [x.node]), x.shape)]

    return convert


CONVERTERS: dict[str, Converter] = {
    "Identity": convert_alias,
    "Dropout": convert_alias,
    "Cast": convert_alias,
    "Flatten": relabel(flatten_shape),
    "Reshape": relabel(reshape_shape),
    "Squeeze": relabel(squeeze_shape),
    "Unsqueeze": relabel(unsqueeze_shape),
    "Transpose": convert_transpose,
    "Slice": convert_slice,
    "Gather": convert_gather,
    "Split": convert_split,
    "Tile": convert_tile,
    "Expand": convert_expand,
    "Concat": convert_concat,
    "Pad": convert_pad,
    "Resize": convert_resize,
    "Upsample": convert_resize,
    "Relu": _activation(lambda ctx: ReLU()),
    "LeakyRelu": _activation(lambda ctx: LeakyReLU(float(ctx.attr("alpha", 0.01)))),
    "Sigmoid": _activation(lambda ctx: Sigmoid()),
    "Tanh": _activation(lambda ctx: Tanh()),
    "MatMul": convert_matmul,
    "Gemm": convert_gemm,
    "Conv": convert_conv,
    "ConvTranspose": convert_conv_transpose,
    "AveragePool": convert_pool,
    "MaxPool": convert_pool,
    "GlobalAveragePool": convert_global_pool,
    "BatchNormalization": convert_batchnorm,
    "ReduceSum": convert_reduce,
    "ReduceMean": convert_reduce,
    "Add": convert_arithmetic,
    "Sub": convert_arithmetic,
    "Mul": convert_arithmetic,
    "Div": convert_arithmetic,
    "Neg": convert_neg,
}
"""Op type -> converter for nodes whose values depend on the network input."""
CONVERTERS.update(NONLINEAR_CONVERTERS)  # elementwise functions, softmax, products of data
CONVERTERS.update(INTEGER_CONVERTERS)  # comparisons, arg-max, one-hot, logic, integer casts

CONSTANT_INPUTS: dict[str, tuple[int, ...]] = {
    "Reshape": (1,),
    "Squeeze": (1,),
    "Unsqueeze": (1,),
    "Slice": (1, 2, 3, 4),
    "Gather": (1,),
    "Split": (1,),
    "Tile": (1,),
    "Expand": (1,),
    "Pad": (1, 2, 3),
    "Resize": (1, 2, 3),
    "Upsample": (1,),
    "Conv": (1, 2),
    "ConvTranspose": (1, 2),
    "Gemm": (2,),
    "BatchNormalization": (1, 2, 3, 4),
    "ReduceSum": (1,),
    "ReduceMean": (1,),
    "Dropout": (1, 2),
}
"""Op type -> the inputs its converter needs constant (indices, shapes, weights, conditions)."""
CONSTANT_INPUTS.update(NONLINEAR_CONSTANT_INPUTS)
CONSTANT_INPUTS.update(INTEGER_CONSTANT_INPUTS)


@lru_cache(maxsize=1)
def _reference_ops() -> frozenset[str]:
    schemas = onnx.defs.get_all_schemas()
    return frozenset(
        s.name for s in schemas if s.domain in ("", "ai.onnx") and folds(s.name, MAX_OPSET)
    )


def supported_ops() -> tuple[str, ...]:
    """The ONNX operator types :func:`load_onnx` converts or folds."""
    return tuple(sorted(set(CONVERTERS) | set(FOLDERS) | _reference_ops()))


_CONSTANT_BY_NATURE = frozenset({"Constant", "ConstantOfShape", "Shape", "Size", "Range"})


def constant_only_ops() -> tuple[str, ...]:
    """The supported operator types folded when their inputs are constants but not
    converted when they act on data (``Einsum`` of weights works, of an activation not)."""
    return tuple(sorted(set(supported_ops()) - set(CONVERTERS) - _CONSTANT_BY_NATURE))


# ---------------------------------------------------------- static validation
_RESIZE_MODES = ("nearest", "linear", "cubic")
_COORDINATE_MODES = (
    "half_pixel",
    "half_pixel_symmetric",
    "pytorch_half_pixel",
    "align_corners",
    "asymmetric",
)


def _attribute_problems(node: onnx.NodeProto, opset: int) -> list[str]:
    """Attribute values that no input shape could make supported."""
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    attrs = {k: v.decode() if isinstance(v, bytes) else v for k, v in attrs.items()}
    problems = []

    def bad(name: str, why: str = "") -> None:
        problems.append(f"node {node_label(node)}: attribute {name}={attrs[name]!r} {why}".rstrip())

    op = node.op_type
    if op in ("Conv", "ConvTranspose", "AveragePool", "MaxPool"):
        if attrs.get("auto_pad", "NOTSET") not in ("NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER"):
            bad("auto_pad", "(expected NOTSET, VALID, SAME_UPPER or SAME_LOWER)")
        if len(attrs.get("kernel_shape", [1])) > 2:
            bad("kernel_shape", "(only 1-D and 2-D windows are supported)")
    if op in ("AveragePool", "MaxPool") and any(d != 1 for d in attrs.get("dilations", [])):
        if op == "AveragePool":
            bad("dilations", "(AveragePool dilations are not supported)")
        elif attrs.get("auto_pad", "NOTSET") in ("SAME_UPPER", "SAME_LOWER"):
            # onnxruntime pads as if undilated; the ONNX reference follows the specification
            bad("dilations", "(with auto_pad SAME_*: runtimes disagree on the padding)")
    if op == "Pad" and attrs.get("mode", "constant") not in ("constant", "reflect", "edge", "wrap"):
        bad("mode", "(expected constant, reflect, edge or wrap)")
    if op == "Cast" and attrs.get("to") not in CAST_TYPES:
        bad("to", "(only casts of data to float, integer and bool types are supported)")
    if op in ("Resize", "Upsample"):
        _resize_problems(attrs, bad)
    if op == "BatchNormalization":
        if attrs.get("training_mode", 0):
            bad("training_mode", "(only inference batch norm is supported)")
        if opset < 9 and attrs.get("spatial", 1) != 1:
            bad("spatial")
    return problems


def _resize_problems(attrs: dict, bad: Callable[[str, str], None]) -> None:
    mode = attrs.get("mode", "nearest")
    if mode not in (*_RESIZE_MODES, "bilinear"):
        bad("mode", "(expected nearest, linear or cubic)")
    if attrs.get("coordinate_transformation_mode", "half_pixel") not in _COORDINATE_MODES:
        bad("coordinate_transformation_mode", f"(expected one of {', '.join(_COORDINATE_MODES)})")
    if attrs.get("keep_aspect_ratio_policy", "stretch") != "stretch":
        bad("keep_aspect_ratio_policy", "(only stretch is supported)")


def unsupported_nodes(
    nodes: Sequence[onnx.NodeProto], constants: set[str], opset: int
) -> list[str]:
    """Every unsupported (op type, node) pair, non-constant input and attribute, without
    converting anything (``constants``: the names of the constant tensors)."""
    constants = set(constants)
    problems = []
    for node in nodes:
        if node.domain not in ("", "ai.onnx"):
            problems.append(f"{node.op_type} (node {node.name!r}, domain {node.domain!r})")
            continue
        constant = all(i == "" or i in constants for i in node.input)
        if node.op_type in SHAPE_OPS or (constant and folds(node.op_type, opset)):
            constants.update(node.output)
        elif node.op_type not in CONVERTERS:
            problems.append(f"{node.op_type} (node {node.name or node.output[0]!r})")
        else:
            for i in CONSTANT_INPUTS.get(node.op_type, ()):
                name = node.input[i] if i < len(node.input) else ""
                if name and name not in constants:
                    problems.append(
                        f"node {node_label(node)}: input {i} ({name!r}) must be a constant"
                    )
            problems.extend(_attribute_problems(node, opset))
    return problems
