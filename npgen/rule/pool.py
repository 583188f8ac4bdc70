"""High-level semantics: restrict each sample's candidates to the training images most like its canvas.

The retrieval representation is an image's s x s block sums (`BlockSums`; s = `retrieval_block`;
s = 1 is raw pixels, larger s compares coarse layout only), or label-free patch codes learned from
the training split (`npgen.data.representation.PatchCodes`). Both map block row r of an image to
integers that depend only on its pixel rows r*s .. r*s + s - 1. After each completed block row, the squared distance
between every sample's canvas and every allowed training image grows by that row's contribution,
so distances over the generated prefix are exact integers kept up to date incrementally. Exact
ties (e.g. blank top rows) are broken by a per-sample random priority, so pools differ between
samples instead of always favouring the lowest image indices.

The exact scan costs O(allowed images) per sample and block row. For large databases (`--pool-search`,
auto above `--exact-pool-limit` images) `PrefixIndexes` instead searches a FAISS IVF index over the
allowed images' completed-prefix representations for a shortlist of 4 x pool_size, and `rerank_pool`
orders the shortlist by the same exact integer distances and tie-break: the pool is exact whenever the
shortlist holds the true nearest images (recall measured by `approximate_pool_recall`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numba
import numpy as np

from npgen.rule.rng import TIE_BREAK_STREAM, mix

if TYPE_CHECKING:
    from npgen.data.index import PrefixIndexes

PREFIX_INDEX_SHORTLIST = 4  # the IVF search returns this many times pool_size candidates, reranked exactly

_TIE_BITS = 20
_TIE_MASK = np.uint64((1 << _TIE_BITS) - 1)


@numba.njit(cache=True, nogil=True)
def tie_rank(distance, tie_key, image) -> np.int64:
    """An image's rank in a sample's pool: its integer distance, exact ties broken by a per-sample priority."""
    return (np.int64(distance) << _TIE_BITS) | np.int64(mix(tie_key, image) & _TIE_MASK)


@numba.njit(parallel=True, cache=True)
def add_block_row(
    canvas_row: np.ndarray, representations: np.ndarray, block_row: int, allowed: np.ndarray, distances: np.ndarray
) -> None:
    """Add block row `block_row`'s squared difference to distances[b, m] between canvas b and image allowed[m]."""
    n_samples, n_allowed = distances.shape
    width = canvas_row.shape[1]
    for b in numba.prange(n_samples):
        for m in range(n_allowed):
            row = representations[allowed[m], block_row]
            total = np.int64(0)
            for j in range(width):
                diff = np.int64(canvas_row[b, j]) - np.int64(row[j])
                total += diff * diff
            distances[b, m] += total


@numba.njit(parallel=True, cache=True)
def nearest_pool(distances: np.ndarray, sample_keys: np.ndarray, allowed: np.ndarray, pool_size: int) -> np.ndarray:
    """(B, K) training-image indices nearest to each canvas, nearest first; exact ties broken per sample."""
    n_samples, n_allowed = distances.shape
    pool = np.empty((n_samples, pool_size), dtype=np.int64)
    for b in numba.prange(n_samples):
        tie_key = sample_keys[b] ^ TIE_BREAK_STREAM
        ranks = np.empty(n_allowed, dtype=np.int64)
        for m in range(n_allowed):
            ranks[m] = tie_rank(distances[b, m], tie_key, allowed[m])
        kth = np.partition(ranks.copy(), pool_size - 1)[pool_size - 1]
        chosen = np.empty(pool_size, dtype=np.int64)
        n_chosen = 0
        for m in range(n_allowed):
            if ranks[m] < kth:
                chosen[n_chosen] = m
                n_chosen += 1
        for m in range(n_allowed):
            if n_chosen == pool_size:
                break
            if ranks[m] == kth:
                chosen[n_chosen] = m
                n_chosen += 1
        order = np.argsort(ranks[chosen], kind="mergesort")
        for k in range(pool_size):
            pool[b, k] = allowed[chosen[order[k]]]
    return pool


@numba.njit(parallel=True, cache=True)
def rerank_pool(
    canvas_prefix: np.ndarray,
    representations: np.ndarray,
    n_rows: int,
    candidates: np.ndarray,
    sample_keys: np.ndarray,
    pool_size: int,
) -> np.ndarray:
    """(B, K) of each sample's candidate images (B, M; -1 = none, at least K valid), nearest first by the exact
    integer distance over block rows 0..n_rows-1 between canvas_prefix[b] (B, rows, row width) and the
    image's representation; exact ties broken per sample as `nearest_pool` breaks them."""
    n_samples, n_candidates = candidates.shape
    width = representations.shape[2]
    pool = np.empty((n_samples, pool_size), dtype=np.int64)
    for b in numba.prange(n_samples):
        tie_key = sample_keys[b] ^ TIE_BREAK_STREAM
        ranks = np.empty(n_candidates, dtype=np.int64)
        for m in range(n_candidates):
            image = candidates[b, m]
            if image < 0:
                ranks[m] = np.iinfo(np.int64).max
                continue
            total = np.int64(0)
            for r in range(n_rows):
                for j in range(width):
                    diff = np.int64(canvas_prefix[b, r, j]) - np.int64(representations[image, r, j])
                    total += diff * diff
            ranks[m] = tie_rank(total, tie_key, image)
        order = np.argsort(ranks, kind="mergesort")
        for k in range(pool_size):
            pool[b, k] = candidates[b, order[k]]
    return pool


@numba.njit(cache=True)
def tie_pool(sample_keys: np.ndarray, allowed: np.ndarray, pool_size: int) -> np.ndarray:
    """(B, K): what `nearest_pool` returns when every distance is 0 (no completed row yet), without the (B, N)
    distance matrix: each sample's K allowed images of smallest tie-break priority (equal priorities: the
    earlier allowed image first), in that order. One pass per sample keeps the K best seen so far.

    Serial on purpose: as a `prange` loop its output depended on the state of the process (another test run
    before it changed the pools it returned), which no sampler may do."""
    n_allowed = len(allowed)
    pool = np.empty((len(sample_keys), pool_size), dtype=np.int64)
    for b in range(len(sample_keys)):
        tie_key = sample_keys[b] ^ TIE_BREAK_STREAM
        best_rank = np.empty(pool_size, dtype=np.int64)
        best_at = np.empty(pool_size, dtype=np.int64)
        worst = 0
        for m in range(n_allowed):
            rank = tie_rank(0, tie_key, allowed[m])
            if m < pool_size:
                best_rank[m], best_at[m] = rank, m
                if m == pool_size - 1:
                    for k in range(pool_size):  # the worst kept: largest rank, latest position among equals
                        if best_rank[k] > best_rank[worst] or (
                            best_rank[k] == best_rank[worst] and best_at[k] > best_at[worst]
                        ):
                            worst = k
            elif rank < best_rank[worst]:  # equal rank: the kept, earlier image stays
                best_rank[worst], best_at[worst] = rank, m
                worst = 0
                for k in range(1, pool_size):
                    if best_rank[k] > best_rank[worst] or (
                        best_rank[k] == best_rank[worst] and best_at[k] > best_at[worst]
                    ):
                        worst = k
        order = np.argsort(best_rank * np.int64(n_allowed) + best_at)  # by rank, then by position: all distinct
        for k in range(pool_size):
            pool[b, k] = allowed[best_at[order[k]]]
    return pool


@numba.njit(parallel=True, cache=True)
def image_distances(queries: np.ndarray, images: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """(B, M) int64 squared distance between each query (B, D) uint8 and each allowed image allowed[m] of
    `images` (N, D) uint8."""
    distances = np.empty((queries.shape[0], allowed.shape[0]), dtype=np.int64)
    for b in numba.prange(queries.shape[0]):
        for m in range(allowed.shape[0]):
            row = images[allowed[m]]
            total = np.int64(0)
            for j in range(queries.shape[1]):
                diff = np.int64(queries[b, j]) - np.int64(row[j])
                total += diff * diff
            distances[b, m] = total
    return distances


def complete_pool(
    canvases: np.ndarray, images: np.ndarray, allowed: np.ndarray, keys: np.ndarray, pool_size: int
) -> np.ndarray:
    """(B, K) allowed images nearest to each complete canvas (B, H, W, C) uint8 over all its pixels, `images` being
    the training images at the same size (N, H, W, C); exact integer distances, ties broken per sample as in
    `nearest_pool`. Every allowed image when pool_size is 0 or not below their number."""
    if not 0 < pool_size < len(allowed):
        return np.ascontiguousarray(np.broadcast_to(allowed, (len(canvases), len(allowed))))
    queries = np.ascontiguousarray(canvases).reshape(len(canvases), -1)
    flat = np.ascontiguousarray(images).reshape(len(images), -1)
    return nearest_pool(image_distances(queries, flat, allowed), keys, allowed, pool_size)


class FixedPools:
    """Pools that stay as given for every row: a finer pyramid level's, chosen once from the complete coarser
    sample (`complete_pool`); `pool(codes, y)` as `CanvasPools`'."""

    def __init__(self, pools: np.ndarray) -> None:
        self.current = np.ascontiguousarray(pools, dtype=np.int64)

    def pool(self, codes: np.ndarray, y: int) -> np.ndarray:
        return self.current


class CanvasPools:
    """Each canvas's pool of candidate images, refreshed as its rows are filled in raster order.

    `pool(codes, y)` is called once per row y = 0, 1, ...; codes (B, block rows, row width) holds the
    canvases' completed block rows encoded like `representations` encodes the training images (`BlockSums`
    or `PatchCodes`; `RowBatch` encodes each once). With pool_size 0 (or >= the allowed images) every
    allowed image is in every pool.
    """

    def __init__(
        self,
        representations: np.ndarray,
        block: int,
        allowed: np.ndarray,
        keys: np.ndarray,
        pool_size: int,
        approximate: PrefixIndexes | None = None,
    ) -> None:
        self.representations, self.allowed, self.keys = representations, allowed, keys
        self.pool_size, self.block = pool_size, block
        self.enabled = 0 < pool_size < len(allowed)
        self.approximate = approximate if self.enabled else None
        if self.approximate is not None:
            self.distances = None
            self.current = tie_pool(keys, allowed, pool_size)  # y = 0: the tie-break alone, as the exact scan
            return
        self.distances = np.zeros((len(keys), len(allowed)), dtype=np.int64) if self.enabled else None
        self.current = np.ascontiguousarray(np.broadcast_to(allowed, (len(keys), len(allowed))))

    def pool(self, codes: np.ndarray, y: int) -> np.ndarray:
        """(B, K) candidate images for row y, given the canvases' block rows completed before y in `codes`."""
        if self.approximate is not None:
            if y > 0 and y % self.block == 0:
                rows = y // self.block
                count = min(PREFIX_INDEX_SHORTLIST * self.pool_size, len(self.allowed))
                candidates = self.approximate.candidates(codes, rows, count)
                self.current = rerank_pool(codes, self.representations, rows, candidates, self.keys, self.pool_size)
            return self.current
        if self.enabled and y % self.block == 0:
            if y > 0:
                row = np.ascontiguousarray(codes[:, y // self.block - 1])
                add_block_row(row, self.representations, y // self.block - 1, self.allowed, self.distances)
            self.current = nearest_pool(self.distances, self.keys, self.allowed, self.pool_size)
        return self.current


def approximate_pool_recall(
    representations: np.ndarray,
    indexes: PrefixIndexes,
    queries: np.ndarray,
    keys: np.ndarray,
    pool_size: int,
) -> np.ndarray:
    """Recall@pool_size of the approximate pool against the exact scan, per completed prefix: (rows - 1,) floats.

    `queries` (B, rows, row width) are representations of finished canvases (a canvas's pool at block row r
    depends only on its rows before r, so finished samples give every pool they were drawn from). Recall
    counts the approximate pool's images whose exact prefix distance is at most the exact pool's largest
    (ties in distance count as found, whichever tied image the tie-break picked)."""
    allowed = indexes.allowed
    distances = np.zeros((len(queries), len(allowed)), dtype=np.int64)
    recalls = []
    for rows in range(1, queries.shape[1]):
        add_block_row(np.ascontiguousarray(queries[:, rows - 1]), representations, rows - 1, allowed, distances)
        kth = np.partition(distances, pool_size - 1, axis=1)[:, pool_size - 1]
        count = min(PREFIX_INDEX_SHORTLIST * pool_size, len(allowed))
        candidates = indexes.candidates(queries, rows, count)
        pool = rerank_pool(np.ascontiguousarray(queries), representations, rows, candidates, keys, pool_size)
        position = np.searchsorted(allowed, pool)  # allowed is sorted (class members in index order)
        found = np.take_along_axis(distances, position, axis=1) <= kth[:, None]
        recalls.append(found.mean())
    return np.array(recalls)
