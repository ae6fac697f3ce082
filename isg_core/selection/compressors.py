"""Lossless compressors as computable upper bounds of Kolmogorov complexity (paper Eq. 1).

Every function here has one signature, ``bits(patch) -> float``: the length in bits of the
(H, W, 3) uint8 ``patch`` under a lossless codec.  Two kinds:

* byte-stream compressors on the raw interleaved RGB bytes, no image model:
  ``deflate`` (zlib, level 6), ``lzma`` (xz preset 6), ``zstd`` (level 3);
* ``zstdgrad``: the same zstd after a lossless 2-D prediction step (each byte replaced by its
  residual from the planar predictor left + up - up-left, per channel, mod 256; invertible by
  two cumulative sums), i.e. a PNG-filter-style image model in front of a fast entropy coder;
* lossless *image* codecs, which predict each pixel from its neighbours before entropy
  coding, so smooth shading costs few bits and only unpredictable structure costs many:
  ``png`` (libpng, adaptive filters, level 6), ``webp`` (libwebp lossless, method 0),
  ``jpegxl`` (libjxl modular lossless, effort 1, one thread).

Encoder settings are fixed (not the libraries' defaults where those are much slower) and
recorded in :data:`COMPRESSOR_SETTINGS`.  Each encoder is checked once to round-trip exactly
(:func:`check_lossless`), so a codec whose "lossless" mode is not lossless is never used.
"""
from __future__ import annotations

import lzma as _lzma
import zlib as _zlib
from typing import Callable

import numpy as np
from PIL import Image

from ..errors import IsgError

try:  # imagecodecs is a dependency (tifffile's JPEG); fail lazily per codec if absent
    import imagecodecs as _ic
except Exception:  # pragma: no cover - environment problem
    _ic = None


def _need_ic(name: str):
    if _ic is None:
        raise IsgError(None, f"compressor {name!r} needs imagecodecs, which is not installed")
    return _ic


def _rgb(patch: np.ndarray) -> np.ndarray:
    a = np.asarray(patch)
    if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 3:
        raise IsgError(None, f"expected an (H, W, 3) uint8 patch, got {a.dtype} {a.shape}")
    return np.ascontiguousarray(a)


def deflate_bits(patch: np.ndarray) -> float:
    """zlib (DEFLATE, level 6) on the raw RGB bytes."""
    return 8.0 * len(_zlib.compress(_rgb(patch).tobytes(), 6))


def lzma_bits(patch: np.ndarray) -> float:
    """LZMA (xz, preset 6) on the raw RGB bytes."""
    return 8.0 * len(_lzma.compress(_rgb(patch).tobytes(), preset=6))


def zstd_bits(patch: np.ndarray) -> float:
    """Zstandard (level 3) on the raw RGB bytes, via imagecodecs."""
    return 8.0 * len(_need_ic("zstd").zstd_encode(_rgb(patch).tobytes(), level=3))


def grad_residual(patch: np.ndarray) -> np.ndarray:
    """Residual of the planar predictor: r[y, x] = p[y, x] - p[y, x-1] - p[y-1, x] + p[y-1, x-1]
    (mod 256, with zeros outside), per channel.  Lossless: p = cumsum_y(cumsum_x(r)) mod 256."""
    a = _rgb(patch)
    r = a.copy()
    r[:, 1:] -= a[:, :-1]
    r[1:] -= r[:-1].copy()
    return r


def zstdgrad_bits(patch: np.ndarray) -> float:
    """Zstandard (level 3) on the planar-predictor residual (:func:`grad_residual`)."""
    return 8.0 * len(_need_ic("zstd").zstd_encode(grad_residual(patch).tobytes(), level=3))


def png_bits(patch: np.ndarray) -> float:
    """PNG (libpng, level 6, adaptive filters), via imagecodecs."""
    return 8.0 * len(_need_ic("png").png_encode(_rgb(patch), level=6))


def webp_bits(patch: np.ndarray) -> float:
    """WebP lossless (method 0, the fastest lossless mode), via imagecodecs."""
    return 8.0 * len(_need_ic("webp").webp_encode(_rgb(patch), lossless=True, method=0))


def jpegxl_bits(patch: np.ndarray) -> float:
    """JPEG XL lossless (modular mode, effort 1, one thread), via imagecodecs."""
    return 8.0 * len(_need_ic("jpegxl").jpegxl_encode(_rgb(patch), lossless=True, effort=1, numthreads=1))


#: name -> bits(patch) function.
COMPRESSORS: dict[str, Callable[[np.ndarray], float]] = {
    "deflate": deflate_bits,
    "png": png_bits,
    "lzma": lzma_bits,
    "zstd": zstd_bits,
    "zstdgrad": zstdgrad_bits,
    "webp": webp_bits,
    "jpegxl": jpegxl_bits,
}

COMPRESSOR_SETTINGS: dict[str, str] = {
    "deflate": "zlib level 6, raw RGB bytes",
    "png": "libpng level 6, adaptive filters",
    "lzma": "xz preset 6, raw RGB bytes",
    "zstd": "zstd level 3, raw RGB bytes",
    "zstdgrad": "zstd level 3 on the planar-predictor residual (left + up - up-left, mod 256)",
    "webp": "libwebp lossless, method 0",
    "jpegxl": "libjxl lossless (modular), effort 1, 1 thread",
}

_DECODERS = {
    "png": lambda b, shape: _ic.png_decode(b),
    "webp": lambda b, shape: _ic.webp_decode(b),
    "jpegxl": lambda b, shape: _ic.jpegxl_decode(b),
}
_ENCODERS = {
    "png": lambda a: _ic.png_encode(a, level=6),
    "webp": lambda a: _ic.webp_encode(a, lossless=True, method=0),
    "jpegxl": lambda a: _ic.jpegxl_encode(a, lossless=True, effort=1, numthreads=1),
}
_checked: dict[str, bool] = {}


def check_lossless(name: str) -> bool:
    """True if compressor ``name`` works here and its image codec round-trips a random patch
    exactly (byte-stream compressors are lossless by construction).  Cached."""
    if name in _checked:
        return _checked[name]
    if name not in COMPRESSORS:
        raise IsgError(None, f"unknown compressor {name!r} (choose one of {', '.join(COMPRESSORS)})")
    ok = True
    try:
        x = np.random.default_rng(0).integers(0, 256, (48, 40, 3), dtype=np.uint8)
        COMPRESSORS[name](x)
        if name == "zstdgrad":  # the predictor step must invert exactly
            r = grad_residual(x)
            back = np.cumsum(np.cumsum(r.astype(np.int64), axis=1), axis=0) % 256
            ok = np.array_equal(back.astype(np.uint8), x)
        if name in _ENCODERS:
            y = np.asarray(_DECODERS[name](_ENCODERS[name](x), x.shape))
            ok = y.shape[:2] == x.shape[:2] and np.array_equal(y[..., :3], x)
    except Exception:
        ok = False
    _checked[name] = ok
    return ok


def get_compressor(name: str) -> Callable[[np.ndarray], float]:
    """The ``bits`` function of a compressor, after checking it works and is lossless."""
    if name not in COMPRESSORS:
        raise IsgError(None, f"unknown compressor {name!r} (choose one of {', '.join(COMPRESSORS)})")
    if not check_lossless(name):
        raise IsgError(None, f"compressor {name!r} is unavailable here or not lossless")
    return COMPRESSORS[name]


def downsample(patch: np.ndarray, factor: int) -> np.ndarray:
    """``factor`` x box-filter reduction (Pillow ``Image.reduce``, ~0.1 ms for 256 px); 1 = as is.
    A box filter (not nearest-neighbour subsampling) so that pixel noise is averaged down the
    way a coarser scan would see it, rather than kept at full strength."""
    if factor == 1:
        return patch
    if factor < 1 or int(factor) != factor:
        raise IsgError(None, f"score_downsample must be a positive integer, got {factor}")

    return np.asarray(Image.fromarray(_rgb(patch)).reduce(int(factor)))
