"""Table 3 end to end: MSI status (MSI-H against MSS) from the slide, as an AUC.

The paper's clinical application: the Dual Attention network with a classification head (one
logit, binary cross-entropy) against HE2RNA's MSI path (its ``msi_prediction.py``: the mean of a
slide's tile features, then an MLP; :class:`~isg_core.models.baselines.HE2RNAMSI`).  MSIfromHE (Kather
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
(:func:`~isg_core.experiments.scoring.fold_auc` says why not the pooled one), with a within-fold
bootstrap 95% interval; the pooled and per-patient AUCs are shown beside it.  Paired differences
bootstrap the same resampled slides.  A reference row scores the simulator's own noiseless T-cell and proliferation
expression: what the simulated biology allows, the AUC analogue of the tables' noise ceiling.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from ..config import Profile
from ..metrics import roc_auc, roc_auc_rows
from .paper import paper_value
from .runner import MSIResult, run_grid, seeds_of
from .scoring import fold_auc, patient_level
from .specs import STAND_INS, Experiment, stand_in_label, table3_experiments
from .statistics import by_method, paired_auc_difference, seed_auc_bootstrap, verdict_sentence
from .tables import cohort_config, open_table_cohort
from .targets import msi_labels


def summarise_msi(results: list[MSIResult], n_boot: int = 2000) -> pd.DataFrame:
    """Table 3: one row per (sub-cohort, method): the AUC (mean over folds, :func:`fold_auc`; then
    the mean over training seeds) with a 95% interval that resamples slides within fold and class
    and draws seeds (:func:`seed_auc_bootstrap`), the SD over folds and over seeds; the AUC of the
    pooled out-of-fold predictions and per patient (first seed; both biased low when nothing is
    learnt, see :func:`fold_auc`); and the paper's number."""
    rows = []
    for (cohort, label), frames in by_method(results).items():
        exp = next(r.experiment for r in results if r.cohort == cohort and r.experiment.label == label)
        f = frames[0]
        aucs = [fold_auc(x) for x in frames]
        # a fold whose test slides hold one class has no AUC (NaN, tiny cohorts): it is skipped, and a
        # statistic with nothing left to average is NaN, set here rather than left to numpy's warnings
        seeds_folds = np.array([[roc_auc(g.label, g.prob) for _, g in x.groupby("fold")] for x in frames], float)
        scored = np.isfinite(seeds_folds).any(axis=0)
        per_fold = np.full(seeds_folds.shape[1], np.nan)
        per_fold[scored] = np.nanmean(seeds_folds[:, scored], axis=0)
        boot = seed_auc_bootstrap({"m": frames}, n_boot)["m"]
        boot = boot[np.isfinite(boot)]
        pat = patient_level(f)
        paper = exp.paper
        rows.append({"cohort": cohort, "sub-cohort": stand_in_label(cohort), "method": label,
                     "AUC": float(np.mean(aucs)),
                     "AUC 95% low": float(np.quantile(boot, 0.025)) if len(boot) else np.nan,
                     "AUC 95% high": float(np.quantile(boot, 0.975)) if len(boot) else np.nan,
                     "AUC sd (folds)": float(np.std(per_fold[scored], ddof=1)) if scored.sum() > 1 else np.nan,
                     "AUC sd (seeds)": float(np.std(aucs, ddof=1)) if len(frames) > 1 else np.nan,
                     "seeds": len(frames), "AUC pooled": roc_auc(f.label, f.prob),
                     "AUC patients (pooled)": roc_auc(pat.label, pat.prob), "slides": len(f),
                     "MSI-H": int(f.label.sum()),
                     "paper AUC": paper_value(3, paper, cohort, "MSI", "AUC") if paper else np.nan})
    for paper_cohort in dict.fromkeys(r.cohort for r in results):  # the paper's third method, as printed
        rows.append({"cohort": paper_cohort, "sub-cohort": stand_in_label(paper_cohort), "method": "MSIfromHE",
                     "paper AUC": paper_value(3, "MSIfromHE", paper_cohort, "MSI", "AUC")})
    return pd.DataFrame(rows)


def biology_reference(cohort, paper_cohort: str) -> MSIResult | None:
    """What the simulated biology allows (not an image model): the simulator's noiseless T-cell
    and proliferation expression (``truth.csv``: CD3D and MKI67, z-scored within the type) combined
    with the weights of ISG-Sim's MSI model (1.3 and 0.8), scored like a model.  None without the
    simulator's truth (real data)."""
    # imported here: the simulator's package loads scipy.ndimage (~0.25 s), which real cohorts and the
    # worker processes that import this package never need
    from ..simulate.genes import MSI_B_PROLIF, MSI_B_TIL

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
    prof, root, cohort, exps = open_table_cohort(profile, cohort_root, table3_experiments(), progress, device)
    present = set(cohort.manifest.cancer_type)
    cohorts = [c for c, ct in STAND_INS.items() if ct in present]
    work = [(e, c, s) for c in cohorts for e in exps for s in seeds_of(e, prof)]
    results = run_grid(work, cohort, root / "tiles", prof, root / "runs", "classification", device, progress,
                       prof.models.jobs)
    refs = [r for r in (biology_reference(cohort, c) for c in cohorts) if r is not None]
    summary = summarise_msi(results + refs)
    diffs = pd.concat([paired_auc_difference(results, "ISG", e.label) for e in exps if e.label != "ISG"],
                      ignore_index=True)
    config = {"profile": prof.name, "models": asdict(prof.models), "loss": "bce",
              "experiments": [e.to_dict() for e in exps], "stand_ins": {c: STAND_INS[c] for c in cohorts},
              **cohort_config(prof, cohort)}
    return Table3Run(results, summary, diffs, config, refs)


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
        lines.append(f"{d['sub-cohort']}: " + verdict_sentence(d.comparison, d["AUC difference"], d["95% CI low"],
                                                                d["95% CI high"], d.verdict,
                                                                f"{d.resampled}; seeds {d.seeds}"))
    return "\n".join(lines)


def chance_range(frame: pd.DataFrame, n: int = 2000, seed: int = 0) -> dict:
    """What a model that learnt nothing scores on this sub-cohort's folds: the 2.5% and 97.5%
    quantiles of :func:`fold_auc` when every slide's score is drawn at random (uniform, independent
    of its label), over ``n`` draws; with the MSI-H slides per fold, the smallest count that makes
    a fold's AUC swing.  A fold-mean AUC inside this range is indistinguishable from chance; with
    3-5 positives per fold the range reaches well below 0.5, which is why sub-chance AUCs occur
    without any label flip."""
    rng = np.random.default_rng(seed)
    f = frame[["fold", "label"]].reset_index(drop=True)
    scores = rng.random((n, len(f)))  # the stream of n successive rng.random(len(f)) draws
    # fold_auc of every draw: the mean over folds (in fold order) of each fold's AUC, NaN where no fold has one
    per = np.stack([roc_auc_rows(g.label.to_numpy(), scores[:, g.index]) for _, g in f.groupby("fold")], axis=1)
    draws = np.array([float(np.nanmean(row)) if np.isfinite(row).any() else np.nan for row in per])
    pos = f.groupby("fold").label.sum()
    return {"chance 2.5%": float(np.nanquantile(draws, 0.025)), "chance 97.5%": float(np.nanquantile(draws, 0.975)),
            "MSI-H per fold": " ".join(str(int(v)) for v in pos), "folds": int(len(pos))}


def chance_table(run: "Table3Run", n: int = 2000) -> pd.DataFrame:
    """Per sub-cohort: :func:`chance_range` on its folds, and the methods whose AUC lies below the
    chance range's lower end (what would point to a bug, such as a flipped label, rather than to
    few positives per fold)."""
    rows = []
    s = run.summary.dropna(subset=["AUC"])
    for cohort, g in s.groupby("cohort", sort=False):
        res = next((x for x in run.results if x.cohort == cohort), None)
        if res is None:
            continue
        ch = chance_range(res.frame, n)
        below = g[g["AUC"] < ch["chance 2.5%"]].method.tolist()
        rows.append({"sub-cohort": g["sub-cohort"].iloc[0], **ch,
                     "lowest AUC": float(g["AUC"].min()), "below the chance range": ", ".join(below) or "none"})
    return pd.DataFrame(rows, columns=["sub-cohort", "chance 2.5%", "chance 97.5%", "MSI-H per fold", "folds",
                                       "lowest AUC", "below the chance range"])
