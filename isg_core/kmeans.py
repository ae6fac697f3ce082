"""K-means (Lloyd's algorithm from a k-means++ start), in numpy: HE2RNA's supertiles cluster tile
coordinates with it (:func:`isg_core.models.baselines.he2rna.supertiles`), and the extractors'
training bank balances appearance clusters with it (:func:`isg_core.features.bank.build_bank`)."""
from __future__ import annotations

import numpy as np


def _kmeans_pp_init(points: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeding (Arthur & Vassilvitskii 2007): the first centre uniformly at random, each
    next one drawn with probability proportional to its squared distance to the nearest centre
    already chosen.  ``points`` must hold at least k distinct rows."""
    centres = [points[rng.integers(len(points))]]
    d2 = ((points - centres[0]) ** 2).sum(axis=1)
    for _ in range(1, k):
        nxt = points[rng.choice(len(points), p=d2 / d2.sum())]
        centres.append(nxt)
        d2 = np.minimum(d2, ((points - nxt) ** 2).sum(axis=1))
    return np.stack(centres)


def kmeans(points: np.ndarray, k: int, seed: int = 0, max_iter: int = 300) -> tuple[np.ndarray, np.ndarray]:
    """Lloyd's K-means from a k-means++ start: ``points`` (n, D) -> (centres (k, D), labels (n,)).

    Deterministic for a given ``seed`` (ties go to the lowest centre index).  It stops when the
    assignment no longer changes.  A centre that loses all its points keeps its position (it
    then has no label; :func:`supertiles` drops such clusters, as the original does).
    """
    points = np.asarray(points, dtype=np.float64)
    if not 1 <= k <= len(np.unique(points, axis=0)):
        raise ValueError(f"k must be in [1, number of distinct points], got k={k}")
    centres = _kmeans_pp_init(points, k, np.random.default_rng(seed))
    labels = np.full(len(points), -1)
    for _ in range(max_iter):
        dist = ((points[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2)
        new = dist.argmin(axis=1)
        if np.array_equal(new, labels):
            break
        labels = new
        for j in range(k):
            members = labels == j
            if members.any():
                centres[j] = points[members].mean(axis=0)
    return centres, labels
