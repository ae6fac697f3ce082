"""Peak memory and seconds of the ``paper`` profile's networks on a CPU, one step at a time.

    python benchmarks/paper_memory.py [--threads 2] [--extract-batches 16 64] [--global-batches 4 8 16]
                                      [--isg-patches 32 64 128] [--limit-gb 18]
    python benchmarks/paper_memory.py --relabel   # relabel the written results, measure nothing

The ``paper`` profile is sized for a GPU; this measures what its pieces cost where there is none
(the same model sizes: ``PROFILES["paper"]``), each in a fresh spawned process
(:func:`isg_core.studies.efficiency.in_fresh_process`) with the peak-RSS mark reset after imports and
model construction (:func:`~isg_core.studies.efficiency.reset_peak_rss`), so each peak is the step's own
plus what was resident before it (models, optimiser state, inputs):

* ``extract``: one extraction batch of E_G and E_L at paper sizes
  (:class:`~isg_core.features.extract.StyleGANEncoder`, untrained weights: memory and time do
  not depend on them) on B global patches of 256 px: E_G on B patches at 256 px, E_L on 64 B
  local patches at 32 px; the paper's B = 256 after ``--extract-batches``;
* ``train global`` / ``train local``: the first two steps of each extractor
  (:class:`~isg_core.features.train.ExtractorTrainer`) with the critic on from step 0
  (``adv_start=0``): step 1 runs C's step, its lazy R1 penalty (every 16 steps) and E + D's step
  with L1, LPIPS and the adversarial term; step 2 the same without R1 (15 of 16 steps are like
  it); the paper's batch of 32 after ``--global-batches``;
* ``train ISG``: one training step of ISG-10-2 at full width d = 128 (the paper profile's slide
  model) on the paper's batch of 8 slides (:func:`isg_core.train.engine.fit`, one epoch of one
  batch, then its inner-validation pass on one small slide); the profile's 256 patches drawn
  per slide after ``--isg-patches``.

Each ladder of sizes skips a smaller size that the last two predict (peaks grow about linearly
with the batch) to need over 90% of the cap; the paper's size is always tried, and extrapolated
on their line only if it does not fit under the cap.
Every child runs under a cap on its data (``RLIMIT_DATA``: ``--limit-gb`` in GiB, at most 85% of
the memory available at start), so a step that does not fit fails with an allocation error instead
of starving a shared machine.  Seconds per step are also given as a ratio to the same step at
the ``quick`` profile's sizes and batch, measured in the same process after the paper-size one.
Memory is in binary units: peaks in MiB from the kernel's KiB (/ 1024), shown in GiB (/ 1024 again);
the machine's memory and the cap in GiB (bytes / 2**30).
Writes ``results/paper_cpu/paper_memory.{csv,md}``.

``--relabel`` measures nothing: it renames the units of tables written when they said MB / GB
(the values were MiB / GiB all along), keeping the numbers and the command
(:func:`isg_core.report.units.relabel_results`).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
import warnings
from dataclasses import replace

import numpy as np
import pandas as pd

from isg_core.config import PROFILES
from isg_core.errors import atomic_path
from isg_core.report.outputs import profile_results_dir, write_table
from isg_core.report.units import relabel_results
from isg_core.studies.efficiency import in_fresh_process, peak_rss_mb, reset_peak_rss, rss_now_mb

OUT_PROFILE = "paper_cpu"  # results/paper_cpu/


def _child_setup(threads: int, limit_gb: float) -> None:
    """Torch threads, and a cap of ``limit_gb`` GiB on the process's data (glibc serves large tensors by mmap, which
    RLIMIT_DATA counts since Linux 4.7): an allocation past it raises instead of the kernel's OOM
    killer picking a process, perhaps another one, on a shared machine."""
    import resource

    import torch

    torch.set_num_threads(threads)
    cap = int(limit_gb * 2**30)
    resource.setrlimit(resource.RLIMIT_DATA, (cap, cap))
    warnings.simplefilter("ignore")  # LPIPS' random AlexNet trunk where ImageNet weights are not cached


def _patches(n: int, size: int, seed: int = 0) -> np.ndarray:
    """n random uint8 RGB patches (n, size, size, 3): the cost of a forward pass does not depend on content."""
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def _median_seconds(fn, repeats: int = 3) -> float:
    """Median wall time of ``fn()`` over ``repeats`` calls after one untimed warm-up (a small
    network's first call is mostly one-off costs; the median resists a busy machine)."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def _encoder(profile: str):
    from isg_core.features.extract import StyleGANEncoder
    from isg_core.features.train import train_config_for

    fc = PROFILES[profile].features
    return StyleGANEncoder.from_configs(train_config_for("global", fc), train_config_for("local", fc), device="cpu")


def measure_extract(batch: int, threads: int, limit_gb: float) -> dict:
    """One E_G + E_L batch of ``batch`` 256 px global patches at paper sizes, then the quick
    profile's own batch (extract_batch at its sizes) as the time reference."""
    _child_setup(threads, limit_gb)
    q = PROFILES["paper"].tiling.local_size
    enc = _encoder("paper")
    x = _patches(batch, PROFILES["paper"].tiling.global_size)
    baseline = rss_now_mb()
    reset_peak_rss()
    t0 = time.perf_counter()
    try:
        f, R = enc.encode(x, q)
    except (RuntimeError, MemoryError) as e:  # an allocation past --limit-gb
        return {"error": str(e).splitlines()[0][:160], "baseline_rss_mb": baseline, "peak_rss_mb": peak_rss_mb()}
    seconds = time.perf_counter() - t0
    peak = peak_rss_mb()
    shapes = f"f {tuple(f.shape)} {f.dtype}, R {tuple(R.shape)} {R.dtype}"
    del f, R
    qb = PROFILES["quick"].features.extract_batch
    quick, xq = _encoder("quick"), _patches(qb, PROFILES["quick"].tiling.global_size)
    quick_s = _median_seconds(lambda: quick.encode(xq, q))
    return {"seconds": seconds, "patches": batch, "quick_seconds": quick_s, "quick_patches": qb,
            "baseline_rss_mb": baseline, "peak_rss_mb": peak, "outputs": shapes}


def _trainer(profile: str, scale: str, batch: int | None = None):
    from isg_core.features.train import ExtractorTrainer, train_config_for

    fc = PROFILES[profile].features
    # adv_start=0: the critic C, its R1 penalty and the adversarial term from the first step
    cfg = train_config_for(scale, fc, adv_start=0, batch_size=batch or fc.batch_size)
    bank = _patches(2 * cfg.batch_size, cfg.model.resolution, seed=1)
    return ExtractorTrainer(cfg, bank, device="cpu"), cfg


def measure_train_extractor(scale: str, batch: int, threads: int, limit_gb: float) -> dict:
    """Steps 1 (C + R1 + E/D) and 2 (C + E/D) of the paper-size ``scale`` extractor at ``batch``,
    then step 2 of the quick-size one (its own batch) as the time reference."""
    _child_setup(threads, limit_gb)
    tr, cfg = _trainer("paper", scale, batch)
    baseline = rss_now_mb()
    reset_peak_rss()
    try:
        t0 = time.perf_counter()
        rec1 = tr.step()
        t1 = time.perf_counter()
        rec2 = tr.step()
        t2 = time.perf_counter()
    except (RuntimeError, MemoryError) as e:  # an allocation past --limit-gb
        return {"error": str(e).splitlines()[0][:160], "baseline_rss_mb": baseline, "peak_rss_mb": peak_rss_mb()}
    peak = peak_rss_mb()
    assert "r1" in rec1 and "adv" in rec2 and np.isfinite(rec2["total"]), (rec1, rec2)
    del tr
    quick, qcfg = _trainer("quick", scale)
    quick.step()  # its R1 step, untimed; then steps without R1 until step 16
    quick_s = _median_seconds(quick.step)
    return {"seconds": t2 - t1, "seconds_r1_step": t1 - t0, "patches": cfg.batch_size,
            "quick_seconds": quick_s, "quick_patches": qcfg.batch_size, "baseline_rss_mb": baseline,
            "peak_rss_mb": peak,
            "outputs": "step 2: " + ", ".join(f"{k} {v:.3g}" for k, v in rec2.items() if k != "step")}


def _isg_step_setup(profile: str, max_patches: int | None = None, patches_per_slide: int = 512):
    """ISG-10-2 at the profile's width (paper: full width d) in its input standardisation, and
    the slides of one training batch (+ one small validation slide), as cross_validate builds them."""
    from isg_core.experiments import isg, model_factory, train_config
    from isg_core.models import InputStandardizer
    from isg_core.train.engine import SlideData, feature_stats

    prof = PROFILES[profile]
    d, g = prof.features.code_dim, prof.tiling.grid
    cfg = replace(train_config(prof, isg()), epochs=1)
    if max_patches is not None:
        cfg = replace(cfg, max_patches=max_patches)
    rng = np.random.default_rng(2)
    sizes = [patches_per_slide] * cfg.batch_size + [16]
    data = SlideData([f"s{i}" for i in range(len(sizes))],
                     [rng.standard_normal((n, d)).astype(np.float32) for n in sizes],
                     [rng.standard_normal((n, g, g, d)).astype(np.float16) for n in sizes],
                     [rng.integers(0, 64, (n, 2)) for n in sizes])
    Y = rng.standard_normal((len(sizes), 10))
    factory, model_cfg = model_factory(isg(), d, g, prof.models.width)
    model = InputStandardizer(factory(Y.shape[1]), feature_stats(data, range(cfg.batch_size)))
    return model, data, Y, cfg, model_cfg


def measure_train_isg(max_patches: int, threads: int, limit_gb: float) -> dict:
    """One step of ISG-10-2 at paper width (the paper's batch of 8 slides, ``max_patches`` drawn
    per slide; the profile's is 256), then the quick profile's step as the time reference."""
    from isg_core.train.engine import fit

    _child_setup(threads, limit_gb)
    model, data, Y, cfg, model_cfg = _isg_step_setup("paper", max_patches)
    train, val = np.arange(cfg.batch_size), np.array([cfg.batch_size])
    baseline = rss_now_mb()
    reset_peak_rss()
    t0 = time.perf_counter()
    try:
        _, hist = fit(model, data, Y, train, val, cfg, device="cpu")
    except (RuntimeError, MemoryError) as e:  # an allocation past --limit-gb
        return {"error": str(e).splitlines()[0][:160], "baseline_rss_mb": baseline, "peak_rss_mb": peak_rss_mb()}
    seconds = time.perf_counter() - t0
    peak = peak_rss_mb()
    n_params = sum(p.numel() for p in model.parameters())
    qmodel, qdata, qY, qcfg, _ = _isg_step_setup("quick")
    qtrain, qval = np.arange(qcfg.batch_size), np.array([qcfg.batch_size])
    quick_s = _median_seconds(lambda: fit(qmodel, qdata, qY, qtrain, qval, qcfg, device="cpu"))
    # patches of the step: the slides of the batch times those drawn of each (quick: 4 x 12)
    return {"seconds": seconds, "patches": cfg.batch_size * max_patches, "quick_seconds": quick_s,
            "quick_patches": qcfg.batch_size * qcfg.max_patches,
            "baseline_rss_mb": baseline, "peak_rss_mb": peak,
            "outputs": f"d={model_cfg['d']}, width={model_cfg['width']} (= d), {n_params / 1e6:.2f} M parameters, "
                       f"train loss {hist[0]['train_loss']:.3g}"}


def _fresh(fn, *args) -> dict:
    """``fn(*args)`` in a spawned process; a child killed from outside (the OOM killer) is a row too."""
    try:
        return in_fresh_process(fn, *args)
    except Exception as e:  # noqa: BLE001 - BrokenProcessPool and the like: record, go on to the next step
        return {"error": f"{type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''}"}


def _available_gb() -> float:
    """MemAvailable in GiB (/proc/meminfo gives KiB)."""
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 2**20
    return float("nan")


def _line(points: list[tuple[int, float]], x: float) -> float:
    """The straight line through the last two (size, value) points, at ``x``: activations, and so
    the peak, grow linearly with the batch."""
    (x0, y0), (x1, y1) = points[-2], points[-1]
    return y1 + (y1 - y0) / (x1 - x0) * (x - x1)


def ladder(step: str, fn, fixed: tuple, sizes: list[int], target: int, label, limit_gb: float, threads: int,
           config: str) -> list[dict]:
    """Rows of ``fn(*fixed, size, threads, limit_gb)`` for growing ``sizes`` up to ``target`` (the
    paper's), each in a fresh process.  A smaller size whose peak the last two measured sizes
    predict to be over 90% of the cap is not run; the target always is, since a step need not grow
    linearly (the encoders take a batch in chunks), and the cap makes a step that does not fit
    fail instead of starving the machine.  A target that did not fit is then extrapolated (peak on
    the line of the last two measured; seconds in proportion to the size, from the largest
    measured).  ``label`` names a size in the table; ``config`` (JSON) is the network sizes of the row."""
    rows, points = [], []
    for size in sorted(set(sizes) | {target}):
        if size != target and len(points) >= 2 and _line(points, size) > 0.9 * limit_gb * 1024:
            continue
        r = _fresh(fn, *fixed, size, threads, limit_gb)
        rows.append({"step": step, "size": label(size), "how": "measured" if "error" not in r else "did not fit",
                     **r, "config": config})
        print(rows[-1], flush=True)
        if "error" in r:
            break
        points.append((size, r["peak_rss_mb"]))
    if target not in [p[0] for p in points] and len(points) >= 2:
        big = rows[len(points) - 1]
        scale = target / points[-1][0]
        rows.append({"step": step, "size": label(target),
                     "how": f"extrapolated from {label(points[-2][0])} and {label(points[-1][0])}",
                     "peak_rss_mb": _line(points, target), "baseline_rss_mb": big["baseline_rss_mb"],
                     "seconds": big["seconds"] * scale,
                     "seconds_r1_step": big.get("seconds_r1_step", np.nan) * scale,
                     "patches": big["patches"] * scale, "quick_seconds": big["quick_seconds"],
                     "quick_patches": big["quick_patches"],
                     "config": config})
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--extract-batches", type=int, nargs="+", default=[16, 64],
                    help="smaller extraction batches measured first (the paper's 256 is always the target)")
    ap.add_argument("--global-batches", type=int, nargs="+", default=[4, 8, 16],
                    help="smaller batches of the global extractor's step (the paper's 32 is the target)")
    ap.add_argument("--isg-patches", type=int, nargs="+", default=[32, 64, 128],
                    help="fewer patches drawn per slide in ISG's step (the paper profile's 256 is the target)")
    ap.add_argument("--limit-gb", type=float, default=18.0,
                    help="data cap of each child process, in GiB (2**30 bytes) despite the flag's name")
    ap.add_argument("--relabel", action="store_true",
                    help="measure nothing: rename MB / GB to MiB / GiB in the written CSV and Markdown (same "
                         "numbers, same 'Made by' command)")
    args = ap.parse_args()
    if args.relabel:
        table = relabel_results("paper_memory", OUT_PROFILE, "paper_memory", floatfmt=".3g")
        print(table.drop(columns=["outputs", "config", "command", "run_config"], errors="ignore").round(3)
              .to_string(index=False))
        return
    limit = round(min(args.limit_gb, 0.85 * _available_gb()), 1)
    load_start = os.getloadavg()
    paper = PROFILES["paper"]
    fc, mc = paper.features, paper.models
    run = {"limit_gb": limit, "threads": args.threads}
    enc = json.dumps({"E_G": f"{fc.global_resolution} px, channel_base {fc.channel_base}",
                      "E_L": f"{fc.local_resolution} px, channel_base {fc.local_channel_base}",
                      "d": fc.code_dim, "channel_max": fc.channel_max})
    rows = ladder("extract: E_G + E_L (untrained), one batch", measure_extract, (), args.extract_batches,
                  fc.extract_batch, lambda b: f"{b} global patches (+ {paper.tiling.grid ** 2 * b} local)",
                  config=enc, **run)
    for scale, batches in (("global", args.global_batches), ("local", [])):
        res, base = ((fc.global_resolution, fc.channel_base) if scale == "global"
                     else (fc.local_resolution, fc.local_channel_base))
        rows += ladder(f"train {scale} extractor: C + R1, then E + D (L1 + LPIPS + adv)", measure_train_extractor,
                       (scale,), batches, fc.batch_size, lambda b: f"{b} patches",
                       config=json.dumps({"resolution": res, "channel_base": base, "d": fc.code_dim,
                                          "channel_max": fc.channel_max}), **run)
    rows += ladder("train ISG-10-2 at full width (fit, one step + inner validation)", measure_train_isg, (),
                   args.isg_patches, mc.max_patches, lambda n: f"{mc.batch_size} slides x {n} patches",
                   config=json.dumps({"d": fc.code_dim, "width": mc.width, "grid": paper.tiling.grid,
                                      "lr": mc.lr}), **run)

    df = pd.DataFrame(rows)
    for c in ("seconds", "seconds_r1_step", "patches", "quick_seconds", "quick_patches", "baseline_rss_mb",
              "peak_rss_mb", "error", "outputs"):
        if c not in df:
            df[c] = np.nan
    # *_rss_mb are MiB (KiB from the kernel / 1024): / 1024 is GiB
    df["peak RSS (GiB)"] = df.peak_rss_mb / 1024
    df["added by the step (GiB)"] = (df.peak_rss_mb - df.baseline_rss_mb) / 1024
    df["patches / s"] = df.patches / df.seconds
    df["quick: patches / s"] = df.quick_patches / df.quick_seconds
    df["step / quick step"] = df.seconds / df.quick_seconds
    ram_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    df[f"fits {ram_gb:.0f} GiB"] = df["peak RSS (GiB)"] <= ram_gb
    df = df.rename(columns={"seconds": "s per step", "seconds_r1_step": "s (step with R1)",
                            "baseline_rss_mb": "before step (MiB)", "quick_seconds": "quick: s per step"})
    cols = ["step", "size", "how", "peak RSS (GiB)", f"fits {ram_gb:.0f} GiB", "added by the step (GiB)",
            "before step (MiB)", "s per step", "s (step with R1)", "patches / s", "quick: s per step",
            "quick: patches / s", "step / quick step", "outputs", "config", "error"]
    table = df[cols].drop(columns=["error"] if df.error.isna().all() else [])
    cmd = ("python benchmarks/paper_memory.py --threads {t} --extract-batches {e} --global-batches {g} "
           "--isg-patches {i} --limit-gb {l:g}").format(t=args.threads, e=" ".join(map(str, args.extract_batches)),
                                                       g=" ".join(map(str, args.global_batches)),
                                                       i=" ".join(map(str, args.isg_patches)), l=args.limit_gb)
    import torch

    config = {"profile": "paper", "features": fc.__dict__, "models": mc.__dict__, "tiling": paper.tiling.__dict__,
              "threads": args.threads, "data cap per process (GiB)": limit, "machine": platform.machine(),
              "cpus": os.cpu_count(), "memory (GiB)": round(ram_gb, 1),
              "torch": torch.__version__, "load average (1, 5, 15 min) at start": [round(x, 2) for x in load_start],
              "at end": [round(x, 2) for x in os.getloadavg()]}
    note = ("Each row in a fresh process (CPU only). Peak = resident high-water mark of the step, reset after "
            "imports and model construction, so it includes 'before step' (models, optimisers, inputs). 'size': "
            "the step's batch; the paper's own (256 patches to extract, batch 32 to train an extractor, 8 slides x "
            "256 patches for ISG) is always tried under the cap; where it did not fit it is "
            "extrapolated on their line (seconds in proportion to the size: a lower bound, since patches / s fell "
            "as the batches grew on this CPU). 'quick': the same step at the quick profile's sizes "
            "and batch (median of 3 after a warm-up), in the same process after this one; 'patches' are global "
            "patches (extraction, extractor training) or the patches ISG's batch draws. Untrained weights and random "
            "inputs: neither changes the cost. Memory does not depend on other jobs; seconds do: the load average "
            "(2 cores) at start and end is in the config.")
    write_table(table.drop(columns=["config"]), "paper_memory", OUT_PROFILE, cmd, config=config, floatfmt=".3g",
                title="Peak memory and seconds per step of the paper profile's networks on a CPU", note=note)
    # the CSV carries the command and the config too (repeated on every row), and each row's network sizes
    csv = profile_results_dir(OUT_PROFILE) / "paper_memory.csv"
    with atomic_path(csv) as tmp:
        table.assign(command=cmd, run_config=json.dumps(config, sort_keys=True, default=str)).to_csv(
            tmp, index=False, float_format="%.6g")
    print(table.drop(columns=["outputs", "config"]).round(3).to_string(index=False))


if __name__ == "__main__":
    main()
