"""Real H&E texture bank and HED (haematoxylin / eosin / DAB) colour helpers.

ISG-Sim never invents tissue texture from noise: the background of every simulated slide
is assembled from crops of two *real* H&E images shipped with the project's samples (the
CMU-1-Small-Region Aperio slide and tiatoolbox's target tile).  Crops are chosen by a
simple rule (few near-white pixels), augmented (flips, 90-degree rotations, an elastic
warp), converted to HED stain concentrations with scikit-image's colour-deconvolution
matrices, and stored once per process (:func:`texture_bank` is cached).

Why the haematoxylin channel of the bank is smoothed: the real crops carry their own
nuclei, which are *not* part of the generative model (no cell type, no gene signal).
Blurring H keeps the purple tint and the eosin fibre structure but removes crisp nuclei,
so the nuclei a viewer (or a model) sees are the ones ISG-Sim drew and counted.

All stain arrays are float32 in skimage's "stain" units (``rgb2hed`` output: optical
density divided by -ln(1e-6)); :func:`hed_to_rgb` is skimage's ``hed2rgb`` formula done
in float32 for speed.
"""
from __future__ import annotations

import functools

import numpy as np
from PIL import Image
from scipy import ndimage
from skimage.color import hed_from_rgb, rgb2hed, rgb_from_hed

from ..data.samples import sample_path
from ..data.slides import open_slide

#: side of one bank crop in px at 0.5 mpp
CROP = 320
#: skimage's log adjustment: stain units = OD / -ln(1e-6)
_LOG_ADJ = np.float32(-np.log(1e-6))
_RGB_FROM_HED = rgb_from_hed.astype(np.float32)
_HED_FROM_RGB = hed_from_rgb.astype(np.float32)
#: bank seed: the bank is a fixed resource, identical in every process and for every cohort
_BANK_SEED = 20221121


def hed_to_rgb(hed: np.ndarray) -> np.ndarray:
    """HED stain concentrations (..., 3) -> RGB uint8, as ``skimage.color.hed2rgb`` but float32."""
    od = hed.reshape(-1, 3) @ _RGB_FROM_HED
    od *= -_LOG_ADJ
    np.exp(od, out=od)
    od *= 255.0
    np.clip(od, 0, 255, out=od)
    return (od + 0.5).astype(np.uint8).reshape(hed.shape)


def hed_to_rgb_sparse(hed: np.ndarray, block: int = 256) -> np.ndarray:
    """:func:`hed_to_rgb` of a (h, w, 3) array, converting only ``block``-px squares that hold
    some stain: zero stain is exactly white (255), which is most of a mostly-glass slide."""
    h, w = hed.shape[:2]
    out = np.full((h, w, 3), 255, np.uint8)
    for y in range(0, h, block):
        for x in range(0, w, block):
            b = hed[y : y + block, x : x + block]
            if b.any():
                out[y : y + block, x : x + block] = hed_to_rgb(np.ascontiguousarray(b))
    return out


def rgb_to_hed(rgb: np.ndarray) -> np.ndarray:
    """RGB uint8 -> HED stain concentrations float32 (``skimage.color.rgb2hed``)."""
    return rgb2hed(rgb).astype(np.float32)


def _tissue_crops(img: np.ndarray, size: int, stride: int, max_white: float) -> list[np.ndarray]:
    """Crops of ``img`` whose fraction of near-white pixels is below ``max_white``.
    Near-white = every channel above 215: glass and lumen, which we do not want as
    *tissue* texture (glass is drawn separately, lumens come from the class map).
    """
    out = []
    h, w = img.shape[:2]
    for y in range(0, h - size + 1, stride):
        for x in range(0, w - size + 1, stride):
            c = img[y : y + size, x : x + size]
            white = (c.min(axis=2) > 215).mean()
            if white < max_white:
                out.append(c)
    return out


def _elastic(img: np.ndarray, rng: np.random.Generator, alpha: float = 10.0, sigma: float = 24.0) -> np.ndarray:
    """Elastic warp: a smooth random displacement field (Simard et al.) of ~``alpha`` px."""
    h, w = img.shape[:2]
    dy = ndimage.gaussian_filter(rng.standard_normal((h, w)), sigma)
    dx = ndimage.gaussian_filter(rng.standard_normal((h, w)), sigma)
    dy *= alpha / (dy.std() + 1e-9)
    dx *= alpha / (dx.std() + 1e-9)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    coords = [yy + dy, xx + dx]
    return np.stack(
        [ndimage.map_coordinates(img[..., c], coords, order=1, mode="reflect") for c in range(img.shape[2])], axis=-1
    )


def _load_sources() -> list[np.ndarray]:
    """The real H&E images as RGB arrays at ~0.5 mpp."""
    with open_slide(sample_path("cmu")) as s:  # 0.499 mpp: used as is
        cmu = s.read_region(0, 0, *s.dimensions)
    tia = Image.open(sample_path("tiatoolbox")).convert("RGB")
    # the tiatoolbox tile is at ~40x (nuclei ~2x the size of CMU's): halve it to ~0.5 mpp
    tia = np.asarray(tia.resize((tia.width // 2, tia.height // 2), Image.Resampling.LANCZOS))
    return [cmu, tia]


@functools.lru_cache(maxsize=1)
def texture_bank(n: int = 48) -> np.ndarray:
    """``(n, CROP, CROP, 3)`` float32 HED crops of real tissue, augmented; cached per process.
    Deterministic (fixed seed) so every worker process builds the identical bank and a
    cohort never depends on which process drew a slide.
    """
    rng = np.random.default_rng(_BANK_SEED)
    cmu, tia = _load_sources()
    pool = _tissue_crops(cmu, CROP + 32, 96, max_white=0.12)
    pool_tia = _tissue_crops(tia, CROP + 32, 48, max_white=0.25)
    if not pool:
        raise RuntimeError("no tissue-rich crop found in the CMU sample")
    bank = np.empty((n, CROP, CROP, 3), np.float32)
    for i in range(n):
        # ~1 in 4 crops from the tiatoolbox tile: denser, more purple tumour-like texture
        src = pool_tia if (pool_tia and i % 4 == 3) else pool
        c = src[rng.integers(len(src))]
        c = np.rot90(c, rng.integers(4))
        if rng.random() < 0.5:
            c = c[:, ::-1]
        c = _elastic(np.ascontiguousarray(c), rng)[16 : 16 + CROP, 16 : 16 + CROP]
        hed = rgb_to_hed(c)
        # remove the real crop's own nuclei (see module docstring): blur H and cap it
        hed[..., 0] = np.minimum(ndimage.gaussian_filter(hed[..., 0], 4.0), 0.05) * 0.8
        bank[i] = hed
    return bank


def feather_window(size: int, ramp: int) -> np.ndarray:
    """2-D weight that is 1 inside and falls smoothly (cosine) to ~0 over ``ramp`` px at the edges."""
    t = np.ones(size, np.float32)
    r = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, ramp + 2)[1:-1])
    t[:ramp] = r
    t[-ramp:] = r[::-1]
    return np.outer(t, t).astype(np.float32)


def assemble_texture(rng: np.random.Generator, h: int, w: int, stride: int = 224, where: np.ndarray | None = None,
                     ds: int = 8) -> np.ndarray:
    """A seamless ``(h, w, 3)`` HED texture: random bank crops (random flip / rot90) pasted on
    an overlapping grid with feathered masks and normalised by the summed weights.

    ``where``: a boolean map (1/``ds`` of the slide's resolution) of where texture is needed; a
    crop whose footprint misses it is not pasted (its random draws still are, so the texture
    inside ``where`` is the same as without it).  Elsewhere the texture is 0."""
    bank = texture_bank()
    win = feather_window(CROP, (CROP - stride) // 2 + 16)
    acc = np.zeros((h + 2 * CROP, w + 2 * CROP, 3), np.float32)
    wsum = np.zeros((h + 2 * CROP, w + 2 * CROP), np.float32)
    for y in range(-stride // 2, h, stride):
        for x in range(-stride // 2, w, stride):
            c = bank[rng.integers(len(bank))]
            k = rng.integers(8)
            c = np.rot90(c, k % 4)
            if k >= 4:
                c = c[::-1]
            # jitter the position so the paste grid does not show
            yy = int(y + rng.integers(-24, 25)) + CROP // 2
            xx = int(x + rng.integers(-24, 25)) + CROP // 2
            yy, xx = max(yy, 0), max(xx, 0)
            if where is not None:
                y0, x0 = max(yy - CROP // 2, 0) // ds, max(xx - CROP // 2, 0) // ds
                if not where[y0 : (yy - CROP // 2 + CROP) // ds + 1, x0 : (xx - CROP // 2 + CROP) // ds + 1].any():
                    continue
            acc[yy : yy + CROP, xx : xx + CROP] += c * win[..., None]
            wsum[yy : yy + CROP, xx : xx + CROP] += win
    o = CROP // 2
    acc = acc[o : o + h, o : o + w]
    acc /= np.maximum(wsum[o : o + h, o : o + w], 1e-3)[..., None]
    return acc
