"""Which samples and pixels the run report shows as examples: the most- and least-original samples, and for each
one pixel worth tracing (`example_samples`, `traced_pixel`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from npgen.analysis.tracer import Tracer


@dataclass(frozen=True)
class ExampleSample:
    """A sample shown in the report: `kind` is "most original" or "least original"; the nearest training image
    and its L2 distance (from samples.parquet) are what ranks it."""

    sample: int
    kind: str
    nearest_image: int | None
    nearest_distance: float | None


@dataclass(frozen=True)
class TracedPixel:
    """The pixel the report traces in a sample, and why it was chosen."""

    y: int
    x: int
    part_size: int
    part_informative_size: int
    src_image: int
    n_candidates: int
    distance: float


def example_samples(summary: pa.Table | None, n_samples: int, n_examples: int) -> list[ExampleSample]:
    """The ceil(n/2) most original samples (farthest from their nearest training image), then the floor(n/2) least
    original (nearest), each sample once; without a readable distance, the first samples in order."""
    n_examples = min(int(n_examples), int(n_samples))
    if n_examples <= 0:
        return []
    distances = np.full(n_samples, np.nan)
    nearest = np.full(n_samples, -1, dtype=np.int64)
    if summary is not None and {"sample", "nearest_distance", "nearest_image"} <= set(summary.column_names):
        rows = summary.column("sample").to_numpy()
        distances[rows] = summary.column("nearest_distance").to_numpy(zero_copy_only=False)
        nearest[rows] = summary.column("nearest_image").to_numpy(zero_copy_only=False)
    if np.isnan(distances).all():
        return [ExampleSample(i, "first", None, None) for i in range(n_examples)]
    order = np.lexsort((np.arange(n_samples), -np.nan_to_num(distances, nan=-np.inf)))  # farthest first, then index
    n_most = (n_examples + 1) // 2
    chosen = [(int(i), "most original") for i in order[:n_most]]
    least = [int(i) for i in order[::-1] if not np.isnan(distances[i])]
    chosen += [(i, "least original") for i in least if i not in dict(chosen)][: n_examples - n_most]
    return [
        ExampleSample(i, kind, int(nearest[i]) if nearest[i] >= 0 else None, float(distances[i])) for i, kind in chosen
    ]


def traced_pixel(tracer: Tracer, sample: int) -> TracedPixel:
    """An informative pixel to trace: in the sample's largest part by informative pixels (then by size), the
    informative pixel with the most admissible candidates (then the largest distance, then raster order). A sample
    without informative pixels gives the pixel with the most candidates in its largest part."""
    rows = tracer.provenance_arrays(["n_candidates", "distance"], sample)
    candidates, distance = rows["n_candidates"][0], rows["distance"][0]
    ids = tracer.part_ids(sample)
    parts = tracer.sample_parts(sample).to_pydict()
    best = max(
        range(len(parts["part"])),
        key=lambda i: (parts["informative_size"][i], parts["size"][i], -parts["part"][i]),
    )
    in_part = ids == parts["part"][best]
    informative = in_part & (candidates <= tracer.max_candidates) & (candidates >= 0)
    pool = informative if informative.any() else in_part
    ys, xs = np.nonzero(pool)
    order = np.lexsort((xs, ys, -np.nan_to_num(distance[ys, xs], nan=-1.0), -candidates[ys, xs]))
    y, x = int(ys[order[0]]), int(xs[order[0]])
    return TracedPixel(
        y,
        x,
        int(parts["size"][best]),
        int(parts["informative_size"][best]),
        int(parts["src_image"][best]),
        int(candidates[y, x]),
        float(distance[y, x]),
    )
