"""Choosing how the extractors train, on the development cohort.

Eq. 2 sums L1, L_LPIPS and the adversarial L_C with weight 1 from the first step.  Whether that,
a smaller or later adversarial term, no LPIPS (its trunk is random offline) or a uniformly drawn
bank gives features that see cells is measured here, never assumed.  Each variant trains the
local extractor E_L (the one that sees cells: a 32 px local patch holds one or two nuclei) on
the development cohort's patches with one change to the profile's training config; then a ridge
probe reads the true cell counts (the simulator's ``maps/``) of held-out slides' local patches
from the E_L codes:

* ``local``: the code of one local patch -> its counts of lymphocytes, mitoses, tumour cells;
* ``patch``: the mean code over a global patch's (p/q)^2 local patches -> that patch's counts.

The probe is cross-validated by slide (the cohort's folds: no slide is in a fit and its test),
and PCC is computed over each fold's test units and averaged over folds.  Two references frame
the numbers: the same architecture untrained (what the training adds) and the pixels' appearance
descriptor (:func:`isg_core.features.bank.appearance_descriptor`, what no network is needed for).
A difference between two variants gets a bootstrap interval over slides.

``isg study extractor-choices --profile quick`` (:func:`run`) writes ``results/<profile>/extractor_choices*.{csv,md}``
and ``fig_extractor_choices.png``.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from ..config import Profile, get_profile
from ..data.manifest import read_manifest
from ..data.tiling import open_tiled_slide, read_global_patch, read_tiling_h5, split_local
from ..features.bank import appearance_descriptor, to_tensor
from ..features.oracle import COUNT_COLUMNS, oracle_slide_counts, read_patch_truth
from ..features.stylegan import Encoder
from ..features.train import ExtractorTrainConfig, history_frame, load_checkpoint, train_config_for, train_extractor
from ..metrics import pcc_or_zero
from ..models.linear_totals import ridge_fit_predict
from ..paths import cohort_tiles_dir
from ..report.outputs import save_figure, write_table

#: what a local patch's code should carry: the cells the T-cell, proliferation and tumour genes count
CELL_TARGETS = ("n_lymphocyte", "n_mitosis", "n_tumour")
#: the ridge penalty on standardised codes (fixed, not tuned: 64-128 inputs, thousands of units)
PROBE_ALPHA = 10.0


@dataclass(frozen=True)
class Variant:
    """One way to train E_L: a name and the :class:`ExtractorTrainConfig` fields it changes from
    the profile's (``adv_start`` may be a fraction of the steps, e.g. 2/3; ``model.<field>``
    changes the network's :class:`~isg_core.features.stylegan.AutoencoderConfig`)."""

    name: str
    changes: tuple[tuple[str, object], ...] = ()

    def config(self, features) -> ExtractorTrainConfig:
        ch = {**STUDY_BASE, **dict(self.changes)}
        base = train_config_for("local", features, **{k: v for k, v in ch.items() if k == "steps"})
        if isinstance(ch.get("adv_start"), float):
            ch["adv_start"] = int(ch["adv_start"] * base.steps)
        ch.pop("steps", None)
        model = {k.split(".", 1)[1]: ch.pop(k) for k in list(ch) if k.startswith("model.")}
        return replace(base, model=replace(base.model, **model), **ch)

    @property
    def slug(self) -> str:
        return re.sub(r"[^a-z0-9]+", "-", self.name.lower()).strip("-")


#: what every variant starts from besides the profile's config: the earlier default E_L (512 / r
#: channels at quick; C, where a variant keeps its weight, from 2/3 of the steps), so that the
#: study means the same after the defaults it chose
STUDY_BASE: dict = {"model.channel_base": 512, "adv_start": 2 / 3}

#: the variants of the study; "Eq. 2" is the objective as printed
VARIANTS: tuple[Variant, ...] = (
    Variant("Eq. 2 (adversarial weight 1 from step 0)", (("lambda_adv", 1.0), ("adv_start", 0))),
    Variant("adversarial weight 0.1 from step 0", (("lambda_adv", 0.1), ("adv_start", 0))),
    Variant("adversarial weight 0.05 from 2/3 of the steps", (("lambda_adv", 0.05), ("adv_start", 2 / 3))),
    Variant("no adversarial term", (("lambda_adv", 0.0),)),
    Variant("Eq. 2 without LPIPS", (("lambda_adv", 1.0), ("adv_start", 0), ("lambda_lpips", 0.0))),
    Variant("Eq. 2, uniform bank", (("lambda_adv", 1.0), ("adv_start", 0), ("bank_sampling", "uniform"))),
    Variant("Eq. 2, 3x the steps", (("lambda_adv", 1.0), ("adv_start", 0), ("steps", 3000))),
    # a cheaper E_L (a quarter of the FLOPs): what extraction of WSI-sized cohorts at quick would need
    Variant("Eq. 2, half the channels", (("lambda_adv", 1.0), ("adv_start", 0), ("model.channel_base", 256))),
    # a second training seed of two variants: how far one training run moves the probe on its own
    Variant("Eq. 2, training seed 1", (("lambda_adv", 1.0), ("adv_start", 0), ("seed", 1))),
    Variant("no adversarial term, training seed 1", (("lambda_adv", 0.0), ("seed", 1))),
)


@dataclass
class ProbeUnits:
    """Local patches of held-out kept global patches and their true counts."""

    patches: np.ndarray  # (n_global, g, g, q, q, 3) uint8
    counts: np.ndarray  # (n_global, g, g, N_COUNTS) int64
    slide: np.ndarray  # (n_global,) slide id of each global patch
    fold: np.ndarray  # (n_global,) the slide's fold


def probe_units(cohort_root: "str | os.PathLike", slides_per_type: int = 20, patches_per_slide: int = 8,
                seed: int = 0, progress: bool = True, tiles: "str | os.PathLike | None" = None) -> ProbeUnits:
    """Read ``patches_per_slide`` kept (Shannon) global patches of ``slides_per_type`` slides of each
    cancer type, with their local patches and the simulator's counts per local patch (``tiles``: the
    tiles folder, ``<cohort>/tiles`` by default; its tiling sets q)."""
    root = Path(cohort_root)
    man = read_manifest(root / "manifest.csv")
    rng = np.random.default_rng(seed)
    picked = pd.concat([g.sample(min(slides_per_type, len(g)), random_state=seed)
                        for _, g in man.groupby("cancer_type")])
    truth = read_patch_truth(root)
    out = {"patches": [], "counts": [], "slide": [], "fold": []}
    for row in tqdm(picked.itertuples(), total=len(picked), desc="probe patches", unit="slide", disable=not progress):
        h5 = cohort_tiles_dir(root, tiles) / f"{row.slide_id}.h5"
        tiling = read_tiling_h5(h5)
        with h5py.File(h5, "r") as f:
            kept = np.flatnonzero(f["selection/shannon/keep"][:])
        if not len(kept):
            continue
        rows = np.sort(rng.choice(kept, size=min(patches_per_slide, len(kept)), replace=False))
        _, C, _ = oracle_slide_counts(root, row.slide_id, tiling, patches=truth)
        q = tiling.config.local_size
        with open_tiled_slide(row.path, tiling, h5) as slide:
            for i in rows:
                out["patches"].append(split_local(read_global_patch(slide, tiling, int(i)), q))
                out["counts"].append(C[i])
                out["slide"].append(row.slide_id)
                out["fold"].append(int(row.fold))
    return ProbeUnits(np.stack(out["patches"]), np.stack(out["counts"]), np.array(out["slide"]),
                      np.array(out["fold"]))


@torch.no_grad()
def local_codes(encoder: torch.nn.Module, units: ProbeUnits, resolution: int, batch: int = 512) -> np.ndarray:
    """E_L's code of every local patch: (n_global, g, g, d)."""
    n, g = units.patches.shape[:2]
    flat = units.patches.reshape(-1, *units.patches.shape[3:])
    codes = [encoder(to_tensor(flat[k:k + batch], resolution)).float().numpy() for k in range(0, len(flat), batch)]
    return np.concatenate(codes).reshape(n, g, g, -1)


def descriptor_codes(units: ProbeUnits) -> np.ndarray:
    """The appearance descriptor of every local patch (the no-network reference): (n, g, g, 13)."""
    n, g = units.patches.shape[:2]
    return appearance_descriptor(units.patches.reshape(-1, *units.patches.shape[3:])).reshape(n, g, g, -1)


def probe_levels(codes: np.ndarray, units: ProbeUnits) -> dict[str, tuple[np.ndarray, ...]]:
    """The probe's units at both levels: {level: (X, Y, slide, fold)}, Y the counts of
    :data:`CELL_TARGETS`.  ``local``: one row per local patch; ``patch``: one per global patch, the
    mean of its local patches' codes against the sum of their counts."""
    idx = [COUNT_COLUMNS.index(t) for t in CELL_TARGETS]
    g = codes.shape[1]
    return {
        "local": (codes.reshape(-1, codes.shape[-1]), units.counts.reshape(-1, units.counts.shape[-1])[:, idx],
                  np.repeat(units.slide, g * g), np.repeat(units.fold, g * g)),
        "patch": (codes.mean(axis=(1, 2)), units.counts.sum(axis=(1, 2))[:, idx], units.slide, units.fold),
    }


def probe_predictions(codes: np.ndarray, units: ProbeUnits, alpha: float = PROBE_ALPHA) -> dict[str, pd.DataFrame]:
    """Out-of-fold ridge predictions of :data:`CELL_TARGETS` at both levels: {level: DataFrame with
    ``slide``, ``fold`` and, per target, ``<target>`` (truth) and ``<target>:pred``}."""
    out = {}
    for level, (X, Y, slide, fold) in probe_levels(codes, units).items():
        df = pd.DataFrame({"slide": slide, "fold": fold})
        for j, t in enumerate(CELL_TARGETS):
            pred = np.full(len(Y), np.nan)
            for k in np.unique(fold):
                te = fold == k
                pred[te] = ridge_fit_predict(X[~te].astype(np.float64), Y[~te, j].astype(np.float64),
                                             X[te].astype(np.float64), alpha)
            df[t], df[f"{t}:pred"] = Y[:, j], pred
        out[level] = df
    return out


def fold_mean_pcc(df: pd.DataFrame, target: str) -> float:
    """PCC over each fold's test units, mean over folds (a constant prediction scores 0)."""
    return float(np.mean([pcc_or_zero(g[target].to_numpy(), g[f"{target}:pred"].to_numpy())
                          for _, g in df.groupby("fold")]))


def score_rows(name: str, preds: dict[str, pd.DataFrame]) -> list[dict]:
    return [{"variant": name, "level": level, "target": t, "pcc": fold_mean_pcc(df, t)}
            for level, df in preds.items() for t in CELL_TARGETS]


def slide_bootstrap_difference(a: pd.DataFrame, b: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> dict:
    """Mean over :data:`CELL_TARGETS` of the fold-mean PCC, ``a`` minus ``b`` (the same units),
    with a 95% interval from resampling slides within each fold."""
    rng = np.random.default_rng(seed)
    by_slide = {s: np.flatnonzero(a.slide.to_numpy() == s) for s in a.slide.unique()}
    folds = a.groupby("fold").slide.unique()

    def score(df: pd.DataFrame, rows: np.ndarray) -> float:
        sub = df.iloc[rows]
        return float(np.mean([fold_mean_pcc(sub, t) for t in CELL_TARGETS]))

    every = np.arange(len(a))
    diff = score(a, every) - score(b, every)
    boots = []
    for _ in range(n_boot):
        rows = np.concatenate([by_slide[s] for f in folds.index for s in rng.choice(folds[f], len(folds[f]))])
        boots.append(score(a, rows) - score(b, rows))
    lo, hi = np.percentile(boots, [2.5, 97.5])
    return {"diff": diff, "ci_low": float(lo), "ci_high": float(hi)}


def convergence(history: pd.DataFrame, column: str = "l1", window: float = 0.1) -> float:
    """Relative change of ``column`` between the last ``window`` of the steps and the window
    before it: (mean_last - mean_before) / mean_before (about 0 when the curve is flat)."""
    n = len(history)
    w = max(1, int(window * n))
    last, before = history[column].iloc[n - w:].mean(), history[column].iloc[n - 2 * w:n - w].mean()
    return float((last - before) / before)


def train_variant(variant: Variant, prof: Profile, cohort_root: Path, device: str | None = None,
                  progress: bool = True) -> Path:
    """Train (or find) E_L with the variant's config; returns its checkpoint."""
    out = cohort_root / "extractors" / "choices" / variant.slug / "local"
    return train_extractor(cohort_root, variant.config(prof.features), out, resume=True, progress=progress,
                           device=device)


def load_encoder(ck: dict, untrained: bool = False) -> tuple[Encoder, int]:
    """E_L from a loaded checkpoint (or its architecture with the seed's random weights) and its
    input resolution."""
    cfg = ExtractorTrainConfig.from_dict(ck["config"])
    torch.manual_seed(cfg.seed)
    enc = Encoder(cfg.model).eval()
    if not untrained:
        enc.load_state_dict(ck["encoder"])
    return enc, cfg.model.resolution


def extractor_choice_study(profile: "str | Profile | None" = None, variants=VARIANTS,
                           cohort_root: "str | os.PathLike | None" = None, device: str | None = None,
                           progress: bool = True, n_boot: int = 1000) -> dict[str, pd.DataFrame]:
    """Train every variant on the development cohort and probe it.  Returns ``scores`` (variant x
    level x target PCC, with the references), ``summary`` (per variant: mean PCC per level, the
    L1 curve's last-window change, LPIPS trunk, steps) and ``differences`` (each variant against
    the best one, local level, slide-bootstrap interval)."""
    from ..cohorts.folder import ensure_cohort
    from ..features.workflow import ensure_prepared

    prof = profile if isinstance(profile, Profile) else get_profile(profile)
    root = Path(cohort_root) if cohort_root else ensure_cohort(prof.name, role="development")
    ensure_prepared(root, prof, progress=progress)
    units = probe_units(root, progress=progress)
    rows, summary, preds = [], [], {}
    ref = probe_predictions(descriptor_codes(units), units)
    rows += score_rows("reference: appearance descriptor (no network)", ref)
    for v in variants:
        ck = load_checkpoint(train_variant(v, prof, root, device, progress))
        enc, res = load_encoder(ck)
        hist = history_frame(ck["history"])
        preds[v.name] = probe_predictions(local_codes(enc, units, res), units)
        rows += score_rows(v.name, preds[v.name])
        summary.append({"variant": v.name, "steps": int(ck["step"]), "lpips trunk": ck["lpips_trunk"],
                        "L1 change, last 10% of steps": convergence(hist),
                        "final L1": float(hist["l1"].iloc[-max(1, len(hist) // 10):].mean())})
        if v is variants[0]:
            untrained, res = load_encoder(ck, untrained=True)
            rows += score_rows("reference: E_L untrained", probe_predictions(local_codes(untrained, units, res), units))
    scores = pd.DataFrame(rows)
    mean = scores.groupby(["variant", "level"]).pcc.mean().unstack("level")
    summary = pd.DataFrame(summary).set_index("variant")
    summary["local PCC (mean of targets)"] = mean["local"]
    summary["patch PCC (mean of targets)"] = mean["patch"]
    best = summary["local PCC (mean of targets)"].idxmax()
    diffs = [{"comparison": f"{best} - {name}", **slide_bootstrap_difference(preds[best]["local"], p["local"], n_boot)}
             for name, p in preds.items() if name != best]
    return {"scores": scores, "summary": summary.reset_index(), "differences": pd.DataFrame(diffs), "best": best,
            "units": {"global patches": len(units.slide), "slides": len(np.unique(units.slide))}}


def run(args, command: str) -> None:
    """``isg study extractor-choices``: E_L trained once per variant (``--only``: those indices of
    :data:`VARIANTS`), probed; ``results/<profile>/extractor_choices*.{csv,md}`` and a figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    torch.set_num_threads(2)
    prof = get_profile(args.profile)
    variants = tuple(VARIANTS[k] for k in args.only) if args.only else VARIANTS
    out = extractor_choice_study(prof, variants, device=args.device)
    config = {"profile": prof.name, "cohort": "development", "dev_seed": prof.sim.dev_seed,
              "study base": STUDY_BASE, "variants": {v.name: dict(v.changes) for v in variants},
              "probe units": out["units"],
              "local_steps": prof.features.local_steps, "bank_size": prof.features.bank_size}
    note = ("ISG-Sim is SIMULATED; development cohort (seed %d), never the reported one. Each variant trains the "
            "local extractor E_L with one change; a ridge probe (cross-validated by slide, 5 folds) reads the true "
            "cell counts of held-out slides' local patches (level 'local') and of global patches from the mean "
            "code of their local patches (level 'patch'). PCC per fold, mean over folds. LPIPS trunk: random "
            "(offline)." % prof.sim.dev_seed)
    write_table(out["summary"], "extractor_choices", prof.name, command, config,
                title="How E_L trains: variants of Eq. 2 on the development cohort (ISG-Sim, SIMULATED)", note=note)
    write_table(out["scores"], "extractor_choices_scores", prof.name, command, config,
                title="How E_L trains: probe PCC per cell type (ISG-Sim, SIMULATED)", note=note)
    write_table(out["differences"], "extractor_choices_differences", prof.name, command, config,
                title=f"How E_L trains: the best variant ({out['best']}) against the others, local level "
                      "(ISG-Sim, SIMULATED)",
                note=note + " Interval: 95%, slides resampled within each fold (1000 draws).")
    s = out["scores"]
    fig, ax = plt.subplots(figsize=(9, 0.45 * s.variant.nunique() + 1.5))
    sns.barplot(data=s[s.level == "local"], y="variant", x="pcc", hue="target", ax=ax)
    ax.set_xlabel("probe PCC, true cell count of a 16 µm local patch (mean over 5 folds)")
    ax.set_ylabel("")
    ax.set_title("E_L training variants on the development cohort (ISG-Sim, SIMULATED)")
    ax.legend(title="cell type", bbox_to_anchor=(1.01, 1), loc="upper left")
    save_figure(fig, "fig_extractor_choices", prof.name)
    print(out["summary"].to_string())
    print(out["differences"].to_string())
