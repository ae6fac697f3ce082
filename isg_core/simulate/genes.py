"""The gene model: bulk expression from the slide's cells, plus noise; and the MSI label.

Bulk RNA-Seq measures *proportions* of transcripts, so every gene is driven by a cell-type
score expressed as a fraction of all RNA-bearing cells of the slide (debris excluded):

* T-cell genes (CD3D, CD247, CD3E, CD3G):
  ``s_T = (n_lym[in tumour] + W_STROMAL * n_lym[elsewhere]) / N``, ``W_STROMAL = 0.3``:
  lymphocytes inside tumour nests count fully, those in stroma or follicles ~0.3.  A
  lymphocyte looks the same in both places (local scale); which it is needs the context
  (global scale): this is the "global guides local" signal the fusion model can exploit.
* B-cell genes (MS4A1, CD19): ``s_B = n_bcell / N``.
* MKI67: ``s_P = n_mitosis / N`` (mitoses are drawn only in tumour).
* TP63: ``s_basal = n_basal / N`` (basal cells line benign prostate glands; lost in tumour).
* KRT8, KRT18: ``s_E = (n_tumour + n_mitosis + n_luminal) / N`` (simple epithelium).

Each gene, on the log10(1 + FPKM-UQ) scale: ``truth = a + b * ln(eps + s)`` (coefficients
in ``GENE_MODEL``), and the observed value ``truth + sigma_g * z``, ``z ~ N(0, 1)`` drawn per
slide (gene-specific, independent across genes of a family).  ``sigma_g = k_g * SD_c(truth_g)``
where ``SD_c`` is the SD of that gene's truth over the slides of the cancer type ``c``
(floored at 0.05), so the noise ceiling PCC(truth, observed) is about ``1/sqrt(1 + k_g^2)``
(0.8-0.93) whatever the cohort size.  Expression = ``10**observed - 1`` (FPKM-UQ scale).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .cells import BASAL, BCELL, DEBRIS, LUMINAL, LYM, MIT, TUM
from .tissue import TUMOUR

#: weight of a lymphocyte outside tumour nests in the T-cell score (inside: 1)
W_STROMAL = 0.3
#: gene -> (score, a, b, eps, k): truth = a + b ln(eps + score); noise SD = k * SD(truth)
GENE_MODEL: dict[str, tuple[str, float, float, float, float]] = {
    "CD3D": ("tcell", 5.6, 0.42, 1e-3, 0.45),
    "CD247": ("tcell", 4.9, 0.38, 1e-3, 0.60),
    "CD3E": ("tcell", 5.5, 0.44, 1e-3, 0.50),
    "CD3G": ("tcell", 4.9, 0.36, 1e-3, 0.65),
    "MS4A1": ("bcell", 5.4, 0.50, 5e-4, 0.50),
    "CD19": ("bcell", 4.6, 0.45, 5e-4, 0.65),
    "MKI67": ("prolif", 5.6, 0.55, 5e-4, 0.70),
    "TP63": ("basal", 5.2, 0.60, 1e-3, 0.50),
    "KRT8": ("epithelial", 7.0, 0.90, 2e-2, 0.45),
    "KRT18": ("epithelial", 6.8, 0.85, 2e-2, 0.55),
}
SCORES = ("tcell", "bcell", "prolif", "basal", "epithelial")
#: MSI-like label: logit = MSI_B0 + MSI_B_TIL * z_TIL + MSI_B_PROLIF * z_prolif + N(0, MSI_NOISE)
MSI_B0, MSI_B_TIL, MSI_B_PROLIF, MSI_NOISE = -1.7, 1.3, 0.8, 0.8


def scores(cell_type: np.ndarray, context: np.ndarray) -> dict[str, float]:
    """Cell-type scores (fractions of RNA-bearing cells) from a slide's cell list."""
    n = float(max(np.count_nonzero(cell_type != DEBRIS), 1))
    lym = cell_type == LYM
    n_lt = float(np.count_nonzero(lym & (context == TUMOUR)))
    n_lo = float(np.count_nonzero(lym & (context != TUMOUR)))
    c = np.bincount(cell_type, minlength=8).astype(float)
    return {
        "tcell": (n_lt + W_STROMAL * n_lo) / n,
        "bcell": c[BCELL] / n,
        "prolif": c[MIT] / n,
        "basal": c[BASAL] / n,
        "epithelial": (c[TUM] + c[MIT] + c[LUMINAL]) / n,
    }


def truth(sc: dict[str, float]) -> dict[str, float]:
    """Noiseless log10(1 + FPKM-UQ) per gene."""
    return {g: a + b * float(np.log(eps + sc[s])) for g, (s, a, b, eps, _k) in GENE_MODEL.items()}


def observe(truth_df, z_df, cancer: "np.ndarray") -> "tuple":
    """Noisy log values: ``truth + k_g * SD_c(truth_g) * z`` (see module docstring).
    ``truth_df`` and ``z_df``: slides x genes DataFrames (same index); ``cancer``: type per
    slide.  Returns (observed log values, the sigma used per (type, gene)).
    """
    obs = truth_df.copy()
    sig = {}
    for c in sorted(set(cancer)):
        rows = np.asarray(cancer) == c
        for g, (_s, _a, _b, _e, k) in GENE_MODEL.items():
            sd = float(np.std(truth_df.loc[rows, g].to_numpy()))
            s = k * max(sd, 0.05)
            sig[(c, g)] = s
            obs.loc[rows, g] = truth_df.loc[rows, g].to_numpy() + s * z_df.loc[rows, g].to_numpy()
    return obs, pd.Series(sig)


def msi_label(rng: np.random.Generator, z_til: float, z_prolif: float) -> int:
    """MSI-H (1) vs MSS (0): more likely with many tumour-infiltrating lymphocytes and high
    proliferation; ~15-25% positive.  Drawn once per patient."""
    logit = MSI_B0 + MSI_B_TIL * z_til + MSI_B_PROLIF * z_prolif + rng.normal(0, MSI_NOISE)
    return int(rng.random() < 1 / (1 + np.exp(-logit)))
