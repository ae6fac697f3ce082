"""The identity of an input file, for skip-if-done.

A cached result (a tiling, its selections and features, a prediction) is reused only when it was
made from the *same* file, not merely a file at the same path: a cohort regenerated in place, a
slide re-scanned or replaced keep their names.  Hashing a whole slide (GBs) on every run costs
more than the work it saves, so the fingerprint is the cheap one rsync and build tools use, made
stronger with the bytes that change first when a file is rewritten:

    sha256(size, mtime in ns, first MiB, last MiB)[:16]

Any rewrite changes the mtime; a copy that keeps the mtime (``cp -p``, ``rsync -a``) of a
different file still differs in size or in its header/trailer (a TIFF's directory and tile
offsets, an SVS's label and macro images).  A file touched without change is redone: that costs
time, never a wrong result.  Files below 2 MiB (simulated slides, PNGs) are hashed whole.
"""
from __future__ import annotations

import hashlib
import os
from functools import lru_cache
from pathlib import Path

from ..errors import IsgError

#: bytes hashed at each end of the file
CHUNK = 1 << 20


@lru_cache(maxsize=4096)
def _fingerprint(path: str, size: int, mtime_ns: int, ino: int, ctime_ns: int) -> str:
    h = hashlib.sha256(f"{size}:{mtime_ns}".encode())
    with open(path, "rb") as fh:
        h.update(fh.read(CHUNK))
        if size > CHUNK:
            fh.seek(max(CHUNK, size - CHUNK))
            h.update(fh.read(CHUNK))
    return h.hexdigest()[:16]


def file_fingerprint(path: "str | os.PathLike") -> str:
    """16 hex digits that change whenever the file at ``path`` is rewritten (see the module
    doc).  Memoised per (path, size, mtime, inode, ctime), so asking again in one process is free;
    the ctime (which no user can set back) keeps the memo honest when a rewrite restores the mtime."""
    p = Path(path)
    try:
        st = p.stat()  # follows symlinks: a cohort of linked slides fingerprints the slides
        if p.is_dir():  # MIRAX and DICOM slides are folders: the index file stands for them
            return hashlib.sha256(f"dir:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()[:16]
        return _fingerprint(str(p.resolve()), st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)
    except FileNotFoundError:
        raise IsgError(p, "no such file") from None
    except PermissionError:
        raise IsgError(p, "permission denied") from None


def content_sha256(path: "str | os.PathLike") -> str:
    """SHA-256 (64 hex) of the whole file's bytes: for small files whose content, not just their
    stat, must match (checkpoints, downloaded samples, the oracle's truth)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def stat_identity(path: "str | os.PathLike") -> tuple[int, int, int, int] | None:
    """(size, mtime in ns, inode, ctime in ns) of ``path``, None if it is missing: what changes when
    a file is rewritten or renamed into place (an atomic update gives a new inode), read without
    opening it.  For files this project writes itself (HDF5s, stamps), where a rewrite is the only
    change to detect; a user's files get :func:`file_fingerprint`."""
    try:
        s = os.stat(path)
    except OSError:
        return None
    return s.st_size, s.st_mtime_ns, s.st_ino, s.st_ctime_ns
