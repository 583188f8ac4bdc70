"""The semantic pool: block representations, incremental prefix distances, nearest images with tie-breaks."""

import numpy as np

from npgen.data.representation import block_sums
from npgen.rule.pool import add_block_row, nearest_pool
from npgen.rule.rng import sample_keys


def test_block_sums_by_hand():
    image = np.arange(1, 10, dtype=np.uint8).reshape(1, 3, 3, 1)
    assert block_sums(image, 1)[0].tolist() == [[1, 2, 3], [4, 5, 6], [7, 8, 9]]
    # 2x2 blocks of the zero-padded 4x4 image
    assert block_sums(image, 2)[0].tolist() == [[1 + 2 + 4 + 5, 3 + 6], [7 + 8, 9]]


def test_prefix_distances_accumulate_row_by_row(mnist_subset):
    rng = np.random.default_rng(0)
    images = mnist_subset.images[:50]
    reps = block_sums(images, 1)
    canvases = images[rng.choice(50, 3)]
    canvas_reps = block_sums(canvases, 1)
    allowed = np.arange(0, 50, 2, dtype=np.int64)
    distances = np.zeros((3, len(allowed)), np.int64)
    for row in range(10):
        add_block_row(canvas_reps[:, row], reps, row, allowed, distances)
    prefix = lambda a: a[:, :10].reshape(len(a), -1).astype(np.int64)
    expected = ((prefix(canvases)[:, None] - prefix(images[allowed])[None]) ** 2).sum(-1)
    np.testing.assert_array_equal(distances, expected)


def test_pool_is_nearest_first_and_ties_are_broken_per_sample():
    allowed = np.arange(100, 1100, dtype=np.int64)
    distances = np.zeros((2, 1000), np.int64)
    distances[:, 10:] = 1
    distances[:, 500] = 0  # images 100..109 and 600 are at distance 0, the other 989 tie at 1
    keys = sample_keys(0, np.array([0, 1]))
    pool = nearest_pool(distances, keys, allowed, 20)
    assert pool.shape == (2, 20)
    assert all(len(set(row)) == 20 for row in pool)
    # the 10 images at distance 0 (indices 100..109) and image 600 come first, in some order
    for row in pool:
        assert set(row[:11]) == set(range(100, 110)) | {600}
    assert set(pool[0, 11:]) != set(pool[1, 11:])  # 989 tied images: each sample draws its own
    np.testing.assert_array_equal(pool, nearest_pool(distances, keys, allowed, 20))
