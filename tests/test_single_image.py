"""One image as the dataset (single-image synthesis) on a real photo: its preset builds a pyramid anchored at the
parents' sources, every pixel of every level is verified, and a bad image is refused in one line."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from npgen.cli import main
from npgen.data.database import Database, WindowParams
from npgen.data.datasets import load_dataset, preset, single_image_preset
from npgen.errors import NpgenError
from npgen.rule.sampler import Sampler
from npgen.runs.run import Run


@pytest.fixture(scope="module")
def photo(tmp_path_factory, all_data_root) -> str:
    """A real 64x64 colour photo: four CIFAR-10 training images (a frog, trucks, a deer) tiled 2 x 2."""
    images = load_dataset("cifar10", data_root=all_data_root).images[:4]
    tiled = np.concatenate([np.concatenate(images[:2], axis=1), np.concatenate(images[2:], axis=1)], axis=0)
    path = tmp_path_factory.mktemp("photo") / "tiles.png"
    Image.fromarray(tiled).save(path)
    return str(path)


def test_an_image_file_is_a_dataset_of_one_image_with_the_single_image_preset(photo):
    data = load_dataset(photo)
    assert data.n_images == 1 and data.images.shape == (1, 64, 64, 3) and data.class_names == ("tiles",)
    assert preset(data) == single_image_preset(64, 64)
    assert single_image_preset(64, 64)["levels"] == 3 and single_image_preset(256, 256)["levels"] == 5
    assert single_image_preset(96, 80)["levels"] == 3  # 80 / 8 = 10 is below the coarsest size
    with pytest.raises(NpgenError, match="one image"):
        load_dataset(photo, split="test")


def test_a_single_image_run_is_anchored_and_verified_at_every_level(photo, tmp_path, monkeypatch):
    monkeypatch.setenv("NPGEN_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "run"
    made = CliRunner().invoke(main, ["sample", "--dataset", photo, "-n", "3", "--out", str(out)])
    assert made.exit_code == 0, made.output
    said = "3 pyramid levels (anchor parent), copied parts of at most 0.15 of a level's pixels, context outside the "
    assert said + "sample ignored, no source budget, seed 0" in made.output  # the settings, said before sampling
    run = Run(out)
    params = run.manifest["params"]
    assert (params["levels"], params["anchor"], params["coarse_weight"]) == (3, "parent", 1.0)
    assert run.samples.shape == (3, 64, 64, 3) and run.level_samples(1).shape == (3, 32, 32, 3)
    checked = CliRunner().invoke(main, ["verify", str(out)])
    assert checked.exit_code == 0, checked.output
    report = json.loads(checked.output)
    assert report["outside_radius"] == 0 and report["mismatches"] == 0 and report["levels"] == 3
    fine = run.provenance(level=0).to_pydict()
    coarse = {
        (s, y, x): (sy, sx)
        for s, y, x, sy, sx in zip(
            *(run.provenance(level=1).to_pydict()[k] for k in ("sample", "y", "x", "src_y", "src_x"))
        )
    }
    for s, y, x, sy, sx in list(zip(*(fine[k] for k in ("sample", "y", "x", "src_y", "src_x"))))[::97]:
        py, px = coarse[(s, y // 2, x // 2)]
        assert abs(sy - (2 * py + y % 2)) <= 1 and abs(sx - (2 * px + x % 2)) <= 1
    assert len({bytes(np.asarray(run.samples[i])) for i in range(3)}) == 3  # three different samples


def test_verify_catches_a_pixel_copied_from_outside_the_anchor(photo, tmp_path, monkeypatch):
    """A pixel whose recorded source is moved far from its anchor (and its value made that source's, so it still
    matches) is counted outside the radius."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    monkeypatch.setenv("NPGEN_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "run"
    assert CliRunner().invoke(main, ["sample", "--dataset", photo, "-n", "1", "--out", str(out)]).exit_code == 0
    part = out / "provenance" / "part-00000.parquet"
    table = pq.read_table(part).to_pydict()
    row = next(i for i, (y, x) in enumerate(zip(table["y"], table["x"])) if (y, x) == (40, 40))
    far_y, far_x = (table["src_y"][row] + 20) % 64, (table["src_x"][row] + 20) % 64
    table["src_y"][row], table["src_x"][row] = far_y, far_x
    pq.write_table(pa.table(table, schema=pq.read_schema(part)), part)
    samples = np.load(out / "samples.npy")
    samples[0, 40, 40] = load_dataset(photo).images[0, far_y, far_x]
    np.save(out / "samples.npy", samples)
    manifest = json.loads((out / "manifest.json").read_text())
    manifest.pop("parts")  # the parts' checksums would refuse the changed run before verify counts what changed
    (out / "manifest.json").write_text(json.dumps(manifest))
    report = json.loads(CliRunner().invoke(main, ["verify", str(out)]).output.splitlines()[0])
    assert report["outside_radius"] == 1 and report["mismatches"] == 0


def test_a_picture_sampled_at_another_size_is_verified_and_traced(photo, tmp_path, monkeypatch):
    """--size: a 48x96 sample of the 64x64 photo, every level verified (parts within the preset's bound), traced
    and reported, with no nearest training image claimed for it."""
    monkeypatch.setenv("NPGEN_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "wide"
    made = CliRunner().invoke(main, ["sample", "--dataset", photo, "--size", "48x96", "-n", "2", "--out", str(out)])
    assert made.exit_code == 0, made.output
    run = Run(out)
    assert run.samples.shape == (2, 48, 96, 3) and run.level_samples(1).shape == (2, 24, 48, 3)
    assert run.manifest["params"]["size"] == "48x96" and run.manifest["summary"]["median_nearest_distance"] is None
    checked = CliRunner().invoke(main, ["verify", str(out)])
    assert checked.exit_code == 0, checked.output
    report = json.loads(checked.output.splitlines()[0])
    assert report["n_pixels"] == 2 * (48 * 96 + 24 * 48 + 12 * 24) and report["part_bound"] == 691
    assert 1 < report["largest_part"] <= 691
    traced = CliRunner().invoke(main, ["trace", str(out), "--sample", "1", "--pixel", "40,90"])
    assert traced.exit_code == 0 and "pixel (y=40, x=90)" in traced.output, traced.output
    reported = CliRunner().invoke(main, ["report", str(out), "--out", str(tmp_path / "report")])
    assert reported.exit_code == 0, reported.output


def test_an_output_size_the_sampler_cannot_take_is_refused_in_one_line(photo, cache, tmp_path):
    for args, message in [
        (["--dataset", photo, "--size", "49x96"], "--size 49x96 has no pyramid level 2"),  # three levels: sides of 4k
        (["--dataset", photo, "--size", "48"], "must be HxW"),
        (["--dataset", "mnist", "--class", "3", "--size", "40x40"], "pass --pool-size 0"),
    ]:
        result = CliRunner().invoke(main, ["sample", *args, "-n", "1", "--out", str(tmp_path / "refused")])
        assert result.exit_code == 2 and message in result.output.splitlines()[-1], result.output
        assert result.output.count("error:") == 1 and "Traceback" not in result.output
        assert not (tmp_path / "refused").exists()


def test_the_progress_moves_within_a_batch_of_large_images(photo, tmp_path, monkeypatch):
    """A batch of pictures is reported row by row (every pyramid level's rows), not only when it ends."""
    monkeypatch.setenv("NPGEN_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "run"
    made = CliRunner().invoke(main, ["sample", "--dataset", photo, "-n", "2", "--batch-size", "2", "--out", str(out)])
    assert made.exit_code == 0, made.output
    lines = [line for line in made.output.splitlines() if line.startswith("sampling: ")]
    within = [line for line in lines if not line.startswith(("sampling: 0/2 (0%)", "sampling: 2/2"))]
    assert within and lines[-1].startswith("sampling: 2/2 (100%)"), lines


def test_context_outside_the_canvas_ignored_lets_a_sample_start_anywhere_in_the_picture(photo, tmp_path):
    """With --outside-canvas pad every sample starts as the picture's top-left corner, the only window whose context
    is all pad; with ignored the first pixel has no context, every window of the coarsest level is admissible, and
    samples start at different places."""
    db = Database.build(load_dataset(photo), tmp_path / "db", WindowParams())
    first = {}
    for outside in ("pad", "ignored"):
        settings = {**single_image_preset(64, 64), "outside_canvas": outside}
        coarsest = Sampler(db, batch_size=8, **settings).sample(8, None).coarser[-1]
        first[outside] = set(zip(coarsest.src_y[:, 0, 0].tolist(), coarsest.src_x[:, 0, 0].tolist()))
        admissible = coarsest.n_candidates[:, 0, 0]
        assert (admissible == (1 if outside == "pad" else coarsest.src_y.shape[1] * coarsest.src_y.shape[2])).all()
    assert first["pad"] == {(0, 0)}
    assert len(first["ignored"]) >= 6


def test_the_single_image_preset_does_not_depend_on_batch_size_or_threads(photo, tmp_path):
    """Every level of the preset's samples (context outside ignored, parts bounded) is the same whether the samples
    are made one at a time or together, on one thread or two."""
    import numba

    db = Database.build(load_dataset(photo), tmp_path / "db", WindowParams())
    settings = single_image_preset(64, 64)
    made = []
    for batch_size, threads in ((1, 2), (3, 2), (3, 1)):
        numba.set_num_threads(threads)
        try:
            made.append(Sampler(db, batch_size=batch_size, **settings).sample(3, None))
        finally:
            numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    for other in made[1:]:
        for got, want in zip([made[0], *made[0].coarser], [other, *other.coarser]):
            for name in ("images", "src_image", "src_y", "src_x", "n_candidates", "distance"):
                np.testing.assert_array_equal(getattr(got, name), getattr(want, name), err_msg=name)
