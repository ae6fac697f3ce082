"""Patch selection: Shannon selector, thresholds, baselines, HDF5 storage, CLI entry point."""
from __future__ import annotations

import h5py
import numpy as np
import pandas as pd
import pytest

from isg_core.config import TilingConfig
from isg_core.data.slides import open_slide
from isg_core.data.tiling import read_global_patch, read_tiling_h5, tile_slide, tile_to_h5
from isg_core.errors import IsgError
from isg_core.selection import (
    COMPRESSORS,
    SELECTORS,
    ShannonSelector,
    Threshold,
    add_selection_to_h5,
    auc,
    available_selectors,
    check_lossless,
    compressor_study,
    get_compressor,
    get_selector,
    parse_threshold,
    precision_recall,
    read_selection,
    resolve_threshold,
    run_select,
    saturation_fraction,
    saturation_labels,
    score_slide,
    select,
)
from isg_core.selection.compressors import grad_residual

RNG = np.random.default_rng(0)


def noise_patch(amplitude: float, size: int = 256, seed: int = 1) -> np.ndarray:
    r = np.random.default_rng(seed).normal(0, 1, (size, size, 3))
    return np.clip(200 + amplitude * r, 0, 255).astype(np.uint8)


def speck_patch(n: int = 40, size: int = 256, seed: int = 2) -> np.ndarray:
    """Blank glass with a few small dark dust specks (a Fig. 2 textureless patch)."""
    rng = np.random.default_rng(seed)
    p = np.full((size, size, 3), (236, 234, 238), np.uint8)
    for _ in range(n):
        y, x = rng.integers(0, size - 4, 2)
        s = rng.integers(1, 4)
        p[y:y + s, x:x + s] = rng.integers(30, 90, 3)
    return p


@pytest.fixture(scope="module")
def cmu_tiles(cmu_path):
    """All default-config global patches of the CMU slide, with labels by a rule independent
    of every score: fraction of pixels with HSV saturation > 0.1 is >= 0.5 (tissue, 1) or
    < 0.02 (blank glass, 0); the rest (tissue edges) are ambiguous (-1) and dropped."""
    with open_slide(cmu_path) as s:
        t = tile_slide(s, TilingConfig())
        P = np.stack([read_global_patch(s, t, i) for i in range(t.n_patches)])
    lab = saturation_labels(P)
    assert (lab == 1).sum() >= 10 and (lab == 0).sum() >= 10
    return P, lab


def test_saturation_labels_on_constructed_patches():
    grey = np.full((8, 8, 3), 200, np.uint8)           # glass: no pixel saturated
    pink = np.zeros((8, 8, 3), np.uint8) + np.array([220, 120, 180], np.uint8)  # stained: every pixel
    edge = grey.copy()
    edge[:2] = pink[:2]                                 # a quarter saturated: a tissue edge
    P = np.stack([grey, pink, edge])
    np.testing.assert_allclose(saturation_fraction(P), [0.0, 1.0, 0.25])
    assert saturation_labels(P).tolist() == [0, 1, -1]
    with pytest.raises(ValueError, match="N, H, W, 3"):
        saturation_fraction(grey)


# --- compressors ----------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(COMPRESSORS))
def test_compressors_lossless_and_ordered(name):
    assert check_lossless(name), f"{name} unavailable or not lossless"
    f = get_compressor(name)
    flat = np.full((64, 64, 3), 128, np.uint8)
    rnd = RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    bf, br = f(flat), f(rnd)
    assert isinstance(bf, float) and bf > 0
    assert br > 20 * bf
    assert br >= 0.95 * 24 * 64 * 64  # random data does not compress


def test_grad_residual_inverts():
    x = RNG.integers(0, 256, (33, 17, 3), dtype=np.uint8)
    r = grad_residual(x)
    back = np.cumsum(np.cumsum(r.astype(np.int64), axis=1), axis=0) % 256
    assert np.array_equal(back, x)


def test_unknown_compressor():
    with pytest.raises(IsgError):
        get_compressor("gzip9000")
    with pytest.raises(IsgError):
        ShannonSelector(score_downsample=0).score(noise_patch(5))


# --- Shannon scores -------------------------------------------------------------------------
@pytest.mark.parametrize("ds", [1, 2, 4])
def test_shannon_constant_lowest_and_monotone_in_noise(ds):
    sel = ShannonSelector(score_downsample=ds)
    amps = [0, 2, 6, 15, 40]
    scores = [sel.score(noise_patch(a)) for a in amps]
    assert scores[0] == min(scores)
    assert all(b > a for a, b in zip(scores, scores[1:])), scores


@pytest.mark.parametrize("method", ["ig", "canny", "dog", "log"])
def test_edge_baselines_constant_lowest_and_monotone(method):
    sel = get_selector(method)
    amps = [0, 6, 15, 40] if method != "canny" else [0, 15, 40]
    scores = [sel.score(noise_patch(a)) for a in amps]
    assert scores[0] <= 1e-3 * scores[1]  # ~0 up to float32 rounding
    assert all(b > a for a, b in zip(scores, scores[1:])), scores


def test_normalised_scores_in_unit_interval():
    sel = ShannonSelector(score_downsample=1)
    rnd = RNG.integers(0, 256, (256, 256, 3), dtype=np.uint8)
    for p in (np.zeros((256, 256, 3), np.uint8), noise_patch(10), rnd):
        assert 0 <= sel.score(p) <= 1
    assert sel.score(rnd) > 0.95  # incompressible ~ 1
    assert sel.bits(rnd) == pytest.approx(sel.bpp(rnd) * 256 * 256)


@pytest.mark.parametrize("ds", [1, 2])  # at ds 4, 150 specks reach ~0.2: each speck covers 16x more of the copy
def test_textureless_fig2_patches_score_below_0_1(ds):
    sel = ShannonSelector(score_downsample=ds)
    for colour in [(255, 255, 255), (240, 238, 243), (120, 40, 160), (20, 160, 60)]:
        assert sel.score(np.full((256, 256, 3), colour, np.uint8)) < 0.01
    assert sel.score(speck_patch(40)) < 0.1
    assert sel.score(speck_patch(150)) < 0.1


def test_shannon_cmu_tissue_above_glass(cmu_tiles):
    P, lab = cmu_tiles
    sel = ShannonSelector()
    tissue = P[lab == 1][np.argmax((P[lab == 1].max(-1) - P[lab == 1].min(-1)).mean((1, 2)))]
    glass = P[lab == 0][0]
    assert sel.score(tissue) > sel.score(glass) + 0.3


def test_shannon_separates_cmu_tissue_from_glass(cmu_tiles):
    P, lab = cmu_tiles
    sel = ShannonSelector()
    s = np.array([sel.score(p) for p in P])
    assert auc(s[lab == 1], s[lab == 0]) >= 0.95
    keep = select(s, ShannonSelector.default_threshold, pixels=256 * 256)  # the default keeps tissue, drops glass
    assert keep[lab == 1].mean() >= 0.9 and keep[lab == 0].mean() <= 0.1


# --- thresholds -----------------------------------------------------------------------------
def test_absolute_threshold_and_units():
    s = np.array([0.05, 0.2, 0.36, 0.5, 0.9])
    assert select(s, 0.3).tolist() == [False, False, True, True, True]
    assert select(s, "score:0.5").tolist() == [False, False, False, False, True]
    # bits for a 256 px patch and bpp convert through 24 bits per pixel
    assert resolve_threshold(s, Threshold("bits", 24 * 65536 * 0.25), pixels=65536) == pytest.approx(0.25)
    assert resolve_threshold(s, Threshold("bpp", 6)) == pytest.approx(0.25)
    assert select(s, "bpp:6").tolist() == [False, False, True, True, True]
    with pytest.raises(IsgError):
        resolve_threshold(s, Threshold("bits", 1e6))  # needs the patch size


def test_mu_sigma_threshold_known_answer():
    s = np.array([0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 2.0, 4.0])
    mu, sd = s.mean(), s.std()  # 1.0, 1.18...
    assert resolve_threshold(s, Threshold("mu_sigma", 1)) == pytest.approx(mu + sd)
    assert select(s, "mu+sigma").tolist() == [False] * 8 + [False, True]
    assert select(s, "mu_sigma:0").tolist() == [False] * 8 + [True, True]
    assert parse_threshold("mu+1.5sigma") == Threshold("mu_sigma", 1.5)


def test_mu_sigma_drops_tissue_on_a_mostly_tissue_slide_but_otsu_does_not():
    rng = np.random.default_rng(3)
    tissue = rng.normal(0.7, 0.08, 80)
    glass = rng.normal(0.08, 0.02, 20)
    s = np.concatenate([tissue, glass])
    truth = np.r_[np.ones(80, bool), np.zeros(20, bool)]
    ms = precision_recall(select(s, "mu_sigma:1"), truth)
    ot = precision_recall(select(s, "otsu"), truth)
    assert ms["recall"] < 0.3  # the paper's rule keeps only the top tail of the tissue
    assert ot["recall"] == 1 and ot["precision"] == 1


def test_robust_threshold_known_answer():
    s = np.array([1.0, 2.0, 3.0, 4.0, 100.0])  # median 3, MAD 1
    assert resolve_threshold(s, Threshold("robust", 2)) == pytest.approx(3 + 2 * 1.4826)
    assert select(s, "robust:2").tolist() == [False, False, False, False, True]


def test_parse_threshold_errors():
    with pytest.raises(IsgError):
        parse_threshold("nonsense:1")
    with pytest.raises(IsgError):
        parse_threshold("bits:abc")


def test_auc_matches_brute_force():
    pos = RNG.normal(1, 1, 37)
    neg = np.r_[RNG.normal(0, 1, 40), pos[:3]]  # with ties
    brute = np.mean([(p > n) + 0.5 * (p == n) for p in pos for n in neg])
    assert auc(pos, neg) == pytest.approx(brute)
    assert auc([2, 3], [0, 1]) == 1.0 and auc([0], [1]) == 0.0


def test_compressor_study_table():
    tissue = [noise_patch(30, 64, seed=i) for i in range(4)]
    flat = [noise_patch(1, 64, seed=i) for i in range(4)]
    df = compressor_study(tissue, flat, compressors=["zstdgrad", "deflate"], timing_patches=4)
    assert list(df.compressor) == ["zstdgrad", "deflate"]
    assert (df.auc == 1).all() and (df.tissue_bpp > df.textureless_bpp).all() and (df.mp_per_s > 0).all()


# --- registry and baselines ------------------------------------------------------------------
def test_registry_and_dexined_unavailable():
    av = available_selectors()
    assert set(av) == set(SELECTORS) >= {"shannon", "ig", "canny", "dexined", "dog", "log", "otsu", "he2rna"}
    assert av["dexined"] is None and av["shannon"] is not None
    with pytest.raises(IsgError, match="unavailable offline"):
        get_selector("dexined")
    with pytest.raises(IsgError, match="unknown selection method"):
        get_selector("sobel")


def test_otsu_needs_fit_and_scores_tissue_fraction():
    sel = get_selector("otsu")
    with pytest.raises(IsgError, match="fit"):
        sel.score(noise_patch(5))
    thumb = np.full((100, 100, 3), 240, np.uint8)
    thumb[:50] = (150, 90, 160)
    sel.fit(thumb)
    half = np.full((64, 64, 3), 240, np.uint8)
    half[:16] = (150, 90, 160)
    assert sel.score(half) == pytest.approx(0.25)
    # HE2RNA's failure mode (Fig. 2): a solid dark patch counts as all tissue
    assert sel.score(np.full((64, 64, 3), (40, 40, 40), np.uint8)) == 1.0
    assert get_selector("he2rna").fit(thumb).score(half) == pytest.approx(0.25)


# --- slide level -----------------------------------------------------------------------------
def test_add_selection_keeps_coords_and_replaces(cmu_path, tmp_path):
    h5, _ = tile_to_h5(cmu_path, tmp_path, TilingConfig())
    with h5py.File(h5) as f:
        coords = f["coords"][:]
        attrs = dict(f["coords"].attrs)
    n = len(coords)
    s = np.linspace(0, 1, n)
    add_selection_to_h5(h5, "shannon", s, s > 0.5, {"threshold": "score:0.5"})
    add_selection_to_h5(h5, "ig", s[::-1], s < 0.2, {"threshold": "score:0.2"})
    add_selection_to_h5(h5, "shannon", s, s > 0.7, {"threshold": "score:0.7"})  # replaces
    with h5py.File(h5) as f:
        assert np.array_equal(f["coords"][:], coords)
        assert dict(f["coords"].attrs).keys() == attrs.keys()
        assert set(f["selection"]) == {"shannon", "ig"}
        assert f["selection/shannon/keep"].dtype == bool
    sc, keep, at = read_selection(h5, "shannon")
    assert np.array_equal(keep, s > 0.7) and at["threshold"] == "score:0.7" and at["n_kept"] == (s > 0.7).sum()
    assert read_tiling_h5(h5).n_patches == n
    with pytest.raises(IsgError):
        add_selection_to_h5(h5, "shannon", s[:-1], s[:-1] > 0.5)
    assert not list(tmp_path.glob(".*tmp*"))  # no temporary left behind


def test_run_select_end_to_end(cmu_path, tmp_path, cmu_tiles):
    P, lab = cmu_tiles
    res = run_select([cmu_path], "shannon", tmp_path, config=TilingConfig(), progress=False)
    assert len(res) == 1 and res[0]["n_patches"] == len(P)
    sc, keep, at = read_selection(res[0]["h5"], "shannon")
    assert at["threshold"] == str(ShannonSelector.default_threshold)
    assert keep[lab == 1].all() and not keep[lab == 0].any()
    from pathlib import Path

    png = Path(res[0]["png"])
    assert png.exists() and png.read_bytes()[:4] == b"\x89PNG"
    # a second method in the same file, per-slide threshold
    res2 = run_select([cmu_path], "otsu", tmp_path, threshold=0.5, config=TilingConfig(), thumbnail=False,
                      progress=False)
    with h5py.File(res2[0]["h5"]) as f:
        assert set(f["selection"]) == {"shannon", "otsu"}
    with pytest.raises(IsgError, match="only to the shannon"):
        run_select([cmu_path], "ig", tmp_path, threshold="bits:1e6", config=TilingConfig(), progress=False)


def test_score_slide_matches_selector(cmu_path, cmu_tiles):
    P, _ = cmu_tiles
    with open_slide(cmu_path) as s:
        t = tile_slide(s, TilingConfig())
        sc = score_slide(s, t, "shannon", progress=False)
    sel = ShannonSelector()
    assert sc.shape == (len(P),)
    assert sc[:5] == pytest.approx([sel.score(p) for p in P[:5]])


def test_thumbnail_does_not_switch_the_matplotlib_backend(cmu_path, tmp_path):
    """Inside a notebook, a library call that forces Agg would hide every later figure."""
    import matplotlib
    import matplotlib.pyplot as plt

    from isg_core.config import TilingConfig
    from isg_core.data.slides import open_slide
    from isg_core.data.tiling import tile_slide
    from isg_core.selection.slide import selection_thumbnail

    before = matplotlib.get_backend()
    plt.switch_backend("svg")
    try:
        with open_slide(cmu_path) as s:
            t = tile_slide(s, TilingConfig())
            selection_thumbnail(s, t, np.ones(t.n_patches, bool), tmp_path / "t.png", max_size=256)
        assert (tmp_path / "t.png").exists()
        assert matplotlib.get_backend().lower() == "svg"
    finally:
        plt.switch_backend(before)


def test_selection_figures_draw_the_numbers_they_are_given():
    import matplotlib

    matplotlib.use("Agg")
    from isg_core.selection.figures import precision_recall_bars, score_distributions

    grey = np.full((16, 16, 3), 200, np.uint8)
    tissue = RNG.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    P, lab = np.stack([grey, tissue, tissue]), np.array([0, 1, 1])
    fig, data = score_distributions(P, lab, {"Shannon": ShannonSelector()})
    assert len(data) == 3 and data["class"].tolist() == ["textureless", "tissue", "tissue"]
    assert data.score.iloc[0] < data.score.iloc[1]  # glass compresses better than noise
    ax = fig.axes[0]
    assert ax.get_xlabel().startswith("Shannon score") and ax.get_ylabel() == "tiles"
    table = pd.DataFrame({"method": ["a", "b"], "threshold": ["0.1", "0.2"], "available": [True, True],
                          "precision": [0.9, 0.5], "recall": [0.8, 0.4], "f1": [0.85, 0.45]})
    fig = precision_recall_bars(table)
    heights = sorted(round(p.get_height(), 6) for p in fig.axes[0].patches if p.get_height() > 0)
    assert heights == sorted([0.9, 0.5, 0.8, 0.4, 0.85, 0.45])
    assert fig.axes[0].get_ylabel() == "fraction of patches"
