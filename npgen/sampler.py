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

from npgen.database import Database
from npgen.errors import NpgenError
from npgen.params import PARAMS, SAMPLER_PARAMS, check, source_budget
from npgen.rng import CLASS_STREAM, sample_keys, uniform
from npgen.samples import Samples
from npgen.semantics import CanvasPools, PrefixIndexes
from npgen.windows import flat_offsets, gather_context, window_distance, window_weights


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
def score_candidates(canvas, sources, pool, used, budget, y, x, geometry, rule, scratch):
    """Distance from the context of pixel (y, x) of one padded canvas to every candidate window.

    `geometry` is (height, width, half_window, channels), `rule` is (offsets, weights, radius, eps,
    abs_tol, k_min) and `scratch` is `candidate_buffers`' tuple. Candidates are the windows of the pool's images that have supplied fewer than `budget` pixels
    of this canvas (`used[image]`), at source positions within `radius` of (y, x); their distances,
    images and flat positions fill the first n entries of cand_*; returns (n, admissible threshold,
    flat index of the pixel in the canvas). With n == 0 the threshold is -inf.
    """
    height, width, half_window, channels = geometry
    offsets, weights, radius, eps, abs_tol, _ = rule
    context, cand_dist, cand_image, cand_pos, smallest = scratch
    padded_width = width + 2 * half_window
    centre = ((y + half_window) * padded_width + x + half_window) * channels
    gather_context(canvas, centre, offsets, channels, context)
    smallest[:] = np.inf
    bound = np.inf
    n = 0
    for k in range(pool.shape[0]):
        image = pool[k]
        if used[image] >= budget:
            continue
        for sy in range(max(0, y - radius), min(height, y + radius + 1)):
            for sx in range(max(0, x - radius), min(width, x + radius + 1)):
                at = ((sy + half_window) * padded_width + sx + half_window) * channels
                d = window_distance(context, sources[image], at, offsets, weights, channels, bound)
                cand_dist[n] = d
                if d < smallest[-1]:
                    bound = _insert_sorted(smallest, d, eps, abs_tol)
                cand_image[n] = image
                cand_pos[n] = sy * width + sx
                n += 1
    if n == 0:
        return 0, -np.inf, centre
    return n, admissible_threshold(cand_dist[:n], eps, abs_tol, smallest.shape[0]), centre


@numba.njit(cache=True, nogil=True)
def candidate_buffers(pool_size, geometry, rule):
    """One canvas's scratch arrays for score_candidates: context, candidate distances, images, positions, k_min smallest.

    Distances stay float64 until recorded: an abandoned window's partial distance exceeds the search
    bound, and rounding it to float32 could make it equal the bound and wrongly admissible.
    """
    height, width, _, channels = geometry
    offsets, _, radius, _, _, k_min = rule
    max_candidates = pool_size * min(2 * radius + 1, height) * min(2 * radius + 1, width)
    return (
        np.empty(offsets.shape[0] * channels, dtype=np.float32),
        np.empty(max_candidates, dtype=np.float64),
        np.empty(max_candidates, dtype=np.int64),
        np.empty(max_candidates, dtype=np.int64),
        np.empty(k_min, dtype=np.float64),
    )


@numba.njit(parallel=True, cache=True)
def sample_row(canvas, sources, pool, used, budget, y, geometry, rule, keys, record):
    """Generate row y of every canvas in place, record each pixel's provenance and count it in `used`.

    `record` is (src_image, src_y, src_x, n_candidates, distance), each (B, H, W). A pixel with no
    admissible candidate is left unwritten with n_candidates 0; the caller fails on it.
    """
    height, width, half_window, channels = geometry
    src_image, src_y, src_x, n_candidates, distance = record
    n_samples, pool_size = pool.shape
    padded_width = width + 2 * half_window
    for b in numba.prange(n_samples):
        scratch = candidate_buffers(pool_size, geometry, rule)
        cand_dist, cand_image, cand_pos = scratch[1], scratch[2], scratch[3]
        for x in range(width):
            n, threshold, centre = score_candidates(
                canvas[b], sources, pool[b], used[b], budget, y, x, geometry, rule, scratch
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
    retrieval pools, visited row by row (`rows`)."""

    database: Database
    canvas: np.ndarray  # uint8 (n, H + h, W + 2h, C): the pad value around the images
    keys: np.ndarray  # uint64 (n,): each sample's random key
    pools: CanvasPools

    @classmethod
    def start(
        cls,
        db: Database,
        seed: int,
        indices: np.ndarray,
        allowed: np.ndarray,
        pool_size: int,
        images: np.ndarray | None = None,
        approximate: PrefixIndexes | None = None,
    ) -> "RowBatch":
        """A batch of the samples with these global indices; its canvas blank (pad value), or holding `images`.
        With `approximate` (the allowed images' `PrefixIndexes`), pools come from it instead of the exact scan."""
        n, h, width = len(indices), db.half_window, db.width
        keys = sample_keys(seed, indices)
        canvas = np.full((n, db.height + h, width + 2 * h, db.channels), db.pad_value, dtype=np.uint8)
        if images is not None:
            canvas[:, h:, h : h + width] = images
        return cls(
            db,
            canvas,
            keys,
            CanvasPools(db.representations, db.encoder, allowed, keys, pool_size, h, width, approximate),
        )

    @property
    def flat_canvas(self) -> np.ndarray:
        """The canvas as (n, (H + h) * (W + 2h) * C), a view: what the row kernels read and write."""
        return self.canvas.reshape(len(self.canvas), -1)

    def rows(self):
        """(y, pool) for every row in order, each pool retrieved from the canvas as it is when its row begins."""
        for y in range(self.database.height):
            yield y, self.pools.pool(self.canvas, y)

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
    pool off: every allowed training image is a candidate.
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
    class_mixture: int = PARAMS["class_mixture"].default
    seed: int = PARAMS["seed"].default
    batch_size: int = PARAMS["batch_size"].default
    _weights: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        for name in SAMPLER_PARAMS:
            setattr(self, name, check(name, getattr(self, name)))
        self._weights = window_weights(self.database.half_window, self.sigma)

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
        """(offsets, weights, radius, eps, abs_tol, k_min): the `rule` tuple of the row kernels."""
        offsets, weights = self.window_order()
        return offsets, weights, self.radius, float(self.eps), float(self.abs_tol), self.k_min

    def window_order(self) -> tuple[np.ndarray, np.ndarray]:
        """(flat offsets into a padded canvas, weights) of the causal window, heaviest first for early exit."""
        db = self.database
        heaviest_first = np.argsort(-self._weights, kind="stable")
        offsets = flat_offsets(db.half_window, db.width + 2 * db.half_window, db.channels)[heaviest_first]
        return offsets, self._weights[heaviest_first]

    def sample_classes(self, sample_indices: np.ndarray, class_label: int | None) -> np.ndarray:
        """The class each sample is conditioned on: the requested one, a mixture draw, or -1 (every image)."""
        db, n = self.database, len(sample_indices)
        if class_label is not None:
            db.class_members(class_label)  # checks the range
            return np.full(n, class_label, np.int64)
        if not self.class_mixture or len(db.class_names) < 2:
            return np.full(n, -1, np.int64)
        return draw_classes(self.seed, sample_indices, db.class_counts())

    def check_budget(self, n_allowed: int) -> None:
        """Refuse settings under which every candidate image could run out of budget before a sample is done."""
        db = self.database
        pixels = db.height * db.width
        images = self.pool_size if 0 < self.pool_size < n_allowed else n_allowed
        if images * self.budget < pixels:
            need = -(-pixels // images) / pixels
            raise NpgenError(
                f"max_source_share={self.max_source_share} lets each of the {images} candidate images give "
                f"{self.budget} pixels, fewer than a sample's {pixels}; use --max-source-share >= {need:.3f} "
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

    def _sample_group(self, indices: np.ndarray, class_label: int) -> Samples:
        """Samples of one class (-1: every training image) in lockstep, row by row."""
        db = self.database
        allowed = db.class_members(None if class_label < 0 else class_label)
        self.check_budget(len(allowed))
        n, height, width, channels = len(indices), db.height, db.width, db.channels
        approximate = db.prefix_indexes(None if class_label < 0 else class_label) if self.approximate_pool else None
        batch = RowBatch.start(db, self.seed, indices, allowed, self.pool_size, approximate=approximate)
        flat_canvas = batch.flat_canvas
        shape = (n, height, width)
        out = Samples(
            images=np.empty((n, height, width, channels), np.uint8),
            sample_index=indices,
            class_label=np.full(n, class_label, np.int64),
            src_image=np.empty(shape, np.int32),
            src_y=np.empty(shape, np.int16),
            src_x=np.empty(shape, np.int16),
            n_candidates=np.empty(shape, np.int32),
            distance=np.empty(shape, np.float32),
        )
        geometry, rule = self.geometry(), self.rule()
        record = (out.src_image, out.src_y, out.src_x, out.n_candidates, out.distance)
        used = np.zeros((n, db.n_images), dtype=np.int32)
        for y, pool in batch.rows():
            sample_row(flat_canvas, db.sources, pool, used, self.budget, y, geometry, rule, batch.keys, record)
            if (out.n_candidates[:, y] == 0).any():
                raise NpgenError(
                    f"no admissible candidate at row {y}: the parameters {self.params()} admit nothing; relax them"
                )
        out.images[:] = batch.images()
        return out

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
