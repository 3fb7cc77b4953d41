"""The one registry of nonlinearity relaxations, read by IBP, CROWN, alpha-CROWN and the LP.

:data:`RELAXATIONS` maps every nonlinear op type to a frozen
:class:`Relaxation` record. Given sound bounds ``l <= x <= u`` of an op's input,
a record gives

* ``interval(op, l, u)``: bounds of the output (interval bound propagation);
* ``relax(op, l, u, alpha)``: a linear lower and upper bound of the op valid on
  ``[l, u]`` (for elementwise ops ``lw x + lb <= f(x) <= uw x + ub``), possibly
  chosen by free parameters ``alpha = (alpha_lower, alpha_upper)`` in ``[0, 1]``
  (``None``: CROWN's default choice);
* ``backward(op, relaxation, lam)``: how a linear function ``lam^T f(x)`` is
  bounded from below by a linear function of ``x`` (CROWN's backward step);
* ``free(op)``: which of the lower/upper bounds have a free parameter
  (alpha-CROWN optimises exactly those);
* ``needs_bounds(op, l, u)``: the neurons whose relaxation depends on their
  bounds (CROWN computes tight intermediate bounds only for them);
* ``lp_alphas``: parameter values whose relaxations, taken together, make the
  op's LP encoding (for the ReLU: slopes 0 and 1, i.e. the triangle of
  Ehlers 2017);
* ``split_points(op)``: where a piecewise op's definition changes (ReLU: 0;
  ``Clip(a, b)``: ``a`` and ``b``), i.e. where branch and bound splits.

One module per family, each with its constructions and the papers they come
from:

* :mod:`.piecewise`: ReLU, LeakyReLU, Abs, Sign, Clip, Max and Min of two nodes;
* :mod:`.sshape`: Sigmoid, Tanh, Erf (Zhang et al. 2018, CROWN);
* :mod:`.convex`: Exp, Log, Reciprocal, Sqrt, Pow (tangents and chords of
  convex and concave pieces; domains cut to where the function is defined);
* :mod:`.periodic`: Sin, Cos (Shi et al. 2024, GenBaB: slopes from the
  convex/concave pieces, intercepts by exact optimisation);
* :mod:`.product`: the product of two nodes (McCormick 1976);
* :mod:`.pooling`: MaxPool;
* :mod:`.integer`: the Heaviside steps and truncation (integer-valued operators);
* :mod:`.base`: the records and shared helpers.

Every relaxation is sound for any ``alpha`` in ``[0, 1]``. Ops with a
restricted domain (Log, Sqrt, Reciprocal, some powers) are bounded on the part
of the input interval inside the domain (see :mod:`verifiNN.ops.elementwise`).
"""

from verifiNN.bounds.relaxations.base import (
    Alpha,
    LinearBounds,
    PlaneBounds,
    ProductBounds,
    Relaxation,
    WindowBounds,
    input_bounds,
)
from verifiNN.bounds.relaxations.convex import CONVEX_RELAXATIONS
from verifiNN.bounds.relaxations.integer import INTEGER_RELAXATIONS
from verifiNN.bounds.relaxations.periodic import PERIODIC_RELAXATIONS
from verifiNN.bounds.relaxations.piecewise import PIECEWISE_RELAXATIONS, relu_parts
from verifiNN.bounds.relaxations.pooling import POOLING_RELAXATIONS
from verifiNN.bounds.relaxations.product import PRODUCT_RELAXATIONS
from verifiNN.bounds.relaxations.sshape import SSHAPE_RELAXATIONS, s_shaped_upper
from verifiNN.ops import Op

__all__ = [
    "RELAXATIONS",
    "Alpha",
    "LinearBounds",
    "PlaneBounds",
    "ProductBounds",
    "Relaxation",
    "WindowBounds",
    "input_bounds",
    "relu_parts",
    "s_shaped_upper",
]

RELAXATIONS: dict[type[Op], Relaxation] = {
    **PIECEWISE_RELAXATIONS,
    **SSHAPE_RELAXATIONS,
    **PRODUCT_RELAXATIONS,
    **POOLING_RELAXATIONS,
    **CONVEX_RELAXATIONS,
    **PERIODIC_RELAXATIONS,
    **INTEGER_RELAXATIONS,
}
"""Nonlinear op type -> its relaxation record (the only place relaxations live)."""
