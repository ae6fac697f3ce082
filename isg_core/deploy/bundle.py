"""A trained model as one file that predicts on a new slide: ``isg predict --model BUNDLE``.

A cross-validation fold's best model (``fold<k>_model.pt``) holds only the slide-level network.
To run on a new slide one also needs what made its inputs, and a bundle carries all of it:

* the tiling (mpp, p, q) and the patch selection (method, parameters, threshold);
* the encoders' weights and configs (E_G and E_L of the Feature Extraction network), without the
  decoders and discriminators of their training checkpoints (a few MB instead of 20);
* the slide model as a saved model of :mod:`isg_core.models` (``{"model": "isg", "config":
  {d, grid, n_outputs, ...}, "standardize": True, "state": {...}}``): rebuilt from the file
  alone by :func:`isg_core.models.load_model`, the input standardisation fitted on its
  training slides included;
* the genes it predicts, with the training mean and SD that map its outputs back to
  log10(1 + FPKM-UQ);
* where it came from: the cohort (labelled simulated for ISG-Sim), the profile, the run and fold,
  and that fold's test PCC per gene.

It is saved with ``torch.save`` of tensors and plain Python values only, loads with
``torch.load(weights_only=True)``, and is checked on load: a file that is not a bundle, weights
that do not fit the stored config, genes that do not match the model's outputs, or encoders whose
feature size is not the model's each stop with a one-line error naming the file.  A bundle of the
first format (``isg-bundle/1``, which named a paper-table experiment instead of the model's
config) is converted on load by :func:`upgrade`, the one place that knows it;
:func:`upgrade_bundle_file` (``isg export-model --upgrade OLD``) rewrites such a file.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..config import TilingConfig
from ..devices import resolve_device
from ..errors import IsgError, atomic_path, first_line
from ..features.extract import StyleGANEncoder
from ..models import ISG, load_model, model_spec
from ..paths import results_dir
from ..selection import get_selector, parse_threshold
from .inference import SlidePipeline, inference_batch

BUNDLE_FORMAT = "isg-bundle/2"
#: the first format: ``model`` held {"experiment": run spec, "d", "grid", "width", "state"}
BUNDLE_FORMAT_V1 = "isg-bundle/1"


@dataclass
class Bundle:
    """A loaded, checked bundle: build its pipeline with :meth:`pipeline`."""

    path: Path
    raw: dict

    @property
    def genes(self) -> list[str]:
        return list(self.raw["genes"])

    @property
    def tiling(self) -> TilingConfig:
        return TilingConfig(**self.raw["tiling"])

    @property
    def meta(self) -> dict:
        return dict(self.raw["meta"])

    def denormalise(self, raw_output: np.ndarray) -> np.ndarray:
        """Model output (standardised) -> log10(1 + FPKM-UQ) per gene."""
        return np.asarray(raw_output, float) * np.asarray(self.raw["target_std"]) + np.asarray(self.raw["target_mean"])

    @property
    def d(self) -> int:
        """The feature size the slide model reads."""
        return int(self.raw["model"]["config"]["d"])

    def model(self) -> torch.nn.Module:
        """The slide model with its weights (and input standardisation), in eval mode."""
        try:
            model = load_model(self.raw["model"])
        except (RuntimeError, TypeError, ValueError, KeyError) as e:
            # the last line of load_state_dict's message names the first mismatch
            detail = (str(e).strip().splitlines() or [type(e).__name__])[-1].strip()[:120]
            raise IsgError(self.path, "the model's weights do not match its config or its "
                                      f"{len(self.genes)} genes ({detail})") from None
        return model.eval()

    def pipeline(self, device: str | None = None, batch_size: int | None = None):
        dev = resolve_device(device)
        enc = StyleGANEncoder.from_parts(self.raw["encoders"], device=dev)
        if enc.global_dim != self.d or (enc.local_dim or 0) != self.d:
            raise IsgError(self.path, f"the encoders give {enc.global_dim}/{enc.local_dim}-d features but the model "
                                      f"expects {self.d}")
        sel = self.raw["selection"]
        selector = get_selector(sel["method"], **sel.get("params", {}))
        return SlidePipeline("ISG", self.tiling, selector, parse_threshold(sel["threshold"]), enc,
                             self.model().to(dev), batch_size=batch_size or inference_batch(dev, 32), uses_local=True)


def upgrade(raw: dict) -> dict:
    """A bundle of the first format (``isg-bundle/1``) in the current one; other bundles unchanged.

    The first format stored the slide model as a paper-table experiment (``{"experiment": {"model":
    "isg", "overrides": [[name, value], ...], ...}, "d", "grid", "width", "state"}``) that was
    rebuilt through the experiment factory; the current one stores the model's full config
    (:func:`isg_core.models.model_spec`).  The network is the same: ISG-a-b with the experiment's
    overrides, at the stored width unless an override sets its own.  The weights, genes, target
    statistics, tiling, selection, encoders and meta are kept as they are."""
    if not isinstance(raw, dict) or raw.get("format") != BUNDLE_FORMAT_V1:
        return raw
    m = raw["model"]
    exp = m["experiment"]
    if exp.get("model", ISG) != ISG:
        raise ValueError(f"a bundle holds an ISG model, this one holds {exp.get('model')!r}")
    # the first format's network had the token of its time ("concat": Linear([pool(R); f])), whatever
    # the default is now; zero_init only sets initial weights, which the stored state replaces
    config = {"width": m.get("width"), "token": "concat", **{str(k): v for k, v in exp.get("overrides", [])}}
    spec = model_spec(ISG, int(m["d"]), int(m["grid"]), len(raw["genes"]), config)
    return {**raw, "format": BUNDLE_FORMAT, "model": {**spec, "standardize": True, "state": m["state"]}}


def upgrade_bundle_file(old: "str | os.PathLike", new: "str | os.PathLike") -> Path:
    """Rewrite the bundle file ``old`` in the current format at ``new`` (atomically; ``new`` may be
    ``old``).  The file is checked as :func:`load_bundle` checks it, and its model is built once."""
    bundle = load_bundle(old)
    bundle.model()  # the weights fit the converted config
    new = Path(new)
    new.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(new) as tmp:
        torch.save(bundle.raw, tmp)
    return new


def load_bundle(path: "str | os.PathLike") -> Bundle:
    """Load and check a bundle (see the module docstring for what is checked)."""
    path = Path(path)
    if not path.exists():
        raise IsgError(path, "model bundle not found")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - truncated zip, foreign pickle, not a torch file
        raise IsgError(path, f"not a readable model bundle "
                             f"({type(e).__name__}: {first_line(e)})") from None
    if not isinstance(raw, dict) or raw.get("format") not in (BUNDLE_FORMAT, BUNDLE_FORMAT_V1):
        hint = " (a cross-validation fold model: export it with `isg export-model`)" \
            if isinstance(raw, dict) and str(raw.get("format", "")).startswith("isg-slide-model/") else ""
        raise IsgError(path, f"not an ISG model bundle (expected format {BUNDLE_FORMAT}){hint}")
    missing = [k for k in ("genes", "target_mean", "target_std", "tiling", "selection", "encoders", "model", "meta")
               if k not in raw]
    if missing:
        raise IsgError(path, f"model bundle is missing {', '.join(missing)}")
    n = len(raw["genes"])
    if n == 0 or len(raw["target_mean"]) != n or len(raw["target_std"]) != n or len(set(raw["genes"])) != n:
        raise IsgError(path, f"model bundle's genes ({n}) and their target mean/SD "
                             f"({len(raw['target_mean'])}/{len(raw['target_std'])}) do not match")
    try:
        raw = upgrade(raw)
        config = raw["model"]["config"]
        outputs, _ = int(config["n_outputs"]), int(config["d"])
    except (KeyError, TypeError, ValueError) as e:
        raise IsgError(path, f"model bundle's slide model has no valid config ({first_line(e)})") from None
    if outputs != n:
        raise IsgError(path, f"model bundle's {n} genes do not match its model's {outputs} outputs")
    try:
        TilingConfig(**raw["tiling"])
    except TypeError as e:
        raise IsgError(path, f"model bundle's tiling config is not valid ({e})") from None
    return Bundle(path, raw)


def check_genes(bundle: Bundle, genes: list[str] | None) -> list[str]:
    """The genes to report: all of the bundle's, or ``genes``, each of which it must predict."""
    if not genes:
        return bundle.genes
    unknown = [g for g in genes if g not in bundle.genes]
    if unknown:
        raise IsgError(bundle.path, f"the model does not predict {', '.join(unknown)} "
                                    f"(it predicts {', '.join(bundle.genes)})")
    return list(genes)


def default_bundle_path(profile: str) -> Path:
    """Where ``make reproduce`` (notebook 12) leaves the profile's model: ``results/<profile>/isg_model.pt``."""

    return results_dir() / profile / "isg_model.pt"
