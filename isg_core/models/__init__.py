"""The slide-level models: the Dual Attention network (paper Sec. 3.3) and the Table 1 baselines.

* :mod:`~isg_core.models.layers`: what every slide model shares (2-D sine-cosine embedding,
  MBConv builder, the slide transformer);
* :mod:`~isg_core.models.dual_attention`: ISG-a-b, M(F_G, F_L);
* :mod:`~isg_core.models.baselines`: HE2RNA, ViT-S, ViT-MB, CycleMLP, MPViT;
* :mod:`~isg_core.models.standardize`: the input standardiser a trained model carries;
* :mod:`~isg_core.models.linear_totals`: the ridge on a slide's true cell totals (closed form);
* :mod:`~isg_core.models.traits`: what each model class declares (inputs, tasks, how it is run);
* :mod:`~isg_core.models.registry`: :func:`build_model`, the one factory, :func:`register_model`,
  :func:`model_traits`, and the spec a saved model carries (:func:`model_spec`,
  :func:`model_from_spec`, :func:`load_model`).
"""
from __future__ import annotations

import importlib

from isg_core.models.names import CLASSIFICATION_ONLY, ISG, MODEL_NAMES

# Everything else loads on first use (PEP 562): ``isg --help`` reads the names above without
# importing torch and the networks (seconds).
_LAZY = {
    "AttentionFusion": "dual_attention", "DualAttentionConfig": "dual_attention",
    "DualAttentionNetwork": "dual_attention",
    "SlideTransformer": "layers", "make_mbconv": "layers", "sincos_2d": "layers",
    "MODELS": "registry", "ModelRecipe": "registry", "build_model": "registry", "load_model": "registry",
    "model_from_spec": "registry", "model_spec": "registry", "model_names": "registry",
    "model_traits": "registry", "register_model": "registry", "unregister_model": "registry",
    "ModelTraits": "traits", "LinearTotals": "linear_totals",
    "CLAMP": "standardize", "InputStandardizer": "standardize", "identity_standardizer": "standardize",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f"isg_core.models.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'isg_core.models' has no attribute {name!r}")


__all__ = ["CLASSIFICATION_ONLY", "ISG", "MODEL_NAMES", *_LAZY]
