"""Tests for isg_core.data.expression on small, realistic GDC-format files written in tmp_path."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from isg_core.config import ALL_GENES, GENE_ENSEMBL
from isg_core.data.expression import (
    load_star_directory,
    load_targets,
    log_transform,
    match_rows,
    read_expression_matrix,
    read_sample_sheet,
    read_star_counts,
    strip_version,
)
from isg_core.errors import IsgError

STAR_HEADER = (
    "gene_id\tgene_name\tgene_type\tunstranded\tstranded_first\tstranded_second\t"
    "tpm_unstranded\tfpkm_unstranded\tfpkm_uq_unstranded"
)
# Versions as in GENCODE v36 (the values of the version suffix do not matter to the loader).
VERSION = {
    "CD3D": "10", "CD247": "11", "CD3E": "9", "CD3G": "12", "MS4A1": "14",
    "CD19": "11", "MKI67": "13", "TP63": "18", "KRT8": "12", "KRT18": "9",
}


def star_text(fpkm_uq: dict[str, float], extra_rows: list[str] | None = None, header: str = STAR_HEADER) -> str:
    """A STAR-Counts file: comment, header, the four N_ rows, a non-paper gene, the paper's
    genes with ``fpkm_uq`` values (tpm/fpkm columns are different numbers on purpose), and a
    PAR_Y row."""
    lines = [
        "# gene-model: GENCODE v36",
        header,
        "N_unmapped\t\t\t2406338\t2406338\t2406338\t\t\t",
        "N_multimapping\t\t\t5032102\t5032102\t5032102\t\t\t",
        "N_noFeature\t\t\t2176314\t24618290\t24684426\t\t\t",
        "N_ambiguous\t\t\t4052011\t1224568\t1222330\t\t\t",
        "ENSG00000000003.15\tTSPAN6\tprotein_coding\t3214\t1611\t1603\t38.2\t12.1\t13.5",
        "ENSG00000002586.20\tCD99\tprotein_coding\t4000\t2000\t2000\t70.1\t22.2\t24.0",
    ]
    for sym, value in fpkm_uq.items():
        lines.append(
            f"{GENE_ENSEMBL[sym]}.{VERSION[sym]}\t{sym}\tprotein_coding\t100\t50\t50\t"
            f"{value + 1000:g}\t{value + 500:g}\t{value:g}"
        )
    lines.append("ENSG00000002586.20_PAR_Y\tCD99\tprotein_coding\t0\t0\t0\t0\t0\t0")
    lines += extra_rows or []
    return "\n".join(lines) + "\n"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def one_line(e: pytest.ExceptionInfo, *parts: str) -> str:
    """The error is one line naming the file and every part of the problem given."""
    msg = str(e.value)
    assert "\n" not in msg, msg
    for part in parts:
        assert part in msg, (part, msg)
    return msg


ALL_VALUES = {g: float(i) for i, g in enumerate(ALL_GENES)}  # CD3D 0.0, CD247 1.0, ...


# ------------------------------------------------------------------ read_star_counts


def test_read_star_counts_values_versions_and_summary_rows(tmp_path):
    f = write(tmp_path / "a.rna_seq.augmented_star_gene_counts.tsv", star_text({**ALL_VALUES, "CD3D": 9.0}))
    s = read_star_counts(f)
    assert s.dtype == np.float64
    assert s["ENSG00000167286"] == 9.0  # fpkm_uq column, not tpm (1009) or fpkm (509)
    assert s[GENE_ENSEMBL["KRT18"]] == ALL_VALUES["KRT18"]
    assert s["ENSG00000000003"] == 13.5
    assert not any(i.startswith("N_") for i in s.index)
    assert all("." not in i for i in s.index)
    # PAR_Y copy dropped, not a duplicate of ENSG00000002586; the chrX copy kept.
    assert s["ENSG00000002586"] == 24.0
    assert not any("PAR_Y" in i for i in s.index)
    assert len(s) == 2 + len(ALL_GENES)


def test_read_star_counts_other_column_and_alias(tmp_path):
    f = write(tmp_path / "a.tsv", star_text({"CD3D": 9.0}))
    assert read_star_counts(f, column="tpm_unstranded")["ENSG00000167286"] == 1009.0
    # TCGAbiolinks' name for the GDC column
    assert read_star_counts(f, column="fpkm_uq_unstrand")["ENSG00000167286"] == 9.0
    # ... and a file written with the short name read with the GDC name
    g = write(tmp_path / "b.tsv", star_text({"CD3D": 4.0}, header=STAR_HEADER.replace("_unstranded", "_unstrand")))
    assert read_star_counts(g)["ENSG00000167286"] == 4.0


def test_strip_version():
    assert strip_version("ENSG00000167286.10") == "ENSG00000167286"
    assert strip_version("ENSG00000167286") == "ENSG00000167286"
    assert strip_version("ENSG00000002586.20_PAR_Y") == "ENSG00000002586_PAR_Y"
    assert strip_version("CD3D") == "CD3D"


def test_read_star_counts_missing_file(tmp_path):
    with pytest.raises(IsgError) as e:
        read_star_counts(tmp_path / "nope.tsv")
    one_line(e, "nope.tsv", "not found")


def test_read_star_counts_empty_file(tmp_path):
    f = write(tmp_path / "empty.tsv", "")
    with pytest.raises(IsgError) as e:
        read_star_counts(f)
    one_line(e, str(f), "empty")


def test_read_star_counts_missing_column_lists_columns(tmp_path):
    f = write(tmp_path / "a.tsv", star_text({"CD3D": 9.0}))
    with pytest.raises(IsgError) as e:
        read_star_counts(f, column="fpkm_uq_stranded")
    one_line(e, str(f), "lacks column fpkm_uq_stranded", "fpkm_uq_unstranded", "tpm_unstranded")


def test_read_star_counts_non_numeric(tmp_path):
    text = star_text({"CD3D": 9.0}).replace("\t509\t9\n", "\t509\tabc\n")
    assert "abc" in text
    f = write(tmp_path / "a.tsv", text)
    with pytest.raises(IsgError) as e:
        read_star_counts(f)
    one_line(e, str(f), "non-numeric", "'abc'", "ENSG00000167286.10")


def test_read_star_counts_missing_value_in_gene_row(tmp_path):
    text = star_text({"CD3D": 9.0}).replace("\t509\t9\n", "\t509\t\n")
    f = write(tmp_path / "a.tsv", text)
    with pytest.raises(IsgError) as e:
        read_star_counts(f)
    one_line(e, str(f), "missing value", "ENSG00000167286.10")


def test_read_star_counts_duplicate_after_version_strip(tmp_path):
    dup = "ENSG00000167286.11\tCD3D\tprotein_coding\t1\t1\t1\t1\t1\t1"
    f = write(tmp_path / "a.tsv", star_text({"CD3D": 9.0}, extra_rows=[dup]))
    with pytest.raises(IsgError) as e:
        read_star_counts(f)
    one_line(e, str(f), "ENSG00000167286", "more than once")


# ------------------------------------------------------------------ sample sheet

SHEET_COLUMNS = [
    "File ID", "File Name", "Data Category", "Data Type", "Project ID", "Case ID", "Sample ID", "Sample Type",
]


def sheet_row(file_id, file_name, sample, sample_type="Primary Tumor", data_type="Gene Expression Quantification"):
    return [file_id, file_name, "Transcriptome Profiling", data_type, "TCGA-LIHC", sample[:12], sample, sample_type]


def write_sheet(path: Path, rows: list[list[str]]) -> Path:
    lines = ["\t".join(SHEET_COLUMNS)] + ["\t".join(r) for r in rows]
    return write(path, "\n".join(lines) + "\n")


STAR = "rna_seq.augmented_star_gene_counts.tsv"


def make_gdc_download(tmp_path: Path) -> tuple[Path, Path]:
    """Three primary tumours (AAAA with two aliquots), one normal, one slide-file row."""
    root = tmp_path / "gdc"
    files = {
        ("f1", f"u1.{STAR}"): {**ALL_VALUES, "CD3D": 9.0},
        ("f2", f"u2.{STAR}"): {**ALL_VALUES, "CD3D": 99.0},
        ("f3", f"u3.{STAR}"): {**ALL_VALUES, "CD3D": 3.0},  # aliquot 2 of sample AAAA-01A
        ("f4", f"u4.{STAR}"): {**ALL_VALUES, "CD3D": 1e6},  # normal: must be dropped
        ("f5", f"u5.{STAR}"): {**ALL_VALUES, "CD3D": 0.0},
    }
    for (fid, name), values in files.items():
        write(root / fid / name, star_text(values))
    sheet = write_sheet(
        tmp_path / "gdc_sample_sheet.2024-01-01.tsv",
        [
            sheet_row("f1", f"u1.{STAR}", "TCGA-AA-AAAA-01A"),
            sheet_row("f2", f"u2.{STAR}", "TCGA-BB-BBBB-01A"),
            sheet_row("f3", f"u3.{STAR}", "TCGA-AA-AAAA-01A"),
            sheet_row("f4", f"u4.{STAR}", "TCGA-AA-AAAA-11A", "Solid Tissue Normal"),
            sheet_row("f5", f"u5.{STAR}", "TCGA-CC-CCCC-01B, TCGA-CC-CCCC-10A", "Primary Tumor, Blood Derived Normal"),
            sheet_row("s1", "TCGA-AA-AAAA-01Z-00-DX1.svs", "TCGA-AA-AAAA-01Z", data_type="Slide Image"),
        ],
    )
    return root, sheet


def test_read_sample_sheet_keeps_primary_tumours(tmp_path):
    _, sheet_path = make_gdc_download(tmp_path)
    sheet = read_sample_sheet(sheet_path)
    assert "TCGA-AA-AAAA-11A" not in set(sheet["Sample ID"])
    assert list(sheet["sample_id"]) == [
        "TCGA-AA-AAAA-01A", "TCGA-BB-BBBB-01A", "TCGA-AA-AAAA-01A", "TCGA-CC-CCCC-01B", "TCGA-AA-AAAA-01Z",
    ]
    assert list(sheet["File ID"][:3]) == ["f1", "f2", "f3"]


def test_read_sample_sheet_errors(tmp_path):
    with pytest.raises(IsgError) as e:
        read_sample_sheet(tmp_path / "missing.tsv")
    one_line(e, "missing.tsv", "not found")

    bad = write(tmp_path / "nocol.tsv", "File ID\tFile Name\nf1\ta.tsv\n")
    with pytest.raises(IsgError) as e:
        read_sample_sheet(bad)
    one_line(e, str(bad), "lacks column(s) Sample ID")

    normals = write_sheet(tmp_path / "normals.tsv",
                          [sheet_row("f4", "x.tsv", "TCGA-AA-AAAA-11A", "Solid Tissue Normal")])
    with pytest.raises(IsgError) as e:
        read_sample_sheet(normals)
    one_line(e, str(normals), "no Primary Tumor rows")

    clash = write_sheet(tmp_path / "clash.tsv", [sheet_row("f4", "x.tsv", "TCGA-AA-AAAA-11A", "Primary Tumor")])
    with pytest.raises(IsgError) as e:
        read_sample_sheet(clash)
    one_line(e, str(clash), "TCGA-AA-AAAA-11A", "'11'", "Primary Tumor")


# ------------------------------------------------------------------ STAR directory


def test_load_star_directory_averages_aliquots_and_maps_symbols(tmp_path):
    root, sheet = make_gdc_download(tmp_path)
    table = load_star_directory(root, sheet)
    assert list(table.columns) == list(ALL_GENES)
    assert list(table.index) == ["TCGA-AA-AAAA-01A", "TCGA-BB-BBBB-01A", "TCGA-CC-CCCC-01B"]
    assert table.loc["TCGA-AA-AAAA-01A", "CD3D"] == 6.0  # mean of aliquots 9 and 3, linear scale
    assert table.loc["TCGA-BB-BBBB-01A", "CD3D"] == 99.0
    assert table.loc["TCGA-BB-BBBB-01A", "KRT18"] == ALL_VALUES["KRT18"]
    assert 1e6 not in table.to_numpy()  # the normal sample never enters
    sub = load_star_directory(root, sheet, genes=["KRT8", "CD3D"])
    assert list(sub.columns) == ["KRT8", "CD3D"]


def test_load_star_directory_missing_file_is_named(tmp_path):
    root, sheet = make_gdc_download(tmp_path)
    (root / "f2" / f"u2.{STAR}").unlink()
    with pytest.raises(IsgError) as e:
        load_star_directory(root, sheet)
    one_line(e, str(sheet), f"u2.{STAR}", "not under")


def test_load_star_directory_gene_missing_in_file(tmp_path):
    root, sheet = make_gdc_download(tmp_path)
    f = root / "f2" / f"u2.{STAR}"
    write(f, star_text({g: 1.0 for g in ALL_GENES if g != "TP63"}))
    with pytest.raises(IsgError) as e:
        load_star_directory(root, sheet)
    one_line(e, str(f), "lacks gene TP63 (ENSG00000073282)")


def test_load_star_directory_unknown_gene(tmp_path):
    root, sheet = make_gdc_download(tmp_path)
    with pytest.raises(IsgError) as e:
        load_star_directory(root, sheet, genes=["CD20"])
    one_line(e, "unknown gene 'CD20'")


# ------------------------------------------------------------------ merged matrix

SLIDE_A = "TCGA-AA-AAAA-01Z-00-DX1.11111111-2222-3333-4444-555555555555"
SLIDE_B = "TCGA-BB-BBBB-01Z-00-DX1.66666666-7777-8888-9999-000000000000"


def manifest(*slide_ids: str) -> pd.DataFrame:
    return pd.DataFrame({"slide_id": list(slide_ids), "path": [f"/x/{s}.svs" for s in slide_ids]})


def test_read_expression_matrix_csv_versions_symbols(tmp_path):
    f = write(
        tmp_path / "m.csv",
        "Unnamed: 0,ENSG00000167286.10,CD247,ENSG00000000003.15,note\n"
        "s1,9,0,1.5,x\n"
        "s2,99,1,2.5,y\n",
    )
    m = read_expression_matrix(f)
    assert list(m.columns) == ["CD3D", "CD247", "ENSG00000000003", "note"]
    assert list(m.index) == ["s1", "s2"]
    assert m.loc["s2", "CD3D"] == 99.0 and m["CD3D"].dtype == np.float64
    assert m.loc["s1", "note"] == "x"  # annotation columns stay strings


def test_read_expression_matrix_sniffs_tab_without_known_extension(tmp_path):
    f = write(tmp_path / "m.dat", "sample_id\tENSG00000167286\nTCGA-AA-AAAA-01A\t4\n")
    m = read_expression_matrix(f)
    assert m.loc["TCGA-AA-AAAA-01A", "CD3D"] == 4.0


def test_read_expression_matrix_r_style_header(tmp_path):
    # R's write.table: the header has no cell above the row names.
    f = write(tmp_path / "m.txt", '"CD3D"\t"KRT8"\n"s1"\t1\t2\n')
    m = read_expression_matrix(f)
    assert m.loc["s1", "KRT8"] == 2.0


def test_read_expression_matrix_errors(tmp_path):
    dup = write(tmp_path / "dup.csv", "id,CD3D\ns1,1\ns1,2\n")
    with pytest.raises(IsgError) as e:
        read_expression_matrix(dup)
    one_line(e, str(dup), "s1", "more than once")

    two = write(tmp_path / "two.csv", "id,CD3D,ENSG00000167286.3\ns1,1,2\n")
    with pytest.raises(IsgError) as e:
        read_expression_matrix(two)
    one_line(e, str(two), "CD3D (ENSG00000167286)", "two columns")

    header_only = write(tmp_path / "h.csv", "id,CD3D\n")
    with pytest.raises(IsgError) as e:
        read_expression_matrix(header_only)
    one_line(e, str(header_only), "no rows")


def test_log_transform_known_answers_and_negative():
    df = pd.DataFrame({"CD3D": [0.0, 9.0, 99.0]}, index=["a", "b", "c"])
    np.testing.assert_allclose(log_transform(df)["CD3D"].to_numpy(), [0.0, 1.0, 2.0])
    with pytest.raises(IsgError) as e:
        log_transform(pd.DataFrame({"CD3D": [1.0, -0.5]}, index=["a", "b"]), path="t.tsv")
    one_line(e, "t.tsv", "negative value -0.5", "b", "CD3D")


# ------------------------------------------------------------------ load_targets: matrix


def test_load_targets_sim_expression_tsv(tmp_path):
    """ISG-Sim's expression.tsv: slide_id + unversioned Ensembl ids of all 10 genes."""
    ids = ["sim-LIHC-0000", "sim-LIHC-0001", "sim-PRAD-0000"]
    header = "slide_id\t" + "\t".join(GENE_ENSEMBL[g] for g in ALL_GENES)
    rows = [f"{s}\t" + "\t".join(str(9.0 * (i + 1) + j) for j in range(len(ALL_GENES))) for i, s in enumerate(ids)]
    f = write(tmp_path / "expression.tsv", "\n".join([header, *rows]) + "\n")
    t = load_targets(manifest("sim-PRAD-0000", "sim-LIHC-0000"), f, ["CD3D", "KRT18"])
    assert list(t.index) == ["sim-PRAD-0000", "sim-LIHC-0000"]  # manifest order
    assert t.index.name == "slide_id"
    assert list(t.columns) == ["CD3D", "KRT18"]
    assert t.loc["sim-LIHC-0000", "CD3D"] == pytest.approx(1.0)  # log10(1 + 9)
    assert t.loc["sim-PRAD-0000", "CD3D"] == pytest.approx(math.log10(28.0))
    assert t.loc["sim-LIHC-0000", "KRT18"] == pytest.approx(math.log10(1 + 9.0 + 9))
    raw = load_targets(manifest("sim-LIHC-0001"), f, ["CD3D"], log=False)
    assert raw.loc["sim-LIHC-0001", "CD3D"] == 18.0


def test_load_targets_match_by_slide_sample_patient(tmp_path):
    slide_c = "TCGA-CC-CCCC-01Z-00-DX1.AAAAAAAA-0000-0000-0000-000000000000"
    f = write(
        tmp_path / "m.csv",
        "sample_id,CD3D\n"
        f"{SLIDE_A},9\n"  # exact slide id
        "TCGA-AA-AAAA-01A,999\n"  # same patient, must lose to the exact match
        "TCGA-BB-BBBB-01Z,99\n"  # sample id (16 chars, vial Z)
        "TCGA-BB-BBBB-11A,5\n"  # normal of the same patient: loses to the sample match
        "TCGA-CC-CCCC,0\n",  # patient id only
    )
    t = load_targets(manifest(SLIDE_A, SLIDE_B, slide_c), f, ["CD3D"])
    np.testing.assert_allclose(t["CD3D"].to_numpy(), [1.0, 2.0, 0.0])


def test_load_targets_sample_type_rule_beats_normal_row(tmp_path):
    # Slide vial Z never equals the RNA vial A: the tumour row is chosen over the normal row.
    f = write(tmp_path / "m.csv", "id,CD3D\nTCGA-AA-AAAA-11A-01R-A000-07,5\nTCGA-AA-AAAA-01A-11R-A000-07,9\n")
    t = load_targets(manifest(SLIDE_A), f, ["CD3D"])
    assert t.loc[SLIDE_A, "CD3D"] == pytest.approx(1.0)


def test_load_targets_ambiguous_patient_is_an_error(tmp_path):
    f = write(tmp_path / "m.csv", "id,CD3D\nTCGA-AA-AAAA-01A,9\nTCGA-AA-AAAA-01B,99\n")
    with pytest.raises(IsgError) as e:
        load_targets(manifest(SLIDE_A), f, ["CD3D"])
    one_line(e, str(f), SLIDE_A, "matches 2 expression rows", "cannot choose")
    f2 = write(tmp_path / "p.csv", "id,CD3D\nTCGA-AA-AAAA-02A,9\nTCGA-AA-AAAA-06A,99\n")
    with pytest.raises(IsgError) as e:
        load_targets(manifest(SLIDE_A), f2, ["CD3D"])
    one_line(e, str(f2), "by patient")


def test_match_rows_prefix_rules_only_for_tcga():
    # Non-TCGA ids never match by prefix.
    assert match_rows(["sim-LIHC-00001"], ["sim-LIHC-00001x"], "m.csv") == {}
    assert match_rows(["sim-1"], ["sim-1"], "m.csv") == {"sim-1": "sim-1"}


def test_load_targets_lacks_slide(tmp_path):
    f = write(tmp_path / "m.csv", f"slide_id,CD3D\n{SLIDE_A},9\n")
    with pytest.raises(IsgError) as e:
        load_targets(manifest(SLIDE_A, SLIDE_B), f, ["CD3D"])
    one_line(e, str(f), f"expression table lacks slide {SLIDE_B}")


def test_load_targets_lacks_gene(tmp_path):
    f = write(tmp_path / "m.csv", f"slide_id,CD3D\n{SLIDE_A},9\n")
    with pytest.raises(IsgError) as e:
        load_targets(manifest(SLIDE_A), f, ["CD3D", "MKI67"])
    one_line(e, str(f), "lacks gene MKI67 (ENSG00000148773)")


@pytest.mark.parametrize(
    "cell, problem",
    [
        ("", "holds NaN for slide"),
        ("NA", "holds NaN for slide"),
        ("abc", "non-numeric value 'abc' for slide"),
        ("-1", "negative value -1 for slide"),
        ("inf", "holds inf for slide"),
    ],
)
def test_load_targets_bad_values(tmp_path, cell, problem):
    f = write(tmp_path / "m.csv", f"slide_id,CD3D,KRT8\n{SLIDE_A},9,1\n{SLIDE_B},{cell},1\n")
    with pytest.raises(IsgError) as e:
        load_targets(manifest(SLIDE_A, SLIDE_B), f, ["KRT8", "CD3D"])
    one_line(e, str(f), problem, SLIDE_B, "CD3D")


def test_load_targets_bad_value_in_unrequested_column_is_fine(tmp_path):
    f = write(tmp_path / "m.csv", f"slide_id,CD3D,KRT8\n{SLIDE_A},9,abc\n")
    t = load_targets(manifest(SLIDE_A), f, ["CD3D"])
    assert t.loc[SLIDE_A, "CD3D"] == pytest.approx(1.0)


def test_load_targets_missing_empty_unreadable_source(tmp_path):
    with pytest.raises(IsgError) as e:
        load_targets(manifest(SLIDE_A), tmp_path / "nope.tsv", ["CD3D"])
    one_line(e, "nope.tsv", "not found")

    empty = write(tmp_path / "empty.tsv", "")
    with pytest.raises(IsgError) as e:
        load_targets(manifest(SLIDE_A), empty, ["CD3D"])
    one_line(e, str(empty), "empty")

    ragged = write(tmp_path / "ragged.csv", "slide_id,CD3D\ns1,1\ns2,1,2,3\n")
    with pytest.raises(IsgError) as e:
        load_targets(manifest("s1"), ragged, ["CD3D"])
    one_line(e, str(ragged), "rows of different lengths")

    binary = tmp_path / "blob.csv.gz"
    binary.write_bytes(b"\x00\x01 this is not gzip")
    with pytest.raises(IsgError) as e:
        load_targets(manifest("s1"), binary, ["CD3D"])
    one_line(e, str(binary), "cannot read")


# ------------------------------------------------------------------ load_targets: STAR directory


def test_load_targets_star_directory(tmp_path):
    root, sheet = make_gdc_download(tmp_path)
    t = load_targets(manifest(SLIDE_B, SLIDE_A), root, ["CD3D", "KRT18"], sample_sheet=sheet)
    assert list(t.index) == [SLIDE_B, SLIDE_A]
    assert t.loc[SLIDE_A, "CD3D"] == pytest.approx(math.log10(7.0))  # mean(9, 3) = 6
    assert t.loc[SLIDE_B, "CD3D"] == pytest.approx(2.0)  # log10(1 + 99)
    assert t.loc[SLIDE_B, "KRT18"] == pytest.approx(math.log10(1 + ALL_VALUES["KRT18"]))


def test_load_targets_star_directory_needs_sheet_and_slide(tmp_path):
    root, sheet = make_gdc_download(tmp_path)
    with pytest.raises(IsgError) as e:
        load_targets(manifest(SLIDE_A), root, ["CD3D"])
    one_line(e, str(root), "sample sheet")
    other = "TCGA-DD-DDDD-01Z-00-DX1.AAAAAAAA-0000-0000-0000-000000000000"
    with pytest.raises(IsgError) as e:
        load_targets(manifest(SLIDE_A, other), root, ["CD3D"], sample_sheet=sheet)
    one_line(e, str(sheet), f"lacks slide {other}")
