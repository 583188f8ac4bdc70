"""Labelled image sets: MNIST and CIFAR-10 checked against their dataset cards, and folders of images.

Known datasets live in a data root (``--data-root`` or ``$NPGEN_DATA``) as ``<name>.npz`` holding the
uint8 arrays ``x_train, y_train, x_test, y_test`` in canonical order, or as the standard raw files
(MNIST IDX, CIFAR-10 python batches). Each card in the top-level ``datasets/`` folder
(shipped in a wheel as ``npgen/cards/``) records the SHA-256 of every array, so a loaded dataset is exactly
the published one or an error. Image folders and array folders are loaded by path.

The readers of the raw formats are in `npgen.data.readers`, the cards in `npgen.data.dataset_cards`, the
folders in `npgen.data.folders` and the clusters of a flat folder in `npgen.data.clusters`.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path

import numpy as np

from npgen.data.data_root import DATA_ENV, data_root_for, own_data_folder, remember_if_given
from npgen.data.dataset_cards import (
    KNOWN,
    SPLITS,
    card_labels,
    check_card,
    check_known,
    check_split,
    dataset_card,
)
from npgen.data.files import array_sha256
from npgen.data.folders import ARRAY_FOLDER_MANIFEST, read_array_folder, read_image_folder
from npgen.data.readers import (
    one_line,
    raw_files,
    raw_hint,
    image_suffixes,
    read_image,
    read_npz,
    read_raw,
)
from npgen.errors import NpgenError


def _readonly(arr: np.ndarray) -> np.ndarray:
    view = arr.view()
    view.flags.writeable = False
    return view


@dataclass(frozen=True, eq=False)
class Dataset:
    """A labelled image set in memory: images uint8 (N, H, W, C) with C in {1, 3}, labels int64 (N,).

    The arrays are read-only; treat a Dataset as immutable. `images_sha256` and `labels_sha256` are the
    SHA-256 of the arrays' raw C-order bytes in the dataset's original layout, as on the cards: images
    with one channel are hashed as (N, H, W) (the same bytes as (N, H, W, 1)), and labels as uint8 when
    all lie in 0..255, else as int64.
    """

    name: str
    split: str
    images: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...]
    source: str
    files: tuple[str, ...] = ()  # an image folder's file of each image, relative to the folder ("" unknown)
    unlabelled: bool = False  # a flat image folder: the labels are `cluster_labels` of the images, not given
    clusters: int | None = None  # a flat folder's number of clusters when given (--clusters), else None: measured

    def __post_init__(self) -> None:
        images, labels = np.asarray(self.images), np.asarray(self.labels)
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] not in (1, 3):
            raise NpgenError(
                f"{self.name}: images must be uint8 (N, H, W, C) with C 1 or 3, got {images.dtype} {images.shape}"
            )
        if labels.ndim != 1 or len(labels) != len(images) or not np.issubdtype(labels.dtype, np.integer):
            raise NpgenError(
                f"{self.name}: labels must be integers of shape ({len(images)},), got {labels.dtype} {labels.shape}"
            )
        if len(images) == 0:
            raise NpgenError(f"{self.name}: the dataset has no images; point npgen at a non-empty dataset")
        if labels.min() < 0 or labels.max() >= len(self.class_names):
            raise NpgenError(
                f"{self.name}: labels must lie in 0..{len(self.class_names) - 1}, got {labels.min()}..{labels.max()}"
            )
        object.__setattr__(self, "images", _readonly(np.ascontiguousarray(images)))
        object.__setattr__(self, "labels", _readonly(labels.astype(np.int64, copy=False)))
        object.__setattr__(self, "class_names", tuple(str(c) for c in self.class_names))
        object.__setattr__(self, "source", str(self.source))
        if self.files and len(self.files) != len(images):
            raise NpgenError(f"{self.name}: {len(self.files)} file names for {len(images)} images")
        object.__setattr__(self, "files", tuple(str(f) for f in self.files))

    def __repr__(self) -> str:
        return (
            f"Dataset(name={self.name!r}, split={self.split!r}, n_images={self.n_images}, "
            f"shape={self.height}x{self.width}x{self.channels}, source={self.source!r})"
        )

    @property
    def n_images(self) -> int:
        return self.images.shape[0]

    @property
    def height(self) -> int:
        return self.images.shape[1]

    @property
    def width(self) -> int:
        return self.images.shape[2]

    @property
    def channels(self) -> int:
        return self.images.shape[3]

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @cached_property
    def images_sha256(self) -> str:
        """Hex SHA-256 of the images in their original layout ((N, H, W) when there is one channel)."""
        return array_sha256(self.images[..., 0] if self.channels == 1 else self.images)

    @cached_property
    def labels_sha256(self) -> str:
        """Hex SHA-256 of the labels, as uint8 when they fit (as on the cards)."""
        return array_sha256(card_labels(self.labels))

    def subset(self, indices) -> "Dataset":
        """The images at `indices` (a slice, or integer positions or boolean mask), with name and split kept."""
        if not isinstance(indices, slice):
            indices = np.asarray(indices)
            if indices.size == 0:
                indices = indices.astype(np.intp)
            if indices.ndim != 1 or not (np.issubdtype(indices.dtype, np.integer) or indices.dtype == bool):
                raise NpgenError(
                    f"subset indices must be a slice or a 1-D integer or boolean array, got {indices.dtype} {indices.shape}"
                )
            if (
                indices.dtype != bool
                and indices.size
                and (indices.min() < -self.n_images or indices.max() >= self.n_images)
            ):
                raise NpgenError(f"subset indices must lie in 0..{self.n_images - 1} for {self.name}/{self.split}")
            if indices.dtype == bool and indices.shape != (self.n_images,):
                raise NpgenError(f"a boolean subset mask must have length {self.n_images}, got {indices.shape[0]}")
        files = tuple(np.asarray(self.files, dtype=object)[indices]) if self.files else ()
        return Dataset(
            self.name,
            self.split,
            self.images[indices],
            self.labels[indices],
            self.class_names,
            self.source,
            files,
            self.unlabelled,
            self.clusters,
        )


def preset(dataset: "Dataset") -> dict:
    """The measured method settings for a dataset: its card's `preset`, or, for an image folder, the
    preset of the known dataset it resembles most (grey images like MNIST, colour like CIFAR-10), at one
    pyramid level where its images' sides are odd."""
    if dataset.name in KNOWN:
        return dict(dataset_card(dataset.name).get("preset", {}))
    if dataset.n_images == 1 and Path(dataset.source).is_file():
        return single_image_preset(dataset.height, dataset.width)
    resembled = dict(dataset_card("mnist" if dataset.channels == 1 else "cifar10").get("preset", {}))
    if (dataset.height | dataset.width) % (1 << (resembled.get("levels", 1) - 1)):
        resembled["levels"] = 1  # its images have no coarser level (odd sides): one level
    return resembled


SINGLE_IMAGE_COARSEST = 16  # the single-image preset's coarsest level is about this many pixels on its shorter side


def single_image_preset(height: int, width: int) -> dict:
    """Settings for one image: as many pyramid levels as keep the coarsest level about SINGLE_IMAGE_COARSEST pixels
    on its shorter side (and both sides whole); the coarsest level draws from every position, its context only
    where the sample is (outside_canvas "ignored": a sample need not start as the picture's corner), and each finer
    one refines it around where its parent was copied from (anchor "parent", radius 1, coarse weight 1); no pool
    and no budget (the one image gives every pixel), but no copied part larger than 15% of a level's pixels.
    Each choice measured against Efficient-GPNN (benchmarks/quality/single_npgen.py, RESULTS.md Single images)."""
    levels = 1
    while levels < 8 and min(height, width) >> levels >= SINGLE_IMAGE_COARSEST and not (height | width) % (1 << levels):
        levels += 1
    return {
        "levels": levels,
        "coarse_weight": 1.0,
        "pool_size": 0,
        "max_source_share": 1.0,
        "max_part_share": 0.15,
        "outside_canvas": "ignored",
        "anchor": "parent",
        "radius": 1,
        "k_min": 1,
        "class_mixture": 0,
    }


def resolve_data_root(data_root: str | os.PathLike | None, name: str | None = None) -> Path:
    """The data root to read known dataset `name` from: the explicit argument, else $NPGEN_DATA, else the remembered
    root or npgen's own data folder (`npgen.data.data_root`), else an NpgenError saying how to give one."""
    root = data_root_for(data_root, name)
    if root is None:
        raise NpgenError(
            f"no data root given: pass --data-root DIR or set {DATA_ENV}=DIR once (a folder holding mnist.npz / "
            f"cifar10.npz; npgen remembers it), or copy a dataset into npgen's own data folder with `npgen data import`"
        )
    return root.path


def data_location(name: str | os.PathLike, data_root: str | os.PathLike | None = None) -> str:
    """Where `load_dataset(name, data_root=data_root)` reads from, as an absolute path a run can record:
    the data root of a known dataset, the folder itself for an image folder."""
    if isinstance(name, str) and name in KNOWN:
        return str(resolve_data_root(data_root, name).resolve())
    return str(Path(name).expanduser().resolve())


def _existing_root(data_root, name: str | None = None) -> Path:
    root = resolve_data_root(data_root, name)
    if not root.is_dir():
        raise NpgenError(
            f"data root {root} is not a directory: pass --data-root DIR or set {DATA_ENV}=DIR to the folder holding your datasets"
        )
    return root


# ---- known datasets ----


def _stat_key(files: tuple[Path, ...]) -> tuple:
    key = []
    for p in files:
        st = p.stat()
        key.append((str(p.resolve()), st.st_size, st.st_mtime_ns))
    return tuple(key)


@lru_cache(maxsize=4)
def _load_known(name: str, split: str, kind: str, key: tuple) -> Dataset:
    files = tuple(Path(k[0]) for k in key)
    x, y = read_npz(files[0], split) if kind == "npz" else read_raw(name, files)
    if x.ndim == 3:
        x = x[..., None]
    source = str(files[0]) if kind == "npz" else str(files[0].parent)
    return Dataset(name, split, x, y, tuple(dataset_card(name)["class_names"]), source)


def load_dataset(
    name: str | os.PathLike,
    split: str = "train",
    data_root: str | os.PathLike | None = None,
    verify: bool = True,
    clusters: int | None = None,
    remember: bool = True,
) -> Dataset:
    """Load a known dataset ('mnist', 'cifar10') from the data root, or an image folder given by path.

    In the data root, `<name>.npz` (x_train, y_train, x_test, y_test) is used first, else the standard raw
    files: MNIST IDX files (optionally .gz) directly in the root, in root/MNIST/raw or in root/mnist;
    CIFAR-10 python batches in root/cifar-10-batches-py. With `verify`, both arrays must match the SHA-256
    on the dataset card. Loaded known datasets are cached per process and returned as the same object. With
    `remember`, a data root given here or in $NPGEN_DATA that holds datasets is remembered for later calls
    (`npgen.data.data_root`).
    """
    check_split(split)
    if not str(name).strip():  # Path("") is the current folder: never read it by accident
        raise NpgenError(f"the dataset name is empty: use one of {', '.join(KNOWN)} or a path to an image folder")
    path = Path(name).expanduser()
    if clusters is not None and (name in KNOWN or not path.is_dir() or (path / ARRAY_FOLDER_MANIFEST).is_file()):
        raise NpgenError(f"--clusters applies to a flat folder of unlabelled images, not to {name}; leave it out")
    if isinstance(name, str) and name in KNOWN:
        return _load_known_dataset(name, split, data_root, verify, remember)
    if path.is_dir() and (path / ARRAY_FOLDER_MANIFEST).is_file():
        if split != "train":
            raise NpgenError(f"array folder {path} has only a 'train' split; drop --split {split}")
        return load_array_folder(path)
    if path.is_dir():
        if split != "train":
            raise NpgenError(f"image folder {path} has only a 'train' split; drop --split {split}")
        return load_image_folder(path, clusters)
    if path.is_file() and path.suffix.lower() in image_suffixes():
        if split != "train":
            raise NpgenError(f"image {path} is a 'train' split of one image; drop --split {split}")
        return load_image_file(path)
    if path.exists():
        raise NpgenError(
            f"{path} is not a folder or an image file: pass one of {', '.join(KNOWN)}, an image, a folder of images or one with a subfolder of images per class"
        )
    raise NpgenError(
        f"unknown dataset {str(name)!r}: use one of {', '.join(KNOWN)} or a path to an image folder with one subfolder per class"
    )


def _load_known_dataset(name: str, split: str, data_root, verify: bool, remember: bool) -> Dataset:
    root = _existing_root(data_root, name)
    npz = root / f"{name}.npz"
    if npz.is_file():
        kind, files = "npz", (npz,)
    else:
        kind, files = "raw", raw_files(name, root, split)
        if files is None:
            raise NpgenError(
                f"no {name} data in {root}: put {name}.npz there, run `npgen data import {name} SOURCE` "
                f"or `npgen data download {name}` (looked for {name}.npz and {raw_hint(name, root, split)})"
            )
    try:
        key = _stat_key(files)
    except OSError as exc:
        raise NpgenError(f"cannot read {files[0]}: {one_line(exc)}; check the data root {root}") from None
    dataset = _load_known(name, split, kind, key)
    if verify:
        check_card(
            name,
            split,
            dataset.images_sha256,
            dataset.labels_sha256,
            dataset.source,
            f"re-import it with `npgen data import {name} SOURCE` or `npgen data download {name}`, or point --data-root at the original data",
        )
    if remember:
        remember_if_given(data_root)  # a root given once is found by later commands without it
    return dataset


# ---- image files and folders ----


def read_image_like(path: str | os.PathLike, dataset: "Dataset") -> np.ndarray:
    """An image file decoded as the dataset stores its images: (H, W, C) uint8, grey or RGB by its channels.

    An image of another size is refused (npgen never resizes: a resized image is not the same pixels).
    """
    path = Path(path)
    if not path.is_file():
        raise NpgenError(f"image {path} does not exist")
    pixels = read_image(path)
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    if dataset.channels == 1 and pixels.shape[2] == 3:
        from PIL import Image

        pixels = np.asarray(Image.fromarray(pixels).convert("L"), dtype=np.uint8)[..., None]
    elif dataset.channels == 3 and pixels.shape[2] == 1:
        pixels = np.repeat(pixels, 3, axis=2)
    if pixels.shape[:2] != (dataset.height, dataset.width):
        raise NpgenError(
            f"image {path} is {pixels.shape[1]}x{pixels.shape[0]} pixels but {dataset.name}'s images are "
            f"{dataset.width}x{dataset.height}; give an image of that size"
        )
    return np.ascontiguousarray(pixels)


def load_image_folder(path: str | os.PathLike, clusters: int | None = None) -> Dataset:
    """A dataset from a folder with one subfolder of images per class (class names = sorted subfolder names),
    or from a flat folder of images (no subfolders): an unlabelled dataset whose classes are semantic
    clusters of the images (`cluster_labels`, named cluster-0, cluster-1, ... by decreasing size).

    Every file with an image suffix pillow knows is loaded, in sorted order; hidden files and other files
    are skipped. All images must share one size. The dataset is grayscale when every image is (modes 1, L,
    LA), else RGB. `Dataset.files` holds each image's path relative to the folder.

    The decoded folder is cached under the cache root (`npgen.data.folders.folder_cache_path`), keyed by the folder's absolute
    path and checked against a hash of every file's (relative path, size, mtime_ns) and a checksum of its
    own content: a later load reads the cache instead of decoding every image again, and a changed file or
    a damaged cache means decoding the folder again.
    """
    root = Path(path).expanduser().resolve()
    images, labels, class_names, relative, flat = read_image_folder(root, clusters)
    return Dataset(
        root.name, "train", images, labels, class_names, str(root), files=relative, unlabelled=flat, clusters=clusters
    )


def load_image_file(path: str | os.PathLike) -> Dataset:
    """A dataset of one image (single-image synthesis): one class named after the file, the file as its source."""
    path = Path(path).expanduser().resolve()
    pixels = read_image(path)
    images = (pixels[..., None] if pixels.ndim == 2 else pixels)[None]
    return Dataset(path.stem, "train", images, np.zeros(1, np.int64), (path.stem,), str(path), files=(path.name,))


def load_array_folder(path: str | os.PathLike) -> Dataset:
    """A dataset from a folder holding `npgen-arrays.json` (format, name, class_names, description, and
    `synthetic`: whether the images were generated rather than collected), `images.npy` (uint8 N, H, W, C)
    and `labels.npy` (integers, N).

    The arrays are memory-mapped, not read: this is the source format for splits too large to hold in memory
    (e.g. the synthetic CIFAR-10 splits of `benchmarks/speed/scale.py`), which `Database.build` reads chunk by chunk.
    """
    root = Path(path).expanduser().resolve()
    name, class_names, images, labels = read_array_folder(root)
    return Dataset(name, "train", images, np.asarray(labels, dtype=np.int64), class_names, str(root))


# ---- import and download ----


def _read_source(name: str, source: Path) -> dict[str, np.ndarray]:
    if source.is_dir() and (source / f"{name}.npz").is_file():  # a data root holding the dataset
        source = source / f"{name}.npz"
    if source.is_file():
        arrays = {}
        for split in SPLITS:
            arrays[f"x_{split}"], arrays[f"y_{split}"] = read_npz(
                source, split, f"pass an .npz with x_train, y_train, x_test, y_test or a folder of raw {name} files"
            )
        return arrays
    if not source.is_dir():
        raise NpgenError(f"import source {source} does not exist; pass the folder holding the raw {name} files")
    arrays = {}
    for split in SPLITS:
        files = raw_files(name, source, split)
        if files is None:
            raise NpgenError(f"no raw {name} {split} files under {source}: looked for {raw_hint(name, source, split)}")
        arrays[f"x_{split}"], arrays[f"y_{split}"] = read_raw(name, files)
    return arrays


def import_dataset(name: str, source: str | os.PathLike, data_root: str | os.PathLike | None = None) -> Path:
    """Copy a known dataset into `<data_root>/<name>.npz` (default: npgen's own data folder, where every command
    finds it with no data root given) and return its path.

    `source` is a folder holding MNIST IDX files or CIFAR-10 python batches (as laid out by the original
    archives or a torchvision download), an .npz in the shared format, or a data root holding `<name>.npz`.
    Every array must match the card. The file is written atomically and an existing one is never overwritten.
    """
    check_known(name)
    root = Path(data_root).expanduser() if data_root not in (None, "") else own_data_folder()
    dest = root / f"{name}.npz"
    if dest.exists():
        raise NpgenError(f"{dest} already exists; delete it first if you want to import {name} again")
    source = Path(source).expanduser()
    arrays = _read_source(name, source)
    for split in SPLITS:
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        check_card(
            name,
            split,
            array_sha256(x),
            array_sha256(card_labels(y)),
            str(source),
            f"check that {source} holds the original, unmodified {name} files",
        )
    arrays = {k: np.ascontiguousarray(v, dtype=np.uint8) for k, v in arrays.items()}
    tmp = None
    try:
        root.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".npz.tmp", dir=root)
        with os.fdopen(fd, "wb") as f:
            np.savez_compressed(f, **arrays)
        if dest.exists():
            raise NpgenError(f"{dest} appeared while importing; delete it first if you want to import {name} again")
        os.replace(tmp, dest)
        tmp = None
    except OSError as exc:
        raise NpgenError(f"cannot write {dest}: {one_line(exc)}; check that the data root is writable") from None
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
    return dest


def download_dataset(name: str, data_root: str | os.PathLike | None = None) -> Path:
    """Download a known dataset with torchvision (the optional `download` extra) and import it into `data_root`
    (default: npgen's own data folder)."""
    check_known(name)
    root = Path(data_root).expanduser() if data_root not in (None, "") else own_data_folder()
    dest = root / f"{name}.npz"
    if dest.exists():
        raise NpgenError(f"{dest} already exists; delete it first if you want to download {name} again")
    try:
        from torchvision import datasets as tv
    except ImportError:
        raise NpgenError(
            f"downloading needs torchvision: install it with pip install -e '.[download]' from npgen's folder "
            f"(or pip install torchvision), or put {name}.npz in the data root {root}"
        ) from None
    cls = {"mnist": tv.MNIST, "cifar10": tv.CIFAR10}[name]
    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=f".npgen-download-{name}-", dir=root) as tmp:
            try:
                for train in (True, False):
                    cls(tmp, train=train, download=True)
            except Exception as exc:
                raise NpgenError(
                    f"downloading {name} failed ({one_line(exc)}); check your network connection "
                    f"or put {name}.npz in the data root {root}"
                ) from None
            return import_dataset(name, tmp, root)
    except OSError as exc:
        raise NpgenError(f"cannot write to the data root {root}: {one_line(exc)}; check that it is writable") from None
