"""The compressor study: which lossless compressor separates tissue from textureless patches
best, at what cost (see the package docstring for the measured table and the choice)."""
from __future__ import annotations

import time
from typing import Sequence

import numpy as np
import pandas as pd

from .compressors import COMPRESSORS, check_lossless, downsample
from .thresholds import auc


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
