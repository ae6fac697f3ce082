"""The selection studies notebook 02 and benchmarks/selection.py share (isg_core.selection.study), on
small constructed input: a three-slide ISG-Sim cohort, constructed patches and a constructed score table."""
from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

from isg_core.config import TilingConfig
from isg_core.data.manifest import read_manifest
from isg_core.data.slides import open_slide
from isg_core.data.tiling import read_global_patch, tile_slide
from isg_core.selection import (
    SELECTORS,
    Threshold,
    compressor_studies,
    compressor_study,
    evaluate,
    evaluate_rules,
    evenly_spaced,
    precision_recall,
    select,
    study,
    truth_patches,
)
from tests.helpers import counting, same

TILING = TilingConfig()


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    from isg_core.simulate import simulate_cohort

    return simulate_cohort(tmp_path_factory.mktemp("study") / "sim", n_slides=3, seed=0, size=768, workers=1,
                           tiling=TILING, progress=False)


def test_evenly_spaced():
    assert evenly_spaced(list(range(10)), 3) == [0, 4, 9]
    assert evenly_spaced(list("abc"), 5) == ["a", "b", "c"]
    assert evenly_spaced([], 3) == []
    assert evenly_spaced(np.arange(5), 1) == [0]


def test_truth_patches_split_every_patch_by_patches_csv(cohort):
    man = read_manifest(cohort / "manifest.csv")
    truth = pd.read_csv(cohort / "patches.csv", dtype={"slide_id": str})
    got = truth_patches(cohort, TILING, every=2)  # slides 0 and 2
    want_tissue, want_textureless, n = [], [], 0
    for sid, path in zip(man.slide_id[::2], man.path[::2]):
        d = truth[truth.slide_id == sid].set_index(["x", "y"])
        with open_slide(path) as s:
            t = tile_slide(s, TILING)
            for i, (x, y) in enumerate(t.coords):
                flag = d.loc[(x, y), "textureless"]
                (want_tissue if flag == 0 else want_textureless).append(read_global_patch(s, t, i))
            n += t.n_patches
    assert len(got.tissue) == len(want_tissue) and len(got.textureless) == len(want_textureless)
    assert len(want_tissue) + len(want_textureless) == n and len(want_tissue) > 0 and len(want_textureless) > 0
    assert all(np.array_equal(a, b) for a, b in zip(got.tissue + got.textureless, want_tissue + want_textureless))
    assert got.megapixels == pytest.approx(n * 256 * 256 / 1e6) and got.read_mp_per_s > 0


def test_truth_patches_per_slide_keeps_at_most_that_many_of_each_class(cohort):
    every = truth_patches(cohort, TILING)
    one = truth_patches(cohort, TILING, per_slide=1)
    assert 0 < len(one.tissue) <= 3 and 0 < len(one.textureless) <= 3
    assert all(any(np.array_equal(p, q) for q in every.tissue) for p in one.tissue)
    assert one.megapixels == every.megapixels  # every patch is read (and timed), kept or not


def test_compressor_studies_stack_compressor_study():
    rng = np.random.default_rng(0)
    tissue = [rng.integers(0, 256, (64, 64, 3), dtype=np.uint8) for _ in range(4)]
    flat = [np.full((64, 64, 3), 200 + k, np.uint8) for k in range(4)]
    sets = {"A": (tissue, flat), "B": (tissue[:2], flat[:2])}
    kw = dict(compressors=["zstdgrad", "deflate"])
    st = compressor_studies(sets, (1, 2), read_mp_per_s={"A": 10.0, "B": 20.0}, **kw)
    assert list(st.data) == ["A", "A", "B", "B"] * 2 and list(st.score_downsample) == [1] * 4 + [2] * 4
    assert list(st.columns) == ["data", *compressor_study(tissue, flat, **kw).columns, "cost_vs_read"]
    for (name, ds), part in st.groupby(["data", "score_downsample"]):
        one = compressor_study(*sets[name], score_downsample=ds, **kw)
        cols = ["tissue_bpp", "textureless_bpp", "auc"]
        assert np.allclose(part[cols], one[cols])
        assert np.allclose(part.cost_vs_read, {"A": 10.0, "B": 20.0}[name] / part.mp_per_s)
    assert "cost_vs_read" not in compressor_studies(sets, (1,), **kw).columns


def test_evaluate_rules_applies_each_rule_slide_by_slide():
    rng = np.random.default_rng(1)
    scored = pd.DataFrame({"slide_id": np.repeat(["s1", "s2", "s3"], 20), "x": np.tile(np.arange(20), 3),
                           "y": 0, "shannon": rng.uniform(0, 1, 60), "ig": rng.uniform(0, 0.05, 60)})
    scored["tissue"] = scored.shannon.to_numpy() > 0.35
    rules = [("shannon", SELECTORS["shannon"].default_threshold, "default"),
             ("shannon", Threshold("mu_sigma", 1), "mu"), ("ig", "otsu", "ig otsu"),
             ("shannon", Threshold("bits", 8e5), "bits")]
    got = evaluate_rules(scored, rules, pixels=256 * 256)
    assert list(got.columns[:3]) == ["method", "threshold", "patches"] and list(got.threshold) == [r[2] for r in rules]
    assert (got.patches == 60).all()
    for row, (method, th, _) in zip(got.itertuples(), rules):
        keep = np.concatenate([select(g[method].to_numpy(), th, pixels=256 * 256)
                               for _, g in scored.groupby("slide_id")])
        want = precision_recall(keep, scored.tissue.to_numpy())
        assert all(getattr(row, k) == pytest.approx(v, nan_ok=True) for k, v in want.items())
    # a fixed threshold at the truth's own cut is exact
    exact = evaluate_rules(scored, [("shannon", Threshold("score", 0.35), "cut")], pixels=256 * 256).iloc[0]
    assert exact.precision == 1 and exact.recall == 1


# --- stored studies (isg_core.data.result_cache) ---------------------------------------------------
def test_scores_are_stored_and_follow_the_slide_files(cohort, tmp_path, monkeypatch):
    work = tmp_path / "sim"
    shutil.copytree(cohort, work)  # this test rewrites a slide
    cache = work / "runs" / "selection"
    methods = ["shannon", "otsu"]
    fresh = evaluate.score_cohort(work, methods, TILING)
    scored = counting(monkeypatch, evaluate, "score_slide_methods")
    first = evaluate.score_cohort(work, methods, TILING, cache_dir=cache)
    assert len(scored) == 3
    second = evaluate.score_cohort(work, methods, TILING, cache_dir=cache)
    assert len(scored) == 3, "the stored scores were not used"
    same(first, fresh)
    same(second, fresh)
    assert len(list(cache.glob("score_cohort-*.npz"))) == 1

    evaluate.score_cohort(work, ["shannon"], TILING, cache_dir=cache)  # another method list: another table
    assert len(scored) == 6

    man = pd.read_csv(work / "manifest.csv")  # paths relative to the cohort
    shutil.copyfile(work / man.path[1], work / man.path[0])  # same path, other content
    again = evaluate.score_cohort(work, methods, TILING, cache_dir=cache)
    assert len(scored) == 6 + 3
    same(again, evaluate.score_cohort(work, methods, TILING))
    assert not again[methods].equals(first[methods])


def patch_sets(seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    smooth = [np.full((32, 32, 3), v, np.uint8) for v in (10, 200, 240)]
    busy = [rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(3)]
    return {"toy": (busy, smooth)}


def test_compressor_study_is_stored_and_follows_the_pixels(tmp_path, monkeypatch):
    runs = counting(monkeypatch, study, "compressor_study")
    kw = dict(compressors=["deflate", "zstdgrad"], cache_dir=tmp_path)
    first = study.compressor_studies(patch_sets(), (2,), {"toy": 50.0}, **kw)
    assert len(runs) == 1
    # the read throughput is a measurement: another value of it is the same study, read back as stored
    second = study.compressor_studies(patch_sets(), (2,), {"toy": 70.0}, **kw)
    assert len(runs) == 1, "the stored study was not used"
    same(first, second)
    assert list(first.columns) == ["data", "compressor", "available", "score_downsample", "tissue_bpp",
                                   "textureless_bpp", "auc", "mp_per_s", "cost_vs_read"]

    sets = patch_sets()
    sets["toy"][1][0][5, 5, 0] = 11  # one pixel of one patch
    study.compressor_studies(sets, (2,), {"toy": 50.0}, **kw)
    assert len(runs) == 2
    study.compressor_studies(patch_sets(), (1,), {"toy": 50.0}, **kw)  # another downsampling
    assert len(runs) == 3
    study.compressor_studies(patch_sets(), (2,), **kw)  # no read throughput: no cost_vs_read column
    assert len(runs) == 4
