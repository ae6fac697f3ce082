"""Is a difference between two rows real?  Paired bootstrap intervals and their verdict, for
every table: Tables 1, 2, 4 and 6, Table 3, and Table 5 (notebook 09).

Both methods of a comparison are scored on the same resampled units, so what the two share
(the slides, their difficulty) cancels.  The resampling unit is the table's own:

* Tables 1, 2, 4 and 6: the test slides within each fold and cancer type, and the training seeds
  (:func:`~isg_core.experiments.slide_bootstrap.paired_slide_bootstrap`);
* Table 3: the AUC is a mean over folds of a rank statistic, so the slides are resampled within
  each fold, positives and negatives apart, and a seed is drawn per method
  (:func:`seed_auc_bootstrap`);
* Table 5 (a probe on frozen features, no seeds): the mean over its targets of a PCC difference,
  a percentile bootstrap of that mean (:func:`paired_bootstrap`).

The verdict reads the 95% interval: above 0, ``a`` is higher; below 0, lower; containing 0, the
cohort cannot tell them apart; not finite (no unit, or one class only), undefined.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np
import pandas as pd

from ..metrics import bootstrap_mean_ci, roc_auc_rows
from .scoring import fold_auc
from .specs import stand_in_label

if TYPE_CHECKING:  # the results are the runner's; the runner needs nothing from here
    from .runner import MSIResult

#: a verdict's code (as the tables store it) -> how a sentence says it, with ``{a}`` the first row
VERDICTS = {"a higher": "{a} is higher", "a lower": "{a} is lower",
            "not distinguishable": "the interval contains 0: not distinguishable on this cohort",
            "undefined": "undefined (no finite interval: too few paired units, or one class only)"}


def verdict(lo: float, hi: float) -> str:
    """The verdict on ``a - b`` from its 95% interval [lo, hi] (a key of :data:`VERDICTS`)."""
    if not np.isfinite([lo, hi]).all():
        return "undefined"
    return "a higher" if lo > 0 else ("a lower" if hi < 0 else "not distinguishable")


def verdict_sentence(comparison: str, difference: float, lo: float, hi: float, code: str,
                     units: str | None = None) -> str:
    """``"A - B: +0.012 (95% CI -0.010 to +0.030, <units>): <verdict>."``; every number as given."""
    a = comparison.split(" - ", 1)[0]
    extra = f", {units}" if units else ""
    return (f"{comparison}: {difference:+.3f} (95% CI {lo:+.3f} to {hi:+.3f}{extra}): "
            f"{VERDICTS[code].format(a=a)}.")


def bootstrap_p(diff: np.ndarray) -> float:
    """Two-sided bootstrap p-value of ``a - b = 0`` from the replicates ``diff`` of the difference:
    ``min(1, 2 min(P*(d <= 0), P*(d >= 0)))``, each share counted as ``(1 + k) / (1 + n)`` so that
    no p is 0 with finitely many replicates (Davison & Hinkley 1997, Sec. 4.4); NaN with none."""
    d = np.asarray(diff, float)
    d = d[np.isfinite(d)]
    if not len(d):
        return float("nan")
    n = len(d)
    low, high = (1 + np.count_nonzero(d <= 0)) / (1 + n), (1 + np.count_nonzero(d >= 0)) / (1 + n)
    return float(min(1.0, 2 * min(low, high)))


def holm(p: Sequence[float]) -> np.ndarray:
    """Holm's (1979) step-down adjustment of a family's p-values: sorted ascending, the i-th
    (1-based) of m becomes ``max_{j <= i} min(1, (m - j + 1) p_(j))``; NaNs are left out of the
    family and stay NaN.  Rejecting where the adjusted p < alpha controls the family-wise error."""
    p = np.asarray(p, float)
    out = np.full(len(p), np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = len(ok)
    order = ok[np.argsort(p[ok], kind="stable")]
    running = 0.0
    for i, k in enumerate(order):
        running = max(running, min(1.0, (m - i) * p[k]))
        out[k] = running
    return out


def holm_levels(p: Sequence[float], alpha: float = 0.05) -> np.ndarray:
    """The level Holm's step-down tests each comparison at: ``alpha / (m - i + 1)`` for the i-th
    smallest of the m finite p-values (NaN where p is NaN).  A percentile interval at confidence
    ``1 - level`` excludes 0 exactly when the comparison's bootstrap p is below it."""
    p = np.asarray(p, float)
    out = np.full(len(p), np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    for i, k in enumerate(ok[np.argsort(p[ok], kind="stable")]):
        out[k] = alpha / (len(ok) - i)
    return out


#: the columns :func:`adjust_family` adds
ADJUSTED = ("p", "p Holm", "Holm CI low", "Holm CI high", "Holm level", "verdict (Holm)")


def _point_difference(rows: pd.DataFrame) -> np.ndarray | None:
    """The rows' point estimate of ``a - b`` (their ``mean ... difference`` column), if they have one."""
    cols = [c for c in rows.columns if str(c).startswith("mean ") and str(c).endswith(" difference")]
    return rows[cols[0]].to_numpy(float) if cols else None


def adjust_family(rows: pd.DataFrame, replicates: Sequence[np.ndarray], alpha: float = 0.05) -> pd.DataFrame:
    """A table's comparisons (one row each, the paired bootstrap's) adjusted for being one family:
    ``p`` (:func:`bootstrap_p` of each row's ``replicates``), ``p Holm`` (:func:`holm`), the
    percentile interval at Holm's step level for the row (``Holm CI low/high``, confidence
    ``1 - Holm level``), ``adjusted`` (the method and the family's size), and ``verdict (Holm)``:
    a direction only where ``p Holm < alpha``;
    otherwise "not distinguishable" (or "undefined" without a p).

    The direction is the side of 0 that holds most replicates (the side the p-value's smaller tail
    is not), and it must agree with the row's point difference where the row has one: a point
    estimate on the other side of 0 from its bootstrap (a skewed, degenerate case) states no
    direction.  The Holm interval of a row can exclude 0 while its ``p Holm`` is not below alpha:
    the step-down stops at the first comparison it cannot reject, and every larger p after it
    stays unrejected (:func:`holm_clause` says so)."""
    out = rows.copy()
    p = np.array([bootstrap_p(d) for d in replicates])
    levels = holm_levels(p, alpha)
    adj = holm(p)
    lo, hi, side = [], [], []
    for d, lev in zip(replicates, levels):
        d = np.asarray(d, float)
        d = d[np.isfinite(d)]
        q = np.quantile(d, [lev / 2, 1 - lev / 2]) if len(d) and np.isfinite(lev) else (np.nan, np.nan)
        lo.append(float(q[0]))
        hi.append(float(q[1]))
        side.append(int(np.sign(np.count_nonzero(d > 0) - np.count_nonzero(d < 0))))
    point = _point_difference(rows)
    if point is not None:
        side = [s if np.isfinite(x) and np.sign(x) == s else 0 for s, x in zip(side, point)]
    out["p"], out["p Holm"], out["Holm CI low"], out["Holm CI high"], out["Holm level"] = p, adj, lo, hi, levels
    out["adjusted"] = f"Holm over the table's {len(p)} comparisons"
    out["verdict (Holm)"] = ["undefined" if not np.isfinite(a) else
                             "not distinguishable" if a >= alpha or s == 0 else ("a higher" if s > 0 else "a lower")
                             for a, s in zip(adj, side)]
    return out


def holm_clause(row) -> str:
    """What a comparison's sentence adds for a row adjusted by :func:`adjust_family` (else ""):
    " Adjusted for the table's comparisons (Holm): p = ..., interval at 98.3% ...: <verdict>."
    Where that interval excludes 0 but the step-down stopped before the row, it says so."""
    v = row.get("verdict (Holm)") if hasattr(row, "get") else None
    if not isinstance(v, str):
        return ""
    a = row["comparison"].split(" - ", 1)[0]
    stopped = (v == "not distinguishable" and (row["Holm CI low"] > 0 or row["Holm CI high"] < 0))
    why = " (the interval excludes 0, but Holm's step-down stopped at a comparison with a smaller p)" if stopped else ""
    return (f" Adjusted for the table's comparisons (Holm): p = {row['p Holm']:.3g}, interval at "
            f"{100 * (1 - row['Holm level']):.1f}% {row['Holm CI low']:+.3f} to {row['Holm CI high']:+.3f}: "
            f"{VERDICTS[v].format(a=a)}{why}.")


def paired_bootstrap(a: pd.Series, b: pd.Series, unit: str = "units", metric: str = "PCC", n_boot: int = 2000,
                     seed: int = 0) -> dict:
    """``a - b`` paired by index (units where either is missing are dropped): the number of
    units, the mean difference with its percentile-bootstrap 95% interval over the units, how
    often ``a`` wins, and the :func:`verdict`."""
    diff = (a - b).dropna()
    mean, lo, hi = bootstrap_mean_ci(diff.to_numpy(), n_boot=n_boot, seed=seed)
    return {unit: len(diff), f"mean {metric} difference": mean, "95% CI low": lo, "95% CI high": hi,
            "a wins": float((diff > 0).mean()) if len(diff) else np.nan, "verdict": verdict(lo, hi)}


def bootstrap_fold_auc(frame: pd.DataFrame, cols: Sequence[str], n_boot: int = 2000, seed: int = 0) -> dict:
    """:func:`fold_auc` of each score column on the same ``n_boot`` resamples: within every fold,
    its positives and its negatives are resampled separately (so each keeps both classes)."""
    rng = np.random.default_rng(seed)
    groups = []
    for _, g in frame.groupby("fold"):
        y = g.label.to_numpy(int)
        groups.append((y, np.flatnonzero(y == 1), np.flatnonzero(y == 0), {c: g[c].to_numpy(float) for c in cols}))
    scored = [gr for gr in groups if len(gr[1]) and len(gr[2])]  # a one-class fold has no AUC
    # the draws in the order a replicate-by-replicate loop takes them, then every replicate's AUC
    # at once (roc_auc_rows equals roc_auc to the bit, so the intervals are unchanged)
    idx = [[] for _ in scored]
    for _ in range(n_boot):
        for k, (_, pos, neg, _) in enumerate(scored):
            idx[k].append(np.r_[rng.choice(pos, len(pos)), rng.choice(neg, len(neg))])
    out = {c: np.full(n_boot, np.nan) for c in cols}
    if not scored:
        return out
    idx = [np.stack(ix) for ix in idx]  # per fold: (n_boot, its slides)
    for c in cols:
        per = np.stack([roc_auc_rows(y[ix[0]], sc[c][ix]) for (y, _, _, sc), ix in zip(scored, idx)], axis=1)
        out[c] = np.array([np.mean(row) for row in per])  # each replicate's mean over its folds
    return out


def by_method(results: "list[MSIResult]") -> dict[tuple[str, str], list[pd.DataFrame]]:
    """(sub-cohort, method label) -> the per-slide frames of its training seeds, in seed order."""
    out: dict[tuple[str, str], list] = {}
    for r in sorted(results, key=lambda r: r.seed):
        out.setdefault((r.cohort, r.experiment.label), []).append(r.frame)
    return out


#: what Table 3's bootstrap resamples (the ``resampled`` column)
AUC_RESAMPLED = "slides within fold and class"


def seed_auc_bootstrap(frames: dict[str, list[pd.DataFrame]], n_boot: int = 2000, seed: int = 0) -> dict:
    """Per method (``frames``: name -> one per-slide frame per training seed, the same slides), the
    :func:`fold_auc` of ``n_boot`` replicates that resample slides within each fold, positives and
    negatives apart (:func:`bootstrap_fold_auc`, the same slides for every method), and draw one of
    the method's seeds each, independently: name -> (n_boot,) array."""
    first = next(iter(frames.values()))[0]
    both = first[["label", "fold"]].copy()
    cols = {}
    for name, fs in frames.items():
        cols[name] = [f"{name}#{i}" for i in range(len(fs))]
        for c, f in zip(cols[name], fs):
            both[c] = f.prob.loc[both.index]
    boot = bootstrap_fold_auc(both, [c for cs in cols.values() for c in cs], n_boot, seed)
    rng = np.random.default_rng([seed, 1])
    out = {}
    for name, cs in cols.items():
        pick = rng.integers(0, len(cs), n_boot)
        out[name] = np.stack([boot[c] for c in cs])[pick, np.arange(n_boot)]
    return out


def paired_auc_difference(results: "list[MSIResult]", a: str, b: str, n_boot: int = 2000,
                          seed: int = 0) -> pd.DataFrame:
    """AUC(a) - AUC(b) (means over folds, then over each method's seeds) per sub-cohort on the same
    slides, with a 95% interval from :func:`seed_auc_bootstrap` (slides within fold and class,
    and seeds)."""
    rows = []
    by = by_method(results)
    for cohort in dict.fromkeys(r.cohort for r in results):
        if (cohort, a) not in by or (cohort, b) not in by:
            continue
        fa, fb = by[(cohort, a)], by[(cohort, b)]
        boot = seed_auc_bootstrap({"a": fa, "b": fb}, n_boot, seed)
        d = boot["a"] - boot["b"]
        ok = np.isfinite(d)
        lo, hi = (float(np.quantile(d[ok], 0.025)), float(np.quantile(d[ok], 0.975))) if ok.any() else (np.nan, np.nan)
        diff = np.mean([fold_auc(f) for f in fa]) - np.mean([fold_auc(f) for f in fb])
        rows.append({"sub-cohort": stand_in_label(cohort), "comparison": f"{a} - {b}", "AUC difference": float(diff),
                     "95% CI low": lo, "95% CI high": hi, "n_boot": n_boot, "resampled": AUC_RESAMPLED,
                     "seeds": f"a: {len(fa)}, b: {len(fb)}", "verdict": verdict(lo, hi)})
    return pd.DataFrame(rows)
