"""Oracle features (isg_core.features.oracle): the simulator's true per-patch content as f_i and R_i.

A constructed tiny cohort (a patches.csv and a maps/ file in the simulator's format, with a handful
of cells at known positions) checks the counts against hand-computed ones; the smoke cohort checks
totals and that the output lines up with load_experiment_data's.
"""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from isg_core.config import TilingConfig
from isg_core.data.tiling import Tiling, write_tiling_h5
from isg_core.errors import IsgError
from isg_core.features.oracle import (
    COUNT_COLUMNS,
    N_COUNTS,
    ORACLE_CHANNELS,
    ORACLE_DIM,
    decode_counts,
    encode_counts,
    load_oracle_data,
    oracle_slide_counts,
    oracle_slide_features,
    read_patch_truth,
    slide_total_counts,
)
from isg_core.simulate import cells as cl
from isg_core.simulate import tissue as ts
from isg_core.simulate.cohort import PATCH_CELL_COLUMNS, patch_table, write_truth_map

SID = "TINY-0001-DX1"
CFG = TilingConfig(mpp=0.5, global_size=64, local_size=16)  # g = 4, p0 = 64 level-0 px at 0.5 mpp
W, H = 160, 130  # a 2 x 2 grid of global patches and a margin past it on the right and bottom
# (x, y, type, context) and where each cell must land: (patch, local row, local col), None = nowhere
CELLS = [
    (5, 5, cl.LYM, ts.TUMOUR, (0, 0, 0)),
    (20, 5, cl.LYM, ts.STROMA, (0, 0, 1)),
    (16, 16, cl.TUM, ts.TUMOUR, (0, 1, 1)),  # on a local edge: belongs to the patch it starts
    (15, 47, cl.MIT, ts.TUMOUR, (0, 2, 0)),
    (63, 63, cl.DEBRIS, ts.NECROSIS, (0, 3, 3)),  # last pixel of patch 0; debris is no n_cells
    (64, 0, cl.STR, ts.STROMA, (1, 0, 0)),  # first pixel of patch 1
    (127, 10, cl.BCELL, ts.LYMPHOID, (1, 0, 3)),
    (100, 100, cl.BASAL, ts.BENIGN, (3, 2, 2)),
    (101, 110, cl.LUMINAL, ts.BENIGN, (3, 2, 2)),
    (130, 10, cl.LYM, ts.TUMOUR, None),  # right margin: in no whole patch
    (10, 128, cl.TUM, ts.TUMOUR, None),  # bottom margin
]
COORDS = np.array([[0, 0], [64, 0], [0, 64], [64, 64]], np.int64)
GRID = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.int64)


def counts_of(**n: int) -> np.ndarray:
    """A count vector in COUNT_COLUMNS order from ``name=count`` (``lymphocyte=2``)."""
    v = np.zeros(N_COUNTS, np.int64)
    for k, c in n.items():
        v[COUNT_COLUMNS.index(f"n_{k}")] = c
    return v


# hand-computed: patch 0 has 2 lymphocytes (1 in tumour), a tumour cell, a mitosis and debris
EXPECTED_F = np.stack([
    counts_of(lymphocyte=2, tumour=1, mitosis=1, debris=1, lymphocyte_tumour=1, lymphocyte_other=1, cells=4),
    counts_of(stroma=1, bcell=1, cells=2),
    counts_of(),
    counts_of(basal=1, luminal=1, cells=2),
])


def tiny_tiling(coords: np.ndarray = COORDS, grid: np.ndarray = GRID, cfg: TilingConfig = CFG) -> Tiling:
    p0 = cfg.global_size * cfg.mpp / 0.5
    return Tiling(slide_id=SID, slide_path=f"/nowhere/{SID}.tiff", config=cfg, slide_mpp=0.5, slide_size=(W, H),
                  level=0, level_downsample=1.0, patch_size_level0=p0, coords=coords, grid_index=grid)


def write_tiny_cohort(root: Path) -> Path:
    """maps/<SID>.npz and patches.csv as ``render_slide`` and ``_write_tables`` write them."""
    (root / "maps").mkdir(parents=True)
    x, y, t, c = (np.array([cell[k] for cell in CELLS]) for k in range(4))
    cells = {"x": x.astype(np.int32), "y": y.astype(np.int32), "type": t.astype(np.uint8),
             "context": c.astype(np.uint8)}
    cmap = np.full((-(-H // ts.DS), -(-W // ts.DS)), ts.STROMA, np.uint8)
    amap = np.zeros_like(cmap)
    write_truth_map(root / "maps" / f"{SID}.npz", cmap, amap, cells, W, H)  # the simulator's own writers
    patch_table(SID, cmap, amap, cells, W, H, 64).to_csv(root / "patches.csv", index=False)
    return root


@pytest.fixture
def tiny(tmp_path) -> Path:
    return write_tiny_cohort(tmp_path / "cohort")


def test_layout_names_every_channel():
    assert ORACLE_DIM == len(ORACLE_CHANNELS) == 20 and len(set(ORACLE_CHANNELS)) == ORACLE_DIM
    assert set(PATCH_CELL_COLUMNS) <= set(COUNT_COLUMNS) and COUNT_COLUMNS[-1] == "n_cells"
    assert ORACLE_CHANNELS[:N_COUNTS] == tuple(f"log1p_{c}" for c in COUNT_COLUMNS)
    assert all(c.startswith("frac_") for c in ORACLE_CHANNELS[N_COUNTS:])


def test_constructed_patch_table_has_the_hand_counts(tiny):
    # the simulator's own summary of the constructed cells agrees with the hand count (the fixture is right)
    df = read_patch_truth(tiny)
    assert df[list(COUNT_COLUMNS)].to_numpy().tolist() == EXPECTED_F.tolist()


def test_counts_match_hand_computed(tiny):
    F, C, pos = oracle_slide_counts(tiny, SID, tiny_tiling())
    assert F.tolist() == EXPECTED_F.tolist()
    expected_C = np.zeros((4, 4, 4, N_COUNTS), np.int64)
    for x, y, t, ctx, where in CELLS:
        if where is None:
            continue
        name = cl.CELL_TYPES[t]
        v = counts_of(**{name: 1})
        if t == cl.LYM:
            v += counts_of(**{"lymphocyte_tumour" if ctx == ts.TUMOUR else "lymphocyte_other": 1})
        if t != cl.DEBRIS:
            v += counts_of(cells=1)
        expected_C[where] += v
    assert C.tolist() == expected_C.tolist()
    assert (C.sum(axis=(1, 2)) == F).all()  # consistency: the local grid adds up to the global patch
    assert pos.tolist() == GRID.tolist()


def test_features_encode_the_counts(tiny):
    f, R, pos = oracle_slide_features(tiny, SID, tiny_tiling())
    assert f.shape == (4, ORACLE_DIM) and f.dtype == np.float32
    assert R.shape == (4, 4, 4, ORACLE_DIM) and R.dtype == np.float16
    assert pos.dtype == np.int64 and pos.tolist() == GRID.tolist()
    ch = ORACLE_CHANNELS.index
    assert f[0, ch("log1p_n_lymphocyte")] == pytest.approx(np.log1p(2))
    assert f[0, ch("log1p_n_cells")] == pytest.approx(np.log1p(4))
    assert f[0, ch("frac_lymphocyte_tumour")] == pytest.approx(0.25)
    assert f[0, ch("frac_tumour")] == pytest.approx(0.25)
    assert f[1, ch("frac_bcell")] == pytest.approx(0.5)
    assert (f[2] == 0).all() and (R[2] == 0).all()  # an empty patch: no NaN fractions
    assert R[3, 2, 2, ch("frac_basal")] == pytest.approx(0.5)
    assert R[0, 3, 3, ch("log1p_n_debris")] == pytest.approx(np.log1p(1), rel=1e-3)
    assert R[0, 3, 3, ch("log1p_n_cells")] == 0
    # consistency through the encoding too: decoded local counts add up to decoded global ones
    assert (decode_counts(R).sum(axis=(1, 2)) == decode_counts(f)).all()
    assert (decode_counts(f) == EXPECTED_F).all()
    assert np.allclose(encode_counts(EXPECTED_F), f)


def test_rows_follow_the_tiling_order_not_the_table(tiny):
    order = np.array([3, 1, 0, 2])
    f, R, pos = oracle_slide_features(tiny, SID, tiny_tiling(COORDS[order], GRID[order]))
    assert pos.tolist() == GRID[order].tolist()
    assert (decode_counts(f) == EXPECTED_F[order]).all()
    # a tiling listing only some patches of its grid (the missing row's corner is still known)
    f2, R2, pos2 = oracle_slide_features(tiny, SID, tiny_tiling(COORDS[[3]], GRID[[3]]))
    assert (decode_counts(f2) == EXPECTED_F[[3]]).all() and (decode_counts(R2).sum((1, 2)) == EXPECTED_F[[3]]).all()


def test_load_oracle_data_applies_the_keep_mask(tiny, tmp_path):
    tiles = tmp_path / "tiles"
    tiles.mkdir()
    h5 = write_tiling_h5(tiny_tiling(), tiles / f"{SID}.h5")
    with h5py.File(h5, "a") as fh:
        fh["selection/x/keep"] = np.array([False, True, False, True])
        fh["selection/none/keep"] = np.zeros(4, bool)
        fh["selection/shannon/scores"] = np.array([0.1, 0.2, 0.9, 0.3])
    every = load_oracle_data(tiny, tiles, [SID])
    assert every.slide_ids == [SID] and (decode_counts(every.f[0]) == EXPECTED_F).all()
    kept = load_oracle_data(tiny, tiles, [SID], lambda fh: fh["selection/x/keep"][:])
    assert kept.pos[0].tolist() == [[0, 1], [1, 1]] and (decode_counts(kept.f[0]) == EXPECTED_F[[1, 3]]).all()
    assert (decode_counts(kept.R[0]).sum((1, 2)) == EXPECTED_F[[1, 3]]).all()
    # a slide left with nothing keeps its highest Shannon score, as load_experiment_data does
    none = load_oracle_data(tiny, tiles, [SID], lambda fh: fh["selection/none/keep"][:])
    assert none.pos[0].tolist() == [[1, 0]]
    flat = load_oracle_data(tiny, tiles, [SID], local=False)
    assert flat.R[0].shape == (4, 1, 1, ORACLE_DIM) and flat.R[0].dtype == np.float16 and not flat.R[0].any()
    for d in (every, kept, none, flat):
        assert d.f[0].dtype == np.float32 and d.R[0].dtype == np.float16 and d.pos[0].dtype == np.int64


def test_slide_totals_of_the_constructed_cohort(tiny):
    tot = slide_total_counts(tiny)
    assert list(tot.columns) == list(COUNT_COLUMNS) and tot.index.tolist() == [SID]
    assert tot.loc[SID].tolist() == EXPECTED_F.sum(0).tolist()
    whole = slide_total_counts(tiny, whole_slide=True)  # the two margin cells too
    assert whole.loc[SID].tolist() == (EXPECTED_F.sum(0) + counts_of(lymphocyte=1, lymphocyte_tumour=1, tumour=1,
                                                                     cells=2)).tolist()


# --- errors: one line, naming the file ------------------------------------------------------------------
def _one_line_naming(exc: pytest.ExceptionInfo, path: Path) -> None:
    msg = str(exc.value)
    assert "\n" not in msg and str(path) in msg, msg


def test_missing_files_are_named(tiny):
    (tiny / "maps" / f"{SID}.npz").rename(tiny / "elsewhere.npz")
    with pytest.raises(IsgError) as e:
        oracle_slide_features(tiny, SID, tiny_tiling())
    _one_line_naming(e, tiny / "maps" / f"{SID}.npz")
    (tiny / "patches.csv").unlink()
    for call in (lambda: oracle_slide_features(tiny, SID, tiny_tiling()), lambda: slide_total_counts(tiny)):
        with pytest.raises(IsgError) as e:
            call()
        _one_line_naming(e, tiny / "patches.csv")


@pytest.mark.parametrize("damage", ["garbage", "no_cell_type", "ragged", "bad_code"])
def test_malformed_map_is_named(tiny, damage):
    npz = tiny / "maps" / f"{SID}.npz"
    if damage == "garbage":
        npz.write_bytes(b"not a zip file at all")
    else:
        with np.load(npz) as z:
            arr = dict(z)
        if damage == "no_cell_type":
            del arr["cell_type"]
        elif damage == "ragged":
            arr["cell_x"] = arr["cell_x"][:-1]
        else:
            arr["cell_type"][0] = 99
        np.savez_compressed(npz, **arr)
    with pytest.raises(IsgError) as e:
        oracle_slide_features(tiny, SID, tiny_tiling())
    _one_line_naming(e, npz)


@pytest.mark.parametrize("damage", ["no_column", "bad_value", "wrong_count", "other_slide"])
def test_malformed_patch_table_is_named(tiny, damage):
    csv = tiny / "patches.csv"
    df = pd.read_csv(csv)
    if damage == "no_column":
        df = df.drop(columns=["n_basal"])
    elif damage == "bad_value":
        df["n_tumour"] = df["n_tumour"].astype(object)
        df.loc[1, "n_tumour"] = "many"
    elif damage == "wrong_count":
        df.loc[0, "n_tumour"] += 1  # tables and maps of different runs
    else:
        df["slide_id"] = "SOMEONE-ELSE"
    df.to_csv(csv, index=False)
    with pytest.raises(IsgError) as e:
        oracle_slide_features(tiny, SID, tiny_tiling())
    _one_line_naming(e, csv)


def test_another_patch_size_is_refused(tiny):
    # a 32 px tiling of the same slide: its corners are not all rows of the 64 px patch table
    cfg = TilingConfig(mpp=0.5, global_size=32, local_size=16)
    rr, cc = np.meshgrid(np.arange(H // 32), np.arange(W // 32), indexing="ij")
    grid = np.stack([rr.ravel(), cc.ravel()], 1).astype(np.int64)
    with pytest.raises(IsgError) as e:
        oracle_slide_features(tiny, SID, tiny_tiling(grid[:, ::-1] * 32, grid, cfg))
    _one_line_naming(e, tiny / "patches.csv")
    # only the corners it shares with the table: they match, the counts do not
    shared = ((grid % 2 == 0) & (grid < 4)).all(1)
    with pytest.raises(IsgError, match="disagree") as e:
        oracle_slide_features(tiny, SID, tiny_tiling(grid[shared][:, ::-1] * 32, grid[shared] // 2, cfg))
    _one_line_naming(e, tiny / "patches.csv")


# --- the smoke cohort ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def smoke():
    from tests.helpers import smoke_cohort

    root = smoke_cohort()
    tiles = root / "tiles"
    ids = pd.read_csv(root / "manifest.csv")["slide_id"].tolist()
    if not all((tiles / f"{s}.h5").exists() for s in ids):
        pytest.skip("smoke cohort not prepared: run `isg prepare --profile smoke`")
    return root, tiles, ids


def test_smoke_totals_agree_three_ways(smoke):
    root, tiles, ids = smoke
    tot = slide_total_counts(root)
    table = pd.read_csv(root / "patches.csv").groupby("slide_id")[list(COUNT_COLUMNS)].sum()
    data = load_oracle_data(root, tiles, ids)
    assert sorted(tot.index) == sorted(ids) == sorted(data.slide_ids)
    for sid, f, R in zip(data.slide_ids, data.f, data.R):
        from_f = decode_counts(f).sum(0)
        assert from_f.tolist() == tot.loc[sid].tolist() == table.loc[sid].tolist()
        assert (decode_counts(R).sum((1, 2)) == decode_counts(f)).all()
        assert from_f[COUNT_COLUMNS.index("n_cells")] > 0
    whole = slide_total_counts(root, whole_slide=True)
    assert (whole >= tot).all().all()  # the margin past the last whole patch only adds cells


def test_smoke_matches_load_experiment_data(smoke):
    from isg_core.experiments.inputs import keep_mask, load_experiment_data
    from isg_core.experiments.specs import Experiment

    root, tiles, ids = smoke
    exp = Experiment("oracle-check", features="fe", selection="shannon")
    try:
        learned = load_experiment_data(tiles, ids, exp, 256)
    except IsgError as e:
        pytest.skip(f"smoke features not extracted ({e})")
    oracle = load_oracle_data(root, tiles, ids, lambda fh: keep_mask(fh, exp, 256))
    assert oracle.slide_ids == learned.slide_ids
    for k in range(len(ids)):
        with h5py.File(tiles / f"{ids[k]}.h5", "r") as fh:
            keep = keep_mask(fh, exp, 256)
            covered = keep[fh["features/fe/index"][:]].sum() == keep.sum()  # features of every kept patch
        assert oracle.f[k].dtype == learned.f[k].dtype == np.float32
        assert oracle.R[k].dtype == learned.R[k].dtype == np.float16
        assert oracle.pos[k].dtype == learned.pos[k].dtype == np.int64
        assert oracle.f[k].ndim == 2 and oracle.f[k].shape[1] == ORACLE_DIM
        assert oracle.R[k].shape[1:3] == learned.R[k].shape[1:3]  # the same g x g local grid
        assert oracle.R[k].shape[0] == oracle.f[k].shape[0] == len(oracle.pos[k])
        if covered:  # the same selection over the same patch order: the same patches, in order
            assert oracle.pos[k].tolist() == learned.pos[k].tolist()
        else:  # features of only some patches: those are among the oracle's (which covers them all)
            assert {tuple(p) for p in learned.pos[k]} <= {tuple(p) for p in oracle.pos[k]}


def test_experiments_read_oracle_features_through_the_same_door(smoke):
    """`isg cv --features oracle`: load_experiment_data hands the slide models the oracle's counts of
    the patches the experiment keeps (HE2RNA's supertiles included), and refuses a cohort without truth."""
    from isg_core.experiments.inputs import keep_mask, load_experiment_data
    from isg_core.experiments.specs import Experiment

    root, tiles, ids = smoke
    exp = Experiment("oracle", "isg", features="oracle", selection="shannon")
    got = load_experiment_data(tiles, ids, exp, 256, cohort_root=root)
    want = load_oracle_data(root, tiles, ids, lambda fh: keep_mask(fh, exp, 256))
    for a, b in zip(got.f + got.R, want.f + want.R):
        assert np.array_equal(a, b)
    he = Experiment("he2rna oracle", "he2rna", features="oracle", selection="shannon", supertiles=2)
    st = load_experiment_data(tiles, ids, he, 256, cohort_root=root)
    assert all(len(f) <= 2 and f.shape[1] == ORACLE_DIM and R.shape[1:3] == (1, 1) for f, R in zip(st.f, st.R))
    with pytest.raises(IsgError, match="oracle features need"):
        load_experiment_data(tiles, ids, exp, 256)


# --- the visible oracle (issue 32) ---------------------------------------------------------------------
def test_the_visible_oracle_merges_t_and_b_cells_and_drops_the_context():
    from isg_core.features.oracle import VISIBLE_CHANNELS, VISIBLE_DIM, encode_visible

    assert VISIBLE_DIM == len(VISIBLE_CHANNELS) == 16 and VISIBLE_DIM % 4 == 0  # the ViTs' 4 heads
    c = counts_of(lymphocyte=3, bcell=2, tumour=4, lymphocyte_tumour=1, lymphocyte_other=2, debris=5, cells=9)
    v = encode_visible(c)
    named = dict(zip(VISIBLE_CHANNELS, v))
    assert named["log1p_n_lymphocyte_like"] == pytest.approx(np.log1p(5))
    assert named["log1p_n_tumour"] == pytest.approx(np.log1p(4))
    assert named["log1p_n_debris"] == pytest.approx(np.log1p(5))
    assert named["log1p_n_cells"] == pytest.approx(np.log1p(9))
    assert named["log1p_n_nuclei"] == pytest.approx(np.log1p(14))
    assert named["frac_debris_of_nuclei"] == pytest.approx(5 / 14)
    assert named["frac_lymphocyte_like"] == pytest.approx(5 / 9) and named["frac_tumour"] == pytest.approx(4 / 9)
    assert not any("context" in k or "bcell" in k or "lymphocyte_tumour" in k for k in VISIBLE_CHANNELS)
    # T and B cells, and a lymphocyte's context, cannot be told apart: swapping them changes nothing
    swapped = counts_of(lymphocyte=1, bcell=4, tumour=4, lymphocyte_tumour=0, lymphocyte_other=1, debris=5, cells=9)
    np.testing.assert_array_equal(encode_visible(swapped), v)
    assert not np.array_equal(encode_counts(swapped), encode_counts(c))  # the full oracle tells them apart
    # an empty patch: counts 0, fractions 0 (not NaN); batches keep their leading shape
    assert (encode_visible(np.zeros((2, 3, N_COUNTS))) == 0).all()
    assert encode_visible(np.zeros((2, 3, N_COUNTS))).shape == (2, 3, VISIBLE_DIM)


def test_experiments_read_the_visible_oracle_by_its_feature_set_name(smoke):
    from isg_core.experiments.inputs import keep_mask, load_experiment_data
    from isg_core.experiments.specs import Experiment
    from isg_core.features.oracle import VISIBLE_DIM, encode_visible

    root, tiles, ids = smoke
    exp = Experiment("visible oracle", "isg", features="oracle-visible", selection="shannon")
    got = load_experiment_data(tiles, ids, exp, 256, cohort_root=root)
    full = load_oracle_data(root, tiles, ids, lambda fh: keep_mask(fh, exp, 256))
    for f, R, ff, fR in zip(got.f, got.R, full.f, full.R):
        assert f.shape[1] == R.shape[-1] == VISIBLE_DIM
        np.testing.assert_allclose(f, encode_visible(decode_counts(ff)), rtol=1e-6)
        np.testing.assert_allclose(R.astype(np.float32), encode_visible(decode_counts(fR)).astype(np.float16),
                                   rtol=1e-3)
