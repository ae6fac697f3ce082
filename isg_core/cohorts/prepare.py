"""Cohort preprocessing: tile and select every slide of a manifest (paper Sec. 3, steps 1-2).

Each slide gets ``<tiles>/<slide_id>.h5`` (CLAM layout, :mod:`isg_core.data.tiling`) holding its
tiling and one ``selection/<method>`` group per selector; feature extraction
(:mod:`isg_core.features.extract`) later adds ``features/<name>``.  The default tiles folder is
``<cohort>/tiles``.  Every step skips what is already done, so the same command resumes a
killed run.  A cohort found done is found so cheaply (:func:`_already_prepared`: no slide is opened),
since every stage after this one asks again.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import h5py
import pandas as pd

from ..config import TilingConfig
from ..data.fingerprint import file_fingerprint, stat_identity
from ..data.manifest import read_manifest, shard_rows, slide_mpps
from ..data.tiling import open_tiled_slide, read_tiling_h5, tile_to_h5
from ..errors import IsgError, atomic_write_text
from ..parallel import run_jobs
from ..paths import cohort_tiles_dir
from ..selection import ShannonSelector, add_selection_to_h5, get_selector, parse_threshold, threshold_info
from ..selection.slide import score_slide_many


def selection_is_current(h5_path: Path, method: str, threshold: str, params: str | None = None) -> bool:
    """True if ``h5_path`` already holds ``selection/<method>`` made with ``threshold`` (and, when
    given, the selector's ``params`` as JSON: another compressor or downsampling scores otherwise).
    The slide itself needs no check here: a tiling made from another file is redone whole."""
    try:
        with h5py.File(h5_path, "r") as f:
            g = f.get(f"selection/{method}")
            return (g is not None and str(g.attrs.get("threshold")) == threshold
                    and (params is None or str(g.attrs.get("selector_params")) == params))
    except OSError:
        return False


@dataclass(frozen=True)
class TileJob:
    """One slide of :func:`prepare_cohort`: tile it at ``tiling`` (read at ``mpp``; None: the file's
    own) into ``<tiles>/<slide_id>.h5`` and add a selection per method."""

    slide_path: str
    slide_id: str
    mpp: float | None
    tiles: Path
    methods: list[str]
    thresholds: dict[str, str]
    tiling: TilingConfig

    def __str__(self) -> str:
        return f"slide {self.slide_id} ({self.slide_path})"


#: the record, in a tiles folder, of the last complete :func:`prepare_cohort` (its inputs and its rows)
PREPARED_STAMP = ".prepared.json"


def _prepared_key(jobs) -> str:
    """SHA-256 of what a preparation was asked to do: per slide its id, the identity of its file
    (:func:`~isg_core.data.fingerprint.file_fingerprint`), the mpp it is read at, and the methods with
    their settings, thresholds and tiling config (2 MiB read per slide: no slide is opened)."""
    h = hashlib.sha256()
    for j in jobs:
        h.update(json.dumps([j.slide_id, file_fingerprint(j.slide_path), j.mpp,
                             [(m, get_selector(m).params()) for m in j.methods],  # another compressor scores otherwise
                             dict(sorted(j.thresholds.items())), asdict(j.tiling)], default=str).encode())
    return h.hexdigest()


#: preparations this process has confirmed: (tiles folder, key) -> (files' stat token, rows)
_CONFIRMED: dict[tuple[str, str], tuple[tuple, list[dict]]] = {}


def _stat_token(out: Path, jobs) -> tuple:
    """:func:`~isg_core.data.fingerprint.stat_identity` of the record, every slide file and every
    HDF5: what changes when any of them is rewritten (None for a missing file)."""
    return (stat_identity(out / PREPARED_STAMP),
            *[(stat_identity(j.slide_path), stat_identity(out / f"{j.slide_id}.h5")) for j in jobs])


def _files_token(out: Path, jobs) -> list:
    """:func:`~isg_core.data.fingerprint.stat_identity` of every slide file and HDF5, as the record
    stores it (JSON lists)."""
    return json.loads(json.dumps([[stat_identity(j.slide_path), stat_identity(out / f"{j.slide_id}.h5")]
                                  for j in jobs]))


#: preparations a record keeps (one per set of methods and settings asked for, the latest last)
STAMP_RECORDS = 8


def _read_records(out: Path) -> dict[str, dict]:
    """The record's preparations, key -> {"rows", "files"} (a record of the one-key format read
    as one entry; an unreadable one as none)."""
    try:
        rec = json.loads((out / PREPARED_STAMP).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(rec, dict):
        return {}
    if isinstance(rec.get("records"), dict):
        return rec["records"]
    if "key" in rec:
        return {rec["key"]: {"rows": rec.get("rows", []), "files": rec.get("files")}}
    return {}


def _write_stamp(out: Path, key: str, rows: list[dict], jobs) -> None:
    """Record a preparation found complete: what was asked (``key``), its rows, and the stat
    identity of every file it was found complete in; beside the other requests' records (another
    command asks for other selections of the same tiles), the latest :data:`STAMP_RECORDS` kept."""
    records = _read_records(out)
    records.pop(key, None)
    records[key] = {"rows": rows, "files": _files_token(out, jobs)}
    records = dict(list(records.items())[-STAMP_RECORDS:])
    atomic_write_text(out / PREPARED_STAMP, json.dumps({"records": records}) + "\n")


def _already_prepared(out: Path, jobs, key: str) -> list[dict] | None:
    """The rows of a preparation asked exactly this (``key``) if each slide's HDF5 still holds the
    tiling of that same file with every selection asked for; else None.
    No file is opened while every slide file and HDF5 keeps the stat identity the record saw it
    complete with (a rewrite, an atomic rename, gives another); within one process a
    confirmation is reused likewise (a notebook asks three times: for the table, and for each
    extractor's training set).  Otherwise each HDF5 is checked, and the record updated."""
    token = _stat_token(out, jobs)
    memo = _CONFIRMED.get((str(out), key))
    if memo is not None and memo[0] == token:
        return memo[1]
    rec = _read_records(out).get(key)
    if (isinstance(rec, dict) and len(rec.get("rows", [])) == len(jobs)
            and rec.get("files") == _files_token(out, jobs)):
        rows = rec["rows"]
    else:
        rows = _check_prepared(out, jobs, key)
        if rows is None:
            return None
        _write_stamp(out, key, rows, jobs)  # confirmed as the files now are
        token = _stat_token(out, jobs)
    _CONFIRMED[str(out), key] = (token, rows)
    return rows


def _check_prepared(out: Path, jobs, key: str) -> list[dict] | None:
    """Open every slide's HDF5: its rows if each holds the complete tiling of that same slide file
    with every selection ``jobs`` ask for (thresholds and selector settings included), else None.
    The rows are read from the files, so a request for fewer selections than a cohort was prepared
    with (another command's) is answered without tiling anything."""
    rows = []
    for j in jobs:
        try:
            with h5py.File(out / f"{j.slide_id}.h5", "r") as f:
                a = f.attrs
                if (not a.get("complete", False) or json.loads(a.get("tiling_config", "null")) != asdict(j.tiling)
                        or str(a.get("slide_fingerprint", "")) != file_fingerprint(j.slide_path)):
                    return None
                row = {"slide_id": str(a.get("slide_id", j.slide_id)), "h5": str(out / f"{j.slide_id}.h5"),
                       "n_patches": int(f["coords"].shape[0])}
                for m in j.methods:  # each selection still the one asked for (another command may redo one)
                    sel = get_selector(m)
                    g = f.get(f"selection/{sel.name}")
                    th = parse_threshold(j.thresholds.get(m), default=sel.default_threshold)
                    if (g is None or "keep" not in g or str(g.attrs.get("threshold")) != str(th)
                            or str(g.attrs.get("selector_params")) != json.dumps(sel.params(), default=str)):
                        return None  # as :func:`selection_is_current` asks: the settings it was made with
                    row[f"n_kept_{sel.name}"] = int(g.attrs["n_kept"])
                rows.append(row)
        except (OSError, ValueError, KeyError):
            return None
    return rows


def _prepare_one(job: TileJob) -> dict:
    slide_path, slide_id, mpp, tiles = job.slide_path, job.slide_id, job.mpp, job.tiles
    methods, thresholds, cfg = job.methods, job.thresholds, job.tiling
    h5, _ = tile_to_h5(slide_path, tiles, cfg, mpp=mpp, slide_id=slide_id)
    tiling = read_tiling_h5(h5)
    row = {"slide_id": tiling.slide_id, "h5": str(h5), "n_patches": tiling.n_patches}
    todo = []
    for method in methods:
        sel = get_selector(method)
        th = parse_threshold(thresholds.get(method), default=sel.default_threshold)
        if th.kind in ("bits", "bpp") and not isinstance(sel, ShannonSelector):
            raise IsgError(None, f"a '{th.kind}' threshold applies only to the shannon method, not {method!r}")
        if not selection_is_current(h5, sel.name, str(th), json.dumps(sel.params(), default=str)):
            todo.append((sel, th))
    if todo:  # one pass over the patches for every selection still to make
        with open_tiled_slide(slide_path, tiling, h5) as slide:
            scores = score_slide_many(slide, tiling, [s for s, _ in todo])
        for j, (sel, th) in enumerate(todo):
            info = threshold_info(scores[:, j], th, sel, cfg.global_size ** 2)
            add_selection_to_h5(h5, sel.name, scores[:, j], scores[:, j] > info["threshold_score"], info)
    with h5py.File(h5, "r") as f:
        for method in methods:
            name = get_selector(method).name
            row[f"n_kept_{name}"] = int(f[f"selection/{name}"].attrs["n_kept"])
    return row


def prepare_cohort(cohort_root: "str | os.PathLike", tiles: "str | os.PathLike | None" = None,
                   methods: Sequence[str] = ("shannon",), thresholds: dict[str, str] | None = None,
                   *, config: TilingConfig, workers: int = 1, progress: bool = True,
                   shard: "str | None" = None) -> pd.DataFrame:
    """Tile every slide of ``<cohort_root>/manifest.csv`` (or of its ``shard`` "K/N": see
    :func:`isg_core.data.manifest.shard_rows`) into ``<tiles>/<slide_id>.h5`` (the manifest's id) and
    add a selection per method.  A slide file changed since it was tiled is redone (see
    :func:`isg_core.data.tiling.tile_to_h5`); the manifest's optional ``mpp`` column gives the
    resolution of slides whose files lack one.

    ``thresholds`` maps a method to a threshold string (see
    :func:`isg_core.selection.parse_threshold`); missing methods use their default.  Returns one
    row per slide: slide_id, h5, n_patches and n_kept_<method>."""
    manifest = shard_rows(read_manifest(Path(cohort_root) / "manifest.csv"), shard)
    out = cohort_tiles_dir(cohort_root, tiles)
    jobs = [TileJob(p, sid, mpp, out, list(methods), dict(thresholds or {}), config)
            for p, sid, mpp in zip(manifest["path"], manifest["slide_id"], slide_mpps(manifest))]
    key = _prepared_key(jobs) if shard is None else None  # a shard leaves the cohort's record alone
    done = _already_prepared(out, jobs, key) if key else None
    if done is not None:
        return pd.DataFrame(done)
    # the bar is closed (its line ended) before an error propagates, so the error gets a line of its own
    rows = run_jobs(_prepare_one, jobs, workers, "tile + select", progress, unit="slide")
    if key:
        _write_stamp(out, key, rows, jobs)
    return pd.DataFrame(rows)
