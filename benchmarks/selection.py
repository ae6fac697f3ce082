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
from multiprocessing import Pool
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from isg_core.config import get_profile
from isg_core.data.slides import open_slide
from isg_core.data.tiling import read_global_patch, tile_slide
from isg_core.paths import cohort_dir, samples_dir
from isg_core.report.outputs import write_table
from isg_core.selection import (
    SELECTORS,
    ShannonSelector,
    Threshold,
    available_selectors,
    compressor_study,
    get_selector,
    precision_recall,
    saturation_labels,
    select,
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


def _methods():
    return [n for n, c in available_selectors().items() if c is not None]


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
        variants = [(m, {}) for m in _methods()] + [
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


def study(cmu_path: Path, sim_paths: list[Path], truth: pd.DataFrame) -> pd.DataFrame:
    P, _, _, _ = read_all(cmu_path)
    lab = saturation_labels(P)
    tis, tl = [], []
    for sp in tqdm(sim_paths, desc="compressor study: read", unit="slide"):
        patches, _, coords, _ = read_all(sp, repeats=1)
        d = truth[truth.slide_id == Path(sp).stem].set_index(["x", "y"])
        flags = d.loc[[tuple(c) for c in coords], "textureless"].to_numpy()
        tis += list(patches[flags == 0])
        tl += list(patches[flags == 1])
    out = []
    for ds in tqdm((1, 2, 4), desc="compressor study: score", unit="downsample"):
        a = compressor_study(P[lab == 1], P[lab == 0], score_downsample=ds)
        a.insert(0, "data", f"CMU tissue ({(lab == 1).sum()}) vs glass ({(lab == 0).sum()})")
        b = compressor_study(tis, tl, score_downsample=ds)
        b.insert(0, "data", f"ISG-Sim tissue ({len(tis)}) vs textureless ({len(tl)})")
        out += [a, b]
    return pd.concat(out, ignore_index=True)


_SHANNON_VARIANTS = {"shannon": {}}


def _score_slide(path: str) -> pd.DataFrame:
    patches, _, coords, thumb = read_all(path, repeats=1)
    df = pd.DataFrame({"slide_id": Path(path).stem, "x": coords[:, 0], "y": coords[:, 1]})
    for m in _methods():
        sel = get_selector(m)
        if sel.requires_fit:
            sel.fit(thumb)
        df[m] = [sel.score(p) for p in patches]
    return df


def evaluate(paths: list[Path], truth: pd.DataFrame, workers: int = 2, patch_px: int = 256) -> pd.DataFrame:
    """Every selector's precision and recall against ``truth`` over all slides; thresholds in bits
    apply to ``patch_px`` x ``patch_px`` patches (the profile's global patch)."""
    with Pool(workers) as pool:
        scores = pd.concat(list(tqdm(pool.imap(_score_slide, [str(p) for p in paths]), total=len(paths),
                                     desc="score every patch", unit="slide")), ignore_index=True)
    d = truth.merge(scores, on=["slide_id", "x", "y"], how="inner")
    tissue = d.textureless.to_numpy() == 0
    groups = list(d.groupby("slide_id").indices.values())
    rows = []

    def apply(method, th, rule):
        keep = np.zeros(len(d), bool)
        for idx in groups:
            keep[idx] = select(d[method].to_numpy()[idx], th, pixels=patch_px * patch_px)
        m = precision_recall(keep, tissue)
        rows.append({"method": method, "threshold": rule, **m})

    for m in _methods():
        apply(m, SELECTORS[m].default_threshold, f"default ({SELECTORS[m].default_threshold})")
    for m in _methods():
        for th in (Threshold("mu_sigma", 1), Threshold("mu_sigma", 0), Threshold("robust", 1), Threshold("otsu")):
            apply(m, th, str(th))
    for bits in (8e5, 1.6e6, 2.4e6):
        apply("shannon", Threshold("bits", bits), f"bits:{bits:g} (paper Table 4 value, our {patch_px} px patch)")
    out = pd.DataFrame(rows)
    out.insert(2, "patches", len(d))
    return out


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
    truth = pd.read_csv(root / "patches.csv")
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
        sdf = study(cmu, paths[:: args.study_every], truth)
        write_table(sdf, "selection_compressor_study", prof.name, cmd, cfg, title="Compressor study (Shannon selector)",
                    note="bpp = bits per pixel of the scored (downsampled) copy; auc = Mann-Whitney ROC AUC tissue vs "
                         "textureless; mp_per_s = input megapixels/s on one core. ISG-Sim is SIMULATED data.")
        print(sdf.round(3).to_string(index=False))
    if not args.skip_eval:
        edf = evaluate(paths, truth, args.workers, patch_px=prof.tiling.global_size)
        write_table(edf, "selection_precision_recall", prof.name, cmd, cfg, title="Selection vs patches.csv truth",
                    note="tissue = textureless == 0; every patch of every slide. ISG-Sim is SIMULATED data.")
        print(edf.round(3).to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
