"""Inference seconds per slide, ISG against HE2RNA, by stage (paper Sec. 4.1: 246 s against 302 s).

    python benchmarks/inference.py [--profile quick] [--slides 6] [--large 40000] [--device cpu]

Times the whole inference path per slide (read, select, extract, predict; see
:mod:`isg_core.studies.efficiency`) of both methods, each in its own process (peak memory), on:

* ``--slides`` slides of the profile's ISG-Sim cohort (SIMULATED);
* CMU-1-Small-Region (a real Aperio slide, 2220 x 2967 px);
* one large simulated slide of ``--large`` px a side (written once to ``data/work/``; 0 skips it),
  from which the seconds at 1e5 x 1e5 px are extrapolated in proportion to the area.

Before the timed slides each process runs CMU-1-Small-Region once (warm-up).  Writes
``results/<profile>/benchmark_inference.{csv,md}`` and ``fig_benchmark_inference.png``
(``--plot-only`` redraws the figure from the CSV).
"""
from __future__ import annotations

import argparse
import platform
import sys

import pandas as pd
import torch

from isg_core.cohorts.folder import ensure_cohort, ensure_samples, load_cohort
from isg_core.config import get_profile
from isg_core.paths import repo_root, samples_dir
from isg_core.report.outputs import save_figure, write_table
from isg_core.studies.efficiency import extrapolate, measure, plot_stages, summarise_efficiency

if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--profile", default="quick")
    ap.add_argument("--slides", type=int, default=6)
    ap.add_argument("--large", type=int, default=40_000, help="side of the large simulated slide in px (0: none)")
    ap.add_argument("--device", help="cpu, cuda (default: cuda if available)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads per process (default: torch's)")
    ap.add_argument("--plot-only", action="store_true", help="redraw the figure from the written CSV")
    args = ap.parse_args()
    prof = get_profile(args.profile)
    if args.plot_only:
        table = pd.read_csv(repo_root() / "results" / prof.name / "benchmark_inference.csv")
        axes = plot_stages(table, title=f"Inference per slide by stage ({table.device.iloc[0]})")
        save_figure(axes[0].figure, "fig_benchmark_inference", prof.name)
        sys.exit(0)
    ensure_samples()
    cmu = samples_dir() / "CMU-1-Small-Region.svs"
    cohort = load_cohort(ensure_cohort(prof.name))
    datasets = [(f"ISG-Sim {prof.name} ({args.slides} slides, SIMULATED)", list(cohort.manifest.path[:args.slides])),
                ("CMU-1-Small-Region (real)", [cmu])]
    if args.large:
        from isg_core.simulate.large import write_large_slide

        big = repo_root() / "data" / "work" / f"isg-sim-large-{args.large}.tiff"
        if not big.exists():
            write_large_slide(big, args.large, seed=0, progress=True)
        datasets.append((f"large simulated slide {args.large} px (SIMULATED)", [big]))
    frames = []
    for name, slides in datasets:
        rows = measure(["isg", "he2rna"], prof, slides, device=args.device, threads=args.threads, warmup=cmu,
                       progress=True)
        frames.append(summarise_efficiency(rows, name))
        print(frames[-1].round(3).to_string(index=False), flush=True)
    table = pd.concat(frames, ignore_index=True)
    table["s/slide at 1e5 x 1e5 px"] = extrapolate(table)
    device = table.device.iloc[0]
    cmd = (f"python benchmarks/inference.py --profile {prof.name} --slides {args.slides} --large {args.large}"
           + (f" --device {args.device}" if args.device else "")
           + (f" --threads {args.threads}" if args.threads else ""))
    write_table(table, "benchmark_inference", prof.name, cmd,
                config={"tiling": prof.tiling.__dict__, "features": prof.features.__dict__, "device": device,
                        "threads": int(table.threads.iloc[0]) if "threads" in table else torch.get_num_threads(),
                        "cpu": platform.processor() or platform.machine()},
                title=f"Inference seconds per slide by stage, ISG against HE2RNA ({device})",
                note="Untrained weights (a forward pass costs the same whatever the weights); each method in its own "
                     "process after one warm-up slide (CMU-1-Small-Region); the same reader, tiling and device for "
                     "both. 'ratio to HE2RNA' compares totals on the same slides (paper: 246 / 302 = 0.81). "
                     "'s/slide at 1e5 x 1e5 px' scales each row's seconds by area. ISG-Sim slides are SIMULATED.")
    axes = plot_stages(table, title=f"Inference per slide by stage ({device})")
    save_figure(axes[0].figure, "fig_benchmark_inference", prof.name)
    print(table.round(3).to_string(index=False))
