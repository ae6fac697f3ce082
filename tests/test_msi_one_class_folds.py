"""Table 3 at smoke size: folds whose test slides hold one class (no AUC) are skipped explicitly."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from isg_core.experiments import Experiment, MSIResult, summarise_msi


def _result(y, p, seed=0):
    ids = [f"s{i}" for i in range(len(y))]
    frame = pd.DataFrame({"label": y, "prob": p, "fold": np.arange(len(y)) % 5, "patient_id": ids}, index=ids)
    return MSIResult(Experiment("ISG", paper="ISG"), "TCGA-CRC-DX", frame, seed=seed)


def test_folds_with_one_class_give_nan_not_numpy_warnings():
    # 10 slides in 5 folds (slides i and i + 5 share fold i % 5)
    some = np.array([1, 1, 0, 0, 0, 0, 0, 0, 0, 0])  # folds 0 and 1 hold both classes, folds 2-4 only MSS
    none = np.array([1, 1, 0, 0, 0, 1, 1, 0, 0, 0])  # every fold holds one class: no AUC anywhere
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "Mean of empty slice", "All-NaN slice", "Degrees of freedom <= 0"
        s = summarise_msi([_result(some, some * 0.8 + 0.1), _result(some, some * 0.8 + 0.1, seed=1)], n_boot=200)
        row = s[s.method == "ISG"].iloc[0]
        assert row.AUC == 1.0 and row["AUC 95% low"] == 1.0 == row["AUC 95% high"]
        assert row["AUC sd (folds)"] == 0.0  # the two scored folds, both 1.0; the other three skipped
        s = summarise_msi([_result(none, none * 0.8 + 0.1)], n_boot=200)
        row = s[s.method == "ISG"].iloc[0]
    assert all(np.isnan(row[c]) for c in ("AUC", "AUC 95% low", "AUC 95% high", "AUC sd (folds)"))
    assert row["MSI-H"] == 4 and row.slides == 10
