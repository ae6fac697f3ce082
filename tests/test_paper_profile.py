"""The ``paper`` profile's model sizes, exercised end to end on a CPU with tiny budgets.

The ``paper`` profile is meant for a GPU and its full run takes days, so nothing else in the
test suite builds its networks.  Here four small slides of the smoke cohort go through every
stage at the paper's sizes - tile and select, two training steps of each extractor (E_G on
256 px patches with 8192/256 channels, E_L at 2048/256), extraction, one epoch of a 3-fold
cross-validation of ISG-10-2 at full width d = 128, the model bundle, and ``isg predict`` on one
slide - and the test checks the shapes and dtypes that the paper's width gives at each step.
Only budgets are shrunk (:func:`paper_sizes_tiny_budgets`), never a width or a resolution.
"""
from __future__ import annotations

import json
import shutil
import warnings
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from isg_core.config import ALL_GENES, GENE_ENSEMBL, PROFILES, Profile

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "data" / "cohorts" / "isg-sim-smoke"

#: The slides and their folds.  The bundle holds fold 0's model of ISG trained for all tasks at
#: once, so every gene needs a slide of its cancer type among fold 0's *inner training* slides
#: (a gene without one has a NaN training mean, and so a NaN prediction): folds 1 and 2 hold
#: LIHC (its genes cover COAD's) and two PRAD slides, of which the inner validation split
#: (seed 0, one patient of three) takes PRAD-0002.  COAD-0001 is fold 0's test slide, and
#: the slide ``isg predict`` runs on: one the bundled model did not train on.
SLIDES = {"ISGSIM-COAD-0001-DX1": 0, "ISGSIM-LIHC-0001-DX1": 1, "ISGSIM-PRAD-0001-DX1": 2,
          "ISGSIM-PRAD-0002-DX1": 2}
PREDICT_SLIDE = "ISGSIM-COAD-0001-DX1"


def paper_sizes_tiny_budgets() -> Profile:
    """PROFILES["paper"] with every model size kept (resolutions, d, channels, ISG-10-2 at full
    width, the tiling) and only the budgets cut to what a CPU runs in a minute or two.  (*) The
    paper's batch of 32 at 256 px needs 14 GB and 1.5-2.5 min per step on 2 cores
    (``results/paper_cpu/paper_memory.md``, made by ``benchmarks/paper_memory.py``)."""
    paper = PROFILES["paper"]
    return replace(
        paper,
        name="paper-tiny-budget",  # recorded in the bundle: not a model of the real paper run
        features=replace(paper.features,
                         global_steps=2, local_steps=2,  # 50 000 each; step 2 also runs the critic C
                         batch_size=4,  # 32 (*)
                         bank_size=16,  # 50 000 patches
                         checkpoint_every=1),  # 1000; extract_batch 256 stays (a slide has 16 patches)
        models=replace(paper.models, epochs=1, patience=1),  # 60 epochs, patience 15
        workers=2,  # 16 tiling processes; CI has 2 cores
    )


def _tiny_cohort(dst: Path) -> Path:
    """A cohort folder with :data:`SLIDES` (copied from the smoke cohort) and their expression."""
    dst.mkdir(parents=True)
    (dst / "slides").mkdir()
    man = pd.read_csv(SMOKE / "manifest.csv")
    man = man[man.slide_id.isin(SLIDES)].copy()
    man["fold"] = man.slide_id.map(SLIDES)
    man.to_csv(dst / "manifest.csv", index=False)
    expr = pd.read_csv(SMOKE / "expression.tsv", sep="\t")
    expr[expr.slide_id.isin(SLIDES)].to_csv(dst / "expression.tsv", sep="\t", index=False)
    shutil.copy(SMOKE / "cohort.json", dst / "cohort.json")  # says "simulated", as the bundle will
    for sid in SLIDES:
        shutil.copy(SMOKE / "slides" / f"{sid}.tiff", dst / "slides" / f"{sid}.tiff")
    return dst


@pytest.mark.slow
def test_paper_sizes_through_every_stage(tmp_path):
    if not (SMOKE / "manifest.csv").exists():
        pytest.skip("smoke cohort missing: run `isg simulate --profile smoke` (make test does)")
    from isg_core.cli import main
    from isg_core.deploy.bundle import load_bundle
    from isg_core.deploy.export import export_default_bundle
    from isg_core.features.train import load_checkpoint
    from isg_core.features.workflow import ensure_extractor, ensure_features, ensure_prepared

    prof = paper_sizes_tiny_budgets()
    fc, paper = prof.features, PROFILES["paper"]
    # the sizes under test are the paper's: only budgets differ
    for k in ("global_resolution", "local_resolution", "code_dim", "channel_base", "channel_max",
              "local_channel_base", "extract_batch", "resnet_input"):
        assert getattr(fc, k) == getattr(paper.features, k), k
    assert prof.tiling == paper.tiling and prof.models.width is None and prof.models.max_patches == 256
    d, g = fc.code_dim, prof.tiling.grid
    assert (d, g) == (128, 8)
    root = _tiny_cohort(tmp_path / "cohort")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # LPIPS' random AlexNet trunk where ImageNet weights are not cached
        # 1-2. tile and select (the paper's 256 px global patches at 0.5 mpp; 1024 px slides: 4 x 4)
        prep = ensure_prepared(root, prof, progress=False)
        assert sorted(prep.slide_id) == sorted(SLIDES) and (prep.n_patches == 16).all()
        assert (prep.n_kept_shannon > 0).all()

        # 3. two steps of each extractor at the paper's sizes, from the profile as the CLI makes it
        ckpts = {s: ensure_extractor(s, prof, root, progress=False, device="cpu") for s in ("global", "local")}
        want = {"global": (256, fc.channel_base), "local": (32, fc.local_channel_base)}
        for scale, path in ckpts.items():
            ck = load_checkpoint(path)
            m = ck["config"]["model"]
            assert (m["resolution"], m["channel_base"]) == want[scale], scale
            assert (m["code_dim"], m["style_dim"], m["channel_max"]) == (d, 2 * d, 128)
            assert m["downsample"] == "strided" and ck["config"]["bank_sampling"] == "balanced"
            assert ck["step"] == 2 and len(ck["history"]) == 2
            assert "d" in ck["history"][0] and "d" in ck["history"][1]  # the critic's step ran (from step 0)
            assert all(np.isfinite(v) for r in ck["history"] for v in r.values()), ck["history"]
            # E_G's first layer sees 256 px at 4096 / 256 = 16 channels; both end at channel_max
            enc = ck["encoder"]
            assert max(v.shape[0] for k, v in enc.items() if v.ndim == 4) == 128

        # 4. extraction: f_i (n, d) float32 and R_i (n, p/q, p/q, d) float16, every candidate patch of every slide
        from isg_core.features.extract import patch_index

        ext = ensure_features(("fe",), prof, root, progress=False, device="cpu")["fe"].set_index("slide_id")
        assert not ext.skipped.any()
        for sid in SLIDES:
            with h5py.File(root / "tiles" / f"{sid}.h5", "r") as f:
                n = len(patch_index(f, "shannon", "candidates"))
                assert 0 < n <= 16 and ext.n[sid] == n
                grp = f["features/fe"]
                gl, loc = grp["global"], grp["local"]
                assert gl.shape == (n, d) and gl.dtype == np.float32
                assert loc.shape == (n, g, g, d) and loc.dtype == np.float16
                assert np.isfinite(gl[:]).all() and np.isfinite(loc[:]).all()
                assert float(np.abs(loc[:]).max()) < 6e4  # no float16 overflow in the stored cubes
                assert (grp.attrs["global_dim"], grp.attrs["local_dim"]) == (d, d)
                assert json.loads(grp.attrs["source"])["encoder"]["global"]["resolution"] == 256

        # 5-6. one epoch of the 3-fold cross-validation of ISG-10-2 at full width, then fold 0's bundle
        bundle_path = export_default_bundle(prof, root, tmp_path / "model.pt", device="cpu", progress=False)
    run = next((root / "runs" / "all").glob("isg-*"))
    for k in range(3):
        hist = pd.read_csv(run / f"fold{k}_history.csv")
        assert len(hist) == 1 and np.isfinite(hist.train_loss).all()

    bundle = load_bundle(bundle_path)
    m = bundle.raw["model"]["config"]
    assert (m["d"], m["grid"], m["width"]) == (d, g, None)
    assert (m["n_mbconv"], m["fusion_every"]) == (10, 2)
    net = bundle.model().model  # the Dual Attention network inside its input standardisation
    assert (net.cfg.d, net.cfg.inner_dim, net.cfg.model_dim) == (d, d, 2 * d)  # the token keeps [pool(R); f]
    assert len(net.mbconvs) == 10 and net.n_fusion_blocks() == 5
    assert bundle.genes == list(ALL_GENES) and len(bundle.genes) == len(GENE_ENSEMBL)
    assert np.isfinite(bundle.raw["target_mean"]).all() and np.isfinite(bundle.raw["target_std"]).all()
    for scale, res in (("global", 256), ("local", 32)):
        cfg = bundle.raw["encoders"][scale]["config"]["model"]
        assert (cfg["resolution"], cfg["code_dim"]) == (res, d)
    assert bundle.meta["profile"] == prof.name

    # 7. `isg predict` on fold 0's test slide
    out = tmp_path / "pred"
    slide = root / "slides" / f"{PREDICT_SLIDE}.tiff"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["predict", str(slide), "--model", str(bundle_path), "--out", str(out), "--device", "cpu"]) == 0
    csv = pd.read_csv(out / f"{PREDICT_SLIDE}.predictions.csv")
    assert csv.gene.tolist() == bundle.genes
    assert np.isfinite(csv.log10_fpkm_uq_plus_1).all() and np.isfinite(csv.fpkm_uq).all()
    rec = json.loads((out / f"{PREDICT_SLIDE}.predictions.json").read_text())
    assert rec["selection"]["patches"] == 16 and 0 < rec["selection"]["kept"] <= 16
    assert rec["tiling"]["global_size"] == 256 and rec["model"]["profile"] == prof.name
