"""Does the Dual Attention network do what it is for?  ISG against the best baseline on the full and
the visible oracle, on the development cohort.

Table 1's oracle rows hand the slide models the simulator's truth, T and B cells and a lymphocyte's
context included: what no pixel shows.  So ISG-oracle against CycleMLP-oracle tests nothing the
paper claims.  The visible oracle (:data:`isg_core.features.oracle.VISIBLE_CHANNELS`) gives only
what a patch shows; which lymphocyte-like cell is a T cell, and in which context, must be inferred
from the rest of the slide: the "global guides local" inference of Sec. 3.3.  If the Dual Attention
network does that inference, ISG's lead over the best baseline should be larger on the visible
oracle than on the full one.

Rows: ISG and the best baseline, each on both oracles, with the profile's training seeds, per
cancer type; paired differences with the slide bootstrap over seeds, and the interaction (ISG's
lead on the visible oracle minus its lead on the full one, on the same slide draws: the test of
the claim), Holm-adjusted as one family.
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
from ..experiments.slide_bootstrap import RESAMPLED, paired_slide_bootstrap
from ..experiments.specs import BEST_BASELINE, Experiment, isg
from ..experiments.statistics import adjust_family, verdict
from ..experiments.tables import cohort_config, summarise
from ..report.outputs import save_figure, write_table

#: the two views of the truth, by feature-set name
VIEWS = {"oracle": "full oracle", "oracle-visible": "visible oracle"}


def experiments() -> list[Experiment]:
    """ISG and the best baseline on each view, with the profile's training seeds."""
    out = []
    for features, view in VIEWS.items():
        out.append(isg(f"ISG ({view})", paper=None, features=features, headline=True))
        out.append(Experiment(f"{BEST_BASELINE} ({view})", BEST_BASELINE.lower(), features=features, headline=True))
    return out


def comparisons() -> list[tuple[str, str]]:
    """ISG against the best baseline on each view, and each model's loss from the full to the
    visible oracle."""
    b = BEST_BASELINE
    return [(f"ISG ({VIEWS['oracle-visible']})", f"{b} ({VIEWS['oracle-visible']})"),
            (f"ISG ({VIEWS['oracle']})", f"{b} ({VIEWS['oracle']})"),
            (f"ISG ({VIEWS['oracle-visible']})", f"ISG ({VIEWS['oracle']})"),
            (f"{b} ({VIEWS['oracle-visible']})", f"{b} ({VIEWS['oracle']})")]


#: the interaction row's comparison (its first part names what is higher when it is positive)
INTERACTION = "ISG's lead on the visible oracle - ISG's lead on the full oracle"


def differences(out, n_boot: int = 2000) -> pd.DataFrame:
    """:func:`comparisons` by :func:`~isg_core.experiments.slide_bootstrap.paired_slide_bootstrap`
    (every pair on the same slide draws), then :data:`INTERACTION`: the first comparison's
    replicates minus the second's, with its percentile interval; all Holm-adjusted as one family."""
    reps: list = []
    rows = [paired_slide_bootstrap(out.seeds(a), out.seeds(b), out.truth, out.groups, n_boot,
                                   comparison=f"{a} - {b}", replicates=reps) for a, b in comparisons()]
    inter = reps[0] - reps[1]
    ok = np.isfinite(inter)
    lo, hi = (float(x) for x in np.quantile(inter[ok], [0.025, 0.975])) if ok.any() else (float("nan"),) * 2
    rows.append({"comparison": INTERACTION,
                 "mean PCC difference": rows[0]["mean PCC difference"] - rows[1]["mean PCC difference"],
                 "95% CI low": lo, "95% CI high": hi, "a wins": float((inter[ok] > 0).mean()) if ok.any() else np.nan,
                 "n_boot": int(n_boot), "resampled": RESAMPLED, "seeds": rows[0]["seeds"], "verdict": verdict(lo, hi)})
    reps.append(inter)
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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns
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
                title="ISG and the best baseline on the full and the visible oracle (ISG-Sim, SIMULATED)", note=note)
    write_table(out["differences"], "visible_oracle_differences", prof.name, command, out["config"],
                title="Visible oracle: paired differences (ISG-Sim, SIMULATED)", note=note)
    s = out["summary"].copy()
    s["model"] = s.method.str.split(" (", regex=False).str[0]
    s["view"] = s.method.str.extract(r"\((.*)\)")[0]
    fig, ax = plt.subplots(figsize=(6.5, 3.2))
    sns.barplot(data=s, x="PCC mean", y="model", hue="view", ax=ax, orient="h")
    ax.set_xlabel("mean PCC over genes, folds and seeds (development cohort)")
    ax.set_ylabel("slide model")
    ax.set_title("Oracle features: everything against what pixels show (ISG-Sim, SIMULATED)", fontsize=9)
    ax.legend(title="features", bbox_to_anchor=(1.01, 1), loc="upper left")
    save_figure(fig, "fig_visible_oracle", prof.name)
    for _, r in out["differences"].iterrows():
        print(verdict_sentence(r["comparison"], r["mean PCC difference"], r["95% CI low"], r["95% CI high"],
                               r["verdict"], "slide bootstrap over seeds") + holm_clause(r))
