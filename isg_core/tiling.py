"""Two-resolution tiling (paper Sec. 3, steps 1 and 3).

A slide X is cut into *global* patches x_i of p x p pixels at the working resolution
(``TilingConfig.mpp``): |X_G| = floor(w / p) * floor(h / p), measured at that resolution.
Each global patch is cut into (p/q)^2 *local* patches x_ij of q x q pixels that keep their
grid positions, so the local feature cube R_i is (p/q) x (p/q) x d.

The tiling is stored as HDF5 in CLAM's convention (Lu et al. 2021): a ``coords`` dataset of
level-0 top-left corners with the patch size, level, downsample and slide name as attributes.
Later stages (selection, feature extraction) add their datasets to the same file.  Tiling reads
no pixels, so it costs the same for any slide size.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import h5py
import numpy as np

from . import __version__
from .config import TilingConfig
from .errors import IsgError, atomic_path
from .slides import Slide, open_slide


@dataclass(frozen=True)
class Tiling:
    """The global grid of one slide.

    ``coords[i]`` is the level-0 (x, y) of global patch i; ``grid_index[i]`` its (row, col).
    ``patch_size_level0`` is p expressed in level-0 pixels (p * mpp / slide_mpp; fractional when
    the slide's mpp is not an exact multiple); ``level`` is the pyramid level patches are read from.
    """

    slide_id: str
    slide_path: str
    config: TilingConfig
    slide_mpp: float
    slide_size: tuple[int, int]
    level: int
    level_downsample: float
    patch_size_level0: float
    coords: np.ndarray  # (n, 2) int64, (x, y)
    grid_index: np.ndarray  # (n, 2) int64, (row, col)

    @property
    def n_patches(self) -> int:
        return len(self.coords)

    @property
    def grid_shape(self) -> tuple[int, int]:
        """(rows, cols) of the global grid."""
        if self.n_patches == 0:
            return (0, 0)
        return (int(self.grid_index[:, 0].max()) + 1, int(self.grid_index[:, 1].max()) + 1)

    def local_offsets(self) -> np.ndarray:
        """(g, g, 2) level-0 offsets (x, y) of the local patches inside a global patch, g = p/q,
        indexed [row, col] so that R_i[row, col] corresponds to offsets[row, col]."""
        g = self.config.grid
        q0 = self.patch_size_level0 / g
        rows, cols = np.meshgrid(np.arange(g), np.arange(g), indexing="ij")
        return np.stack([np.round(cols * q0), np.round(rows * q0)], axis=-1).astype(np.int64)

    def local_coords(self) -> np.ndarray:
        """(n, g, g, 2) level-0 (x, y) of every local patch of every global patch."""
        return self.coords[:, None, None, :] + self.local_offsets()[None]


def tile_slide(slide: Slide, config: TilingConfig = TilingConfig()) -> Tiling:
    """The global grid of ``slide`` at ``config`` (origin at the slide's top-left corner,
    incomplete patches at the right and bottom edges dropped, row-major order)."""
    p0 = config.global_size * config.mpp / slide.mpp
    if p0 < 1:  # a patch finer than one scanned pixel: billions of patches, never a real request
        raise IsgError(slide.path, f"a {config.global_size} px patch at {config.mpp:g} mpp spans {p0:.3g} px of this "
                                   f"{slide.mpp:.3g} mpp slide; the tiling mpp is far finer than the scan")
    w, h = slide.dimensions
    cols, rows = int(math.floor(w / p0 + 1e-9)), int(math.floor(h / p0 + 1e-9))
    rr, cc = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    grid = np.stack([rr.ravel(), cc.ravel()], axis=1).astype(np.int64)
    coords = np.stack([np.round(grid[:, 1] * p0), np.round(grid[:, 0] * p0)], axis=1).astype(np.int64)
    level = slide.best_level_for_downsample(config.mpp / slide.mpp)
    return Tiling(
        slide_id=slide.slide_id,
        slide_path=str(slide.path),
        config=config,
        slide_mpp=slide.mpp,
        slide_size=(w, h),
        level=level,
        level_downsample=float(slide.info.level_downsamples[level]),
        patch_size_level0=float(p0),
        coords=coords,
        grid_index=grid.reshape(-1, 2),
    )


def read_global_patch(slide: Slide, tiling: Tiling, i: int) -> np.ndarray:
    """Global patch i as a (p, p, 3) uint8 array at the tiling's mpp."""
    x, y = tiling.coords[i]
    return slide.read_region_mpp(int(x), int(y), tiling.config.global_size, tiling.config.mpp)


def split_local(patch: np.ndarray, q: int) -> np.ndarray:
    """Cut a (p, p, C) global patch into (p/q, p/q, q, q, C) local patches kept at their grid
    positions: ``out[r, c]`` is the patch at row r, column c (paper Sec. 3, step 3)."""
    p = patch.shape[0]
    if patch.shape[1] != p or p % q:
        raise ValueError(f"patch of shape {patch.shape} cannot be cut into {q} x {q} local patches")
    g = p // q
    return patch.reshape(g, q, g, q, *patch.shape[2:]).swapaxes(1, 2)


# --- HDF5 in CLAM's convention ---------------------------------------------------------------
def _attrs(t: Tiling) -> dict:
    return {
        "slide_id": t.slide_id,
        "name": t.slide_id,  # CLAM's attribute name for the slide
        "slide_path": t.slide_path,
        "patch_size": t.config.global_size,  # p, pixels at `mpp`
        "patch_level": t.level,  # CLAM: level the patches are read from
        "patch_size_level0": t.patch_size_level0,
        "downsample": t.level_downsample,
        "mpp": t.config.mpp,
        "slide_mpp": t.slide_mpp,
        "local_size": t.config.local_size,  # q
        "local_grid": t.config.grid,  # p/q
        "level_dim": t.slide_size,
        "tiling_config": json.dumps(asdict(t.config)),
        "isg_core_version": __version__,
    }


def write_tiling_h5(tiling: Tiling, path: str | os.PathLike) -> Path:
    """Write the tiling to ``path`` atomically: datasets ``coords`` (n, 2) and ``grid_index``
    (n, 2), ``local_offsets`` (g, g, 2); attributes on ``coords`` and on the file root."""
    path = Path(path)
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            ds = f.create_dataset("coords", data=tiling.coords, maxshape=(None, 2))
            f.create_dataset("grid_index", data=tiling.grid_index)
            f.create_dataset("local_offsets", data=tiling.local_offsets())
            for k, v in _attrs(tiling).items():
                ds.attrs[k] = v
                f.attrs[k] = v
            f.attrs["complete"] = True  # set last: a file without it was interrupted
    return path


def read_tiling_h5(path: str | os.PathLike) -> Tiling:
    """Read a tiling written by :func:`write_tiling_h5`; a clear error if it is not one."""
    path = Path(path)
    if not path.exists():
        raise IsgError(path, "tiling file not found")
    try:
        with h5py.File(path, "r") as f:
            if "coords" not in f:
                raise IsgError(path, "not an ISG tiling file (no 'coords' dataset)")
            a = f.attrs
            cfg = TilingConfig(**json.loads(a["tiling_config"]))
            return Tiling(
                slide_id=str(a["slide_id"]),
                slide_path=str(a["slide_path"]),
                config=cfg,
                slide_mpp=float(a["slide_mpp"]),
                slide_size=tuple(int(v) for v in a["level_dim"]),
                level=int(a["patch_level"]),
                level_downsample=float(a["downsample"]),
                patch_size_level0=float(a["patch_size_level0"]),
                coords=f["coords"][:].astype(np.int64),
                grid_index=f["grid_index"][:].astype(np.int64),
            )
    except IsgError:
        raise
    except (OSError, KeyError, ValueError, TypeError) as e:
        raise IsgError(path, f"corrupt or incomplete tiling file ({str(e).splitlines()[0][:120]})") from None


def tiling_is_current(path: Path, config: TilingConfig, slide_path: str | None = None) -> bool:
    """True if ``path`` holds a complete tiling made with ``config`` (skip-if-done)."""
    try:
        with h5py.File(path, "r") as f:
            ok = bool(f.attrs.get("complete", False)) and json.loads(f.attrs["tiling_config"]) == asdict(config)
            if slide_path is not None:
                ok = ok and str(f.attrs["slide_path"]) == str(slide_path)
            return ok
    except Exception:
        return False


def tile_to_h5(
    slide_path: str | os.PathLike, out_dir: str | os.PathLike, config: TilingConfig = TilingConfig(),
    overwrite: bool = False, mpp: float | None = None,
) -> tuple[Path, bool]:
    """Tile one slide into ``out_dir/<slide_id>.h5``.  Returns (path, written); an existing
    complete file with the same config is kept (``written`` False) unless ``overwrite``."""
    slide_path = str(Path(slide_path).resolve())
    with open_slide(slide_path, mpp=mpp) as slide:
        out = Path(out_dir) / f"{slide.slide_id}.h5"
        if not overwrite and out.exists() and tiling_is_current(out, config, slide_path):
            return out, False
        tiling = tile_slide(slide, config)
        if tiling.n_patches == 0:
            raise IsgError(
                slide_path,
                f"slide of {slide.dimensions[0]}x{slide.dimensions[1]} px at {slide.mpp:.3g} mpp is smaller than "
                f"one {config.global_size} px patch at {config.mpp} mpp",
            )
        return write_tiling_h5(tiling, out), True
