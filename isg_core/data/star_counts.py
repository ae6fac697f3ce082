"""GDC STAR-Counts files and the GDC sample sheet: the gene-expression files of a GDC download.

* A STAR-Counts file (``*.rna_seq.augmented_star_gene_counts.tsv``, the GDC's gene-expression
  quantification since data release 32): ``#`` comment lines, a header, four ``N_*`` summary
  rows, then one row per gene with ``unstranded`` ... ``fpkm_uq_unstranded`` columns
  (:func:`read_star_counts`).
* The GDC portal's sample sheet (tab-separated; ``File ID``, ``File Name``, ``Data Type``,
  ``Sample ID``, ``Sample Type`` ...), of which the primary-tumour rows are kept
  (:func:`read_sample_sheet`; TCGA sample-type code ``01``, docs.gdc.cancer.gov, "TCGA Barcode").
* A download folder of STAR-Counts files plus its sample sheet: FPKM-UQ of the paper's genes per
  primary-tumour sample, aliquots averaged (:func:`load_star_directory`).

The model's targets are HE2RNA's, ``log10(1 + FPKM-UQ)``; the transform is
:func:`isg_core.data.expression.log_transform`'s, applied by :func:`isg_core.data.expression.load_targets`.
Every bad input is a one-line :class:`~isg_core.errors.IsgError` naming the file.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ..config import ALL_GENES, GENE_ENSEMBL
from ..errors import IsgError, first_line
from .expression_matrix import _check_file, _gene_label, _is_par_y, _open_text, strip_version

#: The four summary rows at the top of a STAR-Counts file (not genes).
STAR_SUMMARY_ROWS = ("N_unmapped", "N_multimapping", "N_noFeature", "N_ambiguous")

#: Sample-sheet columns load_star_directory needs.
SHEET_REQUIRED = ("File Name", "Sample ID")

#: TCGA sample-type code of a primary solid tumour (characters 14-15 of a barcode).
PRIMARY_TUMOR_CODE = "01"


# --------------------------------------------------------------------------- helpers


def _validate_genes(genes: Sequence[str]) -> list[str]:
    genes = [genes] if isinstance(genes, str) else list(genes)
    if not genes:
        raise IsgError(None, "no genes requested")
    dup = [g for i, g in enumerate(genes) if g in genes[:i]]
    if dup:
        raise IsgError(None, f"gene {dup[0]} requested more than once")
    return genes


def _require_known(genes: Sequence[str]) -> None:
    unknown = [g for g in genes if g not in GENE_ENSEMBL]
    if unknown:
        raise IsgError(None, f"unknown gene {unknown[0]!r} (known: {', '.join(GENE_ENSEMBL)})")


# --------------------------------------------------------------------------- STAR-Counts


def read_star_counts(path: str | os.PathLike, column: str = "fpkm_uq_unstranded") -> pd.Series:
    """Read one GDC STAR-Counts file (``*.rna_seq.augmented_star_gene_counts.tsv``).

    Leading ``#`` comment lines are skipped (``# gene-model: GENCODE v36``), then the header
    row, then the four ``N_*`` summary rows (dropped: they are read counts, not genes), then
    one row per gene.  Versions are stripped from the gene ids; the chrY copies of the
    pseudo-autosomal genes (``..._PAR_Y``) are dropped.

    ``column`` is the value column; TCGAbiolinks' short names (``fpkm_uq_unstrand``,
    ``tpm_unstrand``, ...) are accepted for the GDC names (``..._unstranded``) and vice versa.

    Returns a float Series indexed by unversioned Ensembl gene id, named ``column``.
    Raises :class:`IsgError` for a missing/empty/unreadable file, a missing column (listing
    the columns that exist), a missing or non-numeric value, or a gene id that occurs twice
    once versions are stripped.
    """
    # Long on purpose: a file format read as a sequence of checks, each with its own one-line error
    # naming the file; kept in one function so the order of the checks (which error a bad file gets)
    # reads in one place.
    path = Path(path)
    _check_file(path, "STAR-Counts file")
    try:
        with _open_text(path) as fh:
            n_comment = 0
            for line in fh:
                if not line.startswith("#"):
                    break
                n_comment += 1
        table = pd.read_csv(path, sep="\t", skiprows=n_comment, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise IsgError(path, "STAR-Counts file has no header row") from None
    except Exception as e:  # a tokenizer error, a bad gzip stream, an OSError ...
        raise IsgError(path, f"cannot read STAR-Counts file ({first_line(e)})") from None
    table.columns = [str(c).strip() for c in table.columns]
    if "gene_id" not in table.columns:
        raise IsgError(path, f"STAR-Counts file lacks column gene_id (columns: {', '.join(table.columns)})")
    _check_not_cut_off(path, table.shape[1])

    chosen = column
    if chosen not in table.columns:
        # GDC writes "..._unstranded", TCGAbiolinks "..._unstrand": accept either spelling.
        alias = column[: -len("ed")] if column.endswith("_unstranded") else (
            column + "ed" if column.endswith("_unstrand") else None
        )
        if alias is None or alias not in table.columns:
            raise IsgError(path, f"STAR-Counts file lacks column {column} (columns: {', '.join(table.columns)})")
        chosen = alias

    ids = table["gene_id"].astype(str).str.strip()
    keep = ~ids.isin(STAR_SUMMARY_ROWS) & ~ids.str.startswith("N_") & ~ids.map(_is_par_y)
    ids = ids[keep]
    raw = table.loc[keep, chosen].astype(str).str.strip()
    if ids.empty:
        raise IsgError(path, "STAR-Counts file has no gene rows")
    values = pd.to_numeric(raw, errors="coerce")
    bad = values.isna()
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        shown = raw.iloc[i]
        what = "a missing value" if shown in ("", "nan", "NaN", "NA") else f"non-numeric value {shown!r}"
        raise IsgError(path, f"STAR-Counts file holds {what} in column {chosen} for gene {ids.iloc[i]}")
    stripped = ids.map(strip_version)
    dup = stripped[stripped.duplicated()]
    if len(dup):
        originals = ids[stripped == dup.iloc[0]].tolist()
        raise IsgError(path, f"STAR-Counts file lists gene {dup.iloc[0]} more than once ({', '.join(originals)})")
    return pd.Series(values.to_numpy(dtype=np.float64), index=pd.Index(stripped.to_numpy(), name="gene_id"),
                     name=column)


def _check_not_cut_off(path: Path, n_columns: int) -> None:
    """A cut-off download ends inside a row; pandas pads that row with "" (keep_default_na=False),
    which would be reported as a missing value.  Say what it is: the file is truncated.  (A cut
    gzip stream already fails to decompress, so only plain files are looked at.)"""
    if path.name.lower().endswith(".gz"):
        return
    try:
        with open(path, "rb") as fh:
            fh.seek(max(0, path.stat().st_size - 65536))
            tail = fh.read()
    except OSError as e:
        raise IsgError(path, f"cannot read STAR-Counts file ({e.strerror})") from None
    if tail.endswith((b"\n", b"\r")):
        return
    last = tail.rsplit(b"\n", 1)[-1].decode("utf-8", "replace").split("\t")
    if len(last) < n_columns:
        raise IsgError(path, f"STAR-Counts file is truncated: its last line ({last[0][:40]}) has {len(last)} of "
                             f"{n_columns} fields")


# --------------------------------------------------------------------------- sample sheet


def _first_of_cell(value: object) -> str:
    # Files that hold several samples list them comma-separated in one cell
    # ("TCGA-A1-A0SB-01A, TCGA-A1-A0SB-10A"); STAR-Counts files are per aliquot, so the
    # first entry is the file's sample.  Sample ID and Sample Type are split the same way.
    return str(value).split(",")[0].strip()


def read_sheet_tsv(path: Path, what: str = "sample sheet") -> pd.DataFrame:
    """A GDC tab-separated sheet as strings (empty cells stay ""), or a one-line error naming it."""
    _check_file(path, what)
    try:
        return pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise IsgError(path, f"{what} has no header row") from None
    except Exception as e:
        raise IsgError(path, f"cannot read {what} ({first_line(e)})") from None


def read_sample_sheet(path: str | os.PathLike) -> pd.DataFrame:
    """Read the GDC portal's sample sheet (tab-separated) and keep primary-tumour rows.

    The sample-type code (characters 14-15 of the ``Sample ID``, ``01`` = primary solid
    tumour) decides which rows are kept; when the sheet also has ``Sample Type`` it must say
    ``Primary Tumor`` for those rows (a disagreement is an error, as it means a broken sheet).
    Multi-sample cells: the first comma-separated entry of ``Sample ID`` / ``Sample Type`` is
    used (see :func:`_first_of_cell`).

    Returns the kept rows with their original columns plus ``sample_id``: the first 16
    characters of the (first) Sample ID, ``TCGA-XX-XXXX-01A``.  Errors: missing / empty /
    unreadable file, missing ``File Name`` or ``Sample ID`` column, no primary-tumour rows.
    """
    path = Path(path)
    sheet = read_sheet_tsv(path)
    sheet.columns = [str(c).strip() for c in sheet.columns]
    missing = [c for c in SHEET_REQUIRED if c not in sheet.columns]
    if missing:
        raise IsgError(
            path,
            f"sample sheet lacks column(s) {', '.join(missing)} (columns: {', '.join(sheet.columns)})",
        )
    if sheet.empty:
        raise IsgError(path, "sample sheet has no rows")
    first_ids = sheet["Sample ID"].map(_first_of_cell)
    codes = first_ids.str.slice(13, 15)
    keep = codes == PRIMARY_TUMOR_CODE
    if "Sample Type" in sheet.columns:
        types = sheet["Sample Type"].map(_first_of_cell)
        clash = keep & (types != "Primary Tumor") | ~keep & (types == "Primary Tumor")
        if clash.any():
            i = int(np.flatnonzero(clash.to_numpy())[0])
            raise IsgError(
                path,
                f"row {i + 2}: Sample ID {first_ids.iloc[i]} has sample code {codes.iloc[i]!r} "
                f"but Sample Type {types.iloc[i]!r}",
            )
    out = sheet.loc[keep].copy()
    if out.empty:
        raise IsgError(path, "sample sheet has no Primary Tumor rows (sample code 01)")
    out["sample_id"] = first_ids[keep].str.slice(0, 16)
    return out.reset_index(drop=True)


def load_star_directory(
    directory: str | os.PathLike,
    sample_sheet: str | os.PathLike | pd.DataFrame,
    genes: Sequence[str] = ALL_GENES,
    column: str = "fpkm_uq_unstranded",
) -> pd.DataFrame:
    """FPKM-UQ for ``genes`` of every primary-tumour sample in a GDC download directory.

    ``sample_sheet`` is a path (read with :func:`read_sample_sheet`) or its result.  Rows of
    other data types (``Data Type`` other than ``Gene Expression Quantification``, e.g. slide
    files in a combined sheet) are ignored.  Each file is found by name anywhere under
    ``directory`` (``gdc-client`` puts it in a ``<File ID>/`` folder; if the name occurs in
    several folders the one named after its File ID is used).

    Several aliquots (files) of one sample are averaged on the linear FPKM-UQ scale, so that
    ``log10(1 + mean)`` is the target for the sample, the same as for a single-aliquot sample.

    Returns rows = sample id (``TCGA-XX-XXXX-01A``, sheet order), columns = gene symbols.
    """
    # Long on purpose: a file format read as a sequence of checks, each with its own one-line error
    # naming the file; kept in one function so the order of the checks (which error a bad file gets)
    # reads in one place.
    directory = Path(directory)
    genes = _validate_genes(genes)
    _require_known(genes)
    if isinstance(sample_sheet, pd.DataFrame):
        sheet, sheet_name = sample_sheet, "sample sheet"
    else:
        sheet, sheet_name = read_sample_sheet(sample_sheet), str(sample_sheet)
    if not directory.exists():
        raise IsgError(directory, "STAR-Counts directory not found")
    if not directory.is_dir():
        raise IsgError(directory, "STAR-Counts source is not a directory")
    if "Data Type" in sheet.columns:
        sheet = sheet[sheet["Data Type"].str.strip() == "Gene Expression Quantification"]
        if sheet.empty:
            raise IsgError(sheet_name, "sample sheet lists no Gene Expression Quantification files")
    if "sample_id" not in sheet.columns:
        raise IsgError(sheet_name, "sample sheet lacks sample_id (read it with read_sample_sheet)")

    # One walk of the tree, then a lookup per file: a cohort has hundreds of files.
    found: dict[str, list[Path]] = {}
    for p in directory.rglob("*"):
        if p.is_file():
            found.setdefault(p.name, []).append(p)

    rows: list[pd.Series] = []
    samples: list[str] = []
    ensembl = [GENE_ENSEMBL[g] for g in genes]
    for _, row in sheet.iterrows():
        name = str(row["File Name"]).strip()
        candidates = found.get(name, [])
        if len(candidates) > 1 and "File ID" in sheet.columns:
            candidates = [c for c in candidates if c.parent.name == str(row["File ID"]).strip()] or candidates
        if not candidates:
            raise IsgError(sheet_name, f"sample sheet names file {name}, which is not under {directory}")
        if len(candidates) > 1:
            raise IsgError(
                sheet_name,
                f"file {name} occurs {len(candidates)} times under {directory} ({candidates[0]}, {candidates[1]})",
            )
        counts = read_star_counts(candidates[0], column=column)
        lacking = [g for g, e in zip(genes, ensembl) if e not in counts.index]
        if lacking:
            raise IsgError(candidates[0], f"STAR-Counts file lacks gene {_gene_label(lacking[0])}")
        rows.append(pd.Series(counts.loc[ensembl].to_numpy(), index=genes))
        samples.append(str(row["sample_id"]))
    table = pd.DataFrame(rows, index=pd.Index(samples, name="sample_id"), columns=genes, dtype=np.float64)
    # Aliquots of one sample -> their mean (see the docstring); keep first-seen order.
    return table.groupby(level=0, sort=False).mean()
