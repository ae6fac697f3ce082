"""One-line errors and atomic writes.

Every user-facing failure in ``isg_core`` is an :class:`IsgError` whose message names the
file and the problem on one line; the CLI prints it and exits non-zero instead of showing a
traceback.  Every file the package writes goes through :func:`atomic_path`: it is written
under a temporary name in the same directory and renamed into place only when complete, so
a killed job never leaves a half-written file behind under the real name.
"""
from __future__ import annotations

import contextlib
import glob
import os
import signal
import tempfile
from pathlib import Path
from typing import Iterator


class IsgError(Exception):
    """A problem with the user's input or environment, reported as one line."""
    def __init__(self, path: str | os.PathLike | None, problem: str):
        self.path = None if path is None else str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path else problem)

    def __reduce__(self):
        # picklable with its two arguments: an error raised in a worker process (isg prepare
        # --workers N) must reach the parent as itself, not break the process pool
        return (IsgError, (self.path, self.problem))


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` if the block succeeds.
    The temporary file lives in the destination directory so the final ``os.replace`` is a
    same-filesystem rename (atomic on POSIX).  On any exception the temporary file is removed
    and ``path`` is left as it was.
    """
    path = Path(path)
    parent = writable_dir(path.parent)
    sfx = path.suffix if suffix is None else suffix
    # A writer killed with SIGKILL cannot clean up: its temporary file is left beside the target.
    # Every target has a single writer (shards never share a slide), so a temporary file of the
    # same target found now belongs to a dead writer and is removed.
    for stale in parent.glob(f".{glob_escape(path.name)}.*.tmp{glob_escape(sfx)}"):
        stale.unlink(missing_ok=True)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{sfx}", dir=parent)
    except OSError as e:
        raise IsgError(parent, f"cannot write in output directory ({e.strerror})") from None
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():  # mkstemp makes 0600 files; give the result the usual permissions
            os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, path)
    except OSError as e:
        tmp_path.unlink(missing_ok=True)
        raise IsgError(path, f"cannot write ({e.strerror})") from None
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def first_line(e: BaseException, width: int = 160) -> str:
    """The first line of an exception's message, cut to ``width`` characters (the exception's
    type name when the message is empty): what a one-line :class:`IsgError` quotes of the
    library error beneath it (h5py, torch, pandas messages can run to many lines)."""
    text = str(e).strip()
    return (text.splitlines()[0] if text else type(e).__name__)[:width]


def glob_escape(text: str) -> str:
    """``text`` with glob's special characters escaped (slide ids may hold brackets)."""
    return glob.escape(text)


def fault_point(name: str) -> None:
    """Fault injection for the kill-and-resume tests: when the environment variable
    ``ISG_FAULT_<NAME>`` holds a count, it is decremented at each call and the process kills
    itself with SIGKILL (as ``kill -9`` would) when it reaches 0.  Without the variable this
    costs one dictionary lookup; it never fires in normal use."""
    key = f"ISG_FAULT_{name.upper()}"
    left = os.environ.get(key)
    if left is None:
        return
    n = int(left) - 1
    os.environ[key] = str(n)
    if n <= 0:
        os.kill(os.getpid(), signal.SIGKILL)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def writable_dir(directory: str | os.PathLike) -> Path:
    """Create ``directory`` if needed and check that it can be written to (one-line errors)."""
    d = Path(directory)
    if d.exists() and not d.is_dir():
        raise IsgError(d, "is a file, not a directory")
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise IsgError(d, f"cannot create output directory ({e.strerror})") from None
    if not os.access(d, os.W_OK):
        raise IsgError(d, "output directory is not writable")
    return d


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_path`)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)
