"""The bound on reuse (`--max-reuse`): at the coarsest level no source pixel gives a sample more than its cap, so with
one picture and 1 the coarsest level rearranges the picture's own pixels; the bound binds where the rule would
copy a pixel again; `npgen verify` counts the copies again and catches a run over its cap; bad values are refused
in one line."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from npgen.cli import main
from npgen.data.datasets import load_dataset, single_image_preset
from npgen.data.levels import level_images
from npgen.errors import NpgenError
from npgen.rule.sampler import Sampler
from npgen.runs.run import Run


def copies(samples) -> np.ndarray:
    """(n,) the most pixels one source pixel gave each sample."""
    flat = (samples.src_image.astype(np.int64) * 1000 + samples.src_y) * 1000 + samples.src_x
    return np.array([np.unique(one, return_counts=True)[1].max() for one in flat.reshape(len(flat), -1)])


def test_the_coarsest_level_rearranges_the_picture_and_the_bound_binds(one_image_db):
    options = {**single_image_preset(32, 32), "batch_size": 3}  # two levels: 16x16 from the picture's 2x2 means
    free = Sampler(one_image_db, **options).sample(3)
    bounded = Sampler(one_image_db, **options, max_reuse=1.0).sample(3)
    assert (copies(free.coarser[0]) > 1).all()  # unbounded, the rule copies some pixel again in every sample
    coarsest = bounded.coarser[0]
    assert (copies(coarsest) == 1).all()
    picture = level_images(np.asarray(one_image_db.images()), 1)[0].reshape(-1, 3)
    for image in coarsest.images:  # every pixel of the picture's coarser level exactly once: the same colours
        np.testing.assert_array_equal(np.sort(image.reshape(-1, 3), axis=0), np.sort(picture, axis=0))
    assert copies(bounded).max() > 1  # the finer level is not bounded
    one_by_one = Sampler(one_image_db, **{**options, "batch_size": 1}, max_reuse=1.0).sample(3)
    np.testing.assert_array_equal(one_by_one.images, bounded.images)
    np.testing.assert_array_equal(one_by_one.coarser[0].src_y, coarsest.src_y)


@pytest.fixture(scope="module")
def picture(tmp_path_factory, all_data_root) -> str:
    """A real 32x32 photo file: CIFAR-10 training image 7."""
    path = tmp_path_factory.mktemp("picture") / "picture.png"
    Image.fromarray(load_dataset("cifar10", data_root=all_data_root).images[7]).save(path)
    return str(path)


def test_verify_counts_the_copies_and_catches_a_run_over_its_cap(picture, tmp_path, monkeypatch):
    monkeypatch.setenv("NPGEN_CACHE", str(tmp_path / "cache"))
    bounded, free = tmp_path / "bounded", tmp_path / "free"
    said = {}
    for out, extra in ((bounded, ["--max-reuse", "1"]), (free, [])):
        made = CliRunner().invoke(main, ["sample", "--dataset", picture, "-n", "2", "--out", str(out), *extra])
        assert made.exit_code == 0, made.output
        said[out] = made.output
    assert "no source pixel copied more than 1x its even share at the coarsest level" in said[bounded]
    checked = CliRunner().invoke(main, ["verify", str(bounded)])
    assert checked.exit_code == 0, checked.output
    report = json.loads(checked.output)
    assert (report["reuse_cap"], report["most_reused"], report["over_reuse_cap"]) == (1, 1, 0)
    unbounded = json.loads(CliRunner().invoke(main, ["verify", str(free)]).output)
    assert unbounded["reuse_cap"] == 0 and unbounded["most_reused"] > 1 and unbounded["over_reuse_cap"] == 0
    table = Run(free).provenance(["sample", "src_y", "src_x"], level=1).to_pydict()  # the 16x16 coarsest level
    sample, source = np.array(table["sample"]), np.array(table["src_y"]) * 16 + np.array(table["src_x"])
    per_sample = [np.bincount(source[sample == i]).max() for i in range(2)]  # most copies of one pixel, counted here
    assert max(per_sample) == unbounded["most_reused"]
    manifest = json.loads((free / "manifest.json").read_text())
    manifest["params"]["max_reuse"] = unbounded["most_reused"] - 1.0  # a cap the run breaks by one copy
    (free / "manifest.json").write_text(json.dumps(manifest))
    tampered = CliRunner().invoke(main, ["verify", str(free)])
    assert tampered.exit_code == 1
    report = json.loads(tampered.output.splitlines()[0])
    assert report["reuse_cap"] == unbounded["most_reused"] - 1  # the even share is 1: a 16x16 level from 16x16
    assert report["over_reuse_cap"] == sum(m == unbounded["most_reused"] for m in per_sample) >= 1


def test_a_bound_below_the_even_share_or_over_a_large_database_is_refused(picture, one_image_db, mnist_db, tmp_path):
    with pytest.raises(NpgenError, match=r"0 \(no bound\) or at least 1"):
        Sampler(one_image_db, max_reuse=0.5, pool_size=0, max_source_share=1.0)
    with pytest.raises(NpgenError, match="has 1,568,000 there"):  # 2,000 MNIST images
        Sampler(mnist_db, max_reuse=1.0)
    refused = CliRunner().invoke(
        main, ["sample", "--dataset", picture, "-n", "1", "--out", str(tmp_path / "x"), "--max-reuse", "0.5"]
    )
    errors = [line for line in refused.output.splitlines() if line.startswith("error: ")]
    assert refused.exit_code == 2 and len(errors) == 1 and "Traceback" not in refused.output
    assert not (tmp_path / "x").exists()
