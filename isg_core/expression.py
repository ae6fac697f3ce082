"""Gene-expression targets: GDC STAR-Counts files, GDC sample sheets and merged matrices.

The model's regression targets are HE2RNA's: FPKM-UQ per gene, transformed as
``log10(1 + x)`` (:func:`log_transform`).  The rest of the project calls one function,
:func:`load_targets`, which returns a ``slides x genes`` table in manifest order from either

* a merged matrix file (:func:`read_expression_matrix`): one row per slide, sample or patient,
  one column per gene (Ensembl id, versioned or not, or gene symbol); ISG-Sim's
  ``expression.tsv`` is such a file, keyed by exact ``slide_id``; or
* a directory of GDC STAR-Counts files (:func:`read_star_counts`) plus the GDC portal's sample
  sheet (:func:`read_sample_sheet`), combined by :func:`load_star_directory`.

Matching slides to expression rows (:func:`match_rows`), strictest rule first, and never
ambiguously:

1. the row id equals the slide id exactly;
2. TCGA ids only: same *sample* (first 16 characters, ``TCGA-XX-XXXX-01A``, vial letter
   included);
3. TCGA ids only: same *sample type* of the same patient (first 15 characters,
   ``TCGA-XX-XXXX-01``).  Diagnostic slides carry vial ``Z`` (``...-01Z-00-DX1``) while RNA
   aliquots carry ``A``/``B``, so rule 2 rarely fires for slides; this rule pairs a slide with
   its patient's primary-tumour RNA without being confused by a normal-tissue (``-11``) row;
4. TCGA ids only: same *patient* (first 12 characters, ``TCGA-XX-XXXX``).

At the first rule that finds any row: exactly one row is a match; two or more is an error
(we never guess between two aliquots or samples).  Prefix rules apply only to TCGA barcodes so
that e.g. simulated ids sharing a prefix never match each other by accident.

Every bad input is a one-line :class:`~isg_core.errors.IsgError` naming the file.
"""
from __future__ import annotations

import csv
import gzip
import io
import os
import re
from pathlib import Path
from typing import IO, Sequence

import numpy as np
import pandas as pd

from .config import ALL_GENES, GENE_ENSEMBL
from .errors import IsgError, first_line

__all__ = [
    "STAR_SUMMARY_ROWS",
    "SYMBOL_OF_ENSEMBL",
    "strip_version",
    "read_star_counts",
    "read_sample_sheet",
    "load_star_directory",
    "read_expression_matrix",
    "log_transform",
    "match_rows",
    "load_targets",
]

#: The four summary rows at the top of a STAR-Counts file (not genes).
STAR_SUMMARY_ROWS = ("N_unmapped", "N_multimapping", "N_noFeature", "N_ambiguous")

#: Unversioned Ensembl id -> symbol, for the paper's genes.
SYMBOL_OF_ENSEMBL: dict[str, str] = {e: s for s, e in GENE_ENSEMBL.items()}

#: Sample-sheet columns load_star_directory needs.
SHEET_REQUIRED = ("File Name", "Sample ID")

#: TCGA sample-type code of a primary solid tumour (characters 14-15 of a barcode).
PRIMARY_TUMOR_CODE = "01"

_ENSEMBL_RE = re.compile(r"^(ENS[A-Z]*G\d+)(\.\d+)?(_PAR_Y)?$")
_TCGA_RE = re.compile(r"^TCGA-[A-Z0-9]{2}-[A-Z0-9]{4}", re.IGNORECASE)
# Longest suffix first so ".tsv.gz" wins over ".gz".
_TSV_SUFFIXES = (".tsv", ".txt", ".tab")
_CSV_SUFFIXES = (".csv",)


# --------------------------------------------------------------------------- helpers


def strip_version(gene_id: str) -> str:
    """``ENSG00000167286.10`` -> ``ENSG00000167286``; anything else is returned unchanged."""
    m = _ENSEMBL_RE.match(gene_id)
    if m is None:
        return gene_id
    return m.group(1) + (m.group(3) or "")


def _is_par_y(gene_id: str) -> bool:
    # GENCODE lists the pseudo-autosomal genes twice; the chrY copy has ids like
    # ENSG00000002586.20_PAR_Y and (in STAR-Counts) all-zero values, so it is dropped.
    return gene_id.endswith("_PAR_Y")


def _gene_label(gene: str) -> str:
    """``CD3D (ENSG00000167286)`` for a known symbol, else the name itself."""
    return f"{gene} ({GENE_ENSEMBL[gene]})" if gene in GENE_ENSEMBL else gene


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return (text.splitlines()[0] if text else type(e).__name__)[:200]


def _open_text(path: Path) -> IO[str]:
    """Open a text file, transparently gunzipping ``*.gz``."""
    if path.name.lower().endswith(".gz"):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", errors="replace")
    return open(path, encoding="utf-8", errors="replace", newline="")


def _check_file(path: Path, what: str) -> None:
    """Exists, is a file, is not empty: one-line errors before any parser sees it."""
    if not path.exists():
        raise IsgError(path, f"{what} not found")
    if not path.is_file():
        raise IsgError(path, f"{what} is not a file")
    try:
        size = path.stat().st_size
    except OSError as e:
        raise IsgError(path, f"cannot read {what} ({e.strerror})") from None
    if size == 0:
        raise IsgError(path, f"{what} is empty")
    if not os.access(path, os.R_OK):
        raise IsgError(path, f"cannot read {what} (permission denied)")


def _is_tcga(identifier: str) -> bool:
    return bool(_TCGA_RE.match(identifier))


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


# --------------------------------------------------------------------------- merged matrix


def _sniff_delimiter(path: Path, header: str) -> str:
    name = path.name.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    if name.endswith(_CSV_SUFFIXES):
        return ","
    if name.endswith(_TSV_SUFFIXES):
        return "\t"
    # Unknown extension: the header decides (ids and gene names contain neither tab nor comma).
    return "\t" if header.count("\t") >= max(1, header.count(",")) else ","


def _column_name(raw: str) -> str:
    """Symbol for a paper gene (by Ensembl id, versioned or not, or by symbol), else the
    unversioned id / the name as written."""
    name = raw.strip()
    if name in GENE_ENSEMBL:
        return name
    stripped = strip_version(name)
    return SYMBOL_OF_ENSEMBL.get(stripped, stripped)


def read_expression_matrix(path: str | os.PathLike) -> pd.DataFrame:
    """Read a merged ``rows x genes`` expression matrix (CSV or TSV, optionally gzipped).

    The delimiter comes from the extension (``.csv``; ``.tsv``/``.txt``/``.tab``), else from
    the header line.  The first column holds the row id (slide, sample or patient; any header
    name, or none, as R's ``write.table`` writes).  Gene columns may be Ensembl ids (versions
    are stripped; ``_PAR_Y`` copies dropped) or symbols; the paper's genes are renamed to their
    symbols (``config.GENE_ENSEMBL``), other columns keep their (unversioned) name.

    Values are returned raw: columns that parse as numbers are float (empty / ``NA`` cells
    become NaN, reported by :func:`load_targets` only if it needs them); columns that do not
    (annotations, or a corrupt gene column) are left as strings for the caller to judge.
    Duplicate names among *other* columns are dropped: they cannot be told apart and are
    never requested.

    Errors: missing / empty / unreadable file, no gene columns, ragged rows, an empty or
    duplicated row id, a paper gene present in two columns.
    """
    path = Path(path)
    _check_file(path, "expression table")
    try:
        with _open_text(path) as fh:
            header_line = fh.readline().rstrip("\r\n")
            first_data = fh.readline().rstrip("\r\n")
    except Exception as e:
        raise IsgError(path, f"cannot read expression table ({first_line(e)})") from None
    if not header_line.strip():
        raise IsgError(path, "expression table has no header row")
    if "\x00" in header_line or "\ufffd" in header_line:  # _open_text decodes with errors="replace"
        raise IsgError(path, "expression table is not UTF-8 text (a binary file, or another encoding)")
    sep = _sniff_delimiter(path, header_line)
    header = next(csv.reader([header_line], delimiter=sep))
    if first_data:
        n_data = len(next(csv.reader([first_data], delimiter=sep)))
        if n_data == len(header) + 1:
            header = [""] + header  # R's write.table: no header cell above the row names
    if len(header) < 2:
        raise IsgError(path, f"expression table has no gene columns (read with delimiter {sep!r})")
    try:
        body = pd.read_csv(path, sep=sep, header=None, skiprows=1, dtype=str, names=range(len(header)))
    except pd.errors.EmptyDataError:
        raise IsgError(path, "expression table has a header but no rows") from None
    except pd.errors.ParserError as e:
        raise IsgError(path, f"expression table has rows of different lengths ({first_line(e)})") from None
    except Exception as e:
        raise IsgError(path, f"cannot read expression table ({first_line(e)})") from None
    if body.empty:
        raise IsgError(path, "expression table has a header but no rows")
    # A short row is padded with NaN by pandas; that surfaces in load_targets as "holds NaN"
    # for the cells it needs, which is the honest report for a truncated row.

    ids = body[0]
    if ids.isna().any() or (ids.astype(str).str.strip() == "").any():
        i = int(np.flatnonzero((ids.isna() | (ids.astype(str).str.strip() == "")).to_numpy())[0])
        raise IsgError(path, f"expression table row {i + 2} has an empty id")
    ids = ids.astype(str).str.strip()
    dup = ids[ids.duplicated()]
    if len(dup):
        raise IsgError(path, f"expression table lists row id {dup.iloc[0]} more than once")

    names = [_column_name(h) for h in header[1:]]
    columns: dict[str, pd.Series] = {}
    seen_raw: dict[str, str] = {}
    dropped: set[str] = set()
    for j, (raw, name) in enumerate(zip(header[1:], names), start=1):
        if _is_par_y(raw.strip()):
            continue
        if name in seen_raw:
            if name in GENE_ENSEMBL:
                raise IsgError(
                    path, f"expression table has gene {_gene_label(name)} in two columns ({seen_raw[name]}, {raw})"
                )
            dropped.add(name)
            continue
        seen_raw[name] = raw
        col = body[j]
        numeric = pd.to_numeric(col, errors="coerce")
        # Keep the column numeric only if every non-missing cell parsed; otherwise raw strings.
        if (numeric.isna() == col.isna()).all():
            columns[name] = numeric.astype(np.float64)
        else:
            columns[name] = col.astype(object)
    for name in dropped:
        columns.pop(name, None)
    if not columns:
        raise IsgError(path, "expression table has no gene columns")
    out = pd.DataFrame(columns)
    out.index = pd.Index(ids.to_numpy(dtype=object), name=header[0].strip() or "id")
    return out


# --------------------------------------------------------------------------- transform


def log_transform(df: pd.DataFrame, path: str | os.PathLike | None = None) -> pd.DataFrame:
    """HE2RNA's target transform ``log10(1 + x)`` (FPKM-UQ is >= 0, so the result is >= 0).

    A negative value means the input is not FPKM-UQ (already logged, or centred), which the
    transform would silently turn into garbage or NaN: it is an error naming ``path``.
    """
    values = df.apply(pd.to_numeric, errors="coerce")
    bad_type = values.isna() & df.notna()
    if bad_type.to_numpy().any():
        r, c = (int(a[0]) for a in np.nonzero(bad_type.to_numpy()))
        raise IsgError(path, f"non-numeric value {df.iat[r, c]!r} for {df.index[r]} gene {df.columns[c]}")
    neg = (values < 0).to_numpy()
    if neg.any():
        r, c = (int(a[0]) for a in np.nonzero(neg))
        raise IsgError(
            path,
            f"negative value {values.iat[r, c]:g} for {df.index[r]} gene {df.columns[c]} "
            "(expected FPKM-UQ >= 0, not log-scaled values)",
        )
    return np.log10(1.0 + values.astype(np.float64))


# --------------------------------------------------------------------------- matching


def match_rows(slide_ids: Sequence[str], row_ids: Sequence[str], source: str | os.PathLike) -> dict[str, str]:
    """Expression row id for each slide, by the rules in the module docstring.

    Returns ``{slide_id: row_id}`` for the slides that match; slides with no row are left
    out (the caller decides whether that is an error).  Raises :class:`IsgError` naming
    ``source`` when a slide's best rule finds more than one row.
    """
    row_ids = [str(r) for r in row_ids]
    exact = set(row_ids)
    tcga_rows = [r for r in row_ids if _is_tcga(r)]
    by_prefix: dict[int, dict[str, list[str]]] = {}
    for n in (16, 15, 12):
        index: dict[str, list[str]] = {}
        for r in tcga_rows:
            if len(r) >= n:
                index.setdefault(r[:n].upper(), []).append(r)
        by_prefix[n] = index
    level_name = {16: "sample", 15: "sample type", 12: "patient"}

    out: dict[str, str] = {}
    for sid in slide_ids:
        sid = str(sid)
        if sid in exact:
            out[sid] = sid
            continue
        if not _is_tcga(sid):
            continue
        for n in (16, 15, 12):
            if len(sid) < n:
                continue
            hits = by_prefix[n].get(sid[:n].upper(), [])
            if len(hits) == 1:
                out[sid] = hits[0]
                break
            if len(hits) > 1:
                raise IsgError(
                    source,
                    f"slide {sid} matches {len(hits)} expression rows by {level_name[n]} "
                    f"({', '.join(hits[:3])}); cannot choose",
                )
    return out


# --------------------------------------------------------------------------- entry point


def load_targets(
    manifest: pd.DataFrame,
    source: str | os.PathLike,
    genes: Sequence[str],
    sample_sheet: str | os.PathLike | None = None,
    log: bool = True,
) -> pd.DataFrame:
    """Regression targets for every slide of ``manifest``: ``log10(1 + FPKM-UQ)``.

    ``source`` is a merged matrix file (:func:`read_expression_matrix`, e.g. ISG-Sim's
    ``expression.tsv``) or a directory of GDC STAR-Counts files, which needs the portal's
    ``sample_sheet`` (:func:`load_star_directory`).  Slides are matched to rows by
    :func:`match_rows`.  ``log=False`` returns the raw FPKM-UQ values.

    Returns a float DataFrame: index = ``manifest['slide_id']`` in manifest order (named
    ``slide_id``), columns = ``genes`` in the order given.  Raises a one-line
    :class:`IsgError` naming the file for: a missing, empty or unreadable source; a slide
    without expression; a requested gene that is missing; a NaN, non-numeric, infinite or
    negative value among the requested cells; an ambiguous match.
    """
    genes = _validate_genes(genes)
    if "slide_id" not in manifest.columns:
        raise IsgError(None, "manifest lacks column slide_id")
    slide_ids = [str(s) for s in manifest["slide_id"]]
    source = Path(source)
    if not source.exists():
        raise IsgError(source, "expression source not found")

    if source.is_dir():
        if sample_sheet is None:
            raise IsgError(source, "a STAR-Counts directory needs the GDC sample sheet (sample_sheet=...)")
        table = load_star_directory(source, sample_sheet, genes)
        where: str | os.PathLike = sample_sheet
        what = f"sample sheet (with {source})"
    else:
        table = read_expression_matrix(source)
        where, what = source, "expression table"
        lacking = [g for g in genes if g not in table.columns]
        if lacking:
            raise IsgError(source, f"expression table lacks gene {_gene_label(lacking[0])}")

    matched = match_rows(slide_ids, list(table.index), where)
    missing = [s for s in slide_ids if s not in matched]
    if missing:
        more = f" (and {len(missing) - 1} more slides)" if len(missing) > 1 else ""
        raise IsgError(where, f"{what} lacks slide {missing[0]}{more}")

    raw = table.loc[[matched[s] for s in slide_ids], genes]
    raw.index = pd.Index(slide_ids, name="slide_id")
    values = raw.apply(pd.to_numeric, errors="coerce")
    for r, c in zip(*np.nonzero((values.isna() & raw.notna()).to_numpy())):
        raise IsgError(
            where, f"{what} holds non-numeric value {raw.iat[r, c]!r} for slide {slide_ids[r]} gene {genes[c]}"
        )
    for r, c in zip(*np.nonzero(values.isna().to_numpy())):
        raise IsgError(where, f"{what} holds NaN for slide {slide_ids[r]} gene {genes[c]}")
    values = values.astype(np.float64)
    for r, c in zip(*np.nonzero(~np.isfinite(values.to_numpy()))):
        raise IsgError(where, f"{what} holds {values.iat[r, c]} for slide {slide_ids[r]} gene {genes[c]}")
    for r, c in zip(*np.nonzero((values < 0).to_numpy())):
        raise IsgError(
            where,
            f"{what} holds negative value {values.iat[r, c]:g} for slide {slide_ids[r]} gene {genes[c]} "
            "(expected FPKM-UQ >= 0, not log-scaled values)",
        )
    return log_transform(values, where) if log else values
