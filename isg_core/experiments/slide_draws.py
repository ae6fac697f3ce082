"""Slide-resampled statistics for tables with many rows per slide (patches, local units).

A statistic is a function of row weights: None for every row once, else how often each row's
slide was drawn.  Weighted sums make a draw cost one pass over the rows (no copies of tables),
and every statistic, seed and arm sees the same draws, so differences are paired.  Table 5's
patch-level intervals and the extractor studies resample slides this way: patches of one slide
share its tissue and are not independent units.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd

Stat = Callable[["np.ndarray | None"], float]


class SlideDraws:
    """Bootstrap draws of slides, within each fold: the same draws for every statistic, seed and
    arm, so differences are paired.  A draw is how often each slide is drawn; :meth:`interval`
    turns it into row weights for any table with a slide per row."""

    def __init__(self, slide: np.ndarray, fold: np.ndarray, n_boot: int = 1000, seed: int = 0):
        slides = pd.Series(np.asarray(fold), index=np.asarray(slide)).groupby(level=0).first()
        self.slides = slides.index.to_numpy()
        rng = np.random.default_rng(seed)
        self.counts = np.zeros((n_boot, len(self.slides)))
        for f in np.unique(slides.to_numpy()):
            members = np.flatnonzero(slides.to_numpy() == f)
            for k in range(n_boot):
                np.add.at(self.counts[k], rng.choice(members, len(members)), 1.0)

    def interval(self, stat: Stat, slide_of_rows: np.ndarray) -> dict:
        """``stat`` on every row once and its 95% percentile interval over the draws."""
        idx = pd.Index(self.slides).get_indexer(np.asarray(slide_of_rows))
        if (idx < 0).any():
            raise ValueError("rows of slides the draws do not know")
        boots = [stat(c[idx]) for c in self.counts]
        lo, hi = np.percentile(boots, [2.5, 97.5])
        return {"value": float(stat(None)), "ci_low": float(lo), "ci_high": float(hi)}


def weighted_fold_pcc(y: np.ndarray, p: np.ndarray, fold: np.ndarray, w: "np.ndarray | None") -> float:
    """PCC of ``p`` against ``y`` within each fold, rows weighted by ``w`` (a bootstrap's
    multiplicities), mean over folds; 0 where either side is constant (as ``pcc_or_zero``)."""
    w = np.ones(len(y)) if w is None else w
    out = []
    for f in np.unique(fold):
        m = fold == f
        ww, yy, pp = w[m], y[m], p[m]
        n = ww.sum()
        if n <= 0:
            continue
        my, mp = (ww * yy).sum() / n, (ww * pp).sum() / n
        cov = (ww * (yy - my) * (pp - mp)).sum()
        vy, vp = (ww * (yy - my) ** 2).sum(), (ww * (pp - mp) ** 2).sum()
        out.append(cov / np.sqrt(vy * vp) if vy > 1e-12 * n and vp > 1e-12 * n else 0.0)
    return float(np.mean(out))


def probe_score(pred: pd.DataFrame, targets) -> Stat:
    """weights -> the mean over ``targets`` of the fold-mean PCC (:func:`weighted_fold_pcc`) of a
    probe's out-of-fold predictions: ``pred`` has ``fold``, and per target ``t`` its truth ``t``
    and prediction ``t:pred``, one row per unit (patch, local unit)."""
    fold = pred.fold.to_numpy()
    cols = [(pred[t].to_numpy(np.float64), pred[f"{t}:pred"].to_numpy(np.float64)) for t in targets]
    return lambda w: float(np.mean([weighted_fold_pcc(y, p, fold, w) for y, p in cols]))
