"""A cohort from a GDC download: ``isg cohort from-gdc`` and ``isg cohort gdc-query``.

``isg cohort gdc-query --project TCGA-LIHC --out DIR`` writes (and fetches nothing) the GDC API
requests for a project's diagnostic slides and STAR-Counts files, and a script with the exact
``curl`` / ``gdc-client download`` commands, ending with the ``isg cohort from-gdc`` command
that turns the download into a cohort.

``isg cohort from-gdc --slides DIR --expression DIR --sample-sheet FILE --out COHORT`` reads
what ``gdc-client download`` made (``<file uuid>/<file name>``, or files directly in the
folder; slides and STAR-Counts files may share one tree) and the GDC sample sheet (the portal's
export, or the API's TSV with dotted column names), and writes a cohort every other command
reads (:func:`isg_core.cohorts.folder.load_cohort`): ``manifest.csv`` (the slides stay where they were
downloaded), ``expression.tsv`` (raw FPKM-UQ of the paper's genes), ``cohort.json``,
``report.md`` and, with ``--clinical``, ``clinical.csv``.

The modules, lowest first:

* :mod:`isg_core.gdc.barcodes`: TCGA barcodes and the GDC sample sheet;
* :mod:`isg_core.gdc.report`: the inputs of ``from-gdc`` and its report;
* :mod:`isg_core.gdc.download`: the downloaded files, and the rules that pair slides with
  STAR-Counts files;
* :mod:`isg_core.gdc.build`: targets, manifest, clinical table and the ``from-gdc`` command;
* :mod:`isg_core.gdc.query`: the ``gdc-query`` requests and download script;
* :mod:`isg_core.gdc.cli`: the ``isg cohort`` subcommands.

Their public names are re-exported here: ``from isg_core.gdc import X`` works as it did when
this was one module.
"""
from __future__ import annotations

from .barcodes import (
    PRIMARY_TUMOR_CODE,
    PRIMARY_TUMOR_TYPE,
    SAMPLE_RE,
    SHEET_FIELDS,
    SHEET_LABEL,
    SHEET_REQUIRED,
    SLIDE_NAME_RE,
    STAR_SUFFIXES,
    check_slide_name,
    is_star_counts_name,
    project_cancer_type,
    read_gdc_sample_sheet,
    sample_code,
    sample_key,
    slide_id_of,
)
from .barcodes import _pick_columns as _pick_columns  # tests/test_gdc.py
from .build import (
    CLINICAL_COLUMNS,
    CLINICAL_MISSING,
    average_star_counts,
    build_cohort_from_gdc,
    build_manifest,
    check_cohort,
    expression_table,
    read_clinical,
)
from .cli import (
    add_cohort_parser,
)
from .download import (
    GdcMatch,
    find_slides,
    find_star_files,
    match_download,
)
from .query import (
    API_SIZE,
    GDC_FILES_ENDPOINT,
    PROJECT_RE,
    SAMPLE_SHEET_FIELDS,
    download_script,
    gdc_requests,
    readme_text,
    sample_sheet_filter,
    slide_criteria,
    slide_filter,
    star_criteria,
    star_filter,
    write_gdc_query,
)
from .report import (
    FromGdcConfig,
    GdcReport,
)

__all__ = [
    "STAR_SUFFIXES",
    "PRIMARY_TUMOR_CODE",
    "PRIMARY_TUMOR_TYPE",
    "SLIDE_NAME_RE",
    "SAMPLE_RE",
    "SHEET_FIELDS",
    "SHEET_REQUIRED",
    "SHEET_LABEL",
    "is_star_counts_name",
    "slide_id_of",
    "check_slide_name",
    "sample_key",
    "sample_code",
    "project_cancer_type",
    "read_gdc_sample_sheet",
    "FromGdcConfig",
    "GdcReport",
    "find_slides",
    "find_star_files",
    "GdcMatch",
    "match_download",
    "CLINICAL_COLUMNS",
    "CLINICAL_MISSING",
    "average_star_counts",
    "expression_table",
    "build_manifest",
    "read_clinical",
    "build_cohort_from_gdc",
    "check_cohort",
    "GDC_FILES_ENDPOINT",
    "PROJECT_RE",
    "SAMPLE_SHEET_FIELDS",
    "API_SIZE",
    "slide_criteria",
    "star_criteria",
    "slide_filter",
    "star_filter",
    "sample_sheet_filter",
    "gdc_requests",
    "download_script",
    "readme_text",
    "write_gdc_query",
    "add_cohort_parser",
]
