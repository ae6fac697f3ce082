"""A table's comparisons are one family (issue 32): bootstrap p-values, Holm's step-down
adjustment and the interval at each comparison's Holm level, on constructed cases."""
import numpy as np
import pandas as pd
import pytest

from isg_core.experiments.slide_bootstrap import bootstrap_sentence
from isg_core.experiments.statistics import adjust_family, bootstrap_p, holm, holm_levels


def test_bootstrap_p_counts_the_replicates_on_the_far_side_of_zero():
    d = np.concatenate([np.full(9, 1.0), [-1.0]])  # 1 of 10 at or below 0
    assert bootstrap_p(d) == pytest.approx(2 * 2 / 11)
    assert bootstrap_p(np.ones(999)) == pytest.approx(2 / 1000)  # never 0 with finite replicates
    assert bootstrap_p(np.array([-1.0, 1.0])) == 1.0
    assert np.isnan(bootstrap_p(np.array([np.nan])))


def test_holm_matches_the_textbook_example():
    # m = 4: sorted 0.01, 0.02, 0.03, 0.5 -> 0.04, 0.06, 0.06 (monotone), 0.5
    p = [0.03, 0.5, 0.01, 0.02]
    np.testing.assert_allclose(holm(p), [0.06, 0.5, 0.04, 0.06])
    np.testing.assert_allclose(holm_levels(p), [0.05 / 2, 0.05 / 1, 0.05 / 4, 0.05 / 3])
    out = holm([0.01, np.nan, 0.04])  # a NaN is not part of the family
    np.testing.assert_allclose(out, [0.02, np.nan, 0.04])
    assert holm([0.9, 0.8]).max() <= 1.0


def test_a_family_widens_intervals_and_withholds_a_borderline_direction():
    rng = np.random.default_rng(0)
    clear = rng.normal(0.10, 0.02, 4000)  # far from 0
    border = rng.normal(0.04, 0.02, 4000)  # p about 0.045 alone
    null = rng.normal(0.0, 0.02, 4000)
    rows = pd.DataFrame({"comparison": ["A - B", "A - C", "A - D"],
                         "95% CI low": [np.quantile(r, 0.025) for r in (clear, border, null)]})
    out = adjust_family(rows, [clear, border, null])
    assert list(out["verdict (Holm)"]) == ["a higher", "not distinguishable", "not distinguishable"]
    assert out.loc[1, "p"] < 0.05 < out.loc[1, "p Holm"]  # significant alone, not in the family
    assert set(out["adjusted"]) == {"Holm over the table's 3 comparisons"}
    assert (out["Holm CI low"] <= out["95% CI low"] + 1e-12).all()  # never narrower than the 95% one
    # the interval at the Holm level excludes 0 where its p is below that level
    for _, r in out.iterrows():
        assert (r["Holm CI low"] > 0 or r["Holm CI high"] < 0) == (r["p"] < r["Holm level"])
    lower = adjust_family(rows.iloc[:1], [-clear])
    assert lower.loc[0, "verdict (Holm)"] == "a lower"


def test_a_direction_needs_the_point_difference_on_the_same_side():
    rng = np.random.default_rng(1)
    reps = rng.normal(0.10, 0.02, 4000)  # the bootstrap says clearly above 0
    agree = adjust_family(pd.DataFrame({"comparison": ["A - B"], "mean PCC difference": [0.09]}), [reps])
    assert agree.loc[0, "verdict (Holm)"] == "a higher"
    skewed = adjust_family(pd.DataFrame({"comparison": ["A - B"], "mean PCC difference": [-0.01]}), [reps])
    assert skewed.loc[0, "verdict (Holm)"] == "not distinguishable"  # estimate and bootstrap disagree
    lower = adjust_family(pd.DataFrame({"comparison": ["A - B"]}), [-reps])  # no point column: the replicates
    assert lower.loc[0, "verdict (Holm)"] == "a lower"


def test_the_sentence_says_when_the_step_down_stopped_first():
    # p 0.001, 0.03, 0.04 alone; m = 3: step 1 rejects at 0.0167, step 2 (0.03 >= 0.025) stops, so the
    # third (0.04 < its own level 0.05) stays unrejected although its 95% interval excludes 0
    row = {"comparison": "A - D", "mean PCC difference": 0.02, "95% CI low": 0.001, "95% CI high": 0.04,
           "verdict": "a higher", "n_boot": 2000, "resampled": "slides", "seeds": "a: 3, b: 3",
           "p Holm": 0.06, "Holm level": 0.05, "Holm CI low": 0.001, "Holm CI high": 0.04,
           "verdict (Holm)": "not distinguishable"}
    assert "step-down stopped" in bootstrap_sentence(row)
    row.update({"Holm CI low": -0.001})
    assert "step-down stopped" not in bootstrap_sentence(row)


def test_the_sentence_states_the_adjusted_verdict():
    row = {"comparison": "ISG - HE2RNA", "mean PCC difference": 0.02, "95% CI low": 0.001, "95% CI high": 0.04,
           "verdict": "a higher", "n_boot": 2000, "resampled": "slides", "seeds": "a: 3, b: 3",
           "p Holm": 0.09, "Holm level": 0.0125, "Holm CI low": -0.004, "Holm CI high": 0.05,
           "verdict (Holm)": "not distinguishable"}
    s = bootstrap_sentence(row)
    assert "ISG is higher" in s and "Holm" in s and "p = 0.09" in s and "98.8%" in s
    assert s.endswith("not distinguishable on this cohort.")
