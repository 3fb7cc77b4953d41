"""Where independent verification tasks run: in this process, local processes or Ray.

An :class:`Executor` applies a module-level function ``fn(context, task)`` to
every task and yields the results *as they finish* (not in task order), so the
caller can stream them to disk. ``context`` (the network, the options) is
shipped to each worker once, not with every task. Tasks are handed out one at a
time as workers free up, so one hard task never holds back the others.

* :class:`InProcessExecutor`: a plain loop (debugging, one core, tests).
* :class:`ProcessExecutor`: a pool of ``spawn``-started local processes
  (:mod:`concurrent.futures`; ``spawn`` because forking a process that already
  ran PyTorch's thread pools can deadlock). Each worker computes with one
  thread, so ``workers`` processes use ``workers`` cores. Spawned workers
  re-import the script that started them: a script without the
  ``if __name__ == "__main__":`` guard gets one clear error, not a hang.
* :class:`RayExecutor`: Ray tasks (``pip install ray``), on the cluster at
  ``address`` or on a local Ray instance started (and stopped) for the run.

The results do not depend on the executor: ``fn`` must be deterministic given
its task (seed any randomness from the task). On ``KeyboardInterrupt`` every
executor stops its workers before the interrupt propagates; what was already
yielded is the caller's to keep.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
import signal
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Protocol, TypeVar

from verifiNN.errors import InvalidInputError, SolverError

__all__ = [
    "BACKENDS",
    "Executor",
    "InProcessExecutor",
    "ProcessExecutor",
    "RayExecutor",
    "make_executor",
]

C = TypeVar("C")
T = TypeVar("T")
R = TypeVar("R")

BACKENDS = ("local", "ray")
"""Values of the command line's ``--backend``."""


class Executor(Protocol):
    """Runs ``fn(context, task)`` for every task, yielding results as they finish."""

    workers: int

    def run(self, fn: Callable[[C, T], R], context: C, tasks: Iterable[T]) -> Iterator[R]: ...


class InProcessExecutor:
    """Runs the tasks one after the other in this process."""

    workers = 1

    def run(self, fn: Callable[[C, T], R], context: C, tasks: Iterable[T]) -> Iterator[R]:
        for task in tasks:
            yield fn(context, task)


# ----------------------------------------------------------------------- local processes
_WORKER_STATE: dict[str, Any] = {}

#: Exit code of a worker whose start-up re-ran a script that starts workers itself.
_UNGUARDED_MAIN_EXIT = 86

UNGUARDED_MAIN = (
    "worker processes could not start: they re-import the script that started them "
    "(multiprocessing's 'spawn'), and this script starts the local executor again at import. "
    "Put its entry point under `if __name__ == \"__main__\":`, or use executor='inprocess'"
)


def _init_worker(fn: Callable[[Any, Any], Any], context: Any) -> None:
    """Pool initializer: keep ``fn`` and ``context``; Ctrl-C is the parent's to handle."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import torch  # heavy: loaded in the workers only

    torch.set_num_threads(1)
    _WORKER_STATE["fn"], _WORKER_STATE["context"] = fn, context


def _call_in_worker(task: Any) -> Any:
    return _WORKER_STATE["fn"](_WORKER_STATE["context"], task)


def _starting_up_in_a_worker() -> bool:
    """Whether this process is a spawned worker still importing its parent's script.

    That happens when a script starts the local executor without the
    ``__main__`` guard: every worker re-runs the script and would start workers
    of its own. (``_inheriting`` is the flag CPython's own check of this reads.)
    """
    return bool(getattr(multiprocessing.current_process(), "_inheriting", False))


class ProcessExecutor:
    """A pool of ``workers`` local processes (default: every core).

    A worker that dies (while starting, or killed) ends the run with
    :class:`~verifiNN.errors.InvalidInputError` (the usual cause, a script
    without the ``__main__`` guard, is named in the message) instead of a
    hang. Ctrl-C terminates the workers.

    Raises:
        InvalidInputError: ``workers < 1``.
    """

    def __init__(self, workers: int | None = None) -> None:
        self.workers = _workers(workers)

    def run(self, fn: Callable[[C, T], R], context: C, tasks: Iterable[T]) -> Iterator[R]:
        if _starting_up_in_a_worker():
            raise SystemExit(_UNGUARDED_MAIN_EXIT)  # quietly: the parent explains
        pool = ProcessPoolExecutor(
            self.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(fn, context),
        )
        queue = iter(tasks)
        pending: set[Future] = set()
        workers: dict[int, multiprocessing.process.BaseProcess] = {}  # every one ever started

        def submit(task: T) -> None:
            pending.add(pool.submit(_call_in_worker, task))
            workers.update((id(p), p) for p in _processes(pool))

        try:
            for task in itertools.islice(queue, 2 * self.workers):
                submit(task)
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    yield future.result()
                for task in itertools.islice(queue, len(done)):
                    submit(task)
        except BrokenProcessPool:
            for process in workers.values():
                process.join(timeout=5)
            codes = sorted({p.exitcode for p in workers.values() if p.exitcode is not None})
            if _UNGUARDED_MAIN_EXIT in codes:
                raise InvalidInputError(UNGUARDED_MAIN) from None
            raise SolverError(
                f"a worker process died (exit codes {codes}; killed for lack of memory?)"
            ) from None
        finally:
            _stop(pool)


def _processes(pool: ProcessPoolExecutor) -> list[multiprocessing.process.BaseProcess]:
    """The pool's worker processes (no public handle before Python 3.14)."""
    return list((getattr(pool, "_processes", None) or {}).values())


def _stop(pool: ProcessPoolExecutor) -> None:
    """Shut ``pool`` down now: pending tasks are cancelled, running workers terminated."""
    processes = _processes(pool)
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.terminate()
    for process in processes:
        process.join(timeout=5)


# -------------------------------------------------------------------------------- Ray
def _ray_call(fn: Callable[[Any, Any], Any], context: Any, task: Any) -> Any:
    import torch

    torch.set_num_threads(1)
    return fn(context, task)


class RayExecutor:
    """Ray tasks, one CPU each, on the cluster at ``address`` or a local instance.

    Args:
        address: a running cluster's address (``'auto'``, ``'ray://host:10001'``,
            ...); ``None`` starts a local Ray instance with ``workers`` CPUs and
            stops it after the run.
        workers: CPUs of the local instance (default: every core); with an
            address, at most this many tasks run at once (default: no cap).

    Raises:
        InvalidInputError: Ray is not installed, or ``workers < 1``.
    """

    def __init__(self, address: str | None = None, workers: int | None = None) -> None:
        try:
            import ray  # noqa: F401
        except ImportError as exc:
            raise InvalidInputError(
                "the 'ray' backend needs Ray: pip install 'verifiNN[ray]'"
            ) from exc
        self.address = address
        self.workers = _workers(workers) if workers is not None or address is None else 0

    def run(self, fn: Callable[[C, T], R], context: C, tasks: Iterable[T]) -> Iterator[R]:
        import ray

        started_here = False
        if not ray.is_initialized():
            if self.address is None:
                ray.init(
                    num_cpus=self.workers,
                    include_dashboard=False,
                    log_to_driver=False,
                    configure_logging=False,
                )
            else:
                ray.init(address=self.address, log_to_driver=False, configure_logging=False)
            started_here = True
        remote = ray.remote(num_cpus=1, max_retries=0)(_ray_call)
        pending: list[Any] = []
        try:
            fn_ref, context_ref = ray.put(fn), ray.put(context)
            queue = iter(tasks)
            cap = self.workers or None
            for task in queue:
                pending.append(remote.remote(fn_ref, context_ref, task))
                if cap is not None and len(pending) >= 4 * cap:
                    break  # keep the queue short: results stream while the rest waits
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                yield ray.get(done[0])
                for task in queue:
                    pending.append(remote.remote(fn_ref, context_ref, task))
                    break
        finally:
            for ref in pending:
                ray.cancel(ref, force=True)
            if started_here:
                ray.shutdown()


def _workers(workers: int | None) -> int:
    if workers is None:
        return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)
    if int(workers) < 1:
        raise InvalidInputError(f"workers must be >= 1, got {workers}")
    return int(workers)


def make_executor(
    backend: str = "local", workers: int | None = None, address: str | None = None
) -> Executor:
    """The executor for ``backend``: ``'local'`` (in this process when
    ``workers == 1``, else a process pool) or ``'ray'``.

    Raises:
        InvalidInputError: an unknown backend, ``workers < 1``, an address
            without Ray, or Ray not installed.
    """
    if backend not in BACKENDS:
        raise InvalidInputError(f"unknown backend {backend!r}: expected one of {BACKENDS}")
    if backend == "ray":
        return RayExecutor(address, workers)
    if address is not None:
        raise InvalidInputError("--address is for the 'ray' backend")
    count = _workers(workers)
    return InProcessExecutor() if count == 1 else ProcessExecutor(count)
