"""The provenance store: a run directory that records every generated pixel's source.

Layout of a run::

    manifest.json                 npgen version, dataset and SHA-256, data root, every parameter, seed, command, timings, status
    provenance/part-00000.parquet one row per generated pixel (see PROVENANCE_SCHEMA), one file per batch
    summary/part-00000.parquet    the batch's rows of samples.parquet
    chunks/part-00000.npy         the batch's samples, uint8 (B, H, W, C); written last, it marks a finished batch
    samples.npy                   all samples in order (written when the run completes)
    samples.parquet               one row per sample: class, nearest training image and distance, top-source share
    grid.png, png/sample-00000.png

Every file is written to a hidden temporary name and renamed into place, so an interrupted run
holds only whole files; `npgen sample --resume` continues it from the first missing batch.
The Parquet files are plain Apache Parquet: pandas, DuckDB or pyarrow read them without npgen.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from npgen import __version__
from npgen.datasets import DATA_ENV, KNOWN, Dataset, load_dataset
from npgen.errors import NpgenError
from npgen.samples import Samples

PROVENANCE_SCHEMA = pa.schema(
    [
        ("sample", pa.int32()), ("y", pa.int16()), ("x", pa.int16()),
        ("src_image", pa.int32()), ("src_y", pa.int16()), ("src_x", pa.int16()),
        ("n_candidates", pa.int32()), ("distance", pa.float32()),
    ]
)  # fmt: skip
RUN_FORMAT = "npgen-run"


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call write(tmp) on a hidden temporary path beside `path`, then rename it into place."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_json(path: Path, record: dict) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(record, indent=2) + "\n"))


def write_array(path: Path, array: np.ndarray) -> None:
    """Save one array as .npy atomically (through a file object: np.save would rename a temporary path)."""

    def write(tmp: Path) -> None:
        with tmp.open("wb") as f:
            np.save(f, array)

    atomic_write(path, write)


def provenance_table(samples: Samples) -> pa.Table:
    """One row per generated pixel of `samples`, in (sample, y, x) order."""
    n, height, width = samples.src_image.shape
    columns = {
        "sample": np.repeat(samples.sample_index.astype(np.int32), height * width),
        "y": np.tile(np.repeat(np.arange(height, dtype=np.int16), width), n),
        "x": np.tile(np.arange(width, dtype=np.int16), n * height),
        "src_image": samples.src_image.ravel(), "src_y": samples.src_y.ravel(), "src_x": samples.src_x.ravel(),
        "n_candidates": samples.n_candidates.ravel(), "distance": samples.distance.ravel(),
    }  # fmt: skip
    return pa.Table.from_pydict(columns, schema=PROVENANCE_SCHEMA)


def image_grid(images: np.ndarray, columns: int | None = None, scale: int = 2, gap: int = 2) -> Image.Image:
    """Tile (N, H, W, C) uint8 images into one picture, upscaled by nearest neighbour."""
    n, height, width, channels = images.shape
    columns = columns or int(np.ceil(np.sqrt(n)))
    rows = -(-n // columns)
    grid = np.full((rows * (height + gap) + gap, columns * (width + gap) + gap, channels), 128, dtype=np.uint8)
    for i, image in enumerate(images):
        top, left = gap + (i // columns) * (height + gap), gap + (i % columns) * (width + gap)
        grid[top : top + height, left : left + width] = image
    picture = Image.fromarray(grid[..., 0] if channels == 1 else grid)
    return picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST)


def save_png(picture: Image.Image, path: Path) -> None:
    atomic_write(path, lambda tmp: picture.save(tmp, format="PNG"))


class RunWriter:
    """Writes a run directory batch by batch; see the module docstring for its layout."""

    def __init__(self, path: str | os.PathLike, manifest: dict, resume: bool = False) -> None:
        self.path = Path(path)
        self.manifest = {"format": RUN_FORMAT, "npgen_version": __version__, **manifest, "status": "running"}
        if self.path.exists() and not resume:
            raise NpgenError(f"{self.path} already exists; choose a new --out, or pass --resume to continue that run")
        if resume:
            previous = read_manifest(self.path)
            for key in ("dataset", "database", "params", "class_label", "n_samples"):
                if previous.get(key) != self.manifest.get(key):
                    raise NpgenError(f"cannot resume {self.path}: its {key} differs from this command's; rerun it with the same options or choose a new --out")
            self.manifest["started"] = previous.get("started")
        for sub in ("provenance", "summary", "chunks", "png"):
            (self.path / sub).mkdir(parents=True, exist_ok=True)
        self.manifest.setdefault("started", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        write_json(self.path / "manifest.json", self.manifest)

    def _chunk(self, kind: str, index: int, suffix: str) -> Path:
        return self.path / kind / f"part-{index:05d}.{suffix}"

    def has_batch(self, index: int) -> bool:
        return self._chunk("provenance", index, "parquet").exists() and self._chunk("chunks", index, "npy").exists()

    def write_batch(self, index: int, samples: Samples, summary: pa.Table) -> None:
        """Persist one batch: its provenance and summary rows first, then its images."""
        table = provenance_table(samples)
        atomic_write(self._chunk("provenance", index, "parquet"), lambda tmp: pq.write_table(table, tmp, compression="zstd"))
        atomic_write(self._chunk("summary", index, "parquet"), lambda tmp: pq.write_table(summary, tmp))
        write_array(self._chunk("chunks", index, "npy"), samples.images)

    def finish(self, n_batches: int, timings: dict) -> pa.Table:
        """Join the batches into samples.npy and samples.parquet, draw the pictures, mark the run complete."""
        images = np.concatenate([np.load(self._chunk("chunks", i, "npy")) for i in range(n_batches)])
        summary = pa.concat_tables([pq.read_table(self._chunk("summary", i, "parquet")) for i in range(n_batches)])
        write_array(self.path / "samples.npy", images)
        atomic_write(self.path / "samples.parquet", lambda tmp: pq.write_table(summary, tmp))
        for i, image in enumerate(images):
            save_png(image_grid(image[None], columns=1, scale=4, gap=0), self.path / "png" / f"sample-{i:05d}.png")
        save_png(image_grid(images[:256]), self.path / "grid.png")
        share = summary.column("top_source_share").to_numpy()
        self.manifest["timings"] = timings
        self.manifest["summary"] = {
            "median_nearest_distance": float(np.median(summary.column("nearest_distance").to_numpy())),
            "median_top_source_share": float(np.median(share)),
            "max_top_source_share": float(share.max()),
        }
        self.manifest.update(status="complete", finished=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        write_json(self.path / "manifest.json", self.manifest)
        return summary


def read_manifest(path: str | os.PathLike) -> dict:
    """The manifest of the run at `path`, or an NpgenError that says what is missing."""
    path = Path(path)
    try:
        manifest = json.loads((path / "manifest.json").read_text())
    except FileNotFoundError as err:
        raise NpgenError(f"{path} is not an npgen run (no manifest.json); pass a directory written by `npgen sample`") from err
    except (OSError, ValueError) as err:
        raise NpgenError(f"the manifest of run {path} is unreadable ({type(err).__name__}); the run is damaged, sample it again") from err
    if manifest.get("format") != RUN_FORMAT:
        raise NpgenError(f"{path}/manifest.json is not an npgen run manifest")
    return manifest


class Run:
    """A completed run, read back: manifest, samples and provenance."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.manifest = read_manifest(self.path)
        if self.manifest.get("status") != "complete":
            raise NpgenError(f"run {self.path} is incomplete; finish it with `npgen sample --resume --out {self.path}` and the same options")
        try:
            self.samples = np.load(self.path / "samples.npy", mmap_mode="r")
        except (OSError, ValueError) as err:
            raise NpgenError(f"{self.path}/samples.npy is missing or damaged; sample the run again") from err

    def provenance(self, columns: list[str] | None = None) -> pa.Table:
        """The per-pixel provenance table (optionally only some columns), sorted by sample, y, x."""
        try:
            table = pq.read_table(self.path / "provenance", columns=columns, schema=PROVENANCE_SCHEMA)
        except (OSError, pa.ArrowException) as err:
            raise NpgenError(f"the provenance of run {self.path} is unreadable ({str(err).splitlines()[0][:100]}); sample the run again") from err
        return table

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
        name = record["name"] if record["name"] in KNOWN else record["source"]
        root = self.data_root(data_root)
        recorded = name in KNOWN and root is not None and root != data_root
        try:
            data = load_dataset(name, split=record["split"], data_root=root)
        except NpgenError as err:
            if not recorded:
                raise
            raise NpgenError(f"run {self.path} was sampled from {name} in {root}, which no longer holds it ({err}); "
                             f"pass --data-root DIR or set {DATA_ENV}=DIR to where {name} is now") from None
        if (data.images_sha256, data.labels_sha256) != (record["images_sha256"], record["labels_sha256"]):
            raise NpgenError(f"the {record['name']} data found now differs from the data run {self.path} was sampled from (SHA-256); point --data-root at the original data")
        return data

    def summary(self) -> pa.Table:
        return pq.read_table(self.path / "samples.parquet")
