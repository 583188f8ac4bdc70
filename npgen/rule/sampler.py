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
   With `max_part_share` below 1, the (at most two) windows that would grow a copied part beyond
   `part_bound` pixels are no candidates either (`npgen.rule.parts`), and with `max_reuse` above 0 neither
   are the source pixels that have given the coarsest level their cap (`npgen.rule.reuse`).
5. One admissible candidate is drawn uniformly; its centre pixel (all channels) is copied, and its
   image, position, the number of admissible candidates and its distance are recorded.

With `levels` L > 1 the loop runs once per pyramid level, coarsest first (`npgen.rule.pyramid`).

Unconditional samples are a mixture (`class_mixture`): each first draws its class from the
training split's class shares (a pure function of seed and sample index; `class_draw` stratified
keeps every class's count in a run within about 3 of its share), then is sampled conditioned on it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import numpy as np

from npgen.data.database import Database
from npgen.errors import NpgenError
from npgen.params import PARAMS, SAMPLER_PARAMS, check, part_bound, size_sides, source_budget
from npgen.rule.batch import RowBatch
from npgen.rule.cpu import sample_row
from npgen.rule.kernels import CoarseLevel, Geometry, Rule
from npgen.rule.parts import part_forest
from npgen.rule.reuse import check_reuse, pixel_uses, reuse_cap
from npgen.rule.provenance import Samples
from npgen.rule.pyramid import check_levels, sample_pyramid
from npgen.rule.rng import CLASS_STREAM, sample_keys, uniform
from npgen.rule.windows import flat_offsets, inside_weights, window_weights


GOLDEN_FRACTION = (5**0.5 - 1) / 2  # the golden ratio's fractional part: the stratified draw's step


def draw_classes(
    seed: int, sample_indices: np.ndarray, class_counts: np.ndarray, class_draw: str = "stratified"
) -> np.ndarray:
    """Each sample's class under the mixture, with probability class_counts/sum, from (seed, sample index) alone.

    independent: each sample its own uniform u. stratified: u = start + index * GOLDEN_FRACTION (mod 1), from one
    random start per seed, so every sample's class still has the training shares as its distribution, while any
    n consecutive samples hold each class within about 3 of its share of n (a Weyl sequence's low discrepancy)."""
    indices = np.asarray(sample_indices, dtype=np.int64)
    if class_draw not in PARAMS["class_draw"].choices:
        raise ValueError(f"class_draw must be one of {PARAMS['class_draw'].choices}, got {class_draw!r}")
    if class_draw == "stratified":
        start = uniform(sample_keys(seed, np.array([-1], dtype=np.int64))[0] ^ CLASS_STREAM, 0)
        u = (start + indices * GOLDEN_FRACTION) % 1.0
    else:
        u = np.array([uniform(key, 0) for key in sample_keys(seed, indices) ^ CLASS_STREAM], dtype=np.float64)
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
    levels: int = PARAMS["levels"].default
    coarse_weight: float = PARAMS["coarse_weight"].default
    anchor: str = PARAMS["anchor"].default
    max_source_share: float = PARAMS["max_source_share"].default
    max_part_share: float = PARAMS["max_part_share"].default
    max_reuse: float = PARAMS["max_reuse"].default
    size: str | None = PARAMS["size"].default
    outside_canvas: str = PARAMS["outside_canvas"].default
    sigma: float | None = PARAMS["sigma"].default
    semantic_eps: float | None = PARAMS["semantic_eps"].default
    semantic_context: int = PARAMS["semantic_context"].default
    class_mixture: int = PARAMS["class_mixture"].default
    class_draw: str = PARAMS["class_draw"].default
    seed: int = PARAMS["seed"].default
    batch_size: int = PARAMS["batch_size"].default
    excluded: np.ndarray | None = None
    class_map: np.ndarray | None = None
    completion: object | None = None
    level: int = 0  # the pyramid level this sampler copies at (`npgen.rule.pyramid` sets it)
    on_rows: Callable[[int], None] | None = field(default=None, repr=False, compare=False)  # canvas rows done
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
        if self.canvas_shape != (db.height, db.width):
            self.check_output_size()
        coarsest = self.levels - 1
        check_reuse(self.max_reuse, db.n_images * (db.height >> coarsest) * (db.width >> coarsest))
        if self.levels > 1:
            check_levels(self)
        elif self.anchor != "position":
            raise NpgenError(
                f"anchor={self.anchor!r} (--anchor) anchors finer pyramid levels; use it with --levels > 1"
            )

    @property
    def canvas_shape(self) -> tuple[int, int]:
        """(height, width) of the samples: `size`, else the training images'."""
        db = self.database
        return (db.height, db.width) if self.size is None else size_sides(self.size)

    @property
    def rows_per_sample(self) -> int:
        """Canvas rows one sample takes, over every pyramid level (what `on_rows` counts)."""
        height = self.canvas_shape[0]
        return sum(height >> k for k in range(self.levels))

    @property
    def n_pixels(self) -> int:
        """Pixels per sample."""
        height, width = self.canvas_shape
        return height * width

    def check_output_size(self) -> None:
        """Refuse, in one line, what an output of another size than the training images does not take (yet)."""
        db = self.database
        if 0 < self.pool_size < db.n_images:
            raise NpgenError(
                f"--size {self.size} differs from the images' {db.height}x{db.width}, and the pool compares the "
                "canvas with whole training images of its own size; pass --pool-size 0"
            )
        if self.semantic_eps is not None or self.class_map is not None or self.completion is not None:
            raise NpgenError(
                f"--size {self.size} does not take the semantic filter, a class map or completion yet; leave them off"
            )

    @property
    def budget(self) -> int:
        """Most pixels one training image may supply to one sample."""
        return source_budget(self.max_source_share, self.n_pixels)

    @property
    def part_bound(self) -> int:
        """Most pixels one copied part of a sample may hold (`npgen.rule.parts`)."""
        return part_bound(self.max_part_share, self.n_pixels)

    @property
    def n_source_pixels(self) -> int:
        """Pixels of every training image at this sampler's level (`npgen.rule.reuse`)."""
        return self.database.n_images * self.database.height * self.database.width

    @property
    def reuse_cap(self) -> int:
        """Most pixels one source pixel may give a sample at this level with max_reuse > 0 (`npgen.rule.reuse`)."""
        return reuse_cap(self.max_reuse, self.n_pixels, self.n_source_pixels)

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

    def geometry(self) -> Geometry:
        """The row kernels' `Geometry` of this sampler's database."""
        db = self.database
        return Geometry(db.height, db.width, db.half_window, db.channels)

    def canvas_geometry(self) -> Geometry:
        """The row kernels' `Geometry` of the samples (the database's, unless `size` differs)."""
        db = self.database
        return Geometry(*self.canvas_shape, db.half_window, db.channels)

    def rule(self) -> Rule:
        """The row kernels' `Rule` of these parameters (semantic_eps inf with the filter off)."""
        offsets, weights = self.window_order()
        db = self.database
        canvas_offsets, _ = self.window_order(self.canvas_shape[1])
        semantic_eps = np.inf if self.semantic_eps is None else float(self.semantic_eps)
        edges = np.zeros((0, 0, 0, len(weights)), dtype=np.float32)  # pad: every weight as it is
        if self.outside_canvas == "ignored":
            edges = inside_weights(db.half_window, self._weights)[..., self.heaviest_first()]
        return Rule(
            offsets, weights, self.radius, float(self.eps), float(self.abs_tol), self.k_min, semantic_eps,
            db.encoder.block, canvas_offsets, np.ascontiguousarray(edges),
        )  # fmt: skip

    @property
    def semantic_reach(self) -> int | None:
        """The semantic filter's context in blocks (`RowBatch.semantic`), None when the filter is off."""
        return None if self.semantic_eps is None else self.semantic_context

    def window_order(self, width: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(flat offsets into a padded image `width` wide inside its padding, the training images' by default;
        weights) of the causal window, heaviest first for early exit."""
        db = self.database
        heaviest_first = self.heaviest_first()
        padded_width = (db.width if width is None else width) + 2 * db.half_window
        offsets = flat_offsets(db.half_window, padded_width, db.channels)[heaviest_first]
        return offsets, self._weights[heaviest_first]

    def heaviest_first(self) -> np.ndarray:
        """The causal offsets' order in the kernels: heaviest weight first (ties in raster order)."""
        return np.argsort(-self._weights, kind="stable")

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
        return draw_classes(self.seed, sample_indices, self.class_counts(), self.class_draw)

    def check_budget(self, n_allowed: int, pixels: int | None = None) -> None:
        """Refuse settings under which every candidate image could run out of budget before `pixels` (default: a
        whole sample) are generated from `n_allowed` images."""
        pixels = self.n_pixels if pixels is None else pixels
        images = self.pool_size if 0 < self.pool_size < n_allowed else n_allowed
        if images * self.budget < pixels:
            need = -(-pixels // images) / self.n_pixels
            raise NpgenError(
                f"max_source_share={self.max_source_share} lets each of the {images} candidate images give "
                f"{self.budget} pixels, fewer than the {pixels} to generate; use --max-source-share >= {need:.3f} "
                f"or a larger --pool-size"
            )

    def sample_batch(self, sample_indices: np.ndarray, class_label: int | None = None) -> Samples:
        """Generate the samples with these global indices; each depends only on (seed, index, class)."""
        indices = np.asarray(sample_indices, dtype=np.int64)
        classes = self.sample_classes(indices, class_label)
        group = self.sample_group if self.levels == 1 else partial(sample_pyramid, self)
        merged = Samples.concatenate([group(indices[classes == c], int(c)) for c in np.unique(classes)])
        return merged.take(np.argsort(merged.sample_index, kind="stable"))

    def regions(self, class_label: int) -> tuple[list[np.ndarray], np.ndarray]:
        """(allowed images of each region, (H*W,) region of each pixel): one region unless there is a class map."""
        if self.class_map is None:
            return [self.allowed(class_label)], np.zeros(self.n_pixels, np.int64)
        classes, region = np.unique(self.class_map, return_inverse=True)
        return [self.allowed(int(c)) for c in classes], region.reshape(-1).astype(np.int64)

    def given(self, indices: np.ndarray) -> tuple[np.ndarray | None, np.ndarray]:
        """(given images or None, (n, H*W) bool given pixels) of these samples: a completion's, else none."""
        n = len(indices)
        if self.completion is None:
            return None, np.zeros((n, self.n_pixels), dtype=np.bool_)
        return self.completion.given(indices), self.completion.known_pixels(indices).reshape(n, -1)

    def sample_group(
        self,
        indices: np.ndarray,
        class_label: int,
        fixed_pools: list[np.ndarray] | None = None,
        coarse: CoarseLevel | None = None,
    ) -> Samples:
        """Samples of one class (-1: every training image, or the class map's) in lockstep, row by row, at this
        sampler's level; with `fixed_pools` (one (B, K) array per region) the pools of every row, with `coarse` the
        complete coarser level every window distance starts from (`npgen.rule.pyramid`)."""
        db = self.database
        (height, width), channels, n = self.canvas_shape, db.channels, len(indices)
        allowed, region = self.regions(class_label)
        given, known = self.given(indices)
        for r, images in enumerate(allowed):
            self.check_budget(len(images), int((~known[:, region == r]).sum(axis=1).max(initial=0)))
        batch = RowBatch.start(
            db,
            self.seed,
            indices,
            allowed,
            self.pool_size,
            images=given,
            approximate=self.approximate_pool,
            level=self.level,
            fixed_pools=fixed_pools,
            shape=self.canvas_shape,
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
        self._generate_rows(batch, region, known, out, coarse)
        failed = np.flatnonzero((out.n_candidates == 0).any(axis=(0, 2)))
        if len(failed):
            raise NpgenError(
                f"no admissible candidate at row {failed[0]}: the parameters {self.params()} admit nothing; relax them"
            )
        out.images[:] = batch.images()
        return out

    def _generate_rows(
        self, batch: RowBatch, region: np.ndarray, known: np.ndarray, out: Samples, coarse: CoarseLevel | None = None
    ) -> None:
        """Generate every row of the batch's canvases in raster order, recording provenance into `out`
        (`npgen.rule.cuda.CudaSampler` runs the same rows on a GPU)."""
        db = self.database
        geometry, canvas_geometry, rule = self.geometry(), self.canvas_geometry(), self.rule()
        record = (out.src_image, out.src_y, out.src_x, out.n_candidates, out.distance)
        used = np.zeros((len(batch.keys), db.n_images), dtype=np.int32)
        parts = None  # unbounded: no forest to keep
        if self.part_bound < self.n_pixels:
            parts = part_forest(len(batch.keys), *self.canvas_shape, self.part_bound)
        reuse = None  # unbounded: nothing to count
        if self.max_reuse > 0:
            reuse = pixel_uses(len(batch.keys), self.n_source_pixels, self.reuse_cap)

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
                canvas_geometry,
                rule,
                batch.keys,
                record,
                coarse,
                parts,
                reuse,
            )
            if (out.n_candidates[:, y] == 0).any():
                return  # the caller reports the row that failed
            if self.on_rows is not None:
                self.on_rows(len(batch.keys))

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
