"""Shared test utilities (issue 14): permission errors injected rather than skipped, deadlines
for tests that start processes, and the smoke cohort built when it is missing.

* :func:`deny` makes a file or folder behave, for this process, as if its permission bits
  refused the user: ``os.access`` answers False and opening, creating, renaming or deleting
  there raises ``PermissionError(EACCES)``.  Root ignores permission bits (CI runs as root),
  so a ``chmod`` cannot make these tests fail the way a user's would; the injection can,
  everywhere.  (Libraries that open files in C, e.g. OpenSlide and HDF5, do not see it: the
  package checks ``os.access`` before it hands them a path.)
* :func:`deadline` fails a block of a test, instead of letting it hang, when it runs past its
  time: for in-process calls that start worker processes (a process pool, a Jupyter kernel,
  pip), where no ``timeout=`` can be passed.  :func:`run` is ``subprocess.run`` with a timeout
  that also kills the command's own children (the commands of a shell script).
* :func:`smoke_cohort` is ``isg simulate --profile smoke`` (what ``make test`` runs first), done
  here when the cohort is missing instead of skipping the tests that read it.
* :func:`same` (tables equal bit for bit, dtypes and index kinds included) and :func:`counting`
  (calls of a function recorded): what the tests of stored results check.
"""
from __future__ import annotations

import builtins
import contextlib
import errno
import io
import multiprocessing
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


# --- injected permission errors -------------------------------------------------------------------
def eacces(path: str | bytes | os.PathLike) -> PermissionError:
    """The error the OS gives for a path whose permission bits refuse the user."""
    return PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fsdecode(os.fspath(path)))


def deny(monkeypatch, target: str | os.PathLike, *, read: bool = False, write: bool = False) -> None:
    """Refuse reading and/or writing ``target`` (a file, or a folder and everything in it) for the
    rest of the test, as a ``chmod`` does for a user who is not root:

    * ``os.access(path, R_OK / W_OK)`` is False for the refused kind of access;
    * ``os.open`` and ``open`` / ``io.open`` (so ``Path.open``, ``tempfile.mkstemp``, ``shutil`` ...)
      raise ``PermissionError(EACCES)`` for a refused read or write;
    * with ``write``, creating (``os.mkdir``), renaming into or out of (``os.replace``, ``os.rename``)
      and deleting (``os.unlink``, ``os.remove``, ``os.rmdir``) an entry inside ``target`` raise it too.
    """
    if not (read or write):
        raise ValueError("deny needs read=True and/or write=True")
    root = os.path.realpath(target)

    def under(path, strictly: bool = False) -> bool:
        """``path`` is ``target`` (unless ``strictly``) or inside it."""
        if isinstance(path, int):  # a file descriptor: already open
            return False
        try:
            p = os.path.realpath(os.fsdecode(os.fspath(path)))
        except TypeError:
            return False
        return p.startswith(root + os.sep) or (p == root and not strictly)

    real = {name: getattr(os, name) for name in ("access", "open", "mkdir", "replace", "rename", "unlink", "remove",
                                                 "rmdir")}
    real_open = io.open

    def access(path, mode, *a, **k):
        if under(path) and ((write and mode & os.W_OK) or (read and mode & os.R_OK)):
            return False
        return real["access"](path, mode, *a, **k)

    def os_open(path, flags, *a, **k):
        if under(path) and ((write and flags & _WRITE_FLAGS)
                            or (read and (flags & os.O_ACCMODE) in (os.O_RDONLY, os.O_RDWR))):
            raise eacces(path)
        return real["open"](path, flags, *a, **k)

    def py_open(file, mode="r", *a, **k):
        if under(file) and ((write and any(c in mode for c in "wax+")) or (read and ("r" in mode or "+" in mode))):
            raise eacces(file)
        return real_open(file, mode, *a, **k)

    def entry_change(fn):
        def changed(*args, **kwargs):
            if write:
                for p in args[:2]:
                    if isinstance(p, (str, bytes, os.PathLike)) and under(p, strictly=True):
                        raise eacces(p)
            return fn(*args, **kwargs)
        return changed

    monkeypatch.setattr(os, "access", access)
    monkeypatch.setattr(os, "open", os_open)
    monkeypatch.setattr(io, "open", py_open)
    monkeypatch.setattr(builtins, "open", py_open)
    for name in ("mkdir", "replace", "rename", "unlink", "remove", "rmdir"):
        monkeypatch.setattr(os, name, entry_change(real[name]))


# --- deadlines --------------------------------------------------------------------------------------
def kill_children() -> None:
    """Kill every process this one started (a pool's workers, a kernel, pip), so that whatever
    waits for them returns."""
    for p in multiprocessing.active_children():
        p.kill()
    try:
        import psutil  # with jupyter (the dev extra); without it, multiprocessing's children only
    except ImportError:
        return
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            child.kill()


@contextlib.contextmanager
def deadline(seconds: float, what: str) -> Iterator[None]:
    """Fail the test if the block still runs after ``seconds``: SIGALRM interrupts the main thread,
    the processes it started are killed, and ``pytest.fail`` is raised there (a BaseException, so
    no ``except Exception`` of the code under test swallows it)."""
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("deadline() needs the main thread (it uses SIGALRM)")

    def on_alarm(signum, frame):
        kill_children()
        pytest.fail(f"{what} still running after {seconds:.0f} s: its processes were killed", pytrace=False)

    outer, _ = signal.getitimer(signal.ITIMER_REAL)  # an enclosing deadline's time left (0: none)
    start = time.monotonic()
    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, min(seconds, outer) if outer else seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
        if outer:  # the enclosing deadline keeps running
            signal.setitimer(signal.ITIMER_REAL, max(outer - (time.monotonic() - start), 0.001))


def run(cmd: list[str], timeout: float, **kwargs) -> subprocess.CompletedProcess:
    """``subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kwargs)`` in a session
    of its own: past ``timeout`` the whole session is killed (a script's children too, which would
    otherwise keep its output pipes open) and the test fails."""
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                          **kwargs) as p:
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
            out, err = p.communicate()
            pytest.fail(f"{' '.join(map(str, cmd))[:200]} still running after {timeout:.0f} s: killed\n"
                        f"{(err or '')[-1000:]}", pytrace=False)
    return subprocess.CompletedProcess(cmd, p.returncode, out, err)


# --- the smoke cohort ---------------------------------------------------------------------------------
def smoke_cohort() -> Path:
    """The smoke profile's ISG-Sim cohort (``data/cohorts/isg-sim-smoke``), simulated now if it is
    not there yet (``isg simulate --profile smoke``; a complete one is kept as it is)."""
    from isg_core.config import get_profile
    from isg_core.paths import cohort_dir
    from isg_core.simulate import simulate_cohort

    prof = get_profile("smoke")
    with deadline(600, "simulating the smoke cohort"):
        return simulate_cohort(cohort_dir("smoke"), n_slides=3 * prof.sim.slides_per_type, seed=prof.sim.seed,
                               size=prof.sim.size, workers=prof.workers, tiling=prof.tiling, progress=False,
                               layout=prof.sim.layout)


# --- stored results ---------------------------------------------------------------------------------
def same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    """Equal bit for bit, with the same dtypes and the same kinds of index and columns."""
    pd.testing.assert_frame_equal(a, b, check_exact=True, check_index_type=True, check_column_type=True)
    assert type(a.index) is type(b.index) and list(a.columns) == list(b.columns)


def counting(monkeypatch, module, name: str) -> list:
    """Replace ``module.name`` by a wrapper that records each call; returns the record."""
    calls, original = [], getattr(module, name)

    def wrapper(*args, **kwargs):
        calls.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapper)
    return calls
