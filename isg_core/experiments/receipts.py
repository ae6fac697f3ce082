"""Finding a finished cross-validation without loading its data.

A run's folder is named by its configuration (:func:`~isg_core.train.run_dirs.run_id`) and
checked against a fingerprint of the data it learnt from
(:func:`~isg_core.train.run_dirs.data_fingerprint`), so confirming that a run is done used to
mean reading every slide's features: a minute per table on a cached rerun.  A *receipt* links
the identity of a run's *inputs*, read from the slides' HDF5 metadata alone, to the folder and
data fingerprint that those inputs gave:

* per slide: the tiling's attributes (with the slide file's fingerprint), and the attributes
  and dataset shapes of the feature set and selection the experiment reads (the extractor's
  checkpoint hash, the selector, its threshold, when and how the features were written);
* for the oracle, the bytes of the simulated truth it reads (``patches.csv``, ``maps/``);
* the targets, the slides, the experiment's spec, the training config and the model width.

A re-extraction, a reselection or a regenerated cohort rewrites those attributes, so the
receipt no longer matches and the run is confirmed the slow way (and re-receipted).  The
receipt is a fast path to the same decision, never a second source of truth: the folder must
still hold the recorded data fingerprint and every fold's predictions and model.

Reading those attributes from 300 HDF5s takes seconds per table, so what was read is kept in
``<tiles>/.receipts/identity.json`` (:func:`load_identity_memo`, :func:`save_identity_memo`),
per file with its :func:`~isg_core.data.fingerprint.stat_identity`: an entry serves only while the
file has not been rewritten, and a rewrite (an atomic rename gives a new inode) reads it again.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Sequence

import h5py
import numpy as np
import pandas as pd

from ..data.fingerprint import content_sha256, stat_identity
from ..errors import IsgError, atomic_path
from ..features.registry import get_feature_set

#: bump when the code that turns stored features into a model's inputs changes what it gives
#: (selection rules, HE2RNA's supertiles, the oracle's encoding): every receipt is then stale
INPUTS_VERSION = 1
#: where a task folder keeps its receipts
RECEIPTS = ".receipts"


def _attrs(obj) -> dict:
    return {k: np.asarray(v).tolist() for k, v in sorted(obj.attrs.items())}


def _group_identity(g) -> dict:
    """A group's attributes and, per dataset below it, shape and dtype (not the values)."""
    out = {"attrs": _attrs(g), "datasets": {}}

    def visit(name, o):
        if isinstance(o, h5py.Dataset):
            out["datasets"][name] = [list(o.shape), str(o.dtype)]
        else:
            out["datasets"][name] = _attrs(o)
    g.visititems(visit)
    return out


def slide_identity(path: Path, groups: Sequence[str], memo: dict | None = None) -> dict:
    """What identifies the parts ``groups`` of one slide's tiling HDF5 (``"/"``: its root
    attributes, always included); a missing group is recorded as missing, an unreadable file as
    its error.  ``memo`` keeps each (file, group) read once across experiments (and, through
    :func:`load_identity_memo`, across processes while the file's stat identity holds)."""
    memo = {} if memo is None else memo
    names = ["/", *groups]
    missing = [n for n in names if (str(path), n) not in memo]
    if missing:
        memo["stat", str(path)] = stat_identity(path)  # before reading: a rewrite meanwhile is read again next time
        try:
            with h5py.File(path, "r") as fh:
                for name in missing:
                    memo[str(path), name] = _plain(_attrs(fh) if name == "/" else
                                                   _group_identity(fh[name]) if name in fh else None)
        except OSError as e:
            for name in missing:
                memo[str(path), name] = {"unreadable": str(e)}
    return {name: memo[str(path), name] for name in names}


def _plain(value):
    """``value`` as JSON gives it back (what the hash sees either way), so an identity read from
    :func:`save_identity_memo`'s file hashes exactly as one read from the HDF5."""
    return json.loads(json.dumps(value, sort_keys=True, default=str))


#: the file, in ``<tiles>/.receipts/``, of the slides' identities already read
IDENTITY_MEMO = "identity.json"


def load_identity_memo(tiles_dir: "str | os.PathLike") -> dict:
    """A memo for :func:`slide_identity` holding the identities saved by :func:`save_identity_memo`
    of every HDF5 whose stat identity is still the one recorded (none if the file is unreadable)."""
    memo: dict = {}
    try:
        saved = json.loads((Path(tiles_dir) / RECEIPTS / IDENTITY_MEMO).read_text())
    except (OSError, ValueError):
        return memo
    for path, entry in saved.items() if isinstance(saved, dict) else ():
        st = stat_identity(path)
        if st is not None and isinstance(entry, dict) and entry.get("stat") == list(st):
            memo["stat", path] = st
            for name, ident in entry.get("groups", {}).items():
                memo[path, name] = ident
    return memo


def save_identity_memo(tiles_dir: "str | os.PathLike", memo: dict) -> None:
    """Write the HDF5 identities of ``memo`` (see :func:`load_identity_memo`); a no-op if the
    folder cannot be written (the memo only saves time)."""
    out: dict = {}
    for key, value in memo.items():
        if len(key) == 2 and key[0] == "stat" and value is not None:
            out[key[1]] = {"stat": list(value), "groups": {}}
    for key, value in memo.items():
        if len(key) == 2 and key[0] in out and not (isinstance(value, dict) and "unreadable" in value):
            out[key[0]]["groups"][key[1]] = value
    try:
        with atomic_path(Path(tiles_dir) / RECEIPTS / IDENTITY_MEMO) as tmp:
            tmp.write_text(json.dumps(out, sort_keys=True))
    except (OSError, IsgError):
        pass


def _file_digest(path: Path) -> str:
    try:
        return content_sha256(path)
    except OSError:
        return "missing"


def experiment_groups(exp) -> list[str]:
    """The HDF5 groups whose content ``exp`` reads: its feature set (unless the oracle's) and the
    selection it applies (a Shannon threshold reads Shannon's scores)."""
    groups = []
    if get_feature_set(exp.features).extracted:
        groups.append(f"features/{exp.features}")
    if exp.threshold is not None:
        groups.append("selection/shannon")
    elif exp.selection is not None:
        groups.append(f"selection/{exp.selection}")
    return groups


def inputs_identity(tiles_dir: "str | os.PathLike", slide_ids: Sequence[str], exp, cohort_root=None,
                    memo: dict | None = None) -> str:
    """SHA-256 (hex) over what ``exp`` reads of ``slide_ids`` (see the module's docstring).
    ``memo`` (a dict kept across calls) saves re-reading a slide's group for the next experiment."""
    memo = {} if memo is None else memo
    groups = experiment_groups(exp)
    h = hashlib.sha256()
    for sid in slide_ids:
        h.update(sid.encode())
        h.update(json.dumps(slide_identity(Path(tiles_dir) / f"{sid}.h5", groups, memo), sort_keys=True,
                            default=str).encode())
    if not get_feature_set(exp.features).extracted and cohort_root is not None:  # the oracle reads the truth
        root = Path(cohort_root)
        for p in [root / "patches.csv"] + [root / "maps" / f"{sid}.npz" for sid in slide_ids]:
            key = ("file", str(p))
            if key not in memo:
                memo[key] = _file_digest(p)
            h.update(memo[key].encode())
    return h.hexdigest()


def receipt_path(task_dir: Path, *, name: str, spec: dict, train_cfg: dict, width, pixels: int,
                 slide_ids: Sequence[str], targets: pd.DataFrame, inputs: str, folds: Sequence = (),
                 patients: Sequence = ()) -> Path:
    """``<task_dir>/.receipts/<key>.json``: the key hashes everything that decides a run's folder
    and its data (the inputs' identity, the targets' values, the spec and config) and how its
    slides are split (their folds and patients)."""
    blob = json.dumps({"version": INPUTS_VERSION, "name": name, "spec": spec, "train": train_cfg, "width": width,
                       "pixels": pixels, "slides": list(slide_ids), "targets": list(targets.columns),
                       "inputs": inputs, "folds": [str(f) for f in folds], "patients": [str(p) for p in patients]},
                      sort_keys=True, default=str)
    h = hashlib.sha256(blob.encode())
    h.update(np.ascontiguousarray(targets.to_numpy(np.float64)).tobytes())
    return Path(task_dir) / RECEIPTS / f"{h.hexdigest()[:24]}.json"


def write_receipt(path: Path, run_dir: Path, n_patches: float) -> None:
    """Record that the inputs of ``path``'s key gave the finished run in ``run_dir``."""
    record = {"run": Path(run_dir).name, "data_sha256": (Path(run_dir) / "data.sha256").read_text().strip(),
              "n_patches": n_patches}
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(record, indent=1) + "\n")


def read_receipt(path: Path, folds: pd.Series, columns: Sequence[str]) -> tuple[pd.DataFrame, Path, float] | None:
    """The out-of-fold predictions (slides of ``folds`` x ``columns``), run folder and mean patches
    per slide of the run that ``path`` records, if that run is still whole: the folder holds the
    recorded data fingerprint and every fold's predictions and model; else None."""
    try:
        record = json.loads(path.read_text())
        run_dir = path.parent.parent / record["run"]
        if (run_dir / "data.sha256").read_text().strip() != record["data_sha256"]:
            return None
    except (OSError, ValueError, KeyError):
        return None
    parts = []
    for k, ids in folds.groupby(folds, sort=True):
        csv = run_dir / f"fold{k}.csv"
        if not csv.exists() or not (run_dir / f"fold{k}_model.pt").exists():
            return None
        frame = pd.read_csv(csv, index_col=0)
        if not set(ids.index) <= set(frame.index) or list(frame.columns) != list(columns):
            return None
        parts.append(frame.loc[list(ids.index)])
    preds = pd.concat(parts).reindex(folds.index)
    return preds, run_dir, float(record["n_patches"])
