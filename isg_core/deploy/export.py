"""A finished ISG cross-validation run as a model bundle (:mod:`isg_core.deploy.bundle`): ``isg export-model``.

The bundle format lives in :mod:`isg_core.deploy.bundle` and does not know about experiments; this module
takes a run of the paper-table experiments (fold ``k`` of ISG on all tasks) and writes it in that
format, with the encoders, tiling and selection that made its inputs.
"""
from __future__ import annotations

import datetime as _dt
import os
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from .. import __version__
from ..cohorts.folder import ensure_cohort, load_cohort
from ..config import Profile, get_profile
from ..errors import IsgError, atomic_path
from ..experiments.factory import model_factory
from ..experiments.runner import run_experiment
from ..experiments.specs import isg
from ..experiments.targets import ALL_TASKS
from ..features.train import load_checkpoint
from ..features.workflow import ensure_features, extractor_dir
from ..models import ISG, InputStandardizer
from ..selection import get_selector
from .bundle import BUNDLE_FORMAT, default_bundle_path


def export_bundle(result, fold: int, profile: Profile, cohort_root: "str | os.PathLike",
                  out: "str | os.PathLike") -> Path:
    """Write the bundle of fold ``fold`` of a finished ISG run (an
    :class:`~isg_core.experiments.ExperimentResult` on stored ``fe`` features with a stored
    selection) to ``out``, atomically."""
    exp = result.experiment
    if exp.model != ISG or exp.features != "fe" or exp.selection is None or exp.threshold is not None:
        raise IsgError(None, "a bundle holds an ISG model on 'fe' features with a stored selection "
                             f"(got model={exp.model}, features={exp.features}, selection={exp.selection})")
    ck_path = Path(result.run_dir) / f"fold{fold}_model.pt"
    model, ck = result.load_model(fold)  # the one reader of fold checkpoints (either format)
    untrained = [g for g, m in zip(ck["targets"], ck["target_mean"]) if not np.isfinite(m)]
    if untrained:  # no training slide of the gene's type in this fold (tiny cohorts): it would predict NaN
        raise IsgError(ck_path, f"fold {fold} had no training slide for {', '.join(untrained)}; export another "
                                "fold (--fold) or train on a larger cohort")
    encoders = {}
    for scale in ("global", "local"):
        path = extractor_dir(cohort_root, scale) / "checkpoint.pt"
        e = load_checkpoint(path)
        encoders[scale] = {"config": e["config"], "encoder": e["encoder"], "step": int(e["step"]),
                           "lpips_trunk": e["lpips_trunk"],
                           "checkpoint": f"{scale} extractor of {Path(cohort_root).name}",
                           "sha256": ""}
    sel = get_selector(exp.selection)
    d, grid = result.data.f[0].shape[1], result.data.R[0].shape[1]
    recipe, _ = model_factory(exp, d, grid, result.width)
    saved = {**recipe.spec(len(ck["targets"])), "standardize": isinstance(model, InputStandardizer),
             "state": model.state_dict()}
    rows = result.rows[result.rows.fold == fold]
    cohort = load_cohort(cohort_root)
    ct = cohort.manifest.set_index("slide_id").cancer_type.reindex(result.targets.index)
    gene_tasks = {g: sorted(set(ct[result.targets[g].notna()])) for g in result.targets.columns}
    raw = {
        "format": BUNDLE_FORMAT,
        "genes": list(ck["targets"]),
        "target_mean": [float(x) for x in ck["target_mean"]],
        "target_std": [float(x) for x in ck["target_std"]],
        "tiling": asdict(profile.tiling),
        "selection": {"method": sel.name, "params": sel.params(), "threshold": str(sel.default_threshold)},
        "encoders": encoders,
        "model": saved,
        "meta": {"isg_version": __version__,
                 "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                 "profile": profile.name, "cohort": cohort.label, "simulated": cohort.simulated,
                 "task": result.task, "experiment": exp.label, "fold": int(fold), "run": Path(result.run_dir).name,
                 "gene_tasks": gene_tasks,
                 "test_pcc": {f"{r.task}/{r.gene}": float(r.pcc) for r in rows.itertuples()},
                 "test_pcc_mean": float(rows.pcc.mean()) if len(rows) else float("nan"),
                 "train": dict(ck["train_cfg"])},
    }
    out = Path(out)
    if out.exists() and _same_bundle(out, raw):
        return out  # the same model: keep the file (and its hash, and the predictions made with it)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        torch.save(raw, tmp)
    return out


def _equal(a, b) -> bool:
    """Deep equality of a bundle's contents (dicts, lists, tensors, numbers; NaN equals NaN)."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.shape == b.shape
                and a.dtype == b.dtype and bool(torch.equal(a, b)))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float) and np.isnan(a) and np.isnan(b):
        return True
    return type(a) is type(b) and a == b


def _same_bundle(path: Path, raw: dict) -> bool:
    """Whether the bundle at ``path`` holds exactly ``raw`` but for its creation time (an unreadable
    file is not the same: it is replaced)."""
    try:
        old = torch.load(path, map_location="cpu", weights_only=False)
    except Exception:  # noqa: BLE001 - damaged or foreign: rewrite it
        return False
    if not isinstance(old, dict) or not isinstance(old.get("meta"), dict):
        return False
    strip = lambda d: {**d, "meta": {k: v for k, v in d["meta"].items() if k != "created"}}  # noqa: E731
    return _equal(strip(old), strip(raw))


def export_default_bundle(profile: "str | Profile | None" = None, cohort_root: "str | os.PathLike | None" = None,
                          out: "str | os.PathLike | None" = None, fold: int = 0, device: str | None = None,
                          progress: bool = True) -> Path:
    """Train (or find) ISG-10-2 with one model for all tasks (the model of Tables 2, 4 and 6) on
    the profile's cohort and bundle fold ``fold``'s best model.  The fold is fixed in advance (0),
    not chosen by its test score."""

    prof = profile if isinstance(profile, Profile) else get_profile(profile)
    root = Path(cohort_root) if cohort_root else ensure_cohort(prof.name)
    ensure_features(("fe",), prof, root, progress=progress, device=device)
    cohort = load_cohort(root)
    res = run_experiment(cohort, root / "tiles", isg(), ALL_TASKS, prof, root / "runs", device=device,
                         progress=progress)
    return export_bundle(res, fold, prof, root, out or default_bundle_path(prof.name))
