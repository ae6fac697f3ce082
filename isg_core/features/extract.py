"""Feature extraction for every slide: ``isg extract`` (paper Sec. 3, step 4).

For each kept global patch x_i of a slide: f_i = E_G(x_i) (d) and the local cube
R_i = E_L(X''_L_i) ((p/q) x (p/q) x d, one code per local patch at its grid position).  They are
added to the slide's HDF5 beside ``coords`` as

    features/<name>/index   (n,)         int64    rows of ``coords`` that were encoded
    features/<name>/global  (n, d)       float32  f_i
    features/<name>/local   (n, g, g, d) float16  R_i (half precision: the cubes are the bulk)

with the encoder's description (checkpoints, LPIPS/ImageNet trunk) as attributes.  Patches are
read and encoded in batches (a slide is never in memory at once), the next batch is read while
the current one is encoded, and the file is updated through a temporary copy renamed into
place, so a killed run leaves every slide either done or untouched; done slides are skipped.

A finished :func:`extract_cohort` leaves a receipt in ``<tiles>/.extracted/``, keyed on the encoder's
description, the slides' ids and files (:func:`~isg_core.data.fingerprint.file_fingerprint`) and the
identity of each HDF5 as a file (:func:`~isg_core.data.fingerprint.stat_identity`).  Asked again
with nothing rewritten, it answers from the receipt without opening the 300 HDF5s; any rewrite
(another feature set extracted into the same files, a slide re-tiled) misses, and the slides are
checked one by one as before, which writes a new receipt.
"""
from __future__ import annotations

import abc
import hashlib
import json
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from ..data.fingerprint import content_sha256, file_fingerprint, stat_identity
from ..data.manifest import read_manifest, shard_rows
from ..data.tiling import check_same_slide, open_tiled_slide, read_global_patch, read_tiling_h5
from ..devices import resolve_device
from ..errors import IsgError, atomic_path, fault_point, first_line
from ..paths import cohort_tiles_dir
from ..selection.selectors import ShannonSelector
from ..selection.thresholds import select, table4_thresholds
from .bank import DESCRIPTOR_DIM, appearance_descriptor, resize_patches, to_tensor
from .resnet import ResNet50Features
from .stylegan import Encoder
from .train import ExtractorTrainConfig, load_checkpoint

#: Patches per encoder call.  The activations of one call grow with its batch: at the paper's sizes
#: (E_G at 256 px, channel_base 8192; E_L on 64 local patches per global patch) a batch of 256
#: global patches in one call needs ~33 GB (benchmarks/paper_memory.py), so the encoders take a
#: batch in chunks of at most this many.  Chunks of 32 / 4096 leave the quick profile's batches
#: (32 global, 2048 local) in one call, so its features are unchanged.
GLOBAL_CHUNK = 32
LOCAL_CHUNK = 4096


class PatchEncoder(abc.ABC):
    """Turns a batch of global patches (uint8 (B, p, p, 3)) into features."""
    name: str
    global_dim: int
    local_dim: int | None = None  # None: no local cube

    def __init__(self, device: str | torch.device | None = None):
        self.device = resolve_device(device)

    @abc.abstractmethod
    def encode(self, patches: np.ndarray, q: int) -> tuple[np.ndarray, np.ndarray | None]:
        """(f (B, d) float32, R (B, p/q, p/q, d) or None)."""

    @abc.abstractmethod
    def describe(self) -> dict:
        """JSON-able description stored with the features (which weights, which trunk)."""


def _file_id(path: Path) -> str:
    return content_sha256(path)[:16]


class StyleGANEncoder(PatchEncoder):
    """The Feature Extraction network's encoders E_G and E_L (Sec. 3.2), from two checkpoints.
    ``untrained=True`` keeps the architecture but not the weights (a control for Table 5: what
    do features of a random network of the same shape give?)."""

    def __init__(self, global_ckpt: "str | os.PathLike", local_ckpt: "str | os.PathLike | None" = None,
                 device: str | torch.device | None = None, untrained: bool = False):
        parts = {}
        for scale, path in (("global", global_ckpt), ("local", local_ckpt)):
            if path is None:
                continue
            path = Path(path)
            ck = load_checkpoint(path)
            if ck["config"]["scale"] != scale:
                raise IsgError(path, f"checkpoint is a {ck['config']['scale']} extractor, given as --{scale}")
            parts[scale] = {"config": ck["config"], "encoder": None if untrained else ck["encoder"],
                            "step": int(ck["step"]), "lpips_trunk": ck["lpips_trunk"],
                            "checkpoint": str(path), "sha256": _file_id(path)}
        self._setup(parts, device, untrained)

    @classmethod
    def from_parts(cls, parts: dict[str, dict], device: str | torch.device | None = None) -> "StyleGANEncoder":
        """From ``{scale: {config (ExtractorTrainConfig dict), encoder (state dict or None = random
        weights), step, lpips_trunk, checkpoint, sha256}}``: what a model bundle carries."""
        self = cls.__new__(cls)
        self._setup(parts, device, untrained=False)
        return self

    @classmethod
    def from_configs(cls, global_cfg, local_cfg=None, device: str | torch.device | None = None) -> "StyleGANEncoder":
        """Random weights of the shapes of two :class:`ExtractorTrainConfig` (timing benchmarks)."""
        parts = {scale: {"config": c.to_dict(), "encoder": None, "step": 0, "lpips_trunk": "none",
                         "checkpoint": "untrained", "sha256": ""}
                 for scale, c in (("global", global_cfg), ("local", local_cfg)) if c is not None}
        return cls.from_parts(parts, device)

    def _setup(self, parts: dict[str, dict], device, untrained: bool) -> None:
        PatchEncoder.__init__(self, device)
        self.untrained = untrained
        self.meta: dict = {"kind": "stylegan2-ae" + ("-untrained" if untrained else "")}
        self.encoders: dict[str, torch.nn.Module] = {}
        for scale, part in parts.items():
            cfg = ExtractorTrainConfig.from_dict(part["config"])
            if cfg.scale != scale:
                raise IsgError(part.get("checkpoint"), f"a {cfg.scale} extractor given as the {scale} one")
            with torch.random.fork_rng(devices=[]):  # untrained: the seeded random weights of its config
                torch.manual_seed(cfg.seed)
                enc = Encoder(cfg.model).eval()
            if part.get("encoder") is not None:
                try:
                    enc.load_state_dict(part["encoder"])
                except RuntimeError as e:
                    raise IsgError(part.get("checkpoint"), f"the {scale} encoder's weights do not match its config "
                                                           f"({first_line(e)})") from None
            # channels-last: 1.5x faster convolutions on this CPU (measured on E_L, 2048 local patches)
            self.encoders[scale] = enc.to(self.device, memory_format=torch.channels_last).eval().requires_grad_(False)
            self.meta[scale] = {"checkpoint": part.get("checkpoint"), "sha256": part.get("sha256", ""),
                                "step": int(part.get("step", 0)), "lpips_trunk": part.get("lpips_trunk"),
                                "resolution": cfg.model.resolution, "code_dim": cfg.model.code_dim}
        if "global" not in self.encoders:
            raise IsgError(None, "a StyleGAN encoder needs at least the global extractor")
        self.name = "fe-untrained" if untrained else "fe"
        self.global_dim = self.meta["global"]["code_dim"]
        self.local_dim = self.meta["local"]["code_dim"] if "local" in self.meta else None

    def describe(self) -> dict:
        return self.meta

    @torch.inference_mode()
    def encode(self, patches: np.ndarray, q: int) -> tuple[np.ndarray, np.ndarray | None]:
        x = to_tensor(patches).to(self.device)  # (B, 3, p, p) at the tiling's mpp
        cl = torch.channels_last
        xg = resize_patches(x, self.meta["global"]["resolution"]).contiguous(memory_format=cl)
        f = torch.cat([self.encoders["global"](c) for c in xg.split(GLOBAL_CHUNK)]).float().cpu().numpy()
        if "local" not in self.encoders:
            return f, None
        b, _, p, _ = x.shape
        g = p // q
        # (B, 3, g*q, g*q) -> (B*g*g, 3, q, q), row-major over the grid: R_i[r, c] is local patch (r, c)
        loc = x.view(b, 3, g, q, g, q).permute(0, 2, 4, 1, 3, 5).reshape(b * g * g, 3, q, q)
        xl = resize_patches(loc, self.meta["local"]["resolution"]).contiguous(memory_format=cl)
        r = torch.cat([self.encoders["local"](c).float() for c in xl.split(LOCAL_CHUNK)])
        return f, r.view(b, g, g, -1).cpu().numpy()


class ResNet50Encoder(PatchEncoder):
    """Pooled ResNet50 features of the global patch (no local cube)."""
    name = "resnet50"
    global_dim = 2048

    def __init__(self, input_size: int = 224, device: str | torch.device | None = None):
        super().__init__(device)

        self.net = ResNet50Features(input_size).to(self.device)
        self.meta = {"kind": "resnet50", "trunk": self.net.trunk, "input_size": input_size}

    def describe(self) -> dict:
        return self.meta

    def encode(self, patches: np.ndarray, q: int) -> tuple[np.ndarray, None]:
        return self.net(to_tensor(patches).to(self.device)).float().cpu().numpy(), None


class DescriptorEncoder(PatchEncoder):
    """No network: the appearance descriptor (:func:`isg_core.features.bank.appearance_descriptor`,
    13 colour, haematoxylin-quantile and texture statistics) of the global patch as f_i and of each
    local patch as R_i.  A reference for Table 5 and the slide models: what the learned features
    add over colour statistics anyone can compute."""
    name = "descriptor"
    global_dim = local_dim = DESCRIPTOR_DIM

    def describe(self) -> dict:
        return {"kind": "appearance-descriptor", "dim": DESCRIPTOR_DIM, "dtype": "float32"}  # float64 before 2026-12

    def encode(self, patches: np.ndarray, q: int) -> tuple[np.ndarray, np.ndarray]:
        patches = np.asarray(patches)
        b, p = patches.shape[:2]
        g = p // q
        f = appearance_descriptor(patches).astype(np.float32)
        cells = patches.reshape(b, g, q, g, q, 3).swapaxes(2, 3).reshape(-1, q, q, 3)  # row-major grid
        return f, appearance_descriptor(cells).astype(np.float32).reshape(b, g, g, -1)


# --- which patches -------------------------------------------------------------------------------
#: what ``patches=`` may ask :func:`patch_index` for (and ``kept:<selection>,<selection>...``)
PATCH_SETS = ("kept", "all", "union", "candidates")


def patch_index(h5: h5py.File, selection: str, patches: str = "kept") -> np.ndarray:
    """Rows of ``coords`` to encode: ``kept`` by ``selection``, ``kept:a,b`` by any of the named
    selections, ``all``, the ``union`` of every stored selection (so one extraction serves a
    comparison of selectors), or the ``candidates`` of every table: that union and the patches
    Table 4's other Shannon thresholds keep (:func:`~isg_core.selection.thresholds.table4_thresholds`),
    so glass is never encoded."""
    n = h5["coords"].shape[0]
    if patches == "all":
        return np.arange(n)
    if patches.startswith("kept:"):
        keep = np.zeros(n, bool)
        for m in filter(None, patches[5:].split(",")):
            if f"selection/{m}/keep" not in h5:
                raise IsgError(h5.filename, f"no '{m}' selection: run `isg prepare --methods {m}` first")
            keep |= h5[f"selection/{m}/keep"][:]
        return np.flatnonzero(keep)
    if patches in ("union", "candidates"):
        groups = list(h5.get("selection", {}).keys())
        if not groups:
            raise IsgError(h5.filename, "no selection stored: run `isg prepare` first")
        keep = np.zeros(n, bool)
        for m in groups:
            keep |= h5[f"selection/{m}/keep"][:]
        if patches == "candidates":
            if "selection/shannon/scores" not in h5:
                raise IsgError(h5.filename, "no Shannon scores stored: run `isg prepare` first")
            scores = h5["selection/shannon/scores"][:]
            pixels = int(h5["selection/shannon"].attrs["patch_pixels"])
            for th in table4_thresholds(float(ShannonSelector.default_threshold.value)):
                keep |= select(scores, th, pixels)
        return np.flatnonzero(keep)
    if patches != "kept":
        raise IsgError(None, f"patches must be one of {', '.join(PATCH_SETS)} or kept:<selection>,..., "
                             f"got {patches!r}")
    key = f"selection/{selection}/keep"
    if key not in h5:
        raise IsgError(h5.filename, f"no '{selection}' selection: run `isg prepare` first")
    return np.flatnonzero(h5[key][:])


@dataclass
class Features:
    """Features of one slide as stored: ``index`` into coords, f (n, d), R (n, g, g, d) or None."""
    index: np.ndarray
    global_: np.ndarray
    local: np.ndarray | None
    attrs: dict


def read_features(h5_path: "str | os.PathLike", name: str = "fe", local: bool = True) -> Features:
    """Load ``features/<name>`` of a slide; a clear error if it is missing or incomplete."""
    try:
        with h5py.File(h5_path, "r") as f:
            g = f.get(f"features/{name}")
            if g is None or not g.attrs.get("complete", False):
                raise IsgError(h5_path, f"no complete '{name}' features: run `isg extract` first")
            loc = g["local"][:].astype(np.float32) if (local and "local" in g) else None
            return Features(g["index"][:], g["global"][:], loc, dict(g.attrs))
    except OSError as e:
        raise IsgError(h5_path, f"cannot read features ({first_line(e)})") from None


def source_identity(source: str) -> object:
    """What identifies the encoder of a ``source`` record: the record without the checkpoints'
    paths (their SHA-256 stays), so a cohort or a checkout that moved is not extracted again,
    while other weights at the same path are."""
    def strip(v):
        if isinstance(v, dict):
            return {k: strip(x) for k, x in v.items() if k != "checkpoint"}
        return [strip(x) for x in v] if isinstance(v, list) else v

    try:
        return strip(json.loads(source))
    except (TypeError, ValueError):
        return source


def features_are_current(h5: "Path | h5py.File", name: str, source: str, index: np.ndarray) -> bool:
    """True if ``features/<name>`` is complete, made by the same encoder and selection
    (``source``, compared by :func:`source_identity`) on the same patches (``index``) of the
    slide file the tiling now describes.  ``h5``: the slide's HDF5, or its path."""
    if not isinstance(h5, h5py.File):
        try:
            with h5py.File(h5, "r") as f:
                return features_are_current(f, name, source, index)
        except OSError:
            return False
    try:
        g = h5.get(f"features/{name}")
        return (g is not None and bool(g.attrs.get("complete", False))
                and source_identity(g.attrs.get("source")) == source_identity(source)
                and np.array_equal(g["index"][:], index)
                and str(g.attrs.get("slide_fingerprint", "")) == str(h5.attrs.get("slide_fingerprint", "-")))
    except (OSError, KeyError):
        return False


def extract_slide(h5_path: "str | os.PathLike", slide_path: "str | os.PathLike", encoder: PatchEncoder,
                  selection: str = "shannon", patches: str = "kept", batch_size: int = 32, overwrite: bool = False,
                  progress: bool = False) -> dict:
    """Encode one slide's patches into ``features/<encoder.name>`` of its HDF5 (see module doc).
    Returns {slide_id, n, seconds, skipped}."""
    h5_path = Path(h5_path)
    tiling = read_tiling_h5(h5_path)
    # even when skipping: done for another file is not done
    check_same_slide(slide_path, tiling.slide_fingerprint, h5_path)
    source = json.dumps({"encoder": encoder.describe(), "selection": selection, "patches": patches}, sort_keys=True)
    with h5py.File(h5_path, "r") as f:  # one opening: a cached cohort's check is 300 of these
        index = patch_index(f, selection, patches)
        if not overwrite and features_are_current(f, encoder.name, source, index):
            seconds = float(f[f"features/{encoder.name}"].attrs.get("seconds", float("nan")))  # when it was done
            return {"slide_id": tiling.slide_id, "n": len(index), "seconds": seconds, "skipped": True}
    q, g = tiling.config.local_size, tiling.config.grid
    t0 = time.perf_counter()
    # the slide as it was tiled (same file, same mpp): a replaced slide is an error, never mixed features
    with open_tiled_slide(slide_path, tiling, h5_path) as slide, atomic_path(h5_path) as tmp, \
            ThreadPoolExecutor(1) as pool:
        shutil.copyfile(h5_path, tmp)
        read = lambda rows: np.stack([read_global_patch(slide, tiling, int(i)) for i in rows])  # noqa: E731
        batches = [index[k:k + batch_size] for k in range(0, len(index), batch_size)]
        with h5py.File(tmp, "r+") as f:
            grp = f.require_group("features")
            if encoder.name in grp:
                del grp[encoder.name]
            out = grp.create_group(encoder.name)
            out.create_dataset("index", data=index.astype(np.int64))
            dg = out.create_dataset("global", (len(index), encoder.global_dim), np.float32)
            dl = (out.create_dataset("local", (len(index), g, g, encoder.local_dim), np.float16,
                                     chunks=(min(max(len(index), 1), 16), g, g, encoder.local_dim))
                  if encoder.local_dim else None)
            nxt = pool.submit(read, batches[0]) if batches else None
            start = 0
            for k in tqdm(range(len(batches)), desc=f"extract {tiling.slide_id}", unit="batch", disable=not progress,
                          leave=False):
                x = nxt.result()
                nxt = pool.submit(read, batches[k + 1]) if k + 1 < len(batches) else None
                fv, rv = encoder.encode(x, q)
                dg[start:start + len(x)] = fv
                if dl is not None:
                    dl[start:start + len(x)] = rv.astype(np.float16)
                start += len(x)
                fault_point("extract_batch")  # tests: killed mid-slide, the original file must survive
            seconds = time.perf_counter() - t0
            for key, val in {"source": source, "name": encoder.name, "selection": selection, "patches": patches,
                             "global_dim": encoder.global_dim, "local_dim": encoder.local_dim or 0,
                             "n": len(index), "seconds": seconds, "device": str(encoder.device),
                             "slide_fingerprint": tiling.slide_fingerprint,
                             "torch_threads": torch.get_num_threads()}.items():
                out.attrs[key] = val
            out.attrs["complete"] = True  # last: a group without it was interrupted
    return {"slide_id": tiling.slide_id, "n": len(index), "seconds": seconds, "skipped": False}


def extract_cohort(cohort_root: "str | os.PathLike", encoder: PatchEncoder, tiles: "str | os.PathLike | None" = None,
                   selection: str = "shannon", patches: str = "kept", batch_size: int = 32, overwrite: bool = False,
                   progress: bool = True, slide_ids: list[str] | None = None,
                   shard: "str | None" = None) -> pd.DataFrame:
    """``isg extract``: every slide of the cohort's manifest (tiled and selected by
    ``isg prepare``); one row per slide (slide_id, n, seconds, skipped).  ``df.attrs`` holds
    the throughput in patches per second over the slides encoded now and, for slides done
    earlier, as recorded in their HDF5 when they were done (``patches_per_second_recorded``)."""

    manifest = read_manifest(Path(cohort_root) / "manifest.csv")
    if slide_ids is not None:
        manifest = manifest[manifest["slide_id"].isin(slide_ids)]
    manifest = shard_rows(manifest, shard)  # "K/N": this worker's slides (see isg_core.data.manifest.shard_rows)
    tiles_dir = cohort_tiles_dir(cohort_root, tiles)
    source = json.dumps({"encoder": encoder.describe(), "selection": selection, "patches": patches}, sort_keys=True)
    receipt = None if overwrite else _extraction_receipt(tiles_dir, encoder.name, source, manifest)
    rows = _read_extraction_receipt(receipt) if receipt is not None else None
    if rows is not None:
        return _extraction_frame(rows, 0, 0.0, encoder)
    rows, done_n, done_s = [], 0, 0.0
    bar = tqdm(list(manifest.itertuples()), desc=f"extract {encoder.name}", unit="slide", disable=not progress)
    for r in bar:
        h5 = tiles_dir / f"{r.slide_id}.h5"
        if not h5.exists():
            raise IsgError(h5, "slide not tiled: run `isg prepare` on the cohort first")
        row = extract_slide(h5, r.path, encoder, selection, patches, batch_size, overwrite)
        rows.append(row)
        fault_point("extract_slide")  # tests: killed between slides
        if not row["skipped"]:
            done_n, done_s = done_n + row["n"], done_s + row["seconds"]
            bar.set_postfix(patches_per_s=f"{done_n / max(done_s, 1e-9):.1f}")
    receipt = _extraction_receipt(tiles_dir, encoder.name, source, manifest)  # the files as they now are
    with atomic_path(receipt) as tmp:
        tmp.write_text(json.dumps({"source": source, "rows": [{**r, "skipped": True} for r in rows]}, default=float))
    return _extraction_frame(rows, done_n, done_s, encoder)


#: the folder of a tiles folder that holds :func:`extract_cohort`'s receipts
EXTRACTED = ".extracted"


def _extraction_receipt(tiles_dir: Path, name: str, source: str, manifest: pd.DataFrame) -> Path:
    """``<tiles>/.extracted/<name>-<key>.json``; the key hashes ``source`` (the encoder, selection and
    patches) and, per slide, its id, its file's fingerprint and its HDF5's stat identity."""
    h = hashlib.sha256(json.dumps(source_identity(source), sort_keys=True).encode())  # a moved checkout: same
    for r in manifest.itertuples():
        try:
            slide = file_fingerprint(r.path)
        except IsgError:
            slide = "missing"
        h.update(json.dumps([r.slide_id, slide, stat_identity(tiles_dir / f"{r.slide_id}.h5")]).encode())
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
    return tiles_dir / EXTRACTED / f"{safe}-{h.hexdigest()[:24]}.json"


def _read_extraction_receipt(path: Path) -> list[dict] | None:
    try:
        return json.loads(path.read_text())["rows"]
    except (OSError, ValueError, KeyError):
        return None


def _extraction_frame(rows: list[dict], done_n: int, done_s: float, encoder: PatchEncoder) -> pd.DataFrame:
    df = pd.DataFrame(rows)
    df.attrs["patches_per_second"] = done_n / done_s if done_s > 0 else float("nan")
    df.attrs["patches_per_second_recorded"] = float(df.n.sum() / df.seconds.sum()) if len(df) else float("nan")
    df.attrs["device"] = str(encoder.device)
    return df
