"""Evaluate patch selectors against ISG-Sim's per-patch truth (``patches.csv``).

The simulator records, for every 256 px global patch, whether it is ``textureless`` (glass,
blur, pen, solid blocks, dust ...).  Truth here is *tissue = textureless == 0*; a selector's keep
mask at its default threshold (applied per slide, as :func:`isg_core.selection.select` does in
``isg select``) is scored by precision, recall, F1 and the kept fraction.  ISG-Sim is SIMULATED:
these numbers say that the code works, not what a TCGA slide gives.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ..config import TilingConfig
from ..data.fingerprint import file_fingerprint
from ..data.manifest import read_manifest
from ..data.result_cache import cached_frames, identity, library_versions
from ..data.slides import open_slide
from ..data.tiling import tile_slide
from ..parallel import run_jobs
from .selectors import SELECTORS, available_selectors, get_selector
from .slide import score_slide_many
from .thresholds import Threshold, parse_threshold, precision_recall, select


def saturation_fraction(patches: np.ndarray, level: float = 0.1) -> np.ndarray:
    """Per patch, the fraction of pixels whose HSV saturation (max - min) / max exceeds ``level``.

    ``patches`` (N, H, W, 3) uint8 -> (N,) floats in [0, 1].  Stained tissue is coloured; glass,
    background and pen-free blur are grey, so this is a rule that uses none of the selectors'
    scores (a fair referee for Fig. 2 and for the default Shannon threshold)."""
    p = np.asarray(patches)
    if p.ndim != 4 or p.shape[-1] != 3:
        raise ValueError(f"patches must be (N, H, W, 3), got shape {p.shape}")
    mx = p.max(-1).astype(np.float32)
    mn = p.min(-1).astype(np.float32)
    return ((mx - mn) / np.maximum(mx, 1) > level).mean((1, 2))


def saturation_labels(patches: np.ndarray, tissue: float = 0.5, glass: float = 0.02) -> np.ndarray:
    """1 tissue / 0 textureless glass / -1 ambiguous (tissue edges), per patch: tissue when at
    least ``tissue`` of its pixels are saturated (:func:`saturation_fraction`), glass when fewer
    than ``glass`` are.  The labels behind Fig. 2 on CMU-1-Small-Region (33 tissue, 32 glass
    tiles) and behind the default Shannon threshold."""
    frac = saturation_fraction(patches)
    return np.where(frac >= tissue, 1, np.where(frac < glass, 0, -1))


def available_methods() -> list[str]:
    """Names of the selectors usable here (DexiNed is registered but unavailable offline)."""
    return [n for n, c in available_selectors().items() if c is not None]


def cohort_slides(cohort_root: "str | os.PathLike", max_slides: int | None = None, every: int = 1) -> pd.DataFrame:
    """The cohort manifest (absolute paths), every ``every``-th slide, at most ``max_slides``."""
    man = read_manifest(Path(cohort_root) / "manifest.csv").iloc[::max(1, int(every))]
    return (man.head(max_slides) if max_slides else man).reset_index(drop=True)


#: the thumbnail's longest side, in px, that Otsu and HE2RNA fit their grey level on
THUMBNAIL_SIZE = 1024


def score_slide_methods(path: "str | os.PathLike", methods: Sequence[str], tiling: TilingConfig,
                        thumbnail_size: int = THUMBNAIL_SIZE) -> pd.DataFrame:
    """One row per global patch of one slide: slide_id, x, y (level-0 corner) and one score
    column per method (each patch is read once and scored by every method)."""
    with open_slide(path) as s:
        t = tile_slide(s, tiling)
        scores = score_slide_many(s, t, [get_selector(m) for m in methods], thumbnail_size=thumbnail_size)
    df = pd.DataFrame({"slide_id": t.slide_id, "x": t.coords[:, 0], "y": t.coords[:, 1]})
    for j, m in enumerate(methods):
        df[m] = scores[:, j]
    return df


@dataclass(frozen=True)
class ScoreJob:
    """One slide of :func:`score_cohort`: every method's score of every global patch at ``tiling``."""

    path: str
    methods: list[str]
    tiling: TilingConfig

    def __str__(self) -> str:
        return f"slide {self.path}"


def _score_job(job: ScoreJob) -> pd.DataFrame:
    return score_slide_methods(job.path, job.methods, job.tiling)


def score_cohort(cohort_root: "str | os.PathLike", methods: Sequence[str] | None,
                 tiling: TilingConfig, max_slides: int | None = None, every: int = 1,
                 workers: int = 1, cache_dir: "str | os.PathLike | None" = None) -> pd.DataFrame:
    """Per-patch scores of every method on (a subset of) an ISG-Sim cohort, merged with
    ``patches.csv`` (columns ``textureless``, ``tissue_class``, ``artefact`` ...) and a boolean
    ``tissue`` = textureless == 0.  Needs the simulator's grid, i.e. tiling at the simulator's
    patch size and mpp (every profile's ``tiling``); ``methods`` None: every available one.

    ``cache_dir``: keep the table there (:mod:`isg_core.data.result_cache`) and return it again
    while what it is computed from (:func:`_score_cohort_identity`) is unchanged; ``workers`` does
    not change the table."""
    methods = list(methods or available_methods())
    root = Path(cohort_root)
    man = cohort_slides(root, max_slides, every)
    if cache_dir is None:
        return _score_cohort(root, man, methods, tiling, workers)
    key = _score_cohort_identity(root, man, methods, tiling)
    return cached_frames(cache_dir, "score_cohort", key,
                         lambda: [_score_cohort(root, man, methods, tiling, workers)])[0]


#: the version of what :func:`score_cohort` computes: a change to it that changes its table bumps this
SCORE_COHORT_VERSION = 1
#: the libraries whose versions enter a cached selection study's identity (codecs, filters, readers)
SELECTION_LIBRARIES = ("numpy", "scipy", "scikit-image", "pillow", "imagecodecs", "openslide-python",
                       "openslide-bin", "tifffile", "pandas")


def _score_cohort_identity(root: Path, man: pd.DataFrame, methods: Sequence[str], tiling: TilingConfig) -> str:
    """What :func:`score_cohort`'s table is computed from: each slide's id and the identity of its
    file (:func:`~isg_core.data.fingerprint.file_fingerprint`: no slide is read), ``patches.csv``'s,
    the methods with their settings (another compressor scores otherwise), the tiling, the
    thumbnail size Otsu is fitted on, :data:`SCORE_COHORT_VERSION` and :data:`SELECTION_LIBRARIES`."""
    return identity({"what": "score_cohort", "version": SCORE_COHORT_VERSION,
                     "slides": [[sid, file_fingerprint(p)] for sid, p in zip(man.slide_id, man.path)],
                     "truth": file_fingerprint(root / "patches.csv"),
                     "methods": [[m, get_selector(m).params()] for m in methods], "tiling": asdict(tiling),
                     "thumbnail_size": THUMBNAIL_SIZE, "libraries": library_versions(*SELECTION_LIBRARIES)})


def _score_cohort(root: Path, man: pd.DataFrame, methods: list[str], tiling: TilingConfig,
                  workers: int) -> pd.DataFrame:
    jobs = [ScoreJob(p, methods, tiling) for p in man.path]
    parts = run_jobs(_score_job, jobs, workers, start="spawn")
    scores = pd.concat(parts, ignore_index=True)
    truth = pd.read_csv(root / "patches.csv", dtype={"slide_id": str})
    d = truth.merge(scores, on=["slide_id", "x", "y"], how="inner")
    if len(d) != len(scores):
        raise ValueError(f"{len(scores) - len(d)} scored patches have no row in patches.csv: "
                         "tile at the simulator's patch size and mpp")
    d["tissue"] = d.textureless.to_numpy() == 0
    return d


def keep_masks(scored: pd.DataFrame, methods: Sequence[str],
               thresholds: "dict[str, Threshold | str | float] | None" = None,
               *, pixels: int) -> pd.DataFrame:
    """Keep mask per method (columns), applying each method's threshold (default: the
    selector's ``default_threshold``) slide by slide; ``pixels``: p^2 of the tiling's global patch
    (what a ``bits`` threshold is per)."""
    thresholds = thresholds or {}
    groups = list(scored.groupby("slide_id", sort=False).indices.values())
    out = pd.DataFrame(index=scored.index)
    for m in methods:
        th = parse_threshold(thresholds.get(m, SELECTORS[m].default_threshold))
        keep = np.zeros(len(scored), bool)
        v = scored[m].to_numpy()
        for idx in groups:
            keep[idx] = select(v[idx], th, pixels=pixels)
        out[m] = keep
    return out


def evaluate_scores(scored: pd.DataFrame, methods: Sequence[str],
                    thresholds: "dict[str, Threshold | str | float] | None" = None,
                    *, pixels: int) -> pd.DataFrame:
    """Precision, recall, F1 and kept fraction per method against ``scored.tissue`` (``pixels``: as
    :func:`keep_masks`)."""
    keep = keep_masks(scored, methods, thresholds, pixels=pixels)
    truth = scored.tissue.to_numpy(bool)
    rows = []
    for m in methods:
        th = parse_threshold((thresholds or {}).get(m, SELECTORS[m].default_threshold))
        rows.append({"method": m, "threshold": str(th), "slides": scored.slide_id.nunique(),
                     "patches": len(scored), **precision_recall(keep[m].to_numpy(), truth)})
    return pd.DataFrame(rows)


def evaluate_selectors(cohort_root: "str | os.PathLike", methods: Sequence[str] | None,
                       tiling: TilingConfig, max_slides: int | None = None, every: int = 1,
                       workers: int = 1) -> pd.DataFrame:
    """Every method at its default threshold against ISG-Sim truth: one row per method with
    threshold, slides, patches, precision, recall, f1, kept.  Unavailable methods (DexiNed
    offline) get a row with ``available`` False and no metrics.  ``methods`` None: every selector."""
    methods = list(methods or SELECTORS)
    usable = [m for m in methods if available_selectors().get(m) is not None]
    scored = score_cohort(cohort_root, usable, tiling, max_slides, every, workers)
    res = evaluate_scores(scored, usable, pixels=tiling.global_size ** 2)
    res.insert(1, "available", True)
    missing = [{"method": m, "available": False} for m in methods if m not in usable]
    if missing:
        res = pd.concat([res, pd.DataFrame(missing)], ignore_index=True)
    return res
