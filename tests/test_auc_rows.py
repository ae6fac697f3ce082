"""Table 3's bootstrap and chance range compute every replicate's AUC at once; each must equal,
to the bit, the replicate-by-replicate loop it replaced (so the committed intervals are unchanged)."""
import numpy as np
import pandas as pd
import pytest

from isg_core.experiments.scoring import fold_auc
from isg_core.experiments.statistics import bootstrap_fold_auc
from isg_core.experiments.table3 import chance_range
from isg_core.metrics import roc_auc, roc_auc_rows


def test_rows_equal_roc_auc_to_the_bit_with_ties_nans_and_one_class():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 40)
    s = np.round(rng.random((300, 40)), 1)  # many ties
    s[5, 3] = np.nan
    got = roc_auc_rows(y, s)
    want = np.array([roc_auc(y, row) for row in s])
    assert np.array_equal(got, want)
    assert np.isnan(roc_auc_rows(np.ones(5), rng.random((3, 5)))).all()
    assert roc_auc_rows([0, 0, 1, 1], [[0.1, 0.2, 0.3, 0.4]])[0] == 1.0
    with pytest.raises(ValueError, match="shape mismatch"):
        roc_auc_rows([0, 1], [[0.1, 0.2, 0.3]])


def loop_bootstrap(frame, cols, n_boot, seed):
    """The replicate-by-replicate loop (the code before the vectorised one)."""
    rng = np.random.default_rng(seed)
    groups = []
    for _, g in frame.groupby("fold"):
        y = g.label.to_numpy(int)
        groups.append((y, np.flatnonzero(y == 1), np.flatnonzero(y == 0), {c: g[c].to_numpy(float) for c in cols}))
    out = {c: np.full(n_boot, np.nan) for c in cols}
    for b in range(n_boot):
        per = {c: [] for c in cols}
        for y, pos, neg, sc in groups:
            if len(pos) == 0 or len(neg) == 0:
                continue
            idx = np.r_[rng.choice(pos, len(pos)), rng.choice(neg, len(neg))]
            for c in cols:
                per[c].append(roc_auc(y[idx], sc[c][idx]))
        for c in cols:
            if per[c]:
                out[c][b] = np.mean(per[c])
    return out


def frame(seed=1):
    rng = np.random.default_rng(seed)
    n = 60
    f = pd.DataFrame({"fold": np.repeat(np.arange(5), 12), "label": rng.integers(0, 2, n)})
    f.loc[f.fold == 4, "label"] = 0  # a fold with one class: skipped
    f["a"], f["b"] = np.round(rng.random(n), 2), rng.random(n) + 0.3 * f.label
    return f


def test_bootstrap_equals_the_loop_to_the_bit():
    f = frame()
    got, want = bootstrap_fold_auc(f, ["a", "b"], 200, 3), loop_bootstrap(f, ["a", "b"], 200, 3)
    for c in ("a", "b"):
        assert np.array_equal(got[c], want[c])


def test_chance_range_equals_the_loop_to_the_bit():
    f = frame(2)[["fold", "label"]]
    rng = np.random.default_rng(0)
    draws = np.array([fold_auc(f.assign(prob=rng.random(len(f)))) for _ in range(300)])
    got = chance_range(f, 300, 0)
    assert got["chance 2.5%"] == float(np.nanquantile(draws, 0.025))
    assert got["chance 97.5%"] == float(np.nanquantile(draws, 0.975))
