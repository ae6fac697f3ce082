"""Determinism: the same command twice on the CPU, from nothing, gives identical tables.

Two copies of the smoke cohort's slides go through the whole chain of Table 1 (tiling, Shannon
and Otsu selection, training both feature extractors, extracting FE and ResNet50 features, and the
5-fold cross-validations of ISG and every baseline), each from empty folders; the tables must be
equal to the last bit, and so must the CSV files written from them."""
from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "data" / "cohorts" / "isg-sim-smoke"


def _fresh_copy(dst: Path) -> Path:
    dst.mkdir()
    for name in ("manifest.csv", "expression.tsv", "cohort.json", "truth.csv", "labels.csv", "noise_ceiling.csv",
                 "patches.csv"):
        if (SMOKE / name).exists():
            shutil.copy(SMOKE / name, dst / name)
    shutil.copytree(SMOKE / "slides", dst / "slides")
    shutil.copytree(SMOKE / "maps", dst / "maps")  # the oracle rows read the simulator's cells
    return dst


def test_two_smoke_runs_give_identical_tables(tmp_path):
    if not (SMOKE / "manifest.csv").exists():
        pytest.skip("smoke cohort missing: run `isg simulate --profile smoke` (make test does)")
    import torch

    from isg_core.experiments import reproduce_table

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        runs = [reproduce_table(1, "smoke", _fresh_copy(tmp_path / f"run{i}"), device="cpu", progress=False)
                for i in (1, 2)]
    finally:
        torch.set_num_threads(threads)
    a, b = runs
    pd.testing.assert_frame_equal(a.rows, b.rows, check_exact=True)
    pd.testing.assert_frame_equal(a.summary, b.summary, check_exact=True)
    pd.testing.assert_frame_equal(a.differences, b.differences, check_exact=True)
    assert a.summary.to_csv(index=False) == b.summary.to_csv(index=False)  # what results/ would hold
    assert len(a.rows) and a.rows.pcc.notna().any()
