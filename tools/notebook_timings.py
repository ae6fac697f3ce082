"""The notebooks' measured runtimes at a profile, for their opening cells: ``results/<profile>/notebook_timings.csv``.

``isg reproduce`` writes a ``timings.csv`` (notebook, profile, seconds) beside the notebooks it runs.
Give this tool the one of a from-scratch run (every cache empty: ``make clean-data && make
reproduce``) and, when there is one, the one of a rerun with everything cached; each notebook's
opening cell (:func:`isg_core.report.tutorial.runtime_note`) then states both.

    python tools/notebook_timings.py --profile quick --fresh FRESH.csv [--cached CACHED.csv] --measured "..."
        [--benchmark results/quick/benchmark_training.csv --runs data/cohorts/isg-sim-quick/runs]

With ``--benchmark`` it adds what the evidence standard's seeds (3 on headline rows, 2 elsewhere)
will cost each notebook, priced from the training benchmark (:mod:`isg_core.studies.evidence_budget`;
``--runs``: the run folders whose fold histories give the mean epochs a fold trains for), and a
``budget`` column: the seconds each notebook may take within 2 h in all.
"""
from __future__ import annotations

import argparse
import shlex
import sys


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="quick")
    ap.add_argument("--fresh", required=True, help="timings.csv of a from-scratch run")
    ap.add_argument("--cached", help="timings.csv of a rerun with every result cached")
    ap.add_argument("--measured", default="", help="when, where and on which commit (stated in each notebook)")
    ap.add_argument("--benchmark", help="benchmark_training.csv: price the evidence's added seeds, add a budget")
    ap.add_argument("--runs", help="run folders whose fold histories give the epochs per fold (default: 8)")
    args = ap.parse_args()

    import numpy as np
    import pandas as pd

    from isg_core.errors import IsgError
    from isg_core.report.outputs import write_table
    from isg_core.report.tutorial import TIMINGS

    def read(path: str) -> pd.Series:
        try:
            t = pd.read_csv(path)
        except (OSError, pd.errors.ParserError) as e:
            raise IsgError(path, f"cannot read a timings table ({e})") from None
        if not {"notebook", "seconds"} <= set(t.columns):
            raise IsgError(path, "a timings table needs the columns notebook and seconds")
        return t.set_index("notebook").seconds

    try:
        fresh = read(args.fresh)
        cached = read(args.cached) if args.cached else pd.Series(dtype=float)
    except IsgError as e:
        sys.exit(f"isg: error: {e}")
    out = pd.DataFrame({"notebook": fresh.index, "fresh_s": fresh.to_numpy(),
                        "cached_s": [cached.get(n, np.nan) for n in fresh.index], "measured": args.measured})
    note = ("fresh_s: `isg reproduce` from empty caches (the cohort simulated just before; simulation "
            "is not included); cached_s: a rerun that finds every result on disk.")
    if args.benchmark:
        from isg_core.config import get_profile
        from isg_core.studies.evidence_budget import (
            EvidencePlan,
            added_seconds,
            fold_trainings,
            measured_epochs,
            notebook_budget,
        )

        prof = get_profile(args.profile)
        epochs = measured_epochs(args.runs) if args.runs else float("nan")
        plan = EvidencePlan(epochs_per_fold=epochs if np.isfinite(epochs) else EvidencePlan().epochs_per_fold,
                            jobs=prof.models.jobs)
        priced = added_seconds(fold_trainings(prof, plan), pd.read_csv(args.benchmark), prof, plan)
        budget = notebook_budget(out.set_index("notebook").fresh_s, priced.groupby("notebook")["added seconds"].sum(),
                                 plan)
        out["added_s"] = budget.added_s.to_numpy()
        out["budget"] = budget.budget.to_numpy()
        note += (f" added_s: what {plan.headline_seeds} training seeds on headline rows and {plan.other_seeds} on "
                 f"every other slide-model row add, at {plan.epochs_per_fold:.1f} epochs a fold "
                 f"({'measured from the fold histories' if np.isfinite(epochs) else 'assumed'}) and each model's "
                 f"sequential seconds per fold epoch from {args.benchmark}, {plan.jobs} at once; budget: the seconds "
                 f"each notebook may take so that all take at most {plan.total_s:.0f} s "
                 "(fresh + added, scaled down in proportion when over).")
    total = pd.DataFrame([{"notebook": "total", "fresh_s": out.fresh_s.sum(), "cached_s": out.cached_s.sum(min_count=1),
                           "measured": args.measured,
                           **({"added_s": out.added_s.sum(), "budget": out.budget.sum()} if args.benchmark else {})}])
    command = "python tools/notebook_timings.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    write_table(pd.concat([out, total], ignore_index=True), "notebook_timings", args.profile, command,
                title=f"Notebook runtimes at {args.profile}: from scratch and cached (seconds)",
                note=note, floatfmt=".0f")
    print(f"{TIMINGS} written")


if __name__ == "__main__":
    main()
