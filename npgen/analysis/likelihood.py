"""Test-set likelihood: npgen's predictive distribution p(pixel | context), smoothed, in bits per dimension.

The sampler draws each pixel uniformly from its admissible candidates, so p(pixel | context) is
the empirical distribution of their centre values. That puts probability 0 on every unseen value,
so it is smoothed: each candidate value mu contributes a Gaussian kernel of width `tau`, discretised
over the 256 levels of each channel and renormalised, and a uniform floor of weight `floor` is
mixed in,

    p(v | context) = (1 - floor) * mean_{a in admissible} prod_c K_tau(v_c | mu_a,c) + floor / 256**C.

An image's likelihood is the product over pixels in raster order, each scored with the true image
as its context (teacher forcing), under exactly the sampler's rule: the same retrieval pool, window
distance and admissible set. The pair (tau, floor) is chosen on held-out training images that are
not in the database, never on the test set (`tune_smoothing`).

The source budget (`max_source_share`) is not applied: it constrains which training image supplied
each earlier pixel of a sample, a latent choice that teacher forcing does not observe (a test image's
pixels were copied from nowhere). The likelihood is therefore that of the rule with the budget
relaxed: every pool image stays a candidate at every pixel. All other parts of the rule are the
sampler's own, the per-pixel semantic filter included (computed from the true image's completed block rows).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numba
import numpy as np

from npgen.errors import NpgenError
from npgen.rule.batch import RowBatch
from npgen.rule.cpu import candidate_buffers, compiled_on_disk, score_candidates
from npgen.rule.kernels import centre_index
from npgen.rule.sampler import Sampler

TAUS = (0.05, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0)
FLOORS = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 3e-2, 0.1, 0.3)
LEVELS = 256


def kernel_table(taus: tuple[float, ...]) -> np.ndarray:
    """(T, 256, 256) table: [t, mu, v] = probability of level v under the discretised kernel of width taus[t] at mu."""
    if min(taus) <= 0:
        raise NpgenError(f"kernel widths must be > 0, got {taus}")
    levels = np.arange(LEVELS, dtype=np.float64)
    diff = levels[None, :] - levels[:, None]
    table = np.exp(-0.5 * (diff[None] / np.asarray(taus, dtype=np.float64)[:, None, None]) ** 2)
    return table / table.sum(axis=2, keepdims=True)


@numba.njit(parallel=True, cache=True)
def row_mixture(canvas, sources, pool, semantic, y, geometry, rule, kernel, mixture):
    """mixture[b, x, t]: mean over pixel (y, x)'s admissible candidates of kernel t's probability of its true value.

    canvas holds the true images (padded); only each pixel's causal context is read to score candidates.
    `semantic` is (B, K, block columns) as in `sample_row` (0 columns: the semantic filter off).
    """
    width, channels = geometry.width, geometry.channels
    unused = np.zeros(sources.shape[0], dtype=np.int32)  # no source budget: see the module docstring
    n_samples, pool_size = pool.shape
    n_kernels = kernel.shape[0]
    for b in numba.prange(n_samples):
        scratch = candidate_buffers(pool_size, geometry, rule)
        total = np.empty(n_kernels, dtype=np.float64)
        for x in range(width):
            n, threshold, centre = score_candidates(
                canvas[b], sources, pool[b], semantic[b], unused, 1, y, x, geometry, geometry, rule, scratch
            )
            total[:] = 0.0
            n_admissible = 0
            for i in range(n):
                if scratch.distance[i] <= threshold:
                    n_admissible += 1
                    image, position = scratch.image[i], scratch.position[i]
                    at = centre_index(geometry, position // width, position % width)
                    for t in range(n_kernels):
                        p = 1.0
                        for c in range(channels):
                            p *= kernel[t, sources[image, at + c], canvas[b, centre + c]]
                        total[t] += p
            for t in range(n_kernels):
                mixture[b, x, t] = total[t] / n_admissible


@dataclass(frozen=True)
class Smoothing:
    """Kernel width (in grey levels) and uniform-floor weight of the smoothed predictive distribution."""

    tau: float
    floor: float


def log_likelihood_grid(
    sampler: Sampler,
    images: np.ndarray,
    taus: tuple[float, ...] = TAUS,
    floors: tuple[float, ...] = FLOORS,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """(N, len(taus), len(floors)) log-likelihood in nats of each image under each smoothing, unconditionally.

    Images are scored in batches of `sampler.batch_size`; pool tie-breaks use the sampler's seed and
    the image's position in `images`, so the result is deterministic.
    """
    db = sampler.database
    if images.ndim != 4 or images.shape[1:] != (db.height, db.width, db.channels) or images.dtype != np.uint8:
        raise NpgenError(
            f"images must be uint8 of shape (N, {db.height}, {db.width}, {db.channels}) to match the database, "
            f"got {images.dtype} {images.shape}"
        )
    floor = np.asarray(floors, dtype=np.float64)
    if floor.min() <= 0 or floor.max() >= 1:
        raise NpgenError(f"floor weights must lie in (0, 1), got {floors}")
    kernel = kernel_table(taus)
    geometry, rule = sampler.geometry(), sampler.rule()
    width, channels = db.width, db.channels
    allowed = db.class_members(None)
    uniform = float(LEVELS) ** -channels
    out = np.zeros((len(images), len(taus), len(floors)), dtype=np.float64)
    for first in range(0, len(images), sampler.batch_size):
        n = len(images[first : first + sampler.batch_size])
        batch = RowBatch.start(
            db, sampler.seed, np.arange(first, first + n), allowed, sampler.pool_size, images=images[first : first + n]
        )
        flat_canvas = batch.flat_canvas
        mixture = np.empty((n, width, len(taus)), dtype=np.float64)
        for y, pool in batch.rows():
            semantic = batch.semantic(y, pool[:, None], sampler.semantic_reach)[:, 0]
            row_mixture(flat_canvas, db.sources, pool, semantic, y, geometry, rule, kernel, mixture)
            smoothed = (1.0 - floor) * mixture[..., None] + floor * uniform
            out[first : first + n] += np.log(smoothed).sum(axis=1)
        if progress is not None:
            progress(n)
    return out


def bits_per_dim(log_likelihood: np.ndarray, dims: int) -> np.ndarray:
    """Mean negative log2-likelihood per dimension (axis 0 is images), from log-likelihoods in nats."""
    return -np.asarray(log_likelihood).mean(axis=0) / (dims * np.log(2.0))


def tune_smoothing(grid: np.ndarray, taus: tuple[float, ...] = TAUS, floors: tuple[float, ...] = FLOORS) -> Smoothing:
    """The (tau, floor) of a `log_likelihood_grid` with the highest mean log-likelihood (use held-out images)."""
    t, f = np.unravel_index(np.argmax(np.asarray(grid).mean(axis=0)), grid.shape[1:])
    return Smoothing(tau=float(taus[t]), floor=float(floors[f]))


def kernels_cached() -> bool:
    """Whether the likelihood's row kernel is compiled on disk (`npgen.rule.cpu.compiled_on_disk`)."""
    return compiled_on_disk(row_mixture)
