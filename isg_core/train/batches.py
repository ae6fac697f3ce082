"""Slides in memory and the padded batches every slide-level model reads.

A model takes ``(f (B, N, d), R (B, N, g, g, d), mask (B, N), pos (B, N, 2))``: the global
features f_i, the local feature cubes R_i and the grid positions of a slide's kept patches (paper
Sec. 3), padded to the largest slide of the batch.  In training each slide contributes at most
``max_patches`` randomly drawn patches per step; evaluation uses them all.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch import nn

from ..devices import resolve_device
from . import distributed as dist_


@dataclass
class SlideData:
    """Features of a set of slides, in memory (float16 cubes): one entry per slide."""

    slide_ids: list[str]
    f: list[np.ndarray]  # (n_i, d) float32
    R: list[np.ndarray]  # (n_i, g, g, d) float16
    pos: list[np.ndarray]  # (n_i, 2) int64 (row, col)

    def __len__(self) -> int:
        return len(self.slide_ids)

    def subset(self, idx: Sequence[int]) -> "SlideData":
        return SlideData([self.slide_ids[i] for i in idx], [self.f[i] for i in idx], [self.R[i] for i in idx],
                         [self.pos[i] for i in idx])


def collate(data: SlideData, idx: Sequence[int], max_patches: int | None = None,
            rng: np.random.Generator | None = None) -> tuple[torch.Tensor, ...]:
    """Pad slides ``idx`` into (f, R, mask, pos) tensors; draw at most ``max_patches`` patches
    per slide when ``rng`` is given (training), else keep every patch (evaluation)."""
    return _pad(data, idx, _draw_patches(data, idx, max_patches, rng))


def _draw_patches(data: SlideData, idx: Sequence[int], max_patches: int | None,
                  rng: np.random.Generator | None) -> list[np.ndarray]:
    """The patches :func:`collate` keeps of each slide of ``idx`` (draws from ``rng`` in slide order)."""
    picks = []
    for i in idx:
        n = len(data.f[i])
        if rng is not None and max_patches and n > max_patches:
            picks.append(np.sort(rng.choice(n, max_patches, replace=False)))
        else:
            picks.append(np.arange(n))
    return picks


def _pad(data: SlideData, idx: Sequence[int], picks: Sequence[np.ndarray]) -> tuple[torch.Tensor, ...]:
    """Patches ``picks[b]`` of slide ``idx[b]``, padded into (f, R, mask, pos) tensors."""
    n_max = max(len(p) for p in picks)
    d = data.f[idx[0]].shape[1]
    g = data.R[idx[0]].shape[1:3]
    dl = data.R[idx[0]].shape[-1]
    f = torch.zeros(len(idx), n_max, d)
    R = torch.zeros(len(idx), n_max, *g, dl)
    mask = torch.zeros(len(idx), n_max, dtype=torch.bool)
    pos = torch.zeros(len(idx), n_max, 2, dtype=torch.long)
    for b, (i, p) in enumerate(zip(idx, picks)):
        f[b, : len(p)] = torch.from_numpy(data.f[i][p])
        R[b, : len(p)] = torch.from_numpy(data.R[i][p])  # float16 -> float32 in the copy itself
        mask[b, : len(p)] = True
        pos[b, : len(p)] = torch.from_numpy(data.pos[i][p])
    return f, R, mask, pos


@torch.no_grad()
def predict(model: nn.Module, data: SlideData, idx: Sequence[int], batch_size: int = 8,
            device: str | None = None) -> np.ndarray:
    """Model outputs for slides ``idx`` (every kept patch), (len(idx), n_outputs)."""
    dev = resolve_device(device)
    model.eval()
    out = []
    for k in range(0, len(idx), batch_size):
        f, R, mask, pos = (t.to(dev) for t in collate(data, list(idx[k:k + batch_size])))
        out.append(model(f, R, mask, pos).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 0))


def predict_all(model: nn.Module, data: SlideData, idx: Sequence[int], batch_size: int = 8,
                device: str | None = None) -> np.ndarray:
    """:func:`predict` on ``idx``; with several processes (torchrun) each predicts its share of the
    slides and every process gets all the predictions, in the order of ``idx``."""
    rank, world = dist_.world()
    if world == 1 or len(idx) == 0:
        return predict(model, data, idx, batch_size, device)
    idx = np.asarray(idx)
    pos = dist_.shard_positions(len(idx), rank, world)
    parts = dist_.all_gather_objects((pos, predict(model, data, idx[pos], batch_size, dist_.local_device(device))))
    filled = [(p, a) for p, a in parts if len(p)]
    out = np.empty((len(idx), filled[0][1].shape[1]), dtype=filled[0][1].dtype)
    for p, a in filled:
        out[p] = a
    return out
