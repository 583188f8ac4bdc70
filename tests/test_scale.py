"""Large databases: the streaming build, array folders, and the approximate semantic pool, on real data."""

from __future__ import annotations

import json

import faiss
import numpy as np
import pytest
from click.testing import CliRunner

from npgen.cli import main
from npgen.data.database import Database, WindowParams, pad_images
from npgen.data.datasets import load_dataset
from npgen.data.folders import write_array_folder
from npgen.data.index import PrefixIndexes, build_image_index, save_index
from npgen.data.representation import BlockSums, PatchCodes
from npgen.params import PARAMS
from npgen.rule.pool import approximate_pool_recall, nearest_pool, rerank_pool, tie_pool
from npgen.rule.rng import TIE_BREAK_STREAM, mix, sample_keys
from npgen.rule.sampler import Sampler

pytestmark = pytest.mark.slow  # large-database builds and the approximate pool

FILES = ("sources.npy", "representations.npy", "labels.npy", "images.faiss")


def run_cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def cifar10(all_data_root):
    return load_dataset("cifar10", data_root=all_data_root)


@pytest.fixture(scope="module")
def cifar10_db(cifar10, tmp_path_factory) -> Database:
    """The real CIFAR-10 training split with the preset's window parameters (h 3, 4x4 block sums)."""
    return Database.build(cifar10, tmp_path_factory.mktemp("db") / "cifar10", WindowParams(retrieval_block=4))


def one_shot_files(dataset, params: WindowParams, encoder, folder) -> None:
    """The database arrays as the build wrote them before it streamed: each whole array at once."""
    folder.mkdir()
    padded = pad_images(dataset.images, params.half_window, params.pad_value)
    np.save(folder / "sources.npy", padded.reshape(len(padded), -1))
    np.save(folder / "representations.npy", encoder.encode(dataset.images))
    np.save(folder / "labels.npy", np.asarray(dataset.labels, dtype=np.int64))
    save_index(build_image_index(dataset.images), folder / "images.faiss")


@pytest.mark.parametrize(
    "name, count, params", [("cifar10", 5000, WindowParams(retrieval_block=4)), ("mnist", 3000, WindowParams())]
)
@pytest.mark.parametrize("chunk_size", [1000, 777, 100_000])
def test_streaming_build_is_byte_identical_to_the_one_shot_build(
    all_data_root, tmp_path, name, count, params, chunk_size
):
    dataset = load_dataset(name, data_root=all_data_root).subset(np.arange(count))
    one_shot_files(dataset, params, BlockSums(params.retrieval_block), tmp_path / "one-shot")
    seen = []
    db = Database.build(dataset, tmp_path / "db", params, chunk_size=chunk_size, progress=seen.append)
    for file in FILES:
        assert (db.path / file).read_bytes() == (tmp_path / "one-shot" / file).read_bytes(), file
    assert sum(seen) == count and len(seen) == -(-count // chunk_size)
    # and the index written chunk by chunk is a working exact index
    assert db.nearest_index().ntotal == count


def test_streaming_build_with_learned_codes_is_byte_identical(data_root, tmp_path):
    dataset = load_dataset("mnist", data_root=data_root).subset(np.arange(1500))
    params = WindowParams(retrieval="codes", retrieval_block=4)
    db = Database.build(dataset, tmp_path / "db", params, chunk_size=400)
    one_shot_files(dataset, params, PatchCodes.load(db.path / "codes"), tmp_path / "one-shot")
    for file in FILES:
        assert (db.path / file).read_bytes() == (tmp_path / "one-shot" / file).read_bytes(), file


def test_ray_build_is_byte_identical_to_the_local_build(all_data_root, tmp_path):
    ray = pytest.importorskip("ray")
    dataset = load_dataset("cifar10", data_root=all_data_root).subset(np.arange(3000))
    params = WindowParams(retrieval_block=4)
    local = Database.build(dataset, tmp_path / "local", params, chunk_size=700)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        remote = Database.build(dataset, tmp_path / "ray", params, chunk_size=700, ray_address="local")
    finally:
        ray.shutdown()
    for file in FILES:
        assert (remote.path / file).read_bytes() == (local.path / file).read_bytes(), file


def synthetic_folder(cifar10, path, n):
    """A small array folder of real CIFAR-10 images, mirrored left-right (what benchmarks/speed/scale.py writes)."""
    chunks = ((cifar10.images[i : i + 500, :, ::-1], cifar10.labels[i : i + 500]) for i in range(0, n, 500))
    record = {"synthetic": True, "description": "test: mirrored CIFAR-10 training images"}
    return write_array_folder(path, "cifar10-mirrored", cifar10.class_names, n, (32, 32, 3), chunks, record)


def test_array_folder_is_read_memory_mapped_and_built_by_the_cli(cifar10, tmp_path, cache):
    folder = synthetic_folder(cifar10, tmp_path / "mirrored", 2000)
    assert json.loads((folder / "npgen-arrays.json").read_text())["synthetic"] is True
    dataset = load_dataset(folder)
    base = dataset.images
    while base.base is not None and not isinstance(base, np.memmap):
        base = base.base
    assert isinstance(base, np.memmap)  # not read into memory
    np.testing.assert_array_equal(dataset.images, cifar10.images[:2000, :, ::-1])
    done = run_cli("build", "--dataset", folder, "--db", tmp_path / "db")
    assert done.exit_code == 0, done.output
    assert "building: 2000/2000 (100%)" in done.output and "built" in done.output
    db = Database.load(tmp_path / "db")
    np.testing.assert_array_equal(db.images(), cifar10.images[:2000, :, ::-1])
    np.testing.assert_array_equal(db.labels, cifar10.labels[:2000])


def test_damaged_array_folder_and_ray_without_ray_give_one_line_errors(cifar10, tmp_path, cache):
    folder = synthetic_folder(cifar10, tmp_path / "mirrored", 1000)
    (folder / "labels.npy").write_bytes(b"not an array")
    done = run_cli("build", "--dataset", folder, "--db", tmp_path / "db")
    assert done.exit_code == 2 and done.output.startswith("error: cannot read the array folder")
    assert len(done.output.strip().splitlines()) == 1 and not (tmp_path / "db").exists()
    with pytest.raises(Exception, match="already exists"):
        synthetic_folder(cifar10, tmp_path / "mirrored", 1000)
    try:
        import ray  # noqa: F401
    except ImportError:
        healthy = synthetic_folder(cifar10, tmp_path / "healthy", 1000)
        done = run_cli("build", "--dataset", healthy, "--db", tmp_path / "db", "--ray")
        assert done.exit_code == 2 and "--ray needs Ray" in done.output and not (tmp_path / "db").exists()


def rerank_reference(prefix, representations, n_rows, candidates, keys, pool_size):
    """Plain numpy: exact prefix distances of the candidates, then (distance, per-sample tie key) order."""
    pools = []
    for b, row in enumerate(candidates):
        valid = row[row >= 0]
        diff = prefix[b, :n_rows].astype(np.int64)[None] - representations[valid, :n_rows].astype(np.int64)
        distance = (diff**2).reshape(len(valid), -1).sum(axis=1)
        tie = np.array([mix(keys[b] ^ TIE_BREAK_STREAM, int(i)) & ((1 << 20) - 1) for i in valid], dtype=np.int64)
        pools.append(valid[np.lexsort((tie, distance))][:pool_size])
    return np.array(pools)


def test_rerank_kernel_matches_numpy_reference(cifar10_db, cifar10):
    queries = cifar10_db.encoder.encode(cifar10.images[-40:])
    keys = sample_keys(7, np.arange(40))
    rng = np.random.default_rng(0)
    candidates = np.stack([rng.choice(cifar10_db.n_images, 200, replace=False) for _ in range(40)])
    candidates[:, -5:] = -1  # missing results of the IVF search are skipped
    reps = np.asarray(cifar10_db.representations)
    for n_rows in (1, 3, 7):
        got = rerank_pool(queries, reps, n_rows, candidates, keys, 50)
        np.testing.assert_array_equal(got, rerank_reference(queries, reps, n_rows, candidates, keys, 50))


def test_first_row_pool_matches_numpy_reference_and_the_exact_scan(cifar10_db):
    allowed = cifar10_db.class_members(5)
    keys = sample_keys(11, np.arange(30))
    got = tie_pool(keys, allowed, 50)
    ties = np.array([[mix(key ^ TIE_BREAK_STREAM, int(i)) & ((1 << 20) - 1) for i in allowed] for key in keys])
    reference = allowed[np.argsort(ties, axis=1, kind="stable")[:, :50]]
    np.testing.assert_array_equal(got, reference)
    zeros = np.zeros((30, len(allowed)), dtype=np.int64)  # what the exact scan ranks before any row is done
    np.testing.assert_array_equal(got, nearest_pool(zeros, keys, allowed, 50))


RECALL_FLOOR = 0.97  # mean recall@pool_size over the prefixes, class-conditional CIFAR-10 (measured: 0.998)


def test_approximate_pool_recall_on_cifar10_is_above_the_floor_and_deterministic(cifar10_db, all_data_root):
    test = load_dataset("cifar10", split="test", data_root=all_data_root)
    queries = cifar10_db.encoder.encode(test.images[test.labels == 3][:100])
    keys = sample_keys(0, np.arange(100))
    members = cifar10_db.class_members(3)
    indexes = PrefixIndexes(cifar10_db.representations, members)
    recall = approximate_pool_recall(cifar10_db.representations, indexes, queries, keys, 50)
    assert recall.mean() >= RECALL_FLOOR and recall.min() >= RECALL_FLOOR - 0.02, recall
    # same data, fresh indexes, one thread and a different batch: the same candidates
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        again = PrefixIndexes(cifar10_db.representations, members)
        for n_rows in (1, 4, 7):
            whole = indexes.candidates(queries, n_rows, 200)
            np.testing.assert_array_equal(again.candidates(queries[:13], n_rows, 200), whole[:13])
            assert np.isin(whole, members).all()
    finally:
        faiss.omp_set_num_threads(threads)


def test_approximate_sampling_is_deterministic_whatever_the_batch(cifar10_db):
    options = {"pool_size": 50, "k_min": 1, "max_source_share": 0.2, "pool_search": "approximate", "seed": 5}
    whole = Sampler(cifar10_db, batch_size=12, **options).sample(12, class_label=3)
    split = Sampler(cifar10_db, batch_size=5, **options).sample(12, class_label=3)
    np.testing.assert_array_equal(whole.images, split.images)
    np.testing.assert_array_equal(whole.src_image, split.src_image)
    assert np.isin(whole.src_image, cifar10_db.class_members(3)).all()
    exact = Sampler(cifar10_db, batch_size=12, **{**options, "pool_search": "exact"}).sample(12, class_label=3)
    assert not np.array_equal(exact.src_image, whole.src_image)  # the approximate pool is really used


def test_auto_switch_is_recorded_and_approximate_runs_verify(tmp_path, cache, all_data_root):
    common = ("sample", "--dataset", "cifar10", "--class", "cat", "-n", "8", "--seed", "3")
    small = run_cli(*common, "--out", tmp_path / "auto-exact")
    switched = run_cli(*common, "--exact-pool-limit", "1000", "--out", tmp_path / "auto-approx")
    explicit = run_cli(*common, "--pool-search", "exact", "--out", tmp_path / "exact")
    for done in (small, switched, explicit):
        assert done.exit_code == 0, done.output
    params = {
        name: json.loads((tmp_path / name / "manifest.json").read_text())["params"]
        for name in ("auto-exact", "auto-approx", "exact")
    }
    assert (
        params["auto-exact"]["pool_search"] == "exact"
        and params["auto-exact"]["exact_pool_limit"] == PARAMS["exact_pool_limit"].default
    )
    assert params["auto-approx"]["pool_search"] == "approximate" and params["auto-approx"]["exact_pool_limit"] == 1000
    # below the limit, auto is the exact scan: the same samples as asking for it
    assert (tmp_path / "auto-exact" / "samples.npy").read_bytes() == (tmp_path / "exact" / "samples.npy").read_bytes()
    verified = run_cli("verify", tmp_path / "auto-approx")
    assert verified.exit_code == 0, verified.output
    report = json.loads(verified.output)
    assert report["mismatches"] == 0 and report["wrong_class"] == 0 and report["n_pixels"] == 8 * 32 * 32
    bad = run_cli(*common, "--pool-search", "fast", "--out", tmp_path / "bad")
    assert bad.exit_code == 2 and "fast" in bad.output and not (tmp_path / "bad").exists()
