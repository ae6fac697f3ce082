"""Two-resolution tiling (paper Sec. 3, steps 1 and 3).

A slide X is cut into *global* patches x_i of p x p pixels at the working resolution
(``TilingConfig.mpp``): |X_G| = floor(w / p) * floor(h / p), measured at that resolution.
Each global patch is cut into (p/q)^2 *local* patches x_ij of q x q pixels that keep their
grid positions, so the local feature cube R_i is (p/q) x (p/q) x d.

The tiling is stored as HDF5 in CLAM's convention (Lu et al. 2021): a ``coords`` dataset of
level-0 top-left corners with the patch size, level, downsample and slide name as attributes.
Later stages (selection, feature extraction) add their datasets to the same file.  Tiling reads
no pixels, so it costs the same for any slide size.

The file also records *which* slide it was made from and how it was read: the slide file's
fingerprint (:func:`isg_core.data.fingerprint.file_fingerprint`) and its mpp.  A tiling is reused only
for the same file read at the same mpp with the same config (:func:`tiling_stale_reason`); a
changed slide is re-tiled with a one-line note, and since selections and features live in the
same file, they are redone with it.  Every later reader opens the slide through
:func:`open_tiled_slide`, which reads it as it was tiled and refuses a slide changed since.
"""
from __future__ import annotations

import json
import math
import os
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import h5py
import numpy as np

from .. import __version__
from ..config import TilingConfig
from ..errors import IsgError, atomic_path, first_line
from .fingerprint import file_fingerprint
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
    slide_fingerprint: str = ""  # of the slide file when tiled ("" in files of isg before 0.2)
    mpp_source: str = "metadata"  # "metadata" or "argument" (--slide-mpp / the manifest's mpp)

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


def tile_slide(slide: Slide, config: TilingConfig, slide_id: str | None = None) -> Tiling:
    """The global grid of ``slide`` at ``config`` (origin at the slide's top-left corner,
    incomplete patches at the right and bottom edges dropped, row-major order).  ``slide_id``
    names it (default: the file name without its suffix; a manifest's id where there is one)."""
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
        slide_id=slide_id or slide.slide_id,
        slide_path=str(slide.path),
        config=config,
        slide_mpp=slide.mpp,
        slide_size=(w, h),
        level=level,
        level_downsample=float(slide.info.level_downsamples[level]),
        patch_size_level0=float(p0),
        coords=coords,
        grid_index=grid.reshape(-1, 2),
        slide_fingerprint=file_fingerprint(slide.path),
        mpp_source=slide.info.mpp_source,
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
        "slide_fingerprint": t.slide_fingerprint,
        "mpp_source": t.mpp_source,
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
                slide_fingerprint=str(a.get("slide_fingerprint", "")),
                mpp_source=str(a.get("mpp_source", "metadata")),
            )
    except IsgError:
        raise
    except (OSError, KeyError, ValueError, TypeError) as e:
        raise IsgError(path, f"corrupt or incomplete tiling file ({first_line(e)})") from None


class StaleResultWarning(UserWarning):
    """A cached result was made from another input and is being redone (a one-line note)."""


def tiling_stale_reason(path: Path, config: TilingConfig, slide: Slide) -> str | None:
    """Why the tiling file ``path`` cannot be reused for ``slide`` (opened as it is to be read),
    or None if it can: it must be complete, made with ``config``, from a file with the same
    fingerprint, read at the same mpp."""
    path = Path(path)
    if not path.exists():
        return "missing"
    try:
        with h5py.File(path, "r") as f:
            a = dict(f.attrs)
    except OSError:
        return "unreadable or incomplete"
    if not a.get("complete", False) or "tiling_config" not in a:
        return "incomplete (an interrupted write)"
    if json.loads(a["tiling_config"]) != asdict(config):
        return "made with another tiling config"
    old = str(a.get("slide_fingerprint", ""))
    if not old:
        return "made by an older isg that did not record which slide file it came from"
    if old != file_fingerprint(slide.path):
        before = str(a.get("slide_path", ""))
        if before and os.path.abspath(before) != os.path.abspath(slide.path):
            return f"made from another file ({before})"
        return "the slide file changed since it was tiled"
    if not math.isclose(float(a.get("slide_mpp", float("nan"))), slide.mpp, rel_tol=1e-9):
        return f"the slide was read at {float(a['slide_mpp']):.4g} mpp, now at {slide.mpp:.4g}"
    return None


def tile_to_h5(
    slide_path: str | os.PathLike, out_dir: str | os.PathLike, config: TilingConfig,
    overwrite: bool = False, mpp: float | None = None, slide_id: str | None = None,
) -> tuple[Path, bool]:
    """Tile one slide into ``out_dir/<slide_id>.h5`` (``slide_id`` defaults to the file name
    without its suffix).  Returns (path, written).  An existing file made from the same slide
    file, read at the same mpp, with the same config is kept (``written`` False) unless
    ``overwrite``; any other is replaced, with a :class:`StaleResultWarning` saying why."""
    slide_path = str(Path(slide_path).resolve())
    with open_slide(slide_path, mpp=mpp) as slide:
        out = Path(out_dir) / f"{slide_id or slide.slide_id}.h5"
        if not overwrite:
            reason = tiling_stale_reason(out, config, slide)
            if reason is None:
                return out, False
            if reason != "missing":
                warnings.warn(f"{out}: {reason}; re-tiling {Path(slide_path).name} (its selections and features "
                              "are redone)", StaleResultWarning, stacklevel=2)
        tiling = tile_slide(slide, config, slide_id)
        if tiling.n_patches == 0:
            raise IsgError(
                slide_path,
                f"slide of {slide.dimensions[0]}x{slide.dimensions[1]} px at {slide.mpp:.3g} mpp is smaller than "
                f"one {config.global_size} px patch at {config.mpp} mpp",
            )
        return write_tiling_h5(tiling, out), True


def check_same_slide(slide_path: str | os.PathLike, fingerprint: str, h5_path: str | os.PathLike | None = None) -> None:
    """A one-line error if the file at ``slide_path`` is not the one whose ``fingerprint`` a tiling
    recorded (its tiling, selections and features describe the old one): re-run ``isg prepare``."""
    if fingerprint and file_fingerprint(slide_path) != fingerprint:
        where = f" into {h5_path}" if h5_path else ""
        raise IsgError(slide_path, f"the slide file changed since it was tiled{where}; run `isg prepare` "
                                   "(or `isg tile`) again to redo its tiles, selections and features")


def open_tiled_slide(slide_path: str | os.PathLike, tiling: Tiling, h5_path: str | os.PathLike | None = None) -> Slide:
    """Open the slide a tiling was made from, read as it was then (at the tiling's slide mpp);
    a slide file changed since is refused (:func:`check_same_slide`)."""
    check_same_slide(slide_path, tiling.slide_fingerprint, h5_path)
    return open_slide(slide_path, mpp=tiling.slide_mpp)


def check_tiles_current(tiles_dir: str | os.PathLike, manifest) -> None:
    """Every slide of ``manifest`` (slide_id, path) whose tiles exist was tiled from the file that
    is there now; otherwise a one-line error naming the slide.  What cross-validations call first,
    so features of a replaced slide never train a model.  Costs a stat per slide (fingerprints
    are memoised), and two MiB read per slide the first time in a process.  A manifest without
    paths (features made elsewhere, a constructed test cohort) has nothing to check."""
    if "path" not in manifest:
        return
    for sid, p in zip(manifest["slide_id"], manifest["path"]):
        h5 = Path(tiles_dir) / f"{sid}.h5"
        if not h5.exists():
            continue
        try:
            with h5py.File(h5, "r") as f:
                old = str(f.attrs.get("slide_fingerprint", ""))
        except OSError:
            continue  # reading its features will say what is wrong with it
        if not old:
            raise IsgError(h5, "made by an older isg that did not record which slide file it came from; "
                               "run `isg prepare` and `isg extract` again")
        check_same_slide(p, old, h5)
