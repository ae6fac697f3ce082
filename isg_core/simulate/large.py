"""Large simulated H&E slides (40k-100k px and more), written tile by tile in bounded memory.

Why this exists: ISG-Sim's cohort slides (:mod:`isg_core.simulate.cohort`) are rendered whole
in memory (a float32 canvas of the full slide), which is right for 1-4k px slides and
impossible for a real-sized 100k x 100k px slide (30 GB as uint8 RGB).  Tiling, feature
extraction and reading code must still be exercised at that scale, so
:func:`write_large_slide` writes a slide of any size with peak memory that does *not* grow
with the slide: no level of the pyramid is ever held whole, every tile of every level is
computed on its own and handed to ``tifffile`` (one worker) as soon as it is made.

What the content is: a small *bank* of ISG-Sim tissue blocks (``N_BANK`` slides of one
cancer type, rendered by the project's own simulator with :func:`~.cohort.render_slide` at
twice the block side, each cropped to the ``block`` x ``block`` window with the least glass
and artefact, then colour-matched to each other in optical density), laid out over the large
slide on an overlapping grid (random bank block, random flip / 90-degree rotation per cell,
cosine-feathered seams) and shown through a smooth random tissue mask (a low-frequency field
thresholded to cover ``tissue_fraction`` of the slide, with ragged edges); the rest is glass
(~(235, 232, 238) with faint noise).  Every level is rendered from that same source at its
own resolution (bank blocks and edge noise box-downsampled, the mask sampled at the level's
pixel centres), so levels agree with level 0 to the eye without ever reading level 0 back.
The same seed gives a byte-identical file.

The slide carries no ground truth (no class map, cells or expression): it is a SIMULATED
image for scale tests, labelled so in its TIFF ImageDescription.
"""
from __future__ import annotations

import math
import pathlib
import tempfile
from typing import Iterator

import numpy as np
import tifffile
from scipy import ndimage
from tqdm.auto import tqdm

from ..config import CANCER_TYPES
from ..data.slides import tiff_level_args
from ..errors import IsgError, atomic_path
from . import artefacts as art
from . import tissue as ts
from .cohort import COHORT_NAME, SlideSpec, render_slide

#: bank blocks kept (the tissue source); more = less visible repetition, slower start-up
N_BANK = 5
#: candidates rendered to choose the bank from (the ones with least glass / artefact win)
N_CANDIDATES = 8
#: glass colour (RGB) and the SD of its sensor noise at level 0
GLASS_RGB = np.array([235.0, 232.0, 238.0], np.float32)
GLASS_NOISE_SD = 1.6
#: tissue-mask field: nodes per side, whatever the slide size (memory must not grow with it)
MASK_GRID = 256
#: period (level-0 px) of the tileable noise that makes the tissue edge ragged, and its amplitude (px)
EDGE_NOISE_PERIOD = 512
EDGE_NOISE_AMP = 16.0
#: glass noise tiles pre-drawn per level (picked per tile by a hash of its position)
GLASS_POOL = 8


# ---------------------------------------------------------------------------- bank ----
def _best_crop(bad: np.ndarray, m: int) -> tuple[int, int, float]:
    """Top-left (map px) of the ``m`` x ``m`` window of ``bad`` with the smallest sum, and its mean."""
    ii = np.pad(bad.astype(np.float64).cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    s = ii[m:, m:] - ii[:-m, m:] - ii[m:, :-m] + ii[:-m, :-m]
    k = int(np.argmin(s))  # first minimum: deterministic
    y, x = divmod(k, s.shape[1])
    return y, x, float(s.flat[k]) / (m * m)


def _match_colour(blocks: list[np.ndarray]) -> list[np.ndarray]:
    """Scale each block's optical density per channel to the bank's mean tissue OD.
    Bank blocks come from different simulated patients, each with its own stain jitter; left
    as is, neighbouring grid cells would show as a patchwork of pinker and bluer squares.
    """
    ods = [-np.log((b.astype(np.float32) + 0.5) / 256.0) for b in blocks]
    means = []
    for od in ods:
        t = od.sum(-1) > 0.3  # tissue, not glass or lumen
        means.append(od[t].mean(0) if t.any() else od.reshape(-1, 3).mean(0))
    target = np.mean(means, axis=0)
    out = []
    for od, mu in zip(ods, means):
        od *= (target / np.maximum(mu, 1e-3)).astype(np.float32)
        # inverse of the OD above (b = 256 e^-od - 0.5), rounded: + 0.5 then truncate
        out.append(np.clip(256.0 * np.exp(-od), 0, 255).astype(np.uint8))
    return out


def tissue_bank(seed: int, block: int, n: int = N_BANK, candidates: int = N_CANDIDATES) -> np.ndarray:
    """``(n, block, block, 3)`` uint8 blocks of simulated tissue, deterministic for ``seed``.
    Renders ``candidates`` ISG-Sim slides of one cancer type (chosen by the seed) at side
    ``2 * block`` into a temporary directory, reads each back, crops it to the block with the
    least glass and artefact (a tiled grid of whole simulated sections would show each one's
    blob outline and its pen marks over and over), and keeps the ``n`` best.
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x1A46E]))
    ti = int(rng.integers(len(CANCER_TYPES)))
    cancer = CANCER_TYPES[ti]
    side = 2 * block
    m = max(1, block // ts.DS)
    scored = []
    with tempfile.TemporaryDirectory(prefix="isg-large-bank-") as d:
        for i in range(candidates):
            sid = f"bank{i}"
            # patients 9001.. : disjoint from any cohort patient number a user would make
            spec = SlideSpec(i, sid, f"ISGSIM-{cancer}-BANK", cancer, ti, 9001 + i, 1, int(seed), side, side, d)
            render_slide(spec)
            img = tifffile.imread(pathlib.Path(d) / "slides" / f"{sid}.tiff")
            with np.load(pathlib.Path(d) / "maps" / f"{sid}.npz") as z:
                bad = (z["class_map"] == ts.GLASS) | (z["artefact_map"] != art.NONE)
            y, x, frac = _best_crop(bad, m)
            y0, x0 = min(y * ts.DS, img.shape[0] - block), min(x * ts.DS, img.shape[1] - block)
            scored.append((frac, i, np.ascontiguousarray(img[y0 : y0 + block, x0 : x0 + block])))
            del img
    scored.sort(key=lambda t: (t[0], t[1]))
    return np.stack(_match_colour([b for _, _, b in scored[:n]]))


def _box_down(a: np.ndarray, f: int) -> np.ndarray:
    """``f`` x ``f`` box mean (crops a ragged edge); float32 in, float32 out."""
    if f == 1:
        return a
    h, w = a.shape[0] // f * f, a.shape[1] // f * f
    a = a[:h, :w]
    return a.reshape(h // f, f, w // f, f, *a.shape[2:]).mean(axis=(1, 3), dtype=np.float32)


def _dihedral(a: np.ndarray, k: int) -> np.ndarray:
    """One of the 8 flips / 90-degree rotations of a square block (bit 2: transpose, bit 0:
    flip rows, bit 1: flip columns), as a view."""
    if k & 4:
        a = a.swapaxes(0, 1)
    if k & 1:
        a = a[::-1]
    if k & 2:
        a = a[:, ::-1]
    return a


def _tissue_weight(rgb: np.ndarray) -> np.ndarray:
    """uint8 blending weight of a bank block: ~255 on tissue, ~0 on its pale glass / lumen.
    Where two cells overlap, tissue wins over the odd glass notch at a bank crop's border,
    so the seams of the grid do not show as pale lines.
    """
    od = -np.log((rgb.astype(np.float32) + 0.5) / 256.0).sum(-1)
    w = ndimage.gaussian_filter(np.clip((od - 0.15) / 0.25, 0.0, 1.0), 4.0)
    return np.clip(w * 255 + 0.5, 0, 255).astype(np.uint8)


# ------------------------------------------------------------------------ geometry ----
class _Source:
    """The large slide as a function of position: renders any tile of any level on demand.
    Holds only slide-size-independent state: the bank (and one downsampled copy for the
    level being written), the ``MASK_GRID``-square mask field, the per-cell bank choices
    (two bytes per cell of ~``block`` px: 35 kB at 100k px), a periodic edge-noise
    texture and a few glass noise tiles.
    """
    def __init__(self, size: int, seed: int, block: int, tile: int, tissue_fraction: float):
        self.size, self.block, self.tile = size, block, tile
        self.seed = seed
        self.bank0 = tissue_bank(seed, block)
        self.wt0 = np.stack([_tissue_weight(b) for b in self.bank0])
        rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5117E]))
        # grid of cells: pitch P, each cell's block overlaps its neighbours by ov (feathered)
        self.ov = max(8, block // 4)
        self.pitch = block - self.ov
        self.off = self.ov // 2  # cell j covers level-0 [j*P - off, j*P - off + block)
        n = (size + block) // self.pitch + 2
        self.ncell = n
        self.cell_bank = self._assign(rng, n, len(self.bank0))
        self.cell_dih = rng.integers(8, size=(n, n)).astype(np.uint8)
        self.dist = self._mask_field(rng, tissue_fraction)
        self.edge0 = ts.smooth_field(rng, (EDGE_NOISE_PERIOD, EDGE_NOISE_PERIOD), 14.0)
        self.level_ds = 0

    @staticmethod
    def _assign(rng: np.random.Generator, n: int, nb: int) -> np.ndarray:
        """Bank block per cell, never the same as any already-placed neighbour (left, up,
        both upper diagonals): one block beside its own mirror image makes a kaleidoscope
        that no tissue has.  ``nb >= 5`` always leaves a choice; fewer falls back to any."""
        out = np.zeros((n, n), np.uint8)
        for i in range(n):
            for j in range(n):
                near = {int(out[i, j - 1])} if j else set()
                if i:
                    near |= {int(out[i - 1, k]) for k in range(max(j - 1, 0), min(j + 2, n))}
                ok = [k for k in range(nb) if k not in near] or list(range(nb))
                out[i, j] = ok[int(rng.integers(len(ok)))]
        return out

    def _mask_field(self, rng: np.random.Generator, frac: float) -> np.ndarray:
        """``MASK_GRID``-square field whose value is ~signed distance (level-0 px) to the tissue
        edge, positive inside; node (a, b) sits at level-0 ``(a, b) * size / (MASK_GRID - 1)``."""
        g = MASK_GRID
        f = ts.smooth_field(rng, (g, g), g / 14) + 0.35 * ts.smooth_field(rng, (g, g), g / 40)
        yy, xx = (np.mgrid[0:g, 0:g] / (g - 1) - 0.5) * 2
        # sections lie on the middle of the glass: fall off towards the borders
        f = f - 1.6 * (yy**2 + xx**2)
        if frac <= 0:
            t = math.inf
        elif frac >= 1:
            t = -math.inf
        else:
            t = float(np.quantile(f, 1 - frac))
        if not math.isfinite(t):
            return np.full((g, g), -1e9 if t > 0 else 1e9, np.float32)
        # field units -> px: divide by the typical gradient at the edge (per level-0 px)
        gy, gx = np.gradient(f)
        grad = np.hypot(gy, gx)
        near = np.abs(f - t) < 0.1 * f.std()
        gmed = float(np.median(grad[near] if near.any() else grad)) / (self.size / (g - 1))
        return ((f - t) / max(gmed, 1e-12)).astype(np.float32)

    def set_level(self, ds: int) -> None:
        """Downsample the bank and the edge noise for a level (``ds`` = 2**level)."""
        self.level_ds = ds
        if ds == 1:
            self.bank, self.wt = self.bank0, self.wt0
        else:  # a block never shrinks below 1 px (levels past ds = block: flat block colours)
            f = min(ds, self.block)
            down = lambda a: np.clip(_box_down(a.astype(np.float32), f) + 0.5, 0, 255).astype(np.uint8)  # noqa: E731
            self.bank = np.stack([down(b) for b in self.bank0])
            self.wt = np.stack([down(w) for w in self.wt0])
        self.bk = self.bank.shape[1]
        self.bscale = self.block / self.bk  # level-0 px per bank px at this level
        self.edge = _box_down(self.edge0, ds) if ds < EDGE_NOISE_PERIOD else np.zeros((1, 1), np.float32)
        self.edge_lo = float(self.edge.min()) * EDGE_NOISE_AMP
        self.edge_hi = float(self.edge.max()) * EDGE_NOISE_AMP
        # averaging ds x ds px of sensor noise shrinks it by ds; JPEG takes the rest
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, 0x61A55, ds]))
        sd = GLASS_NOISE_SD / ds
        self.glass = [
            np.clip(GLASS_RGB + rng.standard_normal((self.tile, self.tile, 1), dtype=np.float32) * sd + 0.5,
                    0, 255).astype(np.uint8)
            for _ in range(GLASS_POOL)
        ]
        # the edge ramp must span at least a pixel of this level, or edges alias
        self.ramp = max(4.0, 1.5 * ds)

    # -------------------------------------------------------------------- one tile ----
    def _glass_tile(self, ty: int, tx: int) -> np.ndarray:
        h = (ty * 73856093) ^ (tx * 19349663) ^ (self.level_ds * 83492791)
        return self.glass[h % GLASS_POOL]

    def _alpha(self, ys: np.ndarray, xs: np.ndarray, ey: np.ndarray, ex: np.ndarray) -> np.ndarray | float:
        """Tissue opacity of the tile (0 glass, 1 tissue), or a scalar when the tile is uniform."""
        g = MASK_GRID
        s = (g - 1) / self.size
        qy, qx = np.clip(ys * s, 0, g - 1 - 1e-6), np.clip(xs * s, 0, g - 1 - 1e-6)
        iy, ix = qy.astype(np.int64), qx.astype(np.int64)
        d = self.dist
        # bilinear interpolation is bounded by its nodes: decide uniform tiles without it
        sub = d[iy[0] : iy[-1] + 2, ix[0] : ix[-1] + 2]
        half = self.ramp / 2
        if float(sub.max()) + self.edge_hi <= -half:
            return 0.0
        if float(sub.min()) + self.edge_lo >= half:
            return 1.0
        en = self.edge[ey[:, None], ex[None, :]] * np.float32(EDGE_NOISE_AMP)
        fy, fx = (qy - iy).astype(np.float32)[:, None], (qx - ix).astype(np.float32)[None, :]
        iy1, ix1 = np.minimum(iy + 1, g - 1), np.minimum(ix + 1, g - 1)
        v = (d[iy][:, ix] * (1 - fy) * (1 - fx) + d[iy1][:, ix] * fy * (1 - fx)
             + d[iy][:, ix1] * (1 - fy) * fx + d[iy1][:, ix1] * fy * fx)
        return np.clip(0.5 + (v + en) / self.ramp, 0.0, 1.0)

    def _feather(self, u: np.ndarray) -> np.ndarray:
        """Cell weight along one axis at local level-0 coordinate ``u`` (cosine ramps of ov px
        at both ends: two neighbours' ramps sum to 1 over their overlap)."""
        ov, b = self.ov, self.block
        r = lambda s: 0.5 - 0.5 * np.cos(np.pi * np.clip(s / ov, 0.0, 1.0))  # noqa: E731
        return (r(u) * r(b - u)).astype(np.float32)

    def _content(self, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
        """Tissue RGB (float32 or uint8) at level-0 pixel centres ``ys`` x ``xs``."""
        P, off, b, sc, bk = self.pitch, self.off, self.block, self.bscale, self.bk
        # cell i covers level-0 [i*P - off, i*P - off + b): y lies in cells (y+off-b)/P < i <= (y+off)/P
        j0 = max(0, int((xs[0] + off - b) // P) + 1)
        j1 = int((xs[-1] + off) // P)
        i0 = max(0, int((ys[0] + off - b) // P) + 1)
        i1 = int((ys[-1] + off) // P)
        single = i0 == i1 and j0 == j1
        acc = None if single else np.zeros((len(ys), len(xs), 3), np.float32)
        wsum = None if single else np.zeros((len(ys), len(xs)), np.float32)
        for i in range(i0, i1 + 1):
            uy = ys - (i * P - off)
            ry = np.flatnonzero((uy >= 0) & (uy < b))
            if not len(ry):
                continue
            for j in range(j0, j1 + 1):
                ux = xs - (j * P - off)
                rx = np.flatnonzero((ux >= 0) & (ux < b))
                if not len(rx):
                    continue
                ci, cj = i % self.ncell, j % self.ncell
                k, dih = int(self.cell_bank[ci, cj]), int(self.cell_dih[ci, cj])
                a = np.minimum((uy[ry] / sc).astype(np.int64), bk - 1)
                c = np.minimum((ux[rx] / sc).astype(np.int64), bk - 1)
                # rows a, columns c of the block seen through its flip / transpose (views, no copy)
                blk, wt = _dihedral(self.bank[k], dih), _dihedral(self.wt[k], dih)
                if a[-1] - a[0] == len(a) - 1 and c[-1] - c[0] == len(c) - 1:
                    idx = (slice(a[0], a[-1] + 1), slice(c[0], c[-1] + 1))  # the usual case: a slice
                else:
                    idx = (a[:, None], c[None, :])
                pix = blk[idx]
                if single:
                    return np.ascontiguousarray(pix)  # one cell covers the whole tile: no blending
                w = self._feather(uy[ry])[:, None] * self._feather(ux[rx])[None, :]
                w *= wt[idx] * np.float32(1 / 255) + np.float32(0.02)
                sl = (slice(ry[0], ry[-1] + 1), slice(rx[0], rx[-1] + 1))
                acc[sl] += pix * w[..., None]
                wsum[sl] += w
        return acc / np.maximum(wsum, 1e-6)[..., None]

    def tile_at(self, ty: int, tx: int) -> np.ndarray:
        """The ``(tile, tile, 3)`` uint8 tile at tile row ``ty``, column ``tx`` of the current
        level (tiles past the slide edge are rendered whole, so tifffile never pads them with
        black that JPEG would smear into the last real pixels)."""
        T, ds = self.tile, self.level_ds
        Y, X = np.arange(ty * T, ty * T + T), np.arange(tx * T, tx * T + T)
        ys, xs = (Y + 0.5) * ds, (X + 0.5) * ds  # level-0 coordinates of this level's pixel centres
        pe = self.edge.shape[0]
        alpha = self._alpha(ys, xs, Y % pe, X % pe)
        if isinstance(alpha, float) and alpha == 0.0:
            return self._glass_tile(ty, tx)
        content = self._content(ys, xs)
        if isinstance(alpha, float):
            return content if content.dtype == np.uint8 else np.clip(content + 0.5, 0, 255).astype(np.uint8)
        glass = self._glass_tile(ty, tx).astype(np.float32)
        a = alpha[..., None]
        out = content * a + glass * (1 - a)
        return np.clip(out + 0.5, 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------- write ----
def _level_sizes(size: int) -> list[int]:
    """Level sides: halve (floor) until the side is below 1024 (that level included)."""
    sizes = [size]
    while sizes[-1] >= 1024:
        sizes.append(sizes[-1] // 2)
    return sizes


def write_large_slide(
    path: str | pathlib.Path,
    size: int,
    seed: int = 0,
    block: int = 1024,
    tile: int = 256,
    tissue_fraction: float = 0.5,
    mpp: float = 0.5,
    quality: int = 85,
    progress: bool = False,
) -> pathlib.Path:
    """Write a SIMULATED ``size`` x ``size`` px H&E slide to ``path`` in bounded memory.
    A tiled (``tile`` px), JPEG (``quality``) pyramidal TIFF (BigTIFF when the raw pixels
    exceed 2 GiB) that OpenSlide opens as ``generic-tiff`` with ``mpp`` from the resolution
    tags.  Levels halve until the longer side is below 1024 px.  Tissue covers about
    ``tissue_fraction`` of the slide, built from ISG-Sim blocks of side ``block`` (see the
    module docstring).  Deterministic for ``seed`` (byte-identical files); written
    atomically.  Peak memory is about that of rendering the bank (a few hundred MB for
    ``block=1024``), independent of ``size``.  Returns ``path``.
    """
    # Long on purpose: one streaming pass that renders and writes the pyramid tile by tile in
    # bounded memory; the loop state (writer, levels, random draws) is shared by every step.
    if size < 1:
        raise IsgError(path, f"size must be positive, got {size}")
    if tile < 16 or tile % 16:
        raise IsgError(path, f"tile must be a positive multiple of 16, got {tile}")
    if block < 64 or block % ts.DS:
        raise IsgError(path, f"block must be a multiple of {ts.DS} and at least 64, got {block}")
    if not 0.0 <= tissue_fraction <= 1.0:
        raise IsgError(path, f"tissue_fraction must be within [0, 1], got {tissue_fraction}")
    if not mpp > 0:
        raise IsgError(path, f"mpp must be positive, got {mpp}")
    if not 1 <= quality <= 100:
        raise IsgError(path, f"quality must be within 1-100, got {quality}")

    src = _Source(int(size), int(seed), int(block), int(tile), float(tissue_fraction))
    sizes = _level_sizes(int(size))
    ntiles = [math.ceil(s / tile) ** 2 for s in sizes]
    desc = (f"{COHORT_NAME} large slide size={size} seed={seed} block={block} "
            f"tissue_fraction={tissue_fraction} (SIMULATED image, no ground truth)")

    bar = tqdm(total=sum(ntiles), desc="isg large slide", unit="tile", disable=not progress)

    def tiles(n: int) -> Iterator[np.ndarray]:
        for ty in range(n):
            for tx in range(n):
                yield src.tile_at(ty, tx)
                bar.update()

    try:
        with atomic_path(path) as tmp:
            with tifffile.TiffWriter(tmp, bigtiff=size * size * 3 > 2**31) as tw:
                for lvl, side in enumerate(sizes):
                    ds = 2**lvl
                    src.set_level(ds)
                    tw.write(
                        tiles(math.ceil(side / tile)),
                        shape=(side, side, 3),
                        dtype=np.uint8,
                        **tiff_level_args(mpp, ds, tile, quality, desc),
                        maxworkers=1,  # one core: the machine is shared, and memory stays one tile
                    )
    finally:
        bar.close()
    return pathlib.Path(path)
