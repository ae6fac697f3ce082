"""The slide-level baselines of the paper's Table 1 (and HE2RNA's MSI classifier of Table 3).

* ``he2rna``: HE2RNA (Schmauch et al. 2020), per-tile MLP + top-k mean, on our global features;
  :func:`supertiles` is its K-means-on-coordinates preprocessing.
* ``he2rna-msi``: HE2RNA's MSI classifier (Table 3): mean-pooled tile features and an MLP;
* ``vit-s``: ViT-S on the global features only.
* ``abmil`` / ``mean-mlp``: gated attention MIL (Ilse et al. 2018) and a mean-pool MLP on the
  global features: not the paper's, the aggregators a reader expects (``mil.py``).
* ``vit-mb`` / ``cyclemlp`` / ``mpvit``: MBConv / CycleMLP / MPViT blocks downsample each kept
  patch's local cube R_i to one token, then ViT-S (local features only).

Every model is built as ``cls(d, grid, n_outputs, config=None, bias_init=None, **overrides)``
(HE2RNA also takes ``generator``), has a ``config_class`` (the dataclass of its ``overrides``) and
is called as ``model(f, R, mask, pos)`` -> (B, n_outputs), the signature of the main model
(:class:`~isg_core.models.dual_attention.DualAttentionNetwork`), so one training engine serves
all.  All of them ignore the padded patches and the order of the patches.  Build them through
:func:`isg_core.models.build_model`.
"""
from __future__ import annotations

from torch import nn

from isg_core.models.baselines.he2rna import (
    HE2RNA,
    HE2RNAMSI,
    HE2RNAConfig,
    HE2RNAMSIConfig,
    HE2RNAOnFeatures,
    kmeans,
    supertiles,
)
from isg_core.models.baselines.local_tokenizers import (
    CycleFC,
    CycleMLPBlock,
    CycleMLPConfig,
    CycleMLPNet,
    CycleTokenizer,
    LocalTokenViT,
    MBTokenizer,
    MPTokenizer,
    MPViTConfig,
    MPViTNet,
    ViTMB,
    ViTMBConfig,
)
from isg_core.models.baselines.mil import ABMIL, MeanPoolMLP, MILConfig
from isg_core.models.baselines.vit import SlideTransformerConfig, ViTS, vit_s

BASELINES: dict[str, type[nn.Module]] = {
    "he2rna": HE2RNAOnFeatures,
    "he2rna-msi": HE2RNAMSI,
    "vit-s": ViTS,
    "vit-mb": ViTMB,
    "cyclemlp": CycleMLPNet,
    "mpvit": MPViTNet,
    "abmil": ABMIL,
    "mean-mlp": MeanPoolMLP,
}


def build_baseline(name: str, d: int, grid: int, n_outputs: int, **kw) -> nn.Module:
    """Build a Table 1 baseline by registry name; ``kw`` goes to its constructor (``config``,
    ``bias_init``, ``generator`` for HE2RNA, or any field of its config as an override)."""
    key = name.lower()
    if key not in BASELINES:
        raise KeyError(f"unknown baseline {name!r}; choose from {sorted(BASELINES)}")
    return BASELINES[key](d, grid, n_outputs, **kw)


__all__ = [
    "BASELINES", "build_baseline",
    "HE2RNA", "HE2RNAMSI", "HE2RNAConfig", "HE2RNAMSIConfig", "HE2RNAOnFeatures", "kmeans", "supertiles",
    "SlideTransformerConfig", "ViTS", "vit_s",
    "LocalTokenViT", "MBTokenizer", "ViTMB", "ViTMBConfig",
    "CycleFC", "CycleMLPBlock", "CycleTokenizer", "CycleMLPConfig", "CycleMLPNet",
    "MPTokenizer", "MPViTConfig", "MPViTNet",
    "ABMIL", "MeanPoolMLP", "MILConfig",
]
