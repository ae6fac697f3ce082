"""Textureless and damaged content (the paper's Fig. 2), with no gene signal in it.

Every slide gets several artefacts drawn at random from the slide's RNG, *independently of
its latent biology*, so that whatever a selector keeps or drops there carries no information
about the genes.  Codes stored in the artefact map (uint8, same 1/DS grid as the class map):

* 0 none
* 1 solid: flat colour blocks (labels, ink pads, scanner fill) with faint noise
* 2 pen: thick green / blue / black marker strokes (a random-walk polyline)
* 3 blur: out-of-focus region (Gaussian-blurred tissue)
* 4 specks: dust specks and noisy debris chunks on the glass
* 5 fold: a tissue fold (doubled tissue: a band of ~2x stain density)

Blank glass (everything outside the tissue blob) is not an artefact code; it is the
``glass`` class of the class map, and patch tables call a mostly-glass patch "glass".
"""
from __future__ import annotations

import numpy as np
from PIL import Image
from scipy import ndimage

from .tissue import DS, GLASS, smooth_field

ARTEFACTS: dict[int, str] = {0: "none", 1: "solid", 2: "pen", 3: "blur", 4: "specks", 5: "fold"}
ARTEFACT_CODE = {v: k for k, v in ARTEFACTS.items()}
NONE, SOLID, PEN, BLUR, SPECKS, FOLD = range(6)

#: marker ink transmission (RGB multipliers) for green, blue and black pens
_PEN_INKS = np.array([[0.30, 0.62, 0.42], [0.25, 0.38, 0.80], [0.18, 0.18, 0.22]], np.float32)
#: colours of solid blocks (RGB)
_SOLID = np.array([[30, 30, 34], [120, 120, 125], [235, 215, 120], [70, 90, 160], [200, 200, 200]], np.float32)


def upsample(m: np.ndarray, h: int, w: int) -> np.ndarray:
    """Bilinear upsampling of a float map (1/DS grid) to slide size (h, w), via Pillow (fast)."""
    img = Image.fromarray(m.astype(np.float32), mode="F")
    big = img.resize((m.shape[1] * DS, m.shape[0] * DS), Image.Resampling.BILINEAR)
    return np.asarray(big, dtype=np.float32)[:h, :w]


def _polyline_mask(rng: np.random.Generator, shape, thick: float, n_steps: int, step: float) -> np.ndarray:
    """Soft mask (map res) of a smooth random-walk stroke of width ``thick`` map px."""
    h, w = shape
    y, x = rng.uniform(0, h), rng.uniform(0, w)
    heading = rng.uniform(0, 2 * np.pi)
    pts = []
    for _ in range(n_steps):
        heading += rng.normal(0, 0.25)
        for s in np.linspace(0, step, 6, endpoint=False):
            pts.append((y + s * np.sin(heading), x + s * np.cos(heading)))
        y, x = y + step * np.sin(heading), x + step * np.cos(heading)
    pts = np.array(pts)
    on = np.ones(shape, bool)
    iy, ix = np.round(pts[:, 0]).astype(int), np.round(pts[:, 1]).astype(int)
    ok = (iy >= 0) & (iy < h) & (ix >= 0) & (ix < w)
    on[iy[ok], ix[ok]] = False
    if on.all():
        return np.zeros(shape, np.float32)
    d = ndimage.distance_transform_edt(on)
    return np.clip(thick / 2 - d + 0.5, 0, 1).astype(np.float32)


def plan(rng: np.random.Generator, cmap: np.ndarray) -> list[dict]:
    """Choose the slide's artefacts (kinds, positions, sizes) at map resolution."""
    h, w = cmap.shape
    tissue = np.argwhere(cmap != GLASS)
    glass = np.argwhere(cmap == GLASS)
    items: list[dict] = []

    def where(prefer_glass: float):
        src = glass if (len(glass) and (rng.random() < prefer_glass or not len(tissue))) else tissue
        return src[rng.integers(len(src))] if len(src) else np.array([h // 2, w // 2])

    for _ in range(rng.integers(0, 3)):
        cy, cx = where(0.75)
        items.append({"kind": SOLID, "cy": int(cy), "cx": int(cx), "hh": int(rng.integers(8, 28)),
                      "hw": int(rng.integers(8, 28)), "colour": int(rng.integers(len(_SOLID)))})
    for _ in range(rng.integers(0, 3) if rng.random() < 0.7 else 0):
        items.append({"kind": PEN, "thick": float(rng.uniform(2.5, 5.0)), "ink": int(rng.integers(len(_PEN_INKS))),
                      "n": int(rng.integers(6, 16)), "step": float(rng.uniform(6, 14)),
                      "seed": int(rng.integers(2**31))})
    for _ in range(rng.integers(0, 3)):
        cy, cx = where(0.0)
        items.append({"kind": BLUR, "cy": int(cy), "cx": int(cx), "ry": float(rng.uniform(10, 32)),
                      "rx": float(rng.uniform(10, 32)), "sigma": float(rng.uniform(4, 9))})
    for _ in range(rng.integers(1, 4)):
        cy, cx = where(0.9)
        items.append({"kind": SPECKS, "cy": int(cy), "cx": int(cx), "r": float(rng.uniform(8, 30)),
                      "n": int(rng.integers(30, 250)), "chunks": int(rng.integers(0, 5)),
                      "seed": int(rng.integers(2**31))})
    if rng.random() < 0.45:
        items.append({"kind": FOLD, "width": float(rng.uniform(4, 12)), "seed": int(rng.integers(2**31))})
    return items


def solid_mask(items: list[dict], shape: tuple[int, int]) -> np.ndarray:
    """Map-resolution boolean mask of the planned solid blocks."""
    m = np.zeros(shape, bool)
    for it in items:
        if it["kind"] == SOLID:
            m[max(it["cy"] - it["hh"], 0) : max(it["cy"] + it["hh"], 0),
              max(it["cx"] - it["hw"], 0) : max(it["cx"] + it["hw"], 0)] = True
    return m


def _ellipse(shape, cy, cx, ry, rx, rng, wobble=0.15) -> np.ndarray:
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    d = np.sqrt(((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2)
    d = d + wobble * smooth_field(rng, shape, 4)
    return np.clip((1 - d) * min(ry, rx) / 2 + 0.5, 0, 1).astype(np.float32)


def apply_hed(rng: np.random.Generator, hed: np.ndarray, cmap: np.ndarray, items: list[dict], amap: np.ndarray) -> None:
    """Artefacts that act on stain density (fold, blur), in place on the unpadded HED view."""
    h, w = hed.shape[:2]
    tissue = (cmap != GLASS).astype(np.float32)
    for it in items:
        if it["kind"] == FOLD:
            r2 = np.random.default_rng(it["seed"])
            m = _polyline_mask(r2, cmap.shape, it["width"], 40, 6.0) * tissue
            if m.sum() == 0:
                continue
            amap[m > 0.5] = FOLD
            big = upsample(ndimage.gaussian_filter(m, 0.8), h, w)
            hed *= (1 + r2.uniform(0.7, 1.1) * big)[..., None]  # doubled section: ~2x density
        elif it["kind"] == BLUR:
            m = _ellipse(cmap.shape, it["cy"], it["cx"], it["ry"], it["rx"], rng) * tissue
            if m.sum() == 0:
                continue
            amap[m > 0.5] = BLUR
            ys, xs = np.nonzero(m)
            y0, y1 = max((ys.min() - 2) * DS, 0), min((ys.max() + 3) * DS, h)
            x0, x1 = max((xs.min() - 2) * DS, 0), min((xs.max() + 3) * DS, w)
            s = it["sigma"]
            reg = hed[y0:y1, x0:x1]
            blurred = ndimage.gaussian_filter(reg, (s, s, 0))
            a = upsample(m, h, w)[y0:y1, x0:x1, None]
            reg *= 1 - a
            reg += a * blurred


def apply_rgb(rng: np.random.Generator, rgb: np.ndarray, cmap: np.ndarray, items: list[dict],
              amap: np.ndarray) -> np.ndarray:
    """Opaque artefacts drawn over the RGB image (float32 0..255, in place): solid, pen, specks."""
    h, w = rgb.shape[:2]
    for it in items:
        k = it["kind"]
        if k == SOLID:
            y0, y1 = max(it["cy"] - it["hh"], 0), min(it["cy"] + it["hh"], cmap.shape[0])
            x0, x1 = max(it["cx"] - it["hw"], 0), min(it["cx"] + it["hw"], cmap.shape[1])
            if y1 <= y0 or x1 <= x0:
                continue
            amap[y0:y1, x0:x1] = SOLID
            Y0, Y1, X0, X1 = y0 * DS, min(y1 * DS, h), x0 * DS, min(x1 * DS, w)
            col = _SOLID[it["colour"]] * rng.uniform(0.92, 1.08)
            rgb[Y0:Y1, X0:X1] = np.clip(col, 0, 255)
            rgb[Y0:Y1, X0:X1] += rng.normal(0, 1.5, (Y1 - Y0, X1 - X0, 1)).astype(np.float32)
        elif k == PEN:
            r2 = np.random.default_rng(it["seed"])
            m = _polyline_mask(r2, cmap.shape, it["thick"], it["n"], it["step"])
            if m.sum() == 0:
                continue
            amap[m > 0.5] = PEN
            a = upsample(ndimage.gaussian_filter(m, 0.6), h, w)
            ys, xs = np.nonzero(a > 0)
            y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
            a = a[y0:y1, x0:x1, None] * r2.uniform(0.85, 1.0)
            ink = _PEN_INKS[it["ink"]]
            reg = rgb[y0:y1, x0:x1]
            reg *= 1 - a + a * ink  # marker ink is a transparent filter over what is below
        elif k == SPECKS:
            r2 = np.random.default_rng(it["seed"])
            cy, cx, r = it["cy"] * DS, it["cx"] * DS, it["r"] * DS
            py = np.clip(cy + r2.normal(0, r / 2, it["n"]), 0, h - 1)
            px = np.clip(cx + r2.normal(0, r / 2, it["n"]), 0, w - 1)
            lr = np.zeros(cmap.shape, bool)
            for y, x in zip(py, px):
                s = int(r2.integers(1, 4))
                y0, x0 = int(y) - s, int(x) - s
                y0c, x0c = max(y0, 0), max(x0, 0)
                rgb[y0c : y0 + 2 * s + 1, x0c : x0 + 2 * s + 1] *= r2.uniform(0.15, 0.6)
                lr[int(y) // DS, int(x) // DS] = True
            for _ in range(it["chunks"]):  # noisy chunks: irregular blobs of grainy dirt
                s = int(r2.integers(10, 32))
                y = int(np.clip(cy + r2.normal(0, r / 2), s, h - s - 1))
                x = int(np.clip(cx + r2.normal(0, r / 2), s, w - s - 1))
                yy, xx = np.mgrid[-s:s, -s:s]
                blob = (np.hypot(yy, xx) / s
                        + 0.35 * ndimage.gaussian_filter(r2.standard_normal((2 * s, 2 * s)), 3) * 3) < 0.8
                grain = r2.uniform(0.25, 0.85, (2 * s, 2 * s)).astype(np.float32)
                tint = np.array([0.9, 0.8, 0.7], np.float32) * r2.uniform(0.6, 1.0)
                reg = rgb[y - s : y + s, x - s : x + s]
                reg[blob] *= grain[blob][:, None] * tint
                lr[(y - s) // DS : (y + s) // DS + 1, (x - s) // DS : (x + s) // DS + 1] |= blob.any()
            # the speck *region* (dilated) is the artefact; specks landing on tissue stay minor
            lr = ndimage.binary_dilation(lr, iterations=2) & (cmap == GLASS)
            amap[lr & (amap == NONE)] = SPECKS
    return rgb
