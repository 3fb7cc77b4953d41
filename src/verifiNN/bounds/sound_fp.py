"""CROWN with rigorous floating-point error bounds: proofs that hold in real arithmetic.

The float64 bound passes elsewhere in :mod:`verifiNN.bounds` round to nearest,
so a bound they compute may exceed the exact real-arithmetic bound by a few
ulps of the quantities involved; a proof whose margin is that small is not a
proof. This module recomputes CROWN's backward pass (Zhang et al. 2018) for
ReLU MLPs over boxes in *midpoint-radius interval arithmetic*: every
coefficient is a float midpoint with a float radius that encloses the exact
value, and every computed product or sum is widened by a proven bound on its
rounding error, so the final lower bound is at most the exact minimum.

The error model (Higham, "Accuracy and Stability of Numerical Algorithms",
2002, Thm. 3.5 and Lemma 3.1; Rump 1999, "Fast and parallel interval arithmetic"):
for float matrices ``A``, ``B`` with inner dimension ``n`` and unit roundoff
``u = 2^-53``, the computed ``fl(A @ B)`` satisfies
``|fl(A @ B) - A @ B| <= gamma_n |A| @ |B|`` with ``gamma_n = n u / (1 - n u)``,
provided nothing underflows; a term ``n * eta`` (``eta`` the smallest
subnormal) covers underflow. The error bounds themselves are computed in
floating point and then inflated by ``(1 + 4 gamma_{n+2})`` and rounded up one
ulp, which covers the rounding of the bound computation (all its terms are
non-negative).

Relaxation of an unstable ReLU ``a = max(z, 0)``, ``z in [l, u]`` (``l``, ``u``
themselves rigorous): ``a >= alpha z`` for any ``alpha`` in ``{0, 1}`` (exact),
and ``a <= s (z - l)`` for any ``s >= u / (u - l)``; ``s`` is computed and then
rounded up past its rounding error, so the upper line is valid. A coefficient
interval ``[m - r, m + r]`` on ``a >= 0`` is bounded below by ``m a - r u``,
which moves the radius into the constant.

Use: ``verify(..., sound_fp=True)`` and ``verifinn verify --sound-fp`` accept an
``unsat`` only when :func:`sound_verify` re-proves it with these bounds
(splitting the input box when needed); see the README's "Numeric model".
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

import numpy as np

from verifiNN.budget import Budget
from verifiNN.errors import UnsupportedModelError
from verifiNN.models.network import MLP, Network
from verifiNN.specs import Box, HalfSpaces, Specification

__all__ = ["SoundResult", "sound_lower_bounds", "sound_verify"]

UNIT_ROUNDOFF = 2.0**-53
ETA = np.nextafter(0.0, 1.0)  # smallest subnormal


def _gamma(n: int) -> float:
    return n * UNIT_ROUNDOFF / (1 - n * UNIT_ROUNDOFF)


def _up(x: np.ndarray | float, n: int = 1) -> np.ndarray:
    """A float upper bound of the exact value of a non-negative quantity computed by a
    float expression of at most ``n`` operations (all terms non-negative)."""
    return np.nextafter(np.asarray(x, np.float64) * (1 + 4 * _gamma(n + 2)), np.inf)


def _matmul_error(abs_a: np.ndarray, abs_b: np.ndarray) -> np.ndarray:
    """A bound on ``|fl(A @ B) - A @ B|`` given ``|A|`` and ``|B|``."""
    n = abs_a.shape[-1]
    return _up(abs_a @ abs_b * _gamma(n) + n * ETA, n)


@dataclass
class _Linear:
    """Lower bound ``sum_j [M_ij +- R_ij] v_j + c_i`` of each objective row over some
    variables ``v`` (``c`` is a rigorous lower bound of the constant)."""

    M: np.ndarray
    R: np.ndarray
    c: np.ndarray

    def through_affine(self, W: np.ndarray, b: np.ndarray) -> _Linear:
        """Substitute ``v = W w + b`` (exact float ``W``, ``b``)."""
        abs_W = np.abs(W)
        M = self.M @ W
        R = _up(self.R @ abs_W + _matmul_error(np.abs(self.M), abs_W), W.shape[0] + 2)
        low = self.M @ b
        err = _matmul_error(np.abs(self.M), np.abs(b)) + _up(self.R @ np.abs(b), b.size)
        c = _down(_down(self.c + low) - err)
        return _Linear(M, R, c)

    def through_relu(self, lower: np.ndarray, upper: np.ndarray) -> _Linear:
        """Substitute ``v = relu(z)`` with ``z in [lower, upper]``: a lower bound over ``z``."""
        M, R, c = self.M.copy(), self.R.copy(), self.c.copy()
        inactive = upper <= 0
        unstable = (lower < 0) & (upper > 0)
        # the radius on an unstable unit moves into the constant: -r a >= -r u, as a >= 0
        c = _down(c - _up(R[:, unstable] @ upper[unstable], int(unstable.sum())))
        R[:, unstable] = 0.0
        M[:, inactive], R[:, inactive] = 0.0, 0.0
        if unstable.any():
            lo, up = lower[unstable], upper[unstable]
            slope = _up(up / (up - lo), 2)  # >= u / (u - l): the upper line stays above
            m = M[:, unstable]
            negative = m < 0
            alpha = (up > -lo).astype(np.float64)  # CROWN's choice of lower line
            scaled = m * slope  # coefficient of z on the upper line
            scaled_err = _up(np.abs(scaled) * UNIT_ROUNDOFF + ETA)
            new_m = np.where(negative, scaled, m * alpha)
            new_r = np.where(negative, scaled_err, 0.0)
            # constant of the upper line: m * s * (-l) >= fl(...) - error, m < 0 here
            const = np.where(negative, scaled * (-lo), 0.0)
            const_err = np.where(
                negative, _up(np.abs(const) * 2 * UNIT_ROUNDOFF + scaled_err * (-lo) + ETA), 0.0
            )
            c = _down(_down(c + const.sum(axis=1)) - _up(const_err.sum(axis=1), m.shape[1]))
            c = _down(c - _up(np.abs(const).sum(axis=1) * _gamma(m.shape[1]), m.shape[1]))
            M[:, unstable], R[:, unstable] = new_m, new_r
        return _Linear(M, R, c)

    def concretize(self, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """Rigorous lower bound of the minimum over the box ``[lo, hi]``."""
        terms = np.where(self.M >= 0, self.M * lo, self.M * hi)
        size = np.maximum(np.abs(lo), np.abs(hi))
        radius = _up(self.R @ size, lo.size)
        total = terms.sum(axis=1)
        err = _up(np.abs(terms).sum(axis=1) * (_gamma(lo.size) + UNIT_ROUNDOFF) + lo.size * ETA)
        return _down(_down(_down(total - err) - radius) + self.c)


def _down(x: np.ndarray) -> np.ndarray:
    """One ulp down: covers the rounding of one subtraction or addition."""
    return np.nextafter(np.asarray(x, np.float64), -np.inf)


def _backward(mlp: MLP, k: int, C: np.ndarray, bounds: list, lo, hi) -> _Linear:
    """The linear lower bound of ``C @ z_k`` over the input (``z_k``: layer ``k``'s
    pre-activation)."""
    rows = C.shape[0]
    linear = _Linear(C.astype(np.float64), np.zeros_like(C, np.float64), np.zeros(rows))
    for j in range(k, -1, -1):
        linear = linear.through_affine(mlp.weights[j], mlp.biases[j])
        if j > 0:
            linear = linear.through_relu(*bounds[j - 1])
    return linear


def sound_lower_bounds(network: Network | MLP, box: Box, C: np.ndarray) -> np.ndarray:
    """Rigorous lower bounds of ``C @ y`` over ``box`` for a ReLU MLP (float64 in,
    real-arithmetic-valid bounds out).

    Raises:
        UnsupportedModelError: not a chain of dense layers with ReLU activations.
    """
    return _sound_bound(network, box, C)[0]


def _sound_bound(network: Network | MLP, box: Box, C: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(rigorous lower bounds of C @ y, their input coefficients)``."""
    mlp = network.as_mlp() if isinstance(network, Network) else network
    if any(a != "ReLU" for a in mlp.activations):
        raise UnsupportedModelError("sound floating-point bounds need a ReLU MLP")
    lo = np.asarray(box.lower, np.float64).ravel()
    hi = np.asarray(box.upper, np.float64).ravel()
    bounds: list[tuple[np.ndarray, np.ndarray]] = []
    for k in range(len(mlp.weights) - 1):
        n = mlp.weights[k].shape[0]
        eye = np.eye(n)
        lower = _backward(mlp, k, eye, bounds, lo, hi).concretize(lo, hi)
        upper = -_backward(mlp, k, -eye, bounds, lo, hi).concretize(lo, hi)
        bounds.append((lower, upper))
    final = _backward(mlp, len(mlp.weights) - 1, np.atleast_2d(C), bounds, lo, hi)
    return final.concretize(lo, hi), final.M


@dataclass
class SoundResult:
    """Whether the unsafe region was proved empty, and the boxes it took."""

    proved: bool
    boxes: int
    seconds: float


def _refuted(network: MLP, box: Box, half: HalfSpaces) -> tuple[bool, np.ndarray]:
    """Whether some row of the conjunction is rigorously above its threshold on
    ``box``; else a branching score per input: the best row's slope times width."""
    lower, M = _sound_bound(network, box, half.C)
    d = np.asarray(half.d, np.float64)
    if np.any(lower > d):
        return True, np.zeros(0)
    best = int(np.argmax(lower - d))
    width = np.asarray(box.upper, np.float64) - np.asarray(box.lower, np.float64)
    return False, np.abs(M[best]) * width + 1e-3 * width


def sound_verify(
    network: Network, spec: Specification, budget: Budget | None = None, max_boxes: int = 20000
) -> SoundResult:
    """Prove ``spec`` (box input regions) with rigorous bounds, bisecting a box its
    bounds cannot decide along the input whose slope in the best row's linear bound,
    times its width, is largest, until every box is proved, ``max_boxes`` are used
    or ``budget`` runs out.

    Raises:
        UnsupportedModelError: not a ReLU MLP, or a non-box input region.
    """
    start = time.perf_counter()
    budget = budget or Budget.start(None)
    mlp = network.as_mlp()
    if any(a != "ReLU" for a in mlp.activations):
        raise UnsupportedModelError("--sound-fp needs a ReLU MLP")
    boxes = 0
    for case in spec.cases:
        if not isinstance(case.input_region, Box):
            raise UnsupportedModelError("--sound-fp needs box input regions")
        for half in case.unsafe:
            queue = deque([case.input_region])
            while queue:
                box = queue.popleft()
                boxes += 1
                proved, score = _refuted(mlp, box, half)
                if proved:
                    continue
                if boxes >= max_boxes or budget.expired():
                    return SoundResult(False, boxes, time.perf_counter() - start)
                lo, hi = np.asarray(box.lower, float), np.asarray(box.upper, float)
                d = int(np.argmax(score))
                if not hi[d] > lo[d]:
                    return SoundResult(False, boxes, time.perf_counter() - start)
                mid = lo[d] + 0.5 * (hi[d] - lo[d])
                left_hi, right_lo = hi.copy(), lo.copy()
                left_hi[d], right_lo[d] = mid, mid
                queue.append(Box(lo, left_hi))
                queue.append(Box(right_lo, hi))
    return SoundResult(True, boxes, time.perf_counter() - start)
