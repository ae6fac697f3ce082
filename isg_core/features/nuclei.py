"""The classical cube: colour statistics plus nucleus statistics, no learned weights.

A reference feature set, **not the paper's**: what a pathologist's image-analysis tool computes
without training anything, so that Tables 1 and 5 can show what a learned code adds over it.  For
each global patch and for each of its local patches (the p/q x p/q grid of R_i):

* the 13 appearance statistics of :func:`isg_core.features.bank.appearance_descriptor`;
* 4 nucleus statistics (:func:`nucleus_statistics`): the number of nuclei, the fraction of the
  area that is nuclear, the mean nucleus area (um^2) and the mean haematoxylin optical density
  inside the nuclei.

Nuclei are found much as QuPath's watershed cell detection finds them (Bankhead et al. 2017):
the haematoxylin optical density (colour deconvolution, Ruifrok & Johnston 2001; the stain matrix
of ``skimage.color.rgb2hed``, in natural-log units) smoothed by a Gaussian of 1.5 um, thresholded,
split by a watershed from the density's peaks at least 3 um apart (touching lymphocytes of an
aggregate are separate nuclei), and kept if their area lies in QuPath's default 10-400 um^2.
QuPath thresholds at a fixed density; stain intensity differs between scanners and labs (the
99th percentile of this density is 2.7 on CMU-1 and 2.0 on tiatoolbox's target image), so the
threshold is Otsu's (1979) on each global patch's smoothed density, one per field shared by its
local patches, and never below QuPath's default (0.1 in log10 units), which keeps glass and pale
stroma free of nuclei.  A nucleus belongs to the local patch that holds its centroid, so one cut
by a grid line is counted once.  Known limits: dark pen ink is haematoxylin-dense and is
segmented as nuclei; a field whose only dense objects are stroma still gets an Otsu split.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from skimage.filters import threshold_otsu
from skimage.segmentation import watershed

from .bank import _OD_TABLE, _UNMIX32, DESCRIPTOR_DIM, appearance_descriptor
from .extract import PatchEncoder

#: QuPath's cell-detection defaults (um): Gaussian sigma, least and largest nucleus area (um^2)
SIGMA_UM = 1.5
MIN_AREA_UM2 = 10.0
MAX_AREA_UM2 = 400.0
#: QuPath's default haematoxylin threshold, 0.1 in its log10 optical density, in the natural-log
#: density used here: the least stain a nucleus has (glass and pale stroma stay below it)
MIN_DENSITY = 0.1 * float(np.log(10.0))
#: peaks of the density closer than this (um) are one nucleus: about a lymphocyte's radius (a
#: lymphocyte is 7-10 um across), so that touching lymphocytes in an aggregate are split
SPLIT_UM = 3.0
#: names of :func:`nucleus_statistics`' columns
NUCLEUS_STATS = ("nuclei", "nuclear_area_fraction", "mean_nucleus_area_um2", "mean_nucleus_h_od")
CLASSICAL_DIM = DESCRIPTOR_DIM + len(NUCLEUS_STATS)


def haematoxylin_density(patches: np.ndarray) -> np.ndarray:
    """uint8 (B, H, W, 3) -> float32 (B, H, W): haematoxylin optical density (``rgb2hed[..., 0]``)."""
    u8 = np.asarray(patches, dtype=np.uint8)
    return _OD_TABLE[u8] @ _UNMIX32[:, 0]


def nucleus_mask(patches: np.ndarray, mpp: float) -> tuple[np.ndarray, np.ndarray]:
    """(haematoxylin density (B, H, W), labels (B, H, W) int: 0 background, 1.. nuclei
    numbered across the batch).  Foreground: density above Otsu's threshold of the patch and above
    :data:`MIN_DENSITY`; touching nuclei split by a watershed of the density from its peaks at least
    :data:`SPLIT_UM` apart; nuclei outside [MIN_AREA_UM2, MAX_AREA_UM2] dropped."""
    h = haematoxylin_density(patches)
    s = SIGMA_UM / mpp
    hs = ndi.gaussian_filter(h, sigma=(0, s, s), mode="reflect")
    flat = np.ptp(hs, axis=(1, 2)) == 0  # a constant patch has no split, and no nucleus
    level = np.array([np.inf if f else max(threshold_otsu(x), MIN_DENSITY) for x, f in zip(hs, flat)])
    mask = hs > level[:, None, None].astype(hs.dtype)
    # markers: the density's local maxima within SPLIT_UM (a plateau of equal maxima is one marker)
    w = 2 * max(1, int(round(SPLIT_UM / mpp))) + 1
    peaks = mask & (hs == ndi.maximum_filter(hs, size=(1, w, w), mode="nearest"))
    in_patch = np.zeros((3, 3, 3), bool)
    in_patch[1] = ndi.generate_binary_structure(2, 1)  # 4-connected, never across patches
    markers, n_peaks = ndi.label(peaks, structure=in_patch)
    comp, n_comp = ndi.label(mask, structure=in_patch)
    # a component whose maximum lies within SPLIT_UM of a denser one's has no peak: it is its own marker
    has_peak = np.zeros(n_comp + 1, bool)
    has_peak[comp[markers > 0]] = True
    bare = mask & ~has_peak[comp]
    markers[bare] = n_peaks + comp[bare]
    labels = np.zeros(hs.shape, np.int64)
    offset = 0
    for k in np.flatnonzero(mask.any(axis=(1, 2))):
        lab = watershed(-hs[k], markers[k], mask=mask[k])
        ids, lab = np.unique(lab, return_inverse=True)  # 0 first where present
        lab = lab.reshape(mask[k].shape) + (0 if ids[0] == 0 else 1)
        n = int(lab.max())
        area = np.bincount(lab.ravel(), minlength=n + 1) * mpp ** 2
        ok = (area >= MIN_AREA_UM2) & (area <= MAX_AREA_UM2)
        ok[0] = False
        keep = np.cumsum(ok) * ok  # renumber the kept nuclei 1..m
        labels[k] = np.where(keep[lab] > 0, keep[lab] + offset, 0)
        offset += int(ok.sum())
    return h, labels


def nucleus_statistics(patches: np.ndarray, q: int, mpp: float) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (B, p, p, 3) -> (global (B, 4), local (B, p/q, p/q, 4)) float32 nucleus statistics
    (:data:`NUCLEUS_STATS`): count, nuclear area fraction, mean nucleus area in um^2 and mean
    haematoxylin density inside nuclei (the last two 0 where there is no nucleus).  Area and
    density are over each nucleus's whole extent; a local patch holds the nuclei whose centroids
    fall in it, and its area fraction counts the nuclear pixels inside it."""
    patches = np.asarray(patches)
    b, p = patches.shape[:2]
    if p % q:
        raise ValueError(f"local size {q} does not divide the patch size {p}")
    g = p // q
    h, labels = nucleus_mask(patches, mpp)
    ids = np.unique(labels)
    ids = ids[ids > 0]
    glob = np.zeros((b, 4), np.float32)
    loc = np.zeros((b, g, g, 4), np.float32)
    # nuclear area fraction of each patch and of each local cell
    nuclear = (labels > 0).astype(np.float32)
    glob[:, 1] = nuclear.mean(axis=(1, 2))
    loc[..., 1] = nuclear.reshape(b, g, q, g, q).mean(axis=(2, 4))
    if len(ids):
        area = ndi.sum_labels(np.ones_like(h), labels, ids) * mpp ** 2
        dens = ndi.mean(h, labels, ids)  # of the density as scanned, not the smoothed one
        cz, cy, cx = np.asarray(ndi.center_of_mass(np.ones_like(h), labels, ids)).T
        pz = np.rint(cz).astype(int)
        cell = (pz, np.minimum(cy // q, g - 1).astype(int), np.minimum(cx // q, g - 1).astype(int))
        for values, target in ((area, 2), (dens, 3)):
            np.add.at(glob[:, target], pz, values)
            np.add.at(loc[..., target], cell, values)
        np.add.at(glob[:, 0], pz, 1.0)
        np.add.at(loc[..., 0], cell, 1.0)
        for arr in (glob, loc):  # sums -> means over the nuclei counted
            n = arr[..., 0]
            for target in (2, 3):
                arr[..., target] = np.where(n > 0, arr[..., target] / np.maximum(n, 1), 0.0)
    return glob, loc


class ClassicalEncoder(PatchEncoder):
    """The classical cube (module doc): f_i the 17 statistics of the global patch, R_i those of
    each local patch.  No network and no weights: a reference, not the paper's features."""
    name = "classical"
    global_dim = local_dim = CLASSICAL_DIM

    def __init__(self, mpp: float, device=None):
        super().__init__("cpu")
        self.mpp = float(mpp)

    def describe(self) -> dict:
        return {"kind": "classical-cube", "dim": CLASSICAL_DIM, "dtype": "float32", "mpp": self.mpp,
                "nuclei": {"sigma_um": SIGMA_UM, "area_um2": [MIN_AREA_UM2, MAX_AREA_UM2],
                           "threshold": "otsu-per-global-patch", "stats": list(NUCLEUS_STATS)}}

    def encode(self, patches: np.ndarray, q: int) -> tuple[np.ndarray, np.ndarray]:
        patches = np.asarray(patches)
        b, p = patches.shape[:2]
        g = p // q
        cells = patches.reshape(b, g, q, g, q, 3).swapaxes(2, 3).reshape(-1, q, q, 3)  # row-major grid
        f_col = appearance_descriptor(patches).astype(np.float32)
        r_col = appearance_descriptor(cells).astype(np.float32).reshape(b, g, g, -1)
        f_nuc, r_nuc = nucleus_statistics(patches, q, self.mpp)
        return np.concatenate([f_col, f_nuc], axis=1), np.concatenate([r_col, r_nuc], axis=-1)
