"""Where the local extractor loses the cells, on the development cohort (issue 16, item 5).

Probes the true cell counts of held-out slides' local patches from the input's appearance
descriptor, from the descriptor of E_L's reconstruction (noise inputs as trained and off) and from
E_L's code (ridge and a 2-layer MLP) (``isg_core.experiments.extractor_limits``), and writes
``results/<profile>/extractor_limits*.{csv,md}`` and ``fig_extractor_limits.png``.

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
from isg_core.experiments.extractor_limits import NUCLEAR_QUANTILE, TRAININGS, extractor_limits_study  # noqa: E402
from isg_core.features.train import load_checkpoint, train_config_for  # noqa: E402
from isg_core.report import save_figure, write_table  # noqa: E402

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
              "E_L": train_config_for("local", prof.features).to_dict(), "E_L changes": TRAININGS,
              "steps trained": steps,
              "lpips trunk": out["lpips_trunk"], "probe units": out["units"], "nuclear quantile": NUCLEAR_QUANTILE}
    note = ("ISG-Sim is SIMULATED; development cohort (seed %d), never the reported one. The profile's E_L and the "
            "same without StyleGAN2's noise inputs, trained on the development cohort (LPIPS trunk: %s), probed "
            "on held-out slides' local patches (level 'local', 32 px = 16 µm) and on global patches from the mean "
            "over their local patches (level 'patch'). Ridge and MLP probes cross-validated by slide (5 folds); "
            "PCC per fold, mean over folds and over the lymphocyte, mitosis and tumour-cell counts."
            % (prof.sim.dev_seed, out["lpips_trunk"]))
    write_table(out["summary"], "extractor_limits", prof.name, command, config,
                title="Where E_L loses the cells: input, reconstruction and code probed alike (ISG-Sim, SIMULATED)",
                note=note)
    write_table(out["scores"], "extractor_limits_scores", prof.name, command, config,
                title="Where E_L loses the cells: probe PCC per cell type (ISG-Sim, SIMULATED)", note=note)
    rec = out["reconstruction"]
    write_table(rec, "extractor_limits_reconstruction", prof.name, command, config,
                title="E_L's reconstruction error on nuclear and other pixels (ISG-Sim, SIMULATED)",
                note=note + " L1 in intensity units (0-1), mean over RGB; nuclear pixels: haematoxylin optical "
                            "density above its %g quantile over all probe pixels." % NUCLEAR_QUANTILE)
    write_table(out["noise"], "extractor_limits_noise", prof.name, command, config,
                title="Learned strength of E_L's generator noise inputs (ISG-Sim, SIMULATED)", note=note)

    ex = out["examples"]
    rows = ["input", "reconstruction", "reconstruction, noise off"]  # of the profile's E_L
    n = len(ex["lymphocytes"])
    fig = plt.figure(figsize=(12, 9))
    grid = fig.add_gridspec(2, 1, height_ratios=[1.1, 1.0], hspace=0.35)
    top = grid[0].subgridspec(len(rows), n, wspace=0.05, hspace=0.1)
    for i, r in enumerate(rows):
        for j in range(n):
            ax = fig.add_subplot(top[i, j])
            ax.imshow(ex[r][j])
            ax.set_xticks([]), ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(r.replace(", ", ",\n"), fontsize=8)
            if i == 0:
                ax.set_title(f"{int(ex['lymphocytes'][j])} lymph.", fontsize=8)
    ax = fig.add_subplot(grid[1])
    s = out["scores"]
    s = s[s.level == "local"].assign(what=lambda d: d.readout.where(d.E_L.str.startswith("none"),
                                                                   d.E_L + ": " + d.readout))
    sns.barplot(data=s, y="what", x="pcc", hue="target", ax=ax)
    ax.set_xlabel("probe PCC, true cell count of a 32 px (16 µm) local patch (mean over 5 folds)")
    ax.set_ylabel("")
    ax.legend(title="cell type", bbox_to_anchor=(1.01, 1), loc="upper left")
    fig.suptitle("Where E_L loses the cells: local patches with the most lymphocytes and the profile's E_L's "
                 "reconstructions; "
                 f"probes (development cohort, ISG-Sim, SIMULATED; LPIPS trunk {out['lpips_trunk']})", fontsize=9)
    save_figure(fig, "fig_extractor_limits", prof.name)
    print(out["summary"].to_string())
    print(rec.to_string())
    print(out["noise"].to_string())
