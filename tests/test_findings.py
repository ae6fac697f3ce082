"""Findings sentences are generated from results CSVs: constructed tables give known sentences."""
import numpy as np
import pandas as pd
import pytest

from isg_core.errors import IsgError
from isg_core.report.findings import as_markdown, paper_name, ranking, regression_findings, target_findings


def write(tmp_path, name, rows):
    pd.DataFrame(rows).to_csv(tmp_path / f"{name}.csv", index=False)


def summary(names, pcc, paper):
    return [{"method": m, "PCC mean": p, "PCC sd (seeds)": 0.01 if m == "ISG" else np.nan,
             "seeds": 2 if m == "ISG" else 1, "noise ceiling": 0.8, "paper PCC": q}
            for m, p, q in zip(names, pcc, paper)]


SIG = [{"comparison": "ISG - HE2RNA (random ResNet50)", "mean PCC difference": -0.05, "95% CI low": -0.09,
        "95% CI high": -0.01, "verdict": "a lower", "resampled": "slides"}]


def test_table1_sentences_rank_compare_and_quote_the_paper(tmp_path):
    names = ["ISG", "HE2RNA (random ResNet50)", "ISG (oracle features)"]
    write(tmp_path, "table_1", summary(names, [0.2, 0.25, 0.7], [0.435, 0.313, np.nan]))
    write(tmp_path, "table_1_significance", SIG)
    lines = regression_findings(tmp_path, 1)
    assert lines[0].endswith("HE2RNA (random ResNet50) 0.250 > ISG 0.200 (2 seeds, SD 0.010).")  # oracle apart
    assert "ISG reaches 0.25 of the noise ceiling (0.800)." in lines
    assert any("ISG (oracle features) 0.700" in s for s in lines)
    assert "  ISG - HE2RNA (random ResNet50): -0.050 (95% CI -0.090 to -0.010): ISG is lower." in lines
    # the paper's HE2RNA ran on an ImageNet ResNet50: its number is quoted under the paper's name
    assert lines[-1] == "The paper (TCGA, per task): ISG 0.435, HE2RNA 0.313."


def test_other_setting_says_not_in_the_paper(tmp_path):
    write(tmp_path, "table_2", summary(["ISG", "ISG-LoG"], [0.3, 0.2], [0.435, 0.253]))
    write(tmp_path, "table_2_significance", SIG)
    last = regression_findings(tmp_path, 2)[-1]
    assert "not in the paper" in last and "one model for all tasks" in last


def test_missing_or_stale_file_is_one_line_naming_it(tmp_path):
    with pytest.raises(IsgError, match="table_4.csv: not found"):
        regression_findings(tmp_path, 4)
    write(tmp_path, "issue16_targets", [{"target": "x", "rule": "r", "value": 0.1}])
    with pytest.raises(IsgError, match="issue16_targets.csv: lacks columns \\['reached'\\]"):
        target_findings(tmp_path)


def test_targets_markdown_and_helpers(tmp_path):
    write(tmp_path, "issue16_targets", [
        {"target": "CD3D in LIHC (ISG)", "rule": "PCC >= 0.5", "value": 0.55, "ci_low": 0.4, "ci_high": 0.7,
         "reached": "yes", "note": ""},
        {"target": "ISG overall", "rule": ">= 0.5", "value": 0.3, "ci_low": np.nan, "ci_high": np.nan,
         "reached": "no", "note": "oracle 0.9"}])
    md = as_markdown(target_findings(tmp_path)).splitlines()
    assert md == ["- CD3D in LIHC (ISG): +0.550 (95% CI +0.400 to +0.700), rule PCC >= 0.5: **reached**.",
                  "- ISG overall: +0.300, rule >= 0.5: **missed**; oracle 0.9."]
    assert paper_name("1 x default (8.70 bpp)") == "1 x default" and paper_name("ISG-10-2") == "ISG-10-2"
    s = pd.DataFrame({"method": ["a", "b"], "PCC mean": [0.1, np.nan], "seeds": [1, 1]})
    assert ranking(s) == "a 0.100"


def test_tables_4_and_6_quote_the_paper_as_its_own_setting(tmp_path):
    """Sec. 4.2 of the paper runs Tables 4-6 with one model for all six tasks, our setting: the paper's
    values are quoted as numbers in that setting, not as an order from another one."""
    write(tmp_path, "table_6", summary(["ISG-10-2", "ISG-14-2"], [0.3, 0.25], [0.3908, 0.3263]))
    write(tmp_path, "table_6_significance", SIG)
    last = regression_findings(tmp_path, 6)[-1]
    assert last == "The paper (TCGA, one model for all tasks): ISG-10-2 0.391, ISG-14-2 0.326."


def test_the_interval_preamble_says_seeds_only_where_rows_have_several():
    import pandas as pd

    from isg_core.report.findings import interval_preamble

    one = pd.DataFrame({"seeds": ["a: 1, b: 1", "a: 1, b: 1"]})
    assert "carry no training variance" in interval_preamble(one) and "and the training seeds" not in \
        interval_preamble(one)
    assert interval_preamble(pd.DataFrame({"seeds": ["a: 2, b: 2"]})).endswith("and the training seeds:")
    assert "where a row has several" in interval_preamble(pd.DataFrame({"seeds": ["a: 2, b: 2", "a: 1, b: 1"]}))
