"""Stored results (isg_core.data.result_cache) and Table 5's probes of notebook 09, which use them
(the selection studies of notebook 02 are tested in test_selection_study.py): a result is computed
once, read back equal (same values, dtypes, index and column order) while its inputs are unchanged,
computed again when an input's content or a config field changes, and computed again with a
warning when its file is damaged."""
from __future__ import annotations

import types
import warnings

import h5py
import numpy as np
import pandas as pd
import pytest

from isg_core.config import TASK_GENES
from isg_core.data.result_cache import cache_path, cached_frames, identity, load_frames, save_frames
from isg_core.data.tiling import StaleResultWarning
from isg_core.experiments import table5 as t5
from isg_core.train.probe import ProbeConfig
from tests.helpers import counting, same


# --- the file format ---------------------------------------------------------------------------------
def tricky_frames() -> list[pd.DataFrame]:
    a = pd.DataFrame([{"method": "shannon", "x": 1.5, "ok": True, "n": 3},
                      {"method": np.nan, "x": np.nan, "ok": False, "n": -4}])
    a["obj"] = pd.Series(["p", None], dtype=object)
    a["neg0"] = [-0.0, np.float64(1e-310)]
    b = pd.DataFrame(np.arange(6, dtype=np.float32).reshape(3, 2), index=pd.Index(["s1", "s2", "s3"], name="slide"),
                     columns=["g1", "g2"])
    c = pd.DataFrame.from_dict({"x": np.ones(3, np.float32)}, orient="index")  # integer column labels
    return [a, b, c, a.iloc[:0]]


def test_frames_come_back_as_stored(tmp_path):
    frames = tricky_frames()
    path = save_frames(tmp_path / "t.npz", "k" * 64, frames)
    got = load_frames(path, "k" * 64)
    assert len(got) == len(frames)
    for a, b in zip(frames, got):
        same(a, b)
    assert np.signbit(got[0]["neg0"].iloc[0]) and got[0]["obj"].iloc[1] is None and isinstance(got[0].index,
                                                                                                 pd.RangeIndex)


def test_identity_follows_content_and_config():
    a, b = tricky_frames()[:2]
    key = identity({"x": 1}, a, b.to_numpy())
    assert key == identity({"x": 1}, a.copy(), b.to_numpy().copy())
    assert key != identity({"x": 2}, a, b.to_numpy())
    changed = b.to_numpy().copy()
    changed[2, 1] += 1
    assert key != identity({"x": 1}, a, changed)
    assert key != identity({"x": 1}, a, b.to_numpy().reshape(2, 3))  # same bytes, another shape
    assert key != identity({"x": 1}, a.rename(columns={"x": "y"}), b.to_numpy())


def test_unsupported_columns_are_refused_not_mangled(tmp_path):
    df = pd.DataFrame({"c": pd.Categorical(["b", "a"], categories=["b", "a"])})
    with pytest.raises(TypeError, match="category"):
        save_frames(tmp_path / "t.npz", "k", [df])
    assert not (tmp_path / "t.npz").exists()


@pytest.mark.parametrize("damage", ["garbage", "truncated", "other key", "empty"])
def test_damaged_file_is_computed_again_with_a_warning(tmp_path, damage):
    frames = tricky_frames()
    calls = []

    def compute():
        calls.append(1)
        return frames

    cached_frames(tmp_path, "t", "k" * 64, compute)
    path = cache_path(tmp_path, "t", "k" * 64)
    if damage == "garbage":
        path.write_bytes(b"not a cache file at all")
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif damage == "other key":
        save_frames(path, "j" * 64, frames)
    else:
        path.write_bytes(b"")
    with pytest.warns(StaleResultWarning, match="damaged cache file"):
        got = cached_frames(tmp_path, "t", "k" * 64, compute)
    assert len(calls) == 2
    for a, b in zip(frames, got):
        same(a, b)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # written again whole: read without a warning
        cached_frames(tmp_path, "t", "k" * 64, compute)
    assert len(calls) == 2


# --- notebook 09: Table 5's probes -----------------------------------------------------------------
N_PATCHES, DIM = 6, 3


def write_slide(path, rng, keep, shift: float = 0.0) -> None:
    with h5py.File(path, "w") as f:
        f["grid_index"] = np.stack([np.arange(N_PATCHES) // 3, np.arange(N_PATCHES) % 3], 1)
        f["selection/shannon/keep"] = keep
        g = f.create_group("features/descriptor")
        g.attrs["complete"] = True
        g["index"] = np.arange(N_PATCHES)
        g["global"] = rng.normal(size=(N_PATCHES, DIM)).astype(np.float32) + shift
        g["local"] = rng.normal(size=(N_PATCHES, 2, 2, DIM)).astype(np.float32)


@pytest.fixture
def probe_cohort(tmp_path):
    """Three cancer types of six slides in three folds; per slide six patches, five kept, with
    three-number global and 2x2 local features and patches.csv's cell counts."""
    rng = np.random.default_rng(0)
    tiles = tmp_path / "tiles"
    tiles.mkdir()
    rows, patches = [], []
    for ctype in TASK_GENES:
        for i in range(6):
            sid = f"{ctype}-{i}"
            rows.append({"slide_id": sid, "cancer_type": ctype, "patient_id": sid, "fold": i % 3})
            write_slide(tiles / f"{sid}.h5", rng, np.arange(N_PATCHES) != 0)
            for p in range(N_PATCHES):
                patches.append({"slide_id": sid, "row": p // 3, "col": p % 3,
                                **{t: int(rng.integers(0, 20)) for t in t5.PATCH_TARGETS}})
    manifest = pd.DataFrame(rows)
    genes = sorted({g for gs in TASK_GENES.values() for g in gs})
    targets = pd.DataFrame(rng.normal(size=(len(manifest), len(genes))), index=manifest.slide_id, columns=genes)
    return types.SimpleNamespace(root=tmp_path, manifest=manifest, targets=targets, patches=pd.DataFrame(patches))


SPECS = ("descriptor", "descriptor:global")
PCFG = ProbeConfig(hidden=8, epochs=3, patience=2, batch_size=64)


def test_table5_probes_are_stored_and_follow_the_features(probe_cohort, monkeypatch):
    tiles, cache = probe_cohort.root / "tiles", probe_cohort.root / "runs" / "table5"
    fresh_long, fresh_preds = t5.table5(probe_cohort, tiles, SPECS, PCFG, progress=False)
    trained = counting(monkeypatch, t5, "_table5_probes")
    long1, preds1 = t5.table5(probe_cohort, tiles, SPECS, PCFG, progress=False, cache_dir=cache)
    assert len(trained) == 2
    long2, preds2 = t5.table5(probe_cohort, tiles, SPECS, PCFG, progress=False, cache_dir=cache)
    assert len(trained) == 2, "the stored probes were not used"
    for long in (long1, long2):
        same(long, fresh_long)
    for preds in (preds1, preds2):
        assert list(preds) == list(SPECS)
        for spec in SPECS:
            same(preds[spec], fresh_preds[spec])
    assert sorted(p.name.split("-")[1] for p in cache.glob("*.npz")) == ["descriptor", "descriptor_global"]

    # one slide's features extracted again (same file, other numbers): both views of them are redone
    write_slide(tiles / "COAD-2.h5", np.random.default_rng(7), np.arange(N_PATCHES) != 0, shift=3.0)
    long3, _ = t5.table5(probe_cohort, tiles, SPECS, PCFG, progress=False, cache_dir=cache)
    assert len(trained) == 4
    assert not long3.pcc.equals(long1.pcc)

    # another probe config (one field) is another result; the stored ones stay for their config
    t5.table5(probe_cohort, tiles, SPECS[:1], ProbeConfig(hidden=8, epochs=4, patience=2, batch_size=64),
              progress=False, cache_dir=cache)
    assert len(trained) == 5
    long4, _ = t5.table5(probe_cohort, tiles, SPECS, PCFG, progress=False, cache_dir=cache)
    assert len(trained) == 5
    same(long4, long3)
    same(long4, t5.table5(probe_cohort, tiles, SPECS, PCFG, progress=False)[0])  # as trained now, uncached


def test_table5_targets_and_folds_are_part_of_the_identity(probe_cohort, monkeypatch):
    tiles, cache = probe_cohort.root / "tiles", probe_cohort.root / "runs" / "table5"
    t5.table5(probe_cohort, tiles, SPECS[:1], PCFG, progress=False, cache_dir=cache)
    trained = counting(monkeypatch, t5, "_table5_probes")
    probe_cohort.targets.iloc[0, 0] += 1.0
    t5.table5(probe_cohort, tiles, SPECS[:1], PCFG, progress=False, cache_dir=cache)
    assert len(trained) == 1
    probe_cohort.manifest.loc[0, "fold"] = 1
    t5.table5(probe_cohort, tiles, SPECS[:1], PCFG, progress=False, cache_dir=cache)
    assert len(trained) == 2


def test_a_damaged_table5_file_is_trained_again_with_a_warning(probe_cohort, monkeypatch):
    tiles, cache = probe_cohort.root / "tiles", probe_cohort.root / "runs" / "table5"
    long1, preds1 = t5.table5(probe_cohort, tiles, SPECS, PCFG, progress=False, cache_dir=cache)
    trained = counting(monkeypatch, t5, "_table5_probes")
    damaged = next(cache.glob("table5-descriptor_global-*.npz"))
    damaged.write_bytes(damaged.read_bytes()[:100])
    with pytest.warns(StaleResultWarning, match="damaged cache file"):
        long2, preds2 = t5.table5(probe_cohort, tiles, SPECS, PCFG, progress=False, cache_dir=cache)
    assert [c[2] for c in trained] == ["descriptor:global"]  # only the damaged one
    same(long1, long2)
    same(preds1["descriptor:global"], preds2["descriptor:global"])
