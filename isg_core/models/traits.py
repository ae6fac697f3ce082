"""What a slide model declares of itself, so that no caller branches on its name (no torch here).

Every model class carries ``traits = ModelTraits(...)`` (the default: ISG's):

* ``reads``: the inputs it reads: :data:`GLOBAL_LOCAL` (f_i and the local cube R_i), :data:`GLOBAL`
  (f_i only: R is a zero placeholder, E_L's features are never loaded) or :data:`SLIDE_TOTALS`
  (no patch features: the slide's true cell totals, the linear oracle);
* ``tasks``: the task kinds it serves (:data:`REGRESSION`, :data:`CLASSIFICATION`);
* ``fit``: how it is run: :data:`ENGINE` (a network trained by :mod:`isg_core.train.engine`, one
  model per fold and training seed) or :data:`CLOSED_FORM` (``cls.cross_validate(X, Y, folds)``,
  deterministic: one seed);
* ``max_tiles``: the most tiles of a slide it reads (HE2RNA's 8,000; None: all).

:func:`isg_core.models.registry.model_traits` gives the traits of a registered model by name.
"""
from __future__ import annotations

from dataclasses import dataclass

#: the inputs a model reads
GLOBAL_LOCAL, GLOBAL, SLIDE_TOTALS = "global+local", "global", "slide-totals"
#: the task kinds (:data:`isg_core.experiments.targets.LOSS_OF_KIND`)
REGRESSION, CLASSIFICATION = "regression", "classification"
#: how a model is run
ENGINE, CLOSED_FORM = "engine", "closed-form"


@dataclass(frozen=True)
class ModelTraits:
    reads: str = GLOBAL_LOCAL
    tasks: tuple[str, ...] = (REGRESSION, CLASSIFICATION)
    fit: str = ENGINE
    max_tiles: int | None = None

    def __post_init__(self) -> None:
        if self.reads not in (GLOBAL_LOCAL, GLOBAL, SLIDE_TOTALS):
            raise ValueError(f"reads: {self.reads!r} (choose from {GLOBAL_LOCAL}, {GLOBAL}, {SLIDE_TOTALS})")
        if not self.tasks or set(self.tasks) - {REGRESSION, CLASSIFICATION}:
            raise ValueError(f"tasks: {self.tasks!r} (a non-empty subset of {REGRESSION}, {CLASSIFICATION})")
        if self.fit not in (ENGINE, CLOSED_FORM):
            raise ValueError(f"fit: {self.fit!r} (choose from {ENGINE}, {CLOSED_FORM})")

    @property
    def global_only(self) -> bool:
        """Reads only the global features f (its R is a zero placeholder, to save memory)."""
        return self.reads == GLOBAL

    @property
    def trained(self) -> bool:
        """Trained by the engine (per fold and training seed), not fitted in closed form."""
        return self.fit == ENGINE

    def serves(self, kind: str) -> bool:
        return kind in self.tasks


#: a network on f_i and R_i for either task, trained by the engine (ISG, ViT-MB, CycleMLP, MPViT)
DEFAULT_TRAITS = ModelTraits()
