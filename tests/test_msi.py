"""Table 3 (isg_core.experiments and the AUC of isg_core.metrics): known answers on constructed scores,
the stand-in labelling, the HE2RNA MSI classifier's invariances."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from isg_core.errors import IsgError
from isg_core.experiments import (
    STAND_INS,
    Experiment,
    MSIResult,
    fold_auc,
    msi_labels,
    paired_auc_difference,
    stand_in_label,
    summarise_msi,
)
from isg_core.metrics import roc_auc, roc_curve
from isg_core.models.baselines import HE2RNAMSI, build_baseline


def test_auc_known_answers():
    y = np.array([0, 0, 1, 1])
    assert roc_auc(y, [0.1, 0.2, 0.8, 0.9]) == 1.0
    assert roc_auc(y, [0.9, 0.8, 0.2, 0.1]) == 0.0
    assert roc_auc(y, [0.5, 0.5, 0.5, 0.5]) == 0.5  # ties count one half
    assert roc_auc(y, [0.1, 0.6, 0.4, 0.9]) == 0.75  # 3 of the 4 (pos, neg) pairs ordered
    assert np.isnan(roc_auc([1, 1], [0.2, 0.3]))  # one class: undefined, not 0.5
    with pytest.raises(ValueError):
        roc_auc([0, 2], [0.1, 0.2])


def test_auc_equals_pair_count_and_curve_area():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 300)
    s = np.round(y * 0.7 + rng.normal(0, 1, 300), 1)  # rounded: many ties
    pos, neg = s[y == 1], s[y == 0]
    pairs = ((pos[:, None] > neg[None]) + 0.5 * (pos[:, None] == neg[None])).mean()
    fpr, tpr, thr = roc_curve(y, s)
    assert roc_auc(y, s) == pytest.approx(pairs)
    assert np.trapezoid(tpr, fpr) == pytest.approx(pairs)
    assert fpr[0] == tpr[0] == 0 and fpr[-1] == tpr[-1] == 1 and np.all(np.diff(thr) < 0)


def test_every_sub_cohort_is_named_a_simulated_stand_in():
    assert set(STAND_INS) == {"TCGA-CRC-DX", "TCGA-CRC-KR", "TCGA-STAD"}
    for c in STAND_INS:
        name = stand_in_label(c)
        assert "stand-in" in name and "simulated" in name and c in name


def _result(label: str, y: np.ndarray, p: np.ndarray, cohort: str = "TCGA-CRC-DX", paper: str | None = None):
    ids = [f"s{i}" for i in range(len(y))]
    frame = pd.DataFrame({"label": y, "prob": p, "fold": np.arange(len(y)) % 5, "patient_id": ids}, index=ids)
    return MSIResult(Experiment(label, paper=paper), cohort, frame)


def test_summary_and_paired_difference_on_constructed_scores():
    rng = np.random.default_rng(0)
    y = np.r_[np.ones(30), np.zeros(70)].astype(int)
    perfect = _result("ISG", y, y * 0.8 + 0.1, paper="ISG")
    noise = _result("HE2RNA", y, rng.random(100), paper="HE2RNA")
    s = summarise_msi([perfect, noise], n_boot=300)
    row = s[s.method == "ISG"].iloc[0]
    assert row.AUC == 1.0 and row["AUC 95% low"] == 1.0 and row["MSI-H"] == 30
    assert row["paper AUC"] == pytest.approx(0.86)  # the paper's CRC-DX number for ISG
    assert s[s.method == "MSIfromHE"]["paper AUC"].iloc[0] == pytest.approx(0.77)
    assert np.isnan(s[s.method == "MSIfromHE"].AUC.iloc[0])
    d = paired_auc_difference([perfect, noise], "ISG", "HE2RNA", n_boot=300).iloc[0]
    assert d["AUC difference"] == pytest.approx(1 - fold_auc(noise.frame))
    assert d.verdict == "a higher"
    same = paired_auc_difference([perfect, _result("HE2RNA", y, y * 0.8 + 0.1)], "ISG", "HE2RNA", n_boot=100).iloc[0]
    assert same["AUC difference"] == 0 and same["95% CI low"] == 0 == same["95% CI high"]


def test_msi_labels_are_checked(tmp_path):
    class C:
        root = tmp_path
        manifest = pd.DataFrame({"slide_id": ["a", "b", "c"], "cancer_type": ["COAD", "COAD", "LIHC"]})
        labels = pd.DataFrame({"slide_id": ["a", "b", "c"], "msi": [1, 0, 1]})

    assert msi_labels(C, "COAD")["MSI"].tolist() == [1.0, 0.0]
    C.labels = pd.DataFrame({"slide_id": ["a"], "msi": [1]})
    with pytest.raises(IsgError, match="no MSI label"):
        msi_labels(C, "COAD")
    C.labels = None
    with pytest.raises(IsgError, match="no MSI labels"):
        msi_labels(C, "COAD")


def test_he2rna_msi_classifier_pools_the_real_tiles_only():
    torch.manual_seed(0)
    net = build_baseline("he2rna-msi", 8, 2, 1).eval()
    assert isinstance(net, HE2RNAMSI)
    f = torch.randn(1, 5, 8)
    mask = torch.ones(1, 5, dtype=torch.bool)
    out = net(f, None, mask)
    padded = torch.cat([f, torch.full((1, 3, 8), 1e3)], 1)
    pmask = torch.cat([mask, torch.zeros(1, 3, dtype=torch.bool)], 1)
    assert torch.allclose(net(padded, None, pmask), out, atol=1e-6)  # padding ignored
    assert torch.allclose(net(f[:, torch.randperm(5)], None, mask), out, atol=1e-6)  # order ignored
    # it is a function of the mean only: two bags with the same mean give the same logit
    g = torch.cat([f.mean(1, keepdim=True)] * 2, 1)
    assert torch.allclose(net(g, None, torch.ones(1, 2, dtype=torch.bool)), out, atol=1e-5)


def test_fold_auc_is_not_biased_by_base_rates_that_differ_between_folds():
    """A model that only predicts its training folds' base rate ranks nothing within a fold (AUC
    0.5 there), but pooled over folds its scores anti-correlate with the labels: the pooled AUC
    falls below 0.5.  The table's AUC is the within-fold one."""
    y = np.r_[np.ones(2), np.zeros(8), np.ones(8), np.zeros(2)].astype(int)
    fold = np.r_[np.zeros(10), np.ones(10)].astype(int)
    rate_elsewhere = np.where(fold == 0, 8 / 10, 2 / 10)  # the other fold's positive rate
    frame = pd.DataFrame({"label": y, "prob": rate_elsewhere, "fold": fold})
    assert fold_auc(frame) == 0.5
    assert roc_auc(y, rate_elsewhere) < 0.5


def test_chance_range_of_the_fold_mean_auc_widens_with_few_positives():
    """A model that learnt nothing: with 2 positives per fold the fold-mean AUC ranges far below 0.5,
    with 20 per fold it stays near 0.5; both ranges contain 0.5."""
    from isg_core.experiments.table3 import chance_range

    def frame(pos_per_fold):
        rows = [{"fold": k, "label": int(i < pos_per_fold)} for k in range(5) for i in range(100 // 5)]
        return pd.DataFrame(rows) if pos_per_fold < 20 else pd.DataFrame(
            [{"fold": k, "label": i % 2} for k in range(5) for i in range(40)])

    few, many = chance_range(frame(2), 500), chance_range(frame(20), 500)
    assert few["chance 2.5%"] < 0.35 < 0.5 < few["chance 97.5%"]
    assert 0.4 < many["chance 2.5%"] < 0.5 < many["chance 97.5%"] < 0.6
    assert few["MSI-H per fold"] == "2 2 2 2 2" and few["folds"] == 5
