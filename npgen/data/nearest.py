"""The exact nearest training image of each sample, found without scanning every training image in full.

`samples.parquet` records each sample's nearest training image and its L2 distance. A brute-force scan
(FAISS, `index.build_image_index`) costs H*W*C operations per training image and query; on CIFAR-10
that was most of a whole `npgen sample` run. This search returns the same answer (exact integer squared
distances, ties to the lowest image id, as FAISS resolves them) while computing full distances for a few
dozen images per query:

1. An upper bound U: the exact distance to the sample's most-used source images (`hints`); a sample's
   nearest training image is usually among them, or close to them.
2. Lower bounds, coarse to fine: for s x s block sums S (per channel), Cauchy-Schwarz gives
   ||a - b||^2 >= sum over blocks of (S_a - S_b)^2 / s^2. Each finer level's bound is at least the
   coarser one's. An image is dropped as soon as a bound exceeds U (kept when equal: it could tie with a
   lower id); the survivors get their exact distance, which tightens U for the images after them (in
   every parallel chunk of the scan: `nearest_kernel`).

Distances are exact integers; the bounds, computed in float32 for speed (8 lanes a vector), are compared
against thresholds widened by their largest possible rounding error (`_limit`). No image that could be
nearest is ever dropped, so the result equals the brute-force argmin exactly (tests/kernel_references.py). The
block sums (uint16, `blocks_for`) are computed once per database and kept in its folder, level by level
(`sums_file`, `level_major`).
"""

from __future__ import annotations

import hashlib
import itertools
import json
from pathlib import Path

import numba
import numpy as np

from npgen.data.files import write_array
from npgen.errors import NpgenError

FIRST_LEVEL_VALUES = 64  # at most this many block sums per image in the first level, which every image is tested on
_IMAGE_CHUNK = 1024  # training images per parallel chunk of the search
_SHARE_EVERY = 16  # images between a chunk's reads of the distances the other chunks found
_INT32_RUN = 32768  # pixel values summed in int32 before adding to an int64 total


def blocks_for(height: int, width: int, channels: int) -> tuple[int, ...]:
    """Block sizes of the bounds, coarse to fine, halving down to 2: the first is the smallest power of two
    (<= 16) with at most FIRST_LEVEL_VALUES sums per image. A first level of about 50 values measured fastest
    (CIFAR-10: 8, 4, 2; MNIST: 4, 2): it prunes most images in one pass vectorised over all queries."""
    first = 2
    while first < 16 and (-(-height // first)) * (-(-width // first)) * channels > FIRST_LEVEL_VALUES:
        first *= 2
    return tuple(first >> i for i in range(first.bit_length() - 1))


def sums_layout(height: int, width: int, channels: int, blocks: tuple[int, ...]) -> np.ndarray:
    """(len(blocks) + 1,) start of each level's columns in the concatenated block-sum rows, then their total."""
    sizes = [(-(-height // s)) * (-(-width // s)) * channels for s in blocks]
    return np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)


def _check_blocks(images: np.ndarray, blocks: tuple[int, ...]) -> None:
    if images.ndim != 4 or images.dtype != np.uint8:
        raise NpgenError(f"block sums take (N, H, W, C) uint8 images, got {images.dtype} {images.shape}")
    if not blocks or min(blocks) < 1 or max(blocks) > 16:
        raise NpgenError(f"block sizes must be 1..16 (sums of 16 x 16 uint8 values fit uint16), got {blocks}")


@numba.njit(nogil=True, cache=True)
def _image_block_sums(
    m: int, images: np.ndarray, image_stride: int, shape: tuple, blocks: np.ndarray, layout: np.ndarray, out: np.ndarray
) -> None:
    """out[m] = image m's block sums for every block size (see `block_sums_kernel`)."""
    height, width, channels, row_stride = shape
    for level in range(len(blocks)):
        s = blocks[level]
        columns = (width + s - 1) // s
        first = layout[level]
        for j in range(first, layout[level + 1]):
            out[m, j] = 0
        for y in range(height):
            row = m * image_stride + y * row_stride
            base = first + (y // s) * columns * channels
            for x in range(width):
                cell = base + (x // s) * channels
                for c in range(channels):
                    out[m, cell + c] += images[row + x * channels + c]


@numba.njit(parallel=True, nogil=True, cache=True)
def block_sums_kernel(
    images: np.ndarray, image_stride: int, shape: tuple, blocks: np.ndarray, layout: np.ndarray, out: np.ndarray
) -> None:
    """out[m] = image m's block sums for every block size, levels concatenated (see `block_sum_rows`); images
    is a flat uint8 buffer (`flat_buffer`), shape = (height, width, channels, row stride)."""
    for m in numba.prange(out.shape[0]):
        _image_block_sums(m, images, image_stride, shape, blocks, layout, out)


@numba.njit(nogil=True, cache=True)
def block_sums_serial(
    images: np.ndarray, image_stride: int, shape: tuple, blocks: np.ndarray, layout: np.ndarray, out: np.ndarray
) -> None:
    """`block_sums_kernel` in one thread, for a batch of queries: a parallel region's start and join cost more
    than the work, and on a loaded machine a worker thread can wait a whole time slice for a core."""
    for m in range(out.shape[0]):
        _image_block_sums(m, images, image_stride, shape, blocks, layout, out)


SERIAL_BLOCK_SUMS = 1024  # up to this many images, block sums are computed in one thread (`block_sums_serial`)


def block_sum_rows(images: np.ndarray, blocks: tuple[int, ...]) -> np.ndarray:
    """(N, H, W, C) uint8 -> (N, total) uint16: each image's s x s block sums (zero-padded) for every s in
    `blocks`, levels concatenated coarse to fine, each level (block row, block column, channel) in order."""
    _check_blocks(images, blocks)
    n, height, width, channels = images.shape
    layout = sums_layout(height, width, channels, blocks)
    out = np.empty((n, layout[-1]), dtype=np.uint16)
    if n:
        buffer, image_stride, row_stride = flat_buffer(images)
        kernel = block_sums_serial if n <= SERIAL_BLOCK_SUMS else block_sums_kernel
        kernel(buffer, image_stride, (height, width, channels, row_stride), np.array(blocks, np.int64), layout, out)
    return out


@numba.njit(nogil=True, cache=True)
def _squared_distance(
    query: np.ndarray, query_start: int, images: np.ndarray, image_start: int, geometry: tuple, stop: np.int64
) -> np.int64:
    """Exact squared L2 distance between two images in flat buffers, row by row; returns early once it
    exceeds `stop` (>= 0), when only "larger than stop" matters."""
    height, row_length, query_row_stride, image_row_stride = geometry
    total = np.int64(0)
    for y in range(height):
        a, i = query_start + y * query_row_stride, image_start + y * image_row_stride
        for first in range(0, row_length, _INT32_RUN):  # int32 partial sums: at most 33,025 * 255^2 < 2^31
            end = min(first + _INT32_RUN, row_length)
            query_run, image_run = query[a + first : a + end], images[i + first : i + end]  # slices: no index
            part = np.int32(0)  # wraparound checks, so the loop vectorises
            for j in range(end - first):
                diff = np.int32(query_run[j]) - np.int32(image_run[j])
                part += diff * diff
            total += part
        if 0 <= stop < total:
            return total
    return total


@numba.njit(nogil=True, cache=True, fastmath=True)
def _bound(query_run: np.ndarray, run: np.ndarray) -> np.float32:
    """Sum of squared differences of two runs of block sums (slices: no index wraparound checks), in float32
    (8 lanes a vector, no conversion to float64): compared against `_limit`, which allows for its rounding
    whatever the order of the sum."""
    total = np.float32(0.0)
    for j in range(len(query_run)):
        diff = np.float32(query_run[j]) - np.float32(run[j])
        total += diff * diff
    return total


@numba.njit(nogil=True, cache=True)
def _limit(area: np.int64, best: np.int64, n_values: int) -> np.float32:
    """The float32 threshold of a level's bound over n_values block sums: a computed bound above it proves
    bound / area > best.

    The block sums and their differences are integers below 2^24, exact in float32; each square and each
    addition of the sum of n_values non-negative terms rounds by at most 2^-24 relative, so the computed sum
    is at most (1 + gamma) times the exact one, gamma = (n + 1) u / (1 - (n + 1) u), whatever the order
    (fastmath may reorder or fuse). The threshold is area * best * (1 + gamma), rounded up to float32."""
    u = 2.0**-24
    gamma = (n_values + 1) * u / (1.0 - (n_values + 1) * u)
    return np.float32(np.float64(area) * np.float64(best) * (1.0 + gamma) * (1.0 + 2 * u))


@numba.njit(nogil=True, cache=True)
def _set_limits(limits: np.ndarray, b: int, areas: np.ndarray, layout: np.ndarray, best: np.int64) -> None:
    """limits[level, b] = `_limit` of every level for query b at distance `best`."""
    for level in range(len(areas)):
        limits[level, b] = _limit(areas[level], best, layout[level + 1] - layout[level])


@numba.njit(parallel=True, nogil=True, cache=True)
def _hint_bounds(queries, images, geometry, image_stride, hints, best, best_id) -> None:
    """best[b], best_id[b]: the nearest of query b's hints (image 0 when it has none), lowest id on ties."""
    query_size = geometry[0] * geometry[2]
    for b in numba.prange(len(best)):
        start = b * query_size
        best_id[b] = 0
        for k in range(hints.shape[1]):
            if hints[b, k] >= 0:
                best_id[b] = hints[b, k]
                break
        best[b] = _squared_distance(queries, start, images, best_id[b] * image_stride, geometry, np.int64(-1))
        for k in range(hints.shape[1]):
            m = hints[b, k]
            if m < 0 or m == best_id[b]:
                continue
            total = _squared_distance(queries, start, images, m * image_stride, geometry, best[b])
            if total < best[b] or (total == best[b] and m < best_id[b]):
                best[b], best_id[b] = total, m


@numba.njit(parallel=True, nogil=True, cache=True, fastmath=True)
def nearest_kernel(
    queries: np.ndarray,
    query_sums: np.ndarray,
    coarse_queries: np.ndarray,
    images: np.ndarray,
    levels: np.ndarray,
    geometry: tuple,
    image_stride: int,
    layout: np.ndarray,
    areas: np.ndarray,
    hints: np.ndarray,
    out_squared: np.ndarray,
    out_ids: np.ndarray,
) -> None:
    """For each query b: the training image with the least exact squared L2 distance (lowest id on ties).

    queries and images are flat uint8 buffers: query b starts at b * height * row_length, image m at
    m * image_stride, and their pixel rows (row_length values each) are query_row_stride / image_row_stride
    apart (geometry = (height, row_length, query_row_stride, image_row_stride)). query_sums (B, T) uint16 are
    the queries' block sums laid out by `layout` (L + 1 column starts), level l of blocks of areas[l] pixels;
    levels (N * T,) uint16 the images' block sums level by level (`level_major`): level l of image m at
    N * layout[l] + m * (layout[l + 1] - layout[l]). coarse_queries (layout[1], B) float32 is level 0 of
    query_sums transposed. hints (B, K): image ids to bound with first (-1: none). Writes out_squared[b],
    out_ids[b].

    The training images are split into chunks searched in parallel, each for all queries at once: an image's
    block sums are read once per chunk for every query, streaming through memory instead of jumping.
    Each chunk keeps its own bests, starting from the hints' bound; the exact minimum is the least of them.
    The chunks also share the least distance any has found per query (`shared`, read every _SHARE_EVERY
    images) and prune against it: without it each of the ~50 chunks started again from the hints' looser
    bound. The threads read and write it without locks; every value it ever holds is the exact distance of
    some image, never below the minimum, so a stale read only prunes less, and an image that could be the
    nearest (or tie with it) is never dropped: the result does not depend on the threads' timing.
    """
    n_queries = len(out_squared)
    n_images = len(levels) // layout[-1]
    n_levels = len(areas)
    query_size = geometry[0] * geometry[2]
    start_best = np.empty(n_queries, np.int64)
    start_id = np.empty(n_queries, np.int64)
    _hint_bounds(queries, images, geometry, image_stride, hints, start_best, start_id)
    shared = start_best.copy()  # the least distance found so far by any chunk, per query
    n_chunks = (n_images + _IMAGE_CHUNK - 1) // _IMAGE_CHUNK
    chunk_best = np.empty((n_chunks, n_queries), np.int64)
    chunk_id = np.empty((n_chunks, n_queries), np.int64)
    for c in numba.prange(n_chunks):
        best, best_id = start_best.copy(), start_id.copy()  # this chunk's nearest so far, lowest id on ties
        basis = shared.copy()  # the distance the limits stand for: the least known, <= best
        limits = np.empty((n_levels, n_queries), np.float32)  # a level's bound above its limit rules the image out
        for b in range(n_queries):
            _set_limits(limits, b, areas, layout, basis[b])
        bound = np.empty(n_queries, np.float32)
        for m in range(c * _IMAGE_CHUNK, min(n_images, (c + 1) * _IMAGE_CHUNK)):
            if (m - c * _IMAGE_CHUNK) % _SHARE_EVERY == 0:
                for b in range(n_queries):
                    known = shared[b]
                    if known < basis[b]:
                        basis[b] = known
                        _set_limits(limits, b, areas, layout, known)
            row = levels[m * layout[1] : (m + 1) * layout[1]]  # level 0 first, contiguous for all images
            bound[:] = 0.0
            for j in range(layout[1]):  # level 0 for every query at once, in float32 (8 lanes): see _limit
                value = np.float32(row[j])
                column = coarse_queries[j]
                for b in range(n_queries):
                    diff = value - column[b]
                    bound[b] += diff * diff
            for b in range(n_queries):
                if bound[b] > limits[0, b] or m == best_id[b]:  # bound / area > basis: farther than a known image
                    continue
                kept = True
                for level in range(1, n_levels):
                    first, width = layout[level], layout[level + 1] - layout[level]
                    start = n_images * first + m * width
                    run = levels[start : start + width]
                    if _bound(query_sums[b, first : first + width], run) > limits[level, b]:
                        kept = False
                        break
                if not kept:
                    continue
                stop = basis[b]  # farther than a known image: not the nearest (partial totals stop above it)
                total = _squared_distance(queries, b * query_size, images, m * image_stride, geometry, stop)
                if total <= stop and (total < best[b] or (total == best[b] and m < best_id[b])):
                    best[b], best_id[b] = total, m
                    if total < basis[b]:
                        basis[b] = total
                        _set_limits(limits, b, areas, layout, total)
                    shared[b] = min(shared[b], total)
        chunk_best[c] = best
        chunk_id[c] = best_id
    for b in range(n_queries):
        out_squared[b], out_ids[b] = start_best[b], start_id[b]
        for c in range(n_chunks):
            if chunk_best[c, b] < out_squared[b] or (
                chunk_best[c, b] == out_squared[b] and chunk_id[c, b] < out_ids[b]
            ):
                out_squared[b], out_ids[b] = chunk_best[c, b], chunk_id[c, b]


def level_major(sums: np.ndarray, layout: np.ndarray) -> np.ndarray:
    """(N, T) block-sum rows (`block_sum_rows`) -> (N * T,) the same sums level by level: all images' level 0,
    then all their level 1, ... The search reads level 0 of every image but finer levels of few, so this layout
    keeps the scan in a few contiguous megabytes (CIFAR-10: 4.8 of 101 MB) and leaves most pages of a
    memory-mapped file untouched; as rows, every image's levels shared its pages and were all read from disk
    or faulted in."""
    return np.concatenate([np.ascontiguousarray(sums[:, a:b]).reshape(-1) for a, b in itertools.pairwise(layout)])


class NearestImages:
    """Exact nearest-training-image search over uint8 images (see the module docstring)."""

    def __init__(self, images: np.ndarray, levels: np.ndarray, blocks: tuple[int, ...]) -> None:
        """`levels`: the images' block sums for `blocks`, level by level (`level_major`)."""
        n, height, width, channels = images.shape
        self.layout = sums_layout(height, width, channels, blocks)
        if levels.shape != (n * self.layout[-1],) or levels.dtype != np.uint16:
            raise NpgenError(
                f"block sums of shape {levels.shape} {levels.dtype} do not fit {n} images of {images.shape[1:]}"
            )
        self.images, self.levels, self.blocks = images, levels, tuple(blocks)
        self.areas = np.array([s * s for s in blocks], dtype=np.int64)

    @classmethod
    def from_images(cls, images: np.ndarray, blocks: tuple[int, ...] | None = None) -> NearestImages:
        """The search over `images`, with `blocks_for` their shape unless `blocks` are given."""
        blocks = blocks or blocks_for(*images.shape[1:])
        layout = sums_layout(*images.shape[1:], blocks)
        return cls(images, level_major(block_sum_rows(images, blocks), layout), blocks)

    @classmethod
    def for_database(cls, db) -> NearestImages:
        """The search over a database's training images. Their block sums are read from the database folder,
        computed and saved there on first use (`sums_file`; recomputed if unreadable or of the wrong shape)."""
        images = db.images()
        path = sums_file(db)
        blocks = blocks_for(db.height, db.width, db.channels)
        layout = sums_layout(db.height, db.width, db.channels, blocks)
        try:
            levels = np.load(path, mmap_mode="r")
            if levels.shape == (db.n_images * int(layout[-1]),) and levels.dtype == np.uint16:
                return cls(images, levels, blocks)
        except (OSError, ValueError, EOFError):
            pass
        levels = level_major(block_sum_rows(images, blocks), layout)
        try:
            write_array(path, levels)
        except (OSError, NpgenError):  # a read-only database, or a link in the way: search with the sums in memory
            pass
        return cls(images, levels, blocks)

    def search(self, queries: np.ndarray, hints: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(squared distances int64 (B,), ids int64 (B,)): each query's nearest image, lowest id on ties.

        `hints` (B, K) are image ids likely to be near each query (-1 for none); they only speed the search up."""
        n = len(self.images)
        if queries.dtype != np.uint8 or queries.shape[1:] != self.images.shape[1:]:
            raise NpgenError(
                f"queries of {queries.dtype} {queries.shape[1:]} do not match training images of uint8 {self.images.shape[1:]}"
            )
        if hints is None:
            hints = np.full((len(queries), 1), -1, np.int64)
        hints = np.ascontiguousarray(hints, dtype=np.int64).reshape(len(queries), -1)
        if hints.size and (hints.max() >= n or hints.min() < -1):
            raise NpgenError(f"hints must be image ids in 0..{n - 1} (or -1), got {hints.min()}..{hints.max()}")
        query_sums = block_sum_rows(queries, self.blocks)
        coarse_queries = np.ascontiguousarray(query_sums[:, : self.layout[1]].T, dtype=np.float32)
        squared = np.empty(len(queries), np.int64)
        ids = np.empty(len(queries), np.int64)
        if len(queries):
            buffer, image_stride, row_stride = flat_buffer(self.images)
            _, height, width, channels = self.images.shape
            nearest_kernel(
                np.ascontiguousarray(queries).reshape(-1),
                query_sums,
                coarse_queries,
                buffer,
                np.asarray(self.levels),
                (height, width * channels, width * channels, row_stride),
                image_stride,
                self.layout,
                self.areas,
                hints,
                squared,
                ids,
            )
        return squared, ids


def sums_file(db) -> Path:
    """Where a database keeps its training images' block sums, level by level (`level_major`): named after its
    blocks and its manifest's hash, so that a database rebuilt in the same folder never reads sums of the images
    it replaced (the "levels" file replaces the row-by-row "sums" file of earlier versions, which is ignored)."""
    identity = hashlib.sha256(json.dumps(db.manifest, sort_keys=True).encode()).hexdigest()[:12]
    blocks = blocks_for(db.height, db.width, db.channels)
    return Path(db.path) / f"nearest-levels-b{'-'.join(map(str, blocks))}-{identity}.npy"


def flat_buffer(images: np.ndarray) -> tuple[np.ndarray, int, int]:
    """(1-D uint8 buffer, image stride, row stride): (N, H, W, C) images whose pixel rows are contiguous (a
    database's `images()` view into its padded sources, say) seen as one flat buffer, without copying; image m's
    row y starts at m * image stride + y * row stride. Other layouts are copied first."""
    n, height, width, channels = images.shape
    if images.strides[3] != 1 or images.strides[2] != channels:
        images = np.ascontiguousarray(images)
    image_stride, row_stride = images.strides[0], images.strides[1]
    span = (n - 1) * image_stride + (height - 1) * row_stride + width * channels
    return np.lib.stride_tricks.as_strided(images, shape=(span,), strides=(1,)), image_stride, row_stride


def source_ranking(src_image: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per sample (B, H, W) -> ((B, k) its k most-used source images, most used first, ties to the lowest id, -1
    where it has fewer; (B,) pixels from the most used; (B,) distinct sources). Pixels of src_image -1 (given,
    not generated: a completion's input) count towards no source.

    One sort of all the samples' pixels at once, not a `np.unique` per sample: the per-sample loop
    (`source_ranking_reference` in tests/kernel_references.py) cost a 100-sample CIFAR-10 run more than its
    Parquet."""
    flat = np.asarray(src_image).reshape(len(src_image), -1)
    n, pixels = flat.shape
    top = np.full((n, k), -1, np.int64)
    top_count, distinct = np.zeros(n, np.int64), np.zeros(n, np.int64)
    if not flat.size:
        return top, top_count, distinct
    ordered = np.sort(flat, axis=1).ravel()
    starts = np.ones(ordered.size, bool)
    starts[1:] = ordered[1:] != ordered[:-1]
    starts[::pixels] = True  # a run of one value never spans two samples
    first = np.flatnonzero(starts)
    counts = np.diff(np.append(first, ordered.size))
    rows, images = first // pixels, ordered[first].astype(np.int64)
    generated = images >= 0
    rows, images, counts = rows[generated], images[generated], counts[generated]
    order = np.argsort(rows * (pixels + 1) + (pixels - counts), kind="stable")  # by sample, most used, lowest id
    rows, images, counts = rows[order], images[order], counts[order]
    distinct[:] = np.bincount(rows, minlength=n)
    rank = np.arange(len(rows)) - np.repeat(np.cumsum(distinct) - distinct, distinct)
    kept = rank < k
    top[rows[kept], rank[kept]] = images[kept]
    leaders = rank == 0
    top_count[rows[leaders]] = counts[leaders]
    return top, top_count, distinct


def top_sources(src_image: np.ndarray, k: int) -> np.ndarray:
    """(B, k) the k most-used source images of each sample (B, H, W) (-1 where it has fewer), most used first."""
    return source_ranking(src_image, k)[0]


def squared_to_distance(squared: np.ndarray) -> np.ndarray:
    """Exact integer squared distances -> float32 L2 distances, rounded as FAISS's float32 results are."""
    return np.sqrt(np.maximum(squared.astype(np.float32), np.float32(0)))
