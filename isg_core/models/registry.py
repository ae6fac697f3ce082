"""One factory for every slide model, and the model spec that a saved model carries.

:func:`build_model` builds any slide model by its registry name (``"isg"``: the Dual Attention
network, or a Table 1 baseline).  A saved model carries its **spec** ``{"model": name, "config":
{...}}``: a plain, JSON-able dict holding every argument of the architecture, with the defaults
written out (``d``, ``grid`` and ``n_outputs`` included), so that :func:`model_from_spec` rebuilds
the network from the file alone, whatever the defaults become later.  A saved model is the spec
plus ``"standardize"`` (whether the weights include an
:class:`~isg_core.models.standardize.InputStandardizer`) and ``"state"`` (the ``state_dict``);
:func:`load_model` turns it back into a network.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from isg_core.models.baselines import BASELINES
from isg_core.models.dual_attention import DualAttentionConfig, DualAttentionNetwork
from isg_core.models.linear_totals import LINEAR_TOTALS, LinearTotals
from isg_core.models.names import ISG
from isg_core.models.standardize import identity_standardizer
from isg_core.models.traits import DEFAULT_TRAITS, ModelTraits

#: every slide model by registry name: the networks the engine trains (:data:`~isg_core.models.names.
#: MODEL_NAMES`, the CLI's choices), then the closed-form linear oracle; each class carries its
#: ``traits`` (:class:`~isg_core.models.traits.ModelTraits`).  Add one with :func:`register_model`.
MODELS: dict[str, type] = {ISG: DualAttentionNetwork, **BASELINES, LINEAR_TOTALS: LinearTotals}
#: the arguments of every model that are not in its config class
SIZE_KEYS = ("d", "grid", "n_outputs")


def register_model(name: str, cls: type) -> None:
    """Register slide model ``cls`` as ``name`` (lower case).  A network trained by the engine is
    built as ``cls(d, grid, n_outputs, **config)`` and called as ``model(f, R, mask, pos)`` ->
    (B, n_outputs); a closed-form one has ``cls.cross_validate(X, Y, folds)``.  ``cls.traits``
    (:class:`~isg_core.models.traits.ModelTraits`; default: f and R, either task, the engine) says
    what it reads and serves; ``cls.config_class`` (optional) the dataclass of its config."""
    key = str(name).lower()
    if key in MODELS:
        raise ValueError(f"model {key!r} is registered already")
    if not isinstance(getattr(cls, "traits", DEFAULT_TRAITS), ModelTraits):
        raise TypeError(f"{cls.__name__}.traits is not a ModelTraits")
    MODELS[key] = cls


def unregister_model(name: str) -> None:
    """Remove a model :func:`register_model` added (a test's toy model)."""
    MODELS.pop(_key(name))


def _key(name: str) -> str:
    key = str(name).lower()
    if key not in MODELS:
        raise KeyError(f"unknown model {name!r}; choose from {', '.join(MODELS)}")
    return key


def model_traits(name: str) -> ModelTraits:
    """What registered model ``name`` reads, which tasks it serves and how it is run."""
    return getattr(MODELS[_key(name)], "traits", DEFAULT_TRAITS)


def model_names(trained: bool | None = None, kind: str | None = None) -> tuple[str, ...]:
    """Registered model names, in registry order: those trained by the engine (``trained=True``) or
    fitted in closed form (``False``), serving task ``kind`` (None: any)."""
    return tuple(n for n in MODELS if (trained is None or model_traits(n).trained == trained)
                 and (kind is None or model_traits(n).serves(kind)))


def build_model(name: str, d: int, grid: int, n_outputs: int, **config: Any) -> nn.Module:
    """The slide model ``name`` for d-dimensional features f_i, local cubes of grid x grid
    positions and ``n_outputs`` outputs.  ``config``: fields of its config class
    (:class:`~isg_core.models.dual_attention.DualAttentionConfig` for ``"isg"``, the baseline's
    ``config_class`` otherwise) and the baselines' run-time arguments (``bias_init``; HE2RNA's
    ``generator``), which are not part of a spec."""
    key = _key(name)
    if not model_traits(key).trained:
        raise ValueError(f"model {key!r} is fitted in closed form: there is no network to build")
    if key == ISG:
        return DualAttentionNetwork(DualAttentionConfig(d=d, grid=grid, n_outputs=n_outputs, **config))
    return MODELS[key](d, grid, n_outputs, **config)


def _plain(value: Any) -> Any:
    """Tuples as lists, numpy scalars as Python numbers: what JSON (and weights-only loading) holds."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        return value.item()
    return value


def model_spec(name: str, d: int, grid: int, n_outputs: int, config: dict | None = None) -> dict:
    """``{"model": name, "config": {d, grid, n_outputs, every field of the model's config}}`` for the
    model that ``build_model(name, d, grid, n_outputs, **config)`` builds (``config`` holds config
    fields only, no run-time argument).  Building the spec draws no random number."""
    key = _key(name)
    config = dict(config or {})
    if key == ISG:
        full = DualAttentionConfig(d=d, grid=grid, n_outputs=n_outputs, **config).to_dict()
    else:
        config_class = getattr(MODELS[key], "config_class", None)  # none: the config as given
        full = {"d": d, "grid": grid, "n_outputs": n_outputs,
                **(config_class(**config).to_dict() if config_class is not None else config)}
    return {"model": key, "config": _plain(full)}


def published_schedule(name: str) -> dict:
    """The training schedule a model was published with (TrainConfig fields; HE2RNA's), which
    beats the profile's; ``{}`` for a model without one (ISG, the ViTs: the paper gives none)."""
    cls = MODELS.get(str(name).lower())  # not a registry model: none
    return dict(getattr(cls, "published_schedule", {}))


def model_from_spec(spec: dict, **runtime: Any) -> nn.Module:
    """The network (fresh weights) that ``spec`` describes; ``runtime``: ``bias_init``,
    ``generator`` (see :func:`build_model`).  Extra keys of ``spec`` (a saved model's
    ``state``, ``standardize``) are ignored."""
    if not isinstance(spec, dict) or not isinstance(spec.get("config"), dict) or "model" not in spec:
        raise ValueError("a model spec is a dict {'model': name, 'config': {...}}")
    cfg = dict(spec["config"])
    missing = [k for k in SIZE_KEYS if k not in cfg]
    if missing:
        raise ValueError(f"the model spec's config lacks {', '.join(missing)}")
    sizes = [int(cfg.pop(k)) for k in SIZE_KEYS]
    return build_model(spec["model"], *sizes, **cfg, **runtime)


def load_model(saved: dict) -> nn.Module:
    """A saved model ``{"model", "config", "standardize", "state"}`` as a network with its weights
    (wrapped in its input standardiser when ``standardize``), in training mode like any new
    module.  A state that does not fit the spec raises torch's ``RuntimeError``."""
    net = model_from_spec(saved)
    model = identity_standardizer(net, int(saved["config"]["d"])) if saved.get("standardize") else net
    model.load_state_dict(saved["state"])
    return model


@dataclass(frozen=True)
class ModelRecipe:
    """A slide model by registry name and config, to be built for any number of outputs: what the
    cross-validation engine calls (``recipe(n_outputs)``) for each fold's fresh model, and what a
    fold checkpoint records of it (:meth:`spec`), so the fold's model is rebuilt by
    :func:`model_from_spec` alone.  ``config`` holds config fields only."""

    name: str
    d: int
    grid: int
    config: dict = field(default_factory=dict)

    def __call__(self, n_outputs: int) -> nn.Module:
        return build_model(self.name, self.d, self.grid, n_outputs, **self.config, **self.runtime(n_outputs))

    def runtime(self, n_outputs: int) -> dict:
        """Run-time arguments of a new model (not part of its spec): HE2RNA's top-k draw gets its own
        generator, seeded from the current (fold) seed, and its output bias starts at the training
        mean, which is 0 for standardised targets."""
        if _key(self.name) != "he2rna":
            return {}
        return {"generator": torch.Generator().manual_seed(int(torch.initial_seed()) % (2 ** 31)),
                "bias_init": torch.zeros(n_outputs)}

    def spec(self, n_outputs: int) -> dict:
        return model_spec(self.name, self.d, self.grid, n_outputs, self.config)
