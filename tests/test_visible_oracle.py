"""The visible-oracle study (issue 32): its interaction row is the difference of ISG's leads on
the two oracles, on the same slide draws, and it says so on a constructed table."""
import numpy as np
import pandas as pd

from isg_core.experiments.runner import TableOutcomes
from isg_core.experiments.specs import BEST_BASELINE
from isg_core.studies.visible_oracle import INTERACTION, comparisons, differences


def _outcomes(lead_visible: float, lead_full: float, seed: int = 0) -> TableOutcomes:
    """60 slides in 3 folds of one cancer type; ISG's predictions are the truth plus noise, the
    baseline's are noisier by the given lead (more noise = lower PCC)."""
    rng = np.random.default_rng(seed)
    n, genes = 60, ["g1", "g2", "g3"]
    ids = [f"s{i}" for i in range(n)]
    truth = pd.DataFrame(rng.normal(size=(n, 3)), index=ids, columns=genes)
    groups = pd.DataFrame({"fold": np.arange(n) % 3, "cancer_type": "LIHC"}, index=ids)
    preds = {}
    for view, lead in (("visible oracle", lead_visible), ("full oracle", lead_full)):
        for s in (0, 1):
            preds[(f"ISG ({view})", s)] = truth + 0.3 * rng.normal(size=truth.shape)
            preds[(f"{BEST_BASELINE} ({view})", s)] = truth + (0.3 + lead) * rng.normal(size=truth.shape)
    return TableOutcomes(pd.DataFrame(), preds, truth, groups)


def test_the_interaction_is_the_difference_of_the_leads():
    d = differences(_outcomes(lead_visible=3.0, lead_full=0.0), n_boot=400).set_index("comparison")
    assert list(d.index) == [f"{a} - {b}" for a, b in comparisons()] + [INTERACTION]
    first, second = (f"{a} - {b}" for a, b in comparisons()[:2])
    inter = d.loc[INTERACTION]
    assert np.isclose(inter["mean PCC difference"],
                      d.loc[first, "mean PCC difference"] - d.loc[second, "mean PCC difference"])
    assert d.loc[first, "verdict (Holm)"] == "a higher"  # ISG leads on the visible oracle ...
    assert d.loc[second, "verdict (Holm)"] == "not distinguishable"  # ... not on the full one
    assert inter["95% CI low"] > 0 and inter["verdict (Holm)"] == "a higher"


def test_no_lead_anywhere_gives_no_interaction():
    d = differences(_outcomes(lead_visible=0.0, lead_full=0.0, seed=1), n_boot=400).set_index("comparison")
    assert d.loc[INTERACTION, "verdict (Holm)"] == "not distinguishable"
    assert d.loc[INTERACTION, "95% CI low"] < 0 < d.loc[INTERACTION, "95% CI high"]
