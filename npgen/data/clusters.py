"""Classes of a flat image folder (images, no class subfolders): an integer k-means of the images, in the
representation and with the number of clusters that separate them best (mean silhouette), or a given number.

Exact integer arithmetic and a fixed-seed PCG64 draw, so the clusters are the same on every machine and
`npgen verify` can derive them again.
"""

from __future__ import annotations

import numpy as np

from npgen.errors import NpgenError

FLAT_CLUSTERS = 10  # clusters of a flat image folder at most, when their number is chosen by measurement
MIN_CLUSTER_SIZE = 10  # images per chosen cluster at least: ten sources fill a sample under MNIST's 10% budget
CLUSTER_ITERATIONS = 30  # Lloyd iterations at most
CLUSTER_SEED = 0
SILHOUETTE_SAMPLE = 1000  # images the silhouette is measured on at most (a fixed-seed subset of a larger folder)
MIN_SILHOUETTE = 0.1  # below this mean silhouette no split separates the images: one cluster
CONTENT_GRID = 16  # the content representation: a CONTENT_GRID x CONTENT_GRID sampling of the content's box
REPRESENTATIONS = ("blocks", "content")
CLUSTER_METHOD = "silhouette-blocks-content-1"  # in a flat folder's cache key: change it when the clusters change


def cluster_block(height: int, width: int) -> int:
    """Block size of the representation a flat folder is clustered in: about 8 x 8 blocks per image."""
    return max(1, min(height, width) // 8)


def cluster_features(images: np.ndarray, representation: str) -> np.ndarray:
    """(N, D) int64 features of (N, H, W, C) uint8 images that a flat folder is clustered in.

    "blocks": s x s block sums (`cluster_block`): where the ink is. "content": each image cropped to the box of the
    pixels that differ from its border's median colour (the whole image when none or all do), sampled on a
    CONTENT_GRID x CONTENT_GRID grid of that box's cell centres, channels summed: what the content looks like, whatever its size and
    position (a small circle and a large one alike, a circle and a square apart)."""
    from npgen.data.representation import block_sums

    images = np.asarray(images)
    n, height, width, _ = images.shape
    if representation == "blocks":
        return block_sums(images, cluster_block(height, width)).reshape(n, -1).astype(np.int64)
    if representation != "content":
        raise ValueError(f"unknown cluster representation {representation!r}; one of {', '.join(REPRESENTATIONS)}")
    cells = 2 * np.arange(CONTENT_GRID) + 1
    out = np.empty((n, CONTENT_GRID * CONTENT_GRID), np.int64)
    for i, image in enumerate(images):
        border = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])
        background = np.sort(border, axis=0)[len(border) // 2]
        ys, xs = np.nonzero((image != background).any(axis=-1))
        y0, y1, x0, x1 = (ys.min(), ys.max() + 1, xs.min(), xs.max() + 1) if len(ys) else (0, height, 0, width)
        rows = y0 + cells * (y1 - y0) // (2 * CONTENT_GRID)
        columns = x0 + cells * (x1 - x0) // (2 * CONTENT_GRID)
        out[i] = image[rows][:, columns].sum(axis=-1, dtype=np.int64).reshape(-1)  # the channels summed
    return out


def silhouette(x: np.ndarray, labels: np.ndarray) -> float:
    """Mean silhouette of a clustering of the rows of x (Euclidean): for each row, (b - a) / max(a, b), a its mean
    distance to its own cluster, b to the nearest other cluster (0 for a row alone in its cluster). Measured on a
    fixed-seed subset of SILHOUETTE_SAMPLE rows when there are more."""
    n = len(x)
    if n > SILHOUETTE_SAMPLE:
        rows = np.sort(np.random.default_rng(CLUSTER_SEED).choice(n, SILHOUETTE_SAMPLE, replace=False))
        x, labels = x[rows], labels[rows]
    norms = (x * x).sum(axis=1)
    distances = np.sqrt(np.maximum(norms[:, None] - 2 * x @ x.T + norms[None, :], 0).astype(np.float64))
    k = int(labels.max()) + 1
    one_hot = np.eye(k)[labels]
    counts = one_hot.sum(axis=0)
    sums = distances @ one_hot  # (n, k): summed distance of each row to each cluster
    own = counts[labels] - 1
    a = np.where(own > 0, sums[np.arange(len(x)), labels] / np.maximum(own, 1), 0.0)
    means = np.where(counts[None, :] > 0, sums / np.maximum(counts[None, :], 1), np.inf)
    means[np.arange(len(x)), labels] = np.inf
    b = means.min(axis=1)
    scores = np.where((own > 0) & np.isfinite(b), (b - a) / np.maximum(np.maximum(a, b), 1e-300), 0.0)
    return float(scores.mean())


def choose_clusters(images: np.ndarray) -> tuple[str, int, float]:
    """(representation, k, mean silhouette) of the best-separated clustering of a flat folder: every representation
    of REPRESENTATIONS and every k from 2 to FLAT_CLUSTERS whose clusters all hold MIN_CLUSTER_SIZE images; one
    cluster ("blocks", 1, 0.0) when none reaches MIN_SILHOUETTE. Ties go to the fewer clusters, then to "blocks"."""
    best = ("blocks", 1, 0.0)
    n = len(images)
    for representation in REPRESENTATIONS:
        x = cluster_features(images, representation)
        for k in range(2, min(FLAT_CLUSTERS, n // MIN_CLUSTER_SIZE) + 1):
            labels = _kmeans(x, k)
            if np.bincount(labels, minlength=k).min() < MIN_CLUSTER_SIZE:
                continue
            score = round(silhouette(x, labels), 9)  # rounded: a last-bit difference never changes the choice
            if score >= MIN_SILHOUETTE and score > best[2]:
                best = (representation, k, score)
    return best


def cluster_labels(images: np.ndarray, k: int | None = None, representation: str | None = None) -> np.ndarray:
    """Semantic clusters of unlabelled images: k-means in a label-free representation (`cluster_features`).

    With k and representation left out, both are chosen by measurement (`choose_clusters`: the largest mean
    silhouette). A given k (`npgen build|sample --clusters K`: 1 to the number of images, every cluster non-empty,
    else an NpgenError) is used as it is, in the given representation or the one that separates k clusters best. Everything is integer arithmetic (squared distances in int64, centroids
    rounded to integers) and the k-means++ seeding draws from numpy's PCG64 with a fixed seed, so the clusters are
    the same on every machine, whatever the thread count: `npgen verify` re-derives them. Ties go to the lower
    cluster; clusters are numbered by decreasing size (ties: by their first image). Returns int64 (N,) in 0..k-1.
    """
    n = len(images)
    if k is None:
        representation, k, _ = choose_clusters(images)
    if not 1 <= k <= n:
        raise NpgenError(f"--clusters {k}: a flat folder of {n} images takes 1 to {n} clusters")
    if representation is None:
        scored = []
        for candidate in REPRESENTATIONS:
            x = cluster_features(images, candidate)
            labels = _kmeans(x, k)
            scored.append((round(silhouette(x, labels), 9) if k > 1 else 0.0, -len(scored), labels))
        labels = max(scored, key=lambda t: t[:2])[2]
    else:
        labels = _kmeans(cluster_features(images, representation), k)
    counts = np.bincount(labels, minlength=k)
    if not counts.all():
        raise NpgenError(f"--clusters {k}: k-means left a cluster of these images empty; choose fewer clusters")
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
