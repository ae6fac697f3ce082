"""Large simulated slides (isg_core.simulate.large): format, content, pyramid, determinism, memory.

A 3000 px slide from 512 px bank blocks keeps the fast tests to seconds; the memory claim
(peak RSS does not grow with the slide) is checked on a 12000 px slide in a subprocess,
marked slow.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from isg_core.data.samples import SAMPLES
from isg_core.errors import IsgError
from isg_core.paths import samples_dir

_needed = [samples_dir() / SAMPLES[k].filename for k in ("cmu", "tiatoolbox")]
pytestmark = pytest.mark.skipif(
    not all(p.exists() for p in _needed),
    reason="ISG-Sim builds its texture from data/samples; run `isg fetch-samples` first",
)

SIZE, BLOCK = 3000, 512
GLASS = np.array([235, 232, 238])


def _write(path, seed: int = 0, **kw):
    from isg_core.simulate.large import write_large_slide

    return write_large_slide(path, SIZE, seed=seed, block=BLOCK, **kw)


@pytest.fixture(scope="module")
def slide_path(tmp_path_factory):
    return _write(tmp_path_factory.mktemp("large") / "large.tiff", seed=0)


def test_opens_as_generic_tiff_with_pyramid_and_mpp(slide_path):
    from isg_core.data.slides import open_slide

    assert sorted(p.name for p in slide_path.parent.iterdir()) == ["large.tiff"]  # no temp file left
    with open_slide(slide_path) as s:
        assert s.info.backend == "openslide:generic-tiff"
        assert s.dimensions == (SIZE, SIZE)
        assert s.mpp == pytest.approx(0.5, rel=1e-3) and s.info.mpp_source == "metadata"
        assert s.level_count >= 2
        # levels halve until the side is below 1024
        assert s.info.level_dimensions == ((3000, 3000), (1500, 1500), (750, 750))


def test_description_says_simulated(slide_path):
    import tifffile

    with tifffile.TiffFile(slide_path) as tf:
        d = tf.pages[0].description
        assert "large slide" in d and "SIMULATED" in d and f"size={SIZE}" in d and "seed=0" in d
        assert tf.pages[0].is_tiled and tf.pages[0].compression == 7  # JPEG


def test_tissue_on_glass(slide_path):
    from isg_core.data.slides import open_slide

    with open_slide(slide_path) as s:
        th = s.thumbnail(512).astype(np.float64)
    glass = th.min(axis=2) > 215
    tissue = th.mean(axis=2) < 200
    assert 0.2 <= tissue.mean() <= 0.8, tissue.mean()
    assert glass.mean() > 0.15, glass.mean()
    # glass is the slide's tinted grey-white, not pure white; tissue is stained (pink/purple: R, B > G)
    assert np.abs(th[glass].mean(0) - GLASS).max() < 6
    t = th[tissue].mean(0)
    assert t[0] > t[1] + 20 and t[2] > t[1] + 20, t


def test_level1_agrees_with_level0(slide_path):
    from isg_core.data.slides import open_slide

    with open_slide(slide_path) as s:
        diffs = []
        for x, y in [(0, 0), (1000, 1000), (1976, 1976), (500, 1800)]:
            l0 = s.read_region(x, y, 1024, 1024, 0).astype(np.float64)
            l1 = s.read_region(x, y, 512, 512, 1).astype(np.float64)
            box = l0.reshape(512, 2, 512, 2, 3).mean(axis=(1, 3))
            assert np.abs(box.mean((0, 1)) - l1.mean((0, 1))).max() < 3  # region mean colour
            diffs.append(np.abs(box - l1).mean())
        assert max(diffs) < 12, diffs  # pixel by pixel, up to JPEG


def test_same_seed_same_bytes_other_seed_differs(slide_path, tmp_path):
    again = _write(tmp_path / "again.tiff", seed=0)
    assert again.read_bytes() == slide_path.read_bytes()
    other = _write(tmp_path / "other.tiff", seed=1)
    assert other.read_bytes() != slide_path.read_bytes()


@pytest.mark.parametrize(
    "kw", [{"tissue_fraction": 1.5}, {"mpp": 0}, {"tile": 100}, {"block": 100}, {"quality": 0}, {"size": 0}]
)
def test_bad_arguments_are_one_line_errors(tmp_path, kw):
    from isg_core.simulate.large import write_large_slide

    args = {"size": SIZE, **kw}
    with pytest.raises(IsgError):
        write_large_slide(tmp_path / "x.tiff", **args)
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
def test_peak_memory_does_not_grow_with_size(tmp_path):
    """12000 px at level 0 is 432 MB of RGB: a writer that held a level would show it."""
    code = textwrap.dedent(
        f"""
        import resource
        from isg_core.simulate.large import write_large_slide
        import isg_core.data.slides, tifffile, scipy.ndimage, skimage.color  # imports are not growth
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        write_large_slide({str(tmp_path / 'big.tiff')!r}, 12000, seed=3)
        print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024)
        """
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    growth_mb = float(r.stdout.strip().splitlines()[-1])
    assert growth_mb < 600, growth_mb
    from isg_core.data.slides import open_slide

    with open_slide(tmp_path / "big.tiff") as s:
        assert s.dimensions == (12000, 12000) and s.level_count == 5
