"""Per-training-image audit of runs (reverse provenance): which samples and pixels each training image went into.

Every generated pixel records the training image it was copied from (`store.py`), so the question a data
owner asks, "where did my image end up?", is a filter on the provenance, and "which images does this run
rely on?" is a count over it. This module answers both from the provenance Parquet files alone, reading
only the columns it needs:

- **usage** (`usage_table`): per training image, over one run or several runs of the same dataset: the
  pixels it gave, the samples it gave at least one pixel to, its share of all generated pixels, and the
  same three numbers over *informative* pixels only;
- **one image** (`image_rows`): every (run, sample, y, x) that copied a pixel of one training image, with
  the source position, the admissible-set size and the window distance.

**Informative pixels** are defined as in the tracer (`npgen/analysis/composition.py`): a pixel is informative when at
most `max_candidates` (default 8) candidates were admissible. A pixel drawn from a large tie (blank
MNIST background, where nearly the whole pool matches) was copied from whichever image the random
draw hit, so counting it would credit images with pixels whose source carries no information about
the content. Counts over all pixels say what was copied; counts over informative pixels say what
content came from where.

Runs of different datasets (the training split's SHA-256 in the manifest) are refused: their
`src_image` indices point into different image sets.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numba
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from npgen.analysis.composition import DEFAULT_MAX_CANDIDATES
from npgen.data.files import atomic_write, make_dir
from npgen.errors import NpgenError
from npgen.runs.png import save_png
from npgen.runs.run import PROVENANCE_SCHEMA, Run
from npgen.wording import plural
from npgen.runs.integrity import check_output

USAGE_FILE = "usage.parquet"
IMAGE_COLUMNS = ("sample", "y", "x", "src_y", "src_x", "n_candidates", "distance")


CANDIDATES_CAP = 2**31 - 1  # n_candidates is int32: any larger --max-candidates counts every pixel, as this does


@numba.njit(cache=True)
def _usage_kernel(sample, src_image, n_candidates, max_candidates, n_images, counts):
    """Add one run's counts into counts (4, n_images): pixels, samples, informative pixels, informative samples.

    Rows must come grouped by sample (the provenance is sorted by sample, y, x): a sample is counted
    once per image by remembering the last sample that counted it. Returns False, having added nothing,
    when the rows are not grouped (a sample index decreases), so the caller can group them first.
    """
    for i in range(1, sample.shape[0]):
        if sample[i] < sample[i - 1]:
            return False
    last = np.full(n_images, -1, dtype=np.int64)
    last_informative = np.full(n_images, -1, dtype=np.int64)
    for i in range(sample.shape[0]):
        image, b = src_image[i], np.int64(sample[i])
        counts[0, image] += 1
        if last[image] != b:
            last[image] = b
            counts[1, image] += 1
        if n_candidates[i] <= max_candidates:
            counts[2, image] += 1
            if last_informative[image] != b:
                last_informative[image] = b
                counts[3, image] += 1
    return True


def usage_counts(
    sample: np.ndarray, src_image: np.ndarray, n_candidates: np.ndarray, max_candidates: int, n_images: int
) -> np.ndarray:
    """(4, n_images) int64 per training image: pixels, samples, informative pixels, informative samples of one run."""
    counts = np.zeros((4, n_images), dtype=np.int64)
    if _usage_kernel(sample, src_image, n_candidates, max_candidates, n_images, counts):
        return counts
    order = np.argsort(sample, kind="stable")  # rows not grouped by sample: group them (the counts ignore row order)
    _usage_kernel(sample[order], src_image[order], n_candidates[order], max_candidates, n_images, counts)
    return counts


@dataclass
class AuditedRuns:
    """Runs opened for an audit: all of one dataset (checked), with that dataset's size and shape."""

    runs: list[Run]
    n_images: int
    shape: tuple[int, int, int]

    @property
    def total_samples(self) -> int:
        return sum(run.manifest["n_samples"] for run in self.runs)


def open_runs(paths: list[str | os.PathLike]) -> AuditedRuns:
    """Open completed runs and check they were sampled from the same training split (SHA-256 in the manifests)."""
    if not paths:
        raise NpgenError("pass at least one run folder to audit")
    runs = [Run(path) for path in paths]
    seen: dict[Path, Path] = {}
    for run in runs:
        key = run.path.resolve()
        if key in seen:
            raise NpgenError(f"run {run.path} is given twice (as {seen[key]}); its pixels would be counted twice")
        seen[key] = run.path
    first = runs[0].manifest["dataset"]
    key = (first["images_sha256"], first["labels_sha256"], first["split"])
    for run in runs[1:]:
        record = run.manifest["dataset"]
        if (record["images_sha256"], record["labels_sha256"], record["split"]) != key:
            raise NpgenError(
                f"runs {runs[0].path} ({first['name']}) and {run.path} ({record['name']}) were sampled from different "
                "datasets (their SHA-256 differ): their src_image indices cannot be counted together; audit them separately"
            )
    n_images = first.get("n_images")
    if not isinstance(n_images, int) or isinstance(n_images, bool) or n_images < 1:
        raise NpgenError(
            f"the manifest of run {runs[0].path} is damaged: its dataset record lacks n_images; sample the run again"
        )
    return AuditedRuns(runs, n_images, tuple(first["shape"]))


def _columns(run: Run, names: list[str], n_images: int, filters=None) -> dict[str, np.ndarray]:
    """Some provenance columns of a run as numpy arrays (bounds checked), optionally filtered rows."""
    if filters is None:
        table = run.provenance(names)
    else:
        try:
            table = pq.read_table(run.path / "provenance", columns=names, schema=PROVENANCE_SCHEMA, filters=filters)
        except (OSError, pa.ArrowException) as err:
            raise NpgenError(
                f"the provenance of run {run.path} is unreadable ({(str(err).splitlines() or [''])[0][:100]}); sample the run again"
            ) from err
    column = {name: table.column(name).to_numpy() for name in names}
    run.check_provenance(column, n_images)
    return column


def usage_table(
    audited: AuditedRuns,
    max_candidates: int = DEFAULT_MAX_CANDIDATES,
    labels: np.ndarray | None = None,
    class_names: tuple[str, ...] | None = None,
) -> pa.Table:
    """One row per training image (all of them, zeros included), summed over the runs.

    Columns: src_image, [class, class_name,] runs (how many runs used it), pixels, samples (samples it gave
    at least one pixel to, a sample of each run counted separately), share (of all generated pixels), and
    informative_pixels, informative_samples, informative_share (the same over informative pixels:
    n_candidates <= max_candidates)."""
    if max_candidates < 1:
        raise NpgenError(f"--max-candidates must be >= 1, got {max_candidates}")
    n_images = audited.n_images
    total = np.zeros((4, n_images), dtype=np.int64)
    runs_using = np.zeros(n_images, dtype=np.int64)
    for run in audited.runs:
        column = _columns(run, ["sample", "src_image", "n_candidates"], n_images)
        counts = usage_counts(column["sample"], column["src_image"], column["n_candidates"], max_candidates, n_images)
        total += counts
        runs_using += counts[0] > 0
    pixels_all, informative_all = total[0].sum(), total[2].sum()
    data = {"src_image": np.arange(n_images, dtype=np.int64)}
    if labels is not None:
        data["class"] = np.asarray(labels, dtype=np.int64)
        if class_names is not None:
            data["class_name"] = np.asarray(class_names, dtype=object)[data["class"]]
    data |= {
        "runs": runs_using,
        "pixels": total[0],
        "samples": total[1],
        "share": total[0] / max(pixels_all, 1),
        "informative_pixels": total[2],
        "informative_samples": total[3],
        "informative_share": total[2] / max(informative_all, 1),
    }
    return pa.table(data)


def check_image_index(image: int, n_images: int) -> int:
    """`image` as an int if it indexes the training split, else a one-line NpgenError."""
    try:
        index = int(image)
    except (TypeError, ValueError):
        raise NpgenError(f"--image takes a training image index (0..{n_images - 1}) or an image file, got {image!r}")
    if not 0 <= index < n_images:
        raise NpgenError(f"--image {index} is not a training image: the split has images 0..{n_images - 1}")
    return index


def image_rows(audited: AuditedRuns, image: int, max_candidates: int = DEFAULT_MAX_CANDIDATES) -> pa.Table:
    """Every generated pixel copied from training image `image`, over the runs, sorted by run, sample, y, x.

    Columns: run (its position among the audited runs), run_path, sample, y, x, src_y, src_x, n_candidates,
    distance, informative (n_candidates <= max_candidates)."""
    image = check_image_index(image, audited.n_images)
    tables = []
    for position, run in enumerate(audited.runs):
        column = _columns(run, list(IMAGE_COLUMNS), audited.n_images, filters=[("src_image", "=", image)])
        order = np.lexsort((column["x"], column["y"], column["sample"]))
        data = {"run": np.full(len(order), position, np.int32)}
        data["run_path"] = pa.array([str(run.path)] * len(order), pa.string()).dictionary_encode()
        data |= {name: column[name][order] for name in IMAGE_COLUMNS}
        data["informative"] = column["n_candidates"][order] <= max_candidates
        tables.append(pa.table(data))
    return pa.concat_tables(tables)


def match_image_file(path: str | os.PathLike, images: np.ndarray) -> np.ndarray:
    """Indices of the training images whose pixels equal the image in file `path` (converted to the split's
    channels), in order; an NpgenError when the file is unreadable or of another size."""
    from PIL import Image, UnidentifiedImageError

    height, width, channels = images.shape[1:]
    try:
        with Image.open(path) as picture:
            if picture.size != (width, height):  # checked from the header, before any pixel is decoded
                raise NpgenError(
                    f"--image {path} is {picture.size[0]}x{picture.size[1]}; the training images are {width}x{height}, "
                    "so it cannot be one of them"
                )
            array = np.asarray(picture.convert("L" if channels == 1 else "RGB"), dtype=np.uint8)
    except NpgenError:
        raise
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as err:
        raise NpgenError(
            f"--image {path} could not be read as an image ({type(err).__name__}); pass a PNG or JPEG file"
        ) from None
    array = array.reshape(height, width, -1)
    flat = images.reshape(len(images), -1)
    target = array.reshape(-1)
    candidates = np.flatnonzero(flat[:, 0] == target[0])  # cheap first filter, then whole-image equality
    return candidates[np.all(flat[candidates] == target, axis=1)]


def usage_summary(
    table: pa.Table, n_runs: int, n_samples: int, class_label: int | None = None, class_name: str | None = None
) -> str:
    """One line about a usage table: runs, samples, pixels, informative share, training images used. The share used
    is over the images the runs could draw from, as in `npgen report`: the training images of `class_label` when
    every run is conditioned on that class, else all of them; the line says which."""
    pixels = int(pc.sum(table.column("pixels")).as_py() or 0)
    informative = int(pc.sum(table.column("informative_pixels")).as_py() or 0)
    given = table.column("pixels").to_numpy()
    given_informative = table.column("informative_pixels").to_numpy()
    if class_label is None:
        population, what = np.ones(table.num_rows, bool), f"all {table.num_rows:,} training images"
    else:
        population = table.column("class").to_numpy() == class_label
        what = f"the {int(population.sum()):,} training images of class {class_name} (the runs are conditioned on it)"
    used = int(np.count_nonzero(given[population]))
    used_informative = int(np.count_nonzero(given_informative[population]))
    return (
        f"{plural(n_runs, 'run')}, {plural(n_samples, 'sample')}, {plural(pixels, 'pixel')} "
        f"({informative / max(pixels, 1):.1%} informative); {used:,} of {what} used "
        f"({used / max(int(population.sum()), 1):.1%}), {used_informative:,} for informative pixels"
    )


def image_summary(rows: pa.Table, image: int, n_runs: int, n_samples: int) -> str:
    """One line about one training image's use: pixels, informative pixels, samples, runs."""
    pixels = rows.num_rows
    informative = int(pc.sum(rows.column("informative")).as_py() or 0)
    run = rows.column("run").to_numpy().astype(np.int64)
    sample = rows.column("sample").to_numpy().astype(np.int64)
    samples = len(np.unique(run * (1 << 32) + sample))
    runs = len(np.unique(run))
    return (
        f"training image {image} gave {plural(pixels, 'pixel')} ({informative} informative) to {samples} of "
        f"{plural(n_samples, 'sample')} in {runs} of {plural(n_runs, 'run')}"
    )


def image_figure(
    training_image: np.ndarray,
    rows: pa.Table,
    samples_of: list[np.ndarray],
    image: int,
    label: str | None = None,
    top: int = 8,
    scale: int = 6,
):
    """The training image with the pixels that were copied tinted (stronger where copied more often) and, beside
    it, the `top` samples that took the most pixels from it, those pixels outlined on each.

    `samples_of[r]` is run r's (n, H, W, C) sample array (a memory map is fine)."""
    from PIL import Image

    from npgen.analysis.drawing import (
        CONTEXT_COLOUR,
        PIXEL_COLOUR,
        as_rgb,
        compose_panels,
        outline_outside,
        upscale,
    )

    height, width = training_image.shape[:2]
    run = rows.column("run").to_numpy().astype(np.int64)
    sample = rows.column("sample").to_numpy().astype(np.int64)
    uses = np.zeros((height, width), dtype=np.int64)
    np.add.at(uses, (rows.column("src_y").to_numpy(), rows.column("src_x").to_numpy()), 1)
    rgb = as_rgb(training_image).astype(np.float64)
    used = uses > 0
    strength = (0.35 + 0.5 * uses / max(int(uses.max(initial=0)), 1))[..., None]
    rgb = np.where(used[..., None], (1 - strength) * rgb + strength * np.array(PIXEL_COLOUR, np.float64), rgb)
    picture = upscale(rgb.astype(np.uint8), scale)
    picture[outline_outside(upscale(used, scale))] = CONTEXT_COLOUR
    title = f"training image {image}" + (f", class {label}" if label is not None else "")
    panels = [(Image.fromarray(picture), [title, f"{int(used.sum())} of {height * width} pixels copied"])]
    keys, counts = np.unique(run * (1 << 32) + sample, return_counts=True)
    ranked = keys[np.lexsort((keys, -counts))][:top]
    for key in ranked:
        r, b = int(key >> 32), int(key & 0xFFFFFFFF)
        mask = np.zeros(samples_of[r].shape[1:3], dtype=bool)  # the samples' size (--size: not the image's)
        at = (run == r) & (sample == b)
        mask[rows.column("y").to_numpy()[at], rows.column("x").to_numpy()[at]] = True
        panel = upscale(as_rgb(np.asarray(samples_of[r][b])), scale)
        panel[outline_outside(upscale(mask, scale))] = PIXEL_COLOUR
        where = f"run {r} " if len(samples_of) > 1 else ""
        panels.append((Image.fromarray(panel), [f"{where}sample {b}", f"{int(mask.sum())} px from it"]))
    caption = [
        (
            f"Left: training image {image}, the pixels copied into samples tinted red (stronger: copied more often) "
            "and outlined in yellow. Right: the samples that took the most pixels from it, those pixels outlined in red."
        )
    ]
    return compose_panels(panels, caption)


def default_out(audited: AuditedRuns, out: str | os.PathLike | None) -> Path:
    """Where an audit writes: `out`, else RUN/audit for a single run; several runs need an explicit --out."""
    if out is not None:
        return check_output(out, "audit")
    if len(audited.runs) > 1:
        raise NpgenError("auditing several runs at once needs --out DIR (where to write the tables)")
    return audited.runs[0].output_path("audit")


# ---- `npgen audit`: the workflow over run folders, writing its tables and figure ----


@dataclass
class AuditResult:
    """What `audit_runs` wrote and found: the table (usage per training image, or one image's pixels), its
    Parquet file, the figure (one image only), a one-line summary, and the audited image (None: usage)."""

    table: pa.Table
    table_path: Path
    figure_path: Path | None
    summary: str
    image: int | None


def audit_runs(
    run_paths: list[str | os.PathLike],
    image: str | int | None = None,
    out: str | os.PathLike | None = None,
    data_root=None,
    max_candidates: int | None = None,
) -> AuditResult:
    """Audit runs of one dataset by training image (the counting above).

    Without `image`: the usage of every training image over all the runs, written to OUT/usage.parquet.
    With `image` (a training image index, or the path of an image file matched by its pixels against the
    training split): every pixel copied from it, to OUT/image-NNNNN.parquet, and a figure
    OUT/image-NNNNN.png. OUT defaults to RUN/audit for one run; several runs need `out`."""
    limit = DEFAULT_MAX_CANDIDATES if max_candidates is None else int(max_candidates)
    if limit < 1:
        raise NpgenError(f"--max-candidates must be >= 1, got {limit}")
    limit = min(limit, CANDIDATES_CAP)
    audited = open_runs(list(run_paths))
    folder = default_out(audited, out)
    data = audited.runs[0].dataset(data_root)
    if data.n_images != audited.n_images:  # the tables are sized by it: checked against the data, before allocating
        raise NpgenError(
            f"the manifest of run {audited.runs[0].path} is damaged: its n_images {audited.n_images} is not the "
            f"{data.n_images} images of {data.name}; sample the run again"
        )
    if image is None:
        table = usage_table(audited, limit, data.labels, tuple(data.class_names))
        files = audited.runs[0].source_files()
        if files is not None and len(files) == table.num_rows:
            table = table.append_column("file", pa.array(files, pa.string()))
        path = folder / USAGE_FILE
        make_dir(folder)
        atomic_write(path, lambda tmp: pq.write_table(table, tmp, compression="zstd"))
        classes = {run.manifest.get("class_label") for run in audited.runs}
        label = classes.pop() if len(classes) == 1 else None
        name = None if label is None else data.class_names[int(label)]
        summary = usage_summary(table, len(audited.runs), audited.total_samples, label, name)
        return AuditResult(table, path, None, summary, None)
    text = str(image)
    if not text.lstrip("-").isdigit() and Path(text).is_file():
        found = match_image_file(text, data.images)
        if not len(found):
            raise NpgenError(f"--image {text} matches no training image of {data.name} pixel for pixel")
        index = int(found[0])
    else:
        index = check_image_index(text, audited.n_images)
    rows = image_rows(audited, index, limit)
    make_dir(folder)
    path = folder / f"image-{index:05d}.parquet"
    atomic_write(path, lambda tmp: pq.write_table(rows, tmp, compression="zstd"))
    picture = image_figure(
        data.images[index],
        rows,
        [run.samples for run in audited.runs],
        index,
        label=data.class_names[int(data.labels[index])],
    )
    figure = folder / f"image-{index:05d}.png"
    save_png(picture, figure)
    summary = image_summary(rows, index, len(audited.runs), audited.total_samples)
    return AuditResult(rows, path, figure, summary, index)
