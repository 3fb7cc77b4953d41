"""VNN-LIB 1.0 property files, as used in VNN-COMP.

A file declares the flattened input ``X_i`` and output ``Y_j`` variables and
asserts constraints on them; the conjunction of all asserts is the *unsafe*
set. Supported:

* ``(declare-const X_i Real)`` / ``(declare-const Y_j Real)``; every index from
  0 up must be declared;
* ``(assert F)`` where ``F`` nests ``and`` / ``or`` over comparisons ``<=``,
  ``>=``, ``<``, ``>``, ``=`` (chains such as ``(<= a b c)`` included);
* terms: decimal or scientific numbers, variables, and linear arithmetic
  ``+``, ``-``, ``*`` (by a constant), ``/`` (by a constant);
* comments from ``;`` to the end of the line; the harmless SMT-LIB commands
  ``check-sat``, ``get-model``, ``exit``, ``set-logic``, ``set-info`` and
  ``set-option`` are ignored.

Strict comparisons ``<`` / ``>`` are read as ``<=`` / ``>=``: the unsafe set
grows by its boundary, which keeps ``unsat`` sound (as all VNN-COMP tools do).

The asserts are expanded into disjunctive normal form. In every term the
constraints on ``X`` must be bounds on single variables (they form a box, and
every ``X_i`` must end up with finite lower and upper bounds) and those on
``Y`` are linear (they form a :class:`~verifiNN.specs.HalfSpaces`). Terms with
the same box are grouped into one :class:`~verifiNN.specs.Case`; terms whose box
is empty are dropped. Constraints coupling several inputs, or inputs with
outputs, are not supported and raise :class:`~verifiNN.errors.SpecError`.

Speed: one compiled regex scans the whole text; the common flat lines
``(declare-const X_i Real)`` and ``(assert (<= X_i c))`` are consumed whole by
it, so a 784-pixel MNIST property parses in a few milliseconds.
"""

from __future__ import annotations

import itertools
import math
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from verifiNN.errors import SpecError
from verifiNN.io.files import read_bytes
from verifiNN.io.query import is_vnnlib2, query_spec
from verifiNN.specs import Box, Case, HalfSpaces, Specification

__all__ = ["MAX_DNF_TERMS", "VNNLIB_VERSIONS", "load_vnnlib", "parse_vnnlib"]

#: Largest number of DNF terms an expansion may produce before giving up.
MAX_DNF_TERMS = 100_000

VNNLIB_VERSIONS = ("1.0", "2.0")
"""The VNN-LIB versions read: 1.0 by this module's parser, 2.0 by the standard's
(:mod:`verifiNN.io.query`)."""

_NUM = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_NUM_RE = re.compile(_NUM + r"\Z")
_VAR_RE = re.compile(r"([XY])_(\d+)\Z")
_IDENT_RE = re.compile(r"[A-Za-z_][\w.]*\Z")
_SCAN = re.compile(
    rf"""
    (?:\s+|;[^\n]*)*   # whitespace and comments ride along with the next token
    (?:
      (?P<decl>\(\s*declare-const\s+(?P<dname>[^\s();]+)\s+Real\s*\))
    | (?P<bound>\(\s*assert\s*\(\s*(?P<bop>[<>]=?)\s+(?P<bvar>[XY]_\d+)\s+(?P<bnum>{_NUM})
                 \s*\)\s*\))
    | (?P<open>\()
    | (?P<close>\))
    | (?P<atom>[^\s();]+)
    | (?P<end>\Z)
    )
    """,
    re.VERBOSE,
)
_IGNORED = {"check-sat", "get-model", "exit", "set-logic", "set-info", "set-option"}
_COMPARISONS = {"<=", ">=", "<", ">", "="}
_UNSUPPORTED = {"not", "=>", "xor", "ite", "distinct", "forall", "exists", "let"}

Var = tuple[str, int]  # ('X', i) or ('Y', j)
Linear = tuple[dict[Var, float], float]  # sum(coef * var) + const
# A classified atom: ("x", index, is_upper, value) | ("y", {j: coef}, rhs) | ("false",)
Atom = tuple
Dnf = list[list[Atom]]


class _Tok:
    __slots__ = ("pos", "text")

    def __init__(self, text: str, pos: int) -> None:
        self.text, self.pos = text, pos


class _List(list):
    __slots__ = ("pos",)


Node = _Tok | _List


def load_vnnlib(path: str | os.PathLike, network: Any = None) -> Specification:
    """Read a VNN-LIB file (optionally gzip-compressed, ``.gz``) into a Specification.

    VNN-LIB 2.0 files (they declare a version or a network) are read by the
    standard's parser (:func:`verifiNN.io.query.query_spec`) when they declare
    one network of one input and one output; queries beyond that need their
    models named (:func:`verifiNN.io.query.load_query`).

    Args:
        path: the ``.vnnlib`` file; ``path.gz`` is read when ``path`` is
            absent, and a ``.gz`` path is decompressed.
        network: when given, the result is checked with ``spec.validate_for(network)``.

    Returns:
        The parsed :class:`~verifiNN.specs.Specification`.

    Raises:
        SpecError: when the file cannot be read, is malformed, or does not fit ``network``.
    """
    path = str(path)
    data = read_bytes(path, SpecError, "VNN-LIB file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(f"cannot read property file: {exc}", path=path) from exc
    if is_vnnlib2(text):
        return query_spec(text, path, network)
    spec = parse_vnnlib(text, path=path)
    if network is not None:
        spec.validate_for(network)
    return spec


def parse_vnnlib(text: str, path: str | os.PathLike | None = None) -> Specification:
    """Parse VNN-LIB text into a Specification.

    Args:
        text: the file's contents.
        path: the file name, used in error messages and as the spec's path/name.

    Returns:
        The :class:`~verifiNN.specs.Specification` (see the module docstring).

    Raises:
        SpecError: with line and column, on any syntax or semantic fault.
    """
    return _Parser(text, None if path is None else str(path)).parse()


class _Parser:
    def __init__(self, text: str, path: str | None) -> None:
        self.text, self.path = text, path
        self.vars: dict[str, tuple[Var, int]] = {}  # name -> (var, declaration offset)
        self.lower: dict[int, float] = {}
        self.upper: dict[int, float] = {}
        self.rows: list[Atom] = []  # top-level Y constraints
        self.disjunctive: list[Dnf] = []  # top-level asserts with several DNF terms
        self.contradiction: int | None = None  # offset of an assert that is always false

    # ----- errors -------------------------------------------------------
    def error(self, message: str, pos: int | None) -> SpecError:
        if pos is None:
            return SpecError(message, path=self.path)
        line = self.text.count("\n", 0, pos) + 1
        column = pos - self.text.rfind("\n", 0, pos)
        return SpecError(message, path=self.path, line=line, column=column)

    # ----- scanning -----------------------------------------------------
    def parse(self) -> Specification:
        stack: list[_List] = []
        for m in _SCAN.finditer(self.text):
            kind = m.lastgroup
            if kind == "bound" and not stack:
                self.fast_bound(m)
            elif kind == "decl" and not stack:
                self.declare(m.group("dname"), m.start("dname"))
            elif kind == "open":
                node = _List()
                node.pos = m.start(kind)
                stack.append(node)
            elif kind == "close":
                if not stack:
                    raise self.error("unexpected ')' with no matching '('", m.start(kind))
                node = stack.pop()
                if stack:
                    stack[-1].append(node)
                else:
                    self.command(node)
            elif kind == "atom":
                if not stack:
                    raise self.error(
                        f"unexpected token {m.group(kind)!r} outside a command", m.start(kind)
                    )
                stack[-1].append(_Tok(m.group(kind), m.start(kind)))
            elif kind == "end":
                break
            else:
                word = "declare-const" if kind == "decl" else "assert"
                raise self.error(f"'{word}' is only allowed at top level", m.start(kind))
        if stack:
            raise self.error("unbalanced parentheses: this '(' is never closed", stack[0].pos)
        return self.build()

    def declare(self, name: str, pos: int) -> None:
        match = _VAR_RE.match(name)
        if match is None:
            raise self.error(f"unsupported variable name {name!r}: expected X_<i> or Y_<j>", pos)
        if name in self.vars:
            raise self.error(f"variable {name} is declared twice", pos)
        self.vars[name] = ((match.group(1), int(match.group(2))), pos)

    def variable(self, name: str, pos: int) -> Var:
        entry = self.vars.get(name)
        if entry is None:
            raise self.error(f"undeclared variable {name!r}", pos)
        return entry[0]

    def number(self, text: str, pos: int) -> float:
        value = float(text)
        if not math.isfinite(value):
            raise self.error(f"number {text} is out of range", pos)
        return value + 0.0  # no negative zeros

    def fast_bound(self, m: re.Match) -> None:
        name, op, text = m.group("bvar", "bop", "bnum")
        entry = self.vars.get(name)
        if entry is None:
            raise self.error(f"undeclared variable {name!r}", m.start("bvar"))
        (kind, index), value = entry[0], float(text) + 0.0
        if not math.isfinite(value):
            raise self.error(f"number {text} is out of range", m.start("bnum"))
        if kind == "Y":
            row = {index: 1.0} if op[0] == "<" else {index: -1.0}
            self.rows.append(("y", row, value if op[0] == "<" else 0.0 - value))
        elif op[0] == "<":
            if value < self.upper.get(index, math.inf):
                self.upper[index] = value
        elif value > self.lower.get(index, -math.inf):
            self.lower[index] = value

    def add_x_bound(self, index: int, is_upper: bool, value: float) -> None:
        if is_upper:
            self.upper[index] = min(self.upper.get(index, math.inf), value)
        else:
            self.lower[index] = max(self.lower.get(index, -math.inf), value)

    # ----- commands -----------------------------------------------------
    def command(self, node: _List) -> None:
        if not node or not isinstance(node[0], _Tok):
            raise self.error("expected a command such as (assert ...)", node.pos)
        head = node[0].text
        if head == "declare-const":
            if len(node) != 3 or not all(isinstance(t, _Tok) for t in node[1:]):
                raise self.error("expected (declare-const <name> Real)", node.pos)
            if node[2].text != "Real":
                raise self.error(f"unsupported sort {node[2].text!r}: only Real", node[2].pos)
            self.declare(node[1].text, node[1].pos)
        elif head == "assert":
            if len(node) != 2:
                raise self.error("expected exactly one formula in (assert ...)", node.pos)
            dnf = self.formula(node[1])
            if len(dnf) == 1:
                for atom in dnf[0]:
                    self.apply_common(atom, node.pos)
            else:
                if not dnf and self.contradiction is None:
                    self.contradiction = node.pos
                self.disjunctive.append(dnf)
        elif head not in _IGNORED:
            raise self.error(f"unknown command {head!r}", node[0].pos)

    def apply_common(self, atom: Atom, pos: int) -> None:
        if atom[0] == "x":
            self.add_x_bound(*atom[1:])
        elif atom[0] == "y":
            self.rows.append(atom)
        elif self.contradiction is None:
            self.contradiction = pos

    # ----- formulas and terms -------------------------------------------
    def formula(self, node: Node) -> Dnf:
        if isinstance(node, _Tok):
            if node.text in ("true", "false"):
                return [[]] if node.text == "true" else []
            raise self.error(f"expected a formula, found {node.text!r}", node.pos)
        if not node or not isinstance(node[0], _Tok):
            raise self.error("expected a formula such as (<= X_0 1)", node.pos)
        op, args = node[0].text, node[1:]
        if op == "and":
            dnf: Dnf = [[]]
            for arg in args:
                sub = self.formula(arg)
                if len(dnf) == 1 and len(sub) == 1:
                    dnf[0].extend(sub[0])  # dnf[0] is always a fresh list here
                else:
                    dnf = self.product(dnf, sub, node.pos)
            return dnf
        if op == "or":
            terms: Dnf = []
            for arg in args:
                terms.extend(self.formula(arg))
                if len(terms) > MAX_DNF_TERMS:
                    raise self.error(f"formula expands to over {MAX_DNF_TERMS} cases", node.pos)
            return terms
        if op in _COMPARISONS:
            if len(args) < 2:
                raise self.error(f"'{op}' needs at least two arguments", node.pos)
            terms_ = [self.term(arg) for arg in args]
            atoms: list[Atom] = []
            for a, b in itertools.pairwise(terms_):
                if op in ("<=", "<", "="):
                    atoms.append(self.atom(a, b, node.pos))
                if op in (">=", ">", "="):
                    atoms.append(self.atom(b, a, node.pos))
            return [atoms]
        if op in _UNSUPPORTED:
            raise self.error(f"unsupported operator {op!r} in a property", node[0].pos)
        raise self.error(f"unknown operator {op!r} where a formula was expected", node[0].pos)

    def product(self, left: Dnf, right: Dnf, pos: int) -> Dnf:
        if len(left) * len(right) > MAX_DNF_TERMS:
            raise self.error(f"formula expands to over {MAX_DNF_TERMS} cases", pos)
        return [a + b for a in left for b in right]

    def term(self, node: Node) -> Linear:
        if isinstance(node, _Tok):
            text = node.text
            if _NUM_RE.match(text):
                return {}, self.number(text, node.pos)
            if text in self.vars:
                return {self.vars[text][0]: 1.0}, 0.0
            if _IDENT_RE.match(text) and text not in _COMPARISONS:
                raise self.error(f"undeclared variable {text!r}", node.pos)
            raise self.error(f"unknown token {text!r} where a term was expected", node.pos)
        if not node or not isinstance(node[0], _Tok):
            raise self.error("expected a term such as X_0, 1.5 or (+ ...)", node.pos)
        op, args = node[0].text, [self.term(a) for a in node[1:]]
        if op in ("+", "-", "*", "/") and not args:
            raise self.error(f"'{op}' needs arguments", node.pos)
        if op == "+":
            return _combine(args, [1.0] * len(args))
        if op == "-":
            return _combine(args, [-1.0] if len(args) == 1 else [1.0] + [-1.0] * (len(args) - 1))
        if op == "*":
            variable = [a for a in args if a[0]]
            if len(variable) > 1:
                raise self.error("non-linear term: a product of variables", node.pos)
            factor = math.prod(a[1] for a in args if not a[0])
            base = variable[0] if variable else ({}, 1.0)
            return _combine([base], [factor])
        if op == "/":
            if any(a[0] for a in args[1:]):
                raise self.error("non-linear term: division by a variable", node.pos)
            divisor = math.prod(a[1] for a in args[1:])
            if divisor == 0:
                raise self.error("division by zero", node.pos)
            return _combine(args[:1], [1.0 / divisor])
        if op in _COMPARISONS or op in ("and", "or"):
            raise self.error(f"'{op}' where a term was expected", node[0].pos)
        raise self.error(f"unknown function {op!r}", node[0].pos)

    def atom(self, left: Linear, right: Linear, pos: int) -> Atom:
        """Classify ``left <= right``."""
        coefs, const = _combine([left, right], [1.0, -1.0])  # coefs . v + const <= 0
        coefs = {v: c for v, c in coefs.items() if c != 0.0}
        kinds = {v[0] for v in coefs}
        if not kinds:
            return ("true",) if const <= 0 else ("false",)
        if kinds == {"X"}:
            if len(coefs) > 1:
                raise self.error("constraints coupling several inputs are not supported", pos)
            ((_, index), c) = next(iter(coefs.items()))
            return ("x", index, c > 0, -const / c + 0.0)
        if kinds == {"Y"}:
            return ("y", {j: c for (_, j), c in coefs.items()}, -const + 0.0)
        raise self.error("constraints mixing inputs and outputs are not supported", pos)

    # ----- assembling the specification ---------------------------------
    def indices(self, kind: str) -> int:
        found = sorted(v[1] for v, _ in self.vars.values() if v[0] == kind)
        if not found:
            raise self.error(f"no {kind}_ variables are declared", None)
        if found[-1] != len(found) - 1:
            missing = next(i for i, j in enumerate(found) if i != j)
            raise self.error(f"{kind}_{missing} is not declared (indices must run from 0)", None)
        return len(found)

    def build(self) -> Specification:
        n_in, n_out = self.indices("X"), self.indices("Y")
        base_lo, base_hi = np.full(n_in, -np.inf), np.full(n_in, np.inf)
        if self.lower:
            base_lo[list(self.lower)] = list(self.lower.values())
        if self.upper:
            base_hi[list(self.upper)] = list(self.upper.values())
        base_rows = self.rows
        terms: Dnf = [[]]
        for dnf in self.disjunctive:
            terms = self.product(terms, dnf, 0)
        if self.contradiction is not None:
            terms = []
        groups: dict[bytes, tuple[np.ndarray, np.ndarray, dict[int, HalfSpaces]]] = {}
        halves: dict[tuple[int, ...], HalfSpaces] = {}  # by the ids of a term's Y atoms
        empty_box: str | None = None
        for term in terms:
            if any(a[0] == "false" for a in term):
                continue
            lo, hi = base_lo, base_hi
            if any(a[0] == "x" for a in term):
                lo, hi = base_lo.copy(), base_hi.copy()
                for a in term:
                    if a[0] == "x":
                        if a[2]:
                            hi[a[1]] = min(hi[a[1]], a[3])
                        else:
                            lo[a[1]] = max(lo[a[1]], a[3])
            if (lo > hi).any():
                i = int(np.flatnonzero(lo > hi)[0])
                empty_box = empty_box or f"X_{i} in [{float(lo[i])!r}, {float(hi[i])!r}]"
                continue
            if not (np.isfinite(lo).all() and np.isfinite(hi).all()):
                self.missing_bound(lo, hi)
            y_atoms = [a for a in term if a[0] == "y"]
            y_key = tuple(map(id, y_atoms))
            if y_key not in halves:
                halves[y_key] = self.halfspaces(base_rows + y_atoms, n_out)
            key = (lo + 0.0).tobytes() + (hi + 0.0).tobytes()
            if key not in groups:
                groups[key] = (lo, hi, {})
            groups[key][2].setdefault(id(halves[y_key]), halves[y_key])
        if not groups:
            reason = f" (empty input box: {empty_box})" if empty_box else ""
            raise self.error(
                f"the asserts are contradictory: the unsafe set is empty{reason}",
                self.contradiction,
            )
        cases = tuple(Case(Box(lo, hi), tuple(hs.values())) for lo, hi, hs in groups.values())
        name = None
        if self.path:
            name = Path(self.path).name.removesuffix(".gz").removesuffix(".vnnlib")
        return Specification(cases, n_in, n_out, path=self.path, name=name)

    def missing_bound(self, lo: np.ndarray, hi: np.ndarray) -> None:
        for bounds, what in ((lo, "lower"), (hi, "upper")):
            bad = np.flatnonzero(~np.isfinite(bounds))
            if bad.size:
                name = f"X_{bad[0]}"
                raise self.error(
                    f"input {name} has no finite {what} bound"
                    + (f" ({bad.size - 1} more inputs lack one)" if bad.size > 1 else ""),
                    self.vars[name][1],
                )

    def halfspaces(self, rows: list[Atom], n_out: int) -> HalfSpaces:
        C = np.zeros((len(rows), n_out))
        d = np.empty(len(rows))
        for r, (_, coefs, rhs) in enumerate(rows):
            for j, c in coefs.items():
                C[r, j] = c
            d[r] = rhs
        return HalfSpaces(C, d)


def _combine(terms: list[Linear], weights: list[float]) -> Linear:
    coefs: dict[Var, float] = {}
    const = 0.0
    for (cs, k), w in zip(terms, weights):
        const += w * k
        for v, c in cs.items():
            coefs[v] = coefs.get(v, 0.0) + w * c
    return coefs, const
