"""Seconds of each stage of the pipeline before the tables, and of one cross-validation per model:
what ``make reproduce`` costs at a profile, stage by stage (for budgeting it within 2 h at ``quick``).

Runs on the development cohort by default (choices are made there; ``--role held-out`` for the other),
each stage skip-if-done as ``make reproduce`` runs it, so time a stage from scratch by starting
without its outputs.  Writes ``results/<profile>/pipeline_stage_times.{csv,md}``.

    python tools/stage_times.py --profile quick                       # stages, then the models on COAD
    python tools/stage_times.py --profile quick --models ISG,CycleMLP --task LIHC
"""
from __future__ import annotations

import argparse
import tempfile
import time

import pandas as pd


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="quick")
    ap.add_argument("--role", default="development", choices=("development", "held-out"))
    ap.add_argument("--task", default="COAD", help="the task whose cross-validations are timed")
    ap.add_argument("--models", default=None, help="comma-separated Table 1 labels (default: every row)")
    ap.add_argument("--no-models", action="store_true", help="time the stages only")
    args = ap.parse_args()

    from isg_core.cohorts.folder import ensure_cohort, load_cohort
    from isg_core.config import get_profile
    from isg_core.experiments.runner import run_experiment
    from isg_core.experiments.specs import table1_experiments
    from isg_core.features.workflow import ensure_extractor, ensure_features, ensure_prepared
    from isg_core.report.outputs import write_table

    prof = get_profile(args.profile)
    rows = []

    def timed(stage: str, fn, **extra):
        t0 = time.perf_counter()
        out = fn()
        rows.append({"stage": stage, "seconds": round(time.perf_counter() - t0, 1), **extra})
        print(rows[-1], flush=True)
        return out

    root = timed("simulate", lambda: ensure_cohort(prof.name, role=args.role))
    timed("tile + select", lambda: ensure_prepared(root, prof))
    timed("train E_G", lambda: ensure_extractor("global", prof, root))
    timed("train E_L", lambda: ensure_extractor("local", prof, root))
    for name in ("fe", "fe-untrained", "resnet50", "descriptor"):
        timed(f"encode {name}", lambda n=name: ensure_features((n,), prof, root))
    if not args.no_models:
        cohort = load_cohort(root)
        want = set(args.models.split(",")) if args.models else None
        for exp in table1_experiments():
            if want and exp.label not in want:
                continue
            with tempfile.TemporaryDirectory() as d:
                res = timed(f"cross-validate {exp.label} ({args.task})",
                            lambda e=exp, d=d: run_experiment(cohort, root / "tiles", e, args.task, prof, d,
                                                              progress=False))
            rows[-1]["pcc"] = round(float(res.rows.groupby("gene").pcc.mean().mean()), 3) if len(res.rows) else None
    command = "python tools/stage_times.py " + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()
                                                        if v not in (None, False))
    write_table(pd.DataFrame(rows), "pipeline_stage_times", prof.name, command,
                title=f"Seconds per stage before the tables, and per 5-fold cross-validation ({args.role} cohort, "
                      "ISG-Sim, SIMULATED)",
                config={"profile": prof.name, "role": args.role, "task": args.task, "workers": prof.workers},
                note="Each stage as make reproduce runs it (skip-if-done: a stage found done takes seconds). "
                     "Cross-validations run alone here, in one process with two threads; the tables run two at once.")


if __name__ == "__main__":
    main()
