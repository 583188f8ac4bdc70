"""What npgen keeps in its cache (`files.cache_root()`): list it, and clean it.

The cache holds window databases (``db/<dataset>-<split>-<sha>-<params>/``, each with an npgen-database
manifest), their build locks (``db/.<name>.lock``, empty files), classifiers
(``classifiers/<dataset>.pt``), the features cached beside them (``classifiers/*.npy``), decoded image
folders (``folders/<name>-<hash>.npz``, see `datasets.load_image_folder`) and the near-copy thresholds of
`npgen eval` (``eval/near-copy-<dataset>-<train sha>-<test sha>.json``). Anything
named ``.<name>.tmp-<random>`` is a temporary file or folder of a write or build that did not finish.

Cleaning removes only what looks like npgen's: a database folder only if its manifest says so, a
temporary database folder only when no build holds its lock, other temporary files only when they are
older than `STALE_SECONDS` (a write in progress is never that slow). Links are never followed.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from npgen.data.database import is_database
from npgen.data.files import TMP_MARK, cache_root
from npgen.errors import NpgenError

STALE_SECONDS = 15 * 60


@dataclass
class Entry:
    path: Path
    kind: str  # database, classifier, features, folder, threshold, temporary, lock, other
    size: int
    dataset: str

    def line(self) -> str:
        return f"{self.kind:<11} {human_size(self.size):>9}  {self.dataset:<24} {self.path}"


def human_size(size: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size} B"


def disk_size(path: Path) -> int:
    """Bytes in a file or folder, without following links."""
    if path.is_symlink() or not path.is_dir():
        return path.lstat().st_size if path.exists() or path.is_symlink() else 0
    total = 0
    for folder, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(folder, name)).st_size
            except OSError:
                pass
    return total


def _plain_file(path: Path) -> bool:
    return path.is_file() and not path.is_symlink()


def _is_temp(path: Path) -> bool:
    return path.name.startswith(".") and TMP_MARK in path.name


def _database_label(path: Path) -> str:
    try:
        dataset = json.loads((path / "manifest.json").read_text())["dataset"]
        return f"{dataset['name']}/{dataset['split']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "?"


def root() -> Path:
    folder = cache_root()
    if folder.exists() and not folder.is_dir():
        raise NpgenError(
            f"the cache {folder} ($NPGEN_CACHE or ~/.cache/npgen) is a file, not a folder; point NPGEN_CACHE at a folder"
        )
    return folder


def entries() -> list[Entry]:
    """Everything in the cache, classified (see the module docstring)."""
    found = []
    base = root()
    for sub in ("db", "classifiers", "folders", "eval"):
        folder = base / sub
        if folder.is_symlink() or not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            if _is_temp(path):
                kind, label = "temporary", "-"
            elif sub == "db" and path.name.startswith(".") and path.name.endswith(".lock") and path.is_file():
                kind, label = "lock", "-"
            elif sub == "db" and is_database(path):
                kind, label = "database", _database_label(path)
            elif sub == "classifiers" and path.suffix == ".pt" and path.is_file() and not path.is_symlink():
                kind, label = "classifier", path.stem
            elif sub == "classifiers" and path.suffix == ".npy" and path.is_file() and not path.is_symlink():
                kind, label = "features", path.stem.split("-")[0]
            elif sub == "folders" and path.suffix == ".npz" and path.is_file() and not path.is_symlink():
                kind, label = "folder", path.stem.rsplit("-", 1)[0]
            elif sub == "eval" and path.name.startswith("near-copy-") and path.suffix == ".json" and _plain_file(path):
                kind, label = "threshold", path.stem.removeprefix("near-copy-").rsplit("-", 2)[0]
            else:
                kind, label = "other", "-"
            found.append(Entry(path, kind, disk_size(path), label))
    return found


def _try_lock(lock: Path):
    """An fd holding the build lock `lock` (not blocking), or None if a build holds it."""
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def _lock_of(entry: Entry) -> Path | None:
    """The build lock of a database or a temporary database folder in db/ (None for other entries)."""
    if entry.path.parent.name != "db":
        return None
    name = entry.path.name
    if entry.kind == "temporary":
        name = name[1:].split(TMP_MARK)[0]
    return entry.path.with_name(f".{name}.lock")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def clean(everything: bool = False) -> tuple[list[Entry], list[Entry]]:
    """Remove stale temporary files and folders (and, with `everything`, databases with their build locks,
    classifiers, cached features, decoded folders, near-copy thresholds and locks no build holds). Returns (removed, kept because in use)."""
    removed, busy = [], []
    now = time.time()
    wanted = {"temporary"} | ({"database", "classifier", "features", "folder", "threshold"} if everything else set())
    for entry in entries():
        if entry.kind not in wanted:
            continue
        lock = _lock_of(entry)
        if lock is not None:
            fd = _try_lock(lock)
            if fd is None:
                busy.append(entry)
                continue
            try:
                _remove(entry.path)
                if everything and entry.kind == "database":  # its lock goes with it, while held (no build waits)
                    lock.unlink(missing_ok=True)
            finally:
                os.close(fd)
        elif entry.kind == "temporary" and now - entry.path.lstat().st_mtime < STALE_SECONDS:
            busy.append(entry)
            continue
        else:
            _remove(entry.path)
        removed.append(entry)
    if everything:
        for entry in entries():  # locks left without a database (a build that failed or was refused)
            if entry.kind != "lock":
                continue
            fd = _try_lock(entry.path)
            if fd is None:
                busy.append(entry)
                continue
            try:
                entry.path.unlink(missing_ok=True)
            finally:
                os.close(fd)
            removed.append(entry)
    return removed, busy
