"""Scoring one run's out-of-fold predictions, within each fold (paper Sec. 4: 5-fold CV).

Expression (Tables 1, 2, 4, 6): every metric is computed **within a cancer type**: the PCC of
gene g for task c is over the test slides of type c only (pooling types would reward predicting
the type, not the gene).  MSI status (Table 3): the AUC within each fold, then its mean.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..config import TASK_GENES
from ..metrics import pcc_or_zero, roc_auc
from .targets import ALL_TASKS, task_targets


def cv_metrics(predictions: pd.DataFrame, targets: pd.DataFrame, folds: pd.Series,
               cancer_type: pd.Series) -> pd.DataFrame:
    """One row per (fold, task, gene) of the genes of each slide's task: PCC and mean squared error
    over that fold's test slides of that cancer type.  The PCC is
    :func:`~isg_core.metrics.pcc_or_zero`: a constant prediction scores 0 and is counted (the
    aggregation of :mod:`~isg_core.experiments.slide_bootstrap`)."""
    rows = []
    for ct, genes in TASK_GENES.items():
        sl = cancer_type.index[cancer_type == ct]
        for gene in genes:
            if gene not in targets.columns or len(sl) == 0:
                continue
            for k in sorted(folds.loc[sl].unique()):
                s = sl[folds.loc[sl] == k]
                t, p = targets.loc[s, gene].to_numpy(float), predictions.loc[s, gene].to_numpy(float)
                ok = ~(np.isnan(t) | np.isnan(p))
                if ok.sum() < 2:
                    continue
                rows.append({"task": ct, "gene": gene, "fold": int(k), "pcc": pcc_or_zero(t[ok], p[ok]),
                             "l2": float(np.mean((t[ok] - p[ok]) ** 2))})
    return pd.DataFrame(rows, columns=["task", "gene", "fold", "pcc", "l2"])


def expression_rows(predictions: pd.DataFrame, targets: pd.DataFrame, folds: pd.Series, cancer_type: pd.Series,
                    method: str) -> pd.DataFrame:
    """A regression run's rows of ``method``: :func:`cv_metrics` per (fold, task, gene).  (No pooled
    PCC: every table aggregates one way, within folds.)"""
    rows = cv_metrics(predictions, targets, folds, cancer_type)
    rows.insert(0, "method", method)
    return rows


def noise_ceiling_avg(cohort) -> float:
    """The noise ceiling of the tables' PCC: the simulator's noiseless truth used as the prediction,
    scored exactly like a model (PCC per gene over a fold's test slides of one cancer type, averaged
    over tasks and genes, then over folds): what a perfect model would score.  Without the truth,
    the average of the cohort's ``noise_ceiling.csv``; NaN for real data (no ceiling known)."""
    if getattr(cohort, "truth", None) is not None:
        Y = task_targets(cohort, ALL_TASKS)
        m = cohort.manifest.set_index("slide_id").loc[Y.index]
        T = cohort.truth.loc[Y.index, Y.columns].where(Y.notna())
        rows = cv_metrics(T, Y, m["fold"], m["cancer_type"])
        if len(rows):
            return float(rows.groupby("fold").pcc.mean().mean())
    nc = getattr(cohort, "noise_ceiling", None)
    if nc is None:
        return float("nan")
    vals = [nc.loc[(nc.cancer_type == ct) & (nc.gene == g), "pcc"] for ct, gs in TASK_GENES.items() for g in gs]
    vals = [float(v.iloc[0]) for v in vals if len(v)]
    return float(np.mean(vals)) if vals else float("nan")


def msi_frame(predictions: pd.DataFrame, targets: pd.DataFrame, folds: pd.Series,
              patients: pd.Series) -> pd.DataFrame:
    """A classification run's slides: MSI label, out-of-fold probability, fold and patient."""
    return pd.DataFrame({"label": targets["MSI"].astype(int), "prob": predictions["MSI"], "fold": folds,
                         "patient_id": patients.loc[targets.index]})


def patient_level(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per patient: the label and the mean probability of the patient's slides."""
    return frame.groupby("patient_id").agg(label=("label", "first"), prob=("prob", "mean"))


def fold_auc(frame: pd.DataFrame, col: str = "prob") -> float:
    """Mean over folds of the AUC within each fold's test slides (folds with one class skipped).

    The primary metric: pooling out-of-fold scores across folds mixes models trained on different
    slides, and with few positives the pooled AUC is biased *below* 0.5 for a model that learnt
    nothing (a fold with more positives in its test set had fewer in its training set, so its model
    predicts a lower base rate: Parker et al., BMC Bioinformatics 2007).  Within a fold one model
    ranks its own test slides."""
    vals = [roc_auc(g.label, g[col]) for _, g in frame.groupby("fold")]
    return float(np.nanmean(vals)) if np.isfinite(vals).any() else float("nan")
