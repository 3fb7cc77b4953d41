"""Properties to verify: input regions, unsafe output regions, specifications.

A :class:`Specification` is what every engine consumes. It follows the VNN-COMP
convention: it describes the *unsafe* behaviour, so a counterexample is an input
``x`` with output ``y = network(x)`` that lies in the unsafe set, and the property
holds (``unsat``) when no such ``x`` exists.

A specification is a disjunction of :class:`Case` objects. Each case pairs

* an input region over the flattened network input: a :class:`Box` or an
  :class:`LpBall` (optionally intersected with a valid-domain box), and
* an unsafe output region over the flattened network output: a disjunction
  (tuple) of conjunctions, each a :class:`HalfSpaces` ``C @ y <= d``.

Box membership is tested with a tiny tolerance, :data:`INPUT_TOL`: ``x`` is in
``Box(lower, upper)`` when ``lower - s <= x <= upper + s`` with
``s = INPUT_TOL * max(1, |bound|)`` per coordinate (absolute near zero, relative
for large bounds). It absorbs the last-bit rounding of a counterexample that a
solver placed exactly on the boundary, and nothing more. Output constraints are
tested exactly unless a ``tol`` is passed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from verifiNN.errors import InvalidInputError, SpecError

__all__ = [
    "DUAL_NORMS",
    "INPUT_TOL",
    "NORM_ORDERS",
    "Box",
    "Case",
    "HalfSpaces",
    "InputRegion",
    "LpBall",
    "Specification",
    "norm_distance",
    "normalize_norm",
    "robustness_spec",
]

#: Tolerance of input-region membership tests (see the module docstring).
INPUT_TOL = 1e-9

NORM_ORDERS: dict[str, float] = {"inf": np.inf, "1": 1, "2": 2}
"""Canonical norm name -> its ``ord`` for :func:`numpy.linalg.norm` (the one norm map)."""

DUAL_NORMS: dict[str, str] = {"inf": "1", "1": "inf", "2": "2"}
"""Norm -> its dual norm (``1/p + 1/q = 1``), e.g. for concretising linear bounds on balls."""

_NORM_ALIASES = {a: k for k in NORM_ORDERS for a in (k, "l" + k)} | {"l_inf": "inf"}


def _vector(values: Any, what: str, error: type[Exception] = InvalidInputError) -> np.ndarray:
    """Return ``values`` as a new read-only, flat float64 array."""
    try:
        arr = np.array(values, dtype=np.float64).ravel()
    except (TypeError, ValueError) as exc:
        raise error(f"{what} must be numeric: {exc}") from exc
    arr.flags.writeable = False
    return arr


def _short(arr: np.ndarray) -> str:
    return np.array2string(arr, threshold=6, edgeitems=2, precision=6, separator=", ")


def _slack(bound: np.ndarray, tol: float) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return tol * np.maximum(1.0, np.abs(bound))


def _batch(X: Any, width: int, what: str) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim == 1:
        X = X.reshape(1, -1)
    X = X.reshape(X.shape[0], -1)
    if X.shape[1] != width:
        raise InvalidInputError(f"{what} has {X.shape[1]} entries per row, expected {width}")
    return X


def normalize_norm(norm: Any) -> str:
    """Return the canonical name ``'inf'``, ``'1'`` or ``'2'`` of an Lp norm.

    Args:
        norm: ``'inf'``, ``'1'``, ``'2'`` (also ``'linf'``, ``'l1'``, ``'l2'``) or
            the numbers ``np.inf``, ``1``, ``2``.

    Returns:
        The canonical norm name.
    """
    if isinstance(norm, str):
        key = _NORM_ALIASES.get(norm.strip().lower())
    elif isinstance(norm, (int, float, np.integer, np.floating)) and not isinstance(norm, bool):
        key = {v: k for k, v in NORM_ORDERS.items()}.get(float(norm))
    else:
        key = None
    if key is None:
        raise InvalidInputError(f"norm must be one of 'inf', '1', '2', got {norm!r}")
    return key


def norm_distance(x: Any, x_0: Any, norm: str) -> float:
    """``||x - x_0||`` in ``norm`` (``'inf'``, ``'1'`` or ``'2'``), both flattened."""
    return float(np.linalg.norm(np.ravel(x) - np.ravel(x_0), ord=NORM_ORDERS[norm]))


class _ArrayRecord:
    """Value semantics for frozen dataclasses holding numpy arrays."""

    _fields: tuple[str, ...] = ()

    def _key(self) -> tuple:
        return tuple(
            (v.shape, (v + 0.0).tobytes()) if isinstance(v, np.ndarray) else v
            for v in (getattr(self, f) for f in self._fields)
        )

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._key() == other._key()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self).__name__, self._key()))


@dataclass(frozen=True, eq=False, repr=False)
class Box(_ArrayRecord):
    """An axis-aligned box ``lower <= x <= upper`` over the flattened input.

    Args:
        lower: lower bounds (any shape; flattened), finite.
        upper: upper bounds, same length, finite, ``lower <= upper``.

    Raises:
        InvalidInputError: on non-finite bounds, different lengths or ``lower > upper``.
    """

    lower: np.ndarray
    upper: np.ndarray
    _fields = ("lower", "upper")

    def __post_init__(self) -> None:
        lower = _vector(self.lower, "Box lower bound")
        upper = _vector(self.upper, "Box upper bound")
        if lower.shape != upper.shape:
            raise InvalidInputError(
                f"Box bounds differ in length: lower has {lower.size}, upper {upper.size}"
            )
        if not (np.all(np.isfinite(lower)) and np.all(np.isfinite(upper))):
            raise InvalidInputError("Box bounds must be finite")
        bad = np.flatnonzero(lower > upper)
        if bad.size:
            i = int(bad[0])
            raise InvalidInputError(
                f"Box is empty: lower[{i}] = {float(lower[i])!r} > upper[{i}] = {float(upper[i])!r}"
                + (f" (and {bad.size - 1} more)" if bad.size > 1 else "")
            )
        object.__setattr__(self, "lower", lower)
        object.__setattr__(self, "upper", upper)

    @property
    def size(self) -> int:
        """Number of input coordinates."""
        return int(self.lower.size)

    @property
    def center(self) -> np.ndarray:
        """Midpoint ``(lower + upper) / 2``."""
        return (self.lower + self.upper) / 2

    @property
    def radius(self) -> np.ndarray:
        """Half-widths ``(upper - lower) / 2``."""
        return (self.upper - self.lower) / 2

    def bounding_box(self) -> Box:
        """Return this box (the smallest box containing it)."""
        return self

    def contains_batch(self, X: Any, tol: float = INPUT_TOL) -> np.ndarray:
        """Return which rows of ``X`` (shape ``(m, size)``) lie in the box, up to ``tol``."""
        X = _batch(X, self.size, "input batch")
        lo = self.lower - _slack(self.lower, tol)
        hi = self.upper + _slack(self.upper, tol)
        return np.all((lo <= X) & (hi >= X), axis=1)

    def contains(self, x: Any, tol: float = INPUT_TOL) -> bool:
        """Return whether the flattened ``x`` lies in the box, up to ``tol``."""
        return bool(self.contains_batch(np.ravel(x), tol)[0])

    def project(self, x: Any) -> np.ndarray:
        """The nearest point of the box to ``x`` (flat float64): ``contains(p, tol=0)`` holds."""
        return np.clip(np.asarray(x, np.float64).ravel(), self.lower, self.upper)

    def __repr__(self) -> str:
        return f"Box(size={self.size}, lower={_short(self.lower)}, upper={_short(self.upper)})"


@dataclass(frozen=True, eq=False, repr=False)
class LpBall(_ArrayRecord):
    """The ball ``||x - center||_p <= epsilon``, optionally intersected with a box.

    Args:
        center: centre point (flattened), finite.
        epsilon: radius, finite and ``>= 0``.
        norm: ``'inf'``, ``'1'`` or ``'2'`` (see :func:`normalize_norm`).
        lower: optional lower bound of the valid domain (scalar or per coordinate).
        upper: optional upper bound of the valid domain (scalar or per coordinate).

    Raises:
        InvalidInputError: on invalid values or an empty intersection.
    """

    center: np.ndarray
    epsilon: float
    norm: str = "inf"
    lower: np.ndarray | None = None
    upper: np.ndarray | None = None
    _fields = ("center", "epsilon", "norm", "lower", "upper")

    def __post_init__(self) -> None:
        center = _vector(self.center, "LpBall center")
        if not np.all(np.isfinite(center)):
            raise InvalidInputError("LpBall center must be finite")
        eps = _check_epsilon(self.epsilon)
        norm = normalize_norm(self.norm)
        n = center.size
        lower = _domain_bound(self.lower, n, -np.inf, "lower")
        upper = _domain_bound(self.upper, n, np.inf, "upper")
        if np.any(lower > upper):
            raise InvalidInputError("LpBall domain is empty: some lower bound exceeds its upper")
        gap = np.maximum(lower - center, 0) + np.maximum(center - upper, 0)
        if np.linalg.norm(gap, NORM_ORDERS[norm]) > eps * (1 + INPUT_TOL) + INPUT_TOL:
            raise InvalidInputError("LpBall does not meet its domain box: the region is empty")
        for name, value in (("center", center), ("epsilon", eps), ("norm", norm)):
            object.__setattr__(self, name, value)
        object.__setattr__(self, "lower", None if self.lower is None else lower)
        object.__setattr__(self, "upper", None if self.upper is None else upper)

    @property
    def size(self) -> int:
        """Number of input coordinates."""
        return int(self.center.size)

    @property
    def ord(self) -> float:
        """The norm as a number for :func:`numpy.linalg.norm` (``np.inf``, 1 or 2)."""
        return NORM_ORDERS[self.norm]

    def bounding_box(self) -> Box:
        """Return the box ``clip(center -+ epsilon, lower, upper)``, which contains the region.

        It is exact for the inf-norm and an over-approximation for the 1- and 2-norms.
        """
        lo, hi = self.center - self.epsilon, self.center + self.epsilon
        if self.lower is not None:
            lo = np.maximum(lo, self.lower)
        if self.upper is not None:
            hi = np.minimum(hi, self.upper)
        return Box(lo, np.maximum(hi, lo))

    def contains_batch(self, X: Any, tol: float = INPUT_TOL) -> np.ndarray:
        """Return which rows of ``X`` lie in the region (ball radius relaxed by ``tol``)."""
        X = _batch(X, self.size, "input batch")
        dist = np.linalg.norm(X - self.center, ord=self.ord, axis=1)
        inside = dist <= self.epsilon + _slack(np.float64(self.epsilon), tol)
        if self.lower is not None:
            inside &= np.all(self.lower - _slack(self.lower, tol) <= X, axis=1)
        if self.upper is not None:
            inside &= np.all(self.upper + _slack(self.upper, tol) >= X, axis=1)
        return inside

    def contains(self, x: Any, tol: float = INPUT_TOL) -> bool:
        """Return whether the flattened ``x`` lies in the region, up to ``tol``."""
        return bool(self.contains_batch(np.ravel(x), tol)[0])

    def project(self, x: Any) -> np.ndarray:
        """A point of the region near ``x`` (flat float64), inside *exactly*: the distance to
        the centre, as computed in float64, is at most ``epsilon`` (``contains(p, tol=0)``).

        ``x`` is clipped to the domain box, then pulled towards the centre (coordinates
        past the radius for the inf-norm, a rescaling for the 1- and 2-norms), then the
        last float64 roundings are undone one step at a time. When the centre itself
        lies outside the domain (within the constructor's tolerance), the result may
        still miss the region; callers check ``contains(p, tol=0)``.
        """
        p = np.asarray(x, np.float64).ravel().copy()
        lower = -np.inf if self.lower is None else self.lower
        upper = np.inf if self.upper is None else self.upper
        p = np.clip(p, lower, upper)
        c, eps = self.center, self.epsilon
        if self.norm == "inf":
            p = np.clip(p, c - eps, c + eps)
            for _ in range(4):  # c + eps may round past eps from c: step back inside
                far = np.abs(p - c) > eps
                if not far.any():
                    break
                p[far] = np.nextafter(p[far], c[far])
        else:
            for k in range(48):  # the roundings of c + t (p - c) can exceed eps's own scale
                dist = float(np.linalg.norm(p - c, self.ord))
                if dist <= eps:
                    break
                p = c + (p - c) * (eps / dist) * (1 - 2.0 ** (k - 50))
        return np.clip(p, lower, upper)

    def __repr__(self) -> str:
        text = f"LpBall(center={_short(self.center)}, epsilon={self.epsilon!r}, norm={self.norm!r}"
        if self.lower is not None:
            text += f", lower={_short(self.lower)}"
        if self.upper is not None:
            text += f", upper={_short(self.upper)}"
        return text + ")"


InputRegion = Box | LpBall


def _check_epsilon(epsilon: Any) -> float:
    try:
        eps = float(epsilon)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"epsilon must be a number, got {epsilon!r}") from exc
    if not np.isfinite(eps) or eps < 0:
        raise InvalidInputError(f"epsilon must be finite and >= 0, got {epsilon!r}")
    return eps


def _domain_bound(value: Any, n: int, default: float, which: str) -> np.ndarray:
    if value is None:
        arr = np.full(n, default)
    else:
        arr = np.array(value, dtype=np.float64)
        try:
            arr = np.broadcast_to(arr.ravel() if arr.ndim else arr, (n,)).copy()
        except ValueError as exc:
            raise InvalidInputError(
                f"domain {which} bound must be a scalar or have {n} entries"
            ) from exc
        if np.any(np.isnan(arr)):
            raise InvalidInputError(f"domain {which} bound contains NaN")
    arr.flags.writeable = False
    return arr


@dataclass(frozen=True, eq=False, repr=False)
class HalfSpaces(_ArrayRecord):
    """A conjunction of linear constraints ``C @ y <= d`` on the flattened output.

    Args:
        C: matrix of shape ``(k, n_outputs)`` (a 1-D array is one row).
        d: right-hand sides, shape ``(k,)`` (a scalar when ``k == 1``).

    Raises:
        SpecError: on non-finite entries or mismatched shapes.
    """

    C: np.ndarray
    d: np.ndarray
    _fields = ("C", "d")

    def __post_init__(self) -> None:
        C = np.array(self.C, dtype=np.float64)
        if C.ndim == 1:
            C = C.reshape(1, -1)
        d = np.array(self.d, dtype=np.float64).ravel()
        if C.ndim != 2 or d.shape != (C.shape[0],):
            raise SpecError(
                "HalfSpaces needs C of shape (k, n) and d of shape (k,), "
                f"got {C.shape} and {d.shape}"
            )
        if not (np.all(np.isfinite(C)) and np.all(np.isfinite(d))):
            raise SpecError("HalfSpaces entries must be finite")
        C.flags.writeable = False
        d.flags.writeable = False
        object.__setattr__(self, "C", C)
        object.__setattr__(self, "d", d)

    @property
    def num_outputs(self) -> int:
        """Length of the output vector the constraints act on."""
        return int(self.C.shape[1])

    @property
    def num_constraints(self) -> int:
        """Number of rows ``k``."""
        return int(self.C.shape[0])

    def contains_batch(self, Y: Any, tol: float = 0.0) -> np.ndarray:
        """Return which rows of ``Y`` satisfy every constraint, ``C @ y <= d + tol``."""
        Y = _batch(Y, self.num_outputs, "output batch")
        return np.all(self.d + tol >= Y @ self.C.T, axis=1)

    def contains(self, y: Any, tol: float = 0.0) -> bool:
        """Return whether the flattened ``y`` satisfies every constraint, up to ``tol``."""
        return bool(self.contains_batch(np.ravel(y), tol)[0])

    def __repr__(self) -> str:
        k = self.num_constraints
        if k > 4:
            return f"HalfSpaces({k} constraints on {self.num_outputs} outputs)"
        rows = [_format_row(c, b) for c, b in zip(self.C, self.d)]
        return "HalfSpaces(" + (" and ".join(rows) or "true") + ")"


def _format_row(coefs: np.ndarray, rhs: float) -> str:
    terms = []
    for j in np.flatnonzero(coefs):
        c = float(coefs[j])
        mag = "" if abs(c) == 1 else f"{abs(c):g}*"
        sign = "-" if c < 0 else "+"
        terms.append(f"{sign} {mag}y_{j}" if terms else f"{'-' if c < 0 else ''}{mag}y_{j}")
    return f"{' '.join(terms) or '0'} <= {float(rhs):g}"


@dataclass(frozen=True, eq=False, repr=False)
class Case(_ArrayRecord):
    """One input region with its unsafe output region (a disjunction of conjunctions).

    Args:
        input_region: a :class:`Box` or :class:`LpBall`.
        unsafe: the disjuncts; a single :class:`HalfSpaces` is accepted too. An
            empty tuple means nothing is unsafe for this region.
    """

    input_region: InputRegion
    unsafe: tuple[HalfSpaces, ...]
    _fields = ("input_region", "unsafe")

    def __post_init__(self) -> None:
        if not isinstance(self.input_region, (Box, LpBall)):
            raise SpecError(f"input region must be a Box or LpBall, got {type(self.input_region)}")
        unsafe = (self.unsafe,) if isinstance(self.unsafe, HalfSpaces) else tuple(self.unsafe)
        if not all(isinstance(h, HalfSpaces) for h in unsafe):
            raise SpecError("unsafe region must be a sequence of HalfSpaces")
        if len({h.num_outputs for h in unsafe}) > 1:
            raise SpecError("the disjuncts of an unsafe region act on different output sizes")
        object.__setattr__(self, "unsafe", unsafe)

    def unsafe_batch(self, Y: Any, tol: float = 0.0) -> np.ndarray:
        """Return which rows of ``Y`` lie in the unsafe region (any disjunct)."""
        Y = np.asarray(Y, dtype=np.float64)
        hit = np.zeros(Y.shape[0] if Y.ndim > 1 else 1, dtype=bool)
        for half in self.unsafe:
            hit |= half.contains_batch(Y, tol)
        return hit

    def __repr__(self) -> str:
        shown = ", ".join(repr(h) for h in self.unsafe[:4])
        more = f", ... ({len(self.unsafe)} disjuncts)" if len(self.unsafe) > 4 else ""
        return f"Case({self.input_region!r}, unsafe=[{shown}{more}])"


@dataclass(frozen=True, eq=False, repr=False)
class Specification(_ArrayRecord):
    """A property: unsafe when, for some case, ``x`` is in its region and ``y`` in its unsafe set.

    Args:
        cases: the cases (at least one).
        num_inputs: flattened input length; inferred from the first case when ``None``.
        num_outputs: flattened output length; inferred from the constraints when ``None``.
        path: the file the property came from, if any.
        name: a short name (e.g. the file stem).

    Equality compares the cases and sizes, not ``path`` or ``name``.

    Raises:
        SpecError: when there are no cases or the cases disagree on sizes.
    """

    cases: tuple[Case, ...]
    num_inputs: int | None = None
    num_outputs: int | None = None
    path: str | None = None
    name: str | None = None
    _fields = ("cases", "num_inputs", "num_outputs")

    def __post_init__(self) -> None:
        cases = tuple(self.cases)
        if not cases or not all(isinstance(c, Case) for c in cases):
            raise SpecError("a Specification needs at least one Case", path=self.path)
        n_in = self.num_inputs if self.num_inputs is not None else cases[0].input_region.size
        sizes = {h.num_outputs for c in cases for h in c.unsafe}
        n_out = self.num_outputs
        if n_out is None:
            if len(sizes) != 1:
                raise SpecError("cannot infer num_outputs: pass it explicitly", path=self.path)
            n_out = sizes.pop()
        for i, case in enumerate(cases):
            if case.input_region.size != n_in:
                raise SpecError(
                    f"case {i}: input region has {case.input_region.size} coordinates, "
                    f"expected {n_in}",
                    path=self.path,
                )
            if any(h.num_outputs != n_out for h in case.unsafe):
                raise SpecError(
                    f"case {i}: constraints do not act on {n_out} outputs", path=self.path
                )
        object.__setattr__(self, "cases", cases)
        object.__setattr__(self, "num_inputs", int(n_in))
        object.__setattr__(self, "num_outputs", int(n_out))
        if self.path is not None:
            object.__setattr__(self, "path", str(self.path))

    def __len__(self) -> int:
        return len(self.cases)

    def __iter__(self) -> Iterator[Case]:
        return iter(self.cases)

    def bounding_box(self) -> Box:
        """Return the smallest box containing every case's input region."""
        boxes = [c.input_region.bounding_box() for c in self.cases]
        lower = np.min([b.lower for b in boxes], axis=0)
        upper = np.max([b.upper for b in boxes], axis=0)
        return Box(lower, upper)

    def violations(
        self, X: Any, Y: Any, tol: float = 0.0, input_tol: float = INPUT_TOL
    ) -> np.ndarray:
        """Vectorised :meth:`is_violated_by` over the rows of ``X`` and ``Y``.

        Args:
            X: inputs, shape ``(m, num_inputs)`` (trailing dimensions are flattened).
            Y: the matching outputs, shape ``(m, num_outputs)``.
            tol: slack on the output constraints, ``C @ y <= d + tol``.
            input_tol: membership tolerance of the input regions.

        Returns:
            Boolean array of shape ``(m,)``.
        """
        X = _batch(X, self.num_inputs, "X")
        Y = _batch(Y, self.num_outputs, "Y")
        if X.shape[0] != Y.shape[0]:
            raise InvalidInputError(f"X has {X.shape[0]} rows but Y has {Y.shape[0]}")
        hit = np.zeros(X.shape[0], dtype=bool)
        for case in self.cases:
            hit |= case.input_region.contains_batch(X, input_tol) & case.unsafe_batch(Y, tol)
        return hit

    def is_violated_by(
        self, x: Any, y: Any, tol: float = 0.0, input_tol: float = INPUT_TOL
    ) -> bool:
        """Return whether ``(x, y)`` is a counterexample.

        Args:
            x: an input (flattened to ``num_inputs``).
            y: its output (flattened to ``num_outputs``).
            tol: slack on the output constraints, ``C @ y <= d + tol``.
            input_tol: membership tolerance of the input regions (see :data:`INPUT_TOL`).

        Returns:
            True when ``x`` lies in some case's input region and ``y`` in that
            case's unsafe region.
        """
        return bool(self.violations(np.ravel(x)[None], np.ravel(y)[None], tol, input_tol)[0])

    def check_counterexample(self, network: Any, x: Any, tol: float = 0.0) -> bool:
        """Re-run ``network`` on ``x`` and return whether the output violates the property.

        Args:
            network: an object with ``get_output(x)``, ``input_size`` and ``output_size``.
            x: the candidate counterexample.
            tol: slack on the output constraints.

        Returns:
            True only when a plain forward pass confirms the violation.
        """
        self.validate_for(network)
        x = np.asarray(x, dtype=np.float64).ravel()
        if x.size != self.num_inputs or not np.all(np.isfinite(x)):
            return False
        if not any(case.input_region.contains(x) for case in self.cases):
            return False  # no need to run the network
        y = np.asarray(network.get_output(x), dtype=np.float64).ravel()
        if y.size != self.num_outputs or not np.all(np.isfinite(y)):
            return False
        return self.is_violated_by(x, y, tol)

    def validate_for(self, network: Any) -> None:
        """Raise :class:`SpecError` unless the sizes match ``network.input_size/output_size``."""
        n_in, n_out = int(network.input_size), int(network.output_size)
        if (n_in, n_out) != (self.num_inputs, self.num_outputs):
            raise SpecError(
                f"property has {self.num_inputs} inputs and {self.num_outputs} outputs, "
                f"but the network has {n_in} inputs and {n_out} outputs",
                path=self.path,
            )

    def __repr__(self) -> str:
        head = f"Specification({self.name!r}, " if self.name else "Specification("
        head += f"num_inputs={self.num_inputs}, num_outputs={self.num_outputs}, "
        head += f"{len(self.cases)} case{'s' if len(self.cases) != 1 else ''}"
        lines = [f"  {c!r}" for c in self.cases[:3]]
        if len(self.cases) > 3:
            lines.append(f"  ... {len(self.cases) - 3} more")
        return head + ":\n" + "\n".join(lines) + ")"


def robustness_spec(
    network: Any,
    x_0: Any,
    epsilon: float,
    norm: Any = "inf",
    label: int | None = None,
    domain: tuple[Any, Any] | None = None,
    labeler: str | None = None,
) -> Specification:
    """Build the local-robustness property of the seed around ``x_0``.

    Unsafe: some class ``j != label`` scores at least as well as ``label``:
    ``y_j >= y_label`` for ``'argmax'`` (row ``e_label - e_j``, ``d = 0``),
    ``y_j <= y_label`` for ``'argmin'``.

    Args:
        network: an object with ``input_size``, ``output_size`` and, when ``label``
            is ``None``, ``classify(x)``.
        x_0: the reference input (flattened to ``network.input_size``).
        epsilon: the radius, finite and ``>= 0``.
        norm: ``'inf'`` (gives a :class:`Box`), ``'1'`` or ``'2'`` (an :class:`LpBall`).
        label: the class to keep; defaults to ``network.classify(x_0)``.
        domain: optional ``(lo, hi)`` valid-input box (scalars or arrays), e.g. ``(0, 1)``.
        labeler: ``'argmax'`` or ``'argmin'``; defaults to ``network.labeler`` if the
            network has one, else ``'argmax'``.

    Returns:
        A one-case :class:`Specification`.

    Raises:
        InvalidInputError: on a bad epsilon, norm, label, labeler or ``x_0`` length.
    """
    n_in, n_out = int(network.input_size), int(network.output_size)
    x0 = _vector(x_0, "x_0")
    if x0.size != n_in:
        raise InvalidInputError(f"x_0 has {x0.size} entries, the network takes {n_in}")
    if not np.all(np.isfinite(x0)):
        raise InvalidInputError("x_0 must be finite")
    eps = _check_epsilon(epsilon)
    norm = normalize_norm(norm)
    if labeler is None:
        labeler = getattr(network, "labeler", None) or "argmax"
    labeler = str(labeler).lower()
    if labeler not in ("argmax", "argmin"):
        raise InvalidInputError(f"labeler must be 'argmax' or 'argmin', got {labeler!r}")
    if label is None:
        label = np.asarray(network.classify(x0)).ravel()
        label = label[0] if label.size == 1 else label
    if np.ndim(label) or isinstance(label, (bool, np.bool_)) or not float(label).is_integer():
        raise InvalidInputError(f"label must be one integer, got {label!r}")
    if not 0 <= int(label) < n_out:
        raise InvalidInputError(f"label {label} is out of range for {n_out} outputs")
    label = int(label)
    lo, hi = (None, None) if domain is None else domain
    region: InputRegion = LpBall(x0, eps, norm, lower=lo, upper=hi)
    if norm == "inf":
        region = region.bounding_box()
    sign = 1.0 if labeler == "argmax" else -1.0
    disjuncts = []
    for j in range(n_out):
        if j != label:
            row = np.zeros(n_out)
            row[label], row[j] = sign, -sign
            disjuncts.append(HalfSpaces(row, 0.0))
    return Specification((Case(region, tuple(disjuncts)),), n_in, n_out, name="robustness")
