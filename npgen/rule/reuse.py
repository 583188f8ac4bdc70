"""The bound on reuse: how many pixels one source pixel may give a sample's coarsest level.

With `max_reuse` r > 0, each source pixel (one pixel of one training image at that level) may be copied into at most
`reuse_cap` = ceil(r * level pixels / source pixels) pixels of one sample's coarsest level, its even share times r,
rounded up. With one picture and r = 1 at the picture's own size the coarsest level is a rearrangement of the
picture's pixels: its colours keep the picture's proportions, where an unbounded sample can grow one colour (a black
helmet, a blue sky) over a third of the canvas. The coarsest level sets a sample's layout and colours; finer
levels refine it around their parents' sources and are not bounded. A source pixel at its cap is no candidate
(`used_up`); `PixelUses` counts each canvas's copies as its pixels are taken, and `npgen verify` counts them again.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba.extending import register_jitable

from npgen.errors import NpgenError

MAX_SOURCE_PIXELS = 1 << 20  # the most source pixels (images x pixels at the coarsest level) a count can cover


class PixelUses(NamedTuple):
    """Each canvas's copies of each source pixel as its coarsest level is generated."""

    count: np.ndarray  # int32 (B, images * H * W): copies of source pixel (image, y, x) at (image * H + y) * W + x
    cap: int  # most copies of one source pixel per canvas (`reuse_cap`)


def reuse_cap(max_reuse: float, n_pixels: int, n_source_pixels: int) -> int:
    """Most pixels of a level of n_pixels one of n_source_pixels may give: ceil(max_reuse * even share)."""
    return max(1, int(np.ceil(max_reuse * n_pixels / n_source_pixels - 1e-9)))


def check_reuse(max_reuse: float, n_source_pixels: int) -> None:
    """Refuse, in one line, a bound on reuse below the even share or over more source pixels than can be counted."""
    if 0 < max_reuse < 1:
        raise NpgenError(
            f"invalid max_reuse={max_reuse:g} (--max-reuse): 0 (no bound) or at least 1 (a multiple of each source "
            f"pixel's even share; below 1 the source pixels could not fill a sample)"
        )
    if max_reuse > 0 and n_source_pixels > MAX_SOURCE_PIXELS:
        raise NpgenError(
            f"--max-reuse counts every source pixel of the coarsest level, and this database has {n_source_pixels:,} "
            f"there (at most {MAX_SOURCE_PIXELS:,}): use it with one picture or a few, or leave it at 0"
        )


def pixel_uses(n_canvases: int, n_source_pixels: int, cap: int) -> PixelUses:
    """Empty counts for n canvases over n_source_pixels (`check_reuse` bounds them)."""
    return PixelUses(np.zeros((n_canvases, n_source_pixels), np.int32), cap)


@register_jitable(_nrt=False)
def used_up(uses, cap, image, position, geometry) -> bool:
    """Whether source pixel `position` (flat) of training image `image` has given the canvas (`uses`, its row of
    `PixelUses.count`) all the pixels it may."""
    return uses[image * geometry.height * geometry.width + position] >= cap
