"""Pyramid levels of images: exact integer box means, the images a coarse-to-fine sampler copies from.

Level 0 is the image itself; level k is its mean over 2^k x 2^k blocks, rounded half up:
``(sum + n // 2) // n`` with n = 4^k, computed in integers from the level-0 pixels (never from
level k - 1), so a level image is a pure function of the original and `npgen verify` derives it
again from the dataset. An image whose sides are not multiples of 2^k has no level k.
"""

from __future__ import annotations

import numpy as np

from npgen.errors import NpgenError

LEVEL_CHUNK = 4096  # images per chunk: bounds the int64 block sums' memory


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
    n, height, width, channels = images.shape
    rows, columns = level_shape(height, width, level)
    if level == 0:
        return np.asarray(images)
    factor, count = 1 << level, 1 << (2 * level)
    out = np.empty((n, rows, columns, channels), dtype=np.uint8)
    for first in range(0, n, LEVEL_CHUNK):
        chunk = np.asarray(images[first : first + LEVEL_CHUNK], dtype=np.int64)
        sums = chunk.reshape(len(chunk), rows, factor, columns, factor, channels).sum(axis=(2, 4))
        out[first : first + len(chunk)] = (sums + count // 2) // count
    return out
