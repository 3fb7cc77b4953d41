"""Reading an ONNX file and walking its graph into a :class:`~verifiNN.models.network.Network`."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from verifiNN.errors import InvalidNetworkError, ModelLoadError, UnsupportedModelError
from verifiNN.io.files import read_bytes, resolve
from verifiNN.io.onnx.converters import CONVERTERS, unsupported_nodes
from verifiNN.io.onnx.folding import FOLDERS, SHAPE_OPS
from verifiNN.io.onnx.graph import (
    FLOAT_TYPES,
    MAX_OPSET,
    MIN_OPSET,
    Data,
    GraphBuilder,
    NodeContext,
    Value,
    node_label,
    sample_shape,
)
from verifiNN.models.network import LABELERS, ModelOrigin, Network
from verifiNN.models.passes import simplify
from verifiNN.ops import (
    Shape,
)

logger = logging.getLogger(__name__)

# ------------------------------------------------------------------- loading
#: Largest ONNX file read (protobuf's hard limit; larger models use external data).
MAX_MODEL_BYTES = 2**31 - 1


def _read_model(path: str | os.PathLike) -> onnx.ModelProto:
    file = Path(path)
    stored = resolve(file)
    if stored.is_file() and stored.suffix != ".gz" and stored.stat().st_size > MAX_MODEL_BYTES:
        size = stored.stat().st_size
        raise ModelLoadError(
            f"{file}: {size / 2**30:.1f} GiB is over ONNX's 2 GiB protobuf limit; "
            "a model this large must keep its weights as external data"
        )
    data = read_bytes(file, ModelLoadError, "ONNX file")
    if not data:
        raise ModelLoadError(f"{file}: the file is empty, not an ONNX model")
    try:
        model = onnx.load_model_from_string(data)
    except Exception:  # protobuf raises DecodeError and friends
        raise ModelLoadError(
            f"{file}: not a valid ONNX model (truncated or corrupt file)"
        ) from None
    uses_external = any(
        t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer
    )
    if uses_external:
        try:
            onnx.external_data_helper.load_external_data_for_model(model, str(file.parent))
        except Exception as exc:
            raise ModelLoadError(f"{file}: cannot read the model's external data ({exc})") from None
    return model


def _opset(model: onnx.ModelProto, source: str) -> int:
    versions = [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")]
    opset = versions[0] if versions else 0
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise UnsupportedModelError(
            f"{source}: ONNX opset {opset} is not supported (supported: {MIN_OPSET} to {MAX_OPSET})"
        )
    return opset


def _model_input(graph: onnx.GraphProto, constants: set[str], source: str) -> tuple[str, list]:
    inputs = [i for i in graph.input if i.name not in constants]
    if len(inputs) != 1:
        raise UnsupportedModelError(
            f"{source}: verifiNN supports models with exactly one input, got "
            f"{[i.name for i in inputs]}"
        )
    value = inputs[0]
    tensor = value.type.tensor_type
    if not value.type.HasField("tensor_type") or not tensor.HasField("shape"):
        raise ModelLoadError(f"{source}: input {value.name!r} has no static shape")
    if tensor.elem_type not in FLOAT_TYPES:
        raise UnsupportedModelError(f"{source}: input {value.name!r} is not a float tensor")
    dims: list = []
    for k, d in enumerate(tensor.shape.dim):
        if d.HasField("dim_value") and d.dim_value > 0:
            dims.append(int(d.dim_value))
        elif k == 0 and len(tensor.shape.dim) >= 2:
            dims.append(d.dim_param or None)  # symbolic batch dimension
        else:
            raise ModelLoadError(
                f"{source}: input {value.name!r} has a dynamic dimension "
                f"{d.dim_param or '?'!r} at axis {k}; only the batch axis (0) may be dynamic"
            )
    return value.name, dims


def _live_nodes(graph: onnx.GraphProto, output: str) -> list[onnx.NodeProto]:
    producer = {o: n for n in graph.node for o in n.output if o}
    needed, seen = [output], set()
    while needed:
        name = needed.pop()
        node = producer.get(name)
        if node is not None and id(node) not in seen:
            seen.add(id(node))
            needed.extend(i for i in node.input if i)
    return [n for n in graph.node if id(n) in seen]


def load_onnx(path: str | os.PathLike, labeler: str = "argmax") -> Network:
    """Load an ONNX model file as a :class:`~verifiNN.models.network.Network`.

    Args:
        path: the ``.onnx`` file; ``path.gz`` is read when ``path`` is absent,
            and a ``.gz`` path is decompressed.
        labeler: ``'argmax'`` or ``'argmin'`` (how :meth:`Network.classify` reads the outputs).

    Returns:
        The simplified network. ``network.input_shape`` is the per-sample input
        shape; ``network.origin`` (:class:`~verifiNN.models.network.ModelOrigin`)
        holds the path, the model itself and its full input shape (a symbolic
        batch dimension appears as its name, or None).

    Raises:
        ModelLoadError: a missing, empty, truncated or corrupt file, an invalid
            model or a dynamic non-batch input dimension.
        UnsupportedModelError: operators or attributes verifiNN does not
            support (all of them are listed).
    """
    return onnx_to_network(_read_model(path), labeler=labeler, source=str(path))


def onnx_to_network(
    model: onnx.ModelProto, labeler: str = "argmax", source: str = "<onnx model>"
) -> Network:
    """Convert an in-memory ONNX model (see :func:`load_onnx`).

    Args:
        model: the ONNX model.
        labeler: ``'argmax'`` or ``'argmin'``.
        source: how error messages name the model (a path).

    Returns:
        The simplified network, with ``origin`` set.

    Raises:
        ModelLoadError: an invalid model or a dynamic non-batch input dimension.
        UnsupportedModelError: unsupported operators or attributes, all listed.
    """
    if labeler not in LABELERS:
        raise InvalidNetworkError(f"unknown labeler {labeler!r}: expected one of {LABELERS}")
    graph = model.graph
    if not graph.node or not graph.output:
        raise ModelLoadError(f"{source}: not an ONNX model (no graph nodes or outputs)")
    opset = _opset(model, source)
    constants = {t.name: t for t in graph.initializer}
    input_name, dims = _model_input(graph, set(constants), source)
    if len(graph.output) != 1:
        names = [o.name for o in graph.output]
        raise UnsupportedModelError(
            f"{source}: models with several outputs ({names}) are not supported"
        )
    output = graph.output[0].name
    nodes = _live_nodes(graph, output)
    problems = unsupported_nodes(nodes, set(constants), opset)
    if problems:
        raise UnsupportedModelError(
            f"{source}: {len(problems)} unsupported operator(s)/attribute(s): "
            + "; ".join(problems)
        )
    try:
        onnx.checker.check_model(model)
    except Exception as exc:  # onnxruntime runs many models the checker rejects
        lines = str(exc).strip().splitlines() or [type(exc).__name__]
        logger.warning("%s: the ONNX checker reports: %s", source, lines[0][:300])
    full = tuple(1 if d is None or isinstance(d, str) else d for d in dims)
    network = _convert(nodes, constants, input_name, full, output, opset, labeler, source)
    # the serialised model is kept for onnxruntime's second opinion on counterexamples
    return network.with_origin(ModelOrigin(source, model.SerializeToString(), tuple(dims)))


def _convert(
    nodes: Sequence[onnx.NodeProto],
    initializers: dict[str, onnx.TensorProto],
    input_name: str,
    full: Shape,
    output: str,
    opset: int,
    labeler: str,
    source: str,
) -> Network:
    builder = GraphBuilder(input_name, sample_shape(full), source)
    env: dict[str, Value] = {}
    for name, tensor in initializers.items():
        try:
            env[name] = numpy_helper.to_array(tensor)
        except Exception:
            raise ModelLoadError(f"{source}: cannot read initializer {name!r}") from None
    env[input_name] = Data(input_name, full)
    for node in nodes:
        inputs: list[Value] = []
        for name in node.input:
            if name and name not in env:
                raise ModelLoadError(
                    f"{source}: node {node_label(node)} reads unknown tensor {name!r}"
                )
            if name and env[name] is None:
                raise UnsupportedModelError(
                    f"{source}: node {node_label(node)} reads {name!r}, an auxiliary output "
                    "(mask, indices or training statistic) that verifiNN does not model"
                )
            inputs.append(env[name] if name else None)
        ctx = NodeContext(node, inputs, opset, builder)
        constant = all(not isinstance(v, Data) for v in inputs)
        if node.op_type in FOLDERS and (constant or node.op_type in SHAPE_OPS):
            outputs = [np.asarray(v) for v in FOLDERS[node.op_type](ctx)]
        else:
            outputs = CONVERTERS[node.op_type](ctx)
        for name, value in zip(node.output, outputs):
            if name:
                env[name] = value
    result = env.get(output)
    if not isinstance(result, Data):
        raise ModelLoadError(f"{source}: output {output!r} does not depend on the input")
    last = builder.view(result, sample_shape(result.shape), f"{output!r} (output)")
    try:
        network = Network.from_graph(
            builder.shapes[input_name], builder.nodes, last, labeler, input_name
        )
    except InvalidNetworkError as exc:
        raise ModelLoadError(f"{source}: {exc}") from None
    return simplify(network)
