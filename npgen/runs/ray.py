"""The Ray backend of `npgen sample --ray [ADDRESS]`: a run's batches as Ray tasks, written by the driver.

Ray is imported here only, when --ray is used (`import_ray`). Each batch is one task; a worker opens
the database from the path the driver uses (a shared folder), or, where that path holds none, the one in its
own cache, built once per node under the same lock as `npgen build`. Either way its content id must equal
the driver's, so every worker samples from the same database. A sample depends only on (seed, index,
class), so the batches come back in any order and the run the driver writes (`store.RunWriter`) is
bit-identical to a local one; an interrupted run resumes from the batches already written.
"""

from __future__ import annotations

import logging
import re
import socket
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numba
import numpy as np
import pyarrow as pa

from npgen.data.database import Database, WindowParams, is_database
from npgen.data.datasets import KNOWN, load_dataset
from npgen.errors import NpgenError
from npgen.rule.provenance import Samples
from npgen.rule.sampler import Sampler
from npgen.runs.summary import sample_summary

RAY_LOCAL = "local"  # `--ray` without an address: a Ray cluster on this machine, started for the run
INSTALL_HINT = "pip install -e '.[ray]' from npgen's folder"


def import_ray():
    """The ray module, or a one-line NpgenError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise NpgenError(f"--ray needs Ray, which is not installed: {INSTALL_HINT}") from None
    return ray


@dataclass(frozen=True)
class WorkerSpec:
    """What a worker needs to open the run's database and sampler (put in the object store once per run)."""

    db_path: str
    db_id: str
    dataset: str  # a known dataset's name, or an image folder's absolute path
    data_root: str | None  # where a known dataset's files are (None for an image folder)
    window: dict
    options: dict
    class_label: int | None
    controls: dict = field(default_factory=dict)  # arrays restricting the sources: excluded, class_map
    completion: object = None  # npgen.control.completion.Completion of a completion run
    clusters: int | None = None  # a flat folder's given number of clusters (--clusters)
    token: str = field(default_factory=lambda: uuid.uuid4().hex)  # this run's spec, for the workers' cache

    @classmethod
    def of(
        cls,
        db,
        dataset,
        location: str,
        options: dict,
        class_label: int | None,
        controls=None,
        completion=None,
        clusters: int | None = None,
    ) -> WorkerSpec:
        """The spec of a run over database `db`, sampled from `dataset` found at `location` (`data_location`)."""
        known = str(dataset) in KNOWN
        return cls(
            db_path=str(Path(db.path).resolve()),
            db_id=db.id,
            dataset=str(dataset) if known else location,
            data_root=location if known else None,
            window=asdict(db.params),
            options={name: value for name, value in options.items() if name != "device"},
            class_label=class_label,
            controls={name: controls[name] for name in ("excluded", "class_map") if name in (controls or {})},
            completion=completion,
            clusters=clusters,
        )


_OPENED: dict[str, tuple] = {}  # per worker process: the sampler of the last spec, reused by its next tasks


def open_sampler(spec: WorkerSpec):
    """(sampler, database) for `spec` in this worker process, opened once and kept for the following tasks."""
    key = spec.token
    if key not in _OPENED:
        # each task holds one CPU (num_cpus=1) and Ray runs one task per CPU: the sampler's parallel kernels
        # then take one thread each, not one per core each (which would oversubscribe every core)
        numba.set_num_threads(1)
        path = Path(spec.db_path)
        if is_database(path):
            db = Database.load(path)
        else:  # no shared database here: this node builds its own once (locked), in its cache
            data = load_dataset(spec.dataset, data_root=spec.data_root, clusters=spec.clusters)
            db = Database.open_or_build(data, None, WindowParams(**spec.window))
        if db.id != spec.db_id:
            raise NpgenError(
                f"the database at {db.path} on {socket.gethostname()} is not the run's (id {db.id[:12]}, the run's "
                f"{spec.db_id[:12]}); put the run's database on a path every node shares and pass it as --db"
            )
        _OPENED.clear()
        sampler = Sampler(
            db,
            **spec.options,
            excluded=spec.controls.get("excluded"),
            class_map=spec.controls.get("class_map"),
            completion=spec.completion,
        )
        _OPENED[key] = (sampler, db)
    return _OPENED[key]


def sample_batch_task(
    spec: WorkerSpec, index: int, first: int, size: int
) -> tuple[int, Samples | None, pa.Table | None, str | None]:
    """One batch, run in a worker: (index, samples, summary rows, None), or (index, None, None, error message)."""
    try:
        sampler, db = open_sampler(spec)
        samples = sampler.sample_batch(np.arange(first, first + size), spec.class_label)
        return index, samples, sample_summary(samples, db), None
    except NpgenError as err:
        return index, None, None, f"{err} (on Ray node {socket.gethostname()})"


def check_address(address: str, timeout: float = 5.0) -> None:
    """Refuse, in one line and at once, a HOST:PORT (or ray://HOST:PORT) where nothing listens: Ray itself would
    retry for minutes. RAY_LOCAL and Ray's other forms ("auto") are left to Ray."""
    found = re.fullmatch(r"(?:ray://)?\[?([^\]/]+?)\]?:(\d+)", address)
    if address == RAY_LOCAL or found is None:
        return
    host, port = found.group(1), int(found.group(2))
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as err:
        raise NpgenError(
            f"cannot reach the Ray cluster at {address!r} ({err.strerror or type(err).__name__}); start one with "
            "`ray start --head` and pass the address it prints, or pass --ray alone for a local cluster"
        ) from None


def connect(address: str) -> bool:
    """Join the Ray cluster at `address` (RAY_LOCAL: start one on this machine); True if this call started or
    joined it (and so must shut it down), False when Ray was already initialised in this process."""
    ray = import_ray()
    if ray.is_initialized():
        return False
    check_address(address)
    options = {"logging_level": logging.ERROR, "log_to_driver": False}
    try:
        if address == RAY_LOCAL:
            ray.init(include_dashboard=False, **options)
        else:
            ray.init(address=address, **options)
    except (ConnectionError, RuntimeError, ValueError, TimeoutError) as err:
        why = (str(err).splitlines() or [type(err).__name__])[0][:200]
        raise NpgenError(
            f"cannot start or reach the Ray cluster at {address!r} ({why}); start one with `ray start --head` and "
            "pass its address, or pass --ray alone for a local cluster"
        ) from None
    return True


def ray_batches(
    spec: WorkerSpec,
    pending: list[tuple[int, int, int]],
    address: str = RAY_LOCAL,
    note: Callable[[str], None] | None = None,
) -> Iterator[tuple[int, Samples, pa.Table]]:
    """Sample each pending (batch index, first sample, size) as a Ray task; yield (index, samples, summary) in
    the order they finish. At most two tasks per cluster CPU are in flight, so the driver holds few results.
    Closing the iterator (an error or Ctrl-C in the driver) cancels the tasks still running."""
    if not pending:
        return  # every batch is written already (a resumed run): no cluster needed
    ray = import_ray()
    started = connect(address)
    in_flight: dict = {}
    try:
        task = ray.remote(num_cpus=1, max_retries=2)(sample_batch_task)
        cpus = max(int(ray.cluster_resources().get("CPU", 1)), 1)
        if note is not None:
            note(f"sampling {len(pending)} batches as Ray tasks on {cpus} CPUs ({address})")
        waiting = iter(pending)
        shared_spec = ray.put(spec)
        while True:
            for index, first, size in waiting:
                in_flight[task.remote(shared_spec, index, first, size)] = index
                if len(in_flight) >= 2 * cpus:
                    break
            if not in_flight:
                return
            done, _ = ray.wait(list(in_flight), num_returns=1)
            for ref in done:
                del in_flight[ref]
                try:
                    index, samples, summary, error = ray.get(ref)
                except ray.exceptions.RayError as err:
                    why = (str(err).splitlines() or [type(err).__name__])[0][:200]
                    raise NpgenError(
                        f"a Ray task failed ({why}); finished batches are kept: rerun the same command with --resume"
                    ) from None
                if error is not None:
                    raise NpgenError(error)
                yield index, samples, summary
    finally:
        for ref in in_flight:
            ray.cancel(ref, force=True)
        if started:
            ray.shutdown()
