"""``isg cohort gdc-query``: the GDC API requests for projects' slides and STAR-Counts files.

``isg cohort gdc-query --project TCGA-LIHC --out DIR`` writes (and fetches nothing) the GDC API
requests for a project's diagnostic slides and STAR-Counts files, and a script with the exact
``curl`` / ``gdc-client download`` commands, ending with the ``isg cohort from-gdc`` command
that turns the download into a cohort.

:func:`write_gdc_query` writes the requests as JSON bodies for the GDC API's files
endpoint (:data:`GDC_FILES_ENDPOINT`; ``filters`` in the grammar of docs.gdc.cancer.gov, API
Users Guide), ``download.sh`` and a ``README.md``.
"""
from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from pathlib import Path

from ..errors import IsgError, atomic_write_text, writable_dir

GDC_FILES_ENDPOINT = "https://api.gdc.cancer.gov/files"
PROJECT_RE = re.compile(r"^TCGA-[A-Z0-9]+$")

#: Fields of the API's sample-sheet request (a superset of the portal's sample sheet).
SAMPLE_SHEET_FIELDS = ("file_id", "file_name", "data_category", "data_type", "cases.project.project_id",
                       "cases.case_id", "cases.submitter_id", "cases.samples.submitter_id",
                       "cases.samples.sample_type")
#: Enough rows for any TCGA project (the largest, BRCA, has ~1,100 STAR-Counts files and ~1,100 slides).
API_SIZE = 100_000


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
