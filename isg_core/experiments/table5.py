"""Table 5: how much gene-expression signal do the features carry? (paper Sec. 4.2)

The paper probes features with "a two-layer perceptron with a ReLU activation"
(:mod:`isg_core.train.probe`) at two levels:

* **slide level** (the paper's TCGA row): every kept patch's features are mean-pooled into one
  vector per slide and the probe predicts the slide's log-expression of its task's genes;
  5-fold cross-validation on the manifest's patient-level folds, one probe per cancer type,
  scored like every regression table (per fold the PCC of each gene over the fold's test slides
  of its type, the mean over tasks and genes, then the mean over folds: ``pcc``), and compared
  with a paired bootstrap over test slides (:func:`table5_differences`);
* **patch level** (the paper's STNet row, 149 px spots with expression): ISG-Sim records the
  cells drawn in each global patch, so log(1 + count) of each cell type stands in for a spot's
  expression; the folds are the slides' folds, so no slide is on both sides.  ``pcc`` is the mean
  over folds of the PCC over the fold's patches; differences resample slides within folds (a
  slide's patches share its tissue: they are not independent units), the same draws for both sets.

Feature sets: ``fe`` (f_i and the mean of R_i over the local grid, concatenated), ``fe:global``
(f_i only), ``fe-untrained`` (same architecture, random weights: what the shape alone gives),
``resnet50`` (pooled ResNet50, ImageNet when cached, else random: named so in the table).
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from ..config import TASK_GENES
from ..data.result_cache import cache_path, identity, library_versions, load_frames, save_frames
from ..errors import IsgError
from ..features.extract import read_features
from ..features.registry import get_feature_set
from ..parallel import run_jobs
from ..train.probe import ProbeConfig, cross_validate_probe

#: the per-patch cell counts of ISG-Sim that stand in for spot-level expression
PATCH_TARGETS = ("n_lymphocyte", "n_bcell", "n_tumour", "n_mitosis", "n_luminal", "n_basal", "n_stroma")


def _vectors(h5: Path, spec: str) -> tuple[np.ndarray, np.ndarray]:
    """(index, (n, dim) features) of one slide for a spec ``name`` or ``name:global``."""
    fs = get_feature_set(spec)
    feats = read_features(h5, fs.key, local=not fs.global_only)
    # features may cover every patch (``--patches all``); Table 5 probes the Shannon-kept ones
    with h5py.File(h5, "r") as f:
        rows = np.flatnonzero(f["selection/shannon/keep"][:][feats.index]) if "selection/shannon/keep" in f \
            else np.arange(len(feats.index))
    x = feats.global_[rows]
    if feats.local is not None:
        loc = feats.local[rows]
        x = np.concatenate([x, loc.reshape(len(x), -1, loc.shape[-1]).mean(1)], axis=1)
    return feats.index[rows], x.astype(np.float32)


def _read_vectors(manifest: pd.DataFrame, tiles_dir: "str | os.PathLike", spec: str) -> dict:
    """slide id -> (index, features) of its kept patches (:func:`_vectors`), in manifest order."""
    return {sid: _vectors(Path(tiles_dir) / f"{sid}.h5", spec) for sid in manifest["slide_id"]}


def slide_features(manifest: pd.DataFrame, tiles_dir: "str | os.PathLike", spec: str,
                   vectors: dict | None = None) -> pd.DataFrame:
    """Mean-pooled features per slide (rows: slide_id); ``vectors``: :func:`_read_vectors`'s, read
    once for both levels (None: read now)."""
    vectors = vectors if vectors is not None else _read_vectors(manifest, tiles_dir, spec)
    rows = {}
    for sid in manifest["slide_id"]:
        _, x = vectors[sid]
        if len(x) == 0:
            raise IsgError(Path(tiles_dir) / f"{sid}.h5", "no kept patches to pool")
        rows[sid] = x.mean(0)
    return pd.DataFrame.from_dict(rows, orient="index")


def patch_features(manifest: pd.DataFrame, tiles_dir: "str | os.PathLike", spec: str,
                   patches: pd.DataFrame, vectors: dict | None = None) -> tuple[np.ndarray, pd.DataFrame]:
    """Per-patch features and the matching rows of ISG-Sim's ``patches.csv`` (by slide, row, col);
    ``vectors``: as in :func:`slide_features`."""
    vectors = vectors if vectors is not None else _read_vectors(manifest, tiles_dir, spec)
    xs, metas = [], []
    table = patches.set_index(["slide_id", "row", "col"])
    for sid in manifest["slide_id"]:
        h5 = Path(tiles_dir) / f"{sid}.h5"
        index, x = vectors[sid]
        with h5py.File(h5, "r") as f:
            grid = f["grid_index"][:][index]
        keys = pd.MultiIndex.from_arrays([[sid] * len(index), grid[:, 0], grid[:, 1]], names=["slide_id", "row", "col"])
        metas.append(table.reindex(keys).reset_index())
        xs.append(x)
    meta = pd.concat(metas, ignore_index=True)
    if meta[list(PATCH_TARGETS)].isna().any().any():
        raise IsgError(None, "patches.csv does not cover every extracted patch "
                             "(was the cohort tiled with another config?)")
    return np.concatenate(xs), meta


@dataclass(frozen=True)
class ProbeInputs:
    """What one feature set's probes learn from, each slide read once: the mean-pooled features per
    slide and, where the cohort has ``patches.csv``, the per-patch features and their rows of it."""

    slides: pd.DataFrame
    patches: np.ndarray | None = None
    patch_meta: pd.DataFrame | None = None


def probe_inputs(cohort, tiles_dir: "str | os.PathLike", spec: str) -> ProbeInputs:
    """:func:`slide_features` and :func:`patch_features` of ``spec`` from one read of each slide."""
    vectors = _read_vectors(cohort.manifest, tiles_dir, spec)
    slides = slide_features(cohort.manifest, tiles_dir, spec, vectors)
    if cohort.patches is None:
        return ProbeInputs(slides)
    X, meta = patch_features(cohort.manifest, tiles_dir, spec, cohort.patches, vectors)
    return ProbeInputs(slides, X, meta)


def probe_slide_level(cohort, tiles_dir, spec: str, cfg=None,
                      X: pd.DataFrame | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per cancer type and gene: the probe's PCC (mean over folds, and its SD); and the out-of-fold
    predictions of every slide (slides x genes, NaN outside a slide's task).  ``X``: the pooled
    features (:func:`slide_features`) if already read."""
    cfg = cfg or ProbeConfig()
    X = X if X is not None else slide_features(cohort.manifest, tiles_dir, spec)
    out, preds = [], []
    for ctype, genes in TASK_GENES.items():
        m = cohort.manifest[cohort.manifest["cancer_type"] == ctype]
        if len(m) == 0:
            continue
        res = cross_validate_probe(X.loc[m["slide_id"]].to_numpy(),
                                   cohort.targets.loc[m["slide_id"], list(genes)].to_numpy(),
                                   m["fold"].to_numpy(), cfg, groups=m["patient_id"].to_numpy(),
                                   target_names=list(genes))
        out.append(_rows(res, "slide", ctype))
        preds.append(pd.DataFrame(res.predictions, index=list(m["slide_id"]), columns=list(genes)))
    return pd.concat(out, ignore_index=True), pd.concat(preds)


def _rows(res, level: str, task: str) -> pd.DataFrame:
    """``pcc``: the mean over folds of the PCC over each fold's test slides or patches (a constant
    prediction scores 0), as every table scores; ``pcc_fold_std``: its SD over folds."""
    s = res.summary().drop(index="mean")
    return pd.DataFrame({"level": level, "task": task, "target": s.index, "pcc": s["pcc_mean"].to_numpy(),
                         "pcc_fold_std": s["pcc_std"].to_numpy()})


def probe_patch_level(cohort, tiles_dir, spec: str, cfg=None, inputs: ProbeInputs | None = None,
                      predictions: bool = False) -> "pd.DataFrame | tuple[pd.DataFrame, pd.DataFrame]":
    """Per cell type: mean and std over folds of the probe's PCC at the patch level.  ``inputs``:
    :func:`probe_inputs`'s if already read.  ``predictions``: also return the out-of-fold
    predictions, one row per patch (``slide_id``, ``row``, ``col``, ``fold``, and per cell type
    its log(1 + count) and ``<type>:pred``), what :func:`table5_differences` resamples."""
    if cohort.patches is None:
        raise IsgError(cohort.root, "patch-level probe needs ISG-Sim's patches.csv (per-patch cell counts)")
    cfg = cfg or ProbeConfig()
    if inputs is not None and inputs.patches is not None:
        X, meta = inputs.patches, inputs.patch_meta
    else:
        X, meta = patch_features(cohort.manifest, tiles_dir, spec, cohort.patches)
    folds = meta["slide_id"].map(dict(zip(cohort.manifest["slide_id"], cohort.manifest["fold"]))).to_numpy()
    Y = np.log1p(meta[list(PATCH_TARGETS)].to_numpy(np.float64))
    res = cross_validate_probe(X, Y, folds, cfg, groups=meta["slide_id"].to_numpy(), target_names=list(PATCH_TARGETS))
    if not predictions:
        return _rows(res, "patch", "cells")
    pred = meta[["slide_id", "row", "col"]].assign(fold=folds)
    for j, t in enumerate(PATCH_TARGETS):
        pred[t], pred[f"{t}:pred"] = Y[:, j], res.predictions[:, j]
    return _rows(res, "patch", "cells"), pred.reset_index(drop=True)


@dataclass(frozen=True)
class ProbeJob:
    """One feature set's probes of :func:`table5` (``threads``: torch threads in a worker; 0: as is;
    ``cache_dir``: where the result is stored for the next call, None: nowhere)."""

    cohort: object
    tiles_dir: object
    spec: str
    cfg: object
    threads: int
    cache_dir: object = None

    def __str__(self) -> str:
        return f"features {self.spec}"


def _table5_probes(cohort, tiles_dir, spec: str, cfg, inputs: ProbeInputs) -> tuple[pd.DataFrame, ...]:
    """One feature set's slide-level PCCs, its out-of-fold slide predictions, its patch-level PCCs
    and its out-of-fold patch predictions."""
    slide, pred = probe_slide_level(cohort, tiles_dir, spec, cfg, X=inputs.slides)
    return (slide, pred, *probe_patch_level(cohort, tiles_dir, spec, cfg, inputs, predictions=True))


def _table5_job(job: ProbeJob) -> tuple[pd.DataFrame, ...]:
    """One feature set's slide- and patch-level probes, on one thread (a worker of :func:`table5`),
    stored under the identity of what they learnt from when ``job.cache_dir`` is set."""
    cohort, tiles_dir, spec, cfg = job.cohort, job.tiles_dir, job.spec, job.cfg
    if job.threads:
        torch.set_num_threads(job.threads)
    inputs = probe_inputs(cohort, tiles_dir, spec)
    out = _table5_probes(cohort, tiles_dir, spec, cfg, inputs)
    if job.cache_dir is not None:
        key = probe_identity(cohort, spec, cfg, inputs)
        save_frames(cache_path(job.cache_dir, f"table5-{spec}", key), key, out)
    return out


#: the version of what :func:`table5` computes per feature set: a change to the probes, their
#: inputs or their tables that changes a number bumps this (the stored probes are then redone)
TABLE5_VERSION = 2  # 2: the out-of-fold patch predictions are kept, for slide-resampled intervals
#: the libraries whose versions enter a stored probe's identity
PROBE_LIBRARIES = ("torch", "numpy", "pandas")


def probe_identity(cohort, spec: str, cfg: ProbeConfig, inputs: ProbeInputs) -> str:
    """What one feature set's Table 5 probes are computed from: the features they learn from (the
    pooled slide features and the per-patch features, by content, so features extracted again
    under the same name are not mistaken for the old ones), the manifest's slides, cancer types,
    patients and folds, the targets, the per-patch cell counts, the genes of each task, the probe's
    config (its device included), :data:`TABLE5_VERSION` and :data:`PROBE_LIBRARIES`."""
    man = cohort.manifest[["slide_id", "cancer_type", "patient_id", "fold"]]
    meta = None if inputs.patch_meta is None else inputs.patch_meta[["slide_id", *PATCH_TARGETS]]
    return identity({"what": "table5", "version": TABLE5_VERSION, "spec": spec, "probe": asdict(cfg),
                     "tasks": {k: list(v) for k, v in TASK_GENES.items()}, "patch_targets": list(PATCH_TARGETS),
                     "libraries": library_versions(*PROBE_LIBRARIES)},
                    man, cohort.targets, inputs.slides, inputs.patches, meta)


def table5_probe_config(profile: str) -> ProbeConfig:
    """Table 5's probe at ``profile``: 300 epochs with patience 30 (20 / 5 at smoke: seconds in CI)."""
    return ProbeConfig(epochs=300 if profile != "smoke" else 20, patience=30 if profile != "smoke" else 5)


def table5(cohort, tiles_dir, specs=("resnet50", "fe", "fe:global", "fe-untrained"), cfg=None,
           progress: bool = True, jobs: int = 1,
           cache_dir: "str | os.PathLike | None" = None) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """Long table: one row per (features, level, task, target) with the probe's PCC; and per
    feature set the slide-level out-of-fold predictions (for :func:`table5_differences`).

    ``jobs > 1`` probes that many feature sets at once in spawned processes of one thread each (the
    probes are small MLPs: one process cannot keep two cores busy).  Every probe is seeded, so the
    numbers do not depend on ``jobs``.

    ``cache_dir``: each feature set's probes are stored there (:mod:`isg_core.data.result_cache`)
    and read back while :func:`probe_identity` is unchanged; only the others are trained (each
    feature set is then read twice: once here for its identity, once to train)."""
    cfg = cfg or ProbeConfig()
    found: dict[str, tuple] = {}
    if cache_dir is not None:
        for spec in tqdm(specs, desc="Table 5 probes: finding stored ones", unit="features", disable=not progress):
            key = probe_identity(cohort, spec, cfg, probe_inputs(cohort, tiles_dir, spec))
            hit = load_frames(cache_path(cache_dir, f"table5-{spec}", key), key)
            if hit is not None:
                found[spec] = hit
    todo = [s for s in specs if s not in found]
    work = [ProbeJob(cohort, tiles_dir, spec, cfg, 1 if jobs > 1 else 0, cache_dir) for spec in todo]
    if jobs > 1 and len(work) > 1:
        done = run_jobs(_table5_job, work, jobs, "Table 5 probes", progress, unit="run", start="spawn")
    else:
        done = [_table5_job(w) for w in tqdm(work, desc="Table 5 probes", unit="features",
                                             disable=not progress or not work)]
    found.update(zip(todo, done))
    parts, preds = [], ProbePredictions()
    for spec in specs:
        slide, pred, patch, patch_pred = found[spec]
        preds[spec], preds.patch[spec] = pred, patch_pred
        parts += [slide.assign(features=spec), patch.assign(features=spec)]
    long = pd.concat(parts, ignore_index=True)[["features", "level", "task", "target", "pcc", "pcc_fold_std"]]
    return long, preds


class ProbePredictions(dict):
    """Feature set -> its out-of-fold slide predictions (slides x genes), as a dict; ``patch``:
    feature set -> its out-of-fold patch predictions (:func:`probe_patch_level`)."""

    def __init__(self, slide: dict | None = None, patch: dict | None = None):
        super().__init__(slide or {})
        self.patch: dict[str, pd.DataFrame] = dict(patch or {})


def table5_differences(long: pd.DataFrame, preds: dict[str, pd.DataFrame], cohort, pairs,
                       n_boot: int = 2000, adjust: bool = False) -> pd.DataFrame:
    """Paired differences between feature sets: at slide level the bootstrap over test slides
    within fold and cancer type of every regression table (:func:`~isg_core.experiments.
    slide_bootstrap.paired_slide_bootstrap`, on the out-of-fold predictions ``table5`` kept); at
    patch level, where ``preds`` has both sets' patch predictions (a :class:`ProbePredictions`),
    the mean over cell types of the fold-mean PCC difference, its interval from draws of slides
    within folds (:class:`~isg_core.experiments.slide_draws.SlideDraws`: every patch of a drawn
    slide comes with it, the same draws for both sets).

    Columns: ``comparison`` ("a - b"), ``level``, ``diff`` (mean PCC of a minus b), ``ci_low`` /
    ``ci_high`` (its 95% bootstrap interval), then ``PCC a``, ``PCC b``, ``resampled`` and ``verdict``.
    ``adjust``: the rows are one family, Holm-adjusted (:func:`~isg_core.experiments.statistics.
    adjust_family`: ``p``, ``p Holm``, ``Holm CI low/high``, ``verdict (Holm)`` added) and each row
    says how many training ``seeds`` it has (one: the probes are seeded, not replicated)."""
    # the experiments package imports the features package: imported here, where Table 5 is compared
    from .slide_bootstrap import paired_slide_bootstrap
    from .slide_draws import SlideDraws
    from .statistics import adjust_family, verdict
    from .targets import ALL_TASKS, task_targets

    truth = task_targets(cohort, ALL_TASKS)
    groups = cohort.manifest.set_index("slide_id").loc[truth.index, ["fold", "cancer_type"]]
    rows: list[dict] = []
    reps: list[np.ndarray] = []
    for a, b in pairs:
        r = paired_slide_bootstrap(preds[a].reindex(truth.index), preds[b].reindex(truth.index), truth, groups,
                                   n_boot, comparison=f"{a} - {b}", replicates=reps)
        rows.append({"level": "slide", **{k: r[k] for k in ("comparison", "PCC a", "PCC b", "mean PCC difference",
                                                            "95% CI low", "95% CI high", "resampled", "verdict")}})
    patch = getattr(preds, "patch", {})
    for a, b in pairs:
        if a not in patch or b not in patch:
            continue
        pa, pb = _aligned_patches(patch[a], patch[b])
        draws = SlideDraws(pa.slide_id.to_numpy(), pa.fold.to_numpy(), n_boot)
        sa, sb = patch_probe_score(pa), patch_probe_score(pb)
        r = draws.interval(lambda w: sa(w) - sb(w), pa.slide_id.to_numpy(), batched=True, replicates=reps)
        rows.append({"level": "patch", "comparison": f"{a} - {b}", "PCC a": sa(None), "PCC b": sb(None),
                     "mean PCC difference": r["value"], "95% CI low": r["ci_low"], "95% CI high": r["ci_high"],
                     "resampled": f"slides within folds ({len(draws.slides)}), all their patches",
                     "verdict": verdict(r["ci_low"], r["ci_high"])})
    names = {"mean PCC difference": "diff", "95% CI low": "ci_low", "95% CI high": "ci_high"}
    cols = ["comparison", "level", "diff", "ci_low", "ci_high", "PCC a", "PCC b", "resampled", "verdict"]
    out = pd.DataFrame(rows)
    if adjust:
        out = adjust_family(out, reps).assign(seeds=1)
        cols += ["seeds", "adjusted", "p", "p Holm", "Holm level", "Holm CI low", "Holm CI high", "verdict (Holm)"]
    return out.rename(columns=names)[cols]


def patch_probe_score(pred: pd.DataFrame, targets=PATCH_TARGETS):
    """weights -> the mean over cell types of the fold-mean PCC of a patch probe's out-of-fold
    predictions (:func:`probe_patch_level`'s); with None, the table's patch-level ``pcc`` mean."""
    from .slide_draws import probe_score

    return probe_score(pred, targets)


def _aligned_patches(a: pd.DataFrame, b: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two sets' patch predictions on the patches both have, in one order."""
    key = ["slide_id", "row", "col"]
    both = a[key].merge(b[key], on=key)
    return (a.merge(both, on=key).sort_values(key, kind="stable").reset_index(drop=True),
            b.merge(both, on=key).sort_values(key, kind="stable").reset_index(drop=True))


def knn_agreement(x: np.ndarray, labels: np.ndarray, k: int = 10, max_n: int = 4000, seed: int = 0) -> pd.DataFrame:
    """Per class: the share of a point's ``k`` nearest neighbours (Euclidean, on standardised
    features, itself excluded) that share its label, beside the share expected by chance (the
    class's frequency).  At most ``max_n`` points (a fixed random subset) keep it O(n^2)-cheap."""
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(x))[:max_n]
    z = (x[idx] - x[idx].mean(0)) / (x[idx].std(0) + 1e-9)
    lab = np.asarray(labels)[idx]
    sq = (z ** 2).sum(1)
    d = sq[:, None] + sq[None, :] - 2 * z @ z.T
    np.fill_diagonal(d, np.inf)
    nn = np.argpartition(d, k, axis=1)[:, :k]
    same = (lab[nn] == lab[:, None]).mean(1)
    out = pd.DataFrame({"class": lab, "same": same}).groupby("class")["same"].agg(["mean", "size"])
    out["chance"] = out["size"] / out["size"].sum()
    return out.rename(columns={"mean": f"knn{k}_same_class", "size": "patches"}).reset_index()


#: our feature set -> its row in the paper's Table 5, with the trunk our row must have to be that setting
#: (the paper's ResNet50 is ImageNet-pretrained: our random one is a different setting)
PAPER_TABLE5_ROWS = {"resnet50": ("ResNet50 (pretrained)", "imagenet"),
                     "fe": ("Feature Extraction network (pretrained)", None)}
#: what each feature set's row is called in the table and its figure
TABLE5_LABELS = {"fe": "Feature Extraction network (f_i + mean R_i)",
                 "fe:global": "Feature Extraction network (f_i only)", "fe-untrained": "FE architecture, untrained",
                 "descriptor": "appearance descriptor (no network, 13 colour statistics)"}
TRUNK_NAMES = {"imagenet": "ImageNet-pretrained"}
TABLE5_LEVELS = {"slide": ("slide (stands in for TCGA)", "TCGA"), "patch": ("patch (stands in for STNet)", "STNet")}


def table5_summary(long: pd.DataFrame, resnet_trunk: str) -> pd.DataFrame:
    """Table 5 from :func:`table5`'s long table: per level and feature set the mean over targets of
    the probe's PCC (each the mean over folds) and of its SD over folds, with the paper's value only
    where ours is the paper's setting (``paper``; NaN otherwise) and ``paper setting`` saying which
    (a random ResNet50 is "not in the paper": the paper's is ImageNet-pretrained)."""
    from .paper import paper_value  # the paper's tables are read only where a table is summarised

    agg = (long.groupby(["level", "features"]).agg(pcc=("pcc", "mean"), pcc_fold_std=("pcc_fold_std", "mean"))
           .reset_index())
    paper, setting = [], []
    for lv, spec in zip(agg.level, agg.features):
        row, trunk = PAPER_TABLE5_ROWS.get(spec, (None, None))
        if row is None:
            paper.append(np.nan)
            setting.append("not in the paper")
        elif trunk is not None and trunk != resnet_trunk:
            paper.append(np.nan)
            setting.append(f"not in the paper (the paper's is {TRUNK_NAMES.get(trunk, trunk)}; ours is {resnet_trunk})")
        else:
            paper.append(paper_value(5, row, TABLE5_LEVELS[lv][1]))
            setting.append(f"{row}, {TABLE5_LEVELS[lv][1]}")
    agg["paper"], agg["paper setting"] = paper, setting
    labels = {**TABLE5_LABELS, "resnet50": f"ResNet50 ({resnet_trunk})"}
    agg["level"] = agg["level"].map(lambda lv: TABLE5_LEVELS[lv][0])
    agg["features"] = agg["features"].map(lambda s: labels.get(s, s))
    return agg.sort_values(["level", "pcc"], ascending=[False, False]).reset_index(drop=True)


def plot_table5(summary: pd.DataFrame, title: str = "Table 5 on ISG-Sim (SIMULATED): 2-layer MLP probe"):
    """One panel per level of :func:`~isg_core.experiments.table5.table5_summary`: the probe's PCC
    per feature set (bar: SD over folds) and the paper's value (red diamond) only where the setting
    is the paper's; the legend sits below the panels, never over a bar."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    levels = list(dict.fromkeys(summary.level))
    fig, axes = plt.subplots(1, len(levels), figsize=(6.8 * len(levels), 0.5 * summary.features.nunique() + 1.8),
                             squeeze=False)
    for ax, lv in zip(axes[0], levels):
        sub = summary[summary.level == lv]
        sns.barplot(sub, x="pcc", y="features", color="tab:blue", alpha=0.8, ax=ax, label="ours (ISG-Sim, SIMULATED)")
        ax.errorbar(sub.pcc, range(len(sub)), xerr=sub.pcc_fold_std, fmt="none", ecolor="black", lw=1)
        has = sub.paper.notna().to_numpy()
        if has.any():
            ax.scatter(sub.paper[has], np.flatnonzero(has), color="tab:red", marker="D", zorder=3,
                       label="paper (same setting)")
        ax.axvline(0, color="grey", lw=0.5)
        ax.set(title=lv, xlabel="average PCC (mean over folds; bar: SD over folds)", ylabel="")
        if ax.get_legend() is not None:
            ax.get_legend().remove()
    handles, labels = axes[0][0].get_legend_handles_labels()
    for ax in axes[0][1:]:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8, frameon=False,
               bbox_to_anchor=(0.5, -0.02))
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return fig
