"""Running experiments: one cross-validation per (experiment, task), for every table.

One runner serves both kinds of task (:data:`~isg_core.experiments.targets.LOSS_OF_KIND`):
``"regression"`` of gene expression (Tables 1, 2, 4, 6: the paper's L2, scored by PCC) and
``"classification"`` of MSI status (Table 3: one logit with binary cross-entropy, scored by AUC).
Both run the engine of :mod:`isg_core.train.engine` on the manifest's patient-level folds, either per
cancer type (Table 1, "one model per task") or as one model for every task (Tables 2, 4 and 6,
as the paper's discussion does); Table 3 runs per stand-in sub-cohort.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch

from ..config import Profile
from ..data.tiling import check_tiles_current
from ..features.oracle import encode_counts, slide_total_counts
from ..models.registry import MODELS, model_traits, published_schedule
from ..models.traits import SLIDE_TOTALS
from ..parallel import run_jobs
from ..train.batches import SlideData
from ..train.engine import TrainConfig, cross_validate, load_fold_model
from .factory import model_factory
from .inputs import load_experiment_data
from .receipts import inputs_identity, load_identity_memo, read_receipt, receipt_path, save_identity_memo, write_receipt
from .scoring import expression_rows, msi_frame
from .specs import Experiment
from .targets import ALL_TASKS, LOSS_OF_KIND, run_targets, task_slides


def train_config(profile: Profile, exp: Experiment, kind: str = "regression", seed: int = 0) -> TrainConfig:
    """The engine's config of ``exp``: the profile's schedule, or the model's published one where
    it has one (HE2RNA: :data:`~isg_core.models.baselines.he2rna.PUBLISHED_SCHEDULE`), capped at the
    profile's ``epoch_cap``; the training ``seed``; the data it learns from; the loss of ``kind``."""
    sched = {**profile.models.schedule(), **published_schedule(exp.model)}
    cap = profile.models.epoch_cap
    if cap is not None:
        sched["epochs"], sched["patience"] = min(sched["epochs"], cap), min(sched["patience"], cap)
    sched["seed"] = int(seed)
    return TrainConfig(**sched, features=exp.features, selection=exp.selection, loss=LOSS_OF_KIND[kind])


def seeds_of(exp: Experiment, profile: Profile) -> list[int]:
    """The training seeds ``exp`` runs with: the profile's ``seeds`` for a headline row, else seed 0;
    a deterministic model (fitted in closed form: the linear oracle) has one."""
    if not model_traits(exp.model).trained:
        return [0]
    return list(range(profile.models.seeds)) if exp.headline else [0]


def with_seeds(experiments: Sequence[Experiment], tasks: Sequence[str], profile: Profile) -> list[tuple]:
    """The (experiment, task, seed) work of a table, seed-major within each experiment and task."""
    return [(exp, task, s) for exp in experiments for task in tasks for s in seeds_of(exp, profile)]


@dataclass
class ExperimentResult:
    """Out-of-fold predictions of one experiment on one task; for a regression, its
    per-(fold, task, gene) rows (:func:`~isg_core.experiments.scoring.expression_rows`)."""

    experiment: Experiment
    task: str
    predictions: pd.DataFrame
    targets: pd.DataFrame
    rows: pd.DataFrame = field(default_factory=pd.DataFrame)
    n_patches: float = float("nan")  # mean patches per slide the model saw
    run_dir: Path | None = None
    data: SlideData | None = None
    folds: pd.Series | None = None
    kind: str = "regression"
    width: int | None = None  # the network's width (ISG at the profile's width; None = d)
    seed: int = 0  # the training seed

    def load_model(self, fold: int):
        """The best model of ``fold`` (eval mode), rebuilt from the spec its checkpoint carries, and
        the checkpoint dict."""
        d, grid = self.data.f[0].shape[1], self.data.R[0].shape[1]
        recipe, _ = model_factory(self.experiment, d, grid, self.width)
        return load_fold_model(self.run_dir, fold, recipe)  # the recipe serves cached first-format folds


@dataclass
class MSIResult:
    """Out-of-fold MSI-H probabilities of one experiment on one sub-cohort (what Table 3 keeps)."""

    experiment: Experiment
    cohort: str  # the paper's cohort this sub-cohort stands in for
    frame: pd.DataFrame  # per slide: label, prob, fold, patient_id
    run_dir: Path | None = None
    seed: int = 0  # the training seed


@dataclass
class RegressionOutcome:
    """What a table keeps of one regression run: its per-(fold, task, gene) ``rows`` (with
    ``method``, ``seed``, ``n_patches`` and ``setting``) and its out-of-fold ``predictions`` and
    ``targets`` (slides x genes, original units), from which the slide-level bootstrap rescores it."""

    experiment: Experiment
    task: str
    seed: int
    rows: pd.DataFrame
    predictions: pd.DataFrame
    targets: pd.DataFrame


def run_experiment(cohort, tiles_dir: "str | os.PathLike", exp: Experiment, task: str, profile: Profile,
                   out_dir: "str | os.PathLike", device: str | None = None, progress: bool = True,
                   data: SlideData | None = None, kind: str = "regression", seed: int = 0,
                   receipt: Path | None = None) -> ExperimentResult:
    """Cross-validate ``exp`` on ``task`` with training seed ``seed``; folds are skipped if done.
    ``task`` is a cancer type or ``"all"`` for a ``"regression"``, a paper cohort of
    :data:`~isg_core.experiments.STAND_INS` for a ``"classification"``.  ``data``: the slides'
    features already loaded (a superset).  ``receipt``: where to record the finished run for
    :func:`find_finished` (:mod:`~isg_core.experiments.receipts`)."""
    Y, folder = run_targets(cohort, task, kind)
    ids = list(Y.index)
    m = cohort.manifest.set_index("slide_id")
    traits = model_traits(exp.model)
    if not traits.trained:  # closed form (on the slide's true totals): no features, no training seed
        if traits.reads != SLIDE_TOTALS:
            raise ValueError(f"{exp.model}: a closed-form model reads {SLIDE_TOTALS}, not {traits.reads}")
        X = pd.DataFrame(encode_counts(slide_total_counts(cohort.root).loc[ids].to_numpy()), index=ids)
        preds = MODELS[exp.model.lower()].cross_validate(X, Y, m["fold"])
        out = ExperimentResult(exp, task, preds, Y, folds=m.loc[ids, "fold"], kind=kind, seed=seed)
        out.rows = expression_rows(preds, Y, out.folds, m.loc[ids, "cancer_type"], exp.label)
        out.n_patches = float("nan")
        return out
    if data is None:
        check_tiles_current(tiles_dir, cohort.manifest)  # features of a replaced slide never train a model
        data = load_experiment_data(tiles_dir, ids, exp, profile.tiling.global_size ** 2, getattr(cohort, "root", None))
    else:
        data = data.subset([data.slide_ids.index(s) for s in ids])
    width = profile.models.width if exp.model == "isg" else None
    factory, model_cfg = model_factory(exp, data.f[0].shape[1], data.R[0].shape[1], width)
    res = cross_validate(factory, data, Y, m["fold"], m["patient_id"], train_config(profile, exp, kind, seed),
                         Path(out_dir) / folder, model_cfg={"experiment": exp.run_spec(), **model_cfg}, device=device,
                         progress=progress, name=exp.model)
    out = ExperimentResult(exp, task, res.predictions, res.targets, run_dir=res.run_dir, data=data, folds=res.folds,
                           kind=kind, width=width, seed=seed)
    if kind == "regression":
        out.rows = expression_rows(res.predictions, res.targets, res.folds, m.loc[ids, "cancer_type"], exp.label)
    out.n_patches = float(np.mean([len(x) for x in data.f]))
    if receipt is not None:
        write_receipt(receipt, res.run_dir, out.n_patches)
    return out


def _targets(cohort, task: str, kind: str, memo: dict | None) -> tuple[pd.DataFrame, str]:
    """:func:`run_targets`, read once per (task, kind) for every run of a grid sharing ``memo``."""
    if memo is None:
        return run_targets(cohort, task, kind)
    key = ("targets", task, kind)
    if key not in memo:
        memo[key] = run_targets(cohort, task, kind)
    return memo[key]


def run_receipt(cohort, tiles_dir, exp: Experiment, task: str, profile: Profile, out_dir, kind: str = "regression",
                seed: int = 0, memo: dict | None = None) -> Path | None:
    """Where the receipt of this run lives (:func:`~isg_core.experiments.receipts.receipt_path`);
    None for a model fitted in closed form, which has no run folder.  ``memo`` (kept across the
    runs of a grid) reads each task's targets and each slide's HDF5 groups once."""
    if not model_traits(exp.model).trained:
        return None
    Y, folder = _targets(cohort, task, kind, memo)
    width = profile.models.width if exp.model == "isg" else None
    ids = list(Y.index)
    inputs = inputs_identity(tiles_dir, ids, exp, getattr(cohort, "root", None), memo)
    m = cohort.manifest.set_index("slide_id").loc[ids]
    return receipt_path(Path(out_dir) / folder, name=exp.model, spec=exp.run_spec(),
                        train_cfg=train_config(profile, exp, kind, seed).id_dict(), width=width,
                        pixels=profile.tiling.global_size ** 2, slide_ids=ids, targets=Y, inputs=inputs,
                        folds=m["fold"], patients=m["patient_id"])


def find_finished(cohort, exp: Experiment, task: str, receipt: Path | None, profile: Profile,
                  kind: str = "regression", seed: int = 0, memo: dict | None = None) -> ExperimentResult | None:
    """The result of a finished run found through its receipt, without loading its data (its
    ``data`` is None, so ``load_model`` needs :func:`run_experiment`); None if it must be run or
    confirmed the slow way.  What it returns equals what :func:`run_experiment` returns for the
    same run, as the cached folds are read from the same files."""
    if receipt is None or not receipt.exists():
        return None
    Y, _ = _targets(cohort, task, kind, memo)
    m = cohort.manifest.set_index("slide_id")
    folds = m.loc[list(Y.index), "fold"]
    found = read_receipt(receipt, folds, list(Y.columns))
    if found is None:
        return None
    preds, run_dir, n_patches = found
    width = profile.models.width if exp.model == "isg" else None
    out = ExperimentResult(exp, task, preds, Y, run_dir=run_dir, folds=folds, kind=kind, width=width, seed=seed,
                           n_patches=n_patches)
    if kind == "regression":
        out.rows = expression_rows(preds, Y, folds, m.loc[list(Y.index), "cancer_type"], exp.label)
    return out


def table_outcome(r: ExperimentResult, cohort) -> "RegressionOutcome | MSIResult":
    """What a table keeps of a run (small enough to come back from a worker process): a
    regression's rows, tagged with the seed, the patches seen and the setting, and its
    out-of-fold predictions; a classification's per-slide probabilities."""
    if r.kind == "classification":
        m = cohort.manifest.set_index("slide_id")
        return MSIResult(r.experiment, r.task, msi_frame(r.predictions, r.targets, r.folds, m["patient_id"]),
                         r.run_dir, seed=r.seed)
    r.rows["seed"] = r.seed
    r.rows["n_patches"] = r.n_patches
    r.rows["setting"] = "per task" if r.task != ALL_TASKS else "one model for all tasks"
    return RegressionOutcome(r.experiment, r.task, r.seed, r.rows, r.predictions, r.targets)


@dataclass(frozen=True)
class CVJob:
    """One (experiment, task, seed) cross-validation of :func:`run_grid` in a worker process."""

    experiment: Experiment
    cohort: object
    tiles_dir: object
    profile: Profile
    out_dir: object
    task: str
    device: str | None
    kind: str
    seed: int
    receipt: Path | None = None

    def __str__(self) -> str:
        return f"{self.experiment.label}, task {self.task}, seed {self.seed}"


def _run_job(job: CVJob) -> "RegressionOutcome | MSIResult":
    """One (experiment, task, seed) cross-validation in a worker process, on one thread."""
    torch.set_num_threads(1)
    return table_outcome(run_experiment(job.cohort, job.tiles_dir, job.experiment, job.task, job.profile, job.out_dir,
                                        job.device, progress=False, kind=job.kind, seed=job.seed,
                                        receipt=job.receipt), job.cohort)


def in_processes(fn, work: list, jobs: int, progress: bool = True, desc: str = "cross-validations") -> list:
    """``[fn(w) for w in work]`` in ``jobs`` spawned worker processes (``fn`` must be importable),
    in order, with a progress bar over the items (:func:`isg_core.parallel.run_jobs`)."""
    return run_jobs(fn, work, jobs, desc, progress, unit="run", start="spawn")


def run_grid(work: Sequence[tuple], cohort, tiles_dir, profile: Profile, out_dir,
             kind: str = "regression", device: str | None = None, progress: bool = True, jobs: int = 1) -> list:
    """Run every (experiment, task[, seed]) of ``work`` in order (seed 0 where none is given);
    returns their :func:`table_outcome`.

    ``jobs > 1`` runs that many cross-validations at once in worker processes of one thread each:
    these models are too small to keep two cores busy from one process, so on a 2-core CPU two jobs
    take about half the time.  Every fold is seeded, so the results do not depend on ``jobs``.
    In one process, each data variant's features are read once for every slide.  A run whose
    receipt matches its inputs (:func:`find_finished`) is read from its folds without loading
    any features or starting a process."""
    check_tiles_current(tiles_dir, cohort.manifest)  # once here: the workers get loaded data or check again
    work = [(w[0], w[1], w[2] if len(w) > 2 else 0) for w in work]
    memo = load_identity_memo(tiles_dir)  # what earlier processes read of files not rewritten since
    n_known = len(memo)
    receipts = [run_receipt(cohort, tiles_dir, exp, task, profile, out_dir, kind, seed, memo)
                for exp, task, seed in work]
    if sum(1 for k in memo if k[0] != "targets") != n_known:
        save_identity_memo(tiles_dir, memo)
    outcomes: list = [None] * len(work)
    for i, ((exp, task, seed), rec) in enumerate(zip(work, receipts)):
        found = find_finished(cohort, exp, task, rec, profile, kind, seed, memo)
        if found is not None:
            outcomes[i] = table_outcome(found, cohort)
    todo = [i for i, o in enumerate(outcomes) if o is None]
    for i in [i for i in todo if not model_traits(work[i][0].model).trained]:  # closed form: no data, no process
        exp, task, seed = work[i]
        outcomes[i] = table_outcome(run_experiment(cohort, tiles_dir, exp, task, profile, out_dir, device, progress,
                                                   kind=kind, seed=seed), cohort)
    todo = [i for i, o in enumerate(outcomes) if o is None]
    if jobs > 1 and len(todo) > 1:
        cvs = [CVJob(*_job_args(work[i], cohort, tiles_dir, profile, out_dir, device, kind), receipts[i])
               for i in todo]
        for i, o in zip(todo, in_processes(_run_job, cvs, jobs, progress)):
            outcomes[i] = o
        return outcomes
    cache: dict[tuple, SlideData] = {}
    for i in todo:
        exp, task, seed = work[i]
        traits = model_traits(exp.model)
        key = (exp.features, exp.selection, exp.threshold, exp.supertiles, traits.global_only, exp.model)
        if traits.trained and key not in cache:
            cache[key] = load_experiment_data(tiles_dir, task_slides(cohort), exp, profile.tiling.global_size ** 2,
                                              getattr(cohort, "root", None))  # oracle features read the cohort
        r = run_experiment(cohort, tiles_dir, exp, task, profile, out_dir, device, progress, data=cache.get(key),
                           kind=kind, seed=seed, receipt=receipts[i])
        outcomes[i] = table_outcome(r, cohort)
    return outcomes


def _job_args(w: tuple, cohort, tiles_dir, profile: Profile, out_dir, device, kind) -> tuple:
    exp, task, seed = w
    return exp, cohort, tiles_dir, profile, out_dir, task, device, kind, seed


@dataclass
class TableOutcomes:
    """Every run of a regression table: the long per-(method, seed, fold, task, gene) ``rows``;
    per (method label, seed) the out-of-fold ``predictions`` of every slide of the table's tasks
    (slides x genes, NaN where a gene is not its slide's task's); the observed ``truth`` in the
    same layout; and ``groups`` (fold and cancer type per slide): what
    :func:`~isg_core.experiments.slide_bootstrap.paired_slide_bootstrap` needs."""

    rows: pd.DataFrame
    predictions: dict[tuple[str, int], pd.DataFrame]
    truth: pd.DataFrame
    groups: pd.DataFrame

    def seeds(self, method: str) -> list[pd.DataFrame]:
        """``method``'s prediction frames, one per training seed."""
        return [p for (m, _), p in sorted(self.predictions.items(), key=lambda kv: kv[0][1]) if m == method]


def collect_outcomes(outcomes: Sequence[RegressionOutcome], cohort) -> TableOutcomes:
    """Stack the per-task runs of each (method, seed) into one slides x genes frame."""
    rows = pd.concat([o.rows for o in outcomes], ignore_index=True)
    parts: dict[tuple[str, int], list[pd.DataFrame]] = {}
    truth_parts: dict[str, pd.DataFrame] = {}
    for o in outcomes:
        parts.setdefault((o.experiment.label, o.seed), []).append(o.predictions)
        truth_parts.setdefault(o.task, o.targets)
    truth = pd.concat(list(truth_parts.values()))
    truth = truth[~truth.index.duplicated()]
    preds = {k: pd.concat(v).reindex(index=truth.index, columns=truth.columns) for k, v in parts.items()}
    m = cohort.manifest.set_index("slide_id").loc[truth.index]
    return TableOutcomes(rows, preds, truth, m[["fold", "cancer_type"]])


def run_table(experiments: Sequence[Experiment], cohort, tiles_dir, profile: Profile, out_dir, tasks: Sequence[str],
              device: str | None = None, progress: bool = True, jobs: int = 1) -> TableOutcomes:
    """Every experiment on every regression task, each headline row with the profile's training
    seeds (:func:`with_seeds`, :func:`run_grid`), collected (:func:`collect_outcomes`)."""
    work = with_seeds(experiments, tasks, profile)
    return collect_outcomes(run_grid(work, cohort, tiles_dir, profile, out_dir, "regression", device, progress, jobs),
                            cohort)
