# shim until the merge: import from isg_core.models
"""Moved to :mod:`isg_core.models.dual_attention` (and the shared pieces to :mod:`isg_core.models.layers`)."""
from isg_core.models.dual_attention import (  # noqa: F401
    NORMS,
    POS_EMBEDS,
    READOUTS,
    TOKENS,
    AttentionFusion,
    DualAttentionConfig,
    DualAttentionNetwork,
    make_mbconv,
    sincos_2d,
)
