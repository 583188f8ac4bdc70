"""Information maps: exact on a toy dataset computed by hand, the conditional probabilities equal a plain-numpy
restatement of the rule on real MNIST pixels, the maps add up to the log posterior ratio, and the command
writes what it promises."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from kernel_references import information_reference
from PIL import Image
from reference import reference_pool

from npgen.analysis.infomap import class_log_probs, information
from npgen.analysis.likelihood import kernel_table
from npgen.api import INFOMAP_FILES
from npgen.cli import main
from npgen.data.datasets import load_dataset
from npgen.rule.rng import sample_keys
from npgen.rule.sampler import Sampler
from npgen.rule.windows import causal_offsets, window_weights


def run_cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def sample(out, env, *args, command: str = "sample") -> None:
    done = subprocess.run(
        [sys.executable, "-m", "npgen", command, *map(str, args), "--out", str(out)],
        check=False,
        capture_output=True,
        text=True,
        env=env,
    )
    assert done.returncode == 0, done.stderr


# Toy: 5 images of 3x4 pixels, class "a" (2 images) and "b" (3 images). With --abs-tol 1e9, --pool-size 0 and
# --radius 0 every window of the class at the pixel's own position is admissible, whatever the context, so
# p(v | context, c) = (1 - floor) * (share of class-c images whose pixel is v) + floor / 256 (a kernel of width
# 0.05 puts all but e^-200 of its mass on its own level).
TOY = {
    "a": np.array([[[10, 10, 200, 0], [0, 50, 50, 0], [7, 7, 7, 7]], [[10, 90, 200, 0], [0, 50, 60, 0], [7, 7, 7, 8]]]),
    "b": np.array(
        [
            [[10, 90, 0, 0], [0, 50, 50, 0], [7, 7, 7, 7]],
            [[30, 90, 0, 0], [0, 60, 50, 0], [7, 7, 7, 7]],
            [[30, 90, 0, 255], [0, 60, 50, 0], [7, 7, 7, 9]],
        ]
    ),
}
TAU, FLOOR = 0.05, 0.2


@pytest.fixture(scope="module")
def toy_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("toy")
    for name, images in TOY.items():
        (root / "toy" / name).mkdir(parents=True)
        for i, image in enumerate(images):
            Image.fromarray(image.astype(np.uint8)).save(root / "toy" / name / f"{i}.png")
    env = {**os.environ, "NPGEN_CACHE": str(root / "cache")}
    rule = ["--half-window", 1, "--pool-size", 0, "--radius", 0, "--abs-tol", 1e9, "--max-source-share", 1]
    sample(root / "mixture", env, "--dataset", root / "toy", "-n", 12, *rule)
    sample(root / "pooled", env, "--dataset", root / "toy", "-n", 2, "--class-mixture", 0, *rule)
    sample(root / "excluded", env, "--dataset", root / "toy", "-n", 12, "--exclude", 0, *rule)  # a/0.png
    sample(root / "steered", env, "--dataset", root / "toy", "-n", 2, "--class-map", "all=b", *rule)
    given = ["--image", root / "toy" / "a" / "0.png", "--mask", "top", "--class", "a"]
    sample(root / "completed", env, "--dataset", root / "toy", *given, *rule, command="complete")
    return root


def expected_maps(run, classes: np.ndarray, images_of: dict) -> tuple[np.ndarray, np.ndarray]:
    """The information and contrast maps of the toy run's samples, by hand from the images each class may use."""
    samples = np.load(run / "samples.npy")[..., 0].astype(int)
    names = sorted(images_of)
    prior = np.array([len(images_of[n]) for n in names]) / sum(len(v) for v in images_of.values())
    info, contrast = np.zeros(samples.shape), np.zeros(samples.shape)
    for b, image in enumerate(samples):
        posterior = prior.copy()
        for p in range(12):
            y, x = divmod(p, 4)
            probs = np.array([(1 - FLOOR) * np.mean(images_of[n][:, y, x] == image[y, x]) + FLOOR / 256 for n in names])
            marginal = posterior @ probs
            info[b, y, x] = np.log2(probs[classes[b]] / marginal)
            contrast[b, y, x] = np.log2(probs[classes[b]] / (prior @ probs))
            posterior = posterior * probs / marginal
    return info, contrast


def test_toy_information_is_exact_by_hand(toy_runs, tmp_path):
    done = run_cli("infomap", toy_runs / "mixture", "--tau", TAU, "--floor", FLOOR, "--out", tmp_path / "maps")
    assert done.exit_code == 0, done.output
    info = np.load(tmp_path / "maps" / "info.npy")
    contrast = np.load(tmp_path / "maps" / "contrast.npy")
    sources = pq.read_table(toy_runs / "mixture" / "provenance").to_pydict()
    files = pq.read_table(toy_runs / "mixture" / "sources.parquet").to_pydict()
    label_of = dict(zip(files["src_image"], files["label"]))
    classes = np.load(tmp_path / "maps" / "classes.npy")
    for b in range(12):
        own = {label_of[i] for s, i in zip(sources["sample"], sources["src_image"]) if s == b}
        assert own == {int(classes[b])}  # the class the maps use is the one every pixel was copied from
    expected_info, expected_contrast = expected_maps(toy_runs / "mixture", classes, TOY)
    assert np.allclose(info, expected_info, atol=1e-5) and np.allclose(contrast, expected_contrast, atol=1e-5)
    assert np.abs(expected_info).max() > 0.5  # the toy has pixels that decide much of the class
    per_sample = pq.read_table(tmp_path / "maps" / "per_sample.parquet")
    assert np.allclose(per_sample.column("total_bits").to_numpy(), expected_info.sum(axis=(1, 2)), atol=1e-4)


def test_an_excluded_image_is_left_out_of_every_class_rule_and_of_the_class_shares(toy_runs, tmp_path):
    files = pq.read_table(toy_runs / "excluded" / "sources.parquet").to_pydict()
    assert files["file"][0] == "a/0.png"
    done = run_cli("infomap", toy_runs / "excluded", "--tau", TAU, "--floor", FLOOR, "--out", tmp_path / "maps")
    assert done.exit_code == 0, done.output
    classes = np.load(tmp_path / "maps" / "classes.npy")
    info, contrast = expected_maps(toy_runs / "excluded", classes, {"a": TOY["a"][1:], "b": TOY["b"]})
    assert np.allclose(np.load(tmp_path / "maps" / "info.npy"), info, atol=1e-5)
    assert np.allclose(np.load(tmp_path / "maps" / "contrast.npy"), contrast, atol=1e-5)


def test_a_run_without_classes_and_bad_smoothing_are_refused_in_one_line(toy_runs, tmp_path):
    for args, message in (
        ((toy_runs / "pooled",), "its samples have no class"),
        ((toy_runs / "steered",), "steers regions to classes (--class-map)"),
        ((toy_runs / "completed",), "is a completion"),
        ((toy_runs / "mixture", "--tau", 0), "invalid tau=0.0 (--tau): must be in 0.01..128"),
        ((toy_runs / "mixture", "--floor", 1), "invalid floor=1.0 (--floor)"),
        ((tmp_path / "absent",), "is not an npgen run"),
    ):
        done = run_cli("infomap", *args, "--out", tmp_path / "maps")
        assert done.exit_code == 2, done.output
        assert done.output.startswith("error: ") and message in done.output and done.output.count("\n") == 1
        assert not (tmp_path / "maps").exists()


def reference_log_prob(db, sampler: Sampler, image: np.ndarray, index: int, class_label: int, y: int, x: int) -> float:
    """ln p(x_p | context, c) of pixel (y, x) of a real image, restated in plain numpy from the rule."""
    h, height, width = db.half_window, db.height, db.width
    labels = np.asarray(db.labels)
    allowed = np.flatnonzero(labels == class_label)
    key = sample_keys(sampler.seed, np.array([index]))[0]
    block = db.retrieval_block
    rows = (y // block) * block  # the pool is refreshed after every completed block row
    if 0 < sampler.pool_size < len(allowed):
        pool = reference_pool(image[:rows], np.asarray(db.representations), allowed, key, db.encoder, sampler.pool_size)
    else:
        pool = allowed
    padded_train = np.asarray(db.sources).reshape(db.n_images, height + h, width + 2 * h, db.channels)
    canvas = np.full((height + h, width + 2 * h, db.channels), db.pad_value, np.uint8)
    canvas[h:, h : h + width] = image
    weights = window_weights(h, sampler.sigma)
    order = np.argsort(-weights, kind="stable")
    offsets, weights = causal_offsets(h)[order], weights[order]
    context = canvas[h + y + offsets[:, 0], h + x + offsets[:, 1]].astype(np.float32)
    r = sampler.radius
    candidates = [
        (i, sy, sx)
        for i in pool
        for sy in range(max(0, y - r), min(height, y + r + 1))
        for sx in range(max(0, x - r), min(width, x + r + 1))
    ]
    windows = np.stack([padded_train[i, h + sy + offsets[:, 0], h + sx + offsets[:, 1]] for i, sy, sx in candidates])
    diff = context[None] - windows.astype(np.float32)
    ssd = (diff.astype(np.float64) ** 2).sum(axis=2)
    total = np.zeros(len(candidates))
    for l in range(len(weights)):
        total += np.float64(weights[l]) * ssd[:, l]
    threshold = (1.0 + sampler.eps) * total.min() + sampler.abs_tol
    k = min(sampler.k_min, len(total))
    if k > 1 and (total <= threshold).sum() < k:
        threshold = np.sort(total)[k - 1]
    admissible = np.flatnonzero(total <= threshold)
    kernel = kernel_table((0.5,))[0]
    centres = np.array([padded_train[i, h + sy, h + sx, 0] for i, sy, sx in candidates])[admissible]
    p = (1 - 0.1) * kernel[centres, image[y, x, 0]].mean() + 0.1 / 256
    return float(np.log(p))


def test_class_probabilities_match_plain_numpy_on_real_mnist_pixels(mnist_db, data_root):
    test = load_dataset("mnist", split="test", data_root=data_root)
    images = np.ascontiguousarray(test.images[:3])
    sampler = Sampler(mnist_db, pool_size=40, k_min=2, eps=0.1, abs_tol=1.0, seed=5, batch_size=2)
    classes = np.array([test.labels[0], 8])
    got = class_log_probs(sampler, images, np.arange(10, 13), classes, tau=0.5, floor=0.1)
    assert got.shape == (3, 2, 28, 28) and np.isfinite(got).all()
    rng = np.random.default_rng(0)
    checked = 0
    for b in range(3):
        stroke = np.argwhere(images[b, ..., 0] > 0)
        pixels = [*stroke[rng.choice(len(stroke), 6, replace=False)], *rng.integers(0, 28, (2, 2)), (0, 0), (27, 27)]
        for k, c in enumerate(classes):
            for y, x in pixels:
                expected = reference_log_prob(mnist_db, sampler, images[b], 10 + b, int(c), int(y), int(x))
                assert got[b, k, y, x] == pytest.approx(expected, rel=1e-9, abs=1e-12), (b, c, y, x)
                checked += 1
    assert checked == 3 * 2 * 10


def test_maps_add_up_to_the_log_posterior_ratio_and_match_the_pixel_by_pixel_reference(mnist_db, data_root):
    test = load_dataset("mnist", split="test", data_root=data_root)
    images = np.ascontiguousarray(test.images[:2])
    sampler = Sampler(mnist_db, pool_size=30, k_min=2, seed=0)
    classes = np.arange(10)
    log_probs = class_log_probs(sampler, images, np.arange(2), classes, tau=0.5, floor=0.1)
    own = test.labels[:2].astype(np.int64)
    prior = np.bincount(np.asarray(mnist_db.labels), minlength=10) / mnist_db.n_images
    info, contrast, log_posterior = information(log_probs, own, prior)
    assert np.allclose(info, information_reference(log_probs, own, prior), atol=1e-9)
    totals = info.sum(axis=(1, 2))
    assert np.allclose(totals, (log_posterior[[0, 1], own] - np.log(prior[own])) / np.log(2), atol=1e-9)
    assert np.allclose(np.exp(log_posterior).sum(axis=1), 1.0)
    assert np.allclose(
        log_posterior,
        log_probs.sum(axis=(2, 3))
        + np.log(prior)
        - np.logaddexp.reduce(log_probs.sum(axis=(2, 3)) + np.log(prior), axis=1, keepdims=True),
    )  # Bayes' rule on the whole image
    assert contrast.shape == info.shape and not np.allclose(contrast, info)


def test_infomap_writes_its_files_with_the_right_shapes(tmp_path, cache):
    run = tmp_path / "sevens"
    sample(run, {**os.environ}, "--dataset", "mnist", "--class", 7, "-n", 3, "--levels", 1)  # maps score one level
    done = run_cli("infomap", run)
    assert done.exit_code == 0, done.output
    folder = run / "infomap"
    assert sorted(p.name for p in folder.iterdir()) == sorted(INFOMAP_FILES)
    info, contrast = np.load(folder / "info.npy"), np.load(folder / "contrast.npy")
    assert info.shape == contrast.shape == (3, 28, 28) and info.dtype == np.float32
    assert np.load(folder / "classes.npy").tolist() == [7, 7, 7]
    means = np.load(folder / "class_means.npy")
    assert means.shape == (10, 28, 28) and np.isnan(means[:7]).all() and np.allclose(means[7], info.mean(axis=0))
    record = json.loads((folder / "infomap.json").read_text())
    assert record["tau"] == 0.5 and record["floor"] == 0.1 and record["n_samples"] == 3
    share = record["foreground_share"]
    assert share["information_share"] > share["area_share"]  # the information lies on the strokes
    per_sample = pq.read_table(folder / "per_sample.parquet")
    assert np.allclose(per_sample.column("total_bits").to_numpy(), info.sum(axis=(1, 2)), atol=1e-3)
    assert Image.open(folder / "maps.png").width > 0 and Image.open(folder / "class_means.png").width > 0
    assert "foreground pixels hold" in done.output


def test_maps_are_identical_whatever_the_chunking_and_on_a_rerun(toy_runs, tmp_path, monkeypatch):
    from npgen.analysis import infomap

    first = run_cli("infomap", toy_runs / "mixture", "--out", tmp_path / "one")
    monkeypatch.setattr(infomap, "INFOMAP_CHUNK", 5)  # 12 samples in chunks of 5, 5 and 2
    second = run_cli("infomap", toy_runs / "mixture", "--out", tmp_path / "two")
    assert first.exit_code == 0 and second.exit_code == 0, first.output + second.output
    for name in ("info.npy", "contrast.npy", "class_means.npy"):
        assert np.load(tmp_path / "one" / name).tobytes() == np.load(tmp_path / "two" / name).tobytes(), name
    posterior = [pq.read_table(tmp_path / d / "per_sample.parquet").column("posterior") for d in ("one", "two")]
    assert posterior[0].equals(posterior[1])
