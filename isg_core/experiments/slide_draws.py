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

    def interval(self, stat: Stat, slide_of_rows: np.ndarray, batched: bool = False,
                 replicates: "list | None" = None) -> dict:
        """``stat`` on every row once and its 95% percentile interval over the draws.  ``batched``:
        ``stat`` also takes a (k, rows) matrix of k draws' weights and returns their k values (as
        :func:`probe_score`'s do), so the draws are scored 64 at a time (about 4x faster); each
        value equals the one-draw call's up to the order of floating-point sums (1e-15).
        ``replicates``: a list the draws' values are appended to (one array), e.g. for
        :func:`~isg_core.experiments.statistics.adjust_family`."""
        idx = pd.Index(self.slides).get_indexer(np.asarray(slide_of_rows))
        if (idx < 0).any():
            raise ValueError("rows of slides the draws do not know")
        if batched:
            boots = np.concatenate([np.asarray(stat(self.counts[k:k + 64][:, idx]), float).reshape(-1)
                                    for k in range(0, len(self.counts), 64)])
        else:
            boots = [stat(c[idx]) for c in self.counts]
        lo, hi = np.percentile(boots, [2.5, 97.5])
        if replicates is not None:
            replicates.append(np.asarray(boots, float))
        return {"value": float(stat(None)), "ci_low": float(lo), "ci_high": float(hi)}


def weighted_fold_pcc(y: np.ndarray, p: np.ndarray, fold: np.ndarray, w: "np.ndarray | None") -> "float | np.ndarray":
    """PCC of ``p`` against ``y`` within each fold, rows weighted by ``w`` (a bootstrap's
    multiplicities), mean over folds; 0 where either side is constant (as ``pcc_or_zero``).
    ``w`` (k, rows) scores k draws at once and gives their k values."""
    many = w is not None and np.ndim(w) == 2
    W = np.ones((1, len(y))) if w is None else np.atleast_2d(w)
    out = []
    for f in np.unique(fold):
        m = fold == f
        ww, yy, pp = W[:, m], y[m], p[m]
        n = ww.sum(1)
        with np.errstate(invalid="ignore", divide="ignore"):
            my, mp = (ww * yy).sum(1) / n, (ww * pp).sum(1) / n
            yc, pc = yy - my[:, None], pp - mp[:, None]
            cov = (ww * yc * pc).sum(1)
            vy, vp = (ww * yc ** 2).sum(1), (ww * pc ** 2).sum(1)
            r = np.where((vy > 1e-12 * n) & (vp > 1e-12 * n), cov / np.sqrt(vy * vp), 0.0)
        out.append(np.where(n > 0, r, np.nan))  # a fold no draw reached is left out of the mean
    res = np.nanmean(np.stack(out), axis=0)
    return res if many else float(res[0])


def probe_score(pred: pd.DataFrame, targets) -> Stat:
    """weights -> the mean over ``targets`` of the fold-mean PCC (:func:`weighted_fold_pcc`) of a
    probe's out-of-fold predictions: ``pred`` has ``fold``, and per target ``t`` its truth ``t``
    and prediction ``t:pred``, one row per unit (patch, local unit)."""
    fold = pred.fold.to_numpy()
    cols = [(pred[t].to_numpy(np.float64), pred[f"{t}:pred"].to_numpy(np.float64)) for t in targets]
    def score(w):
        v = np.mean([weighted_fold_pcc(y, p, fold, w) for y, p in cols], axis=0)
        return v if np.ndim(v) else float(v)
    return score
