"""Run the cross-validations of some paper tables ahead of the notebooks (maintainers).

The notebooks 05/06/08/10 call :func:`isg_core.experiments.reproduce_table`, which skips every
finished fold; running the tables here first, in two processes with one thread each, uses both
cores of a small machine (one process of small models does not fill two cores).

    python tools/precompute_tables.py --profile quick --tables 6 4 &
    python tools/precompute_tables.py --profile quick --tables 1 2
"""
from __future__ import annotations

import argparse
import time

import torch

from isg_core.experiments import reproduce_table

if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--profile", default="quick")
    ap.add_argument("--tables", type=int, nargs="+", default=[1, 2, 4, 6])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--setting", help="override the tables' setting (e.g. 'one model for all tasks')")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    for n in args.tables:
        t0 = time.perf_counter()
        run = reproduce_table(n, args.profile, setting=args.setting)
        print(f"table {n}: {time.perf_counter() - t0:.0f} s", flush=True)
        print(run.summary.round(3).to_string(), flush=True)
