"""The slide-level experiments of the paper's Tables 1, 2, 4 and 6, and their significance.

An :class:`Experiment` is one row of a table: a model (ISG-a-b or a baseline) on one data
variant (feature set, patch selection, Shannon threshold, HE2RNA's supertiles).  It is run by
:func:`run_experiment` with the cross-validation engine of :mod:`isg_core.training` on the
manifest's patient-level folds, either per cancer type (Table 1, "one model per task") or as one
model for every task (Tables 2, 4 and 6, as the paper's discussion does): then a slide's targets
are the genes of its cancer type, the others NaN (ignored by the loss).

Every metric is computed **within a cancer type**: the PCC of gene g for task c is over the test
slides of type c only (pooling types would reward predicting the type, not the gene).
:func:`cv_metrics` gives one row per (fold, task, gene) with PCC and squared error;
:func:`summarise` turns rows into the table (mean and SD over folds of the average PCC, the
noise ceiling, the paper's value) and :func:`paired_difference` gives the bootstrap interval of
the PCC difference between two rows, paired by (task, gene, fold).
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import h5py
import numpy as np
import pandas as pd

from .config import TASK_GENES, Profile
from .errors import IsgError, first_line
from .metrics import bootstrap_mean_ci, pearson_per_column
from .tiling import check_tiles_current
from .training import SlideData, TrainConfig, cross_validate

#: the task of the one-model-for-all-tasks setting
ALL_TASKS = "all"
#: models that read only the global features f (their R is a zero placeholder, to save memory)
GLOBAL_ONLY = ("he2rna", "he2rna-msi", "vit-s")


# --- what to run -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Experiment:
    """One row of a table.

    * ``model``: ``"isg"`` (the Dual Attention network, sized by ``overrides`` such as
      ``n_mbconv``/``fusion_every``) or a baseline name of :data:`isg_core.baselines.BASELINES`;
    * ``features``: the stored feature set (``fe`` = our extractors, ``resnet50``);
    * ``selection``: the stored selection whose kept patches the model sees (None: every patch);
    * ``threshold``: recompute the Shannon keep mask from the stored scores with this threshold
      (Table 4; see :func:`isg_core.selection.parse_threshold`), instead of ``selection``'s;
    * ``supertiles``: HE2RNA's K-means on tile coordinates into at most this many supertiles;
    * ``paper``: the method's name in the paper's table (for the number beside ours).
    """

    label: str
    model: str = "isg"
    features: str = "fe"
    selection: str | None = "shannon"
    threshold: str | None = None
    supertiles: int | None = None
    overrides: tuple[tuple[str, object], ...] = ()
    paper: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    def run_spec(self) -> dict:
        """What determines the run (not its label): two tables' rows with the same spec share
        one cross-validation run (ISG-10-2 + Shannon is a row of Tables 2, 4 and 6)."""
        d = self.to_dict()
        d.pop("label")
        d.pop("paper")
        return d


def isg(label: str = "ISG", a: int = 10, b: int = 2, paper: str | None = "ISG", full_width: bool = False,
        **kw) -> Experiment:
    """ISG-a-b with Shannon selection on our features (the paper's final model is ISG-10-2).

    The network works at the profile's ``models.width`` (16 on the CPU profile, to afford the
    ablations); ``full_width`` keeps d channels throughout, as the paper's equations do."""
    overrides = (("n_mbconv", a), ("fusion_every", b)) + ((("width", None),) if full_width else ())
    return Experiment(label, "isg", overrides=overrides, paper=paper, **kw)


def isg_full() -> Experiment:
    """Table 1's ISG: ISG-10-2 at full width (d), like the baselines, whose tokens are d wide."""
    return isg(full_width=True)


def table1_experiments() -> list[Experiment]:
    """Table 1: ISG against HE2RNA (faithful, and two variants beyond the paper) and the ViTs."""
    return [
        isg_full(),
        # the narrower network of Tables 2, 4 and 6 (the profile's width): what width buys
        isg("ISG (narrow, as in Tables 2/4/6)", paper=None),
        # HE2RNA as published: ResNet50 tile features, Otsu tissue mask, 100 K-means supertiles
        Experiment("HE2RNA", "he2rna", features="resnet50", selection="otsu", supertiles=100, paper="HE2RNA"),
        Experiment("HE2RNA on our features", "he2rna", selection=None),
        Experiment("HE2RNA on our features + Shannon", "he2rna", selection="shannon"),
        Experiment("ViT-S", "vit-s", paper="ViT-S"),
        Experiment("ViT-MB", "vit-mb", paper="ViT-MB"),
        Experiment("CycleMLP", "cyclemlp", paper="CycleMLP"),
        Experiment("MPViT", "mpvit", paper="MPViT"),
    ]


#: Table 2's selectors (paper name -> our selector); DexiNed needs weights we cannot download
TABLE2_SELECTORS = {"ISG-IG": "ig", "ISG-CANNY": "canny", "ISG-DoG": "dog", "ISG-LoG": "log", "ISG-Otsu": "otsu",
                    "ISG": "shannon"}


def table2_experiments() -> list[Experiment]:
    return [isg(name, selection=sel, paper=name) for name, sel in TABLE2_SELECTORS.items()]


def table4_experiments(default_bpp: float) -> list[Experiment]:
    """Table 4: the Shannon threshold.  The paper's bit counts (8e5, 1.6e6 best, 2.4e6) are for its
    unstated patch size and compressor, so they do not transfer; their ratios do: 0.5x, 1x and 1.5x
    of our default threshold (``default_bpp`` bits per pixel, which plays the paper's 1.6e6), plus
    the per-slide mu + sigma rule the paper says its threshold roughly matches."""
    rows = []
    for paper_bits, ratio in ((8e5, 0.5), (1.6e6, 1.0), (2.4e6, 1.5)):
        label, paper = f"{ratio:g} x default ({default_bpp * ratio:.2f} bpp)", f"ISG threshold={paper_bits:g} bits"
        # 1x is the stored Shannon selection itself (made with the default threshold)
        rows.append(isg(label, paper=paper) if ratio == 1.0 else
                    isg(label, threshold=f"bpp:{default_bpp * ratio:g}", paper=paper))
    rows.append(isg("mu + sigma per slide", threshold="mu_sigma:1", paper=None))
    return rows


#: Table 6's configurations ISG-a-b
TABLE6_CONFIGS = ((6, 2), (8, 2), (10, 2), (12, 2), (14, 2), (10, 1), (10, 3))


def table6_experiments() -> list[Experiment]:
    return [isg(f"ISG-{a}-{b}", a, b, paper=f"ISG-{a}-{b}") for a, b in TABLE6_CONFIGS]


# --- data ---------------------------------------------------------------------------------------------
def keep_mask(h5: h5py.File, exp: Experiment, pixels: int) -> np.ndarray | None:
    """Bool mask over the slide's patches of those ``exp`` uses (None: all)."""
    from .selection import parse_threshold, select

    if exp.threshold is not None:
        key = "selection/shannon/scores"
        if key not in h5:
            raise IsgError(h5.filename, "no Shannon scores stored: run `isg prepare` first")
        return select(h5[key][:], parse_threshold(exp.threshold), pixels)
    if exp.selection is None:
        return None
    key = f"selection/{exp.selection}/keep"
    if key not in h5:
        raise IsgError(h5.filename,
                       f"no '{exp.selection}' selection stored: run `isg prepare --methods {exp.selection}`")
    return h5[key][:]


def load_experiment_data(tiles_dir: "str | os.PathLike", slide_ids: Sequence[str], exp: Experiment,
                         pixels: int) -> SlideData:
    """The features of ``slide_ids`` that ``exp`` sees: the patches its selection keeps (and, for
    HE2RNA's supertiles, their cluster means).  A slide left with no patch keeps its single
    highest-scoring one, so every slide gets a prediction (it happens with strict thresholds)."""
    from .baselines import supertiles

    out = SlideData([], [], [], [])
    for sid in slide_ids:
        path = Path(tiles_dir) / f"{sid}.h5"
        try:
            with h5py.File(path, "r") as fh:
                g = fh.get(f"features/{exp.features}")
                if g is None or not g.attrs.get("complete", False):
                    raise IsgError(path, f"no complete '{exp.features}' features: run `isg extract` first")
                index = g["index"][:]
                keep = keep_mask(fh, exp, pixels)
                if keep is None:
                    rows = np.arange(len(index))
                else:
                    rows = np.flatnonzero(keep[index])
                    if len(rows) == 0:
                        scores = fh["selection/shannon/scores"][:] if "selection/shannon/scores" in fh else None
                        rows = np.array([int(np.argmax(scores[index]))]) if scores is not None else np.array([0])
                f = g["global"][:][rows].astype(np.float32)
                R = (g["local"][:][rows] if "local" in g and exp.model not in GLOBAL_ONLY
                     else np.zeros((len(rows), 1, 1, f.shape[1]), np.float16))
                pos = fh["grid_index"][:][index[rows]].astype(np.int64)
        except OSError as e:
            raise IsgError(path, f"cannot read features ({first_line(e)})") from None
        if exp.supertiles is not None and len(rows) > 1:
            f, cents = supertiles(pos.astype(np.float64), f, exp.supertiles)
            pos = np.rint(cents).astype(np.int64)
            R = np.zeros((len(f), 1, 1, f.shape[1]), np.float16)
        out.slide_ids.append(sid)
        out.f.append(f.astype(np.float32))
        out.R.append(R.astype(np.float16))
        out.pos.append(pos)
    return out


def task_targets(cohort, task: str) -> pd.DataFrame:
    """Slides x genes (log10(1 + FPKM-UQ)) of a task, or of every task with NaN outside a slide's own."""
    m = cohort.manifest
    if task != ALL_TASKS:
        if task not in TASK_GENES:
            raise IsgError(None, f"unknown task {task!r} (choose one of {', '.join(TASK_GENES)} or {ALL_TASKS})")
        ids = m.loc[m.cancer_type == task, "slide_id"]
        return cohort.targets.loc[ids, list(TASK_GENES[task])].astype(float)
    genes = list(dict.fromkeys(g for gs in TASK_GENES.values() for g in gs))
    ids = m.loc[m.cancer_type.isin(list(TASK_GENES)), "slide_id"]
    Y = pd.DataFrame(np.nan, index=list(ids), columns=genes)
    for ct, gs in TASK_GENES.items():
        s = m.loc[m.cancer_type == ct, "slide_id"]
        Y.loc[s, list(gs)] = cohort.targets.loc[s, list(gs)].to_numpy(float)
    return Y


# --- models -------------------------------------------------------------------------------------------
def model_factory(exp: Experiment, d: int, grid: int, width: int | None = None):
    """``n_outputs -> nn.Module`` for ``exp`` (ISG-a-b, or a baseline) and its config as a dict."""
    import torch

    from .baselines import build_baseline
    from .dual_attention import DualAttentionConfig, DualAttentionNetwork

    kw = dict(exp.overrides)
    width = kw.pop("width", width)  # an experiment's own width (None = d) beats the profile's
    if exp.model == "isg":
        def make(n: int):
            return DualAttentionNetwork(DualAttentionConfig(d=d, grid=grid, n_outputs=n, width=width, **kw))
        cfg = DualAttentionConfig(d=d, grid=grid, n_outputs=1, width=width, **kw).to_dict()
        cfg.pop("n_outputs")
        return make, cfg

    def make_baseline(n: int):
        extra = {}
        if exp.model == "he2rna":
            # HE2RNA's top-k draw gets its own generator, seeded from the fold's model seed; its
            # output bias starts at the training mean, which is 0 for the standardised targets
            extra["generator"] = torch.Generator().manual_seed(int(torch.initial_seed()) % (2 ** 31))
            extra["bias_init"] = torch.zeros(n)
        return build_baseline(exp.model, d, grid, n, **extra, **kw)
    return make_baseline, {"model": exp.model, **kw}


# --- running -----------------------------------------------------------------------------------------
def train_config(profile: Profile, exp: Experiment) -> TrainConfig:
    m = profile.models
    return TrainConfig(epochs=m.epochs, batch_size=m.batch_size, lr=m.lr, patience=m.patience,
                       max_patches=m.max_patches, seed=m.seed, features=exp.features, selection=exp.selection)


@dataclass
class ExperimentResult:
    """Out-of-fold predictions of one experiment on one task, and its per-(fold, task, gene) rows."""

    experiment: Experiment
    task: str
    predictions: pd.DataFrame
    targets: pd.DataFrame
    rows: pd.DataFrame = field(default_factory=pd.DataFrame)
    n_patches: float = float("nan")  # mean patches per slide the model saw
    run_dir: Path | None = None
    data: SlideData | None = None

    def load_model(self, fold: int, profile: Profile):
        """The best model of ``fold`` (eval mode) and its checkpoint dict."""
        from .training import load_fold_model

        d, grid = self.data.f[0].shape[1], self.data.R[0].shape[1]
        width = profile.models.width if self.experiment.model == "isg" else None
        factory, _ = model_factory(self.experiment, d, grid, width)
        return load_fold_model(self.run_dir, fold, factory)


def run_experiment(cohort, tiles_dir: "str | os.PathLike", exp: Experiment, task: str, profile: Profile,
                   out_dir: "str | os.PathLike", device: str | None = None, progress: bool = True,
                   data: SlideData | None = None) -> ExperimentResult:
    """Cross-validate ``exp`` on ``task`` (a cancer type or ``"all"``); folds are skipped if done."""
    Y = task_targets(cohort, task)
    ids = list(Y.index)
    if data is None:
        check_tiles_current(tiles_dir, cohort.manifest)  # features of a replaced slide never train a model
        data = load_experiment_data(tiles_dir, ids, exp, profile.tiling.global_size ** 2)
    else:
        data = data.subset([data.slide_ids.index(s) for s in ids])
    d = data.f[0].shape[1]
    grid = data.R[0].shape[1]
    width = profile.models.width if exp.model == "isg" else None
    factory, model_cfg = model_factory(exp, d, grid, width)
    m = cohort.manifest.set_index("slide_id")
    cfg = train_config(profile, exp)
    res = cross_validate(factory, data, Y, m["fold"], m["patient_id"], cfg, Path(out_dir) / task,
                         model_cfg={"experiment": exp.run_spec(), **model_cfg}, device=device, progress=progress,
                         name=exp.model)
    out = ExperimentResult(exp, task, res.predictions, res.targets, run_dir=res.run_dir, data=data)
    out.rows = cv_metrics(res.predictions, res.targets, res.folds, m.loc[ids, "cancer_type"])
    out.rows.insert(0, "method", exp.label)
    pooled = cv_metrics(res.predictions, res.targets, pd.Series(0, index=res.folds.index), m.loc[ids, "cancer_type"])
    out.rows = out.rows.merge(pooled[["task", "gene", "pcc"]].rename(columns={"pcc": "pcc_pooled"}),
                              on=["task", "gene"], how="left")
    out.n_patches = float(np.mean([len(x) for x in data.f]))
    return out


def cv_metrics(predictions: pd.DataFrame, targets: pd.DataFrame, folds: pd.Series,
               cancer_type: pd.Series) -> pd.DataFrame:
    """One row per (fold, task, gene) of the genes of each slide's task: PCC and mean squared error
    over that fold's test slides of that cancer type."""
    rows = []
    for ct, genes in TASK_GENES.items():
        sl = cancer_type.index[cancer_type == ct]
        for gene in genes:
            if gene not in targets.columns or len(sl) == 0:
                continue
            for k in sorted(folds.loc[sl].unique()):
                s = sl[folds.loc[sl] == k]
                t, p = targets.loc[s, gene].to_numpy(float), predictions.loc[s, gene].to_numpy(float)
                ok = ~(np.isnan(t) | np.isnan(p))
                if ok.sum() < 2:
                    continue
                rows.append({"task": ct, "gene": gene, "fold": int(k),
                             "pcc": float(pearson_per_column(t[ok], p[ok])[0]),
                             "l2": float(np.mean((t[ok] - p[ok]) ** 2))})
    return pd.DataFrame(rows, columns=["task", "gene", "fold", "pcc", "l2"])


def _tag(r: ExperimentResult, task: str) -> pd.DataFrame:
    r.rows["n_patches"] = r.n_patches
    r.rows["setting"] = "per task" if task != ALL_TASKS else "one model for all tasks"
    return r.rows


def _run_job(args) -> pd.DataFrame:
    """One (experiment, task) cross-validation in a worker process, on one thread."""
    import torch

    exp, cohort, tiles_dir, profile, out_dir, task, device = args
    torch.set_num_threads(1)
    return _tag(run_experiment(cohort, tiles_dir, exp, task, profile, out_dir, device, progress=False), task)


def in_processes(fn, work: list, jobs: int, progress: bool = True, desc: str = "cross-validations") -> list:
    """``[fn(w) for w in work]`` in ``jobs`` spawned worker processes (``fn`` must be importable),
    in order, with a progress bar over the items."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    from tqdm import tqdm

    with ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn")) as ex:
        return list(tqdm(ex.map(fn, work), total=len(work), desc=desc, unit="run", disable=not progress))


def run_table(experiments: Sequence[Experiment], cohort, tiles_dir, profile: Profile, out_dir, tasks: Sequence[str],
              device: str | None = None, progress: bool = True, jobs: int = 1) -> pd.DataFrame:
    """Run every experiment on every task; returns the long per-(method, fold, task, gene) rows with
    ``n_patches`` (mean patches per slide seen).

    ``jobs > 1`` runs that many cross-validations at once in worker processes of one thread each:
    these models are too small to keep two cores busy from one process, so on a 2-core CPU two jobs
    take about half the time.  Every fold is seeded, so the results do not depend on ``jobs``."""
    check_tiles_current(tiles_dir, cohort.manifest)  # once here: the workers get loaded data or check again
    if jobs > 1 and len(experiments) * len(tasks) > 1:
        work = [(exp, cohort, tiles_dir, profile, out_dir, task, device) for exp in experiments for task in tasks]
        return pd.concat(in_processes(_run_job, work, jobs, progress), ignore_index=True)
    frames = []
    cache: dict[tuple, SlideData] = {}
    for exp in experiments:
        key = (exp.features, exp.selection, exp.threshold, exp.supertiles, exp.model in GLOBAL_ONLY)
        if key not in cache:
            ids = list(task_targets(cohort, ALL_TASKS).index)
            cache[key] = load_experiment_data(tiles_dir, ids, exp, profile.tiling.global_size ** 2)
        for task in tasks:
            r = run_experiment(cohort, tiles_dir, exp, task, profile, out_dir, device, progress, data=cache[key])
            frames.append(_tag(r, task))
    return pd.concat(frames, ignore_index=True)


# --- tables -------------------------------------------------------------------------------------------
def noise_ceiling_avg(cohort) -> float:
    """The noise ceiling of the tables' PCC: the simulator's noiseless truth used as the prediction,
    scored exactly like a model (PCC per gene over a fold's test slides of one cancer type, averaged
    over tasks and genes, then over folds): what a perfect model would score.  Without the truth,
    the average of the cohort's ``noise_ceiling.csv``; NaN for real data (no ceiling known)."""
    if getattr(cohort, "truth", None) is not None:
        Y = task_targets(cohort, ALL_TASKS)
        m = cohort.manifest.set_index("slide_id").loc[Y.index]
        T = cohort.truth.loc[Y.index, Y.columns].where(Y.notna())
        rows = cv_metrics(T, Y, m["fold"], m["cancer_type"])
        if len(rows):
            return float(rows.groupby("fold").pcc.mean().mean())
    nc = getattr(cohort, "noise_ceiling", None)
    if nc is None:
        return float("nan")
    vals = [nc.loc[(nc.cancer_type == ct) & (nc.gene == g), "pcc"] for ct, gs in TASK_GENES.items() for g in gs]
    vals = [float(v.iloc[0]) for v in vals if len(v)]
    return float(np.mean(vals)) if vals else float("nan")


def summarise(rows: pd.DataFrame, table: int | None = None, ceiling: float = float("nan"),
              paper_names: dict[str, str | None] | None = None) -> pd.DataFrame:
    """The table: per method, the average over tasks and genes of the PCC and L2 in each fold,
    then their mean and SD over folds; the PCC of the pooled out-of-fold predictions (when the
    rows carry ``pcc_pooled``); per-task average PCCs; the fraction of the noise ceiling; and the
    paper's value for the row (``paper_names`` maps our label to the paper's method)."""
    from .paper import paper_value

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


def paired_difference(rows: pd.DataFrame, a: str, b: str, n_boot: int = 2000, seed: int = 0) -> dict:
    """PCC(a) - PCC(b) paired by (task, gene, fold): its mean and percentile-bootstrap 95% interval
    over those units, and how often a wins.  An interval above 0 means a beats b on this cohort."""
    key = ["task", "gene", "fold"]
    wa = rows[rows.method == a].set_index(key).pcc
    wb = rows[rows.method == b].set_index(key).pcc
    diff = (wa - wb).dropna()
    mean, lo, hi = bootstrap_mean_ci(diff.to_numpy(), n_boot=n_boot, seed=seed)
    return {"comparison": f"{a} - {b}", "units": len(diff), "mean PCC difference": mean, "95% CI low": lo,
            "95% CI high": hi, "a wins": float((diff > 0).mean()) if len(diff) else np.nan,
            "verdict": "a higher" if lo > 0 else ("a lower" if hi < 0 else "not distinguishable")}


def best_baseline(summary: pd.DataFrame, ours: str = "ISG") -> str:
    """The highest-PCC row that is not an ISG variant (chosen on the same CV results; named, not tuned)."""
    others = summary[~summary.method.str.startswith("ISG")]
    return str(others.sort_values("PCC mean", ascending=False).method.iloc[0])


# --- one paper table end to end ------------------------------------------------------------------------
#: the paper's tables this module reproduces: title and setting
TABLES = {
    1: ("Table 1: ISG against the state of the art", "per task"),
    2: ("Table 2: Shannon selection against other patch selectors", "one model for all tasks"),
    4: ("Table 4: the Shannon threshold", "one model for all tasks"),
    6: ("Table 6: MBConv blocks and fusion frequency (ISG-a-b)", "one model for all tasks"),
}


def table_experiments(n: int) -> list[Experiment]:
    from .selection import ShannonSelector

    if n == 1:
        return table1_experiments()
    if n == 2:
        return table2_experiments()
    if n == 4:
        return table4_experiments(float(ShannonSelector.default_threshold.value))
    if n == 6:
        return table6_experiments()
    raise IsgError(None, f"table {n} is not a slide-level table (choose one of {', '.join(map(str, TABLES))})")


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


def reproduce_table(n: int, profile: "str | Profile | None" = None, cohort_root: "str | os.PathLike | None" = None,
                    device: str | None = None, progress: bool = True, setting: str | None = None) -> TableRun:
    """Run (or find) every experiment of Table ``n`` on the profile's cohort and summarise it.

    ``setting`` overrides the table's ("per task" or "one model for all tasks"): Table 1 is also
    run with one model for all tasks, where each model sees three times the slides.
    Runs go to ``<cohort>/runs/``; finished folds are skipped, so a rerun only reads results."""
    from .cohort import ensure_cohort, load_cohort
    from .config import get_profile
    from .features.workflow import ensure_features

    prof = profile if isinstance(profile, Profile) else get_profile(profile)
    root = Path(cohort_root) if cohort_root else ensure_cohort(prof.name)
    cohort = load_cohort(root)
    exps = table_experiments(n)
    ensure_features(tuple(dict.fromkeys(e.features for e in exps)), prof, root, progress=progress, device=device)
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


def plot_table(run: TableRun, ax=None, title: str | None = None):
    """Horizontal bars: mean PCC over folds (SD as error bar) per method, the paper's value as a
    red diamond, and the noise ceiling as a dashed line."""
    import matplotlib.pyplot as plt

    s = run.summary
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 0.45 * len(s) + 1.2))
    ax.barh(s.method, s["PCC mean"], xerr=s["PCC sd"], color="tab:blue", alpha=0.8,
            label=f"ours ({run.config.get('cohort', 'ISG-Sim, simulated')})")
    if "paper PCC" in s and s["paper PCC"].notna().any():
        ax.scatter(s["paper PCC"], s.method, color="tab:red", marker="D", zorder=3, label="paper (TCGA)")
    if np.isfinite(run.ceiling):
        ax.axvline(run.ceiling, color="k", ls="--", lw=1, label=f"noise ceiling {run.ceiling:.2f}")
    ax.axvline(0, color="grey", lw=0.5)
    ax.invert_yaxis()
    ax.set(xlabel="average PCC over genes (mean +- SD over 5 folds)", title=title or TABLES[run.number][0])
    ax.legend(loc="lower right", fontsize=8)
    return ax


#: the paper's gene names where they differ from HGNC symbols
PAPER_GENE_NAMES = {"MS4A1": "CD20"}


def per_gene_table(run: TableRun) -> pd.DataFrame:
    """Mean PCC over folds per (task, gene) and method; for Table 1 the paper's per-gene values of
    the rows it reports (``paper: <method>``)."""
    from .paper import paper_value

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
        a, b = d.comparison.split(" - ", 1)
        verdict = {"a higher": f"{a} is higher", "a lower": f"{a} is lower",
                   "not distinguishable": "the interval contains 0: not distinguishable on this cohort"}[d.verdict]
        lines.append(f"{d.comparison}: {d['mean PCC difference']:+.3f} (95% CI {d['95% CI low']:+.3f} to "
                     f"{d['95% CI high']:+.3f}, {int(d.units)} task-gene-fold pairs): {verdict}.")
    return "\n".join(lines)
