"""The run report: a run's composition as tables, charts and one self-contained HTML page.

`write_report(run)` traces a completed run (`npgen.analysis.tracer.Tracer`) and writes, into RUN/report unless told
otherwise::

    composition.json, per_sample.parquet, parts.parquet, sources.parquet, reuse.parquet   (Composition.save)
    report.json            run-level numbers (the composition's) and the manifest's essentials
    part_sizes.png         share of pixels by the size of the part they lie in (all vs informative pixels)
    coverage.png           coverage of informative pixels by the top 1, 3, 10 sources (quartiles over samples)
    displacement.png       Chebyshev displacement of copied pixels (all vs informative pixels)
    reuse.png              generated pixels per used training image; Gini and share of training used
    sources_per_sample.png distinct source images per sample (all vs informative pixels)
    samples.png            the first samples
    parts-<i>.png, pixel-<i>.png   example i of n_example_samples: the most original samples (farthest from their
                           nearest training image), then the least original (`report_examples`); its parts
                           (Tracer.parts_figure) and one informative pixel of its largest part traced (pixel_figure)
    levels-<i>.png         a run with pyramid levels only: those samples' levels side by side (Tracer.levels_figure)
    report.html            one page, every image embedded as a data URI: opens from disk with no server; the
                           samples first, then the run-level numbers and the charts

report.json records the examples (sample, kind, nearest image and distance, the traced pixel and why).

The charts are made by `npgen.analysis.report_charts` and the page by `npgen.analysis.report_page`.
Every file is written to a temporary name and renamed into place; files of an earlier report in the same
folder are overwritten (and stale example figures removed).
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pyarrow as pa
from PIL import Image

from npgen.analysis.composition import COMPOSITION_FILES, DEFAULT_MAX_CANDIDATES, DEFAULT_MIN_PART_SIZE
from npgen.analysis.report_charts import run_charts
from npgen.analysis.report_examples import ExampleSample, TracedPixel, example_samples, traced_pixel
from npgen.analysis.report_page import N_TOP_SOURCES, report_page
from npgen.analysis.tracer import Tracer
from npgen.data.files import DIR_MODE, TMP_MARK, atomic_write, naming_errors, refuse_link, write_json
from npgen.errors import NpgenError
from npgen.runs.integrity import check_output
from npgen.runs.png import image_grid
from npgen.wording import plural

N_GRID_SAMPLES = 64
CHART_FILES = (
    "part_sizes.png",
    "coverage.png",
    "displacement.png",
    "reuse.png",
    "sources_per_sample.png",
    "samples.png",
)


def _parts_caption(example: ExampleSample) -> str:
    if example.nearest_distance is None:
        return f"Sample {example.sample}: its parts and the training images that gave the most informative pixels."
    return (
        f"Sample {example.sample}, {example.kind} (L2 distance {example.nearest_distance:,.1f} to its nearest training "
        f"image, {example.nearest_image}): its parts and the training images that gave the most informative pixels."
    )


def _pixel_caption(sample: int, pixel: TracedPixel) -> str:
    return (
        f"Sample {sample}: pixel (y={pixel.y}, x={pixel.x}) traced to its source, training image {pixel.src_image}. "
        f"It lies in the sample's largest part ({pixel.part_size} pixels, {pixel.part_informative_size} informative) "
        f"and was drawn from {plural(pixel.n_candidates, 'admissible candidate')} at window distance "
        f"{pixel.distance:,.1f}."
    )


def _png_bytes(picture: Image.Image) -> bytes:
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()


def _write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, lambda tmp: tmp.write_bytes(data))


def write_report(
    run_path: str | os.PathLike,
    out_dir: str | os.PathLike | None = None,
    data_root=None,
    n_example_samples: int = 4,
    max_candidates: int = DEFAULT_MAX_CANDIDATES,
    min_part_size: int = DEFAULT_MIN_PART_SIZE,
) -> Path:
    """Write the report of a completed run into out_dir (default RUN/report) and return out_dir.

    See the module docstring for the files. Raises NpgenError (from the tracer) for a missing, incomplete or
    damaged run, or one whose dataset no longer matches its manifest's SHA-256.
    """
    if n_example_samples < 0:
        raise NpgenError(f"n_example_samples must be >= 0, got {n_example_samples}")
    tracer = Tracer(run_path, data_root=data_root, max_candidates=max_candidates, min_part_size=min_part_size)
    run_path = tracer.run.path
    final = check_output(out_dir, "report") if out_dir is not None else tracer.run.output_path("report")
    refuse_link(final)  # never a link inside the run
    if final.exists() and not final.is_dir():
        raise NpgenError(f"{final} exists and is not a folder; choose another --out")
    c = tracer.composition()
    try:
        summary = tracer.run.summary()
    except (OSError, pa.ArrowException) as err:
        raise NpgenError(f"{run_path}/samples.parquet is missing or damaged; sample the run again") from err
    final.parent.mkdir(parents=True, exist_ok=True)
    out = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}{TMP_MARK}"))  # installed whole at the end
    try:
        with naming_errors(final):  # a write that fails naming no file (Arrow's) names the report
            _write_report_files(tracer, c, summary, out, n_example_samples)
        _install_report(out, final)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return final


def _install_report(staged: Path, final: Path) -> None:
    """Move a report written whole in `staged` to `final`: renamed there if new, else file by file over the old one
    (stale figures of an earlier report removed)."""
    if not final.exists():
        os.chmod(staged, DIR_MODE)
        os.rename(staged, final)
        return
    for stale in [*final.glob("parts-*.png"), *final.glob("pixel-*.png"), *final.glob("levels-*.png")]:
        if not (staged / stale.name).exists():
            stale.unlink()
    for entry in staged.iterdir():
        refuse_link(final / entry.name)
        os.replace(entry, final / entry.name)


def _write_report_files(tracer: Tracer, c, summary: pa.Table, out: Path, n_example_samples: int) -> None:
    """Write every file of a report into the new, empty folder `out`."""
    run_path = tracer.run.path
    # Composition.save writes in place: stage in a new private folder, then rename exactly the files it writes
    staging = Path(tempfile.mkdtemp(dir=out, prefix=f".composition{TMP_MARK}"))
    try:
        c.save(staging)
        for name in COMPOSITION_FILES:
            os.replace(staging / name, out / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)

    examples = [
        (e, traced_pixel(tracer, e.sample)) for e in example_samples(summary, tracer.n_samples, n_example_samples)
    ]
    manifest = tracer.run.manifest
    record = {
        "run_path": str(run_path),
        "dataset": {
            key: manifest["dataset"].get(key) for key in ("name", "split", "n_images", "shape", "images_sha256")
        },
        "class_label": manifest.get("class_label"),
        "class_name": manifest.get("class_name"),
        "n_samples": manifest.get("n_samples"),
        "params": manifest.get("params"),
        "window": (manifest.get("database") or {}).get("params"),
        "summary": manifest.get("summary"),
        "timings": manifest.get("timings"),
        "npgen_version": manifest.get("npgen_version"),
        "run": c.run,
        "examples": [{**asdict(example), "pixel": asdict(pixel)} for example, pixel in examples],
    }
    write_json(out / "report.json", record)

    figures: list[tuple[str, bytes, str]] = []
    for name, (picture, caption) in run_charts(
        c, (manifest.get("params") or {}).get("radius"), manifest.get("class_name")
    ).items():
        figures.append((name, _png_bytes(picture), caption))
    shown = min(N_GRID_SAMPLES, tracer.n_samples)
    grid = image_grid(np.asarray(tracer.run.samples[:shown]), columns=min(16, shown), scale=2)
    figures.append(("samples.png", _png_bytes(grid), f"The first {shown} of the {tracer.n_samples:,} samples."))
    for i, (example, pixel) in enumerate(examples):
        figures.append((f"parts-{i}.png", _png_bytes(tracer.parts_figure(example.sample)), _parts_caption(example)))
        figures.append(
            (
                f"pixel-{i}.png",
                _png_bytes(tracer.pixel_figure(example.sample, pixel.y, pixel.x)),
                _pixel_caption(example.sample, pixel),
            )
        )
    levels: list[tuple[str, bytes, str]] = []
    if tracer.levels > 1:
        for i, sample in enumerate(example.sample for example, _ in examples):
            caption = (
                f"Sample {sample} at its {tracer.levels} levels, each coarser level enlarged to the sample's size."
            )
            levels.append((f"levels-{i}.png", _png_bytes(tracer.levels_figure(sample)), caption))
    for name, png, _ in [*figures, *levels]:
        _write_bytes(out / name, png)

    top = c.reuse.sort_by([("n_pixels", "descending"), ("n_informative", "descending"), ("src_image", "ascending")])
    thumbs = {
        int(i): _png_bytes(image_grid(tracer.dataset.images[int(i)][None], columns=1, scale=1, gap=0))
        for i in top.column("src_image").to_numpy()[:N_TOP_SOURCES]
    }
    page = report_page(
        run_path, tracer.run.manifest, tracer.dataset.class_names, c, figures, thumbs, summary, levels=levels
    )
    atomic_write(out / "report.html", lambda tmp: tmp.write_text(page, encoding="utf-8"))
