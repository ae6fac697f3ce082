"""The regression tables end to end (paper Tables 1, 2, 4 and 6): run, summarise, compare, describe.

A table's rows are the experiments of :mod:`~isg_core.experiments.specs`, cross-validated by
:func:`~isg_core.experiments.runner.run_table`; :func:`summarise` turns the per-(fold, task,
gene) rows into the table (mean and SD over folds of the average PCC, the noise ceiling, the
paper's value), and :func:`~isg_core.experiments.statistics.paired_difference` gives each
comparison's bootstrap interval.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..cohort import ensure_cohort, load_cohort
from ..config import TASK_GENES, Profile, get_profile
from ..errors import IsgError
from ..features.workflow import ensure_features
from ..paper import paper_value
from .runner import run_table
from .scoring import noise_ceiling_avg
from .specs import TABLES, Experiment, table_experiments
from .statistics import paired_difference, verdict_sentence
from .targets import ALL_TASKS


def summarise(rows: pd.DataFrame, table: int | None = None, ceiling: float = float("nan"),
              paper_names: dict[str, str | None] | None = None) -> pd.DataFrame:
    """The table: per method, the average over tasks and genes of the PCC and L2 in each fold,
    then their mean and SD over folds; the PCC of the pooled out-of-fold predictions (when the
    rows carry ``pcc_pooled``); per-task average PCCs; the fraction of the noise ceiling; and the
    paper's value for the row (``paper_names`` maps our label to the paper's method)."""
    per_fold = rows.groupby(["method", "fold"], sort=False).agg(pcc=("pcc", "mean"), l2=("l2", "mean"))
    g = per_fold.groupby(level="method", sort=False)
    out = pd.DataFrame({"PCC mean": g.pcc.mean(), "PCC sd": g.pcc.std(ddof=1), "L2 mean": g.l2.mean(),
                        "L2 sd": g.l2.std(ddof=1)})
    if "pcc_pooled" in rows:  # PCC of the out-of-fold predictions of all 5 folds together, per task and gene
        out["PCC pooled"] = (rows.drop_duplicates(["method", "task", "gene"])
                             .groupby("method", sort=False).pcc_pooled.mean())
    for ct in rows.task.unique():
        out[f"PCC {ct}"] = rows[rows.task == ct].groupby("method", sort=False).pcc.mean()
    out["noise ceiling"] = ceiling
    out["of noise ceiling"] = out["PCC mean"] / ceiling if np.isfinite(ceiling) else np.nan
    if "n_patches" in rows:
        out["patches/slide"] = rows.groupby("method", sort=False).n_patches.mean()
    if table is not None:
        names = paper_names or {}
        for metric in ("PCC", "L2"):
            vals = []
            for m in out.index:
                name = names.get(m, m)
                vals.append(paper_value(table, name, "all", metric=metric) if name else np.nan)
            if metric == "PCC" or np.isfinite(vals).any():  # the paper gives L2 in Tables 4 and 6 only
                out[f"paper {metric}"] = vals
    return out.reset_index().rename(columns={"index": "method"})


def best_baseline(summary: pd.DataFrame, ours: str = "ISG") -> str:
    """The highest-PCC row that is not an ISG variant (chosen on the same CV results; named, not tuned)."""
    others = summary[~summary.method.str.startswith("ISG")]
    return str(others.sort_values("PCC mean", ascending=False).method.iloc[0])


def table_comparisons(n: int, summary: pd.DataFrame) -> list[tuple[str, str]]:
    """The paired comparisons each table reports (ours first)."""
    if n == 1:
        pairs = [("ISG", best_baseline(summary, "ISG")), ("ISG", "HE2RNA"),
                 ("HE2RNA on our features + Shannon", "HE2RNA on our features")]
    elif n == 2:
        pairs = [("ISG", m) for m in summary.method if m != "ISG"]
    elif n == 4:
        ref = next(m for m in summary.method if m.startswith("1 x"))  # our default threshold
        pairs = [(ref, m) for m in summary.method if m != ref]
    else:
        pairs = [("ISG-10-2", m) for m in summary.method if m != "ISG-10-2"]
    return list(dict.fromkeys(pairs))


@dataclass
class TableRun:
    number: int
    rows: pd.DataFrame  # per (method, task, gene, fold)
    summary: pd.DataFrame
    differences: pd.DataFrame
    ceiling: float
    config: dict


def open_table_cohort(profile: "str | Profile | None", cohort_root: "str | os.PathLike | None",
                      exps: list[Experiment], progress: bool = True, device: str | None = None):
    """The profile, the cohort's folder and the cohort of a table's run, with every feature set its
    experiments read extracted (or found)."""
    prof = profile if isinstance(profile, Profile) else get_profile(profile)
    root = Path(cohort_root) if cohort_root else ensure_cohort(prof.name)
    cohort = load_cohort(root)
    ensure_features(tuple(dict.fromkeys(e.features for e in exps)), prof, root, progress=progress, device=device)
    return prof, root, cohort


def reproduce_table(n: int, profile: "str | Profile | None" = None, cohort_root: "str | os.PathLike | None" = None,
                    device: str | None = None, progress: bool = True, setting: str | None = None) -> TableRun:
    """Run (or find) every experiment of Table ``n`` on the profile's cohort and summarise it.

    ``setting`` overrides the table's ("per task" or "one model for all tasks"): Table 1 is also
    run with one model for all tasks, where each model sees three times the slides.
    Runs go to ``<cohort>/runs/``; finished folds are skipped, so a rerun only reads results."""
    exps = table_experiments(n)
    prof, root, cohort = open_table_cohort(profile, cohort_root, exps, progress, device)
    setting = setting or TABLES[n][1]
    if setting not in ("per task", "one model for all tasks"):
        raise IsgError(None, f"unknown setting {setting!r} (per task, one model for all tasks)")
    tasks = [t for t in TASK_GENES if (cohort.manifest.cancer_type == t).any()] if setting == "per task" \
        else [ALL_TASKS]
    rows = run_table(exps, cohort, root / "tiles", prof, root / "runs", tasks, device, progress, jobs=prof.models.jobs)
    ceiling = noise_ceiling_avg(cohort)
    summary = summarise(rows, n, ceiling, {e.label: e.paper for e in exps})
    diffs = pd.DataFrame([paired_difference(rows, a, b) for a, b in table_comparisons(n, summary)])
    config = {"profile": prof.name, "models": asdict(prof.models), "experiments": [e.to_dict() for e in exps],
              "tasks": tasks, "setting": setting, "cohort": cohort.label}
    return TableRun(n, rows, summary, diffs, ceiling, config)


#: the paper's gene names where they differ from HGNC symbols
PAPER_GENE_NAMES = {"MS4A1": "CD20"}


def per_gene_table(run: TableRun) -> pd.DataFrame:
    """Mean PCC over folds per (task, gene) and method; for Table 1 the paper's per-gene values of
    the rows it reports (``paper: <method>``)."""
    wide = run.rows.groupby(["task", "gene", "method"], sort=False).pcc.mean().unstack("method")
    wide = wide[list(run.summary.method)]
    if run.number == 1:
        for label, paper in (("ISG", "ISG"), ("HE2RNA", "HE2RNA")):
            wide[f"paper: {paper}"] = [paper_value(1, paper, t, PAPER_GENE_NAMES.get(g, g)) for t, g in wide.index]
    return wide.reset_index()


def describe(run: TableRun, ours: str | None = None) -> str:
    """The ranking this run found and what the paired comparisons say, in words (for the notebooks
    and the README; every number comes from ``run``)."""
    s = run.summary.sort_values("PCC mean", ascending=False)
    ours = ours or table_comparisons(run.number, run.summary)[0][0]
    lines = ["Ranking by mean PCC over folds: "
             + " > ".join(f"{m} ({v:.3f})" for m, v in zip(s.method, s["PCC mean"])) + "."]
    if np.isfinite(run.ceiling):
        r = float(s.loc[s.method == ours, "PCC mean"].iloc[0])
        lines.append(f"{ours} reaches {r / run.ceiling:.2f} of the noise ceiling ({run.ceiling:.3f}); the goal is 0.9.")
    for _, d in run.differences.iterrows():
        lines.append(verdict_sentence(d.comparison, d["mean PCC difference"], d["95% CI low"], d["95% CI high"],
                                      d.verdict, f"{int(d.units)} task-gene-fold pairs"))
    return "\n".join(lines)
