"""Known answers for the science (issue 14, item 0): tests written before any refactor, so that a
later change that alters what the method computes fails here instead of passing unnoticed.

* **Prediction parity.**  ``isg predict`` of a fold-0 *test* slide with the exported smoke bundle
  re-tiles, re-selects and re-encodes the slide from its file (:mod:`isg_core.deploy.inference`); the
  fold's saved out-of-fold predictions (``<run_dir>/fold0.csv``) came from the *stored* features
  (:func:`isg_core.experiments.load_experiment_data`, every kept patch at evaluation).  Both must
  see the same patches and the same features and give the same log10(1 + FPKM-UQ).
* **ISG-a-b wiring.**  The paper's sequence (a fusion block after every b MBConv blocks), composed
  by hand from the network's own modules, equals ``patch_features``.
* **Eq. 1.**  The Shannon score is the zstd length of the planar-predictor residual of the 2x
  box-reduced patch, over 24 bits per pixel, recomputed here with numpy and the codec itself.
* **Eq. 2.**  The extractor's recorded total loss is the weighted sum of its recorded terms, with
  the adversarial term switched on at 2/3 of the run.
* **Default threshold.**  ``bpp:8.7`` is recomputed from the real CMU slide (midpoint of the gap
  between the highest glass tile and the lowest tissue tile, tiles labelled by saturation).

Everything is CPU-sized (ISG_PROFILE=smoke sizes; ~20 s on 2 cores with the smoke runs cached).
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# --- 1. prediction parity: isg predict == the fold's out-of-fold prediction --------------------------
@pytest.fixture(scope="module")
def smoke_fold0(tmp_path_factory):
    """The smoke bundle (fold 0 of ISG-10-2, all tasks) and the cross-validation run it came from,
    found exactly as :func:`isg_core.deploy.bundle.export_default_bundle` finds it."""
    from isg_core.cohorts.folder import ensure_cohort, load_cohort
    from isg_core.config import get_profile
    from isg_core.deploy.export import export_default_bundle
    from isg_core.experiments import ALL_TASKS, isg, run_experiment

    prof = get_profile("smoke")
    bundle = export_default_bundle("smoke", out=tmp_path_factory.mktemp("bundle") / "model.pt", progress=False)
    root = ensure_cohort("smoke")  # generated (and trained) by the export above when missing
    cohort = load_cohort(root)
    res = run_experiment(cohort, root / "tiles", isg(), ALL_TASKS, prof, root / "runs", progress=False)
    return {"bundle": bundle, "root": root, "cohort": cohort, "result": res, "profile": prof}


def test_predict_matches_fold0_out_of_fold_predictions(smoke_fold0, tmp_path, monkeypatch):
    """For every fold-0 test slide: the patches ``isg predict`` keeps are the stored selection's,
    their features are the stored ones, and the predicted log10(1 + FPKM-UQ) is the fold's saved
    test prediction."""
    from isg_core.deploy.bundle import load_bundle
    from isg_core.deploy.inference import SlidePipeline
    from isg_core.deploy.predict import predict_slides

    root, res, prof = smoke_fold0["root"], smoke_fold0["result"], smoke_fold0["profile"]
    manifest = smoke_fold0["cohort"].manifest
    test = manifest[manifest.fold == 0]
    assert len(test) >= 1
    oof = pd.read_csv(Path(res.run_dir) / "fold0.csv", index_col=0)
    assert set(test.slide_id) == set(oof.index)  # fold0.csv holds exactly fold 0's test slides
    bundle = load_bundle(smoke_fold0["bundle"])
    assert bundle.meta["fold"] == 0 and bundle.meta["run"] == Path(res.run_dir).name
    assert list(oof.columns) == bundle.genes

    # what the inference path feeds the slide model, per slide (the kept patches' f, R and grid position)
    seen: dict[str, dict] = {}
    original = SlidePipeline._predict

    def spy(self, feats, pos):
        seen[len(seen)] = {"f": np.concatenate([a for a, _ in feats]), "R": np.concatenate([b for _, b in feats]),
                           "pos": np.asarray(pos)}
        return original(self, feats, pos)

    monkeypatch.setattr(SlidePipeline, "_predict", spy)
    slides = [root / p for p in test.path]
    recs = predict_slides(slides, smoke_fold0["bundle"], tmp_path / "pred", device="cpu", progress=False)
    assert len(recs) == len(slides) == len(seen)

    import h5py

    for k, (rec, sid) in enumerate(zip(recs, test.slide_id)):
        assert rec["slide"]["slide_id"] == sid and not rec["skipped"]
        i = res.data.slide_ids.index(sid)
        f_cv, R_cv, pos_cv = res.data.f[i], res.data.R[i], res.data.pos[i]  # what fold 0 evaluated on
        # the same patches: the stored Shannon keep mask is what predict's re-selection keeps ...
        with h5py.File(root / "tiles" / f"{sid}.h5", "r") as fh:
            keep = fh["selection/shannon/keep"][:]
        assert rec["selection"]["patches"] == len(keep)
        assert rec["selection"]["kept"] == int(keep.sum()) == len(f_cv)
        # ... and evaluation used every kept patch, not the max_patches draw of training (so a
        # prediction made from a draw would not match: the slides keep more than max_patches)
        assert len(f_cv) > prof.models.max_patches
        np.testing.assert_array_equal(seen[k]["pos"], pos_cv)
        # the same features: f in float32, R rounded to float16 on both paths (HDF5 storage and
        # SlidePipeline._encode); identical on this machine, a float16 ulp allowed for other BLAS
        np.testing.assert_allclose(seen[k]["f"], f_cv, rtol=1e-5, atol=1e-6)
        assert seen[k]["R"].dtype == R_cv.dtype == np.float16
        np.testing.assert_allclose(seen[k]["R"].astype(np.float32), R_cv.astype(np.float32), rtol=2 ** -10, atol=1e-4)
        # the same prediction.  Both paths run the same float32 model on the same float16 R; they
        # differ only in the order of float operations (a padded batch of slides in
        # training.predict vs forward_slide's chunks), measured at <= 1e-7 in log10 units.  1e-5
        # leaves 100x headroom and still catches a 1 % rescaling of f (6e-4), a dropped patch or
        # a shifted grid position (4e-2), every patch instead of the kept ones (2e-2) and a missing
        # input standardisation (3e-2), measured on this cohort.  (Leaving R in float32 on the
        # predict path alone moves the predictions by only 3-7e-6, under this tolerance and far
        # under ~1e-3: the float16 storage of R is a precision choice, not a bug; the dtype check
        # above is what keeps the two paths on the same precision.)
        pred = np.array([rec["predictions"][g]["log10_fpkm_uq_plus_1"] for g in bundle.genes])
        np.testing.assert_allclose(pred, oof.loc[sid, bundle.genes].to_numpy(float), rtol=0, atol=1e-5,
                                   err_msg=f"{sid}: isg predict differs from fold 0's out-of-fold prediction")


# --- 2. ISG-a-b: a fusion block after every b MBConv blocks ----------------------------------------------
@pytest.mark.parametrize("a,b", [(4, 2), (3, 1), (5, 2)])  # 5-2: a trailing MBConv with no fusion after it
def test_isg_a_b_is_a_fusion_after_every_b_mbconvs(a, b):
    from isg_core.models import DualAttentionConfig, DualAttentionNetwork

    torch.manual_seed(0)
    net = DualAttentionNetwork(DualAttentionConfig(d=8, grid=4, n_outputs=3, n_mbconv=a, fusion_every=b,
                                                   mbconv_expand=2, vit_depth=1, vit_heads=2)).eval()
    assert len(net.mbconvs) == a and net.n_fusion_blocks() == len(net.fusions) == a // b
    assert net.cfg.name == f"ISG-{a}-{b}"
    g = torch.Generator().manual_seed(1)
    f, R = torch.randn(5, 8, generator=g), torch.randn(5, 4, 4, 8, generator=g)

    # the paper's sequence by hand: MBConv_1 .. MBConv_a (channels first), and after MBConv_k with
    # k % b == 0 the (k / b)-th fusion block on (f, R) (channels last)
    fh, x, n_fused = f.clone(), R.permute(0, 3, 1, 2), 0
    with torch.no_grad():
        for k in range(1, a + 1):
            x = net.mbconvs[k - 1](x)
            if k % b == 0:
                fh, r, _ = net.fusions[k // b - 1](fh, x.permute(0, 2, 3, 1))
                x = r.permute(0, 3, 1, 2)
                n_fused += 1
        Rh = x.permute(0, 2, 3, 1)
        f_net, R_net, maps = net.patch_features(f, R)
    assert n_fused == a // b == len(maps)
    torch.testing.assert_close(f_net, fh, rtol=0, atol=1e-6)
    torch.testing.assert_close(R_net, Rh, rtol=0, atol=1e-6)
    # and the documented plan says the same
    expected = [s for k in range(1, a + 1) for s in (["mbconv", "fusion"] if k % b == 0 else ["mbconv"])]
    assert net.layer_plan() == expected


# --- 3a. Eq. 1: the Shannon score is a compressed length ---------------------------------------------------
def _constructed_patch(size: int = 128) -> np.ndarray:
    """Smooth ramps (cheap for a planar predictor), a noisy block and a sharp stripe (expensive)."""
    yy, xx = np.mgrid[0:size, 0:size]
    p = np.stack([(2 * xx + yy) % 256, (3 * yy) % 256, np.full_like(xx, 200)], -1).astype(np.uint8)
    rng = np.random.default_rng(7)
    p[20:70, 30:90] = rng.integers(0, 256, (50, 60, 3), dtype=np.uint8)
    p[100:104, :] = (10, 240, 30)
    return p


def test_shannon_score_is_zstd_bits_of_the_planar_residual_over_24_bpp():
    import imagecodecs
    from PIL import Image

    from isg_core.selection import ShannonSelector

    sel = ShannonSelector()  # the defaults: zstdgrad, score_downsample 2
    assert (sel.compressor, sel.score_downsample) == ("zstdgrad", 2)
    p = _constructed_patch()
    H, W, _ = p.shape
    # score_downsample: a 2 x 2 box mean with round-half-up, as Pillow's Image.reduce(2) computes it
    s = p.reshape(H // 2, 2, W // 2, 2, 3).astype(np.int64).sum((1, 3))
    q = ((s + 2) // 4).astype(np.uint8)
    np.testing.assert_array_equal(q, np.asarray(Image.fromarray(p).reduce(2)))
    h, w, _ = q.shape
    # planar predictor per channel, zeros outside: r = p[y,x] - p[y,x-1] - p[y-1,x] + p[y-1,x-1] mod 256
    z = np.zeros((h + 1, w + 1, 3), np.int64)
    z[1:, 1:] = q
    r = ((z[1:, 1:] - z[1:, :-1] - z[:-1, 1:] + z[:-1, :-1]) % 256).astype(np.uint8)
    back = np.cumsum(np.cumsum(r.astype(np.int64), 1), 0) % 256
    np.testing.assert_array_equal(back, q)  # the residual is lossless (the bound of Eq. 1 holds)
    # zstd level 3 (the python `zstandard` package is not installed: the codec is imagecodecs' libzstd)
    frame = imagecodecs.zstd_encode(r.tobytes(), level=3)
    assert frame[:4] == b"\x28\xb5\x2f\xfd"  # a zstd frame
    assert imagecodecs.zstd_decode(frame) == r.tobytes()
    bits_small = 8.0 * len(frame)
    # bits for the full patch = bpp of the scored copy x H x W; score = bits / (24 H W)
    bits = bits_small / (h * w) * H * W
    assert sel.bits(p) == pytest.approx(bits, rel=1e-12)
    assert sel.score(p) == pytest.approx(bits / (24 * H * W), rel=1e-12)
    assert 0.05 < sel.score(p) < 0.95  # a patch whose score is neither clipped nor trivial
    # a solid patch: only the first residual pixel is non-zero, a few dozen bytes in all
    solid = np.full((H, W, 3), (236, 234, 238), np.uint8)
    assert sel.score(solid) < 0.01


# --- 3b. Eq. 2: the extractor's total loss ------------------------------------------------------------------
def test_extractor_total_is_the_weighted_sum_and_the_adversarial_term_starts_when_told():
    from isg_core.config import PROFILES, get_profile
    from isg_core.features.train import ExtractorTrainer, train_config_for

    # the default is Eq. 2 as printed: every term with weight 1, C from the first step (chosen on
    # the development cohort), for every profile and both scales
    for prof in PROFILES.values():
        for scale in ("global", "local"):
            c = train_config_for(scale, prof.features)
            assert (c.adv_start, c.lambda_l1, c.lambda_lpips, c.lambda_adv) == (0, 1.0, 1.0, 1.0)
    # weights other than 1 (and other than the defaults), so that a dropped or swapped weight shows;
    # a later start, so that the switch shows
    w_l1, w_lpips, w_adv = 0.7, 1.3, 0.25
    cfg = train_config_for("global", get_profile("smoke").features, lambda_l1=w_l1, lambda_lpips=w_lpips,
                           lambda_adv=w_adv, adv_start=4)
    assert (cfg.steps, cfg.adv_start) == (6, 4)  # smoke: steps 0-3 without C, 4-5 with it
    bank = np.random.default_rng(0).integers(0, 256, (32, cfg.model.resolution, cfg.model.resolution, 3), np.uint8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # LPIPS's random-trunk fallback when AlexNet is not cached
        trainer = ExtractorTrainer(cfg, bank, device="cpu")
    recs = [trainer.step() for _ in range(cfg.adv_start + 1)]
    before, after = recs[cfg.adv_start - 1], recs[cfg.adv_start]  # steps t = 3 and t = 4 (records 4 and 5)
    assert before["step"] == cfg.adv_start and after["step"] == cfg.adv_start + 1
    for rec in recs[:cfg.adv_start]:
        assert "adv" not in rec and "d" not in rec
        assert rec["total"] == pytest.approx(w_l1 * rec["l1"] + w_lpips * rec["lpips"], rel=1e-6)
    assert {"adv", "d"} <= set(after)
    assert after["total"] == pytest.approx(w_l1 * after["l1"] + w_lpips * after["lpips"] + w_adv * after["adv"],
                                           rel=1e-6)
    assert w_adv * after["adv"] > 1e-3 * after["total"]  # the adversarial term is large enough to be seen


# --- 3c. the default Shannon threshold, from the real CMU slide -----------------------------------------
def test_default_shannon_threshold_is_the_cmu_gap_midpoint(cmu_path):
    from isg_core.config import get_profile
    from isg_core.data.slides import open_slide
    from isg_core.data.tiling import read_global_patch, tile_slide
    from isg_core.selection import ShannonSelector, resolve_threshold, saturation_labels

    with open_slide(cmu_path) as s:
        t = tile_slide(s, get_profile().tiling)
        P = np.stack([read_global_patch(s, t, i) for i in range(t.n_patches)])
    lab = saturation_labels(P)
    assert ((lab == 1).sum(), (lab == 0).sum()) == (33, 32)  # "33 tissue vs 32 blank-glass tiles"
    sel = ShannonSelector()
    scores = np.array([sel.score(p) for p in P])
    hi_glass, lo_tissue = scores[lab == 0].max(), scores[lab == 1].min()
    # the docstring's numbers, to the 3 decimals it gives
    assert round(hi_glass, 3) == 0.142 and round(lo_tissue, 3) == 0.585
    mid_bpp = 24 * (hi_glass + lo_tissue) / 2
    th = sel.default_threshold
    assert th.kind == "bpp" and round(mid_bpp, 1) == th.value == 8.7
    value = resolve_threshold(scores, th, P.shape[1] * P.shape[2])
    assert hi_glass < value < lo_tissue  # the default separates the labelled CMU tiles perfectly
