"""The VNN-LIB standard's solver interface (its chapter 5): capabilities and the result format.

``verifinn supports --CAPABILITY`` prints what :data:`CAPABILITIES` derives
from the code's own registries: the ONNX converters, the loader's opset
range and element types, the rounding-error rules (an element type is claimed
only when every converted op has a rule for it, so that float analysis is
sound: the standard's condition for claiming a type), and the theories the
query compiler implements. ``verifinn verify QUERY --network NAME=MODEL``
prints :func:`result_text`: the verdict line (``sat``, ``unsat``,
``unknown``, ``timed-out``) and, for ``sat``, every declared variable in
declaration order as ``NAME TYPE [d1,d2]`` followed by its values, one per
line, row-major (integer and ``bool`` variables as integers);
:func:`serialise_assignment` writes ``DIR/NAME.pb`` ONNX TensorProtos of the
declared types instead.

The operator list is derived, never written down: every op type with a
converter (:data:`~verifiNN.io.onnx.converters.CONVERTERS`) is claimed in full,
every other op the loader folds on constants (its own folders and ONNX's
reference implementation) as ``NAME * constant inputs only``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import onnx

from verifiNN.bounds.affine import AFFINE_RULES
from verifiNN.bounds.float_error import FLOAT_FORMATS, error_rule_ops
from verifiNN.bounds.relaxations import RELAXATIONS
from verifiNN.io.onnx import MAX_OPSET, MIN_OPSET, constant_only_ops, supported_ops
from verifiNN.io.query import INTEGER_TYPES, MODEL_ELEMENT_TYPES, THEORIES, Variable
from verifiNN.io.vnnlib import VNNLIB_VERSIONS
from verifiNN.results import Verdict
from verifiNN.verifiers.queries import QueryResult

__all__ = [
    "CAPABILITIES",
    "element_types",
    "operators",
    "result_text",
    "serialise_assignment",
    "verdict_line",
]

_TENSOR_TYPES = {
    "real": onnx.TensorProto.DOUBLE,
    "float64": onnx.TensorProto.DOUBLE,
    "float32": onnx.TensorProto.FLOAT,
    "float16": onnx.TensorProto.FLOAT16,
    "bfloat16": onnx.TensorProto.BFLOAT16,
    **{t: getattr(onnx.TensorProto, t.upper()) for t in INTEGER_TYPES},
}


def element_types() -> list[str]:
    """``real``, then the float types the loader reads and whose rounding is bounded for
    every op the engines support (otherwise a float query could not be analysed soundly)."""
    every_op_bounded = set(AFFINE_RULES) | set(RELAXATIONS) <= error_rule_ops()
    floats = [t for t in MODEL_ELEMENT_TYPES if t in FLOAT_FORMATS] if every_op_bounded else []
    return ["real", *floats]


def operators() -> list[str]:
    """Every supported ONNX operator; one folded on constants only is marked partial
    (``Slice * constant inputs only``: a ``*`` after a name marks partial support)."""
    partial = set(constant_only_ops())
    return [f"{op} * constant inputs only" if op in partial else op for op in supported_ops()]


def _flag(value: bool) -> list[str]:
    return ["true" if value else "false"]


CAPABILITIES: dict[str, Callable[[], list[str]]] = {
    "onnx-opset-versions": lambda: [str(MIN_OPSET), str(MAX_OPSET)],
    "onnx-element-types": element_types,
    "onnx-operators": operators,
    "vnnlib-versions": lambda: [VNNLIB_VERSIONS[0], VNNLIB_VERSIONS[-1]],
    **{f"{name}-theories": (lambda t=theories: list(t)) for name, theories in THEORIES.items()},
    # disjunctions are expanded into normal form (io.query._dnf), not reasoned about lazily
    "optimised-disjunctive-reasoning": lambda: _flag(False),
    "serialise-assignments": lambda: _flag(True),
    # proof certificates in the standard's format are not produced yet
    "unsat-proofs": lambda: _flag(False),
}
"""``supports --NAME`` -> the lines it prints."""


def verdict_line(verdict: Verdict) -> str:
    """The standard's word for a verdict (``timeout`` is ``timed-out``; errors never get here)."""
    return {
        Verdict.SAT: "sat",
        Verdict.UNSAT: "unsat",
        Verdict.TIMEOUT: "timed-out",
    }.get(verdict, "unknown")


def _value_text(value: float, dtype: str) -> str:
    if dtype in INTEGER_TYPES:
        return str(round(value))
    if dtype in ("float32", "float16"):
        return str(np.dtype(dtype).type(value))  # shortest text that reads back to the value
    return repr(float(value))


def result_text(result: QueryResult, with_assignment: bool = True) -> str:
    """The ``verify`` command's standard output (ends with a newline)."""
    lines = [verdict_line(result.verdict)]
    if with_assignment and result.verdict is Verdict.SAT and result.assignment:
        for variable, values in result.assignment:
            dims = ",".join(str(d) for d in variable.shape)
            lines.append(f"{variable.name} {variable.dtype} [{dims}]")
            lines.extend(_value_text(v, variable.dtype) for v in np.ravel(values))
    return "\n".join(lines) + "\n"


def serialise_assignment(
    assignment: Sequence[tuple[Variable, np.ndarray]], folder: str | os.PathLike
) -> list[Path]:
    """Write each variable as ``folder/NAME.pb``, a TensorProto of its type and shape."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for variable, values in assignment:
        data_type = _TENSOR_TYPES[variable.dtype]
        cast = round if variable.dtype in INTEGER_TYPES else float
        flat = [cast(v) for v in np.ravel(values)]
        tensor = onnx.helper.make_tensor(variable.name, data_type, list(variable.shape), flat)
        path = folder / f"{variable.name}.pb"
        path.write_bytes(tensor.SerializeToString())
        written.append(path)
    return written
