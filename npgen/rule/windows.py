"""Context-window geometry: which neighbours form a pixel's causal context, and how much each counts.

The context of pixel (y, x) in raster order is the causal half of a (2h+1)x(2h+1) window:
the h full rows above it and the h pixels to its left. Images are padded by h rows on top and
h columns on each side with a fixed value, so every context can be read without bounds checks.
"""

from __future__ import annotations

import numba
import numpy as np

from npgen.errors import NpgenError
from npgen.rule.kernels import add_window_term, gather_context_part, weighted_distance


def causal_offsets(half_window: int) -> np.ndarray:
    """(L, 2) int64 (dy, dx) offsets of the causal context, in raster order; L = 2h^2 + 2h."""
    if half_window < 1:
        raise NpgenError(f"half_window must be >= 1, got {half_window}; use e.g. --half-window 3")
    h = half_window
    above = [(dy, dx) for dy in range(-h, 0) for dx in range(-h, h + 1)]
    left = [(0, dx) for dx in range(-h, 0)]
    return np.array(above + left, dtype=np.int64)


def default_sigma(half_window: int) -> float:
    """Gaussian width of the window weights, (2h+1)/6.4 as in Efros & Leung."""
    return (2 * half_window + 1) / 6.4


def window_weights(half_window: int, sigma: float | None = None) -> np.ndarray:
    """(L,) float32 Gaussian weights of the causal offsets, normalised to sum to 1."""
    sigma = default_sigma(half_window) if sigma is None else float(sigma)
    if not (sigma > 0 and np.isfinite(sigma)):
        raise NpgenError(f"sigma must be a finite number > 0, got {sigma}")
    squared = (causal_offsets(half_window).astype(np.float64) ** 2).sum(axis=1)
    weights = np.exp(-(squared - squared.min()) / (2.0 * sigma**2))  # relative to the nearest: never 0/0
    return (weights / weights.sum()).astype(np.float32)


def inside_weights(half_window: int, weights: np.ndarray) -> np.ndarray:
    """(h+1, h+1, h+1, L) float32: the weights of a pixel's causal offsets when it has `top` rows above it, `left`
    columns left and `right` columns right of it inside the canvas (each at most h): those outside are 0 and the
    others are renormalised to sum to 1 (all 0 for the first pixel, which has no context), so a context is compared
    only where the canvas is (--outside-canvas ignored). `weights` are `window_weights`, in raster order; a pixel
    with its whole context inside gets them unchanged."""
    h = half_window
    offsets = causal_offsets(h)
    table = np.zeros((h + 1, h + 1, h + 1, len(offsets)), dtype=np.float32)
    for top in range(h + 1):
        for left in range(h + 1):
            for right in range(h + 1):
                inside = (offsets[:, 0] >= -top) & (offsets[:, 1] >= -left) & (offsets[:, 1] <= right)
                kept = np.where(inside, weights.astype(np.float64), 0.0)
                if inside.all():
                    table[top, left, right] = weights
                elif kept.sum() > 0:
                    table[top, left, right] = kept / kept.sum()
    return table


def flat_offsets(half_window: int, padded_width: int, channels: int) -> np.ndarray:
    """Offsets of the causal context into one flattened padded image, relative to the centre pixel."""
    offsets = causal_offsets(half_window)
    return (offsets[:, 0] * padded_width + offsets[:, 1]) * channels


@numba.njit(cache=True, nogil=True)
def gather_context(image: np.ndarray, centre: int, offsets: np.ndarray, channels: int, out: np.ndarray) -> None:
    """Copy the causal context of the pixel at flat index `centre` of a flattened padded image into `out`."""
    gather_context_part(image, centre, offsets, channels, out, 0, 1)


@numba.njit(cache=True, nogil=True)
def window_distance(
    context: np.ndarray,
    image: np.ndarray,
    centre: int,
    offsets: np.ndarray,
    weights: np.ndarray,
    channels: int,
    limit: float = np.inf,
) -> float:
    """Gaussian-weighted SSD between `context` and the window at `centre` of `image` (`kernels.weighted_distance`).

    Stops early once the partial sum exceeds `limit` and returns that partial sum, which is then
    known to be > limit (every term is >= 0). Put the heaviest offsets first to stop soonest.
    """
    return weighted_distance(context, image, centre, offsets, weights, channels, limit)


@numba.njit(cache=True, nogil=True)
def block_distances(context, image, corner, block, offsets, weights, channels, limit, out, seeded=False) -> None:
    """`window_distance` from `context` to every window of a rows x columns block of source positions, into
    out[r * columns + j] (the window r rows below and j columns right of the top-left one).

    `block` is (rows, columns, row_stride): `corner` is the flat index of the top-left window's centre, the
    windows of a row are `channels` apart and the rows `row_stride` apart. Each window's terms are summed in
    window_distance's order, so a complete distance is the same float. The terms are taken for the whole
    block at once, which is faster than one window at a time, until every window's partial sum exceeds `limit`;
    a window over it may be left with a partial sum, which is then > limit. With `seeded` the terms are added to
    what `out` holds (a pyramid level's coarse terms), else to 0.
    """
    rows, columns, row_stride = block
    if not seeded:
        for q in range(rows * columns):
            out[q] = 0.0
    for l in range(offsets.shape[0]):
        below_limit = 0
        for r in range(rows):
            base = corner + r * row_stride + offsets[l]
            for j in range(columns):
                q = r * columns + j
                out[q] = add_window_term(out[q], context, image, base + j * channels, l, weights, channels)
                below_limit += out[q] <= limit
        if below_limit == 0:
            return
