"""Reading whole-slide images and plain images through one interface.

:func:`open_slide` returns a :class:`Slide` for every format OpenSlide reads (Aperio SVS,
generic tiled TIFF, Hamamatsu NDPI, MIRAX MRXS, ...) and for plain PNG / JPEG / TIFF images.
A slide knows its size, pyramid, microns per pixel (mpp) and magnification, and reads a
region *at a requested mpp* from the cheapest pyramid level that still has enough resolution,
so a 1e5 x 1e5 px slide is only ever read one region at a time.

The per-format readers (OpenSlide, Pillow) and the tifffile writer are in
:mod:`isg_core.data.slide_formats`; :func:`write_pyramidal_tiff` and :func:`tiff_level_args` are
re-exported here.  This module holds the :class:`Slide` API, :func:`open_slide` and the
slide-id helpers.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
from PIL import Image

from ..errors import IsgError, first_line
from .slide_formats import _ArrayReader, _openslide, _OpenSlideReader, _plain_image_mpp, _to_rgb8
from .slide_formats import tiff_level_args as tiff_level_args  # re-exported: simulate.large
from .slide_formats import write_pyramidal_tiff as write_pyramidal_tiff  # re-exported: simulate, tests

#: Plain image formats read whole with Pillow (small images only; see ``MAX_PLAIN_PIXELS``).
PLAIN_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"}
#: Whole-slide formats OpenSlide reads.
WSI_SUFFIXES = {".svs", ".tif", ".tiff", ".ndpi", ".vms", ".vmu", ".scn", ".mrxs", ".svslide", ".bif", ".dcm"}
#: A plain image above this many pixels must be converted to a tiled pyramidal TIFF first.
MAX_PLAIN_PIXELS = 20_000 * 20_000
#: What a slide without a physical resolution gets: nothing is assumed.  ISG cuts patches of a
#: physical size (128 um at 0.5 mpp), so a guessed mpp silently changes what a patch shows (a 40x
#: image read as 20x gives patches of a quarter of the area).  Every command refuses such a slide
#: unless its resolution is given (``--slide-mpp``, or an ``mpp`` column in the manifest).
MISSING_MPP_HINT = ("no resolution (microns per pixel) in the file's metadata; give it with --slide-mpp "
                    "(0.25 for a 40x scan, 0.5 for 20x) or an `mpp` column in the manifest")
#: Formats whose pixel data all lie in the one file OpenSlide opens (MIRAX, Hamamatsu VMS/VMU and
#: DICOM keep theirs in other files, so their size says nothing).
SINGLE_FILE_SUFFIXES = {".svs", ".tif", ".tiff", ".ndpi", ".scn", ".svslide", ".bif"}
#: Fewest bytes per level-0 pixel a real single-file slide holds.  A JPEG tile of blank glass
#: (256 px, quality 75) is ~1.6 KB, 0.025 byte/px; this floor is 250x lower.  A header that claims
#: far more pixels than the file can hold (a truncated file, a crafted 1e6 x 1e6 px header without
#: data) is refused at open: OpenSlide reads its missing tiles as blank, so tiling it would
#: otherwise try to score millions of empty patches.
MIN_BYTES_PER_PIXEL = 1e-4


def mpp_to_magnification(mpp: float) -> float:
    """Nominal objective power for a resolution: the usual 10 um / mpp (0.25 mpp = 40x)."""
    return 10.0 / mpp


def slide_id_from_path(path: str | os.PathLike) -> str:
    """Slide id: the file name without its extension (TCGA: ``TCGA-XX-XXXX-01Z-00-DX1.<uuid>``)."""
    name = Path(path).name
    for suffix in sorted(WSI_SUFFIXES | PLAIN_SUFFIXES, key=len, reverse=True):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return Path(path).stem


def distinct_slides(paths: Iterable[str | os.PathLike], what: str = "outputs") -> list[tuple[Path, str]]:
    """(path, slide id) of each slide given, the same file given twice kept once.  Two different
    files with the same id (``a/slide.svs`` and ``b/slide.tif``) are refused before any work: their
    ``<id>.*`` outputs in one folder would overwrite each other."""
    seen: dict[str, Path] = {}
    out: list[tuple[Path, str]] = []
    for p in map(Path, paths):
        sid = slide_id_from_path(p)
        if sid in seen:
            if os.path.realpath(seen[sid]) == os.path.realpath(p):
                continue
            raise IsgError(p, f"has the same name '{sid}' as {seen[sid]}: their {what} would overwrite each other; "
                              "rename one, or run them into separate --out folders")
        seen[sid] = p
        out.append((p, sid))
    return out


@dataclass(frozen=True)
class SlideInfo:
    """What a slide is, independent of how it is read."""
    path: str
    slide_id: str
    width: int
    height: int
    mpp: float
    mpp_source: str  # "metadata", "argument", or "missing" (only with require_mpp=False; mpp is NaN)
    magnification: float
    level_dimensions: tuple[tuple[int, int], ...]
    level_downsamples: tuple[float, ...]
    backend: str  # "openslide:<vendor>" or "pillow"


class Slide:
    """A slide image: ``read_region`` in level-0 pixel coordinates, at a level or at an mpp.
    Use :func:`open_slide` to make one; close it (or use it as a context manager) when done.
    """
    def __init__(self, info: SlideInfo, reader):
        self.info = info
        self._reader = reader

    # --- metadata ---------------------------------------------------------------------
    @property
    def path(self) -> str:
        return self.info.path

    @property
    def slide_id(self) -> str:
        return self.info.slide_id

    @property
    def dimensions(self) -> tuple[int, int]:
        """(width, height) at level 0."""
        return (self.info.width, self.info.height)

    @property
    def mpp(self) -> float:
        return self.info.mpp

    @property
    def magnification(self) -> float:
        return self.info.magnification

    @property
    def level_count(self) -> int:
        return len(self.info.level_dimensions)

    def __repr__(self) -> str:
        i = self.info
        return (
            f"Slide({i.slide_id!r}, {i.width}x{i.height} px, {i.mpp:.3g} mpp ({i.mpp_source}), "
            f"{i.magnification:.3g}x, {self.level_count} level(s), {i.backend})"
        )

    # --- reading ----------------------------------------------------------------------
    def best_level_for_downsample(self, downsample: float) -> int:
        """The coarsest level whose downsample does not exceed ``downsample`` (never upsample
        from a coarser level: that would lose detail the request asks for)."""
        best = 0
        for lvl, ds in enumerate(self.info.level_downsamples):
            if ds <= downsample * (1 + 1e-6):
                best = lvl
        return best

    def read_region(self, x: int, y: int, width: int, height: int, level: int = 0) -> np.ndarray:
        """RGB uint8 array (height, width, 3) of a region whose top-left is ``(x, y)`` in
        level-0 pixels and whose size is in pixels of ``level``.  Outside the slide is white."""
        if width <= 0 or height <= 0:
            raise IsgError(self.path, f"region size must be positive, got {width}x{height}")
        if not 0 <= level < self.level_count:
            raise IsgError(self.path, f"level {level} does not exist (slide has {self.level_count})")
        try:
            return self._reader.read(int(x), int(y), int(width), int(height), level)
        except IsgError:
            raise
        except Exception as e:  # corrupt or truncated tile data surfaces only at read time
            raise IsgError(self.path, f"cannot read region at ({x}, {y}) level {level}: {first_line(e)}") from None

    def read_region_mpp(self, x: int, y: int, size: int | tuple[int, int], mpp: float) -> np.ndarray:
        """Read a region of ``size`` pixels *at resolution ``mpp``*, top-left ``(x, y)`` in
        level-0 pixels, from the best pyramid level, resampled with a box/Lanczos filter."""
        out_w, out_h = (size, size) if isinstance(size, int) else size
        if not math.isfinite(self.mpp):
            raise IsgError(self.path, MISSING_MPP_HINT)
        downsample = mpp / self.mpp  # target pixel size in level-0 pixels
        level = self.best_level_for_downsample(downsample)
        lvl_ds = self.info.level_downsamples[level]
        # extent of the request in level-0 px, then in the chosen level's px
        w0, h0 = out_w * downsample, out_h * downsample
        lw, lh = max(1, round(w0 / lvl_ds)), max(1, round(h0 / lvl_ds))
        region = self.read_region(x, y, lw, lh, level)
        if (lw, lh) != (out_w, out_h):
            region = np.asarray(Image.fromarray(region).resize((out_w, out_h), Image.Resampling.LANCZOS))
        return region

    def thumbnail(self, max_size: int = 1024) -> np.ndarray:
        """An RGB overview whose longer side is at most ``max_size`` px, read from the
        coarsest level that is still at least that large."""
        w, h = self.dimensions
        scale = max(w, h) / max_size
        if scale <= 1:
            return self.read_region(0, 0, w, h, 0)
        level = self.best_level_for_downsample(scale)
        lw, lh = self.info.level_dimensions[level]
        ds = self.info.level_downsamples[level]
        out_w, out_h = max(1, round(w / scale)), max(1, round(h / scale))
        if lw * lh <= 4096 * 4096:
            img = Image.fromarray(self.read_region(0, 0, lw, lh, level))
            return np.asarray(img.resize((out_w, out_h), Image.Resampling.LANCZOS))
        # A slide without a small enough pyramid level: read the level in tiles and shrink each,
        # so memory stays at one tile (never the whole level) whatever the slide's size.
        out = np.full((out_h, out_w, 3), 255, np.uint8)
        f = out_w / lw  # output px per level px
        step = max(1, int(2048 * f)) / f  # level px per tile, a whole number of output px
        for ty in np.arange(0, lh, step):
            for tx in np.arange(0, lw, step):
                ox0, oy0 = int(round(tx * f)), int(round(ty * f))
                ox1, oy1 = min(out_w, int(round((tx + step) * f))), min(out_h, int(round((ty + step) * f)))
                if ox1 <= ox0 or oy1 <= oy0:
                    continue
                tw, th = int(min(step, lw - tx)), int(min(step, lh - ty))
                tile = self.read_region(int(tx * ds), int(ty * ds), max(tw, 1), max(th, 1), level)
                out[oy0:oy1, ox0:ox1] = np.asarray(Image.fromarray(tile).resize((ox1 - ox0, oy1 - oy0),
                                                                                 Image.Resampling.BOX))
        return out

    def close(self) -> None:
        self._reader.close()

    def __enter__(self) -> "Slide":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_slide(path: str | os.PathLike, mpp: float | None = None, require_mpp: bool = True) -> Slide:
    """Open a whole-slide image or a plain image.
    ``mpp`` overrides the file's resolution.  A file without one (a PNG or JPEG, a TIFF without
    resolution tags, a slide without ``openslide.mpp-x``) is refused unless ``mpp`` is given: see
    :data:`MISSING_MPP_HINT`.  ``require_mpp=False`` opens it anyway with ``mpp`` NaN, for what
    needs no physical scale (``isg info``, a thumbnail); reading at an mpp then fails.  Errors are
    one-line :class:`IsgError` naming the file: missing, unsupported format, corrupt or truncated.
    """
    p = Path(path)
    try:
        if not p.exists():
            raise IsgError(p, "no such file")
        if p.is_dir() and p.suffix.lower() != ".mrxs":
            raise IsgError(p, "is a directory, not a slide")
        if p.stat().st_size == 0:
            raise IsgError(p, "file is empty")
    except PermissionError:  # a folder on the way cannot be entered
        raise IsgError(p, "permission denied") from None
    if not os.access(p, os.R_OK):
        raise IsgError(p, "permission denied: the file is not readable by this user")
    suffix = p.suffix.lower()
    if suffix not in WSI_SUFFIXES | PLAIN_SUFFIXES:
        raise IsgError(
            p, f"unsupported format '{suffix or p.name}' "
               f"(supported: {', '.join(sorted(WSI_SUFFIXES | PLAIN_SUFFIXES))})"
        )
    if mpp is not None and not (mpp > 0):
        raise IsgError(p, f"mpp must be positive, got {mpp}")

    openslide = _openslide()
    vendor = None
    try:
        vendor = openslide.OpenSlide.detect_format(str(p))
    except Exception:
        vendor = None
    if vendor is not None:
        try:
            osr = openslide.OpenSlide(str(p))
        except Exception as e:
            raise IsgError(p, f"corrupt or unreadable {vendor} slide ({first_line(e)})") from None
        return _wrap_openslide(p, osr, vendor, mpp, require_mpp)
    if suffix in {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"}:
        return _open_plain(p, mpp, require_mpp)
    raise IsgError(p, "not a readable slide: format not recognised, or the file is corrupt or truncated")


def _wrap_openslide(p: Path, osr, vendor: str, mpp: float | None, require_mpp: bool = True) -> Slide:
    props = osr.properties
    w, h = osr.dimensions
    if w <= 0 or h <= 0:
        raise IsgError(p, f"slide has no pixels ({w}x{h})")
    size = p.stat().st_size
    if p.suffix.lower() in SINGLE_FILE_SUFFIXES and size < w * h * MIN_BYTES_PER_PIXEL:
        osr.close()
        raise IsgError(p, f"header claims {w}x{h} px but the file holds only {size} bytes "
                          "(truncated, or a header without image data)")
    source = "argument"
    if mpp is None:
        try:
            mpp = float(props.get("openslide.mpp-x", "nan"))
        except ValueError:
            mpp = float("nan")
        source = "metadata"
        if not (mpp > 0 and math.isfinite(mpp)):
            if require_mpp:
                osr.close()
                raise IsgError(p, MISSING_MPP_HINT)
            mpp, source = float("nan"), "missing"
    try:
        mag = float(props.get("openslide.objective-power", "nan"))
    except ValueError:
        mag = float("nan")
    if not (mag > 0 and math.isfinite(mag)):
        mag = mpp_to_magnification(mpp)
    info = SlideInfo(
        path=str(p),
        slide_id=slide_id_from_path(p),
        width=w,
        height=h,
        mpp=mpp,
        mpp_source=source,
        magnification=mag,
        level_dimensions=tuple(tuple(d) for d in osr.level_dimensions),
        level_downsamples=tuple(float(d) for d in osr.level_downsamples),
        backend=f"openslide:{vendor}",
    )
    return Slide(info, _OpenSlideReader(osr))


def _open_plain(p: Path, mpp: float | None, require_mpp: bool = True) -> Slide:
    Image.MAX_IMAGE_PIXELS = None  # we apply our own, clearer limit below
    try:
        with Image.open(p) as img:
            w, h = img.size
            if w * h > MAX_PLAIN_PIXELS:
                raise IsgError(
                    p, f"plain image of {w}x{h} px is too large to read whole; convert it to a tiled pyramidal TIFF"
                )
            meta_mpp = _plain_image_mpp(img)
            img.load()
            arr = _to_rgb8(img, p)
    except IsgError:
        raise
    except Exception as e:
        raise IsgError(p, f"corrupt or truncated image ({first_line(e)})") from None
    if mpp is not None:
        source = "argument"
    elif meta_mpp is not None:
        mpp, source = meta_mpp, "metadata"
    elif require_mpp:
        raise IsgError(p, MISSING_MPP_HINT)
    else:
        mpp, source = float("nan"), "missing"
    downsamples = [1.0]
    while max(w, h) / downsamples[-1] > 512:
        downsamples.append(downsamples[-1] * 2)
    info = SlideInfo(
        path=str(p),
        slide_id=slide_id_from_path(p),
        width=w,
        height=h,
        mpp=float(mpp),
        mpp_source=source,
        magnification=mpp_to_magnification(float(mpp)),
        level_dimensions=tuple((max(1, int(w // d)), max(1, int(h // d))) for d in downsamples),
        level_downsamples=tuple(downsamples),
        backend="pillow",
    )
    return Slide(info, _ArrayReader(arr, downsamples))
