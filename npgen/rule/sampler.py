"""The sampling algorithm: generate images pixel by pixel, copying each pixel from a training window.

For every pixel in raster order, and for every sample of a batch at once:

1. **High-level semantics.** The candidate images are the `pool_size` training images nearest to
   the canvas generated so far (refreshed after every completed retrieval block row), taken from
   the requested class only when sampling is class-conditional (`semantics.py`).
2. **Spatial non-stationarity.** Candidate windows come only from source positions within
   Chebyshev distance `radius` of the target position.
3. **Low-level regularities.** Each candidate's Gaussian-weighted SSD to the pixel's causal context
   is computed (`windows.py`). The admissible set is every candidate with d <= (1+eps)*d_min + abs_tol,
   widened to the `k_min` nearest when it is smaller than that, so a sample keeps switching
   between sources instead of continuing one training image exactly.
   With the per-pixel semantic filter on (`semantic_eps`), only the pool images whose representation
   around the pixel (the completed retrieval block rows above it, `semantic_context` blocks up and to
   each side) is within (1+semantic_eps) of the closest such image's are candidates; the low-level
   admissible set is then taken among their windows, so it is never empty. Every window of an image
   shares the image's semantic distance at the pixel's block, whatever the radius.
4. **Source budget.** A training image that has already supplied `budget` pixels of a sample
   (`max_source_share` of its pixels) is no longer a candidate for that sample, so no sample takes
   more than that share from any one image, while every choice can still be the best match.
5. One admissible candidate is drawn uniformly; its centre pixel (all channels) is copied, and its
   image, position, the number of admissible candidates and its distance are recorded.

Unconditional samples are a mixture (`class_mixture`): each first draws its class from the
training split's class shares (a pure function of seed and sample index), then is sampled
conditioned on it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numba
import numpy as np

from npgen.data.database import Database
from npgen.errors import NpgenError
from npgen.params import PARAMS, SAMPLER_PARAMS, check, source_budget
from npgen.rule.pool import CanvasPools
from npgen.rule.provenance import Samples
from npgen.rule.rng import CLASS_STREAM, sample_keys, uniform
from npgen.rule.windows import block_distances, flat_offsets, gather_context, window_distance, window_weights


@numba.njit(cache=True, nogil=True)
def admissible_threshold(distances: np.ndarray, eps: float, abs_tol: float, k_min: int) -> float:
    """Largest admissible distance: (1+eps)*d_min + abs_tol, raised to the k_min-th smallest distance."""
    threshold = (1.0 + eps) * distances.min() + abs_tol
    k = min(k_min, distances.shape[0])
    if k > 1 and (distances <= threshold).sum() < k:
        threshold = np.partition(distances.copy(), k - 1)[k - 1]
    return threshold


@numba.njit(cache=True, nogil=True)
def choose_admissible(distances: np.ndarray, threshold: float, u: float) -> tuple[int, int]:
    """(index of the chosen candidate, number admissible): the floor(u*n)-th admissible one, in order.

    (-1, 0) when nothing is admissible, which the caller must treat as a failure.
    """
    n_admissible = 0
    for i in range(distances.shape[0]):
        if distances[i] <= threshold:
            n_admissible += 1
    if n_admissible == 0:
        return -1, 0
    target = min(int(u * n_admissible), n_admissible - 1)
    seen = 0
    for i in range(distances.shape[0]):
        if distances[i] <= threshold:
            if seen == target:
                return i, n_admissible
            seen += 1
    return -1, 0


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
    return max((1.0 + eps) * smallest[0] + abs_tol, smallest[-1])


@numba.njit(cache=True, nogil=True)
def semantic_limit(semantic, column, pool, used, budget, semantic_eps) -> float:
    """(1+semantic_eps) times the smallest semantic distance at this block column among the pool's images with
    budget left: the largest a candidate image may have (inf with the filter off, column -1)."""
    if column < 0:
        return np.inf
    best = np.inf
    for k in range(pool.shape[0]):
        image = pool[k]
        if image >= 0 and used[image] < budget and semantic[k, column] < best:
            best = semantic[k, column]
    return (1.0 + semantic_eps) * best


@numba.njit(cache=True, nogil=True)
def is_candidate(hint, pool, semantic, column, limit, used, budget, y, x, geometry, radius) -> bool:
    """Whether the window `hint` (image, flat source position) is among score_candidates' candidates."""
    height, width = geometry[0], geometry[1]
    image, position = hint
    sy, sx = position // width, position % width
    if image < 0 or position < 0 or sy >= height or abs(sy - y) > radius or abs(sx - x) > radius:
        return False
    if used[image] >= budget:
        return False
    for k in range(pool.shape[0]):
        if pool[k] == image:
            return column < 0 or semantic[k, column] <= limit
    return False


@numba.njit(cache=True, nogil=True)
def score_candidates(canvas, sources, pool, semantic, used, budget, y, x, geometry, rule, scratch, hint=(-1, -1)):
    """Distance from the context of pixel (y, x) of one padded canvas to every candidate window.

    `geometry` is (height, width, half_window, channels), `rule` is (offsets, weights, radius, eps,
    abs_tol, k_min, semantic_eps, semantic_block) and `scratch` is `candidate_buffers`' tuple. Candidates
    are the windows of the pool's images that have supplied fewer than `budget` pixels of this canvas
    (`used[image]`) and pass the semantic filter (`semantic_limit`; `semantic` is (K, block columns), or
    (K, 0) with the filter off), at source positions within `radius` of (y, x); their distances,
    images and flat positions fill the first n entries of cand_*; returns (n, admissible threshold,
    flat index of the pixel in the canvas). With n == 0 the threshold is -inf.

    `hint` (image, flat source position), usually the continuation of the neighbouring pixel's source, is
    scored first when it is a candidate: with k_min 1 its distance d bounds the admissible threshold by
    (1+eps)*d + abs_tol from the start, so the other windows can stop early sooner. It changes no result.
    An image's windows are scored together (`block_distances`) against the bound as it stood before them.
    """
    height, width, half_window, channels = geometry
    offsets, weights, radius, eps, abs_tol, _, semantic_eps, semantic_block = rule
    context, cand_dist, cand_image, cand_pos, smallest, distances = scratch
    padded_width = width + 2 * half_window
    centre = ((y + half_window) * padded_width + x + half_window) * channels
    gather_context(canvas, centre, offsets, channels, context)
    column = min(x // semantic_block, semantic.shape[1] - 1)
    limit = semantic_limit(semantic, column, pool, used, budget, semantic_eps)
    smallest[:] = np.inf
    bound = np.inf
    first_y, first_x = max(0, y - radius), max(0, x - radius)
    rows, columns = min(height, y + radius + 1) - first_y, min(width, x + radius + 1) - first_x
    block = (rows, columns, padded_width * channels)
    corner = ((first_y + half_window) * padded_width + first_x + half_window) * channels
    if smallest.shape[0] == 1 and is_candidate(
        hint, pool, semantic, column, limit, used, budget, y, x, geometry, radius
    ):
        image, position = hint
        at = ((position // width + half_window) * padded_width + position % width + half_window) * channels
        bound = (1.0 + eps) * window_distance(context, sources[image], at, offsets, weights, channels) + abs_tol
    n = 0
    for k in range(pool.shape[0]):
        image = pool[k]
        if image < 0 or used[image] >= budget:  # -1 pads a region's pool that is smaller than another's
            continue
        if column >= 0 and semantic[k, column] > limit:
            continue
        if rows * columns == 1:  # radius 0: a call per window would cost more than the window
            distances[0] = window_distance(context, sources[image], corner, offsets, weights, channels, bound)
        else:
            block_distances(context, sources[image], corner, block, offsets, weights, channels, bound, distances)
        for r in range(rows):
            for j in range(columns):
                d = distances[r * columns + j]
                cand_dist[n] = d
                if d < smallest[-1]:
                    bound = min(bound, _insert_sorted(smallest, d, eps, abs_tol))
                cand_image[n] = image
                cand_pos[n] = (first_y + r) * width + first_x + j
                n += 1
    if n == 0:
        return 0, -np.inf, centre
    return n, admissible_threshold(cand_dist[:n], eps, abs_tol, smallest.shape[0]), centre


@numba.njit(cache=True, nogil=True)
def candidate_buffers(pool_size, geometry, rule):
    """One canvas's scratch arrays for score_candidates: context, candidate distances, images, positions, k_min
    smallest, and one image's distances (`block_distances`).

    Distances stay float64 until recorded: an abandoned window's partial distance exceeds the search
    bound, and rounding it to float32 could make it equal the bound and wrongly admissible.
    """
    height, width, _, channels = geometry
    offsets, radius, k_min = rule[0], rule[2], rule[5]
    per_image = min(2 * radius + 1, height) * min(2 * radius + 1, width)
    max_candidates = pool_size * per_image
    return (
        np.empty(offsets.shape[0] * channels, dtype=np.float32),
        np.empty(max_candidates, dtype=np.float64),
        np.empty(max_candidates, dtype=np.int64),
        np.empty(max_candidates, dtype=np.int64),
        np.empty(k_min, dtype=np.float64),
        np.empty(per_image, dtype=np.float64),
    )


@numba.njit(cache=True, nogil=True)
def continuation(src_image, src_y, src_x, y, x) -> tuple[int, int]:
    """(image, flat source position) of the window that continues the left neighbour's source, else the one
    above's; (-1, -1) when neither was generated. `score_candidates` scores it first."""
    width = src_image.shape[1]
    if x > 0 and src_image[y, x - 1] >= 0 and src_x[y, x - 1] + 1 < width:
        return np.int64(src_image[y, x - 1]), np.int64(src_y[y, x - 1] * width + src_x[y, x - 1] + 1)
    if y > 0 and src_image[y - 1, x] >= 0:
        return np.int64(src_image[y - 1, x]), np.int64((src_y[y - 1, x] + 1) * width + src_x[y - 1, x])
    return np.int64(-1), np.int64(-1)


@numba.njit(parallel=True, cache=True)
def sample_row(canvas, sources, pools, semantic, region, known, used, budget, y, geometry, rule, keys, record):
    """Generate row y of every canvas in place, record each pixel's provenance and count it in `used`.

    `pools` is (B, R, K): each canvas's candidate images for each of R regions, and `region` (H*W,) gives each
    pixel's region (one region of zeros when the whole canvas draws from one set). `semantic` is (B, R, K,
    block columns) (`RowBatch.semantic`; 0 columns with the semantic filter off). A pixel with known[b, y*W + x]
    (completion: a given pixel) is kept as it is and left unrecorded. `record` is (src_image, src_y, src_x,
    n_candidates, distance), each (B, H, W). A pixel with no admissible candidate is left unwritten with
    n_candidates 0; the caller fails on it.
    """
    _, width, half_window, channels = geometry
    src_image, src_y, src_x, n_candidates, distance = record
    n_samples, _, pool_size = pools.shape
    padded_width = width + 2 * half_window
    for b in numba.prange(n_samples):
        scratch = candidate_buffers(pool_size, geometry, rule)
        cand_dist, cand_image, cand_pos = scratch[1], scratch[2], scratch[3]
        for x in range(width):
            if known[b, y * width + x]:
                continue
            r = region[y * width + x]
            hint = continuation(src_image[b], src_y[b], src_x[b], y, x)
            n, threshold, centre = score_candidates(
                canvas[b], sources, pools[b, r], semantic[b, r], used[b], budget, y, x, geometry, rule, scratch, hint
            )
            chosen, n_admissible = choose_admissible(cand_dist[:n], threshold, uniform(keys[b], y * width + x))
            if chosen < 0:
                n_candidates[b, y, x] = 0
                continue
            image = cand_image[chosen]
            used[b, image] += 1
            sy, sx = cand_pos[chosen] // width, cand_pos[chosen] % width
            at = ((sy + half_window) * padded_width + sx + half_window) * channels
            for c in range(channels):
                canvas[b, centre + c] = sources[image, at + c]
            src_image[b, y, x] = image
            src_y[b, y, x] = sy
            src_x[b, y, x] = sx
            n_candidates[b, y, x] = n_admissible
            distance[b, y, x] = cand_dist[chosen]


@dataclass
class RowBatch:
    """What the sampler and the likelihood share for a batch: the padded canvas, the samples' keys and the
    retrieval pools (one per region of the canvas), visited row by row (`rows`, `region_rows`)."""

    database: Database
    canvas: np.ndarray  # uint8 (n, H + h, W + 2h, C): the pad value around the images
    keys: np.ndarray  # uint64 (n,): each sample's random key
    pools: list[CanvasPools]  # one per region
    codes: np.ndarray  # (n, block rows, row width): the canvases' completed block rows, encoded (`encode_rows`)
    _semantic: np.ndarray | None = field(default=None, repr=False)

    @classmethod
    def start(
        cls,
        db: Database,
        seed: int,
        indices: np.ndarray,
        allowed: np.ndarray | list[np.ndarray],
        pool_size: int,
        images: np.ndarray | None = None,
        approximate: bool = False,
    ) -> "RowBatch":
        """A batch of the samples with these global indices; its canvas blank (pad value), or holding `images`.

        `allowed` holds the training images candidates may come from, or a list of them, one per region. With
        `approximate`, each region's pools come from its `Database.prefix_indexes` instead of the exact scan.
        """
        n, h, width = len(indices), db.half_window, db.width
        keys = sample_keys(seed, indices)
        canvas = np.full((n, db.height + h, width + 2 * h, db.channels), db.pad_value, dtype=np.uint8)
        if images is not None:
            canvas[:, h:, h : h + width] = images
        regions = allowed if isinstance(allowed, list) else [allowed]
        block = db.encoder.block
        pools = [
            CanvasPools(db.representations, block, a, keys, pool_size, db.prefix_indexes(a) if approximate else None)
            for a in regions
        ]
        codes = np.zeros((n, *db.representations.shape[1:]), dtype=db.representations.dtype)
        return cls(db, canvas, keys, pools, codes)

    def encode_rows(self, y: int) -> None:
        """At the start of row y: encode the block row the canvases have just completed (if any) into `codes`,
        once for the pools of every region and the semantic filter."""
        db, block = self.database, self.database.encoder.block
        if y > 0 and y % block == 0:
            h = db.half_window
            self.codes[:, y // block - 1] = db.encoder.encode_row(
                self.canvas[:, h + y - block : h + y, h : h + db.width]
            )

    @property
    def flat_canvas(self) -> np.ndarray:
        """The canvas as (n, (H + h) * (W + 2h) * C), a view: what the row kernels read and write."""
        return self.canvas.reshape(len(self.canvas), -1)

    def rows(self):
        """(y, pool) for every row in order, each (B, K) pool retrieved from the canvas as it is when its row
        begins; for a batch of one region."""
        (pools,) = self.pools
        for y in range(self.database.height):
            self.encode_rows(y)
            yield y, pools.pool(self.codes, y)

    def region_rows(self):
        """(y, pools) for every row in order: pools is (B, R, K), each region's pool padded with -1 (no image)."""
        for y in range(self.database.height):
            self.encode_rows(y)
            each = [pools.pool(self.codes, y) for pools in self.pools]
            stacked = np.full((len(self.canvas), len(each), max(p.shape[1] for p in each)), -1, dtype=np.int64)
            for r, pool in enumerate(each):
                stacked[:, r, : pool.shape[1]] = pool
            yield y, stacked

    def semantic(self, y: int, pools: np.ndarray, context: int | None) -> np.ndarray:
        """(B, R, K, block columns) float64 semantic distances for row y's `pools` (B, R, K), or (B, R, K, 0) when
        `context` is None (the filter off): [b, r, k, j] sums, over the completed block rows above y (at most
        `context` of them) and the block columns j - context .. j + context, the squared differences between
        canvas b's representation and pool image k's. Recomputed at each block row, like the pools (call it after
        `rows` or `region_rows` has yielded y: they encode the canvases' completed block rows)."""
        db, block = self.database, self.database.encoder.block
        if context is None:
            return np.zeros((*pools.shape, 0))
        if y % block and self._semantic is not None:
            return self._semantic
        columns, n_rows = db.encoder.columns(db.width), y // block
        first = max(0, n_rows - context)
        if first == n_rows:
            self._semantic = np.zeros((*pools.shape, columns))
            return self._semantic
        theirs = np.asarray(db.representations[np.maximum(pools, 0).reshape(-1), first:n_rows], dtype=np.int64)
        theirs = theirs.reshape(*pools.shape, n_rows - first, columns, -1)
        mine = self.codes[:, first:n_rows].astype(np.int64).reshape(len(pools), 1, 1, n_rows - first, columns, -1)
        per_block = ((theirs - mine) ** 2).sum(axis=(3, 5))
        running = np.concatenate([np.zeros((*pools.shape, 1), np.int64), np.cumsum(per_block, axis=3)], axis=3)
        upper = np.minimum(np.arange(columns) + context + 1, columns)
        lower = np.maximum(np.arange(columns) - context, 0)
        self._semantic = (running[..., upper] - running[..., lower]).astype(np.float64)
        return self._semantic

    def images(self) -> np.ndarray:
        """The (n, H, W, C) images inside the padding."""
        h = self.database.half_window
        return self.canvas[:, h:, h : h + self.database.width]


def draw_classes(seed: int, sample_indices: np.ndarray, class_counts: np.ndarray) -> np.ndarray:
    """Each sample's class under the mixture: drawn with probability class_counts/sum, from (seed, sample index)."""
    keys = sample_keys(seed, np.asarray(sample_indices, dtype=np.int64)) ^ CLASS_STREAM
    u = np.array([uniform(key, 0) for key in keys], dtype=np.float64)
    counts = np.asarray(class_counts, dtype=np.float64)
    cdf = np.cumsum(counts) / counts.sum()
    return np.minimum(np.searchsorted(cdf, u, side="right"), np.flatnonzero(counts)[-1]).astype(np.int64)


@dataclass
class Sampler:
    """Non-parametric sampler over a window database (see the module docstring for the rule).

    Parameters and their ranges are declared in `npgen.params`. `pool_size=0` turns the semantic
    pool off: every allowed training image is a candidate. Three controls restrict where pixels may
    come from, all as search parameters over the same database (nothing is rebuilt):

    - `excluded`: training images that supply no pixel and take no part in any pool or class share;
    - `class_map`: (H, W) class of each pixel (-1: any class), so each region draws from its class only;
    - `completion`: given pixels to keep (`npgen.control.completion.Completion`); only the others are generated.
    """

    database: Database
    eps: float = PARAMS["eps"].default
    abs_tol: float = PARAMS["abs_tol"].default
    radius: int = PARAMS["radius"].default
    pool_size: int = PARAMS["pool_size"].default
    pool_search: str = PARAMS["pool_search"].default
    exact_pool_limit: int = PARAMS["exact_pool_limit"].default
    k_min: int = PARAMS["k_min"].default
    max_source_share: float = PARAMS["max_source_share"].default
    sigma: float | None = PARAMS["sigma"].default
    semantic_eps: float | None = PARAMS["semantic_eps"].default
    semantic_context: int = PARAMS["semantic_context"].default
    class_mixture: int = PARAMS["class_mixture"].default
    seed: int = PARAMS["seed"].default
    batch_size: int = PARAMS["batch_size"].default
    excluded: np.ndarray | None = None
    class_map: np.ndarray | None = None
    completion: object | None = None
    _weights: np.ndarray = field(init=False, repr=False)
    _included: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        for name in SAMPLER_PARAMS:
            setattr(self, name, check(name, getattr(self, name)))
        db = self.database
        self._weights = window_weights(db.half_window, self.sigma)
        excluded = np.unique(np.asarray([] if self.excluded is None else self.excluded, dtype=np.int64))
        if len(excluded) and (excluded[0] < 0 or excluded[-1] >= db.n_images):
            raise NpgenError(f"excluded images must be training-image indices 0..{db.n_images - 1}")
        self.excluded = excluded
        self._included = np.ones(db.n_images, dtype=bool)
        self._included[excluded] = False
        if self.class_map is not None:
            self.class_map = np.asarray(self.class_map, dtype=np.int64)
            if self.class_map.shape != (db.height, db.width):
                raise NpgenError(
                    f"a class map must be {db.height}x{db.width} like the images, got {'x'.join(map(str, self.class_map.shape))}"
                )
            if self.class_map.min() < -1 or self.class_map.max() >= len(db.class_names):
                raise NpgenError(f"a class map holds class indices 0..{len(db.class_names) - 1} (or -1 for any class)")

    @property
    def budget(self) -> int:
        """Most pixels one training image may supply to one sample."""
        db = self.database
        return source_budget(self.max_source_share, db.height * db.width)

    @property
    def approximate_pool(self) -> bool:
        """Whether pools come from the approximate prefix indexes: `pool_search`, with auto resolved by the
        database's size against `exact_pool_limit`."""
        if self.pool_search == "auto":
            return self.database.n_images > self.exact_pool_limit
        return self.pool_search == "approximate"

    def params(self) -> dict:
        """The method parameters, as recorded in a run's manifest (with the budget in pixels, and pool_search as
        resolved: exact or approximate)."""
        recorded = {name: getattr(self, name) for name in SAMPLER_PARAMS}
        recorded["pool_search"] = "approximate" if self.approximate_pool else "exact"
        return {**recorded, "source_budget": self.budget}

    def geometry(self) -> tuple[int, int, int, int]:
        """(height, width, half_window, channels): the `geometry` tuple of the row kernels."""
        db = self.database
        return db.height, db.width, db.half_window, db.channels

    def rule(self) -> tuple:
        """(offsets, weights, radius, eps, abs_tol, k_min, semantic_eps, semantic_block): the `rule` tuple of the row
        kernels (semantic_eps inf with the filter off)."""
        offsets, weights = self.window_order()
        semantic_eps = np.inf if self.semantic_eps is None else float(self.semantic_eps)
        return (
            offsets,
            weights,
            self.radius,
            float(self.eps),
            float(self.abs_tol),
            self.k_min,
            semantic_eps,
            self.database.encoder.block,
        )

    @property
    def semantic_reach(self) -> int | None:
        """The semantic filter's context in blocks (`RowBatch.semantic`), None when the filter is off."""
        return None if self.semantic_eps is None else self.semantic_context

    def window_order(self) -> tuple[np.ndarray, np.ndarray]:
        """(flat offsets into a padded canvas, weights) of the causal window, heaviest first for early exit."""
        db = self.database
        heaviest_first = np.argsort(-self._weights, kind="stable")
        offsets = flat_offsets(db.half_window, db.width + 2 * db.half_window, db.channels)[heaviest_first]
        return offsets, self._weights[heaviest_first]

    def allowed(self, class_label: int | None) -> np.ndarray:
        """The training images a sample of this class (None or -1: any) may copy from: its class, less the excluded."""
        db = self.database
        members = db.class_members(None if class_label is None or class_label < 0 else class_label)
        allowed = members[self._included[members]]
        if len(allowed) == 0:
            which = (
                "the training split"
                if class_label is None or class_label < 0
                else f"class {db.class_names[class_label]!r}"
            )
            raise NpgenError(f"every image of {which} is excluded; exclude fewer images")
        return allowed

    def class_counts(self) -> np.ndarray:
        """Training images per class, excluded images left out: the class shares the mixture draws from."""
        db = self.database
        return np.bincount(db.labels[self._included], minlength=len(db.class_names))

    def sample_classes(self, sample_indices: np.ndarray, class_label: int | None) -> np.ndarray:
        """The class each sample is conditioned on: the requested one, a mixture draw, or -1 (every image)."""
        db, n = self.database, len(sample_indices)
        if class_label is not None:
            db.class_members(class_label)  # checks the range
            return np.full(n, class_label, np.int64)
        if not self.class_mixture or len(db.class_names) < 2 or self.class_map is not None:
            return np.full(n, -1, np.int64)
        return draw_classes(self.seed, sample_indices, self.class_counts())

    def check_budget(self, n_allowed: int, pixels: int | None = None) -> None:
        """Refuse settings under which every candidate image could run out of budget before `pixels` (default: a
        whole sample) are generated from `n_allowed` images."""
        db = self.database
        pixels = db.height * db.width if pixels is None else pixels
        images = self.pool_size if 0 < self.pool_size < n_allowed else n_allowed
        if images * self.budget < pixels:
            need = -(-pixels // images) / (db.height * db.width)
            raise NpgenError(
                f"max_source_share={self.max_source_share} lets each of the {images} candidate images give "
                f"{self.budget} pixels, fewer than the {pixels} to generate; use --max-source-share >= {need:.3f} "
                f"or a larger --pool-size"
            )

    def sample_batch(self, sample_indices: np.ndarray, class_label: int | None = None) -> Samples:
        """Generate the samples with these global indices; each depends only on (seed, index, class)."""
        indices = np.asarray(sample_indices, dtype=np.int64)
        classes = self.sample_classes(indices, class_label)
        groups = [self._sample_group(indices[classes == c], int(c)) for c in np.unique(classes)]
        merged = Samples.concatenate(groups)
        order = np.argsort(merged.sample_index, kind="stable")
        return Samples(**{name: getattr(merged, name)[order] for name in Samples.__dataclass_fields__})

    def _regions(self, class_label: int) -> tuple[list[np.ndarray], np.ndarray]:
        """(allowed images of each region, (H*W,) region of each pixel): one region unless there is a class map."""
        db = self.database
        if self.class_map is None:
            return [self.allowed(class_label)], np.zeros(db.height * db.width, np.int64)
        classes, region = np.unique(self.class_map, return_inverse=True)
        return [self.allowed(int(c)) for c in classes], region.reshape(-1).astype(np.int64)

    def given(self, indices: np.ndarray) -> tuple[np.ndarray | None, np.ndarray]:
        """(given images or None, (n, H*W) bool given pixels) of these samples: a completion's, else none."""
        db, n = self.database, len(indices)
        if self.completion is None:
            return None, np.zeros((n, db.height * db.width), dtype=np.bool_)
        return self.completion.given(indices), self.completion.known_pixels(indices).reshape(n, -1)

    def _sample_group(self, indices: np.ndarray, class_label: int) -> Samples:
        """Samples of one class (-1: every training image, or the class map's) in lockstep, row by row."""
        db = self.database
        n, height, width, channels = len(indices), db.height, db.width, db.channels
        allowed, region = self._regions(class_label)
        given, known = self.given(indices)
        for r, images in enumerate(allowed):
            self.check_budget(len(images), int((~known[:, region == r]).sum(axis=1).max(initial=0)))
        batch = RowBatch.start(
            db, self.seed, indices, allowed, self.pool_size, images=given, approximate=self.approximate_pool
        )
        shape = (n, height, width)
        out = Samples(
            images=np.empty((n, height, width, channels), np.uint8),
            sample_index=indices,
            class_label=np.full(n, class_label, np.int64),
            src_image=np.full(shape, -1, np.int32),
            src_y=np.full(shape, -1, np.int16),
            src_x=np.full(shape, -1, np.int16),
            n_candidates=np.full(shape, -1, np.int32),
            distance=np.full(shape, np.nan, np.float32),
        )
        self._generate_rows(batch, region, known, out)
        failed = np.flatnonzero((out.n_candidates == 0).any(axis=(0, 2)))
        if len(failed):
            raise NpgenError(
                f"no admissible candidate at row {failed[0]}: the parameters {self.params()} admit nothing; relax them"
            )
        out.images[:] = batch.images()
        return out

    def _generate_rows(self, batch: RowBatch, region: np.ndarray, known: np.ndarray, out: Samples) -> None:
        """Generate every row of the batch's canvases in raster order, recording provenance into `out`
        (`npgen.rule.cuda.CudaSampler` runs the same rows on a GPU)."""
        db = self.database
        geometry, rule = self.geometry(), self.rule()
        record = (out.src_image, out.src_y, out.src_x, out.n_candidates, out.distance)
        used = np.zeros((len(batch.keys), db.n_images), dtype=np.int32)
        for y, pools in batch.region_rows():
            sample_row(
                batch.flat_canvas,
                db.sources,
                pools,
                batch.semantic(y, pools, self.semantic_reach),
                region,
                known,
                used,
                self.budget,
                y,
                geometry,
                rule,
                batch.keys,
                record,
            )
            if (out.n_candidates[:, y] == 0).any():
                return  # the caller reports the row that failed

    def sample(
        self, n: int, class_label: int | None = None, start: int = 0, progress: Callable[[int], None] | None = None
    ) -> Samples:
        """Generate samples start..start+n-1 in batches of `batch_size`; `progress(k)` after each batch of k."""
        if n < 1:
            raise NpgenError(f"number of samples must be >= 1, got {n}")
        parts = []
        for first in range(start, start + n, self.batch_size):
            indices = np.arange(first, min(first + self.batch_size, start + n))
            parts.append(self.sample_batch(indices, class_label))
            if progress is not None:
                progress(len(indices))
        return Samples.concatenate(parts)
