"""What the chosen extractor's features hold, on the development cohort: Table 5's probe there.

The extractor objective is chosen on the development cohort (``isg study extractor-objectives``)
by what its codes hold at the local and patch level.  This study asks the question Table 5 asks,
at the level the slide models read (one vector per slide), before any held-out table is run: do
the Feature Extraction network's features (trained with the profile's objective, Eq. 2 as printed
unless the README's design table says otherwise) predict the slide's genes better than a random
ResNet50's and the 13 colour statistics (no network)?

It is Table 5's own code (:func:`~isg_core.experiments.table5.table5`: the 2-layer MLP probe,
5 folds by patient, one probe per cancer type) on the development cohort's slides, the
comparisons Holm-adjusted as one family (:func:`~isg_core.experiments.table5.table5_differences`
with ``adjust=True``).  One extractor training and seeded probes: the intervals resample slides,
not trainings.

``isg study feature-probe --profile quick`` (:func:`run`) writes
``results/<profile>/feature_probe*.{csv,md}`` and ``fig_feature_probe.png``.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

from ..config import Profile, get_profile
from ..report.outputs import save_figure, write_table

#: the feature sets probed (Table 5's), FE first
SPECS = ("fe", "resnet50", "descriptor", "fe-untrained")
#: FE against each of the others: the study's family of comparisons
PAIRS = (("fe", "resnet50"), ("fe", "descriptor"), ("fe", "fe-untrained"))


def feature_probe_study(profile: "str | Profile | None" = None, cohort_root: "str | os.PathLike | None" = None,
                        device: str | None = None, progress: bool = True, n_boot: int = 2000) -> dict:
    """Extract (or find) :data:`SPECS` on the development cohort and probe them as Table 5 does;
    returns ``summary`` (Table 5's summary rows), ``differences`` (:data:`PAIRS`, Holm-adjusted) and
    ``config`` (with the cohort's fingerprint and the extractor's source)."""
    from ..cohorts.folder import ensure_cohort, load_cohort
    from ..experiments.table5 import table5, table5_differences, table5_probe_config, table5_summary
    from ..experiments.tables import cohort_config
    from ..features.extract import read_features
    from ..features.workflow import ensure_features

    prof = profile if isinstance(profile, Profile) else get_profile(profile)
    root = Path(cohort_root) if cohort_root else ensure_cohort(prof.name, role="development")
    ensure_features(SPECS, prof, root, progress=progress, device=device)
    cohort = load_cohort(root)
    tiles = root / "tiles"
    h5 = tiles / f"{cohort.manifest.slide_id.iloc[0]}.h5"
    trunk = json.loads(read_features(h5, "resnet50", local=False).attrs["source"])["encoder"]["trunk"]
    fe_source = json.loads(read_features(h5, "fe", local=False).attrs["source"])["encoder"]
    pcfg = table5_probe_config(prof.name)
    long, preds = table5(cohort, tiles, SPECS, pcfg, progress=progress, jobs=prof.models.jobs,
                         cache_dir=root / "runs" / "table5")
    # the development cohort is no table: no paper value beside it
    summary = table5_summary(long, trunk).drop(columns=["paper", "paper setting"], errors="ignore")
    diffs = table5_differences(long, preds, cohort, list(PAIRS), n_boot=n_boot, adjust=True)
    config = {"profile": prof.name, "probe": pcfg.__dict__, "features": list(SPECS), "resnet50 trunk": trunk,
              "FE extractors": fe_source, "pairs": [list(p) for p in PAIRS], "n_boot": n_boot,
              **cohort_config(prof, cohort)}
    return {"summary": summary, "differences": diffs, "config": config, "long": long}


def feature_probe_figure(diffs: pd.DataFrame):
    """FE minus each other feature set, per level, with the raw and the Holm interval."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style="whitegrid")
    levels = list(dict.fromkeys(diffs.level))
    fig, axes = plt.subplots(1, len(levels), figsize=(5 * len(levels), 0.6 * len(PAIRS) + 1.8), squeeze=False)
    for ax, level in zip(axes[0], levels):
        d = diffs[diffs.level.eq(level)].reset_index(drop=True)
        y = range(len(d))
        ax.errorbar(d["diff"], y, xerr=[d["diff"] - d["Holm CI low"], d["Holm CI high"] - d["diff"]],
                    fmt="none", ecolor="lightgrey", elinewidth=6, label="Holm-adjusted")
        ax.errorbar(d["diff"], y, xerr=[d["diff"] - d["ci_low"], d["ci_high"] - d["diff"]], fmt="o", capsize=3,
                    label="95% (raw)")
        ax.axvline(0, color="grey", lw=0.8)
        ax.set_yticks(list(y), d.comparison if ax is axes[0][0] else [""] * len(d))
        ax.set_ylim(len(d) - 0.5, -0.5)
        ax.set_xlabel(f"probe PCC difference, {level} level")
    axes[0][-1].legend(loc="best", fontsize=8)
    fig.suptitle("Table 5's probe on the development cohort (ISG-Sim, SIMULATED): FE against each feature set")
    fig.tight_layout()
    return fig


def run(args, command: str) -> None:
    """``isg study feature-probe``: the tables and the figure in ``results/<profile>/``."""
    import torch

    torch.set_num_threads(1)  # small MLPs: one thread each (Table 5's probes run prof.models.jobs at once)
    prof = get_profile(args.profile)
    out = feature_probe_study(prof, device=args.device)
    note = ("ISG-Sim is SIMULATED; development cohort, never the reported one. Table 5's 2-layer MLP probe on "
            "frozen features (slide level: mean-pooled over the kept patches, the task's genes, 5 folds by patient, "
            "one probe per cancer type; patch level: the cell counts of each kept patch). FE: one training of the "
            "profile's extractors on this cohort. Differences: paired bootstrap over slides (slide level: within "
            "fold and cancer type; patch level: within folds, each slide with all its patches), Holm-adjusted "
            "over the table's comparisons.")
    write_table(out["summary"], "feature_probe", prof.name, command, out["config"],
                title="Table 5's probe on the development cohort (ISG-Sim, SIMULATED)", note=note)
    write_table(out["differences"], "feature_probe_differences", prof.name, command, out["config"],
                title="Table 5's probe on the development cohort: FE against each feature set (ISG-Sim, SIMULATED)",
                note=note)
    save_figure(feature_probe_figure(out["differences"]), "fig_feature_probe", prof.name)
    print(out["summary"].to_string())
    print(out["differences"].to_string())
