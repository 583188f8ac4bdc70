"""A run's integrity, checked before any read-side command answers: every provenance part the run's size names is
there (and nothing else), each with the rows of its samples' generated pixels and the SHA-256 its manifest records;
and a read-side command's output kept out of every run folder.

The manifest of a finished run records its parts (`part_records`, under PARTS_KEY): their paths relative to the
run, row counts and SHA-256. A run finished before that record is checked against the parts its n_samples and
batch_size name and their row counts.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from npgen.data.files import file_sha256
from npgen.errors import NpgenError
from npgen.params import output_size, size_sides

PARTS_KEY = "parts"
SOURCES_FILE = "sources.parquet"
MAX_SAMPLES = 10_000_000  # the most samples one run may hold (-n, a manifest's n_samples)
MAX_TRAINING_IMAGES = 100_000_000  # the most training images a run's manifest may name (audit sizes tables by it)
MAX_BATCH_SIZE = 10_000  # npgen.params' batch_size range


def batch_part(run: Path, kind: str, index: int, suffix: str) -> Path:
    """The file of batch `index` of kind provenance (.parquet), summary (.parquet) or chunks (.npy) in a run folder."""
    return Path(run) / kind / f"part-{index:05d}.{suffix}"


def level_folder(run: Path, level: int) -> Path:
    """Where pyramid level `level` (>= 1) of a run's samples is kept: a folder laid out like the run's own parts."""
    return Path(run) / "levels" / str(level)


def run_batches(path: Path, manifest: dict) -> tuple[int, int]:
    """(batch size, number of batches) of a run, from its manifest (checked)."""
    size = manifest.get("params", {}).get("batch_size", 100)
    if not isinstance(size, int) or isinstance(size, bool) or not 1 <= size <= MAX_BATCH_SIZE:
        raise NpgenError(
            f"the manifest of run {path} is damaged: its batch_size {size!r} is not in 1..{MAX_BATCH_SIZE}; sample the run again"
        )
    n = manifest.get("n_samples")
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= MAX_SAMPLES:
        raise NpgenError(f"the manifest of run {path} is damaged: its n_samples {n!r} is not in 1..{MAX_SAMPLES}")
    return size, -(-n // size)


def part_records(path: Path, n_batches: int, levels: int) -> dict:
    """What a finished run's manifest records of its provenance parts (and samples.parquet, sources.parquet):
    relative path -> {rows, sha256}."""
    records = {
        name: {"rows": pq.read_metadata(path / name).num_rows, "sha256": file_sha256(path / name)}
        for name in ("samples.parquet", SOURCES_FILE)
        if (path / name).is_file()
    }
    for level in range(levels):
        folder = path if level == 0 else level_folder(path, level)
        for index in range(n_batches):
            part = batch_part(folder, "provenance", index, "parquet")
            records[part.relative_to(path).as_posix()] = {
                "rows": pq.read_metadata(part).num_rows,
                "sha256": file_sha256(part),
            }
    return records


def _check_regular(file: Path, most: int) -> None:
    """NpgenError if `file` exists but is no regular file (a FIFO or device would block or never end) or is larger
    than any file of the run can be (`most` bytes)."""
    if not (file.exists() or file.is_symlink()):
        return
    try:
        info = os.stat(file)
    except OSError as err:
        raise NpgenError(f"cannot read {file}: {err.strerror}; the run is damaged, sample it again") from None
    if not stat.S_ISREG(info.st_mode):
        raise NpgenError(
            f"{file} is not a regular file (a FIFO, device or folder): the run is damaged; sample it again"
        )
    if info.st_size > most:
        raise NpgenError(
            f"{file} holds {info.st_size} bytes, more than the run can hold: it is damaged; sample it again"
        )


def _unreadable(part: Path, path: Path) -> NpgenError:
    return NpgenError(f"{part} is unreadable (a truncated or damaged part); the run {path} is damaged, sample it again")


def _rows(part: Path, path: Path) -> int:
    try:
        return pq.read_metadata(part).num_rows
    except (OSError, ValueError, pa.ArrowException):
        raise _unreadable(part, path) from None


def _sample_range(part: Path, path: Path) -> tuple[int, int]:
    """(lowest, highest) sample index in a provenance part: from its statistics, else its sample column."""
    try:
        metadata = pq.read_metadata(part)
        column = metadata.schema.names.index("sample")
        stats = [metadata.row_group(i).column(column).statistics for i in range(metadata.num_row_groups)]
        if stats and all(s is not None and s.has_min_max for s in stats):
            return min(int(s.min) for s in stats), max(int(s.max) for s in stats)
        values = pq.read_table(part, columns=["sample"]).column("sample").to_numpy()
        return int(values.min(initial=2**31)), int(values.max(initial=-1))
    except (OSError, ValueError, pa.ArrowException):
        raise _unreadable(part, path) from None


def sample_shape(path: Path, manifest: dict) -> tuple[int, int, int]:
    """(height, width, channels) of a run's samples: its training images', unless it was sampled at another `size`;
    a one-line NpgenError for a size that is not HxW."""
    height, width, channels = manifest["dataset"]["shape"]
    size = manifest["params"].get("size")
    if size is None:
        return height, width, channels
    try:
        return (*size_sides(output_size(size)), channels)
    except (ValueError, AttributeError):
        raise NpgenError(
            f"the manifest of run {path} is damaged: its size {size!r} is not HxW; sample the run again"
        ) from None


def check_parts(path: Path, manifest: dict, levels: int, generated: list[np.ndarray]) -> None:
    """Raise a one-line NpgenError unless the run at `path` holds exactly the provenance parts its manifest names, at
    every pyramid level, each with the rows of its samples' generated pixels (`generated`: per level, per sample) and
    the SHA-256 recorded for it; and a samples.parquet with a row per sample."""
    n = manifest["n_samples"]
    height, width, channels = sample_shape(path, manifest)
    size, n_batches = run_batches(path, manifest)
    most = 1024 * manifest["dataset"]["n_images"] + 8 * n * height * width * channels + (1 << 20)  # bytes, any file
    for name in (
        "samples.npy",
        "samples.parquet",
        SOURCES_FILE,
        *(f"controls/{control}.npy" for control in manifest.get("controls") or {}),
        *(f"levels/{level}/samples.npy" for level in range(1, levels)),
    ):
        _check_regular(path / name, most)
    if (path / SOURCES_FILE).exists() and _rows(path / SOURCES_FILE, path) != manifest["dataset"]["n_images"]:
        raise NpgenError(
            f"{path / SOURCES_FILE} does not name the {manifest['dataset']['n_images']} training images of the run; "
            "delete it (the run then names no files) or sample the run again"
        )
    recorded = manifest.get(PARTS_KEY)
    if recorded is not None and not isinstance(recorded, dict):
        raise NpgenError(
            f"the manifest of run {path} is damaged: its {PARTS_KEY} record is not a mapping; sample the run again"
        )
    for level in range(levels):
        folder = (path if level == 0 else level_folder(path, level)) / "provenance"
        if folder.is_symlink() or not folder.is_dir():
            raise NpgenError(f"{folder} is missing (or not a folder): the run {path} is incomplete; sample it again")
        expected = {f"part-{index:05d}.parquet": index for index in range(n_batches)}
        found = {entry.name for entry in folder.iterdir() if not entry.name.startswith((".", "_"))}
        foreign, missing = sorted(found - set(expected)), sorted(set(expected) - found)
        if foreign:
            raise NpgenError(
                f"{folder / foreign[0]} is not one of the run's {n_batches} provenance parts (npgen never wrote it); "
                "move it out of the run, then try again"
            )
        if missing:
            raise NpgenError(f"{folder / missing[0]} is missing: the run {path} is incomplete; sample it again")
        for name, index in expected.items():
            part = folder / name
            first, last = index * size, min(n, (index + 1) * size)
            rows = int(generated[level][first:last].sum())
            if part.is_symlink() or not part.is_file():
                raise NpgenError(f"{part} is not a file: the run {path} is damaged; sample it again")
            held = _rows(part, path)
            if held != rows:
                raise NpgenError(
                    f"{part} holds {held} rows, not the {rows} generated pixels of samples {first}..{last - 1}: "
                    f"the run {path} is damaged (a part removed, replaced or duplicated); sample it again"
                )
            low, high = _sample_range(part, path) if rows else (first, last - 1)
            if low < first or high >= last:
                raise NpgenError(
                    f"{part} holds samples {low}..{high}, not its batch's {first}..{last - 1}: the run {path} is "
                    "damaged (a part replaced or duplicated); sample it again"
                )
            if recorded is not None:
                record = recorded.get(part.relative_to(path).as_posix())
                if not isinstance(record, dict) or record.get("sha256") != file_sha256(part):
                    raise NpgenError(
                        f"{part} differs from the SHA-256 the run's manifest records: the run {path} was altered; sample it again"
                    )
    summary = path / "samples.parquet"
    if _rows(summary, path) != n:
        raise NpgenError(
            f"{summary} does not hold one row per sample ({n}): the run {path} is damaged; sample it again"
        )
    for name in ("samples.parquet", SOURCES_FILE):
        record = (recorded or {}).get(name)
        if isinstance(record, dict) and (path / name).exists() and record.get("sha256") != file_sha256(path / name):
            raise NpgenError(
                f"{path / name} differs from the SHA-256 the run's manifest records: the run {path} was altered; "
                "sample it again"
            )


def check_output(out: str | os.PathLike, own: str) -> Path:
    """`out` as a path, or a one-line NpgenError if it is an npgen run (or shard, or database) folder or lies inside one:
    a read-side command never writes into a run, but for its own default subfolder RUN/`own`."""
    target = Path(os.path.abspath(out))
    resolved = target.resolve()
    for folder in dict.fromkeys([*target.parents[::-1], target, *resolved.parents[::-1], resolved]):
        if not _is_npgen_folder(folder):
            continue
        mine = folder / own
        if resolved == mine.resolve() or mine.resolve() in resolved.parents:
            continue
        raise NpgenError(
            f"--out {out} is {'the' if folder in (target, resolved) else 'inside the'} npgen folder {folder}; "
            f"read-side commands never write into a run: choose a folder outside it (or omit --out to write to {mine})"
        )
    return Path(out)


def _is_npgen_folder(folder: Path) -> bool:
    manifest = folder / "manifest.json"
    try:
        if not manifest.is_file() or manifest.stat().st_size > 64 << 20:
            return False
        text = manifest.read_text(errors="replace")
    except OSError:
        return False
    return '"npgen-run"' in text or '"npgen-database"' in text
