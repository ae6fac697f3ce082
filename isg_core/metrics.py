"""Evaluation metrics used in the paper's tables (pure numpy).

* :func:`pearson_per_column` - the per-gene Pearson correlation (PCC) between measured and
  predicted expression across slides;
* :func:`mean_squared_error` - the paper's L2 error, averaged over slides and genes;
* :func:`bootstrap_mean_ci` - a percentile bootstrap interval for a mean (e.g. the mean PCC
  over genes or folds), so that small differences between methods can be judged;
* :func:`roc_auc` and :func:`roc_curve` - Table 3's area under the ROC curve for a binary label
  (MSI-H against MSS), and the curve itself.
"""
from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

__all__ = ["pearson_per_column", "mean_squared_error", "bootstrap_mean_ci", "roc_auc", "roc_curve"]


def _as_2d(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 1:
        return a[:, None]
    if a.ndim != 2:
        raise ValueError(f"expected a 1-D or 2-D array, got shape {a.shape}")
    return a


def pearson_per_column(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Pearson correlation of each column of ``y_true`` with the same column of ``y_pred``.
    Both arrays are ``(n, k)`` (a 1-D array counts as ``k = 1``); the correlation runs over
    the ``n`` rows.  A column is NaN when ``n < 2`` or either side is constant in it, since
    the correlation is undefined there (rather than silently 0).
    """
    t, p = _as_2d(y_true), _as_2d(y_pred)
    if t.shape != p.shape:
        raise ValueError(f"shape mismatch: y_true {t.shape} vs y_pred {p.shape}")
    n, k = t.shape
    if n < 2:
        return np.full(k, np.nan)
    tc, pc = t - t.mean(0), p - p.mean(0)
    num = (tc * pc).sum(0)
    den = np.sqrt((tc * tc).sum(0) * (pc * pc).sum(0))
    # Test constancy exactly (max == min): after centring, a constant column can leave
    # rounding residue that would otherwise yield a meaningless finite correlation.
    constant = (np.ptp(t, 0) == 0) | (np.ptp(p, 0) == 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = num / den
    r[constant] = np.nan
    return np.clip(r, -1.0, 1.0)


# --- the PCC every table scores with (one definition; see isg_core.experiments.slide_bootstrap) ---
def _pcc_cells(t: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Pearson r along axis -2 of ``(..., n, G)`` arrays, one per trailing column: ``(..., G)``.

    Over the ``m`` rows where both are finite, with ``tc = t - mean(t)``, ``pc = p - mean(p)``:
    ``r = sum(tc pc) / sqrt(sum(tc^2) sum(pc^2))``, clipped to [-1, 1]; ``r = 0`` when either side
    is constant over those rows (``max == min``, tested exactly); ``r = NaN`` when ``m < 2``.
    """
    ok = np.isfinite(t) & np.isfinite(p)
    m = ok.sum(-2)
    denom = np.maximum(m, 1)[..., None, :]
    t0, p0 = np.where(ok, t, 0.0), np.where(ok, p, 0.0)
    tc = np.where(ok, t0 - t0.sum(-2, keepdims=True) / denom, 0.0)
    pc = np.where(ok, p0 - p0.sum(-2, keepdims=True) / denom, 0.0)
    sxy, sxx, syy = (tc * pc).sum(-2), (tc * tc).sum(-2), (pc * pc).sum(-2)
    constant = ((np.where(ok, t, -np.inf).max(-2) == np.where(ok, t, np.inf).min(-2))
                | (np.where(ok, p, -np.inf).max(-2) == np.where(ok, p, np.inf).min(-2)))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.clip(sxy / np.sqrt(sxx * syy), -1.0, 1.0)
    r = np.where(constant, 0.0, r)
    return np.where(m < 2, np.nan, r)


def pcc_or_zero(y: np.ndarray, p: np.ndarray) -> float:
    """Pearson r of ``y`` and ``p`` over the pairs where both are finite:
    ``r = sum((y - ybar)(p - pbar)) / sqrt(sum((y - ybar)^2) sum((p - pbar)^2))``.

    ``0.0`` (a score, counted in every mean) when either side is constant over those pairs, e.g. a
    method that predicts one value for every slide; ``NaN`` (no score) only when fewer than 2
    finite pairs are left.
    """
    y, p = np.asarray(y, dtype=np.float64).ravel(), np.asarray(p, dtype=np.float64).ravel()
    if y.shape != p.shape:
        raise ValueError(f"shape mismatch: y {y.shape} vs p {p.shape}")
    return float(_pcc_cells(y[:, None], p[:, None])[0])


def mean_squared_error(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean over all slides and genes of the squared error (the paper's L2 column)."""
    t, p = _as_2d(y_true), _as_2d(y_pred)
    if t.shape != p.shape:
        raise ValueError(f"shape mismatch: y_true {t.shape} vs y_pred {p.shape}")
    return float(np.mean((t - p) ** 2))


def bootstrap_mean_ci(
    values: np.ndarray, n_boot: int = 2000, alpha: float = 0.05, seed: int = 0
) -> tuple[float, float, float]:
    """Return ``(mean, lo, hi)``: the mean of ``values`` and its percentile bootstrap interval.
    NaNs (e.g. genes whose PCC is undefined) are dropped first.  ``lo``/``hi`` are the
    ``alpha/2`` and ``1 - alpha/2`` quantiles of ``n_boot`` resampled means.  All three are
    NaN when no finite value is left.
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[~np.isnan(v)]
    if v.size == 0:
        return (float("nan"),) * 3
    rng = np.random.default_rng(seed)
    means = np.empty(n_boot)
    # Resample in chunks so that n_boot x n indices never need to fit in memory at once.
    chunk = max(1, 2_000_000 // v.size)
    for start in range(0, n_boot, chunk):
        stop = min(n_boot, start + chunk)
        means[start:stop] = v[rng.integers(0, v.size, size=(stop - start, v.size))].mean(1)
    lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return float(v.mean()), float(lo), float(hi)


def _binary(y_true: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y, s = np.asarray(y_true, dtype=np.float64).ravel(), np.asarray(score, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise ValueError(f"shape mismatch: y_true {y.shape} vs score {s.shape}")
    ok = ~(np.isnan(y) | np.isnan(s))
    y, s = y[ok], s[ok]
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("y_true must be 0/1")
    return y, s


def roc_auc(y_true: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve: P(score of a random positive > score of a random negative), ties
    counting 1/2 (the Mann-Whitney U statistic / (n_pos n_neg), from mid-ranks).  NaN pairs are
    dropped; NaN when either class is absent (the AUC is undefined there, not 0.5)."""
    y, s = _binary(y_true, score)
    n_pos, n_neg = int(y.sum()), int(len(y) - y.sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(s)  # mid-ranks: tied scores share the mean of their ranks
    return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))



def roc_auc_rows(y_true: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """:func:`roc_auc` of each row of ``scores`` (m, n) against the same labels ``y_true`` (n,), in
    one pass: the mid-rank of each positive is the count of lower scores plus half the count of
    equal ones (itself included) plus 1/2, so the sums of ranks are exact and every AUC equals
    :func:`roc_auc`'s to the bit (tested).  A row with a NaN score falls back to :func:`roc_auc`
    (which drops the pair); NaN everywhere when a class is absent."""
    y = np.asarray(y_true, dtype=np.float64).ravel()
    s = np.atleast_2d(np.asarray(scores, dtype=np.float64))
    if s.shape[1] != y.size:
        raise ValueError(f"shape mismatch: y_true {y.shape} vs scores {s.shape}")
    if np.isnan(y).any() or not np.isin(y, (0.0, 1.0)).all():
        return np.array([roc_auc(y, row) for row in s])
    pos = y == 1
    n_pos, n_neg = int(pos.sum()), int(y.size - pos.sum())
    out = np.full(len(s), np.nan)
    if n_pos == 0 or n_neg == 0:
        return out
    p = s[:, pos][:, :, None]  # (m, n_pos, 1) against every score (m, 1, n)
    less = (s[:, None, :] < p).sum(axis=2)
    equal = (s[:, None, :] == p).sum(axis=2)
    ranks = less + (equal + 1) / 2
    out[:] = (ranks.sum(axis=1) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    bad = np.isnan(s).any(axis=1)
    out[bad] = [roc_auc(y, row) for row in s[bad]]
    return out

def roc_curve(y_true: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(fpr, tpr, thresholds)``: one point per distinct score, from the highest down (a slide
    is called positive when its score >= the threshold), starting at (0, 0) with threshold +inf.
    The trapezoid area under (fpr, tpr) equals :func:`roc_auc`."""
    y, s = _binary(y_true, score)
    order = np.argsort(-s, kind="mergesort")
    y, s = y[order], s[order]
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # the last index of each distinct score
    tp, fp = np.cumsum(y)[last], np.cumsum(1 - y)[last]
    n_pos, n_neg = max(y.sum(), 1e-300), max(len(y) - y.sum(), 1e-300)
    return np.r_[0.0, fp / n_neg], np.r_[0.0, tp / n_pos], np.r_[np.inf, s[last]]
