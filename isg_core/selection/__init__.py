"""Patch selection (paper Sec. 3.1, Eq. 1): keep texture-abundant global patches.

Shannon selector.  h(x) ~ K(x) is bounded above by the length in bits of x under a lossless
compressor; ``ShannonSelector.score(patch) = bits / (24 H W)`` (bits per pixel / 24), a fixed
normaliser: 0 for nothing to encode, 1 for an incompressible RGB patch.  Fig. 2's values
(textureless 0.04-0.05, textured 0.39-0.94) fit a fixed normaliser, not a per-slide min-max
(which would force the extremes to 0 and 1 on every slide); ours give 0.00-0.02 for solid
colour and sparse specks, ~0.07 for CMU glass, 0.6-0.9 for CMU tissue.

Compressor (measured: ``benchmarks/selection.py`` -> ``results/quick/selection_compressor_study``;
CMU-1-Small-Region: 33 tissue vs 32 blank-glass tiles labelled by saturation; ISG-Sim quick,
every 4th slide: 1164 tissue vs 772 textureless patches of ``patches.csv``; AUC tissue vs
textureless, and input MP/s on one core):

    compressor  ds  CMU AUC  Sim AUC  Sim MP/s     compressor  ds  CMU AUC  Sim AUC  Sim MP/s
    deflate      1   1.000    0.995     16         zstdgrad     1   1.000    0.999     94
    png          1   1.000    0.998      9         zstdgrad     2   1.000    0.998    328
    lzma         1   1.000    0.996      2         zstdgrad     4   1.000    0.996    593
    zstd         1   1.000    0.995    178         jpegxl       1   1.000    0.998    131
    webp         1   1.000    0.998     15         jpegxl/webp/png 4  1.000  0.995-0.996  140-190

Every codec separates CMU tissue from glass perfectly; on ISG-Sim (whose textureless class
includes blur, pen, solid blocks and dust) the codecs with an image model (png, webp, jpegxl,
zstdgrad) beat raw byte-stream compressors (deflate, zstd, lzma: 0.990-0.995).  Rule: among
codecs whose cost is at most 0.25x OpenSlide's read+decode of the same patches (the goal;
read+decode = 0.95 ms per 256 px patch on ISG-Sim, 2.0 ms on CMU), take the best ISG-Sim AUC.
jpegxl has a ~0.5 ms per-call floor whatever the size (0.49x read), webp/png need ds 4 and then
score 0.995-0.996 at 0.37-0.42x; zstd after a planar-predictor step (``zstdgrad``: the PNG-filter
idea in front of zstd) gives AUC 0.998 at 0.22x.  Default: ``zstdgrad``.

``score_downsample`` (box filter, Pillow ``reduce``): 2 by default.  Full resolution costs
0.82x read on ISG-Sim (AUC 0.999), 2x costs 0.22x (AUC 0.998), 4x 0.13x (AUC 0.996) but then
dust counts 16x more per pixel: a glass patch with 150 specks scores 0.20 at 4x vs 0.07 at 2x
(the test asks < 0.1).  2x is the cheapest setting that meets the cost aim without that failure.

Threshold.  Default ``bpp:8.7`` (score 0.3625; 5.7e5 bits for our 256 px patch at 0.5 mpp):
the midpoint of the gap between the highest CMU glass tile (0.142) and the lowest CMU tissue
tile (0.585) — set on the real slide, then *evaluated* on ISG-Sim (never tuned on it).  The
paper's Table 4 bit counts are for its unstated patch size: for 256 px, 8e5 bits = 12.2 bpp
(keeps 53% of patches on ISG-Sim, P 0.994 R 0.900) and 1.6e6 / 2.4e6 exceed 24 bpp (keep
nothing); if their patch were 512 px they would be 3.1 / 6.1 / 9.2 bpp.  Per-slide rules on
ISG-Sim quick (all 7752 patches, tissue = textureless == 0):

    rule                                   precision  recall   F1    kept
    bpp:8.7 (default, fixed)                 0.937    1.000   0.968  0.621
    otsu (per slide, on the scores)          0.990    0.934   0.961  0.549
    mu_sigma:1 (paper Sec. 4.2)              1.000    0.373   0.543  0.217
    mu_sigma:0                               0.993    0.907   0.948  0.532
    robust:1 (median + 1.4826 MAD)           1.000    0.050   0.095  0.029

mu + sigma keeps only the top tail of the tissue (ISG-Sim slides are ~58% tissue), as the
paper's normal-distribution argument implies; a robust mu/sigma is worse, since median and MAD
then describe the tissue mode itself.  Otsu on the slide's scores finds the valley between the
two modes but splits an all-tissue slide in two; the fixed threshold does not depend on the
slide's tissue share, so it is the default (recall 1.000: nothing textured is lost; its false
positives, 303 of 7752 patches: 167 tissue-edge patches (>= 70% glass but ~25% tissue), 78
out-of-focus tissue (blur keeps enough bits: median score 0.46) and 49 dust clusters).

Baselines (``selectors``): IG, Canny, DoG, LoG, Otsu/HE2RNA; DexiNed registered unavailable.
Their default thresholds come from the same CMU gap-midpoint rule (Otsu/HE2RNA: HE2RNA's
tissue fraction >= 0.5).  ISG-Sim quick at defaults (P / R / F1; cost vs read on ISG-Sim):
shannon 0.937/1.000/0.968 (0.22x), ig 0.983/0.913/0.946 (0.39x), canny 0.995/0.965/0.980
(3.1x), dog 0.944/0.634/0.759 (1.4x), log 0.943/0.567/0.708 (1.7x), otsu = he2rna
0.974/0.853/0.910 (0.32x).  ISG-Sim is SIMULATED: these say the code works, not what TCGA gives.
"""
from __future__ import annotations

from .compressors import COMPRESSOR_SETTINGS, COMPRESSORS, check_lossless, get_compressor
from .evaluate import (
                       evaluate_scores,
                       evaluate_selectors,
                       keep_masks,
                       saturation_fraction,
                       saturation_labels,
                       score_cohort,
)
from .selectors import SELECTORS, SelectionConfig, Selector, ShannonSelector, available_selectors, get_selector
from .slide import add_selection_to_h5, read_selection, run_select, score_slide, selection_thumbnail, threshold_info
from .study import compressor_study
from .thresholds import Threshold, auc, parse_threshold, precision_recall, resolve_threshold, select

__all__ = [
    "COMPRESSORS", "COMPRESSOR_SETTINGS", "SELECTORS", "SelectionConfig", "Selector", "ShannonSelector",
    "Threshold", "add_selection_to_h5", "auc", "evaluate_scores", "evaluate_selectors", "keep_masks",
    "available_selectors", "check_lossless", "compressor_study",
    "get_compressor", "get_selector", "parse_threshold", "precision_recall", "read_selection",
    "resolve_threshold", "run_select", "saturation_fraction", "saturation_labels", "score_cohort", "score_slide",
    "select", "selection_thumbnail", "threshold_info",
]
