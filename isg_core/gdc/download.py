"""The files of a ``gdc-client download``, and the pairing of slides with STAR-Counts files.

``gdc-client download`` puts each file in ``<file uuid>/<file name>``; files directly in the
folder are found too, and slides and STAR-Counts files may share one tree
(:func:`find_slides`, :func:`find_star_files`).  :func:`match_download` pairs them through the
sample sheet (:func:`isg_core.gdc.barcodes.read_gdc_sample_sheet`).

Matching rules (TCGA barcodes, as documented by the GDC: docs.gdc.cancer.gov, "TCGA Barcode"): a slide of sample
``TCGA-XX-XXXX-01Z`` pairs with the STAR-Counts files of the same patient and sample type
(first 15 characters, ``TCGA-XX-XXXX-01``): slides carry vial ``Z``, RNA aliquots ``A``/``B``.
Only primary tumours (sample code ``01``, Sample Type "Primary Tumor") are kept; normals
(``-11``), metastases (``-06``) etc. are dropped and reported.  Several STAR-Counts files for
one primary tumour (aliquots, or vials ``01A``/``01B``) are averaged on the linear FPKM-UQ
scale; the loader then takes ``log10(1 + mean)``, as for a single aliquot.  Several slides of
one patient are all kept, in the patient's one fold.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..data.slides import WSI_SUFFIXES
from ..errors import IsgError
from .barcodes import PRIMARY_TUMOR_CODE, check_slide_name, is_star_counts_name, sample_code, sample_key, slide_id_of
from .report import GdcReport

# --------------------------------------------------------------------------- the download


def _check_dir(path: Path, what: str) -> Path:
    if not path.exists():
        raise IsgError(path, f"{what} folder not found")
    if not path.is_dir():
        raise IsgError(path, f"{what} is not a folder")
    return path


def _walk_files(root: Path) -> list[Path]:
    """Every visible file under ``root`` (``<uuid>/<name>`` folders or files directly in it), sorted."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        out += [Path(dirpath) / f for f in sorted(filenames) if not f.startswith(".")]
    return out


def _is_slide_name(name: str) -> bool:
    return name.lower().endswith(tuple(WSI_SUFFIXES)) and not name.lower().endswith(".mrxs")


def find_slides(root: str | os.PathLike) -> dict[str, Path]:
    """Slide id -> file for every whole-slide file under ``root`` (suffixes of
    :data:`isg_core.data.slides.WSI_SUFFIXES`).  Names must be TCGA slide barcodes; the same slide
    twice (two downloads) is an error, as nothing says which copy is complete."""
    root = _check_dir(Path(root), "slides")
    found: dict[str, Path] = {}
    for p in _walk_files(root):
        if not _is_slide_name(p.name):
            continue
        sid = check_slide_name(p)
        if sid in found:
            raise IsgError(p, f"slide {sid} is also at {found[sid]}; keep one copy")
        found[sid] = p
    if not found:
        raise IsgError(root, f"no slide files ({', '.join(sorted(WSI_SUFFIXES))}) under this folder")
    return found


def find_star_files(root: str | os.PathLike) -> dict[str, list[Path]]:
    """File name -> paths of every STAR-Counts file under ``root``."""
    root = _check_dir(Path(root), "expression")
    found: dict[str, list[Path]] = {}
    for p in _walk_files(root):
        if is_star_counts_name(p.name):
            found.setdefault(p.name, []).append(p)
    if not found:
        raise IsgError(root, "no STAR-Counts files (*.rna_seq.augmented_star_gene_counts.tsv) under this folder")
    return found


def _locate(name: str, file_id: str, found: dict[str, list[Path]]) -> Path | None:
    """The downloaded file of a sheet row: by name, the ``<File ID>/`` folder breaking ties."""
    paths = found.get(name, [])
    if len(paths) > 1 and file_id:
        paths = [p for p in paths if p.parent.name == file_id] or paths
    if len(paths) > 1:
        raise IsgError(paths[1], f"file {name} is also at {paths[0]}; keep one copy")
    return paths[0] if paths else None


# --------------------------------------------------------------------------- matching


@dataclass
class GdcMatch:
    """The plan: which slides to keep, and the STAR-Counts files of each kept sample."""
    slides: dict[str, Path]  # slide id -> file, kept slides only
    slide_sample: dict[str, str]  # slide id -> sample (TCGA-XX-XXXX-01)
    sample_files: dict[str, list[Path]]  # sample -> STAR-Counts files to average
    sample_aliquots: dict[str, list[str]]  # sample -> the files' sample ids (TCGA-XX-XXXX-01A)
    sample_project: dict[str, str]
    report: GdcReport


def match_download(slides: dict[str, Path], star: dict[str, list[Path]], sheet: pd.DataFrame,
                   sheet_path: Path) -> GdcMatch:
    """Pair slides with primary-tumour STAR-Counts files by patient + sample type (see the module
    docstring) and record everything left out.  Errors (naming the sample sheet): a sample whose
    files name two projects, a slide whose sheet row names another project than its expression,
    and no slide matching any expression file."""
    rep = GdcReport(slides_found=len(slides))
    star_rows = sheet[sheet["file_name"].map(is_star_counts_name)]
    sample_files: dict[str, list[Path]] = {}
    sample_aliquots: dict[str, list[str]] = {}
    sample_project: dict[str, str] = {}
    for row in star_rows.itertuples():
        if not row.primary:
            what = row.sample_type or f"sample code {sample_code(row.sample_id)}"
            rep.non_primary_expression.append(f"{row.file_name} ({row.sample_id}, {what})")
            continue
        path = _locate(row.file_name, row.file_id, star)
        if path is None:
            rep.not_downloaded.append(row.file_name)
            continue
        if sample_project.setdefault(row.sample, row.project_id) != row.project_id:
            raise IsgError(sheet_path, f"sample {row.sample} has files of two projects "
                                       f"({sample_project[row.sample]}, {row.project_id})")
        sample_files.setdefault(row.sample, []).append(path)
        sample_aliquots.setdefault(row.sample, []).append(row.sample_id)
    rep.not_in_sheet = sorted(set(star) - set(sheet["file_name"]))

    slide_project = {slide_id_of(Path(n)): p for n, p in zip(sheet["file_name"], sheet["project_id"])
                     if _is_slide_name(n)}
    rep.not_downloaded += sorted(f"{sid} (slide)" for sid in slide_project if sid not in slides)
    kept: dict[str, Path] = {}
    slide_sample: dict[str, str] = {}
    for sid, path in sorted(slides.items()):
        if sample_code(sid) != PRIMARY_TUMOR_CODE:
            rep.non_primary_slides.append(sid)
            continue
        sample = sample_key(sid)
        if sample not in sample_files:
            rep.slides_without_expression.append(sid)
            continue
        if sid in slide_project and slide_project[sid] != sample_project[sample]:
            raise IsgError(sheet_path, f"slide {sid} is listed under {slide_project[sid]} but its expression under "
                                       f"{sample_project[sample]}")
        kept[sid], slide_sample[sid] = path, sample
    used = set(slide_sample.values())
    rep.expression_without_slides = sorted(s for s in sample_files if s not in used)
    if not kept:
        raise IsgError(sheet_path, f"no slide matches a primary-tumour STAR-Counts file ({len(slides)} slides, "
                                   f"{len(sample_files)} primary-tumour samples with expression downloaded)")
    sample_files = {s: sample_files[s] for s in sorted(used)}
    aliquots = {s: sample_aliquots[s] for s in sample_files}
    rep.averaged = {s: [f"{a}: {p.name}" for a, p in zip(aliquots[s], f)]
                    for s, f in sample_files.items() if len(f) > 1}
    return GdcMatch(kept, slide_sample, sample_files, aliquots, {s: sample_project[s] for s in sample_files}, rep)
