"""A database folder on disk: its build lock, what npgen writes in it, and installing a finished build in its place.

A build works in a hidden temporary folder ``.<name>.tmp-<random>`` beside the database and renames it into place
under the lock ``.<name>.lock``; a build killed on the way leaves that folder, which the next holder of the lock
(`build_lock`) removes, as `npgen cache clean` does in the cache.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from npgen.data.files import CACHE_ENV, TMP_MARK, cache_root, read_small_file
from npgen.errors import NpgenError

FORMAT = "npgen-database"
DATABASE_FILES = ("manifest.json", "sources.npy", "representations.npy", "labels.npy", "images.faiss", "codes")
DERIVED_PREFIX = "nearest-"  # arrays npgen derives from a database later and keeps beside it (npgen.data.nearest)


def npgen_written(entry: Path) -> bool:
    """True if `entry`, inside a database folder, is a file npgen writes there (or a leftover temporary of one)."""
    name = entry.name
    if name.startswith(".") and TMP_MARK in name:
        return True
    return not entry.is_symlink() and (
        name in DATABASE_FILES or (name.startswith(DERIVED_PREFIX) and name.endswith(".npy") and entry.is_file())
    )


def check_replaceable(path: Path) -> None:
    """NpgenError unless `path` (which exists) is an npgen database holding nothing but what npgen wrote there, so
    that `build --force` may replace it whole; checked before any lock or work."""
    path = Path(path)
    if path.is_symlink():
        raise NpgenError(f"{path} is a symbolic link; npgen does not build through links: pass the real folder as --db")
    if not is_database(path):
        raise NpgenError(
            f"{path} exists and is not an npgen database (no npgen-database manifest.json), so --force will not replace it; choose another --db"
        )
    foreign = sorted(entry.name for entry in path.iterdir() if not npgen_written(entry))
    if foreign:
        raise NpgenError(
            f"{path} holds files npgen did not write ({', '.join(foreign[:3])}{', ...' if len(foreign) > 3 else ''}), "
            "so --force will not replace it: move them out of the folder, or choose another --db"
        )


def remove_stale_builds(path: Path) -> None:
    """Remove what killed builds of the database `path` left beside it (``.<name>.tmp-*``): only under its
    build lock, which every build holds from start to install."""
    for entry in path.parent.glob(f".{path.name}{TMP_MARK}*"):
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def make_parent(path: Path) -> None:
    """Create the folder `path` will live in, with a one-line error if that cannot be (e.g. $NPGEN_CACHE is a file)."""
    for parent in [path.parent, *path.parent.parents]:
        if parent.exists() or parent.is_symlink():
            if not parent.is_dir():
                where = f" (${CACHE_ENV} or ~/.cache/npgen)" if parent == cache_root() else ""
                raise NpgenError(f"cannot make {path}: {parent}{where} is a file, not a folder; point it at a folder")
            break
    path.parent.mkdir(parents=True, exist_ok=True)


@contextmanager
def build_lock(path: Path):
    """An exclusive lock (fcntl.flock) on the hidden file .<name>.lock beside the database folder `path`."""
    make_parent(path)
    lock = path.with_name(f".{path.name}.lock")
    fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o666 & ~_umask())
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        remove_stale_builds(path)
        yield
    finally:
        os.close(fd)


def is_database(path: Path) -> bool:
    """True if `path` is a folder (not a link) whose manifest.json says it is an npgen database."""
    path = Path(path)
    if path.is_symlink() or not path.is_dir():
        return False
    try:
        manifest = json.loads(read_small_file(path / "manifest.json", 1 << 20, "the database manifest"))
    except (OSError, ValueError, NpgenError):
        return False
    return isinstance(manifest, dict) and manifest.get("format") == FORMAT


def install_database(tmp: Path, path: Path) -> None:
    """Rename the finished database `tmp` to `path`, replacing an old database there (checked by the caller):
    the old one is first renamed aside, so `path` always holds a whole database or none."""
    if not path.exists():
        try:
            os.rename(tmp, path)  # atomic; fails if another process installed one meanwhile
            return
        except OSError:
            if not path.exists():
                raise
            if is_database(path):
                return  # another process installed one meanwhile: keep it, never delete what it just wrote
            raise NpgenError(
                f"{path} appeared while building and is not an npgen database; choose another --db"
            ) from None
    aside = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.tmp-"))
    os.rename(path, aside / "old")
    os.rename(tmp, path)
    shutil.rmtree(aside, ignore_errors=True)
