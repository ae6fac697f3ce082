"""Oracle features: the simulator's true per-patch content in place of learned features.

On ISG-Sim every cell the bulk expression comes from is known (``maps/<slide>.npz``), so a slide
model can be run on what the patches *contain* instead of on what an encoder made of their pixels.
Its score is a ceiling for that model on the cohort: what is left between it and the noise ceiling
is the model's (or the labels'), what is left between it and the learned features is the encoder's.

The layout of an oracle feature (``ORACLE_CHANNELS``, d = ``ORACLE_DIM`` = 20) is the same for the
global feature f_i of a global patch and for each cell R_i[r, c] of its local cube:

* channels 0-10, ``log1p`` of cell counts: one per cell type of the simulator (lymphocyte, bcell,
  tumour, mitosis, luminal, basal, stroma, debris), then lymphocytes inside a tumour nest and
  elsewhere (the gene model weighs them differently), then ``n_cells`` (every cell but debris,
  which carries no RNA: the gene model's denominator).  Names and meaning follow ``patches.csv``.
* channels 11-19, fractions of ``n_cells`` (0 where a patch has no cell) of the RNA-bearing types
  and of the two lymphocyte contexts: the quantities the gene model's scores are made of.

A cell belongs to the patch its centre lies in: global patch i covers level-0 pixels
[x_i, x_i + P) x [y_i, y_i + P), P = round(p0) (as ``patches.csv`` counts), and its local patch
(r, c) the sub-square that starts at ``Tiling.local_offsets()[r, c]`` (edges ``round(k * p0 / g)``,
k = 0..g).  So the count channels of R_i, summed over the g x g grid, are those of f_i; fractions
and ``log1p`` do not add up, which is why :func:`oracle_slide_counts` also gives the raw counts.

f comes from ``patches.csv`` and R from the cell list of ``maps/``; the two are compared on every
patch, so a cohort simulated with another patch size than the tiling's, or tables and maps of
different runs, are refused instead of giving features that disagree with each other.

**The visible oracle** (feature set ``oracle-visible``; d = ``VISIBLE_DIM`` = 16) hands
over only what a patch's pixels show.  The simulator draws T cells and B cells alike on purpose,
and a lymphocyte's context (inside a tumour nest or not) is not in its local patch: so they are
one ``lymphocyte-like`` channel, and the two context channels are gone.  Which of them a
lymphocyte-like cell is must then be inferred from the patch's and its neighbours' other
content: the "global guides local" inference that the Dual Attention network exists for
(Sec. 3.3), which the full oracle skips.  Channels (``VISIBLE_CHANNELS``, 16: a width the
transformer baselines' 4 heads divide): ``log1p`` of the lymphocyte-like, tumour, mitosis, luminal,
basal, stroma, debris and RNA-bearing (``n_cells``) counts and of every nucleus (debris included),
then the fractions of ``n_cells`` of the six RNA-bearing visible kinds and debris' fraction of
every nucleus.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Sequence

import h5py
import numpy as np
import pandas as pd

from ..data.tiling import Tiling, read_tiling_h5
from ..errors import IsgError, first_line
from ..models.baselines.he2rna import global_only_inputs
from ..selection.slide import kept_rows
from ..simulate.cells import CELL_TYPES, DEBRIS, LYM
from ..simulate.tissue import TUMOUR
from ..train.batches import SlideData

#: cell-count columns of ``patches.csv``, in the order of the oracle's count channels
COUNT_COLUMNS: tuple[str, ...] = (*(f"n_{name}" for name in CELL_TYPES.values()), "n_lymphocyte_tumour",
                                  "n_lymphocyte_other", "n_cells")
#: count channels whose fraction of ``n_cells`` is a channel too (debris has no RNA; n_cells is 1)
FRACTION_COLUMNS: tuple[str, ...] = tuple(c for c in COUNT_COLUMNS if c not in ("n_debris", "n_cells"))
#: the oracle feature's channels, in order: ``log1p`` counts, then fractions of ``n_cells``
ORACLE_CHANNELS: tuple[str, ...] = (*(f"log1p_{c}" for c in COUNT_COLUMNS),
                                    *(f"frac_{c[2:]}" for c in FRACTION_COLUMNS))
ORACLE_DIM = len(ORACLE_CHANNELS)
N_COUNTS = len(COUNT_COLUMNS)
#: where each cell type's count goes (cell-type code -> channel): the simulator's code order
_TYPE_CHANNEL = np.array([COUNT_COLUMNS.index(f"n_{name}") for name in CELL_TYPES.values()], np.int64)
_LYM_TUMOUR, _LYM_OTHER, _TOTAL = (COUNT_COLUMNS.index(c) for c in
                                   ("n_lymphocyte_tumour", "n_lymphocyte_other", "n_cells"))
_FRACTION_SRC = np.array([COUNT_COLUMNS.index(c) for c in FRACTION_COLUMNS], np.int64)
#: the visible oracle's count channels: each the sum of these ``COUNT_COLUMNS``
VISIBLE_COUNTS: dict[str, tuple[str, ...]] = {
    "n_lymphocyte_like": ("n_lymphocyte", "n_bcell"),
    **{f"n_{k}": (f"n_{k}",) for k in ("tumour", "mitosis", "luminal", "basal", "stroma", "debris")},
    "n_cells": ("n_cells",),
    "n_nuclei": ("n_cells", "n_debris"),
}
_VISIBLE_FRACTIONS = tuple(c for c in VISIBLE_COUNTS if c not in ("n_debris", "n_cells", "n_nuclei"))
VISIBLE_CHANNELS: tuple[str, ...] = (*(f"log1p_{c}" for c in VISIBLE_COUNTS),
                                     *(f"frac_{c[2:]}" for c in _VISIBLE_FRACTIONS), "frac_debris_of_nuclei")
VISIBLE_DIM = len(VISIBLE_CHANNELS)
#: (N_COUNTS, len(VISIBLE_COUNTS)): full counts -> visible counts
_TO_VISIBLE = np.array([[float(c in parts) for parts in VISIBLE_COUNTS.values()] for c in COUNT_COLUMNS])
_V_CELLS, _V_DEBRIS, _V_NUCLEI = (list(VISIBLE_COUNTS).index(c) for c in ("n_cells", "n_debris", "n_nuclei"))
#: what ``patches.csv`` must hold for the oracle (the simulator writes more columns)
_PATCH_KEYS = ("slide_id", "x", "y", "row", "col")
#: the arrays of ``maps/<slide>.npz`` the oracle reads (cell centres in level-0 px, codes)
_MAP_KEYS = ("cell_x", "cell_y", "cell_type", "cell_context", "width", "height")

KeepFn = Callable[[h5py.File], "np.ndarray | None"]


# ----------------------------------------------------------------------------- layout ----
def oracle_available(cohort_root: "str | os.PathLike | None") -> bool:
    """Whether a cohort carries the simulator's per-patch truth the oracle reads (``patches.csv`` and
    ``maps/``): ISG-Sim does, a real cohort does not."""
    return cohort_root is not None and (Path(cohort_root) / "patches.csv").is_file() \
        and (Path(cohort_root) / "maps").is_dir()


def encode_counts(counts: np.ndarray) -> np.ndarray:
    """Oracle features (..., ``ORACLE_DIM``) float32 from raw counts (..., ``N_COUNTS``) in the
    order of ``COUNT_COLUMNS``: ``log1p`` of each count, then the fractions of ``n_cells``."""
    counts = np.asarray(counts, np.float64)
    if counts.shape[-1] != N_COUNTS:
        raise ValueError(f"expected {N_COUNTS} count channels, got shape {counts.shape}")
    total = counts[..., _TOTAL : _TOTAL + 1]
    # an empty patch (glass, a cut-away block) has no composition: its fractions are 0, not NaN
    frac = np.divide(counts[..., _FRACTION_SRC], total, out=np.zeros(counts.shape[:-1] + (len(_FRACTION_SRC),)),
                     where=total > 0)
    return np.concatenate([np.log1p(counts), frac], axis=-1).astype(np.float32)


def encode_visible(counts: np.ndarray) -> np.ndarray:
    """Visible-oracle features (..., ``VISIBLE_DIM``) float32 from raw counts (..., ``N_COUNTS``):
    the counts summed into ``VISIBLE_COUNTS``, their ``log1p``, then the fractions of ``n_cells``
    and debris' fraction of every nucleus (0 for an empty patch)."""
    counts = np.asarray(counts, np.float64)
    if counts.shape[-1] != N_COUNTS:
        raise ValueError(f"expected {N_COUNTS} count channels, got shape {counts.shape}")
    vis = counts @ _TO_VISIBLE
    k = len(_VISIBLE_FRACTIONS)
    frac = np.divide(vis[..., :k], vis[..., _V_CELLS:_V_CELLS + 1], out=np.zeros(vis.shape[:-1] + (k,)),
                     where=vis[..., _V_CELLS:_V_CELLS + 1] > 0)
    debris = np.divide(vis[..., _V_DEBRIS:_V_DEBRIS + 1], vis[..., _V_NUCLEI:_V_NUCLEI + 1],
                       out=np.zeros(vis.shape[:-1] + (1,)), where=vis[..., _V_NUCLEI:_V_NUCLEI + 1] > 0)
    return np.concatenate([np.log1p(vis), frac, debris], axis=-1).astype(np.float32)


#: feature-set name -> how raw counts become its features (both read the same truth)
ORACLE_VIEWS: dict[str, Callable[[np.ndarray], np.ndarray]] = {"oracle": encode_counts,
                                                              "oracle-visible": encode_visible}


def decode_counts(features: np.ndarray) -> np.ndarray:
    """The raw counts (..., ``N_COUNTS``) int64 back from oracle features (float16 cubes round
    exactly for the few cells a local patch holds)."""
    return np.rint(np.expm1(np.asarray(features, np.float64)[..., :N_COUNTS])).astype(np.int64)


def count_cells(cell_type: np.ndarray, cell_context: np.ndarray) -> np.ndarray:
    """Counts (``N_COUNTS``,) int64 of a list of cells, as ``patches.csv`` counts them."""
    return _count_channels(np.zeros(len(cell_type), np.int64), np.asarray(cell_type, np.int64),
                           np.asarray(cell_context, np.int64), 1)[0]


def _count_channels(bins: np.ndarray, ctype: np.ndarray, cctx: np.ndarray, n_bins: int) -> np.ndarray:
    """(n_bins, ``N_COUNTS``) counts of cells assigned to ``bins`` (one bincount per channel kind:
    the cell's type, its lymphocyte context, and n_cells for every cell but debris)."""
    flat = [bins * N_COUNTS + _TYPE_CHANNEL[ctype]]
    lym = ctype == LYM
    flat.append(bins[lym] * N_COUNTS + np.where(cctx[lym] == TUMOUR, _LYM_TUMOUR, _LYM_OTHER))
    flat.append(bins[ctype != DEBRIS] * N_COUNTS + _TOTAL)
    out = np.bincount(np.concatenate(flat), minlength=n_bins * N_COUNTS)
    return out.reshape(n_bins, N_COUNTS).astype(np.int64)


# ------------------------------------------------------------------------------ files ----
def read_patch_truth(cohort_root: "str | os.PathLike") -> pd.DataFrame:
    """``patches.csv`` of a simulated cohort: one row per global patch of the simulator's grid,
    with ``slide_id, x, y, row, col`` and the ``COUNT_COLUMNS`` (int64).  A one-line
    :class:`IsgError` naming the file if it is missing or lacks what the oracle reads."""
    path = Path(cohort_root) / "patches.csv"
    if not path.exists():
        raise IsgError(path, "no ISG-Sim patch table: oracle features need a simulated cohort (`isg simulate`)")
    try:
        df = pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError) as e:
        raise IsgError(path, f"cannot read the ISG-Sim patch table ({first_line(e)})") from None
    missing = [c for c in (*_PATCH_KEYS, *COUNT_COLUMNS) if c not in df.columns]
    if missing:
        raise IsgError(path, f"not an ISG-Sim patch table: no column {', '.join(missing)}")
    ints = [*_PATCH_KEYS[1:], *COUNT_COLUMNS]
    num = df[ints].apply(pd.to_numeric, errors="coerce")
    bad = num.isna().any(axis=1) | (num != np.round(num)).any(axis=1) | (num[list(COUNT_COLUMNS)] < 0).any(axis=1)
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise IsgError(path, f"malformed ISG-Sim patch table: row {i + 2} has a missing, negative or fractional "
                             "coordinate or count")
    df[ints] = num.astype(np.int64)
    df["slide_id"] = df["slide_id"].astype(str)
    return df


def read_cells(cohort_root: "str | os.PathLike", slide_id: str) -> dict[str, np.ndarray]:
    """The cell list of ``maps/<slide_id>.npz``: ``x, y`` (level-0 px of the cell's centre),
    ``type`` (``simulate.cells.CELL_TYPES`` code), ``context`` (tissue class under the cell) as
    int64 arrays, and the slide's ``width, height`` in px.  A one-line :class:`IsgError` naming
    the file if it is missing or malformed."""
    path = Path(cohort_root) / "maps" / f"{slide_id}.npz"
    if not path.exists():
        raise IsgError(path, "no ISG-Sim cell map for this slide: oracle features need a simulated cohort")
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in _MAP_KEYS if k not in z.files]
            if missing:
                raise IsgError(path, f"malformed ISG-Sim map: no array {', '.join(missing)}")
            arr = {k: np.asarray(z[k]) for k in _MAP_KEYS}
    except IsgError:
        raise
    except (OSError, ValueError, EOFError) as e:  # not a zip, a truncated or pickled member
        raise IsgError(path, f"malformed ISG-Sim map ({first_line(e)})") from None
    cells = {k: arr[f"cell_{k}"] for k in ("x", "y", "type", "context")}
    n = len(cells["x"])
    if any(v.ndim != 1 or len(v) != n or not np.issubdtype(v.dtype, np.integer) for v in cells.values()):
        raise IsgError(path, "malformed ISG-Sim map: cell arrays are not integer vectors of one length")
    if n and (cells["type"].min() < 0 or cells["type"].max() >= len(CELL_TYPES)):
        raise IsgError(path, f"malformed ISG-Sim map: a cell type code outside 0..{len(CELL_TYPES) - 1}")
    out = {k: v.astype(np.int64) for k, v in cells.items()}
    out["width"], out["height"] = np.int64(arr["width"]), np.int64(arr["height"])
    return out


# ---------------------------------------------------------------------------- features ----
def _patch_edges(tiling: Tiling) -> tuple[int, np.ndarray]:
    """(P, edges): the global patch side P = round(p0) in level-0 px and the g + 1 local edges
    (offsets from the patch's corner), consistent with ``Tiling.local_offsets``."""
    g = tiling.config.grid
    p0 = tiling.patch_size_level0
    edges = np.round(np.arange(g + 1) * (p0 / g)).astype(np.int64)
    return int(round(p0)), edges


def _assign(cells: dict[str, np.ndarray], tiling: Tiling) -> tuple[np.ndarray, np.ndarray]:
    """Bin index ``(i * g + r) * g + c`` of every cell inside a tiled global patch (patch i,
    local row r, local column c), and the mask of those cells.  Patches are found through the
    tiling's grid (``grid_index`` and the corners ``coords`` of each grid row and column), so a
    tiling that lists only some patches of its grid is binned right too."""
    g = tiling.config.grid
    if tiling.n_patches == 0:
        return np.zeros(0, np.int64), np.zeros(len(cells["x"]), bool)
    P, edges = _patch_edges(tiling)
    grid = tiling.grid_index
    n_rows, n_cols = tiling.grid_shape
    # the level-0 corner of each grid row and column (one per row/column in a tiling's grid)
    row_y = np.full(n_rows, np.iinfo(np.int64).max)
    col_x = np.full(n_cols, np.iinfo(np.int64).max)
    np.minimum.at(row_y, grid[:, 0], tiling.coords[:, 1])
    np.minimum.at(col_x, grid[:, 1], tiling.coords[:, 0])
    # a grid row or column the tiling lists no patch of: where tile_slide would put its corner
    p0 = tiling.patch_size_level0
    row_y = np.where(row_y == np.iinfo(np.int64).max, np.round(np.arange(n_rows) * p0).astype(np.int64), row_y)
    col_x = np.where(col_x == np.iinfo(np.int64).max, np.round(np.arange(n_cols) * p0).astype(np.int64), col_x)
    table = np.full((n_rows, n_cols), -1, np.int64)
    table[grid[:, 0], grid[:, 1]] = np.arange(tiling.n_patches)
    cx, cy = cells["x"], cells["y"]
    # the last row (column) whose corner is not past the cell; the cell is in it if within P
    gr = np.searchsorted(row_y, cy, side="right") - 1
    gc = np.searchsorted(col_x, cx, side="right") - 1
    ok = (gr >= 0) & (gc >= 0)
    gr, gc = np.clip(gr, 0, None), np.clip(gc, 0, None)
    dy, dx = cy - row_y[gr], cx - col_x[gc]
    ok &= (dy < P) & (dx < P)
    i = table[gr, gc]
    ok &= i >= 0  # a grid cell the tiling does not list
    lr = np.searchsorted(edges, dy, side="right") - 1
    lc = np.searchsorted(edges, dx, side="right") - 1
    ok &= (lr >= 0) & (lr < g) & (lc >= 0) & (lc < g)
    return ((i * g + lr) * g + lc)[ok], ok


def _slide_rows(patches: pd.DataFrame, slide_id: str, path: Path) -> pd.DataFrame:
    rows = patches[patches["slide_id"] == slide_id]
    if rows.empty:
        raise IsgError(path, f"no rows for slide {slide_id}: it is not part of this simulated cohort")
    return rows


def oracle_slide_counts(cohort_root: "str | os.PathLike", slide_id: str, tiling: "Tiling | str | os.PathLike", *,
                        patches: pd.DataFrame | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Raw oracle counts of a slide, in the tiling's patch order: ``(F (n, N_COUNTS), C (n, g, g,
    N_COUNTS), pos (n, 2))`` int64, F from ``patches.csv``, C from the cells of ``maps/`` binned by
    local patch, pos the tiling's grid positions (row, col).  ``tiling`` is a :class:`Tiling` or
    the path of its HDF5; ``patches`` a :func:`read_patch_truth` table (the whole cohort's or the
    slide's rows) to save re-reading it per slide.  Refuses a slide whose tiling and truth disagree."""
    root = Path(cohort_root)
    csv = root / "patches.csv"
    if not isinstance(tiling, Tiling):
        tiling = read_tiling_h5(tiling)
    rows = _slide_rows(read_patch_truth(root) if patches is None else patches, slide_id, csv)
    cells = read_cells(root, slide_id)
    npz = root / "maps" / f"{slide_id}.npz"
    if tuple(tiling.slide_size) != (int(cells["width"]), int(cells["height"])):
        raise IsgError(npz, f"the map is of a {cells['width']}x{cells['height']} px slide, the tiling of "
                            f"{slide_id} of {tiling.slide_size[0]}x{tiling.slide_size[1]} px: not the same slide")
    # f: the patch table's rows, matched on the level-0 corner (the tiling's order, not the table's)
    table = rows.set_index(["x", "y"])
    if not table.index.is_unique:
        raise IsgError(csv, f"malformed ISG-Sim patch table: slide {slide_id} has two rows for one patch")
    want = pd.MultiIndex.from_arrays([tiling.coords[:, 0], tiling.coords[:, 1]])
    found = want.isin(table.index)
    if not found.all():
        x, y = tiling.coords[int(np.flatnonzero(~found)[0])]
        raise IsgError(csv, f"no row for the patch of {slide_id} at ({x}, {y}): the cohort was simulated with "
                            f"another patch size than the tiling's ({tiling.config.global_size} px at "
                            f"{tiling.config.mpp:g} mpp)")
    F = table.loc[want, list(COUNT_COLUMNS)].to_numpy(np.int64)
    # R: every cell binned into (patch, local row, local column)
    g = tiling.config.grid
    n = tiling.n_patches
    bins, ok = _assign(cells, tiling)
    C = _count_channels(bins, cells["type"][ok], cells["context"][ok], n * g * g).reshape(n, g, g, N_COUNTS)
    # the two sources must tell the same story: a patch size other than the simulator's would
    # still match corners (a multiple of it) but not counts
    diff = np.flatnonzero((C.sum(axis=(1, 2)) != F).any(axis=1))
    if len(diff):
        x, y = tiling.coords[diff[0]]
        raise IsgError(csv, f"the counts of the patch of {slide_id} at ({x}, {y}) disagree with {npz.name}: "
                            f"{len(diff)} of {n} patches differ (another patch size than the tiling's, or "
                            "tables and maps of different runs)")
    return F, C, tiling.grid_index.astype(np.int64)


def oracle_slide_features(cohort_root: "str | os.PathLike", slide_id: str, tiling: "Tiling | str | os.PathLike", *,
                          patches: pd.DataFrame | None = None, view: str = "oracle"
                          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Oracle ``(f (n, d) float32, R (n, g, g, d) float16, pos (n, 2) int64)`` of every patch of
    ``tiling`` in its order (so the HDF5's selection masks apply unchanged); ``view`` a key of
    :data:`ORACLE_VIEWS` (``"oracle"``: d = ``ORACLE_DIM``, channels ``ORACLE_CHANNELS``;
    ``"oracle-visible"``: ``VISIBLE_CHANNELS``).  See :func:`oracle_slide_counts` for the rest."""
    encode = ORACLE_VIEWS[view]
    F, C, pos = oracle_slide_counts(cohort_root, slide_id, tiling, patches=patches)
    return encode(F), encode(C).astype(np.float16), pos


def load_oracle_data(cohort_root: "str | os.PathLike", tiles_dir: "str | os.PathLike", slide_ids: Sequence[str],
                     keep_fn: KeepFn | None = None, *, local: bool = True, view: str = "oracle") -> SlideData:
    """Oracle features of ``slide_ids`` as ``load_experiment_data`` returns learned ones: per slide f
    (n, d) float32, R (n, g, g, d) float16 and pos (n, 2) int64 of the patches ``keep_fn`` keeps.
    ``keep_fn(h5)`` gets the slide's open tiling HDF5 (``tiles_dir/<slide_id>.h5``) and returns a
    bool mask over its patches, or None for all (e.g. ``lambda h5: keep_mask(h5, exp, pixels)``).
    As there, a slide left with no patch keeps its highest Shannon score (else its first patch), and
    ``local=False`` gives the zero placeholder R of models that read only f; ``view`` as in
    :func:`oracle_slide_features`."""
    root = Path(cohort_root)
    groups = {sid: rows for sid, rows in read_patch_truth(root).groupby("slide_id", sort=False)}
    out = SlideData([], [], [], [])
    for sid in slide_ids:
        path = Path(tiles_dir) / f"{sid}.h5"
        tiling = read_tiling_h5(path)
        rows = groups.get(sid)
        if rows is None:
            raise IsgError(root / "patches.csv", f"no rows for slide {sid}: it is not part of this simulated cohort")
        f, R, pos = oracle_slide_features(root, sid, tiling, patches=rows, view=view)
        if keep_fn is not None:
            try:
                with h5py.File(path, "r") as fh:
                    keep = keep_fn(fh)
                    if keep is not None:
                        if np.shape(keep) != (len(f),):
                            raise IsgError(path, f"selection mask of {np.shape(keep)} for {len(f)} patches")
                        idx = kept_rows(fh, keep)  # as load_experiment_data: every slide gets a prediction
                        f, R, pos = f[idx], R[idx], pos[idx]
            except OSError as e:
                raise IsgError(path, f"cannot read the selection ({first_line(e)})") from None
        if not local:
            f, R, pos = global_only_inputs(f, pos)
        out.slide_ids.append(sid)
        out.f.append(f.astype(np.float32))
        out.R.append(R.astype(np.float16))
        out.pos.append(pos.astype(np.int64))
    return out


def slide_total_counts(cohort_root: "str | os.PathLike", *, whole_slide: bool = False) -> pd.DataFrame:
    """Cell counts per slide (index ``slide_id``, columns ``COUNT_COLUMNS``, int64), in the order
    of ``patches.csv``: the inputs of the linear baseline on totals.  By default the sums over the
    slide's patches in ``patches.csv`` (the tiled area: exactly what the oracle features of all
    patches add up to); ``whole_slide`` counts every cell of ``maps/`` instead, the margin past
    the last whole patch included (what the bulk expression was drawn from)."""
    root = Path(cohort_root)
    df = read_patch_truth(root)
    totals = df.groupby("slide_id", sort=False)[list(COUNT_COLUMNS)].sum().astype(np.int64)
    if whole_slide:
        for sid in totals.index:
            c = read_cells(root, sid)
            totals.loc[sid] = count_cells(c["type"], c["context"])
    totals.index.name = "slide_id"
    return totals
