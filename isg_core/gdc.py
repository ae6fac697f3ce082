"""A cohort from a GDC download: ``isg cohort from-gdc`` and ``isg cohort gdc-query``.

``isg cohort gdc-query --project TCGA-LIHC --out DIR`` writes (and fetches nothing) the GDC API
requests for a project's diagnostic slides and STAR-Counts files, and a script with the exact
``curl`` / ``gdc-client download`` commands, ending with the ``isg cohort from-gdc`` command
that turns the download into a cohort.

``isg cohort from-gdc --slides DIR --expression DIR --sample-sheet FILE --out COHORT`` reads
what ``gdc-client download`` made (``<file uuid>/<file name>``, or files directly in the
folder; slides and STAR-Counts files may share one tree) and the GDC sample sheet (the portal's
export, or the API's TSV with dotted column names), and writes a cohort every other command
reads (:func:`isg_core.cohort.load_cohort`):

* ``manifest.csv`` (:func:`isg_core.manifest.write_manifest`).  ``slide_id`` is the slide's
  file name without its suffix (``TCGA-XX-XXXX-01Z-00-DX1.<uuid>``), the id ``isg prepare``
  names ``tiles/<slide_id>.h5`` by; ``patient_id`` its first 12 characters; ``cancer_type``
  the project without ``TCGA-``; folds by patient, stratified by project
  (:func:`isg_core.manifest.assign_folds`).  **Slides are not copied and not linked: ``path``
  points at the downloaded file** (stored relative to the manifest, as ``write_manifest``
  does).  Why not symlinks under ``COHORT/slides/``: a symlink adds nothing a path does not
  say, breaks exactly when a path would (the download moves), needs a filesystem that has them
  (not every cluster or Windows share does), and a rerun would have to find and remove stale
  links; a path is one field that ``isg check`` verifies.
* ``expression.tsv``: one row per slide (keyed by ``slide_id``, the same row for slides of one
  patient's sample), one column per gene of :data:`isg_core.config.ALL_GENES` named by its
  Ensembl id, raw FPKM-UQ (``fpkm_uq_unstranded``), the layout of ISG-Sim's ``expression.tsv``.
  The ``log10(1 + x)`` transform is left to the loader (:func:`isg_core.expression.load_targets`),
  which applies it to every table it reads, so it is applied once.
* ``cohort.json`` (name, "simulated": false, projects), ``report.md`` (also printed), and with
  ``--clinical`` a ``clinical.csv`` (one row per patient).

Matching rules (TCGA barcodes, as documented by the GDC: docs.gdc.cancer.gov, "TCGA Barcode"): a slide of sample
``TCGA-XX-XXXX-01Z`` pairs with the STAR-Counts files of the same patient and sample type
(first 15 characters, ``TCGA-XX-XXXX-01``): slides carry vial ``Z``, RNA aliquots ``A``/``B``.
Only primary tumours (sample code ``01``, Sample Type "Primary Tumor") are kept; normals
(``-11``), metastases (``-06``) etc. are dropped and reported.  Several STAR-Counts files for
one primary tumour (aliquots, or vials ``01A``/``01B``) are averaged on the linear FPKM-UQ
scale; the loader then takes ``log10(1 + mean)``, as for a single aliquot.  Several slides of
one patient are all kept, in the patient's one fold.

Everything is written atomically (a temporary name, then a rename) and the command can be rerun:
each run rewrites the cohort's files from the download; ``manifest.csv`` is written last, so a
folder with a manifest is a complete cohort.  Then the cohort is checked exactly as
``isg check COHORT/manifest.csv`` does.  Bad input is a one-line :class:`IsgError` naming the
file; an empty result is an error, not an empty cohort.
"""
from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
from tqdm import tqdm

from .cohort import validate_cohort
from .config import ALL_GENES, GENE_ENSEMBL, TASK_GENES
from .errors import IsgError, atomic_path, atomic_write_text, first_line, writable_dir
from .expression import _check_file, read_sheet_tsv, read_star_counts
from .manifest import assign_folds, patient_id_from_slide, write_manifest
from .slides import WSI_SUFFIXES, slide_id_from_path

if TYPE_CHECKING:  # pandas is imported where it is used: the parser is built on every `isg` call
    import pandas as pd

GDC_FILES_ENDPOINT = "https://api.gdc.cancer.gov/files"
#: STAR-Counts file names (GDC data release 32 on), plain or gzipped.
STAR_SUFFIXES = (".rna_seq.augmented_star_gene_counts.tsv", ".rna_seq.augmented_star_gene_counts.tsv.gz")
#: TCGA sample-type code of a primary solid tumour, and its Sample Type in GDC sheets.
PRIMARY_TUMOR_CODE = "01"
PRIMARY_TUMOR_TYPE = "Primary Tumor"
#: A TCGA slide name: TCGA-XX-XXXX-01Z-00-DX1, then optionally .<uuid> (the GDC's file names).
SLIDE_NAME_RE = re.compile(
    r"^TCGA-[A-Z0-9]{2}-[A-Z0-9]{4}-\d{2}[A-Z]-[0-9A-Z]{2}-[A-Z]{2}[0-9A-Z]*"
    r"(\.[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})?$", re.IGNORECASE)
#: A TCGA sample barcode (patient, sample type code, optional vial): TCGA-XX-XXXX-01A.
SAMPLE_RE = re.compile(r"^TCGA-[A-Z0-9]{2}-[A-Z0-9]{4}-\d{2}", re.IGNORECASE)
PROJECT_RE = re.compile(r"^TCGA-[A-Z0-9]+$")

#: Sample-sheet fields -> accepted spellings after :func:`_canonical_column`: the portal's sheet
#: ("File Name", "Sample ID", ...) and the API's TSV ("cases.0.samples.0.submitter_id"; before
#: 2019 "cases_0_samples_0_submitter_id").  The portal's "Sample ID" is the sample barcode; the
#: API's ``cases.samples.sample_id`` is a UUID, so it is not accepted as one.
SHEET_FIELDS: dict[str, tuple[str, ...]] = {
    "file_id": ("file_id", "id"),
    "file_name": ("file_name",),
    "data_type": ("data_type",),
    "project_id": ("project_id", "cases_project_project_id"),
    "sample_id": ("sample_id", "cases_samples_submitter_id"),
    "sample_type": ("sample_type", "cases_samples_sample_type"),
}
SHEET_REQUIRED = ("file_name", "sample_id", "project_id")
#: How the portal and the API name each required field (for error messages).
SHEET_LABEL = {"file_name": "File Name (file_name)", "sample_id": "Sample ID (cases.0.samples.0.submitter_id)",
               "project_id": "Project ID (cases.0.project.project_id)"}

#: Clinical columns joined into clinical.csv when the clinical table has them.
CLINICAL_COLUMNS = ("project_id", "gender", "sex_at_birth", "age_at_index", "vital_status", "days_to_death",
                    "days_to_last_follow_up", "ajcc_pathologic_stage", "tumor_grade", "primary_diagnosis")
#: How the GDC writes "no value" in clinical.tsv (newer exports quote it for spreadsheets).
CLINICAL_MISSING = {"", "--", "'--", "NA", "nan"}

#: Fields of the API's sample-sheet request (a superset of the portal's sample sheet).
SAMPLE_SHEET_FIELDS = ("file_id", "file_name", "data_category", "data_type", "cases.project.project_id",
                       "cases.case_id", "cases.submitter_id", "cases.samples.submitter_id",
                       "cases.samples.sample_type")
#: Enough rows for any TCGA project (the largest, BRCA, has ~1,100 STAR-Counts files and ~1,100 slides).
API_SIZE = 100_000


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class FromGdcConfig:
    """Inputs of ``isg cohort from-gdc``."""
    slides: Path
    expression: Path
    sample_sheet: Path
    out: Path
    clinical: Path | None = None
    folds: int = 5
    seed: int = 0
    column: str = "fpkm_uq_unstranded"


@dataclass
class GdcReport:
    """What ``from-gdc`` kept and dropped, and why (written as ``report.md``)."""
    slides_found: int = 0
    slides_kept: list[str] = field(default_factory=list)
    slides_without_expression: list[str] = field(default_factory=list)
    expression_without_slides: list[str] = field(default_factory=list)  # samples (TCGA-XX-XXXX-01)
    non_primary_slides: list[str] = field(default_factory=list)
    non_primary_expression: list[str] = field(default_factory=list)  # file names, with their sample
    averaged: dict[str, list[str]] = field(default_factory=dict)  # sample -> aliquot sample ids averaged
    multi_slide_patients: dict[str, list[str]] = field(default_factory=dict)
    no_task_projects: dict[str, int] = field(default_factory=dict)  # project -> slides kept
    not_downloaded: list[str] = field(default_factory=list)  # sheet's STAR files and slides not on disk
    not_in_sheet: list[str] = field(default_factory=list)  # STAR files on disk, not in the sheet
    patients: int = 0
    projects: dict[str, int] = field(default_factory=dict)  # cancer type -> slides kept
    folds: int = 0
    clinical_missing: list[str] | None = None  # None: no --clinical

    def counts(self) -> dict[str, int]:
        """The report's numbers, by name (what the tests and the printed summary use)."""
        return {"slides found": self.slides_found, "slides kept": len(self.slides_kept), "patients": self.patients,
                "slides without expression": len(self.slides_without_expression),
                "expression without slides": len(self.expression_without_slides),
                "non-primary slides dropped": len(self.non_primary_slides),
                "non-primary expression files dropped": len(self.non_primary_expression),
                "samples with aliquots averaged": len(self.averaged),
                "patients with several slides": len(self.multi_slide_patients),
                "projects without the paper's genes": len(self.no_task_projects),
                "sample-sheet files not downloaded": len(self.not_downloaded),
                "downloaded files not in the sample sheet": len(self.not_in_sheet)}

    def to_markdown(self, cfg: FromGdcConfig, max_items: int | None = None) -> str:
        """The report as Markdown: counts first, then the lists (each item on its own line; at
        most ``max_items`` per list, for the terminal)."""
        per_project = ", ".join(f"{k} {v}" for k, v in self.projects.items())
        lines = ["# Cohort from a GDC download", "",
                 f"- slides: `{cfg.slides}`", f"- expression: `{cfg.expression}`",
                 f"- sample sheet: `{cfg.sample_sheet}`",
                 (f"- {len(self.slides_kept)} slides of {self.patients} patients kept ({per_project}); "
                  f"{self.folds} folds by patient, stratified by project (seed {cfg.seed})"),
                 f"- targets: `{cfg.column}` (FPKM-UQ), stored raw in expression.tsv; the loader applies log10(1 + x)",
                 "", "| what | count |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in self.counts().items()]

        def section(title: str, items: Sequence[str]) -> None:
            if items:
                shown = list(items)[:max_items] if max_items is not None else list(items)
                more = [f"- ... and {len(items) - len(shown)} more (see report.md)"] if len(shown) < len(items) else []
                lines.extend(["", f"## {title} ({len(items)})", ""] + [f"- {x}" for x in shown] + more)

        section("Slides without expression (dropped)", self.slides_without_expression)
        section("Expression without slides (not used)", self.expression_without_slides)
        section("Non-primary slides dropped (sample code other than 01)", self.non_primary_slides)
        section("Non-primary expression files dropped (e.g. -11 normal tissue)", self.non_primary_expression)
        section("Several aliquots of one primary tumour: FPKM-UQ averaged, then log10(1 + mean) by the loader",
                [f"{k}: {len(v)} files ({', '.join(v)})" for k, v in self.averaged.items()])
        section("Patients with several slides (all kept, in the same fold)",
                [f"{k}: {', '.join(v)}" for k, v in self.multi_slide_patients.items()])
        section("Projects without the paper's genes (kept; no task is defined for them)",
                [f"{k}: {v} slides" for k, v in self.no_task_projects.items()])
        section("Files in the sample sheet that are not in the download", self.not_downloaded)
        section("Downloaded STAR-Counts files that are not in the sample sheet (ignored)", self.not_in_sheet)
        if self.clinical_missing is not None:
            section("Patients without clinical rows", self.clinical_missing)
        return "\n".join(lines) + "\n"

    def summary(self) -> str:
        """One paragraph for the terminal."""
        c = self.counts()
        shown = ", ".join(f"{k}: {v}" for k, v in c.items()
                          if k not in ("slides found", "slides kept", "patients") and v)
        return (f"{c['slides kept']} of {c['slides found']} slides kept ({c['patients']} patients; "
                + ", ".join(f"{k} {v}" for k, v in self.projects.items()) + ")" + (f"; {shown}" if shown else ""))


# --------------------------------------------------------------------------- barcodes


def is_star_counts_name(name: str) -> bool:
    """True for a GDC STAR-Counts file name (``*.rna_seq.augmented_star_gene_counts.tsv[.gz]``)."""
    return name.lower().endswith(STAR_SUFFIXES)


def slide_id_of(path: Path) -> str:
    """The slide id every command uses: the file name without its slide suffix."""
    return slide_id_from_path(path)


def check_slide_name(path: Path) -> str:
    """The slide id of a TCGA slide file, or a one-line error naming the file."""
    sid = slide_id_of(path)
    if not SLIDE_NAME_RE.match(sid):
        raise IsgError(path, "slide name is not a TCGA slide barcode (expected TCGA-XX-XXXX-01Z-00-DX1.<uuid>.svs)")
    return sid


def sample_key(barcode: str) -> str:
    """Patient + sample type: ``TCGA-XX-XXXX-01`` (the first 15 characters, upper case)."""
    return barcode[:15].upper()


def sample_code(barcode: str) -> str:
    """The two-digit sample-type code (``01`` primary tumour, ``11`` solid tissue normal, ...)."""
    return barcode[13:15]


def project_cancer_type(project_id: str) -> str:
    """``TCGA-LIHC`` -> ``LIHC``."""
    return project_id[5:] if project_id.upper().startswith("TCGA-") else project_id


# --------------------------------------------------------------------------- sample sheet


def _canonical_column(name: str) -> str:
    """A sample-sheet column name in one spelling: ``File Name`` -> ``file_name``,
    ``cases.0.samples.0.submitter_id`` and ``cases_0_samples_0_submitter_id`` ->
    ``cases_samples_submitter_id`` (list indices dropped)."""
    text = name.strip().lower().replace(" ", "_")
    text = re.sub(r"[._]\d+(?=[._]|$)", "", text)
    return text.replace(".", "_")


def _first_of_cell(value: object) -> str:
    # A file of several samples lists them comma-separated in one portal cell; STAR-Counts files
    # and slides are per aliquot / per sample, so the first entry is the file's (as expression.py).
    return str(value).split(",")[0].strip()


def _pick_columns(columns: Sequence[str]) -> dict[str, str]:
    """Field -> the sheet's column for it.  Where the API gave one column per list element
    (``cases.0.samples.0...``, ``cases.0.samples.1...``) the first element's wins."""
    by_canonical: dict[str, str] = {}
    for c in columns:
        by_canonical.setdefault(_canonical_column(c), c)  # columns come in index order: .0. first
    picked: dict[str, str] = {}
    for fld, spellings in SHEET_FIELDS.items():
        for s in spellings:
            if s in by_canonical:
                picked[fld] = by_canonical[s]
                break
    return picked


def read_gdc_sample_sheet(path: str | os.PathLike) -> pd.DataFrame:
    """Read a GDC sample sheet: the portal's export or the API's TSV (dotted or underscored names).
    :func:`isg_core.expression.read_sample_sheet` is not reused: it drops non-primary rows
    without saying how many (the report must), needs the portal's column names, and has no
    Project ID (the cancer type).  The checks are the same: the sample code decides primary,
    and a Sample Type that contradicts it is an error.

    Returns every row (duplicate file names once) with columns ``file_id``, ``file_name``,
    ``data_type``, ``project_id``, ``sample_id``, ``sample_type`` (empty where the sheet has no
    such column), ``sample`` (``TCGA-XX-XXXX-01``) and ``primary`` (bool).
    """
    path = Path(path)
    raw = read_sheet_tsv(path)
    cols = _pick_columns([str(c) for c in raw.columns])
    missing = [SHEET_LABEL[f] for f in SHEET_REQUIRED if f not in cols]
    if missing:
        shown = ", ".join(str(c) for c in raw.columns)[:300]
        raise IsgError(path, f"sample sheet lacks column(s) {', '.join(missing)} (columns: {shown})")
    if raw.empty:
        raise IsgError(path, "sample sheet has no rows")
    sheet = pd.DataFrame({f: raw[cols[f]].map(_first_of_cell) if f in cols else "" for f in SHEET_FIELDS},
                         index=raw.index)
    for i, (sid, name) in enumerate(zip(sheet["sample_id"], sheet["file_name"])):
        if not name:
            raise IsgError(path, f"row {i + 2}: empty file name")
        if not SAMPLE_RE.match(sid):
            raise IsgError(path, f"row {i + 2}: sample {sid!r} of {name} is not a TCGA sample barcode "
                                 "(TCGA-XX-XXXX-01A)")
    sheet["sample"] = sheet["sample_id"].map(sample_key)
    sheet["primary"] = sheet["sample_id"].map(sample_code) == PRIMARY_TUMOR_CODE
    if "sample_type" in cols:
        said = sheet["sample_type"] == PRIMARY_TUMOR_TYPE
        clash = (sheet["primary"] != said) & (sheet["sample_type"] != "")
        if clash.any():
            i = int(clash.to_numpy().nonzero()[0][0])
            raise IsgError(path, f"row {i + 2}: sample {sheet['sample_id'].iat[i]} has sample code "
                                 f"{sample_code(sheet['sample_id'].iat[i])!r} "
                                 f"but Sample Type {sheet['sample_type'].iat[i]!r}")
    # the API repeats a file once per case it belongs to; a cart export can list a file twice
    return sheet.drop_duplicates("file_name").reset_index(drop=True)


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
    :data:`isg_core.slides.WSI_SUFFIXES`).  Names must be TCGA slide barcodes; the same slide
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


# --------------------------------------------------------------------------- expression


def average_star_counts(files: Sequence[Path], column: str = "fpkm_uq_unstranded") -> pd.Series:
    """The paper's genes (Ensembl id -> value) of one sample: the mean of its files' ``column``
    on the linear scale.  Errors name the file that is not a STAR-Counts file or lacks a gene."""
    ids = [GENE_ENSEMBL[g] for g in ALL_GENES]
    values = []
    for f in files:
        counts = read_star_counts(f, column=column)
        lacking = [g for g, e in zip(ALL_GENES, ids) if e not in counts.index]
        if lacking:
            raise IsgError(f, f"STAR-Counts file lacks gene {lacking[0]} ({GENE_ENSEMBL[lacking[0]]})")
        values.append(counts.loc[ids].to_numpy())
    return pd.Series(sum(values) / len(values), index=ids)


def expression_table(match: GdcMatch, slide_ids: Sequence[str], column: str = "fpkm_uq_unstranded",
                     progress: bool = True) -> pd.DataFrame:
    """``slide_id`` x Ensembl id, raw FPKM-UQ (the loader logs it): one STAR read per file."""
    per_sample = {}
    # a context manager: the bar is closed (its line ended) before an error is printed
    with tqdm(total=len(match.sample_files), desc="STAR-Counts", unit="sample",
              disable=not progress or len(match.sample_files) < 2) as bar:
        for s, files in match.sample_files.items():
            per_sample[s] = average_star_counts(files, column)
            bar.update()
    table = pd.DataFrame([per_sample[match.slide_sample[s]] for s in slide_ids],
                         index=pd.Index(list(slide_ids), name="slide_id"))
    return table


# --------------------------------------------------------------------------- manifest, clinical


def build_manifest(match: GdcMatch, k: int, seed: int) -> pd.DataFrame:
    """One row per kept slide (ordered by project, then slide id), patient-level folds
    stratified by project.  Fewer patients than folds is an error (a fold would be empty)."""
    rows = sorted((project_cancer_type(match.sample_project[match.slide_sample[s]]), s) for s in match.slides)
    df = pd.DataFrame({"slide_id": [s for _, s in rows], "path": [str(match.slides[s]) for _, s in rows],
                       "cancer_type": [t for t, _ in rows],
                       "patient_id": [patient_id_from_slide(s) for _, s in rows]})
    n_patients = df.patient_id.nunique()
    if n_patients < k:
        raise IsgError(None, f"--folds {k} needs at least {k} patients; "
                             f"the download has {n_patients} with slide and expression")
    df["fold"] = assign_folds(df.patient_id.tolist(), df.cancer_type.tolist(), k=k, seed=seed)
    return df


def _clinical_column(name: str) -> str:
    """Portal clinical.tsv names: ``case_submitter_id`` (before 2024) or ``cases.submitter_id``,
    ``project.project_id``, ``demographic.vital_status`` ... (since): the last part, except the
    case's own submitter id."""
    n = name.strip()
    if n in ("cases.submitter_id", "case_submitter_id"):
        return "case_submitter_id"
    return n.rsplit(".", 1)[-1]


def read_clinical(path: str | os.PathLike, patients: Sequence[str]) -> tuple[pd.DataFrame, list[str]]:
    """A few clinical columns (:data:`CLINICAL_COLUMNS`, those present) of ``patients`` from the
    GDC's ``clinical.tsv``: one row per patient, the first non-missing value of each column over
    the patient's rows (the file has a row per diagnosis / treatment).  Returns the table and the
    patients without a row."""
    path = Path(path)
    _check_file(path, "clinical table")
    try:
        raw = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    except Exception as e:
        raise IsgError(path, f"cannot read clinical table ({first_line(e)})") from None
    names: dict[str, str] = {}
    for c in raw.columns:
        names.setdefault(_clinical_column(str(c)), str(c))
    if "case_submitter_id" not in names:
        raise IsgError(path, "clinical table lacks column case_submitter_id (or cases.submitter_id)")
    keep = [c for c in CLINICAL_COLUMNS if c in names]
    table = raw[[names["case_submitter_id"]] + [names[c] for c in keep]].copy()
    table.columns = ["patient_id"] + keep
    table = table.apply(lambda col: col.str.strip()).replace(list(CLINICAL_MISSING), pd.NA)
    table = table[table.patient_id.isin(set(patients))]
    out = table.groupby("patient_id", sort=True).first().reindex(sorted(set(patients) & set(table.patient_id)))
    missing = sorted(set(patients) - set(out.index))
    return out.reset_index(), missing


# --------------------------------------------------------------------------- the command


def build_cohort_from_gdc(cfg: FromGdcConfig, progress: bool = True) -> GdcReport:
    """Make the cohort folder ``cfg.out`` from a GDC download (see the module docstring) and
    return the report.  Validation (``isg check``) is the caller's: :func:`check_cohort`."""
    sheet = read_gdc_sample_sheet(cfg.sample_sheet)
    slides = find_slides(cfg.slides)
    star = find_star_files(cfg.expression)
    match = match_download(slides, star, sheet, Path(cfg.sample_sheet))
    manifest = build_manifest(match, cfg.folds, cfg.seed)
    table = expression_table(match, manifest.slide_id.tolist(), cfg.column, progress=progress)
    rep = match.report
    clinical = None
    if cfg.clinical is not None:
        clinical, rep.clinical_missing = read_clinical(cfg.clinical, sorted(manifest.patient_id.unique()))

    rep.slides_kept = manifest.slide_id.tolist()
    rep.patients = int(manifest.patient_id.nunique())
    rep.folds = cfg.folds
    rep.projects = manifest.cancer_type.value_counts(sort=False).to_dict()
    rep.no_task_projects = {t: n for t, n in rep.projects.items() if t not in TASK_GENES}
    by_patient = manifest.groupby("patient_id", sort=True).slide_id.apply(list)
    rep.multi_slide_patients = {p: s for p, s in by_patient.items() if len(s) > 1}

    # Everything is read and checked above; only writing is left.  A rerun's old manifest goes
    # first, so that a run killed while writing never leaves a manifest beside new targets.
    out = writable_dir(cfg.out)
    (out / "manifest.csv").unlink(missing_ok=True)
    with atomic_path(out / "expression.tsv") as tmp:
        table.to_csv(tmp, sep="\t")  # full precision (repr): the values round-trip exactly
    clinical_path = out / "clinical.csv"
    if clinical is not None:
        with atomic_path(clinical_path) as tmp:
            clinical.to_csv(tmp, index=False)
    elif clinical_path.exists():
        clinical_path.unlink()  # a rerun without --clinical: a stale table would describe another cohort
    meta = {"name": "TCGA (GDC download): " + ", ".join(rep.projects), "simulated": False, "source": "gdc",
            "projects": {f"TCGA-{k}": v for k, v in rep.projects.items()}, "expression_column": cfg.column,
            "expression_scale": "raw FPKM-UQ; the loader applies log10(1 + x)", "folds": cfg.folds, "seed": cfg.seed}
    atomic_write_text(out / "cohort.json", json.dumps(meta, indent=2) + "\n")
    atomic_write_text(out / "report.md", rep.to_markdown(cfg))
    write_manifest(manifest, out / "manifest.csv")  # last: a folder with a manifest is a whole cohort
    return rep


def check_cohort(out: str | os.PathLike) -> None:
    """``isg check OUT/manifest.csv``, in this process (the same code)."""
    print(validate_cohort(Path(out) / "manifest.csv"))


# --------------------------------------------------------------------------- gdc-query


def _in(field_name: str, values: Sequence[str]) -> dict:
    return {"op": "in", "content": {"field": field_name, "value": list(values)}}


def slide_criteria() -> list[dict]:
    """Diagnostic slides (FFPE, the ``DX`` slides), as SVS."""
    return [_in("files.data_type", ["Slide Image"]), _in("files.experimental_strategy", ["Diagnostic Slide"]),
            _in("files.data_format", ["SVS"])]


def star_criteria() -> list[dict]:
    """STAR-Counts gene-expression quantifications (one per RNA-seq aliquot)."""
    return [_in("files.data_category", ["Transcriptome Profiling"]),
            _in("files.data_type", ["Gene Expression Quantification"]),
            _in("files.analysis.workflow_type", ["STAR - Counts"])]


def slide_filter(projects: Sequence[str]) -> dict:
    """GDC ``filters`` for the projects' diagnostic slides."""
    return {"op": "and", "content": [_in("cases.project.project_id", projects)] + slide_criteria()}


def star_filter(projects: Sequence[str]) -> dict:
    """GDC ``filters`` for the projects' STAR-Counts files."""
    return {"op": "and", "content": [_in("cases.project.project_id", projects)] + star_criteria()}


def sample_sheet_filter(projects: Sequence[str]) -> dict:
    """Both kinds of file in one request, so one sample sheet covers the whole download."""
    return {"op": "and", "content": [_in("cases.project.project_id", projects),
                                     {"op": "or", "content": [{"op": "and", "content": slide_criteria()},
                                                              {"op": "and", "content": star_criteria()}]}]}


def gdc_requests(projects: Sequence[str]) -> dict[str, dict]:
    """File name -> JSON body of each request ``gdc-query`` writes."""
    return {
        "slides.filters.json": slide_filter(projects),
        "star_counts.filters.json": star_filter(projects),
        "slides.manifest_request.json": {"filters": slide_filter(projects), "return_type": "manifest",
                                         "size": str(API_SIZE)},
        "star_counts.manifest_request.json": {"filters": star_filter(projects), "return_type": "manifest",
                                              "size": str(API_SIZE)},
        "sample_sheet_request.json": {"filters": sample_sheet_filter(projects), "fields": ",".join(SAMPLE_SHEET_FIELDS),
                                      "format": "TSV", "size": str(API_SIZE)},
    }


def _curl(body: str, out: str) -> str:
    return (f"curl --fail --silent --show-error --request POST --header 'Content-Type: application/json' "
            f"--data @{body} '{GDC_FILES_ENDPOINT}' > {out}")


def download_script(projects: Sequence[str]) -> str:
    """The shell script: fetch manifests and sample sheet, download, build the cohort."""
    return "\n".join([
        "#!/usr/bin/env bash",
        f"# Written by `isg cohort gdc-query --project {' '.join(projects)}`: run it in this folder.",
        "# Slides are large (LIHC ~500 GB): run step 2 where the data should live; it resumes when rerun.",
        "set -euo pipefail",
        'cd "$(dirname "$0")"',
        "",
        "# 1. gdc-client manifests (id filename md5 size state) and the sample sheet (TSV, dotted column names)",
        _curl("slides.manifest_request.json", "slides.manifest.txt"),
        _curl("star_counts.manifest_request.json", "star_counts.manifest.txt"),
        _curl("sample_sheet_request.json", "sample_sheet.tsv"),
        "",
        "# 2. the files (each into <file uuid>/<file name>)",
        "gdc-client download -m slides.manifest.txt -d slides",
        "gdc-client download -m star_counts.manifest.txt -d star_counts",
        "",
        "# 3. the cohort: manifest.csv, expression.tsv, report.md, then the same checks as `isg check`",
        "isg cohort from-gdc --slides slides --expression star_counts --sample-sheet sample_sheet.tsv --out cohort",
        "",
    ])


def readme_text(projects: Sequence[str]) -> str:
    """What the files of ``gdc-query`` are, and the commands (the same as ``download.sh``)."""
    return "\n".join([
        f"# GDC requests for {', '.join(projects)}",
        "",
        "Written by `isg cohort gdc-query`; nothing was fetched. The GDC API's files endpoint",
        f"(`{GDC_FILES_ENDPOINT}`) takes each `*_request.json` as a POST body:",
        "",
        "- `slides.filters.json`, `star_counts.filters.json`: the `filters` (diagnostic SVS slides; STAR-Counts files)",
        "- `*.manifest_request.json`: `return_type=manifest` gives a manifest for `gdc-client download -m`",
        "- `sample_sheet_request.json`: file id, name, project, case and sample of every file as TSV,",
        "  what `isg cohort from-gdc --sample-sheet` reads (as it reads the portal's sample sheet)",
        "",
        "Commands (also in `download.sh`):",
        "",
        "```bash",
        download_script(projects).split('cd "$(dirname "$0")"\n', 1)[1].strip(),
        "```",
        "",
        "A cart from the GDC portal works too: download its manifest and sample sheet, then",
        "`gdc-client download -m gdc_manifest.txt -d download` and",
        "`isg cohort from-gdc --slides download --expression download "
        "--sample-sheet gdc_sample_sheet.tsv --out cohort`.",
        "",
    ])


def write_gdc_query(projects: Sequence[str], out: str | os.PathLike) -> list[Path]:
    """Write the requests, ``download.sh`` and ``README.md`` into ``out``; return their paths."""
    projects = list(dict.fromkeys(p.strip() for p in projects))
    bad = [p for p in projects if not PROJECT_RE.match(p)]
    if bad:
        raise IsgError(None, f"--project {bad[0]!r} is not a TCGA project id (e.g. TCGA-LIHC); "
                             "from-gdc reads TCGA barcodes")
    out = writable_dir(out)
    written = [atomic_write_text(out / name, json.dumps(body, indent=2) + "\n")
               for name, body in gdc_requests(projects).items()]
    script = atomic_write_text(out / "download.sh", download_script(projects))
    script.chmod(0o755)
    written += [script, atomic_write_text(out / "README.md", readme_text(projects))]
    return written


# --------------------------------------------------------------------------- CLI


def _cmd_from_gdc(args) -> None:
    cfg = FromGdcConfig(Path(args.slides), Path(args.expression), Path(args.sample_sheet), Path(args.out),
                        Path(args.clinical) if args.clinical else None, folds=args.folds, seed=args.seed)
    rep = build_cohort_from_gdc(cfg)
    print(rep.to_markdown(cfg, max_items=10), end="")
    print(f"{cfg.out}: {rep.summary()}")
    check_cohort(cfg.out)


def _cmd_gdc_query(args) -> None:
    paths = write_gdc_query(args.project, args.out)
    for p in paths:
        print(p)
    print(f"next: bash {Path(args.out) / 'download.sh'}  (needs curl, gdc-client and the network)")


def add_cohort_parser(sub) -> None:
    """Register ``isg cohort from-gdc`` and ``isg cohort gdc-query`` on the ``isg`` subparsers."""
    s = sub.add_parser("cohort", help="build a cohort from a GDC download")
    cs = s.add_subparsers(dest="cohort_command", required=True)

    f = cs.add_parser("from-gdc", help="manifest, targets and report from gdc-client downloads and the sample sheet")
    f.add_argument("--slides", required=True, help="folder of the slide download (<uuid>/<name>.svs)")
    f.add_argument("--expression", required=True, help="folder of the STAR-Counts download (may be --slides)")
    f.add_argument("--sample-sheet", required=True, help="GDC sample sheet (portal export or API TSV)")
    f.add_argument("--out", required=True, help="cohort folder to write")
    f.add_argument("--clinical", help="GDC clinical.tsv: join stage, vital status ... into clinical.csv")
    f.add_argument("--folds", type=int, default=5, help="cross-validation folds, by patient (default 5)")
    f.add_argument("--seed", type=int, default=0, help="seed of the fold assignment (default 0)")
    f.set_defaults(func=_cmd_from_gdc)

    q = cs.add_parser("gdc-query", help="write the GDC API requests and download commands for projects")
    q.add_argument("--project", required=True, nargs="+", action="extend", help="e.g. TCGA-LIHC (several allowed)")
    q.add_argument("--out", required=True, help="folder for the requests, download.sh and README.md")
    q.set_defaults(func=_cmd_gdc_query)
