"""Merged expression matrices (``rows x genes``, CSV or TSV, optionally gzipped), and the file
helpers the GDC readers share (:mod:`isg_core.data.star_counts`).

A merged matrix (:func:`read_expression_matrix`) has one row per slide, sample or patient and
one column per gene: an Ensembl id, versioned or not (GENCODE versions such as
``ENSG00000167286.10`` are stripped, :func:`strip_version`; the chrY copies of the
pseudo-autosomal genes, ``..._PAR_Y``, are dropped), or a gene symbol.  ISG-Sim's
``expression.tsv`` and the one ``isg cohort from-gdc`` writes are such files, keyed by exact
``slide_id``.  Values are read raw; the target transform and the matching of slides to rows are
:mod:`isg_core.data.expression`'s.

Every bad input is a one-line :class:`~isg_core.errors.IsgError` naming the file.
"""
from __future__ import annotations

import csv
import gzip
import io
import os
import re
from pathlib import Path
from typing import IO

import numpy as np
import pandas as pd

from ..config import GENE_ENSEMBL
from ..errors import IsgError, first_line

#: Unversioned Ensembl id -> symbol, for the paper's genes.
SYMBOL_OF_ENSEMBL: dict[str, str] = {e: s for s, e in GENE_ENSEMBL.items()}

_ENSEMBL_RE = re.compile(r"^(ENS[A-Z]*G\d+)(\.\d+)?(_PAR_Y)?$")
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
    # Long on purpose: a file format read as a sequence of checks, each with its own one-line error
    # naming the file; kept in one function so the order of the checks (which error a bad file gets)
    # reads in one place.
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
