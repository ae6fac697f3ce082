"""The inner validation split used for early stopping, by the slide-model engine
(:mod:`isg_core.train.engine`) and by the Table 5 probe (:mod:`isg_core.train.probe`).

The paper (Sec. 4) evaluates by 5-fold cross-validation; to choose an epoch without looking at
the outer test fold, both hold out a part of each fold's training rows, by patient when groups
are given.
"""
from __future__ import annotations

import numpy as np

from ..errors import IsgError


def inner_split(
    n: int, val_fraction: float, groups: np.ndarray | None = None, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Split row indices ``0..n-1`` into ``(train_idx, val_idx)`` for early stopping.

    About ``val_fraction`` of the rows (of the groups, when ``groups`` is given) go to the
    validation side, at least one and never all.  With ``groups`` (e.g. patient ids) all rows
    of a group land on the same side, so a patient's second slide cannot leak into the
    validation score.  Both index arrays are sorted.
    """
    keys = np.arange(n) if groups is None else np.asarray(groups)
    uniq, inverse = np.unique(keys, return_inverse=True)
    if uniq.size < 2:
        what = "rows" if groups is None else "groups"
        raise IsgError(None, f"need at least 2 training {what} for an inner validation split, got {uniq.size}")
    n_val = int(np.clip(round(val_fraction * uniq.size), 1, uniq.size - 1))
    val_keys = np.random.default_rng(seed).permutation(uniq.size)[:n_val]
    is_val = np.isin(inverse, val_keys)
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)
