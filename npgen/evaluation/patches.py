"""Patch statistics of single-image synthesis: how close the samples' patches are to one source image's, and how
much the samples differ from each other. Pure numpy.

`patch_distance` is a multi-scale sliced Wasserstein distance between 7x7 patch distributions (0 when the
samples hold exactly the source's patches, in any arrangement and any number of copies); `diversity` is the
per-pixel spread across the samples that SinGAN and GPNN report.
"""

from __future__ import annotations

import numpy as np

from npgen.errors import NpgenError

CHUNK_ROWS = 16384  # patches gathered and projected at a time
CHUNK_DIRECTIONS = 16  # directions whose 1-D distances are computed at a time


def patch_distance(
    images: np.ndarray,
    source: np.ndarray,
    patch: int = 7,
    scales: int = 3,
    projections: int = 128,
    max_patches: int = 262144,
    seed: int = 0,
) -> float:
    """Multi-scale sliced Wasserstein-1 distance between the patch distributions of `images` and `source`.

    `images` is (N, H, W, C) uint8 (N >= 1 samples of one source), `source` is (H', W', C) uint8; the sizes may
    differ. The definition, for s = 0 .. scales-1:

    1. Both are box-downsampled by f = 2^s: cropped to multiples of f, then each f x f block replaced by its mean,
       and divided by 255 (values in [0, 1]).
    2. Every `patch` x `patch` x C patch at stride 1 is a vector of patch*patch*C values: the pooled patches of
       the N samples form one set, the source's another. A set with more than `max_patches` patches is replaced
       by a random subset of exactly `max_patches`, without replacement.
    3. `projections` random unit directions (normal draws, normalised) are drawn; for each, both sets are projected
       on it and the 1-D Wasserstein-1 distance between the two empirical distributions is taken: the integral
       over t in (0, 1) of |A^-1(t) - B^-1(t)|, A^-1 and B^-1 being the step quantile functions of the sorted
       projections (the mean of |a_i - b_i| over sorted a, b when the counts are equal; computed exactly on the
       union of both quantile grids otherwise).
    4. The scale's value is the mean over the directions.

    The result is the mean over the scales, in units of intensity/255 along a unit direction of patch space.
    One numpy generator seeded with `seed` draws, per scale in order, the samples' subset, the source's subset
    and the directions, so the result is deterministic given the seed (and exact, without sampling noise, when
    neither set exceeds `max_patches`).
    """
    images, source = check_pair(images, source, "patch_distance")
    for name, value in (
        ("patch", patch),
        ("scales", scales),
        ("projections", projections),
        ("max_patches", max_patches),
    ):
        if not isinstance(value, int | np.integer) or value < 1:
            raise NpgenError(f"patch_distance: {name} must be a positive integer, got {value!r}")
    smallest = min(*images.shape[1:3], *source.shape[:2]) >> (scales - 1)
    if smallest < patch:
        raise NpgenError(
            f"patch_distance: images of {images.shape[1]}x{images.shape[2]} and a source of "
            f"{source.shape[0]}x{source.shape[1]} are too small for {patch}x{patch} patches at {scales} scales"
        )
    rng = np.random.default_rng(seed)
    per_scale = []
    for scale in range(scales):
        generated = box_downsample(images, 2**scale)
        reference = box_downsample(source[None], 2**scale)
        chosen_generated = patch_subset(generated.shape, patch, max_patches, rng)
        chosen_reference = patch_subset(reference.shape, patch, max_patches, rng)
        directions = rng.standard_normal((patch * patch * images.shape[3], projections))
        directions /= np.linalg.norm(directions, axis=0, keepdims=True)
        a = np.sort(project_patches(generated, patch, chosen_generated, directions), axis=0)
        b = np.sort(project_patches(reference, patch, chosen_reference, directions), axis=0)
        per_scale.append(float(np.mean(sorted_wasserstein(a, b))))
    return float(np.mean(per_scale))


def diversity(images: np.ndarray, source: np.ndarray) -> float:
    """SinGAN's and GPNN's diversity: the per-pixel standard deviation across the samples, over the source's.

    `images` is (N, H, W, C) uint8 with N >= 2 samples of one size; `source` is (H', W', C) uint8. The standard
    deviation across the N samples (population, ddof 0) is taken at every pixel and channel and averaged over
    pixels and channels, then divided by the standard deviation of all of the source's pixel values. 0 means
    identical samples; samples as different as independent draws of the source's pixel values give about 1.
    """
    images, source = check_pair(images, source, "diversity")
    if len(images) < 2:
        raise NpgenError(f"diversity needs at least 2 samples, got {len(images)}")
    spread = float(source.astype(np.float64).std())
    if spread == 0:
        raise NpgenError("diversity: the source has a single value everywhere, so its standard deviation is 0")
    return float(images.astype(np.float64).std(axis=0).mean()) / spread


def check_pair(images, source, caller: str) -> tuple[np.ndarray, np.ndarray]:
    """`images` as (N, H, W, C) uint8 and `source` as (H', W', C) uint8 with the same C, else a NpgenError."""
    if not isinstance(images, np.ndarray):
        shapes = {np.shape(image) for image in images}
        if len(shapes) > 1:
            raise NpgenError(f"{caller}: the samples differ in size ({', '.join(map(str, sorted(shapes)))})")
        images = np.stack(list(images)) if shapes else np.empty((0, 0, 0, 0), np.uint8)
    source = np.asarray(source)
    for name, array, ndim in (("images", images, 4), ("source", source, 3)):
        if array.dtype != np.uint8:
            raise NpgenError(f"{caller}: {name} must be uint8 pixels, got {array.dtype}")
        if array.ndim != ndim:
            layout = "(N, H, W, C)" if ndim == 4 else "(H, W, C)"
            raise NpgenError(f"{caller}: {name} must be {layout}, got shape {array.shape}")
    if images.size == 0 or source.size == 0:
        raise NpgenError(f"{caller}: empty input: images {images.shape}, source {source.shape}")
    if images.shape[3] != source.shape[2]:
        raise NpgenError(f"{caller}: images have {images.shape[3]} channels and the source {source.shape[2]}")
    return images, source


def box_downsample(images: np.ndarray, factor: int) -> np.ndarray:
    """(N, H, W, C) uint8 -> float32 in [0, 1], cropped to multiples of `factor` and averaged over factor^2 blocks."""
    n, height, width, channels = images.shape
    h, w = height // factor, width // factor
    blocks = images[:, : h * factor, : w * factor].reshape(n, h, factor, w, factor, channels)
    return (blocks.mean(axis=(2, 4), dtype=np.float64) / 255).astype(np.float32)


def patch_subset(shape: tuple[int, ...], patch: int, max_patches: int, rng: np.random.Generator) -> np.ndarray:
    """Flat indices of the patches used: all, or `max_patches` of them drawn without replacement (sorted)."""
    n, height, width, _ = shape
    count = n * (height - patch + 1) * (width - patch + 1)
    if count <= max_patches:
        return np.arange(count)
    return np.sort(rng.choice(count, size=max_patches, replace=False))


def project_patches(images: np.ndarray, patch: int, chosen: np.ndarray, directions: np.ndarray) -> np.ndarray:
    """The chosen patches of (N, H, W, C) `images` (flat indices over N x positions) times `directions` (D, K)."""
    windows = np.lib.stride_tricks.sliding_window_view(images, (patch, patch), axis=(1, 2))  # N, y, x, C, p, p
    out = np.empty((len(chosen), directions.shape[1]), np.float64)
    weights = directions.astype(np.float32)
    for start in range(0, len(chosen), CHUNK_ROWS):
        image, y, x = np.unravel_index(chosen[start : start + CHUNK_ROWS], windows.shape[:3])
        vectors = windows[image, y, x].reshape(len(image), -1)
        out[start : start + len(image)] = vectors @ weights
    return out


def sorted_wasserstein(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per column, the Wasserstein-1 distance between the empirical distributions of sorted columns a and b.

    a is (n, K) and b (m, K), each column sorted. With n == m this is the mean of |a - b|; otherwise the step
    quantile functions are compared on the union of the grids i/n and j/m, held as exact integers over lcm(n, m).
    """
    n, m = len(a), len(b)
    if n == m:
        return np.abs(a - b).mean(axis=0)
    common = np.lcm(n, m)
    starts = np.union1d(np.arange(n, dtype=np.int64) * (common // n), np.arange(m, dtype=np.int64) * (common // m))
    widths = np.diff(np.append(starts, common)) / common
    index_a, index_b = starts // (common // n), starts // (common // m)
    out = np.empty(a.shape[1])
    for start in range(0, a.shape[1], CHUNK_DIRECTIONS):
        columns = slice(start, start + CHUNK_DIRECTIONS)
        out[columns] = widths @ np.abs(a[index_a, columns] - b[index_b, columns])
    return out
