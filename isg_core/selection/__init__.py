"""Patch selection (paper Sec. 3.1, Eq. 1): keep texture-abundant global patches.

* ``selectors``: the Shannon selector, ``score(patch) = bits / (24 H W)`` under a lossless
  compressor (bits per pixel / 24: 0 for nothing to encode, 1 for an incompressible RGB patch,
  a fixed normaliser as Fig. 2's values imply), and the paper's baselines (IG, Canny, DoG, LoG,
  Otsu / HE2RNA; DexiNed registered but unavailable offline), each with its default threshold;
* ``compressors``: the lossless compressors the Shannon selector can use, checked to round-trip;
* ``thresholds``: fixed and per-slide threshold rules (``bpp``, ``bits``, ``score``, ``mu_sigma``,
  ``robust``, ``otsu``), precision / recall and ROC AUC;
* ``slide``: scoring every global patch of a slide and storing the selection in its tiling
  HDF5 (``isg select``);
* ``evaluate`` and ``study``: selectors, threshold rules and compressors scored against ISG-Sim's
  per-patch truth and CMU tiles labelled by saturation (notebook 02, ``benchmarks/selection.py``);
* ``figures``: their plots.

Why the defaults are what they are (compressor, downsampling, threshold) is in the README's
"Design choices" table; the measurements are in ``results/<profile>/selection_*.md`` and
``benchmark_selection.md``.
"""
from __future__ import annotations

from .compressors import COMPRESSOR_SETTINGS, COMPRESSORS, check_lossless, get_compressor
from .evaluate import (
                       available_methods,
                       evaluate_scores,
                       evaluate_selectors,
                       keep_masks,
                       saturation_fraction,
                       saturation_labels,
                       score_cohort,
)
from .selectors import SELECTORS, SelectionConfig, Selector, ShannonSelector, available_selectors, get_selector
from .slide import add_selection_to_h5, read_selection, run_select, score_slide, selection_thumbnail, threshold_info
from .study import (
                    TruthPatches,
                    compressor_studies,
                    compressor_study,
                    evaluate_rules,
                    evenly_spaced,
                    truth_patches,
)
from .thresholds import Threshold, auc, parse_threshold, precision_recall, resolve_threshold, select

__all__ = [
    "COMPRESSORS", "COMPRESSOR_SETTINGS", "SELECTORS", "SelectionConfig", "Selector", "ShannonSelector",
    "Threshold", "TruthPatches", "add_selection_to_h5", "auc", "evaluate_rules", "evaluate_scores",
    "evaluate_selectors", "evenly_spaced", "keep_masks", "available_methods", "available_selectors",
    "check_lossless", "compressor_studies", "compressor_study", "truth_patches",
    "get_compressor", "get_selector", "parse_threshold", "precision_recall", "read_selection",
    "resolve_threshold", "run_select", "saturation_fraction", "saturation_labels", "score_cohort", "score_slide",
    "select", "selection_thumbnail", "threshold_info",
]
