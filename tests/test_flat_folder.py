"""Unlabelled flat image folders: their classes are k-means clusters of the images, sampled and verified like classes."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from PIL import Image

from npgen.cli import main
from npgen.data.clusters import CLUSTER_METHOD, MIN_CLUSTER_SIZE, choose_clusters, cluster_labels
from npgen.data.datasets import load_dataset, load_image_folder
from npgen.data.folders import content_sha256, folder_cache_path, folder_files, listing_sha256
from npgen.errors import NpgenError

SHAPES = Path(__file__).resolve().parent.parent / "benchmarks" / "studies" / "shapes.py"


def shapes_module():
    """benchmarks/studies/shapes.py as a module (benchmarks/ is not a package): `draw_shapes`, `contingency`."""
    spec = importlib.util.spec_from_file_location("shapes_study", SHAPES)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def write_flat_folder(root, images: np.ndarray) -> None:
    root.mkdir(parents=True)
    for i, image in enumerate(images):
        Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(root / f"img-{i:04d}.png")


@pytest.fixture(scope="module")
def flat_digits(tmp_path_factory, data_root):
    """200 real MNIST digits (all classes, labels dropped) as PNGs in one flat folder."""
    mnist = load_dataset("mnist", data_root=data_root)
    root = tmp_path_factory.mktemp("flat") / "digits"
    write_flat_folder(root, mnist.images[:200])
    return root, mnist.images[:200], mnist.labels[:200]


def test_a_flat_folder_loads_as_clusters_of_its_images(flat_digits, cache):
    root, images, labels = flat_digits
    data = load_image_folder(root)
    assert data.unlabelled and data.n_images == 200 and data.channels == 1
    k = len(data.class_names)
    assert 2 <= k <= 10 and data.class_names == tuple(f"cluster-{c}" for c in range(k))
    assert np.array_equal(data.images, images)  # in file order
    assert data.files[:2] == ("img-0000.png", "img-0001.png")
    assert np.array_equal(data.labels, cluster_labels(images))
    counts = np.bincount(data.labels, minlength=k)
    assert (counts >= MIN_CLUSTER_SIZE).all() and (np.diff(counts) <= 0).all()  # each samplable; by decreasing size
    # semantic, with ten clusters asked for: a cluster holds mostly one digit, far more than chance
    ten = cluster_labels(images, k=10)
    purity = sum(np.bincount(labels[ten == c]).max() for c in range(10)) / len(labels)
    chance = np.bincount(labels).max() / len(labels)  # every cluster a random draw: the commonest digit's share
    assert purity > 2 * chance
    # deterministic: a fresh decode (no cache) and a copy of the images give the same clusters
    folder_cache_path(root).unlink()
    assert np.array_equal(load_image_folder(root).labels, data.labels)
    assert np.array_equal(cluster_labels(images.copy()), data.labels)


def test_a_colour_flat_folder_from_cifar10(tmp_path, all_data_root, cache):
    cifar = load_dataset("cifar10", data_root=all_data_root)
    write_flat_folder(tmp_path / "pictures", cifar.images[:60])
    data = load_dataset(str(tmp_path / "pictures"))
    assert data.unlabelled and data.channels == 3
    assert 1 <= len(data.class_names) <= 6 and np.bincount(data.labels).min() >= MIN_CLUSTER_SIZE  # 60 images
    assert np.array_equal(data.labels, cluster_labels(cifar.images[:60]))


def test_sample_and_verify_a_flat_folder(flat_digits, tmp_path, cache):
    root, _, _ = flat_digits
    data = load_image_folder(root)
    out = tmp_path / "mixture"
    done = run_cli("sample", "--dataset", root, "-n", 8, "--seed", 4, "--out", out)
    assert done.exit_code == 0, done.output
    summary = pq.read_table(out / "samples.parquet")
    drawn = summary.column("class_label").to_numpy()
    assert (drawn >= 0).all() and len(set(drawn)) > 1  # each sample records the cluster it drew
    provenance = pq.read_table(out / "provenance")
    sources = provenance.column("src_image").to_numpy()
    per_pixel = drawn[provenance.column("sample").to_numpy()]
    assert (data.labels[sources] == per_pixel).all()  # every pixel from its sample's cluster
    files = pq.read_table(out / "sources.parquet")
    assert files.column("class").to_pylist()[:3] == [data.class_names[c] for c in data.labels[:3]]
    verified = run_cli("verify", out)
    assert verified.exit_code == 0, verified.output
    report = json.loads(verified.output)
    assert report["mismatches"] == 0 and report["wrong_class"] == 0
    conditional = tmp_path / "cluster1"
    done = run_cli("sample", "--dataset", root, "--class", 1, "-n", 3, "--out", conditional)
    assert done.exit_code == 0, done.output
    sources = pq.read_table(conditional / "provenance").column("src_image").to_numpy()
    assert (data.labels[sources] == 1).all()
    assert run_cli("verify", conditional).exit_code == 0
    named = run_cli("sample", "--dataset", root, "--class", "cluster-1", "-n", 2, "--out", tmp_path / "named")
    assert named.exit_code == 0, named.output
    bad = run_cli("sample", "--dataset", root, "--class", 99, "-n", 2, "--out", tmp_path / "bad")
    assert bad.exit_code == 2 and "unknown class" in bad.output and not (tmp_path / "bad").exists()


def test_verify_refuses_clusters_that_differ_from_the_run(flat_digits, tmp_path, cache):
    """A folder cache whose cluster labels were altered (checksum kept valid) loads other classes than the run
    was sampled with: verify says so instead of checking against them."""
    root, _, _ = flat_digits
    out = tmp_path / "run"
    done = run_cli("sample", "--dataset", root, "-n", 2, "--out", out)
    assert done.exit_code == 0, done.output
    path = folder_cache_path(root)
    with np.load(path) as npz:
        arrays = dict(npz)
    labels = arrays["labels"].copy()
    class_names = tuple(str(c) for c in arrays["class_names"])
    labels[:5] = (labels[:5] + 1) % len(class_names)
    files = tuple(str(f) for f in arrays["files"])
    arrays.update(
        labels=labels,
        listing=np.array(listing_sha256(root.resolve(), folder_files(root.resolve())[1]) + f"+{CLUSTER_METHOD}"),
        checksum=np.array(content_sha256(arrays["images"], labels, class_names, files)),
    )
    with path.open("wb") as f:
        np.savez(f, **arrays)
    assert not np.array_equal(load_image_folder(root).labels, cluster_labels(load_image_folder(root).images))
    verified = run_cli("verify", out)
    assert verified.exit_code == 2 and "differs" in verified.output
    path.unlink()  # decoded again: the clusters are derived afresh and the run verifies
    assert run_cli("verify", out).exit_code == 0


def test_an_empty_flat_folder_is_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no images here")
    with pytest.raises(NpgenError, match="no images and no class subfolders"):
        load_image_folder(tmp_path / "empty")


def test_a_flat_folder_of_circles_and_squares_is_split_into_the_two_shapes(tmp_path, cache):
    """The issue's case: 28 circles and 14 squares of varied size and position, drawn with pillow. The number of
    clusters is chosen by silhouette, in the representation that separates best (the content's box)."""
    root = tmp_path / "shapes"
    study = shapes_module()
    shapes = study.draw_shapes(root)
    data = load_image_folder(root)
    assert data.unlabelled and data.n_images == 42 and data.class_names == ("cluster-0", "cluster-1")
    assert choose_clusters(data.images)[:2] == ("content", 2)
    assert study.contingency(shapes, data.labels) == {"circle": [28, 0], "square": [0, 14]}
    assert np.array_equal(cluster_labels(data.images, k=2, representation="content"), data.labels)


def test_the_number_of_clusters_can_be_set_and_is_recorded_and_verified(tmp_path, cache):
    root = tmp_path / "shapes"
    shapes_module().draw_shapes(root)
    built = run_cli("build", "--dataset", root, "--clusters", 3)
    assert built.exit_code == 0, built.output
    (db,) = [p for p in (cache / "db").iterdir() if not p.name.startswith(".")]
    assert "-k3-" in db.name and json.loads((db / "manifest.json").read_text())["dataset"]["clusters"] == 3
    out = tmp_path / "run"
    done = run_cli("sample", "--dataset", root, "--clusters", 3, "-n", 4, "--out", out)
    assert done.exit_code == 0, done.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["dataset"]["clusters"] == 3 and manifest["dataset"]["class_names"] == [
        f"cluster-{c}" for c in range(3)
    ]
    assert manifest["database"]["path"] == str(db)  # the database built above, not a measured-clusters one
    assert np.array_equal(
        load_image_folder(root, clusters=3).labels, cluster_labels(load_image_folder(root).images, k=3)
    )
    verified = run_cli("verify", out)
    assert verified.exit_code == 0 and json.loads(verified.output)["wrong_class"] == 0, verified.output
    # the measured clusters are other classes: a run claiming them is refused, not checked against them
    (out / "manifest.json").write_text(json.dumps({**manifest, "dataset": {**manifest["dataset"], "clusters": None}}))
    refused = run_cli("verify", out)
    assert refused.exit_code == 2 and "differs" in refused.output, refused.output


@pytest.mark.parametrize(
    "dataset, clusters, message",
    [
        ("mnist", 3, "--clusters applies to a flat folder of unlabelled images, not to mnist"),
        ("shapes", 43, "--clusters 43: a flat folder of 42 images takes 1 to 42 clusters"),
        ("shapes", 0, "Invalid value for '--clusters'"),
    ],
)
def test_bad_cluster_counts_are_one_line_errors(dataset, clusters, message, tmp_path, cache):
    root = tmp_path / "shapes"
    shapes_module().draw_shapes(root)
    name = root if dataset == "shapes" else dataset
    done = run_cli("sample", "--dataset", name, "--clusters", clusters, "-n", 2, "--out", tmp_path / "run")
    assert done.exit_code == 2 and message in done.output, done.output
    assert not (tmp_path / "run").exists()
