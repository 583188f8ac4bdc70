"""The provenance store: a run directory that records every generated pixel's source.

Layout of a run::

    manifest.json                 npgen version, dataset and SHA-256, data root, every parameter, seed, command, timings, status
    provenance/part-00000.parquet one row per generated pixel (see PROVENANCE_SCHEMA), one file per batch
    summary/part-00000.parquet    the batch's rows of samples.parquet
    chunks/part-00000.npy         the batch's samples, uint8 (B, H, W, C); written last, it marks a finished batch
    samples.npy                   all samples in order (written when the run completes)
    samples.parquet               one row per sample: class, nearest training image and distance, top-source share
    sources.parquet               image-folder datasets only: src_image -> its file (relative to the folder), class
    grid.png, png/sample-00000.png

Every file is written to a hidden temporary name and renamed into place, so an interrupted run
holds only whole files (but for the per-sample PNGs, written in place and rewritten whole by
`--resume`, since the run is marked complete only after them); `npgen sample --resume` continues
it from the first missing batch.
The Parquet files are plain Apache Parquet: pandas, DuckDB or pyarrow read them without npgen.
"""

from __future__ import annotations

import json
import os
import struct
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from PIL import Image

from npgen import __version__
from npgen.data.datasets import DATA_ENV, KNOWN, Dataset, load_dataset
from npgen.errors import NpgenError
from npgen.data.files import (
    TMP_MARK,
    atomic_write,
    make_dir,
    refuse_link,
    remove_temp_files,
    write_array,
    write_in_place,
    write_json,
)
from npgen.params import describe_differences
from npgen.rule.provenance import Samples

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
SOURCES_FILE = "sources.parquet"


def sources_table(dataset: Dataset) -> pa.Table | None:
    """For an image-folder dataset: one row per training image (src_image, file relative to the folder, label,
    class); None for a dataset without files."""
    if not dataset.files:
        return None
    return pa.table(
        {
            "src_image": np.arange(dataset.n_images, dtype=np.int32),
            "file": list(dataset.files),
            "label": dataset.labels.astype(np.int32),
            "class": [dataset.class_names[i] for i in dataset.labels],
        }
    )


def provenance_table(samples: Samples) -> pa.Table:
    """One row per generated pixel of `samples`, in (sample, y, x) order; given pixels (a completion's) have none."""
    n, height, width = samples.src_image.shape
    columns = {
        "sample": np.repeat(samples.sample_index.astype(np.int32), height * width),
        "y": np.tile(np.repeat(np.arange(height, dtype=np.int16), width), n),
        "x": np.tile(np.arange(width, dtype=np.int16), n * height),
        "src_image": samples.src_image.ravel(),
        "src_y": samples.src_y.ravel(),
        "src_x": samples.src_x.ravel(),
        "n_candidates": samples.n_candidates.ravel(),
        "distance": samples.distance.ravel(),
    }
    generated = samples.n_candidates.ravel() >= 0  # a completion's given pixels (-1) have no provenance
    if not generated.all():
        columns = {name: values[generated] for name, values in columns.items()}
    return pa.Table.from_pydict(columns, schema=PROVENANCE_SCHEMA)


def write_provenance(table: pa.Table, path: Path) -> None:
    """A batch's provenance as Parquet: zstd, without dictionary encoding. Most of its columns (distances,
    sources) take thousands of distinct values per batch, where a dictionary only costs time: without it the
    file is written twice as fast and comes out smaller (CIFAR-10, 100 samples: 3.8 against 7.8 ms, 360 against
    503 KB). Readers see the same table."""
    pq.write_table(table, path, compression="zstd", use_dictionary=False)


def grid_pixels(images: np.ndarray, columns: int | None = None, scale: int = 2, gap: int = 2) -> np.ndarray:
    """Tile (N, H, W, C) uint8 images into one (rows, columns, C) uint8 picture, upscaled by nearest neighbour
    (each pixel repeated scale x scale times), on a grey background with `gap` pixels between tiles."""
    n, height, width, channels = images.shape
    columns = columns or int(np.ceil(np.sqrt(n)))
    rows = -(-n // columns)
    grid = np.full((rows * (height + gap) + gap, columns * (width + gap) + gap, channels), 128, dtype=np.uint8)
    for i, image in enumerate(images):
        top, left = gap + (i // columns) * (height + gap), gap + (i % columns) * (width + gap)
        grid[top : top + height, left : left + width] = image
    return grid.repeat(scale, axis=0).repeat(scale, axis=1)


def image_grid(images: np.ndarray, columns: int | None = None, scale: int = 2, gap: int = 2) -> Image.Image:
    """`grid_pixels` as a PIL image (grey-level for one channel)."""
    grid = grid_pixels(images, columns, scale, gap)
    return Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid)


def save_png(picture: Image.Image, path: Path) -> None:
    atomic_write(path, lambda tmp: picture.save(tmp, format="PNG"))


PNG_COLOUR_TYPES = {1: 0, 3: 2}  # channels -> PNG colour type: grey, RGB
PNG_LEVEL = 3  # zlib level of the run's PNGs: about Pillow's default size (level 6) at a third of the time
PNG_STORE_LIMIT = 4000  # scanline bytes up to which a picture is stored uncompressed (zlib level 0), see png_level


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_BATCH = 256  # pictures whose filtered rows `encode_pngs` builds at once (bounds its scratch memory)


def _png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def png_rows(pictures: np.ndarray) -> np.ndarray:
    """(N, H, W, C) uint8 -> (N, H, 1 + W * C) the PNG scanlines of each picture: filter byte, then the row.

    A row is stored unfiltered, or as filter "Up" (all zeros) when it repeats the row above, which the upscaled
    pictures of a run mostly do."""
    n, height, width, channels = pictures.shape
    rows = np.zeros((n, height, 1 + width * channels), np.uint8)
    rows[:, :, 1:] = pictures.reshape(n, height, -1)
    repeats = np.zeros((n, height), bool)
    repeats[:, 1:] = (rows[:, 1:, 1:] == rows[:, :-1, 1:]).all(axis=2)
    rows[repeats] = 0
    rows[repeats, 0] = 2  # filter Up: each byte plus the one above it, here zero
    return rows


def png_level(height: int, width: int, channels: int) -> int:
    """The zlib level for a picture of this size: 0 (stored) when its scanlines fit PNG_STORE_LIMIT bytes, else
    PNG_LEVEL. Such a file fits one 4 KiB file-system block compressed or not, so compressing it saves no disk,
    while zlib's fixed cost per call (about 40 us) was most of a 100-sample CIFAR-10 run's PNG time."""
    return 0 if height * (1 + width * channels) <= PNG_STORE_LIMIT else PNG_LEVEL


def encode_pngs(pictures: np.ndarray, level: int | None = None) -> Iterator[bytes]:
    """A plain 8-bit PNG (grey or RGB) of each of (N, H, W, C) uint8 pictures, in order: `encode_png` of each.

    The scanlines of up to PNG_BATCH pictures are built by one set of array operations, and the header is
    packed once, so that a run's many small PNGs cost little more than writing them. `level`: zlib's, by default
    `png_level` of their size."""
    if pictures.ndim != 4 or pictures.dtype != np.uint8 or pictures.shape[3] not in PNG_COLOUR_TYPES:
        raise NpgenError(f"a PNG takes (H, W, 1 or 3) uint8 pixels, got {pictures.dtype} {pictures.shape[1:]}")
    _, height, width, channels = pictures.shape
    level = png_level(height, width, channels) if level is None else level
    header = struct.pack(">IIBBBBB", width, height, 8, PNG_COLOUR_TYPES[channels], 0, 0, 0)
    head, tail = PNG_SIGNATURE + _png_chunk(b"IHDR", header), _png_chunk(b"IEND", b"")
    idat_crc = zlib.crc32(b"IDAT")
    for first in range(0, len(pictures), PNG_BATCH):
        for rows in png_rows(pictures[first : first + PNG_BATCH]):
            data = zlib.compress(rows, level)  # rows: one C-contiguous picture, read in place
            yield b"".join(
                [head, struct.pack(">I", len(data)), b"IDAT", data, struct.pack(">I", zlib.crc32(data, idat_crc)), tail]
            )


def encode_png(pixels: np.ndarray, level: int | None = None) -> bytes:
    """A plain 8-bit PNG (grey or RGB) of (H, W, C) uint8 pixels.

    Each row is stored unfiltered, or as filter "Up" (all zeros) when it repeats the row above (`png_rows`):
    this writes a run's PNGs several times faster than Pillow, at about the size of Pillow's default (small
    pictures are stored uncompressed, `png_level`). Any PNG reader decodes exactly these pixels."""
    if pixels.ndim != 3 or pixels.dtype != np.uint8 or pixels.shape[2] not in PNG_COLOUR_TYPES:
        raise NpgenError(f"a PNG takes (H, W, 1 or 3) uint8 pixels, got {pixels.dtype} {pixels.shape}")
    return next(encode_pngs(pixels[None], level))


def write_png(pixels: np.ndarray, path: Path, atomic: bool = True) -> None:
    """`encode_png(pixels)` written to `path`: atomically, or in place (`files.write_in_place`)."""
    data = encode_png(pixels)
    if atomic:
        atomic_write(path, lambda tmp: tmp.write_bytes(data))
    else:
        write_in_place(path, data)


KEEP_BYTES = 64 << 20  # images of the batches a RunWriter keeps in memory for `finish` (the rest are read back)
RUN_SUBFOLDERS = ("provenance", "summary", "chunks", "png", "controls")


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


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


def batch_part(run: Path, kind: str, index: int, suffix: str) -> Path:
    """The file of batch `index` of kind provenance (.parquet), summary (.parquet) or chunks (.npy) in a run folder."""
    return Path(run) / kind / f"part-{index:05d}.{suffix}"


BATCH_PARTS = (("provenance", "parquet"), ("summary", "parquet"), ("chunks", "npy"))


def _damaged_part(run: Path, part: Path) -> NpgenError:
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
        except (OSError, ValueError, pa.ArrowException):
            raise _damaged_part(run, part) from None
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


def shard_batches(n_batches: int, index: int, count: int) -> list[int]:
    """The batches shard `index` of `count` writes: every count-th batch from batch `index` (round robin), so
    shards get equal work within one batch and any scheduler can run them in any order on any machine."""
    return list(range(index, n_batches, count))


def check_out(path: str | os.PathLike, resume: bool) -> str:
    """The `run_state` of an --out folder, or an NpgenError if it cannot take a new run (with `resume`: if it
    cannot be continued). Callers check before any work, and `RunWriter` again when it opens the folder."""
    state = run_state(path)
    if state == "dangling-link":
        raise NpgenError(
            f"--out {path} is a symbolic link to a missing folder; remove the link or choose another --out"
        )
    if state != "absent" and not resume:
        raise NpgenError(f"{path} already exists; choose a new --out, or pass --resume to continue that run")
    if resume and state == "absent":
        raise NpgenError(f"cannot resume {path}: it does not exist; drop --resume to start a new run")
    if resume and state == "foreign":
        raise NpgenError(
            f"cannot resume {path}: it has no manifest.json and holds other files, so it is not an npgen run; choose another --out"
        )
    return state


class RunWriter:
    """Writes a run directory batch by batch; see the module docstring for its layout.

    The folder is created (exclusively) and its manifest written before anything else, so a run killed at
    any point can be continued with `resume=True`; a folder without a manifest that holds only npgen's own
    leftovers (or nothing) is started afresh on resume. `abandon()` removes the folder again if this writer
    created it and nothing but its own files are in it.
    """

    def __init__(
        self, path: str | os.PathLike, manifest: dict, resume: bool = False, controls: dict | None = None
    ) -> None:
        """`controls` holds the arrays that restrict where pixels come from (exclusion, class map, completion
        inputs), kept in controls/NAME.npy with their SHA-256 in the manifest."""
        from npgen.data.files import array_sha256

        self.path = Path(path)
        controls = controls or {}
        self.manifest = {
            "format": RUN_FORMAT,
            "npgen_version": __version__,
            **manifest,
            "controls": {name: array_sha256(array) for name, array in controls.items()},
            "status": "running",
        }
        self.created = False
        state = check_out(self.path, resume)
        if state in ("running", "complete", "bad"):
            previous = read_manifest(self.path)
            difference = command_difference(previous, self.manifest, "the run", "this command")
            if difference is not None:
                key, differ = difference
                raise NpgenError(
                    f"cannot resume {self.path}: its {key} differs from this command's ({differ}); "
                    "rerun it with the same options or choose a new --out"
                )
            self.manifest["started"] = previous.get("started")
        elif state != "empty":  # "empty": a run killed before its manifest was written, started afresh in place
            self.path.parent.mkdir(parents=True, exist_ok=True)
            try:
                self.path.mkdir()
            except FileExistsError:
                raise NpgenError(
                    f"{self.path} already exists; choose a new --out, or pass --resume to continue that run"
                ) from None
            self.created = True
        self.manifest["started"] = self.manifest.get("started") or _now()
        write_json(self.path / "manifest.json", self.manifest)
        for sub in RUN_SUBFOLDERS:
            make_dir(self.path / sub)
        remove_temp_files(self.path)
        for name, array in controls.items():
            write_array(self.path / "controls" / f"{name}.npy", array)
        self.batches_written = 0
        self._kept: dict[int, tuple[np.ndarray, pa.Table]] = {}  # batches written here, for `finish` to reuse
        self._kept_bytes = 0

    def _chunk(self, kind: str, index: int, suffix: str) -> Path:
        return batch_part(self.path, kind, index, suffix)

    def _damaged(self, part: Path) -> NpgenError:
        return _damaged_part(self.path, part)

    def has_batch(self, index: int) -> bool:
        """True if the batch was written whole before; raises NpgenError for a part that exists but is unreadable."""
        return has_batch(self.path, index)

    def write_batch(self, index: int, samples: Samples, summary: pa.Table) -> None:
        """Persist one batch: its provenance and summary rows first, then its images."""
        table = provenance_table(samples)
        atomic_write(self._chunk("provenance", index, "parquet"), lambda tmp: write_provenance(table, tmp))
        atomic_write(self._chunk("summary", index, "parquet"), lambda tmp: pq.write_table(summary, tmp))
        write_array(self._chunk("chunks", index, "npy"), samples.images)
        self.batches_written += 1
        if self._kept_bytes + samples.images.nbytes <= KEEP_BYTES:
            self._kept[index] = (samples.images, summary)
            self._kept_bytes += samples.images.nbytes

    def abandon(self) -> bool:
        """After a failure before any batch was written: remove the run folder if this writer created it and it
        holds nothing but what the writer put there (manifest, empty subfolders, temporary files). True if removed."""
        if not self.created or self.batches_written:
            return False
        try:
            for entry in self.path.iterdir():
                if entry.name.startswith(".") and TMP_MARK in entry.name and entry.is_file():
                    entry.unlink()
            (self.path / "manifest.json").unlink(missing_ok=True)
            for name in self.manifest["controls"]:
                (self.path / "controls" / f"{name}.npy").unlink(missing_ok=True)
            for sub in RUN_SUBFOLDERS:
                if (self.path / sub).is_dir() and not (self.path / sub).is_symlink():
                    remove_temp_files(self.path / sub, recursive=False)
                    (self.path / sub).rmdir()
            self.path.rmdir()  # fails, keeping the folder, if anything else is in it
        except OSError:
            return False
        return True

    def _read_part(self, kind: str, index: int, suffix: str, read):
        part = self._chunk(kind, index, suffix)
        try:
            return read(part)
        except (OSError, ValueError, pa.ArrowException):
            raise self._damaged(part) from None

    def _batch(self, index: int) -> tuple[np.ndarray, pa.Table]:
        """A batch's images and summary rows: kept in memory if this writer wrote them, else read back."""
        if index in self._kept:
            return self._kept[index]
        return (
            self._read_part("chunks", index, "npy", np.load),
            self._read_part("summary", index, "parquet", pq.read_table),
        )

    def finish(self, n_batches: int, timings: dict, sources: pa.Table | None = None) -> pa.Table:
        """Join the batches into samples.npy and samples.parquet, draw the pictures, write `sources` (the
        training images' files, see `sources_table`) when given, mark the run complete."""
        batches = [self._batch(i) for i in range(n_batches)]
        images = np.concatenate([batch_images for batch_images, _ in batches])
        summary = pa.concat_tables([batch_summary for _, batch_summary in batches])
        write_array(self.path / "samples.npy", images)
        atomic_write(self.path / "samples.parquet", lambda tmp: pq.write_table(summary, tmp))
        if sources is not None:
            atomic_write(self.path / SOURCES_FILE, lambda tmp: pq.write_table(sources, tmp, compression="zstd"))
        for i, data in enumerate(encode_pngs(images)):  # lossless, at the samples' own size
            write_in_place(self.path / "png" / f"sample-{i:05d}.png", data)
        write_png(grid_pixels(images[:256]), self.path / "grid.png")
        share = summary.column("top_source_share").to_numpy()
        self.manifest["timings"] = timings
        self.manifest["summary"] = {
            "median_nearest_distance": float(np.median(summary.column("nearest_distance").to_numpy())),
            "median_top_source_share": float(np.median(share)),
            "max_top_source_share": float(share.max()),
        }
        self.manifest.update(status="complete", finished=_now())
        write_json(self.path / "manifest.json", self.manifest)
        remove_temp_files(self.path)
        return summary

    def finish_shard(self, batches: list[int], timings: dict, sources: pa.Table | None = None) -> None:
        """Mark a shard folder complete once every one of its `batches` is written whole; `npgen merge` joins the
        shards into the run (samples.npy, samples.parquet and the pictures are made there, not here)."""
        missing = [i for i in batches if not self.has_batch(i)]
        if missing:
            raise NpgenError(f"shard {self.path} lacks batches {missing[:5]}; resume it with the same command")
        if sources is not None:
            atomic_write(self.path / SOURCES_FILE, lambda tmp: pq.write_table(sources, tmp, compression="zstd"))
        self.manifest["timings"] = timings
        self.manifest.update(status="complete", finished=_now())
        write_json(self.path / "manifest.json", self.manifest)
        remove_temp_files(self.path)


def read_manifest(path: str | os.PathLike) -> dict:
    """The manifest of the run at `path`, or an NpgenError that says what is missing."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise NpgenError(f"{path} is a file, not an npgen run; pass a directory written by `npgen sample`")
    try:
        manifest = json.loads((path / "manifest.json").read_text())
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
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise NpgenError(f"{damaged}: its n_samples {n!r} is not a positive integer; sample the run again")
    if "class_label" not in manifest:
        raise NpgenError(f"{damaged}: it has no class_label (null for an unconditional run); sample the run again")
    if not isinstance(manifest.get("database", {}), dict):
        raise NpgenError(f"{damaged}: its database record is not a mapping; sample the run again")
    label = manifest.get("class_label")
    if label is not None and (not isinstance(label, int) or isinstance(label, bool) or label < 0):
        raise NpgenError(f"{damaged}: its class_label {label!r} is not a class index; sample the run again")


def check_provenance(path, column: dict, n_samples: int, height: int, width: int, n_images: int) -> None:
    """Raise a one-line NpgenError if any provenance row points outside the run's samples or the training images."""
    bounds = {"sample": n_samples, "y": height, "x": width, "src_y": height, "src_x": width, "src_image": n_images}
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
        try:
            self.samples = np.load(self.path / "samples.npy", mmap_mode="r")
        except (OSError, ValueError) as err:
            raise NpgenError(f"{self.path}/samples.npy is missing or damaged; sample the run again") from err
        expected = (self.manifest["n_samples"], *self.manifest["dataset"]["shape"])
        if self.samples.dtype != np.uint8 or self.samples.shape != expected:
            raise NpgenError(
                f"{self.path}/samples.npy holds {self.samples.dtype} {self.samples.shape}, but the manifest says "
                f"uint8 {expected}; the run is damaged, sample it again"
            )

    def provenance(self, columns: list[str] | None = None) -> pa.Table:
        """The per-pixel provenance table (optionally only some columns), sorted by sample, y, x."""
        try:
            table = pq.read_table(self.path / "provenance", columns=columns, schema=PROVENANCE_SCHEMA)
        except (OSError, pa.ArrowException) as err:
            raise NpgenError(
                f"the provenance of run {self.path} is unreadable ({(str(err).splitlines() or [''])[0][:100]}); sample the run again"
            ) from err
        return table

    def check_provenance(self, column: dict, n_images: int) -> None:
        """Raise NpgenError if provenance columns point outside this run's samples or `n_images` training images."""
        n, height, width = self.samples.shape[:3]
        check_provenance(self.path, column, n, height, width, n_images)

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
            data = load_dataset(name, split=record["split"], data_root=root)
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
        from npgen.data.files import array_sha256

        recorded = (self.manifest.get("controls") or {}).get(name)
        if recorded is None:
            return None
        path = self.path / "controls" / f"{name}.npy"
        try:
            array = np.load(path, allow_pickle=False)
        except (OSError, ValueError):
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
        files = [""] * (int(pc.max(table.column("src_image")).as_py() or 0) + 1 if table.num_rows else 0)
        for index, name in zip(table.column("src_image").to_pylist(), table.column("file").to_pylist()):
            if index is None or index < 0:
                raise NpgenError(f"{path} is damaged (a negative src_image); delete it or sample the run again")
            files[index] = name
        return files
