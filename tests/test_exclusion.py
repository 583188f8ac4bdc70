"""Exclusion with proof: excluded training images give no pixel, take no part in any pool, and verify proves it."""

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from PIL import Image

from npgen.api import build_database, sample_run, verify_run
from npgen.cli import main
from npgen.control.exclusion import resolve_exclusion
from npgen.data.datasets import load_dataset
from npgen.data.files import array_sha256
from npgen.rule.batch import RowBatch
from npgen.rule.sampler import Sampler


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def mnist(module_cache):
    db, _ = build_database("mnist")
    return load_dataset("mnist"), db


@pytest.fixture(scope="module")
def free_run(module_cache, tmp_path_factory):
    """A class-conditional run without exclusion, to exclude its most-used sources from."""
    out = tmp_path_factory.mktemp("free") / "run"
    return sample_run(out, "mnist", 8, class_value=3, sampler_options={"seed": 4})


def used_sources(run) -> np.ndarray:
    return pq.read_table(run / "provenance", columns=["src_image"]).column("src_image").to_numpy()


def test_every_spec_kind_resolves_against_the_split(mnist, tmp_path):
    data, db = mnist
    (tmp_path / "ids.txt").write_text("5\n# a comment\n7, 9\n")
    np.save(tmp_path / "ids.npy", np.array([11, 12]))
    Image.fromarray(data.images[123, ..., 0]).save(tmp_path / "contested.png")
    assert resolve_exclusion(["3,40-42"], data, db).images.tolist() == [3, 40, 41, 42]
    assert resolve_exclusion([f"file:{tmp_path / 'ids.txt'}"], data, db).images.tolist() == [5, 7, 9]
    assert resolve_exclusion([f"file:{tmp_path / 'ids.npy'}"], data, db).images.tolist() == [11, 12]
    found = resolve_exclusion([f"image:{tmp_path / 'contested.png'}"], data, db).images
    assert 123 in found and (data.images[found] == data.images[123]).all()
    sevens = resolve_exclusion(["class:7"], data, db).images
    assert np.array_equal(sevens, np.flatnonzero(data.labels == 7))


def test_near_excludes_exactly_the_images_within_the_distance(mnist):
    data, db = mnist
    radius = 1200.0
    found = resolve_exclusion([f"near:{radius}:77"], data, db).images
    flat = data.images.reshape(len(data.images), -1).astype(np.int64)
    exact = np.flatnonzero(((flat - flat[77]) ** 2).sum(axis=1) <= radius**2)
    assert 77 in found and len(found) > 1
    assert np.array_equal(found, exact)


def test_excluded_images_supply_no_pixel_and_verify_proves_it(free_run, tmp_path):
    used = used_sources(free_run)
    top = np.bincount(used).argsort()[::-1][:20]
    spec = ",".join(map(str, top))
    run = sample_run(tmp_path / "run", "mnist", 8, class_value=3, sampler_options={"seed": 4}, exclude=[spec])
    assert not np.isin(used_sources(run), top).any()
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["exclusion"]["specs"] == [spec]
    assert manifest["exclusion"]["sha256"] == array_sha256(np.sort(top).astype(np.int64))
    report = verify_run(run)
    assert report.ok and report.excluded_pixels == 0 and report.n_excluded_images == 20


def test_excluded_images_take_no_part_in_the_semantic_pool(mnist):
    data, db = mnist
    excluded = np.flatnonzero(data.labels == 3)[::2]
    sampler = Sampler(db, excluded=excluded, pool_size=30)
    allowed = sampler.allowed(3)
    assert not np.isin(allowed, excluded).any() and len(allowed) == (data.labels == 3).sum() - len(excluded)
    batch = RowBatch.start(db, 0, np.arange(4), allowed, 30, images=data.images[excluded[:4]])
    for _, pool in batch.rows():
        assert not np.isin(pool, excluded).any()


def test_mixture_never_draws_an_excluded_class(free_run, tmp_path):
    run = sample_run(tmp_path / "run", "mnist", 10, sampler_options={"batch_size": 10}, exclude=["class:0", "class:1"])
    classes = pq.read_table(run / "samples.parquet").column("class_label").to_numpy()
    assert not np.isin(classes, [0, 1]).any()
    assert verify_run(run).ok


def test_verify_catches_a_pixel_from_an_excluded_image(free_run, tmp_path):
    """A run whose record says an image was excluded, yet provenance shows a pixel from it, fails verify."""
    import shutil

    run = tmp_path / "tampered"
    shutil.copytree(free_run, run)
    culprit = np.array([int(used_sources(run)[0])], np.int64)
    np.save(run / "controls" / "excluded.npy", culprit)
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["controls"]["excluded"] = array_sha256(culprit)
    (run / "manifest.json").write_text(json.dumps(manifest))
    report = verify_run(run)
    assert report.excluded_pixels > 0 and not report.ok
    result = cli("verify", run)
    assert result.exit_code == 1 and '"excluded_pixels": 0' not in result.output


def test_an_altered_exclusion_record_is_refused(module_cache, tmp_path):
    run = sample_run(tmp_path / "run", "mnist", 8, class_value=3, exclude=["0-9"])
    np.save(run / "controls" / "excluded.npy", np.arange(5, dtype=np.int64))  # not the set its manifest hashed
    result = cli("verify", run)
    assert result.exit_code == 2 and "differs from the SHA-256" in result.output


@pytest.mark.parametrize(
    "spec, message",
    [
        ("70000", "outside the training split"),
        ("near:-1:3", "distance must be a number"),
        ("file:/no/such/file", "no such file"),
        ("class:dragon", "unknown class"),
        ("bogus:3", "unknown kind"),
    ],
)
def test_bad_exclusion_specs_give_one_line_errors(spec, message, module_cache, tmp_path):
    result = cli("sample", "--dataset", "mnist", "-n", "2", "--exclude", spec, "--out", tmp_path / "run")
    assert result.exit_code == 2 and message in result.output
    assert len(result.output.strip().splitlines()) == 1 and not (tmp_path / "run").exists()


def test_an_image_not_in_the_split_is_refused(module_cache, tmp_path):
    Image.fromarray(np.full((28, 28), 77, np.uint8)).save(tmp_path / "foreign.png")
    result = cli(
        "sample", "--dataset", "mnist", "--exclude", f"image:{tmp_path / 'foreign.png'}", "--out", tmp_path / "r"
    )
    assert result.exit_code == 2 and "no training image" in result.output


def test_resume_with_another_exclusion_is_refused(free_run, tmp_path):
    run = tmp_path / "run"
    sample_run(run, "mnist", 8, class_value=3, exclude=["0-9"])
    manifest = json.loads((run / "manifest.json").read_text())
    (run / "manifest.json").write_text(json.dumps({**manifest, "status": "running"}))  # as if interrupted
    result = cli(
        "sample", "--dataset", "mnist", "--class", "3", "-n", "8", "--exclude", "0-19", "--out", run, "--resume"
    )
    assert result.exit_code == 2 and "controls differs" in result.output
