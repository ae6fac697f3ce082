"""Measure what all-slide extractor training adds over a per-fold extractor (issue 15, item 5).

Trains E_G and E_L without fold k's slides, runs Table 1's ISG on them, and compares fold k's
test slides with the all-slide extractors (:mod:`isg_core.studies.extractor_folds`).

    python tools/extractor_folds.py --profile quick --fold 0
"""
from __future__ import annotations

import argparse
import sys

import torch

from isg_core.experiments.slide_bootstrap import SIGNIFICANCE_NOTE, bootstrap_sentence
from isg_core.report.outputs import write_table
from isg_core.studies.extractor_folds import extractor_fold_study

if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--profile", default="quick")
    ap.add_argument("--fold", type=int, default=0)
    ap.add_argument("--device")
    args = ap.parse_args()
    torch.set_num_threads(1)
    study = extractor_fold_study(args.profile, args.fold, device=args.device)
    command = "python " + " ".join(sys.argv)
    note = (f"ISG-Sim is SIMULATED. Scored on fold {args.fold}'s test slides only, which the second arm's "
            "extractors never saw. " + SIGNIFICANCE_NOTE)
    write_table(study.difference, "extractor_folds", args.profile, command, config=study.config,
                title="All-slide against per-fold extractor training (ISG-Sim, SIMULATED)", note=note)
    write_table(study.programmes, "extractor_folds_programmes", args.profile, command, config=study.config,
                title="All-slide against per-fold extractor training, per gene programme (ISG-Sim, SIMULATED)",
                note=note)
    print(bootstrap_sentence(study.difference.iloc[0]))
