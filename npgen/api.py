"""The Python API the CLI is a thin layer over: build a database, sample, verify, evaluate, trace and report a run.

The sampler, the database and FAISS are imported only by the functions that need them, so reading a run
(`trace_pixel`, `trace_sample`, `report_run`) loads none of them.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from npgen.control.classes import resolve_class
from npgen.data.datasets import data_location, known_datasets, load_dataset
from npgen.data.datasets import preset as preset_for
from npgen.data.files import write_json
from npgen.errors import NpgenError
from npgen.params import PARAMS, SAMPLER_PARAMS, resolve
from npgen.runs.store import Run, RunWriter, check_out, run_state, shard_batches, sources_table

if TYPE_CHECKING:
    import pyarrow as pa
    from PIL import Image

    from npgen.analysis.tracer import PixelTrace, Tracer
    from npgen.data.database import Database, WindowParams


def resolve_params(data, window: dict | None = None, sampler_options: dict | None = None) -> tuple[WindowParams, dict]:
    """(window parameters, sampler options) for a dataset: explicit values over its preset over the defaults."""
    from npgen.data.database import WindowParams

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
    from npgen.data.database import Database, build_lock, default_path, is_database

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
    exclude: list[str] | tuple[str, ...] = (),
    class_map: str | None = None,
    shard: str | tuple[int, int] | None = None,
    ray: str | None = None,
    planned: Callable[[int], None] | None = None,
) -> Path:
    """Generate n samples into the run directory `out`, batch by batch, and return its path.

    `shard` ("I/K" or (I, K)) writes only the batches of shard I of K (`store.shard_batches`) into `out`, a
    shard folder that `merge_runs` joins with the others. `ray` runs the batches as Ray tasks on the cluster at
    that address, or on a local cluster started for the run when it is `cluster.RAY_LOCAL` ("local", see
    `npgen.runs.ray`; the workers use the CPU sampler); the output is the same either way. `planned(k)` is told
    how many samples this call produces (n, or a shard's share) before the work starts.

    `window` and `sampler_options` hold explicit parameters (None = unset); the rest come from the
    dataset's preset (`npgen.params.resolve`), and the manifest records the resolved values.
    `exclude` names training images that may give no pixel (`npgen.control.exclusion`); `class_map` steers
    regions of every sample to classes (`npgen.control.regions.parse_class_map`).
    The run folder is created only once the data, database and options have loaded. With `resume`, a
    complete run is left untouched (a no-op); a folder without a manifest holding nothing but npgen's
    leftovers is started afresh (`note` is told). A failure before the first batch removes the folder
    again if this call created it. `progress(0)` is called once loading is done, then `progress(k)` after
    each batch of k samples.
    """
    if n < 1:
        raise NpgenError(f"-n must be >= 1, got {n}")
    if class_map is not None and class_value is not None:
        raise NpgenError("--class and --class-map exclude each other: put the class in the map (e.g. all=cat)")
    shard = parse_shard(shard) if shard is not None else None
    if ray is not None:  # before loading anything: Ray missing, or no cluster at the address, is one line at once
        from npgen.runs import ray as cluster

        cluster.import_ray()
        cluster.check_address(ray)
    if check_out(out, resume) == "complete":
        return Path(out)  # nothing to do: the manifest, samples and timings stay as they are
    from npgen.control.regions import parse_class_map
    from npgen.data.database import Database

    started = time.perf_counter()
    device = _device(sampler_options)
    data = load_dataset(dataset, data_root=data_root)
    window_params, options = resolve_params(data, window, sampler_options)
    db = Database.open_or_build(data, db_path, window_params)
    class_label = resolve_class(db.class_names, class_value)
    controls, records = _exclusion(exclude, data, db)
    if class_map is not None:
        controls["class_map"] = parse_class_map(class_map, db.class_names, db.height, db.width)
        shares = np.bincount(controls["class_map"].ravel() + 1, minlength=len(db.class_names) + 1)
        records["class_map"] = {
            "spec": class_map,
            "pixels": {
                ("any" if c < 0 else db.class_names[c]): int(shares[c + 1])
                for c in range(-1, len(db.class_names))
                if shares[c + 1]
            },
        }
    return _write_run(
        out,
        dataset,
        data,
        db,
        options,
        controls,
        records,
        n,
        class_label,
        data_root,
        resume,
        command,
        progress,
        note,
        started,
        device=device,
        shard=shard,
        ray=ray,
        planned=planned,
    )


def complete_run(
    out: str | os.PathLike,
    dataset: str,
    mask: str,
    per_input: int = 1,
    test_indices: list[int] | None = None,
    image: str | os.PathLike | None = None,
    class_value: str | int | None = None,
    data_root=None,
    db_path=None,
    window: dict | None = None,
    sampler_options: dict | None = None,
    resume: bool = False,
    command: str | None = None,
    progress: Callable[[int], None] | None = None,
    note: Callable[[str], None] | None = None,
    exclude: list[str] | tuple[str, ...] = (),
) -> Path:
    """Complete inputs (test-split images `test_indices`, or an `image` file): keep the pixels `mask` gives
    (`npgen.control.regions.parse_mask`) and generate the rest, `per_input` completions each, into the run `out`.

    Sample i completes input i // per_input; only generated pixels get provenance (`npgen.control.completion`). With
    no class given the whole split is searched (the completion is conditioned on its given pixels, not on a
    drawn class): class_mixture defaults to 0.
    """
    from npgen.control.completion import Completion
    from npgen.control.regions import parse_mask
    from npgen.data.database import Database

    if (test_indices is None) == (image is None):
        raise NpgenError("give the input to complete: --test-index I (repeatable) or --image FILE, not both")
    if per_input < 1:
        raise NpgenError(f"-n (completions per input) must be >= 1, got {per_input}")
    if check_out(out, resume) == "complete":
        return Path(out)
    started = time.perf_counter()
    device = _device(sampler_options)
    data = load_dataset(dataset, data_root=data_root)
    if image is not None:
        from npgen.data.datasets import read_image_like

        inputs = read_image_like(image, data)[None]
        source = {"image": str(Path(image).resolve())}
    else:
        test = _test_split(data, data_root, "completing test images")
        indices = np.asarray(test_indices, dtype=np.int64)
        if len(indices) == 0 or indices.min() < 0 or indices.max() >= test.n_images:
            raise NpgenError(f"--test-index must lie in 0..{test.n_images - 1}, the test split's images")
        inputs = test.images[indices]
        source = {"test_indices": indices.tolist()}
    known = np.broadcast_to(parse_mask(mask, data.height, data.width), inputs.shape[:3]).copy()
    completion = Completion(np.ascontiguousarray(inputs), known, per_input)
    explicit = {name: value for name, value in (sampler_options or {}).items() if value is not None}
    window_params, options = resolve_params(data, window, {"class_mixture": 0, **explicit})
    db = Database.open_or_build(data, db_path, window_params)
    class_label = resolve_class(db.class_names, class_value)
    controls, records = _exclusion(exclude, data, db)
    controls.update(inputs=completion.inputs, known=completion.known)
    records["completion"] = {**source, "mask": mask, "per_input": per_input, "n_inputs": len(inputs)}
    return _write_run(
        out,
        dataset,
        data,
        db,
        options,
        controls,
        records,
        completion.n_samples,
        class_label,
        data_root,
        resume,
        command,
        progress,
        note,
        started,
        completion=completion,
        device=device,
    )


def _test_split(train, data_root, what: str = "this"):
    """The test split of a training split's dataset (a known one, or the same image folder); `what` needs it."""
    try:
        return load_dataset(
            train.name if train.name in known_datasets() else str(train.source), split="test", data_root=data_root
        )
    except NpgenError as err:
        raise NpgenError(f"{what} needs the dataset's test split, which could not be loaded: {err}") from err


def _exclusion(exclude, data, db) -> tuple[dict, dict]:
    """(control arrays, manifest records) for an exclusion: {"excluded": indices}, {"exclusion": record}."""
    if not exclude:
        return {}, {"exclusion": None}
    from npgen.control.exclusion import resolve_exclusion

    resolved = resolve_exclusion(list(exclude), data, db)
    return {"excluded": resolved.images}, {"exclusion": resolved.record()}


def _device(sampler_options: dict | None) -> str:
    """'cpu' or 'cuda' for the `device` option (GPU hook, npgen.rule.cuda): checked before any data is loaded."""
    from npgen.rule.cuda import resolve_device

    options = sampler_options or {}
    device = options.get("device") or PARAMS["device"].default
    if device == "auto" and options.get("semantic_eps") is not None:
        return "cpu"  # the semantic filter runs on the CPU only
    return resolve_device(device)


def _write_run(
    out,
    dataset: str,
    data,
    db,
    options: dict,
    controls: dict,
    records: dict,
    n: int,
    class_label: int | None,
    data_root,
    resume: bool,
    command: str | None,
    progress,
    note,
    started: float,
    completion=None,
    device: str = "cpu",
    shard: tuple[int, int] | None = None,
    ray: str | None = None,
    planned: Callable[[int], None] | None = None,
) -> Path:
    """Sample the run's batches into `out` (see `sample_run`), with the controls that restrict its sources."""
    from npgen.rule.cuda import CudaSampler  # GPU hook (npgen.rule.cuda): numba.cuda is imported only for device cuda
    from npgen.rule.sampler import Sampler

    if resume and run_state(out) == "empty" and note is not None:
        note(f"{out} has no manifest (a run stopped before it began); starting it afresh there")
    sampler = (CudaSampler if device == "cuda" else Sampler)(  # the same output on either
        db, **options, excluded=controls.get("excluded"), class_map=controls.get("class_map"), completion=completion
    )
    for name in ("exclusion", "class_map", "completion"):
        records.setdefault(name, None)
    loaded = time.perf_counter()
    n_batches = -(-n // sampler.batch_size)
    batches = list(range(n_batches)) if shard is None else shard_batches(n_batches, *shard)
    manifest = {
        "dataset": db.dataset,
        "data_root": data_location(dataset, data_root),
        "database": {"id": db.id, "path": str(db.path.resolve()), "params": asdict(db.params)},
        "params": sampler.params(),
        "class_label": class_label,
        "class_name": None if class_label is None else db.class_names[class_label],
        "n_samples": n,
        **records,
        "command": command or " ".join(sys.argv),
    }
    if shard is not None:
        manifest["shard"] = {"index": shard[0], "count": shard[1], "n_batches": n_batches, "batches": batches}
    writer = RunWriter(out, manifest, resume=resume, controls=controls)
    sizes = {index: min(sampler.batch_size, n - index * sampler.batch_size) for index in batches}
    if planned is not None:
        planned(sum(sizes.values()))
    if progress is not None:
        progress(0)  # loading is done: the work starts now
    try:
        pending = []
        for index in batches:
            if writer.has_batch(index):
                if progress is not None:
                    progress(sizes[index])
            else:
                pending.append((index, index * sampler.batch_size, sizes[index]))
        if ray is None:
            produced = local_batches(sampler, db, class_label, pending)
        else:
            from npgen.runs import ray as cluster

            location = data_location(dataset, data_root)
            spec = cluster.WorkerSpec.of(db, dataset, location, options, class_label, controls, completion)
            produced = cluster.ray_batches(spec, pending, address=ray, note=note)
        with closing(produced):  # an error or Ctrl-C here stops the batches still running (Ray tasks)
            for index, samples, summary in produced:
                writer.write_batch(index, samples, summary)
                if progress is not None:
                    progress(sizes[index])
    except BaseException:
        writer.abandon()  # only a folder this call created, holding nothing but what it wrote
        raise
    sampled = time.perf_counter()
    produced_samples = sum(sizes.values())
    timings = {
        "load_seconds": round(loaded - started, 3),
        "sample_seconds": round(sampled - loaded, 3),
        "images_per_second": round(produced_samples / max(sampled - loaded, 1e-9), 3),
    }
    if shard is not None:
        writer.finish_shard(batches, timings, sources=sources_table(data))
    else:
        writer.finish(n_batches, timings, sources=sources_table(data))
    return writer.path


def local_batches(sampler, db, class_label: int | None, pending: list[tuple[int, int, int]]):
    """Sample each pending (batch index, first sample, size) in this process; yields (index, samples, summary)."""
    from npgen.evaluation.metrics import sample_summary

    for index, first, size in pending:
        samples = sampler.sample_batch(np.arange(first, first + size), class_label)
        yield index, samples, sample_summary(samples, db)


# ---- sharded runs: any machine samples any shard, `merge_runs` joins them ----


def parse_shard(value: str | tuple[int, int]) -> tuple[int, int]:
    """ "I/K" (or (I, K)) -> (I, K), shard I of K counted from 0; NpgenError unless 0 <= I < K."""
    if isinstance(value, str):
        try:
            index, count = (int(part) for part in value.split("/"))
        except ValueError:
            raise NpgenError(f"--shard takes I/K (shard I of K, counted from 0, e.g. 0/3), got {value!r}") from None
    else:
        index, count = value
    if not (count >= 1 and 0 <= index < count):
        raise NpgenError(f"--shard {index}/{count}: I must be in 0..K-1 and K >= 1 (e.g. 0/3, 1/3, 2/3)")
    return int(index), int(count)


def merge_runs(out: str | os.PathLike, shards: list[str | os.PathLike], command: str | None = None) -> Path:
    """Join the complete shard folders of one `npgen sample ... --shard I/K` command into the run `out`.

    The result is bit-identical to that command run without --shard (samples.npy, every Parquet row, the
    PNGs; the manifest differs in its timings and command line). Refused with a one-line NpgenError, before
    `out` is created, unless every shard is complete, all come from the same command (data, database id,
    parameters, class, n, K), and each of shards 0..K-1 is given exactly once with all its batches. `out` is
    assembled in a hidden temporary folder beside it and renamed into place, so it is whole or absent.
    """
    import shutil
    import tempfile

    import pyarrow.parquet as pq

    from npgen.runs.store import BATCH_PARTS, SOURCES_FILE, batch_part, command_difference, has_batch, read_manifest

    started = time.perf_counter()
    out = Path(out)
    if not shards:
        raise NpgenError("merge needs the shard folders: npgen merge OUT SHARD...")
    if run_state(out) != "absent":
        raise NpgenError(f"{out} already exists; choose a new OUT for the merged run")
    manifests = []
    for path in map(Path, shards):
        manifest = read_manifest(path)
        shard = manifest.get("shard")
        if not isinstance(shard, dict):
            raise NpgenError(f"{path} is a whole run, not a shard (sampled without --shard); pass only shard folders")
        where = f"shard {path} ({shard.get('index')}/{shard.get('count')})"
        if manifest.get("status") != "complete":
            raise NpgenError(
                f"{where} is incomplete; finish it with its `npgen sample ... --shard` command and --resume"
            )
        manifests.append((path, manifest))
    first_path, first = manifests[0]

    def as_command(manifest: dict) -> dict:  # the shard index is what differs between shards of one command
        return {**manifest, "shard": {key: manifest["shard"].get(key) for key in ("count", "n_batches")}}

    seen: dict[int, Path] = {}
    for path, manifest in manifests:
        difference = command_difference(as_command(first), as_command(manifest), str(first_path), str(path))
        if difference is not None:
            key, differ = difference
            raise NpgenError(
                f"shards {first_path} and {path} come from different commands: their {key} differs ({differ})"
            )
        index = manifest["shard"]["index"]
        if index in seen:
            raise NpgenError(
                f"{seen[index]} and {path} are both shard {index}/{manifest['shard']['count']} (overlapping shards); pass each shard once"
            )
        seen[index] = path
    count, n_batches = first["shard"]["count"], first["shard"]["n_batches"]
    missing = sorted(set(range(count)) - set(seen))
    if missing:
        names = ", ".join(f"{i}/{count}" for i in missing)
        raise NpgenError(f"shards {names} are missing; sample them with --shard and pass all {count} shards")
    owner = {}
    for index, path in sorted(seen.items()):
        for batch in shard_batches(n_batches, index, count):
            if not has_batch(path, batch):
                raise NpgenError(
                    f"shard {path} ({index}/{count}) lacks batch {batch}; resume it with its `npgen sample ... --shard` command and --resume"
                )
            owner[batch] = path
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp-"))
    try:
        record = {
            k: v
            for k, v in first.items()
            if k not in ("format", "npgen_version", "status", "started", "finished", "timings", "shard", "controls")
        }
        record["command"] = command or " ".join(sys.argv)
        record["merged_from"] = [
            {"shard": f"{i}/{count}", "path": str(p.resolve()), "command": dict(manifests)[p].get("command")}
            for i, p in sorted(seen.items())
        ]
        writer = RunWriter(work / "run", record, controls=_shard_controls(first_path, first))
        for batch, path in owner.items():
            for kind, suffix in BATCH_PARTS:
                shutil.copyfile(batch_part(path, kind, batch, suffix), batch_part(writer.path, kind, batch, suffix))
        shard_timings = [dict(manifests)[p].get("timings") or {} for p in seen.values()]
        sample_seconds = sum(t.get("sample_seconds", 0.0) for t in shard_timings)
        if (first_path / SOURCES_FILE).exists():
            pq.read_metadata(first_path / SOURCES_FILE)  # a damaged copy is refused here, not in the merged run
            shutil.copyfile(first_path / SOURCES_FILE, writer.path / SOURCES_FILE)
        writer.finish(
            n_batches,
            {
                "shards": count,
                "load_seconds": max((t.get("load_seconds", 0.0) for t in shard_timings), default=0.0),
                "sample_seconds": round(sample_seconds, 3),
                "images_per_second": round(first["n_samples"] / max(sample_seconds, 1e-9), 3),
                "merge_seconds": round(time.perf_counter() - started, 3),
            },
        )
        os.rename(writer.path, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out


def _shard_controls(path: Path, manifest: dict) -> dict:
    """The control arrays (exclusion, class map, completion inputs) a shard folder keeps, checked against the
    SHA-256 its manifest records, for the merged run to keep the same."""
    from npgen.data.files import array_sha256

    controls = {}
    for name, digest in (manifest.get("controls") or {}).items():
        try:
            array = np.load(path / "controls" / f"{name}.npy")
        except (OSError, ValueError):
            array = None
        if array is None or array_sha256(array) != digest:
            raise NpgenError(f"shard {path} has a missing or damaged controls/{name}.npy; sample that shard again")
        controls[name] = array
    return controls


@dataclass
class VerifyReport:
    """What `verify_run` found: every count but n_pixels must be 0 for a faithful run.

    over_budget counts samples that took more than the run's source budget from one training image;
    wrong_class counts pixels from an image outside the sample's class (requested, drawn by the
    mixture: verify re-draws it from the seed, or its region's class under a class map); unproducible
    counts pixels no admissible rule gives (no admissible candidate recorded, or a distance that is not
    a finite number >= 0); excluded_pixels counts pixels copied from an excluded training image;
    given_changed counts a completion's given pixels that differ from its input (or the input from the
    test image it names). missing_or_duplicate counts pixels without exactly one provenance row (a
    completion's given pixels: without any).
    """

    n_pixels: int
    mismatches: int
    missing_or_duplicate: int
    outside_radius: int
    wrong_class: int
    over_budget: int
    unproducible: int
    excluded_pixels: int
    given_changed: int
    max_source_pixels: int
    source_budget: int
    n_excluded_images: int

    @property
    def ok(self) -> bool:
        counts = (
            self.mismatches,
            self.missing_or_duplicate,
            self.outside_radius,
            self.wrong_class,
            self.over_budget,
            self.unproducible,
            self.excluded_pixels,
            self.given_changed,
        )
        return not any(counts)


def expected_classes(manifest: dict, class_counts: np.ndarray, n: int) -> np.ndarray:
    """The class each of a run's n samples must draw from (-1: any), re-derived from its manifest."""
    from npgen.rule.sampler import draw_classes

    params = manifest["params"]
    if manifest["class_label"] is not None:
        return np.full(n, manifest["class_label"], np.int64)
    if not params.get("class_mixture", 0) or len(class_counts) < 2 or manifest.get("class_map"):
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
    labels = data.labels
    if data.unlabelled:  # a flat folder's classes are clusters: derive them again rather than trust the cache
        from npgen.data.datasets import cluster_labels

        labels = cluster_labels(data.images)
    excluded = run.control("excluded")
    excluded = np.zeros(0, np.int64) if excluded is None else excluded
    included = np.ones(data.n_images, dtype=bool)
    if len(excluded) and (excluded.min() < 0 or excluded.max() >= data.n_images):
        raise NpgenError(f"{run.path}/controls/excluded.npy names images outside the split; the run was altered")
    included[excluded] = False
    try:
        class_counts = np.bincount(labels[included], minlength=len(data.class_names))
        classes = expected_classes(run.manifest, class_counts, n)
    except (KeyError, TypeError, ValueError):
        raise NpgenError(
            f"the manifest of run {run.path} is damaged: its class_mixture or seed is missing or not a number; sample the run again"
        ) from None
    if run.manifest["class_label"] is not None and run.manifest["class_label"] >= len(data.class_names):
        raise NpgenError(
            f"the manifest of run {run.path} is damaged: class_label {run.manifest['class_label']} is not a class of {data.name}; sample the run again"
        )
    pixel_class = classes[column["sample"]]
    class_map = run.control("class_map")
    if class_map is not None:
        pixel_class = class_map[column["y"], column["x"]]
    wrong_class = int(((pixel_class >= 0) & (labels[column["src_image"]] != pixel_class)).sum())
    pairs, per_pair = np.unique(
        column["sample"].astype(np.int64) * data.n_images + column["src_image"], return_counts=True
    )
    per_sample_max = np.zeros(n, np.int64)
    np.maximum.at(per_sample_max, pairs // data.n_images, per_pair)
    distance = column["distance"]
    unproducible = int(((column["n_candidates"] < 1) | ~np.isfinite(distance) | (distance < 0)).sum())
    known, given_changed = _check_given(run, samples, data, data_root)
    return VerifyReport(
        n_pixels=n * height * width,
        mismatches=mismatches,
        missing_or_duplicate=int((seen != (~known).ravel()).sum()),
        outside_radius=int(far.sum()),
        wrong_class=wrong_class,
        over_budget=int((per_sample_max > budget).sum()),
        unproducible=unproducible,
        excluded_pixels=int((~included[column["src_image"]]).sum()),
        given_changed=given_changed,
        max_source_pixels=int(per_sample_max.max(initial=0)),
        source_budget=budget,
        n_excluded_images=int(len(excluded)),
    )


def _check_given(run: Run, samples: np.ndarray, train, data_root) -> tuple[np.ndarray, int]:
    """((n, H, W) bool given pixels, how many differ from the input): for a completion run; none otherwise.

    A completion of test-split images is checked against the test split itself, not only the stored input.
    """
    n = len(samples)
    record = run.manifest.get("completion")
    if not record:
        return np.zeros(samples.shape[:3], dtype=bool), 0
    inputs, known = run.control("inputs"), run.control("known")
    try:
        per_input = int(record["per_input"])
    except (KeyError, TypeError, ValueError):
        raise NpgenError(f"the manifest of run {run.path} is damaged: its completion record lacks per_input") from None
    if inputs is None or known is None or len(inputs) * per_input != n or known.shape != inputs.shape[:3]:
        raise NpgenError(f"run {run.path} is a completion without matching controls/inputs.npy and known.npy")
    which = np.arange(n) // per_input
    changed = (samples != inputs[which]).any(axis=-1) & known[which]
    if record.get("test_indices") is not None:
        test = _test_split(train, run.data_root(data_root), "verifying a completion of test images")
        original = test.images[np.asarray(record["test_indices"], dtype=np.int64)]
        changed |= (original[which] != inputs[which]).any(axis=-1) & known[which]
    return known[which], int(changed.sum())


def _classifier_for(train, path: str | os.PathLike | None) -> tuple[object | None, Path, str | None]:
    """(classifier, its path, None) to score in, or (None, path, why not): a named one must load, the default may be absent."""
    from npgen.evaluation import features

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
    """Score a run (`npgen.evaluation.scores`) and write the scores to RUN/eval.json.

    Feature-space scores need torch and a classifier: `classifier` names its file; by default the one
    benchmarks/classifier.py trains for the run's dataset is used when it exists, and without it
    only pixel-space scores are computed (the reason is recorded under "skipped").
    """
    from npgen.evaluation.scores import Reference, evaluate_images

    run = Run(run_path)
    target = run.output_path("eval.json")  # refuses a link there before any work
    train = run.dataset(data_root)
    test = _test_split(train, run.data_root(data_root), "evaluating")
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
    from npgen.runs.store import save_png

    path = Path(figure) if figure else tracer.run.output_path("trace", default)  # no links inside the run
    path.parent.mkdir(parents=True, exist_ok=True)
    save_png(picture, path)
    return path


def open_tracer(run_path: str | os.PathLike, data_root=None, max_candidates: int | None = None) -> Tracer:
    """A `Tracer` over a completed run (its dataset checked against the manifest's SHA-256)."""
    from npgen.analysis.tracer import DEFAULT_MAX_CANDIDATES, Tracer

    return Tracer(
        run_path, data_root, max_candidates=DEFAULT_MAX_CANDIDATES if max_candidates is None else max_candidates
    )


def report_run(run_path: str | os.PathLike, out: str | os.PathLike | None = None, data_root=None) -> Path:
    """Write the report of a completed run (tables, figures, report.html) into `out` (default RUN/report); return it."""
    from npgen.analysis.report import write_report

    return Path(write_report(run_path, out, data_root))


# ---- audit: per-training-image reverse provenance (npgen/analysis/audit.py) ----


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
    """Audit runs of one dataset by training image (`npgen.analysis.audit`).

    Without `image`: the usage of every training image over all the runs, written to OUT/usage.parquet.
    With `image` (a training image index, or the path of an image file matched by its pixels against the
    training split): every pixel copied from it, to OUT/image-NNNNN.parquet, and a figure
    OUT/image-NNNNN.png. OUT defaults to RUN/audit for one run; several runs need `out`."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from npgen.analysis import audit
    from npgen.data.files import atomic_write, make_dir
    from npgen.runs.store import save_png

    limit = audit.DEFAULT_MAX_CANDIDATES if max_candidates is None else int(max_candidates)
    if limit < 1:
        raise NpgenError(f"--max-candidates must be >= 1, got {limit}")
    audited = audit.open_runs(list(run_paths))
    folder = audit.default_out(audited, out)
    data = audited.runs[0].dataset(data_root)
    if image is None:
        table = audit.usage_table(audited, limit, data.labels, tuple(data.class_names))
        files = audited.runs[0].source_files()
        if files is not None and len(files) == table.num_rows:
            table = table.append_column("file", pa.array(files, pa.string()))
        path = folder / audit.USAGE_FILE
        make_dir(folder)
        atomic_write(path, lambda tmp: pq.write_table(table, tmp, compression="zstd"))
        return AuditResult(
            table, path, None, audit.usage_summary(table, len(audited.runs), audited.total_samples), None
        )
    text = str(image)
    if not text.lstrip("-").isdigit() and Path(text).is_file():
        found = audit.match_image_file(text, data.images)
        if not len(found):
            raise NpgenError(f"--image {text} matches no training image of {data.name} pixel for pixel")
        index = int(found[0])
    else:
        index = audit.check_image_index(text, audited.n_images)
    rows = audit.image_rows(audited, index, limit)
    make_dir(folder)
    path = folder / f"image-{index:05d}.parquet"
    atomic_write(path, lambda tmp: pq.write_table(rows, tmp, compression="zstd"))
    picture = audit.image_figure(
        data.images[index],
        rows,
        [run.samples for run in audited.runs],
        index,
        label=data.class_names[int(data.labels[index])],
    )
    figure = folder / f"image-{index:05d}.png"
    save_png(picture, figure)
    summary = audit.image_summary(rows, index, len(audited.runs), audited.total_samples)
    return AuditResult(rows, path, figure, summary, index)


# ---- information maps: pointwise information about the class per pixel (npgen/analysis/infomap.py) ----

INFOMAP_CHUNK = 1000  # samples scored together: every class's log-probabilities of a chunk are held at once
INFOMAP_FILES = (
    "info.npy",
    "contrast.npy",
    "classes.npy",
    "class_means.npy",
    "contrast_class_means.npy",
    "per_sample.parquet",
    "infomap.json",
    "maps.png",
    "class_means.png",
)


def infomap_run(
    run_path: str | os.PathLike,
    out: str | os.PathLike | None = None,
    data_root=None,
    tau: float | None = None,
    floor: float | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[Path, dict]:
    """Write the information maps of a run's samples (`npgen.analysis.infomap`) to `out` (default RUN/infomap).

    Files: info.npy (N, H, W) float32 bits; contrast.npy the same against the prior mixture; classes.npy (N,) each sample's class; class_means.npy
    (n_classes, H, W) mean map per class (NaN: no sample); per_sample.parquet; infomap.json (smoothing,
    definitions, foreground shares); maps.png and class_means.png. Returns (folder, the JSON record).
    `progress(0)` once loading is done, then `progress(k)` per batch of k images of one class (n_classes
    passes over the run)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from npgen.analysis import infomap
    from npgen.data.database import Database, WindowParams, is_database
    from npgen.data.files import atomic_write, make_dir, write_array
    from npgen.params import INFOMAP_PARAMS
    from npgen.rule.sampler import Sampler
    from npgen.runs.store import save_png

    run = Run(run_path)
    folder = Path(out) if out is not None else run.output_path("infomap")
    smoothing = resolve(INFOMAP_PARAMS, {"tau": tau, "floor": floor})
    data = run.dataset(data_root)
    manifest = run.manifest
    if len(data.class_names) < 2:
        raise NpgenError(f"{data.name} has one class; information about the class needs at least two")
    for control, what in (
        ("completion", "is a completion (its given pixels were not generated)"),
        ("class_map", "steers regions to classes (--class-map)"),
    ):
        if manifest.get(control):
            raise NpgenError(
                f"run {run.path} {what}; information maps need samples generated whole from one class "
                "(npgen sample, with --class or the class mixture)"
            )
    excluded = run.control("excluded")  # the rule without the excluded images, as the run was sampled
    included = np.ones(data.n_images, dtype=bool)
    if excluded is not None:
        included[excluded] = False
    class_counts = np.bincount(data.labels[included], minlength=len(data.class_names))  # the mixture's shares
    samples = np.asarray(run.samples)
    n = len(samples)
    try:
        classes = expected_classes(manifest, class_counts, n)
        window = WindowParams(**manifest["database"]["params"])
        options = {name: manifest["params"][name] for name in SAMPLER_PARAMS}
    except (KeyError, TypeError, ValueError):
        raise NpgenError(
            f"the manifest of run {run.path} is damaged: its database or sampler parameters are incomplete; sample the run again"
        ) from None
    if (classes < 0).any():
        raise NpgenError(
            f"run {run.path} was sampled from every training image (--class-mixture 0), so its samples have no class; "
            "information maps need a class-conditional run or the class mixture"
        )
    tau_value = smoothing["tau"] if smoothing["tau"] is not None else infomap.default_tau(data.channels)
    recorded = manifest["database"].get("path")
    db_path = Path(recorded) if isinstance(recorded, str) and is_database(Path(recorded)) else None
    sampler = Sampler(Database.open_or_build(data, db_path, window), **options, excluded=excluded)
    db = sampler.database
    present = np.flatnonzero(class_counts > 0)
    if progress is not None:
        progress(0)
    own = np.searchsorted(present, classes)
    prior = class_counts[present] / class_counts.sum()
    info, contrast = np.empty(samples.shape[:3]), np.empty(samples.shape[:3])
    own_log_posterior = np.empty(n)
    for first in range(0, n, INFOMAP_CHUNK):  # (chunk, classes, H, W) at a time: memory stays bounded
        chunk = np.arange(first, min(n, first + INFOMAP_CHUNK))
        log_probs = infomap.class_log_probs(
            sampler, samples[chunk], chunk, present, tau_value, smoothing["floor"], progress
        )
        info[chunk], contrast[chunk], log_posterior = infomap.information(log_probs, own[chunk], prior)
        own_log_posterior[chunk] = log_posterior[np.arange(len(chunk)), own[chunk]]
    means = infomap.class_means(info, classes, len(data.class_names))
    contrast_means = infomap.class_means(contrast, classes, len(data.class_names))
    foreground = np.any(samples != db.pad_value, axis=-1)
    per_sample = pa.table(
        {
            "sample": np.arange(n),
            "class": classes,
            "class_name": [data.class_names[c] for c in classes],
            "total_bits": info.reshape(n, -1).sum(axis=1),
            "posterior": np.exp(own_log_posterior),
            "prior": prior[own],
            "foreground_bits": (info * foreground).reshape(n, -1).sum(axis=1),
            "foreground_pixels": foreground.reshape(n, -1).sum(axis=1),
        }
    )
    counts = np.bincount(classes, minlength=len(data.class_names))
    record = {
        "run": str(run.path),
        "n_samples": n,
        "tau": tau_value,
        "floor": smoothing["floor"],
        "units": "bits",
        "definition": "i_p = log2 p(x_p | x_<p, c) - log2 sum_c' p(c' | x_<p) p(x_p | x_<p, c'), teacher forcing, "
        "class mixture with the training class shares; budget relaxed (npgen/analysis/infomap.py)",
        "foreground": f"pixels whose value differs from the pad value {db.pad_value}",
        "foreground_share": infomap.foreground_share(info, foreground),
        "contrast_foreground_share": infomap.foreground_share(contrast, foreground),
        "mean_total_bits": float(per_sample.column("total_bits").to_numpy().mean()),
        "mean_posterior": float(per_sample.column("posterior").to_numpy().mean()),
        "samples_per_class": {name: int(c) for name, c in zip(data.class_names, counts)},
    }
    make_dir(folder)
    write_array(folder / "info.npy", info.astype(np.float32))
    write_array(folder / "classes.npy", classes.astype(np.int64))
    write_array(folder / "contrast.npy", contrast.astype(np.float32))
    write_array(folder / "class_means.npy", means.astype(np.float32))
    write_array(folder / "contrast_class_means.npy", contrast_means.astype(np.float32))
    atomic_write(folder / "per_sample.parquet", lambda tmp: pq.write_table(per_sample, tmp))
    write_json(folder / "infomap.json", record)
    shown = min(n, 32)
    labels = [f"{i}: {data.class_names[c]}" for i, c in zip(range(shown), classes)]
    save_png(infomap.maps_figure(samples[:shown], info[:shown], contrast[:shown], labels), folder / "maps.png")
    save_png(infomap.means_figure(means, contrast_means, list(data.class_names), counts), folder / "class_means.png")
    return folder, record
