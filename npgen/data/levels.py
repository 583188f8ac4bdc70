"""Pyramid levels of images: exact integer box means, the images a coarse-to-fine sampler copies from.

Level 0 is the image itself; level k is its mean over 2^k x 2^k blocks, rounded half up:
``(sum + n // 2) // n`` with n = 4^k, computed in integers from the level-0 pixels (never from
level k - 1), so a level image is a pure function of the original and `npgen verify` derives it
again from the dataset. An image whose sides are not multiples of 2^k has no level k.
"""

from __future__ import annotations

import numba
import numpy as np

from npgen.errors import NpgenError


def level_shape(height: int, width: int, level: int) -> tuple[int, int]:
    """(height, width) of level `level` of a height x width image; NpgenError if it has no such level."""
    factor = 1 << level
    if level < 0 or height % factor or width % factor:
        raise NpgenError(
            f"{height}x{width} images have no pyramid level {level}: both sides must be multiples of {factor}; "
            "use fewer --levels"
        )
    return height // factor, width // factor


def level_images(images: np.ndarray, level: int) -> np.ndarray:
    """(N, H / 2^level, W / 2^level, C) uint8: each pixel the rounded-half-up integer mean of its 2^level x
    2^level block of `images` (N, H, W, C) uint8. Level 0 returns the images as they are."""
    level_shape(images.shape[1], images.shape[2], level)
    if level == 0:
        return np.asarray(images)
    return box_means(np.asarray(images), 1 << level)


@numba.njit(parallel=True, nogil=True, cache=True)
def box_means(images: np.ndarray, factor: int) -> np.ndarray:
    """(N, H / factor, W / factor, C) uint8: the rounded-half-up integer mean of each factor x factor block of
    `images` (N, H, W, C) uint8, whose sides are multiples of factor. Summed in integers, so exact on any thread
    count; one image per thread, since a sampler opens every level of its database on every run."""
    n, height, width, channels = images.shape
    rows, columns, count = height // factor, width // factor, factor * factor
    out = np.empty((n, rows, columns, channels), dtype=np.uint8)
    for i in numba.prange(n):
        for row in range(rows):
            for column in range(columns):
                for channel in range(channels):
                    total = 0
                    for dy in range(factor):
                        for dx in range(factor):
                            total += images[i, row * factor + dy, column * factor + dx, channel]
                    out[i, row, column, channel] = (total + count // 2) // count
    return out


def level_mask(mask: np.ndarray, level: int) -> np.ndarray:
    """(..., H / 2^level, W / 2^level) bool: True where every pixel of the 2^level x 2^level block of `mask`
    (..., H, W) is True. A completion's given pixels at a coarser level: a block's mean is given only when every
    pixel of it is, so the coarse level never holds a mean of generated pixels."""
    mask = np.asarray(mask, dtype=bool)
    height, width = level_shape(mask.shape[-2], mask.shape[-1], level)
    factor = 1 << level
    blocks = mask.reshape(*mask.shape[:-2], height, factor, width, factor)
    return blocks.all(axis=(-3, -1))


def level_map(pixel_map: np.ndarray, level: int) -> np.ndarray:
    """(H / 2^level, W / 2^level): each block's top-left entry of a per-pixel map (H, W), such as a class map: the
    value a coarse pixel (y, x) takes is that of pixel (y * 2^level, x * 2^level)."""
    level_shape(pixel_map.shape[0], pixel_map.shape[1], level)
    factor = 1 << level
    return np.ascontiguousarray(pixel_map[::factor, ::factor])
