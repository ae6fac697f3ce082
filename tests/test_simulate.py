"""ISG-Sim: the simulated cohort generator (isg_core.simulate).

Tiny cohorts (a few slides of 512-768 px) keep the whole file fast; each claim checked here
is one that a broken generator would fail.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from isg_core.config import ALL_GENES, GENE_ENSEMBL, TASK_GENES, TilingConfig
from isg_core.data.samples import SAMPLES
from isg_core.paths import samples_dir

_needed = [samples_dir() / SAMPLES[k].filename for k in ("cmu", "tiatoolbox")]
pytestmark = pytest.mark.skipif(
    not all(p.exists() for p in _needed),
    reason="ISG-Sim builds its texture from data/samples (CMU-1-Small-Region.svs, tiatoolbox-target_image.png); "
    "run `isg fetch-samples` first",
)


def _make(out: Path, n: int, seed: int, size: int, workers: int = 1) -> Path:
    from isg_core.simulate import simulate_cohort

    return simulate_cohort(out, n_slides=n, seed=seed, size=size, workers=workers, tiling=TilingConfig(),
                           progress=False)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Path:
    return _make(tmp_path_factory.mktemp("simA") / "c", 6, 3, 768, workers=2)


@pytest.fixture(scope="module")
def big(tmp_path_factory) -> Path:
    """More slides (small ones) for the cross-slide statistics."""
    return _make(tmp_path_factory.mktemp("simB") / "c", 30, 5, 768, workers=2)


def _digest(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def test_slides_open_with_openslide(cohort):
    from isg_core.data.slides import open_slide

    man = pd.read_csv(cohort / "manifest.csv")
    assert len(man) == 6 and set(man["cancer_type"]) == {"LIHC", "COAD", "PRAD"}
    for rel in man["path"]:
        with open_slide(cohort / rel) as s:
            assert s.info.backend == "openslide:generic-tiff"
            assert s.mpp == pytest.approx(0.5, rel=1e-3) and s.info.mpp_source == "metadata"
            w, h = s.dimensions
            assert w == 768 and 768 <= h <= 768 * 1.15 + 1
            rgb = s.read_region(0, 0, w, h)
            # tissue on glass: some near-white glass and some stained tissue, not noise
            white = (rgb.min(axis=2) > 200).mean()
            assert 0.1 < white < 0.9


def test_same_seed_identical_other_seed_different(cohort, tmp_path):
    again = _make(tmp_path / "again", 6, 3, 768, workers=1)  # also: workers must not matter
    for name in ("expression.tsv", "patches.csv", "truth.csv", "manifest.csv", "labels.csv"):
        assert _digest(cohort / name) == _digest(again / name), name
    for f in sorted((cohort / "slides").glob("*.tiff")):
        assert _digest(f) == _digest(again / "slides" / f.name), f.name
    other = _make(tmp_path / "other", 6, 4, 768)
    assert _digest(cohort / "expression.tsv") != _digest(other / "expression.tsv")
    a = sorted((cohort / "slides").glob("*.tiff"))[0]
    assert _digest(a) != _digest(other / "slides" / a.name)


def test_skip_if_complete(cohort):
    before = (cohort / "cohort.json").stat().st_mtime_ns
    _make(cohort, 6, 3, 768)
    assert (cohort / "cohort.json").stat().st_mtime_ns == before


def test_manifest_folds_by_patient(big):
    from isg_core.data.manifest import read_manifest

    man = read_manifest(big / "manifest.csv")
    assert man.groupby("patient_id")["fold"].nunique().max() == 1
    assert (man["slide_id"].str.slice(0, 16) == man["patient_id"]).all()
    assert man["fold"].between(0, 4).all()
    assert man["cancer_type"].value_counts().to_dict() == {"LIHC": 10, "COAD": 10, "PRAD": 10}


def test_expression_truth_and_noise_ceiling(big):
    expr = pd.read_csv(big / "expression.tsv", sep="\t", index_col="slide_id")
    assert list(expr.columns) == [GENE_ENSEMBL[g] for g in ALL_GENES]
    assert not expr.isna().any().any() and (expr.to_numpy() >= 0).all()
    truth = pd.read_csv(big / "truth.csv", index_col="slide_id")
    assert list(truth.columns) == list(ALL_GENES) and list(truth.index) == list(expr.index)
    man = pd.read_csv(big / "manifest.csv").set_index("slide_id").loc[expr.index]
    nc = pd.read_csv(big / "noise_ceiling.csv")
    assert len(nc) == sum(len(v) for v in TASK_GENES.values())
    for _, r in nc.iterrows():
        m = (man["cancer_type"] == r["cancer_type"]).to_numpy()
        y = np.log10(1 + expr.loc[m, GENE_ENSEMBL[r["gene"]]].to_numpy())
        pcc = np.corrcoef(truth.loc[m, r["gene"]].to_numpy(), y)[0, 1]
        assert pcc == pytest.approx(r["pcc"], abs=1e-6)
        assert 0.5 < pcc < 0.995  # noisy, but with real signal
    meta = json.loads((big / "cohort.json").read_text())
    assert meta["simulated"] is True and meta["name"] == "ISG-Sim (simulated cohort)"
    labels = pd.read_csv(big / "labels.csv")
    assert set(labels["msi"]) <= {0, 1} and len(labels) == 30


def test_patch_table_grid_and_artefacts(big):
    man = pd.read_csv(big / "manifest.csv")
    patches = pd.read_csv(big / "patches.csv")
    p = TilingConfig().global_size
    from isg_core.data.slides import open_slide

    for _, r in man.iterrows():
        with open_slide(big / r["path"]) as s:
            w, h = s.dimensions
        sub = patches[patches["slide_id"] == r["slide_id"]]
        assert len(sub) == (w // p) * (h // p)
        assert list(sub["x"]) == [c * p for c in sub["col"]] and list(sub["y"]) == [rr * p for rr in sub["row"]]
    empty = patches[patches["artefact"].isin(["glass", "solid", "specks"])]
    tumour = patches[(patches["tissue_class"] == "tumour") & (patches["artefact"] == "none")]
    assert len(empty) and len(tumour)
    assert empty["n_cells"].mean() < 0.5 * tumour["n_cells"].mean()
    assert 0.1 < patches["textureless"].mean() < 0.8


def test_tcell_gene_follows_intratumoural_lymphocytes(big):
    from scipy.stats import spearmanr

    patches = pd.read_csv(big / "patches.csv")
    truth = pd.read_csv(big / "truth.csv", index_col="slide_id")
    per = patches.groupby("slide_id")[["n_lymphocyte_tumour", "n_lymphocyte_other", "n_cells"]].sum().loc[truth.index]
    frac_til = per["n_lymphocyte_tumour"] / per["n_cells"]
    rho = spearmanr(frac_til, truth["CD3D"]).statistic
    assert rho > 0.8, rho
    # context modulation: fit 10**((truth - a)/b) - eps ~ w_t * til + w_o * other (fractions);
    # intratumoural lymphocytes must weigh clearly more than the others
    meta = json.loads((big / "cohort.json").read_text())["gene_model"]["genes"]["CD3D"]
    score = np.exp((truth["CD3D"] - meta["a"]) / meta["b"]) - meta["eps"]
    X = np.column_stack([per["n_lymphocyte_tumour"], per["n_lymphocyte_other"]]) / per["n_cells"].to_numpy()[:, None]
    (w_t, w_o), *_ = np.linalg.lstsq(X, score.to_numpy(), rcond=None)
    assert w_t > 0.7 and w_o < 0.5 * w_t, (w_t, w_o)


def test_patch_truth_arbitrary_grid(cohort):
    from isg_core.simulate import patch_truth

    patches = pd.read_csv(cohort / "patches.csv")
    sid = patches["slide_id"].iloc[0]
    sub = patches[patches["slide_id"] == sid].reset_index(drop=True)
    # the default grid, recomputed through the public function, matches patches.csv
    again = patch_truth(cohort, sid, list(zip(sub["x"], sub["y"])), 256)
    for col in ("tissue_fraction", "n_lymphocyte", "n_tumour", "artefact", "tissue_class"):
        assert list(again[col]) == list(sub[col]), col
    # a finer grid partitions the same cells
    fine = [(x, y) for y in range(0, 512, 128) for x in range(0, 512, 128)]
    f = patch_truth(cohort, sid, fine, 128)
    coarse = sub[(sub["x"] < 512) & (sub["y"] < 512)]
    assert f["n_cells"].sum() == coarse["n_cells"].sum()


# --- the wsi layout (issue 16 item 3) ----------------------------------------------------------------
def test_wsi_sections_cover_the_drawn_fraction_and_quick_has_100_tissue_patches():
    """The 'wsi' layout's tissue covers about the drawn fraction of the canvas (mostly glass), and at
    the quick profile's canvas a slide holds at least 100 global patches of tissue on average (counted
    as canvas area x covered fraction / p^2 over 40 seeds: the layout alone, no rendering)."""
    import math

    from isg_core.config import get_profile
    from isg_core.simulate import tissue as ts
    from isg_core.simulate.cohort import WSI_ASPECT

    prof = get_profile("quick")
    assert prof.sim.layout == "wsi"
    w = prof.sim.size
    h = int(w * sum(WSI_ASPECT) / 2)  # the mean canvas height
    shape = (math.ceil(h / ts.DS), math.ceil(w / ts.DS))
    fr = np.array([ts.tissue_sections(np.random.default_rng(s), shape).mean() for s in range(40)])
    lo, hi = ts.WSI_TISSUE_FRACTION
    assert lo - 0.1 < fr.min() and fr.max() < hi + 0.1  # edge noise and clipping move it a little
    assert abs(fr.mean() - (lo + hi) / 2) < 0.06
    assert (1 - fr).min() > 0.4  # mostly glass, as a TCGA slide
    tissue_patches = fr.mean() * w * h / prof.tiling.global_size ** 2
    assert tissue_patches >= 100
    # several sections happen (1-3), and they are separate pieces
    from scipy import ndimage
    pieces = [ndimage.label(ts.tissue_sections(np.random.default_rng(s), shape))[1] for s in range(20)]
    assert max(pieces) >= 2 and min(pieces) >= 1


def test_texture_outside_where_is_skipped_and_inside_unchanged():
    """assemble_texture(where=...) skips crops that miss ``where`` but draws the same random numbers,
    so the texture inside ``where`` is exactly the full texture there; hed_to_rgb_sparse converts
    exactly as hed_to_rgb (zero stain is white)."""
    from isg_core.simulate import textures as tx

    h, w, ds = 900, 1100, 8
    where = np.zeros((h // ds + 1, w // ds + 1), bool)
    where[20:60, 30:90] = True
    full = tx.assemble_texture(np.random.default_rng(4), h, w)
    part = tx.assemble_texture(np.random.default_rng(4), h, w, where=where, ds=ds)
    inside = np.kron(where, np.ones((ds, ds), bool))[:h, :w]
    np.testing.assert_array_equal(part[inside], full[inside])
    assert np.count_nonzero(part[~inside].any(-1)) < np.count_nonzero(full[~inside].any(-1))
    hed = full * inside[..., None]
    np.testing.assert_array_equal(tx.hed_to_rgb_sparse(hed, block=128), tx.hed_to_rgb(hed))


def test_wsi_cohort_slides_are_mostly_glass(tmp_path):
    """A small 'wsi' cohort: its slides are size wide and size x U(WSI_ASPECT) high, most of their
    global patches are glass, the layout is recorded, and a 'section' cohort's parameters are not
    changed by the field (its cohorts made before it stay complete)."""
    from isg_core.simulate import simulate_cohort
    from isg_core.simulate.cohort import WSI_ASPECT, _params

    out = simulate_cohort(tmp_path / "w", n_slides=3, seed=2, size=1536, workers=1, tiling=TilingConfig(),
                          progress=False, layout="wsi")
    meta = json.loads((out / "cohort.json").read_text())
    assert meta["parameters"]["layout"] == "wsi"
    assert "layout" not in _params(3, 2, 1536, TilingConfig())
    patches = pd.read_csv(out / "patches.csv")
    assert (patches.tissue_fraction < 0.05).mean() > 0.3
    man = pd.read_csv(out / "manifest.csv")
    from isg_core.data.slides import open_slide
    for rel in man["path"]:
        with open_slide(out / rel) as s:
            w, h = s.dimensions
            assert w == 1536 and WSI_ASPECT[0] * 1536 - 1 <= h <= WSI_ASPECT[1] * 1536 + 1
    with pytest.raises(Exception, match="layout"):
        simulate_cohort(tmp_path / "x", n_slides=3, seed=2, size=512, workers=1, tiling=TilingConfig(),
                        progress=False, layout="round")
