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

import math
import os
from dataclasses import asdict, dataclass, field, fields, replace

from .errors import IsgError

#: The paper's tasks: genes per cancer type (Sec. 4; CD20 is MS4A1, "MK167" is MKI67).
TASK_GENES: dict[str, tuple[str, ...]] = {
    "LIHC": ("CD3D", "CD247", "CD3E", "CD3G", "MS4A1", "CD19", "MKI67"),
    "COAD": ("CD3D", "CD247", "CD3E", "CD3G", "MS4A1", "CD19"),
    "PRAD": ("TP63", "KRT8", "KRT18"),
}

#: Ensembl gene ids of the paper's genes (Sec. 4), unversioned: how HE2RNA's expression tables name them.
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
        if not (self.mpp > 0 and self.mpp < float("inf")):  # also refuses NaN
            raise IsgError(None, f"tiling mpp must be a positive number, got {self.mpp}")
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


#: the roles of a profile's two simulated cohorts (:func:`isg_core.paths.cohort_dir`)
COHORT_ROLES = ("held-out", "development")


@dataclass(frozen=True)
class SimConfig:
    """Size and seeds of a profile's simulated ISG-Sim cohorts.

    Two cohorts of the same size come from two seeds: the **development** cohort (``dev_seed``),
    on which every design choice is made (learning rates, widths, epochs, thresholds, compressor,
    cohort size), and the **held-out** cohort (``seed``), which no choice ever looked at and which
    every table, figure and README number reports.  ``smoke`` only checks that code runs, so both
    of its roles use seed 0.
    """

    slides_per_type: int = 40
    size: int = 2048  # slide side in px at 0.5 mpp
    seed: int = 0  # the held-out (reported) cohort
    dev_seed: int = 0  # the development cohort
    # how tissue lies on the glass (isg_core.simulate.tissue): "section" fills about half of a square
    # canvas; "wsi" puts one to three sections on a mostly-glass canvas, as TCGA diagnostic slides are
    layout: str = "section"

    def seed_of(self, role: str = "held-out") -> int:
        if role not in COHORT_ROLES:
            raise ValueError(f"unknown cohort role {role!r} (choose one of {', '.join(COHORT_ROLES)})")
        return self.seed if role == "held-out" else self.dev_seed


@dataclass(frozen=True)
class FeatureConfig:
    """Size and training length of the two StyleGAN2 autoencoders (paper Sec. 3.2) and of
    feature extraction.  The paper gives no d, resolution or schedule; ours, and why:

    * ``global_resolution``: the global extractor sees the p x p patch resized to this side
      (area averaging).  64 px on a CPU keeps glands and nests visible at 2 um/px; the
      ``paper`` profile uses the full 256 px.
    * ``local_resolution = q``: local patches are encoded at their native 32 px.
    * ``code_dim`` d: 64 (quick) / 128 (paper).  The Dual Attention network mixes f_i and R_i in
      d channels, so d sets its width too.
    * Training steps are the budget of the profile: minutes on a 2-core CPU at ``quick``.
    """

    global_resolution: int = 64
    local_resolution: int = 32
    code_dim: int = 64
    channel_base: int = 1024
    channel_max: int = 64
    # E_L runs on 64 local patches per global patch, so extraction cost is mostly E_L's.  256 / r
    # channels (0.42 GFLOP for the 64 local patches of a kept patch, against 1.46 with 512): on the
    # development cohort its codes read cell counts at least as well as 512's (probe PCC 0.405 against
    # 0.392, difference +0.013, 95% CI +0.006 to +0.021; results/quick/extractor_choices.md)
    local_channel_base: int = 256
    global_steps: int = 1500
    local_steps: int = 1000
    batch_size: int = 16
    bank_size: int = 4096
    checkpoint_every: int = 100
    extract_batch: int = 32
    resnet_input: int = 128  # ImageNet's 224 at ``paper``; 128 px costs a third on a CPU


#: learning-rate schedules of :class:`TrainSchedule`
LR_SCHEDULES = ("constant", "cosine")


@dataclass(frozen=True)
class TrainSchedule:
    """How a slide-level model trains (ISG and the baselines; paper Sec. 4): the one home of these
    defaults.  A profile sets them (:class:`SlideModelConfig`) and the training engine reads them
    (``isg_core.train.engine.TrainConfig`` extends this class with what only the engine decides).

    The paper gives no schedule.  Ours: AdamW at lr 1e-3 (3e-4 learnt too slowly in 30 epochs on
    ISG-Sim), batches of 8 slides, early stopping on an inner validation split with ``patience``
    epochs, and at most ``max_patches`` kept patches per slide per training step (all at
    evaluation; None: all in training too).
    """

    epochs: int = 60
    patience: int = 15  # epochs without a better inner-validation loss before stopping
    lr: float = 1e-3
    batch_size: int = 8  # slides per step
    max_patches: int | None = 256
    seed: int = 0
    # the learning rate over the epochs: "constant", or "cosine" (lr * (1 + cos(pi e / epochs)) / 2
    # in epoch e = 0, 1, ...: Loshchilov & Hutter 2017 without restarts); see lr_at
    lr_schedule: str = "constant"

    def __post_init__(self) -> None:
        if self.lr_schedule not in LR_SCHEDULES:
            raise IsgError(None, f"unknown lr_schedule {self.lr_schedule!r} (choose one of {', '.join(LR_SCHEDULES)})")

    def lr_at(self, epoch: int) -> float:
        """The learning rate of epoch ``epoch`` (0-based): a pure function of the epoch, so a run
        resumed from its per-epoch checkpoint continues on the same schedule."""
        if self.lr_schedule == "cosine":
            return self.lr * 0.5 * (1.0 + math.cos(math.pi * min(epoch, self.epochs) / self.epochs))
        return self.lr

    def schedule(self) -> dict:
        """The schedule's fields alone (what a profile hands to the engine)."""
        return {f.name: getattr(self, f.name) for f in fields(TrainSchedule)}


@dataclass(frozen=True)
class SlideModelConfig(TrainSchedule):
    """A profile's budget for the slide-level models of Tables 1-4 and 6: the training schedule
    (:class:`TrainSchedule`), the Dual Attention network's inner ``width`` (None = d; see
    ``DualAttentionConfig.width``), and how many cross-validations run at once (``jobs``: 2 on
    the 2-core CPU profile, worker processes of one thread each; 1 on a GPU)."""

    width: int | None = None
    jobs: int = 1
    # training seeds of the headline rows (ISG, the best baseline, HE2RNA in Table 1; Table 3):
    # each seed is a whole cross-validation, and the bootstrap draws over them
    seeds: int = 1
    # caps every model's epochs and patience, a published schedule's too (smoke: seconds)
    epoch_cap: int | None = None


@dataclass(frozen=True)
class Profile:
    """Everything that changes between ``smoke``, ``quick`` and ``paper``."""

    name: str
    sim: SimConfig
    tiling: TilingConfig = field(default_factory=TilingConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    models: SlideModelConfig = field(default_factory=SlideModelConfig)
    workers: int = 2

    def to_dict(self) -> dict:
        return asdict(self)


PROFILES: dict[str, Profile] = {
    "smoke": Profile("smoke", SimConfig(slides_per_type=4, size=1024, seed=0),
                     features=FeatureConfig(global_resolution=16, local_resolution=16, code_dim=16, channel_base=256,
                                            channel_max=32, local_channel_base=256, global_steps=6, local_steps=6,
                                            batch_size=8, bank_size=64, checkpoint_every=3, extract_batch=32,
                                            resnet_input=64),
                     models=SlideModelConfig(epochs=2, patience=2, batch_size=4, max_patches=4, width=8, seeds=2,
                                             epoch_cap=2),
                     workers=2),
    # 100 slides per type (TCGA projects have 300-500): slide-level models learn from slide labels, and with
    # 40 per type (32 to train per fold) nothing slide-level learnt better than chance; 150 per type made
    # `make reproduce` take 3-4 h on 2 cores (measured stage by stage on the development cohort, which
    # keeps its 150 per type), 100 brings it within the 2 h of a laptop run.  Slides as TCGA's
    # are laid out ("wsi": one to three sections on glass), 4096 px wide: about 270 global patches of
    # which about 110 hold tissue (a 1024 px "section" slide had 16 and 11: too few for supertiles,
    # top-k or attention over regions to act); only tissue patches are encoded
    # seed 0 is the development cohort: every choice below was made on it; seed 1 is held out and
    # reported
    "quick": Profile("quick", SimConfig(slides_per_type=100, size=4096, seed=1, dev_seed=0, layout="wsi"),
                     # budget chosen by inner validation on the development cohort (`isg study budget`,
                     # results/quick/training_budget.md): the mean inner-validation loss is lowest at epoch 6
                     # (cosine 0.801, constant 0.803: a tie, the rule takes the lower); patience 2 reaches every
                     # curve's best up to there; cosine keeps the 30-epoch horizon it was measured with
                     models=SlideModelConfig(epochs=30, patience=2, lr_schedule="cosine", batch_size=4, max_patches=12,
                                             width=16, jobs=2,
                                             # two training seeds for the headline rows (three cost
                                             # about 8 min more of the 2 h)
                                             seeds=2),
                     workers=2),
    "paper": Profile("paper", SimConfig(slides_per_type=150, size=8192, seed=1, dev_seed=0, layout="wsi"),
                     # channels: E_G + 64 x E_L cost 0.44 x ResNet50's FLOPs per kept patch (features.flops,
                     # benchmarks/extraction.py). E_L sees the same 32 px patches as at quick, where 256 / r
                     # channels read cells better than 512 / r (+0.013, extractor_choices); 1024 / r cost
                     # 0.93 x ResNet50's FLOPs but 1.4-1.5 x its time on
                     # a CPU (E_L's thin convolutions run at ~2/3 of ResNet50's FLOP rate), 8192 / 256 / 2048 3.6x
                     features=FeatureConfig(global_resolution=256, local_resolution=32, code_dim=128, channel_base=4096,
                                            channel_max=128, local_channel_base=512, global_steps=50_000,
                                            local_steps=50_000, batch_size=32, bank_size=50_000, checkpoint_every=1000,
                                            extract_batch=256, resnet_input=224),
                     models=SlideModelConfig(seeds=3),
                     workers=16),
}


def with_local_size(profile: Profile, q: int) -> Profile:
    """``profile`` with local patches of ``q`` px (paper Sec. 3's q; 16 px at 0.5 mpp is about one
    nucleus), the same global patches: E_L encodes them at ``min(local_resolution, q)``.  The name is
    kept; a cohort tiled at another q keeps its tiles apart (:func:`tiles_folder`)."""
    tiling = replace(profile.tiling, local_size=q)  # validates that q divides p
    return replace(profile, tiling=tiling,
                   features=replace(profile.features, local_resolution=min(profile.features.local_resolution, q)))


def tiles_folder(profile: Profile) -> str:
    """The cohort folder that holds a profile's tiles: ``tiles`` at the default q, ``tiles-q<q>`` else."""
    q = profile.tiling.local_size
    return "tiles" if q == TilingConfig.local_size else f"tiles-q{q}"


def get_profile(name: str | None = None) -> Profile:
    """Return the named profile; ``None`` reads ``ISG_PROFILE`` (default ``quick``)."""
    name = name or os.environ.get("ISG_PROFILE", "quick")
    try:
        return PROFILES[name]
    except KeyError:
        raise IsgError(None, f"unknown profile {name!r} (choose one of {', '.join(PROFILES)})") from None
