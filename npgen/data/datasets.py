"""Labelled image sets: MNIST and CIFAR-10 checked against their dataset cards, and folders of images.

Known datasets live in a data root (``--data-root`` or ``$NPGEN_DATA``) as ``<name>.npz`` holding the
uint8 arrays ``x_train, y_train, x_test, y_test`` in canonical order, or as the standard raw files
(MNIST IDX, CIFAR-10 python batches). Each card in the top-level ``datasets/`` folder
(shipped in a wheel as ``npgen/cards/``) records the SHA-256 of every array, so a loaded dataset is exactly
the published one or an error.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import pickle
import struct
import tempfile
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path

import numpy as np

from npgen.data.files import array_sha256
from npgen.errors import NpgenError

DATA_ENV = "NPGEN_DATA"
KNOWN = ("mnist", "cifar10")
SPLITS = ("train", "test")


def _cards_dir() -> Path:
    """Where the dataset cards are: npgen/cards/ in an installed wheel (setup.cfg ships the top-level
    datasets/ folder there as package data), else the source tree's datasets/ beside npgen/."""
    package = Path(__file__).resolve().parent.parent
    installed = package / "cards"
    return installed if installed.is_dir() else package.parent / "datasets"


CARDS_DIR = _cards_dir()

_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_MNIST_DIRS = (".", "MNIST/raw", "mnist")
_CIFAR_FILES = {"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)}
_CIFAR_DIRS = ("cifar-10-batches-py", ".")
_GRAY_MODES = {"1", "L", "LA", "La"}
_DEEP_MODES = {"I", "F"}


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    if "allow_pickle" in text:  # numpy's advice to allow pickles would run code from the file: never
        return "it is not a plain numpy file: reading it would need pickle, which could run code from the file"
    return text


def _readonly(arr: np.ndarray) -> np.ndarray:
    view = arr.view()
    view.flags.writeable = False
    return view


def _card_labels(labels: np.ndarray) -> np.ndarray:
    if labels.size and labels.min() >= 0 and labels.max() <= 255:
        return labels.astype(np.uint8)
    return labels


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
        return array_sha256(_card_labels(self.labels))

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
        )


def known_datasets() -> tuple[str, ...]:
    """Names of the datasets npgen has cards for."""
    return KNOWN


@lru_cache(maxsize=None)
def _card_text(name: str) -> str:
    path = CARDS_DIR / f"{name}.json"
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise NpgenError(f"cannot read the dataset card {path}: {_one_line(exc)}; reinstall npgen") from None


def dataset_card(name: str) -> dict:
    """The card of a known dataset (a fresh dict): description, source, splits, class names, SHA-256 of each array."""
    _check_known(name)
    try:
        return json.loads(_card_text(name))
    except ValueError as exc:
        raise NpgenError(
            f"the dataset card {CARDS_DIR / (name + '.json')} is not valid JSON ({_one_line(exc)}); reinstall npgen"
        ) from None


def preset(dataset: "Dataset") -> dict:
    """The measured method settings for a dataset: its card's `preset`, or, for an image folder, the
    preset of the known dataset it resembles most (grey images like MNIST, colour like CIFAR-10)."""
    if dataset.name in KNOWN:
        return dict(dataset_card(dataset.name).get("preset", {}))
    return dict(dataset_card("mnist" if dataset.channels == 1 else "cifar10").get("preset", {}))


def _check_known(name: str) -> None:
    if name not in KNOWN:
        raise NpgenError(
            f"unknown dataset {name!r}: use one of {', '.join(KNOWN)} or a path to an image folder with one subfolder per class"
        )


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise NpgenError(f"unknown split {split!r}: use 'train' or 'test'")


def resolve_data_root(data_root: str | os.PathLike | None) -> Path:
    """The data root: the explicit argument, else $NPGEN_DATA, else an NpgenError saying how to set one."""
    root = data_root if data_root not in (None, "") else os.environ.get(DATA_ENV)
    if not root:
        raise NpgenError(
            f"no data root given: pass --data-root DIR or set {DATA_ENV}=DIR (a folder holding mnist.npz / cifar10.npz)"
        )
    return Path(root).expanduser()


def data_location(name: str | os.PathLike, data_root: str | os.PathLike | None = None) -> str:
    """Where `load_dataset(name, data_root=data_root)` reads from, as an absolute path a run can record:
    the data root of a known dataset, the folder itself for an image folder."""
    if isinstance(name, str) and name in KNOWN:
        return str(resolve_data_root(data_root).resolve())
    return str(Path(name).expanduser().resolve())


def _existing_root(data_root) -> Path:
    root = resolve_data_root(data_root)
    if not root.is_dir():
        raise NpgenError(
            f"data root {root} is not a directory: pass --data-root DIR or set {DATA_ENV}=DIR to the folder holding your datasets"
        )
    return root


# ---- raw formats ----


def _read_bytes(path: Path) -> bytes:
    try:
        if path.name.endswith(".gz"):
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise NpgenError(f"cannot read {path}: {_one_line(exc)}; replace the file with a good copy") from None


def _read_idx(path: Path, ndim: int) -> np.ndarray:
    data = _read_bytes(path)
    bad = f"{path} is not an IDX file of uint8 with {ndim} dimension(s); replace it with the original MNIST file"
    if len(data) < 4 + 4 * ndim or data[:3] != b"\x00\x00\x08" or data[3] != ndim:
        raise NpgenError(bad)
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    body = data[4 + 4 * ndim :]
    if len(body) != int(np.prod(shape)):
        raise NpgenError(
            f"{path} holds {len(body)} bytes of data but its header says {shape}; replace it with the original MNIST file"
        )
    return np.frombuffer(body, dtype=np.uint8).reshape(shape)


class _BatchUnpickler(pickle.Unpickler):
    _allowed = {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
        *((f"numpy.{m}", n) for m in ("core.multiarray", "_core.multiarray") for n in ("_reconstruct", "scalar")),
        *((f"numpy.{m}", "_frombuffer") for m in ("core.numeric", "_core.numeric")),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self._allowed:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a CIFAR batch")
        return super().find_class(module, name)


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    bad = f"{path} is not a CIFAR-10 python batch; replace it with the original file"
    try:
        with open(path, "rb") as f:
            batch = _BatchUnpickler(f, encoding="bytes").load()
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
    except NpgenError:
        raise
    except Exception as exc:
        raise NpgenError(f"{bad} ({_one_line(exc)})") from None
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or labels.shape != (len(data),):
        raise NpgenError(f"{bad} (data {data.shape}, labels {labels.shape})")
    if labels.min() < 0 or labels.max() > 9:
        raise NpgenError(f"{bad} (labels outside 0..9)")
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels.astype(np.uint8)


def _find_in(base: Path, subdirs: tuple[str, ...], names: tuple[str, ...], gz: bool) -> tuple[Path, ...] | None:
    for sub in subdirs:
        d = base / sub
        found = []
        for n in names:
            options = [d / n, d / f"{n}.gz"] if gz else [d / n]
            hit = next((p for p in options if p.is_file()), None)
            if hit is None:
                break
            found.append(hit)
        else:
            return tuple(found)
    return None


def _raw_files(name: str, base: Path, split: str) -> tuple[Path, ...] | None:
    if name == "mnist":
        return _find_in(base, _MNIST_DIRS, _MNIST_FILES[split], gz=True)
    return _find_in(base, _CIFAR_DIRS, _CIFAR_FILES[split], gz=False)


def _raw_hint(name: str, base: Path, split: str) -> str:
    if name == "mnist":
        return f"{'/'.join(_MNIST_FILES[split])}[.gz] in {base}, {base}/MNIST/raw or {base}/mnist"
    return f"{', '.join(_CIFAR_FILES[split])} in {base}/cifar-10-batches-py or {base}"


def _read_raw(name: str, files: tuple[Path, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Arrays in the card's layout: x uint8 ((N, 28, 28) or (N, 32, 32, 3)), y uint8 (N,)."""
    if name == "mnist":
        x, y = _read_idx(files[0], 3), _read_idx(files[1], 1)
        if len(x) != len(y):
            raise NpgenError(
                f"{files[0]} has {len(x)} images but {files[1]} has {len(y)} labels; replace them with the original MNIST files"
            )
        return x, y
    parts = [_read_cifar_batch(p) for p in files]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _read_npz(
    path: Path, split: str, fix: str = "re-import it with `npgen data import`"
) -> tuple[np.ndarray, np.ndarray]:
    keys = (f"x_{split}", f"y_{split}")
    try:
        with open(path, "rb") as f, np.load(f, allow_pickle=False) as npz:
            missing = [k for k in keys if k not in npz.files]
            if missing:
                raise NpgenError(
                    f"{path} has no array {missing[0]} (it holds {', '.join(npz.files) or 'nothing'}); {fix}"
                )
            x, y = npz[keys[0]], npz[keys[1]]
    except NpgenError:
        raise
    except Exception as exc:
        raise NpgenError(f"cannot read {path} ({_one_line(exc)}): the file is corrupt or not an .npz; {fix}") from None
    if x.dtype != np.uint8 or y.ndim != 1 or not np.issubdtype(y.dtype, np.integer) or len(x) != len(y):
        raise NpgenError(
            f"{path}: {keys[0]} {x.dtype} {x.shape} and {keys[1]} {y.dtype} {y.shape} are not uint8 images with one integer label each; {fix}"
        )
    return x, y


# ---- known datasets ----


def _check_card(name: str, split: str, x_sha256: str, y_sha256: str, where: str, fix: str) -> None:
    sha = dataset_card(name)["sha256"]
    for key, got in ((f"x_{split}", x_sha256), (f"y_{split}", y_sha256)):
        if got != sha[key]:
            raise NpgenError(
                f"{key} in {where} does not match the dataset card for {name} "
                f"(SHA-256 {got[:12]}… instead of {sha[key][:12]}…); {fix}"
            )


def _stat_key(files: tuple[Path, ...]) -> tuple:
    key = []
    for p in files:
        st = p.stat()
        key.append((str(p.resolve()), st.st_size, st.st_mtime_ns))
    return tuple(key)


@lru_cache(maxsize=4)
def _load_known(name: str, split: str, kind: str, key: tuple) -> Dataset:
    files = tuple(Path(k[0]) for k in key)
    x, y = _read_npz(files[0], split) if kind == "npz" else _read_raw(name, files)
    if x.ndim == 3:
        x = x[..., None]
    source = str(files[0]) if kind == "npz" else str(files[0].parent)
    return Dataset(name, split, x, y, tuple(dataset_card(name)["class_names"]), source)


def load_dataset(
    name: str | os.PathLike, split: str = "train", data_root: str | os.PathLike | None = None, verify: bool = True
) -> Dataset:
    """Load a known dataset ('mnist', 'cifar10') from the data root, or an image folder given by path.

    In the data root, `<name>.npz` (x_train, y_train, x_test, y_test) is used first, else the standard raw
    files: MNIST IDX files (optionally .gz) directly in the root, in root/MNIST/raw or in root/mnist;
    CIFAR-10 python batches in root/cifar-10-batches-py. With `verify`, both arrays must match the SHA-256
    on the dataset card. Loaded known datasets are cached per process and returned as the same object.
    """
    _check_split(split)
    if isinstance(name, str) and name in KNOWN:
        return _load_known_dataset(name, split, data_root, verify)
    path = Path(name).expanduser()
    if path.is_dir() and (path / ARRAY_FOLDER_MANIFEST).is_file():
        if split != "train":
            raise NpgenError(f"array folder {path} has only a 'train' split; drop --split {split}")
        return load_array_folder(path)
    if path.is_dir():
        if split != "train":
            raise NpgenError(f"image folder {path} has only a 'train' split; drop --split {split}")
        return load_image_folder(path)
    if path.exists():
        raise NpgenError(
            f"{path} is not a folder: pass one of {', '.join(KNOWN)}, a folder of images or one with a subfolder of images per class"
        )
    raise NpgenError(
        f"unknown dataset {str(name)!r}: use one of {', '.join(KNOWN)} or a path to an image folder with one subfolder per class"
    )


def _load_known_dataset(name: str, split: str, data_root, verify: bool) -> Dataset:
    root = _existing_root(data_root)
    npz = root / f"{name}.npz"
    if npz.is_file():
        kind, files = "npz", (npz,)
    else:
        kind, files = "raw", _raw_files(name, root, split)
        if files is None:
            raise NpgenError(
                f"no {name} data in {root}: put {name}.npz there, run `npgen data import {name} SOURCE` "
                f"or `npgen data download {name}` (looked for {name}.npz and {_raw_hint(name, root, split)})"
            )
    try:
        key = _stat_key(files)
    except OSError as exc:
        raise NpgenError(f"cannot read {files[0]}: {_one_line(exc)}; check the data root {root}") from None
    dataset = _load_known(name, split, kind, key)
    if verify:
        _check_card(
            name,
            split,
            dataset.images_sha256,
            dataset.labels_sha256,
            dataset.source,
            f"re-import it with `npgen data import {name} SOURCE` or `npgen data download {name}`, or point --data-root at the original data",
        )
    return dataset


# ---- image folders ----


def image_suffixes() -> set[str]:
    from PIL import Image

    Image.init()
    return {ext.lower() for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN}


def _read_image(path: Path) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as img:
            img.load()
            if img.mode.split(";")[0] in _DEEP_MODES:
                raise NpgenError(
                    f"{path} has more than 8 bits per pixel (mode {img.mode}); convert it to 8-bit grayscale or RGB"
                )
            gray = img.mode in _GRAY_MODES
            return np.asarray(img.convert("L" if gray else "RGB"), dtype=np.uint8)
    except NpgenError:
        raise
    except Exception as exc:
        raise NpgenError(f"cannot read image {path} ({_one_line(exc)}); fix or remove the file") from None


def read_image_like(path: str | os.PathLike, dataset: "Dataset") -> np.ndarray:
    """An image file decoded as the dataset stores its images: (H, W, C) uint8, grey or RGB by its channels.

    An image of another size is refused (npgen never resizes: a resized image is not the same pixels).
    """
    path = Path(path)
    if not path.is_file():
        raise NpgenError(f"image {path} does not exist")
    pixels = _read_image(path)
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


def _folder_files(root: Path) -> tuple[list[Path], list[list[Path]]]:
    """The class subfolders of an image folder (sorted) and each one's image files (sorted), as `load_image_folder`
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


FLAT_CLUSTERS = 10  # clusters of a flat image folder at most
MIN_CLUSTER_SIZE = 20  # images per cluster at least: enough for the presets' source budgets (10% and 20%)
CLUSTER_ITERATIONS = 30  # Lloyd iterations at most
CLUSTER_SEED = 0


def cluster_block(height: int, width: int) -> int:
    """Block size of the representation a flat folder is clustered in: about 8 x 8 blocks per image."""
    return max(1, min(height, width) // 8)


def cluster_labels(images: np.ndarray) -> np.ndarray:
    """Semantic clusters of unlabelled images: k-means over s x s block sums (`cluster_block`), no labels used.

    k starts at FLAT_CLUSTERS (at most one per MIN_CLUSTER_SIZE images) and drops by one while a cluster
    has fewer than MIN_CLUSTER_SIZE images, so that every cluster can be sampled on its own. Everything is
    integer arithmetic (squared distances in int64, centroids rounded to integers) and the k-means++
    seeding draws from numpy's PCG64 with a fixed seed, so the clusters are the same on every machine,
    whatever the thread count: `npgen verify` re-derives them. Ties go to the lower cluster; clusters are
    numbered by decreasing size (ties: by their first image). Returns int64 (N,) in 0..k-1, each non-empty.
    """
    from npgen.data.representation import block_sums

    n = len(images)
    x = block_sums(np.asarray(images), cluster_block(images.shape[1], images.shape[2])).reshape(n, -1)
    x = x.astype(np.int64)
    k = max(1, min(FLAT_CLUSTERS, n // MIN_CLUSTER_SIZE))
    while True:
        labels = _kmeans(x, k)
        counts = np.bincount(labels, minlength=k)
        if k == 1 or counts.min() >= MIN_CLUSTER_SIZE:
            break
        k -= 1
    first_image = np.array([np.flatnonzero(labels == c)[0] if counts[c] else n for c in range(k)])
    order = np.lexsort((first_image, -counts))  # largest first
    renumber = np.empty(k, np.int64)
    renumber[order] = np.arange(k)
    return renumber[labels]


def _kmeans(x: np.ndarray, k: int) -> np.ndarray:
    """Cluster of each row of int64 x: k-means++ seeding (PCG64, CLUSTER_SEED), then Lloyd, exactly in integers."""
    n = len(x)
    norms = (x * x).sum(axis=1)
    rng = np.random.default_rng(CLUSTER_SEED)
    chosen = [0]
    nearest = norms - 2 * x @ x[0] + norms[0]
    for _ in range(1, k):  # each next centre drawn in proportion to the squared distance to the chosen ones
        total = int(nearest.sum())
        if total == 0:
            pick = int(rng.integers(n))
        else:
            pick = int(np.searchsorted(np.cumsum(nearest), rng.random() * total, "right"))
        chosen.append(min(pick, n - 1))
        nearest = np.minimum(nearest, norms - 2 * x @ x[chosen[-1]] + norms[chosen[-1]])
    centres = x[chosen]
    labels = np.full(n, -1, np.int64)
    for _ in range(CLUSTER_ITERATIONS):
        distances = norms[:, None] - 2 * x @ centres.T + (centres * centres).sum(axis=1)[None, :]
        new_labels = distances.argmin(axis=1)  # the first of equal minima: the lower cluster
        if np.array_equal(new_labels, labels):
            break
        labels = new_labels
        counts = np.bincount(labels, minlength=k)
        for c in np.flatnonzero(counts):  # an emptied cluster keeps its centre
            total = x[labels == c].sum(axis=0)
            centres[c] = (2 * total + counts[c]) // (2 * counts[c])  # the mean, rounded half up
    return labels


def cluster_names(k: int) -> tuple[str, ...]:
    return tuple(f"cluster-{c}" for c in range(k))


def _listing_sha256(root: Path, files: list[list[Path]]) -> str:
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
    from npgen.data.files import cache_root

    root = Path(root).expanduser().resolve()
    key = hashlib.sha256(str(root).encode("utf-8", "surrogateescape")).hexdigest()[:16]
    return cache_root() / FOLDER_CACHE / f"{root.name}-{key}.npz"


def _content_sha256(images: np.ndarray, labels: np.ndarray, class_names, files) -> str:
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
    if checksum != _content_sha256(images, labels, class_names, files):
        return None
    return images, labels, class_names, files


def _write_folder_cache(path: Path, listing: str, images, labels, class_names, files) -> None:
    """Save the decoded folder atomically; a cache that cannot be written is skipped (the next load decodes again)."""
    from npgen.data.files import atomic_write

    def write(tmp: Path) -> None:
        with tmp.open("wb") as f:
            np.savez(
                f,
                images=images,
                labels=labels,
                class_names=np.array(class_names, dtype=str),
                files=np.array(files, dtype=str),
                listing=np.array(listing),
                checksum=np.array(_content_sha256(images, labels, class_names, files)),
            )

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, write)
    except (OSError, NpgenError):
        pass


def _decode_folder(root: Path, classes: list[Path], files: list[list[Path]]):
    images, labels = [], []
    first = None
    for label, found in enumerate(files):
        for file in found:
            img = _read_image(file)
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
        clusters = cluster_labels(stacked)
        return stacked, clusters, cluster_names(int(clusters.max()) + 1), relative
    return stacked, np.array(labels, dtype=np.int64), tuple(c.name for c in classes), relative


def load_image_folder(path: str | os.PathLike) -> Dataset:
    """A dataset from a folder with one subfolder of images per class (class names = sorted subfolder names),
    or from a flat folder of images (no subfolders): an unlabelled dataset whose classes are semantic
    clusters of the images (`cluster_labels`, named cluster-0, cluster-1, ... by decreasing size).

    Every file with an image suffix pillow knows is loaded, in sorted order; hidden files and other files
    are skipped. All images must share one size. The dataset is grayscale when every image is (modes 1, L,
    LA), else RGB. `Dataset.files` holds each image's path relative to the folder.

    The decoded folder is cached under the cache root (`folder_cache_path`), keyed by the folder's absolute
    path and checked against a hash of every file's (relative path, size, mtime_ns) and a checksum of its
    own content: a later load reads the cache instead of decoding every image again, and a changed file or
    a damaged cache means decoding the folder again.
    """
    root = Path(path).expanduser().resolve()
    classes, files = _folder_files(root)
    flat = classes == [root]
    listing = _listing_sha256(root, files)
    cache = folder_cache_path(root)
    cached = _read_folder_cache(cache, listing)
    if cached is None or (not flat and cached[2] != tuple(c.name for c in classes)):
        cached = _decode_folder(root, classes, files)
        _write_folder_cache(cache, listing, *cached)
    images, labels, class_names, relative = cached
    return Dataset(root.name, "train", images, labels, class_names, str(root), files=relative, unlabelled=flat)


# ---- array folders (large splits, read memory-mapped) ----

ARRAY_FOLDER_MANIFEST = "npgen-arrays.json"
ARRAY_FOLDER_FORMAT = "npgen-arrays"


def load_array_folder(path: str | os.PathLike) -> Dataset:
    """A dataset from a folder holding `npgen-arrays.json` (format, name, class_names, description, and
    `synthetic`: whether the images were generated rather than collected), `images.npy` (uint8 N, H, W, C)
    and `labels.npy` (integers, N).

    The arrays are memory-mapped, not read: this is the source format for splits too large to hold in memory
    (e.g. the synthetic CIFAR-10 splits of `benchmarks/scale.py`), which `Database.build` reads chunk by chunk.
    """
    root = Path(path).expanduser().resolve()
    fix = f"write the folder again (images.npy, labels.npy and {ARRAY_FOLDER_MANIFEST})"
    try:
        record = json.loads((root / ARRAY_FOLDER_MANIFEST).read_text(encoding="utf-8"))
        if not isinstance(record, dict) or record.get("format") != ARRAY_FOLDER_FORMAT:
            raise ValueError(f"its format is not {ARRAY_FOLDER_FORMAT}")
        name, class_names = str(record["name"]), tuple(str(c) for c in record["class_names"])
        images = np.load(root / "images.npy", mmap_mode="r", allow_pickle=False)
        labels = np.load(root / "labels.npy", mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise NpgenError(f"cannot read the array folder {root} ({_one_line(exc)}); {fix}") from None
    if images.ndim == 3:
        images = images[..., None]
    return Dataset(name, "train", images, np.asarray(labels, dtype=np.int64), class_names, str(root))


def write_array_folder(
    path: str | os.PathLike, name: str, class_names, n_images: int, shape: tuple[int, int, int], chunks, record: dict
) -> Path:
    """Write an array folder (`load_array_folder`) from `chunks`, an iterable of (images, labels) pieces in order,
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


# ---- import and download ----


def _read_source(name: str, source: Path) -> dict[str, np.ndarray]:
    if source.is_file():
        arrays = {}
        for split in SPLITS:
            arrays[f"x_{split}"], arrays[f"y_{split}"] = _read_npz(
                source, split, f"pass an .npz with x_train, y_train, x_test, y_test or a folder of raw {name} files"
            )
        return arrays
    if not source.is_dir():
        raise NpgenError(f"import source {source} does not exist; pass the folder holding the raw {name} files")
    arrays = {}
    for split in SPLITS:
        files = _raw_files(name, source, split)
        if files is None:
            raise NpgenError(f"no raw {name} {split} files under {source}: looked for {_raw_hint(name, source, split)}")
        arrays[f"x_{split}"], arrays[f"y_{split}"] = _read_raw(name, files)
    return arrays


def import_dataset(name: str, source: str | os.PathLike, data_root: str | os.PathLike | None = None) -> Path:
    """Convert the raw files under `source` into `<data_root>/<name>.npz` and return its path.

    `source` is a folder holding MNIST IDX files or CIFAR-10 python batches (as laid out by the original
    archives or a torchvision download), or an .npz in the shared format. Every array must match the card.
    The file is written atomically and an existing one is never overwritten.
    """
    _check_known(name)
    root = resolve_data_root(data_root)
    dest = root / f"{name}.npz"
    if dest.exists():
        raise NpgenError(f"{dest} already exists; delete it first if you want to import {name} again")
    source = Path(source).expanduser()
    arrays = _read_source(name, source)
    for split in SPLITS:
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        _check_card(
            name,
            split,
            array_sha256(x),
            array_sha256(_card_labels(y)),
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
        raise NpgenError(f"cannot write {dest}: {_one_line(exc)}; check that the data root is writable") from None
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
    return dest


def download_dataset(name: str, data_root: str | os.PathLike | None = None) -> Path:
    """Download a known dataset with torchvision (the optional `download` extra) and import it into the data root."""
    _check_known(name)
    root = resolve_data_root(data_root)
    dest = root / f"{name}.npz"
    if dest.exists():
        raise NpgenError(f"{dest} already exists; delete it first if you want to download {name} again")
    try:
        from torchvision import datasets as tv
    except ImportError:
        raise NpgenError(
            f'downloading needs torchvision: install with pip install "npgen[download]" '
            f"or put {name}.npz in the data root {root}"
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
                    f"downloading {name} failed ({_one_line(exc)}); check your network connection "
                    f"or put {name}.npz in the data root {root}"
                ) from None
            return import_dataset(name, tmp, root)
    except OSError as exc:
        raise NpgenError(f"cannot write to the data root {root}: {_one_line(exc)}; check that it is writable") from None
