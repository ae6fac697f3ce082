"""Does training the extractors on every slide (test folds included) flatter the tables?

The FE network of the tables is trained, without labels, on patches of every slide of the cohort,
as a pretrained extractor would be: it never sees an expression value, but it has seen the test
slides' images.  A per-fold extractor would see only the fold's training slides.  This study
measures the difference on one fold instead of training five extractor pairs: the extractors are
trained again without fold ``k``'s slides (features ``fe-without-fold<k>``), Table 1's ISG is run
on them (every task, the profile's training seeds), and its PCC on fold ``k``'s test slides, which
those extractors never saw, is compared with the all-slide extractors' on the same slides, by the
slide-level paired bootstrap of every table.

``isg study extractor-folds --profile quick --fold 0`` (:func:`run`) writes
``results/<profile>/extractor_folds*.{csv,md}``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import pandas as pd

from ..config import TASK_GENES, Profile
from ..experiments.runner import run_table
from ..experiments.slide_bootstrap import (
    SIGNIFICANCE_NOTE,
    bootstrap_sentence,
    paired_slide_bootstrap,
    per_programme_differences,
)
from ..experiments.specs import isg
from ..experiments.tables import N_BOOT, cohort_config, open_table_cohort
from ..report.outputs import write_table

ALL_SLIDES = "ISG (FE trained on every slide)"


def without_fold_label(k: int) -> str:
    return f"ISG (FE trained without fold {k})"


@dataclass
class ExtractorFoldStudy:
    fold: int
    difference: pd.DataFrame  # one row: all-slide extractors - extractors without the fold, on its slides
    programmes: pd.DataFrame
    config: dict


def extractor_fold_study(profile: "str | Profile | None" = None, fold: int = 0,
                         cohort_root: "str | os.PathLike | None" = None, device: str | None = None,
                         progress: bool = True, n_boot: int = N_BOOT) -> ExtractorFoldStudy:
    """Run (or find) both arms and compare them on fold ``fold``'s test slides (per task, the
    profile's seeds; the all-slide arm is Table 1's ISG run, so it is usually cached)."""
    exps = [isg(ALL_SLIDES, paper=None, headline=True),
            isg(without_fold_label(fold), paper=None, features=f"fe-without-fold{fold}", headline=True)]
    prof, root, cohort, exps = open_table_cohort(profile, cohort_root, exps, progress, device)
    tasks = [t for t in TASK_GENES if (cohort.manifest.cancer_type == t).any()]
    out = run_table(exps, cohort, root / "tiles", prof, root / "runs", tasks, device, progress, jobs=prof.models.jobs)
    on_fold = out.groups.index[out.groups.fold == fold]
    truth, groups = out.truth.loc[on_fold], out.groups.loc[on_fold]
    a, b = out.seeds(ALL_SLIDES), out.seeds(without_fold_label(fold))
    comparison = f"{ALL_SLIDES} - {without_fold_label(fold)}"
    diff = pd.DataFrame([paired_slide_bootstrap(a, b, truth, groups, n_boot, comparison=comparison)])
    diff.insert(0, "test slides", len(on_fold))
    progs = per_programme_differences(a, b, truth, groups, n_boot, comparison=comparison)
    config = {"profile": prof.name, "fold": fold, "experiments": [e.to_dict() for e in exps], "tasks": tasks,
              **cohort_config(prof, cohort), "n_boot": n_boot}
    return ExtractorFoldStudy(fold, diff, progs, config)


def run(args, command: str) -> None:
    """``isg study extractor-folds``: the study on ``--fold``; ``results/<profile>/extractor_folds*.{csv,md}``."""
    import torch

    torch.set_num_threads(1)
    study = extractor_fold_study(args.profile, args.fold, device=args.device)
    note = (f"ISG-Sim is SIMULATED. Scored on fold {args.fold}'s test slides only, which the second arm's "
            "extractors never saw. " + SIGNIFICANCE_NOTE)
    write_table(study.difference, "extractor_folds", args.profile, command, config=study.config,
                title="All-slide against per-fold extractor training (ISG-Sim, SIMULATED)", note=note)
    write_table(study.programmes, "extractor_folds_programmes", args.profile, command, config=study.config,
                title="All-slide against per-fold extractor training, per gene programme (ISG-Sim, SIMULATED)",
                note=note)
    print(bootstrap_sentence(study.difference.iloc[0]))
