"""The slide-level experiments of the paper's Tables 1-4 and 6, and their significance.

An :class:`Experiment` is one row of a table: a model (ISG-a-b or a baseline) on one data
variant (feature set, patch selection, Shannon threshold, HE2RNA's supertiles).  Modules, by
concern:

* :mod:`.specs`: what each table runs (and Table 3's stand-in cohorts);
* :mod:`.data`: reading an experiment's features from the slides' HDF5; :mod:`.targets`: what
  it learns (expression of a task, or MSI status);
* :mod:`.factory`: the model of an experiment;
* :mod:`.runner`: one runner for regression and classification, serial or in worker processes;
* :mod:`.scoring`: per-fold PCC and AUC; :mod:`.statistics`: the paired bootstrap and its verdict;
* :mod:`.tables` (Tables 1, 2, 4, 6) and :mod:`.table3` end to end; :mod:`.plots`: their figures.
"""
from __future__ import annotations

from .factory import model_factory
from .inputs import keep_mask, load_experiment_data
from .plots import plot_roc, plot_table
from .runner import (
    ExperimentResult,
    MSIResult,
    RegressionOutcome,
    TableOutcomes,
    collect_outcomes,
    in_processes,
    run_experiment,
    run_grid,
    run_table,
    seeds_of,
    table_outcome,
    train_config,
    with_seeds,
)
from .scoring import cv_metrics, expression_rows, fold_auc, msi_frame, noise_ceiling_avg, patient_level
from .slide_bootstrap import (
    GENE_PROGRAMMES,
    SIGNIFICANCE_NOTE,
    bootstrap_sentence,
    headline_pcc,
    paired_slide_bootstrap,
    per_programme_differences,
)
from .specs import (
    BEST_BASELINE,
    LINEAR_TOTALS,
    STAND_INS,
    TABLE2_SELECTORS,
    TABLE6_CONFIGS,
    TABLES,
    TITLE,
    Experiment,
    he2rna_label,
    he2rna_published,
    isg,
    isg_full,
    stand_in_label,
    table1_experiments,
    table2_experiments,
    table3_experiments,
    table4_experiments,
    table6_experiments,
    table_experiments,
)
from .statistics import (
    VERDICTS,
    bootstrap_fold_auc,
    paired_auc_difference,
    paired_bootstrap,
    seed_auc_bootstrap,
    verdict,
    verdict_sentence,
)
from .table3 import Table3Run, biology_reference, describe_msi, reproduce_table3, summarise_msi
from .tables import (
    PAPER_GENE_NAMES,
    TableRun,
    cohort_config,
    compare,
    describe,
    open_table_cohort,
    per_gene_table,
    programme_comparisons,
    reproduce_table,
    summarise,
    table_comparisons,
)
from .targets import ALL_TASKS, LOSS_OF_KIND, msi_labels, run_targets, task_slides, task_targets

__all__ = [
    "ALL_TASKS", "BEST_BASELINE", "GENE_PROGRAMMES", "LINEAR_TOTALS", "LOSS_OF_KIND",
    "PAPER_GENE_NAMES", "SIGNIFICANCE_NOTE", "STAND_INS", "TABLE2_SELECTORS", "TABLE6_CONFIGS", "TABLES", "TITLE",
    "VERDICTS", "Experiment", "ExperimentResult", "MSIResult", "RegressionOutcome", "Table3Run", "TableOutcomes",
    "TableRun", "biology_reference", "bootstrap_fold_auc", "bootstrap_sentence", "cohort_config", "collect_outcomes",
    "compare", "cv_metrics", "describe", "describe_msi", "expression_rows", "fold_auc", "he2rna_label",
    "he2rna_published", "headline_pcc", "in_processes", "isg", "isg_full", "keep_mask", "load_experiment_data",
    "model_factory", "msi_frame", "msi_labels", "noise_ceiling_avg", "open_table_cohort", "paired_auc_difference",
    "paired_bootstrap", "paired_slide_bootstrap", "patient_level", "per_gene_table", "per_programme_differences",
    "plot_roc", "plot_table", "programme_comparisons", "reproduce_table", "reproduce_table3", "run_experiment",
    "run_grid", "run_table", "run_targets", "seed_auc_bootstrap", "seeds_of", "stand_in_label", "summarise",
    "summarise_msi", "table1_experiments", "table2_experiments", "table3_experiments", "table4_experiments",
    "table6_experiments", "table_comparisons", "table_experiments", "table_outcome", "task_slides", "task_targets",
    "train_config", "verdict", "verdict_sentence", "with_seeds",
]
