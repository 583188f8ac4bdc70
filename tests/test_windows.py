"""Window geometry and the weighted window distance."""

import numpy as np
import pytest

from npgen.errors import NpgenError
from npgen.windows import (
    causal_offsets,
    default_sigma,
    flat_offsets,
    gather_context,
    pad_images,
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
