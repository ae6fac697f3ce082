"""Issue 16's target table: per-gene intervals against known answers and the reached / missed rules."""
import numpy as np
import pandas as pd
import pytest

from isg_core.experiments.acceptance import gene_intervals, target_table
from isg_core.experiments.runner import TableOutcomes


def outcomes(seed=0, n=40):
    """LIHC slides in 5 folds; CD3D predicted exactly, CD19 by noise, MKI67 by its negative."""
    rng = np.random.default_rng(seed)
    ids = [f"S{i}" for i in range(n)]
    truth = pd.DataFrame(rng.normal(size=(n, 3)), index=ids, columns=["CD3D", "CD19", "MKI67"])
    pred = truth.copy()
    pred["CD19"] = rng.normal(size=n)
    pred["MKI67"] = -truth["MKI67"]
    groups = pd.DataFrame({"fold": [i % 5 for i in range(n)], "cancer_type": "LIHC"}, index=ids)
    rows = pd.DataFrame(columns=["method"])
    return TableOutcomes(rows, {("ISG", 0): pred, ("ISG", 1): pred}, truth, groups)


def test_gene_intervals_known_answers():
    g = gene_intervals(outcomes(), "ISG", {"LIHC": ("CD3D", "CD19", "MKI67"), "COAD": ("CD3D",)}, n_boot=300)
    g = g.set_index("gene")
    assert list(g.index) == ["CD3D", "CD19", "MKI67"]  # no COAD slides: no COAD rows
    assert g.loc["CD3D", ["pcc", "ci_low", "ci_high"]].tolist() == pytest.approx([1.0, 1.0, 1.0])
    assert g.loc["MKI67", "pcc"] == pytest.approx(-1.0) and g.loc["MKI67", "ci_high"] == pytest.approx(-1.0)
    assert g.loc["CD19", "ci_low"] < g.loc["CD19", "pcc"] < g.loc["CD19", "ci_high"]
    assert (g.seeds == 2).all()
    with pytest.raises(ValueError, match="no predictions"):
        gene_intervals(outcomes(), "HE2RNA")


def test_target_table_rules():
    genes = pd.DataFrame({"method": "ISG", "task": ["LIHC", "LIHC", "COAD", "LIHC"],
                          "gene": ["CD3D", "MKI67", "CD3E", "CD19"], "pcc": [0.6, 0.1, 0.45, 0.9],
                          "ci_low": [0.4, -0.05, 0.3, 0.8], "ci_high": [0.7, 0.2, 0.6, 1.0], "seeds": 2})
    t1 = pd.DataFrame({"method": ["ISG", "ISG (oracle features)"], "PCC mean": [0.4, 0.8],
                       "noise ceiling": [0.9, 0.9], "of noise ceiling": [0.44, 0.89]})
    d5 = pd.DataFrame({"comparison": ["fe - fe-untrained", "fe - resnet50", "fe - resnet50"],
                       "level": ["slide", "slide", "patch"], "diff": [0.05, 0.02, 0.3],
                       "ci_low": [0.01, -0.01, 0.2], "ci_high": [0.1, 0.05, 0.4]})
    p5 = pd.DataFrame({"features": ["fe", "fe"], "level": ["patch", "slide"], "task": ["cells", "LIHC"],
                       "target": ["n_lymphocyte", "CD3D"], "pcc": [0.85, 0.1], "pcc_fold_std": [0.01, 0.1]})
    t = target_table(genes, t1, d5, p5).set_index("target")
    reached = t.reached.to_dict()
    assert reached == {"Table 5, slide level: trained FE - fe-untrained": "yes",
                       "Table 5, slide level: trained FE - resnet50": "no",
                       "Table 5, patch level: lymphocyte count (trained FE)": "yes",
                       "CD3D in LIHC (ISG)": "yes", "MKI67 in LIHC (ISG)": "no", "CD3E in COAD (ISG)": "no",
                       "ISG overall: mean PCC / noise ceiling": "no"}  # CD19 has no target
    assert t.loc["ISG overall: mean PCC / noise ceiling", "value"] == pytest.approx(0.44)
    assert "0.890" in t.loc["ISG overall: mean PCC / noise ceiling", "note"]
    assert t.loc["CD3D in LIHC (ISG)", "note"] == "slide probe on FE features: 0.100"


def test_efficiency_targets_apply_each_rule():
    """FLOP and time ratios pass at <= 1, fail above; the inference row reads the largest slide only."""
    import pandas as pd

    from isg_core.experiments.acceptance import efficiency_targets

    cost = pd.DataFrame([{"profile": "quick", "FLOP ratio ISG / ResNet50": 0.2, "time ratio ISG / ResNet50": 0.7,
                          "E_G GFLOP/s": 150.0, "E_L GFLOP/s": 80.0, "ResNet50 GFLOP/s": 300.0, "device": "cpu"},
                         {"profile": "paper", "FLOP ratio ISG / ResNet50": 0.93, "time ratio ISG / ResNet50": 1.4,
                          "E_G GFLOP/s": 260.0, "E_L GFLOP/s": 200.0, "ResNet50 GFLOP/s": 310.0, "device": "cpu"}])
    inf = pd.DataFrame([{"method": "ISG", "width": 4096, "total": 3.0},
                        {"method": "HE2RNA", "width": 4096, "total": 1.0},
                        {"method": "ISG", "width": 40000, "total": 140.0},
                        {"method": "HE2RNA", "width": 40000, "total": 200.0}])
    t = efficiency_targets(cost, inf).set_index("target")
    assert t.loc["extraction per kept patch at paper sizes: time, ISG / ResNet50", "reached"] == "no"
    assert t.loc["extraction per kept patch at paper sizes: FLOPs, ISG / ResNet50", "reached"] == "yes"
    assert "E_L 200" in t.loc["extraction per kept patch at paper sizes: time, ISG / ResNet50", "note"]
    big = t.loc["inference on the 40,000 px slide: ISG / HE2RNA seconds"]
    assert big.value == pytest.approx(0.7) and big.reached == "yes"  # not the small slides' 3.0
    assert efficiency_targets(None, None).empty
