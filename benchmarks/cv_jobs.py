"""Cross-validation wall time: one process against several worker processes (``jobs``).

    python benchmarks/cv_jobs.py [--profile quick] [--task LIHC] [--models 4]

Runs the same ``--models`` cross-validations (ISG-a-b at the profile's width, a = 4, 6, 8, ...,
b = 2, 5 folds each, on one task of the profile's cohort; features extracted) three ways, each from
an empty run folder, in this one script:

* one process, one torch thread (the baseline, ratio 1.0);
* one process, two torch threads;
* ``jobs = 2`` worker processes of one thread each (what ``make reproduce`` uses at ``quick``).

Writes ``results/<profile>/benchmark_cv_jobs.{csv,md}`` and checks that the three give the same
table.  ISG-Sim is SIMULATED.
"""
from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

from isg_core.cohorts.folder import ensure_cohort, load_cohort
from isg_core.config import get_profile
from isg_core.experiments import isg, run_table
from isg_core.features.workflow import ensure_features
from isg_core.report.outputs import write_table

if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--profile", default="quick")
    ap.add_argument("--task", default="LIHC")
    ap.add_argument("--models", type=int, default=4)
    args = ap.parse_args()
    prof = get_profile(args.profile)
    root = ensure_cohort(prof.name)
    ensure_features(("fe",), prof, root, progress=False)
    cohort = load_cohort(root)
    exps = [isg(f"ISG-{a}-2", a, 2) for a in range(4, 4 + 2 * args.models, 2)]
    rows, tables = [], []
    for name, threads, jobs in (("1 process, 1 thread", 1, 1), ("1 process, 2 threads", 2, 1),
                                ("2 processes, 1 thread each", 1, 2)):
        torch.set_num_threads(threads)
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            tables.append(
                run_table(exps, cohort, root / "tiles", prof, Path(tmp), [args.task], progress=False, jobs=jobs)
            )
            rows.append({"setup": name, "torch threads": threads, "jobs": jobs, "cross-validations": len(exps),
                         "seconds": time.perf_counter() - t0})
        print(rows[-1], flush=True)
    df = pd.DataFrame(rows)
    df["ratio to baseline"] = df.seconds / df.seconds.iloc[0]
    same = all(tables[0][["method", "task", "gene", "fold", "pcc"]].equals(t[["method", "task", "gene", "fold", "pcc"]])
               for t in tables[2:])
    write_table(df, "benchmark_cv_jobs", prof.name,
                f"python benchmarks/cv_jobs.py --profile {prof.name} --task {args.task} --models {args.models}",
                config={"models": [e.label for e in exps], "task": args.task, "train": prof.models.__dict__,
                        "cpu": platform.processor() or platform.machine(), "cores": torch.get_num_threads()},
                title="Cross-validation wall time: processes and threads (ISG-Sim, SIMULATED)",
                note=f"Same {len(exps)} five-fold cross-validations each way, from empty run folders, in one script. "
                     f"2 processes give the same table as 1 process with 1 thread: {same}.")
    print(df.to_string(index=False))
