"""The inputs of ``isg cohort from-gdc`` (:class:`FromGdcConfig`) and what it kept and dropped,
and why (:class:`GdcReport`, written as the cohort's ``report.md`` and summarised on the terminal).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class FromGdcConfig:
    """Inputs of ``isg cohort from-gdc``."""
    slides: Path
    expression: Path
    sample_sheet: Path
    out: Path
    clinical: Path | None = None
    folds: int = 5
    seed: int = 0
    column: str = "fpkm_uq_unstranded"


@dataclass
class GdcReport:
    """What ``from-gdc`` kept and dropped, and why (written as ``report.md``)."""
    slides_found: int = 0
    slides_kept: list[str] = field(default_factory=list)
    slides_without_expression: list[str] = field(default_factory=list)
    expression_without_slides: list[str] = field(default_factory=list)  # samples (TCGA-XX-XXXX-01)
    non_primary_slides: list[str] = field(default_factory=list)
    non_primary_expression: list[str] = field(default_factory=list)  # file names, with their sample
    averaged: dict[str, list[str]] = field(default_factory=dict)  # sample -> aliquot sample ids averaged
    multi_slide_patients: dict[str, list[str]] = field(default_factory=dict)
    no_task_projects: dict[str, int] = field(default_factory=dict)  # project -> slides kept
    not_downloaded: list[str] = field(default_factory=list)  # sheet's STAR files and slides not on disk
    not_in_sheet: list[str] = field(default_factory=list)  # STAR files on disk, not in the sheet
    patients: int = 0
    projects: dict[str, int] = field(default_factory=dict)  # cancer type -> slides kept
    folds: int = 0
    clinical_missing: list[str] | None = None  # None: no --clinical

    def counts(self) -> dict[str, int]:
        """The report's numbers, by name (what the tests and the printed summary use)."""
        return {"slides found": self.slides_found, "slides kept": len(self.slides_kept), "patients": self.patients,
                "slides without expression": len(self.slides_without_expression),
                "expression without slides": len(self.expression_without_slides),
                "non-primary slides dropped": len(self.non_primary_slides),
                "non-primary expression files dropped": len(self.non_primary_expression),
                "samples with aliquots averaged": len(self.averaged),
                "patients with several slides": len(self.multi_slide_patients),
                "projects without the paper's genes": len(self.no_task_projects),
                "sample-sheet files not downloaded": len(self.not_downloaded),
                "downloaded files not in the sample sheet": len(self.not_in_sheet)}

    def to_markdown(self, cfg: FromGdcConfig, max_items: int | None = None) -> str:
        """The report as Markdown: counts first, then the lists (each item on its own line; at
        most ``max_items`` per list, for the terminal)."""
        per_project = ", ".join(f"{k} {v}" for k, v in self.projects.items())
        lines = ["# Cohort from a GDC download", "",
                 f"- slides: `{cfg.slides}`", f"- expression: `{cfg.expression}`",
                 f"- sample sheet: `{cfg.sample_sheet}`",
                 (f"- {len(self.slides_kept)} slides of {self.patients} patients kept ({per_project}); "
                  f"{self.folds} folds by patient, stratified by project (seed {cfg.seed})"),
                 f"- targets: `{cfg.column}` (FPKM-UQ), stored raw in expression.tsv; the loader applies log10(1 + x)",
                 "", "| what | count |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in self.counts().items()]

        def section(title: str, items: Sequence[str]) -> None:
            if items:
                shown = list(items)[:max_items] if max_items is not None else list(items)
                more = [f"- ... and {len(items) - len(shown)} more (see report.md)"] if len(shown) < len(items) else []
                lines.extend(["", f"## {title} ({len(items)})", ""] + [f"- {x}" for x in shown] + more)

        section("Slides without expression (dropped)", self.slides_without_expression)
        section("Expression without slides (not used)", self.expression_without_slides)
        section("Non-primary slides dropped (sample code other than 01)", self.non_primary_slides)
        section("Non-primary expression files dropped (e.g. -11 normal tissue)", self.non_primary_expression)
        section("Several aliquots of one primary tumour: FPKM-UQ averaged, then log10(1 + mean) by the loader",
                [f"{k}: {len(v)} files ({', '.join(v)})" for k, v in self.averaged.items()])
        section("Patients with several slides (all kept, in the same fold)",
                [f"{k}: {', '.join(v)}" for k, v in self.multi_slide_patients.items()])
        section("Projects without the paper's genes (kept; no task is defined for them)",
                [f"{k}: {v} slides" for k, v in self.no_task_projects.items()])
        section("Files in the sample sheet that are not in the download", self.not_downloaded)
        section("Downloaded STAR-Counts files that are not in the sample sheet (ignored)", self.not_in_sheet)
        if self.clinical_missing is not None:
            section("Patients without clinical rows", self.clinical_missing)
        return "\n".join(lines) + "\n"

    def summary(self) -> str:
        """One paragraph for the terminal."""
        c = self.counts()
        shown = ", ".join(f"{k}: {v}" for k, v in c.items()
                          if k not in ("slides found", "slides kept", "patients") and v)
        return (f"{c['slides kept']} of {c['slides found']} slides kept ({c['patients']} patients; "
                + ", ".join(f"{k} {v}" for k, v in self.projects.items()) + ")" + (f"; {shown}" if shown else ""))
