"""Where the extractors lose the cells, on the development cohort (issue 16, item 5).

Probes the true cell counts of held-out slides' local and global patches from the input's
appearance descriptor, from the descriptor of E_L's and E_G's reconstructions (noise inputs as
trained and off) and from their codes (ridge and a 2-layer MLP) (``isg_core.studies.extractor_limits``), with
slide-bootstrap intervals on the paired comparisons, and writes ``results/<profile>/extractor_limits*.{csv,md}``
and ``fig_extractor_limits.png``.

    python tools/extractor_limits.py --profile quick
"""
from __future__ import annotations

import argparse
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402
import torch  # noqa: E402

from isg_core.config import get_profile  # noqa: E402
from isg_core.features.train import load_checkpoint, train_config_for  # noqa: E402
from isg_core.report.outputs import save_figure, write_table  # noqa: E402
from isg_core.studies.extractor_limits import (  # noqa: E402
    NETWORK,
    NUCLEAR_QUANTILE,
    TRAININGS,
    extractor_limits_study,
)

if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--profile", default="quick")
    ap.add_argument("--device")
    args = ap.parse_args()
    torch.set_num_threads(2)
    prof = get_profile(args.profile)
    out = extractor_limits_study(prof, device=args.device)
    command = "python " + " ".join(sys.argv)
    steps = {name: int(load_checkpoint(p)["step"]) for name, p in out["checkpoints"].items()}
    config = {"profile": prof.name, "cohort": "development", "dev_seed": prof.sim.dev_seed,
              "E_L": train_config_for("local", prof.features).to_dict(),
              "E_G": train_config_for("global", prof.features).to_dict(), "changes": TRAININGS,
              "steps trained": steps,
              "lpips trunk": out["lpips_trunk"], "probe units": out["units"], "nuclear quantile": NUCLEAR_QUANTILE}
    note = ("ISG-Sim is SIMULATED; development cohort (seed %d), never the reported one. The profile's extractors "
            "and the same with one change each, trained on the development cohort (LPIPS trunk: %s), probed on "
            "held-out slides' local patches (level 'local', 32 px = 16 µm; E_L) and global patches (level 'patch', "
            "256 px; E_L's mean code over the patch's local patches, E_G's code of the patch at its resolution). "
            "Ridge and MLP probes cross-validated by slide (5 folds); "
            "PCC per fold, mean over folds and over the lymphocyte, mitosis and tumour-cell counts."
            % (prof.sim.dev_seed, out["lpips_trunk"]))
    write_table(out["summary"], "extractor_limits", prof.name, command, config,
                title="Where the extractors lose the cells: input, reconstruction and code probed alike "
                      "(ISG-Sim, SIMULATED)",
                note=note)
    write_table(out["scores"], "extractor_limits_scores", prof.name, command, config,
                title="Where the extractors lose the cells: probe PCC per cell type (ISG-Sim, SIMULATED)", note=note)
    rec = out["reconstruction"]
    write_table(rec, "extractor_limits_reconstruction", prof.name, command, config,
                title="The extractors' reconstruction error on nuclear and other pixels (ISG-Sim, SIMULATED)",
                note=note + " L1 in intensity units (0-1), mean over RGB; nuclear pixels: haematoxylin optical "
                            "density above its %g quantile over all probe pixels." % NUCLEAR_QUANTILE)
    write_table(out["differences"], "extractor_limits_differences", prof.name, command, config,
                title="Where the extractors lose the cells: paired differences with slide-bootstrap intervals "
                      "(ISG-Sim, SIMULATED)",
                note=note + " a - b in mean PCC over the three counts; 95% interval from resampling the probe's "
                            "slides within each fold (1000 draws), both readouts scored on the same draw. An interval "
                            "that contains 0 is a tie.")
    write_table(out["noise"], "extractor_limits_noise", prof.name, command, config,
                title="Learned strength of the extractors' generator noise inputs (ISG-Sim, SIMULATED)", note=note)

    # top: each scale's patches with the most lymphocytes and the profile's extractor's reconstructions;
    # bottom: the probes (mean over cell types), local patches (E_L) and global patches (E_L's mean code, E_G)
    rows = [(scale, r) for scale, ex in out["examples"].items() for r in ex if r != "lymphocytes"]
    n = len(next(iter(out["examples"].values()))["lymphocytes"])
    fig = plt.figure(figsize=(12, 15))
    grid = fig.add_gridspec(2, 1, height_ratios=[1.8, 1.4], hspace=0.12)
    top = grid[0].subgridspec(len(rows), n, wspace=0.05, hspace=0.35)
    for i, (scale, r) in enumerate(rows):
        ex = out["examples"][scale]
        for j in range(n):
            ax = fig.add_subplot(top[i, j])
            ax.imshow(ex[r][j])
            ax.set_xticks([]), ax.set_yticks([])
            if j == 0:
                label = r if r == "input" or ":" in r else f"as the profile: {r}"
                ax.set_ylabel(f"{NETWORK[scale]} {label}", fontsize=7, rotation=0, ha="right", va="center")
            if r == "input":
                ax.set_title(f"{int(ex['lymphocytes'][j])} lymph.", fontsize=7)
    ax = fig.add_subplot(grid[1])
    d = (out["summary"].melt(id_vars=["extractor", "readout"], var_name="level", value_name="pcc").dropna()
         .assign(what=lambda d: d.extractor + ": " + d.readout,
                 level=lambda d: d.level.map({"local PCC (mean of targets)": "32 px local patch",
                                              "patch PCC (mean of targets)": "256 px global patch"})))
    sns.barplot(data=d, y="what", x="pcc", hue="level", ax=ax)
    ax.set_xlabel("probe PCC with the true cell counts (mean over lymphocytes, mitoses, tumour cells and 5 folds)")
    ax.set_ylabel("")
    ax.legend(title="unit probed", bbox_to_anchor=(1.01, 1), loc="upper left")
    fig.suptitle("Where the extractors lose the cells (development cohort, ISG-Sim, SIMULATED; LPIPS trunk "
                 f"{out['lpips_trunk']}): patches with the most lymphocytes and their reconstructions D(E(x)); probes",
                 fontsize=9)
    save_figure(fig, "fig_extractor_limits", prof.name)
    print(out["summary"].to_string())
    print(rec.to_string())
    print(out["noise"].to_string())
    print(out["differences"].to_string())
