"""Trace and report a completed run (`npgen trace`, `npgen report`): the tracer's answers and figures, written
into the run (RUN/trace, RUN/report) or where the caller says."""

from __future__ import annotations

import os
from pathlib import Path

from PIL import Image

from npgen.analysis.report import write_report
from npgen.analysis.tracer import DEFAULT_MAX_CANDIDATES, PixelTrace, Tracer
from npgen.runs.integrity import check_output
from npgen.runs.png import save_png


def trace_pixel(
    run_path: str | os.PathLike,
    sample: int,
    y: int,
    x: int,
    figure: str | os.PathLike | None = None,
    data_root=None,
    max_candidates: int | None = None,
) -> tuple[PixelTrace, Path]:
    """Where pixel (y, x) of a sample was copied from (`Tracer.pixel`; with pyramid levels, also its ancestor's
    source at each coarser level), and the path of its figure, written to `figure` (default
    RUN/trace/sample-NNNNN-pixel-Y-X.png)."""
    tracer = open_tracer(run_path, data_root, max_candidates)
    found = tracer.pixel(sample, y, x)
    default = f"sample-{int(sample):05d}-pixel-{int(y)}-{int(x)}.png"
    return found, _save_figure(tracer, tracer.pixel_figure(sample, y, x), figure, default)


def trace_sample(
    run_path: str | os.PathLike,
    sample: int,
    figure: str | os.PathLike | None = None,
    data_root=None,
    max_candidates: int | None = None,
) -> tuple[Tracer, Path]:
    """The tracer of a run (for the sample's parts, `Tracer.sample_parts`, and their files, `Tracer.source_file`)
    and the path of the sample's parts figure, written to `figure` (default RUN/trace/sample-NNNNN-parts.png)."""
    tracer = open_tracer(run_path, data_root, max_candidates)
    picture = tracer.parts_figure(sample)
    return tracer, _save_figure(tracer, picture, figure, f"sample-{int(sample):05d}-parts.png")


def _save_figure(tracer: Tracer, picture: Image.Image, figure, default: str) -> Path:
    path = Path(figure) if figure else tracer.run.output_path("trace", default)  # no links inside the run
    check_output(path, "trace")
    path.parent.mkdir(parents=True, exist_ok=True)
    save_png(picture, path)
    return path


def open_tracer(run_path: str | os.PathLike, data_root=None, max_candidates: int | None = None) -> Tracer:
    """A `Tracer` over a completed run (its dataset checked against the manifest's SHA-256)."""
    return Tracer(
        run_path, data_root, max_candidates=DEFAULT_MAX_CANDIDATES if max_candidates is None else max_candidates
    )


def report_run(run_path: str | os.PathLike, out: str | os.PathLike | None = None, data_root=None) -> Path:
    """Write the report of a completed run (tables, figures, report.html) into `out` (default RUN/report); return it."""
    return Path(write_report(run_path, out, data_root))
