"""A run directory, read back: its layout, manifest checks and the `Run` reader (written by `npgen.runs.store`).

Layout of a run::

    manifest.json                 npgen version, dataset and SHA-256, data root, every parameter, seed, command, timings, status
    provenance/part-00000.parquet one row per generated pixel (see PROVENANCE_SCHEMA), one file per batch
    summary/part-00000.parquet    the batch's rows of samples.parquet
    chunks/part-00000.npy         the batch's samples, uint8 (B, H, W, C); written last, it marks a finished batch
    samples.npy                   all samples in order (written when the run completes)
    levels/1/...                  with --levels L > 1: pyramid level k = 1 .. L-1 (2^k times smaller) of every sample,
                                  laid out as the run's own provenance/, chunks/ and samples.npy (no pictures but grid.png)
    samples.parquet               one row per sample: class, nearest training image and distance, top-source share
    sources.parquet               image-folder datasets only: src_image -> its file (relative to the folder), class
    grid.png, png/sample-00000.png

The Parquet files are plain Apache Parquet: pandas, DuckDB or pyarrow read them without npgen.
Reading a run loads neither the sampler nor FAISS.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from npgen.data.dataset_cards import known_datasets
from npgen.data.datasets import DATA_ENV, KNOWN, Dataset, load_dataset
from npgen.data.files import TMP_MARK, array_sha256, read_small_file, refuse_link
from npgen.errors import NpgenError
from npgen.params import describe_differences, recorded_params
from npgen.runs.integrity import (
    MAX_SAMPLES,
    MAX_TRAINING_IMAGES,
    SOURCES_FILE,
    batch_part,
    check_parts,
    level_folder,
    sample_shape,
)

PROVENANCE_SCHEMA = pa.schema(
    [
        ("sample", pa.int32()),
        ("y", pa.int16()),
        ("x", pa.int16()),
        ("src_image", pa.int32()),
        ("src_y", pa.int16()),
        ("src_x", pa.int16()),
        ("n_candidates", pa.int32()),
        ("distance", pa.float32()),
    ]
)
RUN_FORMAT = "npgen-run"
RUN_SUBFOLDERS = ("provenance", "summary", "chunks", "png", "controls")
MANIFEST_LIMIT = 64 << 20  # bytes: a manifest larger than this is not one npgen wrote


def _only_npgen_leftovers(path: Path) -> bool:
    """True if `path` holds nothing but npgen's empty run subfolders and temporary files (a run killed before its manifest)."""
    for entry in path.iterdir():
        if entry.is_symlink():
            return False
        if entry.name.startswith(".") and TMP_MARK in entry.name:
            continue
        if (
            entry.name in RUN_SUBFOLDERS
            and entry.is_dir()
            and all(e.name.startswith(".") and TMP_MARK in e.name and not e.is_symlink() for e in entry.iterdir())
        ):
            continue
        return False
    return True


def run_state(path: str | os.PathLike) -> str:
    """ "absent", "dangling-link", "empty" (no manifest, nothing but npgen leftovers), "foreign" (no manifest, other
    files), "complete", "running", or "bad" (a manifest that is not an npgen run's)."""
    path = Path(path)
    if path.is_symlink() and not path.exists():
        return "dangling-link"
    if not path.exists():
        return "absent"
    if not path.is_dir():
        return "foreign"
    if not (path / "manifest.json").exists() and not (path / "manifest.json").is_symlink():
        return "empty" if _only_npgen_leftovers(path) else "foreign"
    try:
        manifest = read_manifest(path)
    except NpgenError:
        return "bad"
    return "complete" if manifest.get("status") == "complete" else "running"


def run_levels(manifest: dict) -> int:
    """How many pyramid levels a run's samples have (1 for a run sampled before levels, or with --levels 1)."""
    levels = manifest.get("params", {}).get("levels", 1)
    if not isinstance(levels, int) or isinstance(levels, bool) or not 1 <= levels <= 16:
        raise NpgenError(f"the manifest of a run is damaged: its levels {levels!r} is not a small positive integer")
    return levels


BATCH_PARTS = (("provenance", "parquet"), ("summary", "parquet"), ("chunks", "npy"))


def damaged_part(run: Path, part: Path) -> NpgenError:
    """The error for a batch part that exists but cannot be read."""
    return NpgenError(
        f"{part} is unreadable (a truncated or damaged part); delete that file to sample its batch again, "
        f"or delete the run {run} and start over"
    )


def has_batch(run: Path, index: int) -> bool:
    """True if batch `index` of the run folder was written whole; NpgenError for a part that exists but is unreadable."""
    parts = [batch_part(run, kind, index, suffix) for kind, suffix in BATCH_PARTS]
    if not all(p.exists() for p in (parts[0], parts[2])):
        return False
    for part in parts:
        try:
            if part.suffix == ".npy":
                array = np.load(part, mmap_mode="r")
                if array.ndim != 4 or array.dtype != np.uint8:
                    raise ValueError("not a batch of uint8 images")
            else:
                pq.read_metadata(part)
        except (OSError, ValueError, EOFError, pa.ArrowException):
            raise damaged_part(run, part) from None
    return True


# ---- one command, wherever it runs: resume and merge compare runs by content, never by path ----

COMMAND_KEYS = ("dataset", "database", "params", "class_label", "n_samples", "controls", "shard")


def _comparable(key: str, manifest: dict, other: dict):
    """The part of manifest[key] that must match for two runs to be the same command: the dataset's content (not
    the folder it was read from), the database's id (not its path; its build parameters for a run recorded before
    ids), and for shards their count (see `shard_batches`; the shard index is compared by the caller)."""
    value = manifest.get(key)
    if key == "dataset" and isinstance(value, dict):
        return {k: v for k, v in value.items() if k != "source"}
    if key == "params" and isinstance(value, dict):
        return recorded_params(value)
    if key == "database" and isinstance(value, dict):
        other_value = other.get(key)
        if "id" in value and isinstance(other_value, dict) and "id" in other_value:
            return {"id": value["id"]}
        return {"params": value.get("params")}
    return value


def command_difference(first: dict, second: dict, first_name: str, second_name: str) -> tuple[str, str] | None:
    """(key, what differs) for the first of COMMAND_KEYS in which two run manifests differ as commands; None if
    they are the same command (same data, database id, parameters, class, n and shard)."""
    for key in COMMAND_KEYS:
        mine, theirs = _comparable(key, first, second), _comparable(key, second, first)
        if mine != theirs:
            return key, describe_differences(mine, theirs, first_name, second_name, key)
    return None


def read_manifest(path: str | os.PathLike) -> dict:
    """The manifest of the run at `path`, or an NpgenError that says what is missing."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise NpgenError(f"{path} is a file, not an npgen run; pass a directory written by `npgen sample`")
    try:
        manifest = json.loads(read_small_file(path / "manifest.json", MANIFEST_LIMIT, "the run manifest"))
    except FileNotFoundError as err:
        raise NpgenError(
            f"{path} is not an npgen run (no manifest.json); pass a directory written by `npgen sample`"
        ) from err
    except (OSError, ValueError) as err:
        raise NpgenError(
            f"the manifest of run {path} is unreadable ({type(err).__name__}); the run is damaged, sample it again"
        ) from err
    if not isinstance(manifest, dict) or manifest.get("format") != RUN_FORMAT:
        raise NpgenError(f"{path}/manifest.json is not an npgen run manifest")
    return manifest


def _check_manifest(path: Path, manifest: dict) -> None:
    """Raise a one-line NpgenError unless the manifest holds what reading a run needs, of the right types."""
    damaged = f"the manifest of run {path} is damaged"
    dataset = manifest.get("dataset")
    if not isinstance(dataset, dict):
        raise NpgenError(f"{damaged}: it has no dataset record; sample the run again")
    shape = dataset.get("shape")
    if not (isinstance(shape, list) and len(shape) == 3 and all(isinstance(v, int) and v > 0 for v in shape)):
        raise NpgenError(
            f"{damaged}: its dataset shape {shape!r} is not [height, width, channels]; sample the run again"
        )
    for key in ("name", "split", "images_sha256", "labels_sha256"):
        if not isinstance(dataset.get(key), str):
            raise NpgenError(f"{damaged}: its dataset record lacks {key}; sample the run again")
    if not isinstance(manifest.get("params"), dict):
        raise NpgenError(f"{damaged}: it has no params record; sample the run again")
    n = manifest.get("n_samples")
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= MAX_SAMPLES:
        raise NpgenError(f"{damaged}: its n_samples {n!r} is not an integer in 1..{MAX_SAMPLES}; sample the run again")
    n_images = dataset.get("n_images")
    if not isinstance(n_images, int) or isinstance(n_images, bool) or not 1 <= n_images <= MAX_TRAINING_IMAGES:
        raise NpgenError(
            f"{damaged}: its n_images {n_images!r} is not an integer in 1..{MAX_TRAINING_IMAGES}; sample the run again"
        )
    if "class_label" not in manifest:
        raise NpgenError(f"{damaged}: it has no class_label (null for an unconditional run); sample the run again")
    if not isinstance(manifest.get("database", {}), dict):
        raise NpgenError(f"{damaged}: its database record is not a mapping; sample the run again")
    label = manifest.get("class_label")
    if label is not None and (not isinstance(label, int) or isinstance(label, bool) or label < 0):
        raise NpgenError(f"{damaged}: its class_label {label!r} is not a class index; sample the run again")


def check_provenance(
    path, column: dict, n_samples: int, height: int, width: int, n_images: int, source_shape: tuple | None = None
) -> None:
    """Raise a one-line NpgenError if any provenance row points outside the run's samples (height x width) or the
    training images (source_shape (height, width), the samples' unless given)."""
    source_height, source_width = source_shape or (height, width)
    bounds = {"y": height, "x": width, "src_y": source_height, "src_x": source_width}
    bounds = {"sample": n_samples, **bounds, "src_image": n_images}
    for name, limit in bounds.items():
        values = column.get(name)
        if values is None or not len(values):
            continue
        low, high = int(values.min()), int(values.max())
        if low < 0 or high >= limit:
            bad = low if low < 0 else high
            raise NpgenError(
                f"the provenance of run {path} is damaged: {name} = {bad} is outside 0..{limit - 1}; sample the run again"
            )


class Run:
    """A completed run, read back: manifest, samples and provenance."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.manifest = read_manifest(self.path)
        shard = self.manifest.get("shard")
        if isinstance(shard, dict):
            raise NpgenError(
                f"{self.path} is shard {shard.get('index')}/{shard.get('count')} of a run, not a whole run; "
                "join every shard with `npgen merge OUT SHARD...` and use OUT"
            )
        if self.manifest.get("status") != "complete":
            raise NpgenError(
                f"run {self.path} is incomplete; finish it with `npgen sample --resume --out {self.path}` and the same options"
            )
        _check_manifest(self.path, self.manifest)
        check_parts(self.path, self.manifest, self.levels, self._generated_pixels())
        try:
            self.samples = np.load(self.path / "samples.npy", mmap_mode="r")
        except (OSError, ValueError, EOFError) as err:
            raise NpgenError(f"{self.path}/samples.npy is missing or damaged; sample the run again") from err
        expected = (self.manifest["n_samples"], *self.sample_shape)
        if self.samples.dtype != np.uint8 or self.samples.shape != expected:
            raise NpgenError(
                f"{self.path}/samples.npy holds {self.samples.dtype} {self.samples.shape}, but the manifest says "
                f"uint8 {expected}; the run is damaged, sample it again"
            )

    def _generated_pixels(self) -> list[np.ndarray]:
        """How many pixels of each sample were generated (have provenance) at each pyramid level: all but a
        completion's given ones (at a coarser level, the blocks given whole: `npgen.data.levels.level_mask`)."""
        n, (height, width) = self.manifest["n_samples"], self.sample_shape[:2]
        record = self.manifest.get("completion")
        if not record:
            return [np.full(n, (height >> k) * (width >> k), np.int64) for k in range(self.levels)]
        known = self.control("known")
        per_input = record.get("per_input") if isinstance(record, dict) else None
        if known is None or not isinstance(per_input, int) or known.ndim != 3 or len(known) * per_input != n:
            raise NpgenError(f"run {self.path} is a completion without matching controls/known.npy; sample it again")
        if known.shape[1:] != (height, width):
            raise NpgenError(f"run {self.path}: controls/known.npy is not the samples' size; sample it again")
        from npgen.data.levels import level_mask  # here: npgen.data.levels loads numba, which npgen.api must not

        return [
            np.repeat((~level_mask(known, k)).reshape(len(known), -1).sum(axis=1), per_input)
            for k in range(self.levels)
        ]

    @property
    def sample_shape(self) -> tuple[int, int, int]:
        """(height, width, channels) of the samples: the training images', unless the run was sampled at another
        `size`."""
        return sample_shape(self.path, self.manifest)

    @property
    def levels(self) -> int:
        """The number of pyramid levels of the run's samples (1: the samples only)."""
        return run_levels(self.manifest)

    def level_samples(self, level: int) -> np.ndarray:
        """The samples at pyramid level `level` (0: `samples`), (n, H / 2^level, W / 2^level, C) uint8."""
        if level == 0:
            return self.samples
        if not 0 < level < self.levels:
            raise NpgenError(f"run {self.path} has levels 0..{self.levels - 1}, not {level}")
        path = level_folder(self.path, level) / "samples.npy"
        try:
            samples = np.load(path, mmap_mode="r")
        except (OSError, ValueError, EOFError) as err:
            raise NpgenError(f"{path} is missing or damaged; sample the run again") from err
        height, width, channels = self.samples.shape[1:]
        expected = (len(self.samples), height >> level, width >> level, channels)
        if samples.dtype != np.uint8 or samples.shape != expected:
            raise NpgenError(
                f"{path} holds {samples.dtype} {samples.shape}, not uint8 {expected}; sample the run again"
            )
        return samples

    def provenance(self, columns: list[str] | None = None, level: int = 0) -> pa.Table:
        """The per-pixel provenance table of pyramid level `level` (optionally only some columns), sorted by sample,
        y, x."""
        folder = self.path if level == 0 else level_folder(self.path, level)
        try:
            table = pq.read_table(folder / "provenance", columns=columns, schema=PROVENANCE_SCHEMA)
        except (OSError, pa.ArrowException) as err:
            raise NpgenError(
                f"the provenance of run {self.path} is unreadable ({(str(err).splitlines() or [''])[0][:100]}); sample the run again"
            ) from err
        return table

    def check_provenance(self, column: dict, n_images: int) -> None:
        """Raise NpgenError if provenance columns point outside this run's samples or `n_images` training images."""
        n, height, width = self.samples.shape[:3]
        source_shape = tuple(self.manifest["dataset"]["shape"][:2])  # the training images' (--size: not the samples')
        check_provenance(self.path, column, n, height, width, n_images, source_shape)

    def output_path(self, *parts: str) -> Path:
        """A path inside the run to write to; NpgenError if it, or a folder on the way, is a symbolic link."""
        path = self.path
        for part in parts:
            path = path / part
            refuse_link(path)
        return path

    def data_root(self, data_root=None):
        """The data root to load this run's dataset from: `data_root`, else $NPGEN_DATA, else the one recorded
        in the manifest when the run was sampled (None if neither: loading then says how to give one)."""
        if data_root not in (None, "") or os.environ.get(DATA_ENV):
            return data_root
        return self.manifest.get("data_root")

    def dataset(self, data_root=None) -> Dataset:
        """The training split this run was sampled from, checked against the SHA-256 in its manifest.

        Known datasets come from `data_root`, else $NPGEN_DATA, else the data root recorded at sampling time;
        an image folder from the folder recorded in the manifest."""
        record = self.manifest["dataset"]
        name = record["name"] if record["name"] in KNOWN else record.get("source")
        if not isinstance(name, str):
            raise NpgenError(
                f"the manifest of run {self.path} is damaged: its dataset record lacks the image folder (source); sample the run again"
            )
        root = self.data_root(data_root)
        recorded = name in KNOWN and root is not None and root != data_root
        try:
            data = load_dataset(
                name, split=record["split"], data_root=root, clusters=record.get("clusters"), remember=not recorded
            )
        except NpgenError as err:
            if not recorded:
                raise
            raise NpgenError(
                f"run {self.path} was sampled from {name} in {root}, which no longer holds it ({err}); "
                f"pass --data-root DIR or set {DATA_ENV}=DIR to where {name} is now"
            ) from None
        if (data.images_sha256, data.labels_sha256) != (record["images_sha256"], record["labels_sha256"]):
            raise NpgenError(
                f"the {record['name']} data found now differs from the data run {self.path} was sampled from (SHA-256); point --data-root at the original data"
            )
        return data

    def summary(self) -> pa.Table:
        return pq.read_table(self.path / "samples.parquet")

    def control(self, name: str) -> np.ndarray | None:
        """A control array of the run (controls/NAME.npy: excluded, class_map, inputs, known), or None when the run
        has none; NpgenError if it is missing or differs from the SHA-256 its manifest records."""
        recorded = (self.manifest.get("controls") or {}).get(name)
        if recorded is None:
            return None
        path = self.path / "controls" / f"{name}.npy"
        try:
            array = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError):
            raise NpgenError(f"{path} is missing or damaged; the run was altered, sample it again") from None
        if array_sha256(array) != recorded:
            raise NpgenError(
                f"{path} differs from the SHA-256 the run's manifest records; the run was altered, sample it again"
            )
        return array

    def source_files(self) -> list[str] | None:
        """Each training image's file, relative to the image folder (from sources.parquet), or None when the run
        has no sources.parquet (a known dataset)."""
        path = self.path / SOURCES_FILE
        if not path.exists():
            return None
        try:
            table = pq.read_table(path, columns=["src_image", "file"])
        except (OSError, pa.ArrowException) as err:
            raise NpgenError(
                f"{path} is damaged ({type(err).__name__}); delete it (the run then names no files) or sample the run again"
            ) from None
        n_images = self.manifest["dataset"]["n_images"]
        files = [""] * n_images
        for index, name in zip(table.column("src_image").to_pylist(), table.column("file").to_pylist()):
            if index is None or not 0 <= index < n_images:
                raise NpgenError(
                    f"{path} is damaged (a src_image outside 0..{n_images - 1}); delete it or sample the run again"
                )
            files[index] = name
        return files


def load_test_split(train: Dataset, data_root, what: str = "this") -> Dataset:
    """The test split of a training split's dataset (a known one, or the same image folder); `what` needs it."""
    try:
        return load_dataset(
            train.name if train.name in known_datasets() else str(train.source),
            split="test",
            data_root=data_root,
            remember=False,  # the training split's loading remembers a root the user gave
        )
    except NpgenError as err:
        raise NpgenError(f"{what} needs the dataset's test split, which could not be loaded: {err}") from err
