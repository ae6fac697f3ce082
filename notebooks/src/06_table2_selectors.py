# %% [markdown]
# # 06 · Table 2: Shannon selection against other patch selectors
#
# The paper (Table 2) swaps ISG's Shannon selection for other ways of choosing patches, everything
# else fixed: image gradient (IG), Canny edges, DexiNed (a learned edge detector), difference of
# Gaussians (DoG), Laplacian of Gaussian (LoG) and Otsu's tissue mask (HE2RNA's). Shannon wins there
# (0.435 against 0.253-0.403).
#
# Here: one ISG-10-2 model for all tasks (the setting of the paper's discussion), on **ISG-Sim
# (SIMULATED)**, each selector at the threshold notebook 02 calibrated. The features were extracted
# once for every patch, so a row differs from another only by which patches the model sees. DexiNed
# is not run: its pretrained weights cannot be downloaded here. The last column, the number of
# patches per slide, matters for reading the table: a selector that keeps more patches gives the
# model more (and noisier) input.

# %% tags=["parameters"]
import os
profile = os.environ.get("ISG_PROFILE", "quick")  # smoke | quick | paper

# %%
import time

import matplotlib.pyplot as plt
import torch

from isg_core.experiments import SIGNIFICANCE_NOTE, describe, plot_table, reproduce_table
from isg_core.report import notebook_command, save_figure, write_table

T0 = time.perf_counter()
torch.set_num_threads(1)
command = notebook_command("06_table2_selectors.ipynb", profile)
run = reproduce_table(2, profile)
write_table(run.summary, "table_2", profile, command, config=run.config,
            title="Table 2: patch selectors (ISG-Sim, SIMULATED)",
            note="ISG-Sim is SIMULATED. One ISG-10-2 for all tasks; PCC averaged over the genes of the three tasks per "
                 "fold, mean and SD over 5 folds. DexiNed (paper: 0.402) not run: no weights offline.")
run.summary.round(3)

# %%
fig, ax = plt.subplots(figsize=(8, 3.6))
plot_table(run, ax, title="Table 2 on ISG-Sim (SIMULATED)")
fig.tight_layout()
save_figure(fig, "fig_table_2", profile)

# %% [markdown]
# ## Paired differences
# Shannon (the "ISG" row) against each selector: a paired bootstrap over test slides (within fold and
# cancer type).

# %%
write_table(run.differences, "table_2_significance", profile, command,
            title="Table 2: Shannon against each selector, paired bootstrap (ISG-Sim, SIMULATED)",
            note=SIGNIFICANCE_NOTE)
write_table(run.programmes, "table_2_programmes", profile, command,
            title="Table 2 per gene programme: paired differences (ISG-Sim, SIMULATED)", note=SIGNIFICANCE_NOTE)
print(describe(run, "ISG"))
run.differences.round(3)

# %% [markdown]
# ## What each selector keeps
# Notebook 02 scored every selector against the simulator's record of which patches are textured
# (`results/<profile>/selection_isg_sim.csv`). Beside the PCC: precision (kept patches that are
# tissue) and recall (tissue patches kept). A selector with high recall keeps the signal; low
# precision adds textureless patches the model has to learn to ignore.

# %%
from isg_core.report import profile_results_dir

sel_csv = profile_results_dir(profile) / "selection_isg_sim.csv"
if sel_csv.exists():
    import pandas as pd

    sel = pd.read_csv(sel_csv).set_index("method")
    name_to_sel = {"ISG-IG": "ig", "ISG-CANNY": "canny", "ISG-DoG": "dog", "ISG-LoG": "log", "ISG-Otsu": "otsu",
                   "ISG": "shannon"}
    merged = run.summary[["method", "PCC mean", "PCC sd (folds)", "patches/slide"]].assign(
        precision=[sel.precision.get(name_to_sel[m]) for m in run.summary.method],
        recall=[sel.recall.get(name_to_sel[m]) for m in run.summary.method])
    view = merged.round(3)
else:
    view = "run notebook 02 first for the selectors' precision and recall"
view

# %%
print(f"notebook 06 ran in {time.perf_counter() - T0:.0f} s at profile {profile}")
