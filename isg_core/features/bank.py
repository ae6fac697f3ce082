"""Training patches for the feature extractors: a bank sampled from selected regions only.

The extractors are trained on patches the selector kept (paper Sec. 3.2 trains on X''_G and
X''_L), so glass and pen never shape the features.  Patches are read once from the slides into
a uint8 "bank" (global patches resized to the network's resolution; local q x q patches cut
from kept global patches at their native size), saved as ``.npy`` beside the checkpoints so a
resumed run trains on exactly the same patches.  Random 90-degree rotations and flips are the
augmentation: H&E has no preferred orientation.

A bank drawn uniformly from the kept patches is mostly whatever is commonest (stroma, tumour
sheets); lymphocytes and mitoses are a few per cent of the local patches, and an autoencoder
spends its capacity where its loss is.  ``sampling="balanced"`` (the default) first draws
``pool_factor`` times as many candidates, describes each by its colour and stain statistics
(:func:`appearance_descriptor`), clusters them with K-means and then draws the same number from
every cluster (as far as each cluster goes): rare appearances are seen as often as common ones.
It uses nothing but the pixels, so it works the same on real slides.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..data.tiling import open_tiled_slide, read_global_patch, read_tiling_h5, split_local
from ..errors import IsgError, atomic_path
from ..kmeans import kmeans

SAMPLINGS = ("balanced", "uniform")


@dataclass(frozen=True)
class BankConfig:
    """Which patches to sample: ``n`` patches of ``scale`` ('global' or 'local') at
    ``resolution`` px from the slides' ``selection`` (``folds``: restrict to these folds)."""

    scale: str
    n: int
    resolution: int
    selection: str = "shannon"
    local_per_global: int = 8  # local patches cut from each global patch read
    seed: int = 0
    folds: tuple[int, ...] | None = None
    sampling: str = "balanced"  # or "uniform": see the module docstring
    pool_factor: int = 4  # balanced: candidates per bank patch
    clusters: int = 16  # balanced: K-means clusters of the candidates' appearance

    def __post_init__(self) -> None:
        if self.scale not in ("global", "local"):
            raise IsgError(None, f"scale must be 'global' or 'local', got {self.scale!r}")
        if self.sampling not in SAMPLINGS:
            raise IsgError(None, f"bank sampling must be one of {SAMPLINGS}, got {self.sampling!r}")
        if self.pool_factor < 1 or self.clusters < 1:
            raise IsgError(None, "bank pool_factor and clusters must be >= 1")


def resize_patches(x: torch.Tensor, size: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, size, size): area averaging when shrinking (no aliasing),
    bilinear when enlarging."""
    if x.shape[-1] == size:
        return x
    if x.shape[-1] > size:
        return F.interpolate(x, size=(size, size), mode="area")
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)


def to_tensor(patches: np.ndarray, size: int | None = None) -> torch.Tensor:
    """uint8 (B, H, W, 3) -> float (B, 3, H, W) in [-1, 1], optionally resized."""
    arr = np.asarray(patches)
    if not (arr.flags.writeable and arr.flags.c_contiguous):  # memory-mapped banks are read-only
        arr = np.array(arr, order="C")
    x = torch.from_numpy(arr).permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)
    return resize_patches(x, size) if size else x


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """float (B, 3, H, W) in [-1, 1] -> uint8 (B, H, W, 3) (clamped)."""
    return ((x.detach().float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()


def kept_patches(tiles_dir: Path, slide_ids: list[str], selection: str) -> list[tuple[str, int]]:
    """(slide_id, patch index) of every patch the selection kept, in slide order."""
    out = []
    for sid in slide_ids:
        h5 = tiles_dir / f"{sid}.h5"
        try:
            with h5py.File(h5, "r") as f:
                keep = f[f"selection/{selection}/keep"][:]
        except (OSError, KeyError):
            raise IsgError(h5, f"no '{selection}' selection: run `isg prepare` on the cohort first") from None
        out += [(sid, int(i)) for i in np.flatnonzero(keep)]
    return out


#: Ruifrok & Johnston (2001) optical-density vectors of haematoxylin, eosin and DAB (rows), the
#: stain matrix of scikit-image's ``rgb2hed``; its inverse separates the stains
_STAINS = np.array([[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]])
_UNMIX = np.linalg.inv(_STAINS / np.linalg.norm(_STAINS, axis=1, keepdims=True))
_UNMIX32 = _UNMIX.astype(np.float32)
#: -ln(v / 255) of each byte value v, clipped at 1/255 (a black pixel is not infinitely dense)
_OD_TABLE = (-np.log(np.clip(np.arange(256) / 255.0, 1 / 255, 1.0))).astype(np.float32)
_H_QUANTILES = (0.5, 0.75, 0.9, 0.97, 0.99)
#: length of :func:`appearance_descriptor`'s vector
DESCRIPTOR_DIM = 3 + 3 + len(_H_QUANTILES) + 1 + 1


def appearance_descriptor(patches: np.ndarray) -> np.ndarray:
    """uint8 (B, H, W, 3) -> (B, 13) float: what a patch looks like, without any threshold.

    Mean and SD of R, G, B (0-1); quantiles 0.5, 0.75, 0.9, 0.97 and 0.99 of the haematoxylin
    optical density (colour deconvolution, Ruifrok & Johnston 2001), whose upper quantiles grow
    with the area of dark nuclei (a lymphocyte, a mitosis); the mean eosin density; the mean
    absolute grey-level gradient (texture).  In float32, the optical density read from a table of
    the 256 byte values (about 3x faster than float64 on the patches of a whole cohort)."""
    u8 = np.asarray(patches, dtype=np.uint8)
    b = len(u8)
    x = u8.reshape(b, -1, 3).astype(np.float32) * np.float32(1 / 255.0)
    n = x.shape[1]
    # moments by einsum: numpy's mean / std over the pixel axes are ~10x slower here
    m1 = np.einsum("bnc->bc", x) / n
    xc = x - m1[:, None, :]  # centred first: E[x^2] - E[x]^2 loses digits in float32
    sd = np.sqrt(np.einsum("bnc,bnc->bc", xc, xc) / n)
    hed = _OD_TABLE[u8.reshape(b, -1, 3)] @ _UNMIX32
    grey = (x @ np.full(3, 1 / 3, np.float32)).reshape(u8.shape[:3])
    grad = np.abs(np.diff(grey, axis=1)).mean(axis=(1, 2)) + np.abs(np.diff(grey, axis=2)).mean(axis=(1, 2))
    h_q = np.quantile(hed[..., 0], _H_QUANTILES, axis=1).T
    return np.column_stack([m1, sd, h_q, np.einsum("bn->b", hed[..., 1]) / n, grad])


def balanced_choice(labels: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of ``n`` items drawn without replacement so that every label is drawn as often
    as possible: the same quota t from each, a label with fewer than t items giving all it has
    (water-filling; t is the smallest quota that reaches n).  Needs n <= len(labels)."""
    labels = np.asarray(labels)
    if n > len(labels):
        raise ValueError(f"cannot draw {n} items from {len(labels)}")
    groups = [rng.permutation(np.flatnonzero(labels == u)) for u in np.unique(labels)]
    sizes = np.array([len(g) for g in groups])
    t = 0
    while np.minimum(sizes, t).sum() < n:
        t += 1
    take = np.minimum(sizes, t)
    # t overshoots by at most one per full group: drop the surplus from groups at the quota, at random
    surplus = int(take.sum()) - n
    at_quota = np.flatnonzero(take == t)
    for j in rng.choice(at_quota, size=surplus, replace=False):
        take[j] -= 1
    return np.sort(np.concatenate([g[:k] for g, k in zip(groups, take)]))


def _draw_units(pool: list[tuple[str, int]], n: int, cfg: BankConfig, cells: int,
                rng: np.random.Generator) -> list[tuple[str, int, int]]:
    """(slide_id, patch, local cell or -1) of ``n`` patches drawn uniformly: global patches from
    the pool, and ``local_per_global`` distinct local cells of each (local scale)."""
    per = cfg.local_per_global if cfg.scale == "local" else 1
    n_global = -(-n // per)
    pick = sorted(rng.choice(len(pool), size=n_global, replace=n_global > len(pool)), key=lambda k: pool[k])
    units = []
    for k in pick:
        sid, i = pool[k]
        if cfg.scale == "global":
            units.append((sid, i, -1))
        else:
            units += [(sid, i, int(c)) for c in rng.choice(cells, size=per, replace=False)]
    return units[:n]


def _read_units(units: list[tuple[str, int, int]], paths: dict, tiles_dir: Path, cfg: BankConfig,
                desc: str, progress: bool):
    """Yield each unit's patch (uint8, r x r x 3 at the bank's resolution), in the units' order,
    reading each global patch once (units must be grouped by slide)."""
    slide, current, last, patch = None, None, None, None
    try:
        for sid, i, c in tqdm(units, desc=desc, unit="patch", disable=not progress, leave=False):
            if sid != current:
                if slide is not None:
                    slide.close()
                tiling = read_tiling_h5(tiles_dir / f"{sid}.h5")
                slide, current, last = open_tiled_slide(paths[sid], tiling, tiles_dir / f"{sid}.h5"), sid, None
            if (sid, i) != last:
                patch, last = read_global_patch(slide, tiling, i), (sid, i)
            if c < 0:
                yield to_uint8(to_tensor(patch[None], cfg.resolution))[0]
            else:
                q = tiling.config.local_size
                cell = split_local(patch, q).reshape(-1, q, q, 3)[c]
                yield to_uint8(to_tensor(cell[None], cfg.resolution))[0]
    finally:
        if slide is not None:
            slide.close()


def build_bank(manifest, tiles_dir: "str | os.PathLike", cfg: BankConfig, progress: bool = True,
               return_origins: bool = False):
    """Sample ``cfg.n`` training patches (uint8, (n, r, r, 3)) from the kept patches of the
    manifest's slides (``cfg.sampling``: uniformly, or balanced over appearance clusters).
    Deterministic given ``cfg.seed``.  With ``return_origins`` also a DataFrame of where each
    bank patch comes from (``slide_id``, ``patch``, ``cell``: the local patch's row-major index
    in the grid, -1 at the global scale), in the bank's order."""
    tiles_dir = Path(tiles_dir)
    m = manifest if cfg.folds is None else manifest[manifest["fold"].isin(cfg.folds)]
    pool = kept_patches(tiles_dir, list(m["slide_id"]), cfg.selection)
    if not pool:
        raise IsgError(tiles_dir, f"no patches kept by '{cfg.selection}' in these slides")
    rng = np.random.default_rng(cfg.seed)
    paths = dict(zip(m["slide_id"], m["path"]))
    tiling = read_tiling_h5(tiles_dir / f"{pool[0][0]}.h5")
    cells = tiling.config.grid ** 2
    if cfg.sampling == "uniform":
        units = _draw_units(pool, cfg.n, cfg, cells, rng)
    else:
        candidates = _draw_units(pool, cfg.pool_factor * cfg.n, cfg, cells, rng)
        desc = np.stack([appearance_descriptor(p[None])[0] for p in _read_units(
            candidates, paths, tiles_dir, cfg, f"{cfg.scale} bank candidates", progress)])
        z = (desc - desc.mean(axis=0)) / (desc.std(axis=0) + 1e-9)
        k = min(cfg.clusters, len(np.unique(z, axis=0)))
        _, labels = kmeans(z, k, seed=cfg.seed)
        chosen = balanced_choice(labels, min(cfg.n, len(candidates)), rng)
        units = [candidates[j] for j in chosen]  # still grouped by slide: candidates were
    bank = np.stack(list(_read_units(units, paths, tiles_dir, cfg, f"{cfg.scale} bank", progress)))
    order = rng.permutation(len(bank))
    if not return_origins:
        return bank[order]
    origins = pd.DataFrame(units, columns=["slide_id", "patch", "cell"]).iloc[order].reset_index(drop=True)
    return bank[order], origins


def tiles_identity(manifest, tiles_dir: "str | os.PathLike", cfg: BankConfig) -> str:
    """SHA-256 (16 hex) of what a bank is drawn from: each slide's id, the fingerprint of the slide
    file it was tiled from, its tiling config and the selection's keep mask.  A bank (and an
    extractor trained on it) is reused only if this is unchanged: a regenerated cohort at the same
    path has the same slide ids but not the same files."""
    m = manifest if cfg.folds is None else manifest[manifest["fold"].isin(cfg.folds)]
    h = hashlib.sha256()
    for sid in m["slide_id"]:
        path = Path(tiles_dir) / f"{sid}.h5"
        try:
            with h5py.File(path, "r") as f:
                h.update(f"{sid}:{f.attrs.get('slide_fingerprint', '')}:{f.attrs.get('tiling_config', '')}".encode())
                h.update(np.ascontiguousarray(f[f"selection/{cfg.selection}/keep"][:]).tobytes())
        except (OSError, KeyError):
            raise IsgError(path, f"no '{cfg.selection}' selection: run `isg prepare` on the cohort first") from None
    return h.hexdigest()[:16]


def bank_fingerprint(bank: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(bank).tobytes()).hexdigest()[:16]


def load_or_build_bank(path: "str | os.PathLike", manifest, tiles_dir, cfg: BankConfig,
                       progress: bool = True) -> np.ndarray:
    """The bank at ``path`` if it was built with ``cfg`` from the same tiles (:func:`tiles_identity`),
    else build and save it (atomically)."""
    path = Path(path)
    meta = path.with_suffix(".json")
    want = json.dumps({**asdict(cfg), "tiles": tiles_identity(manifest, tiles_dir, cfg)}, sort_keys=True)
    if path.exists() and meta.exists() and meta.read_text() == want:
        try:
            return np.load(path, mmap_mode="r")  # the paper-size bank is GBs: page it in
        except (OSError, ValueError):
            pass  # a damaged bank is rebuilt
    bank = build_bank(manifest, tiles_dir, cfg, progress=progress)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, bank)
    with atomic_path(meta) as tmp:
        tmp.write_text(want)
    return bank


def augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A random one of the 8 symmetries of the square (rotations by 90 degrees and flips),
    chosen per batch (cheap, and enough variety over thousands of steps)."""
    k = int(torch.randint(0, 4, (1,), generator=generator))
    x = torch.rot90(x, k, dims=(2, 3))
    if int(torch.randint(0, 2, (1,), generator=generator)):
        x = torch.flip(x, dims=(3,))
    return x
