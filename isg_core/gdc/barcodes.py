"""TCGA barcodes and the GDC sample sheet, as ``isg cohort from-gdc`` reads them.

Barcodes as documented by the GDC (docs.gdc.cancer.gov, "TCGA Barcode"): a slide is named
``TCGA-XX-XXXX-01Z-00-DX1`` (then ``.<uuid>`` in the GDC's file names), an RNA aliquot's sample
``TCGA-XX-XXXX-01A``; the first 15 characters are patient + sample type, characters 14-15 the
sample-type code (``01`` primary tumour, ``11`` solid tissue normal, ...).

The sample sheet is the portal's export ("File Name", "Sample ID", ...) or the API's TSV with
dotted column names (``cases.0.samples.0.submitter_id``; before 2019 with underscores), read by
:func:`read_gdc_sample_sheet` into one spelling.
"""
from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from ..data.slides import slide_id_from_path
from ..data.star_counts import read_sheet_tsv
from ..errors import IsgError

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
    # and slides are per aliquot / per sample, so the first entry is the file's (as star_counts.py).
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
    :func:`isg_core.data.star_counts.read_sample_sheet` is not reused: it drops non-primary rows
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
