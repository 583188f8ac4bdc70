"""What a run's samples are made of, from their per-pixel provenance arrays (`compose`).

- **parts** (`npgen.analysis.parts`): per sample, the number of parts, their sizes, the share of pixels in
  parts of >= s pixels.
- **composition** per sample: distinct source images, the coverage curve (share of informative
  pixels explained by the top 1, 3, 10 sources), class consistency, displacement histogram.
- **reuse** per training image: pixels and samples that use it, the share of the training set used,
  and the Gini coefficient of per-training-image pixel counts (all training images, zeros included).
  For a class-conditional run both are over the training images of the requested class, the only
  ones it could draw from (`n_population` of them).

**Informative pixels.** A pixel whose admissible set was a large tie carries no provenance
information: on a blank context (MNIST background) every candidate window matches equally, the
sampler draws one of them uniformly, and which training image "won" is an artefact of the draw, not of
the image content. Such pixels fragment the parts into singletons and spread the pixel counts over
arbitrary sources. A pixel is *informative* when its admissible set had at most `max_candidates`
members (default 8 = twice the sampler's default k_min of 4). The distribution is bimodal: on
MNIST with the default parameters about 43% of pixels have exactly k_min = 4 candidates (the context
singled out a few close windows) and most of the rest have nearly the whole pool (~100, blank
background), with a thin tail in between, so the statistics barely depend on the exact cut.
Statistics are reported over all pixels and over informative pixels.

`compose` works on plain arrays, so it is testable without a run; the hot loops are small numba kernels.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numba
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from npgen.analysis.parts import canonical_provenance, find_parts
from npgen.errors import NpgenError

DEFAULT_MAX_CANDIDATES = 8
# s of "share of pixels in parts of >= s pixels": a 2x2 patch, the smallest 2-D piece. With the default
# sampler (k_min=4 keeps switching sources) parts are small: on 1,000 MNIST samples 91% are single pixels,
# 4.6% of pixels (11% of informative ones) lie in parts of >= 4 and almost none in parts of >= 16.
DEFAULT_MIN_PART_SIZE = 4
COVERAGE_TOPS = (1, 3, 10)
COMPOSITION_TABLES = ("per_sample", "parts", "sources", "reuse")
COMPOSITION_FILES = (
    *(f"{name}.parquet" for name in COMPOSITION_TABLES),
    "composition.json",
)  # what Composition.save writes


@numba.njit(cache=True)
def _count_distinct_sources(sorted_keys):
    """Per sample, from rows of keys src_image*2 + informative sorted ascending: (distinct sources, distinct informative sources)."""
    n_samples, n_pixels = sorted_keys.shape
    n_sources = np.zeros(n_samples, dtype=np.int64)
    n_informative = np.zeros(n_samples, dtype=np.int64)
    for b in range(n_samples):
        previous_image, previous_informative = -1, -1
        for i in range(n_pixels):
            image = sorted_keys[b, i] >> 1
            if image != previous_image:
                n_sources[b] += 1
            if sorted_keys[b, i] & 1 and image != previous_informative:
                n_informative[b] += 1
                previous_informative = image
            previous_image = image
    return n_sources, n_informative


@numba.njit(cache=True)
def _fill_source_counts(sorted_keys, first_source, source_image, source_pixels, source_informative):
    """Per (sample, source image) pixel and informative-pixel counts, into rows first_source[b]...; outputs zeroed."""
    n_samples, n_pixels = sorted_keys.shape
    for b in range(n_samples):
        row = first_source[b] - 1
        previous_image = -1
        for i in range(n_pixels):
            image = sorted_keys[b, i] >> 1
            if image != previous_image:
                row += 1
                source_image[row] = image
                previous_image = image
            source_pixels[row] += 1
            source_informative[row] += sorted_keys[b, i] & 1


@numba.njit(cache=True)
def _coverage_kernel(first_source, source_informative, tops, coverage):
    """coverage[b, j]: share of sample b's informative pixels from its tops[j] most-used sources (NaN if none)."""
    n_samples = first_source.shape[0] - 1
    for b in range(n_samples):
        counts = np.sort(source_informative[first_source[b] : first_source[b + 1]])[::-1]
        total = counts.sum()
        for j in range(tops.shape[0]):
            if total == 0:
                coverage[b, j] = np.nan
            else:
                coverage[b, j] = counts[: tops[j]].sum() / total


def gini(counts: np.ndarray) -> float:
    """Gini coefficient of non-negative counts: 0 when all are equal, (n-1)/n when one holds everything."""
    values = np.sort(np.asarray(counts, dtype=np.float64))
    n, total = len(values), values.sum()
    if n == 0 or total == 0:
        return 0.0
    return float(2.0 * np.dot(np.arange(1, n + 1), values) / (n * total) - (n + 1) / n)


@dataclass
class Composition:
    """What a run's samples are made of (see the module docstring for each measure).

    per_sample: one row per sample (the `_informative` columns count informative pixels only; coverage and
        class consistency are over informative pixels, NaN for a sample without any).
    parts: one row per part; dy, dx the displacement src - target; y0, x0, y1, x1 its inclusive bounding box.
    sources: one row per (sample, source image) with its pixel and informative-pixel counts.
    reuse: one row per training image used at least once: pixels, informative pixels, samples using it.
    displacement: Chebyshev |displacement| histograms, index = distance, over all and informative pixels.
    run: run-level numbers (Gini, share of the training set used, medians of the per-sample columns). Gini and
        share used are over the requested class's training images for a class-conditional run (n_population).
    part_ids: int32 (B, H, W) part id of every pixel.
    """

    per_sample: pa.Table
    parts: pa.Table
    sources: pa.Table
    reuse: pa.Table
    displacement: dict
    run: dict
    part_ids: np.ndarray = field(repr=False)

    def save(self, directory: str | os.PathLike) -> Path:
        """Write the tables as Parquet and the displacement histogram and run numbers as composition.json."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        for name in COMPOSITION_TABLES:
            pq.write_table(getattr(self, name), directory / f"{name}.parquet", compression="zstd")
        record = {"run": self.run, "displacement": self.displacement}
        (directory / "composition.json").write_text(json.dumps(record, indent=2) + "\n")
        return directory


def compose(
    src_image: np.ndarray,
    src_y: np.ndarray,
    src_x: np.ndarray,
    n_candidates: np.ndarray,
    labels: np.ndarray,
    requested_class: int | None = None,
    n_train: int | None = None,
    max_candidates: int = DEFAULT_MAX_CANDIDATES,
    min_part_size: int = DEFAULT_MIN_PART_SIZE,
) -> Composition:
    """The composition of B samples from their (B, H, W) provenance arrays.

    labels: the class of every training image (n_train = len(labels) unless given); requested_class: the
    class the run was conditioned on, or None (then class consistency is measured against each sample's
    majority source class).
    """
    src_image, src_y, src_x, n_candidates = canonical_provenance(src_image, src_y, src_x, n_candidates)
    labels = np.asarray(labels, dtype=np.int64)
    n_train = len(labels) if n_train is None else int(n_train)
    if max_candidates < 1 or min_part_size < 1:
        raise NpgenError(f"max_candidates and min_part_size must be >= 1, got {max_candidates} and {min_part_size}")
    if src_image.size and (src_image.min() < 0 or src_image.max() >= min(n_train, len(labels))):
        raise NpgenError(
            f"the provenance refers to training images outside 0..{n_train - 1}; the run is damaged, sample it again"
        )
    n_samples, height, width = src_image.shape
    n_pixels = height * width
    informative = n_candidates <= max_candidates
    samples = np.arange(n_samples)

    parts = find_parts(src_image, src_y, src_x, informative)
    part_sample = parts.table.column("sample").to_numpy()
    size = parts.table.column("size").to_numpy()
    informative_size = parts.table.column("informative_size").to_numpy()
    n_parts = np.diff(parts.first)
    big = size >= min_part_size
    n_informative = informative.reshape(n_samples, -1).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        share_big_informative = np.bincount(part_sample, big * informative_size, n_samples) / n_informative

    keys = np.sort(src_image.reshape(n_samples, -1).astype(np.int64) * 2 + informative.reshape(n_samples, -1), axis=1)
    n_sources, n_sources_informative = _count_distinct_sources(keys)
    first_source = np.concatenate([[0], np.cumsum(n_sources)]).astype(np.int64)
    source_image, source_pixels, source_informative = (np.zeros(first_source[-1], np.int64) for _ in range(3))
    _fill_source_counts(keys, first_source, source_image, source_pixels, source_informative)
    del keys
    coverage = np.empty((n_samples, len(COVERAGE_TOPS)))
    _coverage_kernel(first_source, source_informative, np.array(COVERAGE_TOPS, dtype=np.int64), coverage)
    source_sample = np.repeat(samples, n_sources)

    # class consistency over informative pixels, against the requested class or the majority source class
    n_classes = int(max(labels.max(initial=0), -1 if requested_class is None else requested_class)) + 1
    source_class = labels[source_image]
    class_pixels = np.bincount(source_sample * n_classes + source_class, source_informative, n_samples * n_classes)
    class_pixels = class_pixels.reshape(n_samples, n_classes)
    target = class_pixels.argmax(axis=1) if requested_class is None else np.full(n_samples, requested_class)
    with np.errstate(invalid="ignore", divide="ignore"):
        class_consistency = class_pixels[samples, target] / n_informative

    per_sample = pa.table(
        {
            "sample": samples.astype(np.int32),
            "n_parts": n_parts.astype(np.int32),
            "n_parts_informative": np.bincount(part_sample, informative_size > 0, n_samples).astype(np.int32),
            "mean_part_size": n_pixels / n_parts,
            "share_in_parts_ge_s": np.bincount(part_sample, big * size, n_samples) / n_pixels,
            "share_in_parts_ge_s_informative": share_big_informative,
            "n_sources": n_sources.astype(np.int32),
            "n_sources_informative": n_sources_informative.astype(np.int32),
            **{f"coverage_top{k}": coverage[:, j] for j, k in enumerate(COVERAGE_TOPS)},
            "class_consistency": class_consistency,
            "target_class": target.astype(np.int32),
            "informative_share": n_informative / n_pixels,
        }
    )
    sources = pa.table(
        {
            "sample": source_sample.astype(np.int32),
            "src_image": source_image.astype(np.int32),
            "src_class": source_class.astype(np.int32),
            "n_pixels": source_pixels.astype(np.int32),
            "n_informative": source_informative.astype(np.int32),
        }
    )

    image_pixels = np.bincount(source_image, source_pixels, n_train).astype(np.int64)
    image_informative = np.bincount(source_image, source_informative, n_train).astype(np.int64)
    image_samples = np.bincount(source_image, minlength=n_train)
    used = np.flatnonzero(image_pixels)
    reuse = pa.table(
        {
            "src_image": used.astype(np.int32),
            "src_class": labels[used].astype(np.int32),
            "n_pixels": image_pixels[used],
            "n_informative": image_informative[used],
            "n_samples": image_samples[used].astype(np.int32),
        }
    )

    chebyshev = np.maximum(np.abs(parts.table.column("dy").to_numpy()), np.abs(parts.table.column("dx").to_numpy()))
    length = int(chebyshev.max(initial=0)) + 1
    displacement = {
        "chebyshev": list(range(length)),
        "all_pixels": np.bincount(chebyshev, size, length).astype(np.int64).tolist(),
        "informative_pixels": np.bincount(chebyshev, informative_size, length).astype(np.int64).tolist(),
    }

    # reuse over the images the run could draw from: the requested class's, else the whole training split
    population = np.arange(n_train) if requested_class is None else np.flatnonzero(labels[:n_train] == requested_class)
    n_population = max(len(population), 1)
    run = {
        "n_samples": n_samples,
        "height": height,
        "width": width,
        "n_train": n_train,
        "max_candidates": max_candidates,
        "min_part_size": min_part_size,
        "requested_class": requested_class,
        "informative_share": float(informative.mean()) if informative.size else 0.0,
        "n_parts": int(parts.first[-1]),
        "n_population": len(population),
        "gini": gini(image_pixels[population]),
        "gini_informative": gini(image_informative[population]),
        "share_of_training_used": int(np.count_nonzero(image_pixels[population])) / n_population,
        "share_of_training_used_informative": int(np.count_nonzero(image_informative[population])) / n_population,
    }
    for name in per_sample.column_names:
        if name not in ("sample", "target_class"):
            values = per_sample.column(name).to_numpy().astype(np.float64)
            run[f"median_{name}"] = float(np.median(values[~np.isnan(values)])) if (~np.isnan(values)).any() else None
    return Composition(per_sample, parts.table, sources, reuse, displacement, run, parts.ids)
