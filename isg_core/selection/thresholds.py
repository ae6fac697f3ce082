"""Keep/drop rules on a slide's patch scores, and the metrics used to choose between them.

A :class:`Threshold` is one of

* ``score``   — absolute, on the selector's own score (Shannon: normalised bits, see below);
* ``bits``    — Shannon only: absolute bit count of a full p x p patch (paper Table 4's unit);
* ``bpp``     — Shannon only: bits per pixel (0 .. 24 for RGB);
* ``mu_sigma`` — per slide, keep score > mu + k sigma of the slide's scores (paper Sec. 4.2);
* ``robust``  — per slide, keep score > median + k * 1.4826 MAD (a robust mu + k sigma);
* ``otsu``    — per slide, keep score > Otsu's threshold of the slide's score histogram
  (the valley between the textureless and the textured mode; no parameter).

Shannon scores are normalised by the bits of an incompressible patch of the same size,
24 bits per pixel: ``score = bits / (24 * H * W) = bpp / 24``, so a bit count or a bpp
converts to a score without looking at any data: ``score = bits / (24 p^2)``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata

from ..errors import IsgError

KINDS = ("score", "bits", "bpp", "mu_sigma", "robust", "otsu")
PER_SLIDE = ("mu_sigma", "robust", "otsu")


@dataclass(frozen=True)
class Threshold:
    kind: str = "score"
    value: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise IsgError(None, f"unknown threshold kind {self.kind!r} (choose one of {', '.join(KINDS)})")
        if not np.isfinite(self.value):
            raise IsgError(None, f"threshold value must be finite, got {self.value}")

    def __str__(self) -> str:
        if self.kind == "otsu":
            return "otsu"
        return f"{self.kind}:{self.value:g}"


def parse_threshold(text: "str | float | Threshold | None", default: "Threshold | None" = None) -> "Threshold | None":
    """``'0.2'`` (score), ``'score:0.2'``, ``'bits:1.6e6'``, ``'bpp:6'``, ``'mu_sigma:1'``
    (also ``'mu+sigma'``, ``'mu+1.5sigma'``), ``'robust:1'``, ``'otsu'``; None -> ``default``."""
    if text is None:
        return default
    if isinstance(text, Threshold):
        return text
    if isinstance(text, (int, float)):
        return Threshold("score", float(text))
    t = str(text).strip().lower().replace(" ", "")
    if t == "otsu":
        return Threshold("otsu", 0.0)
    if t.startswith("mu+") and t.endswith("sigma"):
        k = t[3:-5]
        try:
            return Threshold("mu_sigma", float(k) if k else 1.0)
        except ValueError:
            raise IsgError(None, f"cannot parse threshold {text!r}") from None
    kind, _, val = t.partition(":") if ":" in t else ("score", "", t)
    try:
        return Threshold(kind, float(val) if val else 1.0)
    except ValueError:
        raise IsgError(None, f"cannot parse threshold {text!r} "
                             "(e.g. 0.2, bits:1.6e6, bpp:6, mu_sigma:1, robust:1, otsu)") from None


def otsu_value(values: np.ndarray, nbins: int = 128) -> float:
    """Otsu's threshold of a 1-D sample (between-class variance maximised over ``nbins``)."""
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return float("nan")
    lo, hi = v.min(), v.max()
    if hi <= lo:
        return float(lo)
    hist, edges = np.histogram(v, bins=nbins, range=(lo, hi))
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(hist)
    w1 = w0[-1] - w0
    m = np.cumsum(hist * centres)
    mu0 = m / np.maximum(w0, 1)
    mu1 = (m[-1] - m) / np.maximum(w1, 1)
    between = w0 * w1 * (mu0 - mu1) ** 2
    return float(edges[1:][int(np.argmax(between[:-1]))])


def resolve_threshold(scores: np.ndarray, threshold: Threshold, pixels: int | None = None) -> float:
    """The score value a threshold means on this slide: keep ``scores > value``.
    ``pixels`` (p^2 of the global patch) is needed for ``bits``."""
    s = np.asarray(scores, float)
    k, v = threshold.kind, threshold.value
    if k == "score":
        return float(v)
    if k == "bpp":
        return float(v) / 24.0
    if k == "bits":
        if not pixels:
            raise IsgError(None, "a 'bits' threshold needs the patch size (pixels)")
        return float(v) / (24.0 * pixels)
    if s.size == 0:
        return float("inf")
    if k == "mu_sigma":
        return float(s.mean() + v * s.std())
    if k == "robust":
        med = np.median(s)
        return float(med + v * 1.4826 * np.median(np.abs(s - med)))
    if k == "otsu":
        return otsu_value(s)
    raise IsgError(None, f"unknown threshold kind {k!r}")  # pragma: no cover


def select(scores: np.ndarray, threshold: "Threshold | str | float" = Threshold("otsu"),
           pixels: int | None = None) -> np.ndarray:
    """Keep mask (bool, same length as ``scores``): ``scores > resolve_threshold(...)``."""
    th = parse_threshold(threshold)
    s = np.asarray(scores, float)
    return s > resolve_threshold(s, th, pixels)


#: Table 4's Shannon thresholds as ratios of the default: the paper's 8e5, 1.6e6 (its best) and
#: 2.4e6 bits, whose ratios transfer where its bit counts do not; and the per-slide rule it compares
TABLE4_RATIOS = (0.5, 1.0, 1.5)
TABLE4_RULE = "mu_sigma:1"


def table4_thresholds(default_bpp: float) -> list[str]:
    """The Shannon thresholds Table 4 applies besides the default: ``bpp:<ratio x default>`` for
    each ratio but 1, and the per-slide rule (what a cohort's features must cover)."""
    return [f"bpp:{default_bpp * r:g}" for r in TABLE4_RATIOS if r != 1.0] + [TABLE4_RULE]


# --- metrics ---------------------------------------------------------------------------------
def auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """ROC AUC = P(score of a positive > score of a negative), ties counting 1/2: the
    Mann-Whitney U statistic over n_pos * n_neg, from average ranks."""
    pos = np.asarray(pos, float).ravel()
    neg = np.asarray(neg, float).ravel()
    n1, n0 = pos.size, neg.size
    if n1 == 0 or n0 == 0:
        return float("nan")

    r = rankdata(np.concatenate([pos, neg]))  # average ranks for ties
    u = r[:n1].sum() - n1 * (n1 + 1) / 2
    return float(u / (n1 * n0))


def precision_recall(keep: np.ndarray, truth: np.ndarray) -> dict:
    """Precision, recall, F1 and the kept fraction of a keep mask against truth (True = tissue)."""
    keep = np.asarray(keep, bool)
    truth = np.asarray(truth, bool)
    tp = int((keep & truth).sum())
    fp = int((keep & ~truth).sum())
    fn = int((~keep & truth).sum())
    p = tp / (tp + fp) if tp + fp else float("nan")
    r = tp / (tp + fn) if tp + fn else float("nan")
    f1 = 2 * p * r / (p + r) if (p + r) and np.isfinite(p) and np.isfinite(r) else float("nan")
    return {"precision": p, "recall": r, "f1": f1, "kept": float(keep.mean()) if keep.size else float("nan")}
