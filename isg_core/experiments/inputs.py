"""Reading what an experiment's model sees from the slides' HDF5 files.

The features of every patch are stored once (``features/<name>``: f_i, R_i; paper Sec. 3.2);
an experiment's variant (a selection, a Shannon threshold, HE2RNA's supertiles) is applied as
they are read, so Tables 2 and 4 need no second extraction.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import h5py
import numpy as np

from ..errors import IsgError, first_line
from ..features.oracle import load_oracle_data
from ..features.registry import get_feature_set
from ..models.baselines.he2rna import global_only_inputs
from ..models.registry import model_traits
from ..selection import parse_threshold, select
from ..selection.slide import kept_rows
from ..train.batches import SlideData
from .specs import Experiment


def tile_cap(exp: Experiment) -> int | None:
    """The most tiles of a slide ``exp``'s model reads (its traits' ``max_tiles``: HE2RNA's 8,000), else all."""
    return model_traits(exp.model).max_tiles


def reads_local(exp: Experiment) -> bool:
    """Whether ``exp``'s model reads the local cubes R (not a model of f only, nor on supertiles);
    otherwise its R is a zero placeholder, to save memory."""
    return not model_traits(exp.model).global_only and exp.supertiles is None


def keep_mask(h5: h5py.File, exp: Experiment, pixels: int) -> np.ndarray | None:
    """Bool mask over the slide's patches of those ``exp`` uses (None: all)."""
    if exp.threshold is not None:
        key = "selection/shannon/scores"
        if key not in h5:
            raise IsgError(h5.filename, "no Shannon scores stored: run `isg prepare` first")
        return select(h5[key][:], parse_threshold(exp.threshold), pixels)
    if exp.selection is None:
        return None
    key = f"selection/{exp.selection}/keep"
    if key not in h5:
        raise IsgError(h5.filename,
                       f"no '{exp.selection}' selection stored: run `isg prepare --methods {exp.selection}`")
    return h5[key][:]


def load_experiment_data(tiles_dir: "str | os.PathLike", slide_ids: Sequence[str], exp: Experiment,
                         pixels: int, cohort_root: "str | os.PathLike | None" = None) -> SlideData:
    """The features of ``slide_ids`` that ``exp`` sees: the patches its selection keeps (and, for
    HE2RNA's supertiles, their cluster means).  A slide left with no patch keeps its single
    highest-scoring one, so every slide gets a prediction (it happens with strict thresholds)."""
    if not get_feature_set(exp.features).extracted:  # the oracle: the simulator's truth, read now
        return _oracle_data(tiles_dir, slide_ids, exp, pixels, cohort_root)
    out = SlideData([], [], [], [])
    for sid in slide_ids:
        path = Path(tiles_dir) / f"{sid}.h5"
        try:
            with h5py.File(path, "r") as fh:
                g = fh.get(f"features/{exp.features}")
                if g is None or not g.attrs.get("complete", False):
                    raise IsgError(path, f"no complete '{exp.features}' features: run `isg extract` first")
                index = g["index"][:]
                keep = keep_mask(fh, exp, pixels)
                if keep is None:
                    rows = np.arange(len(index))
                else:
                    missing = int(np.count_nonzero(keep)) - int(np.count_nonzero(np.asarray(keep, bool)[index]))
                    if missing > 0:  # never a silently smaller slide: those patches were not encoded
                        raise IsgError(path, f"{missing} patches that {exp.label!r} keeps have no '{exp.features}' "
                                             f"features (extracted: {g.attrs.get('patches', '?')}); extract again "
                                             "with --patches candidates")
                    rows = kept_rows(fh, keep, index)
                f = g["global"][:][rows].astype(np.float32)
                pos = fh["grid_index"][:][index[rows]].astype(np.int64)
                local = "local" in g and reads_local(exp)
                R = g["local"][:][rows] if local else None
        except OSError as e:
            raise IsgError(path, f"cannot read features ({first_line(e)})") from None
        if R is None:  # as isg predict does: (supertiles and) a zero placeholder for R
            f, R, pos = global_only_inputs(f, pos, exp.supertiles, tile_cap(exp))
        out.slide_ids.append(sid)
        out.f.append(f.astype(np.float32))
        out.R.append(R.astype(np.float16))
        out.pos.append(pos)
    return out


def _oracle_data(tiles_dir: "str | os.PathLike", slide_ids: Sequence[str], exp: Experiment, pixels: int,
                 cohort_root: "str | os.PathLike | None") -> SlideData:
    """``features="oracle"`` (or ``"oracle-visible"``): the simulator's true cell counts of the patches
    ``exp`` keeps, in place of learned features (the ceiling of what any extractor could give the
    same slide model; the visible view: of what an extractor could see)."""
    if cohort_root is None or not (Path(cohort_root) / "patches.csv").exists():
        raise IsgError(cohort_root, "oracle features need a simulated cohort's truth (patches.csv and maps/)")
    data = load_oracle_data(cohort_root, tiles_dir, slide_ids, lambda fh: keep_mask(fh, exp, pixels),
                            local=reads_local(exp), view=exp.features)
    if exp.supertiles is not None:  # HE2RNA's supertiles over the oracle's global features
        for i, (f, pos) in enumerate(zip(data.f, data.pos)):
            data.f[i], data.R[i], data.pos[i] = global_only_inputs(f, pos, exp.supertiles, tile_cap(exp))
    return data
