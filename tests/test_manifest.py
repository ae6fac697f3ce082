"""Tests for isg_core.data.manifest: patient-level stratified folds and the manifest CSV."""
from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from isg_core.data.manifest import MANIFEST_COLUMNS, assign_folds, patient_id_from_slide, read_manifest, write_manifest
from isg_core.errors import IsgError


def cohort(n_per_type: dict[str, int], slides_per_patient: int = 2) -> tuple[list[str], list[str]]:
    """Patient ids and cancer types, one entry per slide, several slides per patient."""
    patients, strata = [], []
    for t, n in n_per_type.items():
        for i in range(n):
            for _ in range(slides_per_patient):
                patients.append(f"TCGA-{t[:2]}-{i:04d}")
                strata.append(t)
    return patients, strata


# ------------------------------------------------------------------ assign_folds


def test_patient_id_from_slide():
    assert patient_id_from_slide("TCGA-AA-1234-01Z-00-DX1.abc") == "TCGA-AA-1234"


def test_assign_folds_keeps_each_patient_in_one_fold():
    patients, strata = cohort({"LIHC": 23, "COAD": 17, "PRAD": 9}, slides_per_patient=3)
    folds = assign_folds(patients, strata, k=5, seed=1)
    assert folds.dtype == np.int64 and len(folds) == len(patients)
    assert set(folds) <= set(range(5))
    per_patient = pd.Series(folds).groupby(pd.Series(patients)).nunique()
    assert (per_patient == 1).all()


@pytest.mark.parametrize("k", [2, 3, 5])
@pytest.mark.parametrize("seed", [0, 7])
def test_assign_folds_balances_every_cancer_type_and_the_total(k, seed):
    sizes = {"LIHC": 23, "COAD": 17, "PRAD": 9, "X": 1}
    patients, strata = cohort(sizes)
    folds = assign_folds(patients, strata, k=k, seed=seed)
    fold_of = dict(zip(patients, folds))
    stratum_of = dict(zip(patients, strata))
    # Round-robin dealing within a type: every fold gets floor or ceil of n/k of its patients.
    for t, n in sizes.items():
        counts = Counter(f for p, f in fold_of.items() if stratum_of[p] == t)
        for f in range(k):
            assert counts.get(f, 0) in (n // k, math.ceil(n / k)), (t, f, counts)
    # The deal continues across types, so the folds are balanced in patients overall too.
    total = Counter(fold_of.values())
    n = len(fold_of)
    assert all(total.get(f, 0) in (n // k, math.ceil(n / k)) for f in range(k)), total


def test_assign_folds_is_deterministic_per_seed_and_depends_on_it():
    patients, strata = cohort({"LIHC": 30, "COAD": 30})
    a = assign_folds(patients, strata, k=5, seed=3)
    b = assign_folds(patients, strata, k=5, seed=3)
    np.testing.assert_array_equal(a, b)
    others = [assign_folds(patients, strata, k=5, seed=s) for s in (4, 5, 6)]
    assert any(not np.array_equal(a, o) for o in others)


def test_assign_folds_does_not_depend_on_row_order():
    patients, strata = cohort({"LIHC": 12, "PRAD": 8})
    folds = dict(zip(patients, assign_folds(patients, strata, k=4, seed=0)))
    order = np.random.default_rng(0).permutation(len(patients))
    shuffled_p = [patients[i] for i in order]
    shuffled_s = [strata[i] for i in order]
    folds2 = dict(zip(shuffled_p, assign_folds(shuffled_p, shuffled_s, k=4, seed=0)))
    assert folds == folds2


def test_assign_folds_length_mismatch():
    with pytest.raises(ValueError):
        assign_folds(["a", "b"], ["LIHC"], k=2)


# ------------------------------------------------------------------ write / read


def make_manifest(tmp_path: Path, n: int = 4) -> pd.DataFrame:
    slides = tmp_path / "slides"
    slides.mkdir(exist_ok=True)
    rows = []
    for i in range(n):
        sid = f"TCGA-AA-{i // 2:04d}-01Z-00-DX{i % 2 + 1}"
        f = slides / f"{sid}.svs"
        f.write_bytes(b"x")
        rows.append((sid, str(f), "LIHC", patient_id_from_slide(sid), i // 2))
    return pd.DataFrame(rows, columns=list(MANIFEST_COLUMNS))


def test_round_trip_with_relative_paths(tmp_path, monkeypatch):
    df = make_manifest(tmp_path)
    out = tmp_path / "run" / "manifest.csv"
    write_manifest(df, out)
    stored = pd.read_csv(out)
    # stored relative to the manifest's folder, so the cohort can move as a whole
    assert all(not Path(p).is_absolute() for p in stored["path"])
    assert stored["path"][0] == f"../slides/{df['slide_id'][0]}.svs"
    # read from another working directory: paths resolve against the manifest, not the cwd
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    back = read_manifest(out)
    assert list(back.columns) == list(MANIFEST_COLUMNS)
    assert list(back["slide_id"]) == list(df["slide_id"])
    assert list(back["path"]) == [str(Path(p).resolve()) for p in df["path"]]
    assert back["fold"].dtype == np.int64
    assert list(back["fold"]) == list(df["fold"])
    assert list(back["patient_id"]) == list(df["patient_id"])


def test_round_trip_survives_moving_the_cohort(tmp_path):
    old = tmp_path / "old"
    old.mkdir()
    df = make_manifest(old)
    write_manifest(df, old / "manifest.csv")
    new = tmp_path / "new"
    old.rename(new)
    back = read_manifest(new / "manifest.csv")
    assert all(Path(p).is_relative_to(new.resolve()) and Path(p).exists() for p in back["path"])


def test_write_manifest_missing_column(tmp_path):
    df = make_manifest(tmp_path).drop(columns=["fold"])
    out = tmp_path / "m.csv"
    with pytest.raises(IsgError) as e:
        write_manifest(df, out)
    assert str(out) in str(e.value) and "fold" in str(e.value)
    assert not out.exists()


def write_csv(path: Path, df: pd.DataFrame) -> Path:
    df.to_csv(path, index=False)
    return path


def assert_error(path: Path, *parts: str, check_files: bool = True) -> str:
    with pytest.raises(IsgError) as e:
        read_manifest(path, check_files=check_files)
    msg = str(e.value)
    assert "\n" not in msg
    assert str(path) in msg, msg
    for part in parts:
        assert part in msg, (part, msg)
    return msg


def test_read_manifest_missing_file(tmp_path):
    assert_error(tmp_path / "none.csv", "not found")


def test_read_manifest_missing_column(tmp_path):
    m = write_csv(tmp_path / "m.csv", make_manifest(tmp_path).drop(columns=["cancer_type"]))
    assert_error(m, "lacks column(s) cancer_type")


def test_read_manifest_empty(tmp_path):
    m = write_csv(tmp_path / "m.csv", make_manifest(tmp_path).iloc[:0])
    assert_error(m, "no slides")
    blank = tmp_path / "blank.csv"
    blank.write_text("")
    assert_error(blank, "not a readable CSV")


def test_read_manifest_duplicate_slide(tmp_path):
    df = make_manifest(tmp_path)
    df.loc[1, "slide_id"] = df.loc[0, "slide_id"]
    m = write_csv(tmp_path / "m.csv", df)
    assert_error(m, repr(df.loc[0, "slide_id"]), "more than once")


@pytest.mark.parametrize("bad", ["1.5", "a", "-1", ""])
def test_read_manifest_non_integer_fold(tmp_path, bad):
    df = make_manifest(tmp_path).astype({"fold": object})
    df.loc[3, "fold"] = bad
    m = write_csv(tmp_path / "m.csv", df)
    assert_error(m, "row 5", "fold must be a non-negative integer")


def test_read_manifest_integral_float_fold_is_accepted(tmp_path):
    df = make_manifest(tmp_path).astype({"fold": float})
    back = read_manifest(write_csv(tmp_path / "m.csv", df))
    assert back["fold"].dtype == np.int64 and list(back["fold"]) == [0, 0, 1, 1]


def test_read_manifest_patient_split_across_folds(tmp_path):
    df = make_manifest(tmp_path)
    df.loc[1, "fold"] = 3  # slide 1 shares patient TCGA-AA-0000 with slide 0 (fold 0)
    m = write_csv(tmp_path / "m.csv", df)
    assert_error(m, "'TCGA-AA-0000'", "more than one fold")


def test_read_manifest_missing_slide_file(tmp_path):
    df = make_manifest(tmp_path)
    m = write_manifest(df, tmp_path / "m.csv")
    Path(df.loc[2, "path"]).unlink()
    assert_error(m, repr(df.loc[2, "slide_id"]), "missing file")
    # check_files=False skips the check (for manifests of slides not downloaded yet)
    assert len(read_manifest(m, check_files=False)) == 4


def test_read_manifest_empty_cell(tmp_path):
    df = make_manifest(tmp_path)
    df.loc[2, "patient_id"] = ""
    m = write_csv(tmp_path / "m.csv", df)
    assert_error(m, "row 4", "empty patient_id")


def test_read_manifest_keeps_leading_zeros_in_ids(tmp_path):
    df = make_manifest(tmp_path, n=2)
    df["slide_id"] = ["0001", "0002"]
    df["patient_id"] = ["007", "007"]
    back = read_manifest(write_csv(tmp_path / "m.csv", df), check_files=False)
    assert list(back["slide_id"]) == ["0001", "0002"] and list(back["patient_id"]) == ["007", "007"]
