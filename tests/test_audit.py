"""`npgen audit` on real MNIST runs: usage counts equal a direct count of the Parquet provenance, one image's
rows are exactly those that name it, and mismatched runs or bad images are refused in one line."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from kernel_references import usage_counts_reference
from PIL import Image

from npgen.analysis.audit import DEFAULT_MAX_CANDIDATES, usage_counts
from npgen.cli import main
from npgen.analysis.tracer import Tracer
from npgen.data.datasets import load_dataset


def run_cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def sample(out, env, *args) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "npgen", "sample", *map(str, args), "--out", str(out)],
        check=False,
        capture_output=True,
        text=True,
        env=env,
    )
    assert done.returncode == 0, done.stderr


@pytest.fixture(scope="module")
def runs(tmp_path_factory, data_root):
    """Two real MNIST runs (unconditional, and class 3 with another seed) and a run of another dataset."""
    root = tmp_path_factory.mktemp("audit")
    env = {**os.environ, "NPGEN_CACHE": str(root / "cache"), "NPGEN_DATA": str(data_root)}
    sample(root / "a", env, "--dataset", "mnist", "-n", 30, "--batch-size", 15)
    sample(root / "b", env, "--dataset", "mnist", "-n", 20, "--class", 3, "--seed", 1)
    mnist = load_dataset("mnist", data_root=data_root)
    folder = root / "digits"
    for digit in (0, 1):
        (folder / str(digit)).mkdir(parents=True)
        for i in np.flatnonzero(mnist.labels == digit)[:10]:
            Image.fromarray(mnist.images[i, ..., 0]).save(folder / str(digit) / f"{i}.png")
    done = subprocess.run(  # a completion: its given top half has no provenance rows
        [sys.executable, "-m", "npgen", "complete", "--dataset", "mnist", "--test-index", "0", "--mask", "top"]
        + ["-n", "2", "--class", "7", "--out", str(root / "completed")],
        check=False,
        capture_output=True,
        text=True,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    sample(root / "other", env, "--dataset", folder, "-n", 2, "--pool-size", 0, "--max-source-share", 1)
    return root


def provenance(run, columns=("sample", "y", "x", "src_image", "n_candidates")) -> dict[str, np.ndarray]:
    table = pq.read_table(run / "provenance", columns=list(columns))
    return {name: table.column(name).to_numpy().astype(np.int64) for name in columns}


def direct_counts(runs: list) -> dict[str, np.ndarray]:
    """What the usage table must say, counted straight from the Parquet files with numpy."""
    n_images = 60000
    total = {name: np.zeros(n_images, np.int64) for name in ("pixels", "samples", "informative_pixels", "runs")}
    total["informative_samples"] = np.zeros(n_images, np.int64)
    for run in runs:
        column = provenance(run)
        informative = column["n_candidates"] <= DEFAULT_MAX_CANDIDATES
        pixels = np.bincount(column["src_image"], minlength=n_images)
        total["pixels"] += pixels
        total["informative_pixels"] += np.bincount(column["src_image"][informative], minlength=n_images)
        total["runs"] += pixels > 0
        for name, mask in (("samples", slice(None)), ("informative_samples", informative)):
            pairs = {(s, i) for s, i in zip(column["sample"][mask].tolist(), column["src_image"][mask].tolist())}
            images = np.array([i for _, i in pairs], np.int64)
            total[name] += np.bincount(images, minlength=n_images)
    return total


def test_usage_of_one_run_equals_a_direct_count_of_its_provenance(runs, tmp_path):
    done = run_cli("audit", runs / "a", "--top", 5)
    assert done.exit_code == 0, done.output
    table = pq.read_table(runs / "a" / "audit" / "usage.parquet")
    assert table.num_rows == 60000 and table.column("src_image").to_pylist() == list(range(60000))
    expected = direct_counts([runs / "a"])
    for name, values in expected.items():
        assert np.array_equal(table.column(name).to_numpy(), values), name
    share = table.column("share").to_numpy()
    assert share.sum() == pytest.approx(1.0) and np.allclose(share, expected["pixels"] / (30 * 784))
    assert "1 run, 30 samples, 23,520 pixels" in done.output
    used = int((expected["pixels"] > 0).sum())
    assert f"; {used:,} of all 60,000 training images used ({used / 60000:.1%})," in done.output
    top = int(np.lexsort((-expected["pixels"], -expected["informative_pixels"]))[0])
    assert done.output.splitlines()[2].split()[0] == str(top)  # the printout ranks by informative pixels


def test_usage_of_two_runs_is_the_sum_and_counts_each_runs_samples(runs, tmp_path):
    out = tmp_path / "both"
    done = run_cli("audit", runs / "a", runs / "b", "--out", out)
    assert done.exit_code == 0, done.output
    table = pq.read_table(out / "usage.parquet")
    expected = direct_counts([runs / "a", runs / "b"])
    for name, values in expected.items():
        assert np.array_equal(table.column(name).to_numpy(), values), name
    assert expected["runs"].max() <= 2 and "2 runs, 50 samples, 39,200 pixels" in done.output
    labels = table.column("class").to_numpy()
    run_b_images = np.unique(provenance(runs / "b")["src_image"])
    assert (labels[run_b_images] == 3).all()  # run b is class-conditional: every source is a 3


def test_a_class_conditional_audit_divides_by_the_class_as_the_report_does(runs, tmp_path, data_root):
    done = run_cli("audit", runs / "b", "--out", tmp_path / "b")
    assert done.exit_code == 0, done.output
    labels = load_dataset("mnist", data_root=data_root).labels
    given = pq.read_table(tmp_path / "b" / "usage.parquet").column("pixels").to_numpy()
    used, population = int(((given > 0) & (labels == 3)).sum()), int((labels == 3).sum())
    share = format(used / population, ".1%")
    expected = (
        f"{used:,} of the {population:,} training images of class 3 (the runs are conditioned on it) used ({share})"
    )
    assert expected in done.output
    composition = Tracer(runs / "b", data_root=data_root).composition().run  # npgen report's share used
    assert composition["n_population"] == population and composition["share_of_training_used"] == used / population


def test_a_completion_counts_only_its_generated_pixels(runs, tmp_path):
    done = run_cli("audit", runs / "completed", "--out", tmp_path / "c")
    assert done.exit_code == 0, done.output
    table = pq.read_table(tmp_path / "c" / "usage.parquet")
    expected = direct_counts([runs / "completed"])
    for name, values in expected.items():
        assert np.array_equal(table.column(name).to_numpy(), values), name
    generated = int(expected["pixels"].sum())
    assert 0 < generated < 2 * 784 and f"1 run, 2 samples, {generated:,} pixels" in done.output


def test_the_numba_count_matches_numpy_on_real_provenance_in_any_row_order(runs):
    column = provenance(runs / "a")
    args = (column["sample"], column["src_image"], column["n_candidates"], DEFAULT_MAX_CANDIDATES, 60000)
    reference = usage_counts_reference(*args)
    assert np.array_equal(usage_counts(*args), reference)
    shuffled = np.random.default_rng(0).permutation(len(column["sample"]))
    assert np.array_equal(
        usage_counts(
            column["sample"][shuffled],
            column["src_image"][shuffled],
            column["n_candidates"][shuffled],
            DEFAULT_MAX_CANDIDATES,
            60000,
        ),
        reference,
    )
    assert reference[0].sum() == 30 * 784 and (reference[1] <= 30).all() and (reference[2] <= reference[0]).all()


def test_image_lists_exactly_the_pixels_that_name_it_in_every_run(runs, tmp_path):
    a, b = provenance(runs / "a"), provenance(runs / "b")
    image = int(np.bincount(b["src_image"]).argmax())  # a "3" used by run b (and perhaps by run a)
    out = tmp_path / "image"
    done = run_cli("audit", runs / "a", runs / "b", "--image", image, "--out", out)
    assert done.exit_code == 0, done.output
    rows = pq.read_table(out / f"image-{image:05d}.parquet")
    got = set(zip(rows.column("run").to_pylist(), *(rows.column(n).to_pylist() for n in ("sample", "y", "x"))))
    expected = {
        (r, s, y, x)
        for r, column in enumerate((a, b))
        for s, y, x, i in zip(column["sample"], column["y"], column["x"], column["src_image"])
        if i == image
    }
    assert got == expected and rows.num_rows == len(expected) > 0
    informative = rows.column("informative").to_numpy()
    assert np.array_equal(informative, rows.column("n_candidates").to_numpy() <= DEFAULT_MAX_CANDIDATES)
    assert f"training image {image} gave {len(expected):,} pixels ({int(informative.sum())} informative)" in done.output
    picture = Image.open(out / f"image-{image:05d}.png")
    assert picture.width > 28 * 6 * 2  # the training image and at least one sample beside it


def test_image_given_as_a_file_is_found_by_its_pixels(runs, tmp_path, data_root):
    mnist = load_dataset("mnist", data_root=data_root)
    image = int(provenance(runs / "a")["src_image"][400])
    path = tmp_path / "mine.png"
    Image.fromarray(mnist.images[image, ..., 0]).save(path)
    done = run_cli("audit", runs / "a", "--image", path, "--out", tmp_path / "file")
    assert done.exit_code == 0, done.output
    expected = mnist.images.reshape(60000, -1) == mnist.images[image].reshape(1, -1)
    first = int(np.flatnonzero(expected.all(axis=1))[0])  # MNIST holds a few exact duplicates
    assert (tmp_path / "file" / f"image-{first:05d}.parquet").is_file()
    Image.fromarray(255 - mnist.images[image, ..., 0]).save(tmp_path / "inverted.png")
    refused = run_cli("audit", runs / "a", "--image", tmp_path / "inverted.png", "--out", tmp_path / "file")
    assert refused.exit_code == 2 and "matches no training image" in refused.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("a", "other"), "were sampled from different datasets"),
        (("a", "--image", "60000"), "is not a training image: the split has images 0..59999"),
        (("a", "--image", "-3"), "is not a training image"),
        (("a", "--image", "seven"), "takes a training image index"),
        (("a", "b"), "needs --out DIR"),
        (("a", "missing"), "is not an npgen run"),
        (("a", "a"), "is given twice"),
        (("a", "--max-candidates", "0"), "--max-candidates must be >= 1"),
    ],
)
def test_bad_audits_are_refused_in_one_line_leaving_files_alone(runs, tmp_path, args, message):
    first = run_cli("audit", runs / "a", "--out", tmp_path / "kept")
    assert first.exit_code == 0
    before = (tmp_path / "kept" / "usage.parquet").read_bytes()
    resolved = [str(runs / a) if a in ("a", "b", "other", "missing") else a for a in args]
    out = ["--out", str(tmp_path / "kept")] if "b" not in args else []
    done = run_cli("audit", *resolved, *out)
    assert done.exit_code == 2, done.output
    assert done.output.startswith("error: ") and message in done.output and done.output.count("\n") == 1
    assert (tmp_path / "kept" / "usage.parquet").read_bytes() == before
    assert sorted(p.name for p in (tmp_path / "kept").iterdir()) == ["usage.parquet"]
