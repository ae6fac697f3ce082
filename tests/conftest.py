import numpy as np
import pytest
import torch

from isg_core.data.samples import SAMPLES
from isg_core.data.slides import write_pyramidal_tiff
from isg_core.paths import samples_dir


@pytest.fixture(scope="session")
def cmu_path():
    p = samples_dir() / SAMPLES["cmu"].filename
    if not p.exists():
        pytest.skip("CMU-1-Small-Region.svs missing: run `isg fetch-samples` (make test does)")
    return p


@pytest.fixture(scope="session")
def tiatoolbox_path():
    p = samples_dir() / SAMPLES["tiatoolbox"].filename
    if not p.exists():
        pytest.skip("tiatoolbox sample missing: run `isg fetch-samples`")
    return p


def gradient_image(h: int, w: int) -> np.ndarray:
    """A smooth RGB image whose pixel values encode their position (survives JPEG well)."""
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack([xx * 255 // max(w - 1, 1), yy * 255 // max(h - 1, 1), np.full_like(xx, 128)], -1).astype(np.uint8)


@pytest.fixture
def pyramid_tiff(tmp_path):
    """A 2048 x 1536 pyramidal JPEG TIFF at 0.25 mpp (40x) with a smooth gradient."""
    img = gradient_image(1536, 2048)
    path = tmp_path / "grad.tiff"
    write_pyramidal_tiff(path, img, mpp=0.25, quality=95)
    return path, img


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny networks on a 2-core machine: thread hand-offs cost more than they save (measured:
    a 5-fold probe 7.7 s with 2 threads, 1.4 s with 1)."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
