"""The sampler's row kernel on the CPU (numba.njit): the canvases of a batch in parallel, each pixel's candidates
scored in a loop with early exit.

The rule's steps are `npgen.rule.kernels`', shared with the CUDA kernel (`npgen.rule.cuda`). What only this
kernel does is how it searches: candidates compacted as they are scored (images over budget or outside the
semantic filter are skipped), each image's windows scored together (`block_distances`) and abandoned once
over a bound that never falls below the final admissible threshold, with the continuation of the neighbouring
pixel's source scored first to tighten that bound early. None of it changes a result.
"""

from __future__ import annotations

from typing import NamedTuple

import numba
import numpy as np

from npgen.rule.kernels import (
    admissible_bound,
    anchor_position,
    admissible_rank,
    can_supply,
    centre_index,
    coarse_index,
    coarse_term,
    relative_position,
    count_admissible,
    nth_admissible,
    positions_per_image,
    search_box,
    take_pixel,
    weighted_distance_from,
    widened_rank,
)
from npgen.rule.parts import NOT_BLOCKED, blocked_continuations, is_blocked, join_part
from npgen.rule.reuse import used_up
from npgen.rule.rng import counter_uniform
from npgen.rule.windows import block_distances, gather_context


class CandidateBuffers(NamedTuple):
    """One canvas's scratch arrays for `score_candidates` (`candidate_buffers`)."""

    context: np.ndarray  # float32 (L * C,): the pixel's causal context
    distance: np.ndarray  # float64 (slots,): each candidate's distance, the first n filled
    image: np.ndarray  # int64 (slots,): each candidate's training image
    position: np.ndarray  # int64 (slots,): each candidate's flat source position y * W + x
    smallest: np.ndarray  # float64 (k_min,): the k_min smallest distances seen
    block: np.ndarray  # float64 (positions per image,): one image's window distances (`block_distances`)


@numba.njit(cache=True, nogil=True)
def admissible_threshold(distances: np.ndarray, eps: float, abs_tol: float, k_min: int) -> float:
    """Largest admissible distance: (1+eps)*d_min + abs_tol, raised to the k_min-th smallest distance."""
    n = distances.shape[0]
    threshold = admissible_bound(distances.min(), eps, abs_tol)
    k = widened_rank(k_min, n)
    if k and count_admissible(distances, threshold, 0, n, 1) < k:
        threshold = np.partition(distances.copy(), k - 1)[k - 1]
    return threshold


@numba.njit(cache=True, nogil=True)
def choose_admissible(distances: np.ndarray, threshold: float, u: float) -> tuple[int, int]:
    """(index of the chosen candidate, number admissible): the floor(u*n)-th admissible one, in order.

    (-1, 0) when nothing is admissible, which the caller must treat as a failure.
    """
    n_admissible = count_admissible(distances, threshold, 0, distances.shape[0], 1)
    if n_admissible == 0:
        return -1, 0
    return nth_admissible(distances, threshold, 0, admissible_rank(u, n_admissible)), n_admissible


@numba.njit(cache=True, nogil=True)
def _insert_sorted(smallest: np.ndarray, d: float, eps: float, abs_tol: float) -> float:
    """Insert d into the ascending array of the k_min smallest distances seen; return the new search bound.

    The bound, max((1+eps)*d_min + abs_tol, k_min-th smallest), only shrinks as candidates are seen and
    never falls below the final admissible threshold, so a window whose partial distance exceeds it
    can be abandoned without changing the admissible set.
    """
    i = smallest.shape[0] - 1
    while i > 0 and smallest[i - 1] > d:
        smallest[i] = smallest[i - 1]
        i -= 1
    smallest[i] = d
    return max(admissible_bound(smallest[0], eps, abs_tol), smallest[-1])


@numba.njit(cache=True, nogil=True)
def within_semantic_limit(semantic, k, column, limit) -> bool:
    """Whether pool image k passes the semantic filter at this block column (always, with the filter off: -1)."""
    return column < 0 or semantic[k, column] <= limit


@numba.njit(cache=True, nogil=True)
def semantic_limit(semantic, column, pool, used, budget, semantic_eps) -> float:
    """(1+semantic_eps) times the smallest semantic distance at this block column among the pool's images with
    budget left: the largest a candidate image may have (inf with the filter off, column -1)."""
    if column < 0:
        return np.inf
    best = np.inf
    for k in range(pool.shape[0]):
        if can_supply(pool[k], used, budget) and semantic[k, column] < best:
            best = semantic[k, column]
    return (1.0 + semantic_eps) * best


@numba.njit(cache=True, nogil=True)
def is_candidate(hint, pool, semantic, column, limit, used, budget, y, x, geometry, radius) -> bool:
    """Whether the window `hint` (image, flat source position) is among score_candidates' candidates, whose
    windows are centred within `radius` of (y, x)."""
    image, position = hint
    sy, sx = position // geometry.width, position % geometry.width
    if position < 0 or sy >= geometry.height or abs(sy - y) > radius or abs(sx - x) > radius:
        return False
    if not can_supply(image, used, budget):
        return False
    for k in range(pool.shape[0]):
        if pool[k] == image:
            return within_semantic_limit(semantic, k, column, limit)
    return False


@numba.njit(cache=True, nogil=True)
def coarse_start(coarse, b, image, sy, sx, y, x, channels) -> float:
    """The coarse term a finer pyramid level's window distance starts from (`kernels.CoarseLevel`): between the
    neighbourhood of canvas b's pixel (y, x)'s parent and that of source (sy, sx)'s parent in training image `image`."""
    centre = coarse_index(coarse.width, channels, y >> 1, x >> 1)
    at = coarse_index(coarse.source_width, channels, sy >> 1, sx >> 1)
    return coarse_term(
        coarse.canvas[b],
        centre,
        coarse.offsets,
        coarse.sources[image],
        at,
        coarse.source_offsets,
        channels,
        coarse.scale,
    )


@numba.njit(cache=True, nogil=True)
def score_candidates(
    canvas,
    sources,
    pool,
    semantic,
    used,
    budget,
    y,
    x,
    geometry,
    canvas_geometry,
    rule,
    scratch,
    hint=(-1, -1),
    coarse=None,
    b=0,
    blocked=NOT_BLOCKED,
    uses=None,
    max_uses=0,
):
    """Distance from the context of pixel (y, x) of one padded canvas to every candidate window.

    `geometry` (the training images'), `canvas_geometry` (the canvas's) and `rule` are the kernels' `Geometry` and
    `Rule`, `scratch` is `candidate_buffers`'. Candidates
    are the windows of the pool's images that have supplied fewer than `budget` pixels of this canvas
    (`used[image]`) and pass the semantic filter (`semantic_limit`; `semantic` is (K, block columns), or
    (K, 0) with the filter off), at source positions within `radius` of (y, x) (of its `relative_position` when
    the canvas has another size than the images); their distances,
    images and flat positions fill the first n entries of scratch's distance, image and position; returns
    (n, admissible threshold, flat index of the pixel in the canvas). With n == 0 the threshold is -inf.

    `hint` (image, flat source position), usually the continuation of the neighbouring pixel's source, is
    scored first when it is a candidate: with k_min 1 its distance d bounds the admissible threshold by
    (1+eps)*d + abs_tol from the start, so the other windows can stop early sooner. It changes no result.
    An image's windows are scored together (`block_distances`) against the bound as it stood before them.
    At a finer pyramid level, `coarse` (`kernels.CoarseLevel`, with this canvas's index `b` in it) gives every
    window's distance its coarse term first. The windows in `blocked` (`parts.blocked_continuations`) are no
    candidates: they would grow a copied part beyond its bound; nor are the source pixels that have given this canvas
    `max_uses` pixels already (`uses`, its row of `reuse.PixelUses.count`; None: no bound).
    With `rule.edge_weights` (--outside-canvas ignored), a pixel near the canvas's top, left or right edge weighs
    only the offsets of its context inside the canvas.
    """
    offsets, weights, radius, eps, abs_tol = rule.offsets, rule.weights, rule.radius, rule.eps, rule.abs_tol
    if rule.edge_weights.shape[0] > 0:  # --outside-canvas ignored: the weights of the offsets inside the canvas
        h = canvas_geometry.half_window
        weights = rule.edge_weights[min(y, h), min(x, h), min(canvas_geometry.width - 1 - x, h)]
    context, cand_dist, cand_image, cand_pos, smallest, distances = scratch  # once: a field read is a new reference
    width, channels = geometry.width, geometry.channels
    centre = centre_index(canvas_geometry, y, x)
    gather_context(canvas, centre, rule.context_offsets, channels, context)
    column = min(x // rule.semantic_block, semantic.shape[1] - 1)
    limit = semantic_limit(semantic, column, pool, used, budget, rule.semantic_eps)
    smallest[:] = np.inf
    bound = np.inf
    at_y, at_x = relative_position(geometry, canvas_geometry, y, x)  # where the candidate windows are centred
    if coarse is not None:
        if coarse.anchored:
            at_y, at_x = anchor_position(coarse.src_y[b], coarse.src_x[b], y, x)
    first_y, first_x, rows, columns = search_box(geometry, radius, at_y, at_x)
    block = (rows, columns, (width + 2 * geometry.half_window) * channels)
    corner = centre_index(geometry, first_y, first_x)
    if (
        smallest.shape[0] == 1
        and is_candidate(hint, pool, semantic, column, limit, used, budget, at_y, at_x, geometry, radius)
        and (uses is None or not used_up(uses, max_uses, hint[0], hint[1], geometry))
    ):
        image, position = hint
        at = centre_index(geometry, position // width, position % width)
        start = 0.0
        if coarse is not None:
            start = coarse_start(coarse, b, image, position // width, position % width, y, x, channels)
        bound = admissible_bound(
            weighted_distance_from(start, context, sources[image], at, offsets, weights, channels, np.inf), eps, abs_tol
        )
    n = 0
    for k in range(pool.shape[0]):
        image = pool[k]
        if not can_supply(image, used, budget) or not within_semantic_limit(semantic, k, column, limit):
            continue
        start = 0.0
        if coarse is not None:
            for r in range(rows):
                for j in range(columns):
                    distances[r * columns + j] = coarse_start(
                        coarse, b, image, first_y + r, first_x + j, y, x, channels
                    )
            start = distances[0]
        if rows * columns == 1:  # radius 0: a call per window would cost more than the window
            distances[0] = weighted_distance_from(
                start, context, sources[image], corner, offsets, weights, channels, bound
            )
        else:
            seeded = coarse is not None
            block_distances(
                context, sources[image], corner, block, offsets, weights, channels, bound, distances, seeded
            )
        for r in range(rows):
            for j in range(columns):
                position = (first_y + r) * width + first_x + j
                if is_blocked(blocked, image, position):
                    continue
                if uses is not None and used_up(uses, max_uses, image, position, geometry):
                    continue
                d = distances[r * columns + j]
                cand_dist[n] = d
                if d < smallest[-1]:
                    bound = min(bound, _insert_sorted(smallest, d, eps, abs_tol))
                cand_image[n] = image
                cand_pos[n] = position
                n += 1
    if n == 0:
        return 0, -np.inf, centre
    return n, admissible_threshold(cand_dist[:n], eps, abs_tol, smallest.shape[0]), centre


@numba.njit(cache=True, nogil=True)
def candidate_buffers(pool_size, geometry, rule) -> CandidateBuffers:
    """One canvas's scratch arrays for score_candidates.

    Distances stay float64 until recorded: an abandoned window's partial distance exceeds the search
    bound, and rounding it to float32 could make it equal the bound and wrongly admissible.
    """
    per_image = positions_per_image(geometry, rule.radius)
    slots = pool_size * per_image
    return CandidateBuffers(
        np.empty(rule.offsets.shape[0] * geometry.channels, dtype=np.float32),
        np.empty(slots, dtype=np.float64),
        np.empty(slots, dtype=np.int64),
        np.empty(slots, dtype=np.int64),
        np.empty(rule.k_min, dtype=np.float64),
        np.empty(per_image, dtype=np.float64),
    )


@numba.njit(cache=True, nogil=True)
def continuation(src_image, src_y, src_x, y, x, width) -> tuple[int, int]:
    """(image, flat source position) of the window that continues the left neighbour's source, else the one
    above's; (-1, -1) when neither was generated. `score_candidates` scores it first; `width` is the training
    images'."""
    if x > 0 and src_image[y, x - 1] >= 0 and src_x[y, x - 1] + 1 < width:
        return np.int64(src_image[y, x - 1]), np.int64(src_y[y, x - 1] * width + src_x[y, x - 1] + 1)
    if y > 0 and src_image[y - 1, x] >= 0:
        return np.int64(src_image[y - 1, x]), np.int64((src_y[y - 1, x] + 1) * width + src_x[y - 1, x])
    return np.int64(-1), np.int64(-1)


@numba.njit(parallel=True, cache=True)
def sample_row(
    canvas,
    sources,
    pools,
    semantic,
    region,
    known,
    used,
    budget,
    y,
    geometry,
    canvas_geometry,
    rule,
    keys,
    record,
    coarse=None,
    parts=None,
    reuse=None,
):
    """Generate row y of every canvas in place, record each pixel's provenance and count it in `used`.

    `pools` is (B, R, K): each canvas's candidate images for each of R regions, and `region` (H*W,) gives each
    pixel's region (one region of zeros when the whole canvas draws from one set). `semantic` is (B, R, K,
    block columns) (`RowBatch.semantic`; 0 columns with the semantic filter off). A pixel with known[b, y*W + x]
    (completion: a given pixel) is kept as it is and left unrecorded. `record` is (src_image, src_y, src_x,
    n_candidates, distance), each (B, H, W). A pixel with no admissible candidate is left unwritten with
    n_candidates 0; the caller fails on it. At a finer pyramid level `coarse` is the complete coarser level
    (`kernels.CoarseLevel`), whose term every window distance starts from. With `parts` (`parts.PartForest`) no
    copied part grows beyond its bound, and with `reuse` (`reuse.PixelUses`) no source pixel gives a canvas more than
    its cap.
    """
    width, source_width = canvas_geometry.width, geometry.width
    src_image, src_y, src_x, n_candidates, distance = record
    n_samples, _, pool_size = pools.shape
    for b in numba.prange(n_samples):
        scratch = candidate_buffers(pool_size, geometry, rule)
        cand_dist, cand_image, cand_pos = scratch.distance, scratch.image, scratch.position
        mine = (src_image[b], src_y[b], src_x[b], n_candidates[b], distance[b])
        for x in range(width):
            if known[b, y * width + x]:
                continue
            r = region[y * width + x]
            hint = continuation(src_image[b], src_y[b], src_x[b], y, x, source_width)
            blocked = NOT_BLOCKED
            if parts is not None:
                blocked = blocked_continuations(
                    parts.parent[b], parts.size[b], parts.bound, src_image[b], src_y[b], src_x[b], y, x,
                    geometry.height, source_width,
                )  # fmt: skip
                if is_blocked(blocked, hint[0], hint[1]):
                    hint = (np.int64(-1), np.int64(-1))
            uses = None
            if reuse is not None:
                uses = reuse.count[b]  # a row view: numba's parfors drop `reuse.count[b, i] += 1` (numba 0.68)
            n, threshold, _ = score_candidates(
                canvas[b], sources, pools[b, r], semantic[b, r], used[b], budget, y, x, geometry, canvas_geometry,
                rule, scratch, hint, coarse, b, blocked, uses, 0 if reuse is None else reuse.cap,
            )  # fmt: skip
            u = counter_uniform(keys[b], y * width + x)
            chosen, n_admissible = choose_admissible(cand_dist[:n], threshold, u)
            if chosen < 0:
                n_candidates[b, y, x] = 0
                continue
            sy, sx = cand_pos[chosen] // source_width, cand_pos[chosen] % source_width
            image, d = cand_image[chosen], cand_dist[chosen]
            take_pixel(
                canvas[b], sources, used[b], mine, canvas_geometry, geometry, y, x, image, sy, sx, n_admissible, d
            )
            if parts is not None:
                join_part(parts.parent[b], parts.size[b], src_image[b], src_y[b], src_x[b], y, x)
            if uses is not None:
                uses[(image * geometry.height + sy) * source_width + sx] += 1


def compiled_on_disk(kernel) -> bool:
    """Whether numba's on-disk cache holds a compiled version of `kernel` (an njit function with cache=True) for its
    current source (a cheap look at the cache's index file, with numba's own staleness check): False before the
    first use after installing or editing it, when that use compiles it first."""
    try:
        return bool(kernel._cache._cache_file._load_index())
    except Exception:  # noqa: BLE001 - another numba version: say nothing rather than guess
        return True


def kernels_cached() -> bool:
    """Whether the sampler's row kernel is compiled on disk (`compiled_on_disk`)."""
    return compiled_on_disk(sample_row)
