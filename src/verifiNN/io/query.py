"""VNN-LIB 2.0 queries, parsed by the standard's own parser and compiled for the engines.

The ``vnnlib`` package (the VNN-LIB 2.0 reference parser and type checker)
reads the query; this module turns its syntax tree into what every engine
consumes: one :class:`~verifiNN.models.network.Network` and one
:class:`~verifiNN.specs.Specification` whose unsafe set is linear in the
network's outputs.

* **One graph for the whole query.** The network's input is the flat
  concatenation of every declared input variable (networks in declaration
  order, each one's inputs in order). Each declared network is converted from
  its ONNX model (``equal-to`` networks reuse their twin's model,
  ``isomorphic-to`` ones bring their own) and fed by slices of that input;
  its declared inputs and outputs map to the model's graph inputs and outputs
  in order, hidden variables to the named intermediate tensors.
* **Outputs, then what the assertions need.** The network's output holds every
  declared output and hidden variable (per network: outputs, then hidden),
  then, when an assertion couples inputs with other variables, the input
  itself, then one column per product of variables (a *monomial*: ``Y[0] *
  Y[1]``, ``X[0] * X[0]``, ...), computed by the IR's ``Mul`` nodes after the
  networks. Every assertion is then linear in that output.
* **Assertions.** Their conjunction is expanded into disjunctive normal form
  (``to_dnf`` of each assertion, then the product over assertions; ``!=``
  splits a term in two). In a term, a comparison of one input entry with a
  constant is a bound of the input box; every other comparison is a row
  ``c . out <= d``. Strict comparisons ``<`` become ``<=`` with ``d`` one
  float64 step lower, which stays sound both ways under the engines' proof
  margin (far above one step). Terms with the same box form a
  :class:`~verifiNN.specs.Case`; terms with an empty box are dropped; an
  input entry a term leaves free is pinned when nothing asserted depends on
  it, else an error (:mod:`verifiNN.io.free_inputs`).
* **A second opinion.** The network's :class:`~verifiNN.models.network.ModelOrigin`
  records how to evaluate its output with onnxruntime from the original
  models, so every counterexample is re-run on them.

Element types: a variable declared ``real`` is analysed in real arithmetic
(the standard's consent to that); a float type (``float16``, ``bfloat16``,
``float32``, ``float64``) must match the model's tensor, and the query records
its least precise one as :attr:`Query.float_format`, so the front door can
account for rounding (:mod:`verifiNN.bounds.float_error`). An integer or
``bool`` output or hidden variable must match the model's tensor type; it holds
exact values (a tensor that does not depend on the input, such as the
``Shape`` of it, becomes a constant node) and takes no part in the float
format. Integer inputs, and constructs the engines cannot model, raise
:class:`~verifiNN.errors.SpecError` naming them and their line.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import vnnlib
from onnx.reference import ReferenceEvaluator

from verifiNN.errors import InvalidInputError, SpecError
from verifiNN.io.files import read_bytes
from verifiNN.io.free_inputs import boxed_cases
from verifiNN.io.onnx.folding import NEVER_FOLDED
from verifiNN.io.onnx.graph import FLOAT_TYPES as MODEL_FLOAT_TYPES
from verifiNN.io.onnx.graph import Data, GraphBuilder
from verifiNN.io.onnx.loader import OnnxModel, convert_into, read_model
from verifiNN.models.network import ModelOrigin, Network, OnnxPart
from verifiNN.models.passes import simplify
from verifiNN.ops import Concat, Dense, Mul, Slice, as_tensor
from verifiNN.specs import HalfSpaces, Specification

__all__ = [
    "FLOAT_TYPES",
    "INTEGER_TYPES",
    "MAX_DNF_TERMS",
    "MODEL_ELEMENT_TYPES",
    "THEORIES",
    "Query",
    "Variable",
    "is_vnnlib2",
    "load_query",
    "parse_query",
    "query_spec",
]

MAX_DNF_TERMS = 100_000
"""Most terms the disjunctive normal form of a query may have."""

FLOAT_TYPES = ("float16", "float32", "float64", "bfloat16", "real")
"""Real and float element types: any variable may be declared with one."""

INTEGER_TYPES = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "bool")
"""Integer element types (``bool``: 0 and 1): outputs and hidden variables only."""

_PRECISION = ("real", "float64", "float32", "bfloat16", "float16")  # most precise first
_ONNX_TYPES = {
    onnx.TensorProto.FLOAT: "float32",
    onnx.TensorProto.DOUBLE: "float64",
    onnx.TensorProto.FLOAT16: "float16",
    onnx.TensorProto.BFLOAT16: "bfloat16",
    **{getattr(onnx.TensorProto, t.upper()): t for t in INTEGER_TYPES},
}
MODEL_ELEMENT_TYPES = tuple(sorted(_ONNX_TYPES[t] for t in MODEL_FLOAT_TYPES))
"""VNN-LIB names of the model element types the ONNX loader accepts."""

THEORIES: dict[str, tuple[str, ...]] = {
    # hidden variables: declare-hidden, matched to named ONNX tensors (_match, convert_into)
    "hidden-node": ("NH", "H"),
    # several declared inputs and outputs per network (_Layout, OnnxPart feeds)
    "multiple-input-output": ("SIO", "MIO"),
    # several networks, equal-to (shared model) and isomorphic-to (own model) (_models)
    "multiple-network": ("SNET", "MNET", "MENET", "MINET"),
    # comparisons between variables of different nodes/networks (rows over all values)
    "multiple-node-comparison": ("SNC", "MNC"),
    # constant bounds, output comparisons, linear and polynomial arithmetic (_Compiler)
    "arithmetic-complexity": ("BND", "OUTC", "LIN", "POLY"),
}
"""The VNN-LIB 2.0 theories (the standard's section 4.1) this module compiles, per
``supports --<name>-theories`` capability."""

_TYPE_NAMES = {"Real": "real", "F16": "float16", "F32": "float32", "F64": "float64",
               "BF16": "bfloat16", "I8": "int8", "I16": "int16", "I32": "int32", "I64": "int64",
               "U8": "uint8", "U16": "uint16", "U32": "uint32", "U64": "uint64",
               "Bool": "bool"}  # fmt: skip
_VERSION = re.compile(r"\(\s*vnnlib-version\b")
_INPUT, _VALUE = "input", "value"

Polynomial = dict[tuple[tuple[str, int], ...], float]
"""Monomial (sorted ``(space, index)`` factors; ``()`` the constant) -> coefficient."""


@dataclass(frozen=True)
class Variable:
    """A declared variable of a query.

    Attributes:
        name: its name (``X``, ``Y``, ``H``).
        network: the declaration it belongs to.
        kind: ``'input'``, ``'hidden'`` or ``'output'``.
        dtype: its element type (``'float32'``, ``'real'``, ...).
        shape: its declared shape.
        tensor: the ONNX tensor it stands for (hidden variables; else ``None``).
    """

    name: str
    network: str
    kind: str
    dtype: str
    shape: tuple[int, ...]
    tensor: str | None = None

    @property
    def size(self) -> int:
        return math.prod(self.shape)


@dataclass(frozen=True)
class Query:
    """A compiled VNN-LIB 2.0 query.

    Attributes:
        network: the one network of the whole query (see the module docstring).
        spec: its specification (unsafe set = the query's satisfying assignments).
        variables: every declared variable, in declaration order (per network:
            inputs, hidden, outputs), as a satisfying assignment reports them.
        locations: variable name -> ``('input', start)`` (in the network input)
            or ``('output', start)`` (in the network output).
        path: the query file.
        graph: ``network`` before :func:`~verifiNN.models.passes.simplify`, node
            for node as the model files wrote it (what a float runtime computes).
        exact_nodes: nodes of ``graph`` the query itself adds (products of
            declared variables), evaluated in real arithmetic.
        float_format: the least precise float element type the query declares
            (``'float32'``, ...), or ``None`` when every variable is ``real``.
    """

    network: Network
    spec: Specification
    variables: tuple[Variable, ...]
    locations: Mapping[str, tuple[str, int]]
    path: str
    graph: Network | None = None
    exact_nodes: frozenset[str] = frozenset()
    float_format: str | None = None

    def assignment(self, x: Any, y: Any = None) -> list[tuple[Variable, np.ndarray]]:
        """Every variable's value at input ``x``, read from the network output ``y``
        (default: a plain float64 forward pass at ``x``)."""
        x = np.asarray(x, np.float64).ravel()
        if y is None:
            y = self.network.get_output(x)
        y = np.asarray(y, np.float64).ravel()
        values = []
        for variable in self.variables:
            space, start = self.locations[variable.name]
            source = x if space == _INPUT else y
            values.append((variable, source[start : start + variable.size].copy()))
        return values


# ------------------------------------------------------------------ parsing
def is_vnnlib2(text: str) -> bool:
    """Whether a property text is VNN-LIB 2.0 (it declares its version or a network)."""
    return bool(_VERSION.search(text)) or "declare-network" in text


def parse_query(text: str, path: str | os.PathLike | None = None) -> Any:
    """The standard's syntax tree of a VNN-LIB 2.0 query (``vnnlib.Query``).

    Raises:
        SpecError: a syntax or type error, with the line the parser names.
    """
    try:
        return vnnlib.parse_query_string(text)
    except vnnlib.VNNLibException as exc:
        message, line = _parser_error(str(exc))
        raise SpecError(message, path=None if path is None else str(path), line=line) from None


def _parser_error(text: str) -> tuple[str, int | None]:
    """The first error of the parser's report (JSON, or a plain message) and its line."""
    try:
        report = json.loads(text)
        first = report["errors"][0]
    except (ValueError, KeyError, IndexError, TypeError):
        match = re.search(r"line (\d+)", text)
        return " ".join(text.split()), int(match.group(1)) if match else None
    parts = [first.get("message", "error"), first.get("hint", "")]
    symbol = first.get("offendingSymbol")
    if symbol:
        parts.append(f"(at {symbol!r})")
    return " ".join(p for p in parts if p), first.get("line")


def _declared(query: Any) -> list[tuple[Any, list[Variable]]]:
    """Each network declaration with its variables, checked for supported element types."""
    found, names = [], set()
    for net in query.networks:
        variables = []
        for kind, decls in (("input", net.inputs), ("hidden", net.hidden), ("output", net.outputs)):
            for decl in decls:
                dtype = _TYPE_NAMES.get(decl.dtype.name)
                if dtype is None:
                    raise SpecError(
                        f"variable {decl.name} has element type {decl.dtype.name}: verifiNN "
                        f"analyses queries over {', '.join(FLOAT_TYPES)} variables, and "
                        f"{', '.join(INTEGER_TYPES)} outputs and hidden variables"
                    )
                if kind == "input" and dtype in INTEGER_TYPES:
                    raise SpecError(
                        f"input {decl.name} has element type {dtype}: integer inputs are not "
                        "supported (the engines search real boxes, not lattices of integers)"
                    )
                if decl.name in names:
                    raise SpecError(f"variable {decl.name} is declared twice")
                names.add(decl.name)
                tensor = decl.onnx_name.strip('"') if decl.onnx_name else None
                shape = tuple(int(d) for d in decl.shape) or (1,)
                variables.append(Variable(decl.name, net.name, kind, dtype, shape, tensor))
        found.append((net, variables))
    return found


# ------------------------------------------------------------------ assertions
def _merge(target: Polynomial, other: Polynomial, scale: float = 1.0) -> Polynomial:
    for monomial, coeff in other.items():
        target[monomial] = target.get(monomial, 0.0) + scale * coeff
    return target


def _product(a: Polynomial, b: Polynomial) -> Polynomial:
    out: Polynomial = {}
    for (ma, ca), (mb, cb) in itertools.product(a.items(), b.items()):
        key = tuple(sorted(ma + mb))
        out[key] = out.get(key, 0.0) + ca * cb
    return out


class _Compiler:
    """Assertions to boxes and rows (see the module docstring)."""

    def __init__(self, entries: Mapping[str, tuple[str, int, tuple[int, ...]]], n_in: int):
        self.entries = entries  # variable -> (space, start, shape)
        self.n_in = n_in
        self.monomials: dict[tuple[tuple[str, int], ...], int] = {}
        self.uses_input = False

    def polynomial(self, expr: Any) -> Polynomial:
        """The polynomial an arithmetic expression of the syntax tree stands for."""
        kind = type(expr).__name__
        if kind == "Var":
            space, start, shape = self.entries[expr.name]
            index = int(np.ravel_multi_index(tuple(expr.indices), shape)) if expr.indices else 0
            return {((space, start + index),): 1.0}
        if kind in ("Float", "Int", "IntExpr", "Literal"):
            text = getattr(expr, "lexeme", None)
            return {(): float(text) if text else float(expr.value)}
        if kind == "Negate":
            return _merge({}, self.polynomial(expr.expr), -1.0)
        if kind == "Plus":
            out: Polynomial = {}
            for arg in expr.args:
                _merge(out, self.polynomial(arg))
            return out
        if kind == "Minus":
            out = self.polynomial(expr.head)
            for arg in expr.rest:
                _merge(out, self.polynomial(arg), -1.0)
            return out
        if kind == "Multiply":
            out = {(): 1.0}
            for arg in expr.args:
                out = _product(out, self.polynomial(arg))
            return out
        raise SpecError(f"unsupported arithmetic expression {str(expr).strip()!r}")

    def comparisons(self, comparison: Any) -> list[list[tuple[Polynomial, bool]]]:
        """``p <= 0`` (or ``< 0`` when the flag is set) alternatives of one comparison."""
        p = _merge(self.polynomial(comparison.lhs), self.polynomial(comparison.rhs), -1.0)
        minus = _merge({}, p, -1.0)
        kind = type(comparison).__name__
        return {
            "LessEqual": [[(p, False)]],
            "GreaterEqual": [[(minus, False)]],
            "LessThan": [[(p, True)]],
            "GreaterThan": [[(minus, True)]],
            "Equal": [[(p, False), (minus, False)]],
            "NotEqual": [[(p, True)], [(minus, True)]],
        }[kind]

    def column(self, monomial: tuple[tuple[str, int], ...]) -> tuple[str, int]:
        """Where a monomial's value will be: ``(block, index)`` with block ``'value'``
        (an output or hidden entry), ``'input'`` or ``'monomial'`` (a product)."""
        if len(monomial) == 1:
            space, index = monomial[0]
            if space == _INPUT:
                self.uses_input = True
            return space, index
        if monomial not in self.monomials:
            self.monomials[monomial] = len(self.monomials)
        return "monomial", self.monomials[monomial]

    def resolve(self, block: str, index: int, n_values: int) -> int:
        """The output column of ``(block, index)`` once every block's size is known."""
        if block == _VALUE:
            return index
        inputs = self.n_in if self.uses_input else 0
        return n_values + (index if block == _INPUT else inputs + index)

    def term(self, constraints: Sequence[tuple[Polynomial, bool]]):
        """``(lower, upper, rows)`` of one DNF term, or ``None`` when it is infeasible."""
        lower = np.full(self.n_in, -np.inf)
        upper = np.full(self.n_in, np.inf)
        rows: list[tuple[dict[tuple[str, int], float], float]] = []
        for poly, strict in constraints:
            constant = poly.get((), 0.0)
            terms = {m: c for m, c in poly.items() if m and c != 0.0}
            if not terms:  # a constant comparison: true drops, false kills the term
                if constant > 0 or (strict and constant == 0):
                    return None
                continue
            if len(terms) == 1:
                ((monomial, a),) = terms.items()
                if len(monomial) == 1 and monomial[0][0] == _INPUT:
                    i = monomial[0][1]
                    bound = _bound(-constant, a, strict)
                    if a > 0:
                        upper[i] = min(upper[i], bound)
                    else:
                        lower[i] = max(lower[i], bound)
                    continue
            rhs = 0.0 - constant
            if strict:
                rhs = float(np.nextafter(rhs, -np.inf))
            rows.append(({self.column(m): c for m, c in terms.items()}, rhs))
        if np.any(lower > upper):
            return None
        return lower, upper, rows


def _bound(value: float, coeff: float, strict: bool) -> float:
    """The bound ``value / coeff`` of ``coeff x <= value`` (``<`` when strict), widened
    by a float64 step when the division rounds, so the box never loses a point."""
    bound = value / coeff
    outward = np.inf if coeff > 0 else -np.inf
    if coeff not in (1.0, -1.0):
        bound = float(np.nextafter(bound, outward))
    return bound


def _dnf(query: Any) -> list[list[Any]]:
    """The query's DNF: a list of terms, each a list of comparison nodes."""
    terms: list[list[Any]] = [[]]
    for assertion in query.assertions:
        options = assertion.expr.to_dnf()
        if len(terms) * max(1, len(options)) > MAX_DNF_TERMS:
            raise SpecError(f"the query expands to more than {MAX_DNF_TERMS} DNF terms")
        terms = [t + list(option) for t in terms for option in options]
    return terms


@dataclass
class _Layout:
    """Where each variable lives: in the network input or in the value vector."""

    entries: dict[str, tuple[str, int, tuple[int, ...]]] = field(default_factory=dict)
    n_in: int = 0
    n_values: int = 0

    @classmethod
    def of(cls, declared: list[tuple[Any, list[Variable]]]) -> _Layout:
        layout = cls()
        for _, variables in declared:
            for v in (v for v in variables if v.kind == "input"):
                layout.entries[v.name] = (_INPUT, layout.n_in, v.shape)
                layout.n_in += v.size
        for _, variables in declared:
            for v in [v for v in variables if v.kind == "output"] + [
                v for v in variables if v.kind == "hidden"
            ]:
                layout.entries[v.name] = (_VALUE, layout.n_values, v.shape)
                layout.n_values += v.size
        return layout


def _compile_spec(query: Any, layout: _Layout, path: str | None):
    """The cases of the query as ``(lower, upper, unsafe half-spaces)`` (a free input entry
    has an infinite bound: see :func:`~verifiNN.io.free_inputs.boxed_cases`) and the extra
    output columns they need."""
    compiler = _Compiler(layout.entries, layout.n_in)
    boxes: dict[bytes, tuple[np.ndarray, np.ndarray, list]] = {}
    for term in _dnf(query):
        alternatives: list[list[tuple[Polynomial, bool]]] = [[]]
        for comparison in term:
            options = compiler.comparisons(comparison)
            alternatives = [a + o for a in alternatives for o in options]
        for constraints in alternatives:
            found = compiler.term(constraints)
            if found is None:
                continue
            lower, upper, rows = found
            key = lower.tobytes() + upper.tobytes()
            boxes.setdefault(key, (lower, upper, []))[2].append(rows)
    n_out = layout.n_values + (layout.n_in if compiler.uses_input else 0) + len(compiler.monomials)
    cases = []
    for lower, upper, terms in boxes.values():
        disjuncts = []
        for rows in terms:
            C = np.zeros((len(rows), n_out))
            d = np.zeros(len(rows))
            for r, (coeffs, rhs) in enumerate(rows):
                for (block, index), coeff in coeffs.items():
                    C[r, compiler.resolve(block, index, layout.n_values)] += coeff
                d[r] = rhs
            disjuncts.append(HalfSpaces(C, d))
        cases.append((lower, upper, tuple(disjuncts)))
    if not cases:  # every term is infeasible: nothing is unsafe
        cases = [(np.zeros(layout.n_in), np.zeros(layout.n_in), ())]
    return cases, n_out, compiler


def _entry_name(layout: _Layout, index: int) -> str:
    for name, (space, start, shape) in layout.entries.items():
        if space == _INPUT and start <= index < start + math.prod(shape):
            position = np.unravel_index(index - start, shape)
            return f"{name}[{','.join(str(int(p)) for p in position)}]"
    return f"#{index}"


# ------------------------------------------------------------------ the graph
def _models(
    declared: list[tuple[Any, list[Variable]]], networks: Mapping[str, str | os.PathLike]
) -> dict[str, OnnxModel]:
    """The ONNX model of every declared network (``equal-to`` ones share their twin's)."""
    needed = [net.name for net, _ in declared if not net.equal_to]
    given = set(networks)
    missing, extra = [n for n in needed if n not in given], sorted(given - set(needed))
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"no --network for {', '.join(missing)}")
        if extra:
            parts.append(f"--network {', '.join(extra)} is not a network of the query")
        raise InvalidInputError("; ".join(parts) + f" (the query declares {needed})")
    models: dict[str, OnnxModel] = {}
    for net, _ in declared:
        if net.equal_to:
            if net.equal_to not in models:
                raise SpecError(f"network {net.name} is equal-to {net.equal_to}, declared later")
            models[net.name] = models[net.equal_to]
        else:
            models[net.name] = read_model(networks[net.name])
    return models


def _match(model: OnnxModel, variables: list[Variable], kind: str, net: str) -> list[str]:
    """The ONNX tensor of each declared variable of ``kind`` (inputs and outputs in order)."""
    mine = [v for v in variables if v.kind == kind]
    if kind == "hidden":
        return [v.tensor or "" for v in mine]
    tensors = model.inputs if kind == "input" else model.outputs
    if len(tensors) != len(mine):
        raise SpecError(
            f"network {net} declares {len(mine)} {kind}(s) but {model.source} has "
            f"{len(tensors)} ({[t.name for t in tensors]})"
        )
    for v, t in zip(mine, tensors):
        model_type = _ONNX_TYPES.get(t.elem_type, onnx.TensorProto.DataType.Name(t.elem_type))
        if v.dtype != "real" and v.dtype != model_type:
            raise SpecError(
                f"{kind} {v.name} of network {net} is declared {v.dtype}, but the model's "
                f"{t.name!r} is {model_type} (declare it real to analyse it in real arithmetic)"
            )
        if kind == "input" and math.prod(t.full) != v.size:
            raise SpecError(
                f"input {v.name} of network {net} has shape {list(v.shape)}, but the "
                f"model's input {t.name!r} has {list(t.dims)}"
            )
    return [t.name for t in tensors]


def _input_independent(model: OnnxModel, wanted: Sequence[str]) -> set[str]:
    """The ``wanted`` tensors whose values do not depend on the model's input values:
    computed from constants and from shapes only (``Shape``, ``Size``). Random ops and
    nodes with subgraphs (which may read any outer tensor) count as dependent."""
    graph = model.proto.graph
    dependent = {t.name for t in model.inputs}
    produced = {o for node in graph.node for o in node.output if o} | set(model.constants)
    subgraph = (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
    for node in graph.node:  # ONNX graphs are topologically sorted
        opaque = node.op_type in NEVER_FOLDED or any(a.type in subgraph for a in node.attribute)
        reads = node.op_type not in ("Shape", "Size") and any(i in dependent for i in node.input)
        if opaque or reads:
            dependent.update(node.output)
    return {w for w in wanted if w in produced and w not in dependent}


def _constant_values(model: OnnxModel, names: Sequence[str]) -> list[np.ndarray]:
    """The values of input-independent tensors (ONNX's reference implementation, on
    zero inputs: their values do not matter)."""
    feeds = {
        t.name: np.zeros(t.full, onnx.helper.tensor_dtype_to_np_dtype(t.elem_type))
        for t in model.inputs
    }
    try:
        values = ReferenceEvaluator(model.proto).run(list(names), feeds)
    except Exception as exc:  # the reference raises whatever numpy raises
        message = f"{model.source}: cannot evaluate constant tensors {list(names)}: {exc}"
        raise SpecError(message) from None
    return [np.asarray(v, np.float64).reshape(-1) for v in values]


def _convert_or_evaluate(
    builder: GraphBuilder,
    model: OnnxModel,
    feeds: dict[str, Data],
    wanted: Sequence[str],
    exact: set[str],
) -> list[Data]:
    """The IR values of ``wanted`` tensors: converted nodes, or, for a tensor that does
    not depend on the input (``Shape`` of the input, a constant), a node holding its value
    (``0 x[0] + c``; added to ``exact``: it rounds nothing)."""
    constant = _input_independent(model, wanted)
    converted = iter(convert_into(builder, model, feeds, [w for w in wanted if w not in constant]))
    values = dict(zip(sorted(constant), _constant_values(model, sorted(constant)))) if constant \
        else {}  # fmt: skip
    found = []
    for name in wanted:
        if name not in constant:
            found.append(next(converted))
            continue
        value = values[name]
        first = builder.add(Slice(0, 0, 1), ["X"], f"{name}/anchor", name)
        op = Dense(as_tensor(np.zeros((value.size, 1))), as_tensor(value))
        node = builder.add(op, [first], name, name)
        exact.update((first, node))
        found.append(Data(node, (value.size,)))
    return found


def _build(declared, models, layout: _Layout, compiler: _Compiler, source: str):
    """The query's network (simplified, with its origin), the same graph unsimplified,
    and the names of the nodes that multiply declared variables (see the module docstring)."""
    builder = GraphBuilder("X", (max(layout.n_in, 1),), source)
    value_nodes, parts, constants = [], [], set()
    for net, variables in declared:
        model = models[net.name]
        feeds, part_feeds = {}, []
        for v, tensor in zip([v for v in variables if v.kind == "input"],
                             _match(model, variables, "input", net.name)):  # fmt: skip
            _, start, _ = layout.entries[v.name]
            full = next(t.full for t in model.inputs if t.name == tensor)
            node = builder.add(Slice(0, start, start + v.size), ["X"], v.name, v.name)
            feeds[tensor] = Data(node, full)
            part_feeds.append((tensor, start, v.size, full))
        outputs = _match(model, variables, "output", net.name)
        hidden = _match(model, variables, "hidden", net.name)
        wanted_vars = [v for v in variables if v.kind == "output"] + [
            v for v in variables if v.kind == "hidden"
        ]
        found = _convert_or_evaluate(builder, model, feeds, outputs + hidden, constants)
        for v, data in zip(wanted_vars, found):
            if math.prod(data.shape) != v.size:
                raise SpecError(
                    f"{v.kind} {v.name} of network {net.name} has {v.size} entries, but "
                    f"the model's tensor has shape {list(data.shape)}"
                )
            value_nodes.append(builder.view(data, (v.size,), v.name))
        names = outputs + hidden
        parts.append(OnnxPart(model.proto.SerializeToString(), tuple(part_feeds),
                              tuple((n, v.size) for n, v in zip(names, wanted_vars))))  # fmt: skip
    columns = list(value_nodes)
    terms = [(i,) for i in range(layout.n_values)]
    if compiler.uses_input:
        columns.append("X")
        terms += [(layout.n_values + i,) for i in range(layout.n_in)]
    values = builder.add(Concat(0), value_nodes, "values", "values") if len(value_nodes) > 1 \
        else value_nodes[0]  # fmt: skip
    products = set()
    for monomial in compiler.monomials:
        factors = []
        for space, index in monomial:
            holder, at = ("X", index) if space == _INPUT else (values, index)
            factors.append(builder.add(Slice(0, at, at + 1), [holder], "factor", "monomial"))
        node = factors[0]
        for other in factors[1:]:
            node = builder.add(Mul(), [node, other], "monomial", "monomial")
            products.add(node)
        columns.append(node)
        terms.append(tuple((layout.n_values + i) if s == _INPUT else i for s, i in monomial))
    output = builder.add(Concat(0), columns, "query", "query") if len(columns) > 1 else columns[0]
    network = Network.from_graph(builder.shapes["X"], builder.nodes, output, "argmax", "X")
    origin = ModelOrigin(source, None, None, tuple(parts), tuple(terms))
    return simplify(network).with_origin(origin), network, frozenset(products | constants)


def load_query(path: str | os.PathLike, networks: Mapping[str, str | os.PathLike]) -> Query:
    """Read a VNN-LIB 2.0 query and its ONNX models into one network and specification.

    Args:
        path: the query file (``path.gz`` when ``path`` is absent).
        networks: declared network name -> ONNX file, for every network not
            declared ``equal-to`` another (the solver interface's ``--network``).

    Returns:
        The compiled :class:`Query`.

    Raises:
        SpecError: a malformed query or one verifiNN cannot model (named, with
            its line where the parser gives one).
        InvalidInputError: missing or unneeded ``--network`` models.
        ModelLoadError, UnsupportedModelError: a model that cannot be read.
    """
    path = str(path)
    text = read_bytes(path, SpecError, "VNN-LIB file").decode("utf-8", errors="replace")
    query = parse_query(text, path)
    declared = _declared(query)
    if not declared:
        raise SpecError("the query declares no network", path=path)
    layout = _Layout.of(declared)
    cases, n_out, compiler = _compile_spec(query, layout, path)
    models = _models(declared, networks)
    try:
        network, graph, products = _build(declared, models, layout, compiler, path)
    except SpecError as exc:
        raise SpecError(str(exc), path=path) from None
    name = Path(path).name.removesuffix(".gz").removesuffix(".vnnlib")
    cases = boxed_cases(cases, graph, lambda i: _entry_name(layout, i), path)
    spec = Specification(tuple(cases), layout.n_in, n_out, path=path, name=name)
    spec.validate_for(network)
    variables = tuple(v for _, vs in declared for v in vs)
    locations = {
        name: (_INPUT if space == _INPUT else "output", start)
        for name, (space, start, _) in layout.entries.items()
    }
    # integer variables hold exact values (the model's integer ops are exact): no rounding
    declared_types = {v.dtype for v in variables if v.dtype in _PRECISION} or {"real"}
    float_format = max(declared_types, key=_PRECISION.index)
    return Query(
        network, spec, variables, locations, path, graph, products,
        None if float_format == "real" else float_format,
    )  # fmt: skip


def query_spec(text: str, path: str | None, network: Network | None = None) -> Specification:
    """The specification of a VNN-LIB 2.0 query over one already loaded network.

    For the ``MODEL PROP`` form (``verifinn verify model.onnx prop.vnnlib``,
    :func:`~verifiNN.io.vnnlib.load_vnnlib`): the query must declare one network
    with one input and one output and no hidden variables, and its assertions
    must be linear in the output (input entries bounded by constants).

    Raises:
        SpecError: a query outside that form (use :func:`load_query`), or one
            whose sizes do not fit ``network``.
    """
    query = parse_query(text, path)
    declared = _declared(query)
    kinds = [v.kind for _, vs in declared for v in vs]
    if len(declared) != 1 or kinds.count("input") != 1 or kinds != ["input", "output"]:
        raise SpecError(
            "this query needs its models named (verifinn verify QUERY --network NAME=MODEL): "
            "it is not one network with one input and one output",
            path=path,
        )
    layout = _Layout.of(declared)
    cases, n_out, compiler = _compile_spec(query, layout, path)
    if compiler.uses_input or compiler.monomials:
        raise SpecError(
            "this query couples inputs with outputs or multiplies variables: name its model "
            "(verifinn verify QUERY --network NAME=MODEL)",
            path=path,
        )
    name = None if path is None else Path(path).name.removesuffix(".gz").removesuffix(".vnnlib")
    cases = boxed_cases(cases, network, lambda i: _entry_name(layout, i), path)
    spec = Specification(tuple(cases), layout.n_in, n_out, path=path, name=name)
    if network is not None:
        spec.validate_for(network)
    return spec
