# shim until the merge: import from isg_core.models
"""Moved to :mod:`isg_core.models.baselines.local_tokenizers`."""
from isg_core.models.baselines.local_tokenizers import (  # noqa: F401
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
