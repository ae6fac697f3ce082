"""Slide-level selection: score every global patch, threshold, store in the tiling HDF5,
draw a thumbnail; :func:`run_select` is what ``isg select`` calls."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Sequence

import h5py
import matplotlib.pyplot as plt
import numpy as np
from tqdm import tqdm

from ..config import TilingConfig
from ..data.slides import Slide, distinct_slides
from ..data.thumbnails import thumbnail_with_grid
from ..data.tiling import Tiling, open_tiled_slide, read_global_patch, read_tiling_h5, tile_to_h5
from ..errors import IsgError, atomic_path, first_line
from .selectors import Selector, ShannonSelector, get_selector
from .thresholds import Threshold, parse_threshold, resolve_threshold


def _selector(method: "str | Selector", **kwargs) -> Selector:
    return method if isinstance(method, Selector) else get_selector(method, **kwargs)


def score_slide(slide: Slide, tiling: Tiling, method: "str | Selector" = "shannon", progress: bool = True,
                thumbnail_size: int = 1024, **selector_kwargs) -> np.ndarray:
    """Score every global patch of ``tiling`` (read with :func:`read_global_patch`) with
    ``method``; (n,) float64.  Selectors that need a per-slide fit (Otsu) are fitted on the
    slide's thumbnail first."""
    sel = _selector(method, **selector_kwargs)
    return score_slide_many(slide, tiling, [sel], progress, thumbnail_size)[:, 0]


def score_slide_many(slide: Slide, tiling: Tiling, selectors: Sequence["str | Selector"], progress: bool = False,
                     thumbnail_size: int = 1024) -> np.ndarray:
    """Scores of every global patch by each of ``selectors``: (n, len(selectors)) float64.  Each
    patch is read once and scored by all of them (reading is most of a cheap selector's time);
    selectors that need a per-slide fit are fitted on one thumbnail first."""
    sels = [_selector(m) for m in selectors]
    if any(s.requires_fit for s in sels):
        thumb = slide.thumbnail(thumbnail_size)
        for s in sels:
            if s.requires_fit:
                s.fit(thumb)
    out = np.empty((tiling.n_patches, len(sels)), np.float64)
    names = "+".join(s.name for s in sels)
    for i in tqdm(range(tiling.n_patches), desc=f"{names} {tiling.slide_id}", unit="patch",
                  disable=not progress, leave=False):
        p = read_global_patch(slide, tiling, i)
        out[i] = [s.score(p) for s in sels]
    return out


def kept_rows(h5: h5py.File, keep: np.ndarray, index: np.ndarray | None = None) -> np.ndarray:
    """Positions in ``index`` (default: every patch of the tiling ``h5``) of the patches ``keep``
    (a bool mask over all patches) keeps.  A slide left with none keeps its single highest Shannon
    score (else its first patch), so every slide gets a prediction (strict thresholds do this)."""
    index = np.arange(len(keep)) if index is None else np.asarray(index)
    rows = np.flatnonzero(np.asarray(keep, bool)[index])
    if len(rows) == 0:
        key = "selection/shannon/scores"
        rows = np.array([int(np.argmax(h5[key][:][index]))]) if key in h5 else np.array([0])
    return rows


def threshold_info(scores: np.ndarray, threshold: Threshold, method: "str | Selector", pixels: int) -> dict:
    """What a threshold resolved to on these scores (stored as HDF5 attributes)."""
    value = resolve_threshold(scores, threshold, pixels)
    sel = method if isinstance(method, Selector) else None
    info = {"threshold": str(threshold), "threshold_kind": threshold.kind, "threshold_param": threshold.value,
            "threshold_score": value, "patch_pixels": pixels}
    if sel is not None:
        info["selector"] = type(sel).__name__
        info["selector_params"] = json.dumps(sel.params(), default=str)
    return info


def add_selection_to_h5(h5_path: "str | os.PathLike", method: str, scores: np.ndarray, keep: np.ndarray,
                        threshold_info: dict | None = None) -> Path:
    """Add ``selection/<method>/scores`` (float64) and ``selection/<method>/keep`` (bool) to
    a tiling HDF5, with ``threshold_info`` as attributes of the group; replaces an earlier
    selection by the same method.  Atomic: a copy is modified and renamed over the original,
    so an interrupted write leaves the original file as it was."""
    h5_path = Path(h5_path)
    scores = np.asarray(scores, np.float64)
    keep = np.asarray(keep, bool)
    if not h5_path.exists():
        raise IsgError(h5_path, "tiling file not found")
    with atomic_path(h5_path) as tmp:
        shutil.copyfile(h5_path, tmp)
        try:
            with h5py.File(tmp, "r+") as f:
                if "coords" not in f:
                    raise IsgError(h5_path, "not an ISG tiling file (no 'coords' dataset)")
                n = f["coords"].shape[0]
                if scores.shape != (n,) or keep.shape != (n,):
                    raise IsgError(h5_path, f"{n} patches in the tiling but "
                                            f"{scores.shape[0]} scores / {keep.shape[0]} keep flags")
                grp = f.require_group("selection")
                if method in grp:
                    del grp[method]
                g = grp.create_group(method)
                g.create_dataset("scores", data=scores)
                g.create_dataset("keep", data=keep)
                for k, v in (threshold_info or {}).items():
                    g.attrs[k] = v
                g.attrs["method"] = method
                g.attrs["n_kept"] = int(keep.sum())
                g.attrs["n_patches"] = int(n)
        except OSError as e:
            raise IsgError(h5_path, f"cannot update tiling file ({first_line(e)})") from None
    return h5_path


def read_selection(h5_path: "str | os.PathLike", method: str) -> tuple[np.ndarray, np.ndarray, dict]:
    """(scores, keep, attrs) of a stored selection."""
    with h5py.File(h5_path, "r") as f:
        key = f"selection/{method}"
        if key not in f:
            raise IsgError(h5_path, f"no selection by {method!r} in this file")
        g = f[key]
        return g["scores"][:], g["keep"][:], dict(g.attrs)


def selection_thumbnail(slide: Slide, tiling: Tiling, keep: np.ndarray, out_png: "str | os.PathLike",
                        title: str | None = None, max_size: int = 1024) -> Path:
    """Slide thumbnail with the kept patches outlined, written atomically as PNG."""
    # no matplotlib.use("Agg") here: called inside a notebook it would switch the kernel's inline
    # backend off and later figures would not show (headless, matplotlib picks Agg by itself)

    ax = thumbnail_with_grid(slide, tiling, mask=np.asarray(keep, bool), max_size=max_size,
                             title=title or f"{tiling.slide_id}: {int(np.sum(keep))}/{tiling.n_patches} kept")
    fig = ax.figure
    out_png = Path(out_png)
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png", metadata={"Software": None})
    plt.close(fig)
    return out_png


def run_select(slide_paths: Sequence["str | os.PathLike"], method: str = "shannon", out_dir: "str | os.PathLike" = ".",
               threshold: "str | float | Threshold | None" = None, *, config: TilingConfig,
               slide_mpp: float | None = None, thumbnail: bool = True, progress: bool = True,
               **selector_kwargs) -> list[dict]:
    """``isg select SLIDE... --method NAME [--threshold T] --out DIR``.
    For each slide: tile into ``out_dir/<slide_id>.h5`` if that file is missing or was made
    with another config, score every global patch, apply ``threshold`` (None: the method's
    default; strings as :func:`parse_threshold` reads them), add ``selection/<method>`` to the
    HDF5 and write ``out_dir/<slide_id>.selection-<method>.png``.  Returns one summary dict
    per slide (slide_id, h5, png, n_patches, n_kept, threshold, threshold_score)."""
    sel = _selector(method, **selector_kwargs)
    th = parse_threshold(threshold, default=sel.default_threshold)
    if th.kind in ("bits", "bpp") and not isinstance(sel, ShannonSelector):
        raise IsgError(None, f"a '{th.kind}' threshold applies only to the shannon method, not {sel.name!r}")
    out_dir = Path(out_dir)
    results = []
    for sp, _ in distinct_slides(slide_paths, "tilings and selections"):  # refused before any work
        h5, _ = tile_to_h5(sp, out_dir, config, mpp=slide_mpp)
        tiling = read_tiling_h5(h5)
        with open_tiled_slide(sp, tiling, h5) as slide:
            scores = score_slide(slide, tiling, sel, progress=progress)
            pixels = config.global_size ** 2
            info = threshold_info(scores, th, sel, pixels)
            keep = scores > info["threshold_score"]
            add_selection_to_h5(h5, sel.name, scores, keep, info)
            png = None
            if thumbnail:
                png = selection_thumbnail(slide, tiling, keep, out_dir / f"{tiling.slide_id}.selection-{sel.name}.png")
        results.append({"slide_id": tiling.slide_id, "h5": str(h5), "png": str(png) if png else None,
                        "n_patches": tiling.n_patches, "n_kept": int(keep.sum()), "threshold": str(th),
                        "threshold_score": info["threshold_score"]})
    return results
