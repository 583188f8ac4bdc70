"""Measures of a run: novelty (distance to the nearest training image), composition, class fidelity,
and distribution distances between feature sets (Frechet distance, k-NN precision and recall).

The feature-space measures take any (N, D) features; `npgen.evaluation.features` supplies those of a small
classifier trained here. They are not comparable with published Inception FIDs.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from npgen.errors import NpgenError

SEARCH_CHUNK = 1000  # test images searched at once by near_copy_threshold (equal chunks: the same BLAS path)

# npgen.data.index (FAISS) is imported inside the functions that search, so that reading a run stays free of FAISS.


def top_source_share(src_image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per sample (B, H, W) -> (most-used source image, its share of the pixels, number of distinct sources).

    A pixel with src_image -1 (given, not generated: a completion's input) counts towards no source.
    """
    from npgen.data.nearest import source_ranking

    top, top_count, distinct = source_ranking(src_image, 1)
    return top[:, 0], top_count / np.prod(src_image.shape[1:]), distinct


def near_copy_threshold(
    train_index, test_images: np.ndarray, percentile: float = 1.0, progress: Callable[[int], None] | None = None
) -> float:
    """The `percentile`-th percentile of test-to-train nearest-neighbour L2 distances (pixel units).

    `train_index` is an exact index over the training images (`build_image_index`, or a database's
    `nearest_index()`). A sample closer than this to a training image is closer than 99% of real
    unseen images are: it counts as a near-copy. `progress(k)` is told after each chunk of k test images.
    """
    from npgen.data.index import search

    distances = []
    for rows in np.array_split(np.arange(len(test_images)), -(-len(test_images) // SEARCH_CHUNK)):  # equal chunks
        distances.append(search(train_index, test_images[rows[0] : rows[-1] + 1], 1)[0][:, 0])
        if progress is not None:
            progress(len(rows))
    return float(np.percentile(np.concatenate(distances), percentile))


def knn_votes(index, train_labels: np.ndarray, images: np.ndarray, n_classes: int, k: int = 10) -> np.ndarray:
    """(N, n_classes) votes of the k nearest training images (raw-pixel L2) for each image."""
    from npgen.data.index import search

    _, ids = search(index, images, k)
    labels = np.asarray(train_labels)[ids]
    return np.stack([(labels == c).sum(axis=1) for c in range(n_classes)], axis=1)


def _moments(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise NpgenError(f"need an (N, D) feature array with N >= 2, got shape {x.shape}")
    return x.mean(axis=0), np.cov(x, rowvar=False)


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def frechet_distance(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to two feature sets ("FID" in a given feature space).

    ||mu_a - mu_b||^2 + tr(S_a + S_b - 2 (S_a^1/2 S_b S_a^1/2)^1/2); the matrix square roots are taken
    by symmetric eigendecomposition, so the result is real and >= 0 up to rounding.
    """
    mu_a, cov_a = _moments(features_a)
    mu_b, cov_b = _moments(features_b)
    if mu_a.shape != mu_b.shape:
        raise NpgenError(f"feature sets differ in dimension: {mu_a.shape[0]} vs {mu_b.shape[0]}")
    root_a = _psd_sqrt(cov_a)
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(root_a @ cov_b @ root_a), 0, None)).sum()
    return float(max(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * cross, 0.0))


def _within_any_ball(points: np.ndarray, centres: np.ndarray, radii: np.ndarray, chunk: int = 1024) -> np.ndarray:
    """Whether each point lies within radii[j] of some centre j (Euclidean)."""
    centre_norms = (centres**2).sum(axis=1)
    inside = np.empty(len(points), dtype=bool)
    for first in range(0, len(points), chunk):
        block = points[first : first + chunk]
        squared = (block**2).sum(axis=1)[:, None] + centre_norms[None, :] - 2 * block @ centres.T
        inside[first : first + chunk] = (squared <= (radii**2)[None, :] * (1 + 1e-9) + 1e-9).any(axis=1)
    return inside


def precision_recall(real: np.ndarray, generated: np.ndarray, k: int = 3) -> tuple[float, float]:
    """k-NN manifold precision and recall (Kynkaanniemi et al., 2019).

    Each point's manifold ball has the radius of its k-th nearest neighbour in its own set.
    Precision: share of generated points inside some ball of a real point (quality).
    Recall: share of real points inside some ball of a generated point (coverage).
    """
    real, generated = (np.ascontiguousarray(x, dtype=np.float64) for x in (real, generated))
    if real.ndim != 2 or generated.ndim != 2 or real.shape[1] != generated.shape[1]:
        raise NpgenError(f"need two (N, D) feature arrays of one dimension, got {real.shape} and {generated.shape}")
    if min(len(real), len(generated)) <= k:
        raise NpgenError(f"precision/recall with k={k} needs more than {k} points in each set")
    from npgen.data.index import build_flat_index, search

    radii = {}
    for name, points in (("real", real), ("generated", generated)):
        distances, _ = search(build_flat_index(points.astype(np.float32)), points, k + 1)
        radii[name] = distances[:, k].astype(np.float64)  # column 0 is the point itself
    precision = _within_any_ball(generated, real, radii["real"]).mean()
    recall = _within_any_ball(real, generated, radii["generated"]).mean()
    return float(precision), float(recall)


def distribution_summary(values: np.ndarray) -> dict:
    """Mean and the 1st, 10th, 50th and 90th percentiles, for reporting a distribution and not only its mean."""
    values = np.asarray(values, dtype=np.float64)
    return {"mean": float(values.mean()), **{f"p{q}": float(np.percentile(values, q)) for q in (1, 10, 50, 90)}}
