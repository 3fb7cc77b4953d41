"""Forward linear bounds of every node, for networks with few inputs.

Every node value ``v`` carries a lower and an upper linear function of the
network input, ``L(x) <= v <= U(x)``: the symbolic intervals of Wang et al.
2018, "Formal Security Analysis of Neural Networks using Symbolic Intervals",
on any graph, as in the forward mode of linear relaxation in Xu et al. 2020,
"Automatic Perturbation Analysis for Scalable Certified Robustness and
Beyond". A node costs ``n + 1`` evaluations of its op (``n`` input entries)
instead of one backward pass per neuron, so for a GAN generator with 5 inputs
and 30,000 unstable neurons the intermediate bounds take a second where
backward passes (CROWN) take minutes.

The rules are the ones interval propagation and CROWN already use:

* an affine op maps the pair of forms like an interval, ``L' = W+ L + W- U + b``
  and ``U' = W+ U + W- L + b``: its own interval rule
  (:mod:`verifiNN.bounds.affine`, always written in that ``W+ l + W- u`` form)
  applied to the coefficient columns of the op without its constants, and to
  the constant column of the op itself;
* a nonlinear op composes its registry relaxation with the forms of its
  inputs: ``lw v + lb <= f(v)`` gives ``L' = lw+ L + lw- U + lb`` (lines,
  :class:`~verifiNN.bounds.relaxations.LinearBounds`; planes of ops of two
  inputs the same way); a relaxation of any other kind (pooling windows), an
  affine op whose constants are not known here, and every entry whose line or
  form is not finite get the constant forms of the node's interval, which is
  always sound.

Each node's interval is the tighter of interval propagation and the forms'
extremes over the region (:meth:`RegionBatch.concretize`).

Forms are looser than backward passes at depth (a backward pass keeps the
coupling of the layers it crosses). :meth:`ForwardForms.window` gives CROWN
passes that cross only the last few layers and then take the forms of the
pre-activation they reach, ``lam^T v >= lam+ L(x) + lam- U(x)``: on a cGAN
generator that moved CROWN's output bound from ``[0.38, 0.82]`` to
``[0.50, 0.57]`` (samples ``[0.52, 0.55]``) at the same cost.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor

from verifiNN.bounds.affine import affine_rule
from verifiNN.bounds.graph import BoundGraph, RelaxFn, Substitute
from verifiNN.bounds.relaxations import LinearBounds, PlaneBounds
from verifiNN.bounds.types import Interval
from verifiNN.memory import allowance
from verifiNN.models.network import Node
from verifiNN.ops import (
    ConcatWithConstants,
    ConstMatMul,
    Conv2d,
    ConvTranspose2d,
    Dense,
    ElementwiseAffine,
    Op,
    Pad,
)
from verifiNN.regions import RegionBatch

__all__ = ["FORWARD_INPUT_LIMIT", "Forms", "ForwardForms"]

FORWARD_INPUT_LIMIT = 64
"""Largest number of input entries for which forward forms are computed."""

Forms = tuple[Tensor, Tensor]
"""Lower and upper forms of a node: ``(B, n + 1, *shape)`` each, the coefficients of
the ``n`` input entries and, last, the constant."""

_CONSTANT_FIELDS: dict[type[Op], str] = {
    Dense: "bias",
    Conv2d: "bias",
    ConvTranspose2d: "bias",
    ConstMatMul: "bias",
    ElementwiseAffine: "shift",
    ConcatWithConstants: "constant",
}
"""Affine ops with constants: the field that holds them (zeroed for coefficient columns)."""

_LINEAR_OPS = frozenset(
    {"Flatten", "Reshape", "Identity", "Concat", "Slice", "Add", "ReduceSum", "Transpose"}
    | {"Gather", "Broadcast", "AvgPool2d"}
)
"""Affine ops without constants (by kind): linear as they stand."""


def _without_constants(op: Op) -> Op | None:
    """The linear part of an affine op, or ``None`` when it is not known here."""
    field = _CONSTANT_FIELDS.get(type(op))
    if field is not None:
        return dataclasses.replace(op, **{field: torch.zeros_like(getattr(op, field))})
    if isinstance(op, Pad):
        return dataclasses.replace(op, value=0.0)
    return op if op.kind in _LINEAR_OPS else None


def _input_forms(graph: BoundGraph, input_set: RegionBatch) -> Forms:
    ref = input_set.reference
    shape = graph.shapes[graph.input_name]
    n = int(torch.Size(shape).numel())
    eye = torch.eye(n, dtype=ref.dtype, device=ref.device)
    form = torch.cat([eye, eye.new_zeros(1, n)]).reshape(1, n + 1, *shape)
    form = form.expand(input_set.batch, *form.shape[1:])
    return form, form


def _constant_forms(interval: Interval, n: int) -> Forms:
    def constant(value: Tensor) -> Tensor:
        form = value.new_zeros(value.shape[0], n + 1, *value.shape[1:])
        form[:, n] = value
        return form

    return constant(interval.lower), constant(interval.upper)


def _concretize(input_set: RegionBatch, forms: Forms) -> Interval:
    """The extremes of the forms over each region."""
    lower, upper = forms
    batch, shape = lower.shape[0], lower.shape[2:]

    def least(form: Tensor) -> Tensor:
        A = form[:, :-1].flatten(2).transpose(1, 2)
        return input_set.concretize(A, form[:, -1].flatten(1))

    low = least(lower)
    high = -least(-upper)
    return Interval(low.reshape(batch, *shape), high.reshape(batch, *shape))


def _affine_forms(node: Node, inputs: list[Forms]) -> Forms | None:
    linear = _without_constants(node.op)
    if linear is None:
        return None
    batch, columns = inputs[0][0].shape[:2]

    def columns_of(form: Tensor) -> Tensor:
        return form[:, :-1].reshape(batch * (columns - 1), *form.shape[2:])

    low_x, high_x = affine_rule(linear).interval(
        linear, [columns_of(f[0]) for f in inputs], [columns_of(f[1]) for f in inputs]
    )
    low_c, high_c = affine_rule(node.op).interval(
        node.op, [f[0][:, -1] for f in inputs], [f[1][:, -1] for f in inputs]
    )

    def join(coefficients: Tensor, constant: Tensor) -> Tensor:
        out = coefficients.reshape(batch, columns - 1, *constant.shape[1:])
        return torch.cat([out, constant.unsqueeze(1)], dim=1)

    return join(low_x, low_c), join(high_x, high_c)


def _times(slope: Tensor, form: Tensor) -> Tensor:
    """``slope * form`` per entry, 0 where the slope is 0 (never ``0 * inf``)."""
    slope = slope.unsqueeze(1)
    return torch.where(slope == 0, torch.zeros_like(form), slope * form)


def _side(pairs: list[tuple[Tensor, Forms]], intercept: Tensor, upper: bool) -> Tensor:
    """``sum_k s_k+ F_k + s_k- G_k + intercept`` (``F`` the lower form of input ``k`` for a
    lower side; swapped for an upper side)."""
    total = None
    for slope, (low, high) in pairs:
        pos, neg = slope.clamp(min=0), slope.clamp(max=0)
        first, second = (high, low) if upper else (low, high)
        term = _times(pos, first) + _times(neg, second)
        total = term if total is None else total + term
    total = total.clone()
    total[:, -1] = total[:, -1] + intercept
    return total


def _nonlinear_forms(node: Node, relaxation: object, inputs: list[Forms]) -> Forms | None:
    if isinstance(relaxation, LinearBounds):
        (form,) = inputs
        zero = torch.zeros_like(relaxation.lw)
        lb = zero if relaxation.lb is None else relaxation.lb
        ub = zero if relaxation.ub is None else relaxation.ub
        return (
            _side([(relaxation.lw, form)], lb, upper=False),
            _side([(relaxation.uw, form)], ub, upper=True),
        )
    if isinstance(relaxation, PlaneBounds):
        x, y = inputs
        p = relaxation
        return (
            _side([(p.a_lower, x), (p.b_lower, y)], p.c_lower, upper=False),
            _side([(p.a_upper, x), (p.b_upper, y)], p.c_upper, upper=True),
        )
    return None


def _finite_or_constant(forms: Forms | None, interval: Interval, n: int) -> Forms:
    """``forms`` where every coefficient is finite, else the interval's constant forms."""
    if forms is not None and all(bool(torch.isfinite(form).all()) for form in forms):
        return forms  # the usual case: no fallback to build
    constant = _constant_forms(interval, n)
    if forms is None:
        return constant
    out = []
    for form, fallback in zip(forms, constant):
        ok = torch.isfinite(form).all(dim=1, keepdim=True)
        out.append(torch.where(ok, form, fallback))
    return out[0], out[1]


class ForwardForms:
    """The forms of the nodes bounded so far, in topological order (see the module
    docstring); a form is dropped once every reader of its node has been bounded.

    Use: per node, :meth:`bound` (the forms' interval, after its inputs are final),
    then :meth:`keep` with the node's final interval.
    """

    def __init__(self, graph: BoundGraph, input_set: RegionBatch) -> None:
        self.graph = graph
        self.input_set = input_set
        self.n = int(torch.Size(graph.shapes[graph.input_name]).numel())
        self.forms: dict[str, Forms] = {graph.input_name: _input_forms(graph, input_set)}
        self.pending: Forms | None = None
        self.readers = {name: len(users) for name, users in graph.consumers.items()}
        self.kept = graph.preactivations  # where windowed backward passes may end
        self.depth: dict[str, int] = {}  # nonlinear nodes before each node, in order
        count = 0
        for node in graph.nodes:
            self.depth[node.name] = count
            count += 0 if node.op.affine else 1

    @staticmethod
    def affordable(graph: BoundGraph, batch: int, itemsize: int) -> bool:
        """True when the input has at most :data:`FORWARD_INPUT_LIMIT` entries and the
        widest node's pair of forms fits the memory allowance (with room for its inputs')."""
        n = int(torch.Size(graph.shapes[graph.input_name]).numel())
        if n > FORWARD_INPUT_LIMIT:
            return False
        widest = max(int(torch.Size(s).numel()) for s in graph.shapes.values())
        return 6 * batch * (n + 1) * widest * itemsize <= allowance()

    def bound(self, node: Node, relax: RelaxFn) -> Interval | None:
        """The extremes of ``node``'s forms over the regions (``None``: no forms, only
        its interval); ``relax`` gives the relaxation of a nonlinear node."""
        inputs = [self.forms[name] for name in node.inputs]
        if node.op.affine:
            self.pending = _affine_forms(node, inputs)
        else:
            self.pending = _nonlinear_forms(node, relax(node), inputs)
        return None if self.pending is None else _concretize(self.input_set, self.pending)

    def keep(self, node: Node, interval: Interval) -> None:
        """Store ``node``'s forms (constant where not finite) with its final interval."""
        self.forms[node.name] = _finite_or_constant(self.pending, interval, self.n)
        self.pending = None
        for name in node.inputs:
            self.readers[name] -= 1
            done = self.readers[name] == 0 and name != self.graph.input_name
            if done and name not in self.kept:
                self.forms.pop(name, None)

    def window(self, name: str, layers: int) -> tuple[Substitute, int]:
        """A substitution that ends backward passes from ``name`` at the kept nodes at
        least ``layers`` nonlinear nodes before it, and the entries such a pass crosses.

        Back-substitution through the last ``layers`` layers keeps most of what
        a full backward pass gains over the forms (the coupling of nearby
        layers) at the cost of those layers only."""
        top = self.depth[name]
        stops = {q for q in self.kept if q in self.forms and top - self.depth[q] >= layers}

        def substitute(node: str, lam: Tensor) -> tuple[Tensor, Tensor] | None:
            return self._substitute(node, lam) if node in stops else None

        crossed = sum(
            int(torch.Size(self.graph.shapes[n.name]).numel())
            for n in self.graph.nodes[: self.graph.index[name] + 1]
            if top - self.depth[n.name] <= layers
        )
        return substitute, crossed

    def _substitute(self, name: str, lam: Tensor) -> tuple[Tensor, Tensor]:
        """``lam^T v >= lam+ . L(x) + lam- . U(x)``: coefficients on the input and the constant."""
        lower, upper = self.forms[name]
        flat = lam.flatten(2)
        pos, neg = flat.clamp(min=0), flat.clamp(max=0)
        A = pos @ lower[:, :-1].flatten(2).transpose(1, 2)
        A = A + neg @ upper[:, :-1].flatten(2).transpose(1, 2)
        zero = torch.zeros((), dtype=flat.dtype, device=flat.device)
        low, high = lower[:, -1].flatten(1).unsqueeze(1), upper[:, -1].flatten(1).unsqueeze(1)
        bias = torch.where(pos > 0, pos * low, zero).sum(-1)
        bias = bias + torch.where(neg < 0, neg * high, zero).sum(-1)
        shape = self.graph.shapes[self.graph.input_name]
        return A.reshape(A.shape[0], A.shape[1], *shape), bias
