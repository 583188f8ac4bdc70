"""Classes of a flat image folder (images, no class subfolders): an integer k-means of the images' block sums.

Exact integer arithmetic and a fixed-seed PCG64 draw, so the clusters are the same on every machine and
`npgen verify` can derive them again.
"""

from __future__ import annotations

import numpy as np

FLAT_CLUSTERS = 10  # clusters of a flat image folder at most
MIN_CLUSTER_SIZE = 20  # images per cluster at least: enough for the presets' source budgets (10% and 20%)
CLUSTER_ITERATIONS = 30  # Lloyd iterations at most
CLUSTER_SEED = 0


def cluster_block(height: int, width: int) -> int:
    """Block size of the representation a flat folder is clustered in: about 8 x 8 blocks per image."""
    return max(1, min(height, width) // 8)


def cluster_labels(images: np.ndarray) -> np.ndarray:
    """Semantic clusters of unlabelled images: k-means over s x s block sums (`cluster_block`), no labels used.

    k starts at FLAT_CLUSTERS (at most one per MIN_CLUSTER_SIZE images) and drops by one while a cluster
    has fewer than MIN_CLUSTER_SIZE images, so that every cluster can be sampled on its own. Everything is
    integer arithmetic (squared distances in int64, centroids rounded to integers) and the k-means++
    seeding draws from numpy's PCG64 with a fixed seed, so the clusters are the same on every machine,
    whatever the thread count: `npgen verify` re-derives them. Ties go to the lower cluster; clusters are
    numbered by decreasing size (ties: by their first image). Returns int64 (N,) in 0..k-1, each non-empty.
    """
    from npgen.data.representation import block_sums

    n = len(images)
    x = block_sums(np.asarray(images), cluster_block(images.shape[1], images.shape[2])).reshape(n, -1)
    x = x.astype(np.int64)
    k = max(1, min(FLAT_CLUSTERS, n // MIN_CLUSTER_SIZE))
    while True:
        labels = _kmeans(x, k)
        counts = np.bincount(labels, minlength=k)
        if k == 1 or counts.min() >= MIN_CLUSTER_SIZE:
            break
        k -= 1
    first_image = np.array([np.flatnonzero(labels == c)[0] if counts[c] else n for c in range(k)])
    order = np.lexsort((first_image, -counts))  # largest first
    renumber = np.empty(k, np.int64)
    renumber[order] = np.arange(k)
    return renumber[labels]


def _kmeans(x: np.ndarray, k: int) -> np.ndarray:
    """Cluster of each row of int64 x: k-means++ seeding (PCG64, CLUSTER_SEED), then Lloyd, exactly in integers."""
    n = len(x)
    norms = (x * x).sum(axis=1)
    rng = np.random.default_rng(CLUSTER_SEED)
    chosen = [0]
    nearest = norms - 2 * x @ x[0] + norms[0]
    for _ in range(1, k):  # each next centre drawn in proportion to the squared distance to the chosen ones
        total = int(nearest.sum())
        if total == 0:
            pick = int(rng.integers(n))
        else:
            pick = int(np.searchsorted(np.cumsum(nearest), rng.random() * total, "right"))
        chosen.append(min(pick, n - 1))
        nearest = np.minimum(nearest, norms - 2 * x @ x[chosen[-1]] + norms[chosen[-1]])
    centres = x[chosen]
    labels = np.full(n, -1, np.int64)
    for _ in range(CLUSTER_ITERATIONS):
        distances = norms[:, None] - 2 * x @ centres.T + (centres * centres).sum(axis=1)[None, :]
        new_labels = distances.argmin(axis=1)  # the first of equal minima: the lower cluster
        if np.array_equal(new_labels, labels):
            break
        labels = new_labels
        counts = np.bincount(labels, minlength=k)
        for c in np.flatnonzero(counts):  # an emptied cluster keeps its centre
            total = x[labels == c].sum(axis=0)
            centres[c] = (2 * total + counts[c]) // (2 * counts[c])  # the mean, rounded half up
    return labels


def cluster_names(k: int) -> tuple[str, ...]:
    """Class names of k clusters: cluster-0, cluster-1, ... (numbered by decreasing size)."""
    return tuple(f"cluster-{c}" for c in range(k))
