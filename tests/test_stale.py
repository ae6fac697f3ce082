"""Every skip-if-done knows its input (issue 13).

A cached tiling, selection, feature set, cross-validation or prediction is reused only when it was
made from the same slide file (its fingerprint), read the same way (its mpp).  Here a slide is
rewritten at the same path and every stage must redo it, with a one-line note, while unchanged
slides are still skipped; two slides that share a file name in one call are refused before any
work; and a file without a resolution is refused by every command unless one is given.
"""
from __future__ import annotations

import json
import os
import shutil
import warnings
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import tifffile
from PIL import Image

from isg_core.cli import main
from isg_core.config import TilingConfig
from isg_core.data.fingerprint import file_fingerprint
from isg_core.data.tiling import StaleResultWarning, read_tiling_h5, tile_to_h5
from isg_core.errors import IsgError
from isg_core.paths import cohort_dir
from tests.test_bad_input import error_line

SMOKE = cohort_dir("smoke")

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _smoke_or_skip() -> None:
    if not (SMOKE / "manifest.csv").exists():
        pytest.skip("smoke cohort missing: run `isg simulate --profile smoke` (make test does)")


def _stale_notes(record) -> list[str]:
    return [str(w.message) for w in record if issubclass(w.category, StaleResultWarning)]


def _one_error_line(capsys, argv, *names) -> str:
    """``isg argv`` fails with status 2 and one stderr line naming every one of ``names``."""
    return error_line(capsys, argv, *map(str, names))


# --- the fingerprint ---------------------------------------------------------------------------------
def test_fingerprint_changes_with_content_and_time_not_with_path(tmp_path):
    a = tmp_path / "a.bin"
    a.write_bytes(os.urandom(3 << 20))  # 3 MiB: head and tail hashed, the middle MiB not
    fp = file_fingerprint(a)
    assert fp == file_fingerprint(a) and len(fp) == 16
    b = tmp_path / "sub" / "b.bin"
    b.parent.mkdir()
    shutil.copy2(a, b)  # same bytes, same mtime, other path: the same input
    assert file_fingerprint(b) == fp
    st = a.stat()
    data = bytearray(a.read_bytes())
    data[-10] ^= 0xFF  # a change in the last MiB, mtime put back: the tail hash sees it
    a.write_bytes(bytes(data))
    os.utime(a, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert file_fingerprint(a) != fp
    os.utime(b, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # touched: redone (costs time, never a wrong result)
    assert file_fingerprint(b) != fp
    with pytest.raises(IsgError, match="no such file"):
        file_fingerprint(tmp_path / "nope.tiff")


# --- a slide rewritten at the same path, through every stage ------------------------------------------
@pytest.fixture(scope="module")
def extractors():
    _smoke_or_skip()
    from isg_core.features.workflow import ensure_extractor

    return [ensure_extractor(s, "smoke", SMOKE, progress=False) for s in ("global", "local")]


def _copy_cohort(dst: Path) -> Path:
    dst.mkdir()
    for name in ("manifest.csv", "expression.tsv", "cohort.json"):
        shutil.copy(SMOKE / name, dst / name)
    shutil.copytree(SMOKE / "slides", dst / "slides")
    return dst


def test_rewritten_slide_is_retiled_reselected_reextracted_and_its_runs_redone(tmp_path, extractors):
    from isg_core.cohorts.folder import load_cohort
    from isg_core.cohorts.prepare import prepare_cohort
    from isg_core.config import get_profile
    from isg_core.experiments import Experiment, run_experiment
    from isg_core.features.extract import StyleGANEncoder, extract_cohort, read_features

    prof = get_profile("smoke")
    root = _copy_cohort(tmp_path / "cohort")
    enc = StyleGANEncoder(*extractors, device="cpu")
    exp = Experiment("HE2RNA", "he2rna", features="fe", selection="shannon")

    def stages():
        with warnings.catch_warnings(record=True) as rec:
            warnings.simplefilter("always")
            prep = prepare_cohort(root, config=prof.tiling, progress=False)
            ext = extract_cohort(root, enc, patches="all", batch_size=8, progress=False)
            cv = run_experiment(load_cohort(root), root / "tiles", exp, "COAD", prof, root / "runs", device="cpu",
                                progress=False)
        return prep, ext.set_index("slide_id"), cv, rec

    _, ext, cv, rec = stages()
    assert not _stale_notes(rec) and not ext.skipped.any()
    folds = sorted(cv.run_dir.glob("fold?.csv"))
    assert folds
    stamp = {p: p.stat().st_mtime_ns for p in folds}

    # unchanged: every stage is skipped, and says so
    _, ext, cv2, rec = stages()
    assert not _stale_notes(rec)
    assert ext.skipped.all() and (ext.seconds > 0).all()  # the time recorded when it was done
    assert {p: p.stat().st_mtime_ns for p in folds} == stamp
    pd.testing.assert_frame_equal(cv2.predictions, cv.predictions)

    # one COAD slide is replaced at the same path by another slide's bytes
    man = load_cohort(root).manifest
    coad = man[man.cancer_type == "COAD"]
    victim, donor = coad.iloc[0], coad.iloc[1]
    old_f = read_features(root / "tiles" / f"{victim.slide_id}.h5", "fe").global_
    shutil.copyfile(donor.path, victim.path)

    # anything downstream refuses to use the old tiles before they are redone
    with pytest.raises(IsgError, match="changed since it was tiled"):
        extract_cohort(root, enc, patches="all", batch_size=8, progress=False)
    with pytest.raises(IsgError, match=f"{victim.slide_id}.*changed since it was tiled"):
        run_experiment(load_cohort(root), root / "tiles", exp, "COAD", prof, root / "runs", device="cpu",
                       progress=False)

    _, ext, cv3, rec = stages()
    notes = _stale_notes(rec)
    assert len(notes) == 1 and f"{victim.slide_id}.h5" in notes[0] and "changed since it was tiled" in notes[0]
    assert not ext.loc[victim.slide_id, "skipped"] and ext.drop(victim.slide_id).skipped.all()
    # the victim now holds the donor's slide: same selection scores, same features
    with (h5py.File(root / "tiles" / f"{victim.slide_id}.h5") as v,
          h5py.File(root / "tiles" / f"{donor.slide_id}.h5") as d):
        np.testing.assert_array_equal(v["selection/shannon/scores"][:], d["selection/shannon/scores"][:])
        assert v.attrs["slide_fingerprint"] == file_fingerprint(victim.path)
    new_f = read_features(root / "tiles" / f"{victim.slide_id}.h5", "fe").global_
    np.testing.assert_array_equal(new_f, read_features(root / "tiles" / f"{donor.slide_id}.h5", "fe").global_)
    assert not np.array_equal(new_f, old_f)
    # the runs learnt from the old features: every fold was trained again
    assert cv3.run_dir == cv.run_dir
    assert all(p.stat().st_mtime_ns != stamp[p] for p in folds)


def test_extractor_trained_on_other_slides_is_trained_again(tmp_path, extractors):
    """A finished extractor checkpoint is reused only if its patches came from the same tiles."""
    from isg_core.cohorts.prepare import prepare_cohort
    from isg_core.config import get_profile
    from isg_core.features.train import load_checkpoint, train_config_for, train_extractor

    prof = get_profile("smoke")
    root = _copy_cohort(tmp_path / "cohort")
    prepare_cohort(root, config=prof.tiling, progress=False)
    cfg = train_config_for("global", prof.features)
    ck = train_extractor(root, cfg, root / "ext", progress=False, device="cpu")
    first = load_checkpoint(ck)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        assert train_extractor(root, cfg, root / "ext", progress=False, device="cpu") == ck
    assert not _stale_notes(rec) and load_checkpoint(ck)["tiles"] == first["tiles"]

    slides = sorted((root / "slides").glob("*.tiff"))
    shutil.copyfile(slides[1], slides[0])
    prepare_cohort(root, config=prof.tiling, progress=False)
    with pytest.warns(StaleResultWarning, match="trained on patches of other slide files"):
        train_extractor(root, cfg, root / "ext", progress=False, device="cpu")
    again = load_checkpoint(ck)
    assert again["tiles"] != first["tiles"] and again["step"] == cfg.steps


# --- predictions ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def smoke_bundle(tmp_path_factory):
    _smoke_or_skip()
    from isg_core.deploy.export import export_default_bundle

    return export_default_bundle("smoke", out=tmp_path_factory.mktemp("bundle") / "model.pt", progress=False)


def _values(rec: dict) -> dict[str, float]:
    return {g: v["log10_fpkm_uq_plus_1"] for g, v in rec["predictions"].items()}


def test_predict_redoes_a_replaced_slide_and_skips_an_unchanged_one(tmp_path, smoke_bundle):
    from isg_core.deploy.predict import predict_slides

    slides = sorted((SMOKE / "slides").glob("*.tiff"))
    a = tmp_path / "in" / "slide.tiff"
    a.parent.mkdir()
    shutil.copy2(slides[0], a)
    out = tmp_path / "out"
    first = predict_slides([a], smoke_bundle, out, device="cpu", progress=False)[0]
    assert not first["skipped"]
    stamp = (out / "slide.predictions.json").stat().st_mtime_ns
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        again = predict_slides([a], smoke_bundle, out, device="cpu", progress=False)[0]
    assert again["skipped"] and not _stale_notes(rec)
    assert (out / "slide.predictions.json").stat().st_mtime_ns == stamp
    assert _values(again) == _values(first)

    shutil.copyfile(slides[5], a)  # another slide, same path and name
    with pytest.warns(StaleResultWarning, match="made from another slide file"):
        redo = predict_slides([a], smoke_bundle, out, device="cpu", progress=False)[0]
    assert not redo["skipped"] and _values(redo) != _values(first)
    ref = predict_slides([slides[5]], smoke_bundle, tmp_path / "ref", device="cpu", progress=False)[0]
    assert _values(redo) == _values(ref)  # the new slide's own prediction, nothing carried over


# --- two slides, one name -----------------------------------------------------------------------------
@pytest.fixture
def same_stem(tmp_path):
    _smoke_or_skip()
    slides = sorted((SMOKE / "slides").glob("*.tiff"))
    a, b = tmp_path / "a" / "slide.tiff", tmp_path / "b" / "slide.tiff"
    for src, dst in ((slides[0], a), (slides[4], b)):
        dst.parent.mkdir()
        shutil.copy2(src, dst)
    return a, b


@pytest.mark.parametrize("command", ["tile", "select", "predict"])
def test_two_slides_with_one_name_are_refused_before_any_work(command, same_stem, tmp_path, capsys, smoke_bundle):
    a, b = same_stem
    out = tmp_path / "out"
    extra = ["--model", smoke_bundle, "--device", "cpu"] if command == "predict" else []
    for order in ((a, b), (b, a)):
        line = _one_error_line(capsys, [command, *order, "--out", out, *extra], order[1], order[0])
        assert "same name 'slide'" in line
    assert not out.exists() or not any(out.iterdir())


def test_the_same_slide_given_twice_is_done_once(same_stem, tmp_path, capsys):
    a, _ = same_stem
    assert main(["tile", str(a), str(tmp_path / ".." / tmp_path.name / "a" / "slide.tiff"), "--out",
                 str(tmp_path / "out")]) == 0
    assert capsys.readouterr().out.count("wrote") == 1


def test_tiling_into_a_folder_that_holds_another_slide_of_that_name(same_stem, tmp_path):
    a, b = same_stem
    out = tmp_path / "out"
    tile_to_h5(a, out, TilingConfig())
    with pytest.warns(StaleResultWarning, match=r"made from another file \(.*a/slide.tiff\)"):
        path, written = tile_to_h5(b, out, TilingConfig())
    assert written and read_tiling_h5(path).slide_fingerprint == file_fingerprint(b)


def test_manifest_ids_name_the_tiles_when_files_share_a_name(same_stem, tmp_path):
    from isg_core.cohorts.prepare import prepare_cohort
    from isg_core.config import get_profile
    from isg_core.data.manifest import write_manifest

    a, b = same_stem
    root = tmp_path / "cohort"
    root.mkdir()
    write_manifest(pd.DataFrame({"slide_id": ["S-A", "S-B"], "path": [str(a), str(b)], "cancer_type": ["LIHC"] * 2,
                                 "patient_id": ["P1", "P2"], "fold": [0, 1]}), root / "manifest.csv")
    df = prepare_cohort(root, config=get_profile("smoke").tiling, progress=False)
    assert sorted(df.slide_id) == ["S-A", "S-B"]
    ta, tb = read_tiling_h5(root / "tiles" / "S-A.h5"), read_tiling_h5(root / "tiles" / "S-B.h5")
    assert (ta.slide_id, tb.slide_id) == ("S-A", "S-B")
    assert ta.slide_fingerprint == file_fingerprint(a) and tb.slide_fingerprint == file_fingerprint(b)
    with h5py.File(root / "tiles" / "S-A.h5") as fa, h5py.File(root / "tiles" / "S-B.h5") as fb:
        assert not np.array_equal(fa["selection/shannon/scores"][:], fb["selection/shannon/scores"][:])


# --- one rule for a missing resolution -------------------------------------------------------------------
def _no_resolution(tmp_path: Path) -> dict[str, Path]:
    rgb = np.asarray(Image.open(sorted((SMOKE / "slides").glob("*.tiff"))[0]).convert("RGB"))[:600, :600]
    files = {"png": tmp_path / "x.png", "jpeg": tmp_path / "x.jpg", "tiff": tmp_path / "x.tiff",
             "tiled tiff": tmp_path / "xt.tiff"}
    Image.fromarray(rgb).save(files["png"])
    Image.fromarray(rgb).save(files["jpeg"], quality=90)
    tifffile.imwrite(files["tiff"], rgb, photometric="rgb")  # Pillow reads it
    # OpenSlide reads it
    tifffile.imwrite(files["tiled tiff"], rgb, photometric="rgb", tile=(256, 256), compression="jpeg")
    return files


@pytest.mark.parametrize("kind", ["png", "jpeg", "tiff", "tiled tiff"])
def test_a_file_without_resolution_is_refused_by_every_command_unless_given(kind, tmp_path, capsys, smoke_bundle):
    _smoke_or_skip()
    p = _no_resolution(tmp_path)[kind]
    out = tmp_path / "out"
    for argv in (["tile", p, "--out", out], ["select", p, "--out", out],
                 ["predict", p, "--model", smoke_bundle, "--out", out, "--device", "cpu"]):
        _one_error_line(capsys, argv, p.name, "no resolution", "--slide-mpp")
    assert not out.exists() or not any(out.iterdir())
    # a cohort: the manifest's mpp column is the same fix
    root = tmp_path / "cohort"
    root.mkdir()
    rows = f"slide_id,path,cancer_type,patient_id,fold\nS1,{p},LIHC,P1,0\n"
    (root / "manifest.csv").write_text(rows)
    _one_error_line(capsys, ["prepare", "--cohort", root, "--profile", "smoke", "--workers", "1"], p.name,
                    "no resolution")
    _one_error_line(capsys, ["check", root / "manifest.csv"], p.name, "no resolution")
    (root / "manifest.csv").write_text(rows.replace("fold\n", "fold,mpp\n").replace(",0\n", ",0,0.5\n"))
    assert main(["prepare", "--cohort", str(root), "--profile", "smoke", "--workers", "1"]) == 0
    t = read_tiling_h5(root / "tiles" / "S1.h5")
    assert t.slide_mpp == 0.5 and t.mpp_source == "argument"
    # given on the command line it works, and `info` only describes the file
    assert main(["tile", str(p), "--out", str(out), "--slide-mpp", "0.5"]) == 0
    assert main(["info", str(p)]) == 0
    assert "mpp unknown" in capsys.readouterr().out


def test_reading_at_another_mpp_is_a_different_input(pyramid_tiff, tmp_path):
    path, _ = pyramid_tiff
    out = tmp_path / "t"
    assert tile_to_h5(path, out, TilingConfig(), mpp=0.25)[1]
    assert not tile_to_h5(path, out, TilingConfig(), mpp=0.25)[1]
    with pytest.warns(StaleResultWarning, match="read at 0.25 mpp, now at 0.5"):
        h5, written = tile_to_h5(path, out, TilingConfig(), mpp=0.5)
    assert written and read_tiling_h5(h5).slide_mpp == 0.5


def test_a_selection_is_rescored_only_when_its_selector_or_threshold_changes(tmp_path, monkeypatch):
    _smoke_or_skip()
    import isg_core.cohorts.prepare as pipeline
    import isg_core.selection as selection
    from isg_core.cohorts.prepare import prepare_cohort
    from isg_core.config import get_profile

    root = _copy_cohort(tmp_path / "cohort")
    cfg = get_profile("smoke").tiling
    prepare_cohort(root, config=cfg, progress=False)
    calls, opened = [], []
    real = pipeline.score_slide_many
    # the scorer as the pipeline calls it (imported into isg_core.cohorts.prepare): one call per slide
    monkeypatch.setattr(pipeline, "score_slide_many", lambda *a, **k: calls.append(1) or real(*a, **k))
    real_one = pipeline._prepare_one
    monkeypatch.setattr(pipeline, "_prepare_one", lambda job: opened.append(job.slide_id) or real_one(job))
    assert (root / "tiles" / pipeline.PREPARED_STAMP).exists()
    again = prepare_cohort(root, config=cfg, progress=False)
    assert calls == [] and opened == []  # done, and found done from the record alone: no slide opened
    assert len(again) == 12 and again["n_kept_shannon"].ge(1).all()
    # a selection redone by hand with another threshold: the record no longer answers, the slide is checked
    h5 = root / "tiles" / f"{again.slide_id[0]}.h5"
    with h5py.File(h5, "r+") as f:
        f["selection/shannon"].attrs["threshold"] = "bpp:1"
    prepare_cohort(root, config=cfg, progress=False)
    assert len(opened) == 12 and len(calls) == 1  # every slide checked, the changed one rescored
    prepare_cohort(root, config=cfg, thresholds={"shannon": "bpp:9"}, progress=False)
    assert len(calls) == 13  # another threshold: every slide
    params = selection.ShannonSelector.params
    monkeypatch.setattr(selection.ShannonSelector, "params", lambda self: {**params(self), "compressor": "png"})
    prepare_cohort(root, config=cfg, thresholds={"shannon": "bpp:9"}, progress=False)
    assert len(calls) == 25  # another selector setting: every slide again


def test_a_confirmed_preparation_is_reused_until_a_file_is_rewritten(tmp_path, monkeypatch):
    _smoke_or_skip()
    from isg_core.cohorts import prepare as prep_mod
    from isg_core.config import get_profile
    from tests.helpers import counting

    prof = get_profile("smoke")
    root = _copy_cohort(tmp_path / "cohort")
    first = prep_mod.prepare_cohort(root, config=prof.tiling, progress=False)
    checks = counting(monkeypatch, prep_mod, "_check_prepared")
    records = counting(monkeypatch, prep_mod, "_files_token")
    again = [prep_mod.prepare_cohort(root, config=prof.tiling, progress=False) for _ in range(3)]
    assert checks == []  # the record saw these very files complete: no HDF5 opened
    assert len(records) == 1  # and within the process, not even the record is read again
    for a in again:
        pd.testing.assert_frame_equal(a, first)
    prep_mod._CONFIRMED.clear()  # a new process
    prep_mod.prepare_cohort(root, config=prof.tiling, progress=False)
    assert checks == []
    h5 = root / "tiles" / f"{first.slide_id.iloc[0]}.h5"
    st = h5.stat()
    os.utime(h5, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # rewritten (as far as a stat can tell)
    pd.testing.assert_frame_equal(prep_mod.prepare_cohort(root, config=prof.tiling, progress=False), first)
    assert len(checks) == 1  # checked, and the record updated ...
    prep_mod._CONFIRMED.clear()
    prep_mod.prepare_cohort(root, config=prof.tiling, progress=False)
    assert len(checks) == 1  # ... so the next process needs no check
    # a selection removed by hand: the file is rewritten, so the slide is checked and redone
    with h5py.File(h5, "r+") as f:
        del f["selection/shannon"]
    prep_mod.prepare_cohort(root, config=prof.tiling, progress=False)
    with h5py.File(h5, "r") as f:
        assert "selection/shannon/keep" in f
    # another selection asked for is another key: checked, not taken from the memo
    prep_mod.prepare_cohort(root, methods=("shannon", "otsu"), config=prof.tiling, progress=False)
    assert len(checks) == 3


def test_commands_asking_for_other_selections_do_not_undo_each_others_record(tmp_path, monkeypatch):
    """A study that asks for Shannon alone and a table that asks for every selector share the tiles:
    neither request makes the other tile or select again (each keeps its own record), and the
    subset's rows are the full preparation's rows for its columns."""
    _smoke_or_skip()
    from isg_core.cohorts import prepare as prep_mod
    from isg_core.config import get_profile
    from tests.helpers import counting

    prof = get_profile("smoke")
    root = _copy_cohort(tmp_path / "cohort")
    both = prep_mod.prepare_cohort(root, methods=("shannon", "otsu"), config=prof.tiling, progress=False)
    redo = counting(monkeypatch, prep_mod, "_prepare_one")
    for _ in range(2):
        prep_mod._CONFIRMED.clear()  # a new process each time
        one = prep_mod.prepare_cohort(root, methods=("shannon",), config=prof.tiling, progress=False)
        prep_mod._CONFIRMED.clear()
        again = prep_mod.prepare_cohort(root, methods=("shannon", "otsu"), config=prof.tiling, progress=False)
    assert redo == []  # no slide tiled or selected again
    pd.testing.assert_frame_equal(again, both)
    pd.testing.assert_frame_equal(one, both[list(one.columns)])
    checks = counting(monkeypatch, prep_mod, "_check_prepared")
    prep_mod._CONFIRMED.clear()
    prep_mod.prepare_cohort(root, methods=("shannon",), config=prof.tiling, progress=False)
    assert checks == []  # both records kept: the subset's is answered without opening a file
    # a record in the one-request format of earlier versions is still read
    rec = json.loads((root / "tiles" / prep_mod.PREPARED_STAMP).read_text())
    key, entry = list(rec["records"].items())[-1]
    (root / "tiles" / prep_mod.PREPARED_STAMP).write_text(json.dumps({"key": key, **entry}))
    prep_mod._CONFIRMED.clear()
    prep_mod.prepare_cohort(root, methods=("shannon",), config=prof.tiling, progress=False)
    assert checks == [] and redo == []


def test_a_finished_extraction_is_answered_from_its_receipt_until_a_file_changes(tmp_path, monkeypatch):
    _smoke_or_skip()
    from isg_core.cohorts.prepare import prepare_cohort
    from isg_core.config import get_profile
    from isg_core.features import extract as ex
    from tests.helpers import counting

    root = _copy_cohort(tmp_path / "cohort")
    prepare_cohort(root, config=get_profile("smoke").tiling, progress=False)
    enc = ex.DescriptorEncoder()
    first = ex.extract_cohort(root, enc, progress=False)
    assert not first.skipped.any() and list((root / "tiles" / ex.EXTRACTED).glob("descriptor-*.json"))
    slides = counting(monkeypatch, ex, "extract_slide")
    again = ex.extract_cohort(root, enc, progress=False)
    assert slides == []  # answered from the receipt: no HDF5 opened
    assert again.skipped.all() and list(again.slide_id) == list(first.slide_id)
    np.testing.assert_array_equal(again.n, first.n)
    np.testing.assert_allclose(again.seconds, first.seconds)
    # one HDF5 rewritten (another feature set written into it): every slide is checked, nothing re-encoded
    sid = first.slide_id.iloc[0]
    h5 = root / "tiles" / f"{sid}.h5"
    with h5py.File(h5, "r+") as f:
        f.attrs["touched"] = 1
    checked = ex.extract_cohort(root, enc, progress=False)
    assert len(slides) == len(first) and checked.skipped.all()
    ex.extract_cohort(root, enc, progress=False)
    assert len(slides) == len(first)  # the check wrote a new receipt
    # features removed by hand behind an unchanged receipt's back cannot hide: removing them rewrites the file
    with h5py.File(h5, "r+") as f:
        del f["features/descriptor"]
    redone = ex.extract_cohort(root, enc, progress=False)
    assert list(redone.slide_id[~redone.skipped]) == [sid]
    # a slide file replaced by another: the receipt misses and the slide's check refuses it
    slide = Path(pd.read_csv(root / "manifest.csv").set_index("slide_id").loc[sid, "path"])
    slide = slide if slide.is_absolute() else root / slide
    other = Path(pd.read_csv(root / "manifest.csv").path.iloc[1])
    shutil.copy(other if other.is_absolute() else root / other, slide)
    with pytest.raises(IsgError):
        ex.extract_cohort(root, enc, progress=False)
    # overwrite=True never reads a receipt
    assert not ex.extract_cohort(root, enc, progress=False, overwrite=True, slide_ids=[first.slide_id.iloc[1]]
                                 ).skipped.any()
