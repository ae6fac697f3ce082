"""Notebook 12's closing "What we found" (isg_core.report.tutorial.predict_findings): the flags of the
predictions CSVs it writes, counted by reason, on constructed files."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from isg_core.deploy.predict import gene_flag
from isg_core.report.tutorial import REAL_SLIDE, SIMULATED, SKIN_TYPE, flag_counts, predict_dir, what_we_found

NOTEBOOK = "12_predict_your_slide.ipynb"
#: gene -> (trained on, fold test PCC): C does no better than chance, D has no PCC measured
GENES = {"A": ("COAD", 0.30), "B": ("COAD+LIHC", 0.20), "C": ("LIHC", -0.14), "D": ("PRAD", float("nan"))}


def _write(path: Path, cancer_type: str | None) -> None:
    """A predictions CSV as ``isg predict`` writes it (an empty flag is read back as NaN)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"gene": list(GENES), "log10_fpkm_uq_plus_1": 3.0, "fpkm_uq": 999.0,
                  "trained_on": [t for t, _ in GENES.values()], "fold_test_pcc": [p for _, p in GENES.values()],
                  "flag": [gene_flag(t, p, cancer_type) for t, p in GENES.values()]}).to_csv(path, index=False)


def test_predict_dir_is_beside_the_executed_notebooks(tmp_path):
    assert predict_dir(tmp_path / "quick") == tmp_path / "notebooks" / "quick" / "predict"


def test_flag_counts_by_reason(tmp_path):
    _write(tmp_path / "x.csv", "SKCM")
    c = flag_counts(pd.read_csv(tmp_path / "x.csv"))
    assert (c["genes"], c["flagged"], c["cancer_type"]) == (4, 4, "SKCM")
    assert c["type"] == ["A", "B", "C", "D"] and c["chance"] == ["C"] and c["unmeasured"] == ["D"]
    _write(tmp_path / "y.csv", None)  # no cancer type: only the PCC can be held against a gene
    c = flag_counts(pd.read_csv(tmp_path / "y.csv"))
    assert (c["flagged"], c["type"], c["chance"], c["unmeasured"], c["cancer_type"]) == (2, [], ["C"], ["D"], None)


def test_what_we_found_counts_the_flags_of_each_slide(tmp_path):
    results = tmp_path / "quick"
    d = predict_dir(results)
    _write(d / SKIN_TYPE / f"{REAL_SLIDE}.predictions.csv", "SKCM")
    _write(d / f"{REAL_SLIDE}.predictions.csv", None)
    _write(d / SIMULATED / "ISGSIM-COAD-0001-DX1.predictions.csv", "COAD")
    lines = what_we_found(NOTEBOOK, "quick", results).splitlines()
    skin = next(ln for ln in lines if "(SKCM, our assumption)" in ln)
    assert "4 of 4 genes flagged: 4 trained only on COAD, LIHC or PRAD, not on SKCM; " in skin
    assert "1 with a fold test PCC <= 0, no better than chance on held-out slides (C -0.14)" in skin
    assert "1 with no test PCC measured (D)" in skin and "(2 of them for both reasons)" in skin
    plain = next(ln for ln in lines if "with no cancer type given" in ln)
    assert "2 of 4 genes flagged: 1 with a fold test PCC <= 0" in plain and "not on" not in plain
    sim = next(ln for ln in lines if "ISGSIM-COAD-0001-DX1 (COAD)" in ln)
    assert "2 of 4 genes flagged: 2 trained only on LIHC or PRAD, not on COAD (C, D); 1 with a fold test PCC" in sim
    assert "(2 of them for both reasons)" in sim
    assert "SIMULATED" in lines[-1] and "Not available" not in "\n".join(lines)


def test_what_we_found_without_predictions_is_one_line(tmp_path):
    text = what_we_found(NOTEBOOK, "quick", tmp_path / "quick")
    body = [ln for ln in text.splitlines()[1:] if ln]
    assert len(body) == 1 and body[0].startswith("- Not available yet:") and "Traceback" not in text
    # one slide's predictions missing: a line for it, the others still counted
    d = predict_dir(tmp_path / "quick")
    _write(d / SKIN_TYPE / f"{REAL_SLIDE}.predictions.csv", "SKCM")
    text = what_we_found(NOTEBOOK, "quick", tmp_path / "quick")
    assert "4 of 4 genes flagged" in text and text.count("Not available yet") == 2
    assert f"{SIMULATED}: holds no predictions" in text


def test_the_notebook_writes_where_its_findings_read():
    src = (Path(__file__).resolve().parents[1] / "notebooks" / "src" / "12_predict_your_slide.py").read_text()
    assert "predict_dir(profile_results_dir(profile))" in src
    assert f'out_dir / "{SKIN_TYPE}"' in src and f'cancer_type="{SKIN_TYPE}"' in src
    assert f'out_dir / "{SIMULATED}"' in src and "what_we_found(NOTEBOOK, profile)" in src
