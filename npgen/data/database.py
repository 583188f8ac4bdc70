"""The window database: everything the sampler searches, built once per dataset and parameter set.

A database is a directory:

- ``manifest.json``: dataset name, split, SHA-256 of its arrays, window parameters, npgen version;
- ``sources.npy``: the training images padded for the context window, flattened to (N, (H+h)*(W+2h)*C)
  uint8. Every context-window vector of every source position is a fixed gather from this array,
  so it holds all windows at 1/L of the size of materialising them;
- ``representations.npy``: each image's retrieval representation (block sums or learned patch codes,
  see `semantics.py`); ``codes/``: the learned patch codes' parameters, when those are used;
- ``labels.npy``; ``images.faiss``: an exact L2 index of the raw images (`index.build_image_index`).

Arrays are memory-mapped on load. A database refuses to serve data or parameters it was not built for.
The build streams: images are processed in chunks (`build_chunk`, a pure function, also run as Ray tasks
with `npgen build --ray`) and each file is written sequentially, so memory does not grow with the number of
images; the files are byte for byte those of building every array at once.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from npgen import __version__
from npgen.data.dataset_cards import KNOWN
from npgen.data.files import DIR_MODE, cache_root, naming_errors
from npgen.data.db_folder import (
    FORMAT,
    build_lock,
    check_replaceable,
    install_database,
    is_database,
    make_parent,
)
from npgen.data.index import ImageIndexWriter, PrefixIndexes, load_index
from npgen.data.levels import level_images, level_shape
from npgen.data.representation import BlockSums, PatchCodes
from npgen.errors import NpgenError
from npgen.params import BUILD_PARAMS, PARAMS, check, describe_differences, resolve

FORMAT_VERSION = 2
BUILD_CHUNK = 8192  # images per chunk of a build: about 33 MB of sources for CIFAR-10-sized images


@dataclass(frozen=True)
class WindowParams:
    """Parameters fixed at build time: window half-size, padding value, retrieval block size (`npgen.params`)."""

    half_window: int = PARAMS["half_window"].default
    pad_value: int = PARAMS["pad_value"].default
    retrieval_block: int = PARAMS["retrieval_block"].default
    retrieval: str = PARAMS["retrieval"].default

    @classmethod
    def resolve(cls, explicit: dict, preset: dict | None = None) -> "WindowParams":
        """Explicit values over the dataset's preset over the defaults, each checked against its range."""
        return cls(**resolve(BUILD_PARAMS, explicit, preset))

    def validate(self) -> None:
        for name, value in asdict(self).items():
            check(name, value)

    def slug(self) -> str:
        return f"h{self.half_window}-p{self.pad_value}-b{self.retrieval_block}-{self.retrieval}"


def default_path(dataset, params: WindowParams) -> Path:
    """Where `npgen sample` keeps the database of a dataset when no --db is given (under `cache_root()`)."""
    return (
        cache_root()
        / "db"
        / f"{dataset.name}-{dataset.split}-{dataset.images_sha256[:12]}{clusters_slug(dataset)}-{params.slug()}-v{FORMAT_VERSION}"
    )


def clusters_slug(dataset) -> str:
    """ "-k3" in a database's default path when a flat folder's number of clusters was given (other labels than the
    measured clusters: another database), else ""."""
    clusters = getattr(dataset, "clusters", None)
    return "" if clusters is None else f"-k{clusters}"


def _dataset_record(dataset) -> dict:
    return {
        "name": dataset.name,
        "split": dataset.split,
        "source": str(dataset.source),
        "images_sha256": dataset.images_sha256,
        "labels_sha256": dataset.labels_sha256,
        "n_images": int(dataset.n_images),
        "shape": [dataset.height, dataset.width, dataset.channels],
        "class_names": list(dataset.class_names),
        **({"clusters": dataset.clusters} if getattr(dataset, "clusters", None) is not None else {}),  # --clusters K
    }


def database_id(dataset_record: dict, params: dict) -> str:
    """A database's identity by content: SHA-256 over its format version, the dataset's name, split and SHA-256s,
    and the build parameters. Two databases with the same id hold the same arrays wherever they live, so runs
    record it and resume and merge compare it, never the database's path."""
    identity = {
        "format_version": FORMAT_VERSION,
        "dataset": {key: dataset_record[key] for key in ("name", "split", "images_sha256", "labels_sha256")},
        "params": dict(sorted(params.items())),
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


def pad_images(images: np.ndarray, half_window: int, pad_value: int) -> np.ndarray:
    """Pad (N, H, W, C) uint8 images to (N, H+h, W+2h, C): h rows on top, h columns each side."""
    if not 0 <= pad_value <= 255:
        raise NpgenError(f"pad_value must be in 0..255, got {pad_value}")
    h = half_window
    return np.pad(images, ((0, 0), (h, 0), (h, h), (0, 0)), constant_values=pad_value)


class Database:
    """A loaded window database (see the module docstring); build it with `Database.build`."""

    def __init__(self, path: Path, manifest: dict, sources, representations, labels) -> None:
        self.path = Path(path)
        self.manifest = manifest
        self.params = WindowParams(**manifest["params"])
        self.sources = sources
        self.representations = representations
        self.encoder = (
            PatchCodes.load(self.path / "codes")
            if self.params.retrieval == "codes"
            else BlockSums(self.params.retrieval_block)
        )
        self.labels = labels
        self._index = None
        self._members: dict = {}
        self._prefix_indexes: dict = {}
        self._levels: dict = {}

    dataset = property(lambda self: self.manifest["dataset"])
    id = property(lambda self: database_id(self.dataset, asdict(self.params)))
    half_window = property(lambda self: self.params.half_window)
    pad_value = property(lambda self: self.params.pad_value)
    retrieval_block = property(lambda self: self.params.retrieval_block)
    height = property(lambda self: self.dataset["shape"][0])
    width = property(lambda self: self.dataset["shape"][1])
    channels = property(lambda self: self.dataset["shape"][2])
    n_images = property(lambda self: self.dataset["n_images"])
    class_names = property(lambda self: tuple(self.dataset["class_names"]))

    def class_members(self, class_label: int | None) -> np.ndarray:
        """Indices of the training images of this class (all images when None)."""
        if class_label is None:
            return np.arange(self.n_images, dtype=np.int64)
        if not 0 <= class_label < len(self.class_names):
            raise NpgenError(
                f"class {class_label} is out of range: {self.dataset['name']} has classes 0..{len(self.class_names) - 1}"
            )
        if class_label not in self._members:
            self._members[class_label] = np.flatnonzero(np.asarray(self.labels) == class_label).astype(np.int64)
        return self._members[class_label]

    def prefix_indexes(self, allowed: np.ndarray) -> PrefixIndexes:
        """The approximate pool's prefix indexes over these allowed images (a class, a region's classes, less any
        excluded images), built on first use and kept with the loaded database for the same set."""
        allowed = np.ascontiguousarray(allowed, dtype=np.int64)
        key = (len(allowed), hashlib.sha256(allowed.data).hexdigest())
        if key not in self._prefix_indexes:
            self._prefix_indexes[key] = PrefixIndexes(self.representations, allowed)
        return self._prefix_indexes[key]

    def class_counts(self) -> np.ndarray:
        """Training images per class (int64, one entry per class name)."""
        return np.bincount(np.asarray(self.labels), minlength=len(self.class_names)).astype(np.int64)

    def images(self) -> np.ndarray:
        """The unpadded training images (N, H, W, C), a view of `sources`."""
        h = self.half_window
        padded = self.sources.reshape(self.n_images, self.height + h, self.width + 2 * h, self.channels)
        return padded[:, h:, h : h + self.width]

    def level(self, level: int) -> "Database":
        """This database at pyramid level `level` (`npgen.data.levels`): the same training images, labels and window
        parameters, each image replaced by its level image, with block-sum retrieval over blocks of
        max(1, retrieval_block / 2^level) pixels. Held in memory, made on first use; level 0 is the database itself."""
        if level == 0:
            return self
        if level not in self._levels:
            height, width = level_shape(self.height, self.width, level)
            images = level_images(self.images(), level)
            params = WindowParams(self.half_window, self.pad_value, max(1, self.retrieval_block >> level), "blocks")
            encoder = BlockSums(params.retrieval_block)
            sources = pad_images(images, self.half_window, self.pad_value).reshape(self.n_images, -1)
            manifest = {
                **self.manifest,
                "dataset": {**self.dataset, "shape": [height, width, self.channels]},
                "params": asdict(params),
                "level": level,
            }
            self._levels[level] = Database(self.path, manifest, sources, encoder.encode(images), self.labels)
        return self._levels[level]

    def neighbourhoods(self) -> np.ndarray:
        """(N, (H + 2) * (W + 2) * C) uint8: the images padded by one pixel of the pad value on every side and
        flattened, where a finer pyramid level reads each coarse pixel's 3x3 neighbourhood (made on first use)."""
        if "neighbourhoods" not in self._levels:
            framed = np.pad(self.images(), ((0, 0), (1, 1), (1, 1), (0, 0)), constant_values=self.pad_value)
            self._levels["neighbourhoods"] = framed.reshape(self.n_images, -1)
        return self._levels["neighbourhoods"]

    def nearest_index(self):
        """The exact FAISS index over the raw training images (loaded on first use)."""
        if self._index is None:
            self._index = load_index(self.path / "images.faiss")
        return self._index

    def check(self, dataset=None, params: WindowParams | None = None) -> None:
        """Raise NpgenError unless this database was built from `dataset` with `params`."""
        name = dataset.name if dataset is not None else self.dataset["name"]
        source = (
            name if name in KNOWN else str(dataset.source if dataset is not None else self.dataset.get("source", name))
        )
        rebuild = f"rebuild it with `npgen build --dataset {shlex.quote(source)} --db {shlex.quote(str(self.path))} --force` or pass another --db"
        if dataset is not None:
            mine = self.dataset
            if (dataset.name, dataset.split) != (mine["name"], mine["split"]):
                raise NpgenError(
                    f"database {self.path} was built for {mine['name']}/{mine['split']}, not {dataset.name}/{dataset.split}; {rebuild}"
                )
            if dataset.images_sha256 != mine["images_sha256"] or dataset.labels_sha256 != mine["labels_sha256"]:
                raise NpgenError(
                    f"database {self.path} was built from different {dataset.name} data (SHA-256 differs); {rebuild}"
                )
        if params is not None and params != self.params:
            differ = describe_differences(asdict(self.params), asdict(params), "the database", "this command")
            raise NpgenError(f"database {self.path} was built with other window parameters ({differ}); {rebuild}")

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Database":
        """Open a database directory, memory-mapping its arrays."""
        path = Path(path)
        hint = (
            f"rebuild it with `npgen build --dataset NAME --db {path} --force`"
            if is_database(path)
            else f"delete the folder {path} and build it again, or pass another --db"
        )
        if not (path / "manifest.json").is_file():
            raise NpgenError(f"no npgen database at {path}: build one with `npgen build --dataset NAME --db {path}`")
        try:
            manifest = json.loads((path / "manifest.json").read_text())
            if manifest.get("format") != FORMAT or manifest.get("format_version") != FORMAT_VERSION:
                raise NpgenError(f"{path} is not an npgen database of format version {FORMAT_VERSION}; {hint}")
            arrays = [np.load(path / f"{name}.npy", mmap_mode="r") for name in ("sources", "representations", "labels")]
        except NpgenError:
            raise
        except (OSError, ValueError, EOFError, KeyError) as err:
            raise NpgenError(f"database {path} is incomplete or corrupt ({type(err).__name__}); {hint}") from err
        db = cls(path, manifest, *arrays)
        n, h = db.n_images, db.half_window
        expected = (n, (db.height + h) * (db.width + 2 * h) * db.channels)
        if db.sources.shape != expected or len(db.labels) != n or len(db.representations) != n:
            raise NpgenError(f"database {path} has arrays of the wrong shape; {hint}")
        if not (path / "images.faiss").is_file():
            raise NpgenError(f"database {path} lacks images.faiss; {hint}")
        return db

    @classmethod
    def build(
        cls,
        dataset,
        path: str | os.PathLike,
        params: WindowParams = WindowParams(),
        force: bool = False,
        progress: Callable[[int], None] | None = None,
        ray_address: str | None = None,
        chunk_size: int = BUILD_CHUNK,
    ) -> "Database":
        """Build the database of `dataset` into `path` (a new directory, written whole or not at all).

        The images are processed `chunk_size` at a time (`build_chunk`) and written straight to the files, so
        memory stays bounded whatever the number of images (an array-folder dataset is read memory-mapped);
        `progress(k)` is called after each chunk of k images. With `ray_address` ("local" starts a local Ray
        cluster) the chunks are built as Ray tasks; the files are byte for byte those of the local build."""
        params.validate()
        path = Path(path)
        if path.is_symlink():
            raise NpgenError(
                f"{path} is a symbolic link; npgen does not build through links: pass the real folder as --db"
            )
        if path.exists() and not force:
            raise NpgenError(f"{path} already exists; pass --force to rebuild it or choose another --db")
        if path.exists():
            check_replaceable(path)
        started = time.perf_counter()
        make_parent(path)
        tmp = Path(
            tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.tmp-")
        )  # unique: concurrent builds never share it
        try:
            if params.retrieval == "codes":
                encoder = PatchCodes.learn(dataset.images, params.retrieval_block)
                encoder.save(tmp / "codes")
            else:
                encoder = BlockSums(params.retrieval_block)
            with naming_errors(path):  # a disk filling up names the database, not a file of no name
                _write_chunks(dataset.images, params, encoder, tmp, chunk_size, progress, ray_address)
            np.save(tmp / "labels.npy", np.asarray(dataset.labels, dtype=np.int64))
            manifest = {
                "format": FORMAT,
                "format_version": FORMAT_VERSION,
                "npgen_version": __version__,
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "dataset": _dataset_record(dataset),
                "params": asdict(params),
                "build_seconds": round(time.perf_counter() - started, 3),
            }
            (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))
            os.chmod(tmp, DIR_MODE)
            install_database(tmp, path)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return cls.load(path)

    @classmethod
    def open_or_build(cls, dataset, path: str | os.PathLike | None, params: WindowParams) -> "Database":
        """Load the database at `path` (default: the cache) after checking it matches; build it if absent."""
        path = Path(path) if path is not None else default_path(dataset, params)
        if not (path / "manifest.json").exists():
            if path.exists() or path.is_symlink():
                raise NpgenError(
                    f"{path} exists but holds no npgen database (no manifest.json); delete it or pass another --db"
                )
            with build_lock(path):  # concurrent first runs: one builds, the others wait and load its database
                if not (path / "manifest.json").exists():
                    cls.build(dataset, path, params)
        db = cls.load(path)
        db.check(dataset, params)
        return db


def build_chunk(images: np.ndarray, params: WindowParams, encoder) -> tuple[np.ndarray, np.ndarray]:
    """(sources rows, representations) of a chunk of images: a pure function of its arguments, each image's rows
    independent of the others, so any chunking (or a Ray task per chunk) gives the same bytes."""
    padded = pad_images(np.ascontiguousarray(images), params.half_window, params.pad_value)
    return padded.reshape(len(padded), -1), np.ascontiguousarray(encoder.encode(images))


class _NpyWriter:
    """Writes one .npy file sequentially, chunk by chunk: the same bytes as np.save of the whole array."""

    def __init__(self, path: Path, shape: tuple[int, ...], dtype: np.dtype) -> None:
        self.file = open(path, "wb")  # noqa: SIM115 (closed by close(), which the build calls in a finally)
        header = np.lib.format.header_data_from_array_1_0(np.empty((0, *shape[1:]), dtype=dtype))
        header["shape"] = tuple(shape)
        np.lib.format.write_array_header_1_0(self.file, header)  # what np.save writes for headers under 64 KiB

    def write(self, rows: np.ndarray) -> None:
        self.file.write(np.ascontiguousarray(rows).tobytes())

    def close(self) -> None:
        self.file.close()


def _chunks_local(images, params, encoder, chunk_size):
    for first in range(0, len(images), chunk_size):
        chunk = np.ascontiguousarray(images[first : first + chunk_size])
        yield chunk, build_chunk(chunk, params, encoder)


def _chunks_ray(images, params, encoder, chunk_size, address: str):
    """The chunks built as Ray tasks (at most 2 per CPU in flight, so memory stays bounded), in order."""
    try:
        import ray
    except ImportError:
        raise NpgenError("--ray needs Ray: install it with `pip install -e '.[ray]'`, or build without --ray") from None
    if not ray.is_initialized():
        try:
            ray.init(address=None if address == "local" else address, log_to_driver=False)
        except Exception as err:  # noqa: BLE001 (Ray raises ConnectionError, RuntimeError, ValueError ... for a bad address)
            where = "a local Ray cluster" if address == "local" else f"the Ray cluster at {address}"
            raise NpgenError(
                f"cannot start or reach {where} ({type(err).__name__}); check the address (`ray status`), or build without --ray"
            ) from None
    task = ray.remote(build_chunk)
    params_ref, encoder_ref = ray.put(params), ray.put(encoder)
    in_flight = max(2, 2 * int(ray.cluster_resources().get("CPU", 1)))
    firsts = list(range(0, len(images), chunk_size))
    pending = {}
    for position, first in enumerate(firsts):
        chunk = np.ascontiguousarray(images[first : first + chunk_size])
        pending[first] = (chunk, task.remote(chunk, params_ref, encoder_ref))
        if position + 1 >= in_flight or position + 1 == len(firsts):
            done = firsts[position + 1 - len(pending)]
            chunk, ref = pending.pop(done)
            yield chunk, ray.get(ref)
    for first in sorted(pending):
        chunk, ref = pending.pop(first)
        yield chunk, ray.get(ref)


def _write_chunks(images, params, encoder, folder: Path, chunk_size, progress, ray_address) -> None:
    """Write sources.npy, representations.npy and images.faiss of `images` into `folder`, chunk by chunk."""
    n = len(images)
    if chunk_size < 1:
        raise NpgenError(f"the build chunk size must be >= 1, got {chunk_size}")
    sample_rows, sample_codes = build_chunk(images[:1], params, encoder)
    sources = _NpyWriter(folder / "sources.npy", (n, sample_rows.shape[1]), sample_rows.dtype)
    representations = _NpyWriter(folder / "representations.npy", (n, *sample_codes.shape[1:]), sample_codes.dtype)
    chunks = (
        _chunks_local(images, params, encoder, chunk_size)
        if ray_address is None
        else _chunks_ray(images, params, encoder, chunk_size, ray_address)
    )
    try:
        with ImageIndexWriter(folder / "images.faiss", int(np.prod(images.shape[1:])), n) as index:
            for chunk, (rows, codes) in chunks:
                sources.write(rows)
                representations.write(codes)
                index.add(chunk)
                if progress is not None:
                    progress(len(chunk))
    finally:
        sources.close()
        representations.close()
