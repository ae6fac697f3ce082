"""The notebooks' generated openings and closings (isg_core.report.tutorial), on constructed results files."""
from __future__ import annotations

import pandas as pd
import pytest

from isg_core.report.tutorial import FINDINGS, _duration, runtime_note, what_we_found


def test_duration_reads_like_a_person_writes_it():
    assert [_duration(s) for s in (12, 300, 3900, float("nan"))] == ["12 s", "5 min", "1 h 05 min", "not measured"]


def test_runtime_note_states_fresh_and_cached_times(tmp_path):
    pd.DataFrame({"notebook": ["05_table1_sota.ipynb"], "fresh_s": [2799.0], "cached_s": [41.0],
                  "measured": ["2 cores"]}).to_csv(tmp_path / "notebook_timings.csv", index=False)
    note = runtime_note("05_table1_sota.ipynb", "quick", tmp_path)
    assert "47 min from scratch" in note and "41 s with its results cached" in note and "(2 cores)" in note
    assert "not measured" in runtime_note("06_table2_selectors.ipynb", "quick", tmp_path)
    assert "not measured" in runtime_note("05_table1_sota.ipynb", "quick", tmp_path / "elsewhere")


def test_what_we_found_reads_the_numbers_from_the_files(tmp_path):
    pd.DataFrame({"epoch": [1, 2, 3], "train_loss": [1.2, 1.0, 0.9], "val_loss": [1.3, 0.8, 0.95]}).to_csv(
        tmp_path / "isg_training_curve.csv", index=False)
    pd.DataFrame({"rank": [1, 2, 3, 4], "attention": [0.7, 0.1, 0.1, 0.1], "uniform": 0.25}).to_csv(
        tmp_path / "isg_attention.csv", index=False)
    text = what_we_found("04_dual_attention.ipynb", "quick", tmp_path)
    assert text.startswith("### What we found") and "SIMULATED" in text
    assert "0.800 (epoch 2), below 1.0" in text  # the best validation epoch, against predicting the mean
    assert "0.700, 0.100, 0.100, against 0.250" in text and "nearly uniform" not in text
    # a file that is not there gives a line naming it, not a traceback
    assert "isg_lihc_per_gene" not in text
    assert "Not available yet" in what_we_found("05_table1_sota.ipynb", "quick", tmp_path)


def test_every_results_notebook_has_findings():
    assert sorted(FINDINGS) == [f"{k:02d}" for k in range(13)]
    with pytest.raises(Exception, match="no findings"):
        what_we_found("99_nothing.ipynb", "quick")
