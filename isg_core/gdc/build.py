"""``isg cohort from-gdc``: a cohort folder from a GDC download (:func:`build_cohort_from_gdc`).

Slides are paired with STAR-Counts files as :mod:`isg_core.gdc.download` says; the cohort holds
what every other command reads (:func:`isg_core.cohorts.folder.load_cohort`):

* ``manifest.csv`` (:func:`isg_core.data.manifest.write_manifest`).  ``slide_id`` is the slide's
  file name without its suffix (``TCGA-XX-XXXX-01Z-00-DX1.<uuid>``), the id ``isg prepare``
  names ``tiles/<slide_id>.h5`` by; ``patient_id`` its first 12 characters; ``cancer_type``
  the project without ``TCGA-``; folds by patient, stratified by project
  (:func:`isg_core.data.manifest.assign_folds`).  **Slides are not copied and not linked: ``path``
  points at the downloaded file** (stored relative to the manifest, as ``write_manifest``
  does).  Why not symlinks under ``COHORT/slides/``: a symlink adds nothing a path does not
  say, breaks exactly when a path would (the download moves), needs a filesystem that has them
  (not every cluster or Windows share does), and a rerun would have to find and remove stale
  links; a path is one field that ``isg check`` verifies.
* ``expression.tsv``: one row per slide (keyed by ``slide_id``, the same row for slides of one
  patient's sample), one column per gene of :data:`isg_core.config.ALL_GENES` named by its
  Ensembl id, raw FPKM-UQ (``fpkm_uq_unstranded``), the layout of ISG-Sim's ``expression.tsv``.
  The ``log10(1 + x)`` transform is left to the loader (:func:`isg_core.data.expression.load_targets`),
  which applies it to every table it reads, so it is applied once.
* ``cohort.json`` (name, "simulated": false, projects), ``report.md`` (also printed), and with
  ``--clinical`` a ``clinical.csv`` (one row per patient).

Everything is written atomically (a temporary name, then a rename) and the command can be rerun:
each run rewrites the cohort's files from the download; ``manifest.csv`` is written last, so a
folder with a manifest is a complete cohort.  Then the cohort is checked exactly as
``isg check COHORT/manifest.csv`` does.  Bad input is a one-line :class:`IsgError` naming the
file; an empty result is an error, not an empty cohort.
"""
from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from ..cohorts.folder import validate_cohort
from ..config import ALL_GENES, GENE_ENSEMBL, TASK_GENES
from ..data.expression_matrix import _check_file
from ..data.manifest import assign_folds, patient_id_from_slide, write_manifest
from ..data.star_counts import read_star_counts
from ..errors import IsgError, atomic_path, atomic_write_text, first_line, writable_dir
from .barcodes import project_cancer_type, read_gdc_sample_sheet
from .download import GdcMatch, find_slides, find_star_files, match_download
from .report import FromGdcConfig, GdcReport

#: Clinical columns joined into clinical.csv when the clinical table has them.
CLINICAL_COLUMNS = ("project_id", "gender", "sex_at_birth", "age_at_index", "vital_status", "days_to_death",
                    "days_to_last_follow_up", "ajcc_pathologic_stage", "tumor_grade", "primary_diagnosis")
#: How the GDC writes "no value" in clinical.tsv (newer exports quote it for spreadsheets).
CLINICAL_MISSING = {"", "--", "'--", "NA", "nan"}


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
