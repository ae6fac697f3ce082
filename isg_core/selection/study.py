"""Selection studies on patches labelled by truth: which lossless compressor separates tissue
from textureless patches best, at what cost (:func:`compressor_study`, over several labelled sets
and downsamplings by :func:`compressor_studies`, on ISG-Sim patches split by ``patches.csv`` by
:func:`truth_patches`), and how threshold rules score against that truth
(:func:`evaluate_rules`).  Notebook 02 and ``benchmarks/selection.py`` both run them."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ..config import TilingConfig
from ..data.result_cache import cached_frames, identity, library_versions
from ..data.slides import open_slide
from ..data.tiling import read_global_patch, tile_slide
from .compressors import COMPRESSORS, check_lossless, downsample
from .evaluate import SELECTION_LIBRARIES, cohort_slides, keep_masks
from .thresholds import Threshold, auc, precision_recall


def _throughput(fn, patches: Sequence[np.ndarray], min_time: float = 0.3) -> float:
    """Megapixels per second of ``fn`` over ``patches`` (one core: everything here is
    single-threaded), repeating the set until at least ``min_time`` s have passed."""
    mp = sum(p.shape[0] * p.shape[1] for p in patches) / 1e6
    reps, t0 = 0, time.perf_counter()
    while True:
        for p in patches:
            fn(p)
        reps += 1
        dt = time.perf_counter() - t0
        if dt >= min_time:
            return reps * mp / dt


def compressor_study(tissue_patches: Sequence[np.ndarray], textureless_patches: Sequence[np.ndarray],
                     compressors: Sequence[str] | None = None, score_downsample: int = 1,
                     timing_patches: int = 32) -> pd.DataFrame:
    """Per compressor: mean bits per pixel of tissue and of textureless patches, the ROC AUC
    of separating them by bits (Mann-Whitney), and throughput in megapixels/s of the *input*
    patches (including the ``score_downsample`` reduction) on one core.

    Compressors that are unavailable or not lossless here get a row with ``available`` False."""
    names = list(compressors or COMPRESSORS)
    rows = []
    sample = list(tissue_patches[: timing_patches // 2]) + list(textureless_patches[: timing_patches // 2])
    for name in names:
        if not check_lossless(name):
            rows.append({"compressor": name, "available": False})
            continue
        f = COMPRESSORS[name]

        def bpp(p, f=f):
            q = downsample(p, score_downsample)
            return f(q) / (q.shape[0] * q.shape[1])

        bt = np.array([bpp(p) for p in tissue_patches])
        bg = np.array([bpp(p) for p in textureless_patches])
        rows.append({
            "compressor": name, "available": True, "score_downsample": score_downsample,
            "tissue_bpp": float(bt.mean()), "textureless_bpp": float(bg.mean()),
            "auc": auc(bt, bg), "mp_per_s": _throughput(bpp, sample),
        })
    return pd.DataFrame(rows)


def compressor_studies(sets: "dict[str, tuple[Sequence[np.ndarray], Sequence[np.ndarray]]]",
                       downsamples: Sequence[int] = (1, 2, 4), read_mp_per_s: "dict[str, float] | None" = None,
                       compressors: Sequence[str] | None = None, progress: bool = False,
                       cache_dir: "str | os.PathLike | None" = None) -> pd.DataFrame:
    """:func:`compressor_study` of every labelled set (name -> (tissue, textureless patches)) at
    every ``score_downsample`` (the outer loop; the sets in their order within it), in one table
    whose first column ``data`` names the set.  With ``read_mp_per_s`` (name -> read+decode
    megapixels/s of that set's patches), a last column ``cost_vs_read`` = read throughput /
    compressor throughput: what scoring adds to reading.  ``compressors``: as in
    :func:`compressor_study` (None: every one).

    ``cache_dir``: keep the table there (:mod:`isg_core.data.result_cache`) and return it again
    while the patches (their pixels), the sets' names, the downsamplings, the compressors and the
    codec libraries are unchanged.  Throughputs are measurements, not inputs: a stored table
    returns the throughputs measured when it was computed (both the compressors' and, in
    ``cost_vs_read``, the reads'), so a rerun reports one consistent measurement rather than a
    ratio of two taken at different times."""
    names = list(compressors or COMPRESSORS)

    def compute() -> list[pd.DataFrame]:
        parts = []
        for ds in tqdm(downsamples, desc="compressor study: score", unit="downsample", disable=not progress):
            for name, (tissue, textureless) in sets.items():
                st = compressor_study(tissue, textureless, names, score_downsample=ds)
                st.insert(0, "data", name)
                if read_mp_per_s is not None:
                    st["cost_vs_read"] = read_mp_per_s[name] / st["mp_per_s"]
                parts.append(st)
        return [pd.concat(parts, ignore_index=True)]

    if cache_dir is None:
        return compute()[0]
    key = identity({"what": "compressor_studies", "version": COMPRESSOR_STUDY_VERSION,
                    "sets": list(sets), "downsamples": [int(d) for d in downsamples], "compressors": names,
                    "read_measured": None if read_mp_per_s is None else sorted(read_mp_per_s),
                    "libraries": library_versions(*SELECTION_LIBRARIES)},
                   *[[np.asarray(p) for p in patches] for pair in sets.values() for patches in pair])
    return cached_frames(cache_dir, "compressor_studies", key, compute)[0]


#: the version of what :func:`compressor_studies` computes: a change to it that changes its table bumps this
COMPRESSOR_STUDY_VERSION = 1


def evenly_spaced(items: Sequence, k: int) -> list:
    """At most ``k`` of ``items``, evenly spaced in order (the first and the last included)."""
    return [items[i] for i in np.linspace(0, len(items) - 1, min(k, len(items))).round().astype(int)] \
        if len(items) else []


@dataclass
class TruthPatches:
    """Global patches split by ``patches.csv`` truth, and what reading them cost."""

    tissue: list = field(default_factory=list)  #: (p, p, 3) uint8 patches with textureless == 0
    textureless: list = field(default_factory=list)  #: those with textureless == 1
    read_s: float = 0.0  #: read+decode seconds of every global patch of the slides read
    megapixels: float = 0.0  #: of every global patch read (kept or not)

    @property
    def read_mp_per_s(self) -> float:
        """OpenSlide read+decode throughput of those slides, megapixels/s."""
        return self.megapixels / self.read_s


def truth_patches(cohort_root: "str | os.PathLike", tiling: TilingConfig, every: int = 1,
                  per_slide: int | None = None, progress: bool = False) -> TruthPatches:
    """Every global patch (:func:`isg_core.data.tiling.read_global_patch`, each slide's reading
    timed) of every ``every``-th slide of an ISG-Sim cohort, in manifest order, split by
    ``patches.csv`` into tissue (textureless == 0) and textureless (== 1) patches.  ``per_slide``:
    keep at most that many of each class per slide (:func:`evenly_spaced`), so that memory stays
    small on large slides; None keeps all.  Needs the simulator's grid (``tiling`` at its patch
    size and mpp)."""
    root = Path(cohort_root)
    man = cohort_slides(root, every=every)
    truth = pd.read_csv(root / "patches.csv", dtype={"slide_id": str}).set_index(["slide_id", "x", "y"])
    out = TruthPatches()
    for sid, path in tqdm(list(zip(man.slide_id, man.path)), desc="ISG-Sim patches by truth", unit="slide",
                          disable=not progress):
        with open_slide(path) as s:
            t = tile_slide(s, tiling)
            t0 = time.perf_counter()
            ps = [read_global_patch(s, t, i) for i in range(t.n_patches)]
            out.read_s += time.perf_counter() - t0
        out.megapixels += sum(p.shape[0] * p.shape[1] for p in ps) / 1e6
        flags = truth.loc[[(sid, int(x), int(y)) for x, y in t.coords], "textureless"].to_numpy()
        for label, kept in ((0, out.tissue), (1, out.textureless)):
            these = [p for p, f in zip(ps, flags) if f == label]
            kept += these if per_slide is None else evenly_spaced(these, per_slide)
    return out


def evaluate_rules(scored: pd.DataFrame, rules: "Sequence[tuple[str, Threshold | str | float, str]]", *,
                   pixels: int) -> pd.DataFrame:
    """Precision, recall, F1 and kept fraction against ``scored.tissue`` (as
    :func:`isg_core.selection.score_cohort` returns it) of each rule (method, threshold, label),
    the threshold applied slide by slide (:func:`isg_core.selection.keep_masks`; ``pixels``: p^2 of
    the global patch, what a ``bits`` threshold is per).  One row per rule: method, threshold (the
    rule's label), patches and the metrics."""
    truth = scored.tissue.to_numpy(bool)
    rows = []
    for method, threshold, label in rules:
        keep = keep_masks(scored, [method], {method: threshold}, pixels=pixels)[method].to_numpy()
        rows.append({"method": method, "threshold": label, **precision_recall(keep, truth)})
    out = pd.DataFrame(rows)
    out.insert(2, "patches", len(scored))
    return out
