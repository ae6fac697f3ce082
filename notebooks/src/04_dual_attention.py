# %% [markdown]
# # 04 · The Dual Attention network, on one slide
#
# ISG's predictor (Sec. 3.3, Fig. 3) takes, for every kept global patch i of a slide, the global feature
# f_i (d numbers) and the local cube R_i (8 x 8 positions x d), and predicts the slide's expression
# vector. Per patch:
#
# * **MBConv** blocks (EfficientNet's inverted residual, reused from torchvision) refine the cube;
# * after every b-th MBConv an **attention-fusion** block runs two updaters in parallel:
#   * *local feature updater* (global guides local): Q = Reshape(W_q f), K = R W_k, V = R W_v,
#     A = Sigmoid(Q (.) K) (Eq. 4), R <- (A (.) V) W_r (Eq. 5);
#   * *global feature updater* (local guides global): Z = Softmax(Reshape(W_z f)) over the 64
#     positions (Eq. 6), P = R W_p (Eq. 7), f <- (Sum Z (.) P) W_f (Eq. 8);
# * ISG-a-b has a MBConv blocks and a fusion after every b (the paper keeps ISG-10-2).
#
# Typeset, at fusion layer t for patch i (N = p^2/q^2 = 64 local positions, d channels, (.) the
# Hadamard product):
#
# $$Q^t_i = \mathrm{Reshape}(W^t_q f^{t-1}_i),\quad K^t_i = R^{t-1}_i W^t_k,\quad V^t_i = R^{t-1}_i W^t_v
#   \qquad (3)$$
# $$A^t_i = \mathrm{Sigmoid}(Q^t_i \odot K^t_i),\quad Q^t_i \in \mathbb{R}^{\frac{p}{q} \times \frac{p}{q} \times 1}
#   \qquad (4)$$
# $$R^t_i = (A^t_i \odot V^t_i)\, W^t_r \qquad (5)$$
# $$Z^t_i = \mathrm{Softmax}_{\text{spatial}}(\mathrm{Reshape}(W^t_z f^{t-1}_i)) \qquad (6)$$
# $$P^t_i = R^{t-1}_i W^t_p \qquad (7)$$
# $$f^t_i = \Big(\sum_{\text{spatial}} Z^t_i \odot P^t_i\Big) W^t_f \qquad (8)$$
#
# with $W_q, W_z \in \mathbb{R}^{N \times d}$ and $W_k, W_v, W_r, W_p, W_f \in \mathbb{R}^{d \times d}$.
# Ours adds each update to its input (R^t = R^{t-1} + Eq. 5, f^t = f^{t-1} + Eq. 8: the residuals the
# paper leaves open), and the network is trained on the paper's loss
# $\mathcal{L}_2 = \lVert Y - M(F_G, F_L) \rVert_2^2$ over per-gene standardised targets.
#
# Every residual branch (each MBConv's last norm, W_r and W_f) starts at zero, so at initialisation the
# stack hands f_i and R_i on unchanged.
# Then each patch becomes one token (the average-pooled cube, concatenated with f_i as it is), a 2-D sine-cosine
# embedding of the patch's grid position is added, and a small ViT over the slide's tokens reads the
# prediction out of a class token. The choices the paper leaves open (residuals around Eqs. 5 and 8,
# LayerNorm before each fusion, the token, the positions, the ViT size) are fields of
# `DualAttentionConfig`; its docstring says why each default. The cohort is **ISG-Sim (SIMULATED)**.

# %% [markdown]
# **In this notebook you will learn**
#
# * the Dual Attention network (Eqs. 3-8): MBConv blocks and attention fusion between f_i and R_i
# * how one slide flows through it, with the tensor shapes, and why every residual branch starts at zero
# * how to read a training curve against the trivial baseline, and what the attention maps do and do not show
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

from isg_core.deploy.attention import patch_images, slide_attention
from isg_core.cohorts.folder import ensure_cohort, load_cohort
from isg_core.config import get_profile
from isg_core.report.diagrams import draw_dual_attention
from isg_core.models import DualAttentionConfig, DualAttentionNetwork
from isg_core.experiments import isg_full, load_experiment_data, run_experiment
from isg_core.features.workflow import ensure_features
from isg_core.report.outputs import notebook_command, save_figure, write_table
from isg_core.report.tutorial import runtime_note, what_we_found

# offline, ResNet50 and LPIPS run on random trunks: every table and label says so, the warning need not
warnings.filterwarnings("ignore", message="(ResNet50|LPIPS): ImageNet")

torch.set_num_threads(1)
prof = get_profile(profile)
root = ensure_cohort(profile)
cohort = load_cohort(root)
ensure_features(("fe",), prof, root)
print("profile", profile, "|", cohort.label)

# %%
NOTEBOOK = "04_dual_attention.ipynb"
Markdown(runtime_note(NOTEBOOK, profile))

# %% [markdown]
# ## One slide's input
# The features of the Shannon-kept patches of one LIHC slide, as the training engine reads them.

# %%
exp = isg_full()  # ISG-10-2 at full width (d channels, as the paper's equations) with Shannon selection
lihc = cohort.manifest[cohort.manifest.cancer_type == "LIHC"]
sid = lihc.slide_id.iloc[0]
one = load_experiment_data(root / "tiles", [sid], exp, prof.tiling.global_size ** 2)
d, g = one.f[0].shape[1], one.R[0].shape[1]
print(f"{sid}: {len(one.f[0])} kept patches; f_i: {one.f[0].shape[1:]} (d = {d}); R_i: {one.R[0].shape[1:]}; "
      f"positions: {one.pos[0][:3].tolist()} ...")

# %% [markdown]
# ## The network
# The layer plan of ISG-10-2 and the parameters per part, at full width (d channels throughout, as the
# paper's equations; the tables' ISG works at the profile's narrower `width`, chosen on the development
# cohort, and Table 1 has a full-width row beside it).

# %%
cfg = DualAttentionConfig(d=d, grid=g, n_outputs=7, **dict(exp.overrides))
net = DualAttentionNetwork(cfg)
print(cfg.name, "->", " ".join("M" if s == "mbconv" else "[F]" for s in net.layer_plan()), "-> tokens -> ViT")
pd.DataFrame({"parameters": net.parameter_counts()})

# %% [markdown]
# The same network drawn block by block, with the tensor shapes traced through it for a slide of N kept
# patches (`isg_core.report.diagrams.draw_dual_attention`; narrow blocks work at the profile's width):

# %%
fig = draw_dual_attention(d, g, 7, **dict(exp.overrides))

# %%
f, R = torch.from_numpy(one.f[0])[None], torch.from_numpy(one.R[0].astype(np.float32))[None]
mask, pos = torch.ones(1, f.shape[1], dtype=torch.bool), torch.from_numpy(one.pos[0])[None]
out, info = net(f, R, mask, pos, return_attention=True)
print("prediction", tuple(out.shape), "| A per fusion block", tuple(info["A"][0].shape),
      "| Z", tuple(info["Z"][0].shape), "| class-token attention per ViT block", tuple(info["cls_attention"][-1].shape))
# the design says the order of the patches must not matter: check it on this slide
perm = torch.randperm(f.shape[1])
net.eval()
print("same prediction with the patches shuffled:",
      torch.allclose(net(f, R, mask, pos), net(f[:, perm], R[:, perm], mask, pos[:, perm]), atol=1e-5))

# %% [markdown]
# ## Train it
# ISG-10-2 on the LIHC slides, 5-fold cross-validation (the Table 1 run of notebook 05, which finds it
# done). Inputs are standardised with the training slides' statistics, targets are standardised
# log-expression, the loss is the paper's $\mathcal{L}_2 = \lVert Y - M(F_G, F_L) \rVert_2$ (Sec. 3.3; it has no
# equation number there: Eq. 3 is the query, key and value above), and an inner validation split picks the epoch.

# %%
res = run_experiment(cohort, root / "tiles", exp, "LIHC", prof, root / "runs")
hist = pd.read_csv(res.run_dir / "fold0_history.csv")
fig, ax = plt.subplots(figsize=(5, 3))
ax.plot(hist.epoch, hist.train_loss, label="train")
ax.plot(hist.epoch, hist.val_loss, label="inner validation")
ax.set(xlabel="epoch", ylabel="L2 (standardised targets)", title="ISG-10-2, LIHC, fold 0")
ax.legend()
fig.tight_layout()
save_figure(fig, "fig_isg_training_curve", profile)
command = notebook_command(NOTEBOOK, profile)
write_table(hist, "isg_training_curve", profile, command, title="ISG-10-2 (full width), LIHC, fold 0: L2 per epoch",
            note="ISG-Sim is SIMULATED. L2 on per-gene standardised targets: predicting the training mean scores "
                 "about 1.0.")
per_gene = res.rows.groupby("gene", sort=False).pcc.agg(["mean", "std"]).reset_index()
write_table(per_gene, "isg_lihc_per_gene", profile, command,
            title="ISG-10-2 (full width), LIHC: PCC per gene over 5 folds",
            note="ISG-Sim is SIMULATED. Mean and SD over the 5 folds of the per-fold PCC.")
per_gene.round(3)

# %% [markdown]
# ## What the trained model looks at
# Fold 0's model on a slide of fold 0's test set (a slide it never saw): the slide with the most
# tumour-infiltrating T cells according to the simulator's truth, chosen for illustration only.
# Top row: the three patches the class token attends to most. Then, for the last fusion block, the
# gate A (Eq. 4, averaged over channels: which local positions pass) and Z (Eq. 6: where f_i reads).

# %%
model, ck = res.load_model(0)
test = [s for s in res.predictions.index if cohort.manifest.set_index("slide_id").fold[s] == 0]
pick = cohort.truth.loc[test, "CD3D"].idxmax() if cohort.truth is not None else test[0]
i = res.data.slide_ids.index(pick)
att = slide_attention(model, res.data, i)
row = cohort.manifest.set_index("slide_id").loc[pick]
imgs = patch_images(root / "tiles" / f"{pick}.h5", root / row.path, att["pos"])
order = np.argsort(-att["token"])[:3] if "token" in att else np.arange(min(3, len(imgs)))
fig, axes = plt.subplots(3, len(order), figsize=(3.2 * len(order), 9.6), squeeze=False)
for c, k in enumerate(order):
    axes[0, c].imshow(imgs[k])
    vit = f", ViT attention {att['token'][k]:.2f}" if "token" in att else ""
    axes[0, c].set_title(f"patch {tuple(int(v) for v in att['pos'][k])}{vit}", fontsize=8)
    for r, (name, m) in enumerate((("A (last fusion)", att["A"][-1, k]), ("Z (last fusion)", att["Z"][-1, k])),
                                  start=1):
        axes[r, c].imshow(imgs[k])
        axes[r, c].imshow(np.kron(m, np.ones((imgs.shape[1] // g, imgs.shape[1] // g))), alpha=0.55, cmap="magma")
        axes[r, c].set_title(name, fontsize=8)
for a in axes.ravel():
    a.axis("off")
fig.suptitle(f"{pick} (ISG-Sim, SIMULATED): predicted vs observed log CD3D "
             f"{att['pred'][0] * ck['target_std'][0] + ck['target_mean'][0]:.2f} / "
             f"{cohort.targets.loc[pick, 'CD3D']:.2f}",
             fontsize=9)
fig.tight_layout()
save_figure(fig, "fig_isg_attention", profile)
if "token" in att:  # how peaked the class token's attention is, against uniform over the slide's patches
    ranked = np.sort(att["token"])[::-1]
    write_table(pd.DataFrame({"rank": np.arange(1, len(ranked) + 1), "attention": ranked, "uniform": 1 / len(ranked)}),
                "isg_attention", profile, command, title=f"Class-token attention over the patches of {pick}",
                note="ISG-Sim is SIMULATED. Fold 0's model, last ViT block, sorted; 'uniform' = 1 / number of patches.")

# %% [markdown]
# A is a gate per position and channel, so its channel average stays near 0.5 unless the model has
# learnt to close positions; Z is a distribution over the 64 positions (uniform = 1/64). With the
# small budget of the CPU profile these maps are weakly structured; read them as a demonstration of
# what the network computes, not as evidence of what it found.

# %% [markdown]
# ## What we found
# Sentences generated by `isg_core.report.tutorial.what_we_found` from the results files of this profile (the
# tables' CSVs), so they change when the results do.

# %%
Markdown(what_we_found(NOTEBOOK, profile))

# %% [markdown]
# ## Try this
# * Build `DualAttentionConfig(n_mbconv=6, fusion_every=3)` and print its layer plan: two fusion blocks instead of
#   five.
# * Shuffle the patches of a slide (the cell above does it): the prediction must not change; any model that changes
#   it uses the order.
