"""Image folders and array folders: listing, decoding and caching the images a folder holds.

An image folder holds one subfolder of images per class, or only images (a flat folder, whose classes are
`npgen.data.clusters` of the images); its decoded arrays are cached under the cache root. An array folder
holds `images.npy` and `labels.npy` (read memory-mapped) and a manifest. `npgen.data.datasets` makes
`Dataset`s of both.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from npgen.data.clusters import CLUSTER_METHOD, cluster_labels, cluster_names
from npgen.data.files import atomic_write, cache_root
from npgen.data.readers import image_suffixes, one_line, read_image
from npgen.errors import NpgenError


def folder_files(root: Path) -> tuple[list[Path], list[list[Path]]]:
    """The class subfolders of an image folder (sorted) and each one's image files (sorted), as `read_image_folder`
    reads them. A flat folder (images, no subfolders) is one entry: the folder itself and its images."""
    if not root.is_dir():
        raise NpgenError(
            f"image folder {root} does not exist; pass a folder of images, or of one subfolder of images per class"
        )
    classes = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    suffixes = image_suffixes()
    if not classes:
        flat = sorted(
            p for p in root.iterdir() if p.is_file() and p.suffix.lower() in suffixes and not p.name.startswith(".")
        )
        if not flat:
            raise NpgenError(
                f"image folder {root} has no images and no class subfolders; put images in it (or one subfolder per class)"
            )
        return [root], [flat]
    files = []
    for cls in classes:
        found = sorted(
            p
            for p in cls.rglob("*")
            if p.is_file()
            and p.suffix.lower() in suffixes
            and not any(part.startswith(".") for part in p.relative_to(cls).parts)
        )
        if not found:
            raise NpgenError(f"class folder {cls} has no images; add some or remove the folder")
        files.append(found)
    return classes, files


def listing_sha256(root: Path, files: list[list[Path]]) -> str:
    """SHA-256 of every image file's (relative path, size, mtime_ns): changes when any file is added, removed or touched."""
    digest = hashlib.sha256()
    for found in files:
        for file in found:
            st = file.stat()
            digest.update(
                f"{file.relative_to(root).as_posix()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode(
                    "utf-8", "surrogateescape"
                )
            )
    return digest.hexdigest()


FOLDER_CACHE = "folders"  # decoded image folders, under npgen.data.files.cache_root()


def folder_cache_path(root: Path) -> Path:
    """Where the decoded image folder `root` is cached: cache_root()/folders/<name>-<hash of its absolute path>.npz."""
    root = Path(root).expanduser().resolve()
    key = hashlib.sha256(str(root).encode("utf-8", "surrogateescape")).hexdigest()[:16]
    return cache_root() / FOLDER_CACHE / f"{root.name}-{key}.npz"


def content_sha256(images: np.ndarray, labels: np.ndarray, class_names, files) -> str:
    """SHA-256 of a decoded folder's arrays, class names and files: the checksum of its cache file."""
    digest = hashlib.sha256(np.ascontiguousarray(images).data)
    digest.update(np.ascontiguousarray(labels, dtype=np.int64).data)
    digest.update("\0".join(class_names).encode("utf-8", "surrogateescape") + b"\1")
    digest.update("\0".join(files).encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


def _read_folder_cache(path: Path, listing: str):
    """(images, labels, class names, files) from a cache file made for this listing, or None if absent, stale or damaged."""
    try:
        with open(path, "rb") as f, np.load(f, allow_pickle=False) as npz:
            if str(npz["listing"]) != listing:
                return None
            images, labels = npz["images"], npz["labels"]
            class_names, files = tuple(str(c) for c in npz["class_names"]), tuple(str(f) for f in npz["files"])
            checksum = str(npz["checksum"])
    except Exception:  # absent, truncated, not an npz, missing arrays: decode the folder again
        return None
    if checksum != content_sha256(images, labels, class_names, files):
        return None
    return images, labels, class_names, files


def _write_folder_cache(path: Path, listing: str, images, labels, class_names, files) -> None:
    """Save the decoded folder atomically; a cache that cannot be written is skipped (the next load decodes again)."""

    def write(tmp: Path) -> None:
        with tmp.open("wb") as f:
            np.savez(
                f,
                images=images,
                labels=labels,
                class_names=np.array(class_names, dtype=str),
                files=np.array(files, dtype=str),
                listing=np.array(listing),
                checksum=np.array(content_sha256(images, labels, class_names, files)),
            )

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, write)
    except (OSError, NpgenError):
        pass


def _decode_folder(root: Path, classes: list[Path], files: list[list[Path]], clusters: int | None = None):
    images, labels = [], []
    first = None
    for label, found in enumerate(files):
        for file in found:
            img = read_image(file)
            if first is None:
                first = (file, img.shape[:2])
            elif img.shape[:2] != first[1]:
                (h0, w0), (h, w) = first[1], img.shape[:2]
                raise NpgenError(
                    f"{file} is {w}x{h} but {first[0]} is {w0}x{h0}; all images in an image folder must have one size, resize them first"
                )
            images.append(img)
            labels.append(label)
    if all(img.ndim == 2 for img in images):
        stacked = np.stack(images)[..., None]
    else:
        stacked = np.stack([np.repeat(img[..., None], 3, axis=2) if img.ndim == 2 else img for img in images])
    relative = tuple(file.relative_to(root).as_posix() for found in files for file in found)
    if classes == [root]:  # a flat folder: its classes are clusters of the images
        labels = cluster_labels(stacked, k=clusters)
        return stacked, labels, cluster_names(int(labels.max()) + 1), relative
    return stacked, np.array(labels, dtype=np.int64), tuple(c.name for c in classes), relative


def read_image_folder(
    root: Path, clusters: int | None = None
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...], tuple[str, ...], bool]:
    """(images, labels, class names, files relative to the folder, whether it is flat) of the image folder `root`
    (an absolute path), read from its cache when the cache is current, else decoded and cached. A flat folder's
    classes are `clusters` clusters when given, else as many as `cluster_labels` measures best."""
    classes, files = folder_files(root)
    flat = classes == [root]
    if clusters is not None and not flat:
        raise NpgenError(f"--clusters applies to a flat folder of unlabelled images; {root} has class subfolders")
    listing = listing_sha256(root, files)
    if flat:  # a cache made by another way of clustering holds other classes: decode and cluster again
        listing += f"+{CLUSTER_METHOD}" + ("" if clusters is None else f"+k{clusters}")
    cache = folder_cache_path(root)
    cached = _read_folder_cache(cache, listing)
    if cached is None or (not flat and cached[2] != tuple(c.name for c in classes)):
        cached = _decode_folder(root, classes, files, clusters)
        _write_folder_cache(cache, listing, *cached)
    return (*cached, flat)


# ---- array folders (large splits, read memory-mapped) ----

ARRAY_FOLDER_MANIFEST = "npgen-arrays.json"
ARRAY_FOLDER_FORMAT = "npgen-arrays"


def read_array_folder(root: Path) -> tuple[str, tuple[str, ...], np.ndarray, np.ndarray]:
    """(name, class names, images (N, H, W, C), labels) of the array folder `root` (an absolute path), the arrays
    memory-mapped."""
    fix = f"write the folder again (images.npy, labels.npy and {ARRAY_FOLDER_MANIFEST})"
    try:
        record = json.loads((root / ARRAY_FOLDER_MANIFEST).read_text(encoding="utf-8"))
        if not isinstance(record, dict) or record.get("format") != ARRAY_FOLDER_FORMAT:
            raise ValueError(f"its format is not {ARRAY_FOLDER_FORMAT}")
        name, class_names = str(record["name"]), tuple(str(c) for c in record["class_names"])
        images = np.load(root / "images.npy", mmap_mode="r", allow_pickle=False)
        labels = np.load(root / "labels.npy", mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise NpgenError(f"cannot read the array folder {root} ({one_line(exc)}); {fix}") from None
    if images.ndim == 3:
        images = images[..., None]
    return name, class_names, images, labels


def write_array_folder(
    path: str | os.PathLike, name: str, class_names, n_images: int, shape: tuple[int, int, int], chunks, record: dict
) -> Path:
    """Write an array folder (`read_array_folder`) from `chunks`, an iterable of (images, labels) pieces in order,
    without holding the whole split in memory; the folder appears whole (written beside it, then renamed)."""
    root = Path(path).expanduser()
    if root.exists():
        raise NpgenError(f"{root} already exists; remove it or choose another folder")
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=root.parent, prefix=f".{root.name}.tmp-"))
    try:
        images = np.lib.format.open_memmap(tmp / "images.npy", mode="w+", dtype=np.uint8, shape=(n_images, *shape))
        labels = np.lib.format.open_memmap(tmp / "labels.npy", mode="w+", dtype=np.int64, shape=(n_images,))
        done = 0
        for chunk_images, chunk_labels in chunks:
            images[done : done + len(chunk_images)] = chunk_images
            labels[done : done + len(chunk_images)] = chunk_labels
            done += len(chunk_images)
        if done != n_images:
            raise NpgenError(f"the chunks held {done} images, not {n_images}")
        images.flush()
        labels.flush()
        del images, labels
        manifest = {"format": ARRAY_FOLDER_FORMAT, "name": name, "class_names": list(class_names), **record}
        (tmp / ARRAY_FOLDER_MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        mask = os.umask(0o022)
        os.umask(mask)
        os.chmod(tmp, 0o777 & ~mask)  # mkdtemp made it private; the folder is as readable as any other
        os.rename(tmp, root)
    finally:
        if tmp.exists():
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
    return root
