"""Table 3 (MSI status as an AUC) lives in :mod:`isg_core.experiments` (``table3``, with the runner,
scoring and statistics every table shares); these names stay importable from here."""
from __future__ import annotations

from .experiments import (  # noqa: F401 (re-exported)
    STAND_INS,
    TITLE,
    MSIResult,
    Table3Run,
    biology_reference,
    bootstrap_fold_auc,
    describe_msi,
    fold_auc,
    msi_labels,
    paired_auc_difference,
    patient_level,
    plot_roc,
    reproduce_table3,
    stand_in_label,
    summarise_msi,
    table3_experiments,
)
