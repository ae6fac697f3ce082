"""Gene-expression targets: GDC STAR-Counts files, GDC sample sheets and merged matrices.

The model's regression targets are HE2RNA's: FPKM-UQ per gene, transformed as
``log10(1 + x)`` (:func:`log_transform`).  The rest of the project calls one function,
:func:`load_targets`, which returns a ``slides x genes`` table in manifest order from either

* a merged matrix file (:func:`read_expression_matrix`): one row per slide, sample or patient,
  one column per gene (Ensembl id, versioned or not, or gene symbol); ISG-Sim's
  ``expression.tsv`` is such a file, keyed by exact ``slide_id``; or
* a directory of GDC STAR-Counts files (:func:`read_star_counts`) plus the GDC portal's sample
  sheet (:func:`read_sample_sheet`), combined by :func:`load_star_directory`.

The readers of those files live in :mod:`isg_core.data.expression_matrix` (merged matrices) and
:mod:`isg_core.data.star_counts` (STAR-Counts files, sample sheets); their public names are
re-exported here.  This module holds the transform, the matching and :func:`load_targets`.

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

import os
import re
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ..errors import IsgError
from .expression_matrix import SYMBOL_OF_ENSEMBL, _gene_label, read_expression_matrix, strip_version
from .star_counts import (
    STAR_SUMMARY_ROWS,
    _validate_genes,
    load_star_directory,
    read_sample_sheet,
    read_sheet_tsv,
    read_star_counts,
)

__all__ = [
    "STAR_SUMMARY_ROWS",
    "SYMBOL_OF_ENSEMBL",
    "strip_version",
    "read_star_counts",
    "read_sheet_tsv",
    "read_sample_sheet",
    "load_star_directory",
    "read_expression_matrix",
    "log_transform",
    "match_rows",
    "load_targets",
]

_TCGA_RE = re.compile(r"^TCGA-[A-Z0-9]{2}-[A-Z0-9]{4}", re.IGNORECASE)


def _is_tcga(identifier: str) -> bool:
    return bool(_TCGA_RE.match(identifier))


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
    # Long on purpose: a file format read as a sequence of checks, each with its own one-line error
    # naming the file; kept in one function so the order of the checks (which error a bad file gets)
    # reads in one place.
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
