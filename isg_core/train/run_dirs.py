"""A cross-validation's folder (``<out>/<name>-<run id>/``): its identity and the data it holds.

The run id hashes what defines a run (model, training config, slides, targets), so a rerun finds
its finished folds and two tables' rows with the same spec share one run.  The data fingerprint
catches what the id cannot see: features re-extracted under the same config.
"""
from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import atomic_path
from . import distributed as dist_
from .batches import SlideData


def run_id(name: str, cfg, model_cfg: dict, slide_ids: Sequence[str], targets: Sequence[str]) -> str:
    """12 hex digits of SHA-256 over the run's name, ``cfg.id_dict()`` (a ``TrainConfig``), model
    config, slides and targets."""
    blob = json.dumps({"name": name, "cfg": cfg.id_dict(), "model": model_cfg, "slides": list(slide_ids),
                       "targets": list(targets)}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def data_fingerprint(data: SlideData, Y: np.ndarray) -> str:
    """SHA-256 (16 hex) of the inputs and targets a run learns from: features, positions and targets.
    The run id hashes the configuration only, so re-extracted features (a retrained extractor, a
    regenerated cohort) would otherwise find the old folds and reuse them."""
    h = hashlib.sha256()
    for sid, f, R, pos in zip(data.slide_ids, data.f, data.R, data.pos):
        h.update(sid.encode())
        for a in (f, R, pos):
            h.update(np.ascontiguousarray(a).tobytes())
    h.update(np.ascontiguousarray(np.asarray(Y, np.float64)).tobytes())
    return h.hexdigest()[:16]


def check_data(out: Path, fingerprint: str) -> None:
    """Finished folds in ``out`` belong to the data they were trained on: if the data changed,
    they are removed (with a warning) and redone; a folder without a record adopts this data."""
    record = out / "data.sha256"
    if record.exists() and record.read_text().strip() != fingerprint:
        stale = [p for p in out.glob("fold*") if p.suffix in (".csv", ".pt")]
        warnings.warn(f"{out}: the features or targets changed since these folds were trained; "
                      f"redoing them ({len(stale)} files removed)", stacklevel=4)
        for p in stale:
            p.unlink()
    with atomic_path(record) as tmp:
        tmp.write_text(fingerprint + "\n")


def open_run_dir(out_dir: "str | os.PathLike", name: str, cfg, id_model_cfg: dict, model_cfg: dict | None,
                 data: SlideData, Y: np.ndarray, targets: Sequence[str]) -> Path:
    """``<out_dir>/<name>-<run id>/``, made if new: the id hashes ``id_model_cfg``; rank 0 checks
    the data against the folds found there and records ``config.json`` (with ``model_cfg``)."""
    out = Path(out_dir) / f"{name}-{run_id(name, cfg, id_model_cfg, data.slide_ids, targets)}"
    out.mkdir(parents=True, exist_ok=True)
    if dist_.is_main():
        check_data(out, data_fingerprint(data, Y))
        (out / "config.json").write_text(json.dumps({"name": name, "train": cfg.to_dict(), "model": model_cfg},
                                                    indent=1, default=str))
    dist_.barrier()
    return out
