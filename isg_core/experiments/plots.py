"""The tables' figures: bars against the paper's values (Tables 1, 2, 4, 6) and ROC curves (Table 3)."""
from __future__ import annotations

import numpy as np

from ..metrics import roc_auc, roc_curve
from .registry import get_table
from .specs import STAND_INS
from .table3 import Table3Run
from .tables import TableRun


def plot_table(run: TableRun, ax=None, title: str | None = None):
    """Horizontal bars (seaborn): mean PCC over folds (SD as error bar) per method, the paper's
    value as a red diamond where the table has one and the run is in the paper's setting (the table
    record's ``paper_setting``: per task for Tables 1 and 2, one model for all tasks for Tables 4 and 6;
    a run in the other setting says "not in the paper" instead), and the noise ceiling as a
    dashed line; the legend sits outside the axes, never over a bar."""
    # imported here: matplotlib and seaborn cost ~1 s, which the CLI and the worker processes never need
    import matplotlib.pyplot as plt
    import seaborn as sns

    s = run.summary.reset_index(drop=True)
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 0.45 * len(s) + 1.2))
    sns.barplot(s, x="PCC mean", y="method", order=list(s.method), color="tab:blue", alpha=0.8, ax=ax,
                label=f"ours ({run.config.get('cohort', 'ISG-Sim, simulated')})")
    ax.errorbar(s["PCC mean"], range(len(s)), xerr=s["PCC sd (folds)"], fmt="none", ecolor="black", lw=1)
    paper_setting = get_table(run.number).paper_setting
    setting = run.config.get("setting", paper_setting)
    if "paper PCC" in s and s["paper PCC"].notna().any():
        if setting == paper_setting:
            has = s["paper PCC"].notna().to_numpy()
            ax.scatter(s["paper PCC"][has], np.flatnonzero(has), color="tab:red", marker="D", zorder=3,
                       label=f"paper (TCGA, {paper_setting})")
        else:  # the paper's number only beside its own setting: here a legend line says why it is absent
            ax.plot([], [], ls="none", label=f"paper: {paper_setting} only;\n{setting}: not in the paper")
    if np.isfinite(run.ceiling):
        ax.axvline(run.ceiling, color="k", ls="--", lw=1, label=f"noise ceiling {run.ceiling:.2f}")
    ax.axvline(0, color="grey", lw=0.5)
    ax.set(xlabel="average PCC over genes (mean over folds and seeds; bar: SD over 5 folds)", ylabel="",
           title=title or get_table(run.number).title)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)  # outside: it never covers a bar
    return ax


def plot_roc(run: Table3Run, axes=None):
    """One panel per stand-in: the ROC curve of each method's out-of-fold probabilities (its first
    training seed) pooled over the folds, the biology reference (dashed) and the chance diagonal;
    the legend, below the panels, gives each curve's own (pooled) AUC beside Table 3's (the mean
    over folds and seeds)."""
    # imported here: matplotlib costs ~1 s, which the CLI and the worker processes never need
    import matplotlib.pyplot as plt

    cohorts = list(dict.fromkeys(r.cohort for r in run.results))
    if axes is None:
        _, axes = plt.subplots(1, len(cohorts), figsize=(4.2 * len(cohorts), 4.2), squeeze=False)
        axes = axes[0]
    for ax, c in zip(axes, cohorts):
        table = run.summary[run.summary.cohort == c].set_index("method").AUC
        for r in (r for r in run.results + run.references if r.cohort == c and r.seed == 0):
            fpr, tpr, _ = roc_curve(r.frame.label, r.frame.prob)
            ref = r.experiment.model == "reference"
            # the curve pools the folds, so its own AUC stands beside the table's fold mean: the two differ
            # when little is learnt (the pooled one is biased low, see scoring.fold_auc)
            name = "biology reference" if ref else r.experiment.label
            ax.plot(fpr, tpr, lw=1 if ref else 1.5, ls="--" if ref else "-", color="grey" if ref else None,
                    label=f"{name}: {roc_auc(r.frame.label, r.frame.prob):.2f} / {table[r.experiment.label]:.2f}")
        ax.plot([0, 1], [0, 1], color="grey", ls=":", lw=1)
        ax.set(xlabel="false positive rate", ylabel="true positive rate", aspect="equal",
               title=f"{STAND_INS[c]} (simulated stand-in\nfor {c})")
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), fontsize=7,
                  title="AUC: this pooled curve / Table 3 (mean over folds, seeds)",
                  title_fontsize=7)  # below the panel: it never covers a curve
    return axes
