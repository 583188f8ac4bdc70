"""Measures of a run: novelty (distance to the nearest training image), composition and class fidelity."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from npgen.index import build_flat_index, search


def top_source_share(src_image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per sample (B, H, W) -> (most-used source image, its share of the pixels, number of distinct sources)."""
    flat = src_image.reshape(len(src_image), -1)
    top, share, distinct = (np.empty(len(flat), dtype) for dtype in (np.int64, np.float64, np.int64))
    for i, row in enumerate(flat):
        images, counts = np.unique(row, return_counts=True)
        top[i], share[i], distinct[i] = images[counts.argmax()], counts.max() / row.size, len(images)
    return top, share, distinct


def near_copy_threshold(train_images: np.ndarray, test_images: np.ndarray, percentile: float = 1.0) -> float:
    """The `percentile`-th percentile of test-to-train nearest-neighbour L2 distances (pixel units).

    A sample closer than this to a training image is closer than 99% of real unseen images are:
    it counts as a near-copy.
    """
    distances, _ = search(build_flat_index(train_images), test_images, 1)
    return float(np.percentile(distances[:, 0], percentile))


def knn_votes(index, train_labels: np.ndarray, images: np.ndarray, n_classes: int, k: int = 10) -> np.ndarray:
    """(N, n_classes) votes of the k nearest training images (raw-pixel L2) for each image."""
    _, ids = search(index, images, k)
    labels = np.asarray(train_labels)[ids]
    return np.stack([(labels == c).sum(axis=1) for c in range(n_classes)], axis=1)


def sample_summary(samples, database) -> pa.Table:
    """One row per sample: requested class, nearest training image and distance, source composition."""
    distance, nearest = search(database.nearest_index(), samples.images, 1)
    top, share, distinct = top_source_share(samples.src_image)
    return pa.table(
        {
            "sample": samples.sample_index.astype(np.int32),
            "class_label": samples.class_label.astype(np.int32),
            "nearest_image": nearest[:, 0].astype(np.int32),
            "nearest_distance": distance[:, 0].astype(np.float32),
            "top_source": top.astype(np.int32),
            "top_source_share": share,
            "n_sources": distinct.astype(np.int32),
            "mean_candidates": samples.n_candidates.reshape(len(top), -1).mean(axis=1),
        }
    )
