"""Time budgets: a deadline on the monotonic clock and the arithmetic around it.

A :class:`Budget` is created once per query from the user's time limit and
handed down: each phase takes a sub-budget (:meth:`Budget.sub`) that never
outlives its parent, and engines receive :meth:`Budget.timeout` seconds as
their ``timeout`` argument. Without a limit every method answers "unlimited"
(``remaining() == inf``, ``timeout() is None``).

Engines that check their own budget between iterations stop on time; a single
long computation (one CROWN pass over a large ResNet is tens of seconds on a
loaded CPU) cannot. For those, :meth:`Budget.enforce` makes a deadline *active*
for the code it wraps, and :func:`checkpoint` (called by the bound passes
between nodes and row chunks) raises :class:`DeadlineReached` once it has
passed; the caller that enforced it turns that into a ``timeout``. Outside an
``enforce`` block :func:`checkpoint` costs one context-variable read.
"""

from __future__ import annotations

import contextvars
import math
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from verifiNN.errors import InvalidInputError

__all__ = ["Budget", "DeadlineReached", "checkpoint", "time_left"]


class DeadlineReached(Exception):  # noqa: N818 (a signal, not an error of the user's)
    """An enforced deadline passed inside a long computation (see :meth:`Budget.enforce`)."""


_ACTIVE: contextvars.ContextVar[Budget | None] = contextvars.ContextVar("deadline", default=None)


def checkpoint() -> None:
    """Raise :class:`DeadlineReached` when the innermost enforced budget has run out.

    Raises:
        DeadlineReached: the deadline of :meth:`Budget.enforce` has passed.
    """
    budget = _ACTIVE.get()
    if budget is not None and budget.expired():
        raise DeadlineReached(f"deadline passed {-budget.remaining_signed():.3f} s ago")


def time_left() -> float:
    """Seconds before the innermost enforced deadline (``math.inf`` outside ``enforce``):
    what a long computation may plan its next uninterruptible step with."""
    budget = _ACTIVE.get()
    return math.inf if budget is None else budget.remaining()


class Budget:
    """A deadline on a monotonic clock.

    Args:
        deadline: the clock reading at which the budget runs out; ``None`` for
            no limit.
        clock: the clock (seconds, monotonic); :func:`time.monotonic` by default.
    """

    __slots__ = ("_clock", "deadline", "started")

    def __init__(
        self, deadline: float | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if deadline is not None and math.isnan(deadline):
            raise InvalidInputError("a deadline cannot be NaN")
        self._clock = clock
        self.deadline = None if deadline is None or math.isinf(deadline) else float(deadline)
        self.started = clock()

    @classmethod
    def start(cls, timeout: float | None, clock: Callable[[], float] = time.monotonic) -> Budget:
        """Return a budget of ``timeout`` seconds from now (``None``: unlimited).

        Raises:
            InvalidInputError: a negative or NaN timeout.
        """
        if timeout is None:
            return cls(None, clock)
        try:
            seconds = float(timeout)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(
                f"timeout must be a number of seconds, got {timeout!r}"
            ) from exc
        if math.isnan(seconds) or seconds < 0:
            raise InvalidInputError(f"timeout must be >= 0 seconds, got {timeout!r}")
        return cls(clock() + seconds, clock)

    @classmethod
    def since_process_start(
        cls, timeout: float | None, clock: Callable[[], float] = time.monotonic
    ) -> Budget:
        """A budget of ``timeout`` seconds counted from when this *process* started
        (interpreter and imports included), as a caller timing the command sees it.

        Falls back to :meth:`start` where the start time is unknown (not Linux).
        """
        budget = cls.start(timeout, clock)
        age = process_age()
        if budget.deadline is not None:
            budget.deadline -= age
        budget.started -= age
        return budget

    @property
    def limited(self) -> bool:
        """Whether there is a deadline at all."""
        return self.deadline is not None

    def elapsed(self) -> float:
        """Seconds since this budget was created."""
        return self._clock() - self.started

    def remaining(self) -> float:
        """Seconds left (never negative; ``math.inf`` without a deadline)."""
        if self.deadline is None:
            return math.inf
        return max(0.0, self.deadline - self._clock())

    def remaining_signed(self) -> float:
        """Seconds left, negative once the deadline has passed (``math.inf`` without one)."""
        return math.inf if self.deadline is None else self.deadline - self._clock()

    @contextmanager
    def enforce(self) -> Iterator[Budget]:
        """Make this deadline active for :func:`checkpoint` inside the ``with`` block.

        Nested blocks keep the earlier deadline of the two. Without a deadline
        the block changes nothing.
        """
        outer = _ACTIVE.get()  # never a budget without a deadline
        keep_outer = self.deadline is None or (outer is not None and outer.deadline < self.deadline)
        token = _ACTIVE.set(outer if keep_outer else self)
        try:
            yield self
        finally:
            _ACTIVE.reset(token)

    def expired(self) -> bool:
        """Whether the deadline has passed."""
        return self.deadline is not None and self._clock() >= self.deadline

    def timeout(self) -> float | None:
        """The remaining seconds as an engine's ``timeout`` argument (``None``: no limit)."""
        return None if self.deadline is None else self.remaining()

    def sub(self, max_seconds: float | None) -> Budget:
        """A child budget: at most ``max_seconds`` from now, never past this deadline.

        Args:
            max_seconds: the child's own cap; ``None`` keeps the parent's deadline.

        Returns:
            The new budget.
        """
        deadline = self.deadline
        if max_seconds is not None:
            own = self._clock() + max(0.0, float(max_seconds))
            deadline = own if deadline is None else min(deadline, own)
        return Budget(deadline, self._clock)

    def reserve(self, seconds: float) -> Budget:
        """A child budget that ends ``seconds`` before this one (never before now).

        For engines that may overshoot their deadline by a little: the
        reserve absorbs the overshoot. An unlimited budget stays unlimited.
        """
        if self.deadline is None:
            return Budget(None, self._clock)
        return Budget(max(self._clock(), self.deadline - max(0.0, float(seconds))), self._clock)

    def __repr__(self) -> str:
        if self.deadline is None:
            return "Budget(unlimited)"
        return f"Budget(remaining={self.remaining():.3f}s)"


def process_age() -> float:
    """Seconds since this process started (from ``/proc``; ``0.0`` where unavailable)."""
    try:
        with open("/proc/self/stat", encoding="ascii") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        with open("/proc/uptime", encoding="ascii") as handle:
            uptime = float(handle.read().split()[0])
        ticks = os.sysconf("SC_CLK_TCK")
        return max(0.0, uptime - int(fields[19]) / ticks)
    except (OSError, ValueError, IndexError):
        return 0.0


def memory_share(fraction: float = 0.25, cap: int = 8 * 2**30, floor: int = 256 * 2**20) -> int:
    """``fraction`` of the memory available now (``/proc/meminfo``), clamped to
    ``[floor, cap]`` bytes: the default size of a search's live-domain store."""
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) * 1024
                    return int(min(cap, max(floor, fraction * available)))
    except (OSError, ValueError, IndexError):
        pass
    return 2 * 2**30
