"""Tests of npgen.data.datasets on the real MNIST and CIFAR-10 arrays (shared data root)."""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from npgen.data.dataset_cards import known_datasets
from npgen.data.datasets import (
    DATA_ENV,
    KNOWN,
    Dataset,
    dataset_card,
    download_dataset,
    import_dataset,
    load_dataset,
    load_image_folder,
    resolve_data_root,
)
from npgen.data.folders import folder_cache_path
from npgen.errors import NpgenError

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get(DATA_ENV) or REPO.parent / "shared" / "datasets")

pytestmark = pytest.mark.usefixtures("all_data_root")  # skips, or fails under NPGEN_REQUIRE_DATA, without the data

FIRST_LABELS = {
    ("mnist", "train"): [5, 0, 4, 1, 9, 2, 1, 3, 1, 4],
    ("mnist", "test"): [7, 2, 1, 0, 4, 1, 4, 9, 5, 9],
    ("cifar10", "train"): [6, 9, 9, 4, 1, 1, 2, 7, 8, 3],
    ("cifar10", "test"): [3, 8, 8, 0, 6, 6, 1, 6, 3, 1],
}
SHAPES = {
    ("mnist", "train"): (60000, 28, 28, 1),
    ("mnist", "test"): (10000, 28, 28, 1),
    ("cifar10", "train"): (50000, 32, 32, 3),
    ("cifar10", "test"): (10000, 32, 32, 3),
}


def raises(match: str):
    return pytest.raises(NpgenError, match=match)


def one_line(excinfo) -> str:
    message = str(excinfo.value)
    assert "\n" not in message and message
    return message


@pytest.fixture(scope="module")
def mnist_arrays() -> dict[str, np.ndarray]:
    with np.load(SHARED / "mnist.npz") as npz:
        return {k: npz[k] for k in npz.files}


def write_idx(path: Path, arr: np.ndarray) -> None:
    data = bytes([0, 0, 8, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as f:
        f.write(data)


def write_cifar_batch(
    path: Path, x: np.ndarray, y: np.ndarray, protocol: int = pickle.HIGHEST_PROTOCOL, old_numpy_names: bool = False
) -> None:
    batch = {
        b"batch_label": path.name.encode(),
        b"labels": [int(v) for v in y],
        b"data": np.ascontiguousarray(x.transpose(0, 3, 1, 2)).reshape(len(x), -1),
        b"filenames": [b"img%d.png" % i for i in range(len(x))],
    }
    data = pickle.dumps(batch, protocol=protocol)
    if old_numpy_names:
        data = data.replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")
    path.write_bytes(data)


# ---- known datasets ----


def test_cards():
    assert known_datasets() == KNOWN == ("mnist", "cifar10")
    assert dataset_card("mnist")["class_names"] == [str(i) for i in range(10)]
    assert dataset_card("cifar10")["class_names"] == [
        "airplane",
        "automobile",
        "bird",
        "cat",
        "deer",
        "dog",
        "frog",
        "horse",
        "ship",
        "truck",
    ]
    for name in KNOWN:
        card = dataset_card(name)
        assert card["name"] == name and card["license"] and card["citation"] and card["source"]
        assert set(card["sha256"]) == {"x_train", "y_train", "x_test", "y_test"}
        for split, info in card["splits"].items():
            assert sum(info["class_counts"]) == info["x_shape"][0] == info["y_shape"][0] == SHAPES[name, split][0]
            assert info["first_labels"] == FIRST_LABELS[name, split]
    card = dataset_card("mnist")
    card["name"] = "changed"
    assert dataset_card("mnist")["name"] == "mnist"
    with raises("unknown dataset"):
        dataset_card("fashion")


@pytest.mark.parametrize("name,split", list(SHAPES))
def test_load_known(name, split):
    ds = load_dataset(name, split, data_root=SHARED)
    assert (ds.name, ds.split, ds.source) == (name, split, str((SHARED / f"{name}.npz").resolve()))
    assert ds.images.shape == SHAPES[name, split] and ds.images.dtype == np.uint8 and ds.images.flags.c_contiguous
    assert ds.labels.shape == (ds.n_images,) and ds.labels.dtype == np.int64
    assert (ds.n_images, ds.height, ds.width, ds.channels) == SHAPES[name, split] and ds.n_classes == 10
    assert ds.labels[:10].tolist() == FIRST_LABELS[name, split]
    card = dataset_card(name)
    assert np.bincount(ds.labels, minlength=10).tolist() == card["splits"][split]["class_counts"]
    assert ds.images_sha256 == card["sha256"][f"x_{split}"]
    assert ds.labels_sha256 == card["sha256"][f"y_{split}"]
    assert ds.class_names == tuple(card["class_names"])
    assert not ds.images.flags.writeable and not ds.labels.flags.writeable
    assert load_dataset(name, split, data_root=SHARED) is ds


def test_data_root_from_environment(monkeypatch):
    monkeypatch.setenv(DATA_ENV, str(SHARED))
    assert resolve_data_root(None) == SHARED
    assert resolve_data_root("/elsewhere") == Path("/elsewhere")
    assert load_dataset("mnist", "test").labels_sha256 == dataset_card("mnist")["sha256"]["y_test"]


def test_missing_data_root(monkeypatch, tmp_path):
    monkeypatch.delenv(DATA_ENV, raising=False)
    monkeypatch.setenv("NPGEN_CACHE", str(tmp_path / "cache"))  # no remembered root, no own data folder
    with raises(DATA_ENV) as excinfo:
        load_dataset("mnist")
    assert "--data-root" in one_line(excinfo)
    with raises(DATA_ENV):
        resolve_data_root(None)
    with raises("not a directory"):
        load_dataset("mnist", data_root=tmp_path / "nowhere")
    with raises("no cifar10 data in") as excinfo:
        load_dataset("cifar10", data_root=tmp_path)
    assert "npgen data import" in one_line(excinfo)


def test_unknown_dataset_and_split(tmp_path):
    with raises("unknown dataset 'fashion'"):
        load_dataset("fashion", data_root=SHARED)
    with raises("unknown split"):
        load_dataset("mnist", "valid", data_root=SHARED)
    (tmp_path / "file.txt").write_text("x")
    with raises("is not a folder"):
        load_dataset(str(tmp_path / "file.txt"))
    for call in (lambda: import_dataset("fashion", tmp_path, tmp_path), lambda: download_dataset("fashion", tmp_path)):
        with raises("unknown dataset"):
            call()


def test_corrupt_npz(tmp_path):
    data = (SHARED / "mnist.npz").read_bytes()
    cases = {
        "truncated": data[: len(data) // 2],
        "garbage": b"not a zip file" * 100,
        "flipped": data[:5_000_000] + bytes(b ^ 0xFF for b in data[5_000_000:5_000_100]) + data[5_000_100:],
    }
    for case, content in cases.items():
        root = tmp_path / case
        root.mkdir()
        (root / "mnist.npz").write_bytes(content)
        with raises("mnist.npz") as excinfo:
            load_dataset("mnist", "train", data_root=root)
        assert "re-import" in one_line(excinfo), case


def test_npz_missing_array(tmp_path, mnist_arrays):
    np.savez(tmp_path / "mnist.npz", x_train=mnist_arrays["x_train"][:5], y_train=mnist_arrays["y_train"][:5])
    with raises("has no array x_test"):
        load_dataset("mnist", "test", data_root=tmp_path)
    ds = load_dataset("mnist", "train", data_root=tmp_path, verify=False)
    assert ds.n_images == 5
    with raises("does not match the dataset card"):
        load_dataset("mnist", "train", data_root=tmp_path)


def test_modified_array_fails_checksum(tmp_path, mnist_arrays):
    arrays = dict(mnist_arrays)
    arrays["x_test"] = arrays["x_test"].copy()
    arrays["x_test"][0, 14, 14] ^= 1
    np.savez(tmp_path / "mnist.npz", **arrays)
    with raises("x_test in .* does not match the dataset card") as excinfo:
        load_dataset("mnist", "test", data_root=tmp_path)
    assert "--no-verify" not in one_line(excinfo) and "npgen data import mnist" in one_line(
        excinfo
    )  # no command has --no-verify
    ds = load_dataset("mnist", "test", data_root=tmp_path, verify=False)
    assert ds.images[0, 14, 14, 0] == arrays["x_test"][0, 14, 14]
    assert ds.labels_sha256 == dataset_card("mnist")["sha256"]["y_test"]
    assert (
        load_dataset("mnist", "train", data_root=tmp_path).images_sha256 == dataset_card("mnist")["sha256"]["x_train"]
    )

    arrays["y_train"] = arrays["y_train"].copy()
    arrays["y_train"][[0, 1]] = arrays["y_train"][[1, 0]]
    (tmp_path / "mnist.npz").unlink()
    np.savez(tmp_path / "mnist.npz", **arrays)
    with raises("y_train in .* does not match the dataset card"):
        load_dataset("mnist", "train", data_root=tmp_path)


# ---- raw files and import ----


@pytest.fixture()
def mnist_idx(tmp_path, mnist_arrays) -> Path:
    """A torchvision-style download folder: <src>/MNIST/raw with the four IDX files, one of them gzipped."""
    raw = tmp_path / "src" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    names = {
        "x_train": "train-images-idx3-ubyte",
        "y_train": "train-labels-idx1-ubyte",
        "x_test": "t10k-images-idx3-ubyte",
        "y_test": "t10k-labels-idx1-ubyte",
    }
    md5 = dataset_card("mnist")["raw_files_md5"]
    for key, fname in names.items():
        write_idx(raw / fname, mnist_arrays[key])
        assert hashlib.md5((raw / fname).read_bytes()).hexdigest() == md5[fname]
    write_idx(raw / "t10k-labels-idx1-ubyte.gz", mnist_arrays["y_test"])
    (raw / "t10k-labels-idx1-ubyte").unlink()
    return tmp_path / "src"


def test_load_mnist_from_idx(mnist_idx):
    for split in ("train", "test"):
        ds = load_dataset("mnist", split, data_root=mnist_idx)
        assert ds.images.shape == SHAPES["mnist", split]
        assert ds.labels[:10].tolist() == FIRST_LABELS["mnist", split]


def test_import_mnist_from_idx(tmp_path, mnist_idx, mnist_arrays):
    root = tmp_path / "root"
    path = import_dataset("mnist", mnist_idx, data_root=root)
    assert path == root / "mnist.npz" and sorted(p.name for p in root.iterdir()) == ["mnist.npz"]
    with np.load(path) as npz:
        assert sorted(npz.files) == sorted(mnist_arrays)
        for key, arr in mnist_arrays.items():
            assert npz[key].dtype == arr.dtype and npz[key].shape == arr.shape and np.array_equal(npz[key], arr)
    assert load_dataset("mnist", "test", data_root=root).labels[:5].tolist() == [7, 2, 1, 0, 4]
    before = path.stat().st_mtime_ns
    with raises("already exists"):
        import_dataset("mnist", mnist_idx, data_root=root)
    assert path.stat().st_mtime_ns == before
    with raises("already exists"):
        download_dataset("mnist", data_root=root)


def test_import_from_npz_and_bad_sources(tmp_path, mnist_idx):
    path = import_dataset("mnist", SHARED / "mnist.npz", data_root=tmp_path / "a")
    assert load_dataset("mnist", data_root=tmp_path / "a").images_sha256 == dataset_card("mnist")["sha256"]["x_train"]
    assert path.is_file()
    with raises("does not exist"):
        import_dataset("mnist", tmp_path / "missing", data_root=tmp_path / "b")
    with raises("no raw cifar10 train files"):
        import_dataset("cifar10", mnist_idx, data_root=tmp_path / "b")
    (mnist_idx / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz").write_bytes(b"\x1f\x8b broken gzip")
    with raises("t10k-labels-idx1-ubyte.gz"):
        import_dataset("mnist", mnist_idx, data_root=tmp_path / "b")
    (mnist_idx / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz").unlink()
    (mnist_idx / "MNIST" / "raw" / "t10k-labels-idx1-ubyte").write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x09" + bytes(5))
    with raises("header says"):
        import_dataset("mnist", mnist_idx, data_root=tmp_path / "b")
    write_idx(mnist_idx / "MNIST" / "raw" / "t10k-labels-idx1-ubyte", np.zeros(10000, np.uint8))
    with raises("y_test in .* does not match the dataset card"):
        import_dataset("mnist", mnist_idx, data_root=tmp_path / "b")
    assert not (tmp_path / "b" / "mnist.npz").exists()


@pytest.fixture(scope="module")
def cifar_batches(tmp_path_factory) -> Path:
    """<root>/cifar-10-batches-py with the six canonical pickled batches, written from the real arrays."""
    root = tmp_path_factory.mktemp("cifar")
    batches = root / "cifar-10-batches-py"
    batches.mkdir()
    with np.load(SHARED / "cifar10.npz") as npz:
        x_train, y_train, x_test, y_test = (npz[k] for k in ("x_train", "y_train", "x_test", "y_test"))
    for i in range(5):
        part = slice(10000 * i, 10000 * (i + 1))
        write_cifar_batch(
            batches / f"data_batch_{i + 1}",
            x_train[part],
            y_train[part],
            protocol=2 if i == 0 else pickle.HIGHEST_PROTOCOL,
            old_numpy_names=i == 0,
        )
    write_cifar_batch(batches / "test_batch", x_test, y_test)
    return root


def test_load_cifar_from_batches(cifar_batches):
    card = dataset_card("cifar10")
    for split in ("train", "test"):
        ds = load_dataset("cifar10", split, data_root=cifar_batches)
        assert ds.images.shape == SHAPES["cifar10", split]
        assert ds.source == str((cifar_batches / "cifar-10-batches-py").resolve())
        assert (ds.images_sha256, ds.labels_sha256) == (card["sha256"][f"x_{split}"], card["sha256"][f"y_{split}"])
    train = load_dataset("cifar10", "train", data_root=cifar_batches)
    assert train.images[0].transpose(2, 0, 1).ravel()[[0, 1, 2, -3, -2, -1]].tolist() == [59, 43, 50, 140, 84, 72]


def test_import_cifar_checks_card_before_writing(tmp_path, cifar_batches):
    src = tmp_path / "src"
    src.mkdir()
    for p in (cifar_batches / "cifar-10-batches-py").iterdir():
        if p.name != "test_batch":
            os.symlink(p, src / p.name)
    with np.load(SHARED / "cifar10.npz") as npz:
        x_test, y_test = npz["x_test"], npz["y_test"].copy()
    y_test[-1] = (y_test[-1] + 1) % 10
    write_cifar_batch(src / "test_batch", x_test, y_test)
    with raises("y_test in .* does not match the dataset card for cifar10"):
        import_dataset("cifar10", src, data_root=tmp_path / "root")
    assert not (tmp_path / "root" / "cifar10.npz").exists()


def test_cifar_batch_refuses_foreign_pickles(tmp_path):
    batches = tmp_path / "cifar-10-batches-py"
    batches.mkdir()
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    (batches / "test_batch").write_bytes(pickle.dumps({b"data": Evil(), b"labels": []}))
    with raises("not a CIFAR-10 python batch"):
        load_dataset("cifar10", "test", data_root=tmp_path)
    assert not marker.exists()
    (batches / "test_batch").write_bytes(pickle.dumps({b"data": np.zeros((2, 5), np.uint8), b"labels": [0, 1]}))
    with raises("not a CIFAR-10 python batch"):
        load_dataset("cifar10", "test", data_root=tmp_path)


# ---- image folders ----


def write_png(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def test_image_folder_rgb(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "pets"
    rgb = rng.integers(0, 256, (3, 6, 8, 3), dtype=np.uint8)
    gray = rng.integers(0, 256, (2, 6, 8), dtype=np.uint8)
    write_png(folder / "dog" / "b.png", rgb[1])
    write_png(folder / "dog" / "a.png", rgb[0])
    write_png(folder / "cat" / "x.png", gray[0])
    write_png(folder / "cat" / "y.bmp", rgb[2])
    write_png(folder / "cat" / "z.png", gray[1])
    (folder / "cat" / "notes.txt").write_text("not an image")
    (folder / ".hidden").mkdir()
    ds = load_image_folder(folder)
    assert (ds.name, ds.split, ds.class_names, ds.source) == ("pets", "train", ("cat", "dog"), str(folder.resolve()))
    assert ds.images.shape == (5, 6, 8, 3) and ds.labels.tolist() == [0, 0, 0, 1, 1]
    expected = np.stack(
        [np.repeat(gray[0][..., None], 3, 2), rgb[2], np.repeat(gray[1][..., None], 3, 2), rgb[0], rgb[1]]
    )
    assert np.array_equal(ds.images, expected)
    assert load_dataset(str(folder)).images_sha256 == ds.images_sha256 == hashlib.sha256(expected.tobytes()).hexdigest()
    with raises("only a 'train' split"):
        load_dataset(str(folder), "test")


def test_image_folder_gray(tmp_path):
    rng = np.random.default_rng(1)
    gray = rng.integers(0, 256, (4, 5, 7), dtype=np.uint8)
    for i, img in enumerate(gray):
        write_png(tmp_path / "digits" / str(i % 2) / f"{i}.png", img)
    Image.new("1", (7, 5), 1).save(tmp_path / "digits" / "1" / "bw.png")
    ds = load_image_folder(tmp_path / "digits")
    assert ds.images.shape == (5, 5, 7, 1) and ds.class_names == ("0", "1")
    assert np.array_equal(
        ds.images[:, :, :, 0], np.stack([gray[0], gray[2], gray[1], gray[3], np.full((5, 7), 255, np.uint8)])
    )
    assert ds.images_sha256 == hashlib.sha256(ds.images[..., 0].tobytes()).hexdigest()


def test_image_folder_errors(tmp_path):
    folder = tmp_path / "set"
    with raises("does not exist"):
        load_image_folder(folder)
    folder.mkdir()
    with raises("no class subfolders"):
        load_image_folder(folder)
    (folder / "a").mkdir()
    with raises("has no images"):
        load_image_folder(folder)
    write_png(folder / "a" / "1.png", np.zeros((4, 4), np.uint8))
    write_png(folder / "a" / "2.png", np.zeros((4, 5), np.uint8))
    with raises(r"2\.png is 5x4 but .*1\.png is 4x4") as excinfo:
        load_image_folder(folder)
    one_line(excinfo)
    (folder / "a" / "2.png").unlink()
    (folder / "a" / "3.png").write_bytes(b"\x89PNG not really")
    with raises(r"cannot read image .*3\.png") as excinfo:
        load_image_folder(folder)
    one_line(excinfo)
    (folder / "a" / "3.png").unlink()
    write_png(folder / "a" / "4.png", np.zeros((4, 4), np.uint16))
    with raises(r"4\.png has more than 8 bits"):
        load_image_folder(folder)


# ---- subsets and the Dataset type ----


def test_subset_hashes(mnist_arrays):
    ds = load_dataset("mnist", "test", data_root=SHARED)
    sub = ds.subset(range(10, 20))
    assert (sub.name, sub.split, sub.class_names, sub.n_images) == ("mnist", "test", ds.class_names, 10)
    assert sub.images_sha256 == hashlib.sha256(mnist_arrays["x_test"][10:20].tobytes()).hexdigest()
    assert sub.labels_sha256 == hashlib.sha256(mnist_arrays["y_test"][10:20].tobytes()).hexdigest()
    assert sub.images_sha256 != ds.images_sha256
    assert ds.subset(slice(10, 20)).images_sha256 == sub.images_sha256
    mask = np.zeros(ds.n_images, bool)
    mask[10:20] = True
    assert ds.subset(mask).labels_sha256 == sub.labels_sha256
    assert ds.subset(slice(None)).images_sha256 == dataset_card("mnist")["sha256"]["x_test"]
    with raises("must lie in"):
        ds.subset([0, 10000])
    with raises("has no images"):
        ds.subset([])


def test_dataset_validation():
    images = np.zeros((2, 3, 3, 1), np.uint8)
    ds = Dataset("toy", "train", images, np.array([0, 1]), ("a", "b"), "here")
    assert ds.labels.dtype == np.int64 and "toy" in repr(ds) and "array" not in repr(ds)
    assert ds.labels_sha256 == hashlib.sha256(bytes([0, 1])).hexdigest()
    big = Dataset("toy", "train", np.zeros((1, 1, 1, 1), np.uint8), np.array([300]), tuple(map(str, range(301))), "")
    assert big.labels_sha256 == hashlib.sha256(np.array([300], np.int64).tobytes()).hexdigest()
    with raises("must lie in 0..1"):
        Dataset("toy", "train", images, np.array([0, 2]), ("a", "b"), "")
    with raises("uint8"):
        Dataset("toy", "train", images.astype(float), np.array([0, 1]), ("a", "b"), "")
    with raises("C 1 or 3"):
        Dataset("toy", "train", np.zeros((2, 3, 3, 2), np.uint8), np.array([0, 1]), ("a", "b"), "")


# ---- download ----


@pytest.mark.skipif(importlib.util.find_spec("torchvision") is not None, reason="torchvision is installed")
def test_download_without_torchvision(tmp_path):
    with raises(r"pip install -e '\.\[download\]' from npgen's folder") as excinfo:
        download_dataset("mnist", data_root=tmp_path)
    one_line(excinfo)
    assert not any(tmp_path.iterdir())


# ---- the decoded-folder cache ----


def test_image_folder_is_decoded_once_and_the_cache_is_checked(tmp_path, monkeypatch):
    monkeypatch.setenv("NPGEN_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(2)
    folder = tmp_path / "digits"
    for i, img in enumerate(rng.integers(0, 256, (4, 5, 7), dtype=np.uint8)):
        write_png(folder / f"c{i % 2}" / f"{i}.png", img)
    first = load_image_folder(folder)
    assert first.files == ("c0/0.png", "c0/2.png", "c1/1.png", "c1/3.png")
    cache = folder_cache_path(folder)
    assert cache.is_file() and cache.parent == tmp_path / "cache" / "folders"

    # same size and mtime, content no image: the cache is used, so the file is not decoded
    png = folder / "c1" / "3.png"
    stat = png.stat()
    png.write_bytes(b"\0" * stat.st_size)
    os.utime(png, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    second = load_image_folder(folder)
    assert np.array_equal(second.images, first.images) and second.files == first.files
    assert second.class_names == first.class_names and second.labels.tolist() == first.labels.tolist()

    # a changed mtime invalidates the cache: the folder is decoded again and the broken file found
    os.utime(png, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))
    with raises(r"cannot read image .*3\.png"):
        load_image_folder(folder)
    write_png(png, np.zeros((5, 7), np.uint8))
    assert load_image_folder(folder).images[3].max() == 0

    # a damaged cache file is rebuilt, never trusted
    data = bytearray(cache.read_bytes())
    data[len(data) // 2] ^= 0xFF
    cache.write_bytes(bytes(data))
    third = load_image_folder(folder)
    assert third.images[3].max() == 0 and np.array_equal(third.images[:3], first.images[:3])
    assert cache.read_bytes() != bytes(data)
