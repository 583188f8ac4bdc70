"""Plain-numpy definitions that npgen's numba kernels and fast paths must reproduce, written for clarity, not speed.

Each `<name>_reference` restates npgen's `<name>` (or the kernel behind it); the tests compare the two on real
data. `tests/reference.py` is the same for the whole sampling rule.
"""

from __future__ import annotations

import numpy as np

from npgen.data.nearest import sums_layout
from npgen.data.representation import CONTRAST_EPS

BLOCK_SUM_CHUNK = 4096  # images per chunk of the reference block sums (bounds its int32 scratch memory)


# ---- npgen.data.nearest ----


def block_sum_rows_reference(images: np.ndarray, blocks: tuple[int, ...]) -> np.ndarray:
    """Plain numpy `block_sum_rows`, the definition its kernel must reproduce (valid (N, H, W, C) uint8 images)."""
    n, height, width, channels = images.shape
    layout = sums_layout(height, width, channels, blocks)
    out = np.empty((n, layout[-1]), dtype=np.uint16)
    for first in range(0, n, BLOCK_SUM_CHUNK):
        chunk = np.asarray(images[first : first + BLOCK_SUM_CHUNK])
        for level, s in enumerate(blocks):
            hb, wb = -(-height // s), -(-width // s)
            padded = np.zeros((len(chunk), hb * s, wb * s, channels), dtype=np.int32)
            padded[:, :height, :width] = chunk
            sums = padded.reshape(len(chunk), hb, s, wb, s, channels).sum(axis=(2, 4))
            out[first : first + len(chunk), layout[level] : layout[level + 1]] = sums.reshape(len(chunk), -1)
    return out


def nearest_reference(queries: np.ndarray, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Plain numpy brute force: (squared distances int64, ids int64) of each query's nearest image, lowest id
    on ties. The definition `nearest_kernel` must reproduce."""
    flat = images.reshape(len(images), -1).astype(np.int64)
    squared, ids = [], []
    for query in queries.reshape(len(queries), -1).astype(np.int64):
        distances = ((flat - query) ** 2).sum(axis=1)
        ids.append(int(np.argmin(distances)))  # the first of equal minima: the lowest id
        squared.append(int(distances[ids[-1]]))
    return np.array(squared, np.int64), np.array(ids, np.int64)


def source_ranking_reference(src_image: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Plain per-sample `np.unique`: the definition `source_ranking` must reproduce."""
    flat = np.asarray(src_image).reshape(len(src_image), -1)
    top = np.full((len(flat), k), -1, np.int64)
    top_count, distinct = np.zeros(len(flat), np.int64), np.zeros(len(flat), np.int64)
    for i, row in enumerate(flat):
        images, counts = np.unique(row[row >= 0], return_counts=True)
        order = np.argsort(-counts, kind="stable")  # equal counts keep np.unique's order: the lowest id first
        top[i, : min(k, len(order))] = images[order[:k]]
        top_count[i] = counts.max() if len(counts) else 0
        distinct[i] = len(images)
    return top, top_count, distinct


# ---- npgen.data.representation ----


def row_patches_reference(slab: np.ndarray, patch: int) -> np.ndarray:
    """Plain-numpy `row_patches`."""
    n, rows, width, channels = slab.shape
    windows = np.lib.stride_tricks.sliding_window_view(slab.astype(np.float32), (patch, patch), axis=(1, 2))
    # (n, ny, nx, C, p, p) -> (n, ny*nx, p*p*C) in (py, px, c) order
    v = windows.transpose(0, 1, 2, 4, 5, 3).reshape(n, -1, patch * patch * channels)
    v = v - v.mean(-1, keepdims=True)
    var = (v * v).sum(-1, keepdims=True) / max(v.shape[-1] - 1, 1)
    return (v / np.sqrt(var + CONTRAST_EPS)).astype(np.float32)


def triangle_pool_reference(patches, patch_mean, whiten, centroids_t, columns, n_columns, reach) -> np.ndarray:
    """Plain-numpy `triangle_pool`."""
    z = (patches.astype(np.float64) - patch_mean) @ whiten
    d = np.sqrt(np.maximum(((z[..., :, None] - centroids_t[None, None]) ** 2).sum(-2), 0.0))
    act = np.maximum(d.mean(-1, keepdims=True) - d, 0.0)
    position_column = np.tile(columns, len(patches[0]) // len(columns))
    near = np.abs(np.arange(n_columns)[:, None] - np.arange(n_columns)[None]) <= reach
    onehot = near[position_column].astype(np.float64)  # (n_pos, n_columns): which blocks pool each patch
    return (np.einsum("bik,ic->bck", act, onehot) / onehot.sum(0)[:, None]).astype(np.float32)


def project_codes_reference(codes, code_mean, basis, scale) -> np.ndarray:
    """Plain-numpy `project_codes`."""
    projected = (np.sqrt(codes.astype(np.float64)) - code_mean) @ basis
    return np.round(projected * scale).astype(np.int32).reshape(len(codes), -1)


# ---- npgen.analysis.audit ----


def usage_counts_reference(
    sample: np.ndarray, src_image: np.ndarray, n_candidates: np.ndarray, max_candidates: int, n_images: int
) -> np.ndarray:
    """Plain-numpy statement of `_usage_kernel` (any row order): (4, n_images) pixels, samples, informative
    pixels, informative samples per training image."""
    sample, src_image = np.asarray(sample, np.int64), np.asarray(src_image, np.int64)
    informative = np.asarray(n_candidates) <= max_candidates
    counts = np.zeros((4, n_images), dtype=np.int64)
    for row, mask in ((0, np.ones(len(sample), bool)), (2, informative)):
        counts[row] = np.bincount(src_image[mask], minlength=n_images)
        pairs = np.unique(sample[mask] * n_images + src_image[mask])
        counts[row + 1] = np.bincount(pairs % n_images, minlength=n_images)
    return counts


# ---- npgen.analysis.infomap ----


def information_reference(log_probs: np.ndarray, own: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """Pixel-by-pixel restatement of `information`'s info, with explicit posterior updates (for tests)."""
    n, _, height, width = log_probs.shape
    info = np.empty((n, height * width))
    for b in range(n):
        posterior = np.asarray(prior, dtype=np.float64).copy()
        for p in range(height * width):
            probs = np.exp(log_probs[b, :, p // width, p % width])
            marginal = float((posterior * probs).sum())
            info[b, p] = np.log2(probs[own[b]] / marginal)
            posterior = posterior * probs / marginal
    return info.reshape(n, height, width)
