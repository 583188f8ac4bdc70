"""Shared fixtures: the real datasets from ../shared/datasets and a small real MNIST database."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from npgen.database import Database, WindowParams
from npgen.datasets import DATA_ENV, load_dataset

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get(DATA_ENV) or REPO.parent / "shared" / "datasets")


@pytest.fixture(scope="session")
def data_root() -> Path:
    if not (SHARED / "mnist.npz").is_file():
        pytest.skip(f"real MNIST not found: set {DATA_ENV} to a folder holding mnist.npz (looked in {SHARED})")
    return SHARED


@pytest.fixture(scope="session")
def mnist_subset(data_root):
    """The first 2,000 MNIST training images: real data, small enough for fast tests."""
    return load_dataset("mnist", data_root=data_root).subset(np.arange(2000))


@pytest.fixture(scope="session")
def mnist_db(mnist_subset, tmp_path_factory) -> Database:
    return Database.build(mnist_subset, tmp_path_factory.mktemp("db") / "mnist-subset", WindowParams())


@pytest.fixture
def cache(tmp_path, monkeypatch, data_root) -> Path:
    """Point the database cache and the data root at test locations."""
    monkeypatch.setenv("NPGEN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv(DATA_ENV, str(data_root))
    return tmp_path / "cache"
