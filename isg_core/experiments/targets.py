"""What a run learns: gene expression of a task (Tables 1, 2, 4, 6) or MSI status (Table 3).

Expression targets are log10(1 + FPKM-UQ) (paper Sec. 4).  In the one-model-for-all-tasks
setting a slide's targets are the genes of its cancer type and NaN elsewhere (the loss ignores
them).  MSI labels are 1 for MSI-H and 0 for MSS, from the cohort's ``labels.csv``.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..config import TASK_GENES
from ..errors import IsgError
from .specs import STAND_INS

#: the task of the one-model-for-all-tasks setting
ALL_TASKS = "all"
#: the two kinds of task a run can be, and the training engine's loss for each (``TrainConfig.loss``):
#: the paper's L2 on expression (Sec. 4), a logit with binary cross-entropy for MSI status (Table 3)
LOSS_OF_KIND = {"regression": "mse", "classification": "bce"}


def task_slides(cohort) -> list[str]:
    """Every slide of the tasks' cancer types, in the manifest's order."""
    m = cohort.manifest
    return list(m.loc[m.cancer_type.isin(list(TASK_GENES)), "slide_id"])


def task_targets(cohort, task: str) -> pd.DataFrame:
    """Slides x genes (log10(1 + FPKM-UQ)) of a task, or of every task with NaN outside a slide's own."""
    m = cohort.manifest
    if task != ALL_TASKS:
        if task not in TASK_GENES:
            raise IsgError(None, f"unknown task {task!r} (choose one of {', '.join(TASK_GENES)} or {ALL_TASKS})")
        ids = m.loc[m.cancer_type == task, "slide_id"]
        return cohort.targets.loc[ids, list(TASK_GENES[task])].astype(float)
    genes = list(dict.fromkeys(g for gs in TASK_GENES.values() for g in gs))
    Y = pd.DataFrame(np.nan, index=task_slides(cohort), columns=genes)
    for ct, gs in TASK_GENES.items():
        s = m.loc[m.cancer_type == ct, "slide_id"]
        Y.loc[s, list(gs)] = cohort.targets.loc[s, list(gs)].to_numpy(float)
    return Y


def msi_labels(cohort, cancer_type: str) -> pd.DataFrame:
    """Slides of one cancer type x ["MSI"] (1 = MSI-H, 0 = MSS) from the cohort's ``labels.csv``."""
    if cohort.labels is None or "msi" not in cohort.labels:
        raise IsgError(cohort.root / "labels.csv", "no MSI labels (a 'slide_id,msi' table) in this cohort")
    m = cohort.manifest
    ids = list(m.loc[m.cancer_type == cancer_type, "slide_id"])
    if not ids:
        raise IsgError(cohort.root / "manifest.csv", f"no {cancer_type} slides for the MSI sub-cohort")
    lab = cohort.labels.set_index("slide_id")["msi"].reindex(ids)
    if lab.isna().any():
        raise IsgError(cohort.root / "labels.csv", f"{int(lab.isna().sum())} {cancer_type} slides have no MSI label")
    if not set(np.unique(lab)) <= {0, 1}:
        raise IsgError(cohort.root / "labels.csv", "MSI labels must be 0 (MSS) or 1 (MSI-H)")
    return pd.DataFrame({"MSI": lab.astype(float)})


def run_targets(cohort, task: str, kind: str) -> tuple[pd.DataFrame, str]:
    """The targets of ``task`` and the folder its runs go to: a cancer type or ``"all"`` for
    ``"regression"``; for ``"classification"`` one of the paper's cohorts of :data:`STAND_INS`,
    whose stand-in's MSI labels are learnt (runs in ``msi-<type>``)."""
    if kind == "regression":
        return task_targets(cohort, task), task
    if kind == "classification":
        ct = STAND_INS[task]
        return msi_labels(cohort, ct), f"msi-{ct}"
    raise IsgError(None, f"unknown kind of task {kind!r} (choose one of {', '.join(LOSS_OF_KIND)})")
