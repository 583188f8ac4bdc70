"""The Python API the CLI is a thin layer over: build a database, sample, verify, evaluate, trace and report a run.

The sampler, the database and FAISS are imported only by the functions that need them, so reading a run
(`trace_pixel`, `trace_sample`, `report_run`) loads none of them.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from npgen.datasets import data_location
from npgen.datasets import known_datasets, load_dataset
from npgen.datasets import preset as preset_for
from npgen.params import SAMPLER_PARAMS, resolve
from npgen.errors import NpgenError
from npgen.files import write_json
from npgen.store import Run, RunWriter, run_state, sources_table

if TYPE_CHECKING:
    from PIL import Image

    from npgen.database import Database, WindowParams
    from npgen.tracer import PixelTrace, Tracer


def resolve_class(class_names: tuple[str, ...], value: str | int | None) -> int | None:
    """A class given by index ("3") or by name ("cat") -> its index; None stays None (unconditional)."""
    if value is None:
        return None
    text = str(value)
    if text in class_names:
        return class_names.index(text)
    folded = [name.casefold() for name in class_names]
    if folded.count(text.casefold()) == 1:
        return folded.index(text.casefold())
    if text.isdigit() and int(text) < len(class_names):
        return int(text)
    raise NpgenError(
        f"unknown class {text!r}; choose one of: {', '.join(class_names)} (or its index 0..{len(class_names) - 1})"
    )


def resolve_params(data, window: dict | None = None, sampler_options: dict | None = None) -> tuple[WindowParams, dict]:
    """(window parameters, sampler options) for a dataset: explicit values over its preset over the defaults."""
    from npgen.database import WindowParams

    preset = preset_for(data)
    window_params = WindowParams.resolve(window or {}, preset)
    options = resolve(SAMPLER_PARAMS, sampler_options or {}, preset)
    return window_params, options


def build_database(
    dataset: str,
    data_root=None,
    db_path=None,
    window: dict | None = None,
    force: bool = False,
    progress: Callable[[int], None] | None = None,
    ray_address: str | None = None,
    on_size: Callable[[int], None] | None = None,
) -> tuple[Database, bool]:
    """Build the window database of a dataset (a known name or an image folder; into the cache when db_path is None).

    Returns (database, built): an existing npgen database at the path that was built from this data with these
    parameters is left as it is (built False) unless `force`; one built for other data or parameters is refused
    (NpgenError saying which parameter differs) unless `force`. `window` holds explicit build parameters; the
    others come from the dataset's preset. `on_size(n_images)` is called once the data has loaded, `progress(0)`
    when building starts, then `progress(k)` after each chunk of k images built; `ray_address` builds the chunks as Ray tasks (`Database.build`).
    """
    from npgen.database import Database, build_lock, default_path, is_database

    data = load_dataset(dataset, data_root=data_root)
    if on_size is not None:
        on_size(data.n_images)
    params, _ = resolve_params(data, window)
    path = Path(db_path) if db_path is not None else default_path(data, params)
    with build_lock(path):  # not while a `npgen sample` builds the same database
        if not force and is_database(path):
            db = Database.load(path)
            db.check(data, params)
            return db, False
        if progress is not None:
            progress(0)
        return Database.build(data, path, params, force=force, progress=progress, ray_address=ray_address), True


def sample_run(
    out: str | os.PathLike,
    dataset: str,
    n: int,
    class_value: str | int | None = None,
    data_root=None,
    db_path=None,
    window: dict | None = None,
    sampler_options: dict | None = None,
    resume: bool = False,
    command: str | None = None,
    progress: Callable[[int], None] | None = None,
    note: Callable[[str], None] | None = None,
) -> Path:
    """Generate n samples into the run directory `out`, batch by batch, and return its path.

    `window` and `sampler_options` hold explicit parameters (None = unset); the rest come from the
    dataset's preset (`npgen.params.resolve`), and the manifest records the resolved values.
    The run folder is created only once the data, database and options have loaded. With `resume`, a
    complete run is left untouched (a no-op); a folder without a manifest holding nothing but npgen's
    leftovers is started afresh (`note` is told). A failure before the first batch removes the folder
    again if this call created it. `progress(0)` is called once loading is done, then `progress(k)` after
    each batch of k samples.
    """
    if n < 1:
        raise NpgenError(f"-n must be >= 1, got {n}")
    state = run_state(out)
    if state == "dangling-link":
        raise NpgenError(f"--out {out} is a symbolic link to a missing folder; remove the link or choose another --out")
    if state != "absent" and not resume:
        raise NpgenError(f"{out} already exists; choose a new --out, or pass --resume to continue that run")
    if resume and state == "absent":
        raise NpgenError(f"cannot resume {out}: it does not exist; drop --resume to start a new run")
    if resume and state == "foreign":
        raise NpgenError(
            f"cannot resume {out}: it has no manifest.json and holds other files, so it is not an npgen run; choose another --out"
        )
    if resume and state == "complete":
        return Path(out)  # nothing to do: the manifest, samples and timings stay as they are
    if resume and state == "empty" and note is not None:
        note(f"{out} has no manifest (a run stopped before it began); starting it afresh there")
    from npgen.database import Database
    from npgen.metrics import sample_summary
    from npgen.sampler import Sampler

    started = time.perf_counter()
    data = load_dataset(dataset, data_root=data_root)
    window_params, options = resolve_params(data, window, sampler_options)
    db = Database.open_or_build(data, db_path, window_params)
    class_label = resolve_class(db.class_names, class_value)
    sampler = Sampler(db, **options)
    loaded = time.perf_counter()
    writer = RunWriter(
        out,
        {
            "dataset": db.dataset,
            "data_root": data_location(dataset, data_root),
            "database": {"path": str(db.path.resolve()), "params": asdict(db.params)},
            "params": sampler.params(),
            "class_label": class_label,
            "class_name": None if class_label is None else db.class_names[class_label],
            "n_samples": n,
            "command": command or " ".join(sys.argv),
        },
        resume=resume,
    )
    batches = range(0, n, sampler.batch_size)
    if progress is not None:
        progress(0)  # loading is done: the work starts now
    try:
        for index, first in enumerate(batches):
            size = min(sampler.batch_size, n - first)
            if not writer.has_batch(index):
                samples = sampler.sample_batch(np.arange(first, first + size), class_label)
                writer.write_batch(index, samples, sample_summary(samples, db))
            if progress is not None:
                progress(size)
    except BaseException:
        writer.abandon()  # only a folder this call created, holding nothing but what it wrote
        raise
    sampled = time.perf_counter()
    writer.finish(
        len(batches),
        {
            "load_seconds": round(loaded - started, 3),
            "sample_seconds": round(sampled - loaded, 3),
            "images_per_second": round(n / max(sampled - loaded, 1e-9), 3),
        },
        sources=sources_table(data),
    )
    return writer.path


@dataclass
class VerifyReport:
    """What `verify_run` found: every count but n_pixels must be 0 for a faithful run.

    over_budget counts samples that took more than the run's source budget from one training image;
    wrong_class counts pixels from an image outside the sample's class (requested, or drawn by the
    mixture: verify re-draws it from the seed); unproducible counts pixels no admissible rule gives
    (no admissible candidate recorded, or a distance that is not a finite number >= 0).
    """

    n_pixels: int
    mismatches: int
    missing_or_duplicate: int
    outside_radius: int
    wrong_class: int
    over_budget: int
    unproducible: int
    max_source_pixels: int
    source_budget: int

    @property
    def ok(self) -> bool:
        counts = (
            self.mismatches,
            self.missing_or_duplicate,
            self.outside_radius,
            self.wrong_class,
            self.over_budget,
            self.unproducible,
        )
        return not any(counts)


def expected_classes(manifest: dict, class_counts: np.ndarray, n: int) -> np.ndarray:
    """The class each of a run's n samples must draw from (-1: any), re-derived from its manifest."""
    from npgen.sampler import draw_classes

    params = manifest["params"]
    if manifest["class_label"] is not None:
        return np.full(n, manifest["class_label"], np.int64)
    if not params.get("class_mixture", 0) or len(class_counts) < 2:
        return np.full(n, -1, np.int64)
    return draw_classes(params["seed"], np.arange(n), class_counts)


def verify_run(run_path: str | os.PathLike, data_root=None) -> VerifyReport:
    """Re-derive every generated pixel from its recorded source in the dataset itself (not the database),
    and check the run's guarantees: locality radius, class, source budget."""
    run = Run(run_path)
    data = run.dataset(data_root)
    table = run.provenance()
    column = {name: table.column(name).to_numpy() for name in table.column_names}
    samples = np.asarray(run.samples)
    n, height, width = samples.shape[:3]
    run.check_provenance(column, data.n_images)
    if data.images.shape[1:] != samples.shape[1:]:
        raise NpgenError(
            f"run {run.path} holds {samples.shape[1:]} samples but its dataset has {data.images.shape[1:]} images; the run is damaged, sample it again"
        )
    copied = data.images[column["src_image"], column["src_y"], column["src_x"]]
    generated = samples[column["sample"], column["y"], column["x"]]
    mismatches = int(np.any(copied != generated, axis=-1).sum())
    seen = np.bincount(
        (column["sample"].astype(np.int64) * height + column["y"]) * width + column["x"], minlength=n * height * width
    )
    params = run.manifest["params"]
    try:
        radius = int(params["radius"])
        budget = int(params.get("source_budget", height * width))
    except (KeyError, TypeError, ValueError):
        raise NpgenError(
            f"the manifest of run {run.path} is damaged: its params lack a numeric radius or source_budget; sample the run again"
        ) from None
    far = (np.abs(column["src_y"] - column["y"]) > radius) | (np.abs(column["src_x"] - column["x"]) > radius)
    try:
        classes = expected_classes(run.manifest, np.bincount(data.labels, minlength=len(data.class_names)), n)
    except (KeyError, TypeError, ValueError):
        raise NpgenError(
            f"the manifest of run {run.path} is damaged: its class_mixture or seed is missing or not a number; sample the run again"
        ) from None
    if run.manifest["class_label"] is not None and run.manifest["class_label"] >= len(data.class_names):
        raise NpgenError(
            f"the manifest of run {run.path} is damaged: class_label {run.manifest['class_label']} is not a class of {data.name}; sample the run again"
        )
    pixel_class = classes[column["sample"]]
    wrong_class = int(((pixel_class >= 0) & (data.labels[column["src_image"]] != pixel_class)).sum())
    pairs, per_pair = np.unique(
        column["sample"].astype(np.int64) * data.n_images + column["src_image"], return_counts=True
    )
    per_sample_max = np.zeros(n, np.int64)
    np.maximum.at(per_sample_max, pairs // data.n_images, per_pair)
    distance = column["distance"]
    unproducible = int(((column["n_candidates"] < 1) | ~np.isfinite(distance) | (distance < 0)).sum())
    return VerifyReport(
        n_pixels=n * height * width,
        mismatches=mismatches,
        missing_or_duplicate=int((seen != 1).sum()),
        outside_radius=int(far.sum()),
        wrong_class=wrong_class,
        over_budget=int((per_sample_max > budget).sum()),
        unproducible=unproducible,
        max_source_pixels=int(per_sample_max.max(initial=0)),
        source_budget=budget,
    )


def _classifier_for(train, path: str | os.PathLike | None) -> tuple[object | None, Path, str | None]:
    """(classifier, its path, None) to score in, or (None, path, why not): a named one must load, the default may be absent."""
    from npgen import features

    if path is not None:
        return features.load_classifier(path, train), Path(path), None
    default = features.classifier_path(train.name)
    if not default.is_file():
        return (
            None,
            default,
            f"feature-space scores: no classifier at {default} (python benchmarks/classifier.py {train.name})",
        )
    try:
        return features.load_classifier(default, train), default, None
    except NpgenError as err:
        return None, default, f"feature-space scores: {err}"


def evaluate_run(run_path: str | os.PathLike, data_root=None, classifier: str | os.PathLike | None = None) -> dict:
    """Score a run (`npgen.evaluation`) and write the scores to RUN/eval.json.

    Feature-space scores need torch and a classifier: `classifier` names its file; by default the one
    benchmarks/classifier.py trains for the run's dataset is used when it exists, and without it
    only pixel-space scores are computed (the reason is recorded under "skipped").
    """
    from npgen.evaluation import Reference, evaluate_images

    run = Run(run_path)
    target = run.output_path("eval.json")  # refuses a link there before any work
    train = run.dataset(data_root)
    try:
        test = load_dataset(
            train.name if train.name in known_datasets() else str(train.source),
            split="test",
            data_root=run.data_root(data_root),
        )
    except NpgenError as err:
        raise NpgenError(f"evaluating needs the dataset's test split, which could not be loaded: {err}") from err
    loaded, path, skipped = _classifier_for(train, classifier)
    images = np.asarray(run.samples)
    class_label = run.manifest["class_label"]
    labels = np.full(len(images), -1 if class_label is None else class_label)
    reference = Reference(train, test, loaded, class_label)
    scores = {
        "run": str(run.path),
        "samples": evaluate_images(images, labels, reference),
        "floor": reference.floor(len(images)),
    }
    if loaded is not None:
        scores["classifier"] = {"path": str(path), "test_accuracy": loaded.test_accuracy}
    if skipped:
        scores["skipped"] = skipped
    write_json(target, scores)
    return scores


def trace_pixel(
    run_path: str | os.PathLike,
    sample: int,
    y: int,
    x: int,
    figure: str | os.PathLike | None = None,
    data_root=None,
    max_candidates: int | None = None,
) -> tuple[PixelTrace, Path]:
    """Where pixel (y, x) of a sample was copied from (`Tracer.pixel`), and the path of its figure, written to
    `figure` (default RUN/trace/sample-NNNNN-pixel-Y-X.png)."""
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
    from npgen.store import save_png

    path = Path(figure) if figure else tracer.run.output_path("trace", default)  # no links inside the run
    path.parent.mkdir(parents=True, exist_ok=True)
    save_png(picture, path)
    return path


def open_tracer(run_path: str | os.PathLike, data_root=None, max_candidates: int | None = None) -> Tracer:
    """A `Tracer` over a completed run (its dataset checked against the manifest's SHA-256)."""
    from npgen.tracer import DEFAULT_MAX_CANDIDATES, Tracer

    return Tracer(
        run_path, data_root, max_candidates=DEFAULT_MAX_CANDIDATES if max_candidates is None else max_candidates
    )


def report_run(run_path: str | os.PathLike, out: str | os.PathLike | None = None, data_root=None) -> Path:
    """Write the report of a completed run (tables, figures, report.html) into `out` (default RUN/report); return it."""
    from npgen.report import write_report

    return Path(write_report(run_path, out, data_root))
