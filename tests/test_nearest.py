"""The exact nearest-training-image search (npgen/data/nearest.py) against plain numpy and FAISS, on real data."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from kernel_references import block_sum_rows_reference, nearest_reference, source_ranking_reference

from npgen import api
from npgen.data.database import Database
from npgen.data.datasets import load_dataset
from npgen.data.index import build_image_index, search
from npgen.data.nearest import (
    SERIAL_BLOCK_SUMS,
    NearestImages,
    _bound,
    _limit,
    block_sum_rows,
    blocks_for,
    level_major,
    source_ranking,
    squared_to_distance,
    sums_file,
    sums_layout,
    top_sources,
)
from npgen.errors import NpgenError
from npgen.evaluation.metrics import top_source_share
from npgen.rule.sampler import Sampler
from npgen.runs.summary import sample_summary


@pytest.fixture(scope="module")
def cifar_db(all_data_root, tmp_path_factory) -> Database:
    """A real CIFAR-10 database over the first 2,000 training images, with the CIFAR-10 preset."""
    train = load_dataset("cifar10", data_root=all_data_root).subset(np.arange(2000))
    window, _ = api.resolve_params(train)
    return Database.build(train, tmp_path_factory.mktemp("db") / "cifar-subset", window)


def real_samples(db: Database, n: int, class_label: int | None, data_root):
    """n samples of the database's dataset with its preset (the settings a run uses), seeded."""
    _, options = api.resolve_params(load_dataset(db.dataset["name"], data_root=data_root), {}, {"seed": 5})
    return Sampler(db, **options).sample(n, class_label=class_label)


def faiss_nearest(images: np.ndarray, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(float32 distances, ids) of the exact FAISS index the database used to search with."""
    distances, ids = search(build_image_index(np.ascontiguousarray(images)), queries, 1)
    return distances[:, 0].astype(np.float32), ids[:, 0]


@pytest.mark.parametrize("name", ["mnist", "cifar10"])
def test_block_sums_kernel_matches_numpy_on_real_images(name, all_data_root):
    images = load_dataset(name, data_root=all_data_root).images[:300]
    strided = np.pad(images, ((0, 0), (2, 0), (3, 3), (0, 0)))[:, 2:, 3:-3]  # a view like a database's images()
    assert not strided.flags.c_contiguous
    blocks = (16, 8, 4, 2, 1)
    expected = block_sum_rows_reference(images, blocks)
    assert np.array_equal(block_sum_rows(images, blocks), expected)  # one thread (few images)
    assert np.array_equal(block_sum_rows(strided, blocks), expected)
    many = np.concatenate([images] * (SERIAL_BLOCK_SUMS // len(images) + 1))  # the parallel kernel
    assert np.array_equal(block_sum_rows(many, blocks), np.concatenate([expected] * (len(many) // len(images))))
    assert np.array_equal(expected[:, -images[0].size :], images.reshape(len(images), -1))  # 1 x 1 blocks: pixels
    if name == "cifar10":
        assert int(expected.max()) > 32767  # 16 x 16 sums of colour images exceed int16: they are kept as uint16


def test_blocks_suit_the_image_shape():
    assert blocks_for(28, 28, 1) == (4, 2) and blocks_for(32, 32, 3) == (8, 4, 2)
    assert blocks_for(256, 256, 3) == (16, 8, 4, 2) and blocks_for(4, 4, 1) == (2,)


@pytest.mark.parametrize("which", ["mnist", "cifar10"])
@pytest.mark.parametrize("class_label", [None, 3])
def test_search_equals_numpy_and_faiss_on_real_samples(which, class_label, mnist_db, cifar_db, all_data_root):
    db = mnist_db if which == "mnist" else cifar_db
    samples = real_samples(db, 12, class_label, all_data_root)
    images = np.asarray(db.images())
    search_ = NearestImages.for_database(db)
    reference_squared, reference_ids = nearest_reference(samples.images, images)
    faiss_distance, faiss_ids = faiss_nearest(images, samples.images)
    for hints in (top_sources(samples.src_image, 10), None, np.full((12, 3), -1)):
        squared, ids = search_.search(samples.images, hints)
        assert np.array_equal(squared, reference_squared) and np.array_equal(ids, reference_ids)
        assert np.array_equal(ids, faiss_ids)
        assert np.array_equal(squared_to_distance(squared), faiss_distance)  # bit for bit, float32


@pytest.mark.slow  # searches all 60,000 MNIST images by brute force
def test_ties_go_to_the_lowest_id_as_in_faiss(mnist_db, data_root):
    """Each sample's nearest image is copied to a lower and a higher id: FAISS and the search pick the lowest,
    even when the hint names a higher copy; training images queried as themselves tie at distance 0."""
    samples = real_samples(mnist_db, 10, None, data_root)
    images = np.asarray(mnist_db.images())[:1500]
    _, nearest = nearest_reference(samples.images, images)
    duplicated = np.concatenate([images[nearest[:5]], images, images[nearest]])  # copies below and above
    queries = np.concatenate([samples.images, images[[7, 7, 100]]])
    search_ = NearestImages.from_images(duplicated)
    high_copies = np.concatenate([5 + len(images) + np.arange(10), [len(duplicated) - 1] * 3])
    squared, ids = search_.search(queries, high_copies[:, None])
    reference_squared, reference_ids = nearest_reference(queries, duplicated)
    faiss_distance, faiss_ids = faiss_nearest(duplicated, queries)
    assert np.array_equal(ids, reference_ids) and np.array_equal(ids, faiss_ids)
    assert np.array_equal(squared, reference_squared)
    assert np.array_equal(squared_to_distance(squared), faiss_distance)
    assert list(ids[:5]) == list(range(5))  # the copies placed first win their ties
    assert list(ids[10:]) == [5 + 7, 5 + 7, 5 + 100] and not squared[10:].any()


def test_a_run_records_the_faiss_nearest_image_and_distance(cache, data_root, tmp_path):
    """A whole run over all 60,000 MNIST training images, unconditional: samples.parquet holds what the
    database's own FAISS index answers."""
    run = api.sample_run(tmp_path / "run", "mnist", 8, None, data_root, sampler_options={"seed": 3})
    table = pq.read_table(run / "samples.parquet")
    samples = np.load(run / "samples.npy")
    db = Database.load(json.loads((run / "manifest.json").read_text())["database"]["path"])
    distances, ids = search(db.nearest_index(), samples, 1)
    assert np.array_equal(table.column("nearest_image").to_numpy(), ids[:, 0])
    assert np.array_equal(table.column("nearest_distance").to_numpy(), distances[:, 0].astype(np.float32))


def test_block_sums_are_kept_in_the_database_and_a_damaged_file_is_recomputed(mnist_db, data_root):
    samples = real_samples(mnist_db, 4, 1, data_root)
    path = sums_file(mnist_db)
    path.unlink(missing_ok=True)
    expected = sample_summary(samples, mnist_db)
    blocks = blocks_for(28, 28, 1)
    rows = block_sum_rows(np.asarray(mnist_db.images()), blocks)
    assert path.is_file() and np.array_equal(np.load(path), level_major(rows, sums_layout(28, 28, 1, blocks)))
    path.write_bytes(path.read_bytes()[:1000])  # truncated
    assert sample_summary(samples, mnist_db).equals(expected)
    assert np.array_equal(np.load(path), level_major(rows, sums_layout(28, 28, 1, blocks)))  # written again


def test_bad_queries_and_hints_are_refused(mnist_db):
    search_ = NearestImages.for_database(mnist_db)
    images = np.asarray(mnist_db.images()[:2])
    with pytest.raises(NpgenError, match="do not match"):
        search_.search(images.astype(np.float32))
    with pytest.raises(NpgenError, match="hints must be image ids"):
        search_.search(images, np.array([[0], [mnist_db.n_images]]))


@pytest.mark.parametrize("which", ["mnist", "cifar10"])
def test_source_ranking_matches_numpy_per_sample_on_real_samples(which, mnist_db, cifar_db, all_data_root):
    """The one-sort ranking of every sample's sources equals np.unique sample by sample: most used first, ties
    to the lowest id, given pixels (-1) counted nowhere, also for a sample with one source or none."""
    db = mnist_db if which == "mnist" else cifar_db
    src_image = real_samples(db, 12, 3, all_data_root).src_image.copy()
    src_image[0, :4] = -1  # given pixels, as in a completion
    src_image[1] = src_image[1, 0, 0]  # one source
    src_image[2] = -1  # nothing generated
    for k in (1, 3, 10, src_image[0].size):
        ranked, reference = source_ranking(src_image, k), source_ranking_reference(src_image, k)
        assert all(np.array_equal(a, b) for a, b in zip(ranked, reference))
    top, share, distinct = top_source_share(src_image)
    ranked, top_count, n_sources = source_ranking_reference(src_image, 1)
    assert np.array_equal(top, ranked[:, 0]) and np.array_equal(distinct, n_sources)
    assert np.array_equal(share, top_count / src_image[0].size)
    assert list(distinct[1:3]) == [1, 0] and top[2] == -1


@pytest.mark.parametrize("name", ["mnist", "cifar10"])
def test_float32_bounds_never_drop_an_image_their_exact_bound_keeps(name, all_data_root):
    """Every level's float32 bound, against its widened limit, keeps each image whose exact integer bound does
    not exceed area * best, for real image pairs at the tightest best (exact bound = area * best when it
    divides): the rounding can never prune the nearest image."""
    images = load_dataset(name, data_root=all_data_root).images[:400]
    blocks = blocks_for(*images.shape[1:])
    sums = block_sum_rows(images, blocks)
    layout = sums_layout(*images.shape[1:], blocks)
    rng = np.random.default_rng(0)
    pairs = rng.integers(0, len(images), (2000, 2))
    for level, s in enumerate(blocks):
        first, stop = int(layout[level]), int(layout[level + 1])
        area = s * s
        diffs = sums[pairs[:, 0], first:stop].astype(np.int64) - sums[pairs[:, 1], first:stop]
        exact = (diffs**2).sum(axis=1)
        for (a, b), value in zip(pairs, exact):
            best = -(-int(value) // area)  # the least best at which the image must be kept
            assert _bound(sums[a, first:stop], sums[b, first:stop]) <= _limit(area, best, stop - first)


def test_level_major_sums_hold_each_level_of_every_image_in_turn(all_data_root):
    images = load_dataset("cifar10", data_root=all_data_root).images[:50]
    blocks = blocks_for(32, 32, 3)
    rows, layout = block_sum_rows(images, blocks), sums_layout(32, 32, 3, blocks)
    levels = level_major(rows, layout)
    assert levels.shape == (rows.size,) and levels.dtype == np.uint16
    for level, (first, stop) in enumerate(itertools.pairwise(layout)):
        block = levels[len(images) * first : len(images) * stop].reshape(len(images), stop - first)
        assert np.array_equal(block, rows[:, first:stop]), level


def test_chunks_sharing_their_bounds_still_give_ties_to_the_lowest_id(cifar_db, all_data_root):
    """Over 7 chunks of real CIFAR-10 training images, each sample's nearest image copied into the last chunk
    and the hint naming that copy: the chunks prune with the distances the others found, and every sample still
    gets the original (the lowest id), as the numpy brute force and FAISS do."""
    samples = real_samples(cifar_db, 12, 3, all_data_root)
    train = load_dataset("cifar10", data_root=all_data_root).images[:6500]
    _, originals = nearest_reference(samples.images, train)
    images = np.concatenate([train, train[originals]])  # the copies get ids 6500..6511
    squared, ids = NearestImages.from_images(images).search(samples.images, 6500 + np.arange(12)[:, None])
    reference_squared, reference_ids = nearest_reference(samples.images, images)
    faiss_distance, faiss_ids = faiss_nearest(images, samples.images)
    assert np.array_equal(ids, originals) and np.array_equal(ids, reference_ids) and np.array_equal(ids, faiss_ids)
    assert np.array_equal(squared, reference_squared)
    assert np.array_equal(squared_to_distance(squared), faiss_distance)


@pytest.mark.parametrize("name", ["mnist", "cifar10"])
def test_a_tie_is_kept_where_the_bound_equals_the_distance(name, all_data_root):
    """Real images made constant over the finest blocks (each 2 x 2 block set to its mean), so that the finest
    bound equals the exact distance: each query's nearest image, with a copy at the end named as the hint, ties
    with it exactly at the pruning limit, and must still be found (the lowest id), as numpy and FAISS find it."""
    images = load_dataset(name, data_root=all_data_root).images[:1200]
    finest = blocks_for(*images.shape[1:])[-1]
    n, height, width, channels = images.shape
    means = images.reshape(n, height // finest, finest, width // finest, finest, channels).mean(axis=(2, 4))
    blocky = np.repeat(np.repeat(means.round().astype(np.uint8), finest, axis=1), finest, axis=2)
    train, queries = blocky[:1000], blocky[1000:1012]
    _, originals = nearest_reference(queries, train)
    images = np.concatenate([train, train[originals]])  # the copies get ids 1000..1011
    squared, ids = NearestImages.from_images(images).search(queries, 1000 + np.arange(12)[:, None])
    reference_squared, reference_ids = nearest_reference(queries, images)
    assert np.array_equal(ids, originals) and np.array_equal(ids, reference_ids)
    assert np.array_equal(ids, faiss_nearest(images, queries)[1]) and np.array_equal(squared, reference_squared)
