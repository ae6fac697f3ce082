"""``isg predict SLIDE... --model BUNDLE --out DIR``: a trained model on a user's own slides.

For each slide (any format :func:`isg_core.data.slides.open_slide` reads: OpenSlide's, or a plain
PNG/JPEG/TIFF with ``--slide-mpp``) it writes into ``DIR``:

* ``<slide>.predictions.csv``: one row per gene: log10(1 + FPKM-UQ), FPKM-UQ, the cancer type
  the gene was trained on, that training fold's test PCC, and a ``flag`` with the reason when the
  prediction should not be trusted: the gene's fold test PCC is <= 0, or (with ``--cancer-type``)
  the slide is of a type the gene was not trained on (greyed in the report);
* ``<slide>.predictions.json``: the same, with the slide (size, mpp), the selection (patches,
  kept, threshold), the seconds per stage and the model's provenance;
* ``<slide>.selection.png``: the thumbnail with the patches Shannon selection kept;
* ``<slide>.attention.png``: the class token's attention to each kept global patch (the model's
  last transformer layer), as a heat map over the thumbnail;
* ``<slide>.report.html``: one self-contained page (images embedded) with both maps and the table.

Every file is written under a temporary name and renamed; a slide whose outputs exist for the
same bundle, the same slide file (its fingerprint) read at the same mpp and the same genes is
skipped (``overwrite`` redoes it); anything else is predicted again, with a one-line note when
earlier outputs are replaced.  Two different slides with one file name in one call are refused
before any work (their outputs would share names).  The numbers are a model's predictions, and a
model trained on ISG-Sim (simulated) says so in every output.
"""
from __future__ import annotations

import base64
import html
import io
import json
import os
import warnings
from pathlib import Path
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.colors import ListedColormap
from tqdm import tqdm

from ..data.fingerprint import file_fingerprint
from ..data.samples import sha256
from ..data.slides import distinct_slides, open_slide
from ..data.thumbnails import scale_bar
from ..data.tiling import StaleResultWarning
from ..errors import IsgError, atomic_path, atomic_write_text, writable_dir
from .bundle import Bundle, check_genes, load_bundle

#: how the report marks (greys) a flagged gene's row
FLAGGED_ROW = ' class="flagged"'
OUTPUTS = ("predictions.csv", "predictions.json", "selection.png", "attention.png", "report.html")


def trained_on(bundle: Bundle) -> dict[str, tuple[str, float]]:
    """gene -> (cancer types it was trained on, mean test PCC of the bundle's fold over them)."""
    pccs: dict[str, list] = {}
    for key, pcc in bundle.meta.get("test_pcc", {}).items():
        task, gene = key.split("/", 1)
        pccs.setdefault(gene, []).append(pcc)
    tasks = bundle.meta.get("gene_tasks", {})
    # a fold with too few test slides of a type (tiny cohorts) has no PCC: NaN, shown as n/a
    return {g: ("+".join(tasks.get(g, [])), float(np.mean(pccs[g])) if g in pccs else float("nan"))
            for g in bundle.genes}


def gene_flag(trained: str, fold_pcc: float, cancer_type: str | None) -> str:
    """Why a gene's prediction should not be trusted ("" if nothing is known against it), reasons
    joined by "; ": the slide's cancer type is not one the gene was trained on (``trained``: "+"-joined
    types; only when ``cancer_type`` is given), or the model's fold did not beat chance on it
    (test PCC <= 0, or none measured)."""
    reasons = []
    types = [t for t in str(trained).split("+") if t]
    if cancer_type and cancer_type.upper() not in {t.upper() for t in types}:
        reasons.append(f"trained on {'+'.join(types) or 'no cancer type'}, not on {cancer_type}")
    if not np.isfinite(fold_pcc):
        reasons.append("no test PCC measured for this gene")
    elif fold_pcc <= 0:
        reasons.append(f"test PCC {fold_pcc:.2f} <= 0: no better than chance on held-out slides")
    return "; ".join(reasons)


def flag_view(csv: "str | os.PathLike") -> pd.DataFrame:
    """An ``isg predict`` CSV cut to what a reader needs to judge each gene: gene, prediction,
    the cancer types it was trained on, its fold's test PCC and the flag (empty: nothing against it)."""
    t = pd.read_csv(csv).fillna({"flag": ""})
    return t[["gene", "log10_fpkm_uq_plus_1", "trained_on", "fold_test_pcc", "flag"]].rename(
        columns={"log10_fpkm_uq_plus_1": "prediction (log10 1+FPKM-UQ)"}).round(3)


def prediction_table(bundle: Bundle, raw_output: np.ndarray, genes: Sequence[str],
                     cancer_type: str | None = None) -> pd.DataFrame:
    """One row per gene: log10(1 + FPKM-UQ) (the training targets' scale), FPKM-UQ, what it was
    trained on, its fold's test PCC and a ``flag`` saying why not to trust it (:func:`gene_flag`)."""
    log = bundle.denormalise(raw_output)
    by = dict(zip(bundle.genes, log))
    info = trained_on(bundle)
    trained = [info.get(g, ("", np.nan))[0] for g in genes]
    pcc = [info.get(g, ("", np.nan))[1] for g in genes]
    return pd.DataFrame({"gene": list(genes), "log10_fpkm_uq_plus_1": [float(by[g]) for g in genes],
                         "fpkm_uq": [float(10 ** by[g] - 1) for g in genes], "trained_on": trained,
                         "fold_test_pcc": pcc, "flag": [gene_flag(t, p, cancer_type) for t, p in zip(trained, pcc)]})


# --- pictures ---------------------------------------------------------------------------------------
def _grid_values(tiling, values: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """(rows, cols) float grid of ``values`` at the patches ``rows`` of ``tiling``; NaN elsewhere."""
    ny, nx = tiling.grid_shape
    grid = np.full((ny, nx), np.nan)
    gi = tiling.grid_index[rows]
    grid[gi[:, 0], gi[:, 1]] = values
    return grid


def slide_maps(slide_path, out, slide_mpp: float | None = None, max_size: int = 1024):
    """(selection figure, attention figure) of one :class:`~isg_core.deploy.inference.SlideOutput`."""
    with open_slide(slide_path, mpp=slide_mpp) as slide:
        thumb = slide.thumbnail(max_size)
        scale = thumb.shape[1] / slide.dimensions[0]
        um_per_px = slide.mpp / scale  # of the thumbnail, for the scale bars
    t = out.tiling
    ny, nx = t.grid_shape
    s = t.patch_size_level0 * scale
    extent = (0, nx * s, ny * s, 0)  # the grid starts at the slide's top-left corner
    size = (6.5, 6.5 * thumb.shape[0] / thumb.shape[1] + 0.6)

    fig_s, ax = plt.subplots(figsize=size)
    ax.imshow(thumb)
    kept = _grid_values(t, out.keep.astype(float), np.arange(t.n_patches))
    # discarded patches are greyed out, kept ones tinted green: the selection at a glance
    ax.imshow(np.where(kept == 0, 1.0, np.nan), extent=extent, cmap=ListedColormap(["#303030"]), alpha=0.55,
              interpolation="nearest", vmin=0, vmax=1)
    ax.imshow(np.where(kept == 1, 1.0, np.nan), extent=extent, cmap=ListedColormap(["#00c000"]), alpha=0.22,
              interpolation="nearest", vmin=0, vmax=1)
    ax.set_xlim(0, thumb.shape[1]), ax.set_ylim(thumb.shape[0], 0), ax.set_axis_off()
    scale_bar(ax, um_per_px, thumb.shape[1])
    ax.set_title(f"{out.slide_id}: Shannon selection keeps {out.n_kept}/{out.n_patches} patches "
                 f"(green; grey = discarded)", fontsize=9)

    fig_a, ax = plt.subplots(figsize=size)
    ax.imshow(thumb)
    rows = np.flatnonzero(out.keep)
    if out.attention is not None and len(out.attention) == len(rows):
        att = out.attention * len(rows)  # x uniform: 1 = the average kept patch
        im = ax.imshow(_grid_values(t, att, rows), extent=extent, cmap="inferno", alpha=0.65,
                       interpolation="nearest")
        fig_a.colorbar(im, ax=ax, fraction=0.035, pad=0.02, label="attention x (number of kept patches)")
        title = f"{out.slide_id}: class-token attention per kept global patch (last layer)"
    else:
        title = f"{out.slide_id}: this model has no class-token attention"
    ax.set_xlim(0, thumb.shape[1]), ax.set_ylim(thumb.shape[0], 0), ax.set_axis_off()
    scale_bar(ax, um_per_px, thumb.shape[1], colour="white")
    ax.set_title(title, fontsize=9)
    return fig_s, fig_a


def _png_bytes(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def report_html(record: dict, table: pd.DataFrame, selection_png: bytes, attention_png: bytes) -> str:
    """One self-contained HTML page: what was predicted, from what, and both maps."""
    m = record["model"]
    warn = ("<p class='warn'>This model was trained on <b>ISG-Sim, a simulated cohort</b>: its numbers show "
            "how the pipeline works, they are not a measurement of this tissue.</p>" if m.get("simulated") else "")
    rows = "".join(
        f"<tr{FLAGGED_ROW if r.flag else ''}><td>{html.escape(r.gene)}</td>"
        f"<td>{r.log10_fpkm_uq_plus_1:.3f}</td><td>{r.fpkm_uq:,.1f}</td>"
        f"<td>{html.escape(str(r.trained_on))}</td>"
        f"<td>{'n/a' if not np.isfinite(r.fold_test_pcc) else f'{r.fold_test_pcc:.2f}'}</td>"
        f"<td class='flag'>{html.escape(r.flag)}</td></tr>"
        for r in table.itertuples())
    ct = record.get("cancer_type")
    n_flag = int((table.flag != "").sum())
    flag_note = (f"<p>{n_flag} of {len(table)} genes are flagged (greyed): read the reason before using them. "
                 + (f"Slide's cancer type: {html.escape(ct)}." if ct else
                    "The slide's cancer type was not given (<code>--cancer-type</code>), so genes trained on other "
                    "cancer types are not flagged: check the 'trained on' column.") + "</p>")
    sl, se = record["slide"], record["selection"]
    secs = " &middot; ".join(f"{k} {v:.2f} s" for k, v in record["seconds"].items())
    img = lambda b, alt: f"<img alt='{alt}' src='data:image/png;base64,{base64.b64encode(b).decode()}'>"  # noqa: E731
    maps = img(selection_png, 'selection map') + img(attention_png, 'attention heat map')
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>ISG prediction: {html.escape(sl['slide_id'])}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:1em auto;color:#222}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}
td:first-child{{text-align:left}}.warn{{background:#fff3cd;padding:6px;border:1px solid #e0c060}}
.maps{{display:flex;gap:10px;flex-wrap:wrap}}.maps img{{max-width:540px}}small{{color:#666}}
tr.flagged td{{color:#999;background:#f4f4f4}}td.flag{{text-align:left;font-size:0.9em}}</style></head>
<body><h1>ISG prediction: {html.escape(sl['slide_id'])}</h1>{warn}
<p>Slide <code>{html.escape(sl['path'])}</code>: {sl['width']} x {sl['height']} px at {sl['mpp']:.3f} &micro;m/px.
Tiling: {se['patches']} global patches of {record['tiling']['global_size']} px at {record['tiling']['mpp']} &micro;m/px;
Shannon selection ({html.escape(se['threshold'])}) kept <b>{se['kept']}</b>.</p>
<h2>Predicted bulk expression</h2>
<table id="predictions"><tr><th>gene</th><th>log10(1 + FPKM-UQ)</th><th>FPKM-UQ</th><th>trained on</th>
<th>test PCC of the model's fold</th><th>flag</th></tr>{rows}</table>{flag_note}
<p><small>A gene trained on one cancer type is extrapolated on slides of another. Model: {html.escape(m['experiment'])},
fold {m['fold']} of {html.escape(m['run'])} ({html.escape(m['cohort'])}, profile {html.escape(m['profile'])}).
Seconds: {secs}.</small></p>
<h2>Where the model looked</h2><div class="maps">{maps}</div>
</body></html>
"""


# --- the command -------------------------------------------------------------------------------------
def _why_not_reusable(rec: dict, bundle_sha: str, fingerprint: str, slide_mpp: float | None, genes: list[str],
                      complete: bool) -> str | None:
    """Why a slide's earlier outputs (``rec``, its JSON) do not answer this call, or None if they do."""
    if rec.get("model", {}).get("sha256") != bundle_sha:
        return "made with another model"
    if rec["slide"].get("fingerprint") != fingerprint:
        return f"made from another slide file ({rec['slide'].get('path')})"
    if rec["slide"].get("mpp_argument") != slide_mpp:
        return "the slide was read at another mpp"
    if rec.get("genes") != genes:
        return "made for other genes"
    return None if complete else "its outputs are incomplete"


def predict_slides(slide_paths: Sequence["str | os.PathLike"], model: "str | os.PathLike", out_dir: "str | os.PathLike",
                   genes: Sequence[str] | None = None, slide_mpp: float | None = None, device: str | None = None,
                   overwrite: bool = False, progress: bool = True, cancer_type: str | None = None) -> list[dict]:
    """Predict every slide with the bundle ``model``; returns one record per slide (what its JSON holds).
    ``cancer_type`` (e.g. a TCGA project code): the slides' type, so that genes trained on other types
    are flagged (:func:`gene_flag`)."""
    for sp in slide_paths:  # every missing file named before the slow part, not after hours
        if not Path(sp).exists():
            raise IsgError(sp, "slide not found")
    slides = distinct_slides(slide_paths)
    bundle = load_bundle(model)
    report_genes = check_genes(bundle, list(genes) if genes else None)
    pipe = bundle.pipeline(device)
    bundle_sha = sha256(bundle.path)[:16]
    out_dir = writable_dir(out_dir)  # fail before the slow part
    records = []
    for sp, sid in tqdm(slides, desc="predict", unit="slide", disable=not progress or len(slides) < 2):
        fp = file_fingerprint(sp)
        js = out_dir / f"{sid}.predictions.json"
        if not overwrite and js.exists():
            try:
                rec = json.loads(js.read_text())
                why = _why_not_reusable(rec, bundle_sha, fp, slide_mpp, report_genes,
                                        all((out_dir / f"{sid}.{o}").exists() for o in OUTPUTS))
                if why is None and rec.get("cancer_type") != cancer_type:
                    why = "made for another cancer type"
            except (ValueError, OSError, KeyError, TypeError, AttributeError):
                why = "its earlier record is unreadable"
            if why is None:
                records.append(dict(rec, skipped=True))
                continue
            warnings.warn(f"{js}: {why}; predicting {sp} again", StaleResultWarning, stacklevel=2)
        out = pipe.run(sp, slide_mpp=slide_mpp, progress=progress)
        table = prediction_table(bundle, out.prediction, report_genes, cancer_type)
        meta = bundle.meta
        rec = {"slide": {"slide_id": sid, "path": str(sp), "width": int(out.tiling.slide_size[0]),
                         "height": int(out.tiling.slide_size[1]), "mpp": float(out.tiling.slide_mpp),
                         "mpp_source": out.tiling.mpp_source, "mpp_argument": slide_mpp, "fingerprint": fp},
               "tiling": {"mpp": bundle.tiling.mpp, "global_size": bundle.tiling.global_size,
                          "local_size": bundle.tiling.local_size},
               "selection": {"method": bundle.raw["selection"]["method"],
                             "threshold": bundle.raw["selection"]["threshold"],
                             "threshold_score": out.threshold_score, "patches": out.n_patches, "kept": out.n_kept},
               "genes": report_genes, "cancer_type": cancer_type,
               "predictions": {r.gene: {"log10_fpkm_uq_plus_1": r.log10_fpkm_uq_plus_1, "fpkm_uq": r.fpkm_uq,
                                        "trained_on": r.trained_on, "fold_test_pcc": r.fold_test_pcc,
                                        "flag": r.flag}
                               for r in table.itertuples()},
               "seconds": {k: round(v, 4) for k, v in out.seconds.items()},
               "model": {"path": str(bundle.path), "sha256": bundle_sha, "experiment": meta.get("experiment"),
                         "fold": meta.get("fold"), "run": meta.get("run"), "cohort": meta.get("cohort"),
                         "simulated": bool(meta.get("simulated")), "profile": meta.get("profile")}}
        fig_s, fig_a = slide_maps(sp, out, slide_mpp)
        sel_png, att_png = _png_bytes(fig_s), _png_bytes(fig_a)
        for name, data in (("selection.png", sel_png), ("attention.png", att_png)):
            with atomic_path(out_dir / f"{sid}.{name}") as tmp:
                tmp.write_bytes(data)
        with atomic_path(out_dir / f"{sid}.predictions.csv") as tmp:
            table.to_csv(tmp, index=False, float_format="%.8g")
        atomic_write_text(out_dir / f"{sid}.report.html", report_html(rec, table, sel_png, att_png))
        atomic_write_text(js, json.dumps(rec, indent=1))  # last: its presence marks the slide done
        records.append(dict(rec, skipped=False))
    return records
