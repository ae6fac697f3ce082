"""HE2RNA (Schmauch et al., "A deep learning model to predict RNA-Seq expression of tumours from
whole slide images", Nature Communications 11:3877, 2020): the paper's Table 1 baseline.

The pipeline of the original: Otsu-thresholded 224 px tiles at 20x -> ImageNet ResNet50 features
(2048-d) -> per slide, K-means on the tile *coordinates* groups the tiles into (at most) 100
"supertiles" whose feature is the mean of their tiles' features (:func:`supertiles`) -> a
per-tile MLP gives one score per tile and per gene -> the slide's prediction for a gene is the
mean of its k highest tile scores (:class:`HE2RNA`).

Written to follow the published code (github.com/owkin/HE2RNA_code, ``model.py`` and
``supertile_preprocessing.py``); the differences, and why:

* The original finds padding by ``max over channels of x > 0`` (ResNet features after a ReLU are
  >= 0 and padding is all zeros).  Our features can be negative, so an explicit ``mask`` says
  which rows are real.  Padded rows are zeroed before the MLP (so garbage, even NaN, can reach
  neither the output nor the gradients) and get a score of -inf before the top-k.
* The original's top-k runs over all rows and divides by ``sum(mask[:, :, :k])``, which is the
  mean of the top min(k, n_valid) scores only when the padding sits at the end and every real
  score beats the zeros of the padded rows.  Here it is exactly that mean, whatever the order of
  the rows: the model is invariant to the order of the tiles and to the padding.
* The original draws k with numpy's global RNG; here a ``torch.Generator`` can be passed for a
  reproducible sequence (else torch's global RNG is used).  As in the original one k is drawn
  per forward call (per batch), not per slide.
* K-means is a small deterministic numpy k-means++ / Lloyd (the original used libKMCUDA).

As published (checked against ``configs/config_CD3_all_TCGA.ini`` and its MKI67, CD19-CD20 and
epithelium twins, the per-gene-group supertile runs that Table 1's genes come from, and against
``model.py``):

* the head (:class:`HE2RNAConfig`): ``layers=(256, 256)``, ``dropout=0.25``, ReLU,
  ``ks=(1, 2, 5, 10, 20, 50, 100)``;
* the training (:data:`PUBLISHED_SCHEDULE`): Adam at lr 3e-4 without weight decay, batches of 16
  slides, at most 200 epochs, early stopping with patience 50 on the mean validation correlation
  (``model.fit``: the epoch kept is the one of the best correlation, not of the best loss), every
  supertile of a slide in every step, and predictions passed through a ReLU (``model.predict``);
* the inputs: at most :data:`MAX_TILES` tiles per slide (the README's 8,000), grouped into 100
  supertiles (``supertile_preprocessing.py --n_tiles 100``);
* the MSI path (:data:`MSI_PUBLISHED_SCHEDULE`, ``msi_prediction.py``): Keras Adam at 1e-3, 50
  epochs, batches of 10, no early stopping (the last epoch is kept).

The original also starts the last bias at the training mean of the targets; our engine
standardises each target on the training slides, so that mean is 0 (``ModelRecipe.runtime``).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np
import torch
from torch import nn

from ...kmeans import kmeans
from ..traits import CLASSIFICATION, GLOBAL, ModelTraits

DEFAULT_KS = (1, 2, 5, 10, 20, 50, 100)
#: tiles per slide HE2RNA reads at most (its README: "n_tiles = 8,000 when all tiles are treated separately")
MAX_TILES = 8000
#: HE2RNA's published training of its supertile models (configs/config_*_all_TCGA.ini, model.fit/predict),
#: as fields of the engine's TrainConfig
PUBLISHED_SCHEDULE = {"epochs": 200, "patience": 50, "lr": 3e-4, "batch_size": 16, "weight_decay": 0.0,
                      "max_patches": None, "stop_on": "pcc", "prediction_floor": 0.0, "lr_schedule": "constant"}
#: HE2RNA's MSI classifier (msi_prediction.py: Adam(lr=0.001), model.fit(epochs=50, batch_size=10), no
#: early stopping, so the last epoch's model is the one used)
MSI_PUBLISHED_SCHEDULE = {"epochs": 50, "patience": 50, "lr": 1e-3, "batch_size": 10, "weight_decay": 0.0,
                          "max_patches": None, "stop_on": "last", "lr_schedule": "constant"}


# --- supertiles: K-means on tile coordinates ---------------------------------------------------
def supertiles(coords: np.ndarray, features: np.ndarray, n_clusters: int = 100,
               seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """HE2RNA's supertile preprocessing of one slide (``supertile_preprocessing.py``).

    K-means with k = min(n_clusters, n) on the tile coordinates ``coords`` (n, 2); each
    supertile's feature is the mean of its tiles' ``features`` (n, D), its coordinate the mean of
    their coordinates.  Returns (cluster_features (k', D), cluster_coords (k', 2)), k' <= k: as
    in the original, a cluster left empty by Lloyd's iterations is dropped.  k is also capped at
    the number of *distinct* coordinates (tiles on a grid always have distinct ones), since
    K-means cannot place more centres than there are distinct points.
    """
    coords = np.asarray(coords, dtype=np.float64)
    features = np.asarray(features)
    if coords.ndim != 2 or coords.shape[1] != 2 or len(coords) != len(features) or len(coords) == 0:
        raise ValueError(f"expected coords (n, 2) and features (n, D) with n >= 1, "
                         f"got {coords.shape} and {features.shape}")
    k = min(int(n_clusters), len(np.unique(coords, axis=0)))
    _, labels = kmeans(coords, k, seed=seed)
    kept = [j for j in range(k) if (labels == j).any()]
    feats = np.stack([features[labels == j].mean(axis=0) for j in kept])
    cents = np.stack([coords[labels == j].mean(axis=0) for j in kept])
    return feats, cents


def cap_tiles(f: np.ndarray, pos: np.ndarray, max_tiles: int | None = MAX_TILES, seed: int = 0
              ) -> tuple[np.ndarray, np.ndarray]:
    """At most ``max_tiles`` rows of ``f`` and ``pos``: a fixed random subset (seeded; in slide
    order) when a slide has more, as HE2RNA reads at most 8,000 tiles of a slide."""
    if max_tiles is None or len(f) <= max_tiles:
        return f, pos
    keep = np.sort(np.random.default_rng(seed).choice(len(f), max_tiles, replace=False))
    return f[keep], pos[keep]


def global_only_inputs(f: np.ndarray, pos: np.ndarray, n_supertiles: int | None = None,
                       max_tiles: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The inputs of a model that reads only the global features f (HE2RNA, the ViTs on f): f
    (float32), a zero placeholder for the local cube R ((n, 1, 1, d) float16: nothing of E_L is
    stored or run) and the grid positions, after HE2RNA's supertiles when ``n_supertiles`` is set
    (supertile coordinates rounded to the grid).  Cross-validation and ``isg predict`` both call
    this, so a bundle sees a slide exactly as its fold's training did.  ``max_tiles``: HE2RNA's
    tile cap (:func:`cap_tiles`), applied before the supertiles."""
    f, pos = cap_tiles(np.asarray(f, np.float32), np.asarray(pos, np.int64), max_tiles)
    if n_supertiles is not None and len(f) > 1:
        f, cents = supertiles(pos.astype(np.float64), f, n_supertiles)
        f, pos = f.astype(np.float32), np.rint(cents).astype(np.int64)
    return f, np.zeros((len(f), 1, 1, f.shape[1]), np.float16), pos


# --- the model ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class HE2RNAConfig:
    """Sizes of HE2RNA's per-tile MLP and its top-k pooling.

    ``layers``: hidden widths of the 1x1-convolution MLP (empty: one linear map to the outputs);
    ``dropout``: after every hidden ReLU; ``ks``: the numbers of top tiles averaged (one drawn
    per training step, all of them averaged in evaluation).
    """

    layers: tuple[int, ...] = (256, 256)
    ks: tuple[int, ...] = DEFAULT_KS
    dropout: float = 0.25

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", tuple(int(w) for w in self.layers))
        object.__setattr__(self, "ks", tuple(int(k) for k in self.ks))
        if not self.ks or min(self.ks) < 1:
            raise ValueError(f"ks must be a non-empty list of positive integers, got {self.ks}")
        if any(w < 1 for w in self.layers):
            raise ValueError(f"layer widths must be >= 1, got {self.layers}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    def to_dict(self) -> dict:
        return asdict(self)


class HE2RNA(nn.Module):
    """One score per tile and per output from a shared MLP, then the mean of the top-k scores.

    ``forward(x, mask)``: x (B, N, D) tile or supertile features, mask (B, N) bool (True = real
    tile; None = all real) -> (B, n_outputs).  Training mode draws k from ``config.ks`` once per
    call (recorded in ``last_k``); evaluation mode averages the predictions of every k in ks.
    k is capped per slide at its number of real tiles.  A slide without any real tile predicts 0.

    ``bias_init`` (n_outputs,) sets the bias of the last layer (the original passes the training
    mean of the targets, so the model starts by predicting the mean).
    """

    def __init__(self, input_dim: int, n_outputs: int, config: HE2RNAConfig | None = None,
                 bias_init: torch.Tensor | None = None, generator: torch.Generator | None = None,
                 **overrides):
        super().__init__()
        self.config = cfg = replace(config or HE2RNAConfig(), **overrides)
        self.input_dim, self.n_outputs, self.generator = input_dim, n_outputs, generator
        widths = (input_dim, *cfg.layers, n_outputs)
        # 1x1 Conv1d over the tile axis, as in the original: the same MLP applied to every tile
        self.layers = nn.ModuleList([nn.Conv1d(widths[i], widths[i + 1], kernel_size=1)
                                     for i in range(len(widths) - 1)])
        self.nonlin, self.dropout = nn.ReLU(), nn.Dropout(cfg.dropout)
        if bias_init is not None:
            bias_init = torch.as_tensor(bias_init, dtype=torch.float32).reshape(-1)
            if bias_init.numel() != n_outputs:
                raise ValueError(f"bias_init must have {n_outputs} values, got {bias_init.numel()}")
            with torch.no_grad():
                self.layers[-1].bias.copy_(bias_init)
        self.last_k: int | None = None
        self.fixed_k: int | None = None  # set: training uses this k instead of drawing one

    def tile_scores(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, D) -> (B, N, n_outputs): the MLP on every tile (no masking)."""
        # Conv1d wants (B, D, N); a contiguous copy makes the 1x1 convolutions about 2x faster on a
        # CPU than on the transposed view (30 against 61 ms per training step of 16 slides x 100
        # supertiles x 2048, one thread), and gives the same numbers
        h = x.transpose(1, 2).contiguous()
        for layer in self.layers[:-1]:
            h = self.dropout(self.nonlin(layer(h)))
        return self.layers[-1](h).transpose(1, 2)

    def forward_fixed_k(self, x: torch.Tensor, mask: torch.Tensor | None, k: int) -> torch.Tensor:
        """Mean of the top-min(k, n_real) scores per slide and output."""
        return self._topk_means(*self._sorted_scores(x, mask), (k,))[0]

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if self.training and self.fixed_k is not None:  # k drawn by the caller (vmap over members)
            ks = (self.fixed_k,)
        elif self.training:
            draw = torch.randint(len(self.config.ks), (1,), generator=self.generator).item()
            self.last_k = self.config.ks[draw]
            ks = (self.last_k,)
        else:
            ks = self.config.ks
        preds = self._topk_means(*self._sorted_scores(x, mask), ks)
        return torch.stack(preds).mean(dim=0)

    # -- top-k machinery -------------------------------------------------------------------------------
    def _sorted_scores(self, x: torch.Tensor, mask: torch.Tensor | None):
        if x.dim() != 3 or x.shape[-1] != self.input_dim:
            raise ValueError(f"expected x (B, N, {self.input_dim}), got {tuple(x.shape)}")
        b, n, _ = x.shape
        mask = torch.ones(b, n, dtype=torch.bool, device=x.device) if mask is None else mask.bool()
        if mask.shape != (b, n):
            raise ValueError(f"mask must be {(b, n)}, got {tuple(mask.shape)}")
        x = torch.where(mask[..., None], x, torch.zeros((), dtype=x.dtype, device=x.device))
        scores = self.tile_scores(x).masked_fill(~mask[..., None], float("-inf"))
        kmax = min(max(self.config.ks), n)
        top = scores.topk(kmax, dim=1, largest=True, sorted=True).values  # (B, kmax, O), real first
        n_real = mask.sum(dim=1)  # (B,)
        rank = torch.arange(kmax, device=x.device)
        top = top.masked_fill((rank[None, :] >= n_real[:, None])[..., None], 0.0)  # drop the -infs
        return top.cumsum(dim=1), n_real

    @staticmethod
    def _topk_means(cumsum: torch.Tensor, n_real: torch.Tensor, ks) -> list[torch.Tensor]:
        out = []
        for k in ks:
            keff = n_real.clamp(max=min(k, cumsum.shape[1])).clamp(min=1)  # (B,)
            idx = (keff - 1)[:, None, None].expand(-1, 1, cumsum.shape[2])
            out.append(cumsum.gather(1, idx)[:, 0] / keff[:, None].to(cumsum.dtype))
        return out


class HE2RNAOnFeatures(nn.Module):
    """"HE2RNA on our features": :class:`HE2RNA` with the common slide-model signature.

    ``forward(f, R, mask, pos)`` uses the global features f (B, N, d) of the kept patches as the
    tiles and ignores R and pos (R may be None).  No supertile clustering here: the kept patches
    are already few; run :func:`supertiles` when building the inputs to cluster them.
    """

    config_class = HE2RNAConfig
    #: f only, at most MAX_TILES tiles (R is ignored: InputStandardizer leaves it alone)
    traits = ModelTraits(reads=GLOBAL, max_tiles=MAX_TILES)
    #: how the engine trains it (its published schedule, beating the profile's)
    published_schedule = PUBLISHED_SCHEDULE

    def __init__(self, d: int, grid: int, n_outputs: int, config: HE2RNAConfig | None = None,
                 bias_init: torch.Tensor | None = None, generator: torch.Generator | None = None,
                 **overrides):
        super().__init__()
        self.d, self.grid = d, grid
        self.net = HE2RNA(d, n_outputs, config, bias_init=bias_init, generator=generator, **overrides)

    def forward(self, f: torch.Tensor, R: torch.Tensor | None, mask: torch.Tensor,
                pos: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(f, mask)


@dataclass(frozen=True)
class HE2RNAMSIConfig:
    """``hidden``: the widths of the hidden layers of HE2RNA's MSI classifier."""

    hidden: tuple[int, ...] = (256, 128)

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden", tuple(int(w) for w in self.hidden))
        if any(w < 1 for w in self.hidden):
            raise ValueError(f"hidden widths must be >= 1, got {self.hidden}")

    def to_dict(self) -> dict:
        return asdict(self)


class HE2RNAMSI(nn.Module):
    """HE2RNA's MSI path ("predict MSI status ... from WSIs directly", ``msi_prediction.py`` of the
    published code): the slide's tile features are averaged into one vector, and a small MLP
    classifies it.  The original: mean over all tiles of the 2048 ResNet50 features, scaled to zero
    mean and unit variance over slides, then Dense(256, sigmoid) -> Dense(128, sigmoid) -> Dense(1,
    sigmoid), binary cross-entropy, Adam at 1e-3.

    Here the last sigmoid is left to the loss (the output is a logit; ``binary_cross_entropy_with_
    logits`` is the same loss, computed stably) and the engine's per-channel standardisation of the
    tile features stands in for the scaling of their means.  ``hidden`` sets the two hidden widths.
    ``forward(f, R, mask, pos)``: the masked mean of f (B, N, d) over the real tiles -> (B, n_outputs).
    """

    config_class = HE2RNAMSIConfig
    #: f only, at most MAX_TILES tiles, MSI status alone (R is ignored: InputStandardizer leaves it alone)
    traits = ModelTraits(reads=GLOBAL, tasks=(CLASSIFICATION,), max_tiles=MAX_TILES)
    published_schedule = MSI_PUBLISHED_SCHEDULE

    def __init__(self, d: int, grid: int, n_outputs: int, hidden: tuple[int, ...] = (256, 128), **_ignored):
        super().__init__()
        self.d, self.grid = d, grid
        self.config = HE2RNAMSIConfig(hidden)
        widths = (d, *self.config.hidden)
        layers: list[nn.Module] = []
        for a, b in zip(widths[:-1], widths[1:]):
            layers += [nn.Linear(a, b), nn.Sigmoid()]
        layers.append(nn.Linear(widths[-1], n_outputs))
        self.mlp = nn.Sequential(*layers)

    def forward(self, f: torch.Tensor, R: torch.Tensor | None, mask: torch.Tensor,
                pos: torch.Tensor | None = None) -> torch.Tensor:
        m = mask.bool()[..., None]
        # padded rows contribute nothing, even if they hold garbage (NaN * 0 would still be NaN)
        pooled = torch.where(m, f, torch.zeros((), dtype=f.dtype, device=f.device)).sum(1) / m.sum(1).clamp(min=1)
        return self.mlp(pooled)
