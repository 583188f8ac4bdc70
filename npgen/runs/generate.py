"""Generate a run: sample new images (`npgen sample`) or complete given ones (`npgen complete`) into a run folder.

Both take a `GenerationRequest`; `sample_run` and `complete_run` are the same with keyword arguments.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import pyarrow as pa

from npgen.control.classes import resolve_class
from npgen.control.completion import Completion
from npgen.control.exclusion import resolve_exclusion
from npgen.control.regions import parse_class_map, parse_mask
from npgen.data.database import Database, WindowParams, default_path
from npgen.data.datasets import Dataset, data_location, load_dataset, read_image_like
from npgen.errors import NpgenError
from npgen.params import PARAMS
from npgen.rule.cuda import CudaSampler, resolve_device  # numba.cuda itself is imported only for device cuda
from npgen.rule.provenance import Samples
from npgen.rule.cpu import kernels_cached
from npgen.rule.sampler import Sampler
from npgen.runs import ray as cluster
from npgen.runs import summary
from npgen.runs.build import resolve_params
from npgen.runs.describe import describe_settings
from npgen.runs.integrity import MAX_SAMPLES
from npgen.runs.request import CompletionInputs, GenerationRequest
from npgen.runs.run import load_test_split
from npgen.runs.shards import parse_shard, shard_batches
from npgen.runs.store import RunWriter, check_out, check_same_command, control_hashes, run_state, sources_table

ProgressCallback = Callable[[int], None] | None
NoteCallback = Callable[[str], None] | None


@dataclass
class LoadedRequest:
    """What a request loaded before its run folder is written: the data, database, resolved sampler options,
    class, number of samples, and the controls (arrays for the sampler, records for the manifest)."""

    data: Dataset
    db: Database
    options: dict
    class_label: int | None
    n_samples: int
    controls: dict
    records: dict
    device: str
    started: float
    completion: Completion | None = None
    shard: tuple[int, int] | None = None


def sample(
    request: GenerationRequest,
    progress: ProgressCallback = None,
    note: NoteCallback = None,
    planned: ProgressCallback = None,
    within: ProgressCallback = None,
) -> Path:
    """Generate `request.n` samples into the run directory `request.out`, batch by batch, and return its path.

    `request.shard` ("I/K" or (I, K)) writes only the batches of shard I of K (`shard_batches`) into `out`, a
    shard folder that `merge_runs` joins with the others. `request.ray` runs the batches as Ray tasks on the
    cluster at that address, or on a local cluster started for the run when it is `cluster.RAY_LOCAL` ("local",
    see `npgen.runs.ray`; the workers use the CPU sampler); the output is the same either way. `planned(k)` is
    told how many samples this call produces (n, a shard's share, or on resume what is left) before the work starts.

    The explicit parameters of the request override the dataset's preset (`npgen.params.resolve`), and the
    manifest records the resolved values. The run folder is created only once the data, database and options
    have loaded. With `request.resume`, a run, finished or not, continues only with the options it was started
    with (else NpgenError); a finished one is then left untouched (a no-op); a folder without a manifest
    holding nothing but npgen's leftovers is started afresh. `note` is told the run's settings before sampling,
    and when the sampler's kernels are compiled (the first run after installing). A failure before the first batch
    removes the folder again if this call created it. `progress(0)` is called once loading is done, then
    `progress(k)` after each batch of k samples; `within(f)`, while a batch is sampled in this process, as each
    row of its canvases is done (f: the fraction of a sample, every pyramid level's rows counted).
    """
    if request.n < 1:
        raise NpgenError(f"-n must be >= 1, got {request.n}")
    if request.n > MAX_SAMPLES:
        raise NpgenError(f"-n must be in 1..{MAX_SAMPLES} (samples in one run), got {request.n}")
    if request.class_map is not None and request.class_value is not None:
        raise NpgenError("--class and --class-map exclude each other: put the class in the map (e.g. all=cat)")
    shard = parse_shard(request.shard) if request.shard is not None else None
    if (
        request.ray is not None
    ):  # before loading anything: Ray missing, or no cluster at the address, is one line at once
        cluster.import_ray()
        cluster.check_address(request.ray)
    check_out(request.out, request.resume)
    started = time.perf_counter()
    device = _device(request.sampler_options)
    data = load_dataset(request.dataset, data_root=request.data_root, clusters=request.clusters)
    explicit = {name: value for name, value in (request.sampler_options or {}).items() if value is not None}
    # a class map takes one level unless --levels says otherwise: steered samples are measured at one level only
    one_level = {"levels": 1} if request.class_map is not None else {}
    window_params, options = resolve_params(data, request.window, {**one_level, **explicit})
    device = _device_for_levels(device, explicit, options)
    class_label = resolve_class(data.class_names, request.class_value)  # mistakes are told before any build
    class_map = (
        None
        if request.class_map is None
        else parse_class_map(request.class_map, data.class_names, data.height, data.width)
    )
    database = DatabaseOnDemand(lambda: open_database(data, request.db_path, window_params, note))
    controls, records = _exclusion(request.exclude, data, database)  # opens the database only for near:D:
    db = database.opened()
    if class_map is not None:
        controls["class_map"] = class_map
        shares = np.bincount(controls["class_map"].ravel() + 1, minlength=len(db.class_names) + 1)
        records["class_map"] = {
            "spec": request.class_map,
            "pixels": {
                ("any" if c < 0 else db.class_names[c]): int(shares[c + 1])
                for c in range(-1, len(db.class_names))
                if shares[c + 1]
            },
        }
    loaded = LoadedRequest(data, db, options, class_label, request.n, controls, records, device, started, shard=shard)
    return _write_run(request, loaded, progress, note, planned, within)


def complete(
    request: GenerationRequest,
    progress: ProgressCallback = None,
    note: NoteCallback = None,
    planned: ProgressCallback = None,
    within: ProgressCallback = None,
) -> Path:
    """Complete the inputs of `request.completion` (test-split images, or an image file): keep the pixels its mask
    gives and generate the rest, `request.n` completions each, into the run `request.out`.

    Sample i completes input i // n; only generated pixels get provenance (`npgen.control.completion`). With
    no class given the whole split is searched (the completion is conditioned on its given pixels, not on a
    drawn class): class_mixture defaults to 0, and levels to 1 (on MNIST two levels completed no better:
    benchmarks/RESULTS.md, Controls); `--levels L` completes every level (`Completion.at_level`). `progress`,
    `note`, `planned` and `within` are as in `sample`.
    """
    inputs_given, per_input = request.completion or CompletionInputs(mask=""), request.n
    if (inputs_given.test_indices is None) == (inputs_given.image is None):
        raise NpgenError("give the input to complete: --test-index I (repeatable) or --image FILE, not both")
    n_inputs = 1 if inputs_given.image is not None else len(inputs_given.test_indices)
    if per_input < 1:
        raise NpgenError(f"-n (completions per input) must be >= 1, got {per_input}")
    if per_input > MAX_SAMPLES // max(n_inputs, 1):
        raise NpgenError(
            f"-n (completions per input) must be in 1..{MAX_SAMPLES // max(n_inputs, 1)} ({MAX_SAMPLES} samples in "
            f"all), got {per_input}"
        )
    if request.shard is not None or request.ray is not None:
        raise NpgenError("a completion runs whole on this machine: --shard and --ray apply to `npgen sample` only")
    check_out(request.out, request.resume)
    started = time.perf_counter()
    device = _device(request.sampler_options)
    data = load_dataset(request.dataset, data_root=request.data_root, clusters=request.clusters)
    if inputs_given.image is not None:
        inputs = read_image_like(inputs_given.image, data)[None]
        source = {"image": str(Path(inputs_given.image).resolve())}
    else:
        test = load_test_split(data, request.data_root, "completing test images")
        given = list(inputs_given.test_indices)
        if not given or not all(isinstance(i, (int, np.integer)) and 0 <= i < test.n_images for i in given):
            raise NpgenError(f"--test-index must lie in 0..{test.n_images - 1}, the test split's images")
        indices = np.asarray(given, dtype=np.int64)
        inputs = test.images[indices]
        source = {"test_indices": indices.tolist()}
    known = np.broadcast_to(parse_mask(inputs_given.mask, data.height, data.width), inputs.shape[:3]).copy()
    completion = Completion(np.ascontiguousarray(inputs), known, per_input)
    explicit = {name: value for name, value in (request.sampler_options or {}).items() if value is not None}
    window_params, options = resolve_params(data, request.window, {"class_mixture": 0, "levels": 1, **explicit})
    device = _device_for_levels(device, explicit, options)
    class_label = resolve_class(data.class_names, request.class_value)  # mistakes are told before any build
    database = DatabaseOnDemand(lambda: open_database(data, request.db_path, window_params, note))
    controls, records = _exclusion(request.exclude, data, database)  # opens the database only for near:D:
    db = database.opened()
    controls.update(inputs=completion.inputs, known=completion.known)
    records["completion"] = {**source, "mask": inputs_given.mask, "per_input": per_input, "n_inputs": len(inputs)}
    loaded = LoadedRequest(
        data, db, options, class_label, completion.n_samples, controls, records, device, started, completion
    )
    return _write_run(request, loaded, progress, note, planned, within)


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
    progress: ProgressCallback = None,
    note: NoteCallback = None,
    exclude: list[str] | tuple[str, ...] = (),
    class_map: str | None = None,
    shard: str | tuple[int, int] | None = None,
    ray: str | None = None,
    planned: ProgressCallback = None,
    clusters: int | None = None,
) -> Path:
    """`sample` of the request these arguments make (`GenerationRequest` says what each is)."""
    request = _keyword_request(locals())
    return sample(request, progress, note, planned)


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
    progress: ProgressCallback = None,
    note: NoteCallback = None,
    exclude: list[str] | tuple[str, ...] = (),
) -> Path:
    """`complete` of the request these arguments make: `per_input` completions of each input."""
    request = _keyword_request(locals(), n=per_input, completion=CompletionInputs(mask, test_indices, image))
    return complete(request, progress, note)


def _keyword_request(arguments: dict, **others) -> GenerationRequest:
    """The request of `sample_run` or `complete_run`: each of its `arguments` that names a field, and `others`."""
    names = {field.name for field in fields(GenerationRequest)}
    return GenerationRequest(**{name: value for name, value in arguments.items() if name in names}, **others)


class DatabaseOnDemand:
    """A database opened (or built) by `open` the first time it is used, so that checks of a request that need
    no database fail before a first build starts."""

    def __init__(self, open: Callable[[], Database]) -> None:
        self.open, self.database = open, None

    def opened(self) -> Database:
        if self.database is None:
            self.database = self.open()
        return self.database

    def __getattr__(self, name: str):
        return getattr(self.opened(), name)


def open_database(data: Dataset, db_path, params: WindowParams, note: NoteCallback = None) -> Database:
    """`Database.open_or_build`, telling `note` first when the database is to be built (the first run on a dataset)."""
    path = Path(db_path) if db_path is not None else default_path(data, params)
    if note is not None and not (path / "manifest.json").exists():
        note(f"building the {data.name} window database in {path} (once; it is reused by later runs) ...")
    return Database.open_or_build(data, path, params)


def _exclusion(exclude, data: Dataset, db: Database) -> tuple[dict, dict]:
    """(control arrays, manifest records) for an exclusion: {"excluded": indices}, {"exclusion": record}."""
    if not exclude:
        return {}, {"exclusion": None}
    resolved = resolve_exclusion(list(exclude), data, db)
    if len(np.unique(resolved.images)) >= data.n_images:
        raise NpgenError(
            f"--exclude {' '.join(exclude)} excludes all {data.n_images} training images, leaving nothing to copy "
            "from; exclude fewer (a smaller near:D distance)"
        )
    return {"excluded": resolved.images}, {"exclusion": resolved.record()}


def _device(sampler_options: dict | None) -> str:
    """'cpu' or 'cuda' for the `device` option (GPU hook, npgen.rule.cuda): checked before any data is loaded."""
    options = sampler_options or {}
    device = options.get("device") or PARAMS["device"].default
    if device == "auto" and options.get("semantic_eps") is not None:
        return "cpu"  # the semantic filter runs on the CPU only; a pyramid, once resolved: `_device_for_levels`
    return resolve_device(device)


def _device_for_levels(device: str, explicit: dict, options: dict) -> str:
    """--device auto samples a pyramid (the preset's too, e.g. MNIST's) on the CPU: the CUDA sampler samples one
    level only. An explicit --device cuda stays, and the CUDA sampler says so in one line."""
    if device == "cuda" and explicit.get("device") == "auto" and options["levels"] > 1:
        return "cpu"
    return device


def _write_run(
    request: GenerationRequest,
    loaded: LoadedRequest,
    progress: ProgressCallback,
    note: NoteCallback,
    planned: ProgressCallback = None,
    within: ProgressCallback = None,
) -> Path:
    """Sample the run's batches into `request.out` (see `sample`), with the controls that restrict its sources."""
    out, db, n, shard = request.out, loaded.db, loaded.n_samples, loaded.shard
    if request.resume and run_state(out) == "empty" and note is not None:
        note(f"{out} has no manifest (a run stopped before it began); starting it afresh there")
    controls, completion = loaded.controls, loaded.completion
    sampler = (CudaSampler if loaded.device == "cuda" else Sampler)(  # the same output on either
        db,
        **loaded.options,
        excluded=controls.get("excluded"),
        class_map=controls.get("class_map"),
        completion=completion,
    )
    records = loaded.records
    for name in ("exclusion", "class_map", "completion"):
        records.setdefault(name, None)
    ready = time.perf_counter()
    n_batches = -(-n // sampler.batch_size)
    batches = list(range(n_batches)) if shard is None else shard_batches(n_batches, *shard)
    location = data_location(request.dataset, request.data_root)
    manifest = {
        "dataset": db.dataset,
        "data_root": location,
        "database": {"id": db.id, "path": str(db.path.resolve()), "params": asdict(db.params)},
        "params": sampler.params(),
        "class_label": loaded.class_label,
        "class_name": None if loaded.class_label is None else db.class_names[loaded.class_label],
        "n_samples": n,
        **records,
        "command": request.command or " ".join(sys.argv),
    }
    if shard is not None:
        manifest["shard"] = {"index": shard[0], "count": shard[1], "n_batches": n_batches, "batches": batches}
    if request.resume and run_state(out) == "complete":
        check_same_command(Path(out), {**manifest, "controls": control_hashes(controls)})
        return Path(out)  # the same command, finished: its manifest, samples and timings stay as they are
    writer = RunWriter(out, manifest, resume=request.resume, controls=controls)
    sizes = {index: min(sampler.batch_size, n - index * sampler.batch_size) for index in batches}
    pending = [(index, index * sampler.batch_size, sizes[index]) for index in batches if not writer.has_batch(index)]
    left = sum(size for _, _, size in pending)  # what this call samples: rates and the bar count only that
    if note is not None:
        note(describe_settings(writer.manifest, out))
        if left < sum(sizes.values()):
            note(f"resuming {out}: {sum(sizes.values()) - left} samples already written, {left} to sample")
        if pending and loaded.device == "cpu" and request.ray is None and not kernels_cached():
            note("compiling the sampler kernels once (about 30 s; numba keeps them for later runs)")
    if planned is not None:
        planned(left)
    if progress is not None:
        progress(0)  # loading is done: the work starts now
    try:
        if request.ray is None:
            produced = local_batches(sampler, db, loaded.class_label, pending)
        else:
            spec = cluster.WorkerSpec.of(
                db,
                request.dataset,
                location,
                loaded.options,
                loaded.class_label,
                controls,
                completion,
                request.clusters,
            )
            produced = cluster.ray_batches(spec, pending, address=request.ray, note=note)
        if within is not None and request.ray is None:
            rows_per_sample = sampler.rows_per_sample
            sampler.on_rows = lambda canvases: within(canvases / rows_per_sample)
        with closing(produced):  # an error or Ctrl-C here stops the batches still running (Ray tasks)
            for index, samples, rows in produced:
                writer.write_batch(index, samples, rows)
                if progress is not None:
                    progress(sizes[index])
    except BaseException:
        writer.abandon()  # only a folder this call created, holding nothing but what it wrote
        raise
    sampled = time.perf_counter()
    produced_samples = left
    timings = {
        "load_seconds": round(ready - loaded.started, 3),
        "sample_seconds": round(sampled - ready, 3),
        "images_per_second": round(produced_samples / max(sampled - ready, 1e-9), 3),
    }
    if shard is not None:
        writer.finish_shard(batches, timings, sources=sources_table(loaded.data))
    else:
        writer.finish(n_batches, timings, sources=sources_table(loaded.data))
    return writer.path


def local_batches(
    sampler: Sampler, db: Database, class_label: int | None, pending: list[tuple[int, int, int]]
) -> Iterator[tuple[int, Samples, pa.Table]]:
    """Sample each pending (batch index, first sample, size) in this process; yields (index, samples, summary)."""
    for index, first, size in pending:
        samples = sampler.sample_batch(np.arange(first, first + size), class_label)
        # through the module: benchmarks/speed/run_share.py times sample_summary by replacing it there
        yield index, samples, summary.sample_summary(samples, db)
