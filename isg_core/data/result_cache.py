"""Tables computed once and reused while their inputs are unchanged.

A study that reads a cohort and trains or scores for minutes (Table 5's probes, the selector and
compressor studies) keeps its result tables in one file named by the identity of what it was
computed from, as a cross-validation's folder is named by its run id
(:mod:`isg_core.train.run_dirs`):

* :func:`identity` is the SHA-256 of the canonical JSON of a config (every argument that changes
  the answer, a format version, the versions of the libraries that compute it) followed by the
  *content* of the data it reads (arrays, tables), each part tagged with its type, dtype and shape
  so that two inputs never hash alike by running into each other.  Files too large to hash are
  named in the config by :func:`~isg_core.data.fingerprint.file_fingerprint`;
* the tables are stored in ``<folder>/<name>-<identity[:16]>.npz`` (NumPy's zip of arrays, read
  with ``allow_pickle=False``: opening a cache file runs no code), written atomically
  (:func:`~isg_core.errors.atomic_path`), with the full identity inside;
* a file that cannot be read back (truncated, garbage, another identity, another format) is
  reported with a :class:`~isg_core.data.tiling.StaleResultWarning` and computed again.

A stored table comes back as it was stored: the same columns in the same order with the same
dtypes, the same index (a ``RangeIndex`` stays one) and the same values bit for bit, so what a
notebook writes from it is byte-identical to a fresh computation.  Columns may hold numbers,
booleans, dates or strings (``str`` or ``object`` columns, missing values kept as NaN, None or
``pd.NA``); anything else is refused when stored (a ``TypeError``), not mangled.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
import zipfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from ..errors import atomic_path, first_line
from .tiling import StaleResultWarning

#: the layout of a cache file; a file of another layout is computed again
FORMAT = 1
#: codes of a string column's missing values (0: a string)
_MISSING = {1: np.nan, 2: None, 3: pd.NA}


def library_versions(*dists: str) -> dict[str, str]:
    """``{distribution: installed version}`` ("absent" where it is not installed): what a cached
    result's identity holds so that an upgraded codec or torch computes it again."""
    out = {}
    for d in dists:
        try:
            out[d] = version(d)
        except PackageNotFoundError:
            out[d] = "absent"
    return out


def _update(h, x: Any) -> None:
    """Feed ``x`` into the hash ``h``: arrays by dtype, shape and bytes; tables and series by their
    labels, index and values; sequences item by item; anything else as canonical JSON."""
    if isinstance(x, pd.DataFrame):
        h.update(f"frame:{x.shape}".encode())
        _update_values(h, x.columns)
        _update_values(h, x.index)
        for j in range(x.shape[1]):
            _update_values(h, x.iloc[:, j])
    elif isinstance(x, pd.Series):
        h.update(f"series:{x.name!r}".encode())
        _update_values(h, x.index)
        _update_values(h, x)
    elif isinstance(x, pd.Index):
        _update_values(h, x)
    elif isinstance(x, np.ndarray):
        h.update(f"array:{x.dtype.str}:{x.shape}".encode())
        if x.dtype.kind == "O":  # pointers, not values: the values as JSON
            h.update(json.dumps([None if _is_missing(v) else v for v in x.ravel().tolist()], default=str).encode())
        else:
            h.update(np.ascontiguousarray(x).tobytes())
    elif isinstance(x, (list, tuple)):
        h.update(f"seq:{len(x)}".encode())
        for v in x:
            _update(h, v)
    else:
        blob = json.dumps(x, sort_keys=True, default=str).encode()
        h.update(f"json:{len(blob)}:".encode() + blob)


def _update_values(h, values: "pd.Index | pd.Series") -> None:
    """An index's or a column's dtype, name and values."""
    h.update(f"values:{values.dtype}:{values.name!r}:{len(values)}".encode())
    numeric = isinstance(values.dtype, np.dtype) and values.dtype.kind != "O"
    _update(h, values.to_numpy() if numeric else values.to_numpy(dtype=object))


def _is_missing(v: Any) -> bool:
    return v is None or v is pd.NA or (isinstance(v, float) and v != v)


def identity(config: Mapping[str, Any], *data: Any) -> str:
    """SHA-256 (64 hex) of ``config`` (canonical JSON, as :func:`isg_core.train.run_dirs.run_id`
    hashes a run's config) and of the content of ``data`` (arrays, tables, lists of them; see the
    module doc).  Equal inputs give equal identities in any process and on any machine."""
    h = hashlib.sha256()
    _update(h, dict(config))
    for d in data:
        _update(h, d)
    return h.hexdigest()


def cache_path(folder: "str | os.PathLike", name: str, key: str) -> Path:
    """``<folder>/<name>-<key[:16]>.npz``; characters of ``name`` that do not belong in a file
    name (a feature set's ``:global``) become ``_``."""
    return Path(folder) / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', name)}-{key[:16]}.npz"


# --- columns and indexes as arrays -----------------------------------------------------------------
def _encode(values: "pd.Index | pd.Series", stem: str, arrays: dict[str, np.ndarray]) -> dict:
    """Store one column or index under ``stem`` in ``arrays``; returns how to rebuild it."""
    dtype = values.dtype
    if isinstance(dtype, np.dtype) and dtype.kind in "biufcmM":
        arrays[stem] = values.to_numpy()
        return {"kind": "array", "dtype": str(dtype)}
    if not (isinstance(dtype, np.dtype) and dtype.kind == "O") and not isinstance(dtype, pd.StringDtype):
        # a category keeps its order, a date its timezone: this format keeps neither
        raise TypeError(f"cannot cache a column of dtype {dtype}")
    obj = values.to_numpy(dtype=object)
    codes = np.zeros(len(obj), np.int8)
    for i, v in enumerate(obj):
        if _is_missing(v):
            codes[i] = 1 if isinstance(v, float) else 2 if v is None else 3
        elif not isinstance(v, str):
            raise TypeError(f"cannot cache a {dtype} column holding a {type(v).__name__} ({v!r})")
    arrays[stem] = np.array(["" if c else v for v, c in zip(obj, codes)], dtype=str)
    arrays[stem + ".missing"] = codes
    return {"kind": "strings", "dtype": str(dtype)}


def _decode(z, stem: str, spec: dict) -> "np.ndarray | pd.api.extensions.ExtensionArray":
    values = z[stem]
    if spec["kind"] == "array":
        if str(values.dtype) != spec["dtype"]:
            raise ValueError(f"{stem} is {values.dtype}, recorded as {spec['dtype']}")
        return values
    obj = values.astype(object)
    for code, missing in _MISSING.items():
        obj[z[stem + ".missing"] == code] = missing
    return obj if spec["dtype"] == "object" else pd.array(obj, dtype=spec["dtype"])


def _encode_index(idx: pd.Index, stem: str, arrays: dict[str, np.ndarray]) -> dict:
    if isinstance(idx, pd.MultiIndex):
        raise TypeError("cannot cache a table with a MultiIndex")
    if isinstance(idx, pd.RangeIndex):  # kept a RangeIndex: assert_frame_equal tells them apart
        return {"kind": "range", "start": idx.start, "stop": idx.stop, "step": idx.step, "name": idx.name}
    return {**_encode(idx, stem, arrays), "name": idx.name}


def _decode_index(z, stem: str, spec: dict) -> pd.Index:
    if spec["kind"] == "range":
        return pd.RangeIndex(spec["start"], spec["stop"], spec["step"], name=spec["name"])
    return pd.Index(_decode(z, stem, spec), dtype=spec["dtype"], name=spec["name"], copy=False)


def _encode_frame(df: pd.DataFrame, i: int, arrays: dict[str, np.ndarray]) -> dict:
    return {"columns": _encode_index(df.columns, f"f{i}.columns", arrays),
            "index": _encode_index(df.index, f"f{i}.index", arrays),
            "values": [_encode(df.iloc[:, j], f"f{i}.c{j}", arrays) for j in range(df.shape[1])]}


def _decode_frame(z, i: int, spec: dict) -> pd.DataFrame:
    cols = {j: pd.Series(_decode(z, f"f{i}.c{j}", s), dtype=s["dtype"], copy=False)
            for j, s in enumerate(spec["values"])}
    index = _decode_index(z, f"f{i}.index", spec["index"])
    df = pd.DataFrame(cols, index=None if cols else index)
    df.index = index
    df.columns = _decode_index(z, f"f{i}.columns", spec["columns"])
    got = [str(d) for d in df.dtypes]
    if got != [s["dtype"] for s in spec["values"]]:
        raise ValueError(f"table {i} read back with dtypes {got}")
    return df


# --- files ---------------------------------------------------------------------------------------
def save_frames(path: "str | os.PathLike", key: str, frames: Sequence[pd.DataFrame]) -> Path:
    """Store ``frames`` with their identity ``key`` at ``path`` (atomically: a killed job leaves
    the old file or none, never half a file)."""
    arrays: dict[str, np.ndarray] = {}
    meta = {"format": FORMAT, "key": key, "frames": [_encode_frame(df, i, arrays) for i, df in enumerate(frames)]}
    arrays["meta"] = np.array(json.dumps(meta))
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
    return Path(path)


def load_frames(path: "str | os.PathLike", key: str) -> tuple[pd.DataFrame, ...] | None:
    """The tables stored at ``path`` for identity ``key``; None if there is no file, and None with
    a warning if it cannot be read back as stored for ``key`` (it is then computed again)."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        if not zipfile.is_zipfile(path):  # else NumPy's message speaks of pickles
            raise ValueError("not a complete zip archive")
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"][()]))
            if meta.get("format") != FORMAT:
                raise ValueError(f"format {meta.get('format')}, this isg writes {FORMAT}")
            if meta.get("key") != key:
                raise ValueError("stored for other inputs")
            return tuple(_decode_frame(z, i, spec) for i, spec in enumerate(meta["frames"]))
    except Exception as e:  # noqa: BLE001 - a truncated zip, garbage, a missing member: all mean "compute again"
        warnings.warn(f"{path}: damaged cache file ({first_line(e)}); computing it again", StaleResultWarning,
                      stacklevel=3)
        return None


def cached_frames(folder: "str | os.PathLike", name: str, key: str,
                  compute: Callable[[], Sequence[pd.DataFrame]]) -> tuple[pd.DataFrame, ...]:
    """The tables stored for ``key`` in ``folder`` (:func:`cache_path`), else ``compute()``'s,
    stored there for the next call."""
    path = cache_path(folder, name, key)
    found = load_frames(path, key)
    if found is not None:
        return found
    frames = tuple(compute())
    save_frames(path, key, frames)
    return frames
