"""Window geometry and the weighted window distance."""

import numpy as np
import pytest

from npgen.data.database import pad_images
from npgen.data.datasets import load_dataset
from npgen.errors import NpgenError
from npgen.rule.windows import (
    block_distances,
    causal_offsets,
    default_sigma,
    flat_offsets,
    gather_context,
    window_distance,
    window_weights,
)


def test_causal_offsets_are_the_rows_above_and_the_pixels_to_the_left():
    assert causal_offsets(1).tolist() == [[-1, -1], [-1, 0], [-1, 1], [0, -1]]
    offsets = causal_offsets(3)
    assert len(offsets) == 24
    assert all(dy < 0 or (dy == 0 and dx < 0) for dy, dx in offsets)
    assert offsets[:, 0].min() == -3 and np.abs(offsets[:, 1]).max() == 3


def test_half_window_must_be_positive():
    with pytest.raises(NpgenError, match="half_window"):
        causal_offsets(0)


def test_weights_are_normalised_gaussian_heaviest_next_to_the_pixel():
    weights = window_weights(3)
    assert weights.sum() == pytest.approx(1.0)
    offsets = causal_offsets(3)
    nearest = {tuple(o) for o in offsets[weights == weights.max()]}
    assert nearest == {(-1, 0), (0, -1)}
    assert default_sigma(3) == pytest.approx(7 / 6.4)
    sigma = default_sigma(1)
    expected = np.exp(-np.array([2, 1, 2, 1]) / (2 * sigma**2))
    np.testing.assert_allclose(window_weights(1), expected / expected.sum(), rtol=1e-6)


def test_padding_adds_rows_on_top_and_columns_on_both_sides():
    images = np.full((2, 4, 5, 3), 9, dtype=np.uint8)
    padded = pad_images(images, 2, 7)
    assert padded.shape == (2, 6, 9, 3)
    assert (padded[:, :2] == 7).all() and (padded[:, :, :2] == 7).all() and (padded[:, :, -2:] == 7).all()
    assert (padded[:, 2:, 2:-2] == 9).all()


def test_window_distance_by_hand():
    # 1-channel 2x3 image, h=1; context of (1, 1) is (0,0),(0,1),(0,2),(1,0).
    query = np.array([[[1], [2], [3]], [[4], [0], [0]]], dtype=np.uint8)
    source = np.array([[[1], [4], [3]], [[1], [0], [0]]], dtype=np.uint8)
    h, channels = 1, 1
    q, s = (pad_images(a[None], h, 0)[0].ravel() for a in (query, source))
    padded_width = 3 + 2 * h
    offsets = flat_offsets(h, padded_width, channels)
    centre = ((1 + h) * padded_width + 1 + h) * channels
    context = np.empty(4, np.float32)
    gather_context(q, centre, offsets, channels, context)
    assert context.tolist() == [1, 2, 3, 4]
    weights = np.array([0.1, 0.2, 0.3, 0.4], np.float32)
    # squared differences: 0, 4, 0, 9 -> 0.2*4 + 0.4*9
    assert window_distance(context, s, centre, offsets, weights, channels) == pytest.approx(0.8 + 3.6)
    partial = window_distance(context, s, centre, offsets, weights, channels, 0.5)
    assert partial > 0.5 and partial == pytest.approx(0.8)


def test_block_distances_are_window_distances_until_every_window_is_over_the_limit(all_data_root):
    """The sampler scores an image's windows as a block: every window at or under the limit must get the very
    float window_distance gives it (real CIFAR-10 contexts and windows, radius 1 and 2, at a border too), and a
    window left with a partial sum must be over the limit."""
    images = load_dataset("cifar10", data_root=all_data_root).images[:40]
    half_window, channels, (height, width) = 3, 3, images.shape[1:3]
    padded = pad_images(images, half_window, 0).reshape(len(images), -1)
    padded_width = width + 2 * half_window
    weights = window_weights(half_window)
    heaviest_first = np.argsort(-weights, kind="stable")
    offsets, weights = flat_offsets(half_window, padded_width, channels)[heaviest_first], weights[heaviest_first]
    context = np.empty(len(offsets) * channels, np.float32)
    rng = np.random.default_rng(0)
    partial = complete = 0
    for y, x, radius in [(10, 12, 1), (20, 5, 2), (0, 0, 1), (31, 31, 1), (16, 16, 0)]:
        first_y, first_x = max(0, y - radius), max(0, x - radius)
        rows, columns = min(height, y + radius + 1) - first_y, min(width, x + radius + 1) - first_x
        corner = ((first_y + half_window) * padded_width + first_x + half_window) * channels
        gather_context(
            padded[0], ((y + half_window) * padded_width + x + half_window) * channels, offsets, channels, context
        )
        for source in padded[1:]:
            exact = [
                window_distance(context, source, corner + (r * padded_width + j) * channels, offsets, weights, channels)
                for r in range(rows)
                for j in range(columns)
            ]
            block = (rows, columns, padded_width * channels)
            out = np.empty(rows * columns)
            block_distances(context, source, corner, block, offsets, weights, channels, np.inf, out)
            assert out.tolist() == exact
            limit = min(exact) * rng.uniform(0.5, 1.5)  # under every window (partial sums) or over some
            block_distances(context, source, corner, block, offsets, weights, channels, limit, out)
            for value, true in zip(out, exact):
                if true <= limit:
                    assert value == true
                    complete += 1
                else:
                    assert limit < value <= true
                    partial += value < true
    assert partial > 0 and complete > 0  # both cases were met
