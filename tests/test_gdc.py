"""`isg cohort from-gdc` and `isg cohort gdc-query` on a small GDC-shaped download built here.

The download mimics `gdc-client download` (`<file uuid>/<file name>`): the 12 ISG-Sim smoke slides
renamed to TCGA diagnostic-slide barcodes (TIFF suffix kept, so OpenSlide reads them), STAR-Counts
files in the GDC's exact layout (comment line, header, four N_* summary rows, versioned ids) and the
portal's sample sheet (or the API's TSV).  It holds on purpose: a normal sample (-11) that must be
dropped, two aliquots of one tumour that must be averaged, a slide without expression, expression
without a slide, a metastasis slide (-06), and a patient with two slides.
"""
from __future__ import annotations

import gzip
import json
import re
import shutil
import time
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from isg_core.cli import main
from isg_core.config import ALL_GENES, GENE_ENSEMBL
from isg_core.paths import cohort_dir

SMOKE = cohort_dir("smoke")
STAR = "rna_seq.augmented_star_gene_counts.tsv"
STAR_HEADER = ("gene_id\tgene_name\tgene_type\tunstranded\tstranded_first\tstranded_second\t"
               "tpm_unstranded\tfpkm_unstranded\tfpkm_uq_unstranded")
VERSION = {g: f"{e}.{7 + i}" for i, (g, e) in enumerate(GENE_ENSEMBL.items())}
_BAR = re.compile(r"\d+%\|")

# smoke slide -> TCGA slide barcode (no uuid yet); patient A1EC has two diagnostic slides
SLIDES = {
    "ISGSIM-LIHC-0001-DX1": ("TCGA-DD-A1EA-01Z-00-DX1", "TCGA-LIHC"),
    "ISGSIM-LIHC-0002-DX1": ("TCGA-DD-A1EB-01Z-00-DX1", "TCGA-LIHC"),
    "ISGSIM-LIHC-0003-DX1": ("TCGA-DD-A1EC-01Z-00-DX1", "TCGA-LIHC"),
    "ISGSIM-LIHC-0003-DX2": ("TCGA-DD-A1EC-01Z-00-DX2", "TCGA-LIHC"),
    "ISGSIM-COAD-0001-DX1": ("TCGA-AA-3A01-01Z-00-DX1", "TCGA-COAD"),
    "ISGSIM-COAD-0002-DX1": ("TCGA-AA-3A02-01Z-00-DX1", "TCGA-COAD"),
    "ISGSIM-COAD-0003-DX1": ("TCGA-AA-3A03-01Z-00-DX1", "TCGA-COAD"),
    "ISGSIM-COAD-0004-DX1": ("TCGA-AA-3A04-01Z-00-DX1", "TCGA-COAD"),  # no expression: dropped
    "ISGSIM-PRAD-0001-DX1": ("TCGA-EJ-5B01-01Z-00-DX1", "TCGA-PRAD"),
    "ISGSIM-PRAD-0002-DX1": ("TCGA-EJ-5B02-01Z-00-DX1", "TCGA-PRAD"),
    "ISGSIM-PRAD-0003-DX1": ("TCGA-EJ-5B03-01Z-00-DX1", "TCGA-PRAD"),
    "ISGSIM-PRAD-0004-DX1": ("TCGA-EJ-5B04-01Z-00-DX1", "TCGA-PRAD"),
}
METASTASIS = ("ISGSIM-PRAD-0001-DX1", "TCGA-EJ-5B01-06Z-00-DX1", "TCGA-PRAD")  # sample code 06: dropped


def gene_values(base: float, step: float) -> dict[str, float]:
    """FPKM-UQ per paper gene: base + step * gene index (binary fractions: exact sums and halves)."""
    return {g: base + step * i for i, g in enumerate(ALL_GENES)}


# one STAR-Counts file each: (aliquot barcode, project, values); aliquot -> sample = first 16 characters
EXPRESSION = [
    ("TCGA-DD-A1EA-01A-11R-A131-07", "TCGA-LIHC", gene_values(10.0, 1.0)),
    ("TCGA-DD-A1EA-11A-11R-A131-07", "TCGA-LIHC", gene_values(1e6, 0.0)),  # normal: must be dropped
    ("TCGA-DD-A1EB-01A-11R-A131-07", "TCGA-LIHC", gene_values(20.0, 2.0)),
    ("TCGA-DD-A1EC-01A-11R-A131-07", "TCGA-LIHC", gene_values(30.0, 0.5)),
    ("TCGA-AA-3A01-01A-01R-0821-07", "TCGA-COAD", gene_values(40.0, 0.25)),
    ("TCGA-AA-3A02-01A-01R-0821-07", "TCGA-COAD", gene_values(3.0, 1.0)),  # two aliquots of 3A02-01A
    ("TCGA-AA-3A02-01A-21R-1736-07", "TCGA-COAD", gene_values(8.0, 0.5)),
    ("TCGA-AA-3A03-01A-01R-0821-07", "TCGA-COAD", gene_values(0.0, 4.0)),
    ("TCGA-EJ-5B01-01A-11R-1789-07", "TCGA-PRAD", gene_values(100.0, 3.0)),
    ("TCGA-EJ-5B02-01A-11R-1789-07", "TCGA-PRAD", gene_values(200.0, 1.5)),
    ("TCGA-EJ-5B03-01A-11R-1789-07", "TCGA-PRAD", gene_values(300.0, 0.75)),
    ("TCGA-EJ-5B04-01A-11R-1789-07", "TCGA-PRAD", gene_values(0.5, 0.5)),
    ("TCGA-EJ-5B99-01A-11R-1789-07", "TCGA-PRAD", gene_values(7.0, 7.0)),  # no slide: not used
]

# what the kept slides' targets must be (raw FPKM-UQ), by patient
EXPECTED = {a[:12]: v for a, _, v in EXPRESSION if a[13:15] == "01"}
EXPECTED["TCGA-AA-3A02"] = {g: (gene_values(3.0, 1.0)[g] + gene_values(8.0, 0.5)[g]) / 2 for g in ALL_GENES}
KEPT_PATIENTS = {"TCGA-DD-A1EA", "TCGA-DD-A1EB", "TCGA-DD-A1EC", "TCGA-AA-3A01", "TCGA-AA-3A02", "TCGA-AA-3A03",
                 "TCGA-EJ-5B01", "TCGA-EJ-5B02", "TCGA-EJ-5B03", "TCGA-EJ-5B04"}


def _uuid(*parts: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "/".join(parts)))


def star_text(values: dict[str, float]) -> str:
    """A GDC STAR-Counts file: comment, header, the four N_* rows, the paper's genes (versioned ids)
    among others, and a _PAR_Y copy."""
    rows = ["# gene-model: GENCODE v36", STAR_HEADER,
            "N_unmapped\t\t\t2961242\t2961242\t2961242\t\t\t",
            "N_multimapping\t\t\t5253473\t5253473\t5253473\t\t\t",
            "N_noFeature\t\t\t2319468\t29874328\t29738651\t\t\t",
            "N_ambiguous\t\t\t4563745\t1565829\t1573208\t\t\t",
            "ENSG00000000003.15\tTSPAN6\tprotein_coding\t3426\t1710\t1716\t36.1557\t11.6234\t12.4503",
            "ENSG00000002586.20_PAR_Y\tCD99\tprotein_coding\t0\t0\t0\t0.0\t0.0\t0.0"]
    for g in ALL_GENES:
        v = values[g]
        rows.append(f"{VERSION[g]}\t{g}\tprotein_coding\t{int(v * 10)}\t{int(v * 5)}\t{int(v * 5)}"
                    f"\t{v / 3:.4f}\t{v / 2:.4f}\t{v!r}")
    return "\n".join(rows) + "\n"


def make_download(tmp_path: Path, layout: str = "one tree", sheet: str = "portal", gz: bool = False,
                  clinical: bool = False) -> dict[str, Path]:
    """Build the download and the sample sheet; return the paths for `isg cohort from-gdc`.

    layout: "one tree" (slides and STAR-Counts side by side in <uuid>/ folders), "two trees"
    (--slides and --expression differ) or "flat" (files directly in the folder).
    sheet: "portal" (the portal's sample sheet) or "api" (the API's TSV, dotted names)."""
    slides_root = tmp_path / ("download" if layout != "two trees" else "slides")
    star_root = tmp_path / ("download" if layout != "two trees" else "star_counts")
    rows = []  # (file id, file name, category, type, project, case, sample id, sample type)

    def place(root: Path, fid: str, name: str) -> Path:
        d = root if layout == "flat" else root / fid
        d.mkdir(parents=True, exist_ok=True)
        return d / name

    for src, (barcode, project) in list(SLIDES.items()) + [(METASTASIS[0], METASTASIS[1:])]:
        fid = _uuid("slide", barcode)
        name = f"{barcode}.{_uuid('slide-name', barcode)}.tiff"
        shutil.copyfile(SMOKE / "slides" / f"{src}.tiff", place(slides_root, fid, name))
        stype = "Primary Tumor" if barcode[13:15] == "01" else "Metastatic"
        rows.append((fid, name, "Biospecimen", "Slide Image", project, barcode[:12], barcode[:16], stype))
    for i, (aliquot, project, values) in enumerate(EXPRESSION):
        fid = _uuid("star", aliquot)
        name = f"{_uuid('star-name', aliquot)}.{STAR}" + (".gz" if gz and i % 2 else "")
        path = place(star_root, fid, name)
        text = star_text(values)
        path.write_bytes(gzip.compress(text.encode())) if name.endswith(".gz") else path.write_text(text)
        stype = "Primary Tumor" if aliquot[13:15] == "01" else "Solid Tissue Normal"
        rows.append((fid, name, "Transcriptome Profiling", "Gene Expression Quantification", project, aliquot[:12],
                     aliquot[:16], stype))
    if sheet == "portal":
        cols = ["File ID", "File Name", "Data Category", "Data Type", "Project ID", "Case ID", "Sample ID",
                "Sample Type"]
        df = pd.DataFrame(rows, columns=cols)
    else:  # the API's TSV: dotted names, alphabetical, the file id twice (file_id and id)
        df = pd.DataFrame({
            "cases.0.case_id": [_uuid("case", r[5]) for r in rows], "cases.0.project.project_id": [r[4] for r in rows],
            "cases.0.samples.0.sample_type": [r[7] for r in rows],
            "cases.0.samples.0.submitter_id": [r[6] for r in rows],
            "cases.0.submitter_id": [r[5] for r in rows], "data_category": [r[2] for r in rows],
            "data_type": [r[3] for r in rows], "file_id": [r[0] for r in rows], "file_name": [r[1] for r in rows],
            "id": [r[0] for r in rows]})
    sheet_path = tmp_path / ("gdc_sample_sheet.2024-05-01.tsv" if sheet == "portal" else "sample_sheet.tsv")
    df.to_csv(sheet_path, sep="\t", index=False)
    out = {"slides": slides_root, "expression": star_root, "sheet": sheet_path}
    if clinical:
        out["clinical"] = write_clinical(tmp_path / "clinical.tsv")
    return out


def write_clinical(path: Path) -> Path:
    """The portal's clinical.tsv (before 2024): a row per treatment, '--' for no value; patient
    TCGA-EJ-5B04 has no row, TCGA-DD-A1EA two (the second fills no gap)."""
    cols = ["case_id", "case_submitter_id", "project_id", "age_at_index", "gender", "vital_status",
            "ajcc_pathologic_stage", "treatment_type"]
    rows = []
    for p in sorted(KEPT_PATIENTS - {"TCGA-EJ-5B04"}):
        proj = {"DD": "TCGA-LIHC", "AA": "TCGA-COAD", "EJ": "TCGA-PRAD"}[p[5:7]]
        stage = "'--" if proj == "TCGA-PRAD" else "Stage II"
        rows.append([_uuid("case", p), p, proj, "61", "male", "Alive", stage, "Radiation Therapy, NOS"])
    rows.append([_uuid("case", "TCGA-DD-A1EA"), "TCGA-DD-A1EA", "TCGA-LIHC", "61", "male", "Dead", "Stage III",
                 "Pharmaceutical Therapy, NOS"])
    rows.append([_uuid("case", "TCGA-ZZ-0000"), "TCGA-ZZ-0000", "TCGA-LIHC", "50", "female", "Alive", "Stage I", "--"])
    pd.DataFrame(rows, columns=cols).to_csv(path, sep="\t", index=False)
    return path


def from_gdc_argv(paths: dict[str, Path], out: Path, *extra: str) -> list[str]:
    return ["cohort", "from-gdc", "--slides", str(paths["slides"]), "--expression", str(paths["expression"]),
            "--sample-sheet", str(paths["sheet"]), "--out", str(out), "--folds", "3", *extra]


def error_line(capsys, argv: list[str], *names: str) -> str:
    """`isg argv` must fail with status 2 and one stderr line `isg: error: ...` naming ``names``."""
    rc = main([str(a) for a in argv])
    err = capsys.readouterr().err
    lines = [ln for ln in (s.split("\r")[-1] for s in err.split("\n")) if ln.strip() and not _BAR.search(ln)]
    assert "Traceback" not in err and "internal error" not in err, err
    assert rc == 2, (rc, err)
    assert len(lines) == 1, err
    assert lines[0].startswith("isg: error: "), lines[0]
    for n in names:
        assert str(n) in lines[0], (n, lines[0])
    return lines[0]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The download (one tree, portal sheet, clinical) and the cohort from-gdc made of it."""
    if not (SMOKE / "manifest.csv").exists():
        pytest.skip("smoke cohort missing: run `isg simulate --profile smoke` (make test does)")
    tmp = tmp_path_factory.mktemp("gdc")
    paths = make_download(tmp, clinical=True)
    out = tmp / "cohort"
    t0 = time.perf_counter()
    rc = main(from_gdc_argv(paths, out, "--clinical", str(paths["clinical"])))
    assert rc == 0
    return paths, out, time.perf_counter() - t0


# --- from-gdc: the cohort -----------------------------------------------------------------------------
def test_manifest_paths_types_patients(built):
    paths, out, _ = built
    from isg_core.data.manifest import read_manifest

    m = read_manifest(out / "manifest.csv")
    expected = {b for b, _ in SLIDES.values()} - {"TCGA-AA-3A04-01Z-00-DX1"}
    assert {s.split(".")[0] for s in m.slide_id} == expected and len(m) == 11
    for row in m.itertuples():
        # slide_id is the file name without its suffix, and the path is the downloaded file itself
        assert Path(row.path).name == row.slide_id + ".tiff"
        assert Path(row.path).parent.parent == paths["slides"]
        assert not Path(row.path).is_symlink()
        assert row.patient_id == row.slide_id[:12]
        assert row.cancer_type == {"DD": "LIHC", "AA": "COAD", "EJ": "PRAD"}[row.slide_id[5:7]]
    assert list(m.cancer_type) == sorted(m.cancer_type)  # ordered by project, then slide id
    raw = pd.read_csv(out / "manifest.csv")
    assert not raw.path.map(lambda p: Path(p).is_absolute()).any()  # relative to the manifest: the pair moves together
    meta = json.loads((out / "cohort.json").read_text())
    assert meta["simulated"] is False and set(meta["projects"]) == {"TCGA-LIHC", "TCGA-COAD", "TCGA-PRAD"}


def test_folds_by_patient_stratified(built):
    _, out, _ = built
    from isg_core.data.manifest import assign_folds, read_manifest

    m = read_manifest(out / "manifest.csv")
    assert set(m.fold) == {0, 1, 2}
    two = m[m.patient_id == "TCGA-DD-A1EC"]
    assert len(two) == 2 and two.fold.nunique() == 1  # the patient's two slides share a fold
    assert (m.groupby("patient_id").fold.nunique() == 1).all()
    for t, g in m.drop_duplicates("patient_id").groupby("cancer_type"):
        counts = g.fold.value_counts().reindex(range(3), fill_value=0)
        assert counts.max() - counts.min() <= 1, (t, counts.to_dict())  # 3-4 patients per project over 3 folds
    np.testing.assert_array_equal(m.fold, assign_folds(m.patient_id.tolist(), m.cancer_type.tolist(), k=3, seed=0))


def test_expression_values_known_answers(built):
    _, out, _ = built
    from isg_core.cohorts.folder import load_cohort
    from isg_core.data.expression import read_expression_matrix

    raw = read_expression_matrix(out / "expression.tsv")  # Ensembl columns -> symbols
    header = (out / "expression.tsv").read_text().splitlines()[0].split("\t")
    assert header == ["slide_id"] + [GENE_ENSEMBL[g] for g in ALL_GENES]  # ISG-Sim's layout
    cohort = load_cohort(out)
    assert list(cohort.targets.index) == list(cohort.manifest.slide_id)
    for sid in cohort.manifest.slide_id:
        want = np.array([EXPECTED[sid[:12]][g] for g in ALL_GENES])
        np.testing.assert_array_equal(raw.loc[sid, list(ALL_GENES)].to_numpy(float), want)
        # the loader logs once: log10(1 + FPKM-UQ) of the raw value, not of a logged one
        np.testing.assert_array_equal(cohort.targets.loc[sid].to_numpy(), np.log10(1.0 + want))
    avg = raw[raw.index.str.startswith("TCGA-AA-3A02")].iloc[0]
    assert avg["CD3D"] == (3.0 + 8.0) / 2 and avg["KRT18"] == (3.0 + 9 * 1.0 + 8.0 + 9 * 0.5) / 2
    assert raw.max().max() < 1e6  # the -11 normal sample (1e6 everywhere) is not in
    assert not cohort.simulated and cohort.truth is None


def test_report_counts_and_text(built, capsys):
    paths, out, _ = built
    from isg_core.gdc import FromGdcConfig, build_cohort_from_gdc

    cfg = FromGdcConfig(paths["slides"], paths["expression"], paths["sheet"], out, paths["clinical"], folds=3)
    rep = build_cohort_from_gdc(cfg, progress=False)  # a rerun on the same cohort folder
    assert rep.counts() == {
        "slides found": 13, "slides kept": 11, "patients": 10, "slides without expression": 1,
        "expression without slides": 1, "non-primary slides dropped": 1, "non-primary expression files dropped": 1,
        "samples with aliquots averaged": 1, "patients with several slides": 1,
        "projects without the paper's genes": 0, "sample-sheet files not downloaded": 0,
        "downloaded files not in the sample sheet": 0}
    assert [s.split(".")[0] for s in rep.slides_without_expression] == ["TCGA-AA-3A04-01Z-00-DX1"]
    assert rep.expression_without_slides == ["TCGA-EJ-5B99-01"]
    assert [s.split(".")[0] for s in rep.non_primary_slides] == ["TCGA-EJ-5B01-06Z-00-DX1"]
    assert len(rep.non_primary_expression) == 1 and "TCGA-DD-A1EA-11A" in rep.non_primary_expression[0]
    assert list(rep.averaged) == ["TCGA-AA-3A02-01"] and len(rep.averaged["TCGA-AA-3A02-01"]) == 2
    assert list(rep.multi_slide_patients) == ["TCGA-DD-A1EC"]
    assert rep.clinical_missing == ["TCGA-EJ-5B04"]
    text = (out / "report.md").read_text()
    assert "| slides without expression | 1 |" in text and "| samples with aliquots averaged | 1 |" in text
    assert "FPKM-UQ averaged" in text and "TCGA-EJ-5B99-01" in text and "TCGA-DD-A1EA-11A" in text


def test_printed_report_and_check_line(tmp_path, capsys):
    paths = make_download(tmp_path, layout="flat")
    assert main(from_gdc_argv(paths, tmp_path / "c")) == 0
    printed = capsys.readouterr().out
    assert "# Cohort from a GDC download" in printed
    assert "11 of 13 slides kept (10 patients; COAD 3, LIHC 4, PRAD 4)" in printed
    # the last line is `isg check`'s own summary
    last = printed.strip().splitlines()[-1]
    assert last == f"{tmp_path / 'c' / 'manifest.csv'}: 11 slides, 10 patients, 3 folds, all slides open; " \
                   "expression for 10 genes, no missing values"
    assert not (tmp_path / "c" / "clinical.csv").exists()


def test_clinical_join(built):
    _, out, _ = built
    clin = pd.read_csv(out / "clinical.csv")
    assert list(clin.columns) == ["patient_id", "project_id", "gender", "age_at_index", "vital_status",
                                  "ajcc_pathologic_stage"]
    assert set(clin.patient_id) == KEPT_PATIENTS - {"TCGA-EJ-5B04"}  # TCGA-ZZ-0000 has no slide: not joined
    a1ea = clin.set_index("patient_id").loc["TCGA-DD-A1EA"]
    assert a1ea.vital_status == "Alive" and a1ea.ajcc_pathologic_stage == "Stage II"  # the first row's values
    assert clin.set_index("patient_id").loc["TCGA-EJ-5B01"].isna().ajcc_pathologic_stage  # '-- is no value
    assert "## Patients without clinical rows (1)" in (out / "report.md").read_text()


def test_clinical_new_portal_names(tmp_path):
    from isg_core.gdc import read_clinical

    p = tmp_path / "clinical.tsv"
    p.write_text("cases.case_id\tcases.submitter_id\tproject.project_id\tdemographic.vital_status\t"
                 "diagnoses.ajcc_pathologic_stage\tdiagnoses.submitter_id\n"
                 "u1\tTCGA-DD-A1EA\tTCGA-LIHC\tDead\t'--\tTCGA-DD-A1EA_diagnosis\n"
                 "u1\tTCGA-DD-A1EA\tTCGA-LIHC\tDead\tStage IIIA\tTCGA-DD-A1EA_diagnosis2\n")
    table, missing = read_clinical(p, ["TCGA-DD-A1EA", "TCGA-DD-A1EB"])
    assert table.to_dict("records") == [{"patient_id": "TCGA-DD-A1EA", "project_id": "TCGA-LIHC",
                                         "vital_status": "Dead", "ajcc_pathologic_stage": "Stage IIIA"}]
    assert missing == ["TCGA-DD-A1EB"]


def test_two_trees_api_sheet_gzip_same_cohort(built, tmp_path):
    """--slides and --expression apart, the API's TSV sheet, some STAR files gzipped: the same cohort."""
    _, ref, _ = built
    paths = make_download(tmp_path, layout="two trees", sheet="api", gz=True)
    out = tmp_path / "cohort"
    assert main(from_gdc_argv(paths, out)) == 0
    a, b = pd.read_csv(ref / "manifest.csv"), pd.read_csv(out / "manifest.csv")
    pd.testing.assert_frame_equal(a.drop(columns="path"), b.drop(columns="path"))
    assert (out / "expression.tsv").read_text() == (ref / "expression.tsv").read_text()
    # rerunnable: the same files again, nothing temporary left behind
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert main(from_gdc_argv(paths, out)) == 0
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert not [p for p in out.rglob(".*") if ".tmp" in p.name]


def test_partial_download_is_reported(tmp_path):
    """A slide and a STAR-Counts file the sheet lists but the download lacks (an interrupted
    gdc-client run), and a STAR-Counts file the sheet does not list: reported, the rest kept."""
    from isg_core.gdc import FromGdcConfig, build_cohort_from_gdc

    paths = make_download(tmp_path, layout="two trees")
    slide = next(paths["slides"].rglob("TCGA-EJ-5B03-01Z-00-DX1.*.tiff"))
    shutil.rmtree(slide.parent)
    sheet = pd.read_csv(paths["sheet"], sep="\t")
    star_5b02 = sheet.loc[sheet["Sample ID"] == "TCGA-EJ-5B02-01A", "File Name"].item()
    next(paths["expression"].rglob(star_5b02)).unlink()
    extra = paths["expression"] / "0000" / f"extra.{STAR}"
    extra.parent.mkdir()
    extra.write_text(star_text(gene_values(1.0, 1.0)))
    rep = build_cohort_from_gdc(FromGdcConfig(paths["slides"], paths["expression"], paths["sheet"], tmp_path / "c",
                                              folds=3), progress=False)
    assert sorted(rep.not_downloaded) == sorted([star_5b02, slide.name[:-len(".tiff")] + " (slide)"])
    assert rep.not_in_sheet == [extra.name]
    assert [s.split(".")[0] for s in rep.slides_without_expression] == ["TCGA-AA-3A04-01Z-00-DX1",
                                                                        "TCGA-EJ-5B02-01Z-00-DX1"]
    assert len(rep.slides_kept) == 9
    assert "| sample-sheet files not downloaded | 2 |" in (tmp_path / "c" / "report.md").read_text()


def test_project_without_task_genes_is_kept_and_reported(tmp_path, capsys):
    """A BRCA slide (no task of the paper): kept, its own fold stratum, named in the report."""
    paths = make_download(tmp_path, layout="flat")
    slide = f"TCGA-A2-A0CM-01Z-00-DX1.{_uuid('brca')}.tiff"
    shutil.copyfile(SMOKE / "slides" / "ISGSIM-PRAD-0002-DX1.tiff", paths["slides"] / slide)
    star = f"{_uuid('brca-star')}.{STAR}"
    (paths["expression"] / star).write_text(star_text(gene_values(5.0, 5.0)))
    with open(paths["sheet"], "a") as fh:
        fh.write(f"b1\t{slide}\tBiospecimen\tSlide Image\tTCGA-BRCA\tTCGA-A2-A0CM\tTCGA-A2-A0CM-01Z\tPrimary Tumor\n"
                 f"b2\t{star}\tTranscriptome Profiling\tGene Expression Quantification\tTCGA-BRCA\tTCGA-A2-A0CM\t"
                 "TCGA-A2-A0CM-01A\tPrimary Tumor\n")
    out = tmp_path / "c"
    assert main(from_gdc_argv(paths, out)) == 0
    printed = capsys.readouterr().out
    assert "| projects without the paper's genes | 1 |" in printed and "- BRCA: 1 slides" in printed
    m = pd.read_csv(out / "manifest.csv")
    assert m.loc[m.slide_id.str.startswith("TCGA-A2-A0CM"), "cancer_type"].item() == "BRCA"
    assert "all slides open; expression for 10 genes" in printed  # `isg check`: every gene for a type without a task


def test_sheet_reader_spellings(tmp_path):
    """Portal names, the API's dotted names and its pre-2019 underscored names read the same;
    multi-sample cells give their first sample; a Sample Type that contradicts the code is an error."""
    from isg_core.errors import IsgError
    from isg_core.gdc import read_gdc_sample_sheet

    rows = [("f1", "a.tsv", "TCGA-LIHC", "TCGA-DD-A1EA-01A, TCGA-DD-A1EA-10A", "Primary Tumor, Blood Derived Normal"),
            ("f2", "b.tsv", "TCGA-LIHC", "TCGA-DD-A1EA-11A", "Solid Tissue Normal")]
    spellings = {"portal": ["File ID", "File Name", "Project ID", "Sample ID", "Sample Type"],
                 "api": ["file_id", "file_name", "cases.0.project.project_id", "cases.0.samples.0.submitter_id",
                         "cases.0.samples.0.sample_type"],
                 "api-2018": ["file_id", "file_name", "cases_0_project_project_id", "cases_0_samples_0_submitter_id",
                              "cases_0_samples_0_sample_type"]}
    for name, cols in spellings.items():
        p = tmp_path / f"{name}.tsv"
        pd.DataFrame(rows, columns=cols).to_csv(p, sep="\t", index=False)
        s = read_gdc_sample_sheet(p)
        assert list(s.sample_id) == ["TCGA-DD-A1EA-01A", "TCGA-DD-A1EA-11A"], name
        assert list(s["primary"]) == [True, False] and list(s.project_id) == ["TCGA-LIHC"] * 2
    bad = tmp_path / "clash.tsv"
    pd.DataFrame([("f1", "a.tsv", "TCGA-LIHC", "TCGA-DD-A1EA-11A", "Primary Tumor")],
                 columns=spellings["portal"]).to_csv(bad, sep="\t", index=False)
    with pytest.raises(IsgError, match="sample code '11' but Sample Type 'Primary Tumor'"):
        read_gdc_sample_sheet(bad)


# --- from-gdc: bad input ----------------------------------------------------------------------------
def _drop_column(sheet: Path, col: str) -> Path:
    df = pd.read_csv(sheet, sep="\t", dtype=str)
    df.drop(columns=col).to_csv(sheet, sep="\t", index=False)
    return sheet


def _first_star(paths) -> Path:
    return min(paths["expression"].rglob(f"*.{STAR}"))


BAD = {
    # case: (break the download -> the file the error must name, words in the message)
    "missing slides folder": (lambda p: p["slides"] / "nowhere", "slides folder not found"),
    "sheet without Sample ID": (lambda p: _drop_column(p["sheet"], "Sample ID"), "lacks column(s) Sample ID"),
    "sheet without Project ID": (lambda p: _drop_column(p["sheet"], "Project ID"), "lacks column(s) Project ID"),
    "sheet empty": (lambda p: (p["sheet"].write_text(""), p["sheet"])[1], "sample sheet is empty"),
    "not a STAR file": (lambda p: (_first_star(p).write_text("a,b,c\n1,2,3\n"), _first_star(p))[1],
                        "lacks column gene_id"),
    "STAR file without a gene": (
        lambda p: (_first_star(p).write_text(
                       star_text(gene_values(1.0, 1.0)).replace(VERSION["CD19"], "ENSG00000000005.6")),
                   _first_star(p))[1], "lacks gene CD19"),
    "slide not a TCGA barcode": (
        lambda p: (shutil.copyfile(SMOKE / "slides" / "ISGSIM-COAD-0001-DX1.tiff", p["slides"] / "my_slide.tiff"),
                   p["slides"] / "my_slide.tiff")[1],
        "not a TCGA slide barcode"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_one_line(case, tmp_path, capsys):
    paths = make_download(tmp_path)
    break_it, words = BAD[case]
    named = break_it(paths)
    if case == "missing slides folder":
        paths["slides"] = named
    error_line(capsys, from_gdc_argv(paths, tmp_path / "cohort"), f"isg: error: {named}:", words)
    assert not (tmp_path / "cohort").exists()  # nothing written


def test_bad_expression_folder_and_clinical(tmp_path, capsys):
    paths = make_download(tmp_path, layout="two trees")
    empty = tmp_path / "empty"
    empty.mkdir()
    error_line(capsys, from_gdc_argv({**paths, "expression": empty}, tmp_path / "c"), f"isg: error: {empty}:",
               "no STAR-Counts files")
    clinical = tmp_path / "clinical.tsv"
    clinical.write_text("case_id\tproject_id\nu1\tTCGA-LIHC\n")
    error_line(capsys, from_gdc_argv(paths, tmp_path / "c", "--clinical", str(clinical)), f"isg: error: {clinical}:",
               "lacks column case_submitter_id")
    error_line(capsys, from_gdc_argv(paths, tmp_path / "c", "--clinical", str(tmp_path / "none.tsv")),
               f"isg: error: {tmp_path / 'none.tsv'}:", "not found")
    assert not (tmp_path / "c").exists()  # inputs are all read and checked before anything is written


def test_no_slide_matches_is_an_error(tmp_path, capsys):
    """Slides of other patients than the expression files: an error, not an empty cohort."""
    paths = make_download(tmp_path, layout="two trees")
    for p in paths["slides"].rglob("*.tiff"):
        p.rename(p.with_name("TCGA-ZZ-" + p.name[len("TCGA-DD-"):]))  # patients no expression file has
    error_line(capsys, from_gdc_argv(paths, tmp_path / "cohort"), paths["sheet"], "no slide matches")
    assert not (tmp_path / "cohort").exists()


def test_too_many_folds(tmp_path, capsys):
    paths = make_download(tmp_path)
    argv = from_gdc_argv(paths, tmp_path / "cohort")
    argv[argv.index("--folds") + 1] = "11"
    error_line(capsys, argv, "--folds 11 needs at least 11 patients; the download has 10")


# --- gdc-query --------------------------------------------------------------------------------------
OPS_LEAF_ONE = {"=", "!=", "<", "<=", ">", ">="}
OPS_LEAF_LIST = {"in", "exclude"}
OPS_MISSING = {"is", "not"}
OPS_GROUP = {"and", "or"}


def validate_filter(f) -> list[tuple[str, str, tuple]]:
    """Check a GDC `filters` object against the documented grammar (docs.gdc.cancer.gov, API Users
    Guide, Search and Retrieval: Filters) and return its leaves (op, field, values).  Raises
    AssertionError where it breaks the grammar."""
    assert isinstance(f, dict) and set(f) == {"op", "content"}, f
    op, content = f["op"], f["content"]
    if op in OPS_GROUP:
        assert isinstance(content, list) and content, f
        return [leaf for c in content for leaf in validate_filter(c)]
    assert op in OPS_LEAF_ONE | OPS_LEAF_LIST | OPS_MISSING, op
    assert isinstance(content, dict) and isinstance(content.get("field"), str) and content["field"], f
    if op in OPS_MISSING:
        assert set(content) <= {"field", "value"}, f
        return [(op, content["field"], ())]
    assert set(content) == {"field", "value"}, f
    value = content["value"]
    if op in OPS_LEAF_LIST:
        assert isinstance(value, list) and value and all(isinstance(v, (str, int, float)) for v in value), f
    else:
        assert isinstance(value, (str, int, float)) or (isinstance(value, list) and len(value) == 1), f
    return [(op, content["field"], tuple(value) if isinstance(value, list) else (value,))]


def test_validator_rejects_bad_grammar():
    for bad in ({"op": "in", "content": {"field": "x", "value": "a"}}, {"op": "and", "content": []},
                {"op": "like", "content": {"field": "x", "value": ["a"]}}, {"op": "in", "content": {"value": ["a"]}},
                {"op": "and", "content": [{"op": "in", "content": {"field": "x", "value": []}}]}):
        with pytest.raises(AssertionError):
            validate_filter(bad)


def test_gdc_query_files(tmp_path, capsys):
    out = tmp_path / "q"
    assert main(["cohort", "gdc-query", "--project", "TCGA-LIHC", "TCGA-COAD", "--project", "TCGA-PRAD",
                 "--out", str(out)]) == 0
    projects = ("TCGA-LIHC", "TCGA-COAD", "TCGA-PRAD")
    proj = ("in", "cases.project.project_id", projects)
    slides = {proj, ("in", "files.data_type", ("Slide Image",)),
              ("in", "files.experimental_strategy", ("Diagnostic Slide",)),
              ("in", "files.data_format", ("SVS",))}
    star = {proj, ("in", "files.data_category", ("Transcriptome Profiling",)),
            ("in", "files.data_type", ("Gene Expression Quantification",)),
            ("in", "files.analysis.workflow_type", ("STAR - Counts",))}

    def load(name: str) -> dict:
        return json.loads((out / name).read_text())

    for name, want in (("slides.filters.json", slides), ("star_counts.filters.json", star)):
        f = load(name)
        assert f["op"] == "and" and set(validate_filter(f)) == want and len(f["content"]) == len(want)
    for kind, want in (("slides", slides), ("star_counts", star)):
        body = load(f"{kind}.manifest_request.json")
        assert body["return_type"] == "manifest" and int(body["size"]) >= 10_000
        assert set(validate_filter(body["filters"])) == want
    sheet = load("sample_sheet_request.json")
    assert sheet["format"] == "TSV" and int(sheet["size"]) >= 10_000
    assert set(validate_filter(sheet["filters"])) == slides | star
    assert set(sheet["fields"].split(",")) >= {"file_id", "file_name", "data_category", "data_type",
                                               "cases.project.project_id", "cases.case_id",
                                               "cases.samples.submitter_id", "cases.samples.sample_type"}
    script = (out / "download.sh").read_text()
    for line in (("curl --fail --silent --show-error --request POST --header 'Content-Type: application/json' "
                  "--data @slides.manifest_request.json 'https://api.gdc.cancer.gov/files' > slides.manifest.txt"),
                 "--data @sample_sheet_request.json 'https://api.gdc.cancer.gov/files' > sample_sheet.tsv",
                 "gdc-client download -m slides.manifest.txt -d slides",
                 "gdc-client download -m star_counts.manifest.txt -d star_counts",
                 ("isg cohort from-gdc --slides slides --expression star_counts --sample-sheet sample_sheet.tsv "
                  "--out cohort")):
        assert line in script, line
    assert (out / "download.sh").stat().st_mode & 0o100
    assert "gdc-client download" in (out / "README.md").read_text()
    assert "download.sh" in capsys.readouterr().out


def test_gdc_query_bad_project(tmp_path, capsys):
    error_line(capsys, ["cohort", "gdc-query", "--project", "LIHC", "--out", tmp_path / "q"], "not a TCGA project id")


def test_api_sheet_from_the_query_is_read(tmp_path):
    """The columns the sample-sheet request asks for, as the API names them in TSV, are what the
    reader needs: a sheet with exactly those columns builds the cohort."""
    from isg_core.gdc import SAMPLE_SHEET_FIELDS, _pick_columns

    api_names = [re.sub(r"^cases\.", "cases.0.", f).replace("samples.", "samples.0.") for f in SAMPLE_SHEET_FIELDS]
    picked = _pick_columns(api_names)
    assert {"file_name", "sample_id", "project_id", "sample_type", "file_id", "data_type"} <= set(picked)
    assert picked["sample_id"] == "cases.0.samples.0.submitter_id"


# --- end to end -------------------------------------------------------------------------------------
@pytest.mark.slow
def test_end_to_end_on_a_gdc_cohort(built, tmp_path, capsys):
    """Every stage of the pipeline runs on the cohort from-gdc built, exactly as on ISG-Sim.
    (`--patches all`, as the README advises before comparing selectors: `isg table` extracts every
    patch, and features of the kept patches only would be redone, and `cv all` with them.)"""
    _, built_out, build_s = built
    cohort = tmp_path / "cohort"
    shutil.copytree(built_out, cohort)  # its own tiles/, extractors/, runs/ (the module's cohort stays clean)
    m = pd.read_csv(cohort / "manifest.csv")
    m["path"] = [str((built_out / p).resolve()) for p in m.path]  # the copy points at the same download
    m.to_csv(cohort / "manifest.csv", index=False)
    c = ["--cohort", str(cohort), "--profile", "smoke"]
    dev = ["--device", "cpu"]
    timings = {"from-gdc": build_s}
    steps = [("prepare", ["prepare", *c, "--workers", "1"]),
             ("train global", ["train-extractor", "--scale", "global", *c, *dev]),
             ("train local", ["train-extractor", "--scale", "local", *c, *dev]),
             ("extract", ["extract", *c, "--global", str(cohort / "extractors/global/checkpoint.pt"),
                          "--local", str(cohort / "extractors/local/checkpoint.pt"), "--patches", "all", *dev]),
             ("cv all", ["cv", *c, "--task", "all", *dev]),
             ("table 1", ["table", "1", *c, *dev]),
             ("export-model", ["export-model", *c, "--out", str(tmp_path / "model.pt"), *dev])]
    for name, argv in steps:
        t0 = time.perf_counter()
        rc = main(argv)
        captured = capsys.readouterr()
        assert rc == 0, (name, captured.err[-2000:])
        timings[name] = time.perf_counter() - t0
    assert len(list((cohort / "tiles").glob("TCGA-*.h5"))) == 11
    assert (tmp_path / "model.pt").stat().st_size > 0
    print("timings (s): " + ", ".join(f"{k} {v:.1f}" for k, v in timings.items()))
