"""The parts of generated samples: pieces of training images pasted whole.

A part is a maximal 4-connected set of pixels of one sample copied from the same training image with the same
displacement (src_y - y, src_x - x). `find_parts` labels them (`npgen.rule.parts.label_parts`) and measures each
one with small numba kernels over dense (B, H, W) provenance arrays (no Python loops over pixels or samples).
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
import pyarrow as pa

from npgen.errors import NpgenError
from npgen.rule.parts import label_parts


@numba.njit(cache=True)
def _part_stats_kernel(
    labels,
    first_part,
    src_image,
    src_y,
    src_x,
    informative,
    part_image,
    part_dy,
    part_dx,
    size,
    informative_size,
    y0,
    x0,
    y1,
    x1,
):
    """Per part (flat index first_part[b] + label): source, displacement, sizes and inclusive bounding box.

    The output arrays must arrive zeroed (size in particular); pixels are visited in raster order, so a
    part's first pixel sets its source, displacement and top row.
    """
    n_samples, height, width = labels.shape
    for b in range(n_samples):
        for y in range(height):
            for x in range(width):
                p = first_part[b] + labels[b, y, x]
                if size[p] == 0:
                    part_image[p] = src_image[b, y, x]
                    part_dy[p] = src_y[b, y, x] - y
                    part_dx[p] = src_x[b, y, x] - x
                    y0[p], x0[p], y1[p], x1[p] = y, x, y, x
                else:
                    x0[p] = min(x0[p], x)
                    x1[p] = max(x1[p], x)
                    y1[p] = y
                size[p] += 1
                informative_size[p] += informative[b, y, x]


def canonical_provenance(src_image, src_y, src_x, n_candidates=None):
    """The provenance arrays as contiguous (B, H, W) arrays in the store's dtypes (one kernel signature)."""
    arrays = [
        np.ascontiguousarray(src_image, dtype=np.int32),
        np.ascontiguousarray(src_y, dtype=np.int16),
        np.ascontiguousarray(src_x, dtype=np.int16),
    ]
    if n_candidates is not None:
        arrays.append(np.ascontiguousarray(n_candidates, dtype=np.int32))
    if arrays[0].ndim != 3 or any(a.shape != arrays[0].shape for a in arrays):
        raise NpgenError(f"provenance arrays must share one (B, H, W) shape, got {[a.shape for a in arrays]}")
    return arrays


@dataclass
class Parts:
    """The parts of B samples: per-pixel ids and one row per part (flat, sample by sample)."""

    ids: np.ndarray  # int32 (B, H, W)
    first: np.ndarray  # int64 (B+1,): parts of sample b are rows first[b]:first[b+1]
    table: pa.Table  # sample, part, src_image, dy, dx, size, informative_size, y0, x0, y1, x1


def find_parts(src_image, src_y, src_x, informative: np.ndarray, sample_ids: np.ndarray | None = None) -> Parts:
    """Label the parts of every sample and measure each (source, displacement, sizes, inclusive bounding box)."""
    src_image, src_y, src_x = canonical_provenance(src_image, src_y, src_x)
    n_samples = len(src_image)
    ids = np.empty(src_image.shape, dtype=np.int32)
    n_parts = np.empty(n_samples, dtype=np.int64)
    label_parts(src_image, src_y, src_x, ids, n_parts)
    first = np.concatenate([[0], np.cumsum(n_parts)]).astype(np.int64)
    total = int(first[-1])
    image, size, informative_size = (np.zeros(total, np.int32) for _ in range(3))
    dy, dx, y0, x0, y1, x1 = (np.zeros(total, np.int16) for _ in range(6))
    _part_stats_kernel(
        ids,
        first,
        src_image,
        src_y,
        src_x,
        np.ascontiguousarray(informative, dtype=np.int32),
        image,
        dy,
        dx,
        size,
        informative_size,
        y0,
        x0,
        y1,
        x1,
    )
    owner = np.repeat(np.arange(n_samples, dtype=np.int32), n_parts)
    table = pa.table(
        {
            "sample": owner if sample_ids is None else np.asarray(sample_ids, dtype=np.int32)[owner],
            "part": (np.arange(total, dtype=np.int64) - first[owner]).astype(np.int32),
            "src_image": image,
            "dy": dy,
            "dx": dx,
            "size": size,
            "informative_size": informative_size,
            "y0": y0,
            "x0": x0,
            "y1": y1,
            "x1": x1,
        }
    )
    return Parts(ids, first, table)
