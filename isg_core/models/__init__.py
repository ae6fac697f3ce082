"""The slide-level models: the Dual Attention network (paper Sec. 3.3) and the Table 1 baselines.

* :mod:`~isg_core.models.layers`: what every slide model shares (2-D sine-cosine embedding,
  MBConv builder, the slide transformer);
* :mod:`~isg_core.models.dual_attention`: ISG-a-b, M(F_G, F_L);
* :mod:`~isg_core.models.baselines`: HE2RNA, ViT-S, ViT-MB, CycleMLP, MPViT;
* :mod:`~isg_core.models.standardize`: the input standardiser a trained model carries;
* :mod:`~isg_core.models.registry`: :func:`build_model`, the one factory, and the spec a saved
  model carries (:func:`model_spec`, :func:`model_from_spec`, :func:`load_model`).
"""
from __future__ import annotations

from isg_core.models.dual_attention import AttentionFusion, DualAttentionConfig, DualAttentionNetwork
from isg_core.models.layers import SlideTransformer, make_mbconv, sincos_2d
from isg_core.models.registry import (
    CLASSIFICATION_ONLY,
    ISG,
    MODEL_NAMES,
    MODELS,
    ModelRecipe,
    build_model,
    load_model,
    model_from_spec,
    model_spec,
)
from isg_core.models.standardize import CLAMP, InputStandardizer, identity_standardizer

__all__ = [
    "AttentionFusion", "DualAttentionConfig", "DualAttentionNetwork",
    "SlideTransformer", "make_mbconv", "sincos_2d",
    "CLASSIFICATION_ONLY", "ISG", "MODEL_NAMES", "MODELS", "ModelRecipe", "build_model", "load_model",
    "model_from_spec", "model_spec",
    "CLAMP", "InputStandardizer", "identity_standardizer",
]
