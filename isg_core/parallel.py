"""Worker processes: the one place the package runs a process pool.

A job is a frozen dataclass (picklable, its fields named: no 7- or 9-tuples of positional
settings) and ``fn`` a module-level function of one job.  :func:`run_jobs` runs ``fn`` over the
jobs and returns the results in the jobs' order, whatever order the workers finish in:

* ``workers <= 1`` or a single job: in this process, one after the other (no pool);
* otherwise ``min(workers, len(jobs))`` processes started with ``start``: None for the platform's
  default (fork on Linux), ``"fork"`` (falls back to spawn where fork is missing) or ``"spawn"``
  (a fresh interpreter: ``fn`` and the jobs must be importable and picklable);
* a progress bar over the jobs (tqdm; or the caller's ``bar``), closed before an error propagates
  so that the error gets a line of its own;
* an exception in a job propagates as itself (an :class:`~isg_core.errors.IsgError` keeps its one
  line; it pickles with its arguments) with a note naming the job (``str(job)``); the jobs not yet
  started are cancelled.

:func:`in_fresh_process` runs one call in a spawned process of its own (the efficiency study's
peak memory), with the caller's warning filters.
"""
from __future__ import annotations

import multiprocessing as mp
import warnings
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Callable, Iterable

from tqdm import tqdm

#: how worker processes start: the platform's default, fork, or spawn
START_METHODS = (None, "fork", "spawn")


def pool_context(start: str | None):
    """The multiprocessing context of ``start`` (None: the platform's default; ``"fork"`` where
    the platform has it, else spawn)."""
    if start not in START_METHODS:
        raise ValueError(f"unknown start method {start!r} (choose one of {START_METHODS})")
    if start is None:
        return None
    if start == "fork" and "fork" not in mp.get_all_start_methods():
        start = "spawn"
    return mp.get_context(start)


def job_name(job: Any, width: int = 200) -> str:
    """What an error says of a job: ``str(job)`` (a job class may define ``__str__``; a dataclass's
    repr otherwise), cut to ``width`` characters."""
    text = str(job)
    return text if len(text) <= width else text[:width - 3] + "..."


def _name_job(e: BaseException, job: Any, i: int, n: int, desc: str | None, fn: Callable) -> None:
    if hasattr(e, "add_note"):  # Python 3.11+; on 3.10 the error propagates without the note
        e.add_note(f"in {desc or getattr(fn, '__name__', 'a job')}: job {i + 1} of {n}: {job_name(job)}")


def run_jobs(fn: Callable[[Any], Any], jobs: Iterable[Any], workers: int = 1, desc: str | None = None,
             progress: bool = False, *, unit: str = "job", start: str | None = None,
             initializer: Callable | None = None, initargs: tuple = (), bar=None) -> list:
    """``[fn(job) for job in jobs]``, in ``workers`` processes when there are more than one (see the
    module doc); ``initializer(*initargs)`` runs once in each worker process.  ``bar``: a progress
    bar of the caller's to update (one step per job) instead of one of ``desc`` and ``unit``."""
    jobs = list(jobs)
    n = len(jobs)
    context = pool_context(start)
    results: list = [None] * n
    own = bar is None
    if own:
        bar = tqdm(total=n, desc=desc, unit=unit, disable=not progress)
    try:
        if workers <= 1 or n <= 1:
            for i, job in enumerate(jobs):
                try:
                    results[i] = fn(job)
                except Exception as e:
                    _name_job(e, job, i, n, desc, fn)
                    raise
                bar.update(1)
            return results
        with ProcessPoolExecutor(min(workers, n), mp_context=context, initializer=initializer,
                                 initargs=initargs) as ex:
            futures = [ex.submit(fn, job) for job in jobs]
            try:
                for i, f in enumerate(futures):
                    try:
                        results[i] = f.result()
                    except Exception as e:
                        _name_job(e, jobs[i], i, n, desc, fn)
                        raise
                    bar.update(1)
            except BaseException:
                for f in futures:  # what has not started never will
                    f.cancel()
                raise
        return results
    finally:
        if own:
            bar.close()


def _inherit_warning_filters(filters: list) -> None:
    warnings.filters[:0] = filters


def in_fresh_process(fn, *args):
    """``fn(*args)`` in a spawned process (so ``ru_maxrss`` is that call's own peak), with the
    caller's warning filters (a spawned interpreter starts with the defaults: a warning the caller
    chose to silence would otherwise reappear on the child's stderr)."""
    with ProcessPoolExecutor(1, mp_context=mp.get_context("spawn"), initializer=_inherit_warning_filters,
                             initargs=(list(warnings.filters),)) as ex:
        return ex.submit(fn, *args).result()
