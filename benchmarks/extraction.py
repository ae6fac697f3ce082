"""Feature-extraction throughput: patches per second, as a ratio to reading the same patches.

    python benchmarks/extraction.py [--profile quick] [--slides 6] [--device cpu|cuda] [--batch N]

For the first ``--slides`` slides of the profile's ISG-Sim cohort (tiled, selected, extractors
trained: ``isg train-extractor`` or notebook 03), in one process and on the same kept patches:

* ``read``: OpenSlide read + decode of every kept global patch (the baseline, ratio 1.0);
* ``fe:global``: read + E_G;  ``fe``: read + E_G + E_L on the 64 local patches of each;
* ``resnet50``: read + pooled ResNet50 at the profile's input size.

Each is the best of ``--repeats`` runs (these machines are noisy).  Writes
``results/<profile>/benchmark_extraction.{csv,md}`` (``..._<device>`` for a non-CPU device).
ISG-Sim is SIMULATED; the slides are 1024 px at ``quick``.

It also writes ``benchmark_extraction_cost.{csv,md}`` (``--cost-only``: that table alone, no
cohort needed): per kept global patch, at the ``quick`` and ``paper`` sizes, the FLOPs of E_G +
(p/q)^2 E_L and of ResNet50 (:mod:`isg_core.features.flops`) and the measured seconds of both on
the same random patches in the same process (random weights: the cost does not depend on them),
as the ratio ISG / ResNet50 (issue 16: at most 1).
"""
from __future__ import annotations

import argparse
import platform
import time
import warnings
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import torch

from isg_core.cohorts.folder import ensure_cohort
from isg_core.config import get_profile
from isg_core.data.manifest import read_manifest
from isg_core.data.slides import open_slide
from isg_core.data.tiling import read_global_patch, read_tiling_h5
from isg_core.features.extract import ResNet50Encoder, StyleGANEncoder
from isg_core.features.workflow import ensure_extractor
from isg_core.report.outputs import write_table


def run(slides, tiles: Path, encoder, batch: int) -> tuple[int, float]:
    """(patches, seconds) to read and encode every kept patch of ``slides``."""
    n, t0 = 0, time.perf_counter()
    for sid, path in slides:
        h5 = tiles / f"{sid}.h5"
        tiling = read_tiling_h5(h5)
        with h5py.File(h5, "r") as f:
            idx = np.flatnonzero(f["selection/shannon/keep"][:])
        with open_slide(path) as slide:
            for k in range(0, len(idx), batch):
                x = np.stack([read_global_patch(slide, tiling, int(i)) for i in idx[k:k + batch]])
                if encoder is not None:
                    encoder.encode(x, tiling.config.local_size)
                n += len(x)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return n, time.perf_counter() - t0


def cost_table(device: str, repeats: int, n_patches: int = 8) -> pd.DataFrame:
    """FLOPs and measured seconds per kept patch of ISG's two encoders and of ResNet50, at the
    quick and paper sizes, on the same random patches, best of ``repeats``."""
    from isg_core.config import PROFILES
    from isg_core.features.flops import extraction_flops
    from isg_core.features.train import train_config_for

    rows = []
    for name in ("quick", "paper"):
        prof = PROFILES[name]
        p, q = prof.tiling.global_size, prof.tiling.local_size
        x = np.random.default_rng(0).integers(0, 256, (n_patches, p, p, 3), dtype=np.uint8)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            gcfg, lcfg = train_config_for("global", prof.features), train_config_for("local", prof.features)
            isg = StyleGANEncoder.from_configs(gcfg, lcfg, device=device)
            e_g = StyleGANEncoder.from_configs(gcfg, None, device=device)  # E_G alone: E_L's time is the rest
            resnet = ResNet50Encoder(prof.features.resnet_input, device=device)
        secs = {}
        for label, enc in (("ISG", isg), ("E_G", e_g), ("ResNet50", resnet)):
            enc.encode(x[:2], q)  # warm-up
            secs[label] = min(_timed(enc, x, q) for _ in range(repeats)) / n_patches
        fl = extraction_flops(prof)
        rows.append({"profile": name, "global px": prof.features.global_resolution,
                     "local patches x px": f"{prof.tiling.grid ** 2} x {prof.features.local_resolution}",
                     "ResNet50 px": prof.features.resnet_input, "ISG GFLOP": fl["ISG"], "E_L share": fl["E_L share"],
                     "ResNet50 GFLOP": fl["ResNet50"], "FLOP ratio ISG / ResNet50": fl["ISG / ResNet50"],
                     "ISG s/patch": secs["ISG"], "ResNet50 s/patch": secs["ResNet50"],
                     "time ratio ISG / ResNet50": secs["ISG"] / secs["ResNet50"],
                     # the rate each network reaches on this device: what turns a FLOP ratio into a time ratio
                     "E_G GFLOP/s": fl["E_G"] / secs["E_G"],
                     "E_L GFLOP/s": fl["E_L"] / max(secs["ISG"] - secs["E_G"], 1e-9),
                     "ResNet50 GFLOP/s": fl["ResNet50"] / secs["ResNet50"]})
    return pd.DataFrame(rows)


def _timed(encoder, x: np.ndarray, q: int) -> float:
    t0 = time.perf_counter()
    encoder.encode(x, q)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def write_cost(args) -> None:
    df = cost_table(args.device, args.repeats)
    df["device"] = args.device if args.device != "cuda" else torch.cuda.get_device_name()
    df["threads"] = torch.get_num_threads()
    suffix = "" if args.device == "cpu" else f"_{args.device}"
    write_table(df, f"benchmark_extraction_cost{suffix}", args.profile,
                f"python benchmarks/extraction.py --cost-only --device {args.device} --repeats {args.repeats}",
                config={"patches": 8, "repeats": args.repeats, "machine": platform.machine()},
                title="Feature extraction per kept patch: ISG (E_G + 64 E_L) against ResNet50, FLOPs and seconds",
                note="FLOPs counted by torch's FlopCounterMode (2 per multiply-add of convolutions and matrix "
                     "products). Seconds: best of repeats on 8 random 256 px patches, both encoders in this process, "
                     "random weights (cost does not depend on them); ResNet50 at the profile's input size. "
                     "GFLOP/s: each network's FLOPs over its measured time (E_G timed alone; E_L = ISG - E_G): "
                     "the time ratio is the FLOP ratio times ResNet50's rate over ISG's.")
    print(df.to_string(index=False))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="quick")
    ap.add_argument("--slides", type=int, default=6)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch", type=int)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--cost-only", action="store_true", help="only the per-patch FLOP and time table (no cohort)")
    args = ap.parse_args()
    write_cost(args)
    if args.cost_only:
        return
    prof = get_profile(args.profile)
    root = ensure_cohort(prof.name)
    g, loc = ensure_extractor("global", prof, root), ensure_extractor("local", prof, root)
    man = read_manifest(root / "manifest.csv")
    slides = list(zip(man.slide_id, man.path))[: args.slides]
    batch = args.batch or prof.features.extract_batch
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        encoders = {"read": None, "fe:global": StyleGANEncoder(g, None, device=args.device),
                    "fe": StyleGANEncoder(g, loc, device=args.device),
                    "resnet50": ResNet50Encoder(prof.features.resnet_input, device=args.device)}
    run(slides[:1], root / "tiles", encoders["fe"], batch)  # warm-up (page cache, kernels)
    rows = []
    for name, enc in encoders.items():
        best = min((run(slides, root / "tiles", enc, batch) for _ in range(args.repeats)), key=lambda r: r[1])
        rows.append({"step": name, "patches": best[0], "seconds": best[1], "patches_per_s": best[0] / best[1]})
    df = pd.DataFrame(rows)
    df["cost_vs_read"] = df.seconds / df.loc[df.step == "read", "seconds"].iloc[0]
    df["device"] = args.device if args.device != "cuda" else torch.cuda.get_device_name()
    df["threads"] = torch.get_num_threads()
    suffix = "" if args.device == "cpu" else f"_{args.device}"
    cmd = f"python benchmarks/extraction.py --profile {args.profile} --slides {args.slides} --device {args.device}"
    write_table(df, f"benchmark_extraction{suffix}", prof.name, cmd,
                config={"batch": batch, "slides": args.slides, "repeats": args.repeats, "machine": platform.machine(),
                        "features": prof.features.__dict__},
                title="Feature-extraction throughput (ISG-Sim, SIMULATED slides)",
                note="Best of repeats; every step includes reading its patches (the `read` row alone is the baseline). "
                     "'fe' encodes each global patch and its 64 local patches.")
    print(df.to_string(index=False))


if __name__ == "__main__":
    main()
