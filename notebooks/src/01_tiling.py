# %% [markdown]
# # 01 · Two-resolution tiling
#
# ISG (Sec. 3) cuts a slide into **global** patches of p x p pixels and each global patch into
# **local** patches of q x q pixels that keep their grid positions. The paper does not give p, q or
# the magnification; our defaults (`TilingConfig`) are 0.5 µm/px (20x), p = 256 px (128 µm: a
# gland or a tumour nest with its stroma) and q = 32 px (16 µm: one or two nuclei), so every
# global patch has an 8 x 8 local grid. Tiling reads no pixels: it is the same cost for any
# slide, and it is stored as HDF5 in CLAM's convention (`coords` + attributes) for the later
# stages to add their datasets to.

# %% [markdown]
# **In this notebook you will learn**
#
# * how a slide becomes global patches (p px) and, inside each, a grid of local patches (q px), at a fixed mpp
# * how tiles are stored (HDF5: `coords` plus attributes, as TRIDENT/CLAMP do) and reused only for the same slide
# * what the tiling looks like on a real Aperio slide and on ISG-Sim
#
# The runtime below was measured on 2 CPU cores; the closing cell, **What we found**, is generated from the
# results files this notebook writes, so it always describes the last run.

# %% tags=["parameters"]
import os
profile = os.environ.get("ISG_PROFILE", "quick")  # smoke | quick | paper

# %%
from IPython.display import Markdown
import h5py
import matplotlib.pyplot as plt
import numpy as np
from tqdm.auto import tqdm

from isg_core.cohorts.folder import ensure_cohort, ensure_samples
from isg_core.config import get_profile
from isg_core.report.diagrams import draw_tiling
from isg_core.data.manifest import read_manifest
from isg_core.paths import data_dir
from isg_core.report.outputs import notebook_command, save_figure, write_table
from isg_core.data.samples import sample_path
from isg_core.data.slides import open_slide
from isg_core.data.tiling import read_global_patch, read_tiling_h5, split_local, tile_slide, tile_to_h5
from isg_core.data.thumbnails import thumbnail_with_grid
from isg_core.report.tutorial import runtime_note, what_we_found

cfg = get_profile(profile).tiling
ensure_samples()
print(cfg, "-> local grid", cfg.grid, "x", cfg.grid)

# %%
NOTEBOOK = "01_tiling.ipynb"
Markdown(runtime_note(NOTEBOOK, profile))

# %% [markdown]
# ## The two resolutions, drawn from the profile's config
# What one global patch holds and what each extractor sees (`isg_core.report.diagrams.draw_tiling`).

# %%
ax = draw_tiling(cfg, get_profile(profile).features)
ax.figure.tight_layout()

# %% [markdown]
# ## The grids on a real slide
# CMU-1-Small-Region is scanned at 0.499 µm/px, so a 256 px patch at 0.5 µm/px spans 256.5
# level-0 pixels; the tiling keeps that fractional size and rounds only the corners.

# %%
slide = open_slide(sample_path("cmu"))
tiling = tile_slide(slide, cfg)
print(slide)
print(f"{tiling.n_patches} global patches on a {tiling.grid_shape[0]} x {tiling.grid_shape[1]} grid, "
      f"read from level {tiling.level}, {tiling.patch_size_level0:.2f} level-0 px each")
i = int(np.argmin(np.abs(tiling.grid_index - np.array(tiling.grid_shape) // 2).sum(1)))  # the central patch
fig, ax = plt.subplots(figsize=(6, 8))
thumbnail_with_grid(slide, tiling, ax=ax, local_for=i, title="global grid (green), local grid of one patch (red)")
_ = save_figure(fig, "fig_tiling_cmu", profile)

# %% [markdown]
# One global patch and its local patches, at their grid positions (`split_local`):

# %%
patch = read_global_patch(slide, tiling, i)
local = split_local(patch, cfg.local_size)
print("global patch", patch.shape, "-> local patches", local.shape)
fig = plt.figure(figsize=(11, 5))
ax = fig.add_subplot(1, 2, 1)
ax.imshow(patch)
ax.set_title(f"global patch {i}, {cfg.global_size} px")
ax.set_axis_off()
g = cfg.grid
for r in range(g):
    for c in range(g):
        a = fig.add_subplot(g, 2 * g, r * 2 * g + g + c + 1)
        a.imshow(local[r, c])
        a.set_axis_off()
plt.tight_layout()

# %% [markdown]
# ## The HDF5 file
# `tile_to_h5` (and `isg tile SLIDE... --out DIR`) writes `<slide_id>.h5`: `coords` (level-0
# top-left corners), `grid_index` (row, column) and `local_offsets`, with the patch size, level,
# downsample, mpp and slide id as attributes. A complete file made with the same config is kept
# (skip-if-done).

# %%
work = data_dir() / "work" / profile / "tiles"
path, written = tile_to_h5(sample_path("cmu"), work, cfg)
with h5py.File(path, "r") as f:
    print(path.name, {k: f[k].shape for k in f})
    for k, v in f["coords"].attrs.items():
        print(f"  {k:18s} {v}")
print("written now" if written else "kept (already tiled)")

# %% [markdown]
# ## Tiling the simulated cohort
# Every ISG-Sim slide (SIMULATED) is tiled the same way. The simulated slides are written at
# 0.5 µm/px, so their grid is exactly the simulator's own patch map (`patches.csv`).

# %%
cohort_root = ensure_cohort(profile)
manifest = read_manifest(cohort_root / "manifest.csv")
n_patches = {}
for row in tqdm(manifest.itertuples(), total=len(manifest), desc="tiling ISG-Sim"):
    p, _ = tile_to_h5(row.path, work, cfg)
    n_patches[row.slide_id] = read_tiling_h5(p).n_patches
import pandas as pd
summary = pd.DataFrame([
    {"data": "CMU-1-Small-Region (real)", "slides": 1, "global_patches": tiling.n_patches,
     "local_patches": tiling.n_patches * cfg.grid ** 2},
    {"data": "ISG-Sim (SIMULATED)", "slides": len(n_patches), "global_patches": sum(n_patches.values()),
     "local_patches": sum(n_patches.values()) * cfg.grid ** 2},
])
print(summary.to_string(index=False))
_ = write_table(summary, "tiling_summary", profile, notebook_command("01_tiling.ipynb", profile),
            config={"profile": profile, "tiling": vars(cfg)}, title="Two-resolution tiling: patch counts")

# %%
row = manifest.iloc[0]
with open_slide(row.path) as s:
    t = tile_slide(s, cfg)
    fig, ax = plt.subplots(figsize=(6, 6))
    thumbnail_with_grid(s, t, ax=ax, local_for=t.n_patches // 2, title=f"SIMULATED {row.cancer_type}: {row.slide_id}")

# %% [markdown]
# ## What we found
# Sentences generated by `isg_core.report.tutorial.what_we_found` from the results files of this profile (the
# tables' CSVs), so they change when the results do.

# %%
Markdown(what_we_found(NOTEBOOK, profile))

# %% [markdown]
# ## Try this
# * Tile the CMU slide with `TilingConfig(global_size=512)`: about a quarter as many global patches, each with 256
#   local patches.
# * Change `mpp` to 1.0: each global patch then covers 256 µm instead of 128 µm, so the same tissue gives about a
#   quarter as many patches, each seeing more architecture and less cell detail.
