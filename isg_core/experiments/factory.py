"""The model of an experiment: ``n_outputs -> nn.Module`` for ISG-a-b or a baseline.

Its imports stay inside the function, as they were: the body is to be swapped as a whole for
the model registry's ``build_model(name, d, grid, n_outputs, **config)``.
"""
from __future__ import annotations

from .specs import Experiment


def model_factory(exp: Experiment, d: int, grid: int, width: int | None = None):
    """``n_outputs -> nn.Module`` for ``exp`` (ISG-a-b, or a baseline) and its config as a dict."""
    import torch

    from ..baselines import build_baseline
    from ..dual_attention import DualAttentionConfig, DualAttentionNetwork

    kw = dict(exp.overrides)
    width = kw.pop("width", width)  # an experiment's own width (None = d) beats the profile's
    if exp.model == "isg":
        def make(n: int):
            return DualAttentionNetwork(DualAttentionConfig(d=d, grid=grid, n_outputs=n, width=width, **kw))
        cfg = DualAttentionConfig(d=d, grid=grid, n_outputs=1, width=width, **kw).to_dict()
        cfg.pop("n_outputs")
        return make, cfg

    def make_baseline(n: int):
        extra = {}
        if exp.model == "he2rna":
            # HE2RNA's top-k draw gets its own generator, seeded from the fold's model seed; its
            # output bias starts at the training mean, which is 0 for the standardised targets
            extra["generator"] = torch.Generator().manual_seed(int(torch.initial_seed()) % (2 ** 31))
            extra["bias_init"] = torch.zeros(n)
        return build_baseline(exp.model, d, grid, n, **extra, **kw)
    return make_baseline, {"model": exp.model, **kw}
