"""Bad input, thrown on purpose at every `isg` command that reads it.

The contract (README, ``isg_core.cli``): bad input gives exit status 2 and ONE line on stderr,
``isg: error: <file>: <problem>``, naming the offending file; never a traceback, never an
``isg: internal error`` (status 1 is for bugs, not for bad files); and nothing half-written:
outputs are written under ``.<name>.<random>.tmp<suffix>`` and renamed, so after a failure the
output folder holds no temporary file and no output for the failed item.

Odd inputs that are legitimate (RGBA, greyscale and 16-bit images) must *work*.  Everything
here is tiny (a few KB, smoke profile) so the file runs in well under a minute.  The slides,
cohort and extractor these tests need are built here, once per module (a 3-slide ISG-Sim cohort
and a global extractor trained for 2 steps: 5-15 s on 2 cores), so nothing skips for want of
``make reproduce``; permission errors are injected (``tests/helpers.py``), so they are tested as
root too.
"""
from __future__ import annotations

import math
import pickle
import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from isg_core.cli import main
from isg_core.errors import IsgError
from tests.helpers import deadline, deny

MANIFEST_HEADER = "slide_id,path,cancer_type,patient_id,fold\n"
_BAR = re.compile(r"\d+%\|")  # a tqdm progress bar (cohort commands draw them on stderr)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# --- the contract ---------------------------------------------------------------------------------
def leftovers(*dirs: Path) -> list[str]:
    """Temporary files of atomic writes (``.<name>.<random>.tmp<suffix>``) anywhere under ``dirs``."""
    return [str(p) for d in dirs if d.exists() for p in d.rglob(".*") if ".tmp" in p.name]


def error_line(capsys, argv: list[str], *names: str) -> str:
    """Run ``isg argv`` in-process; it must fail with status 2 and exactly one stderr line
    (progress bars aside) ``isg: error: ...`` naming each of ``names``; return that line."""
    rc = main([str(a) for a in argv])
    err = capsys.readouterr().err
    visible = [seg.split("\r")[-1] for seg in err.split("\n")]  # what a terminal shows
    lines = [ln for ln in visible if ln.strip() and not _BAR.search(ln)]
    assert "Traceback" not in err and "internal error" not in err, err
    assert rc == 2, (rc, err)
    assert len(lines) == 1, err
    line = lines[0]
    assert line.startswith("isg: error:"), line
    for n in names:
        assert n in line, (n, line)
    return line


# --- bad slides -----------------------------------------------------------------------------------
def _random(name: str):
    def make(d: Path) -> Path:
        p = d / name
        p.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
        return p
    return make


def _truncated_cmu(d: Path, cmu: Path) -> Path:
    p = d / "trunc.svs"
    data = cmu.read_bytes()
    p.write_bytes(data[: int(len(data) * 0.3)])
    return p


def _tiff(path: Path, tags: list[tuple[int, int, int, int]], extra: bytes = b"") -> Path:
    """A little-endian TIFF of one IFD (``(tag, type, count, value or offset)``, sorted), then ``extra``."""
    out = b"II*\x00" + struct.pack("<IH", 8, len(tags))
    for tag, typ, count, value in tags:  # type 3 = SHORT (inline, left-justified), 4 = LONG
        out += struct.pack("<HHI", tag, typ, count) + (struct.pack("<HH", value, 0) if typ == 3 and count == 1
                                                       else struct.pack("<I", value))
    path.write_bytes(out + struct.pack("<I", 0) + extra)
    return path


def header_only_tiff(path: Path, w: int = 1_000_000, h: int = 1_000_000, tile: int = 16384) -> Path:
    """A tiled RGB TIFF whose header claims ``w`` x ``h`` px but holds no pixel data: every tile
    offset and byte count is 0, and OpenSlide opens it and reads the missing tiles as blank.
    Large tiles keep the offset tables small (62 x 62 tiles: a 31 KB file for 1e12 px)."""
    nt = math.ceil(w / tile) * math.ceil(h / tile)
    bps = 8 + 2 + 10 * 12 + 4  # BitsPerSample (8, 8, 8) right after the 10-tag IFD, then the two tables
    tags = [(256, 4, 1, w), (257, 4, 1, h), (258, 3, 3, bps), (259, 3, 1, 1), (262, 3, 1, 2), (277, 3, 1, 3),
            (322, 4, 1, tile), (323, 4, 1, tile), (324, 4, nt, bps + 6), (325, 4, nt, bps + 6 + 4 * nt)]
    return _tiff(path, tags, struct.pack("<3H", 8, 8, 8) + b"\0" * (8 * nt))


def _striped_header_only(d: Path) -> Path:
    """The same claim in a one-strip greyscale TIFF: OpenSlide does not take it, Pillow would."""
    return _tiff(d / "hugestrip.tiff", [(256, 4, 1, 10**6), (257, 4, 1, 10**6), (258, 3, 1, 8), (259, 3, 1, 1),
                                        (262, 3, 1, 1), (273, 4, 1, 0), (277, 3, 1, 1), (278, 4, 1, 10**6),
                                        (279, 4, 1, 0)])


def _empty(d: Path) -> Path:
    (d / "empty.svs").write_bytes(b"")
    return d / "empty.svs"


def _directory(d: Path) -> Path:
    (d / "folder.svs").mkdir()
    return d / "folder.svs"


BAD_SLIDES = {  # name: (make(dir) -> path, problem in the message)
    "random.svs": (_random("random.svs"), "not a readable slide"),
    "random.tiff": (_random("random.tiff"), "corrupt or truncated"),
    "random.png": (_random("random.png"), "corrupt or truncated"),
    "truncated.svs": ("cmu", "corrupt or truncated"),
    "empty": (_empty, "file is empty"),
    "header-only 1e6 px tiled tiff": (lambda d: header_only_tiff(d / "huge.tiff"), "header claims 1000000x1000000 px"),
    "header-only 1e6 px stripped tiff": (_striped_header_only, "too large to read whole"),
    "directory": (_directory, "is a directory"),
    "missing": (lambda d: d / "missing.svs", ""),  # "no such file" / "slide not found" / "names a missing file"
}


@pytest.fixture
def bad_slide(request, tmp_path):
    make, problem = BAD_SLIDES[request.param]
    d = tmp_path / "in"
    d.mkdir()
    path = _truncated_cmu(d, request.getfixturevalue("cmu_path")) if make == "cmu" else make(d)
    return path, problem


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    from isg_core.deploy.export import export_default_bundle

    # trains the smoke extractors and cross-validation in the smoke cohort when they are not there
    # yet (process pools): minutes on a bare checkout, never a hang
    with deadline(900, "export_default_bundle('smoke')"):
        return export_default_bundle("smoke", out=tmp_path_factory.mktemp("bundle") / "model.pt", progress=False)


@pytest.mark.parametrize("bad_slide", list(BAD_SLIDES), indirect=True)
@pytest.mark.parametrize("command", ["info", "tile", "select", "check"])
def test_bad_slide(command, bad_slide, tmp_path, capsys):
    path, problem = bad_slide
    out = tmp_path / "out"
    if command == "check":
        manifest = tmp_path / "manifest.csv"
        manifest.write_text(MANIFEST_HEADER + f"S1,{path},LIHC,P1,0\n")
        argv = ["check", manifest]
    else:
        argv = [command, path] + ([] if command == "info" else ["--out", out])
    error_line(capsys, argv, path.name, problem)
    assert not out.exists() or not any(out.iterdir()), sorted(out.iterdir())  # nothing written at all


@pytest.mark.parametrize("bad_slide", ["random.svs", "truncated.svs", "header-only 1e6 px tiled tiff", "directory",
                                       "missing"], indirect=True)
def test_bad_slide_predict(bundle, bad_slide, tmp_path, capsys):
    path, problem = bad_slide
    out = tmp_path / "pred"
    error_line(capsys, ["predict", path, "--model", bundle, "--out", out, "--device", "cpu"], path.name, problem)
    assert not out.exists() or not any(out.iterdir()), sorted(out.iterdir())


def test_header_only_tiff_is_refused_before_any_read(tmp_path, monkeypatch):
    """The 1e12 px claim is refused when the slide is opened: no region is read, nothing is tiled."""
    from isg_core.data import slides

    p = header_only_tiff(tmp_path / "huge.tiff")
    assert p.stat().st_size < 50_000
    monkeypatch.setattr(slides._OpenSlideReader, "read", lambda *a: pytest.fail("read a region of a header-only slide"))
    with pytest.raises(IsgError) as ei:
        slides.open_slide(p)
    assert "huge.tiff" in str(ei.value) and "holds only" in str(ei.value)


# --- odd but legitimate slides --------------------------------------------------------------------
def test_one_pixel_slides_open_but_cannot_be_tiled(bundle, tmp_path, capsys):
    png, tif = tmp_path / "dot.png", tmp_path / "dot.tiff"
    Image.new("RGB", (1, 1), (200, 100, 50)).save(png)
    tifffile.imwrite(tif, np.full((1, 1, 3), 90, np.uint8), photometric="rgb")
    assert main(["info", str(png), str(tif)]) == 0  # a valid image: `info` describes it
    assert capsys.readouterr().out.count("1x1 px") == 2
    for p in (png, tif):
        mpp = ["--slide-mpp", "0.5"]  # neither file carries a resolution
        error_line(capsys, ["tile", p, "--out", tmp_path / "out", *mpp], p.name, "smaller than one 256 px patch")
        error_line(capsys, ["select", p, "--out", tmp_path / "out", *mpp], p.name, "smaller than one 256 px patch")
        error_line(capsys, ["predict", p, "--model", bundle, "--out", tmp_path / "out", "--device", "cpu", *mpp],
                   p.name, "smaller than one 256 px patch")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_rgba_grey_and_16bit_slides_work(tmp_path, capsys):
    """RGBA is composited on white, greyscale becomes grey RGB, 16-bit RGB is scaled to 8 bits;
    all three tile and select like any slide."""
    from isg_core.data.slides import open_slide

    rng = np.random.default_rng(1)
    rgba = rng.integers(0, 256, (512, 512, 4), dtype=np.uint8)
    grey = rng.integers(0, 256, (512, 512), dtype=np.uint8)
    rgb16 = rng.integers(0, 65536, (512, 512, 3), dtype=np.uint16)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    Image.fromarray(grey, "L").save(tmp_path / "grey.png")
    tifffile.imwrite(tmp_path / "rgb16.tiff", rgb16, photometric="rgb")
    a = rgba[..., 3:].astype(float) / 255
    expected = {"rgba.png": rgba[..., :3] * a + 255 * (1 - a), "grey.png": np.repeat(grey[..., None], 3, 2),
                "rgb16.tiff": rgb16 / 257.0}
    for name, want in expected.items():
        with open_slide(tmp_path / name, mpp=0.5) as s:
            got = s.read_region(0, 0, 512, 512)
        assert got.dtype == np.uint8 and got.shape == (512, 512, 3)
        assert np.abs(got - want).max() <= 1.5, name
        argv = ["select", str(tmp_path / name), "--out", str(tmp_path / "out"), "--slide-mpp", "0.5"]
        assert main(argv) == 0, capsys.readouterr().err
        assert (tmp_path / "out" / (name.split(".")[0] + ".h5")).exists()
    assert capsys.readouterr().err.count("isg: error") == 0
    assert not leftovers(tmp_path / "out")


# --- this module's own cohort and extractor ---------------------------------------------------------
@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """A private ISG-Sim cohort of 3 slides of 512 px (one per cancer type), tiled and selected as
    `isg prepare` does, with a global extractor trained for 2 steps at the smoke sizes and its
    features (`isg extract`): what the smoke cohort gave these tests, built in 5-15 s."""
    from isg_core.cohorts.prepare import prepare_cohort
    from isg_core.config import get_profile
    from isg_core.features.train import train_config_for, train_extractor
    from isg_core.simulate import simulate_cohort

    prof = get_profile("smoke")
    root = tmp_path_factory.mktemp("bad-input") / "cohort"
    simulate_cohort(root, n_slides=3, seed=0, size=512, workers=1, tiling=prof.tiling, progress=False)
    prepare_cohort(root, methods=["shannon"], config=prof.tiling, workers=1, progress=False)  # = `isg prepare`
    ck = train_extractor(root, train_config_for("global", prof.features, steps=2), root / "extractors" / "global",
                         progress=False, device="cpu")
    assert main(["extract", "--cohort", str(root), "--profile", "smoke", "--global", str(ck), "--device", "cpu"]) == 0
    return root


@pytest.fixture(scope="module")
def checkpoint(built) -> Path:
    """A real (tiny) global extractor checkpoint."""
    return built / "extractors" / "global" / "checkpoint.pt"


@pytest.fixture(scope="module")
def slide(built) -> str:
    """A real (small) ISG-Sim slide."""
    return str(built / "slides" / "ISGSIM-LIHC-0001-DX1.tiff")


# --- bad manifests --------------------------------------------------------------------------------
BAD_MANIFESTS = {  # name: (make(slide path) -> text or bytes, problem)
    "missing columns": (lambda s: f"slide_id,path,fold\nS1,{s},0\n", "lacks column(s) cancer_type, patient_id"),
    "duplicate ids": (lambda s: MANIFEST_HEADER + f"S1,{s},LIHC,P1,0\nS1,{s},LIHC,P1,0\n",
                      "'S1' appears more than once"),
    "missing slide": (lambda s: MANIFEST_HEADER + "S1,gone.svs,LIHC,P1,0\n", "names a missing file"),
    "empty file": (lambda s: "", "not a readable CSV"),
    "header only": (lambda s: MANIFEST_HEADER, "no slides"),
    "binary": (lambda s: np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8).tobytes(),
               "not a readable CSV"),
    "fold not an integer": (lambda s: MANIFEST_HEADER + f"S1,{s},LIHC,P1,one\n", "fold must be a non-negative integer"),
    "fractional fold": (lambda s: MANIFEST_HEADER + f"S1,{s},LIHC,P1,1.5\n", "fold must be a non-negative integer"),
}


@pytest.mark.parametrize("case", list(BAD_MANIFESTS))
@pytest.mark.parametrize("command", ["check", "prepare", "extract", "cv", "export-model", "table"])
def test_bad_manifest(command, case, slide, checkpoint, tmp_path, capsys):
    make, problem = BAD_MANIFESTS[case]
    content = make(slide)
    cohort = tmp_path / "cohort"
    cohort.mkdir()
    m = cohort / "manifest.csv"
    m.write_bytes(content) if isinstance(content, bytes) else m.write_text(content)
    argv = {"check": ["check", m],
            "prepare": ["prepare", "--cohort", cohort, "--profile", "smoke"],
            "extract": ["extract", "--cohort", cohort, "--profile", "smoke", "--global", checkpoint, "--device", "cpu"],
            "cv": ["cv", "--cohort", cohort, "--profile", "smoke", "--device", "cpu"],
            "export-model": ["export-model", "--cohort", cohort, "--profile", "smoke", "--device", "cpu"],
            "table": ["table", "1", "--cohort", cohort, "--profile", "smoke", "--device", "cpu"]}[command]
    error_line(capsys, argv, "manifest.csv", problem)
    assert sorted(p.name for p in cohort.iterdir()) == ["manifest.csv"]  # no tiles/, runs/ ... started


# --- bad expression tables (`isg check --expression`) ---------------------------------------------
def _matrix(rows: dict[str, list[str]], ids: list[str] | None = None) -> str:
    from isg_core.config import ALL_GENES, GENE_ENSEMBL

    ids = ids or [GENE_ENSEMBL[g] for g in ALL_GENES]
    return "\n".join(["slide_id\t" + "\t".join(ids)] + [f"{k}\t" + "\t".join(v) for k, v in rows.items()]) + "\n"


N_GENES = 10
BAD_EXPRESSION = {  # the merged-matrix cases tests/test_expression.py covers on load_targets, end to end
    "slide missing": (_matrix({"S2": ["1"] * N_GENES}), "lacks slide S1"),
    "non-numeric": (_matrix({"S1": ["abc"] + ["1"] * (N_GENES - 1)}), "non-numeric value 'abc' for slide S1"),
    "wrong gene ids": (_matrix({"S1": ["1"] * N_GENES}, [f"ENSG{i:011d}" for i in range(N_GENES)]), "lacks gene"),
    "empty file": ("", "is empty"),
    "binary": (np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8).tobytes(), "not UTF-8 text"),
    "header only": (_matrix({}), "no rows"),
}


@pytest.mark.parametrize("case", list(BAD_EXPRESSION))
def test_check_bad_expression(case, slide, tmp_path, capsys):
    content, problem = BAD_EXPRESSION[case]
    (tmp_path / "manifest.csv").write_text(MANIFEST_HEADER + f"S1,{slide},LIHC,P1,0\n")
    f = tmp_path / "expr.tsv"
    f.write_bytes(content) if isinstance(content, bytes) else f.write_text(content)
    error_line(capsys, ["check", tmp_path / "manifest.csv", "--expression", f], "expr.tsv", problem)


def test_check_star_folder_with_truncated_file(slide, tmp_path, capsys):
    from tests.test_expression import STAR, make_gdc_download

    root, sheet = make_gdc_download(tmp_path)
    sid = "TCGA-AA-AAAA-01Z-00-DX1.AAAAAAAA-0000-0000-0000-000000000000"
    (tmp_path / "manifest.csv").write_text(MANIFEST_HEADER + f"{sid},{slide},LIHC,TCGA-AA-AAAA,0\n")
    argv = ["check", tmp_path / "manifest.csv", "--expression", root, "--sample-sheet", sheet]
    assert main([str(a) for a in argv]) == 0, capsys.readouterr().err
    capsys.readouterr()
    f = root / "f1" / f"u1.{STAR}"
    full = f.read_bytes()
    for frac in (0.5, 0.97):  # cut inside a gene row, and inside the very last row
        f.write_bytes(full[: int(len(full) * frac)])
        error_line(capsys, argv, f.name, "STAR-Counts file is truncated")
    error_line(capsys, argv[:-2], "gdc", "needs the GDC sample sheet")


# --- bad checkpoints and tile files in a cohort ---------------------------------------------------
@pytest.fixture
def cohort(built, tmp_path):
    """A copy of this module's cohort (slides, tiles with features, expression) for one test: ~1 MB."""
    root = tmp_path / "cohort"
    root.mkdir()
    for name in ("manifest.csv", "expression.tsv", "cohort.json", "slides", "tiles"):
        src = built / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, root / name)
    return root


def test_extract_bad_checkpoints(cohort, checkpoint, tmp_path, capsys):
    real = checkpoint
    junk, cut = tmp_path / "junk.pt", tmp_path / "cut.pt"
    junk.write_bytes(np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8).tobytes())
    cut.write_bytes(real.read_bytes()[: real.stat().st_size * 3 // 10])
    for ck in (junk, cut, tmp_path):  # random bytes, a truncated real checkpoint, a folder
        error_line(capsys, ["extract", "--cohort", cohort, "--profile", "smoke", "--global", ck, "--device", "cpu"],
                   ck.name, "corrupt or unreadable checkpoint")
    error_line(capsys, ["extract", "--cohort", cohort, "--profile", "smoke", "--global", tmp_path / "none.pt"],
               "none.pt", "checkpoint not found")
    assert not leftovers(cohort)


def _corrupt_first_h5(cohort: Path, how: str) -> Path:
    sid = (cohort / "manifest.csv").read_text().splitlines()[1].split(",")[0]
    h5 = cohort / "tiles" / f"{sid}.h5"
    data = h5.read_bytes()
    h5.write_bytes(np.random.default_rng(0).integers(0, 256, 2000, dtype=np.uint8).tobytes() if how == "random"
                   else data[: len(data) // 2])
    return h5


@pytest.mark.parametrize("how", ["random", "truncated"])
def test_corrupt_tile_file_is_named_by_extract_and_cv_and_redone_by_prepare(cohort, checkpoint, how, capsys):
    h5 = _corrupt_first_h5(cohort, how)
    ck = checkpoint
    error_line(capsys, ["extract", "--cohort", cohort, "--profile", "smoke", "--global", ck, "--device", "cpu"],
               h5.name, "corrupt or incomplete tiling file")
    error_line(capsys, ["cv", "--cohort", cohort, "--profile", "smoke", "--device", "cpu"], h5.name, "cannot read")
    assert not leftovers(cohort)
    # `isg prepare` does not trust it: the tiling is made again and the selection added
    assert main(["prepare", "--cohort", str(cohort), "--profile", "smoke", "--workers", "1"]) == 0
    from isg_core.data.tiling import read_tiling_h5
    from isg_core.selection import read_selection

    assert read_tiling_h5(h5).n_patches > 0 and read_selection(h5, "shannon")[1].size > 0
    assert not leftovers(cohort)


def test_isg_error_pickles_intact():
    """An IsgError raised in a worker process (`isg prepare --workers N`) reaches the parent pickled:
    it must come back as itself, with its path, its problem and its one-line message."""
    for path, problem, text in (("a.svs", "boom", "a.svs: boom"), (None, "no file involved", "no file involved")):
        e = pickle.loads(pickle.dumps(IsgError(path, problem)))
        assert type(e) is IsgError
        assert e.path == path and e.problem == problem and str(e) == text and e.args == (text,)
    e = pickle.loads(pickle.dumps(IsgError(Path("/x/b.tiff"), "corrupt or truncated")))
    assert e.path == "/x/b.tiff" and str(e) == "/x/b.tiff: corrupt or truncated"


def test_prepare_with_workers_reports_a_bad_slide(cohort, capsys):
    """`isg prepare` tiles in worker processes: a slide's IsgError must cross the process boundary
    intact (else the pool breaks: 'internal error: BrokenProcessPool' and a stray temporary file)."""
    sid = (cohort / "manifest.csv").read_text().splitlines()[2].split(",")[0]  # the second slide
    bad = cohort / "slides" / f"{sid}.tiff"
    bad.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    (cohort / "tiles" / f"{sid}.h5").unlink()  # the other slides' tiles are current: skipped
    with deadline(120, "isg prepare --workers 2"):
        error_line(capsys, ["prepare", "--cohort", cohort, "--profile", "smoke", "--workers", "2"], bad.name,
                   "corrupt or truncated")
    assert not leftovers(cohort)
    assert not (cohort / "tiles" / f"{sid}.h5").exists()


# --- bad output paths -----------------------------------------------------------------------------
@pytest.mark.parametrize("command", ["tile", "select", "simulate"])
def test_output_path_is_a_file(command, slide, tmp_path, capsys):
    f = tmp_path / "taken"
    f.write_text("x")
    for out in (f, f / "sub"):
        argv = (["simulate", "--out", out, "--slides", "3", "--size", "256"] if command == "simulate"
                else [command, slide, "--out", out])
        error_line(capsys, argv, str(out))
    assert f.read_text() == "x" and not leftovers(tmp_path)


def test_predict_output_path_is_a_file(bundle, slide, tmp_path, capsys):
    f = tmp_path / "taken"
    f.write_text("x")
    error_line(capsys, ["predict", slide, "--model", bundle, "--out", f, "--device", "cpu"], "taken")


def test_read_only_output_dir(slide, tmp_path, capsys, monkeypatch):
    """An output folder this user may not write to.  Root (CI) ignores permission bits, so the
    refusal is injected (EACCES from os.access, os.open, open, mkdir, rename); a real chmod, run by
    a user the bits bind, is tests/test_faults.py::test_unreadable_slide_and_read_only_output_folder_give_one_line."""
    ro = tmp_path / "ro"
    ro.mkdir()
    deny(monkeypatch, ro, write=True)
    error_line(capsys, ["tile", slide, "--out", ro], "ro", "not writable")
    assert not any(ro.iterdir())


# --- bad arguments --------------------------------------------------------------------------------
@pytest.mark.parametrize("args, problem", [
    (["--slides", "-3"], "--slides must be at least 1"),
    (["--slides", "3", "--size", "10"], "--size must be at least 256"),
    (["--slides", "3", "--size", "100000"], "--size must be at most 16384"),
    (["--slides", "3", "--seed", "-1"], "--seed must be a non-negative integer"),
    ([], "give --out and --slides"),
])
def test_simulate_bad_args(args, problem, tmp_path, capsys):
    out = tmp_path / "sim"
    argv = ["simulate"] + (["--out", out] if args else []) + args
    error_line(capsys, argv, problem)
    assert not out.exists()


@pytest.mark.parametrize("mpp, problem", [("nan", "tiling mpp must be a positive number"), ("inf", "positive number"),
                                          ("1e-9", "far finer than the scan")])
def test_tile_absurd_mpp_is_refused_fast(mpp, problem, slide, tmp_path, capsys):
    error_line(capsys, ["tile", slide, "--out", tmp_path / "o", "--mpp", mpp], problem)
    assert not (tmp_path / "o").exists()


# --- the real entry point -------------------------------------------------------------------------
@pytest.mark.parametrize("command", [["info"], ["tile", "--out", "OUT"]])
def test_entry_point_subprocess(command, tmp_path):
    p = header_only_tiff(tmp_path / "huge.tiff")
    argv = [sys.executable, "-m", "isg_core.cli", command[0], str(p)] + [str(tmp_path / "o") if a == "OUT" else a
                                                                           for a in command[1:]]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("isg: error:") and "huge.tiff" in lines[0], r.stderr
    assert not (tmp_path / "o").exists()
