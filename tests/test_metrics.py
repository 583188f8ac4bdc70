"""Distribution metrics on tiny inputs with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from npgen.errors import NpgenError
from npgen.evaluation.metrics import distribution_summary, frechet_distance, precision_recall


def points_with_moments(mean: np.ndarray, cov: np.ndarray, n: int = 500, seed: int = 0) -> np.ndarray:
    """n points whose sample mean and sample covariance are exactly `mean` and `cov`."""
    x = np.random.default_rng(seed).standard_normal((n, len(mean)))
    x -= x.mean(axis=0)
    x = x @ np.linalg.inv(np.linalg.cholesky(np.cov(x, rowvar=False))).T  # sample covariance now I
    return x @ np.linalg.cholesky(cov).T + mean


def test_frechet_distance_of_a_set_with_itself_is_zero():
    x = np.random.default_rng(1).standard_normal((300, 16)) * 3 + 1
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-8)


def test_frechet_distance_of_two_gaussians_matches_the_closed_form():
    # diagonal covariances: FD = |mu_a - mu_b|^2 + sum (sqrt(var_a) - sqrt(var_b))^2
    a = points_with_moments(np.array([0.0, 0.0, 1.0]), np.diag([1.0, 4.0, 9.0]), seed=2)
    b = points_with_moments(np.array([3.0, 0.0, -1.0]), np.diag([4.0, 4.0, 1.0]), seed=3)
    expected = (9 + 0 + 4) + (1 + 0 + 4)
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-9)


def test_frechet_distance_with_correlated_covariances_is_symmetric_and_scales():
    rng = np.random.default_rng(4)
    a = rng.standard_normal((400, 5)) @ rng.standard_normal((5, 5))
    b = rng.standard_normal((400, 5)) @ rng.standard_normal((5, 5)) + 2
    assert frechet_distance(a, b) == pytest.approx(frechet_distance(b, a), rel=1e-9)
    assert frechet_distance(2 * a, 2 * b) == pytest.approx(4 * frechet_distance(a, b), rel=1e-9)


def test_frechet_distance_refuses_bad_shapes():
    with pytest.raises(NpgenError, match="dimension"):
        frechet_distance(np.zeros((5, 3)), np.zeros((5, 4)))
    with pytest.raises(NpgenError, match="N >= 2"):
        frechet_distance(np.zeros((1, 3)), np.zeros((5, 3)))


def test_precision_and_recall_by_hand():
    real = np.array([[0.0], [1.0], [2.0], [3.0]])  # with k=1 every real ball has radius 1
    generated = np.array([[0.5], [10.0]])  # 0.5 is inside; 10 is not. Their k=1 radii are both 9.5
    precision, recall = precision_recall(real, generated, k=1)
    assert precision == 0.5
    assert recall == 1.0  # every real point lies within 9.5 of 0.5


def test_mode_collapse_keeps_precision_and_loses_recall():
    rng = np.random.default_rng(5)
    real = rng.standard_normal((400, 2))
    collapsed = real[np.argsort(np.linalg.norm(real - [1.5, 1.5], axis=1))[:40]]  # one corner of the real set
    precision, recall = precision_recall(real, collapsed, k=3)
    assert precision == 1.0
    assert recall < 0.3
    assert precision_recall(real, real, k=3) == (1.0, 1.0)
    assert precision_recall(real, real + 100, k=3) == (0.0, 0.0)


def test_distribution_summary():
    summary = distribution_summary(np.arange(101))
    assert summary["mean"] == 50 and summary["p1"] == 1 and summary["p50"] == 50 and summary["p90"] == 90
