"""How many CPU threads a run may use: its fair share of a shared machine.

PyTorch starts one intra-op thread per core. On a machine where other jobs
already keep cores busy, those threads wait for one another at every parallel
region (an OpenMP barrier waits for the slowest thread, and a thread that has
no core waits for a time slice): measured on two cores with another job
running, an MNIST 256x2 instance took 35-53 s with one thread and timed out at
120 s with two. A run should cost a loaded machine at most its share of the
cores, so the default is the number of cores this process may run on less the
ones other processes keep busy (the one-minute load average, which counts
runnable processes), at least one.
"""

from __future__ import annotations

import math
import os

__all__ = ["fair_threads", "usable_cores"]


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity; ``os.cpu_count()`` elsewhere)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def fair_threads(load: float | None = None, cores: int | None = None) -> int:
    """Threads for this run: the usable cores not kept busy by other processes.

    Args:
        load: runnable processes besides this one (default: the one-minute load
            average, less this process, which is already running).
        cores: usable cores (default: :func:`usable_cores`).

    Returns:
        Between 1 and ``cores``.
    """
    cores = usable_cores() if cores is None else max(1, int(cores))
    if load is None:
        try:
            load = max(0.0, os.getloadavg()[0] - 1.0)
        except OSError:  # no load average on this platform: assume an idle machine
            load = 0.0
    if not math.isfinite(load):
        return 1
    return max(1, min(cores, cores - math.ceil(load - 0.5)))
