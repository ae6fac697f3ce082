"""Inference on a new slide: the whole path read -> select -> extract -> predict, timed by stage.

A :class:`SlidePipeline` is one method's path: a patch selector with its threshold, a patch
encoder, an optional supertile step (HE2RNA) and a slide model.  :meth:`SlidePipeline.run`
streams the slide's global patches in batches, so a slide is never in memory at once:

1. **read**: tile the slide (:func:`isg_core.data.tiling.tile_slide`) and read a batch of global
   patches at the tiling's mpp (OpenSlide, the pyramid level that needs no upsampling);
2. **select**: score each patch (Shannon's compressed length for ISG, Otsu tissue fraction for
   HE2RNA) and keep those above the threshold;
3. **extract**: encode the kept patches (ISG: E_G and E_L, f_i and R_i; HE2RNA: ResNet50);
4. **predict**: (HE2RNA: K-means supertiles first) the slide model on the kept patches.

Per-slide thresholds (``mu_sigma``, ``otsu`` of the scores) need every score before the first
keep decision, so they take two passes over the slide (the kept patches are read again);
absolute thresholds (the default ``bpp:8.7`` of Shannon, HE2RNA's tissue fraction 0.5) take one.
Only the features of the kept patches are held: f_i in float32 and R_i in float16.

The pipeline of a trained model comes from a bundle (:mod:`isg_core.deploy.bundle`); the efficiency
benchmark builds both methods with untrained weights (:func:`untrained_pipeline`), since the
time of a forward pass does not depend on the weights.
"""
from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from ..config import Profile, TilingConfig
from ..data.slides import open_slide
from ..data.tiling import read_global_patch, tile_slide
from ..devices import resolve_device
from ..errors import IsgError
from ..features.extract import PatchEncoder, ResNet50Encoder, StyleGANEncoder
from ..features.train import train_config_for
from ..models import ISG, build_model, identity_standardizer
from ..models.baselines.he2rna import global_only_inputs
from ..selection import Selector, Threshold, get_selector, resolve_threshold
from ..train.engine import SlideData, predict

STAGES = ("read", "select", "extract", "predict")


@dataclass
class SlideOutput:
    """What :meth:`SlidePipeline.run` found on one slide."""

    slide_id: str
    slide_path: str
    tiling: object  # isg_core.data.tiling.Tiling
    scores: np.ndarray  # (n_patches,) selection score of every global patch
    keep: np.ndarray  # (n_patches,) bool
    threshold_score: float
    prediction: np.ndarray  # (n_outputs,) the model's raw output (standardised units)
    attention: np.ndarray | None  # (n_kept,) the class token's attention to each kept patch, or None
    seconds: dict[str, float] = field(default_factory=dict)  # per stage

    @property
    def n_patches(self) -> int:
        return int(len(self.scores))

    @property
    def n_kept(self) -> int:
        return int(self.keep.sum())


class _Clock:
    """Seconds spent per stage (perf_counter)."""

    def __init__(self):
        self.seconds = dict.fromkeys(STAGES, 0.0)

    def add(self, stage: str, t0: float) -> float:
        t = time.perf_counter()
        self.seconds[stage] += t - t0
        return t


@dataclass
class SlidePipeline:
    """One method's inference path (see the module docstring).

    ``model`` takes the common slide-model signature ``(f, R, mask, pos)``; ``supertiles`` (HE2RNA)
    replaces the kept patches by at most that many K-means clusters of their coordinates."""

    name: str
    tiling: TilingConfig
    selector: Selector
    threshold: Threshold
    encoder: PatchEncoder
    model: nn.Module
    supertiles: int | None = None
    batch_size: int = 32
    uses_local: bool = True  # the model reads R_i (ISG); else R is a placeholder and E_L is not run

    def run(self, slide_path: "str | os.PathLike", slide_mpp: float | None = None,
            progress: bool = False) -> SlideOutput:
        clock = _Clock()
        t = time.perf_counter()
        with open_slide(slide_path, mpp=slide_mpp) as slide:
            tiling = tile_slide(slide, self.tiling)
            n = tiling.n_patches
            if n == 0:
                raise IsgError(slide_path, f"slide is smaller than one {self.tiling.global_size} px patch at "
                                           f"{self.tiling.mpp} um/px")
            pixels = self.tiling.global_size ** 2
            per_slide = self.threshold.kind in ("mu_sigma", "robust", "otsu")
            fixed = None if per_slide else resolve_threshold(np.zeros(0), self.threshold, pixels)
            if self.selector.requires_fit:  # Otsu's grey level comes from the slide's thumbnail
                thumb = slide.thumbnail(1024)
                t = clock.add("read", t)
                self.selector.fit(thumb)
                t = clock.add("select", t)
            scores = np.empty(n)
            feats: list[tuple[np.ndarray, np.ndarray | None]] = []
            bar = tqdm(total=n, desc=f"{self.name} {tiling.slide_id}", unit="patch", disable=not progress, leave=False)
            for start in range(0, n, self.batch_size):
                idx = np.arange(start, min(start + self.batch_size, n))
                t = time.perf_counter()
                x = np.stack([read_global_patch(slide, tiling, int(i)) for i in idx])
                t = clock.add("read", t)
                scores[idx] = [self.selector.score(p) for p in x]
                t = clock.add("select", t)
                if fixed is not None:
                    kept = scores[idx] > fixed
                    if kept.any():
                        feats.append(self._encode(x[kept]))
                        clock.add("extract", t)
                bar.update(len(idx))
            bar.close()
            value = fixed if fixed is not None else resolve_threshold(scores, self.threshold, pixels)
            keep = scores > value
            if not keep.any():  # as in training: a slide keeps at least its highest-scoring patch
                warnings.warn(f"{slide_path}: no patch passes the {self.threshold} threshold; using the "
                              "highest-scoring one", stacklevel=2)
                keep[int(np.argmax(scores))] = True
                feats = []
                per_slide = True  # encode it below
            if per_slide:  # second pass: read and encode the kept patches
                rows = np.flatnonzero(keep)
                for start in range(0, len(rows), self.batch_size):
                    t = time.perf_counter()
                    x = np.stack([read_global_patch(slide, tiling, int(i))
                                  for i in rows[start:start + self.batch_size]])
                    t = clock.add("read", t)
                    feats.append(self._encode(x))
                    clock.add("extract", t)
        t = time.perf_counter()
        pred, att = self._predict(feats, tiling.grid_index[keep])
        clock.add("predict", t)
        return SlideOutput(tiling.slide_id, str(slide_path), tiling, scores, keep, float(value), pred, att,
                           clock.seconds)

    def _encode(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        f, R = self.encoder.encode(x, self.tiling.local_size)
        if self.uses_local:
            if R is None:
                raise IsgError(None, f"{self.name}: the model needs local features but the encoder gives none")
            return f.astype(np.float32), R.astype(np.float16)
        return f.astype(np.float32), None

    @torch.no_grad()
    def _predict(self, feats, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        f, pos = np.concatenate([a for a, _ in feats]), pos.astype(np.int64)
        if self.uses_local and self.supertiles is None:
            R = np.concatenate([b for _, b in feats])
        else:  # as in cross-validation: (supertiles and) a zero placeholder for R
            f, R, pos = global_only_inputs(f, pos, self.supertiles)
        dev = next(self.model.parameters()).device
        self.model.eval()
        if self.uses_local and has_slide_path(self.model):
            # the Dual Attention network: chunked, so memory grows linearly with the kept patches
            out, att = self.model.forward_slide(torch.from_numpy(f).to(dev), torch.from_numpy(R).to(dev),
                                                torch.from_numpy(pos).to(dev))
            return out.float().cpu().numpy(), None if att is None else att.float().cpu().numpy()
        data = SlideData(["slide"], [f.astype(np.float32)], [R], [pos])
        return predict(self.model, data, [0], 1, str(dev))[0], None


def has_slide_path(model: nn.Module) -> bool:
    """Whether ``model`` (or the network inside its input standardiser) has the bounded-memory
    single-slide path ``forward_slide`` (the Dual Attention network)."""
    return hasattr(getattr(model, "model", model), "forward_slide")


def inference_batch(device: torch.device, gpu_batch: int) -> int:
    """Global patches per encoder batch: the profile's on a GPU; 8 on a CPU, where larger batches
    only add memory (measured on CMU-1-Small-Region at ``quick``, 2 threads: 8 patches per batch
    encode in 0.88 s with a 1.09 GB peak, 32 in 1.08 s with 1.46 GB)."""
    return gpu_batch if device.type == "cuda" else 8


# --- pipelines with untrained weights (the efficiency benchmark) ---------------------------------
def untrained_pipeline(method: str, profile: Profile, n_outputs: int = 16, device: str | None = None,
                       seed: int = 0, batch_size: int | None = None) -> SlidePipeline:
    """ISG or HE2RNA at the profile's sizes with random weights (timing does not depend on them):

    * ``isg``: Shannon selection at its default threshold, E_G and E_L of the profile's
      FeatureConfig, ISG-10-2 at full width;
    * ``he2rna``: Otsu tissue tiles (HE2RNA's own rule, fraction >= 0.5), ResNet50 at the profile's
      input size (224 at ``paper``, as published), 100 K-means supertiles, HE2RNA's MLP."""
    dev = resolve_device(device)
    fc = profile.features
    bs = batch_size or inference_batch(dev, fc.extract_batch)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if method == "isg":
            enc = StyleGANEncoder.from_configs(train_config_for("global", fc), train_config_for("local", fc),
                                               device=dev)
            d = fc.code_dim
            model = identity_standardizer(build_model(ISG, d, profile.tiling.grid, n_outputs), d)
            sel = get_selector("shannon")
            return SlidePipeline("ISG", profile.tiling, sel, sel.default_threshold, enc, model.to(dev).eval(),
                                 batch_size=bs, uses_local=True)
        if method == "he2rna":
            enc = ResNet50Encoder(fc.resnet_input, device=dev)
            d = enc.global_dim
            model = identity_standardizer(build_model("he2rna", d, 1, n_outputs), d)
            sel = get_selector("he2rna")
            return SlidePipeline("HE2RNA", profile.tiling, sel, sel.default_threshold, enc, model.to(dev).eval(),
                                 supertiles=100, batch_size=bs, uses_local=False)
    raise IsgError(None, f"unknown method {method!r} (isg, he2rna)")
