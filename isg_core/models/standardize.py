"""Per-channel standardisation of a slide model's input features, fitted on the training slides.

The statistics are buffers of :class:`InputStandardizer`, so a saved model carries them;
:func:`identity_standardizer` wraps a freshly built network with placeholder statistics (mean 0,
SD 1) to receive saved weights (or, untrained, to run as it is).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from isg_core.models.traits import DEFAULT_TRAITS

CLAMP = 10.0  # standardised features are clipped to +-CLAMP


class InputStandardizer(nn.Module):
    """``model((f - mu_f) / sd_f, (R - mu_R) / sd_R, mask, pos)``: per-channel standardisation of the
    features with statistics of the *training* slides (:func:`isg_core.train.engine.feature_stats`).

    The extractors' codes are not centred and their channels differ in scale (measured on ISG-Sim:
    means up to +-0.5, SDs 0.1-0.4); without this, ISG and the baselines stayed at the training
    mean for 30 epochs, with it they fit.  The statistics are buffers, so a checkpoint carries them.
    """

    def __init__(self, model: nn.Module, stats: dict[str, np.ndarray]):
        super().__init__()
        self.model = model
        for k in ("f_mean", "f_std", "R_mean", "R_std"):
            self.register_buffer(k, torch.as_tensor(np.asarray(stats[k], dtype=np.float32)))

    def standardize(self, f: torch.Tensor, R: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # clamped: a channel nearly constant on the training slides must not blow up on a test slide
        return (((f - self.f_mean) / self.f_std).clamp(-CLAMP, CLAMP),
                ((R - self.R_mean) / self.R_std).clamp(-CLAMP, CLAMP))

    def forward(self, f, R, mask, pos, **kw):
        if getattr(self.model, "traits", DEFAULT_TRAITS).global_only:
            # a model that ignores R (HE2RNA, ViT-S): standardising it would be wasted work (its
            # zero placeholder is as large as f; HE2RNA's training step spent a sixth of its time there)
            return self.model(((f - self.f_mean) / self.f_std).clamp(-CLAMP, CLAMP), R, mask, pos, **kw)
        return self.model(*self.standardize(f, R), mask, pos, **kw)

    def forward_slide(self, f, R, pos, chunk: int = 512):
        """The wrapped model's bounded-memory single-slide inference (``DualAttentionNetwork.forward_slide``)."""
        return self.model.forward_slide(f, R, pos, chunk=chunk, prepare=self.standardize)


def identity_standardizer(model: nn.Module, d: int) -> InputStandardizer:
    """``model`` inside an :class:`InputStandardizer` whose statistics leave d-channel features as
    they are (mean 0, SD 1): the form in which a saved, standardised model's weights are loaded
    (its ``load_state_dict`` then sets the real statistics)."""
    zeros, ones = np.zeros(d), np.ones(d)
    return InputStandardizer(model, {"f_mean": zeros, "f_std": ones, "R_mean": zeros, "R_std": ones})
