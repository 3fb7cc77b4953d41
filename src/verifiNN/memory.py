"""How much memory a computation may ask for: a share of what the machine has free now.

Bound propagation and attacks size their batches (rows of a backward pass,
PGD starts) from :func:`allowance`, so a large model or a property with
thousands of rows is processed in chunks instead of asking for more memory
than the machine has; when even one row does not fit, they raise
:class:`~verifiNN.errors.ResourceLimitError` and the front door answers
``unknown`` with that reason.
"""

from __future__ import annotations

import os

from verifiNN.errors import ResourceLimitError

__all__ = ["MEMORY_SHARE", "allowance", "available_bytes", "check_fits", "gib"]

MEMORY_SHARE = 0.25
"""Share of the currently available memory one batched computation may use (the
rest is for the model, autograd's saved tensors, other workers and the system)."""

_FALLBACK_BYTES = 4 << 30  # where the system does not say


def available_bytes() -> int:
    """Memory available to new allocations now (``MemAvailable`` of ``/proc/meminfo``;
    the physical pages otherwise; 4 GiB where neither is known)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as info:
            for line in info:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (OSError, ValueError, AttributeError):
        return _FALLBACK_BYTES


def allowance(share: float = MEMORY_SHARE) -> int:
    """Bytes one batched computation may use: ``share`` of :func:`available_bytes`."""
    return int(share * available_bytes())


def gib(n_bytes: float) -> str:
    """``n_bytes`` as text in GiB (``'1.5 GiB'``)."""
    return f"{n_bytes / 2**30:.3g} GiB"


def check_fits(n_bytes: float, what: str, share: float = MEMORY_SHARE) -> None:
    """Raise :class:`ResourceLimitError` naming ``what`` when ``n_bytes`` exceed the allowance."""
    limit = allowance(share)
    if n_bytes > limit:
        raise ResourceLimitError(
            f"{what} needs {gib(n_bytes)}, more than the {gib(limit)} allowed "
            f"({share:.0%} of the {gib(available_bytes())} available)"
        )
