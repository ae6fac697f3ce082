"""Choose the slide model's training budget by inner validation on the development cohort (issue 16).

Trains Table 1's ISG for ``--epochs`` epochs without early stopping, per learning-rate schedule and
task, on the development cohort, and writes ``results/<profile>/training_budget*.{csv,md}`` and
``fig_training_budget.png`` (:mod:`isg_core.studies.budget`).

    python tools/budget_study.py --profile quick --epochs 30
"""
from __future__ import annotations

import argparse
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
import torch  # noqa: E402

from isg_core.config import get_profile  # noqa: E402
from isg_core.report.outputs import save_figure, write_table  # noqa: E402
from isg_core.studies.budget import budget_study  # noqa: E402

if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--profile", default="quick")
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--device")
    args = ap.parse_args()
    torch.set_num_threads(2)
    prof = get_profile(args.profile)
    out = budget_study(prof, args.epochs, device=args.device)
    command = "python " + " ".join(sys.argv)
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
