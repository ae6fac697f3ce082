"""Predicting a user's slide (isg_core.deploy.inference, .bundle, .predict, `isg predict`) and the
efficiency study's arithmetic (isg_core.studies.efficiency).

The end-to-end test bundles a model trained on the smoke cohort and runs `isg predict` on the
real CMU-1-Small-Region slide; the HTML report is opened in headless Chromium when it is
installed (`.ci/run` installs it)."""
from __future__ import annotations

import json
import shutil
import subprocess
import tempfile

import numpy as np
import pandas as pd
import pytest
import torch

from isg_core.cli import main
from isg_core.config import get_profile
from isg_core.deploy.inference import STAGES, untrained_pipeline
from isg_core.errors import IsgError
from isg_core.selection import Threshold, resolve_threshold
from isg_core.studies.efficiency import extrapolate, summarise_efficiency

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def smoke_bundle(tmp_path_factory):
    from isg_core.deploy.export import export_default_bundle

    return export_default_bundle("smoke", out=tmp_path_factory.mktemp("bundle") / "model.pt", progress=False)


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _headless(args: list[str]) -> subprocess.CompletedProcess:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tempfile.mkdtemp()}"]
    return subprocess.run([_chromium(), *flags, *args], capture_output=True, text=True, timeout=120)


def test_predict_cmu_writes_every_output(smoke_bundle, cmu_path, tmp_path, capsys):
    from isg_core.deploy.bundle import load_bundle

    out = tmp_path / "pred"
    assert main(["predict", str(cmu_path), "--model", str(smoke_bundle), "--out", str(out)]) == 0
    sid = "CMU-1-Small-Region"
    files = {p.name for p in out.iterdir()}
    assert files == {f"{sid}.{x}" for x in ("predictions.csv", "predictions.json", "selection.png", "attention.png",
                                             "report.html")}  # and no temporary leftovers
    bundle = load_bundle(smoke_bundle)
    csv = pd.read_csv(out / f"{sid}.predictions.csv")
    rec = json.loads((out / f"{sid}.predictions.json").read_text())
    assert csv.gene.tolist() == bundle.genes == rec["genes"]
    assert np.allclose(csv.fpkm_uq, 10 ** csv.log10_fpkm_uq_plus_1 - 1, rtol=1e-5)
    assert rec["selection"]["patches"] == 88 and 0 < rec["selection"]["kept"] <= 88  # 88 global patches of CMU
    assert set(rec["seconds"]) == set(STAGES) and rec["model"]["simulated"] is True
    for png in ("selection.png", "attention.png"):
        assert (out / f"{sid}.{png}").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (out / f"{sid}.report.html").read_text()
    assert page.count("data:image/png;base64,") == 2 and "simulated cohort" in page
    # a second run finds the outputs of the same model and does not redo them
    before = (out / f"{sid}.report.html").stat().st_mtime_ns
    assert main(["predict", str(cmu_path), "--model", str(smoke_bundle), "--out", str(out)]) == 0
    assert (out / f"{sid}.report.html").stat().st_mtime_ns == before
    if _chromium() is None:
        pytest.skip("chromium not installed: the report was not opened in a browser")
    dom = _headless(["--dump-dom", (out / f"{sid}.report.html").as_uri()])
    assert dom.returncode == 0 and 'id="predictions"' in dom.stdout
    assert all(f"<td>{g}</td>" in dom.stdout for g in bundle.genes)
    shot = tmp_path / "shot.png"
    _headless([f"--screenshot={shot}", "--window-size=1100,1400", (out / f"{sid}.report.html").as_uri()])
    from PIL import Image

    img = np.asarray(Image.open(shot).convert("L"))
    assert img.std() > 10  # something was drawn: text, table and two maps, not a blank page


def test_bad_bundles_give_one_line_errors(smoke_bundle, cmu_path, tmp_path, capsys):
    from isg_core.deploy.bundle import load_bundle

    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    assert main(["predict", str(cmu_path), "--model", str(junk), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "junk.pt" in err and "not a readable model bundle" in err
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())

    assert main(["predict", str(cmu_path), "--model", str(smoke_bundle), "--out", str(tmp_path / "o"),
                 "--genes", "CD3D", "EPCAM"]) == 2
    assert "does not predict EPCAM" in capsys.readouterr().err

    raw = torch.load(smoke_bundle, weights_only=True)
    fold_model = dict(raw, format="isg-slide-model/1")
    torch.save(fold_model, tmp_path / "fold.pt")
    with pytest.raises(IsgError, match="export-model"):
        load_bundle(tmp_path / "fold.pt")

    fewer = dict(raw, genes=raw["genes"][:-1], target_mean=raw["target_mean"][:-1], target_std=raw["target_std"][:-1])
    torch.save(fewer, tmp_path / "fewer.pt")
    with pytest.raises(IsgError, match="9 genes do not match its model's 10 outputs"):
        load_bundle(tmp_path / "fewer.pt")
    narrow = dict(raw, model=dict(raw["model"], config=dict(raw["model"]["config"], vit_mlp_ratio=1.0)))
    torch.save(narrow, tmp_path / "narrow.pt")
    with pytest.raises(IsgError, match="do not match its config or its 10 genes"):
        load_bundle(tmp_path / "narrow.pt").model()

    torch.save(dict(raw, genes=raw["genes"] + ["EPCAM"]), tmp_path / "uneven.pt")
    with pytest.raises(IsgError, match="do not match"):
        load_bundle(tmp_path / "uneven.pt")

    model = dict(raw["model"], config=dict(raw["model"]["config"], d=raw["model"]["config"]["d"] * 2))
    torch.save(dict(raw, model=model), tmp_path / "wide.pt")
    with pytest.raises(IsgError):
        load_bundle(tmp_path / "wide.pt").pipeline("cpu")


def test_per_slide_threshold_equals_the_absolute_threshold_it_resolves_to(tiatoolbox_path):
    """Two passes (mu + sigma) and one pass (a fixed score) keep the same patches and predict the
    same when the fixed score is what mu + sigma resolved to on this slide."""
    prof = get_profile("smoke")
    pipe = untrained_pipeline("isg", prof, n_outputs=3, device="cpu", batch_size=4)
    pipe.threshold = Threshold("mu_sigma", 0.0)
    a = pipe.run(tiatoolbox_path, slide_mpp=0.5)
    assert a.threshold_score == pytest.approx(a.scores.mean())
    assert np.array_equal(a.keep, a.scores > a.threshold_score) and 0 < a.n_kept < a.n_patches
    pipe.threshold = Threshold("score", a.threshold_score)
    b = pipe.run(tiatoolbox_path, slide_mpp=0.5)
    assert np.array_equal(a.keep, b.keep)
    assert np.allclose(a.prediction, b.prediction, atol=1e-5)
    # the class token also attends to itself, so its attention to the patches sums to less than 1
    assert a.attention is not None and len(a.attention) == a.n_kept and 0 < a.attention.sum() <= 1 + 1e-5
    assert all(a.seconds[s] >= 0 for s in STAGES)


def test_he2rna_path_uses_otsu_tiles_and_supertiles(tiatoolbox_path):
    prof = get_profile("smoke")
    pipe = untrained_pipeline("he2rna", prof, n_outputs=2, device="cpu", batch_size=4)
    out = pipe.run(tiatoolbox_path, slide_mpp=0.5)
    fixed = resolve_threshold(np.zeros(0), pipe.threshold, 256 ** 2)
    assert np.array_equal(out.keep, out.scores > fixed) and out.prediction.shape == (2,)
    assert out.attention is None and pipe.supertiles == 100


def test_efficiency_summary_arithmetic():
    rows = pd.DataFrame({"method": ["ISG", "ISG", "HE2RNA", "HE2RNA"], "width": [1000] * 4, "height": [2000] * 4,
                         "patches": [10] * 4, "kept": [5, 7, 9, 9], "read": [1.0, 1.0, 1.0, 1.0],
                         "select": [0.5, 0.5, 0.25, 0.25], "extract": [2.0, 4.0, 6.0, 6.0], "predict": [0.5] * 4,
                         "total": [4.0, 6.0, 7.75, 7.75], "peak_rss_mb": [100, 100, 200, 200],
                         "peak_cuda_mb": [np.nan] * 4, "device": ["cpu"] * 4})
    s = summarise_efficiency(rows, "x").set_index("method")
    assert s.loc["ISG", "total"] == 5.0 and s.loc["ISG", "extract"] == 3.0 and s.loc["ISG", "kept"] == 6.0
    assert s.loc["ISG", "ratio to HE2RNA"] == pytest.approx(5.0 / 7.75) and s.loc["HE2RNA", "ratio to HE2RNA"] == 1.0
    assert s.loc["ISG", "stage sum"] == pytest.approx(5.0)
    assert extrapolate(s.reset_index(), side_px=2000).tolist() == pytest.approx([10.0, 15.5])  # 2x the area


def test_a_fold_without_training_slides_for_a_gene_is_not_exported(smoke_bundle, tmp_path):
    """A gene with no training slide of its type in the fold has a NaN training mean: its
    predictions would be NaN, so the export refuses, naming the gene (tiny cohorts hit this)."""
    from dataclasses import replace

    from isg_core.cohorts.folder import load_cohort
    from isg_core.deploy.export import export_bundle
    from isg_core.experiments import ALL_TASKS, isg, run_experiment
    from isg_core.paths import cohort_dir

    prof = get_profile("smoke")
    root = cohort_dir("smoke")
    res = run_experiment(load_cohort(root), root / "tiles", isg(), ALL_TASKS, prof, root / "runs", device="cpu",
                         progress=False)
    run = tmp_path / "run"
    shutil.copytree(res.run_dir, run)
    ck = torch.load(run / "fold0_model.pt", weights_only=True)
    ck["target_mean"][ck["targets"].index("KRT8")] = float("nan")
    torch.save(ck, run / "fold0_model.pt")
    with pytest.raises(IsgError, match="fold 0 had no training slide for KRT8"):
        export_bundle(replace(res, run_dir=run), 0, prof, root, tmp_path / "b.pt")
    assert not (tmp_path / "b.pt").exists()


def test_gene_flag_reasons():
    from isg_core.deploy.predict import gene_flag

    assert gene_flag("LIHC+COAD", 0.4, None) == ""
    assert gene_flag("LIHC+COAD", 0.4, "coad") == ""  # case does not matter
    assert gene_flag("PRAD", 0.4, "SKCM") == "trained on PRAD, not on SKCM"
    assert gene_flag("LIHC", -0.45, None) == "test PCC -0.45 <= 0: no better than chance on held-out slides"
    assert gene_flag("LIHC", 0.0, "LIHC").startswith("test PCC 0.00 <= 0")
    assert gene_flag("PRAD", float("nan"), "LIHC") == "trained on PRAD, not on LIHC; no test PCC measured for this gene"


def test_predict_flags_genes_of_other_cancer_types(smoke_bundle, cmu_path, tmp_path, capsys):
    out = tmp_path / "pred"
    sid = "CMU-1-Small-Region"
    assert main(["predict", str(cmu_path), "--model", str(smoke_bundle), "--out", str(out),
                 "--cancer-type", "SKCM"]) == 0  # a skin slide: no gene of the model was trained on skin
    csv = pd.read_csv(out / f"{sid}.predictions.csv", keep_default_na=False)
    assert csv.flag.str.contains("not on SKCM").all()
    rec = json.loads((out / f"{sid}.predictions.json").read_text())
    assert rec["cancer_type"] == "SKCM" and all(v["flag"] for v in rec["predictions"].values())
    page = (out / f"{sid}.report.html").read_text()
    assert page.count('<tr class="flagged">') == len(csv) and f"{len(csv)} of {len(csv)} genes are flagged" in page
    assert "flagged genes" in capsys.readouterr().out
    # the same slide for a cancer type the model knows: predicted again, and only genes of other types flagged
    with pytest.warns(UserWarning, match="another cancer type"):
        assert main(["predict", str(cmu_path), "--model", str(smoke_bundle), "--out", str(out),
                     "--cancer-type", "PRAD"]) == 0
    csv = pd.read_csv(out / f"{sid}.predictions.csv", keep_default_na=False)
    prad = csv.trained_on.str.split("+").apply(lambda t: "PRAD" in t)
    assert not csv.loc[prad, "flag"].str.contains("not on PRAD").any()
    assert csv.loc[~prad, "flag"].str.contains("not on PRAD").all()


def test_reexport_of_the_same_model_keeps_the_file(smoke_bundle, tmp_path):
    """Exporting the same run again keeps the bundle byte for byte (only its creation time would differ),
    so its hash, and the predictions made with it, stay valid; a different model is written."""
    import hashlib

    import torch

    from isg_core.deploy.export import _same_bundle, export_default_bundle

    before = hashlib.sha256(smoke_bundle.read_bytes()).hexdigest()
    again = export_default_bundle("smoke", out=smoke_bundle, progress=False)
    assert again == smoke_bundle and hashlib.sha256(smoke_bundle.read_bytes()).hexdigest() == before
    raw = torch.load(smoke_bundle, map_location="cpu", weights_only=False)
    raw["meta"]["created"] = "1999-01-01T00:00:00+00:00"
    assert _same_bundle(smoke_bundle, raw)  # the creation time alone does not count
    key = next(iter(raw["model"]["state"]))
    raw["model"]["state"][key] = raw["model"]["state"][key] + 1
    assert not _same_bundle(smoke_bundle, raw)  # one changed weight does
    (tmp_path / "bad.pt").write_bytes(b"not a bundle")
    assert not _same_bundle(tmp_path / "bad.pt", raw)
