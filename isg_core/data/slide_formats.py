"""The per-format code behind :func:`isg_core.data.slides.open_slide`, and the pyramidal TIFF writer.

* OpenSlide (Aperio SVS, generic tiled TIFF, Hamamatsu NDPI, MIRAX MRXS, ...): the optional
  library, loaded when a slide is opened (:func:`_openslide`), and the reader a
  :class:`~isg_core.data.slides.Slide` delegates to (:class:`_OpenSlideReader`: premultiplied RGBA
  to RGB on white glass).
* Plain PNG / JPEG / TIFF images (Pillow): the image held in memory with a virtual 2x pyramid
  (:class:`_ArrayReader`), its mpp from the DPI only when that is a scan resolution
  (:func:`_plain_image_mpp`), and any pixel mode made RGB uint8 (:func:`_to_rgb8`).
* tifffile: :func:`write_pyramidal_tiff` writes the tiled, JPEG-compressed, pyramidal TIFF that
  OpenSlide opens as ``generic-tiff`` with ``openslide.mpp-x`` set from the resolution tags
  (:func:`tiff_level_args`, one level's arguments); ISG-Sim writes its slides with it.

A reader has ``read(x, y, w, h, level)`` (RGB uint8, level-0 coordinates, size in pixels of
``level``) and ``close()``; :mod:`isg_core.data.slides` builds the :class:`~isg_core.data.slides.Slide`
around it.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Iterable

import numpy as np
import tifffile
from PIL import Image

from ..errors import IsgError, atomic_path, first_line


class _OpenSlideReader:
    def __init__(self, osr):
        self.osr = osr

    def read(self, x, y, w, h, level):
        rgba = np.asarray(self.osr.read_region((x, y), level, (w, h)))
        # OpenSlide returns premultiplied RGBA with alpha 0 outside the scanned area: show glass.
        rgb = rgba[..., :3].copy()
        rgb[rgba[..., 3] == 0] = 255
        return rgb

    def close(self):
        self.osr.close()


class _ArrayReader:
    """A plain image held in memory, with a virtual 2x pyramid for thumbnails."""
    def __init__(self, arr: np.ndarray, downsamples: Iterable[float]):
        self.arr = arr
        self.downsamples = list(downsamples)

    def read(self, x, y, w, h, level):
        ds = self.downsamples[level]
        H, W = self.arr.shape[:2]
        x1, y1 = x + int(math.ceil(w * ds)), y + int(math.ceil(h * ds))
        out = np.full((y1 - y, x1 - x, 3), 255, np.uint8)
        sx0, sy0, sx1, sy1 = max(x, 0), max(y, 0), min(x1, W), min(y1, H)
        if sx1 > sx0 and sy1 > sy0:
            out[sy0 - y : sy1 - y, sx0 - x : sx1 - x] = self.arr[sy0:sy1, sx0:sx1]
        if ds != 1:
            out = np.asarray(Image.fromarray(out).resize((w, h), Image.Resampling.BOX))
        return out[:h, :w]

    def close(self):
        self.arr = None


def _openslide():
    # imported here, not at the top: OpenSlide is an optional native library, needed only to open a
    # slide; where it is missing, opening one is a one-line error (commands that read no slide work)
    try:
        import openslide  # noqa: F401  (openslide-bin provides the library)

        return openslide
    except Exception as e:  # pragma: no cover - environment problem
        raise IsgError(None, f"OpenSlide is not available ({first_line(e)}); "
                             "pip install openslide-python openslide-bin") from None


def _plain_image_mpp(img: Image.Image) -> float | None:
    """mpp from an image's DPI, trusted only when it is a physical scan resolution.
    Screen and editor defaults (72, 96, 300 dpi) mean nothing about the microscope; a real
    scan is at least ~1270 dpi (20 um/px), so anything coarser is ignored.
    """
    dpi = img.info.get("dpi")
    if not dpi:
        return None
    try:
        mpp = 25400.0 / float(dpi[0])
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return mpp if 0.05 <= mpp <= 20 else None


def _to_rgb8(img: Image.Image, p: Path) -> np.ndarray:
    """Any Pillow mode -> RGB uint8; 16-bit greyscale is rescaled, alpha composited on white."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        a = np.asarray(img).astype(np.float64)
        hi = a.max() if a.size and a.max() > 0 else 1.0
        a = (a / hi * 255).round().astype(np.uint8)
        return np.repeat(a[..., None], 3, axis=2)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(bg, rgba).convert("RGB"))
    if img.mode == "F":
        raise IsgError(p, "floating-point images are not supported")
    return np.asarray(img.convert("RGB"))


def tiff_level_args(mpp: float, downsample: int, tile: int, quality: int, description: str = "") -> dict:
    """tifffile ``write`` arguments of one level of a tiled JPEG pyramid that OpenSlide reads as
    ``generic-tiff``: mpp in the resolution tags (pixels per centimetre), level 0 as the main image
    with the description, the others as reduced-resolution subfiles."""
    px_per_cm = 1e4 / mpp
    return dict(tile=(tile, tile), compression="jpeg", compressionargs={"level": quality}, photometric="rgb",
                resolution=(px_per_cm / downsample, px_per_cm / downsample), resolutionunit="CENTIMETER",
                subfiletype=0 if downsample == 1 else 1, description=description if downsample == 1 else None,
                metadata=None)


def write_pyramidal_tiff(
    path: str | os.PathLike,
    rgb: np.ndarray,
    mpp: float,
    tile: int = 256,
    quality: int = 85,
    min_level_size: int = 512,
    description: str = "",
) -> Path:
    """Write ``rgb`` as a tiled, JPEG-compressed, pyramidal TIFF with mpp in its resolution
    tags (pixels per centimetre), which OpenSlide opens as ``generic-tiff``.

    Levels halve until the longer side is below ``min_level_size``.  Written atomically.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise IsgError(path, f"expected an RGB uint8 array, got {rgb.dtype} {rgb.shape}")
    with atomic_path(path) as tmp:
        with tifffile.TiffWriter(tmp, bigtiff=rgb.nbytes > 2**31) as tw:
            level, ds = rgb, 1
            while True:
                tw.write(level, **tiff_level_args(mpp, ds, tile, quality, description))
                if max(level.shape[:2]) < 2 * min_level_size:
                    break
                level = _halve(level)
                ds *= 2
    return Path(path)


def _halve(a: np.ndarray) -> np.ndarray:
    """2x box downsample (crops an odd last row/column)."""
    h, w = a.shape[0] // 2 * 2, a.shape[1] // 2 * 2
    a = a[:h, :w].astype(np.uint16)
    return ((a[0::2, 0::2] + a[1::2, 0::2] + a[0::2, 1::2] + a[1::2, 1::2] + 2) // 4).astype(np.uint8)
