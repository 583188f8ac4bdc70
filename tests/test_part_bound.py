"""The bound on copied parts (`--max-part-share`): no part of any level grows beyond it, the bound binds where the
rule would otherwise copy more, `npgen verify` measures the parts again and catches a run that breaks it, and the
tracer's parts and verify's agree."""

from __future__ import annotations

import json

import numpy as np
from click.testing import CliRunner

from npgen.analysis.parts import find_parts
from npgen.cli import main
from npgen.rule.parts import largest_parts
from npgen.rule.sampler import Sampler


def test_no_copied_part_exceeds_the_bound_and_the_bound_binds(mnist_db):
    options = {"max_part_share": 0.01, "eps": 0.0, "max_source_share": 1.0, "batch_size": 3}
    bounded = Sampler(mnist_db, **options).sample(3, class_label=5)
    free = Sampler(mnist_db, **{**options, "max_part_share": 1.0}).sample(3, class_label=5)
    provenance = (bounded.src_image, bounded.src_y, bounded.src_x)
    assert largest_parts(*provenance).max() <= 7  # floor(0.01 * 784)
    assert (largest_parts(free.src_image, free.src_y, free.src_x) > 7).all()  # unbounded, the rule copies more
    traced = find_parts(*provenance, informative=np.ones(bounded.src_image.shape, np.int32))
    assert max(traced.table.column("size").to_pylist()) == largest_parts(*provenance).max()


def test_the_bound_holds_at_every_pyramid_level(mnist_db):
    options = {"levels": 2, "anchor": "parent", "coarse_weight": 1.0, "radius": 1, "pool_size": 3}
    bounded = Sampler(mnist_db, max_part_share=0.03, max_source_share=1.0, batch_size=2, **options).sample(2, 4)
    for level, (samples, bound) in enumerate([(bounded, 23), (bounded.coarser[0], 5)]):  # 3% of 784 and of 196
        largest = largest_parts(samples.src_image, samples.src_y, samples.src_x)
        assert 1 < largest.max() <= bound, f"level {level}"


def test_verify_measures_the_parts_and_catches_a_run_over_its_bound(cache, tmp_path):
    out = tmp_path / "run"
    made = CliRunner().invoke(
        main, ["sample", "--dataset", "mnist", "--class", "2", "-n", "4", "--max-part-share", "0.02", "--out", str(out)]
    )
    assert made.exit_code == 0, made.output
    checked = CliRunner().invoke(main, ["verify", str(out)])
    assert checked.exit_code == 0, checked.output
    report = json.loads(checked.output.splitlines()[0])
    assert report["part_bound"] == 15 and 1 < report["largest_part"] <= 15 and report["over_part_bound"] == 0
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["params"]["max_part_share"] = (report["largest_part"] - 1) / 784  # claims a bound the run breaks
    (out / "manifest.json").write_text(json.dumps(manifest))
    tampered = CliRunner().invoke(main, ["verify", str(out)])
    assert tampered.exit_code == 1
    assert json.loads(tampered.output.splitlines()[0])["over_part_bound"] >= 1


def test_a_bounded_sample_does_not_depend_on_the_batch_size(mnist_db):
    options = {"max_part_share": 0.01, "eps": 0.0, "max_source_share": 1.0}
    together = Sampler(mnist_db, batch_size=3, **options).sample(3, class_label=6)
    one_by_one = Sampler(mnist_db, batch_size=1, **options).sample(3, class_label=6)
    np.testing.assert_array_equal(together.images, one_by_one.images)
    np.testing.assert_array_equal(together.src_image, one_by_one.src_image)
