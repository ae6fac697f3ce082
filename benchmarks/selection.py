"""Patch-selection benchmark: cost, compressor study, and precision/recall on ISG-Sim.

    python benchmarks/selection.py [--profile quick] [--timing-slides 6] [--study-every 4] [--skip-study] [--skip-eval]
    python benchmarks/selection.py --study-every 25   # what made results/quick: the compressor study on 12
                                                      # of the 300 WSI-like slides (~3,000 patches, every
                                                      # compressor at 3 downsamplings; every 4th is ~20,000)

Writes to ``results/<profile>/``:

* ``benchmark_selection``  — per dataset (ISG-Sim slides, the real CMU slide) and method:
  patches/s, MP/s, ms/patch, and the cost as a ratio to the time OpenSlide takes to read and
  decode the same patches (``isg_core.data.tiling.read_global_patch``), measured in the same run,
  one process, best of 3 repeats;
* ``selection_compressor_study`` — :func:`isg_core.selection.compressor_study` on CMU tissue vs
  blank-glass tiles (labelled by saturation, independent of any score) and on ISG-Sim tissue
  vs textureless patches (``patches.csv``), at score_downsample 1, 2, 4;
* ``selection_precision_recall`` — every method at its default threshold, and Shannon under
  every threshold rule, against ``patches.csv`` truth (tissue = textureless == 0), all slides.

ISG-Sim is SIMULATED; nothing here is a TCGA number.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from isg_core.config import TilingConfig, get_profile
from isg_core.data.slides import open_slide
from isg_core.data.tiling import read_global_patch, tile_slide
from isg_core.paths import cohort_dir, samples_dir
from isg_core.report.outputs import write_table
from isg_core.selection import (
    SELECTORS,
    ShannonSelector,
    Threshold,
    available_methods,
    compressor_studies,
    evaluate_rules,
    get_selector,
    saturation_labels,
    score_cohort,
    truth_patches,
)

CMU = "CMU-1-Small-Region.svs"


def read_all(path, repeats: int = 3) -> tuple[np.ndarray, float, np.ndarray, np.ndarray]:
    """All global patches of a slide, the best-of-``repeats`` read+decode seconds, coords, thumbnail."""
    with open_slide(path) as s:
        t = tile_slide(s, get_profile().tiling)  # every profile tiles alike
        best = np.inf
        for _ in range(repeats):
            t0 = time.perf_counter()
            patches = [read_global_patch(s, t, i) for i in range(t.n_patches)]
            best = min(best, time.perf_counter() - t0)
        thumb = s.thumbnail(1024)
    return np.stack(patches), best, t.coords, thumb


def timing(datasets: dict[str, list[Path]]) -> pd.DataFrame:
    rows = []
    for dname, paths in datasets.items():
        loaded = [read_all(p) for p in paths]
        n = sum(len(x[0]) for x in loaded)
        mp = sum(x[0].shape[0] * x[0].shape[1] * x[0].shape[2] for x in loaded) / 1e6
        t_read = sum(x[1] for x in loaded)
        rows.append({"dataset": dname, "method": "read+decode (OpenSlide)", "patches": n,
                     "ms_per_patch": 1e3 * t_read / n, "patches_per_s": n / t_read, "mp_per_s": mp / t_read,
                     "ratio_to_read": 1.0})
        variants = [(m, {}) for m in available_methods()] + [
            (f"shannon[{c},ds{d}]", {"compressor": c, "score_downsample": d})
            for c, d in [("zstdgrad", 1), ("zstdgrad", 4), ("jpegxl", 1), ("webp", 4), ("png", 4), ("zstd", 2)]]
        for label, kw in variants:
            name = "shannon" if label.startswith("shannon") else label
            sel = get_selector(name, **kw)
            best = np.inf
            for _ in range(3):
                t0 = time.perf_counter()
                for patches, _, _, thumb in loaded:
                    if sel.requires_fit:
                        sel.fit(thumb)
                    for p in patches:
                        sel.score(p)
                best = min(best, time.perf_counter() - t0)
            if label == "shannon":
                label = f"shannon[{sel.compressor},ds{sel.score_downsample}] (default)"
            rows.append({"dataset": dname, "method": label, "patches": n, "ms_per_patch": 1e3 * best / n,
                         "patches_per_s": n / best, "mp_per_s": mp / best, "ratio_to_read": best / t_read})
    return pd.DataFrame(rows)


def study(cmu_path: Path, cohort_root: Path, every: int, tiling: TilingConfig) -> pd.DataFrame:
    """The compressor study on CMU tissue vs glass tiles (labelled by saturation) and on the ISG-Sim
    tissue vs textureless patches of every ``every``-th slide, at score_downsample 1, 2, 4."""
    P = read_all(cmu_path, repeats=1)[0]
    lab = saturation_labels(P)
    sim = truth_patches(cohort_root, tiling, every=every, progress=True)
    return compressor_studies({
        f"CMU tissue ({(lab == 1).sum()}) vs glass ({(lab == 0).sum()})": (P[lab == 1], P[lab == 0]),
        f"ISG-Sim tissue ({len(sim.tissue)}) vs textureless ({len(sim.textureless)})": (sim.tissue, sim.textureless),
    }, progress=True)


def evaluate(cohort_root: Path, tiling: TilingConfig, workers: int = 2) -> pd.DataFrame:
    """Every selector's precision and recall against ``patches.csv`` over all slides: each at its
    default threshold, then under the per-slide rules, then Shannon at Table 4's bit counts
    (for the tiling's p x p global patch)."""
    methods = available_methods()
    scored = score_cohort(cohort_root, methods, tiling, workers=workers)
    px = tiling.global_size
    rules = [(m, SELECTORS[m].default_threshold, f"default ({SELECTORS[m].default_threshold})") for m in methods]
    rules += [(m, th, str(th)) for m in methods
              for th in (Threshold("mu_sigma", 1), Threshold("mu_sigma", 0), Threshold("robust", 1), Threshold("otsu"))]
    rules += [("shannon", Threshold("bits", bits), f"bits:{bits:g} (paper Table 4 value, our {px} px patch)")
              for bits in (8e5, 1.6e6, 2.4e6)]
    return evaluate_rules(scored, rules, pixels=px * px)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="quick")
    ap.add_argument("--timing-slides", type=int, default=6)
    ap.add_argument("--study-every", type=int, default=4, help="compressor study on every k-th ISG-Sim slide")
    ap.add_argument("--skip-study", action="store_true")
    ap.add_argument("--skip-eval", action="store_true")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args(argv)
    prof = get_profile(args.profile)
    root = cohort_dir(prof.name)
    man = pd.read_csv(root / "manifest.csv")
    paths = [root / p for p in man.path]
    cmu = samples_dir() / CMU
    cmd = "python benchmarks/selection.py " + " ".join(argv if argv is not None else sys.argv[1:])
    default = ShannonSelector()
    cfg = {"profile": prof.name, "tiling": prof.to_dict()["tiling"], "shannon": default.params(),
           "timing_slides": args.timing_slides, "note": "ISG-Sim is simulated"}
    pd.set_option("display.width", 220)

    timed = paths[:: max(1, len(paths) // args.timing_slides)][: args.timing_slides]
    tdf = timing({f"ISG-Sim {prof.name} ({args.timing_slides} slides)": timed,
                  "CMU-1-Small-Region (real)": [cmu]})
    write_table(tdf, "benchmark_selection", prof.name, cmd, cfg, title="Patch selection cost vs OpenSlide read+decode",
                note="One process, best of 3. ratio_to_read = scoring time / read+decode time of the same patches. "
                     "ISG-Sim is SIMULATED data.")
    print(tdf.round(3).to_string(index=False))
    if not args.skip_study:
        sdf = study(cmu, root, args.study_every, prof.tiling)
        write_table(sdf, "selection_compressor_study", prof.name, cmd, cfg, title="Compressor study (Shannon selector)",
                    note="bpp = bits per pixel of the scored (downsampled) copy; auc = Mann-Whitney ROC AUC tissue vs "
                         "textureless; mp_per_s = input megapixels/s on one core. ISG-Sim is SIMULATED data.")
        print(sdf.round(3).to_string(index=False))
    if not args.skip_eval:
        edf = evaluate(root, prof.tiling, args.workers)
        write_table(edf, "selection_precision_recall", prof.name, cmd, cfg, title="Selection vs patches.csv truth",
                    note="tissue = textureless == 0; every patch of every slide. ISG-Sim is SIMULATED data.")
        print(edf.round(3).to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
