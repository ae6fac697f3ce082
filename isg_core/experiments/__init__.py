"""The slide-level experiments of the paper's Tables 1-4 and 6, and their significance.

An :class:`Experiment` is one row of a table: a model (ISG-a-b or a baseline) on one data
variant (feature set, patch selection, Shannon threshold, HE2RNA's supertiles).  Modules, by
concern:

* :mod:`.registry`: one record per paper table (title, the paper's setting and ours, notebook);
* :mod:`.specs`: what each table runs (and Table 3's stand-in cohorts);
* :mod:`.inputs`: reading an experiment's features from the slides' HDF5; :mod:`.targets`: what
  it learns (expression of a task, or MSI status);
* :mod:`.factory`: the model of an experiment;
* :mod:`.runner`: one runner for regression and classification, serial or in worker processes;
* :mod:`.scoring`: per-fold PCC and AUC; :mod:`.statistics`: the paired bootstrap and its verdict;
* :mod:`.tables` (Tables 1, 2, 4, 6) and :mod:`.table3` end to end; :mod:`.plots`: their figures.

Names are loaded on first use (PEP 562): ``from isg_core.experiments import describe`` imports only what
``describe`` needs, so a light caller (the CLI's parser reading :mod:`.registry`) does not pay for torch.
"""
from __future__ import annotations

import importlib

#: exported name -> the submodule that defines it
_EXPORTS = {
    "model_factory": "factory", "keep_mask": "inputs", "load_experiment_data": "inputs",
    "plot_roc": "plots", "plot_table": "plots", "PaperTable": "registry", "SETTINGS": "registry",
    "TABLES": "registry", "get_table": "registry", "register_table": "registry", "table_experiments": "registry",
    "tables_of_kind": "registry", "ExperimentResult": "runner", "MSIResult": "runner", "RegressionOutcome": "runner",
    "TableOutcomes": "runner", "collect_outcomes": "runner", "in_processes": "runner", "run_experiment": "runner",
    "run_grid": "runner", "run_table": "runner", "seeds_of": "runner", "table_outcome": "runner",
    "train_config": "runner", "with_seeds": "runner", "cv_metrics": "scoring", "expression_rows": "scoring",
    "fold_auc": "scoring", "msi_frame": "scoring", "noise_ceiling_avg": "scoring", "patient_level": "scoring",
    "GENE_PROGRAMMES": "slide_bootstrap", "SIGNIFICANCE_NOTE": "slide_bootstrap",
    "bootstrap_sentence": "slide_bootstrap", "headline_pcc": "slide_bootstrap",
    "paired_slide_bootstrap": "slide_bootstrap", "per_programme_differences": "slide_bootstrap",
    "BEST_BASELINE": "specs", "Experiment": "specs", "LINEAR_TOTALS": "specs", "STAND_INS": "specs",
    "TABLE2_SELECTORS": "specs", "TABLE6_CONFIGS": "specs", "he2rna_label": "specs", "he2rna_published": "specs",
    "isg": "specs", "isg_full": "specs", "stand_in_label": "specs", "table1_experiments": "specs",
    "table2_experiments": "specs", "table3_experiments": "specs", "table4_experiments": "specs",
    "table6_experiments": "specs", "VERDICTS": "statistics", "bootstrap_fold_auc": "statistics",
    "paired_auc_difference": "statistics", "paired_bootstrap": "statistics", "seed_auc_bootstrap": "statistics",
    "verdict": "statistics", "verdict_sentence": "statistics", "Table3Run": "table3", "biology_reference": "table3",
    "describe_msi": "table3", "reproduce_table3": "table3", "summarise_msi": "table3", "PAPER_GENE_NAMES": "tables",
    "TableRun": "tables", "cohort_config": "tables", "compare": "tables", "describe": "tables",
    "open_table_cohort": "tables", "per_gene_table": "tables", "programme_comparisons": "tables",
    "reproduce_table": "tables", "summarise": "tables", "table_comparisons": "tables", "ALL_TASKS": "targets",
    "LOSS_OF_KIND": "targets", "msi_labels": "targets", "run_targets": "targets", "task_slides": "targets",
    "task_targets": "targets",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
