"""Pictures the notebooks and the CLI share: slide thumbnails with patch grids drawn on them.

Plotting only; every number drawn here was computed elsewhere in the package.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Rectangle

from .slides import Slide
from .tiling import Tiling


def nice_length(target: float) -> float:
    """The 1, 2 or 5 x 10^k at or below ``target`` (> 0): a scale bar's length."""
    k = 10.0 ** np.floor(np.log10(target))
    return float(max(m * k for m in (1, 2, 5) if m * k <= target))


def scale_bar(ax, um_per_px: float, image_width_px: float, fraction: float = 0.2, colour: str = "black"):
    """A scale bar in the lower left of an image axis: about ``fraction`` of the width, a round
    length in um or mm.  ``um_per_px``: microns per pixel of the image as drawn (a thumbnail's is
    the slide's mpp times its down-scaling).  Nothing is drawn when the resolution is unknown."""
    if not (um_per_px > 0 and np.isfinite(um_per_px)):
        return None
    length_um = nice_length(fraction * image_width_px * um_per_px)
    px = length_um / um_per_px
    y0, y1 = ax.get_ylim()  # image axes run top to bottom: y0 is the bottom edge
    h = abs(y0 - y1)
    x, y = 0.04 * image_width_px, max(y0, y1) - 0.05 * h
    ax.plot([x, x + px], [y, y], color=colour, lw=3, solid_capstyle="butt")
    label = f"{length_um / 1000:g} mm" if length_um >= 1000 else f"{length_um:g} \u00b5m"
    ax.text(x + px / 2, y - 0.015 * h, label, ha="center", va="bottom", fontsize=8, color=colour,
            bbox=dict(fc="white", ec="none", alpha=0.7, pad=1))
    return length_um


def thumbnail_with_grid(slide: Slide, tiling: Tiling, ax=None, max_size: int = 1024, mask=None,
                        colour: str = "#00c000", local_for: int | None = None, title: str | None = None):
    """Draw the slide's thumbnail with the global grid (and optionally the local grid of one
    global patch) on a matplotlib axis.  ``mask`` (n,) bool outlines only those patches."""
    thumb = slide.thumbnail(max_size)
    scale = thumb.shape[1] / slide.dimensions[0]  # thumbnail px per level-0 px
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 6 * thumb.shape[0] / thumb.shape[1]))
    ax.imshow(thumb)
    s = tiling.patch_size_level0 * scale
    for i, (x, y) in enumerate(tiling.coords):
        if mask is not None and not mask[i]:
            continue
        ax.add_patch(Rectangle((x * scale, y * scale), s, s, fill=False, lw=0.6, ec=colour))
    if local_for is not None:
        x0, y0 = tiling.coords[local_for]
        for ox, oy in tiling.local_offsets().reshape(-1, 2):
            q = s / tiling.config.grid
            ax.add_patch(Rectangle(((x0 + ox) * scale, (y0 + oy) * scale), q, q, fill=False, lw=0.4, ec="#ff3030"))
    ax.set_axis_off()
    scale_bar(ax, slide.mpp / scale, thumb.shape[1])
    if title:
        ax.set_title(title, fontsize=9)
    return ax
