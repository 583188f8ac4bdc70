"""The tracer: what a run's samples are made of, read back from their per-pixel provenance.

Every generated pixel records the training image, position and admissible-set size it was copied
from (`store.py`). From that the tracer derives:

- **parts**: a part is a maximal 4-connected set of pixels of one sample copied from the same
  training image with the same displacement (src_y - y, src_x - x), i.e. a piece of a training image
  pasted whole. Per sample: number of parts, their sizes, share of pixels in parts of >= s pixels.
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

`compose` computes everything from plain arrays, so it is testable without a run; `Tracer` opens a
run, checks its dataset against the manifest's SHA-256, and answers per-pixel and per-sample queries.
The hot loops are small numba kernels over dense (B, H, W) arrays; there are no Python loops over
pixels or samples.
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

from npgen.errors import NpgenError
from npgen.runs.store import PROVENANCE_SCHEMA, Run

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

# ---- kernels (pure, no I/O) ----


@numba.njit(cache=True)
def _label_parts_kernel(src_image, src_y, src_x, labels, n_parts):
    """Flood-fill the parts of every sample: labels[b] gets 0..n_parts[b]-1 in raster order of first pixel."""
    n_samples, height, width = src_image.shape
    stack = np.empty(height * width, dtype=np.int64)
    for b in range(n_samples):
        labels[b, :, :] = -1
        next_id = 0
        for y0 in range(height):
            for x0 in range(width):
                if labels[b, y0, x0] >= 0:
                    continue
                image = src_image[b, y0, x0]
                dy = np.int64(src_y[b, y0, x0]) - y0
                dx = np.int64(src_x[b, y0, x0]) - x0
                labels[b, y0, x0] = next_id
                stack[0] = y0 * width + x0
                top = 1
                while top > 0:  # every pixel is labelled when pushed, so the stack never exceeds H*W
                    top -= 1
                    y, x = stack[top] // width, stack[top] % width
                    for k in range(4):  # up, down, left, right
                        ny = y - 1 if k == 0 else (y + 1 if k == 1 else y)
                        nx = x - 1 if k == 2 else (x + 1 if k == 3 else x)
                        if 0 <= ny < height and 0 <= nx < width and labels[b, ny, nx] < 0:
                            if (
                                src_image[b, ny, nx] == image
                                and np.int64(src_y[b, ny, nx]) - ny == dy
                                and np.int64(src_x[b, ny, nx]) - nx == dx
                            ):
                                labels[b, ny, nx] = next_id
                                stack[top] = ny * width + nx
                                top += 1
                next_id += 1
        n_parts[b] = next_id


@numba.njit(cache=True)
def _part_stats_kernel(
    labels,
    first_part,
    src_image,
    src_y,
    src_x,
    informative,
    part_image,
    part_dy,
    part_dx,
    size,
    informative_size,
    y0,
    x0,
    y1,
    x1,
):
    """Per part (flat index first_part[b] + label): source, displacement, sizes and inclusive bounding box.

    The output arrays must arrive zeroed (size in particular); pixels are visited in raster order, so a
    part's first pixel sets its source, displacement and top row.
    """
    n_samples, height, width = labels.shape
    for b in range(n_samples):
        for y in range(height):
            for x in range(width):
                p = first_part[b] + labels[b, y, x]
                if size[p] == 0:
                    part_image[p] = src_image[b, y, x]
                    part_dy[p] = src_y[b, y, x] - y
                    part_dx[p] = src_x[b, y, x] - x
                    y0[p], x0[p], y1[p], x1[p] = y, x, y, x
                else:
                    x0[p] = min(x0[p], x)
                    x1[p] = max(x1[p], x)
                    y1[p] = y
                size[p] += 1
                informative_size[p] += informative[b, y, x]


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


# ---- array-level API ----


def gini(counts: np.ndarray) -> float:
    """Gini coefficient of non-negative counts: 0 when all are equal, (n-1)/n when one holds everything."""
    values = np.sort(np.asarray(counts, dtype=np.float64))
    n, total = len(values), values.sum()
    if n == 0 or total == 0:
        return 0.0
    return float(2.0 * np.dot(np.arange(1, n + 1), values) / (n * total) - (n + 1) / n)


def _canonical(src_image, src_y, src_x, n_candidates=None):
    """The provenance arrays as contiguous (B, H, W) arrays in the store's dtypes (one kernel signature)."""
    arrays = [
        np.ascontiguousarray(src_image, dtype=np.int32),
        np.ascontiguousarray(src_y, dtype=np.int16),
        np.ascontiguousarray(src_x, dtype=np.int16),
    ]
    if n_candidates is not None:
        arrays.append(np.ascontiguousarray(n_candidates, dtype=np.int32))
    if arrays[0].ndim != 3 or any(a.shape != arrays[0].shape for a in arrays):
        raise NpgenError(f"provenance arrays must share one (B, H, W) shape, got {[a.shape for a in arrays]}")
    return arrays


@dataclass
class Parts:
    """The parts of B samples: per-pixel ids and one row per part (flat, sample by sample)."""

    ids: np.ndarray  # int32 (B, H, W)
    first: np.ndarray  # int64 (B+1,): parts of sample b are rows first[b]:first[b+1]
    table: pa.Table  # sample, part, src_image, dy, dx, size, informative_size, y0, x0, y1, x1


def find_parts(src_image, src_y, src_x, informative: np.ndarray, sample_ids: np.ndarray | None = None) -> Parts:
    """Label the parts of every sample and measure each (source, displacement, sizes, inclusive bounding box)."""
    src_image, src_y, src_x = _canonical(src_image, src_y, src_x)
    n_samples = len(src_image)
    ids = np.empty(src_image.shape, dtype=np.int32)
    n_parts = np.empty(n_samples, dtype=np.int64)
    _label_parts_kernel(src_image, src_y, src_x, ids, n_parts)
    first = np.concatenate([[0], np.cumsum(n_parts)]).astype(np.int64)
    total = int(first[-1])
    image, size, informative_size = (np.zeros(total, np.int32) for _ in range(3))
    dy, dx, y0, x0, y1, x1 = (np.zeros(total, np.int16) for _ in range(6))
    _part_stats_kernel(
        ids,
        first,
        src_image,
        src_y,
        src_x,
        np.ascontiguousarray(informative, dtype=np.int32),
        image,
        dy,
        dx,
        size,
        informative_size,
        y0,
        x0,
        y1,
        x1,
    )
    owner = np.repeat(np.arange(n_samples, dtype=np.int32), n_parts)
    table = pa.table(
        {
            "sample": owner if sample_ids is None else np.asarray(sample_ids, dtype=np.int32)[owner],
            "part": (np.arange(total, dtype=np.int64) - first[owner]).astype(np.int32),
            "src_image": image,
            "dy": dy,
            "dx": dx,
            "size": size,
            "informative_size": informative_size,
            "y0": y0,
            "x0": x0,
            "y1": y1,
            "x1": x1,
        }
    )
    return Parts(ids, first, table)


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
    src_image, src_y, src_x, n_candidates = _canonical(src_image, src_y, src_x, n_candidates)
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


# ---- runs ----


@dataclass
class PixelTrace:
    """Where one generated pixel came from."""

    sample: int
    y: int
    x: int
    src_image: int
    src_class: int
    src_class_name: str
    src_y: int
    src_x: int
    n_candidates: int
    distance: float
    informative: bool = True  # n_candidates <= the tracer's max_candidates
    src_file: str | None = None  # for an image-folder dataset: the source's file, relative to the folder

    @property
    def displacement(self) -> tuple[int, int]:
        return self.src_y - self.y, self.src_x - self.x


class Tracer:
    """Traces a completed run back to its training images: single pixels, one sample's parts, the whole run."""

    def __init__(
        self,
        run_path: str | os.PathLike,
        data_root=None,
        max_candidates: int = DEFAULT_MAX_CANDIDATES,
        min_part_size: int = DEFAULT_MIN_PART_SIZE,
    ) -> None:
        if max_candidates < 1 or min_part_size < 1:
            raise NpgenError(f"max_candidates and min_part_size must be >= 1, got {max_candidates} and {min_part_size}")
        self.run = Run(run_path)
        self.dataset = self.run.dataset(data_root)
        self.max_candidates, self.min_part_size = int(max_candidates), int(min_part_size)
        self.n_samples, self.height, self.width, self.channels = self.run.samples.shape
        self.half_window = int(self.run.manifest.get("database", {}).get("params", {}).get("half_window", 3))
        self.class_label: int | None = self.run.manifest.get("class_label")
        self._composition: Composition | None = None
        self._files = self.run.source_files()
        if self._files is None and self.dataset.files:
            self._files = list(self.dataset.files)

    def source_file(self, src_image: int) -> str | None:
        """The file a training image was read from (relative to the image folder), or None for a known dataset."""
        if self._files is None or not 0 <= int(src_image) < len(self._files):
            return None
        return self._files[int(src_image)] or None

    # -- reading --

    def provenance_arrays(self, columns: list[str], sample: int | None = None) -> dict[str, np.ndarray]:
        """Provenance columns as dense (B, H, W) arrays in (sample, y, x) order; one sample's only when given."""
        needed = list(dict.fromkeys(["sample", "y", "x", *columns]))
        filters = None if sample is None else [("sample", "==", int(sample))]
        try:
            table = pq.read_table(
                self.run.path / "provenance", columns=needed, filters=filters, schema=PROVENANCE_SCHEMA
            )
        except (OSError, pa.ArrowException) as err:
            raise NpgenError(
                f"the provenance of run {self.run.path} is unreadable ({str(err).splitlines()[0][:100]}); sample the run again"
            ) from err
        self.run.check_provenance(
            {name: table.column(name).to_numpy() for name in table.column_names}, self.dataset.n_images
        )
        n_samples = self.n_samples if sample is None else 1
        first_sample = 0 if sample is None else int(sample)
        shape = (n_samples, self.height, self.width)
        flat = (table.column("sample").to_numpy().astype(np.int64) - first_sample) * self.height
        flat = (flat + table.column("y").to_numpy()) * self.width + table.column("x").to_numpy()
        size = n_samples * self.height * self.width
        generated = ~self.given_pixels(first_sample, n_samples).ravel()
        if (
            len(flat) != generated.sum()
            or flat.min(initial=0) < 0
            or flat.max(initial=0) >= size
            or (np.bincount(flat, minlength=size) != generated).any()
        ):
            raise NpgenError(
                f"the provenance of run {self.run.path} does not hold exactly one row per generated pixel; the run is damaged, sample it again"
            )
        out = {}
        for name in columns:
            values = table.column(name).to_numpy()
            dense = np.full(size, np.nan if values.dtype.kind == "f" else -1, dtype=values.dtype)
            dense[flat] = values
            out[name] = dense.reshape(shape)
        return out

    def given_pixels(self, first_sample: int = 0, n_samples: int | None = None) -> np.ndarray:
        """(n, H, W) bool: the pixels of samples first_sample.. that were given, not generated (a completion's
        input; they have no provenance row and read -1 in `provenance_arrays`)."""
        n_samples = self.n_samples - first_sample if n_samples is None else n_samples
        known = self.run.control("known")
        if known is None:
            return np.zeros((n_samples, self.height, self.width), dtype=bool)
        per_input = int(self.run.manifest["completion"]["per_input"])
        return known[np.arange(first_sample, first_sample + n_samples) // per_input]

    def _refuse_completion(self, what: str) -> None:
        if self.run.manifest.get("completion"):
            raise NpgenError(
                f"{what} does not analyse completion runs yet (their given pixels have no source); "
                "trace a generated pixel with --pixel Y,X, or read the provenance Parquet directly"
            )

    def _check_sample(self, sample: int) -> int:
        if not 0 <= int(sample) < self.n_samples:
            raise NpgenError(f"sample {sample} out of range: run has 0..{self.n_samples - 1}")
        return int(sample)

    # -- queries --

    def pixel(self, sample: int, y: int, x: int) -> PixelTrace:
        """Where pixel (y, x) of a sample was copied from."""
        sample = self._check_sample(sample)
        if not (0 <= y < self.height and 0 <= x < self.width):
            raise NpgenError(
                f"pixel (y={y}, x={x}) out of range: samples are {self.height}x{self.width} (y 0..{self.height - 1}, x 0..{self.width - 1})"
            )
        rows = self.provenance_arrays(["src_image", "src_y", "src_x", "n_candidates", "distance"], sample)
        value = {name: column[0, y, x].item() for name, column in rows.items()}
        if value["src_image"] < 0:
            raise NpgenError(
                f"pixel (y={y}, x={x}) of sample {sample} was given (the completion's input), not generated: it has no source"
            )
        src_class = int(self.dataset.labels[value["src_image"]])
        return PixelTrace(
            sample=sample,
            y=int(y),
            x=int(x),
            src_image=value["src_image"],
            src_class=src_class,
            src_class_name=self.dataset.class_names[src_class],
            src_y=value["src_y"],
            src_x=value["src_x"],
            n_candidates=value["n_candidates"],
            distance=float(value["distance"]),
            informative=value["n_candidates"] <= self.max_candidates,
            src_file=self.source_file(value["src_image"]),
        )

    def _sample_parts(self, sample: int) -> Parts:
        self._refuse_completion("npgen trace --sample")
        sample = self._check_sample(sample)
        rows = self.provenance_arrays(["src_image", "src_y", "src_x", "n_candidates"], sample)
        informative = rows["n_candidates"] <= self.max_candidates
        return find_parts(rows["src_image"], rows["src_y"], rows["src_x"], informative, sample_ids=np.array([sample]))

    def sample_parts(self, sample: int) -> pa.Table:
        """The parts of one sample: sample, part, src_image, dy, dx, size, informative_size, y0, x0, y1, x1 (inclusive)."""
        return self._sample_parts(sample).table

    def part_ids(self, sample: int) -> np.ndarray:
        """(H, W) int32 part id of every pixel of one sample (the `part` column of `sample_parts`)."""
        return self._sample_parts(sample).ids[0]

    def composition(self) -> Composition:
        """The composition of every sample of the run (computed once, then cached)."""
        if self._composition is None:
            self._refuse_completion("npgen report")
            rows = self.provenance_arrays(["src_image", "src_y", "src_x", "n_candidates"])
            self._composition = compose(
                rows["src_image"],
                rows["src_y"],
                rows["src_x"],
                rows["n_candidates"],
                self.dataset.labels,
                self.class_label,
                self.dataset.n_images,
                self.max_candidates,
                self.min_part_size,
            )
        return self._composition

    # -- figures --

    def pixel_figure(self, sample: int, y: int, x: int, scale: int = 8):
        """A PIL image: the sample and the pixel's source side by side, pixel and causal context outlined."""
        from npgen.analysis.figures import pixel_figure

        trace = self.pixel(sample, y, x)
        return pixel_figure(
            trace,
            np.asarray(self.run.samples[trace.sample]),
            self.dataset.images[trace.src_image],
            self.half_window,
            scale=scale,
        )

    def parts_figure(self, sample: int, top: int = 6, scale: int = 6):
        """A PIL image: the sample, its parts map and its top source images with the regions they gave."""
        from npgen.analysis.figures import parts_figure

        parts = self._sample_parts(sample)
        return parts_figure(
            np.asarray(self.run.samples[int(sample)]),
            parts.ids[0],
            parts.table,
            self.dataset.images,
            top=top,
            labels=self.dataset.labels,
            class_names=self.dataset.class_names,
            scale=scale,
            sample=int(sample),
        )
