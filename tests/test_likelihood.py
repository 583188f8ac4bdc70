"""Test-set likelihood under npgen's smoothed admissible-set distribution."""

from __future__ import annotations

import numpy as np
import pytest

from npgen.analysis.likelihood import bits_per_dim, kernel_table, log_likelihood_grid, tune_smoothing
from npgen.data.database import Database, WindowParams
from npgen.data.datasets import Dataset
from npgen.errors import NpgenError
from npgen.rule.sampler import Sampler


def test_every_kernel_is_a_distribution_over_the_256_levels():
    table = kernel_table((0.05, 1.0, 30.0))
    assert np.allclose(table.sum(axis=2), 1.0)
    assert table[0, 7, 7] == pytest.approx(1.0)  # a narrow kernel is a point mass
    assert table[1, 7, 8] == pytest.approx(table[1, 7, 6])
    assert table[2, 0].argmax() == 0  # renormalised at the edge, still centred there


def test_likelihood_of_a_constant_training_set_by_hand(tmp_path):
    # every candidate's centre value is 7, so p(v) = (1 - floor) * K_tau(v | 7) + floor / 256 at every pixel
    images = np.full((6, 5, 5, 1), 7, np.uint8)
    train = Dataset("toy", "train", images, np.zeros(6, np.int64), ("only",), "test")
    db = Database.build(train, tmp_path / "db", WindowParams(half_window=1))
    sampler = Sampler(db, pool_size=3, k_min=2)
    test = np.stack([np.full((5, 5, 1), 7, np.uint8), np.full((5, 5, 1), 9, np.uint8)])
    taus, floors = (0.05, 2.0), (0.01, 0.5)
    grid = log_likelihood_grid(sampler, test, taus, floors)
    kernel = kernel_table(taus)
    for t in range(2):
        for f, floor in enumerate(floors):
            for i, value in enumerate((7, 9)):
                expected = 25 * np.log((1 - floor) * kernel[t, 7, value] + floor / 256)
                assert grid[i, t, f] == pytest.approx(expected, rel=1e-9)
    assert tune_smoothing(grid[:1], taus, floors).tau == 0.05  # the exact value is best predicted by a point mass
    assert bits_per_dim(grid[:1], 25)[0, 0] == pytest.approx(-np.log2(0.99 + 0.01 / 256), rel=1e-9)


def test_real_mnist_is_better_than_uniform_and_independent_of_batch_size(mnist_db, data_root):
    from npgen.data.datasets import load_dataset

    held_out = load_dataset("mnist", data_root=data_root).images[-4:]  # not in the 2,000-image database
    grid = log_likelihood_grid(Sampler(mnist_db, batch_size=4), held_out)
    assert np.array_equal(grid, log_likelihood_grid(Sampler(mnist_db, batch_size=3), held_out))
    assert np.isfinite(grid).all()
    assert bits_per_dim(grid, 784).min() < 4.0  # uniform over 256 levels is 8 bits/dim


def test_images_that_do_not_match_the_database_are_refused(mnist_db):
    with pytest.raises(NpgenError, match="must be uint8 of shape"):
        log_likelihood_grid(Sampler(mnist_db), np.zeros((2, 32, 32, 3), np.uint8))
    with pytest.raises(NpgenError, match="floor"):
        log_likelihood_grid(Sampler(mnist_db), np.zeros((1, 28, 28, 1), np.uint8), floors=(0.0,))
