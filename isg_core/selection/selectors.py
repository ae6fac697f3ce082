"""Patch selectors: Shannon (ours) and the paper's Table 2 baselines, one interface.

A selector has ``name``, ``score(patch) -> float`` (higher = keep), ``fit(slide_thumbnail)``
(a no-op except for the Otsu/HE2RNA selectors, which need a per-slide threshold),
``default_threshold`` and ``available``.  Baseline scores work on the patch's luminance
(ITU-R 601 grey) in [0, 1]:

* ``ig``     — mean gradient magnitude (central differences, ``np.gradient``);
* ``canny``  — edge density: fraction of pixels on Canny edges (``skimage.feature.canny``,
  sigma 1, skimage's default hysteresis thresholds);
* ``dog``    — difference-of-Gaussians energy: mean of (G_1 - G_1.6)^2 (Marr-Hildreth ratio);
* ``log``    — Laplacian-of-Gaussian energy: mean of (sigma^2 LoG_sigma)^2, sigma 2;
* ``otsu``   — HE2RNA's tissue masking: fraction of the patch's pixels darker than the
  Otsu threshold of the slide thumbnail's grey levels;
* ``he2rna`` — HE2RNA's patch score as Fig. 2 reports it.  The paper does not define it; its
  values (1.000 for a solid-colour patch, 0.2-1.0 for textureless ones) are what the Otsu
  tissue fraction gives (any dark flat patch is "all tissue" under Otsu), so it *is* the
  ``otsu`` selector under HE2RNA's name (same score; HE2RNA keeps a tile when at least half
  of it is tissue);
* ``dexined`` — DexiNed (learned edge detector, the paper used kornia's): kornia is not
  installed and weights cannot be downloaded here, so it is registered but unavailable:
  ``available_selectors()`` maps it to None and using it raises :class:`IsgError`.
  Nothing is substituted for it.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter, gaussian_laplace
from skimage.feature import canny

from ..errors import IsgError
from .compressors import downsample, get_compressor
from .thresholds import Threshold, otsu_value


def _grey(patch: np.ndarray) -> np.ndarray:
    a = np.asarray(patch)
    if a.ndim != 3 or a.shape[2] < 3:
        raise IsgError(None, f"expected an (H, W, 3) patch, got shape {a.shape}")
    return (a[..., 0] * 0.299 + a[..., 1] * 0.587 + a[..., 2] * 0.114).astype(np.float32) / 255.0


class Selector(abc.ABC):
    """A patch scorer: ``score(patch) -> float``, higher means more worth keeping."""
    name = "base"
    #: used when the caller gives no threshold (how each was set: README, "Design choices")
    default_threshold = Threshold("otsu")
    available = True
    requires_fit = False

    def fit(self, slide_thumbnail: np.ndarray) -> "Selector":
        return self

    @abc.abstractmethod
    def score(self, patch: np.ndarray) -> float:
        """The patch's score (each subclass cites the quantity it measures)."""

    def params(self) -> dict:
        return {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.params().items())})"


@dataclass
class SelectionConfig:
    """Shannon selector settings (defaults chosen by the compressor study: README, "Design choices")."""
    compressor: str = "zstdgrad"
    score_downsample: int = 2


class ShannonSelector(Selector):
    """Paper Eq. 1: h(x) ~ K(x) <= bits of x under a lossless compressor.
    ``bits(patch)`` is the compressed length of the (optionally ``score_downsample``-reduced)
    patch, expressed for the full patch: bpp of the scored copy x H x W of the input, so that
    bit thresholds mean the same whatever the downsample.  ``score(patch)`` = bits / (24 H W)
    = bpp / 24 in [0, 1] (24 bpp = an incompressible RGB patch; clipped at 1, since a codec
    may expand random data by a few header bytes)."""

    name = "shannon"
    default_threshold = Threshold("bpp", 8.7)  # = score 0.3625 = 5.7e5 bits for a 256 px patch

    def __init__(self, compressor: str | None = None, score_downsample: int | None = None):
        cfg = SelectionConfig()
        self.compressor = compressor or cfg.compressor
        self.score_downsample = int(cfg.score_downsample if score_downsample is None else score_downsample)
        self._bits = get_compressor(self.compressor)
        if self.score_downsample < 1:
            raise IsgError(None, f"score_downsample must be >= 1, got {self.score_downsample}")

    def bpp(self, patch: np.ndarray) -> float:
        q = downsample(patch, self.score_downsample)
        return self._bits(q) / (q.shape[0] * q.shape[1])

    def bits(self, patch: np.ndarray) -> float:
        return self.bpp(patch) * patch.shape[0] * patch.shape[1]

    def score(self, patch: np.ndarray) -> float:
        return min(self.bpp(patch) / 24.0, 1.0)

    def params(self) -> dict:
        return {"compressor": self.compressor, "score_downsample": self.score_downsample}


class IGSelector(Selector):
    name = "ig"
    default_threshold = Threshold("score", 0.024)

    def score(self, patch):
        gy, gx = np.gradient(_grey(patch))
        return float(np.mean(np.hypot(gx, gy)))


class CannySelector(Selector):
    name = "canny"
    default_threshold = Threshold("score", 0.074)

    def __init__(self, sigma: float = 1.0):
        self.sigma = sigma

    def score(self, patch):
        return float(canny(_grey(patch), sigma=self.sigma).mean())

    def params(self):
        return {"sigma": self.sigma}


class DoGSelector(Selector):
    name = "dog"
    default_threshold = Threshold("score", 2.4e-4)

    def __init__(self, sigma: float = 1.0, ratio: float = 1.6):
        self.sigma, self.ratio = sigma, ratio

    def score(self, patch):
        g = _grey(patch)
        g -= g.mean()  # both filters ignore offsets; centring avoids float32 round-off on flat patches
        d = gaussian_filter(g, self.sigma) - gaussian_filter(g, self.sigma * self.ratio)
        return float(np.mean(d * d))

    def params(self):
        return {"sigma": self.sigma, "ratio": self.ratio}


class LoGSelector(Selector):
    name = "log"
    default_threshold = Threshold("score", 1.8e-3)

    def __init__(self, sigma: float = 2.0):
        self.sigma = sigma

    def score(self, patch):
        g = _grey(patch)
        g -= g.mean()  # LoG ignores offsets; centring avoids float32 round-off on flat patches
        r = gaussian_laplace(g, self.sigma) * self.sigma**2
        return float(np.mean(r * r))

    def params(self):
        return {"sigma": self.sigma}


class OtsuSelector(Selector):
    """Tissue fraction under the slide's Otsu threshold on grey levels (HE2RNA).  ``fit`` on
    the slide thumbnail first; ``score_slide`` does it.  Keep when >= half is tissue."""

    name = "otsu"
    default_threshold = Threshold("score", 0.5)
    requires_fit = True

    def __init__(self, level: float | None = None):
        self.level = level  # grey threshold in [0, 1]; None until fitted

    def fit(self, slide_thumbnail):
        self.level = otsu_value(_grey(slide_thumbnail).ravel(), nbins=256)
        return self

    def score(self, patch):
        if self.level is None:
            raise IsgError(None, f"the {self.name} selector needs a per-slide threshold: "
                                 f"call fit(slide_thumbnail) first")
        return float(np.mean(_grey(patch) < self.level))

    def params(self):
        return {"level": self.level}


class HE2RNASelector(OtsuSelector):
    name = "he2rna"


class DexiNedSelector(Selector):
    name = "dexined"
    available = False
    reason = ("DexiNed is unavailable offline: it needs kornia (not installed) and its pretrained "
              "weights (cannot be downloaded here); no substitute is used")

    def __init__(self, *a, **k):
        raise IsgError(None, self.reason)

    def score(self, patch: np.ndarray) -> float:  # never reached: __init__ refuses
        raise IsgError(None, self.reason)


#: name -> selector class.
SELECTORS: dict[str, type[Selector]] = {
    "shannon": ShannonSelector,
    "ig": IGSelector,
    "canny": CannySelector,
    "dexined": DexiNedSelector,
    "dog": DoGSelector,
    "log": LoGSelector,
    "otsu": OtsuSelector,
    "he2rna": HE2RNASelector,
}


def available_selectors() -> dict[str, type[Selector] | None]:
    """Every registered selector; None for those that cannot run here (DexiNed)."""
    return {k: (v if v.available else None) for k, v in SELECTORS.items()}


def get_selector(name: str, **kwargs) -> Selector:
    """A new selector by name; IsgError for unknown or unavailable ones."""
    cls = SELECTORS.get(name)
    if cls is None:
        raise IsgError(None, f"unknown selection method {name!r} (choose one of {', '.join(SELECTORS)})")
    if not cls.available:
        raise IsgError(None, getattr(cls, "reason", f"selector {name!r} is unavailable"))
    return cls(**kwargs)


def register_selector(cls: type[Selector]) -> type[Selector]:
    """Add a selector class under its ``name`` (usable as a class decorator); it is then offered
    everywhere a selector is chosen by name (``isg prepare --methods``, Table 2's rows, the
    selection studies)."""
    if not (isinstance(cls, type) and issubclass(cls, Selector)) or cls.name in ("base", ""):
        raise IsgError(None, f"{cls!r}: a selector is a Selector subclass with its own name")
    if cls.name in SELECTORS:
        raise IsgError(None, f"selector {cls.name!r} is registered already")
    SELECTORS[cls.name] = cls
    return cls
