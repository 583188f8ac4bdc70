"""Coarse-to-fine sampling (--levels) on real MNIST: level images are exact box means, every level is stored and
verified, output does not depend on batch size, and what a pyramid cannot take is refused in one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from reference import reference_level

from npgen import api
from npgen.analysis.tracer import Tracer
from npgen.cli import main
from npgen.data.datasets import load_dataset, preset
from npgen.data.levels import level_images
from npgen.errors import NpgenError
from npgen.rule.sampler import Sampler
from npgen.runs.run import Run

LEVELS = {"levels": 2, "coarse_weight": 1.0, "batch_size": 6}


def test_level_images_are_rounded_box_means_of_the_originals(mnist_subset, data_root):
    images = mnist_subset.images[:500]
    for level in (1, 2):
        made = level_images(images, level)
        assert made.shape == (500, 28 >> level, 28 >> level, 1)
        np.testing.assert_array_equal(made, reference_level(images, level))
    colour = load_dataset("cifar10", data_root=data_root).images[:300]
    for level in (1, 3):
        np.testing.assert_array_equal(level_images(colour, level), reference_level(colour, level))
    with pytest.raises(NpgenError, match="multiples of 8"):
        level_images(images, 3)


def test_pyramid_output_does_not_depend_on_batch_size(mnist_db):
    made = [Sampler(mnist_db, **{**LEVELS, "batch_size": size}).sample(5, 4) for size in (2, 5)]
    for got, other in [(made[0], made[1]), (made[0].coarser[0], made[1].coarser[0])]:
        for name in ("images", "src_image", "src_y", "src_x", "n_candidates", "distance"):
            np.testing.assert_array_equal(getattr(got, name), getattr(other, name), err_msg=name)


def test_pyramid_output_does_not_depend_on_the_number_of_threads(mnist_db):
    import numba

    made = []
    for threads in (1, 2):
        numba.set_num_threads(threads)
        try:
            made.append(Sampler(mnist_db, **LEVELS).sample(4, 7))
        finally:
            numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    for got, other in [(made[0], made[1]), (made[0].coarser[0], made[1].coarser[0])]:
        np.testing.assert_array_equal(got.images, other.images)
        np.testing.assert_array_equal(got.src_image, other.src_image)


def test_the_coarse_weight_makes_the_finer_level_follow_the_coarser_one(mnist_db):
    """With the coarse term, level 0 box-averaged is close to level 1; without it, only the pool is shared."""
    gaps = {}
    for weight in (0.0, 4.0):
        out = Sampler(mnist_db, levels=2, coarse_weight=weight, batch_size=8).sample(8, 2)
        fine = level_images(out.images, 1).astype(np.int64)
        gaps[weight] = np.abs(fine - out.coarser[0].images).mean()
    assert gaps[4.0] < 0.6 * gaps[0.0], gaps


@pytest.fixture(scope="module")
def pyramid_run(module_cache, data_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("pyramid") / "run"
    return api.sample_run(out, "mnist", 12, "5", data_root, sampler_options=LEVELS, command="test")


def test_a_pyramid_run_keeps_and_verifies_every_level(pyramid_run, data_root):
    run = Run(pyramid_run)
    assert run.levels == 2 and run.manifest["params"]["coarse_weight"] == 1.0
    coarse = np.asarray(run.level_samples(1))
    assert coarse.shape == (12, 14, 14, 1)
    assert run.provenance(level=1).num_rows == 12 * 14 * 14
    assert (pyramid_run / "levels" / "1" / "grid.png").is_file()
    result = CliRunner().invoke(main, ["verify", str(pyramid_run), "--data-root", str(data_root)])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["levels"] == 2 and report["n_pixels"] == 12 * (28 * 28 + 14 * 14)
    assert report["mismatches"] == 0 and report["over_budget"] == 0


def test_verify_catches_a_changed_pixel_at_a_coarser_level(pyramid_run, data_root, tmp_path):
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(pyramid_run, copy)
    samples = np.load(copy / "levels" / "1" / "samples.npy")
    samples[3, 7, 7, 0] ^= 0xFF
    np.save(copy / "levels" / "1" / "samples.npy", samples)
    result = CliRunner().invoke(main, ["verify", str(copy), "--data-root", str(data_root)])
    assert result.exit_code == 1
    assert json.loads(result.output.splitlines()[0])["mismatches"] == 1


def test_levels_the_images_do_not_have_are_refused_in_one_line(module_cache, data_root, tmp_path):
    result = CliRunner().invoke(
        main, ["sample", "--dataset", "mnist", "-n", "2", "--levels", "4", "--out", str(tmp_path / "r")]
    )
    assert result.exit_code == 2
    assert result.output.strip().splitlines()[-1].startswith("error: 28x28 images have no pyramid level 3")
    assert not (tmp_path / "r").exists()


def test_a_class_map_and_a_completion_hold_at_every_level_and_verify_there(module_cache, data_root, tmp_path):
    """`--class-map` and `npgen complete` with --levels 2: level 1 keeps the map's classes and the input's given
    blocks (their exact means), has provenance only where it generated, and verify checks both at level 1."""

    def run(*args: str) -> str:
        result = CliRunner().invoke(main, [*args, "--dataset", "mnist", "--levels", "2", "--data-root", str(data_root)])
        assert result.exit_code == 0, result.output
        return result.output

    run("sample", "-n", "3", "--class-map", "top=7,bottom=1", "--out", str(tmp_path / "steered"))
    steered = Run(tmp_path / "steered")
    table = steered.provenance(["src_image", "y"], level=1)
    coarse = {name: table.column(name).to_numpy() for name in table.column_names}
    labels = load_dataset("mnist", data_root=data_root).labels[coarse["src_image"]]
    assert (labels == np.where(coarse["y"] < 7, 7, 1)).all() and len(labels) == 3 * 14 * 14
    assert api.verify_run(steered.path, data_root).ok

    run("complete", "-n", "2", "--test-index", "0", "--test-index", "1", "--mask", "top", "--out", str(tmp_path / "c"))
    completed = Run(tmp_path / "c")
    inputs = load_dataset("mnist", data_root=data_root, split="test").images[:2]
    coarse = np.asarray(completed.level_samples(1))
    np.testing.assert_array_equal(coarse[:, :7], np.repeat(reference_level(inputs, 1)[:, :7], 2, axis=0))
    rows = completed.provenance(["y"], level=1).column("y").to_numpy()
    assert len(rows) == 4 * 7 * 14 and (rows >= 7).all()
    report = api.verify_run(completed.path, data_root)
    assert report.ok and report.levels == 2 and report.missing_or_duplicate == 0
    traced = Tracer(completed.path, data_root=data_root).pixel(3, 20, 9)  # a generated pixel's parent was generated
    (parent,) = traced.ancestors
    assert (parent.level, parent.y, parent.x) == (1, 10, 4) and parent.src_image >= 0

    coarse = coarse.copy()
    coarse[1, 3, 5, 0] ^= 0xFF  # a given block's mean: no provenance row checks it, the input does
    np.save(completed.path / "levels" / "1" / "samples.npy", coarse)
    report = api.verify_run(completed.path, data_root)
    assert report.given_changed == 1 and report.mismatches == 0 and not report.ok


def test_information_maps_refuse_a_pyramid_run(pyramid_run, data_root):
    with pytest.raises(NpgenError, match="pyramid levels"):
        api.infomap_run(pyramid_run, data_root=data_root)


def test_shards_of_a_pyramid_run_merge_into_the_same_levels(pyramid_run, data_root, tmp_path):
    shards = [
        api.sample_run(
            tmp_path / f"shard{i}", "mnist", 12, "5", data_root, sampler_options=LEVELS, command="test", shard=f"{i}/2"
        )
        for i in range(2)
    ]
    merged = api.merge_runs(tmp_path / "merged", shards, command="test")
    for level in (0, 1):
        np.testing.assert_array_equal(Run(merged).level_samples(level), Run(pyramid_run).level_samples(level))
        assert Run(merged).provenance(level=level).equals(Run(pyramid_run).provenance(level=level))
    assert api.verify_run(merged, data_root).ok


def test_mnist_samples_two_levels_by_default_and_one_where_they_measured_no_better(module_cache, data_root, tmp_path):
    """MNIST's preset is a pyramid (levels 2, pool 200); a class map and a completion sample one level unless told
    otherwise (benchmarks/RESULTS.md, Controls), and take --levels 2 when told."""

    def sample(*args: str) -> Run:
        result = CliRunner().invoke(main, [*args, "--dataset", "mnist", "-n", "2", "--data-root", str(data_root)])
        assert result.exit_code == 0, result.output
        return Run(Path(args[args.index("--out") + 1]))

    plain = sample("sample", "--class", "3", "--out", str(tmp_path / "plain"))
    assert (plain.manifest["params"]["levels"], plain.manifest["params"]["pool_size"]) == (2, 200)
    steered = sample("sample", "--class-map", "top=7,bottom=1", "--out", str(tmp_path / "steered"))
    completed = sample("complete", "--test-index", "0", "--mask", "top", "--out", str(tmp_path / "completed"))
    assert steered.levels == completed.levels == 1
    told = sample("complete", "--test-index", "0", "--mask", "top", "--levels", "2", "--out", str(tmp_path / "told"))
    assert told.levels == 2 and told.manifest["params"]["pool_size"] == 200


def test_a_grey_folder_takes_the_mnist_pyramid_only_where_its_images_have_a_coarser_level(
    module_cache, mnist_subset, tmp_path
):
    for side in (28, 27):
        folder = tmp_path / str(side)
        for digit in (0, 1):
            (folder / str(digit)).mkdir(parents=True)
            for i in np.flatnonzero(mnist_subset.labels == digit)[:3]:
                Image.fromarray(mnist_subset.images[i, :side, :side, 0]).save(folder / str(digit) / f"{i}.png")
        assert preset(load_dataset(folder))["levels"] == (2 if side == 28 else 1)
