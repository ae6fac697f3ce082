"""The efficiency study (paper Sec. 4.1: ISG 246 s per slide against HE2RNA's 302 s, a ratio of 0.81).

Both methods' whole inference path per slide (:mod:`isg_core.deploy.inference`: read, select, extract,
predict) on the same slides, with the same reader (OpenSlide through :func:`isg_core.data.slides.
open_slide`), the same tiling and the same device:

* ISG: Shannon selection, E_G + E_L on the kept patches, ISG-10-2 at full width;
* HE2RNA: Otsu tissue tiles, ResNet50 at the profile's input size, 100 K-means supertiles, its MLP.

Weights are untrained (:func:`~isg_core.deploy.inference.untrained_pipeline`): a forward pass costs the
same whatever the weights, and the selection (which sets how many patches are encoded) does not
use them.  Each method runs in its own spawned process, so the peak resident memory
(``ru_maxrss``) is that method's alone; the first slide is run once before timing (warm-up:
allocator, thread pools, lazy imports).  The peak is the process's resident high-water mark over
the timed slides (reset after the warm-up where Linux allows), beside its footprint before them.
Memory is in binary units: ``*_mb`` values are MiB (2**20 bytes; /proc and ``ru_maxrss`` give KiB),
and the tables say MiB / GiB (:mod:`isg_core.report.units` renames the labels of older tables).
Seconds per slide at 1e5 x 1e5 px are extrapolated from a large slide in proportion to its area
(the patch count), an assumption that holds for a slide with the same tissue fraction.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from ..config import get_profile
from ..data.tiling import open_tiled_slide, read_tiling_h5, tile_to_h5
from ..deploy.inference import STAGES, untrained_pipeline
from ..features.extract import StyleGANEncoder, extract_slide
from ..features.train import train_config_for
from ..parallel import in_fresh_process
from ..selection import ShannonSelector
from ..selection.slide import add_selection_to_h5, score_slide, threshold_info

#: the paper's seconds per slide (Sec. 4.1)
PAPER_SECONDS = {"ISG": 246.0, "HE2RNA": 302.0}


def _status_mb(field: str) -> float:
    """A memory field of /proc/self/status (VmRSS: now; VmHWM: the high-water mark) in MiB (the
    file gives KiB)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    raise KeyError(field)


def rss_now_mb() -> float:
    """Resident memory now (MiB); where /proc is missing, the peak so far (``ru_maxrss``, KiB on Linux)."""
    try:
        return _status_mb("VmRSS")
    except (OSError, KeyError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def reset_peak_rss() -> bool:
    """Reset the process's peak-RSS mark (Linux >= 4.0: write 5 to /proc/self/clear_refs), so the
    next :func:`peak_rss_mb` is the peak of what runs from now on, not of the imports before."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float:
    """Peak resident memory (MiB) since the process started or the last :func:`reset_peak_rss`."""
    try:
        return _status_mb("VmHWM")
    except (OSError, KeyError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def time_method(method: str, profile, slides: Sequence["str | os.PathLike"], device: str | None = None,
                warmup: "bool | str | os.PathLike" = True, threads: int | None = None,
                progress: bool = False) -> tuple[pd.DataFrame, dict]:
    """Run one method on ``slides`` in this process: per-slide rows (stage seconds, patches, kept)
    and {peak_rss_mb, peak_cuda_mb, device, threads} of this process.  ``warmup``: True runs the
    first slide once untimed, a path runs that (small) slide instead, False none."""
    if threads:
        torch.set_num_threads(threads)
    prof = profile if not isinstance(profile, str) else get_profile(profile)
    pipe = untrained_pipeline(method, prof, device=device)
    if warmup is True and len(slides):
        pipe.run(slides[0])
    elif warmup:
        pipe.run(warmup)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    baseline = rss_now_mb()  # imports, model (and warm-up), before the timed slides
    reset_peak_rss()
    rows = []
    for sp in slides:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = pipe.run(sp, progress=progress)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        wall = time.perf_counter() - t0
        w, h = out.tiling.slide_size
        rows.append({"method": pipe.name, "slide": Path(sp).name, "width": w, "height": h, "patches": out.n_patches,
                     "kept": out.n_kept, **{s: out.seconds[s] for s in STAGES}, "total": wall})
    info = {"peak_rss_mb": peak_rss_mb(), "baseline_rss_mb": baseline,
            "peak_cuda_mb": torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else float("nan"),
            "device": str(next(pipe.model.parameters()).device), "threads": torch.get_num_threads()}
    return pd.DataFrame(rows), info


def _worker(args):
    return time_method(*args)


def cohort_path_peak(slide: "str | os.PathLike", profile, out_dir: "str | os.PathLike", device: str | None = None,
                     threads: int | None = None) -> dict:
    """The cohort tools on one slide in this process: ``isg tile`` (HDF5), Shannon selection stored
    in it, and ``isg extract`` of the kept patches (E_G + E_L, untrained, at the profile's sizes);
    returns seconds per step and the process's peak RSS.  Run it in a fresh process
    (:func:`in_fresh_process`) for a peak of its own."""
    if threads:
        torch.set_num_threads(threads)
    prof = profile if not isinstance(profile, str) else get_profile(profile)
    enc = StyleGANEncoder.from_configs(train_config_for("global", prof.features),
                                       train_config_for("local", prof.features), device=device or "cpu")
    baseline = rss_now_mb()
    reset_peak_rss()
    t0 = time.perf_counter()
    h5, _ = tile_to_h5(slide, out_dir, prof.tiling, overwrite=True)
    t1 = time.perf_counter()
    tiling = read_tiling_h5(h5)
    sel = ShannonSelector()
    with open_tiled_slide(slide, tiling, h5) as s:
        scores = score_slide(s, tiling, sel, progress=False)
    info = threshold_info(scores, sel.default_threshold, sel, prof.tiling.global_size ** 2)
    add_selection_to_h5(h5, "shannon", scores, scores > info["threshold_score"], info)
    t2 = time.perf_counter()
    res = extract_slide(h5, slide, enc, "shannon", "kept", batch_size=8, overwrite=True)
    t3 = time.perf_counter()
    return {"tile s": t1 - t0, "select s": t2 - t1, "extract s": t3 - t2, "patches": tiling.n_patches,
            "kept": int(res["n"]), "baseline_rss_mb": baseline, "peak_rss_mb": peak_rss_mb()}


def measure(methods: Sequence[str], profile, slides: Sequence["str | os.PathLike"], device: str | None = None,
            isolate: bool = True, threads: int | None = None, progress: bool = False,
            warmup: "bool | str | os.PathLike" = True) -> pd.DataFrame:
    """Per-slide rows of every method, each method in its own spawned process (``isolate``) so
    that its peak memory is its own; columns ``peak_rss_mb``, ``peak_cuda_mb``, ``device``."""
    frames = []
    for m in methods:
        args = (m, profile if isinstance(profile, str) else profile.name, [str(s) for s in slides], device,
                warmup if isinstance(warmup, bool) else str(warmup), threads, progress)
        if isolate:
            df, info = in_fresh_process(_worker, args)
        else:
            df, info = time_method(*args)
        for k, v in info.items():
            df[k] = v
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


def summarise_efficiency(rows: pd.DataFrame, dataset: str, reference: str = "HE2RNA") -> pd.DataFrame:
    """Per method: mean seconds per slide by stage and in total, patches and kept patches per slide,
    the ratio of totals against ``reference`` (paper: ISG / HE2RNA = 0.81), peak memory (MiB)."""
    g = rows.groupby("method", sort=False)
    out = g[["width", "height", "patches", "kept", *STAGES, "total"]].mean()
    out.insert(0, "slides", g.size())
    out["stage sum"] = out[list(STAGES)].sum(axis=1)
    out["extract ms/kept patch"] = 1000 * out["extract"] / out["kept"]  # the encoder's cost per patch
    ref = out.loc[reference, "total"] if reference in out.index else np.nan
    out[f"ratio to {reference}"] = out["total"] / ref
    out["peak RSS (MiB)"] = g.peak_rss_mb.max()
    if "peak_cuda_mb" in rows and rows.peak_cuda_mb.notna().any():
        out["peak GPU (MiB)"] = g.peak_cuda_mb.max()
    out["device"] = g.device.first()
    if "threads" in rows:
        out["threads"] = g.threads.first()
    out["paper s/slide"] = [PAPER_SECONDS.get(m, np.nan) for m in out.index]
    out.insert(0, "dataset", dataset)
    return out.reset_index()


def extrapolate(summary: pd.DataFrame, side_px: float = 1e5) -> pd.Series:
    """Seconds per slide of ``side_px`` x ``side_px`` from each row, in proportion to the area."""
    area = summary["width"] * summary["height"]
    return summary["total"] * (side_px ** 2) / area


def plot_stages(summary: pd.DataFrame, axes=None, title: str | None = None):
    """Stacked horizontal bars of seconds per slide by stage, one panel per dataset (each on its
    own scale: a 40k px slide takes minutes, a small one a fraction of a second), one bar per
    method, with the total and its ratio to the reference at the end of each bar; the legend of
    the stages sits outside the panels, right of the top one."""
    datasets = list(dict.fromkeys(summary.dataset))
    if axes is None:
        fig, axes = plt.subplots(len(datasets), 1, figsize=(7.5, 1.5 * len(datasets) + 0.6), squeeze=False)
        axes = axes[:, 0]
    ratio_col = next((c for c in summary.columns if c.startswith("ratio to")), None)
    for ax, ds in zip(axes, datasets):
        s = summary[summary.dataset == ds]
        left = np.zeros(len(s))
        for stage, colour in zip(STAGES, ("#8da0cb", "#66c2a5", "#fc8d62", "#e78ac3")):
            v = s[stage].to_numpy(float)
            ax.barh(list(s.method), v, left=left, color=colour, label=stage)
            left += v
        for y, (tot, r) in enumerate(zip(s["total"], s[ratio_col] if ratio_col else [np.nan] * len(s))):
            ax.text(left[y], y, f"  {tot:.2f} s" + (f" (x{r:.2f})" if np.isfinite(r) and r != 1 else ""),
                    va="center", fontsize=8)
        ax.invert_yaxis()
        ax.set_xlim(0, left.max() * 1.3)
        ax.set_title(ds, fontsize=9)
    axes[-1].set_xlabel("seconds per slide")
    # outside the panels, right of the top one: inside, it covered the bars of the top panel
    axes[0].legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=7, title="stage", title_fontsize=7,
                   frameon=False)
    fig = axes[0].figure
    fig.suptitle(title or "Inference per slide by stage", fontsize=10)
    fig.tight_layout()
    return axes
