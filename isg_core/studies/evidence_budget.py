"""What more training seeds will cost, and each notebook's share of a 2-hour ``make reproduce``.

The evidence standard asks for at least 3 training seeds on a table's headline rows and 2 on every
other row.  Each (row, task, seed) is a 5-fold cross-validation; its cost is

    fold trainings x epochs per fold x seconds per fold epoch / parallel jobs,

with the seconds per fold epoch of the row's model measured sequentially by
``benchmarks/training.py`` (``results/<profile>/benchmark_training.csv``).  :func:`fold_trainings`
counts the cross-validations of every slide-model table now and under an :class:`EvidencePlan`
(a row that two tables share, such as ISG-10-2 + Shannon with one model for all tasks, runs once:
the first notebook that runs it pays); :func:`added_seconds` prices the difference per notebook;
:func:`notebook_budget` adds it to each notebook's measured from-scratch time and, when the sum
exceeds the plan's total, scales every notebook's share down in proportion: the seconds each may
take.  Table 5's probes are not slide-model cross-validations and are not priced here.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..config import TASK_GENES, Profile
from ..errors import IsgError

#: models the benchmark does not time, priced as the nearest one it does (same tokeniser family)
PROXIES = {"vit-s": "cyclemlp", "vit-mb": "cyclemlp", "mpvit": "cyclemlp", "he2rna-msi": "he2rna"}


@dataclass(frozen=True)
class EvidencePlan:
    """The seeds the evidence standard asks for, and how the time is spent.

    ``epochs_per_fold``: the mean epochs a fold trains for (early stopping ends most folds well
    before the schedule's last epoch); ``jobs``: cross-validations run at once; ``total_s``: what
    ``make reproduce`` may take in all."""

    headline_seeds: int = 3
    other_seeds: int = 2
    folds: int = 5
    epochs_per_fold: float = 8.0
    jobs: int = 2
    total_s: float = 7200.0

    def seeds(self, headline: bool, trained: bool) -> int:
        if not trained:  # fitted in closed form: a seed changes nothing
            return 1
        return self.headline_seeds if headline else self.other_seeds


def _table_runs(profile: Profile) -> list[tuple[str, str, object, int, str]]:
    """(notebook, table, experiment, tasks, setting) of every slide-model row, in notebook order."""
    from ..experiments.registry import ALL_TASKS_SETTING, TABLES
    from ..experiments.specs import STAND_INS, table3_experiments

    out = []
    for t in sorted(TABLES.values(), key=lambda t: t.notebook):
        if t.kind == "regression":
            tasks = 1 if t.setting == ALL_TASKS_SETTING else len(TASK_GENES)
            out += [(t.notebook, t.short, e, tasks, t.setting) for e in t.experiments()]
        elif t.kind == "msi":
            out += [(t.notebook, t.short, e, len(STAND_INS), "msi") for e in table3_experiments()]
    return out


def fold_trainings(profile: Profile, plan: EvidencePlan = EvidencePlan()) -> pd.DataFrame:
    """Per row of every slide-model table: its model, tasks, seeds now (the profile's) and under
    ``plan``, and the fold trainings each needs that no earlier notebook's shared run provides."""
    from ..experiments.runner import seeds_of
    from ..models.registry import model_traits

    done: dict[str, int] = {}  # shared run -> seeds already run by an earlier row
    rows = []
    for notebook, table, exp, tasks, setting in _table_runs(profile):
        trained = model_traits(exp.model).trained
        now, planned = len(seeds_of(exp, profile)), plan.seeds(exp.headline, trained)
        key = repr((sorted(exp.run_spec().items()), setting))
        before = done.get(key, 0)
        done[key] = max(before, planned)
        per_seed = tasks * plan.folds if trained else 0
        rows.append({"notebook": notebook, "table": table, "row": exp.label, "model": exp.model,
                     "width": exp_width(exp, profile), "tasks": tasks, "seeds now": now, "seeds planned": planned,
                     "fold trainings now": max(0, now - min(before, now)) * per_seed,
                     "fold trainings planned": max(0, planned - before) * per_seed})
    return pd.DataFrame(rows)


def exp_width(exp, profile: Profile) -> int | None:
    """The width ISG runs at in row ``exp`` (the profile's, or the row's own; None: d); None for
    the other models (their width is d)."""
    if exp.model != "isg":
        return None
    return dict(exp.overrides).get("width", profile.models.width)


def epoch_seconds(benchmark: pd.DataFrame, model: str, patches, width: int | None, d: int) -> float:
    """Sequential seconds per fold epoch of ``model`` from ``benchmarks/training.py``'s table, at
    ``patches`` per slide (an int, or "all") and ``width`` (None: d); a model the benchmark does not
    time is priced as its :data:`PROXIES` entry."""
    name = PROXIES.get(model, model)
    seq = benchmark[(benchmark["mode"] == "sequential") & (benchmark.model == name)]
    seq = seq[seq.patches.astype(str) == str(patches)]
    seq = seq[seq.width == (width or d)]
    if seq.empty:
        raise IsgError(None, f"the training benchmark has no sequential row for {name} at {patches} patches, "
                             f"width {width or d} (run benchmarks/training.py)")
    return float(seq.seconds.iloc[0])


def added_seconds(trainings: pd.DataFrame, benchmark: pd.DataFrame, profile: Profile,
                  plan: EvidencePlan = EvidencePlan()) -> pd.DataFrame:
    """``trainings`` (:func:`fold_trainings`) with the seconds per fold epoch of each row's model and
    the seconds the added fold trainings cost: (planned - now) x epochs x seconds / jobs."""
    from ..models.registry import model_traits

    d = profile.features.code_dim
    patches = profile.models.max_patches or "all"
    out = trainings.copy()
    secs = []
    for _, r in out.iterrows():
        if not model_traits(r.model).trained:
            secs.append(0.0)
            continue
        # HE2RNA's published head reads every tile (at most 100 supertiles), not a draw of patches
        p = "all" if PROXIES.get(r.model, r.model) == "he2rna" else patches
        secs.append(epoch_seconds(benchmark, r.model, p, None if pd.isna(r.width) else int(r.width), d))
    out["seconds per fold epoch"] = secs
    extra = (out["fold trainings planned"] - out["fold trainings now"]).clip(lower=0)
    out["added seconds"] = extra * plan.epochs_per_fold * out["seconds per fold epoch"] / plan.jobs
    return out


def notebook_budget(fresh_s: pd.Series, added: pd.Series, plan: EvidencePlan = EvidencePlan()) -> pd.DataFrame:
    """Per notebook: its measured from-scratch seconds, the evidence's added seconds, what it will
    need (their sum) and its ``budget``: the need, scaled down in proportion when the needs add up
    to more than ``plan.total_s`` (the scale applies to every notebook, so the budgets sum to the
    total exactly then)."""
    need = fresh_s.add(added.reindex(fresh_s.index).fillna(0.0))
    scale = min(1.0, plan.total_s / float(need.sum())) if need.sum() > 0 else 1.0
    return pd.DataFrame({"fresh_s": fresh_s, "added_s": added.reindex(fresh_s.index).fillna(0.0),
                         "need_s": need, "budget": np.round(need * scale, 1)})


def measured_epochs(runs_dir) -> float:
    """The mean number of epochs the finished folds under ``runs_dir`` trained for (one row per
    epoch in each ``fold<k>_history.csv`` the engine writes); NaN when there is none."""
    from pathlib import Path

    counts = []
    for h in Path(runs_dir).rglob("fold*_history.csv"):
        try:
            counts.append(len(pd.read_csv(h)))
        except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError):
            continue  # a damaged history says nothing about the schedule
    return float(np.mean(counts)) if counts else float("nan")
