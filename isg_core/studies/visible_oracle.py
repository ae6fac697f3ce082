"""Does the Dual Attention network do what it is for?  ISG against other aggregators on the full
and the visible oracle, on the development cohort.

Table 1's oracle rows hand the slide models the simulator's truth, T and B cells and a lymphocyte's
context included: what no pixel shows.  So ISG-oracle against CycleMLP-oracle tests nothing the
paper claims.  The visible oracle (:data:`isg_core.features.oracle.VISIBLE_CHANNELS`) gives only
what a patch shows; which lymphocyte-like cell is a T cell, and in which context, must be inferred
from the rest of the slide: the "global guides local" inference of Sec. 3.3.  If the Dual Attention
network does that inference, ISG's lead over an aggregator should be larger on the visible oracle
than on the full one.

Rows: ISG and each of :data:`BASELINES` (the best baseline, ViT-MB, gated ABMIL), each on both
oracles, with the profile's training seeds, per cancer type; paired differences with the slide
bootstrap over seeds, and per baseline the interaction (ISG's lead on the visible oracle minus its
lead on the full one, on the same slide draws: the test of the claim), over all tasks and again on
:data:`FOCUS` (COAD's T-cell genes), all Holm-adjusted as one family.
Only the development cohort is read.

``isg study visible-oracle --profile quick`` (:func:`run`) writes ``results/<profile>/visible_oracle*``.
"""
from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from ..config import TASK_GENES, Profile, get_profile
from ..experiments.runner import run_table
from ..experiments.scoring import noise_ceiling_avg
from ..experiments.slide_bootstrap import GENE_PROGRAMMES, RESAMPLED, paired_slide_bootstrap
from ..experiments.specs import BEST_BASELINE, Experiment, isg
from ..experiments.statistics import adjust_family, verdict
from ..experiments.tables import cohort_config, summarise
from ..report.outputs import save_figure, write_table

#: the two views of the truth, by feature-set name
VIEWS = {"oracle": "full oracle", "oracle-visible": "visible oracle"}
#: the aggregators ISG is compared with (label -> model): the development cohort's best baseline, the
#: best ViT of Table 1 and gated ABMIL (Ilse et al. 2018), the field's standard multiple-instance model
BASELINES: dict[str, str] = {BEST_BASELINE: BEST_BASELINE.lower(), "ViT-MB": "vit-mb", "ABMIL": "abmil"}
#: what "global guides local" should help most: COAD's T-cell genes, where follicle B cells look like
#: T cells to a patch (the visible oracle counts them as one lymphocyte-like cell)
FOCUS = ("COAD", "T-cell")


def label(model: str, features: str) -> str:
    """A row's name: the model and the view, e.g. "ISG (visible oracle)"."""
    return f"{model} ({VIEWS[features]})"


def experiments() -> list[Experiment]:
    """ISG and each of :data:`BASELINES` on each view, with the profile's training seeds."""
    out = []
    for features in VIEWS:
        out.append(isg(label("ISG", features), paper=None, features=features, headline=True))
        out += [Experiment(label(name, features), model, features=features, headline=True)
                for name, model in BASELINES.items()]
    return out


def comparisons() -> list[tuple[str, str]]:
    """ISG against each baseline on the visible and on the full oracle (in that order, baseline by
    baseline), then each model's loss from the full to the visible oracle."""
    vis, full = "oracle-visible", "oracle"
    pairs = []
    for name in BASELINES:
        pairs += [(label("ISG", vis), label(name, vis)), (label("ISG", full), label(name, full))]
    return pairs + [(label(m, vis), label(m, full)) for m in ("ISG", *BASELINES)]


def interaction(baseline: str) -> str:
    """The interaction row's comparison against ``baseline`` (its first part names what is higher
    when it is positive)."""
    return f"ISG's lead over {baseline} on the visible oracle - its lead on the full oracle"


#: the interaction row against the best baseline
INTERACTION = interaction(BEST_BASELINE)


def _interaction_row(name: str, rows: list[dict], reps: list, i_vis: int, i_full: int, n_boot: int) -> dict:
    """The visible-oracle lead's replicates minus the full-oracle lead's (the same slide draws)."""
    inter = reps[i_vis] - reps[i_full]
    ok = np.isfinite(inter)
    lo, hi = (float(x) for x in np.quantile(inter[ok], [0.025, 0.975])) if ok.any() else (float("nan"),) * 2
    reps.append(inter)
    return {"scope": rows[i_vis]["scope"], "comparison": interaction(name),
            "mean PCC difference": rows[i_vis]["mean PCC difference"] - rows[i_full]["mean PCC difference"],
            "95% CI low": lo, "95% CI high": hi, "a wins": float((inter[ok] > 0).mean()) if ok.any() else np.nan,
            "n_boot": int(n_boot), "resampled": RESAMPLED, "seeds": rows[i_vis]["seeds"], "verdict": verdict(lo, hi)}


def differences(out, n_boot: int = 2000) -> pd.DataFrame:
    """:func:`comparisons` by :func:`~isg_core.experiments.slide_bootstrap.paired_slide_bootstrap`
    (every pair on the same slide draws) over all tasks, then per baseline the interaction (ISG's
    lead on the visible oracle minus its lead on the full one); the same leads and interactions on
    :data:`FOCUS` (its cancer type's slides, its programme's genes) where the cohort has them.  All
    Holm-adjusted as one family; ``scope`` says which slides and genes a row scores."""
    reps: list = []
    rows: list[dict] = []
    ct, programme = FOCUS
    scopes = [("all tasks and genes", out.truth, out.groups, None)]
    focus = out.groups.index[out.groups.cancer_type.eq(ct)]
    genes = [g for g in GENE_PROGRAMMES[programme] if g in out.truth.columns]
    if len(focus) and genes:
        scopes.append((f"{ct} {programme} genes", out.truth.loc[focus], out.groups.loc[focus], genes))
    for scope, truth, groups, gs in scopes:
        pairs = comparisons() if gs is None else comparisons()[:2 * len(BASELINES)]
        first = len(rows)
        for a, b in pairs:
            rows.append({"scope": scope, **paired_slide_bootstrap(out.seeds(a), out.seeds(b), truth, groups, n_boot,
                                                                  comparison=f"{a} - {b}", genes=gs, replicates=reps)})
        for k, name in enumerate(BASELINES):
            rows.append(_interaction_row(name, rows, reps, first + 2 * k, first + 2 * k + 1, n_boot))
    return adjust_family(pd.DataFrame(rows), reps)


def visible_oracle_study(profile: "str | Profile | None" = None, cohort_root: "str | os.PathLike | None" = None,
                         device: str | None = None, progress: bool = True, n_boot: int = 2000) -> dict:
    """Run (or find) :func:`experiments` on the development cohort, per cancer type; returns the
    ``summary`` (one row per method), the ``differences`` (:func:`comparisons`, Holm-adjusted) and
    the ``config``."""
    from ..cohorts.folder import ensure_cohort, load_cohort
    from ..features.workflow import ensure_prepared

    prof = profile if isinstance(profile, Profile) else get_profile(profile)
    root = Path(cohort_root) if cohort_root else ensure_cohort(prof.name, role="development")
    # the oracle reads the truth, not extracted features; Shannon's selection alone, as the other
    # development-cohort studies prepare it (Table 2's selectors are not needed here)
    ensure_prepared(root, prof, methods=("shannon",), progress=progress)
    cohort = load_cohort(root)
    tasks = [t for t in TASK_GENES if (cohort.manifest.cancer_type == t).any()]
    exps = experiments()
    out = run_table(exps, cohort, root / "tiles", prof, root / "runs", tasks, device, progress,
                    jobs=prof.models.jobs)
    summary = summarise(out.rows, ceiling=noise_ceiling_avg(cohort))
    diffs = differences(out, n_boot)
    config = {"profile": prof.name, "models": asdict(prof.models), "experiments": [e.to_dict() for e in exps],
              "tasks": tasks, "setting": "per task", **cohort_config(prof, cohort), "n_boot": n_boot}
    return {"summary": summary, "differences": diffs, "config": config}


def run(args, command: str) -> None:
    """``isg study visible-oracle``: the tables and a figure in ``results/<profile>/``."""
    import torch

    from ..experiments.statistics import holm_clause, verdict_sentence

    torch.set_num_threads(1)
    prof = get_profile(args.profile)
    out = visible_oracle_study(prof, device=args.device)
    note = ("ISG-Sim is SIMULATED; development cohort, never the reported one. Full oracle: the simulator's "
            "true per-patch cell counts (T and B cells apart, lymphocyte context as channels). Visible oracle: "
            "only what pixels show (T and B cells as one lymphocyte-like count, no context), so the slide model "
            "must infer the rest from the slide. PCC per gene over a fold's test slides of one cancer type, mean "
            "over genes, folds and the training seeds. Differences: slide-level bootstrap over test slides and "
            "seeds, Holm-adjusted over the table's comparisons.")
    write_table(out["summary"], "visible_oracle", prof.name, command, out["config"],
                title="ISG and other aggregators on the full and the visible oracle (ISG-Sim, SIMULATED)", note=note)
    write_table(out["differences"], "visible_oracle_differences", prof.name, command, out["config"],
                title="Visible oracle: paired differences (ISG-Sim, SIMULATED)", note=note)
    save_figure(visible_oracle_figure(out["summary"], out["differences"]), "fig_visible_oracle", prof.name)
    for _, r in out["differences"].iterrows():
        print(f"[{r['scope']}] " + verdict_sentence(r["comparison"], r["mean PCC difference"], r["95% CI low"],
                                                    r["95% CI high"], r["verdict"], "slide bootstrap over seeds")
              + holm_clause(r))


def visible_oracle_figure(summary: pd.DataFrame, diffs: pd.DataFrame):
    """Left: each model's PCC on both views.  Right: per baseline and scope, the interaction (ISG's
    lead on the visible oracle minus its lead on the full one) with its 95% and Holm intervals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style="whitegrid")
    s = summary.copy()
    s["model"] = s.method.str.split(" (", regex=False).str[0]
    s["view"] = s.method.str.extract(r"\((.*)\)")[0]
    inter = diffs[diffs.comparison.str.startswith("ISG's lead over")].reset_index(drop=True)
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(12, 0.45 * max(len(s), len(inter)) + 2.2))
    sns.barplot(data=s, x="PCC mean", y="model", hue="view", ax=ax, orient="h")
    ax.set_xlabel("mean PCC over genes, folds and seeds")
    ax.set_ylabel("slide model")
    ax.legend(title="features", loc="lower right", fontsize=8)
    names = inter.comparison.str.extract(r"lead over (.*) on the visible")[0] + " | " + inter.scope
    y = np.arange(len(inter))
    d = inter["mean PCC difference"]
    if "Holm CI low" in inter:
        bx.errorbar(d, y, xerr=[d - inter["Holm CI low"], inter["Holm CI high"] - d], fmt="none",
                    ecolor="lightgrey", elinewidth=6, label="Holm-adjusted")
    bx.errorbar(d, y, xerr=[d - inter["95% CI low"], inter["95% CI high"] - d], fmt="o", capsize=3, label="95% (raw)")
    bx.axvline(0, color="grey", lw=0.8)
    bx.set_yticks(y, names)
    bx.set_ylim(len(inter) - 0.5, -0.5)
    bx.set_xlabel("ISG's lead on the visible oracle − its lead on the full (PCC)")
    bx.set_ylabel("against | scope")
    bx.legend(loc="best", fontsize=8)
    fig.suptitle("Global guides local? Oracle features on the development cohort (ISG-Sim, SIMULATED)")
    fig.tight_layout()
    return fig
