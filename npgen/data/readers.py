"""Readers of the raw files datasets come in: MNIST IDX, CIFAR-10 python batches, npz files and image files.

Each returns plain uint8 arrays (or raises a one-line NpgenError saying which file is wrong and what to do);
`npgen.data.datasets` checks them against the dataset cards and makes `Dataset`s of them.
"""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np

from npgen.errors import NpgenError

_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_MNIST_DIRS = (".", "MNIST/raw", "mnist")
_CIFAR_FILES = {"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)}
_CIFAR_DIRS = ("cifar-10-batches-py", ".")
_GRAY_MODES = {"1", "L", "LA", "La"}
_DEEP_MODES = {"I", "F"}


def one_line(exc: BaseException) -> str:
    """An exception as one line for an error message (never advice to allow pickles)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    if "allow_pickle" in text:  # numpy's advice to allow pickles would run code from the file: never
        return "it is not a plain numpy file: reading it would need pickle, which could run code from the file"
    return text


def _read_bytes(path: Path) -> bytes:
    try:
        if path.name.endswith(".gz"):
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise NpgenError(f"cannot read {path}: {one_line(exc)}; replace the file with a good copy") from None


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
        raise NpgenError(f"{bad} ({one_line(exc)})") from None
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


def raw_files(name: str, base: Path, split: str) -> tuple[Path, ...] | None:
    """The raw files of a known dataset's split under `base`, in reading order, or None when some are missing."""
    if name == "mnist":
        return _find_in(base, _MNIST_DIRS, _MNIST_FILES[split], gz=True)
    return _find_in(base, _CIFAR_DIRS, _CIFAR_FILES[split], gz=False)


def raw_hint(name: str, base: Path, split: str) -> str:
    """Where `raw_files` looks, for an error message."""
    if name == "mnist":
        return f"{'/'.join(_MNIST_FILES[split])}[.gz] in {base}, {base}/MNIST/raw or {base}/mnist"
    return f"{', '.join(_CIFAR_FILES[split])} in {base}/cifar-10-batches-py or {base}"


def read_raw(name: str, files: tuple[Path, ...]) -> tuple[np.ndarray, np.ndarray]:
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


def read_npz(
    path: Path, split: str, fix: str = "re-import it with `npgen data import`"
) -> tuple[np.ndarray, np.ndarray]:
    """(x_<split>, y_<split>) of an npz file: uint8 images and one integer label each; `fix` ends the error message."""
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
        raise NpgenError(f"cannot read {path} ({one_line(exc)}): the file is corrupt or not an .npz; {fix}") from None
    if x.dtype != np.uint8 or y.ndim != 1 or not np.issubdtype(y.dtype, np.integer) or len(x) != len(y):
        raise NpgenError(
            f"{path}: {keys[0]} {x.dtype} {x.shape} and {keys[1]} {y.dtype} {y.shape} are not uint8 images with one integer label each; {fix}"
        )
    return x, y


def image_suffixes() -> set[str]:
    """File suffixes (lower case, with the dot) of the image formats pillow can open."""
    from PIL import Image

    Image.init()
    return {ext.lower() for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN}


def read_image(path: Path) -> np.ndarray:
    """An image file as uint8 (H, W) when it is grey (modes 1, L, LA), else (H, W, 3) RGB; deeper images refused."""
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
        raise NpgenError(f"cannot read image {path} ({one_line(exc)}); fix or remove the file") from None
