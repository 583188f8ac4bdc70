"""Files npgen writes, in one place: where its cache lives, and atomic, link-refusing writes.

Every file is written to a new hidden temporary name beside its target (created exclusively, with
an unpredictable name) and renamed into place, so a reader never sees half a file and a planted
symbolic link is never written through.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from npgen.errors import NpgenError

CACHE_ENV = "NPGEN_CACHE"


def cache_root() -> Path:
    """Where npgen keeps what it builds (databases, classifiers): $NPGEN_CACHE, else ~/.cache/npgen."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "npgen")


TMP_MARK = ".tmp-"  # every temporary name npgen makes is ".<final name>.tmp-<random>"


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()
DIR_MODE = 0o777 & ~_umask()  # what mkdir gives a folder: for one made private by tempfile.mkdtemp, then published


def refuse_link(path: Path) -> None:
    """Raise NpgenError if `path` is a symbolic link: npgen never writes through one inside a run or the cache."""
    if Path(path).is_symlink():
        raise NpgenError(
            f"{path} is a symbolic link; npgen does not write through links: remove it (or pass another output path)"
        )


def make_dir(path: Path) -> None:
    """mkdir -p `path`, refusing a symbolic link in its place."""
    refuse_link(path)
    path.mkdir(parents=True, exist_ok=True)


@contextmanager
def naming_errors(path: Path):
    """Re-raise an OSError that names no file (a write failing as the disk fills, or Arrow's) as one naming `path`."""
    try:
        yield
    except OSError as err:
        if err.filename is not None:
            raise
        found = re.search(
            r"\[errno (\d+)\] ([^\n.]+)", str(err), re.IGNORECASE
        )  # Arrow's errors carry the number in their text
        number = err.errno or (int(found.group(1)) if found else None)
        why = err.strerror or (found.group(2) if found else str(err).splitlines()[0][:200])
        raise OSError(number, why, str(path)) from None


def temp_file(path: Path) -> Path:
    """A new, empty, exclusively created file with an unpredictable hidden name beside `path`."""
    try:
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}{TMP_MARK}")
    except OSError as err:  # name the file the user asked for, not the temporary one
        raise OSError(err.errno, err.strerror, str(path)) from None
    os.close(fd)
    return Path(name)


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call write(tmp) on a new hidden temporary file beside `path` (created exclusively, with an unpredictable
    name), then rename it into place. Refuses to replace a symbolic link."""
    path = Path(path)
    refuse_link(path)
    tmp = temp_file(path)
    try:
        with naming_errors(path):
            write(tmp)
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, path)
    finally:
        if tmp.exists() or tmp.is_symlink():
            tmp.unlink()


def write_in_place(path: Path, data: bytes) -> None:
    """Write `data` to `path` directly (created or truncated; never through a symbolic link): for the many small
    files a run rewrites whole on `--resume` before it is marked complete, where a rename per file costs more
    than the file."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, _FILE_MODE)
    except OSError:
        if Path(path).is_symlink():
            refuse_link(path)
        raise
    with os.fdopen(fd, "wb") as f, naming_errors(path):
        f.write(data)


def remove_temp_files(folder: Path, recursive: bool = True) -> list[Path]:
    """Delete npgen's leftover temporary files and folders (".NAME.tmp-*") in `folder`; return what was removed.

    Links are removed as links, never followed."""
    folder = Path(folder)
    if folder.is_symlink() or not folder.is_dir():
        return []
    removed = []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith(".") and TMP_MARK in entry.name:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed.append(entry)
        elif recursive and entry.is_dir() and not entry.is_symlink():
            removed += remove_temp_files(entry, recursive=False)
    return removed


def write_json(path: Path, record: dict) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(record, indent=2) + "\n"))


def write_array(path: Path, array: np.ndarray) -> None:
    """Save one array as .npy atomically (through a file object: np.save would rename a temporary path)."""

    def write(tmp: Path) -> None:
        with tmp.open("wb") as f:
            np.save(f, array)

    atomic_write(path, write)


def read_small_file(path: Path, limit: int, what: str) -> bytes:
    """The bytes of `path`, a regular file (a link to one is followed) of at most `limit` bytes; NpgenError for a
    FIFO, device or folder (reading one could block or never end) or a larger file, before anything is read."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise
    except OSError as err:
        raise NpgenError(f"cannot read {what} {path}: {err.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        raise NpgenError(f"{what} {path} is not a regular file (a FIFO, device or folder); replace it with the file")
    if info.st_size > limit:
        raise NpgenError(f"{what} {path} holds {info.st_size} bytes, more than the {limit} it can be; it is damaged")
    with open(path, "rb") as f:
        return f.read(limit + 1)


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def array_sha256(array: np.ndarray) -> str:
    """SHA-256 of an array's bytes in C order: what a run's manifest records for each of its control arrays."""
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()
