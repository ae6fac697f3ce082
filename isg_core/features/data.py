"""Training patches for the feature extractors: a bank sampled from selected regions only.

The extractors are trained on patches the selector kept (paper Sec. 3.2 trains on X''_G and
X''_L), so glass and pen never shape the features.  Patches are read once from the slides into
a uint8 "bank" (global patches resized to the network's resolution; local q x q patches cut
from kept global patches at their native size), saved as ``.npy`` beside the checkpoints so a
resumed run trains on exactly the same patches.  Random 90-degree rotations and flips are the
augmentation: H&E has no preferred orientation.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import h5py
import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..errors import IsgError, atomic_path
from ..tiling import open_tiled_slide, read_global_patch, read_tiling_h5, split_local


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

    def __post_init__(self) -> None:
        if self.scale not in ("global", "local"):
            raise IsgError(None, f"scale must be 'global' or 'local', got {self.scale!r}")


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


def build_bank(manifest, tiles_dir: "str | os.PathLike", cfg: BankConfig, progress: bool = True) -> np.ndarray:
    """Sample ``cfg.n`` training patches (uint8, (n, r, r, 3)) from the kept patches of the
    manifest's slides.  Deterministic given ``cfg.seed``."""
    tiles_dir = Path(tiles_dir)
    m = manifest if cfg.folds is None else manifest[manifest["fold"].isin(cfg.folds)]
    pool = kept_patches(tiles_dir, list(m["slide_id"]), cfg.selection)
    if not pool:
        raise IsgError(tiles_dir, f"no patches kept by '{cfg.selection}' in these slides")
    rng = np.random.default_rng(cfg.seed)
    per = cfg.local_per_global if cfg.scale == "local" else 1
    n_global = -(-cfg.n // per)
    pick = rng.choice(len(pool), size=n_global, replace=n_global > len(pool))
    pick = sorted(pick, key=lambda k: pool[k])  # read slide by slide
    paths = dict(zip(m["slide_id"], m["path"]))
    out, slide, current = [], None, None
    try:
        for k in tqdm(pick, desc=f"{cfg.scale} bank", unit="patch", disable=not progress, leave=False):
            sid, i = pool[k]
            if sid != current:
                if slide is not None:
                    slide.close()
                tiling = read_tiling_h5(tiles_dir / f"{sid}.h5")
                slide, current = open_tiled_slide(paths[sid], tiling, tiles_dir / f"{sid}.h5"), sid
            patch = read_global_patch(slide, tiling, i)
            if cfg.scale == "global":
                out.append(to_uint8(to_tensor(patch[None], cfg.resolution))[0])
            else:
                q = tiling.config.local_size
                cells = split_local(patch, q).reshape(-1, q, q, 3)
                for c in rng.choice(len(cells), size=per, replace=False):
                    out.append(to_uint8(to_tensor(cells[c][None], cfg.resolution))[0])
    finally:
        if slide is not None:
            slide.close()
    bank = np.stack(out[: cfg.n])
    return bank[rng.permutation(len(bank))]


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
