"""Configuration dataclasses and the three run profiles.

The paper (Sec. 3) leaves the patch sizes p and q, the feature size d and the magnification
open.  Our defaults, and why:

* ``mpp = 0.5`` (20x): the resolution HE2RNA tiles at and the native scan of most TCGA
  diagnostic slides; a lymphocyte nucleus (~7 um) is ~14 px, enough to tell cell types apart.
* ``global_size = p = 256`` px (128 um at 0.5 mpp): a field that shows tissue architecture
  (a gland, a tumour nest and its stroma), and the size the global extractor works on.
* ``local_size = q = 32`` px (16 um): one or two nuclei, so that cell counts are a
  local-scale property; p/q = 8 gives an 8 x 8 local grid per global patch.

Profiles set how big everything is: ``smoke`` (CI, seconds per notebook), ``quick`` (the
README default on a laptop CPU, minutes, real results) and ``paper`` (full scale, GPU).
The profile a notebook runs at comes from its ``profile`` parameter, whose default reads the
``ISG_PROFILE`` environment variable, so papermill (which injects the parameter) and nbval
(which runs the stored parameters cell) both honour it.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field

from .errors import IsgError

#: The paper's tasks: genes per cancer type (Sec. 4; CD20 is MS4A1, "MK167" is MKI67).
TASK_GENES: dict[str, tuple[str, ...]] = {
    "LIHC": ("CD3D", "CD247", "CD3E", "CD3G", "MS4A1", "CD19", "MKI67"),
    "COAD": ("CD3D", "CD247", "CD3E", "CD3G", "MS4A1", "CD19"),
    "PRAD": ("TP63", "KRT8", "KRT18"),
}

#: HE2RNA's Ensembl ids for the paper's genes (``../shared/formats.md``), unversioned.
GENE_ENSEMBL: dict[str, str] = {
    "CD3D": "ENSG00000167286",
    "CD247": "ENSG00000198821",
    "CD3E": "ENSG00000198851",
    "CD3G": "ENSG00000160654",
    "MS4A1": "ENSG00000156738",
    "CD19": "ENSG00000177455",
    "MKI67": "ENSG00000148773",
    "TP63": "ENSG00000073282",
    "KRT8": "ENSG00000170421",
    "KRT18": "ENSG00000111057",
}

#: Every gene the project models, in a fixed order.
ALL_GENES: tuple[str, ...] = tuple(GENE_ENSEMBL)

CANCER_TYPES: tuple[str, ...] = tuple(TASK_GENES)


@dataclass(frozen=True)
class TilingConfig:
    """Two-resolution tiling (paper Sec. 3): global p x p patches, each cut into q x q local
    patches kept at their grid positions.  Sizes are in pixels at ``mpp``."""

    mpp: float = 0.5
    global_size: int = 256
    local_size: int = 32

    def __post_init__(self) -> None:
        if self.mpp <= 0:
            raise IsgError(None, f"tiling mpp must be positive, got {self.mpp}")
        if self.local_size <= 0 or self.global_size <= 0:
            raise IsgError(None, "tiling patch sizes must be positive")
        if self.global_size % self.local_size:
            raise IsgError(
                None,
                f"global patch size p={self.global_size} must be a multiple of local size q={self.local_size}",
            )

    @property
    def grid(self) -> int:
        """p/q: the local grid is ``grid x grid`` per global patch."""
        return self.global_size // self.local_size


@dataclass(frozen=True)
class SimConfig:
    """Size of a simulated ISG-Sim cohort."""

    slides_per_type: int = 40
    size: int = 2048  # slide side in px at 0.5 mpp
    seed: int = 0


@dataclass(frozen=True)
class Profile:
    """Everything that changes between ``smoke``, ``quick`` and ``paper``."""

    name: str
    sim: SimConfig
    tiling: TilingConfig = field(default_factory=TilingConfig)
    workers: int = 2

    def to_dict(self) -> dict:
        return asdict(self)


PROFILES: dict[str, Profile] = {
    "smoke": Profile("smoke", SimConfig(slides_per_type=4, size=1024, seed=0), workers=2),
    "quick": Profile("quick", SimConfig(slides_per_type=40, size=2048, seed=0), workers=2),
    "paper": Profile("paper", SimConfig(slides_per_type=150, size=8192, seed=0), workers=16),
}


def get_profile(name: str | None = None) -> Profile:
    """Return the named profile; ``None`` reads ``ISG_PROFILE`` (default ``quick``)."""
    name = name or os.environ.get("ISG_PROFILE", "quick")
    try:
        return PROFILES[name]
    except KeyError:
        raise IsgError(None, f"unknown profile {name!r} (choose one of {', '.join(PROFILES)})") from None
