"""Figures of the feature extractors (paper Sec. 3.2): loss curves and reconstructions D(E(x)).

Written beside each checkpoint by :func:`save_training_figures` and drawn in notebook 03 by
:func:`isg_core.features.workflow.reconstruction_figure` (which loads checkpoints, so it sits above
:mod:`~isg_core.features.train`); the notebook only calls these.
"""
from __future__ import annotations

import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from ..errors import atomic_path
from .bank import to_tensor, to_uint8
from .stylegan import StyleAutoencoder


@torch.no_grad()
def reconstruct(ae: StyleAutoencoder, patches: np.ndarray, seed: int = 0) -> np.ndarray:
    """D(E(x)) for uint8 patches (n, r, r, 3) -> uint8 (n, r, r, 3); fixed noise for a fixed seed."""
    dev = next(ae.parameters()).device
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return to_uint8(ae(to_tensor(patches).to(dev)))


def plot_losses(hist: pd.DataFrame, title: str = "", smooth: int = 25, ax=None, lpips_trunk: str | None = None):
    """Loss curves of Eq. 2's terms against the training step (moving average over ``smooth`` steps).
    ``lpips_trunk`` (the checkpoint's: "imagenet" or "random") goes into the LPIPS label: offline the
    lpips package's AlexNet trunk is random, and the curve must say so."""
    if ax is None:
        fig, ax = plt.subplots(1, 2, figsize=(10, 3.2))
    else:
        fig = ax[0].figure
    s = hist.rolling(min(smooth, max(1, len(hist))), min_periods=1).mean()
    names = {"l1": "L1", "lpips": "LPIPS" + (f" ({lpips_trunk} AlexNet trunk)" if lpips_trunk else "")}
    for col in ("l1", "lpips"):
        if col in s:
            ax[0].plot(s.index, s[col], label=names[col])
    ax[0].set(xlabel="step", ylabel="loss (mean per pixel / per patch)", title=f"{title}: reconstruction")
    ax[0].legend()
    for col, lab in (("d", "C: u(-C(x)) + u(C(x_hat))"), ("adv", "E, D: u(-C(x_hat))")):
        if col in s:
            ax[1].plot(s.index, s[col], label=lab)
    ax[1].set(xlabel="step", ylabel="loss (softplus u, per patch)", title=f"{title}: adversarial")
    if ax[1].lines:
        ax[1].legend()
    return fig


def plot_reconstructions(x: np.ndarray, x_hat: np.ndarray, title: str = "", axes=None, label: str | None = None):
    """Two rows: the inputs ``x`` and their reconstructions ``x_hat`` (uint8 (n, r, r, 3)).

    ``axes`` (2, n) draws into an existing grid (several autoencoders in one figure); ``label``
    names the input row ("global input"), the row below is labelled D(E(x))."""
    n = len(x)
    if axes is None:
        fig, axes = plt.subplots(2, n, figsize=(1.3 * n, 2.8), squeeze=False)
    else:
        fig = axes[0][0].figure
    for j in range(n):
        for r, img in enumerate((x[j], x_hat[j])):
            axes[r][j].imshow(img)
            axes[r][j].set_xticks([]), axes[r][j].set_yticks([])
            if label is None:
                axes[r][j].axis("off")
    if label is not None:
        axes[0][0].set_ylabel(label)
        axes[1][0].set_ylabel("D(E(x))")
    if title:
        fig.suptitle(title, fontsize=9)
    return fig



def save_training_figures(history: pd.DataFrame, ae: StyleAutoencoder, bank: np.ndarray, scale: str,
                          out_dir: "str | os.PathLike", n: int = 8) -> None:
    """``losses.png`` (L1, LPIPS, adversarial terms against step) and ``reconstructions.png``
    (inputs on top, D(E(x)) below) beside a checkpoint, written atomically."""
    # no matplotlib.use("Agg") here: called inside a notebook it would switch the kernel's inline
    # backend off and later figures would not show (headless, matplotlib picks Agg by itself)
    out_dir = Path(out_dir)
    fig = plot_losses(history, title=f"{scale} extractor")
    with atomic_path(out_dir / "losses.png") as tmp:
        fig.savefig(tmp, dpi=100, bbox_inches="tight", format="png", metadata={"Software": None})
    plt.close(fig)
    x = np.asarray(bank[:n])
    was_training = ae.training
    ae.eval()
    fig = plot_reconstructions(x, reconstruct(ae, x), title=f"{scale}: inputs (top), D(E(x)) (bottom)")
    ae.train(was_training)
    with atomic_path(out_dir / "reconstructions.png") as tmp:
        fig.savefig(tmp, dpi=100, bbox_inches="tight", format="png", metadata={"Software": None})
    plt.close(fig)


