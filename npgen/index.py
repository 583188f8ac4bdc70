"""FAISS, behind one module: exact nearest-neighbour search over whole images.

The database persists an exact flat L2 index of its training images. It answers "which training
image is nearest to this sample" (novelty, near-copy detection) and the k-NN classifier used to
check class fidelity. faiss-gpu is used when a GPU is visible, faiss-cpu otherwise. `kmeans` learns
the patch dictionary of the learned retrieval representation (`representation.py`).
"""

from __future__ import annotations

import os
from pathlib import Path

import faiss
import numpy as np

from npgen.errors import NpgenError


def as_vectors(images: np.ndarray) -> np.ndarray:
    """Flatten (N, H, W, C) uint8 images into (N, H*W*C) float32 rows, the space every index works in."""
    return np.ascontiguousarray(images.reshape(len(images), -1), dtype=np.float32)


def build_flat_index(images: np.ndarray, batch: int = 4096) -> faiss.Index:
    """An exact L2 index over the images' raw pixels."""
    index = faiss.IndexFlatL2(int(np.prod(images.shape[1:])))
    for first in range(0, len(images), batch):
        index.add(as_vectors(images[first : first + batch]))
    return index


def save_index(index: faiss.Index, path: Path) -> None:
    """Write the index atomically: a temporary file in the same folder, then a rename."""
    tmp = path.with_name(path.name + ".tmp")
    faiss.write_index(index, str(tmp))
    os.replace(tmp, path)


def load_index(path: Path) -> faiss.Index:
    """Read an index memory-mapped from disk, on the GPU when one is visible."""
    try:
        index = faiss.read_index(str(path), faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY)
    except RuntimeError as err:
        raise NpgenError(f"cannot read FAISS index {path} ({str(err).splitlines()[0][:80]}); rebuild with `npgen build`") from err
    if hasattr(faiss, "get_num_gpus") and faiss.get_num_gpus() > 0:
        index = faiss.index_cpu_to_all_gpus(index)
    return index


def search(index: faiss.Index, images: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(distances, ids), each (N, k): the k nearest indexed images to each query, nearest first.

    Distances are Euclidean (not squared), in pixel units.
    """
    if images.shape[1:] and int(np.prod(images.shape[1:])) != index.d:
        raise NpgenError(f"images of {int(np.prod(images.shape[1:]))} values do not match an index of dimension {index.d}")
    squared, ids = index.search(as_vectors(images), k)
    return np.sqrt(np.maximum(squared, 0.0)), ids


def kmeans(vectors: np.ndarray, k: int, seed: int = 0, niter: int = 25) -> np.ndarray:
    """(k, d) float32 centroids of FAISS k-means (Lloyd, exact assignment) over (n, d) vectors, seeded."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if not 0 < k <= len(vectors):
        raise NpgenError(f"k-means needs 1 <= k <= {len(vectors)} vectors, got k = {k}")
    km = faiss.Kmeans(vectors.shape[1], k, niter=niter, seed=seed, max_points_per_centroid=max(256, -(-len(vectors) // k)))
    km.train(vectors)
    return np.array(km.centroids, dtype=np.float32).reshape(k, vectors.shape[1])
