"""Table 3: MSI status (MSI-H against MSS) from the slide, as an AUC.

The paper's clinical application: the Dual Attention network with a classification head (one
logit, binary cross-entropy) against HE2RNA's MSI path (its ``msi_prediction.py``: the mean of a
slide's tile features, then an MLP; :class:`~isg_core.baselines.HE2RNAMSI`).  MSIfromHE (Kather
et al. 2019) is shown only as the paper's number.

The paper uses three TCGA cohorts: CRC-DX (colorectal, FFPE diagnostic slides), CRC-KR
(colorectal, frozen sections) and STAD (stomach).  None can be downloaded here, so three
**stand-ins** are cut from ISG-Sim by cancer type (:data:`STAND_INS`).  The mapping is nominal:
the stand-ins differ from each other in tissue architecture as the real cohorts differ in
organ and preparation, not in any way that mimics frozen sections or gastric tissue.  Every
label they carry says "stand-in".  ISG-Sim's MSI label is a patient property drawn from the
patient's tumour-infiltrating lymphocytes and proliferation (``isg_core.simulate.genes.msi_label``),
15-20% positive, with label noise, so it is learnable from the image but not perfectly.

Protocol: the manifest's patient-level folds (5-fold CV), an inner patient split for early
stopping, out-of-fold probabilities.  The AUC is the mean over folds of the AUC within each fold
(:func:`fold_auc` says why not the pooled one), with a within-fold bootstrap 95% interval; the
pooled and per-patient AUCs are shown beside it.  Paired differences bootstrap the same resampled
slides.  A reference row scores the simulator's own noiseless T-cell and proliferation
expression: what the simulated biology allows, the AUC analogue of the tables' noise ceiling.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from .config import Profile
from .errors import IsgError
from .experiments import Experiment, in_processes, isg, isg_full, load_experiment_data, model_factory, train_config
from .metrics import roc_auc, roc_curve
from .tiling import check_tiles_current

#: paper cohort -> the ISG-Sim cancer type that stands in for it
STAND_INS: dict[str, str] = {"TCGA-CRC-DX": "COAD", "TCGA-CRC-KR": "PRAD", "TCGA-STAD": "LIHC"}
TITLE = "Table 3: MSI-H against MSS (AUC)"


def stand_in_label(paper_cohort: str) -> str:
    """How a sub-cohort is named wherever its numbers appear."""
    return f"ISG-Sim {STAND_INS[paper_cohort]} (simulated stand-in for {paper_cohort})"


def table3_experiments() -> list[Experiment]:
    """ISG (Table 1's, full width) and its narrow variant with a one-logit head; HE2RNA's MSI path
    as published (ResNet50 tile features, Otsu tissue tiles) and on our features."""
    return [
        isg_full(),
        isg("ISG (narrow, as in Tables 2/4/6)", paper=None),
        Experiment("HE2RNA", "he2rna-msi", features="resnet50", selection="otsu", paper="HE2RNA"),
        Experiment("HE2RNA on our features + Shannon", "he2rna-msi", selection="shannon"),
    ]


def msi_labels(cohort, cancer_type: str) -> pd.DataFrame:
    """Slides of one cancer type x ["MSI"] (1 = MSI-H, 0 = MSS) from the cohort's ``labels.csv``."""
    if cohort.labels is None or "msi" not in cohort.labels:
        raise IsgError(cohort.root / "labels.csv", "no MSI labels (a 'slide_id,msi' table) in this cohort")
    m = cohort.manifest
    ids = list(m.loc[m.cancer_type == cancer_type, "slide_id"])
    if not ids:
        raise IsgError(cohort.root / "manifest.csv", f"no {cancer_type} slides for the MSI sub-cohort")
    lab = cohort.labels.set_index("slide_id")["msi"].reindex(ids)
    if lab.isna().any():
        raise IsgError(cohort.root / "labels.csv", f"{int(lab.isna().sum())} {cancer_type} slides have no MSI label")
    if not set(np.unique(lab)) <= {0, 1}:
        raise IsgError(cohort.root / "labels.csv", "MSI labels must be 0 (MSS) or 1 (MSI-H)")
    return pd.DataFrame({"MSI": lab.astype(float)})


@dataclass
class MSIResult:
    """Out-of-fold MSI-H probabilities of one experiment on one sub-cohort."""

    experiment: Experiment
    cohort: str  # the paper's cohort this sub-cohort stands in for
    frame: pd.DataFrame  # per slide: label, prob, fold, patient_id
    run_dir: Path | None = None


def run_msi(cohort, tiles_dir: "str | os.PathLike", exp: Experiment, paper_cohort: str, profile: Profile,
            out_dir: "str | os.PathLike", device: str | None = None, progress: bool = True) -> MSIResult:
    """Cross-validate ``exp`` with a one-logit head and binary cross-entropy on one stand-in."""
    from .training import cross_validate

    ct = STAND_INS[paper_cohort]
    Y = msi_labels(cohort, ct)
    ids = list(Y.index)
    check_tiles_current(tiles_dir, cohort.manifest)
    data = load_experiment_data(tiles_dir, ids, exp, profile.tiling.global_size ** 2)
    width = profile.models.width if exp.model == "isg" else None
    factory, model_cfg = model_factory(exp, data.f[0].shape[1], data.R[0].shape[1], width)
    m = cohort.manifest.set_index("slide_id")
    cfg = replace(train_config(profile, exp), loss="bce")
    res = cross_validate(factory, data, Y, m["fold"], m["patient_id"], cfg, Path(out_dir) / f"msi-{ct}",
                         model_cfg={"experiment": exp.run_spec(), **model_cfg}, device=device, progress=progress,
                         name=exp.model)
    frame = pd.DataFrame({"label": Y["MSI"].astype(int), "prob": res.predictions["MSI"], "fold": res.folds,
                          "patient_id": m.loc[ids, "patient_id"]})
    return MSIResult(exp, paper_cohort, frame, res.run_dir)


def _msi_job(args) -> MSIResult:
    import torch

    torch.set_num_threads(1)
    exp, cohort, tiles_dir, paper_cohort, profile, out_dir, device = args
    return run_msi(cohort, tiles_dir, exp, paper_cohort, profile, out_dir, device, progress=False)


# --- metrics ---------------------------------------------------------------------------------------
def patient_level(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per patient: the label and the mean probability of the patient's slides."""
    return frame.groupby("patient_id").agg(label=("label", "first"), prob=("prob", "mean"))


def fold_auc(frame: pd.DataFrame, col: str = "prob") -> float:
    """Mean over folds of the AUC within each fold's test slides (folds with one class skipped).

    The primary metric: pooling out-of-fold scores across folds mixes models trained on different
    slides, and with few positives the pooled AUC is biased *below* 0.5 for a model that learnt
    nothing (a fold with more positives in its test set had fewer in its training set, so its model
    predicts a lower base rate: Parker et al., BMC Bioinformatics 2007).  Within a fold one model
    ranks its own test slides."""
    vals = [roc_auc(g.label, g[col]) for _, g in frame.groupby("fold")]
    return float(np.nanmean(vals)) if np.isfinite(vals).any() else float("nan")


def bootstrap_fold_auc(frame: pd.DataFrame, cols: Sequence[str], n_boot: int = 2000, seed: int = 0) -> dict:
    """:func:`fold_auc` of each score column on the same ``n_boot`` resamples: within every fold,
    its positives and its negatives are resampled separately (so each keeps both classes)."""
    rng = np.random.default_rng(seed)
    groups = []
    for _, g in frame.groupby("fold"):
        y = g.label.to_numpy(int)
        groups.append((y, np.flatnonzero(y == 1), np.flatnonzero(y == 0), {c: g[c].to_numpy(float) for c in cols}))
    out = {c: np.full(n_boot, np.nan) for c in cols}
    for b in range(n_boot):
        per = {c: [] for c in cols}
        for y, pos, neg, sc in groups:
            if len(pos) == 0 or len(neg) == 0:
                continue
            idx = np.r_[rng.choice(pos, len(pos)), rng.choice(neg, len(neg))]
            for c in cols:
                per[c].append(roc_auc(y[idx], sc[c][idx]))
        for c in cols:
            if per[c]:
                out[c][b] = np.mean(per[c])
    return out


def summarise_msi(results: list[MSIResult], n_boot: int = 2000) -> pd.DataFrame:
    """Table 3: one row per (sub-cohort, method): the AUC (mean over folds, :func:`fold_auc`) with
    a within-fold bootstrap 95% interval and the SD over folds; the AUC of the pooled out-of-fold
    predictions and per patient (both biased low when nothing is learnt, see :func:`fold_auc`);
    and the paper's number."""
    from .paper import paper_value

    rows = []
    for r in results:
        f = r.frame
        folds = [roc_auc(g.label, g.prob) for _, g in f.groupby("fold")]
        boot = bootstrap_fold_auc(f, ["prob"], n_boot)["prob"]
        pat = patient_level(f)
        paper = r.experiment.paper
        rows.append({"cohort": r.cohort, "sub-cohort": stand_in_label(r.cohort), "method": r.experiment.label,
                     "AUC": fold_auc(f), "AUC 95% low": float(np.nanquantile(boot, 0.025)),
                     "AUC 95% high": float(np.nanquantile(boot, 0.975)), "AUC fold sd": float(np.nanstd(folds, ddof=1)),
                     "AUC pooled": roc_auc(f.label, f.prob), "AUC patients (pooled)": roc_auc(pat.label, pat.prob),
                     "slides": len(f), "MSI-H": int(f.label.sum()),
                     "paper AUC": paper_value(3, paper, r.cohort, "MSI", "AUC") if paper else np.nan})
    for paper_cohort in dict.fromkeys(r.cohort for r in results):  # the paper's third method, as printed
        rows.append({"cohort": paper_cohort, "sub-cohort": stand_in_label(paper_cohort), "method": "MSIfromHE",
                     "paper AUC": paper_value(3, "MSIfromHE", paper_cohort, "MSI", "AUC")})
    return pd.DataFrame(rows)


def paired_auc_difference(results: list[MSIResult], a: str, b: str, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """AUC(a) - AUC(b) (means over folds) per sub-cohort on the same slides, with a paired
    within-fold bootstrap 95% interval."""
    rows = []
    by = {(r.cohort, r.experiment.label): r.frame for r in results}
    for cohort in dict.fromkeys(r.cohort for r in results):
        if (cohort, a) not in by or (cohort, b) not in by:
            continue
        fa = by[(cohort, a)]
        both = fa.assign(prob_b=by[(cohort, b)].prob.loc[fa.index])
        boot = bootstrap_fold_auc(both, ["prob", "prob_b"], n_boot, seed)
        d = boot["prob"] - boot["prob_b"]
        ok = np.isfinite(d)
        lo, hi = (float(np.quantile(d[ok], 0.025)), float(np.quantile(d[ok], 0.975))) if ok.any() else (np.nan, np.nan)
        rows.append({"sub-cohort": stand_in_label(cohort), "comparison": f"{a} - {b}",
                     "AUC difference": fold_auc(both) - fold_auc(both, "prob_b"), "95% CI low": lo, "95% CI high": hi,
                     "verdict": "undefined" if not np.isfinite([lo, hi]).all() else
                     "a higher" if lo > 0 else ("a lower" if hi < 0 else "not distinguishable")})
    return pd.DataFrame(rows)


def biology_reference(cohort, paper_cohort: str) -> MSIResult | None:
    """What the simulated biology allows (not an image model): the simulator's noiseless T-cell
    and proliferation expression (``truth.csv``: CD3D and MKI67, z-scored within the type) combined
    with the weights of ISG-Sim's MSI model (1.3 and 0.8), scored like a model.  None without the
    simulator's truth (real data)."""
    from .simulate.genes import MSI_B_PROLIF, MSI_B_TIL

    if getattr(cohort, "truth", None) is None:
        return None
    ct = STAND_INS[paper_cohort]
    y = msi_labels(cohort, ct)
    ids = list(y.index)
    z = cohort.truth.loc[ids, ["CD3D", "MKI67"]]
    z = (z - z.mean()) / z.std()
    m = cohort.manifest.set_index("slide_id")
    frame = pd.DataFrame({"label": y["MSI"].astype(int), "prob": MSI_B_TIL * z["CD3D"] + MSI_B_PROLIF * z["MKI67"],
                          "fold": m.loc[ids, "fold"], "patient_id": m.loc[ids, "patient_id"]})
    return MSIResult(Experiment("reference: simulator's T-cell + proliferation truth (not an image model)",
                                model="reference", paper=None), paper_cohort, frame)


# --- the table end to end ---------------------------------------------------------------------------
@dataclass
class Table3Run:
    results: list[MSIResult]
    summary: pd.DataFrame
    differences: pd.DataFrame
    config: dict
    references: list[MSIResult] = field(default_factory=list)


def reproduce_table3(profile: "str | Profile | None" = None, cohort_root: "str | os.PathLike | None" = None,
                     device: str | None = None, progress: bool = True) -> Table3Run:
    """Run (or find) every experiment of Table 3 on every stand-in and summarise; finished folds
    in ``<cohort>/runs/msi-<type>/`` are reused."""
    from .cohort import ensure_cohort, load_cohort
    from .config import get_profile
    from .features.workflow import ensure_features

    prof = profile if isinstance(profile, Profile) else get_profile(profile)
    root = Path(cohort_root) if cohort_root else ensure_cohort(prof.name)
    cohort = load_cohort(root)
    exps = table3_experiments()
    ensure_features(tuple(dict.fromkeys(e.features for e in exps)), prof, root, progress=progress, device=device)
    present = set(cohort.manifest.cancer_type)
    cohorts = [c for c, ct in STAND_INS.items() if ct in present]
    work = [(e, cohort, root / "tiles", c, prof, root / "runs", device) for c in cohorts for e in exps]
    if prof.models.jobs > 1 and len(work) > 1:
        results = in_processes(_msi_job, work, prof.models.jobs, progress)
    else:
        results = [run_msi(cohort, root / "tiles", e, c, prof, root / "runs", device, progress)
                   for e, _, _, c, *_ in work]
    refs = [r for r in (biology_reference(cohort, c) for c in cohorts) if r is not None]
    summary = summarise_msi(results + refs)
    diffs = pd.concat([paired_auc_difference(results, "ISG", b)
                       for b in ("HE2RNA", "HE2RNA on our features + Shannon")],
                      ignore_index=True)
    config = {"profile": prof.name, "models": asdict(prof.models), "loss": "bce",
              "experiments": [e.to_dict() for e in exps], "stand_ins": {c: STAND_INS[c] for c in cohorts},
              "cohort": cohort.label}
    return Table3Run(results, summary, diffs, config, refs)


def plot_roc(run: Table3Run, axes=None):
    """One panel per stand-in: the ROC curve of each method's out-of-fold probabilities pooled over
    the folds (the legend gives the AUC of Table 3, the mean over folds), the biology reference
    (dashed) and the chance diagonal."""
    import matplotlib.pyplot as plt

    cohorts = list(dict.fromkeys(r.cohort for r in run.results))
    if axes is None:
        _, axes = plt.subplots(1, len(cohorts), figsize=(4.2 * len(cohorts), 4.2), squeeze=False)
        axes = axes[0]
    for ax, c in zip(axes, cohorts):
        for r in (r for r in run.results + run.references if r.cohort == c):
            fpr, tpr, _ = roc_curve(r.frame.label, r.frame.prob)
            ref = r.experiment.model == "reference"
            ax.plot(fpr, tpr, lw=1 if ref else 1.5, ls="--" if ref else "-", color="grey" if ref else None,
                    label=f"{'biology reference' if ref else r.experiment.label}: {fold_auc(r.frame):.2f}")
        ax.plot([0, 1], [0, 1], color="grey", ls=":", lw=1)
        ax.set(xlabel="false positive rate", ylabel="true positive rate", aspect="equal",
               title=f"{STAND_INS[c]} (simulated stand-in\nfor {c})")
        ax.legend(loc="lower right", fontsize=7, title="AUC (mean over folds)", title_fontsize=7)
    return axes


def describe_msi(run: Table3Run) -> str:
    """What the run found, in words (every number from ``run``)."""
    s = run.summary.dropna(subset=["AUC"])
    lines = []
    for c, g in s.groupby("cohort", sort=False):
        order = g.sort_values("AUC", ascending=False)
        lines.append(f"{stand_in_label(c)}: " + " > ".join(
            f"{m} {a:.3f} ({lo:.2f}-{hi:.2f})" for m, a, lo, hi in
            zip(order.method, order.AUC, order["AUC 95% low"], order["AUC 95% high"])) + ".")
    for _, d in run.differences.iterrows():
        verdict = {"a higher": "ISG is higher", "a lower": "ISG is lower",
                   "not distinguishable": "not distinguishable",
                   "undefined": "undefined (a sub-cohort with one class only)"}[d.verdict]
        lines.append(f"{d['sub-cohort']}: {d.comparison} {d['AUC difference']:+.3f} "
                     f"(95% CI {d['95% CI low']:+.3f} to {d['95% CI high']:+.3f}): {verdict}.")
    return "\n".join(lines)
