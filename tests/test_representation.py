"""Learned patch codes: row-separable, deterministic, label-free, kernels equal their numpy references."""

import inspect

import numpy as np
import pytest
from kernel_references import project_codes_reference, row_patches_reference, triangle_pool_reference

from npgen.data.datasets import load_dataset
from npgen.data.index import kmeans
from npgen.data.representation import (
    PatchCodes,
    patch_columns,
    project_codes,
    row_patches,
    triangle_pool,
)
from npgen.errors import NpgenError

SMALL = {"n_codes": 16, "dims": 8, "n_patches": 5000, "n_pool_images": 200, "niter": 10}


@pytest.fixture(scope="module")
def cifar(data_root):
    if not (data_root / "cifar10.npz").is_file():
        pytest.skip("real CIFAR-10 not found")
    return load_dataset("cifar10", data_root=data_root).subset(np.arange(600))


@pytest.fixture(scope="module")
def codes(cifar):
    return PatchCodes.learn(cifar.images[:500], 4, **SMALL)


def test_layout_and_row_separability(codes, cifar):
    images = cifar.images[500:]
    encoded = codes.encode(images)
    assert encoded.shape == (100, 8, 8 * 8) and encoded.dtype == np.int32
    assert encoded.std() > 10  # scaled well above the rounding step
    for r in range(8):
        np.testing.assert_array_equal(encoded[:, r], codes.encode_row(images[:, 4 * r : 4 * r + 4]))
    # an image's codes do not depend on its batch, and row r depends only on pixel rows 4r .. 4r+3
    np.testing.assert_array_equal(codes.encode(images[7:8])[0], encoded[7])
    np.testing.assert_array_equal(codes.encode(images, batch=33), encoded)
    changed = images.copy()
    changed[:, 12:16] = 255 - changed[:, 12:16]
    other = codes.encode(changed)
    np.testing.assert_array_equal(np.delete(other, 3, axis=1), np.delete(encoded, 3, axis=1))
    assert (other[:, 3] != encoded[:, 3]).any()


def test_mnist_grayscale_with_partial_last_row(mnist_subset):
    codes = PatchCodes.learn(mnist_subset.images[:500], 4, **SMALL)
    encoded = codes.encode(mnist_subset.images[500:550])
    assert encoded.shape == (50, 7, 7 * 8)
    np.testing.assert_array_equal(encoded[:, 6], codes.encode_row(mnist_subset.images[500:550, 24:28]))


def test_learning_is_deterministic_and_seeded(codes, cifar):
    again = PatchCodes.learn(cifar.images[:500], 4, **SMALL)
    for name in ("patch_mean", "whiten", "centroids", "code_mean", "basis"):
        np.testing.assert_array_equal(getattr(again, name), getattr(codes, name))
    assert again.scale == codes.scale
    np.testing.assert_array_equal(again.encode(cifar.images[500:]), codes.encode(cifar.images[500:]))
    other = PatchCodes.learn(cifar.images[:500], 4, seed=1, **SMALL)
    assert not np.array_equal(other.centroids, codes.centroids)


def test_label_free(codes, cifar):
    assert "labels" not in inspect.signature(PatchCodes.learn).parameters
    shuffled = cifar.subset(np.arange(500))
    shuffled = type(shuffled)(
        shuffled.name,
        shuffled.split,
        shuffled.images,
        np.random.default_rng(5).permutation(shuffled.labels),
        shuffled.class_names,
        shuffled.source,
    )
    relearned = PatchCodes.learn(shuffled.images, 4, **SMALL)
    np.testing.assert_array_equal(relearned.encode(cifar.images[500:]), codes.encode(cifar.images[500:]))


def test_numba_kernels_match_numpy_references(codes, cifar):
    slab = np.ascontiguousarray(cifar.images[500:540, 8:12])
    for patch in (2, 4):  # one or several rows of patches inside the block row
        np.testing.assert_allclose(row_patches(slab, patch), row_patches_reference(slab, patch), rtol=1e-5, atol=1e-5)
    assert codes.patch == 3
    patches = row_patches(slab, 3)
    np.testing.assert_allclose(patches, row_patches_reference(slab, 3), rtol=1e-5, atol=1e-5)
    args = (codes.patch_mean, codes.whiten, np.ascontiguousarray(codes.centroids.T), patch_columns(32, 3, 4), 8, 1)
    pooled = triangle_pool(patches, *args)
    np.testing.assert_allclose(pooled, triangle_pool_reference(patches, *args), rtol=1e-4, atol=1e-4)
    assert (pooled >= 0).all() and pooled.max() > 0
    for reach in (0, 2):
        local = (*args[:-1], reach)
        np.testing.assert_allclose(
            triangle_pool(patches, *local), triangle_pool_reference(patches, *local), rtol=1e-4, atol=1e-4
        )
    projected = project_codes(pooled, codes.code_mean, codes.basis, codes.scale)
    reference = project_codes_reference(pooled, codes.code_mean, codes.basis, codes.scale)
    assert np.abs(projected.astype(np.int64) - reference).max() <= 1  # float rounding at .5 boundaries only
    assert (projected == reference).mean() > 0.999


def test_patch_columns_cover_every_block():
    columns = patch_columns(32, 4, 4)
    assert len(columns) == 29 and columns.min() == 0 and columns.max() == 7
    assert set(np.bincount(columns)) <= {2, 3, 4} and (np.diff(columns) >= 0).all()
    assert patch_columns(28, 3, 4).max() == 6


def test_save_load_round_trip(codes, cifar, tmp_path):
    codes.save(tmp_path / "codes")
    loaded = PatchCodes.load(tmp_path / "codes")
    assert loaded.params() == codes.params()
    np.testing.assert_array_equal(loaded.encode(cifar.images[500:]), codes.encode(cifar.images[500:]))
    (tmp_path / "codes" / "basis.npy").unlink()
    with pytest.raises(NpgenError, match="missing or corrupt"):
        PatchCodes.load(tmp_path / "codes")


def test_bad_arguments(cifar, codes):
    with pytest.raises(NpgenError):
        PatchCodes.learn(cifar.images[:50], 4, patch=5)
    with pytest.raises(NpgenError):
        codes.encode_row(cifar.images[:5, :3])


def test_kmeans_is_seeded():
    points = np.random.default_rng(0).normal(size=(2000, 5)).astype(np.float32)
    np.testing.assert_array_equal(kmeans(points, 8, seed=3), kmeans(points, 8, seed=3))
    assert kmeans(points, 8).shape == (8, 5)
