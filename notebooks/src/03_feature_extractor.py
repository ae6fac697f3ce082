# %% [markdown]
# # 03 · The Feature Extraction network
#
# ISG (Sec. 3.2, Eq. 2) learns patch features without labels: an encoder E maps a patch x to a
# d-dimensional code, a **StyleGAN2** generator D reconstructs the patch from it, and a discriminator
# C pushes the reconstructions to look real. Two such autoencoders are trained, one on **global**
# patches (p = 256 px at 0.5 mpp, resized to the profile's working resolution) and one on **local**
# patches (q = 32 px). After training only the encoders are kept: f_i = E_G(x_i) for each kept global
# patch and R_i = E_L(local patches of x_i), one code per cell of the 8 x 8 local grid.
#
# Eq. 2 as the paper prints it, with u = softplus and phi the LPIPS network:
#
# $$\mathcal{L}_1 = \lVert x - D(E(x)) \rVert_1, \qquad
#   \mathcal{L}_{\mathrm{LPIPS}} = \lVert \phi(x) - \phi(D(E(x))) \rVert_2^2, \qquad
#   \mathcal{L}_C = u(C(x)) + u(-C(D(E(x)))),$$
#
# $$\min_{D, E}\; \max_{C}\; \mathbb{E}_x \left[ \mathcal{L}_1 + \mathcal{L}_{\mathrm{LPIPS}} + \mathcal{L}_C \right].$$
#
# The objective, with the sign convention we use (C scores *realness*; the paper prints the same game
# with C scoring fakeness):
#
# * autoencoder: L1 + LPIPS + lambda_adv softplus(-C(D(E(x)))), every weight 1 and C on from the first
#   step, as Eq. 2 prints it (chosen on the development cohort: `results/quick/extractor_choices.md`).
#   LPIPS is the `lpips` package's; its AlexNet trunk is random unless the ImageNet weights are cached
#   (offline they are not), and every table says which.
# * discriminator: softplus(-C(x)) + softplus(C(D(E(x)))) + R1
#
# This notebook trains both extractors on the **ISG-Sim (SIMULATED)** cohort's Shannon-selected
# patches, shows the loss curves and reconstructions, extracts the features of every slide, measures
# throughput, and projects the features to 2-D coloured by the simulator's tissue class.

# %% [markdown]
# **In this notebook you will learn**
#
# * the two autoencoders E_G/D_G and E_L/D_L and their objective (Eq. 2: L1 + LPIPS + adversarial)
# * how to read their loss curves and reconstructions, and what the codes cluster by
# * what it costs to encode every kept patch, against ResNet50
#
# The runtime below was measured on 2 CPU cores; the closing cell, **What we found**, is generated from the
# results files this notebook writes, so it always describes the last run.

# %% tags=["parameters"]
import os
profile = os.environ.get("ISG_PROFILE", "quick")  # smoke | quick | paper

# %%
from IPython.display import Markdown
import warnings
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from isg_core.cohorts.folder import ensure_cohort, load_cohort
from isg_core.config import get_profile
from isg_core.report.diagrams import draw_autoencoders
from isg_core.features.extract import read_features
from isg_core.features.figures import plot_losses
from isg_core.features.workflow import reconstruction_figure
from isg_core.features.train import checkpoint_summary, load_checkpoint
from isg_core.features.workflow import architecture_table, ensure_extractor, ensure_features, ensure_prepared
from isg_core.report.outputs import notebook_command, save_figure, write_table
from isg_core.report.tutorial import runtime_note, what_we_found

# offline, ResNet50 and LPIPS run on random trunks: every table and label says so, the warning need not
warnings.filterwarnings("ignore", message="(ResNet50|LPIPS): ImageNet")

prof = get_profile(profile)
cohort_root = ensure_cohort(profile)
cohort = load_cohort(cohort_root)
tiles = cohort_root / "tiles"
command = notebook_command("03_feature_extractor.ipynb", profile)
print("profile", profile, "|", cohort.label, "|", len(cohort.manifest), "slides")
print(prof.features)

# %%
NOTEBOOK = "03_feature_extractor.ipynb"
Markdown(runtime_note(NOTEBOOK, profile))

# %% [markdown]
# ## The networks
# Channels at resolution r are `min(channel_max, channel_base / r)`; the generator starts from a
# learned 4 x 4 constant plus a projection of the style (so the code can place structures), and has
# two modulated convolutions per resolution, noise inputs and skip to-RGB outputs. The discriminator
# is residual with a minibatch standard-deviation layer. Sizes at this profile:

# %%
architecture_table(prof.features)

# %% [markdown]
# The two autoencoders drawn from the same config, stage by stage with the traced tensor shapes
# (`isg_core.report.diagrams.draw_autoencoders`):

# %%
fig = draw_autoencoders(prof.features, prof.tiling)

# %% [markdown]
# ## Training
# Training patches come only from regions the Shannon selector kept (Sec. 3.2 trains on the selected
# patches): a bank of patches read once from the slides. `ensure_extractor` trains, or finds the
# finished checkpoint of an earlier run; the same command line is
# `isg train-extractor --scale global --profile quick` (add `--resume` after an interruption).

# %%
ensure_prepared(cohort_root, prof)
ckpts = {scale: ensure_extractor(scale, prof, cohort_root) for scale in ("global", "local")}
summary = pd.DataFrame([checkpoint_summary(p) for p in ckpts.values()]).drop(columns=["config"])
summary["checkpoint"] = [str(p.relative_to(cohort_root)) for p in ckpts.values()]
write_table(summary, "feature_extractor_training", profile, command,
            title="Feature Extraction network: training (ISG-Sim, SIMULATED)",
            note="Final L1 and LPIPS are means over the last 50 steps. lpips_trunk says whether LPIPS used "
                 "ImageNet AlexNet weights or (offline) the lpips package's random trunk.")
summary

# %% [markdown]
# The adversarial term is on from the first step (right panels). It holds L1 well above what a plain
# autoencoder reaches (about 0.35 against 0.13 for E_L on the development cohort): the reconstructions
# are blurrier, and yet the codes read cell counts better (the development-cohort study above).

# %%
fig, axes = plt.subplots(2, 2, figsize=(11, 6.4))
for row, (scale, path) in enumerate(ckpts.items()):
    ck = load_checkpoint(path)
    plot_losses(pd.DataFrame(ck["history"]).set_index("step"), title=scale, ax=axes[row], lpips_trunk=ck["lpips_trunk"])
fig.tight_layout()
_ = save_figure(fig, "fig_fe_losses", profile)

# %% [markdown]
# ## Reconstructions
# Inputs (top rows) beside D(E(x)) (bottom rows), on kept patches of slides of **fold 0** chosen in
# slide order. A d-dimensional code cannot hold every nucleus: what should survive is the colour,
# where tissue and glass are, and the coarse texture; the details are what the adversarial term is
# for, and need far longer training than a CPU profile gives.

# %%
test_ids = cohort.manifest[cohort.manifest["fold"] == 0]
fig = reconstruction_figure(ckpts, test_ids, tiles, n=8, seed=1, title="ISG-Sim (SIMULATED), fold-0 slides: "
                            "global and local patches at the networks' resolution")
_ = save_figure(fig, "fig_fe_reconstructions", profile)

# %% [markdown]
# ## Extraction
# `isg extract --global CKPT --local CKPT` adds `features/fe/{index,global,local}` to every slide's
# HDF5: f_i (d) and R_i (8 x 8 x d) for every global patch of the slide (a selection is applied when
# the features are read, so Tables 2 and 4 compare selectors without a second extraction), batched and
# streamed (the next batch is read while the current one is encoded), skipping slides already done.
# Throughput on this machine:

# %%
done = ensure_features(("fe",), prof, cohort_root)["fe"]
# seconds per slide are stored with the features, so a rerun that skips done slides reports them too
thr = pd.DataFrame([{"features": "fe (E_G + E_L)", "device": done.attrs["device"],
                     "torch threads": torch.get_num_threads(),
                     "slides": len(done), "global patches": int(done.n.sum()),
                     "local patches": int(done.n.sum()) * prof.tiling.grid ** 2,
                     "patches/s (global, with their local patches)": done.attrs["patches_per_second_recorded"]}])
write_table(thr, "feature_extraction_throughput", profile, command,
            title="Feature extraction throughput (ISG-Sim, SIMULATED slides)",
            note="Global patches per second, each with its 64 local patches, including reading them from the slide, "
                 "summed over the slides' recorded extraction times. GPU figures come from "
                 "`python benchmarks/extraction.py --device cuda` when a GPU is lent.")
thr

# %% [markdown]
# ## What the features see
# A 2-D projection (PCA, computed with numpy) of f_i for every kept patch, coloured by the tissue class
# the simulator drew there. No label was used in training, so any separation is the autoencoder's own.
# Right: one patch and its local cube R_i, shown as an image of its first three principal components.

# %%
def pca2(x: np.ndarray, k: int = 2) -> np.ndarray:
    x = x - x.mean(0)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    return x @ vt[:k].T

from isg_core.experiments.table5 import patch_features

X, meta = patch_features(cohort.manifest, tiles, "fe:global", cohort.patches)
Z = pca2(X)
fig, axes = plt.subplots(1, 3, figsize=(15, 4.6), gridspec_kw={"width_ratios": [1.4, 1, 1]})
for cls, sub in meta.groupby("tissue_class"):
    axes[0].scatter(Z[sub.index, 0], Z[sub.index, 1], s=4, alpha=0.6, label=cls)
axes[0].legend(markerscale=4, fontsize=8)
axes[0].set(title="f_i (global features), PCA; colour = simulated tissue class", xlabel="PC1", ylabel="PC2")

from isg_core.data.slides import open_slide
from isg_core.data.tiling import read_global_patch, read_tiling_h5

row = cohort.manifest.iloc[0]
feats = read_features(tiles / f"{row.slide_id}.h5", "fe")
i = int(np.argmax(feats.global_.std(1)))
tiling = read_tiling_h5(tiles / f"{row.slide_id}.h5")
with open_slide(row.path) as slide:
    patch = read_global_patch(slide, tiling, int(feats.index[i]))
cube = feats.local[i]
c3 = pca2(cube.reshape(-1, cube.shape[-1]), 3).reshape(*cube.shape[:2], 3)
c3 = (c3 - c3.min((0, 1))) / (np.ptp(c3, axis=(0, 1)) + 1e-9)
axes[1].imshow(patch)
axes[1].set(title=f"{row.slide_id}, patch {int(feats.index[i])}")
axes[2].imshow(c3, interpolation="nearest")
axes[2].set(title="R_i: 8 x 8 local codes (first 3 PCs as RGB)")
for a in axes[1:]:
    a.set_xticks([]), a.set_yticks([])
fig.tight_layout()
_ = save_figure(fig, "fig_fe_projection", profile)

# %% [markdown]
# How well do tissue classes separate? The share of each patch's 10 nearest neighbours (in f_i,
# excluding itself) that have its tissue class, against the share expected by chance:

# %%
from isg_core.experiments.table5 import knn_agreement

agree = knn_agreement(X, meta["tissue_class"].to_numpy(), k=10)
agree

# %% [markdown]
# ## What we found
# Sentences generated by `isg_core.report.tutorial.what_we_found` from the results files of this profile (the
# tables' CSVs), so they change when the results do.

# %%
Markdown(what_we_found(NOTEBOOK, profile))

# %% [markdown]
# ## Try this
# * Set `FeatureConfig(global_steps=300, local_steps=200)`: reconstructions blur and the loss curves are still
#   falling at the end.
# * Train without the adversarial term (`ExtractorTrainConfig(lambda_adv=0)`, the weight of L_C): expect a lower L1
#   and flatter, blurrier textures.
