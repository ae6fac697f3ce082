"""The regression tables end to end (paper Tables 1, 2, 4 and 6): run, summarise, compare, describe.

A table's rows are the experiments of :mod:`~isg_core.experiments.specs`, cross-validated by
:func:`~isg_core.experiments.runner.run_table` (the headline rows with several training seeds).
:func:`summarise` turns the per-(seed, fold, task, gene) rows into the table with the one PCC
aggregation of :mod:`~isg_core.experiments.slide_bootstrap` (per fold the mean over tasks and
genes, then the mean over folds; then the mean over seeds), and every comparison's interval is
:func:`~isg_core.experiments.slide_bootstrap.paired_slide_bootstrap` over test slides and seeds,
overall and per gene programme.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..cohorts.folder import cohort_role, ensure_cohort, load_cohort
from ..config import TASK_GENES, Profile, get_profile
from ..devices import environment
from ..errors import IsgError
from ..features.oracle import oracle_available
from ..features.registry import get_feature_set
from ..features.workflow import ensure_features
from .paper import paper_value
from .registry import SETTINGS, get_table, table_experiments
from .runner import TableOutcomes, run_table
from .scoring import noise_ceiling_avg
from .slide_bootstrap import bootstrap_sentence, paired_slide_bootstrap, per_programme_differences
from .specs import BEST_BASELINE, Experiment
from .statistics import adjust_family
from .targets import ALL_TASKS

#: bootstrap replicates of every interval
N_BOOT = 2000


def summarise(rows: pd.DataFrame, table: int | None = None, ceiling: float = float("nan"),
              paper_names: dict[str, str | None] | None = None) -> pd.DataFrame:
    """The table: per method, ``PCC mean`` (per seed and fold the mean over tasks and genes of the
    PCC, :func:`~isg_core.metrics.pcc_or_zero`; the mean over folds; the mean over seeds: the
    headline of :func:`~isg_core.experiments.slide_bootstrap.headline_pcc`), ``PCC sd (folds)``
    (SD over folds of the seed-averaged fold PCC), ``PCC sd (seeds)`` and ``seeds``; the L2 the
    same way; per-task average PCCs; the fraction of the noise ceiling; and the paper's value for
    the row (``paper_names`` maps our label to the paper's method)."""
    rows = rows if "seed" in rows else rows.assign(seed=0)
    per_fold = rows.groupby(["method", "seed", "fold"], sort=False).agg(pcc=("pcc", "mean"), l2=("l2", "mean"))
    per_seed = per_fold.groupby(level=["method", "seed"], sort=False).mean()
    fold_avg = per_fold.groupby(level=["method", "fold"], sort=False).mean()
    g, f = per_seed.groupby(level="method", sort=False), fold_avg.groupby(level="method", sort=False)
    out = pd.DataFrame({"PCC mean": g.pcc.mean(), "PCC sd (folds)": f.pcc.std(ddof=1),
                        "PCC sd (seeds)": g.pcc.std(ddof=1), "seeds": g.pcc.size(),
                        "L2 mean": g.l2.mean(), "L2 sd (folds)": f.l2.std(ddof=1)})
    for ct in rows.task.unique():
        out[f"PCC {ct}"] = rows[rows.task == ct].groupby(["method", "seed", "fold"], sort=False).pcc.mean() \
            .groupby(level="method", sort=False).mean()
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


def table_comparisons(n: int, summary: pd.DataFrame) -> list[tuple[str, str]]:
    """The paired comparisons each table reports (ours first).  Table 1: ISG against the best
    baseline (named on the development cohort, :data:`~isg_core.experiments.specs.BEST_BASELINE`)
    and against HE2RNA; the paper's control (HE2RNA with Shannon against HE2RNA with its Otsu
    rule); and what learned features lose against the oracle's."""
    methods = list(summary.method)
    if n == 1:
        h = next(m for m in methods if m.startswith("HE2RNA (") and "+" not in m)
        pairs = [("ISG", BEST_BASELINE), ("ISG", h), (f"{h} + Shannon", h), ("ISG (oracle features)", "ISG"),
                 (f"{BEST_BASELINE} (oracle features)", BEST_BASELINE)]
    elif n == 2:
        pairs = [("ISG", m) for m in methods if m != "ISG"]
    elif n == 4:
        ref = next(m for m in methods if m.startswith("1 x"))  # our default threshold
        pairs = [(ref, m) for m in methods if m != ref]
    else:
        pairs = [("ISG-10-2", m) for m in methods if m != "ISG-10-2"]
    return [p for p in dict.fromkeys(pairs) if p[0] in methods and p[1] in methods]


def programme_comparisons(n: int, pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The comparisons whose gene-programme breakdown is reported: Table 1's two headline ones
    (ISG against the best baseline and against HE2RNA), every comparison of the other tables."""
    return pairs[:2] if n == 1 else pairs


def compare(out: TableOutcomes, pairs: list[tuple[str, str]], n_boot: int = N_BOOT
            ) -> pd.DataFrame:
    """Every pair's :func:`paired_slide_bootstrap` over test slides and seeds, one row each, adjusted
    for the table's family of comparisons (:func:`~isg_core.experiments.statistics.adjust_family`:
    Holm's p and the interval at each comparison's Holm level)."""
    reps: list = []
    diffs = [paired_slide_bootstrap(out.seeds(a), out.seeds(b), out.truth, out.groups, n_boot,
                                    comparison=f"{a} - {b}", replicates=reps) for a, b in pairs]
    return adjust_family(pd.DataFrame(diffs), reps)


@dataclass
class TableRun:
    number: int
    outcomes: TableOutcomes
    summary: pd.DataFrame
    differences: pd.DataFrame  # one row per comparison: slide-level bootstrap over seeds
    programmes: pd.DataFrame  # the same per gene programme
    ceiling: float
    config: dict

    @property
    def rows(self) -> pd.DataFrame:
        """Per (method, seed, fold, task, gene): PCC and L2."""
        return self.outcomes.rows


def open_table_cohort(profile: "str | Profile | None", cohort_root: "str | os.PathLike | None",
                      exps: list[Experiment], progress: bool = True, device: str | None = None):
    """The profile, the cohort's folder, the cohort and the experiments of a table's run, with every
    feature set they read extracted (or found; the oracle's is the simulator's truth, not extracted).
    The oracle rows are dropped on a cohort without that truth (a real one)."""
    prof = profile if isinstance(profile, Profile) else get_profile(profile)
    root = Path(cohort_root) if cohort_root else ensure_cohort(prof.name)
    cohort = load_cohort(root)
    if not oracle_available(root):
        exps = [e for e in exps if get_feature_set(e.features).extracted]
    extracted = [e.features for e in exps if get_feature_set(e.features).extracted]
    ensure_features(tuple(dict.fromkeys(extracted)), prof, root,
                    progress=progress, device=device)
    return prof, root, cohort, exps


def cohort_config(prof: Profile, cohort) -> dict:
    """What a table's config says of its cohort and of what computed it: the cohort's label,
    ``cohort_seed``, role and fingerprint (:attr:`Cohort.fingerprint`), and the environment
    (:func:`isg_core.devices.environment`)."""
    seed = cohort.meta.get("parameters", {}).get("seed")
    return {"cohort": cohort.label, "cohort_seed": seed, "cohort_role": cohort_role(prof, cohort),
            "cohort_fingerprint": cohort.fingerprint, "environment": environment()}


def reproduce_table(n: int, profile: "str | Profile | None" = None, cohort_root: "str | os.PathLike | None" = None,
                    device: str | None = None, progress: bool = True, setting: str | None = None,
                    n_boot: int = N_BOOT) -> TableRun:
    """Run (or find) every experiment of Table ``n`` on the profile's held-out cohort and summarise it.

    ``setting`` overrides the table's ("per task" or "one model for all tasks").  Runs go to
    ``<cohort>/runs/``; finished folds are skipped, so a rerun only reads results."""
    prof, root, cohort, exps = open_table_cohort(profile, cohort_root, table_experiments(n), progress, device)
    setting = setting or get_table(n).setting
    if setting not in SETTINGS:
        raise IsgError(None, f"unknown setting {setting!r} ({', '.join(SETTINGS)})")
    tasks = [t for t in TASK_GENES if (cohort.manifest.cancer_type == t).any()] if setting == "per task" \
        else [ALL_TASKS]
    out = run_table(exps, cohort, root / "tiles", prof, root / "runs", tasks, device, progress, jobs=prof.models.jobs)
    ceiling = noise_ceiling_avg(cohort)
    summary = summarise(out.rows, n, ceiling, {e.label: e.paper for e in exps})
    pairs = table_comparisons(n, summary)
    diffs = compare(out, pairs, n_boot)
    progs = pd.concat([per_programme_differences(out.seeds(a), out.seeds(b), out.truth, out.groups, n_boot,
                                                 comparison=f"{a} - {b}")
                       for a, b in programme_comparisons(n, pairs)], ignore_index=True)
    config = {"profile": prof.name, "models": asdict(prof.models), "experiments": [e.to_dict() for e in exps],
              "tasks": tasks, "setting": setting, **cohort_config(prof, cohort), "n_boot": n_boot}
    return TableRun(n, out, summary, diffs, progs, ceiling, config)


#: the paper's gene names where they differ from HGNC symbols
PAPER_GENE_NAMES = {"MS4A1": "CD20"}


def per_gene_table(run: TableRun) -> pd.DataFrame:
    """Mean PCC over folds (and seeds) per (task, gene) and method; for Table 1 the paper's per-gene
    values of the rows it reports (``paper: <method>``)."""
    wide = run.rows.groupby(["task", "gene", "method"], sort=False).pcc.mean().unstack("method")
    wide = wide[list(run.summary.method)]
    if run.number == 1:
        for paper in ("ISG", "HE2RNA"):
            wide[f"paper: {paper}"] = [paper_value(1, paper, t, PAPER_GENE_NAMES.get(g, g)) for t, g in wide.index]
    return wide.reset_index()


def describe(run: TableRun, ours: str | None = None) -> str:
    """The ranking this run found and what the paired comparisons say, in words (for the notebooks
    and the README; every number comes from ``run``)."""
    s = run.summary.sort_values("PCC mean", ascending=False)
    ours = ours or table_comparisons(run.number, run.summary)[0][0]

    def fmt(m, v, k, sd):
        return f"{m} ({v:.3f}" + (f" +- {sd:.3f} over {int(k)} seeds)" if k > 1 else ")")

    lines = ["Ranking by PCC (mean over folds, then seeds): "
             + " > ".join(fmt(*r) for r in zip(s.method, s["PCC mean"], s["seeds"], s["PCC sd (seeds)"])) + "."]
    if np.isfinite(run.ceiling) and (s.method == ours).any():
        r = float(s.loc[s.method == ours, "PCC mean"].iloc[0])
        lines.append(f"{ours} reaches {r / run.ceiling:.2f} of the noise ceiling ({run.ceiling:.3f}); the goal is 0.9.")
    for _, d in run.differences.iterrows():
        lines.append(bootstrap_sentence(d))
    return "\n".join(lines)
