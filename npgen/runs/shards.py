"""Sharded runs: any machine samples any shard of a run (`npgen sample ... --shard I/K`), `merge_runs` joins them."""

from __future__ import annotations

import fcntl
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from npgen.data.files import TMP_MARK, array_sha256, make_dir
from npgen.errors import NpgenError
from npgen.runs.integrity import MAX_SAMPLES, run_batches
from npgen.runs.run import (
    BATCH_PARTS,
    SOURCES_FILE,
    batch_part,
    command_difference,
    has_batch,
    level_folder,
    read_manifest,
    run_levels,
    run_state,
)
from npgen.runs.store import RunWriter


def shard_batches(n_batches: int, index: int, count: int) -> list[int]:
    """The batches shard `index` of `count` writes: every count-th batch from batch `index` (round robin), so
    shards get equal work within one batch and any scheduler can run them in any order on any machine."""
    return list(range(index, n_batches, count))


def parse_shard(value: str | tuple[int, int]) -> tuple[int, int]:
    """ "I/K" (or (I, K)) -> (I, K), shard I of K counted from 0; NpgenError unless 0 <= I < K."""
    if isinstance(value, str):
        try:
            index, count = (int(part) for part in value.split("/"))
        except ValueError:
            raise NpgenError(f"--shard takes I/K (shard I of K, counted from 0, e.g. 0/3), got {value!r}") from None
    else:
        index, count = value
    if not (1 <= count <= MAX_SAMPLES and 0 <= index < count):
        raise NpgenError(f"--shard {index}/{count}: I must be in 0..K-1 and K in 1..{MAX_SAMPLES} (e.g. 0/3, 1/3, 2/3)")
    return int(index), int(count)


def merge_runs(out: str | os.PathLike, shards: list[str | os.PathLike], command: str | None = None) -> Path:
    """Join the complete shard folders of one `npgen sample ... --shard I/K` command into the run `out`.

    The result is bit-identical to that command run without --shard (samples.npy, every Parquet row, the
    PNGs; the manifest differs in its timings and command line). Refused with a one-line NpgenError, before
    `out` is created, unless every shard is complete, all come from the same command (data, database id,
    parameters, class, n, K), and each of shards 0..K-1 is given exactly once with all its batches. `out` is
    assembled in a hidden temporary folder beside it and renamed into place, so it is whole or absent.
    """
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
        _shard_layout(path, manifest)
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
    count, n_batches = _shard_layout(first_path, first)
    missing = [i for i in range(min(count, len(seen) + 5)) if i not in seen]
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
    remove_stale_merges(out)
    work = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}{TMP_MARK}"))
    held = os.open(work, os.O_RDONLY)
    fcntl.flock(held, fcntl.LOCK_EX)  # while this merge lives; a later merge into OUT removes the folder once free
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
        levels = run_levels(first)
        for level in range(1, levels):
            for kind in ("provenance", "chunks"):
                make_dir(level_folder(writer.path, level) / kind)
        for batch, path in owner.items():
            for kind, suffix in BATCH_PARTS:
                shutil.copyfile(batch_part(path, kind, batch, suffix), batch_part(writer.path, kind, batch, suffix))
            for level in range(1, levels):
                mine, theirs = level_folder(path, level), level_folder(writer.path, level)
                for kind, suffix in (("provenance", "parquet"), ("chunks", "npy")):
                    shutil.copyfile(batch_part(mine, kind, batch, suffix), batch_part(theirs, kind, batch, suffix))
        shard_timings = [dict(manifests)[p].get("timings") or {} for p in seen.values()]
        sample_seconds = sum(t.get("sample_seconds", 0.0) for t in shard_timings)
        if (first_path / SOURCES_FILE).exists():
            try:  # a damaged copy is refused here, not in the merged run
                pq.read_metadata(first_path / SOURCES_FILE)
            except (OSError, ValueError, pa.ArrowException):
                raise NpgenError(
                    f"{first_path / SOURCES_FILE} is damaged; sample shard {first_path} again, or delete the file "
                    "(the merged run then names no files)"
                ) from None
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
        os.close(held)
    return out


def remove_stale_merges(out: Path) -> list[Path]:
    """Remove the work folders (".OUT.tmp-*") that killed merges into `out` left beside it; one a live merge holds
    (its flock) is kept. Returns what was removed."""
    removed = []
    for entry in Path(out).parent.glob(f".{Path(out).name}{TMP_MARK}*"):
        if entry.is_symlink() or not entry.is_dir():
            continue
        try:
            fd = os.open(entry, os.O_RDONLY)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            continue  # a merge still running
        else:
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
        finally:
            os.close(fd)
    return removed


def _shard_layout(path: Path, manifest: dict) -> tuple[int, int]:
    """(K, number of batches) of a shard's run, checked against its manifest's n_samples and batch size."""
    record = manifest["shard"]
    count, n_batches, index = record.get("count"), record.get("n_batches"), record.get("index")
    try:
        _, expected = run_batches(path, manifest)
        parse_shard((index, count))
    except (NpgenError, TypeError):
        expected = None
    if expected is None or n_batches != expected or not isinstance(count, int):
        raise NpgenError(
            f"the manifest of shard {path} is damaged: its shard record {record!r} does not fit its run; sample it again"
        )
    return count, n_batches


def _shard_controls(path: Path, manifest: dict) -> dict:
    """The control arrays (exclusion, class map, completion inputs) a shard folder keeps, checked against the
    SHA-256 its manifest records, for the merged run to keep the same."""
    controls = {}
    for name, digest in (manifest.get("controls") or {}).items():
        try:
            array = np.load(path / "controls" / f"{name}.npy")
        except (OSError, ValueError, EOFError):
            array = None
        if array is None or array_sha256(array) != digest:
            raise NpgenError(f"shard {path} has a missing or damaged controls/{name}.npy; sample that shard again")
        controls[name] = array
    return controls
