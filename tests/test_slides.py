"""Slide reading: OpenSlide formats and plain images through one interface."""
import numpy as np
import pytest
from PIL import Image

from isg_core.data.slides import open_slide, slide_id_from_path
from isg_core.errors import IsgError


def test_pyramidal_tiff_metadata(pyramid_tiff):
    path, img = pyramid_tiff
    with open_slide(path) as s:
        assert s.dimensions == (2048, 1536)
        assert s.mpp == pytest.approx(0.25)
        assert s.info.mpp_source == "metadata"
        assert s.magnification == pytest.approx(40)  # derived: 10 / mpp
        assert s.info.backend == "openslide:generic-tiff"
        assert s.level_count >= 2 and s.info.level_downsamples[1] == pytest.approx(2)


def test_read_region_matches_pixels(pyramid_tiff):
    path, img = pyramid_tiff
    with open_slide(path) as s:
        r = s.read_region(300, 200, 64, 48)
        assert r.shape == (48, 64, 3) and r.dtype == np.uint8
        assert np.abs(r.astype(int) - img[200:248, 300:364].astype(int)).mean() < 4  # JPEG q95


def test_read_region_mpp_picks_level_and_resamples(pyramid_tiff):
    path, img = pyramid_tiff
    with open_slide(path) as s:
        # 0.5 mpp on a 0.25 mpp slide = downsample 2: level 1 exactly, no resampling
        assert s.best_level_for_downsample(2.0) == 1
        r = s.read_region_mpp(400, 400, 128, mpp=0.5)
        assert r.shape == (128, 128, 3)
        ref = img[400:656, 400:656].reshape(128, 2, 128, 2, 3).mean((1, 3))
        assert np.abs(r - ref).mean() < 4
        # 0.75 mpp (downsample 3): read from level 1 (ds 2), never from a coarser level
        assert s.best_level_for_downsample(3.0) == 1
        r3 = s.read_region_mpp(0, 0, 100, mpp=0.75)
        ref3 = img[:300, :300].reshape(100, 3, 100, 3, 3).mean((1, 3))
        assert r3.shape == (100, 100, 3) and np.abs(r3 - ref3).mean() < 6


def test_outside_slide_is_white(pyramid_tiff):
    path, _ = pyramid_tiff
    with open_slide(path) as s:
        r = s.read_region(2040, 1530, 32, 32)
        assert (r[16:, 16:] == 255).all()


def test_cmu_svs(cmu_path):
    with open_slide(cmu_path) as s:
        assert s.dimensions == (2220, 2967)
        assert s.mpp == pytest.approx(0.499)
        assert s.magnification == pytest.approx(20)
        assert s.info.backend == "openslide:aperio"
        th = s.thumbnail(256)
        assert max(th.shape[:2]) == 256


def test_plain_png_without_resolution_is_refused_unless_given(tmp_path):
    """One rule for every format: no resolution in the file, no silent guess."""
    p = tmp_path / "tile.png"
    Image.fromarray(np.zeros((40, 60, 3), np.uint8)).save(p, dpi=(96, 96))  # screen dpi: ignored
    with pytest.raises(IsgError, match="tile.png: no resolution .*--slide-mpp"):
        open_slide(p)
    with open_slide(p, mpp=0.25) as s:
        assert s.dimensions == (60, 40)
        assert s.info.mpp_source == "argument" and s.mpp == 0.25
    with open_slide(p, require_mpp=False) as s:  # what `isg info` does: describe, no scale
        assert s.info.mpp_source == "missing" and np.isnan(s.mpp) and s.thumbnail(32).shape[1] == 32
        with pytest.raises(IsgError, match="no resolution"):
            s.read_region_mpp(0, 0, 8, 0.5)


def test_plain_image_scan_dpi_is_trusted(tmp_path):
    p = tmp_path / "scan.tiff"
    Image.fromarray(np.zeros((40, 60, 3), np.uint8)).save(p, dpi=(50800, 50800))  # 0.5 um/px
    with open_slide(p) as s:
        assert s.info.mpp_source == "metadata" and s.mpp == pytest.approx(0.5)


@pytest.mark.parametrize("mode", ["L", "RGBA", "I;16"])
def test_plain_image_modes_become_rgb(tmp_path, mode):
    p = tmp_path / f"img_{mode.replace(';', '')}.png"
    if mode == "I;16":
        Image.fromarray(np.full((8, 8), 4000, np.uint16)).save(p)
    elif mode == "RGBA":
        a = np.zeros((8, 8, 4), np.uint8)
        a[..., 0] = 200  # fully transparent -> white
        Image.fromarray(a, "RGBA").save(p)
    else:
        Image.fromarray(np.full((8, 8), 77, np.uint8)).save(p)
    with open_slide(p, mpp=0.5) as s:
        r = s.read_region(0, 0, 8, 8)
    assert r.shape == (8, 8, 3) and r.dtype == np.uint8
    expected = {"L": 77, "RGBA": 255, "I;16": 255}[mode]
    assert (r == expected).all()


def test_slide_id_from_tcga_name():
    name = "TCGA-AB-1234-01Z-00-DX1.0A1B2C3D-1111-2222-3333-444455556666.svs"
    assert slide_id_from_path(f"/x/{name}") == name[:-4]


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    "make, problem",
    [
        (lambda d: d / "missing.svs", "no such file"),
        (lambda d: _write(d / "empty.svs", b""), "empty"),
        (lambda d: _write(d / "notes.txt", b"hello"), "unsupported format"),
        (lambda d: _write(d / "junk.svs", b"\x00" * 1000), "corrupt or truncated"),
        (lambda d: _write(d / "junk.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 50), "corrupt or truncated"),
    ],
)
def test_bad_input_one_line_error_naming_file(tmp_path, make, problem):
    p = make(tmp_path)
    with pytest.raises(IsgError) as ei:
        open_slide(p)
    msg = str(ei.value)
    assert str(p.name) in msg and problem in msg and "\n" not in msg


def test_truncated_svs_is_refused(tmp_path, cmu_path):
    p = tmp_path / "trunc.svs"
    p.write_bytes(cmu_path.read_bytes()[:200_000])
    with pytest.raises(IsgError) as ei:
        with open_slide(p) as s:  # may open (header intact) and fail when tiles are read
            s.read_region(0, 0, 2220, 2967)
    assert "trunc.svs" in str(ei.value)


def test_thumbnail_of_single_level_large_slide_reads_in_tiles(tmp_path, monkeypatch):
    """A slide with no small pyramid level is shrunk tile by tile, never read whole."""
    from isg_core.data.slides import write_pyramidal_tiff
    from tests.conftest import gradient_image
    img = gradient_image(4500, 5000)
    p = tmp_path / "flat.tiff"
    write_pyramidal_tiff(p, img, mpp=0.5, quality=90, min_level_size=10**6)  # one level only
    with open_slide(p) as s:
        assert s.level_count == 1
        biggest = []
        orig = s._reader.read
        monkeypatch.setattr(s._reader, "read", lambda x, y, w, h, lvl: biggest.append(w * h) or orig(x, y, w, h, lvl))
        th = s.thumbnail(500)
    assert th.shape == (450, 500, 3)
    assert max(biggest) <= 4096 * 4096  # tiles, not the 22.5 MP level
    ref = np.asarray(Image.fromarray(img).resize((500, 450), Image.Resampling.BOX))
    assert np.abs(th.astype(int) - ref).mean() < 3
