# shim until the merge: import from isg_core.models
"""Moved to :mod:`isg_core.models.baselines.vit` (the transformer to :mod:`isg_core.models.layers`)."""
from isg_core.models.baselines.vit import SlideTransformerConfig, ViTS, check_inputs, masked_tokens  # noqa: F401
from isg_core.models.layers import SlideTransformer  # noqa: F401
