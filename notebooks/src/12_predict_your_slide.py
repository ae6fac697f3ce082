# %% [markdown]
# # 12 · Predict your own slide
#
# What a lab wants on its first day: point the tool at a slide and get predictions it can look at.
#
# ```bash
# isg predict my_slide.svs --model results/quick/isg_model.pt --out predictions/
# ```
#
# writes, per slide, the predicted expression per gene (CSV and JSON), the Shannon selection map
# and a heat map of the model's attention per global patch over the thumbnail (PNG), and a
# one-page HTML report with both.  Any OpenSlide format works (SVS, NDPI, MRXS, TIFF, ...);
# a file without a resolution in its metadata (a PNG, a JPEG, a bare TIFF) is refused until
# `--slide-mpp` gives it (patches have a physical size, so it is never guessed).
#
# The model is a **bundle**: the Dual Attention network *and* what made its inputs (tiling,
# Shannon selection, the two encoders' weights, the genes with their training mean and SD).  This
# notebook makes it (ISG-10-2, one model for all tasks, fold 0 of its cross-validation; the fold
# is fixed in advance, not picked by its score), then runs it on the real CMU-1-Small-Region slide
# and on a simulated slide.
#
# **The model is trained on ISG-Sim (SIMULATED).**  On real tissue its numbers show how the
# pipeline works; they are not a measurement of that tissue.  Train on your own TCGA cohort
# (notebooks 03-05 with `--cohort`) to get a model whose predictions mean something.

# %% [markdown]
# **In this notebook you will learn**
#
# * how to run `isg predict` on your own slide and read its CSV, JSON and HTML report
# * which predictions are flagged (genes outside the model's cancer types, genes whose fold PCC is <= 0) and why
#
# The runtime below was measured on 2 CPU cores; the closing cell, **What we found**, is generated from the
# results files this notebook writes, so it always describes the last run.

# %% tags=["parameters"]
import os
profile = os.environ.get("ISG_PROFILE", "quick")  # smoke | quick | paper

# %%
from IPython.display import Markdown
import re
import warnings
import pandas as pd
from IPython.display import Image, display

from isg_core.deploy.bundle import load_bundle
from isg_core.deploy.export import export_default_bundle
from isg_core.cohorts.folder import ensure_cohort, ensure_samples, load_cohort
from isg_core.errors import IsgError
from isg_core.paths import samples_dir, shown
from isg_core.deploy.predict import FLAGGED_ROW, flag_view, predict_slides
from isg_core.report.outputs import profile_results_dir
from isg_core.report.tutorial import flag_sentence, predict_dir, runtime_note, what_we_found

# offline, ResNet50 and LPIPS run on random trunks: every table and label says so, the warning need not
warnings.filterwarnings("ignore", message="(ResNet50|LPIPS): ImageNet")

bundle_path = export_default_bundle(profile)
bundle = load_bundle(bundle_path)
print(f"{shown(bundle_path)}: {bundle_path.stat().st_size / 1e6:.1f} MB, "
      f"{len(bundle.genes)} genes, trained on {bundle.meta['cohort']}, fold {bundle.meta['fold']} "
      f"(mean test PCC of that fold {bundle.meta['test_pcc_mean']:.3f})")

# %%
NOTEBOOK = "12_predict_your_slide.ipynb"
Markdown(runtime_note(NOTEBOOK, profile))

# %% [markdown]
# ## A real slide: CMU-1-Small-Region (Aperio SVS)

# %%
ensure_samples()
out_dir = predict_dir(profile_results_dir(profile))  # results/notebooks/<profile>/predict
cmu = samples_dir() / "CMU-1-Small-Region.svs"  # honours ISG_DATA_DIR
# overwrite: each run exports the bundle anew (a new file), so this notebook predicts afresh every time
rec = predict_slides([cmu], bundle_path, out_dir, overwrite=True, progress=False)[0]
print("CMU-1-Small-Region.predictions.csv:", ", ".join(pd.read_csv(out_dir / "CMU-1-Small-Region.predictions.csv")))

# %% [markdown]
# The CSV has one row per gene: the prediction on the training targets' scale, log10(1 + FPKM-UQ), and
# in FPKM-UQ; the cancer types the gene was trained on; the test PCC of the model's fold for that gene;
# and a `flag` with the reason when the prediction should not be trusted (empty otherwise).  The flag
# is a sentence, so the table below keeps the columns needed to read it and cuts none short:

# %%
plain = flag_view(out_dir / "CMU-1-Small-Region.predictions.csv")
with pd.option_context("display.max_colwidth", None, "display.width", 250):
    display(plain)

# %%
print(f"{rec['selection']['kept']}/{rec['selection']['patches']} patches kept; seconds by stage: {rec['seconds']}")
display(Image(filename=str(out_dir / "CMU-1-Small-Region.selection.png"), width=420))
display(Image(filename=str(out_dir / "CMU-1-Small-Region.attention.png"), width=480))

# %% [markdown]
# The HTML report (`CMU-1-Small-Region.report.html`) holds the table and both maps on one page,
# with the images embedded, so it can be mailed or archived as one file.
#
# ## Reading the flags
#
# A gene's prediction is flagged, with the reason written out, for either of two reasons:
#
# 1. **The slide's cancer type is not one the gene was trained on.** The model learnt each gene's
#    link to the image on slides of the types in `trained_on`; on a slide of another type it
#    extrapolates, and nothing it was tested on says the link holds there.  A slide file does not
#    say what tissue it holds, so this check needs the type from you (`cancer_type=` here,
#    `--cancer-type` for `isg predict`); without it the check is not made and the `trained_on`
#    column is left for you to read, as in the table above.
# 2. **The gene's test PCC in the model's fold is <= 0.** On the held-out test slides of the fold
#    the bundle's model comes from, its predictions of that gene correlated with the measured
#    expression no better than chance (unrelated numbers give a PCC around 0): nothing shows that
#    its prediction says anything about a slide, whatever the slide's type.
#
# CMU-1-Small-Region is skin: notebook 00 describes it as a skin dermis slide (ISG-Sim's tissue
# texture is quilted from it).  No gene of this model was trained on skin.  TCGA's skin cancer
# project is SKCM (skin cutaneous melanoma), so we predict the slide again as SKCM.  **SKCM is our
# assumption** for this skin sample, not a label from its metadata: the SVS file records the scanner,
# the magnification and the date, no tissue and no diagnosis.  The outputs go to a folder of their
# own (`predict/SKCM/`), so the ones above, made with no cancer type, stay as they are.

# %%
skin_dir = out_dir / "SKCM"
predict_slides([cmu], bundle_path, skin_dir, cancer_type="SKCM", overwrite=True, progress=False)
skin = flag_view(skin_dir / "CMU-1-Small-Region.predictions.csv")
with pd.option_context("display.max_colwidth", None, "display.width", 250):
    display(skin)

# %% [markdown]
# The report greys the flagged rows: each is written `<tr class="flagged">` and styled grey.  Counting
# them in the HTML file the call wrote:

# %%
report = (skin_dir / "CMU-1-Small-Region.report.html").read_text()
greyed = report.count(f"<tr{FLAGGED_ROW}>")
style = re.search(r"tr\.flagged td\{[^}]*\}", report)
print(f"CMU-1-Small-Region.report.html: {greyed} of {len(skin)} gene rows greyed "
      f"(style: {style.group(0) if style else 'not found'}); flagged in the CSV: {int((skin.flag != '').sum())}")

# %% [markdown]
# The same flags in one sentence each (`isg_core.report.tutorial.flag_sentence`, which the closing cell uses too):
# with the slide's type, and with none given. The test-PCC flag does not depend on the slide.

# %%
Markdown(f"- {flag_sentence('As SKCM', skin)} The report greys {greyed} rows.\n"
         f"- {flag_sentence('With no cancer type given', plain)}")

# %% [markdown]
# ## A simulated slide the model did not train on
#
# The bundle's model is fold 0's: the slides of fold 0 were its test slides.  On one of them we
# can set the prediction beside the measured expression and the simulator's noiseless truth.

# %%
cohort = load_cohort(ensure_cohort(profile))
m = cohort.manifest
sim = m[(m.fold == bundle.meta["fold"]) & (m.cancer_type == "COAD")].iloc[0]
# the type of a simulated slide is known: the genes trained on other types are flagged
sim_dir = out_dir / "simulated"
rec_sim = predict_slides([sim.path], bundle_path, sim_dir, cancer_type=sim.cancer_type, overwrite=True,
                         progress=False)[0]
genes = [g for g in bundle.genes if "COAD" in bundle.meta["gene_tasks"].get(g, [])]
compare = pd.DataFrame({
    "predicted": [rec_sim["predictions"][g]["log10_fpkm_uq_plus_1"] for g in genes],
    "measured": cohort.targets.loc[sim.slide_id, genes].to_numpy(float),
    "truth (noiseless)": cohort.truth.loc[sim.slide_id, genes].to_numpy(float),
    "cohort SD": cohort.targets.loc[m.slide_id[m.cancer_type == "COAD"], genes].std().to_numpy(),
}, index=genes)
print(f"{sim.slide_id} (SIMULATED, {sim.cancer_type}, a test slide of fold {bundle.meta['fold']}): "
      f"log10(1 + FPKM-UQ) of the genes trained on {sim.cancer_type}")
compare.round(3)

# %%
print(flag_sentence(f"{sim.slide_id} as {sim.cancer_type}", pd.read_csv(sim_dir / f"{sim.slide_id}.predictions.csv")))
display(Image(filename=str(sim_dir / f"{sim.slide_id}.attention.png"), width=420))

# %% [markdown]
# ## When the model and the request do not match
#
# A bundle is checked when it is loaded and used: asking for a gene it does not predict, giving
# a file that is not a bundle, or weights that do not fit its config each stop with one line
# that names the file.

# %%
try:
    predict_slides([cmu], bundle_path, out_dir, genes=["CD3D", "EPCAM"], progress=False)
except IsgError as e:
    print("isg: error:", e)

# %% [markdown]
# ## What we found
# Sentences generated by `isg_core.report.tutorial.what_we_found` from the predictions this notebook wrote
# (`results/notebooks/<profile>/predict/`), so they change when the predictions do.

# %%
Markdown(what_we_found(NOTEBOOK, profile))

# %% [markdown]
# ## Try this
# * Predict on `tiatoolbox`'s `target_image.png` (`isg predict target_image.png --slide-mpp 0.5 ...`): a single tile
#   gives only a few kept patches, so the prediction rests on little tissue.
# * Ask for a gene the bundle does not predict (`genes=["EPCAM"]`): a one-line error names it.
# * Predict the real slide as a type the model was trained on (`cancer_type="LIHC"`, or `--cancer-type LIHC`): only
#   the genes trained on other types, and those whose fold test PCC is <= 0, stay flagged.
