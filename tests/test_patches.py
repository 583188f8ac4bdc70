"""npgen.evaluation.patches: the patch distance and diversity of single-image synthesis, on real CIFAR-10 pixels."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import require_data

from npgen.data.datasets import load_dataset
from npgen.errors import NpgenError
from npgen.evaluation.patches import diversity, patch_distance, sorted_wasserstein


@pytest.fixture(scope="module")
def source() -> np.ndarray:
    """A 96x96 RGB mosaic of nine real CIFAR-10 training images (3 x 3)."""
    images = load_dataset("cifar10", data_root=require_data("cifar10")).images[:9]
    return images.reshape(3, 3, 32, 32, 3).swapaxes(1, 2).reshape(96, 96, 3).copy()


def noised(image: np.ndarray, sigma: float) -> np.ndarray:
    """`image` plus a fixed Gaussian noise field scaled to `sigma`, clipped to uint8."""
    noise = np.random.default_rng(1).standard_normal(image.shape)
    return np.clip(image + sigma * noise, 0, 255).round().astype(np.uint8)


def blurred(image: np.ndarray, width: int) -> np.ndarray:
    """`image` box-blurred over width x width pixels (edges repeated)."""
    pad = width // 2
    padded = np.pad(image.astype(np.float64), ((pad, pad), (pad, pad), (0, 0)), mode="edge")
    windows = np.lib.stride_tricks.sliding_window_view(padded, (width, width), axis=(0, 1))
    return windows.mean(axis=(-2, -1)).round().astype(np.uint8)


def tile_shuffled(image: np.ndarray, tile: int, seed: int) -> np.ndarray:
    """`image` cut into tile x tile squares put back in a random order."""
    n = image.shape[0] // tile
    tiles = image.reshape(n, tile, n, tile, -1).swapaxes(1, 2).reshape(n * n, tile, tile, -1)
    tiles = tiles[np.random.default_rng(seed).permutation(n * n)]
    return tiles.reshape(n, n, tile, tile, -1).swapaxes(1, 2).reshape(image.shape)


def test_the_source_against_itself_is_at_zero_in_any_number_of_copies(source):
    assert patch_distance(source[None], source) == 0.0
    assert patch_distance(np.stack([source] * 3), source) < 1e-6  # counts differ: quantile matching


def test_distance_grows_with_noise_and_with_blur(source):
    noise = [patch_distance(noised(source, sigma)[None], source) for sigma in (4, 8, 16, 32, 64)]
    blur = [patch_distance(blurred(source, width)[None], source) for width in (2, 3, 5, 9)]
    assert np.all(np.diff(noise) > 0) and noise[0] > 0, noise
    assert np.all(np.diff(blur) > 0) and blur[0] > 0, blur


def test_shuffled_pixels_are_far_and_shuffled_tiles_are_near(source):
    rng = np.random.default_rng(0)
    pixels = source.reshape(-1, 3)[rng.permutation(96 * 96)].reshape(source.shape)
    far = patch_distance(pixels[None], source)
    near = patch_distance(np.stack([tile_shuffled(source, 32, seed) for seed in range(3)]), source)
    assert near < far / 5, (near, far)  # about 6x apart here; the seams are most of the tiles' distance


def test_deterministic_for_a_seed_and_the_seed_only_moves_it_by_sampling_noise(source):
    images = np.stack([noised(source, 20), blurred(source, 3)])
    first = patch_distance(images, source, max_patches=2000, seed=3)
    assert patch_distance(images, source, max_patches=2000, seed=3) == first
    other = patch_distance(images, source, max_patches=2000, seed=4)
    assert other != first and abs(other - first) < 0.2 * first


def test_one_dimensional_wasserstein_with_unequal_counts_is_exact():
    # {0, 1} against {0, 1, 2}: the integral of |F_a - F_b| is 1/6 on [0, 1) plus 1/3 on [1, 2)
    a, b = np.array([[0.0], [1.0]]), np.array([[0.0], [1.0], [2.0]])
    assert sorted_wasserstein(a, b)[0] == pytest.approx(0.5)
    assert sorted_wasserstein(b, a)[0] == pytest.approx(0.5)
    assert sorted_wasserstein(np.array([[0.0], [0.0], [3.0], [3.0]]), np.array([[0.0], [3.0]]))[0] == 0.0


def test_diversity_is_zero_for_identical_samples_and_positive_for_different_crops(source):
    assert diversity(np.stack([source] * 4), source) == 0.0
    crops = np.stack([source[y : y + 64, x : x + 64] for y, x in ((0, 0), (32, 32), (0, 32), (32, 0))])
    assert diversity(crops, source) > 0.3
    rng = np.random.default_rng(0)
    permutations = np.stack([source.reshape(-1, 3)[rng.permutation(96 * 96)].reshape(source.shape) for _ in range(8)])
    assert 0.85 < diversity(permutations, source) < 1.0  # independent draws: the source's std times sqrt(7/8)


def test_bad_input_is_a_one_line_error(source):
    cases = [
        (patch_distance, (source[None].astype(np.float32), source), "uint8"),
        (patch_distance, (source, source), r"\(N, H, W, C\)"),
        (patch_distance, (source[None], source[None]), r"\(H, W, C\)"),
        (patch_distance, (source[None, ..., :1], source), "channels"),
        (patch_distance, (source[None, :20, :20], source), "too small"),
        (patch_distance, ([source, source[:64]], source), "differ in size"),
        (diversity, (source[None], source), "at least 2"),
        (diversity, ([source, source[:, :64]], source), "differ in size"),
        (diversity, (np.stack([source] * 2), np.zeros_like(source)), "single value"),
    ]
    for function, arguments, message in cases:
        with pytest.raises(NpgenError, match=message) as caught:
            function(*arguments)
        assert "\n" not in str(caught.value)
    with pytest.raises(NpgenError, match="projections"):
        patch_distance(source[None], source, projections=0)
