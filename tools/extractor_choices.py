"""Choose how the extractors train, on the development cohort (issue 16, item 1).

Trains E_L once per variant of Eq. 2's objective and bank (``isg_core.studies.extractor_choices``)
on the development cohort, probes the cell counts of held-out slides' local patches from its codes,
and writes ``results/<profile>/extractor_choices*.{csv,md}`` and a figure.

    python tools/extractor_choices.py --profile quick
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
from isg_core.report.outputs import save_figure, write_table  # noqa: E402
from isg_core.studies.extractor_choices import STUDY_BASE, VARIANTS, extractor_choice_study  # noqa: E402

if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--profile", default="quick")
    ap.add_argument("--only", nargs="*", type=int, help="indices of VARIANTS to run (default: all)")
    ap.add_argument("--device")
    args = ap.parse_args()
    torch.set_num_threads(2)
    prof = get_profile(args.profile)
    variants = tuple(VARIANTS[k] for k in args.only) if args.only else VARIANTS
    out = extractor_choice_study(prof, variants, device=args.device)
    command = "python " + " ".join(sys.argv)
    config = {"profile": prof.name, "cohort": "development", "dev_seed": prof.sim.dev_seed,
              "study base": STUDY_BASE, "variants": {v.name: dict(v.changes) for v in variants},
              "probe units": out["units"],
              "local_steps": prof.features.local_steps, "bank_size": prof.features.bank_size}
    note = ("ISG-Sim is SIMULATED; development cohort (seed %d), never the reported one. Each variant trains the "
            "local extractor E_L with one change; a ridge probe (cross-validated by slide, 5 folds) reads the true "
            "cell counts of held-out slides' local patches (level 'local') and of global patches from the mean "
            "code of their local patches (level 'patch'). PCC per fold, mean over folds. LPIPS trunk: random "
            "(offline)." % prof.sim.dev_seed)
    write_table(out["summary"], "extractor_choices", prof.name, command, config,
                title="How E_L trains: variants of Eq. 2 on the development cohort (ISG-Sim, SIMULATED)", note=note)
    write_table(out["scores"], "extractor_choices_scores", prof.name, command, config,
                title="How E_L trains: probe PCC per cell type (ISG-Sim, SIMULATED)", note=note)
    write_table(out["differences"], "extractor_choices_differences", prof.name, command, config,
                title=f"How E_L trains: the best variant ({out['best']}) against the others, local level "
                      "(ISG-Sim, SIMULATED)",
                note=note + " Interval: 95%, slides resampled within each fold (1000 draws).")
    s = out["scores"]
    fig, ax = plt.subplots(figsize=(9, 0.45 * s.variant.nunique() + 1.5))
    sns.barplot(data=s[s.level == "local"], y="variant", x="pcc", hue="target", ax=ax)
    ax.set_xlabel("probe PCC, true cell count of a 16 µm local patch (mean over 5 folds)")
    ax.set_ylabel("")
    ax.set_title("E_L training variants on the development cohort (ISG-Sim, SIMULATED)")
    ax.legend(title="cell type", bbox_to_anchor=(1.01, 1), loc="upper left")
    save_figure(fig, "fig_extractor_choices", prof.name)
    print(out["summary"].to_string())
    print(out["differences"].to_string())
