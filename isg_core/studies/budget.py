"""Choosing the slide model's training budget by inner validation, on the development cohort.

The paper gives no schedule.  Every fold of a cross-validation already holds out 20% of its
training patients as an inner validation set (early stopping reads it); this study trains ISG on
the development cohort for a long budget without early stopping, once per learning-rate schedule
(:data:`isg_core.config.LR_SCHEDULES`), and reads the inner-validation loss curves:

* the schedule and number of epochs at which the mean inner-validation loss (over tasks and
  folds) is lowest;
* the patience that early stopping needs to reach that epoch: the longest run of epochs without
  a new best that the curves show before their best epoch, over tasks and folds.

Only inner-validation slides are read: the folds' test slides, and the held-out cohort, are not.

``isg study budget --profile quick --epochs 30`` (:func:`run`) writes ``results/<profile>/training_budget*.{csv,md}``
and ``fig_training_budget.png``.
"""
from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from ..config import LR_SCHEDULES, TASK_GENES, Profile, get_profile
from ..experiments.runner import run_experiment
from ..experiments.specs import isg
from ..report.outputs import save_figure, write_table


def longest_wait(val_loss: np.ndarray, until: int) -> int:
    """The longest run of epochs without a new minimum of ``val_loss`` before epoch index ``until``
    (inclusive): the patience early stopping needs so that it would not stop before ``until``."""
    best, wait, longest = np.inf, 0, 0
    for v in val_loss[: until + 1]:
        if v < best - 1e-6:
            best, wait = v, 0
        else:
            wait += 1
            longest = max(longest, wait)
    return longest


def choose_budget(curves: pd.DataFrame) -> dict:
    """From inner-validation curves (``schedule, task, fold, epoch, val_loss``; epochs from 1) the
    budget.  ``schedule`` and ``best epoch``: where the mean curve over (task, fold) is lowest.
    ``patience``: what early stopping needs to reach each curve's own best epoch up to that one
    (the largest over (task, fold), at least 1).  ``epochs``: with "cosine" the horizon the curves
    were measured with (the rate at an epoch depends on it); with "constant" the best epoch plus
    the patience (early stopping keeps the best epoch's model; later epochs only cost time), at
    most the horizon."""
    mean = curves.groupby(["schedule", "epoch"]).val_loss.mean()
    schedule, best = mean.idxmin()
    waits = []
    for _, c in curves[curves.schedule == schedule].groupby(["task", "fold"]):
        v = c.sort_values("epoch").val_loss.to_numpy()[:best]
        waits.append(longest_wait(v, int(np.argmin(v))))
    patience = max(1, int(max(waits)))
    horizon = int(curves.epoch.max())
    epochs = horizon if schedule == "cosine" else min(horizon, int(best) + patience)
    return {"schedule": schedule, "epochs": epochs, "patience": patience, "best epoch": int(best),
            "mean val loss": float(mean.min()),
            **{f"best mean val loss ({s})": float(mean.loc[s].min()) for s in mean.index.levels[0]},
            "mean val loss at epoch 1": float(mean.xs(1, level="epoch").mean())}


def budget_study(profile: "str | Profile | None" = None, long_epochs: int = 40, schedules=LR_SCHEDULES,
                 tasks=None, cohort_root: "str | os.PathLike | None" = None, device: str | None = None,
                 progress: bool = True) -> dict:
    """Train Table 1's ISG on the development cohort for ``long_epochs`` epochs without early
    stopping, per schedule and task (seed 0), and choose the budget (:func:`choose_budget`).
    Returns ``curves`` (every fold's per-epoch train and inner-validation loss) and ``choice``."""
    from ..cohorts.folder import ensure_cohort, load_cohort
    from ..features.workflow import ensure_features

    prof = profile if isinstance(profile, Profile) else get_profile(profile)
    root = Path(cohort_root) if cohort_root else ensure_cohort(prof.name, role="development")
    ensure_features(("fe",), prof, root, progress=progress, device=device)
    cohort = load_cohort(root)
    tasks = list(tasks or [t for t in TASK_GENES if (cohort.manifest.cancer_type == t).any()])
    exp = isg("ISG (budget study)", paper=None)
    rows = []
    for sched in schedules:
        p = replace(prof, models=replace(prof.models, epochs=long_epochs, patience=long_epochs, lr_schedule=sched,
                                         epoch_cap=None))
        for task in tasks:
            res = run_experiment(cohort, root / "tiles", exp, task, p, root / "runs", device, progress)
            for k in sorted(res.folds.unique()):
                h = pd.read_csv(res.run_dir / f"fold{k}_history.csv")
                rows.append(h.assign(schedule=sched, task=task, fold=int(k)))
    curves = pd.concat(rows, ignore_index=True)
    return {"curves": curves, "choice": choose_budget(curves)}


def run(args, command: str) -> None:
    """``isg study budget``: Table 1's ISG for ``--epochs`` epochs without early stopping, per
    learning-rate schedule and task; ``results/<profile>/training_budget*.{csv,md}`` and a figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns
    import torch

    torch.set_num_threads(2)
    prof = get_profile(args.profile)
    out = budget_study(prof, args.epochs, device=args.device)
    config = {"profile": prof.name, "cohort": "development", "dev_seed": prof.sim.dev_seed, "epochs": args.epochs,
              "width": prof.models.width, "lr": prof.models.lr, "batch_size": prof.models.batch_size}
    note = ("ISG-Sim is SIMULATED; development cohort, never the reported one. Inner-validation loss (MSE on "
            "standardised targets) of Table 1's ISG, per task and fold, trained without early stopping; only the "
            "folds' inner validation slides are read.")
    write_table(pd.DataFrame([out["choice"]]), "training_budget", prof.name, command, config,
                title="Training budget chosen by inner validation (ISG-Sim, SIMULATED)", note=note)
    write_table(out["curves"], "training_budget_curves", prof.name, command, config,
                title="Inner-validation curves of the budget study (ISG-Sim, SIMULATED)", note=note)
    fig, ax = plt.subplots(figsize=(7, 4))
    sns.lineplot(data=out["curves"], x="epoch", y="val_loss", hue="schedule", style="task", errorbar=None, ax=ax)
    ax.axvline(out["choice"]["best epoch"], color="grey", ls=":", label="best mean epoch")
    ax.set_xlabel("epoch")
    ax.set_ylabel("inner-validation MSE (standardised log expression)")
    ax.set_title("ISG training budget on the development cohort (ISG-Sim, SIMULATED)")
    ax.legend(bbox_to_anchor=(1.01, 1), loc="upper left")
    save_figure(fig, "fig_training_budget", prof.name)
    print(out["choice"])
