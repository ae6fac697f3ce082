"""Paired bootstrap over test slides (and training seeds) for a difference between two methods.

The one PCC aggregation of the regression tables (Tables 1, 2, 4, 6), defined once here and used
for the point estimate and for every bootstrap replicate alike (:func:`headline_pcc`):

    **per (fold, cancer type, gene), the PCC over that fold's test slides of that cancer type; then
    the mean over the (cancer type, gene) cells of each fold (every gene of every task counts
    once); then the mean over folds.**  A constant prediction scores PCC 0 and is counted.

In symbols, with ``r[f, c, g]`` the Pearson r (:func:`pcc_or_zero`) of gene ``g`` over the test
slides ``S(f, c)`` of fold ``f`` and cancer type ``c``, and ``C_f`` the cells of fold ``f`` that
have at least 2 slides with a finite truth and prediction::

    PCC_f    = (1 / |C_f|) * sum_{(c, g) in C_f} r[f, c, g]
    headline = (1 / |F|)   * sum_{f in F} PCC_f          (F: the folds with |C_f| > 0)

This is the table's ``PCC mean`` (the mean over tasks and genes within a fold, then over folds),
except that a constant prediction there is NaN and dropped, here 0 and counted.

The interval on ``a - b`` (:func:`paired_slide_bootstrap`): on each of ``n_boot`` replicates,

1. within every (fold, cancer type) stratum, its ``n`` test slides are drawn ``n`` times with
   replacement; the same drawn slides score both methods (paired), and no slide leaves its stratum;
2. one training seed is drawn for each method independently (each seed is a full set of
   out-of-fold predictions; the two methods may have different numbers of seeds);
3. ``d* = headline(a, seed*_a, slides*) - headline(b, seed*_b, slides*)``.

The reported difference is on the original slides, averaged over seeds:
``mean_i headline(a_i) - mean_j headline(b_j)``; the 95% interval is the 2.5 / 97.5 percentiles of
``d*``; ``a wins`` is the fraction of replicates with ``d* > 0``; the verdict is
:func:`~isg_core.experiments.statistics.verdict` of the interval.

Frames: ``truth`` and each prediction are DataFrames indexed by slide id with one column per gene
(NaN where a gene is not the slide's task's); ``groups`` is indexed by slide id with columns
``fold`` and ``cancer_type``.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from ..metrics import _pcc_cells, pcc_or_zero
from .statistics import holm_clause, verdict, verdict_sentence

__all__ = ["GENE_PROGRAMMES", "RESAMPLED", "SIGNIFICANCE_NOTE", "pcc_or_zero", "headline_pcc", "paired_slide_bootstrap",
           "per_programme_differences", "bootstrap_sentence"]

#: the gene programmes of the paper's genes (Sec. 4): programme -> its genes
GENE_PROGRAMMES: dict[str, tuple[str, ...]] = {
    "T-cell": ("CD3D", "CD247", "CD3E", "CD3G"),
    "B-cell": ("MS4A1", "CD19"),
    "MKI67": ("MKI67",),
    "TP63": ("TP63",),
    "epithelial": ("KRT8", "KRT18"),
}

#: what a replicate resamples (the ``resampled`` column)
RESAMPLED = "slides within fold and cancer type"
#: the note under every significance table of the regression tables
SIGNIFICANCE_NOTE = ("Paired bootstrap (2000 replicates): each resamples the test slides within every (fold, cancer "
                     "type), draws one training seed per method, and recomputes every gene's PCC for both methods on "
                     "the same slides (the headline aggregation: per fold the mean over tasks and genes, then over "
                     "folds). 'relative gain' = difference / PCC b, with its interval from the same replicates.")

#: a PCC this small is 0 up to rounding: no gain is stated relative to it
_TINY = 1e-9
#: cap on the elements of one gathered (replicates x slides x genes) block
_BLOCK = 2_000_000

Predictions = pd.DataFrame | Sequence[pd.DataFrame]


# --- the PCC and its aggregation: defined once ------------------------------------------------------
def _aggregate(r: np.ndarray, fold_of_stratum: np.ndarray) -> np.ndarray:
    """The headline from cell PCCs ``r`` of shape ``(..., S, G)`` (S strata): per fold, the mean
    of its finite (stratum, gene) cells; then the mean over folds that have any.  ``(...)``."""
    ok = np.isfinite(r)
    rz = np.where(ok, r, 0.0)
    per_fold = []
    for f in np.unique(fold_of_stratum):
        sel = fold_of_stratum == f
        n = ok[..., sel, :].sum((-2, -1))
        with np.errstate(invalid="ignore", divide="ignore"):
            per_fold.append(np.where(n > 0, rz[..., sel, :].sum((-2, -1)) / np.maximum(n, 1), np.nan))
    folds = np.stack(per_fold, -1)
    have = np.isfinite(folds)
    k = have.sum(-1)
    return np.where(k > 0, np.where(have, folds, 0.0).sum(-1) / np.maximum(k, 1), np.nan)


# --- inputs --------------------------------------------------------------------------------------
class _Design:
    """Truth, predictions and strata as arrays: slides in ``truth``'s order, genes as ``genes``."""

    def __init__(self, truth: pd.DataFrame, groups: pd.DataFrame, genes: Sequence[str] | None = None):
        missing = [c for c in ("fold", "cancer_type") if c not in groups.columns]
        if missing:
            raise ValueError(f"groups needs columns 'fold' and 'cancer_type' (missing {missing})")
        if not truth.index.is_unique:
            raise ValueError("truth has duplicate slide ids")
        absent = truth.index.difference(groups.index)
        if len(absent):
            raise ValueError(f"{len(absent)} slides of truth have no fold / cancer type (e.g. {absent[0]!r})")
        self.genes = list(truth.columns if genes is None else genes)
        self.index = truth.index
        self.truth = truth[self.genes].to_numpy(np.float64)
        g = groups.loc[self.index, ["fold", "cancer_type"]]
        if g.isna().any().any():
            raise ValueError("groups has a missing fold or cancer type")
        keys = list(g.itertuples(index=False, name=None))
        self.strata: list[tuple] = sorted(set(keys), key=lambda k: (str(k[0]), str(k[1])))
        code = {k: i for i, k in enumerate(self.strata)}
        of = np.array([code[k] for k in keys], dtype=np.int64)
        #: positions (rows of the arrays) of each stratum's slides
        self.positions = [np.flatnonzero(of == i) for i in range(len(self.strata))]
        folds = {f: i for i, f in enumerate(sorted({k[0] for k in self.strata}, key=str))}
        self.fold_of_stratum = np.array([folds[k[0]] for k in self.strata], dtype=np.int64)

    def predictions(self, preds: Predictions, name: str) -> np.ndarray:
        """The seeds' predictions, aligned to the truth: ``(k, n_slides, n_genes)``."""
        frames = [preds] if isinstance(preds, pd.DataFrame) else list(preds)
        if not frames:
            raise ValueError(f"{name}: no prediction frame (one per training seed)")
        out = []
        for i, f in enumerate(frames):
            gone = self.index.difference(f.index)
            if len(gone):
                raise ValueError(f"{name}[{i}] lacks {len(gone)} slides of the truth (e.g. {gone[0]!r})")
            lacking = [g for g in self.genes if g not in f.columns]
            if lacking:
                raise ValueError(f"{name}[{i}] lacks genes {lacking}")
            out.append(f.loc[self.index, self.genes].to_numpy(np.float64))
        return np.stack(out)

    def cells(self, t: np.ndarray, p: np.ndarray) -> np.ndarray:
        """Cell PCCs ``(S, G)`` of one prediction array ``(n_slides, G)`` on the original slides."""
        return np.stack([_pcc_cells(t[pos], p[pos]) for pos in self.positions])

    def headline(self, p: np.ndarray) -> float:
        return float(_aggregate(self.cells(self.truth, p), self.fold_of_stratum))

    def draw(self, n_boot: int, rng: np.random.Generator) -> list[np.ndarray]:
        """Per stratum, ``(n_boot, n)`` positions drawn with replacement from its own ``n`` slides."""
        return [pos[rng.integers(0, len(pos), size=(n_boot, len(pos)))] for pos in self.positions]


def headline_pcc(pred: pd.DataFrame, truth: pd.DataFrame, groups: pd.DataFrame) -> float:
    """THE aggregation of the tables' PCC: per (fold, cancer type, gene), the PCC over that fold's
    test slides of that cancer type (:func:`pcc_or_zero`: a constant prediction scores 0 and is
    counted); then the mean over the (cancer type, gene) cells of each fold; then the mean over folds.

    ``PCC_f = mean_{(c, g) in C_f} r[f, c, g]`` and ``headline = mean_f PCC_f``, where ``C_f`` is
    the cells of fold ``f`` with at least 2 slides whose truth and prediction are finite (a gene
    is scored only for the cancer types whose truth has it: NaN elsewhere).

    ``pred`` and ``truth``: slides x genes (indexed by slide id); ``groups``: indexed by slide id
    with columns ``fold`` and ``cancer_type``.  The genes are ``truth``'s columns.
    """
    d = _Design(truth, groups)
    return d.headline(d.predictions(pred, "pred")[0])


# --- the paired bootstrap -------------------------------------------------------------------------
def _replicates(d: _Design, stack: np.ndarray, draws: list[np.ndarray], seeds: np.ndarray) -> np.ndarray:
    """The headline of each replicate: seed ``seeds[b]`` of ``stack`` on slides ``draws[s][b]``."""
    n_boot = len(seeds)
    n_max = max((len(p) for p in d.positions), default=1)
    chunk = max(1, _BLOCK // max(1, n_max * len(d.genes)))
    out = np.empty(n_boot)
    for start in range(0, n_boot, chunk):
        stop = min(n_boot, start + chunk)
        s = seeds[start:stop, None]
        r = np.stack([_pcc_cells(d.truth[idx[start:stop]], stack[s, idx[start:stop]]) for idx in draws], -2)
        out[start:stop] = _aggregate(r, d.fold_of_stratum)
    return out


def paired_slide_bootstrap(pred_a: Predictions, pred_b: Predictions, truth: pd.DataFrame, groups: pd.DataFrame,
                           n_boot: int = 2000, seed: int = 0, *, comparison: str = "a - b",
                           genes: Sequence[str] | None = None, replicates: list | None = None) -> dict:
    """``headline_pcc(a) - headline_pcc(b)`` with a paired bootstrap 95% interval over test slides
    and training seeds.

    ``pred_a`` / ``pred_b``: one prediction frame per training seed (a list; a single frame is one
    seed), each a full set of out-of-fold predictions.  Each of the ``n_boot`` replicates draws,
    within every (fold, cancer type) stratum, its ``n`` slides ``n`` times with replacement (the
    same slides for both methods), and a seed for each method independently;
    ``d* = headline(a_{i*}) - headline(b_{j*})`` on the drawn slides (:func:`headline_pcc`).

    Returns ``comparison``; ``PCC a`` and ``PCC b`` (each the mean over its seeds of the headline on
    the original slides) and ``mean PCC difference`` = ``PCC a - PCC b``; ``95% CI low`` / ``95% CI
    high``, the 2.5 / 97.5 percentiles of ``d*`` (over the finite replicates); ``a wins``, the
    fraction of replicates with ``d* > 0``; ``n_boot``; ``resampled`` (:data:`RESAMPLED`);
    ``seeds`` (``"a: k, b: m"``); ``verdict`` (:func:`~isg_core.experiments.statistics.verdict`).
    ``genes`` restricts the score to those columns of ``truth`` (default: all of them).
    ``relative gain`` = ``(PCC a - PCC b) / PCC b`` (how the paper states Shannon's effect on HE2RNA,
    "+7.5%"), with the 2.5 / 97.5 percentiles of ``d* / headline(b*)`` over the replicates whose
    ``headline(b*) > 0`` (NaN when ``PCC b <= 0``).  ``replicates``: a list that gets ``d*``
    appended, for adjusting a family of comparisons
    (:func:`~isg_core.experiments.statistics.adjust_family`).
    """
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    d = _Design(truth, groups, genes)
    a, b = d.predictions(pred_a, "pred_a"), d.predictions(pred_b, "pred_b")
    pcc_a = float(np.mean([d.headline(p) for p in a]))
    pcc_b = float(np.mean([d.headline(p) for p in b]))
    rng = np.random.default_rng(seed)
    draws = d.draw(n_boot, rng)
    seeds_a, seeds_b = rng.integers(0, len(a), n_boot), rng.integers(0, len(b), n_boot)
    ha, hb = _replicates(d, a, draws, seeds_a), _replicates(d, b, draws, seeds_b)
    diff = ha - hb
    if replicates is not None:
        replicates.append(diff)
    ok = np.isfinite(diff)
    if ok.any():
        lo, hi = (float(x) for x in np.quantile(diff[ok], [0.025, 0.975]))
        wins = float((diff[ok] > 0).mean())
    else:
        lo = hi = wins = float("nan")
    with np.errstate(invalid="ignore", divide="ignore"):
        rel = diff / hb
    okr = np.isfinite(rel) & (hb > _TINY)  # a gain relative to a PCC <= 0 means nothing
    rlo, rhi = (float(x) for x in np.quantile(rel[okr], [0.025, 0.975])) if okr.any() else (float("nan"),) * 2
    return {"comparison": comparison, "PCC a": pcc_a, "PCC b": pcc_b, "mean PCC difference": pcc_a - pcc_b,
            "95% CI low": lo, "95% CI high": hi, "a wins": wins,
            "relative gain": (pcc_a - pcc_b) / pcc_b if pcc_b > _TINY else float("nan"),
            "relative 95% CI low": rlo, "relative 95% CI high": rhi, "n_boot": int(n_boot), "resampled": RESAMPLED,
            "seeds": f"a: {len(a)}, b: {len(b)}", "verdict": verdict(lo, hi)}


def per_programme_differences(pred_a: Predictions, pred_b: Predictions, truth: pd.DataFrame, groups: pd.DataFrame,
                              n_boot: int = 2000, seed: int = 0, *, comparison: str = "a - b",
                              programmes: Mapping[str, Sequence[str]] = GENE_PROGRAMMES) -> pd.DataFrame:
    """:func:`paired_slide_bootstrap` restricted to each gene programme's genes (those of them that
    ``truth`` has): one row per programme with at least one of its genes present, with columns
    ``programme``, ``genes`` (the genes scored, comma-separated) and those of the bootstrap."""
    rows = []
    for name, members in programmes.items():
        present = [g for g in members if g in truth.columns]
        if not present:
            continue
        res = paired_slide_bootstrap(pred_a, pred_b, truth, groups, n_boot, seed, comparison=comparison,
                                     genes=present)
        rows.append({"programme": name, "genes": ", ".join(present), **res})
    cols = ["programme", "genes", "comparison", "PCC a", "PCC b", "mean PCC difference", "95% CI low",
            "95% CI high", "a wins", "relative gain", "relative 95% CI low", "relative 95% CI high", "n_boot",
            "resampled", "seeds", "verdict"]
    return pd.DataFrame(rows, columns=cols)


def bootstrap_sentence(row: Mapping) -> str:
    """:func:`~isg_core.experiments.statistics.verdict_sentence` of a bootstrap result (or row),
    its units naming what was resampled and the seeds."""
    units = f"{row['n_boot']} resamples of {row['resampled']}; seeds {row['seeds']}"
    text = verdict_sentence(row["comparison"], row["mean PCC difference"], row["95% CI low"], row["95% CI high"],
                            row["verdict"], units=units)
    return text + holm_clause(row)
