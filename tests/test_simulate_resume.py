"""An interrupted ``isg simulate`` resumes (isg_core.simulate.records).

One tiny cohort (6 slides of 768 px) is made once; each test works on a copy of it (``copy2``
keeps the files' mtimes, so the copy's records still match its files: a moved cohort resumes)
from which ``cohort.json`` is removed, as a run killed before its tables leaves it.  The
rendering part of ``render_slide`` is counted: a rerun must render exactly the slides whose
record is missing or does not match, and write tables byte-identical to the first run's.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import warnings
from pathlib import Path

import pandas as pd
import pytest

from isg_core.config import TilingConfig
from isg_core.data.samples import SAMPLES
from isg_core.data.tiling import StaleResultWarning
from isg_core.paths import samples_dir

_needed = [samples_dir() / SAMPLES[k].filename for k in ("cmu", "tiatoolbox")]
pytestmark = pytest.mark.skipif(
    not all(p.exists() for p in _needed),
    reason="ISG-Sim builds its texture from data/samples; run `isg fetch-samples` first",
)

TABLES = ("manifest.csv", "expression.tsv", "truth.csv", "noise_ceiling.csv", "labels.csv", "patches.csv",
          "cohort.json")
N, SEED, SIZE = 6, 7, 768


def _make(out: Path) -> Path:
    from isg_core.simulate import simulate_cohort

    return simulate_cohort(out, n_slides=N, seed=SEED, size=SIZE, workers=1, tiling=TilingConfig(), progress=False)


@pytest.fixture(scope="module")
def first(tmp_path_factory) -> Path:
    """The uninterrupted run."""
    return _make(tmp_path_factory.mktemp("resume") / "first")


@pytest.fixture
def interrupted(first, tmp_path) -> Path:
    """A copy of ``first`` without ``cohort.json``: slides, maps and records there, tables not final."""
    out = tmp_path / "again"
    shutil.copytree(first, out)
    (out / "cohort.json").unlink()
    return out


@pytest.fixture
def rendered(monkeypatch) -> list[str]:
    """The slide ids that ``render_slide`` renders (rather than reads back from their record)."""
    from isg_core.simulate import cohort

    ids: list[str] = []
    real = cohort._render

    def counted(spec):
        ids.append(spec.slide_id)
        return real(spec)

    monkeypatch.setattr(cohort, "_render", counted)
    return ids


def _slide_ids(out: Path) -> list[str]:
    return pd.read_csv(out / "manifest.csv")["slide_id"].tolist()


def _assert_same_tables(a: Path, b: Path) -> None:
    for name in TABLES:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_rerun_renders_only_the_slide_without_record(first, interrupted, rendered):
    sid = _slide_ids(first)[2]
    (interrupted / "records" / f"{sid}.json").unlink()
    _make(interrupted)
    assert rendered == [sid]
    _assert_same_tables(first, interrupted)
    assert (interrupted / "records" / f"{sid}.json").exists()  # recorded again for the next rerun
    # the rerun's records are those of the first run: a third run renders nothing
    (interrupted / "cohort.json").unlink()
    _make(interrupted)
    assert rendered == [sid]
    _assert_same_tables(first, interrupted)


def test_record_of_a_replaced_tiff_is_not_reused(first, interrupted, rendered):
    """Other bytes at the same path, of the same size and with the old mtime put back."""
    sid = _slide_ids(first)[4]
    tiff = interrupted / "slides" / f"{sid}.tiff"
    st = tiff.stat()
    data = bytearray(tiff.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one byte in the middle of the image data
    tiff.write_bytes(bytes(data))
    os.utime(tiff, ns=(st.st_atime_ns, st.st_mtime_ns))
    _make(interrupted)
    assert rendered == [sid]
    assert tiff.read_bytes() == (first / "slides" / f"{sid}.tiff").read_bytes()
    _assert_same_tables(first, interrupted)


@pytest.mark.parametrize("damage", ["garbage", "truncated", "int column holds a float", "no identity"])
def test_damaged_record_warns_and_renders_again(first, interrupted, rendered, damage):
    sid = _slide_ids(first)[0]
    f = interrupted / "records" / f"{sid}.json"
    text = f.read_text()
    if damage == "garbage":
        f.write_bytes(b"\x00\xffnot a record")
    elif damage == "truncated":
        f.write_text(text[: len(text) // 2])
    elif damage == "int column holds a float":
        rec = json.loads(text)
        rec["result"]["patches"]["values"][1][0] = 0.5  # column x (int64)
        f.write_text(json.dumps(rec))
    else:
        rec = json.loads(text)
        del rec["identity"]
        f.write_text(json.dumps(rec))
    with pytest.warns(StaleResultWarning, match="damaged record"):
        _make(interrupted)
    assert rendered == [sid]
    _assert_same_tables(first, interrupted)
    json.loads(f.read_text())  # replaced by a good one


def test_record_matches_only_its_slide_and_files(first, tmp_path):
    """Spec fields that decide the slide and the generator version are the record's identity;
    the slide's row index and its folder are not (set from the spec asking); a missing map voids it."""
    from isg_core.simulate.cohort import GENERATOR_VERSION, SlideSpec
    from isg_core.simulate.records import load_record

    sid = _slide_ids(first)[1]
    rec = json.loads((first / "records" / f"{sid}.json").read_text())
    spec = SlideSpec(index=1, out=str(first), **rec["identity"]["spec"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a record for another slide is not a damaged one
        assert load_record(spec, GENERATOR_VERSION) is not None
        for change in ({"seed": SEED + 1}, {"size": SIZE + 256}, {"global_size_l0": 512}, {"layout": "wsi"}):
            assert load_record(dataclasses.replace(spec, **change), GENERATOR_VERSION) is None, change
        assert load_record(spec, GENERATOR_VERSION + "-other") is None
        moved = tmp_path / "moved"
        shutil.copytree(first, moved)
        got = load_record(dataclasses.replace(spec, index=9, out=str(moved)), GENERATOR_VERSION)
        assert got["index"] == 9 and got["path"] == str(moved / "slides" / f"{sid}.tiff")
        (moved / "maps" / f"{sid}.npz").unlink()
        assert load_record(dataclasses.replace(spec, out=str(moved)), GENERATOR_VERSION) is None


def test_record_gives_back_exactly_what_render_returned(tmp_path):
    from isg_core.simulate.cohort import GENERATOR_VERSION, SlideSpec, render_slide
    from isg_core.simulate.records import _decode_frame, _encode_frame, load_record

    spec = SlideSpec(3, "S-DX1", "S", "COAD", 1, 5, 1, SEED, SIZE, 256, str(tmp_path), "section")
    made = render_slide(spec)
    got = load_record(spec, GENERATOR_VERSION)
    assert got is not None and list(got) == list(made)
    for k in made:
        if k == "patches":
            pd.testing.assert_frame_equal(got[k], made[k], check_exact=True)
            assert list(got[k].dtypes) == list(made[k].dtypes)
        else:
            assert got[k] == made[k] and type(got[k]) is type(made[k]), k
    empty = made["patches"].iloc[:0]
    back = _decode_frame(json.loads(json.dumps(_encode_frame(empty))))
    assert list(back.columns) == list(empty.columns) and list(back.dtypes) == list(empty.dtypes)
