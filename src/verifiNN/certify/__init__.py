"""Certify a whole data set: certified and attack accuracy per epsilon.

:func:`certify` decides, for every sample and epsilon, whether the ball around
the sample is robust (proved), not robust (a confirmed counterexample) or
undecided, with :func:`verifiNN.verify`. Samples are independent
tasks for an executor (:mod:`verifiNN.executors`: in-process, local processes
or Ray); each finished sample is appended to a results file at once
(:class:`~verifiNN.certify.store.ResultStore`), so an interrupted run resumes
where it stopped and its final table equals an uninterrupted run's.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from verifiNN.certify.data import Dataset, check_dataset, load_dataset
from verifiNN.certify.report import summarise, write_report
from verifiNN.certify.sample import ROBUST, ROW_FIELDS, CertifyOptions, certify_sample
from verifiNN.certify.store import ResultStore, digest, network_digest
from verifiNN.errors import InvalidInputError
from verifiNN.executors import Executor, make_executor
from verifiNN.models.network import Network
from verifiNN.specs import normalize_norm
from verifiNN.verifiers.portfolio import METHODS

__all__ = [
    "ROW_FIELDS",
    "CertifyResult",
    "Dataset",
    "certify",
    "check_dataset",
    "load_dataset",
    "summarise",
    "write_report",
]

RESULTS_FILE = "results.jsonl"


@dataclass
class CertifyResult:
    """The per-sample table (one row per sample and epsilon), its summary and
    the files written (empty without an output folder)."""

    rows: list[dict]
    summary: dict[str, Any]
    files: dict[str, Path]

    @property
    def certified_accuracy(self) -> dict[float, float]:
        return {e["epsilon"]: e["certified_accuracy"] for e in self.summary["epsilons"]}

    @property
    def attack_accuracy(self) -> dict[float, float]:
        return {e["epsilon"]: e["attack_accuracy"] for e in self.summary["epsilons"]}


def certify(
    network: Network,
    inputs: Any,
    labels: Any,
    epsilons: Sequence[float],
    norm: str = "inf",
    method: str = "auto",
    timeout_per_sample: float | None = 10.0,
    executor: str | Executor = "local",
    *,
    workers: int | None = None,
    address: str | None = None,
    out: str | os.PathLike | None = None,
    radius: bool = False,
    domain: tuple[float, float] | None = None,
    seed: int = 0,
    progress: bool = False,
    on_sample: Callable[[list[dict]], None] | None = None,
    run_info: dict[str, Any] | None = None,
) -> CertifyResult:
    """Certify every sample of a data set at every epsilon.

    Args:
        network: the classifier.
        inputs: ``(N, *input_shape)`` or ``(N, input_size)`` array.
        labels: ``N`` true classes.
        epsilons: the radii (sorted and de-duplicated).
        norm: ``'inf'``, ``'1'`` or ``'2'``.
        method: the :func:`verifiNN.verify` method.
        timeout_per_sample: seconds per sample, shared by its epsilons.
        executor: ``'local'`` (``workers`` processes, default every core; in
            this process when ``workers == 1``), ``'inprocess'``, ``'ray'``
            (the cluster at ``address``, or a local Ray instance), or an
            :class:`~verifiNN.executors.Executor`.
        out: folder for ``results.jsonl`` (streamed, resumable) and, at the
            end, ``results.csv``, ``summary.json``, ``certified_accuracy.png``
            and ``report.md``. ``None``: nothing is written.
        radius: also compute each correct sample's CROWN certified radius.
        domain: optional ``(lo, hi)`` valid-input box (e.g. ``(0, 1)``).
        seed: base seed of the attacks (sample ``i`` uses ``seed + i``).
        progress: show a progress bar on stderr.
        on_sample: called with each sample's rows as soon as they are stored.
        run_info: extra entries for the run description (e.g. file names).

    Returns:
        A :class:`CertifyResult`.

    Raises:
        InvalidInputError: bad data, epsilons, norm, method or executor, all
            checked before any work starts.
        ResultFileError: ``out`` holds another run's results or is not writable.
    """
    data = check_dataset(inputs, labels, network)
    eps = _check_epsilons(epsilons)
    norm = normalize_norm(norm)
    if method not in METHODS:
        raise InvalidInputError(f"unknown method {method!r}: expected one of {', '.join(METHODS)}")
    if timeout_per_sample is not None and not timeout_per_sample > 0:
        raise InvalidInputError(f"timeout_per_sample must be positive, got {timeout_per_sample}")
    runner = _executor(executor, workers, address)
    options = CertifyOptions(network, eps, norm, method, timeout_per_sample, domain, radius, seed)
    run = {
        **(run_info or {}),
        "model_sha256": network_digest(network),
        "data_sha256": digest(data.inputs, data.labels),
        "epsilons": list(eps),
        "norm": norm,
        "method": method,
        "timeout": timeout_per_sample,
        "domain": None if domain is None else [float(domain[0]), float(domain[1])],
        "radius": radius,
        "seed": seed,
    }
    store = ResultStore(None if out is None else Path(out) / RESULTS_FILE, run)
    tasks = [
        (i, data.inputs[i], int(data.labels[i])) for i in range(len(data)) if not store.done(i)
    ]
    bar = tqdm(
        total=len(data),
        initial=len(data) - len(tasks),
        unit="sample",
        file=sys.stderr,
        disable=not progress,
        dynamic_ncols=True,
    )
    largest = eps[-1]
    certified = sum(
        any(r["verdict"] == ROBUST and r["epsilon"] == largest for r in rows)
        for rows in store.rows.values()
    )
    bar.set_postfix_str(f"certified at {largest:g}: {certified}")
    try:
        for rows in runner.run(certify_sample, options, tasks):
            store.add(rows)
            certified += any(r["verdict"] == ROBUST and r["epsilon"] == largest for r in rows)
            bar.set_postfix_str(f"certified at {largest:g}: {certified}")
            bar.update(1)
            if on_sample is not None:
                on_sample(rows)
    finally:
        bar.close()
        store.close()
    table = store.table()
    summary = summarise(table, len(data))
    files = {} if out is None else write_report(out, table, summary, run)
    return CertifyResult(table, summary, files)


def _check_epsilons(epsilons: Sequence[float]) -> tuple[float, ...]:
    try:
        values = sorted({float(e) for e in epsilons})
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"epsilons must be numbers, got {epsilons!r}") from exc
    if not values or not all(np.isfinite(e) and e > 0 for e in values):
        raise InvalidInputError(f"epsilons must be positive and finite, got {list(epsilons)}")
    return tuple(values)


def _executor(executor: str | Executor, workers: int | None, address: str | None) -> Executor:
    if not isinstance(executor, str):
        return executor
    if executor == "inprocess":
        return make_executor("local", 1)
    return make_executor(executor, workers, address)
