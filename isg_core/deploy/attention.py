"""What a trained slide model looks at: the Dual Attention network's maps on one slide.

For one slide, :func:`slide_attention` runs the model once with ``return_attention=True`` and
returns, per kept global patch i:

* ``A``: the local feature updater's gate A = Sigmoid(Q (.) K) (Eq. 4) of every fusion block,
  averaged over channels: a (grid x grid) map of how much each local position is let through;
* ``Z``: the global feature updater's softmax Z (Eq. 6) of every fusion block: a (grid x grid)
  distribution of where f_i reads the local cube;
* ``token``: the class token's attention to patch i in the ViT's last layer (its share of a
  distribution over the class token and the slide's patches), returned by the same forward pass:
  the heatmap ``isg predict`` draws over the thumbnail.

:func:`patch_images` reads the same patches from the slide for drawing.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from ..data.tiling import open_tiled_slide, read_global_patch, read_tiling_h5
from ..train.engine import SlideData, collate


@torch.no_grad()
def slide_attention(model: torch.nn.Module, data: SlideData, i: int) -> dict[str, np.ndarray]:
    """Prediction and attention maps of ``model`` (a Dual Attention network, possibly inside an
    :class:`~isg_core.models.standardize.InputStandardizer`) for slide ``i`` of ``data``.

    Returns ``pred`` (n_outputs,), ``pos`` (N, 2), ``A`` (blocks, N, g, g), ``Z`` (blocks, N, g, g)
    and ``token`` (N,), or no ``token`` when the model reads out by the mean."""
    model.eval()
    dev = next(model.parameters()).device
    f, R, mask, pos = (t.to(dev) for t in collate(data, [i]))
    out, info = model(f, R, mask, pos, return_attention=True)
    res = {"pred": out[0].float().cpu().numpy(), "pos": pos[0].cpu().numpy(),
           "A": np.stack([a[0].mean(-1).float().cpu().numpy() for a in info["A"]]) if info["A"] else np.zeros((0,)),
           "Z": np.stack([z[0].float().cpu().numpy() for z in info["Z"]]) if info["Z"] else np.zeros((0,))}
    if info["cls_attention"]:  # a class token: its attention to each patch in the last layer
        res["token"] = info["cls_attention"][-1][0].float().cpu().numpy()
    return res


def patch_images(h5_path: "str | os.PathLike", slide_path: "str | os.PathLike", pos: np.ndarray) -> np.ndarray:
    """(N, p, p, 3) uint8: the global patches at grid positions ``pos`` (row, col) of a tiled slide."""
    tiling = read_tiling_h5(Path(h5_path))
    where = {tuple(rc): k for k, rc in enumerate(tiling.grid_index.tolist())}
    with open_tiled_slide(slide_path, tiling, h5_path) as slide:
        return np.stack([read_global_patch(slide, tiling, where[tuple(rc)]) for rc in np.asarray(pos).tolist()])
