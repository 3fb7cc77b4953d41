"""Instance specialisation: an ONNX model partially evaluated on the input entries a property fixes.

Many properties fix some input entries exactly (``lower == upper`` in every
case): a mask channel, a patch position, a target class or box. Models read
such entries as *parameters* (slice starts, scatter indices, the class an
``Equal`` compares with), which the loader can only convert when they are
constants. :func:`specialise` replaces every node output whose value those
entries determine by a constant initializer; the graph input stays an input of
the same shape, and the result is an ONNX model that
:func:`~verifiNN.io.onnx.load_onnx` converts as usual.

How. Every tensor gets an element-level *known mask*, propagated in
topological order (the partial evaluation of Jones, Gomard and Sestoft 1993,
"Partial Evaluation and Automatic Program Generation", at the granularity of
tensor elements):

* a graph input: its fixed entries; initializers and ``Constant``: all;
* moves and selections (``Identity``, ``Cast``, ``Reshape``, ``Flatten``,
  ``Transpose``, ``Squeeze``, ``Unsqueeze``, ``Gather``, ``Slice``, ``Concat``,
  ``Split``, ``Expand``, ``Tile``, ``Pad``, ``ScatterND``, ...): the same
  operator applied to the masks of the data inputs, when its index and shape
  inputs are fully known (else nothing is known);
* elementwise operators with broadcasting: known where every broadcast operand
  is (``Where``: where the condition is known and the branch it picks is);
* ``Shape`` and ``Size``: known when the input's shape is (:data:`SHAPE_INPUTS`);
* any other operator: all outputs known when all inputs are fully known, else
  none (random and control-flow operators never).

The values are one evaluation of the original model by onnxruntime (its own
kernels, in the model's precision) at a point equal to the fixed values on the
fixed entries, every intermediate tensor exposed (ONNX's reference evaluator
when onnxruntime refuses the model).

Soundness. By induction over the topological order, a known element has the
same value at every input that agrees with the fixed entries: the graph
input's known entries are the fixed values; a move copies known elements to
known places (and its index inputs are the same everywhere, so the places are
too); an elementwise result depends only on the broadcast operands at its
position; any other operator only on its inputs, all known. The evaluation
point is such an input, so the values it gives the known elements hold for
every input of the property, and replacing fully known tensors by those
values changes no output there. A ``Shape`` is only known when no unknown
value can change the shape. Known values are computed in the model's own
precision (as onnxruntime runs it), the same semantics the counterexample
re-check uses.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import onnx

from verifiNN.errors import ModelLoadError, UnsupportedModelError
from verifiNN.io.onnx.converters import CONSTANT_INPUTS, CONVERTERS
from verifiNN.io.onnx.folding import SHAPE_OPS, folds
from verifiNN.io.onnx.graph import node_label
from verifiNN.io.onnx.knowledge import (
    evaluate_all,
    graph_inputs,
    opset_of,
    propagate,
    replace_known,
)
from verifiNN.io.onnx.tabulate import tabulate

__all__ = [
    "FixedEntries",
    "NeedsConstantInputError",
    "constant_input_needs",
    "needs_message",
    "specialise",
]


class NeedsConstantInputError(UnsupportedModelError):
    """A node needs a constant input (an index, shape or condition) that depends on the
    network input: fixing input entries (:func:`specialise`) may make it constant.

    Attributes:
        needs: ``(node label, input name)`` pairs.
    """

    def __init__(self, message: str, needs: Sequence[tuple[str, str]] = ()) -> None:
        super().__init__(message)
        self.needs = tuple(needs)


@dataclass(frozen=True, eq=False)
class FixedEntries:
    """What a property says of one graph input: a box, exact (``lower == upper``) on the
    entries it fixes.

    Attributes:
        lower: lower bounds, the input's full shape (or flat: reshaped on use).
        upper: upper bounds, same shape.
    """

    lower: np.ndarray
    upper: np.ndarray

    @classmethod
    def from_values(cls, values: np.ndarray, known: np.ndarray) -> FixedEntries:
        """The entries ``known`` fixed to ``values``, the others free (unbounded)."""
        values, known = np.asarray(values, np.float64), np.asarray(known, bool)
        return cls(np.where(known, values, -np.inf), np.where(known, values, np.inf))

    @property
    def known(self) -> np.ndarray:
        """The fixed entries."""
        return np.asarray(self.lower) == np.asarray(self.upper)

    def point(self) -> np.ndarray:
        """A point of the box: the fixed values, else the lower bound, else the upper, else 0."""
        lower, upper = np.asarray(self.lower, np.float64), np.asarray(self.upper, np.float64)
        return np.where(np.isfinite(lower), lower, np.where(np.isfinite(upper), upper, 0.0))


# ----------------------------------------------------- the static question
def constant_input_needs(
    nodes: Sequence[onnx.NodeProto], constants: set[str], opset: int
) -> list[tuple[str, str]]:
    """``(node label, input name)`` for every input a converter needs constant that depends
    on the network input, and every data input of an operator verifiNN only folds."""
    constants = set(constants)
    needs = []
    for node in nodes:
        constant = all(i == "" or i in constants for i in node.input)
        if node.op_type in SHAPE_OPS or (constant and folds(node.op_type, opset)):
            constants.update(node.output)
            continue
        if node.op_type in CONVERTERS:
            wanted = [
                node.input[i] for i in CONSTANT_INPUTS.get(node.op_type, ()) if i < len(node.input)
            ]
        elif folds(node.op_type, opset):
            wanted = list(node.input)
        else:
            continue
        needs += [(node_label(node), name) for name in wanted if name and name not in constants]
    return needs


def needs_message(source: str, needs: Sequence[tuple[str, str]]) -> str:
    """One line naming the first nodes that need constant inputs."""
    shown = "; ".join(f"node {label} needs constant input {name!r}" for label, name in needs[:5])
    more = f" (and {len(needs) - 5} more)" if len(needs) > 5 else ""
    return f"{source}: {shown}{more}"


# ------------------------------------------------------------------ public
@dataclass(frozen=True)
class _Inputs:
    """Per graph input (full ONNX shapes): fixed masks, a point of the box, its bounds."""

    masks: dict[str, np.ndarray]
    points: dict[str, np.ndarray]
    lower: dict[str, np.ndarray]
    upper: dict[str, np.ndarray]


def _inputs(model: onnx.ModelProto, fixed: Mapping[str, FixedEntries], source: str) -> _Inputs:
    inputs = graph_inputs(model)
    unknown = sorted(set(fixed) - {v.name for v in inputs})
    if unknown:
        raise ModelLoadError(f"{source}: no graph input named {unknown[0]!r}")
    out = _Inputs({}, {}, {}, {})
    for v in inputs:
        dims = [d.dim_value if d.dim_value > 0 else 1 for d in v.type.tensor_type.shape.dim]
        size = int(np.prod(dims))
        entry = fixed.get(v.name) or FixedEntries(np.full(size, -np.inf), np.full(size, np.inf))
        if np.asarray(entry.lower).size != size or np.asarray(entry.upper).size != size:
            raise ModelLoadError(
                f"{source}: input {v.name!r} has {size} entries, the fixed values "
                f"{np.asarray(entry.lower).size}"
            )
        out.masks[v.name] = entry.known.reshape(dims)
        out.points[v.name] = entry.point().reshape(dims)
        out.lower[v.name] = np.asarray(entry.lower, np.float64).reshape(dims)
        out.upper[v.name] = np.asarray(entry.upper, np.float64).reshape(dims)
    return out


def specialise(
    model: onnx.ModelProto, fixed: Mapping[str, FixedEntries], source: str = "<onnx model>"
) -> onnx.ModelProto:
    """``model`` with every value the fixed entries determine replaced by a constant.

    When the fixed entries alone leave a node needing a constant input, and the free
    entries it depends on are only read through casts to integers over a bounded box,
    the model is tabulated over those integer cells instead
    (:func:`verifiNN.io.onnx.tabulate.tabulate`).

    Args:
        model: the model.
        fixed: graph input name -> its box (:class:`FixedEntries`); inputs not named are free.
        source: how messages name the model.

    Returns:
        The specialised model: same graph inputs and outputs, fewer nodes.

    Raises:
        ModelLoadError: a fixed input that the model does not have, or of the wrong size,
            or a model that cannot be evaluated.
    """
    box = _inputs(model, fixed, source)
    values = evaluate_all(model, box.points)
    know = propagate(model, box.masks, values)
    special = replace_known(model, know, values)
    if not _still_needs(special):
        return special
    table = tabulate(model, box.lower, box.upper, values, source)
    return special if table is None else table


def _still_needs(model: onnx.ModelProto) -> bool:
    constants = {t.name for t in model.graph.initializer}
    return bool(constant_input_needs(list(model.graph.node), constants, opset_of(model)))
