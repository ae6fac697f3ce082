"""The registry's network names, without importing torch: the ``isg`` command line offers them in
``isg --help`` without paying for the networks (:mod:`isg_core.models.registry` maps each name to
its class, and a test keeps the two equal)."""
from __future__ import annotations

#: the registry name of the Dual Attention network
ISG = "isg"
#: every slide model by registry name: ISG-a-b, then the baselines of Tables 1 and 3
MODEL_NAMES: tuple[str, ...] = (ISG, "he2rna", "he2rna-msi", "vit-s", "vit-mb", "cyclemlp", "mpvit", "abmil",
                                 "mean-mlp")
#: models with a class output (Table 3's MSI classifier), not offered for the expression tasks: the
#: torch-free view, for ``isg --help``, of the classes' ``traits.tasks`` (a test keeps them equal)
CLASSIFICATION_ONLY: tuple[str, ...] = ("he2rna-msi",)
