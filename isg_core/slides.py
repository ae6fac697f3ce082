"""Reading whole-slide images and plain images through one interface.

:func:`open_slide` returns a :class:`Slide` for every format OpenSlide reads (Aperio SVS,
generic tiled TIFF, Hamamatsu NDPI, MIRAX MRXS, ...) and for plain PNG / JPEG / TIFF images.
A slide knows its size, pyramid, microns per pixel (mpp) and magnification, and reads a
region *at a requested mpp* from the cheapest pyramid level that still has enough resolution,
so a 1e5 x 1e5 px slide is only ever read one region at a time.

:func:`write_pyramidal_tiff` writes the tiled, JPEG-compressed, pyramidal TIFF that
OpenSlide opens as ``generic-tiff`` with ``openslide.mpp-x`` set from the resolution tags;
ISG-Sim writes its slides with it.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
import tifffile
from PIL import Image

from .errors import IsgError, atomic_path, first_line

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

    def level0_size(self, size_px: int, mpp: float) -> int:
        """How many level-0 pixels ``size_px`` pixels at ``mpp`` span."""
        return int(round(size_px * mpp / self.mpp))

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


class _OpenSlideReader:
    def __init__(self, osr):
        self.osr = osr

    def read(self, x, y, w, h, level):
        rgba = np.asarray(self.osr.read_region((x, y), level, (w, h)))
        # OpenSlide returns premultiplied RGBA with alpha 0 outside the scanned area: show glass.
        rgb = rgba[..., :3].copy()
        rgb[rgba[..., 3] == 0] = 255
        return rgb

    def close(self):
        self.osr.close()


class _ArrayReader:
    """A plain image held in memory, with a virtual 2x pyramid for thumbnails."""
    def __init__(self, arr: np.ndarray, downsamples: Iterable[float]):
        self.arr = arr
        self.downsamples = list(downsamples)

    def read(self, x, y, w, h, level):
        ds = self.downsamples[level]
        H, W = self.arr.shape[:2]
        x1, y1 = x + int(math.ceil(w * ds)), y + int(math.ceil(h * ds))
        out = np.full((y1 - y, x1 - x, 3), 255, np.uint8)
        sx0, sy0, sx1, sy1 = max(x, 0), max(y, 0), min(x1, W), min(y1, H)
        if sx1 > sx0 and sy1 > sy0:
            out[sy0 - y : sy1 - y, sx0 - x : sx1 - x] = self.arr[sy0:sy1, sx0:sx1]
        if ds != 1:
            out = np.asarray(Image.fromarray(out).resize((w, h), Image.Resampling.BOX))
        return out[:h, :w]

    def close(self):
        self.arr = None


def _openslide():
    try:
        import openslide  # noqa: F401  (openslide-bin provides the library)

        return openslide
    except Exception as e:  # pragma: no cover - environment problem
        raise IsgError(None, f"OpenSlide is not available ({first_line(e)}); "
                             "pip install openslide-python openslide-bin") from None


def _plain_image_mpp(img: Image.Image) -> float | None:
    """mpp from an image's DPI, trusted only when it is a physical scan resolution.
    Screen and editor defaults (72, 96, 300 dpi) mean nothing about the microscope; a real
    scan is at least ~1270 dpi (20 um/px), so anything coarser is ignored.
    """
    dpi = img.info.get("dpi")
    if not dpi:
        return None
    try:
        mpp = 25400.0 / float(dpi[0])
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return mpp if 0.05 <= mpp <= 20 else None


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


def _to_rgb8(img: Image.Image, p: Path) -> np.ndarray:
    """Any Pillow mode -> RGB uint8; 16-bit greyscale is rescaled, alpha composited on white."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        a = np.asarray(img).astype(np.float64)
        hi = a.max() if a.size and a.max() > 0 else 1.0
        a = (a / hi * 255).round().astype(np.uint8)
        return np.repeat(a[..., None], 3, axis=2)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(bg, rgba).convert("RGB"))
    if img.mode == "F":
        raise IsgError(p, "floating-point images are not supported")
    return np.asarray(img.convert("RGB"))


def tiff_level_args(mpp: float, downsample: int, tile: int, quality: int, description: str = "") -> dict:
    """tifffile ``write`` arguments of one level of a tiled JPEG pyramid that OpenSlide reads as
    ``generic-tiff``: mpp in the resolution tags (pixels per centimetre), level 0 as the main image
    with the description, the others as reduced-resolution subfiles."""
    px_per_cm = 1e4 / mpp
    return dict(tile=(tile, tile), compression="jpeg", compressionargs={"level": quality}, photometric="rgb",
                resolution=(px_per_cm / downsample, px_per_cm / downsample), resolutionunit="CENTIMETER",
                subfiletype=0 if downsample == 1 else 1, description=description if downsample == 1 else None,
                metadata=None)


def write_pyramidal_tiff(
    path: str | os.PathLike,
    rgb: np.ndarray,
    mpp: float,
    tile: int = 256,
    quality: int = 85,
    min_level_size: int = 512,
    description: str = "",
) -> Path:
    """Write ``rgb`` as a tiled, JPEG-compressed, pyramidal TIFF with mpp in its resolution
    tags (pixels per centimetre), which OpenSlide opens as ``generic-tiff``.

    Levels halve until the longer side is below ``min_level_size``.  Written atomically.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise IsgError(path, f"expected an RGB uint8 array, got {rgb.dtype} {rgb.shape}")
    with atomic_path(path) as tmp:
        with tifffile.TiffWriter(tmp, bigtiff=rgb.nbytes > 2**31) as tw:
            level, ds = rgb, 1
            while True:
                tw.write(level, **tiff_level_args(mpp, ds, tile, quality, description))
                if max(level.shape[:2]) < 2 * min_level_size:
                    break
                level = _halve(level)
                ds *= 2
    return Path(path)


def _halve(a: np.ndarray) -> np.ndarray:
    """2x box downsample (crops an odd last row/column)."""
    h, w = a.shape[0] // 2 * 2, a.shape[1] // 2 * 2
    a = a[:h, :w].astype(np.uint16)
    return ((a[0::2, 0::2] + a[1::2, 0::2] + a[0::2, 1::2] + a[1::2, 1::2] + 2) // 4).astype(np.uint8)
