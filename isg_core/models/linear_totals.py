"""A linear model on a slide's total cell counts: the simplest oracle row of Table 1.

On ISG-Sim the bulk expression of a gene is drawn from the slide's cells (how many of each type,
and where), so a ridge regression on the slide's true totals says how much of the expression
needs no image model at all: no features, no selection, no attention.  Its inputs are the oracle
encoding (:func:`isg_core.features.oracle.encode_counts`: ``log1p`` of each count and each type's fraction
of the cells) of the slide's summed counts (:func:`isg_core.features.oracle.slide_total_counts`),
which the experiment runner reads for a model whose traits say it reads :data:`SLIDE_TOTALS`.

Registered as ``"linear-totals"`` (:class:`LinearTotals`): fitted in closed form, not by the engine.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from isg_core.models.traits import CLOSED_FORM, REGRESSION, SLIDE_TOTALS, ModelTraits

#: its registry name (Table 1's "linear on slide cell totals (oracle)" row)
LINEAR_TOTALS = "linear-totals"

#: the ridge penalty on standardised inputs (fixed, not tuned: 20 inputs, ~100 training slides)
ALPHA = 1.0


def ridge_fit_predict(X_train: np.ndarray, y_train: np.ndarray, X_test: np.ndarray, alpha: float = ALPHA) -> np.ndarray:
    """Ridge regression ``min_w |y - b - Xs w|^2 + alpha |w|^2`` on the training inputs standardised
    per column (``Xs``; a constant column is left at 0), intercept ``b`` unpenalised:
    ``w = (Xs^T Xs + alpha I)^-1 Xs^T (y - mean(y))``, ``b = mean(y)``.  Returns the test predictions."""
    mu, sd = X_train.mean(0), X_train.std(0)
    sd = np.where(sd > 1e-12, sd, 1.0)
    A, B = (X_train - mu) / sd, (X_test - mu) / sd
    ybar = y_train.mean()
    w = np.linalg.solve(A.T @ A + alpha * np.eye(A.shape[1]), A.T @ (y_train - ybar))
    return B @ w + ybar


def cross_validate_linear(X: pd.DataFrame, targets: pd.DataFrame, folds: pd.Series,
                          alpha: float = ALPHA) -> pd.DataFrame:
    """Out-of-fold ridge predictions of every target column (slides x targets, NaN = unobserved):
    per fold k and target, fitted on the other folds' slides with that target observed, predicted
    for fold k's slides.  ``X``: slides x inputs, indexed like ``targets``."""
    ids = targets.index
    Xa = X.loc[ids].to_numpy(np.float64)
    k_of = folds.loc[ids].to_numpy()
    out = pd.DataFrame(np.nan, index=ids, columns=targets.columns)
    for col in targets.columns:
        y = targets[col].to_numpy(np.float64)
        seen = np.isfinite(y)
        for k in np.unique(k_of):
            test = (k_of == k) & seen
            train = (k_of != k) & seen
            if test.any() and train.sum() >= 2:
                out.loc[ids[test], col] = ridge_fit_predict(Xa[train], y[train], Xa[test], alpha)
    return out


class LinearTotals:
    """The ridge on a slide's true cell totals as a registry model: no network, no training seed."""

    traits = ModelTraits(reads=SLIDE_TOTALS, tasks=(REGRESSION,), fit=CLOSED_FORM)

    @staticmethod
    def cross_validate(X: pd.DataFrame, targets: pd.DataFrame, folds: pd.Series) -> pd.DataFrame:
        """Out-of-fold predictions (:func:`cross_validate_linear` at the fixed :data:`ALPHA`)."""
        return cross_validate_linear(X, targets, folds)
