"""ISG-Sim cohort generation: design, per-slide rendering, tables and files.

:func:`simulate_cohort` is the public entry point (the ``isg simulate`` CLI calls it).
Each slide is rendered from its own RNG (``SeedSequence([seed, type, patient, dx])``), so
the output does not depend on the number of worker processes or on their scheduling, and
the same seed gives byte-identical files.  Each rendered slide leaves a record
(``records/<slide_id>.json``, :mod:`.records`), so an interrupted run resumes: a rerun renders
only the slides without a record that matches them and their files.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage
from tqdm.auto import tqdm

from ..config import ALL_GENES, CANCER_TYPES, GENE_ENSEMBL, TASK_GENES, TilingConfig
from ..data.manifest import assign_folds, write_manifest
from ..data.slides import write_pyramidal_tiff
from ..errors import IsgError, atomic_path, atomic_write_text
from ..parallel import run_jobs
from . import artefacts as art
from . import cells as cl
from . import genes as gm
from . import records as rec
from . import textures as tx
from . import tissue as ts

GENERATOR_VERSION = "isg-sim 1.0"
COHORT_NAME = "ISG-Sim (simulated cohort)"
MPP = 0.5
#: probability that a patient contributes two slides (DX1, DX2)
P_TWO_SLIDES = 0.13
#: per-type stain centre: multipliers of the H and E channels (LIHC pinker, COAD more purple, PRAD paler)
STAIN_CENTRE = {"LIHC": (0.95, 1.20), "COAD": (1.15, 0.95), "PRAD": (1.0, 0.85)}
#: ``wsi`` layout: the canvas is ``size`` wide and ``size`` x U(these) high
WSI_ASPECT = (0.9, 1.3)
#: per-slide stain jitter: SD of the log multiplier of H and E
STAIN_JITTER = 0.12
#: per-class multipliers (H, E, D) of the real texture: what each tissue compartment looks like
CLASS_GAIN = {
    ts.GLASS: (0.0, 0.0, 0.0),
    ts.STROMA: (0.6, 1.35, 0.8),
    ts.TUMOUR: (1.3, 0.85, 1.0),
    ts.LYMPHOID: (1.3, 0.55, 1.0),
    ts.LUMEN: (0.08, 0.10, 0.08),
    ts.NECROSIS: (1.6, 1.5, 1.3),
    ts.BENIGN: (0.9, 1.1, 1.0),
}
PATCH_CELL_COLUMNS = tuple(f"n_{n}" for n in cl.CELL_TYPES.values())


@dataclass(frozen=True)
class SlideSpec:
    """What a worker needs to render one slide."""
    index: int
    slide_id: str
    patient_id: str
    cancer: str
    type_index: int
    patient_num: int
    dx: int
    seed: int
    size: int
    global_size_l0: int
    out: str
    layout: str = "section"  # how tissue lies on the glass (tissue.LAYOUTS)


# ---------------------------------------------------------------------------- design ----
def design(n_slides: int, seed: int) -> list[tuple[str, int, str, str, int, int]]:
    """(cancer, type_index, patient_id, slide_id, patient_num, dx) per slide, in output order.
    ``n_slides`` is split as evenly as possible over the three types (earlier types get the
    remainder); ~``P_TWO_SLIDES`` of patients have two slides drawn from one latent state.
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, 999]))
    per = [n_slides // 3 + (1 if i < n_slides % 3 else 0) for i in range(3)]
    rows = []
    for ti, (cancer, n) in enumerate(zip(CANCER_TYPES, per)):
        pnum, left = 0, n
        while left > 0:
            pnum += 1
            k = 2 if (left >= 2 and rng.random() < P_TWO_SLIDES) else 1
            pid = f"ISGSIM-{cancer}-{pnum:04d}"
            for dx in range(1, k + 1):
                rows.append((cancer, ti, pid, f"{pid}-DX{dx}", pnum, dx))
            left -= k
    return rows


def patient_latents(seed: int, type_index: int, patient_num: int, cancer: str) -> dict:
    """The patient's latent biology (shared by its slides), drawn from the patient's RNG."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, type_index, patient_num, 0]))
    z = rng.standard_normal(5)  # immune, infiltration, B-cell, proliferation, epithelial
    lat = {
        "immune": float(np.clip(np.exp(np.log(0.06) + 1.0 * z[0]), 0.004, 0.7)),
        "infil": float(1 / (1 + np.exp(-1.1 * z[1]))),
        "bcell": float(np.exp(np.log(0.5) + 1.0 * z[2])),
        "prolif": float(np.clip(np.exp(np.log(0.012) + 0.8 * z[3]), 0.001, 0.08)),
        "epi": float(np.clip(0.5 + 0.15 * z[4], 0.2, 0.85)),
        "benign": float(rng.uniform(0.2, 0.7) if cancer == "LIHC"
                        else rng.uniform(0.1, 0.8) if cancer == "PRAD" else 0.0),
        "basal_keep": float(rng.uniform(0.6, 0.95)),
    }
    # the MSI-like label is a patient property: TIL = immune x infiltration, and proliferation
    z_til = float((z[0] + 1.1 * z[1]) / np.sqrt(1 + 1.1**2))
    lat["msi"] = gm.msi_label(rng, z_til, float(z[3]))
    return lat


def slide_latents(lat: dict, rng: np.random.Generator) -> dict:
    """A slide's state: its patient's, slightly perturbed (two sections of one tumour differ)."""
    s = dict(lat)
    for k in ("immune", "bcell", "prolif"):
        s[k] = float(lat[k] * np.exp(rng.normal(0, 0.12)))
    s["epi"] = float(np.clip(lat["epi"] + rng.normal(0, 0.04), 0.1, 0.85))
    return s


# ---------------------------------------------------------------------------- render ----
def _gain_support(cmap: np.ndarray) -> np.ndarray:
    """Map pixels where :func:`_apply_map_gain`'s multipliers may be non-zero: non-glass dilated by the Gaussian's
    reach (radius 3 map px at sigma 0.7) plus the bilinear upsampling's (1), and a margin."""
    return ndimage.binary_dilation(cmap != ts.GLASS, iterations=6)


def _apply_map_gain(hed: np.ndarray, cmap: np.ndarray) -> None:
    """Multiply the (h, w, 3) texture in place by its per-pixel multipliers from the class map,
    with soft class borders (one channel at a time: no (h, w, 3) gain array is made)."""
    h, w = hed.shape[:2]
    lut = np.array([CLASS_GAIN[c] for c in sorted(CLASS_GAIN)], np.float32)
    g = lut[cmap]
    for c in range(3):
        hed[..., c] *= art.upsample(ndimage.gaussian_filter(g[..., c], 0.7), h, w)


def render_slide(spec: SlideSpec) -> dict:
    """One slide's table rows (runs in a worker): those of its record (:mod:`.records`) when the
    record matches the spec and the slide's files, else :func:`_render`'s, then recorded."""
    found = rec.load_record(spec, GENERATOR_VERSION)
    if found is not None:
        return found
    result = _render(spec)
    # after both files are written: a record never describes a slide that is not all on disk
    rec.save_record(spec, result, GENERATOR_VERSION)
    return result


def _render(spec: SlideSpec) -> dict:
    """Render, write and summarise one slide; returns its table rows."""
    # Long on purpose: one slide's generation in the order of its random draws (tissue, cells,
    # artefacts, truth); splitting it would scatter that order, which fixes the cohort of a seed.
    rng = np.random.default_rng(np.random.SeedSequence([spec.seed, spec.type_index, spec.patient_num, spec.dx]))
    lat = slide_latents(patient_latents(spec.seed, spec.type_index, spec.patient_num, spec.cancer), rng)
    w = spec.size
    if spec.layout == "section":
        h = spec.size if rng.random() < 0.5 else int(round(spec.size * rng.uniform(1.0, 1.15)))
    else:
        h = int(round(spec.size * rng.uniform(*WSI_ASPECT)))
    mshape = (math.ceil(h / ts.DS), math.ceil(w / ts.DS))
    cmap, geo = ts.class_map(rng, mshape, spec.cancer, lat, spec.layout)
    fields = {
        "immune": np.exp(0.8 * ts.smooth_field(rng, mshape, 12) - 0.32).astype(np.float32),
        "angle": (np.pi * ts.smooth_field(rng, mshape, 10)).astype(np.float32),
    }
    cells = cl.place_cells(rng, cmap, geo, h, w, spec.cancer, lat, fields)
    items = art.plan(rng, cmap)
    # a solid block stands for tissue that is not there (cut away, under a label): its cells
    # are dropped, so neither the image, the patch counts nor the bulk expression contain them
    solid = art.solid_mask(items, mshape)
    keep = ~solid[cells["y"] // ts.DS, cells["x"] // ts.DS]
    cells = {k: v[keep] for k, v in cells.items()}

    P = cl.PAD
    canvas = np.zeros((h + 2 * P, w + 2 * P, 3), np.float32)
    hed = canvas[P : P + h, P : P + w]
    # texture only where the class gain can be non-zero (glass has gain 0): the same pixels as
    # texturing everywhere, at the cost of the tissue alone on a mostly-glass wsi canvas
    hed[:] = tx.assemble_texture(rng, h, w, where=_gain_support(cmap), ds=ts.DS)
    _apply_map_gain(hed, cmap)
    cl.draw_cells(canvas, cells, spec.cancer)
    sh, se = STAIN_CENTRE[spec.cancer]
    hed[..., 0] *= sh * np.exp(rng.normal(0, STAIN_JITTER))
    hed[..., 1] *= se * np.exp(rng.normal(0, STAIN_JITTER))
    amap = np.zeros(mshape, np.uint8)
    art.apply_hed(rng, hed, cmap, items, amap)
    np.maximum(hed, 0, out=hed)
    rgb = tx.hed_to_rgb_sparse(hed).astype(np.float32)
    del canvas, hed
    # glass is never pure white: a per-slide tint and faint sensor noise everywhere
    rgb *= rng.uniform(0.93, 0.975, 3).astype(np.float32)
    rgb += rng.standard_normal((h, w, 1), dtype=np.float32) * 1.6
    art.apply_rgb(rng, rgb, cmap, items, amap)
    img = np.clip(rgb + 0.5, 0, 255).astype(np.uint8)
    del rgb

    files = rec.slide_files(spec)
    path = files["tiff"]
    write_pyramidal_tiff(path, img, mpp=MPP, description=f"{COHORT_NAME} {spec.slide_id}")
    write_truth_map(files["map"], cmap, amap, cells, w, h)
    patches = patch_table(spec.slide_id, cmap, amap, cells, w, h, spec.global_size_l0)
    sc = gm.scores(cells["type"], cells["context"])
    return {
        "index": spec.index,
        "slide_id": spec.slide_id,
        "path": str(path),
        "width": w,
        "height": h,
        "scores": sc,
        "truth": gm.truth(sc),
        "z": dict(zip(ALL_GENES, rng.standard_normal(len(ALL_GENES)).tolist())),
        "msi": lat["msi"],
        "patches": patches,
    }


# --------------------------------------------------------------------------- summary ----
def write_truth_map(path: Path, cmap: np.ndarray, amap: np.ndarray, cells: dict, w: int, h: int) -> None:
    """``maps/<slide>.npz``: the tissue-class and artefact maps (at 1/DS resolution) and every cell's
    centre (level-0 px), type and context, with the slide's size (written atomically)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, class_map=cmap, artefact_map=amap, cell_x=cells["x"], cell_y=cells["y"],
                                cell_type=cells["type"], cell_context=cells["context"],
                                width=np.int64(w), height=np.int64(h), ds=np.int64(ts.DS))


def patch_table(slide_id: str, cmap: np.ndarray, amap: np.ndarray, cells: dict, w: int, h: int,
                p: int) -> pd.DataFrame:
    """The slide's rows of ``patches.csv``: slide_id, x, y (level-0 corner), row, col of every whole
    p x p patch, then :func:`summarise`'s truth columns."""
    ny, nx = h // p, w // p
    yy, xx = np.meshgrid(np.arange(ny) * p, np.arange(nx) * p, indexing="ij")
    patches = summarise(cmap, amap, cells, xx.ravel(), yy.ravel(), p)
    patches.insert(0, "col", np.tile(np.arange(nx), ny))
    patches.insert(0, "row", np.repeat(np.arange(ny), nx))
    patches.insert(0, "y", yy.ravel())
    patches.insert(0, "x", xx.ravel())
    patches.insert(0, "slide_id", slide_id)
    return patches


def summarise(cmap: np.ndarray, amap: np.ndarray, cells: dict, xs, ys, size: int) -> pd.DataFrame:
    """Ground truth of square patches (top-left ``xs, ys`` level-0 px, side ``size``) from the
    maps and the cell list.  Map pixels are counted where their centre lies in the patch."""
    ds = ts.DS
    xs, ys = np.asarray(xs, np.int64), np.asarray(ys, np.int64)
    n = len(xs)
    nclass, nart = len(ts.CLASSES), len(art.ARTEFACTS)
    cls_frac = np.zeros((n, nclass))
    art_frac = np.zeros((n, nart))
    textureless = np.zeros(n)
    tissue = np.zeros(n)
    glass_like = (cmap == ts.GLASS) & ((amap == art.NONE) | (amap == art.SPECKS))
    flat = glass_like | np.isin(amap, (art.SOLID, art.PEN, art.BLUR))
    is_tissue = ~np.isin(cmap, (ts.GLASS, ts.LUMEN)) & (amap != art.SOLID)
    for i in range(n):
        y0, x0 = (ys[i] + ds // 2) // ds, (xs[i] + ds // 2) // ds
        y1, x1 = (ys[i] + size + ds // 2) // ds, (xs[i] + size + ds // 2) // ds
        y0, x0 = max(y0, 0), max(x0, 0)
        c = cmap[y0:y1, x0:x1]
        if c.size == 0:
            cls_frac[i, ts.GLASS] = 1
            art_frac[i, art.NONE] = 1
            textureless[i] = 1
            continue
        cls_frac[i] = np.bincount(c.ravel(), minlength=nclass)[:nclass] / c.size
        art_frac[i] = np.bincount(amap[y0:y1, x0:x1].ravel(), minlength=nart)[:nart] / c.size
        textureless[i] = flat[y0:y1, x0:x1].mean()
        tissue[i] = is_tissue[y0:y1, x0:x1].mean()
    df = pd.DataFrame({"tissue_fraction": tissue.round(4)})
    df["tissue_class"] = [ts.CLASSES[int(k)] for k in cls_frac.argmax(1)]
    any_art = 1 - art_frac[:, art.NONE]
    dom = art_frac[:, 1:].argmax(1) + 1
    dom_frac = art_frac[np.arange(n), dom]
    glass_frac = cls_frac[:, ts.GLASS]
    label = np.where(dom_frac >= 0.15, np.array([art.ARTEFACTS[int(k)] for k in dom], dtype=object),
                     np.where(glass_frac >= 0.7, "glass", "none"))
    df["artefact"] = label
    df["artefact_fraction"] = any_art.round(4)
    df["textureless"] = (textureless >= 0.7).astype(np.int64)
    # cells: bin by patch (a cell belongs to the patch its centre lies in)
    cx, cy, ct = cells["x"], cells["y"], cells["type"]
    cc = cells["context"] if "context" in cells else cells["cell_context"]
    counts = np.zeros((n, len(cl.CELL_TYPES)), np.int64)
    n_lt = np.zeros(n, np.int64)
    for i in range(n):
        m = (cx >= xs[i]) & (cx < xs[i] + size) & (cy >= ys[i]) & (cy < ys[i] + size)
        if m.any():
            counts[i] = np.bincount(ct[m], minlength=len(cl.CELL_TYPES))
            n_lt[i] = np.count_nonzero((ct[m] == cl.LYM) & (cc[m] == ts.TUMOUR))
    for t, name in cl.CELL_TYPES.items():
        df[f"n_{name}"] = counts[:, t]
    df["n_lymphocyte_tumour"] = n_lt
    df["n_lymphocyte_other"] = counts[:, cl.LYM] - n_lt
    df["n_cells"] = counts.sum(1) - counts[:, cl.DEBRIS]
    return df


def patch_truth(cohort_dir: str | Path, slide_id: str, coords, size_level0: int) -> pd.DataFrame:
    """Ground truth for arbitrary patches of a simulated slide.
    ``coords``: iterable of (x, y) level-0 top-left corners; ``size_level0``: patch side in
    level-0 px.  Columns: x, y, tissue_fraction, tissue_class, artefact, artefact_fraction,
    textureless, n_<cell type>..., n_lymphocyte_tumour, n_lymphocyte_other, n_cells.
    """
    f = Path(cohort_dir) / "maps" / f"{slide_id}.npz"
    if not f.exists():
        raise IsgError(f, "no ISG-Sim map for this slide (is this a simulated cohort?)")
    with np.load(f) as z:
        cmap, amap = z["class_map"], z["artefact_map"]
        cells = {"x": z["cell_x"], "y": z["cell_y"], "type": z["cell_type"], "context": z["cell_context"]}
    xy = np.asarray(list(coords), np.int64).reshape(-1, 2)
    df = summarise(cmap, amap, cells, xy[:, 0], xy[:, 1], int(size_level0))
    df.insert(0, "y", xy[:, 1])
    df.insert(0, "x", xy[:, 0])
    return df


# ---------------------------------------------------------------------------- cohort ----
def _params(n_slides: int, seed: int, size: int, tiling: TilingConfig, layout: str = "section") -> dict:
    p = {"n_slides": int(n_slides), "seed": int(seed), "size": int(size), "mpp": MPP, "tiling": asdict(tiling)}
    if layout != "section":  # recorded only when not the original layout: cohorts made before it stay complete
        p["layout"] = layout
    return p


def _is_complete(out: Path, params: dict) -> bool:
    f = out / "cohort.json"
    if not f.exists():
        return False
    try:
        meta = json.loads(f.read_text())
    except (OSError, ValueError):
        return False
    if meta.get("parameters") != params or meta.get("generator_version") != GENERATOR_VERSION:
        return False
    names = ["manifest.csv", "expression.tsv", "truth.csv", "noise_ceiling.csv", "labels.csv", "patches.csv"]
    if not all((out / n).exists() for n in names):
        return False
    ids = pd.read_csv(out / "manifest.csv", usecols=["slide_id"])["slide_id"]
    return all((out / "slides" / f"{s}.tiff").exists() and (out / "maps" / f"{s}.npz").exists() for s in ids)


def _init_worker() -> None:
    # build the cached banks once per worker (with fork they are inherited from the parent)
    tx.texture_bank()
    for c in CANCER_TYPES:
        cl.kernel_bank(c)


def simulate_cohort(
    out: Path,
    n_slides: int,
    seed: int,
    size: int = 2048,
    workers: int = 2,
    *,
    tiling: TilingConfig,
    progress: bool = True,
    layout: str = "section",
) -> Path:
    """Generate an ISG-Sim cohort of ``n_slides`` slides (split over LIHC, COAD, PRAD) in ``out``.
    ``layout``: how tissue lies on the glass (``section`` or ``wsi``: :mod:`.tissue`); with
    ``wsi``, ``size`` is the slide's width and its height is ``size`` x U(:data:`WSI_ASPECT`).
    Writes slides/, maps/, records/ (one per slide, as it is rendered), manifest.csv,
    expression.tsv, truth.csv, noise_ceiling.csv, labels.csv, patches.csv and cohort.json (last:
    its presence marks a complete cohort).  Returns ``out``; an existing complete cohort with the
    same parameters is kept as is, and in an incomplete one (an interrupted run) the slides whose
    record matches them are not rendered again: the tables come out as an uninterrupted run's.
    """
    out = Path(out)
    if n_slides < 1:
        raise IsgError(None, f"n_slides must be at least 1, got {n_slides}")
    if size < 256:
        raise IsgError(None, f"slide size must be at least 256 px, got {size}")
    if layout not in ts.LAYOUTS:
        raise IsgError(None, f"unknown layout {layout!r} (choose one of {', '.join(ts.LAYOUTS)})")
    params = _params(n_slides, seed, size, tiling, layout)
    if _is_complete(out, params):
        return out
    p_l0 = int(round(tiling.global_size * tiling.mpp / MPP))
    specs = [
        SlideSpec(i, sid, pid, cancer, ti, pnum, dx, int(seed), int(size), p_l0, str(out), layout)
        for i, (cancer, ti, pid, sid, pnum, dx) in enumerate(design(n_slides, seed))
    ]
    (out / "slides").mkdir(parents=True, exist_ok=True)
    (out / "maps").mkdir(parents=True, exist_ok=True)
    (out / rec.RECORDS).mkdir(parents=True, exist_ok=True)
    _init_worker()

    bar = tqdm(total=len(specs), desc="isg simulate", unit="slide", disable=not progress)
    # fork where the platform has it: the workers inherit the banks built above
    results = run_jobs(render_slide, specs, workers, start="fork", initializer=_init_worker, bar=bar)
    bar.close()
    results.sort(key=lambda r: r["index"])  # order never depends on scheduling
    _write_tables(out, specs, results, params, seed)
    return out


def _write_tables(out: Path, specs: list[SlideSpec], results: list[dict], params: dict, seed: int) -> None:
    # Long on purpose: every table of the cohort is written here from the same per-slide results,
    # so their rows cannot disagree; each block is one file.
    ids = [r["slide_id"] for r in results]
    cancer = np.array([s.cancer for s in specs])
    pids = [s.patient_id for s in specs]
    man = pd.DataFrame({"slide_id": ids, "path": [r["path"] for r in results], "cancer_type": cancer,
                        "patient_id": pids})
    man["fold"] = assign_folds(pids, list(cancer), k=5, seed=seed)
    write_manifest(man, out / "manifest.csv")

    truth = pd.DataFrame([r["truth"] for r in results], index=ids)[list(ALL_GENES)]
    z = pd.DataFrame([r["z"] for r in results], index=ids)[list(ALL_GENES)]
    obs, sigma = gm.observe(truth, z, cancer)
    expr = np.clip(10.0 ** obs - 1.0, 0.0, None)
    expr.columns = [GENE_ENSEMBL[g] for g in expr.columns]
    expr.index.name = "slide_id"
    with atomic_path(out / "expression.tsv") as tmp:
        expr.to_csv(tmp, sep="\t")
    truth.index.name = "slide_id"
    with atomic_path(out / "truth.csv") as tmp:
        truth.to_csv(tmp)
    # noise ceiling on the realised (written) values
    logobs = np.log10(1.0 + expr.to_numpy())
    rows = []
    for c in sorted(set(cancer), key=list(CANCER_TYPES).index):
        m = cancer == c
        for g in TASK_GENES[c]:
            j = list(ALL_GENES).index(g)
            pcc = float(np.corrcoef(truth.to_numpy()[m, j], logobs[m, j])[0, 1]) if m.sum() > 2 else float("nan")
            rows.append({"cancer_type": c, "gene": g, "pcc": pcc})
    with atomic_path(out / "noise_ceiling.csv") as tmp:
        pd.DataFrame(rows).to_csv(tmp, index=False)
    with atomic_path(out / "labels.csv") as tmp:
        pd.DataFrame({"slide_id": ids, "msi": [r["msi"] for r in results]}).to_csv(tmp, index=False)
    with atomic_path(out / "patches.csv") as tmp:
        pd.concat([r["patches"] for r in results], ignore_index=True).to_csv(tmp, index=False)
    scores = pd.DataFrame([r["scores"] for r in results], index=ids)
    meta = {
        "name": COHORT_NAME,
        "simulated": True,
        "note": ("Simulated data: slides, expression and labels are generated by ISG-Sim; "
                 "no number computed on it is a TCGA result."),
        "generator_version": GENERATOR_VERSION,
        "parameters": params,
        "slides": len(ids),
        "patients": len(set(pids)),
        "map_downsample": ts.DS,
        "legends": {
            "class_map": {str(k): v for k, v in ts.CLASSES.items()},
            "artefact_map": {str(k): v for k, v in art.ARTEFACTS.items()},
            "cell_type": {str(k): v for k, v in cl.CELL_TYPES.items()},
        },
        "gene_model": {
            "equation": ("log10(1+FPKM_UQ) = a + b*ln(eps + score) + sigma*z, "
                         "sigma = k*SD_type(truth) (SD floored at 0.05)"),
            "w_stromal_lymphocyte": gm.W_STROMAL,
            "genes": {g: {"ensembl": GENE_ENSEMBL[g], "score": s, "a": a, "b": b, "eps": e, "k": k}
                      for g, (s, a, b, e, k) in gm.GENE_MODEL.items()},
            "sigma": {f"{c}:{g}": round(float(v), 6) for (c, g), v in sigma.items()},
            "msi": {"b0": gm.MSI_B0, "b_til": gm.MSI_B_TIL, "b_prolif": gm.MSI_B_PROLIF, "noise_sd": gm.MSI_NOISE},
        },
        "score_ranges": {s: [float(scores[s].min()), float(scores[s].max())] for s in scores.columns},
    }
    atomic_write_text(out / "cohort.json", json.dumps(meta, indent=2, sort_keys=False) + "\n")
