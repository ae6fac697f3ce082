"""The model of an experiment: a :class:`~isg_core.models.ModelRecipe` for ISG-a-b or a baseline."""
from __future__ import annotations

from ..models import ISG, DualAttentionConfig, ModelRecipe
from .specs import Experiment


def model_factory(exp: Experiment, d: int, grid: int, width: int | None = None) -> tuple[ModelRecipe, dict]:
    """The recipe of ``exp``'s model (``recipe(n_outputs) -> nn.Module``) and the model config that
    names its runs (part of the run id: its keys and values stay as they have always been)."""
    kw = dict(exp.overrides)
    width = kw.pop("width", width)  # an experiment's own width (None = d) beats the profile's
    if exp.model == ISG:
        recipe = ModelRecipe(ISG, d, grid, {"width": width, **kw})
        cfg = DualAttentionConfig(d=d, grid=grid, n_outputs=1, width=width, **kw).to_dict()
        cfg.pop("n_outputs")
        return recipe, cfg
    return ModelRecipe(exp.model, d, grid, kw), {"model": exp.model, **kw}
