"""The provenance store's writer: a run directory written batch by batch (layout: `npgen.runs.run`).

Every file is written to a hidden temporary name and renamed into place, so an interrupted run
holds only whole files (but for the per-sample PNGs, written in place and rewritten whole by
`--resume`, since the run is marked complete only after them); `npgen sample --resume` continues
it from the first missing batch.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from npgen import __version__
from npgen.data.datasets import Dataset
from npgen.data.files import (
    TMP_MARK,
    array_sha256,
    atomic_write,
    make_dir,
    remove_temp_files,
    write_array,
    write_in_place,
    write_json,
)
from npgen.errors import NpgenError
from npgen.rule.provenance import Samples
from npgen.runs.integrity import PARTS_KEY, part_records
from npgen.runs.png import encode_pngs, grid_pixels, write_png
from npgen.runs.run import (
    PROVENANCE_SCHEMA,
    RUN_FORMAT,
    RUN_SUBFOLDERS,
    SOURCES_FILE,
    batch_part,
    command_difference,
    damaged_part,
    has_batch,
    level_folder,
    read_manifest,
    run_levels,
    run_state,
)


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


KEEP_BYTES = 64 << 20  # images of the batches a RunWriter keeps in memory for `finish` (the rest are read back)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def check_out(path: str | os.PathLike, resume: bool) -> str:
    """The `run_state` of an --out folder, or an NpgenError if it cannot take a new run (with `resume`: if it
    cannot be continued). Callers check before any work, and `RunWriter` again when it opens the folder."""
    if Path(path).is_symlink() and Path(path).exists():
        raise NpgenError(
            f"--out {path} is a symbolic link; npgen does not write through links: pass the real folder as --out"
        )
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


def check_same_command(path: Path, manifest: dict) -> dict:
    """The manifest of the run at `path`, or an NpgenError if `manifest` (a new command's, with its "controls"
    hashes) differs from it as a command (`command_difference`): a run, finished or not, resumes only as itself."""
    previous = read_manifest(path)
    difference = command_difference(previous, manifest, "the run", "this command")
    if difference is not None:
        key, differ = difference
        raise NpgenError(
            f"cannot resume {path}: its {key} differs from this command's ({differ}); "
            "rerun it with the same options or choose a new --out"
        )
    return previous


def control_hashes(controls: dict | None) -> dict:
    """The manifest's record of a run's control arrays: {name: SHA-256}."""
    return {name: array_sha256(array) for name, array in (controls or {}).items()}


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
        self.path = Path(path)
        controls = controls or {}
        self.manifest = {
            "format": RUN_FORMAT,
            "npgen_version": __version__,
            **manifest,
            "controls": control_hashes(controls),
            "status": "running",
        }
        self.created = False
        state = check_out(self.path, resume)
        if state in ("running", "complete", "bad"):
            self.manifest["started"] = check_same_command(self.path, self.manifest).get("started")
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
        return damaged_part(self.path, part)

    def has_batch(self, index: int) -> bool:
        """True if the batch was written whole before; raises NpgenError for a part that exists but is unreadable."""
        return has_batch(self.path, index)

    def write_batch(self, index: int, samples: Samples, summary: pa.Table) -> None:
        """Persist one batch: its coarser pyramid levels, its provenance and summary rows, then its images."""
        for level, coarser in enumerate(samples.coarser, 1):
            folder = level_folder(self.path, level)
            coarse_table = provenance_table(coarser)
            for sub in ("provenance", "chunks"):
                make_dir(folder / sub)
            atomic_write(
                batch_part(folder, "provenance", index, "parquet"), lambda tmp: write_provenance(coarse_table, tmp)
            )
            write_array(batch_part(folder, "chunks", index, "npy"), coarser.images)
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
        return self._read_part_at(self.path, kind, index, suffix, read)

    def _read_part_at(self, folder: Path, kind: str, index: int, suffix: str, read):
        part = batch_part(folder, kind, index, suffix)
        try:
            return read(part)
        except (OSError, ValueError, EOFError, pa.ArrowException):
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
        for level in range(1, run_levels(self.manifest)):
            folder = level_folder(self.path, level)
            parts = [self._read_part_at(folder, "chunks", i, "npy", np.load) for i in range(n_batches)]
            write_array(folder / "samples.npy", np.concatenate(parts))
            write_png(grid_pixels(np.concatenate(parts)[:256]), folder / "grid.png")
        atomic_write(self.path / "samples.parquet", lambda tmp: pq.write_table(summary, tmp))
        if sources is not None:
            atomic_write(self.path / SOURCES_FILE, lambda tmp: pq.write_table(sources, tmp, compression="zstd"))
        for i, data in enumerate(encode_pngs(images)):  # lossless, at the samples' own size
            write_in_place(self.path / "png" / f"sample-{i:05d}.png", data)
        write_png(grid_pixels(images[:256]), self.path / "grid.png")
        share = summary.column("top_source_share").to_numpy()
        self.manifest[PARTS_KEY] = part_records(self.path, n_batches, run_levels(self.manifest))
        self.manifest["timings"] = timings
        self.manifest["summary"] = {
            "median_nearest_distance": finite_or_none(np.median(summary.column("nearest_distance").to_numpy())),
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


def finite_or_none(value) -> float | None:
    """A float for the manifest, None where it is not a finite number (no nearest image at another --size)."""
    value = float(value)
    return value if np.isfinite(value) else None
