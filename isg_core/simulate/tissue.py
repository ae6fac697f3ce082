"""Tissue architecture: a low-resolution class map per slide.

The map is drawn at 1/``DS`` of the slide resolution (DS = 8: one map pixel = 4 x 4 um at
0.5 mpp) from smooth random fields (white noise, Gaussian-smoothed, thresholded at
quantiles) inside an irregular tissue blob on glass.  Each cancer type has its own
architecture:

* LIHC: trabecular plates of tumour cells separated by thin sinusoids (lumen class), in a
  background of benign liver plates and fibrous septa (stroma).
* COAD: glands (a ring of tumour epithelium around a lumen) in desmoplastic stroma; some
  lumens hold "dirty" necrosis, plus necrotic patches.
* PRAD: small glands; benign glands (benign class, later lined by a basal-cell layer) and
  small crowded tumour glands without basal cells.

Every type also gets a few lymphoid aggregates (B-cell follicles).

Two layouts of tissue on glass (:data:`LAYOUTS`): ``section`` (one blob filling about half of a
small square canvas: the cohorts up to generator 1.0) and ``wsi`` (:func:`tissue_sections`: one to
three sections covering a quarter to a half of a larger canvas, the rest glass, as on a TCGA
diagnostic slide).
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

#: map downsample factor (slide px per map px)
DS = 8

#: tissue classes stored in the class map (uint8 code -> name)
CLASSES: dict[int, str] = {
    0: "glass",
    1: "stroma",
    2: "tumour",
    3: "lymphoid",
    4: "lumen",
    5: "necrosis",
    6: "benign",
}
CLASS_CODE = {v: k for k, v in CLASSES.items()}
GLASS, STROMA, TUMOUR, LYMPHOID, LUMEN, NECROSIS, BENIGN = range(7)


def smooth_field(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Zero-mean, unit-SD Gaussian random field with correlation length ~``sigma`` map px."""
    f = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma, mode="wrap")
    f -= f.mean()
    f /= f.std() + 1e-9
    return f


def tissue_blob(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Boolean mask of an irregular tissue section (one main piece, sometimes a fragment)."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cy, cx = h * rng.uniform(0.42, 0.58), w * rng.uniform(0.42, 0.58)
    ry, rx = h * rng.uniform(0.34, 0.46), w * rng.uniform(0.34, 0.46)
    th = rng.uniform(0, np.pi)
    dy, dx = yy - cy, xx - cx
    u = (dx * np.cos(th) + dy * np.sin(th)) / rx
    v = (-dx * np.sin(th) + dy * np.cos(th)) / ry
    r = np.sqrt(u * u + v * v)
    # two scales of boundary irregularity: lobes and a ragged edge
    r = r + 0.22 * smooth_field(rng, shape, max(h, w) / 10) + 0.05 * smooth_field(rng, shape, max(h, w) / 60)
    m = r < 1.0
    if rng.random() < 0.4:  # a small detached fragment, as sections often have
        fy, fx = h * rng.uniform(0.1, 0.9), w * rng.choice([0.1, 0.9])
        fr = min(h, w) * rng.uniform(0.05, 0.09)
        m |= ((yy - fy) ** 2 + (xx - fx) ** 2) < fr**2 * (1 + 0.3 * smooth_field(rng, shape, 6))
    lab, n = ndimage.label(m)
    if n > 1:  # drop crumbs smaller than 2% of the largest piece
        sizes = ndimage.sum(m, lab, range(1, n + 1))
        keep = np.flatnonzero(sizes >= 0.02 * sizes.max()) + 1
        m = np.isin(lab, keep)
    return ndimage.binary_fill_holes(m)


#: layouts of tissue on the glass: see the module docstring
LAYOUTS = ("section", "wsi")
#: ``wsi``: fraction of the canvas covered by tissue (uniform between these; TCGA diagnostic slides
#: are mostly glass around one or a few sections) and how many sections (1, 2, 3) with what probability
WSI_TISSUE_FRACTION = (0.28, 0.48)
WSI_SECTIONS_P = (0.5, 0.35, 0.15)


def tissue_sections(rng: np.random.Generator, shape: tuple[int, int],
                    fraction: tuple[float, float] = WSI_TISSUE_FRACTION) -> np.ndarray:
    """Boolean mask of one to three irregular tissue sections on glass (the ``wsi`` layout).

    The sections share a tissue area drawn uniformly from ``fraction`` of the canvas (Dirichlet
    shares, none below a fifth), are elongated ellipses (axis ratio 0.5-1) with the same lobed,
    ragged edge as :func:`tissue_blob`, and are placed by rejection so that they barely touch.
    The realised fraction differs from the draw by the edge noise and the clipping at the border."""
    h, w = shape
    target = rng.uniform(*fraction) * h * w
    k = int(rng.choice(len(WSI_SECTIONS_P), p=WSI_SECTIONS_P)) + 1
    shares = np.maximum(rng.dirichlet(np.full(k, 3.0)), 0.2)
    shares /= shares.sum()
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    lobes = 0.22 * smooth_field(rng, shape, max(h, w) / 14) + 0.05 * smooth_field(rng, shape, max(h, w) / 80)
    m = np.zeros(shape, bool)
    placed: list[tuple[float, float, float]] = []
    for share in shares:
        ratio = rng.uniform(0.5, 1.0)
        a = np.sqrt(share * target / (np.pi * ratio))  # semi-axes a, a * ratio hold the section's area
        b = a * ratio
        th = rng.uniform(0, np.pi)
        for _ in range(50):  # rejection: centres far enough apart for the sections not to overlap much
            cy, cx = rng.uniform(b, max(h - b, b + 1)), rng.uniform(b, max(w - b, b + 1))
            if all((cy - py) ** 2 + (cx - px) ** 2 > (0.8 * (a + pa)) ** 2 for py, px, pa in placed):
                break
        placed.append((cy, cx, a))
        dy, dx = yy - cy, xx - cx
        u = (dx * np.cos(th) + dy * np.sin(th)) / a
        v = (-dx * np.sin(th) + dy * np.cos(th)) / b
        m |= np.sqrt(u * u + v * v) + lobes < 1.0
    lab, n = ndimage.label(m)
    if n > 1:  # drop crumbs smaller than 2% of the largest piece
        sizes = ndimage.sum(m, lab, range(1, n + 1))
        m = np.isin(lab, np.flatnonzero(sizes >= 0.02 * sizes.max()) + 1)
    return ndimage.binary_fill_holes(m)


def _quantile_mask(field: np.ndarray, within: np.ndarray, frac: float) -> np.ndarray:
    """The ``frac`` of ``within`` where ``field`` is highest."""
    if frac <= 0 or not within.any():
        return np.zeros_like(within)
    t = np.quantile(field[within], 1 - min(frac, 1.0))
    return within & (field >= t)


def _stripes(rng: np.random.Generator, shape, period: float, width: float) -> np.ndarray:
    """Warped parallel stripes: thin lines every ``period`` map px (sinusoids between plates)."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    th = rng.uniform(0, np.pi)
    u = xx * np.cos(th) + yy * np.sin(th) + 6.0 * smooth_field(rng, shape, 12) + 2.0 * smooth_field(rng, shape, 4)
    phase = np.mod(u / period, 1.0)
    return np.abs(phase - 0.5) < (width / period / 2)


def _glands(
    rng: np.random.Generator,
    cmap: np.ndarray,
    region: np.ndarray,
    r_range: tuple[float, float],
    wall: float,
    epi_class: int,
    density: float,
    necrotic: float = 0.0,
) -> list[tuple[float, float, float, float]]:
    """Draw glands (epithelial ring ``epi_class`` around a lumen) inside ``region``.

    Gland centres: random candidates kept if not closer than the sum of radii to an earlier
    gland (a cheap hard-core process).  Returns (cy, cx, ry, rx) per gland.
    """
    h, w = cmap.shape
    pts = np.argwhere(region)
    if len(pts) == 0:
        return []
    n_try = int(density * len(pts) / (np.mean(r_range) ** 2 * np.pi) * 3) + 1
    cand = pts[rng.integers(len(pts), size=n_try)].astype(np.float32) + rng.uniform(0, 1, (n_try, 2))
    placed: list[tuple[float, float, float, float]] = []
    for cy, cx in cand:
        r = rng.uniform(*r_range)
        if any((cy - py) ** 2 + (cx - px) ** 2 < (r + max(pr, qr) + 1.5) ** 2 for py, px, pr, qr in placed):
            continue
        ell = rng.uniform(0.7, 1.0)
        ry, rx = (r, r * ell) if rng.random() < 0.5 else (r * ell, r)
        placed.append((cy, cx, ry, rx))
    for cy, cx, ry, rx in placed:
        y0, y1 = max(int(cy - ry - 2), 0), min(int(cy + ry + 3), h)
        x0, x1 = max(int(cx - rx - 2), 0), min(int(cx + rx + 3), w)
        if y1 <= y0 or x1 <= x0:
            continue
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32) + 0.5
        d = np.sqrt(((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2)
        inside = (d < 1.0) & region[y0:y1, x0:x1]
        lumen = inside & (d < 1.0 - wall / min(ry, rx))
        sub = cmap[y0:y1, x0:x1]
        sub[inside] = epi_class
        sub[lumen] = NECROSIS if rng.random() < necrotic else LUMEN
    return placed


def class_map(rng: np.random.Generator, shape: tuple[int, int], cancer: str, lat: dict,
              layout: str = "section") -> tuple[np.ndarray, dict]:
    """Low-resolution uint8 class map for one slide, and geometry used later (glands).

    ``lat`` holds the slide's latent state: ``epi`` (tumour fraction of the tissue),
    ``benign`` (benign fraction of the non-tumour tissue), ``bcell`` (B-cell level).
    ``layout``: how tissue lies on the glass (:data:`LAYOUTS`).
    """
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r} (choose one of {', '.join(LAYOUTS)})")
    tissue = tissue_blob(rng, shape) if layout == "section" else tissue_sections(rng, shape)
    cmap = np.where(tissue, STROMA, GLASS).astype(np.uint8)
    geo: dict = {"glands": [], "benign_glands": []}
    zone = smooth_field(rng, shape, 14)
    tum_zone = _quantile_mask(zone, tissue, lat["epi"])
    rest = tissue & ~tum_zone
    ben_zone = _quantile_mask(smooth_field(rng, shape, 10), rest, lat["benign"])
    if cancer == "LIHC":
        # plates 2-3 cells thick (period ~6 map px = 24 um) separated by sinusoids
        sinus = _stripes(rng, shape, period=rng.uniform(5.5, 7.5), width=1.3)
        cmap[tum_zone] = TUMOUR
        cmap[tum_zone & sinus] = LUMEN
        sinus_b = _stripes(rng, shape, period=rng.uniform(5.0, 6.5), width=1.0)
        cmap[ben_zone] = BENIGN
        cmap[ben_zone & sinus_b] = LUMEN
        nec = _quantile_mask(smooth_field(rng, shape, 6), tum_zone, rng.uniform(0.0, 0.06))
        cmap[nec] = NECROSIS
    elif cancer == "COAD":
        geo["glands"] = _glands(rng, cmap, tum_zone, (7, 15), wall=rng.uniform(2.5, 4.0), epi_class=TUMOUR,
                                density=0.8, necrotic=rng.uniform(0.0, 0.35))
        nec = _quantile_mask(smooth_field(rng, shape, 5), tum_zone, rng.uniform(0.0, 0.08))
        cmap[nec] = NECROSIS
    elif cancer == "PRAD":
        geo["benign_glands"] = _glands(rng, cmap, ben_zone, (6, 11), wall=2.5, epi_class=BENIGN, density=0.45)
        geo["glands"] = _glands(rng, cmap, tum_zone, (3, 5.5), wall=1.6, epi_class=TUMOUR, density=0.6)
    else:
        raise ValueError(f"unknown cancer type {cancer!r}")
    # lymphoid aggregates (B-cell follicles): round, 20-60 um radius; count follows the B-cell level
    n_agg = rng.poisson(lat["bcell"] * tissue.sum() / 4000.0)
    pts = np.argwhere(tissue)
    geo["aggregates"] = []
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    # the cap keeps the section layout's cohorts as they were; on a wsi canvas it grows with the
    # tissue, so that B-cell density (what the genes read) does not fall on bigger sections
    cap = 12 if layout == "section" else max(12, int(12 * tissue.sum() / 8192))
    for _ in range(min(n_agg, cap)):
        cy, cx = pts[rng.integers(len(pts))] + 0.5
        r = rng.uniform(5, 15)
        m = ((yy - cy) ** 2 + (xx - cx) ** 2) < (r * r) * (1 + 0.15 * smooth_field(rng, shape, 3))
        m &= tissue
        cmap[m] = LYMPHOID
        geo["aggregates"].append((float(cy), float(cx), float(r)))
    return cmap, geo
