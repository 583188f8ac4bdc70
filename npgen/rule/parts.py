"""Copied parts, and the bound on their size that lets a sample recompose a source instead of copying it.

A part is a maximal 4-connected set of a sample's pixels copied from one training image at one displacement
(src_y - y, src_x - x). With `max_part_share` below 1 no part may hold more than `part_bound` pixels (that share of
the level's pixels). Pixels are generated in raster order, so a new pixel can join only the parts of its left and
upper neighbours, and only by copying the source pixel that continues one of them: at most two candidates per pixel
are excluded (`blocked_continuations`), and only when joining would make a part larger than the bound. Each canvas's
parts are kept as a union-find forest (`PartForest`) that `join_part` grows as pixels are taken.

`label_parts` labels the parts of finished samples; `npgen verify` and the tracer measure them with it.
"""

from __future__ import annotations

from typing import NamedTuple

import numba
import numpy as np
from numba.extending import register_jitable

NOT_BLOCKED = (-1, -1, -1, -1)  # (image, flat source position) twice: no candidate excluded


class PartForest(NamedTuple):
    """The parts of a batch's canvases as they are generated: a union-find forest per canvas."""

    parent: np.ndarray  # int32 (B, H*W): each taken pixel's parent in its part's tree (itself at a root)
    size: np.ndarray  # int32 (B, H*W): at a root, how many pixels its part holds
    bound: int  # most pixels a part may hold


def part_forest(n_canvases: int, height: int, width: int, bound: int) -> PartForest:
    """An empty forest for n canvases of height x width pixels whose parts hold at most `bound` pixels."""
    return PartForest(
        np.full((n_canvases, height * width), -1, np.int32), np.zeros((n_canvases, height * width), np.int32), bound
    )


@register_jitable(_nrt=False)
def find_root(parent, p):
    """The root of pixel p's part (flat index), halving the path on the way."""
    while parent[p] != p:
        parent[p] = parent[parent[p]]
        p = parent[p]
    return p


@register_jitable(_nrt=False)
def continues(src_image, src_y, src_x, ny, nx, image, sy, sx, y, x):
    """Whether neighbour (ny, nx) of pixel (y, x) was copied from `image` at the displacement of (sy, sx)."""
    return src_image[ny, nx] == image and src_y[ny, nx] - ny == sy - y and src_x[ny, nx] - nx == sx - x


@register_jitable(_nrt=False)
def joined_size(parent, size, src_image, src_y, src_x, y, x, image, sy, sx):
    """How many pixels the part of pixel (y, x) would hold if it were copied from (sy, sx) of training image `image`:
    itself, plus the parts of its left and upper neighbours that it would continue."""
    width = src_image.shape[1]
    total = 1
    left = -1
    if x > 0 and continues(src_image, src_y, src_x, y, x - 1, image, sy, sx, y, x):
        left = find_root(parent, y * width + x - 1)
        total += size[left]
    if y > 0 and continues(src_image, src_y, src_x, y - 1, x, image, sy, sx, y, x):
        up = find_root(parent, (y - 1) * width + x)
        if up != left:
            total += size[up]
    return total


@register_jitable(_nrt=False)
def blocked_continuations(parent, size, bound, src_image, src_y, src_x, y, x, source_height, source_width):
    """(image, flat source position) of the window continuing the left neighbour's part and of the one continuing
    the upper neighbour's, each only when copying it would make a part of more than `bound` pixels, else (-1, -1):
    the candidates pixel (y, x) may not take."""
    left_image, left_position, up_image, up_position = -1, -1, -1, -1
    if x > 0 and src_image[y, x - 1] >= 0 and src_x[y, x - 1] + 1 < source_width:
        image, sy, sx = src_image[y, x - 1], src_y[y, x - 1], src_x[y, x - 1] + 1
        if joined_size(parent, size, src_image, src_y, src_x, y, x, image, sy, sx) > bound:
            left_image, left_position = image, sy * source_width + sx
    if y > 0 and src_image[y - 1, x] >= 0 and src_y[y - 1, x] + 1 < source_height:
        image, sy, sx = src_image[y - 1, x], src_y[y - 1, x] + 1, src_x[y - 1, x]
        if joined_size(parent, size, src_image, src_y, src_x, y, x, image, sy, sx) > bound:
            up_image, up_position = image, sy * source_width + sx
    return np.int64(left_image), np.int64(left_position), np.int64(up_image), np.int64(up_position)


@register_jitable(inline="always", _nrt=False)
def is_blocked(blocked, image, position):
    """Whether the window (image, flat source position) is one of `blocked_continuations`'."""
    return (image == blocked[0] and position == blocked[1]) or (image == blocked[2] and position == blocked[3])


@register_jitable(_nrt=False)
def merge_roots(parent, size, a, b):
    """Join the parts rooted at a and b (a != b): the smaller under the larger, on a tie the later under the earlier."""
    if size[a] < size[b] or (size[a] == size[b] and a > b):
        a, b = b, a
    parent[b] = a
    size[a] += size[b]


@register_jitable(_nrt=False)
def join_part(parent, size, src_image, src_y, src_x, y, x):
    """Add the pixel (y, x) just taken (its provenance recorded) to the forest, joining the parts it continues."""
    width = src_image.shape[1]
    p = y * width + x
    parent[p] = p
    size[p] = 1
    image, sy, sx = src_image[y, x], src_y[y, x], src_x[y, x]
    for ny, nx in ((y, x - 1), (y - 1, x)):
        if ny >= 0 and nx >= 0 and continues(src_image, src_y, src_x, ny, nx, image, sy, sx, y, x):
            mine, theirs = find_root(parent, p), find_root(parent, ny * width + nx)
            if mine != theirs:
                merge_roots(parent, size, mine, theirs)


@numba.njit(cache=True)
def label_parts(src_image, src_y, src_x, labels, n_parts):
    """Flood-fill the parts of every sample: labels[b] gets 0..n_parts[b]-1 in raster order of first pixel."""
    n_samples, height, width = src_image.shape
    stack = np.empty(height * width, dtype=np.int64)
    for b in range(n_samples):
        labels[b, :, :] = -1
        next_id = 0
        for y0 in range(height):
            for x0 in range(width):
                if labels[b, y0, x0] >= 0:
                    continue
                image = src_image[b, y0, x0]
                dy = np.int64(src_y[b, y0, x0]) - y0
                dx = np.int64(src_x[b, y0, x0]) - x0
                labels[b, y0, x0] = next_id
                stack[0] = y0 * width + x0
                top = 1
                while top > 0:  # every pixel is labelled when pushed, so the stack never exceeds H*W
                    top -= 1
                    y, x = stack[top] // width, stack[top] % width
                    for k in range(4):  # up, down, left, right
                        ny = y - 1 if k == 0 else (y + 1 if k == 1 else y)
                        nx = x - 1 if k == 2 else (x + 1 if k == 3 else x)
                        if 0 <= ny < height and 0 <= nx < width and labels[b, ny, nx] < 0:
                            if (
                                src_image[b, ny, nx] == image
                                and np.int64(src_y[b, ny, nx]) - ny == dy
                                and np.int64(src_x[b, ny, nx]) - nx == dx
                            ):
                                labels[b, ny, nx] = next_id
                                stack[top] = ny * width + nx
                                top += 1
                next_id += 1
        n_parts[b] = next_id


def largest_parts(src_image: np.ndarray, src_y: np.ndarray, src_x: np.ndarray) -> np.ndarray:
    """(B,) the most pixels any copied part of each sample holds, from (B, H, W) provenance (src_image -1: a pixel
    not copied, such as a completion's given pixel, in no part)."""
    src_image = np.ascontiguousarray(src_image, dtype=np.int32)
    src_y = np.ascontiguousarray(src_y, dtype=np.int16)
    src_x = np.ascontiguousarray(src_x, dtype=np.int16)
    n, height, width = src_image.shape
    labels = np.empty((n, height, width), np.int32)
    n_parts = np.empty(n, np.int64)
    label_parts(src_image, src_y, src_x, labels, n_parts)
    largest = np.zeros(n, np.int64)
    for b in range(n):
        copied = src_image[b] >= 0
        if copied.any():
            largest[b] = np.bincount(labels[b][copied]).max()
    return largest
