"""Reading an ONNX file and walking its graph into a :class:`~verifiNN.models.network.Network`."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from verifiNN.errors import InvalidNetworkError, ModelLoadError, UnsupportedModelError
from verifiNN.io.files import read_bytes, resolve
from verifiNN.io.onnx.converters import CONVERTERS, unsupported_nodes
from verifiNN.io.onnx.folding import SHAPE_OPS, fold, folds
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
from verifiNN.io.onnx.integer import argmax_through_softmax
from verifiNN.io.onnx.specialise import (
    FixedEntries,
    NeedsConstantInputError,
    constant_input_needs,
    needs_message,
    specialise,
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


@dataclass(frozen=True)
class OnnxTensor:
    """A graph input or output: its name, full shape (a symbolic batch dimension as its
    name or ``None``) and ONNX element type (``onnx.TensorProto.FLOAT``, ...)."""

    name: str
    dims: tuple[int | str | None, ...]
    elem_type: int

    @property
    def full(self) -> Shape:
        """The shape with the batch dimension counted as 1."""
        return tuple(1 if d is None or isinstance(d, str) else int(d) for d in self.dims)


@dataclass(frozen=True)
class OnnxModel:
    """A read, checked ONNX model, ready to be converted (into one network or several).

    Attributes:
        proto: the model.
        source: how messages name it (its path).
        opset: its default-domain opset.
        constants: its initializers by name.
        inputs: its graph inputs that are not initializers.
        outputs: its graph outputs.
    """

    proto: onnx.ModelProto
    source: str
    opset: int
    constants: dict[str, onnx.TensorProto]
    inputs: tuple[OnnxTensor, ...]
    outputs: tuple[OnnxTensor, ...]


def _tensor_info(value: onnx.ValueInfoProto, source: str, what: str, static: bool) -> OnnxTensor:
    tensor = value.type.tensor_type
    if not value.type.HasField("tensor_type") or not tensor.HasField("shape"):
        if static:
            raise ModelLoadError(f"{source}: {what} {value.name!r} has no static shape")
        return OnnxTensor(value.name, (), tensor.elem_type)
    dims: list = []
    for k, d in enumerate(tensor.shape.dim):
        if d.HasField("dim_value") and d.dim_value > 0:
            dims.append(int(d.dim_value))
        elif k == 0 and len(tensor.shape.dim) >= 2:
            dims.append(d.dim_param or None)  # symbolic batch dimension
        elif static:
            raise ModelLoadError(
                f"{source}: {what} {value.name!r} has a dynamic dimension "
                f"{d.dim_param or '?'!r} at axis {k}; only the batch axis (0) may be dynamic"
            )
        else:
            dims.append(d.dim_param or None)
    return OnnxTensor(value.name, tuple(dims), tensor.elem_type)


def parse_model(model: onnx.ModelProto, source: str = "<onnx model>") -> OnnxModel:
    """Check a model's structure (opset, static float inputs) and describe its tensors.

    Raises:
        ModelLoadError: no graph, or an input with a dynamic non-batch dimension.
        UnsupportedModelError: an opset out of range or a non-float input.
    """
    graph = model.graph
    if not graph.node or not graph.output:
        raise ModelLoadError(f"{source}: not an ONNX model (no graph nodes or outputs)")
    opset = _opset(model, source)
    constants = {t.name: t for t in graph.initializer}
    inputs = tuple(
        _tensor_info(v, source, "input", True) for v in graph.input if v.name not in constants
    )
    for tensor in inputs:
        if tensor.elem_type not in FLOAT_TYPES:
            raise UnsupportedModelError(f"{source}: input {tensor.name!r} is not a float tensor")
    outputs = tuple(_tensor_info(v, source, "output", False) for v in graph.output)
    return OnnxModel(model, source, opset, constants, inputs, outputs)


def read_model(path: str | os.PathLike) -> OnnxModel:
    """Read and parse an ONNX file (``path.gz`` when ``path`` is absent).

    Raises:
        ModelLoadError: a missing, empty, truncated or corrupt file.
        UnsupportedModelError: see :func:`parse_model`.
    """
    return parse_model(_read_model(path), str(path))


def _live_nodes(graph: onnx.GraphProto, wanted: Sequence[str]) -> list[onnx.NodeProto]:
    producer = {o: n for n in graph.node for o in n.output if o}
    needed, seen = list(wanted), set()
    while needed:
        name = needed.pop()
        node = producer.get(name)
        if node is not None and id(node) not in seen:
            seen.add(id(node))
            needed.extend(i for i in node.input if i)
    return [n for n in graph.node if id(n) in seen]


def _check_model(model: OnnxModel, nodes: Sequence[onnx.NodeProto]) -> None:
    """Every operator converted; the ONNX checker's complaints are warnings only."""
    problems = unsupported_nodes(nodes, set(model.constants), model.opset)
    if problems:
        message = (
            f"{model.source}: {len(problems)} unsupported operator(s)/attribute(s): "
            + "; ".join(problems)
        )
        needs = constant_input_needs(nodes, set(model.constants), model.opset)
        if needs:  # fixing input entries may make them constant (verifiNN.io.load_instance)
            raise NeedsConstantInputError(f"{needs_message(model.source, needs)}; {message}", needs)
        raise UnsupportedModelError(message)
    try:
        onnx.checker.check_model(model.proto)
    except Exception as exc:  # onnxruntime runs many models the checker rejects
        lines = str(exc).strip().splitlines() or [type(exc).__name__]
        logger.warning("%s: the ONNX checker reports: %s", model.source, lines[0][:300])


def convert_into(
    builder: GraphBuilder,
    model: OnnxModel,
    feeds: dict[str, Data],
    wanted: Sequence[str],
) -> list[Data]:
    """Add the IR nodes computing ``wanted`` tensors of ``model`` to ``builder``.

    Args:
        builder: the graph being built (possibly holding other models' nodes).
        model: the model.
        feeds: each graph input's name -> the IR value that feeds it (its full
            ONNX shape, batch dimension as 1).
        wanted: tensor names (outputs or intermediate tensors) to compute.

    Returns:
        One :class:`Data` per wanted tensor.

    Raises:
        UnsupportedModelError: an operator on the way to ``wanted`` is not supported.
        ModelLoadError: a wanted tensor that is unknown or does not depend on the feeds.
    """
    graph = model.proto.graph
    known = {o for n in graph.node for o in n.output} | set(feeds) | set(model.constants)
    unknown = [w for w in wanted if w not in known]
    if unknown:
        raise ModelLoadError(f"{model.source}: no tensor named {unknown[0]!r} in the model")
    nodes = _live_nodes(graph, wanted)
    _check_model(model, nodes)
    source, builder.source = builder.source, model.source
    try:
        env = _walk(model, nodes, feeds, builder)
    finally:
        builder.source = source
    found = []
    for name in wanted:
        value = env.get(name)
        if not isinstance(value, Data):
            raise ModelLoadError(f"{model.source}: {name!r} does not depend on the input")
        found.append(value)
    return found


def load_onnx(
    path: str | os.PathLike,
    labeler: str = "argmax",
    fixed_inputs: Mapping[str, FixedEntries] | None = None,
) -> Network:
    """Load an ONNX model file as a :class:`~verifiNN.models.network.Network`.

    Args:
        path: the ``.onnx`` file; ``path.gz`` is read when ``path`` is absent,
            and a ``.gz`` path is decompressed.
        labeler: ``'argmax'`` or ``'argmin'`` (how :meth:`Network.classify` reads the outputs).
        fixed_inputs: graph input name -> the box a property gives it, exact on the
            entries it fixes: the model is first specialised to those entries
            (:func:`~verifiNN.io.onnx.specialise.specialise`); the network is then
            valid on that box only, and ``origin`` keeps the original model.

    Returns:
        The simplified network. ``network.input_shape`` is the per-sample input
        shape; ``network.origin`` (:class:`~verifiNN.models.network.ModelOrigin`)
        holds the path, the model itself and its full input shape (a symbolic
        batch dimension appears as its name, or None).

    Raises:
        ModelLoadError: a missing, empty, truncated or corrupt file, an invalid
            model or a dynamic non-batch input dimension.
        UnsupportedModelError: operators or attributes verifiNN does not
            support (all of them are listed);
            :class:`~verifiNN.io.onnx.specialise.NeedsConstantInputError` when
            some node needs a constant input that depends on the network input.
    """
    model = _read_model(path)
    if not fixed_inputs:
        return onnx_to_network(model, labeler=labeler, source=str(path))
    network = onnx_to_network(specialise(model, fixed_inputs, str(path)), labeler, str(path))
    original = _without_final_argmax(model).SerializeToString()
    dims = network.origin.input_shape if network.origin is not None else None
    return network.with_origin(ModelOrigin(str(path), original, dims))


def onnx_to_network(
    model: onnx.ModelProto, labeler: str = "argmax", source: str = "<onnx model>"
) -> Network:
    """Convert an in-memory ONNX model of one input and one output (see :func:`load_onnx`).

    Args:
        model: the ONNX model.
        labeler: ``'argmax'`` or ``'argmin'``.
        source: how error messages name the model (a path).

    Returns:
        The simplified network, with ``origin`` set.

    A model whose output comes from a final ``ArgMax`` (the index of the largest
    logit) is loaded as the network of that ``ArgMax``'s input, the logits, and
    ``origin`` keeps the model cut there (onnxruntime's second opinion then
    compares logits). A property of the loaded network is a property of the
    logits: "the model outputs class ``c``" is "``Y_c >= Y_j`` for every ``j``"
    (ONNX's ``ArgMax`` breaks ties towards the first index, or the last with
    ``select_last_index``), which :meth:`Network.classify` with the ``argmax``
    labeler answers; a VNN-LIB property written over the integer output must
    be restated over the logits this way.

    Raises:
        ModelLoadError: an invalid model or a dynamic non-batch input dimension.
        UnsupportedModelError: unsupported operators or attributes, all listed;
            several inputs or outputs (VNN-LIB 2.0 queries map those:
            :func:`verifiNN.io.query.load_query`).
    """
    if labeler not in LABELERS:
        raise InvalidNetworkError(f"unknown labeler {labeler!r}: expected one of {LABELERS}")
    model = _without_final_argmax(model)
    parsed = parse_model(argmax_through_softmax(model), source)  # origin: the model itself
    if len(parsed.inputs) != 1:
        raise UnsupportedModelError(
            f"{source}: a model is loaded on its own when it has one input; this one has "
            f"{len(parsed.inputs)} ({[i.name for i in parsed.inputs]}), which a VNN-LIB 2.0 "
            "query must name"
        )
    if len(parsed.outputs) != 1:
        names = [o.name for o in parsed.outputs]
        raise UnsupportedModelError(
            f"{source}: a model with several outputs ({names}) needs a VNN-LIB 2.0 query "
            "that names them"
        )
    (tensor,) = parsed.inputs
    builder = GraphBuilder(tensor.name, sample_shape(tensor.full), source)
    feeds = {tensor.name: Data(tensor.name, tensor.full)}
    (result,) = convert_into(builder, parsed, feeds, [parsed.outputs[0].name])
    output = parsed.outputs[0].name
    last = builder.view(result, sample_shape(result.shape), f"{output!r} (output)")
    try:
        network = Network.from_graph(
            builder.shapes[tensor.name], builder.nodes, last, labeler, tensor.name
        )
    except InvalidNetworkError as exc:
        raise ModelLoadError(f"{source}: {exc}") from None
    # the serialised model is kept for onnxruntime's second opinion on counterexamples
    origin = ModelOrigin(source, model.SerializeToString(), tensor.dims)
    return simplify(network).with_origin(origin)


def _without_final_argmax(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` cut before a final ``ArgMax`` (its output is then the logits), else itself."""
    graph = model.graph
    if len(graph.output) != 1:
        return model
    producer = next((n for n in graph.node if graph.output[0].name in n.output), None)
    if producer is None or producer.op_type != "ArgMax" or producer.domain not in ("", "ai.onnx"):
        return model
    logits = producer.input[0]
    known = {v.name: v for v in (*graph.value_info, *graph.input)}
    cut = onnx.ModelProto()
    cut.CopyFrom(model)
    cut.graph.node.remove(next(n for n in cut.graph.node if n.output == producer.output))
    del cut.graph.output[:]
    if logits in known:
        cut.graph.output.append(known[logits])
    else:
        elem = graph.input[0].type.tensor_type.elem_type if graph.input else onnx.TensorProto.FLOAT
        cut.graph.output.append(onnx.helper.make_tensor_value_info(logits, elem, None))
    return cut


def _walk(
    model: OnnxModel,
    nodes: Sequence[onnx.NodeProto],
    feeds: dict[str, Data],
    builder: GraphBuilder,
) -> dict[str, Value]:
    """Fold or convert ``nodes`` in order; returns every tensor's value."""
    source = model.source
    env: dict[str, Value] = {}
    for name, tensor in model.constants.items():
        try:
            env[name] = numpy_helper.to_array(tensor)
        except Exception:
            raise ModelLoadError(f"{source}: cannot read initializer {name!r}") from None
    env.update(feeds)
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
        ctx = NodeContext(node, inputs, model.opset, builder)
        constant = all(not isinstance(v, Data) for v in inputs)
        if node.op_type in SHAPE_OPS or (constant and folds(node.op_type, model.opset)):
            outputs = [None if v is None else np.asarray(v) for v in fold(ctx)]
        else:
            outputs = CONVERTERS[node.op_type](ctx)
        for name, value in zip(node.output, outputs):
            if name:
                env[name] = value
    return env
