# %% [markdown]
# # 11 · Efficiency: seconds per slide, ISG against HE2RNA
#
# The paper (Sec. 4.1) reports 246 s per slide for ISG and 302 s for HE2RNA (a ratio of 0.81):
# Shannon selection sends fewer patches to the feature extractor.  Here both methods' **whole
# inference path** is timed on the same slides, with the same reader (OpenSlide), tiling and device,
# split into its four stages:
#
# * **read**: tile the slide and read its global patches (256 px at 0.5 um/px);
# * **select**: ISG scores each patch by its compressed length (Shannon, Eq. 1); HE2RNA keeps
#   tissue tiles under the slide's Otsu grey level;
# * **extract**: ISG encodes each kept patch with E_G and its 64 local patches with E_L; HE2RNA
#   runs ResNet50 on each kept tile;
# * **predict**: the Dual Attention network; HE2RNA's K-means supertiles and MLP.
#
# Weights are untrained (a forward pass costs the same whatever the weights); each method runs in
# its own process so that its peak memory is its own.  The slides are **ISG-Sim (SIMULATED)**.

# %% tags=["parameters"]
import os
profile = os.environ.get("ISG_PROFILE", "quick")  # smoke | quick | paper

# %%
import time

import pandas as pd
from IPython.display import display

from isg_core.cohort import ensure_cohort, load_cohort
from isg_core.efficiency import extrapolate, measure, plot_stages, summarise_efficiency
from isg_core.report import notebook_command, profile_results_dir, save_figure, write_table

T0 = time.perf_counter()
command = notebook_command("11_efficiency.ipynb", profile)
cohort = load_cohort(ensure_cohort(profile))
n_slides = {"smoke": 2, "quick": 6}.get(profile, 12)
slides = list(cohort.manifest.path[:n_slides])
rows = measure(["isg", "he2rna"], profile, slides, threads=2)
summary = summarise_efficiency(rows, f"ISG-Sim {profile} ({len(slides)} slides, SIMULATED)")
write_table(summary, "efficiency_sim", profile, command, config={"slides": len(slides), "threads": 2},
            title="Inference seconds per slide by stage (ISG-Sim, SIMULATED)",
            note="Untrained weights (timing does not depend on them); each method in its own process; "
                 "mean over slides after one warm-up slide. 'paper s/slide' is the paper's number on TCGA slides.")
summary.round(3)

# %%
axes = plot_stages(summary, title=f"Seconds per slide by stage: ISG-Sim {profile} (SIMULATED)")
save_figure(axes[0].figure, "fig_efficiency_sim", profile)

# %% [markdown]
# ## A large slide, and the 1e5 x 1e5 px extrapolation
#
# The simulated slides above are small: at `quick` about 270 global patches, about 110 of them tissue
# (`smoke`: 16).  A TCGA diagnostic slide holds thousands.  `benchmarks/inference.py`
# writes a large simulated slide (40 000 x 40 000 px, about 24 000 global patches), times both
# paths on it, on the real CMU-1-Small-Region and on the simulated cohort, and writes
# `results/<profile>/benchmark_inference.csv` with the command that made it.  Seconds at
# 1e5 x 1e5 px are extrapolated in proportion to the area.

# %%
bench = profile_results_dir(profile) / "benchmark_inference.csv"
if bench.exists():
    big = pd.read_csv(bench)
    big["s/slide at 1e5 x 1e5 px"] = extrapolate(big)
    md = (profile_results_dir(profile) / "benchmark_inference.md").read_text()
    print(next(line for line in md.splitlines() if line.startswith("Made by")))
    axes = plot_stages(big, title="Seconds per slide by stage (benchmarks/inference.py)")
    save_figure(axes[0].figure, "fig_efficiency_benchmark", profile)
    display(big.round(3))
else:
    print(f"{bench} not found: run `python benchmarks/inference.py --profile {profile}` to make it")

# %%
print(f"notebook 11 ran in {time.perf_counter() - T0:.0f} s at profile {profile}")
