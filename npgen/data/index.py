"""FAISS, behind one module: exact nearest-neighbour search over whole images.

The database persists an exact L2 index of its training images (`build_image_index`). It answers "which training
image is nearest to this sample" (novelty, near-copy detection) and the k-NN classifier used to
check class fidelity. faiss-gpu is used when a GPU is visible, faiss-cpu otherwise. `kmeans` learns
the patch dictionary of the learned retrieval representation (`representation.py`). `build_ivf_index` and
`search_ivf` are the approximate (IVF) search behind the semantic pool of large databases
(`semantics.PrefixIndexes`), made deterministic: seeded training, fixed probes, and distances computed
query by query.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Self

import faiss
import numpy as np

from npgen.errors import NpgenError


def as_vectors(images: np.ndarray) -> np.ndarray:
    """Flatten (N, H, W, C) uint8 images into (N, H*W*C) float32 rows, the space every index works in."""
    return np.ascontiguousarray(images.reshape(len(images), -1), dtype=np.float32)


def build_flat_index(vectors: np.ndarray, batch: int = 4096) -> faiss.Index:
    """An exact L2 index over float vectors (rows of `vectors`, flattened after the first axis)."""
    index = faiss.IndexFlatL2(int(np.prod(vectors.shape[1:])))
    for first in range(0, len(vectors), batch):
        index.add(as_vectors(vectors[first : first + batch]))
    return index


def build_image_index(images: np.ndarray, batch: int = 4096) -> faiss.Index:
    """An exact L2 index over uint8 images' raw pixels.

    It stores the pixels as bytes (an 8-bit "direct" scalar quantizer, which is lossless for uint8)
    and sums exact squared differences: a quarter of a float index's size, and on the 2-core CI
    machine about 3x faster per query than IndexFlatL2, whose BLAS path also rounds (errors of up
    to 25 in squared distance on CIFAR-10, where this index is exact).
    """
    if images.dtype != np.uint8:
        raise NpgenError(f"an image index takes uint8 images, got {images.dtype}")
    index = faiss.IndexScalarQuantizer(
        int(np.prod(images.shape[1:])), faiss.ScalarQuantizer.QT_8bit_direct, faiss.METRIC_L2
    )
    index.train(as_vectors(images[:1]))  # a no-op for the direct quantizer, which needs no statistics
    for first in range(0, len(images), batch):
        index.add(as_vectors(images[first : first + batch]))
    return index


def image_index_header(dimension: int, n_images: int) -> bytes:
    """The bytes of a `build_image_index` file holding n_images images of `dimension` pixels, up to its codes.

    The 8-bit direct quantizer stores each image's pixels unchanged, so the file is this header followed by the
    images' raw bytes in order: `ImageIndexWriter` writes it chunk by chunk, byte for byte what
    `save_index(build_image_index(images))` writes, without holding the images in memory."""
    empty = faiss.IndexScalarQuantizer(dimension, faiss.ScalarQuantizer.QT_8bit_direct, faiss.METRIC_L2)
    empty.train(np.zeros((1, dimension), dtype=np.float32))
    header = bytearray(faiss.serialize_index(empty).tobytes())
    count = np.array([0], dtype="<i8").tobytes()
    if header[8:16] != count or header[-8:] != count:  # layout: fourcc, d (int32), ntotal (int64), ..., codes size
        raise NpgenError(
            f"this FAISS version ({faiss.__version__}) writes an unknown index layout; build without streaming"
        )
    header[8:16] = np.array([n_images], dtype="<i8").tobytes()
    header[-8:] = np.array([n_images * dimension], dtype="<u8").tobytes()
    return bytes(header)


class ImageIndexWriter:
    """Writes the exact image index (`build_image_index`) of n_images images to `path`, chunk by chunk, in order.

    Use as a context manager; the file is written beside `path` and renamed into place only when every image
    has been added (`add`)."""

    def __init__(self, path: Path, dimension: int, n_images: int) -> None:
        self.path, self.dimension, self.n_images, self.added = Path(path), dimension, n_images, 0
        self.tmp = self.path.with_name(self.path.name + ".tmp")
        self.file = None

    def __enter__(self) -> Self:
        self.file = open(self.tmp, "wb")
        self.file.write(image_index_header(self.dimension, self.n_images))
        return self

    def add(self, images: np.ndarray) -> None:
        """Append uint8 images (n, H, W, C) whose pixels number `dimension` each."""
        if images.dtype != np.uint8 or int(np.prod(images.shape[1:])) != self.dimension:
            raise NpgenError(
                f"an image index of dimension {self.dimension} takes uint8 images, got {images.dtype} {images.shape}"
            )
        self.file.write(np.ascontiguousarray(images).tobytes())
        self.added += len(images)

    def __exit__(self, kind, value, traceback) -> None:
        self.file.close()
        if kind is None and self.added != self.n_images:
            self.tmp.unlink(missing_ok=True)
            raise NpgenError(f"the image index got {self.added} images, not {self.n_images}")
        if kind is None:
            os.replace(self.tmp, self.path)
        else:
            self.tmp.unlink(missing_ok=True)


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
        raise NpgenError(
            f"cannot read FAISS index {path} ({str(err).splitlines()[0][:80]}); rebuild with `npgen build`"
        ) from err
    if hasattr(faiss, "get_num_gpus") and faiss.get_num_gpus() > 0:
        try:
            index = faiss.index_cpu_to_all_gpus(index)
        except RuntimeError:  # an index type the GPU build cannot hold: search it on the CPU
            pass
    return index


def search(index: faiss.Index, images: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(distances, ids), each (N, k): the k nearest indexed images to each query, nearest first.

    Distances are Euclidean (not squared), in pixel units.
    """
    if images.shape[1:] and int(np.prod(images.shape[1:])) != index.d:
        raise NpgenError(
            f"images of {int(np.prod(images.shape[1:]))} values do not match an index of dimension {index.d}"
        )
    squared, ids = index.search(as_vectors(images), k)
    return np.sqrt(np.maximum(squared, 0.0)), ids


def build_ivf_index(vectors: np.ndarray, n_lists: int, seed: int = 0) -> faiss.Index:
    """An approximate L2 index (IVF-Flat: `n_lists` k-means cells, seeded) over (n, d) vectors, ids 0..n-1.

    Its k-means is trained on a seeded sample of at most 64 vectors per cell, so the same vectors and seed
    give the same index."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    n_lists = max(1, min(int(n_lists), len(vectors)))
    quantizer = faiss.IndexFlatL2(vectors.shape[1])
    index = faiss.IndexIVFFlat(quantizer, vectors.shape[1], n_lists, faiss.METRIC_L2)
    index.cp.seed, index.cp.niter, index.cp.max_points_per_centroid = seed, 10, 64
    index.cp.min_points_per_centroid = 1  # small classes: no warning, the cells are simply sparse
    index.verbose = False
    with _sequential_distances():
        index.train(vectors)
        index.add(vectors)
    index.referenced_objects = [quantizer]  # keep the quantizer alive as long as the index (it does not own it)
    return index


class _sequential_distances:
    """Compute FAISS flat distances one query at a time (never by BLAS matrix products, whose rounding can
    depend on how many queries are searched together), so a query's neighbours do not depend on its batch."""

    def __enter__(self) -> None:
        self.saved = faiss.cvar.distance_compute_blas_threshold
        faiss.cvar.distance_compute_blas_threshold = 2**30

    def __exit__(self, *exc) -> None:
        faiss.cvar.distance_compute_blas_threshold = self.saved


def search_ivf(index: faiss.Index, queries: np.ndarray, k: int, n_probe: int) -> np.ndarray:
    """(n, k) int64 ids of the k nearest indexed vectors found in the `n_probe` nearest cells (-1: none found).

    Deterministic: each query is searched on its own terms, whatever the batch or thread count."""
    params = faiss.SearchParametersIVF(nprobe=max(1, min(int(n_probe), index.nlist)))
    with _sequential_distances():
        _, ids = index.search(np.ascontiguousarray(queries, dtype=np.float32), int(k), params=params)
    return ids


def kmeans(vectors: np.ndarray, k: int, seed: int = 0, niter: int = 25) -> np.ndarray:
    """(k, d) float32 centroids of FAISS k-means (Lloyd, exact assignment) over (n, d) vectors, seeded."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if not 0 < k <= len(vectors):
        raise NpgenError(f"k-means needs 1 <= k <= {len(vectors)} vectors, got k = {k}")
    km = faiss.Kmeans(
        vectors.shape[1], k, niter=niter, seed=seed, max_points_per_centroid=max(256, -(-len(vectors) // k))
    )
    km.train(vectors)
    return np.array(km.centroids, dtype=np.float32).reshape(k, vectors.shape[1])


def within(index: faiss.Index, images: np.ndarray, radius: float) -> list[np.ndarray]:
    """For each query image, the ids of the indexed images within Euclidean distance `radius` (pixel units).

    The search radius is widened slightly so that rounding in FAISS's float32 sums loses no image; callers
    that need the exact boundary confirm the candidates themselves.
    """
    squared = float(radius) ** 2 * (1.0 + 1e-5) + 1.0
    limits, _, ids = index.range_search(as_vectors(images), squared)
    return [ids[limits[i] : limits[i + 1]].astype(np.int64) for i in range(len(images))]


PREFIX_INDEX_PROBES = 32  # IVF cells searched per query: fixed, so the approximate pool is deterministic
PREFIX_INDEX_SEED = 0


def prefix_index_lists(n_images: int) -> int:
    """IVF cells of a prefix index over n_images images: about 2 sqrt(n), at least 1."""
    return max(1, round(2 * float(np.sqrt(n_images))))


class PrefixIndexes:
    """The approximate pool's FAISS indexes for one set of allowed images: for each number r of completed block
    rows, an IVF index (`index.build_ivf_index`) over the allowed images' representations of rows 0..r-1,
    built on first use and kept for the next batches."""

    def __init__(self, representations: np.ndarray, allowed: np.ndarray) -> None:
        self.representations, self.allowed = representations, np.asarray(allowed, dtype=np.int64)
        self.indexes: dict[int, object] = {}
        self.seconds = 0.0

    def index(self, n_rows: int):
        """The IVF index over block rows 0..n_rows-1 (built now if this is its first use)."""
        if n_rows not in self.indexes:
            started = time.perf_counter()
            prefix = np.asarray(self.representations[self.allowed, :n_rows]).reshape(len(self.allowed), -1)
            self.indexes[n_rows] = build_ivf_index(prefix, prefix_index_lists(len(self.allowed)), PREFIX_INDEX_SEED)
            self.seconds += time.perf_counter() - started
        return self.indexes[n_rows]

    def candidates(self, canvas_prefix: np.ndarray, n_rows: int, count: int) -> np.ndarray:
        """(B, count) global image ids near each canvas prefix (B, n_rows, row width); -1 where fewer were found."""
        index = self.index(n_rows)
        queries = canvas_prefix[:, :n_rows].reshape(len(canvas_prefix), -1)
        found = search_ivf(index, queries, count, PREFIX_INDEX_PROBES)
        short = (found >= 0).sum(axis=1) < min(count, len(self.allowed))
        if short.any():  # too few in the probed cells: search every cell for those canvases
            found[short] = search_ivf(index, queries[short], count, index.nlist)
        return np.where(found >= 0, self.allowed[np.maximum(found, 0)], -1)
