"""Shared fixtures: the real datasets from ../shared/datasets and a small real MNIST database.

Tests that need the real data skip when it is missing, unless NPGEN_REQUIRE_DATA=1 (as .ci/run sets):
then they fail, so that CI cannot pass by skipping them.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _numba_cache_keyed_by_sources() -> None:
    """Point numba's on-disk cache (unless $NUMBA_CACHE_DIR is set) at a folder named by a hash of npgen's compiled
    sources (every module that imports numba), before numba is imported. numba checks only the file of each cached
    function, so an edit to rule/kernels.py would leave the row kernels, which inline it, running the old code: a
    broken rule could pass the tests. A kernel can only call compiled code, which lives in those modules, so an edit
    elsewhere (the CLI, the store) keeps the cache. Older folders are removed."""
    if "NUMBA_CACHE_DIR" in os.environ:
        return
    sources = hashlib.sha256()
    for path in sorted((REPO / "npgen").rglob("*.py")):
        source = path.read_bytes()
        if re.search(rb"^\s*(import numba|from numba)", source, re.M):
            sources.update(path.relative_to(REPO).as_posix().encode() + b"\0" + source)
    root = REPO / ".pytest_cache" / "numba"
    current = root / sources.hexdigest()[:16]
    if root.is_dir():
        for old in root.iterdir():
            if old != current:
                shutil.rmtree(old, ignore_errors=True)
    os.environ["NUMBA_CACHE_DIR"] = str(current)


_numba_cache_keyed_by_sources()

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from npgen.data.database import Database, WindowParams  # noqa: E402
from npgen.data.datasets import DATA_ENV, load_dataset  # noqa: E402

SHARED = Path(os.environ.get(DATA_ENV) or REPO.parent / "shared" / "datasets")
REQUIRE_ENV = "NPGEN_REQUIRE_DATA"


def require_data(*names: str) -> Path:
    """The data root holding <name>.npz for each name; else skip, or fail when $NPGEN_REQUIRE_DATA is set."""
    missing = [f"{name}.npz" for name in names if not (SHARED / f"{name}.npz").is_file()]
    if missing:
        why = f"real data not found: {', '.join(missing)} missing in {SHARED}; set {DATA_ENV} to a folder holding {', '.join(missing)}"
        if os.environ.get(REQUIRE_ENV, "") not in ("", "0"):
            pytest.fail(
                f"{why} ({REQUIRE_ENV} is set: tests that need the data fail instead of skipping)", pytrace=False
            )
        pytest.skip(why)
    return SHARED


def must_not_skip() -> bool:
    """True in CI (CI=true, or $NPGEN_REQUIRE_DATA set): a test whose data or optional dependency is missing fails."""
    return os.environ.get(REQUIRE_ENV, "") not in ("", "0") or os.environ.get("CI", "").lower() in ("true", "1")


def require_ray():
    """The ray module; else skip, or fail in CI (CI=true or $NPGEN_REQUIRE_DATA set), where the test extra installs it."""
    try:
        import ray
    except ImportError:
        why = "ray is not installed: pip install -e '.[ray]' (the test extra installs it too)"
        if must_not_skip():
            pytest.fail(f"{why} (in CI the Ray tests fail instead of skipping)", pytrace=False)
        pytest.skip(why)
    return ray


@pytest.fixture(scope="session", autouse=True)
def session_cache(tmp_path_factory) -> Path:
    """npgen's cache ($NPGEN_CACHE) in this session's temporary folder, for every test and every command a test runs:
    no test builds databases or decodes folders into the user's ~/.cache/npgen. Tests that need a cache of their own
    set it again (the `cache` and `module_cache` fixtures)."""
    path = tmp_path_factory.mktemp("npgen-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NPGEN_CACHE", str(path))
        yield path


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The data root holding the real MNIST."""
    return require_data("mnist")


@pytest.fixture(scope="session")
def all_data_root() -> Path:
    """The data root holding the real MNIST and CIFAR-10."""
    return require_data("mnist", "cifar10")


@pytest.fixture(scope="session")
def mnist_subset(data_root):
    """The first 2,000 MNIST training images: real data, small enough for fast tests."""
    return load_dataset("mnist", data_root=data_root).subset(np.arange(2000))


@pytest.fixture(scope="session")
def mnist_db(mnist_subset, tmp_path_factory) -> Database:
    return Database.build(mnist_subset, tmp_path_factory.mktemp("db") / "mnist-subset", WindowParams())


@pytest.fixture(scope="session")
def one_image_db(all_data_root, tmp_path_factory) -> Database:
    """A database of one real 32x32 picture (CIFAR-10 training image 7), as `--dataset PICTURE.png` builds it."""
    folder = tmp_path_factory.mktemp("picture")
    Image.fromarray(load_dataset("cifar10", data_root=all_data_root).images[7]).save(folder / "picture.png")
    return Database.build(load_dataset(str(folder / "picture.png")), folder / "db", WindowParams())


@pytest.fixture
def cache(tmp_path, monkeypatch, data_root) -> Path:
    """Point the database cache and the data root at test locations."""
    monkeypatch.setenv("NPGEN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv(DATA_ENV, str(data_root))
    return tmp_path / "cache"


@pytest.fixture(scope="module")
def module_cache(tmp_path_factory, data_root):
    """A database cache and data root shared by one test module, so its runs build each database once."""
    path = tmp_path_factory.mktemp("module-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NPGEN_CACHE", str(path))
        patch.setenv(DATA_ENV, str(data_root))
        yield path
