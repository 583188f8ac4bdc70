"""The tracer: a completed run traced back to its training images, read from its per-pixel provenance.

Every generated pixel records the training image, position and admissible-set size it was copied
from (`npgen.runs.store`). `Tracer` opens a run, checks its dataset against the manifest's SHA-256, and
answers per-pixel (`PixelTrace`), per-sample (`npgen.analysis.parts`) and whole-run
(`npgen.analysis.composition`) queries, and draws their figures (`npgen.analysis.trace_figures`).
For a run sampled over pyramid levels (--levels L > 1) a pixel's trace also holds its ancestors: at level k the
pixel (y >> k, x >> k) of the sample's level-k image, copied from a training image's level-k box-mean image
(`npgen.data.levels`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from npgen.analysis.composition import DEFAULT_MAX_CANDIDATES, DEFAULT_MIN_PART_SIZE, Composition, compose
from npgen.analysis.parts import Parts, find_parts
from npgen.data.levels import level_images, level_mask
from npgen.errors import NpgenError
from npgen.runs.run import PROVENANCE_SCHEMA, Run, check_provenance, level_folder


@dataclass
class PixelTrace:
    """Where one generated pixel came from: at pyramid level `level`, coordinates are in that level's images."""

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
    level: int = 0
    ancestors: tuple[PixelTrace, ...] = ()  # levels 1 .. L - 1: the traces of pixel (y >> k, x >> k) at level k

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
        cap = 2**31 - 1  # n_candidates and part sizes fit int32: a larger limit means the same as this one
        self.max_candidates, self.min_part_size = min(int(max_candidates), cap), min(int(min_part_size), cap)
        self.n_samples, self.height, self.width, self.channels = self.run.samples.shape
        self.levels = self.run.levels
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

    def provenance_arrays(self, columns: list[str], sample: int | None = None, level: int = 0) -> dict[str, np.ndarray]:
        """Provenance columns as dense (B, H, W) arrays in (sample, y, x) order; one sample's only when given; of
        pyramid level `level` (H and W 2^level times smaller) when given."""
        needed = list(dict.fromkeys(["sample", "y", "x", *columns]))
        filters = None if sample is None else [("sample", "==", int(sample))]
        folder = self.run.path if level == 0 else level_folder(self.run.path, level)
        try:
            table = pq.read_table(folder / "provenance", columns=needed, filters=filters, schema=PROVENANCE_SCHEMA)
        except (OSError, pa.ArrowException) as err:
            raise NpgenError(
                f"the provenance of run {self.run.path} is unreadable ({str(err).splitlines()[0][:100]}); sample the run again"
            ) from err
        height, width = self.height >> level, self.width >> level
        check_provenance(
            self.run.path,
            {name: table.column(name).to_numpy() for name in table.column_names},
            self.n_samples,
            height,
            width,
            self.dataset.n_images,
            (self.dataset.height >> level, self.dataset.width >> level),  # the training images' (--size)
        )
        n_samples = self.n_samples if sample is None else 1
        first_sample = 0 if sample is None else int(sample)
        shape = (n_samples, height, width)
        flat = (table.column("sample").to_numpy().astype(np.int64) - first_sample) * height
        flat = (flat + table.column("y").to_numpy()) * width + table.column("x").to_numpy()
        size = n_samples * height * width
        generated = ~self.given_pixels(first_sample, n_samples, level).ravel()
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

    def given_pixels(self, first_sample: int = 0, n_samples: int | None = None, level: int = 0) -> np.ndarray:
        """(n, H, W) bool: the pixels of samples first_sample.. that were given, not generated (a completion's
        input; they have no provenance row and read -1 in `provenance_arrays`); at pyramid level `level` the blocks
        given whole (`npgen.data.levels.level_mask`)."""
        n_samples = self.n_samples - first_sample if n_samples is None else n_samples
        known = self.run.control("known")
        if known is None:
            return np.zeros((n_samples, self.height >> level, self.width >> level), dtype=bool)
        per_input = int(self.run.manifest["completion"]["per_input"])
        return level_mask(known, level)[np.arange(first_sample, first_sample + n_samples) // per_input]

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
        """Where pixel (y, x) of a sample was copied from; for a run with pyramid levels, with its ancestors."""
        sample = self._check_sample(sample)
        if not (0 <= y < self.height and 0 <= x < self.width):
            raise NpgenError(
                f"pixel (y={y}, x={x}) out of range: samples are {self.height}x{self.width} (y 0..{self.height - 1}, x 0..{self.width - 1})"
            )
        found = self._pixel_at(sample, int(y), int(x), 0)
        found.ancestors = tuple(self._pixel_at(sample, int(y) >> k, int(x) >> k, k) for k in range(1, self.levels))
        return found

    def _pixel_at(self, sample: int, y: int, x: int, level: int) -> PixelTrace:
        rows = self.provenance_arrays(["src_image", "src_y", "src_x", "n_candidates", "distance"], sample, level)
        value = {name: column[0, y, x].item() for name, column in rows.items()}
        if value["src_image"] < 0:
            raise NpgenError(
                f"pixel (y={y}, x={x}) of sample {sample} was given (the completion's input), not generated: it has no source"
            )
        src_class = int(self.dataset.labels[value["src_image"]])
        return PixelTrace(
            sample=sample,
            y=y,
            x=x,
            src_image=value["src_image"],
            src_class=src_class,
            src_class_name=self.dataset.class_names[src_class],
            src_y=value["src_y"],
            src_x=value["src_x"],
            n_candidates=value["n_candidates"],
            distance=float(value["distance"]),
            informative=value["n_candidates"] <= self.max_candidates,
            src_file=self.source_file(value["src_image"]),
            level=level,
        )

    def level_image(self, src_image: int, level: int) -> np.ndarray:
        """(H / 2^level, W / 2^level, C) uint8: training image `src_image` at pyramid level `level`, the image the
        run's level-`level` pixels were copied from (its exact box means, `npgen.data.levels.level_images`)."""
        return level_images(self.dataset.images[int(src_image) : int(src_image) + 1], level)[0]

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
        """A PIL image: the sample and the pixel's source side by side, pixel and causal context outlined (for a run
        with pyramid levels, a second row with the pixel's ancestor and its source at each coarser level)."""
        from npgen.analysis.trace_figures import pixel_figure

        trace = self.pixel(sample, y, x)
        ancestor_images = [
            (np.asarray(self.run.level_samples(a.level)[a.sample]), self.level_image(a.src_image, a.level))
            for a in trace.ancestors
        ]
        return pixel_figure(
            trace,
            np.asarray(self.run.samples[trace.sample]),
            self.dataset.images[trace.src_image],
            self.half_window,
            scale=scale,
            ancestor_images=ancestor_images,
        )

    def levels_figure(self, sample: int, scale: int = 6):
        """A PIL image: a sample's pyramid levels side by side, each enlarged to the samples' size."""
        from npgen.analysis.trace_figures import levels_figure

        sample = self._check_sample(sample)
        images = [np.asarray(self.run.level_samples(k)[sample]) for k in range(self.levels)]
        return levels_figure(images, sample, scale=scale)

    def parts_figure(self, sample: int, top: int = 6, scale: int = 6):
        """A PIL image: the sample, its parts map and its top source images with the regions they gave."""
        from npgen.analysis.trace_figures import parts_figure

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
