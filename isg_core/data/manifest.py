"""The cohort manifest: one row per slide (slide id, path, cancer type, patient id, fold, and
optionally mpp: the resolution of a slide whose file carries none, e.g. a PNG or a bare TIFF).

Folds are assigned by *patient* (TCGA patient id = the first 12 characters of the slide
name), stratified by cancer type, so no patient's slides are split between training and
test: the paper's 5-fold cross-validation (Sec. 4) needs this to be honest.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ..errors import IsgError, atomic_path, first_line

MANIFEST_COLUMNS = ("slide_id", "path", "cancer_type", "patient_id", "fold")


def patient_id_from_slide(slide_id: str) -> str:
    """TCGA patient id: ``TCGA-XX-XXXX`` (the first 12 characters of a TCGA slide name)."""
    return slide_id[:12]


def assign_folds(
    patient_ids: Sequence[str], strata: Sequence[str], k: int = 5, seed: int = 0
) -> np.ndarray:
    """Fold index in ``0..k-1`` for each row, constant within a patient.

    Patients are shuffled with ``seed`` within each stratum (cancer type) and dealt round-robin
    to the folds, so every fold holds about 1/k of each cancer type's patients.
    """
    if len(patient_ids) != len(strata):
        raise ValueError("patient_ids and strata must have the same length")
    if k < 2:
        raise IsgError(None, f"cross-validation needs at least 2 folds, got k={k}")
    rng = np.random.default_rng(seed)
    fold_of: dict[str, int] = {}
    df = pd.DataFrame({"p": list(patient_ids), "s": list(strata)})
    offset = 0
    for stratum in sorted(df["s"].unique()):
        patients = sorted(df.loc[df["s"] == stratum, "p"].unique())
        patients = [patients[i] for i in rng.permutation(len(patients))]
        for i, p in enumerate(patients):
            # continue the round-robin across strata so small strata do not all start at fold 0
            fold_of.setdefault(p, (offset + i) % k)
        offset += len(patients)
    return np.array([fold_of[p] for p in patient_ids], dtype=np.int64)


def write_manifest(df: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write a manifest CSV atomically; ``path`` values are stored relative to the manifest."""
    path = Path(path)
    missing = [c for c in MANIFEST_COLUMNS if c not in df.columns]
    if missing:
        raise IsgError(path, f"manifest lacks column(s) {', '.join(missing)}")
    out = df.copy()
    # abspath, not resolve: a slide folder of symlinks must stay a folder of symlinks
    out["path"] = [os.path.relpath(os.path.abspath(p), os.path.abspath(path.parent)) for p in out["path"]]
    with atomic_path(path) as tmp:
        out.to_csv(tmp, index=False)
    return path


def read_manifest(path: str | os.PathLike, check_files: bool = True) -> pd.DataFrame:
    """Read and validate a manifest CSV; ``path`` values become absolute.

    One-line :class:`IsgError` for: a missing or unreadable file, missing columns, empty
    manifest, duplicate slide ids, a fold that is not an integer, a patient split across folds,
    or (with ``check_files``) a slide file that does not exist.
    """
    path = Path(path)
    if not path.exists():
        raise IsgError(path, "manifest not found")
    try:
        df = pd.read_csv(path, dtype={"slide_id": str, "patient_id": str, "cancer_type": str, "path": str})
    except Exception as e:
        raise IsgError(path, f"not a readable CSV manifest ({first_line(e)})") from None
    missing = [c for c in MANIFEST_COLUMNS if c not in df.columns]
    if missing:
        raise IsgError(path, f"manifest lacks column(s) {', '.join(missing)} (needs {', '.join(MANIFEST_COLUMNS)})")
    if df.empty:
        raise IsgError(path, "manifest has no slides")
    for col in ("slide_id", "path", "cancer_type", "patient_id"):
        bad = df[col].isna() | (df[col].astype(str).str.strip() == "")
        if bad.any():
            raise IsgError(path, f"row {int(np.flatnonzero(bad)[0]) + 2}: empty {col}")
    dup = df["slide_id"][df["slide_id"].duplicated()]
    if len(dup):
        raise IsgError(path, f"slide id {dup.iloc[0]!r} appears more than once")
    folds = pd.to_numeric(df["fold"], errors="coerce")
    if folds.isna().any() or (folds != folds.round()).any() or (folds < 0).any():
        row = int(np.flatnonzero(folds.isna() | (folds != folds.round()) | (folds < 0))[0]) + 2
        raise IsgError(path, f"row {row}: fold must be a non-negative integer, got {df['fold'].iloc[row - 2]!r}")
    df["fold"] = folds.astype(np.int64)
    if "mpp" in df.columns:  # optional: the resolution of slides whose files carry none (blank = the file's own)
        mpp = pd.to_numeric(df["mpp"], errors="coerce")
        bad = (df["mpp"].notna() & mpp.isna()) | (mpp <= 0)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise IsgError(path, f"row {row + 2}: mpp must be a positive number of microns per pixel, "
                                 f"got {df['mpp'].iloc[row]!r}")
        df["mpp"] = mpp
    split = df.groupby("patient_id")["fold"].nunique()
    if (split > 1).any():
        raise IsgError(path, f"patient {split[split > 1].index[0]!r} has slides in more than one fold")
    base = path.parent
    df["path"] = [os.path.abspath(base / p) if not os.path.isabs(p) else p for p in df["path"]]
    if check_files:
        for sid, p in zip(df["slide_id"], df["path"]):
            if not Path(p).exists():
                raise IsgError(path, f"slide {sid!r} names a missing file {p}")
    return df.reset_index(drop=True)


def slide_mpps(manifest: pd.DataFrame) -> list[float | None]:
    """Per row, the manifest's ``mpp`` (the resolution of a slide whose file has none), or None:
    read it from the file."""
    if "mpp" not in manifest:
        return [None] * len(manifest)
    return [None if pd.isna(v) else float(v) for v in manifest["mpp"]]


# --- sharding a cohort over independent workers ------------------------------------------------------
def parse_shard(spec: "str | None") -> tuple[int, int] | None:
    """``"K/N"`` (1 <= K <= N) -> (K, N); None -> None.  ``K`` is 1-based, as SLURM's
    ``--array=1-N`` numbers its tasks (``--shard $SLURM_ARRAY_TASK_ID/N``)."""
    if spec is None:
        return None
    k, sep, n = str(spec).partition("/")
    try:
        k_, n_ = int(k), int(n)
    except ValueError:
        raise IsgError(None, f"--shard takes K/N, e.g. 3/8, got {spec!r}") from None
    if not sep or n_ < 1 or not 1 <= k_ <= n_:
        raise IsgError(None, f"--shard K/N needs 1 <= K <= N, got {spec!r}")
    return k_, n_


def shard_rows(df: "pd.DataFrame | Sequence", shard: "str | tuple[int, int] | None") -> "pd.DataFrame | list":
    """The rows (of a manifest, or items of a list of slides) of shard K of N: every N-th row starting
    at row K-1 (round robin, so slides listed by project or size spread evenly).  The N shards cover
    every row exactly once: no overlap, no gap, whatever N and the number of rows."""
    kn = parse_shard(shard) if isinstance(shard, (str, type(None))) else shard
    if kn is None:
        return df
    k, n = kn
    return df.iloc[k - 1::n] if isinstance(df, pd.DataFrame) else list(df)[k - 1::n]
