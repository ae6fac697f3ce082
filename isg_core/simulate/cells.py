"""Cell populations: where cells are, what they look like, and how they are drawn.

Cells are placed on jittered lattices (one lattice per cell type, spacing ~ one cell
diameter, so nuclei pack like tissue instead of overlapping like Poisson points); each
lattice point is kept with a probability set by the class map at that point and the slide's
latent state.  A cell is drawn by *adding* haematoxylin (nucleus) and eosin (cytoplasm)
stain concentration to the slide's HED canvas with a precomputed stamp, so colours come out
of the same colour-deconvolution model as the real texture underneath.

Cell types (``CELL_TYPES``, uint8 code -> name):

* lymphocyte: small (12-16 px), round, very dark, little cytoplasm; T cells in the gene model.
* bcell: lymphocyte-like (11-14 px), packed in round aggregates (follicles) and scattered rarely.
* tumour: large pale vesicular nuclei (18-28 px) with a nucleolus and pink cytoplasm.
* mitosis: a tumour cell in division: dark clumped / bar-shaped chromatin with a clear halo.
* luminal: benign epithelium (PRAD luminal cells, LIHC benign hepatocytes), medium pale nuclei.
* basal: flattened dark nuclei lining the outside of benign prostate glands (TP63+).
* stroma: elongated spindle nuclei (fibroblasts) aligned with a smooth collagen direction field.
* debris: karyorrhectic fragments in necrosis (no RNA in the gene model).

Lymphocytes and B cells look the same locally on purpose: which one a cell is, and whether
a lymphocyte sits inside a tumour nest or in stroma, is only visible from the context.
"""
from __future__ import annotations

import functools

import numpy as np
from scipy import ndimage

from .tissue import BENIGN, DS, LYMPHOID, NECROSIS, STROMA, TUMOUR

CELL_TYPES: dict[int, str] = {
    0: "lymphocyte",
    1: "bcell",
    2: "tumour",
    3: "mitosis",
    4: "luminal",
    5: "basal",
    6: "stroma",
    7: "debris",
}
CELL_CODE = {v: k for k, v in CELL_TYPES.items()}
LYM, BCELL, TUM, MIT, LUMINAL, BASAL, STR, DEBRIS = range(8)
#: margin of the padded canvas: every stamp fits without clipping
PAD = 24
_KERNEL_SEED = 7


def _nucleus(k: int, ry: float, rx: float, theta: float, rng: np.random.Generator, edge: float = 1.2,
             irregular: float = 0.08) -> np.ndarray:
    """Soft filled ellipse (k x k) with an irregular outline; 1 inside, 0 outside."""
    c = (k - 1) / 2
    yy, xx = np.mgrid[0:k, 0:k].astype(np.float32) - c
    u = xx * np.cos(theta) + yy * np.sin(theta)
    v = -xx * np.sin(theta) + yy * np.cos(theta)
    ang = np.arctan2(v, u)
    # a few low harmonics make the outline slightly lumpy, like real nuclei
    wob = 1 + irregular * sum(rng.normal() * np.cos(m * ang + rng.uniform(0, 6.3)) for m in (2, 3, 5))
    d = np.sqrt((u / rx) ** 2 + (v / ry) ** 2) / wob
    r = min(rx, ry)
    return np.clip((1 - d) * r / edge + 0.5, 0, 1).astype(np.float32)


def _chromatin(k: int, rng: np.random.Generator, sigma: float, contrast: float) -> np.ndarray:
    n = ndimage.gaussian_filter(rng.standard_normal((k, k)), sigma)
    n = (n - n.min()) / (np.ptp(n) + 1e-9)
    return (1 - contrast / 2 + contrast * n).astype(np.float32)


def _stamp(h: np.ndarray, e: np.ndarray) -> np.ndarray:
    return np.stack([h, e, 0.12 * h], axis=-1).astype(np.float32)  # small DAB leak as in real H&E deconvolution


@functools.lru_cache(maxsize=4)
def kernel_bank(style: str = "PRAD", n_var: int = 24) -> dict[int, np.ndarray]:
    """Per cell type, ``n_var`` stamps of shape (k, k, 3) (HED increments); variant ``i`` is
    oriented at ``pi * i / n_var``.  ``style`` (cancer type) sets the tumour-cell look.
    Cached, fixed seed."""
    # Long on purpose: one nucleus style per cancer type, drawn in a fixed order from one generator;
    # split into helpers, the order of the random draws (and so every simulated slide) would be
    # spread over several functions.
    rng = np.random.default_rng(_KERNEL_SEED)
    bank: dict[int, list[np.ndarray]] = {t: [] for t in CELL_TYPES}
    for i in range(n_var):
        th = np.pi * i / n_var + rng.uniform(-0.05, 0.05)
        # lymphocyte / B cell: small round dense nucleus, thin rim of cytoplasm
        for t, (dmin, dmax) in ((LYM, (12, 16)), (BCELL, (11, 14))):
            k = 21
            d = rng.uniform(dmin, dmax)
            nuc = _nucleus(k, d / 2 * rng.uniform(0.9, 1.0), d / 2, th, rng, edge=1.0, irregular=0.04)
            hcn = nuc * rng.uniform(0.095, 0.12) * _chromatin(k, rng, 1.0, 0.35)
            bank[t].append(_stamp(hcn, 0.004 * _nucleus(k, d / 2 + 2, d / 2 + 2, th, rng)))
        # tumour: vesicular nucleus (rim + nucleolus) in cytoplasm; shape depends on the cancer type
        k = 41
        if style == "COAD":  # columnar: elongated, pseudostratified, oriented radially at placement
            ry, rx, cyto_s, e_amt = rng.uniform(3.5, 5.0), rng.uniform(8, 11), (1.5, 1.25), 0.016
        elif style == "LIHC":  # hepatocyte-like: round nucleus, abundant pink polygonal cytoplasm
            d = rng.uniform(14, 20)
            ry, rx, cyto_s, e_amt = d / 2 * rng.uniform(0.85, 1.0), d / 2, (2.1, 1.9), 0.026
        else:  # PRAD: round nucleus with a prominent nucleolus, pale cytoplasm
            d = rng.uniform(13, 17)
            ry, rx, cyto_s, e_amt = d / 2 * rng.uniform(0.85, 1.0), d / 2, (1.7, 1.6), 0.012
        nuc = _nucleus(k, ry, rx, th, rng, edge=1.3, irregular=0.05)
        inner = _nucleus(k, max(ry - 2.0, 1.0), max(rx - 2.0, 1.0), th, rng, edge=1.3, irregular=0.03)
        rim = np.clip(nuc - 0.6 * inner, 0, 1)
        c = (k - 1) / 2
        ny, nx = c + rng.uniform(-1.5, 1.5), c + rng.uniform(-1.5, 1.5)
        yy, xx = np.mgrid[0:k, 0:k]
        nucleolus = np.exp(-((yy - ny) ** 2 + (xx - nx) ** 2) / (2 * 1.2**2)).astype(np.float32)
        hcn = rim * 0.05 + nuc * 0.035 * _chromatin(k, rng, 1.2, 0.8) + nucleolus * nuc * 0.06
        cyto = _nucleus(k, ry * cyto_s[0], rx * cyto_s[1], th, rng, edge=4, irregular=0.10)
        bank[TUM].append(_stamp(hcn, e_amt * cyto * _chromatin(k, rng, 2, 0.6)))
        # mitosis: clumped / bar chromatin, very dark, irregular, clear halo
        k = 41
        hcn = np.zeros((k, k), np.float32)
        if rng.random() < 0.5:  # metaphase plate: a dark bar with ragged spikes
            bar = _nucleus(k, rng.uniform(2.5, 3.5), rng.uniform(8, 11), th, rng, edge=0.8, irregular=0.25)
            hcn += bar * 0.28
        n_clump = rng.integers(3, 8)
        for _ in range(n_clump):
            cy, cx = c + rng.normal(0, 3.5, 2)
            r = rng.uniform(1.5, 3.5)
            hcn += 0.22 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r)).astype(np.float32)
        hcn = np.minimum(hcn, 0.32) * _chromatin(k, rng, 0.8, 0.5)
        halo = _nucleus(k, 13, 13, 0, rng, edge=3, irregular=0.1)
        bank[MIT].append(_stamp(hcn - 0.01 * halo, -0.012 * halo + 0.02 * (halo - 0.6 * _nucleus(k, 9, 9, 0, rng))))
        # luminal / benign epithelium: medium pale round nucleus, pale cytoplasm
        k = 33
        d = rng.uniform(14, 18)
        nuc = _nucleus(k, d / 2 * rng.uniform(0.8, 1.0), d / 2, th, rng, edge=1.3, irregular=0.06)
        hcn = nuc * 0.055 * _chromatin(k, rng, 1.0, 0.6)
        cyto = _nucleus(k, d * 0.85, d * 0.8, th, rng, edge=3, irregular=0.1)
        bank[LUMINAL].append(_stamp(hcn, 0.018 * cyto))
        # basal: flattened, dark, elongated (orientation is set at placement: tangent to the gland)
        k = 29
        nuc = _nucleus(k, rng.uniform(3.0, 4.0), rng.uniform(7, 9), th, rng, edge=1.0, irregular=0.06)
        bank[BASAL].append(_stamp(nuc * 0.12 * _chromatin(k, rng, 1.0, 0.4), 0.005 * nuc))
        # stroma: spindle nucleus
        k = 33
        nuc = _nucleus(k, rng.uniform(1.6, 2.6), rng.uniform(8, 13), th, rng, edge=1.0, irregular=0.08)
        bank[STR].append(_stamp(nuc * 0.10 * _chromatin(k, rng, 1.0, 0.4), 0.006 * nuc))
        # debris: 1-4 small dark fragments
        k = 17
        hcn = np.zeros((k, k), np.float32)
        c2 = (k - 1) / 2
        yy2, xx2 = np.mgrid[0:k, 0:k]
        for _ in range(rng.integers(1, 5)):
            cy, cx = c2 + rng.normal(0, 2.5, 2)
            r = rng.uniform(1.0, 2.5)
            hcn += 0.18 * np.exp(-((yy2 - cy) ** 2 + (xx2 - cx) ** 2) / (2 * r * r)).astype(np.float32)
        bank[DEBRIS].append(_stamp(np.minimum(hcn, 0.25), 0.01 * (hcn > 0.05)))
    return {t: np.stack(v) for t, v in bank.items()}


def _lattice(rng: np.random.Generator, h: int, w: int, spacing: float) -> tuple[np.ndarray, np.ndarray]:
    """Jittered lattice points (y, x) in slide px covering an h x w slide."""
    ys = np.arange(spacing / 2, h, spacing)
    xs = np.arange(spacing / 2, w, spacing)
    y, x = np.meshgrid(ys, xs, indexing="ij")
    j = spacing * 0.3
    y = y.ravel() + rng.uniform(-j, j, y.size)
    x = x.ravel() + rng.uniform(-j, j, x.size)
    keep = (y >= 0) & (y < h) & (x >= 0) & (x < w)
    return y[keep], x[keep]


def _lookup(m: np.ndarray, y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Value of a map (at 1/DS resolution) at slide-px positions."""
    return m[np.minimum((y // DS).astype(np.int64), m.shape[0] - 1),
             np.minimum((x // DS).astype(np.int64), m.shape[1] - 1)]


def place_cells(rng: np.random.Generator, cmap: np.ndarray, geo: dict, h: int, w: int, cancer: str, lat: dict,
                fields: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """All cells of a slide: arrays x, y (int32 slide px), type (uint8), context (uint8 class
    at the cell), variant (stamp index) and orientation hint.

    ``fields`` holds smooth maps at map resolution: ``immune`` (multiplicative hot-spot field,
    mean ~1) and ``angle`` (stroma fibre direction).
    """
    # Long on purpose: the cell layout is one sequence of draws from ``rng`` (positions, classes,
    # sizes, shapes); kept in one function so that the order of the draws, which fixes every
    # simulated slide of a seed, reads in one place.
    ys, xs, ts, angs = [], [], [], []

    def add(y, x, t, ang=None):
        ys.append(y)
        xs.append(x)
        ts.append(np.full(len(y), t, np.uint8))
        angs.append(rng.uniform(0, np.pi, len(y)) if ang is None else np.asarray(ang, np.float64))

    # epithelium: tumour cells (bigger spacing in LIHC: hepatocyte-like polygonal cells)
    sp_t = {"LIHC": 22.0, "COAD": 12.0, "PRAD": 15.0}[cancer]
    y, x = _lattice(rng, h, w, sp_t)
    m = (_lookup(cmap, y, x) == TUMOUR) & (rng.random(y.size) < 0.85)
    ty, tx = y[m], x[m]
    is_mit = rng.random(ty.size) < lat["prolif"]
    t_ang = None
    if cancer == "COAD" and geo.get("glands") and ty.size:
        # columnar cells point at their gland's centre: long axis along the radius
        g = np.array(geo["glands"], np.float64)[:, :2] * DS
        d2 = (ty[:, None] - g[None, :, 0]) ** 2 + (tx[:, None] - g[None, :, 1]) ** 2
        near = g[np.argmin(d2, axis=1)]
        t_ang = np.arctan2(ty - near[:, 0], tx - near[:, 1])
    add(ty[~is_mit], tx[~is_mit], TUM, None if t_ang is None else t_ang[~is_mit])
    add(ty[is_mit], tx[is_mit], MIT)
    # benign epithelium
    y, x = _lattice(rng, h, w, {"LIHC": 23.0, "COAD": 17.0, "PRAD": 17.0}[cancer])
    m = (_lookup(cmap, y, x) == BENIGN) & (rng.random(y.size) < 0.8)
    add(y[m], x[m], LUMINAL)
    # basal layer: along the outer edge of benign prostate glands (lost in tumour glands)
    for cy, cx, ry, rx in geo.get("benign_glands", []):
        ry_px, rx_px = (ry - 0.6) * DS, (rx - 0.6) * DS
        n = int(2 * np.pi * np.sqrt((ry_px**2 + rx_px**2) / 2) / 13)
        a = np.sort(rng.uniform(0, 2 * np.pi, n))
        keep = rng.random(n) < lat["basal_keep"]
        by, bx = cy * DS + ry_px * np.sin(a[keep]), cx * DS + rx_px * np.cos(a[keep])
        ok = (by >= 0) & (by < h) & (bx >= 0) & (bx < w)
        ok[ok] &= _lookup(cmap, by[ok], bx[ok]) == BENIGN
        # long axis tangent to the gland outline: direction (-rx sin a, ry cos a)
        tang = np.arctan2(ry_px * np.cos(a[keep]), -rx_px * np.sin(a[keep]))
        add(by[ok], bx[ok], BASAL, tang[ok])
    # stroma
    y, x = _lattice(rng, h, w, 26.0)
    m = (_lookup(cmap, y, x) == STROMA) & (rng.random(y.size) < 0.35)
    add(y[m], x[m], STR, _lookup(fields["angle"], y[m], x[m]) + rng.normal(0, 0.2, int(m.sum())))
    # lymphocytes: intratumoural vs stromal split by the infiltration latent
    y, x = _lattice(rng, h, w, 12.0)
    c = _lookup(cmap, y, x)
    g = _lookup(fields["immune"], y, x)
    p = np.zeros(y.size, np.float32)
    # the infiltration latent moves lymphocytes between nests and stroma; nests get the larger
    # share so that the T-cell signal is carried mostly by intratumoural lymphocytes
    p[c == TUMOUR] = lat["immune"] * (0.3 + 0.7 * lat["infil"]) * 1.5
    p[(c == STROMA) | (c == BENIGN)] = lat["immune"] * (1 - lat["infil"]) * 0.5
    p *= g
    p[c == LYMPHOID] = 0.06  # a few T cells mixed into follicles
    m = rng.random(y.size) < np.minimum(p, 0.9)
    add(y[m], x[m], LYM)
    # B cells: packed in follicles, rare scattered ones in stroma
    y, x = _lattice(rng, h, w, 11.0)
    c = _lookup(cmap, y, x)
    p = np.where(c == LYMPHOID, 0.8, np.where(c == STROMA, 0.03 * lat["bcell"], 0.0))
    m = rng.random(y.size) < p
    add(y[m], x[m], BCELL)
    # necrotic debris
    y, x = _lattice(rng, h, w, 9.0)
    m = (_lookup(cmap, y, x) == NECROSIS) & (rng.random(y.size) < 0.35)
    add(y[m], x[m], DEBRIS)

    y = np.concatenate(ys).astype(np.int32)
    x = np.concatenate(xs).astype(np.int32)
    t = np.concatenate(ts)
    ctx = _lookup(cmap, y, x).astype(np.uint8)
    nvar = len(kernel_bank(cancer)[0])
    # stamp variant i is drawn at orientation pi*i/nvar: pick the one nearest the cell's angle
    ang = np.concatenate(angs)
    var = np.round(np.mod(ang, np.pi) / np.pi * nvar).astype(np.int64) % nvar
    return {"x": x, "y": y, "type": t, "context": ctx, "variant": var.astype(np.int16)}


def draw_cells(canvas: np.ndarray, cells: dict[str, np.ndarray], style: str) -> None:
    """Add every cell's stamp to ``canvas`` (padded HED array, PAD px margin), in place.

    A Python loop over a few thousand cells; each iteration is one small slice add.
    """
    bank = kernel_bank(style)
    order = np.argsort(cells["type"] == LYM, kind="stable")  # lymphocytes last: on top of epithelium
    for i in order:
        t = int(cells["type"][i])
        k = bank[t][int(cells["variant"][i])]
        r = k.shape[0] // 2
        y0 = int(cells["y"][i]) + PAD - r
        x0 = int(cells["x"][i]) + PAD - r
        canvas[y0 : y0 + k.shape[0], x0 : x0 + k.shape[1]] += k
