"""Peak memory of one large slide through tile, select, extract and predict, at 10k, 20k and 40k px.

    python benchmarks/memory.py [--profile quick] [--sizes 10000 20000 40000]
    python benchmarks/memory.py --relabel [--profile quick]   # relabel the written results, measure nothing

For each size a simulated slide (``isg_core.simulate.large``, SIMULATED, written once to
``data/work/``) goes through, each in a fresh process so that each peak is its own:

* ``isg predict``'s path (:class:`isg_core.deploy.inference.SlidePipeline`: streamed read, Shannon
  selection, E_G + E_L on the kept patches, the Dual Attention network in chunks), ISG-10-2 at full
  width with untrained weights (memory does not depend on the weights);
* the cohort tools: ``isg tile`` into HDF5, the Shannon selection stored in it, ``isg extract``.

Peak resident memory (``ru_maxrss``) is reported with the process's footprint before the slide
(imports and models) and what the slide added, in MiB (the kernel's KiB / 1024).  The goal: at
most 2 GiB at 40k, flat across sizes.
Writes ``results/<profile>/benchmark_memory.{csv,md}`` and ``fig_benchmark_memory.png``.

``--relabel`` measures nothing: it renames the units of tables written when they said MB / GB
(the values were MiB / GiB all along) and redraws the figure from the CSV
(:func:`isg_core.report.units.relabel_results`).
"""
from __future__ import annotations

import argparse
import tempfile

import pandas as pd

from isg_core.config import get_profile
from isg_core.paths import repo_root
from isg_core.report.outputs import save_figure, write_table
from isg_core.report.units import relabel_results
from isg_core.simulate.large import write_large_slide
from isg_core.studies.efficiency import cohort_path_peak, in_fresh_process, measure


def plot_memory(df: pd.DataFrame):
    """Peak RSS (GiB) against the slide's side, one line per path, with the 2 GiB goal."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.4))
    for path, g in df.groupby("path", sort=False):
        ax.plot(g["size (px)"] / 1000, g["peak RSS (MiB)"] / 1024, marker="o", label=path)
    ax.axhline(2, color="red", ls="--", lw=1, label="2 GiB goal")
    ax.set(xlabel="slide side (1000 px)", ylabel="peak RSS (GiB)",
           ylim=(0, max(2.5, df["peak RSS (MiB)"].max() / 1024 * 1.1)),
           title="Peak memory by slide size (simulated slides)")
    ax.legend(fontsize=7)
    return fig


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--profile", default="quick")
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 20_000, 40_000])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--relabel", action="store_true",
                    help="measure nothing: rename MB / GB to MiB / GiB in the written CSV and Markdown (same "
                         "numbers, same 'Made by' command) and redraw the figure from the CSV")
    args = ap.parse_args()
    prof = get_profile(args.profile)
    if args.relabel:
        df = relabel_results("benchmark_memory", prof.name, "memory")
        save_figure(plot_memory(df), "fig_benchmark_memory", prof.name)
        print(df.round(1).to_string(index=False))
        return
    rows = []
    for size in args.sizes:
        slide = repo_root() / "data" / "work" / f"isg-sim-large-{size}.tiff"
        if not slide.exists():
            write_large_slide(slide, size, seed=0, progress=True)
        r = measure(["isg"], prof, [slide], threads=args.threads, warmup=False).iloc[0]
        # r.*_rss_mb and c[*_rss_mb] are MiB (isg_core.studies.efficiency: KiB from the kernel / 1024)
        rows.append({"size (px)": size, "path": "isg predict (read, select, extract, predict)", "patches": r.patches,
                     "kept": r.kept, "seconds": r.total, "before slide (MiB)": r.baseline_rss_mb,
                     "peak RSS (MiB)": r.peak_rss_mb})
        print(rows[-1], flush=True)
        with tempfile.TemporaryDirectory() as tmp:
            c = in_fresh_process(cohort_path_peak, str(slide), prof.name, tmp, None, args.threads)
        rows.append({"size (px)": size, "path": "isg tile + select + extract (HDF5)", "patches": c["patches"],
                     "kept": c["kept"], "seconds": c["tile s"] + c["select s"] + c["extract s"],
                     "before slide (MiB)": c["baseline_rss_mb"], "peak RSS (MiB)": c["peak_rss_mb"]})
        print(rows[-1], flush=True)
    df = pd.DataFrame(rows)
    df["added by the slide (MiB)"] = df["peak RSS (MiB)"] - df["before slide (MiB)"]
    df["under 2 GiB"] = df["peak RSS (MiB)"] <= 2048
    sizes = " ".join(map(str, args.sizes))
    cmd = f"python benchmarks/memory.py --profile {prof.name} --sizes {sizes} --threads {args.threads}"
    config = {"features": prof.features.__dict__, "tiling": prof.tiling.__dict__, "threads": args.threads}
    write_table(df, "benchmark_memory", prof.name, cmd, config=config,
                title="Peak memory of one large slide by size (SIMULATED slides, CPU)",
                note="Each row in a fresh process; untrained ISG-10-2 at full width and the profile's encoders. "
                     "'before slide' is the process after imports and model construction.")
    save_figure(plot_memory(df), "fig_benchmark_memory", prof.name)
    print(df.round(1).to_string(index=False))


if __name__ == "__main__":
    main()
