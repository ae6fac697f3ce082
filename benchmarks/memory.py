"""Peak memory of one large slide through tile, select, extract and predict, at 10k, 20k and 40k px.

    python benchmarks/memory.py [--profile quick] [--sizes 10000 20000 40000]

For each size a simulated slide (``isg_core.simulate.large``, SIMULATED, written once to
``data/work/``) goes through, each in a fresh process so that each peak is its own:

* ``isg predict``'s path (:class:`isg_core.inference.SlidePipeline`: streamed read, Shannon
  selection, E_G + E_L on the kept patches, the Dual Attention network in chunks), ISG-10-2 at full
  width with untrained weights (memory does not depend on the weights);
* the cohort tools: ``isg tile`` into HDF5, the Shannon selection stored in it, ``isg extract``.

Peak resident memory (``ru_maxrss``) is reported with the process's footprint before the slide
(imports and models) and what the slide added.  The goal: at most 2 GB at 40k, flat across sizes.
Writes ``results/<profile>/benchmark_memory.{csv,md}`` and ``fig_benchmark_memory.png``.
"""
from __future__ import annotations

import argparse
import tempfile

import pandas as pd

from isg_core.config import get_profile
from isg_core.efficiency import cohort_path_peak, in_fresh_process, measure
from isg_core.paths import repo_root
from isg_core.report import save_figure, write_table
from isg_core.simulate.large import write_large_slide

if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--profile", default="quick")
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 20_000, 40_000])
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    prof = get_profile(args.profile)
    rows = []
    for size in args.sizes:
        slide = repo_root() / "data" / "work" / f"isg-sim-large-{size}.tiff"
        if not slide.exists():
            write_large_slide(slide, size, seed=0, progress=True)
        r = measure(["isg"], prof, [slide], threads=args.threads, warmup=False).iloc[0]
        rows.append({"size (px)": size, "path": "isg predict (read, select, extract, predict)", "patches": r.patches,
                     "kept": r.kept, "seconds": r.total, "before slide (MB)": r.baseline_rss_mb,
                     "peak RSS (MB)": r.peak_rss_mb})
        print(rows[-1], flush=True)
        with tempfile.TemporaryDirectory() as tmp:
            c = in_fresh_process(cohort_path_peak, str(slide), prof.name, tmp, None, args.threads)
        rows.append({"size (px)": size, "path": "isg tile + select + extract (HDF5)", "patches": c["patches"],
                     "kept": c["kept"], "seconds": c["tile s"] + c["select s"] + c["extract s"],
                     "before slide (MB)": c["baseline_rss_mb"], "peak RSS (MB)": c["peak_rss_mb"]})
        print(rows[-1], flush=True)
    df = pd.DataFrame(rows)
    df["added by the slide (MB)"] = df["peak RSS (MB)"] - df["before slide (MB)"]
    df["under 2 GB"] = df["peak RSS (MB)"] <= 2048
    sizes = " ".join(map(str, args.sizes))
    cmd = f"python benchmarks/memory.py --profile {prof.name} --sizes {sizes} --threads {args.threads}"
    config = {"features": prof.features.__dict__, "tiling": prof.tiling.__dict__, "threads": args.threads}
    write_table(df, "benchmark_memory", prof.name, cmd, config=config,
                title="Peak memory of one large slide by size (SIMULATED slides, CPU)",
                note="Each row in a fresh process; untrained ISG-10-2 at full width and the profile's encoders. "
                     "'before slide' is the process after imports and model construction.")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.4))
    for path, g in df.groupby("path", sort=False):
        ax.plot(g["size (px)"] / 1000, g["peak RSS (MB)"] / 1024, marker="o", label=path)
    ax.axhline(2, color="red", ls="--", lw=1, label="2 GB goal")
    ax.set(xlabel="slide side (1000 px)", ylabel="peak RSS (GB)",
           ylim=(0, max(2.5, df["peak RSS (MB)"].max() / 1024 * 1.1)),
           title="Peak memory by slide size (simulated slides)")
    ax.legend(fontsize=7)
    save_figure(fig, "fig_benchmark_memory", prof.name)
    print(df.round(1).to_string(index=False))
