"""The visible-oracle study: its interaction rows are the differences of ISG's leads on the two
oracles, on the same slide draws, per baseline and again on COAD's T-cell genes, on constructed
tables."""
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from isg_core.experiments.runner import TableOutcomes
from isg_core.experiments.specs import BEST_BASELINE
from isg_core.studies.visible_oracle import (
    BASELINES,
    INTERACTION,
    comparisons,
    differences,
    experiments,
    interaction,
    visible_oracle_figure,
)

VIEWS = ("visible oracle", "full oracle")


def _outcomes(lead_visible: float, lead_full: float, seed: int = 0, cancer_type: str = "LIHC",
              genes=("g1", "g2", "g3"), lead_genes=None) -> TableOutcomes:
    """60 slides in 3 folds of one cancer type; ISG's predictions are the truth plus noise, every
    baseline's are noisier by the given lead (more noise = lower PCC), on ``lead_genes`` only
    where given (the other genes: the same noise as ISG's)."""
    rng = np.random.default_rng(seed)
    n = 60
    ids = [f"s{i}" for i in range(n)]
    truth = pd.DataFrame(rng.normal(size=(n, len(genes))), index=ids, columns=list(genes))
    groups = pd.DataFrame({"fold": np.arange(n) % 3, "cancer_type": cancer_type}, index=ids)
    which = np.array([lead_genes is None or g in lead_genes for g in genes])
    preds = {}
    for view, lead in zip(VIEWS, (lead_visible, lead_full)):
        for s in (0, 1):
            preds[(f"ISG ({view})", s)] = truth + 0.3 * rng.normal(size=truth.shape)
            for name in BASELINES:
                preds[(f"{name} ({view})", s)] = truth + (0.3 + lead * which) * rng.normal(size=truth.shape)
    return TableOutcomes(pd.DataFrame(), preds, truth, groups)


def test_every_model_runs_on_both_views_with_the_profiles_seeds():
    exps = experiments()
    assert [e.label for e in exps] == [f"{m} ({v})" for v in ("full oracle", "visible oracle")
                                       for m in ("ISG", *BASELINES)]
    assert all(e.headline for e in exps) and {e.features for e in exps} == {"oracle", "oracle-visible"}
    assert {e.model for e in exps} == {"isg", "cyclemlp", "vit-mb", "abmil"} and BEST_BASELINE in BASELINES


def test_the_interaction_is_the_difference_of_the_leads():
    d = differences(_outcomes(lead_visible=3.0, lead_full=0.0), n_boot=2000).set_index("comparison")
    assert list(d.index) == [f"{a} - {b}" for a, b in comparisons()] + [interaction(b) for b in BASELINES]
    assert set(d.scope) == {"all tasks and genes"}  # no COAD slide: no focus rows
    first, second = (f"{a} - {b}" for a, b in comparisons()[:2])
    inter = d.loc[INTERACTION]
    assert np.isclose(inter["mean PCC difference"],
                      d.loc[first, "mean PCC difference"] - d.loc[second, "mean PCC difference"])
    assert d.loc[first, "verdict (Holm)"] == "a higher"  # ISG leads on the visible oracle ...
    assert d.loc[second, "verdict (Holm)"] == "not distinguishable"  # ... not on the full one
    assert inter["95% CI low"] > 0 and inter["verdict (Holm)"] == "a higher"
    assert set(d["adjusted"]) == {f"Holm over the table's {len(d)} comparisons"}


def test_no_lead_anywhere_gives_no_interaction():
    d = differences(_outcomes(lead_visible=0.0, lead_full=0.0, seed=1), n_boot=2000).set_index("comparison")
    for b in BASELINES:
        assert d.loc[interaction(b), "verdict (Holm)"] == "not distinguishable"
        assert d.loc[interaction(b), "95% CI low"] < 0 < d.loc[interaction(b), "95% CI high"]


def test_the_focus_rows_score_coads_t_cell_genes_only():
    """ISG leads on COAD's T-cell genes only: the focus scope shows the lead, the all-genes scope
    dilutes it over the B-cell genes where nobody leads."""
    genes = ("CD3D", "CD3E", "MS4A1", "CD19")
    out = _outcomes(lead_visible=3.0, lead_full=0.0, cancer_type="COAD", genes=genes, lead_genes=("CD3D", "CD3E"))
    d = differences(out, n_boot=400)
    focus = d[d.scope == "COAD T-cell genes"].set_index("comparison")
    assert list(focus.index) == [f"{a} - {b}" for a, b in comparisons()[:2 * len(BASELINES)]] + \
        [interaction(b) for b in BASELINES]
    every = d[d.scope == "all tasks and genes"].set_index("comparison")
    lead = "ISG (visible oracle) - " + BEST_BASELINE + " (visible oracle)"
    assert focus.loc[lead, "mean PCC difference"] > 1.5 * every.loc[lead, "mean PCC difference"] > 0
    assert (focus.loc[[interaction(b) for b in BASELINES], "95% CI low"] > 0).all()


def test_the_figure_has_the_models_and_every_interaction():
    out = _outcomes(lead_visible=3.0, lead_full=0.0)
    d = differences(out, n_boot=200)
    summary = pd.DataFrame({"method": [f"{m} ({v})" for v in VIEWS for m in ("ISG", *BASELINES)],
                            "PCC mean": np.linspace(0.4, 0.8, 2 * (len(BASELINES) + 1))})
    fig = visible_oracle_figure(summary, d)
    ax, bx = fig.axes[:2]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["ISG", *BASELINES]
    assert [t.get_text() for t in bx.get_yticklabels()] == [f"{b} | all tasks and genes" for b in BASELINES]
    assert "lead on the visible oracle" in bx.get_xlabel()
    plt.close(fig)
