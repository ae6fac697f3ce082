"""A cohort on disk, and the embedded default: the simulated ISG-Sim cohort of a profile.

A cohort folder holds ``manifest.csv`` (slide id, path, cancer type, patient id, fold) and an
expression table; ISG-Sim adds ``truth.csv``, ``noise_ceiling.csv``, ``labels.csv``,
``patches.csv`` and ``cohort.json``.  Real TCGA cohorts need only the manifest and the GDC
expression files (see :mod:`isg_core.data.expression`).
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..config import ALL_GENES, COHORT_ROLES, TASK_GENES, get_profile
from ..data.expression import load_targets
from ..data.manifest import read_manifest, slide_mpps
from ..data.samples import fetch_samples
from ..data.slides import open_slide
from ..errors import IsgError
from ..paths import cohort_dir

SIMULATED_LABEL = "ISG-Sim (simulated cohort, not TCGA)"


def ensure_samples() -> None:
    """Fetch the real sample images if they are not there yet (skip-if-done)."""
    fetch_samples(quiet=True)


def ensure_cohort(profile: str | None = None, workers: int | None = None, role: str = "held-out") -> Path:
    """Generate the profile's ISG-Sim cohort of ``role`` (``held-out``: the reported one;
    ``development``: the one choices are made on) under ``data/cohorts/`` unless already there."""
    # the simulator (scipy, scikit-image, the texture bank) loads only when a cohort is generated:
    # every `isg` command imports this module, most never simulate
    from ..simulate import simulate_cohort

    prof = get_profile(profile)
    ensure_samples()
    return simulate_cohort(cohort_dir(prof.name, role), n_slides=3 * prof.sim.slides_per_type,
                           seed=prof.sim.seed_of(role), size=prof.sim.size, workers=workers or prof.workers,
                           tiling=prof.tiling, layout=prof.sim.layout)


def cohort_role(profile, cohort) -> str:
    """A cohort's role for ``profile`` (:class:`~isg_core.config.SimConfig`): ``held-out`` (the
    reported one), ``development`` (the one choices were made on), ``held-out and development``
    where both seeds are one (``smoke``), or ``user cohort`` (not simulated with either seed)."""
    seed = cohort.meta.get("parameters", {}).get("seed") if cohort.simulated else None
    roles = [r for r in COHORT_ROLES if seed is not None and seed == profile.sim.seed_of(r)]
    return " and ".join(roles) if roles else "user cohort"


@dataclass
class Cohort:
    """A loaded cohort: manifest, log10(1 + x) targets and, for ISG-Sim, the simulator's truth."""
    root: Path
    manifest: pd.DataFrame
    targets: pd.DataFrame
    meta: dict
    truth: pd.DataFrame | None = None
    noise_ceiling: pd.DataFrame | None = None
    labels: pd.DataFrame | None = None
    patches: pd.DataFrame | None = None

    @property
    def simulated(self) -> bool:
        return bool(self.meta.get("simulated", False))

    @property
    def label(self) -> str:
        return SIMULATED_LABEL if self.simulated else self.meta.get("name", self.root.name)

    @property
    def fingerprint(self) -> str:
        """16 hex digits of SHA-256 over what identifies the cohort's tables: the manifest (slide
        ids, cancer types, folds; not the files' paths, which move between machines) and the
        expression targets as loaded.  A seed alone does not: one seed regenerated with another
        layout or size is another cohort."""
        man = self.manifest.drop(columns=[c for c in ("path",) if c in self.manifest.columns])
        h = hashlib.sha256(man.to_csv(index=False).encode())
        h.update(self.targets.to_csv(float_format="%.9g").encode())
        return h.hexdigest()[:16]


def load_cohort(root: str | Path, expression: str | Path | None = None,
                sample_sheet: str | Path | None = None) -> Cohort:
    """Load a cohort folder: its manifest and targets (through the real expression loader)."""
    root = Path(root)
    manifest = read_manifest(root / "manifest.csv")
    meta_path = root / "cohort.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    source = Path(expression) if expression else root / "expression.tsv"
    if not source.exists():
        raise IsgError(source, "expression table not found")
    targets = load_targets(manifest, source, list(ALL_GENES), sample_sheet=sample_sheet)

    def opt(name: str, **kw) -> pd.DataFrame | None:
        p = root / name
        return pd.read_csv(p, **kw) if p.exists() else None

    return Cohort(root, manifest, targets, meta, truth=opt("truth.csv", index_col=0),
                  noise_ceiling=opt("noise_ceiling.csv"), labels=opt("labels.csv"), patches=opt("patches.csv"))


def validate_cohort(manifest_path: "str | os.PathLike", expression: "str | os.PathLike | None" = None,
                    genes: "list[str] | None" = None, sample_sheet: "str | os.PathLike | None" = None) -> str:
    """``isg check``: validate a cohort before a long run (the manifest, every slide's header, the
    expression table beside the manifest or ``expression``); returns the one-line summary and
    raises a one-line :class:`IsgError` on the first problem."""
    manifest = read_manifest(manifest_path)
    for path, mpp in zip(manifest["path"], slide_mpps(manifest)):
        with open_slide(path, mpp=mpp):
            pass
    msg = (f"{manifest_path}: {len(manifest)} slides, {manifest.patient_id.nunique()} patients, "
           f"{manifest.fold.nunique()} folds, all slides open")
    source = expression or (Path(manifest_path).parent / "expression.tsv")
    if expression or Path(source).exists():
        genes = genes or sorted({g for t in manifest.cancer_type.unique() for g in TASK_GENES.get(t, ALL_GENES)})
        targets = load_targets(manifest, source, genes, sample_sheet=sample_sheet)
        msg += f"; expression for {targets.shape[1]} genes, no missing values"
    return msg
