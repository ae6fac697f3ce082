"""The feature stage of a profile, end to end (what notebooks 03 and 09 and ``make reproduce`` call).

``ensure_*`` functions do their step only if it is not done yet: tile + select the cohort,
train the global and local extractors, extract features.  Defaults put everything inside the
cohort folder: ``tiles/<slide_id>.h5`` and ``extractors/<scale>/checkpoint.pt``.
"""
from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Mapping

import matplotlib.pyplot as plt
import pandas as pd
import torch

from ..cohorts.folder import ensure_cohort
from ..cohorts.prepare import prepare_cohort
from ..config import FeatureConfig, Profile, get_profile
from ..data.manifest import read_manifest
from ..data.tiling import StaleResultWarning
from ..errors import IsgError
from .bank import BankConfig, build_bank
from .extract import extract_cohort
from .figures import plot_reconstructions, reconstruct
from .registry import EncoderContext, get_feature_set
from .stylegan import Discriminator, StyleAutoencoder
from .train import load_autoencoder, load_checkpoint, same_config, train_config_for, train_extractor


def extractor_dir(cohort_root: "str | os.PathLike", scale: str, held_out_fold: int | None = None) -> Path:
    """Default folder of an extractor's checkpoint, bank, history and figures; with
    ``held_out_fold``, of the extractor trained without that fold's slides."""
    root = Path(cohort_root) / "extractors"
    return (root if held_out_fold is None else root / f"without-fold{held_out_fold}") / scale


#: the selections every cohort gets: Shannon and the baselines of Table 2 (DexiNed needs weights we lack)
COHORT_SELECTORS = ("shannon", "ig", "canny", "dog", "log", "otsu")


def ensure_prepared(cohort_root: "str | os.PathLike", profile: Profile, methods=COHORT_SELECTORS,
                    progress: bool = True, tiles: "str | os.PathLike | None" = None):
    """Tile and select the cohort (skip-if-done, :func:`isg_core.cohorts.prepare.prepare_cohort`)
    into ``tiles`` (default ``<cohort>/tiles``)."""
    return prepare_cohort(cohort_root, tiles, methods=methods, config=profile.tiling, workers=profile.workers,
                          progress=progress)


def ensure_extractor(scale: str, profile: "str | Profile | None" = None, cohort_root: "str | os.PathLike | None" = None,
                     progress: bool = True, device: str | None = None, held_out: int | None = None) -> Path:
    """Train (or find) the profile's ``scale`` extractor; returns its checkpoint.  ``held_out``: a
    fold whose slides it never sees (trained on the other folds' slides only)."""
    prof = profile if isinstance(profile, Profile) else get_profile(profile)
    cohort_root = Path(cohort_root) if cohort_root else ensure_cohort(prof.name)
    ensure_prepared(cohort_root, prof, progress=progress)
    cfg = train_config_for(scale, prof.features)
    folds = None
    if held_out is not None:
        all_folds = sorted(int(k) for k in read_manifest(Path(cohort_root) / "manifest.csv")["fold"].unique())
        if held_out not in all_folds:
            raise IsgError(Path(cohort_root) / "manifest.csv", f"no fold {held_out} (folds: {all_folds})")
        folds = tuple(k for k in all_folds if k != held_out)
    out = extractor_dir(cohort_root, scale, held_out)
    set_aside_if_superseded(out, cfg)
    return train_extractor(cohort_root, cfg, out, resume=True, progress=progress, device=device, folds=folds)


def set_aside_if_superseded(out: Path, cfg) -> Path | None:
    """If ``out`` holds an extractor trained with another config than ``cfg`` (the profile or the
    code changed), move the whole folder to ``<extractors>/superseded/<name>-<its config's
    SHA-256, 12 hex>`` (kept, not deleted) and warn; returns where it went, or None."""
    ckpt = out / "checkpoint.pt"
    if not ckpt.exists():
        return None
    try:
        old = load_checkpoint(ckpt)["config"]
    except IsgError:
        return None  # a damaged checkpoint: train_extractor reports it
    if same_config(old, cfg):
        return None
    tag = hashlib.sha256(json.dumps(old, sort_keys=True, default=str).encode()).hexdigest()[:12]
    parts = out.relative_to(out.parents[1]) if out.parent.name.startswith("without-fold") else Path(out.name)
    dest = out.parents[len(parts.parts) - 1] / "superseded" / f"{'-'.join(parts.parts)}-{tag}"
    dest.parent.mkdir(parents=True, exist_ok=True)
    base, k = dest, 1
    while dest.exists():  # another run of that config is kept there already: keep this one too
        k += 1
        dest = base.with_name(f"{base.name}-{k}")
    os.replace(out, dest)
    warnings.warn(f"{ckpt}: trained with another config than the profile's now; kept in {dest}, training again",
                  StaleResultWarning, stacklevel=2)
    return dest


def make_encoder(name: str, profile: "str | Profile | None" = None, cohort_root: "str | os.PathLike | None" = None,
                 progress: bool = True, device: str | None = None):
    """The encoder of feature set ``name`` (:func:`isg_core.features.registry.get_feature_set`: ``fe``,
    ``fe-untrained``, ``fe-without-fold<k>``, ``resnet50``, ``descriptor`` or a registered one), its
    extractors trained first if need be (:func:`ensure_extractor`)."""
    prof = profile if isinstance(profile, Profile) else get_profile(profile)

    def extractor(scale: str, held_out: int | None = None) -> Path:
        return ensure_extractor(scale, prof, cohort_root, progress, device, held_out=held_out)

    return get_feature_set(name).make_encoder(EncoderContext(prof, cohort_root, progress, device, extractor))


def ensure_features(names=("fe",), profile: "str | Profile | None" = None,
                    cohort_root: "str | os.PathLike | None" = None, progress: bool = True,
                    device: str | None = None) -> dict:
    """Extract the named features for every slide of the cohort (skip-if-done); returns
    {name: per-slide DataFrame with the throughput in ``.attrs``}."""
    prof = profile if isinstance(profile, Profile) else get_profile(profile)
    cohort_root = Path(cohort_root) if cohort_root else ensure_cohort(prof.name)
    ensure_prepared(cohort_root, prof, progress=progress)
    out = {}
    for name in names:
        enc = make_encoder(name, prof, cohort_root, progress, device)
        # the patches the tables read of this set, never glass: the selection is applied when features
        # are read, so Tables 2 and 4 need no second extraction
        out[name] = extract_cohort(cohort_root, enc, patches=get_feature_set(name).patches,
                                   batch_size=prof.features.extract_batch, progress=progress)
    return out


def architecture_table(features: FeatureConfig) -> pd.DataFrame:
    """Sizes of the two autoencoders of Sec. 3.2 at a profile: input pixels, code size d, the
    parameters (millions) of E, D and the critic C, and the training schedule."""
    def mparams(m: torch.nn.Module) -> float:
        return sum(p.numel() for p in m.parameters()) / 1e6

    rows = []
    for scale in ("global", "local"):
        cfg = train_config_for(scale, features)
        ae, disc = StyleAutoencoder(cfg.model), Discriminator(cfg.model)
        rows.append({"scale": scale, "input px": cfg.model.resolution, "d": cfg.model.code_dim,
                     "E (M params)": mparams(ae.encoder), "D (M params)": mparams(ae.generator),
                     "C (M params)": mparams(disc), "steps": cfg.steps, "batch": cfg.batch_size,
                     "C from step": cfg.adv_start})
    return pd.DataFrame(rows)


def reconstruction_figure(checkpoints: Mapping[str, "str | os.PathLike"], slides: pd.DataFrame,
                          tiles_dir: "str | os.PathLike", n: int = 8, seed: int = 1, title: str = ""):
    """For each extractor (scale -> checkpoint), ``n`` patches of ``slides`` at the network's own
    resolution (two rows per extractor: inputs, then D(E(x)))."""
    fig, axes = plt.subplots(2 * len(checkpoints), n, figsize=(1.5 * n, 1.6 * 2 * len(checkpoints)), squeeze=False)
    for k, (scale, path) in enumerate(checkpoints.items()):
        ae, meta = load_autoencoder(path)
        res = meta["config"]["model"]["resolution"]
        x = build_bank(slides, tiles_dir, BankConfig(scale, n, res, seed=seed, local_per_global=1), progress=False)
        plot_reconstructions(x, reconstruct(ae, x), axes=axes[2 * k: 2 * k + 2], label=f"{scale}\ninput")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
