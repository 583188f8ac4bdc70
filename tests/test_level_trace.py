"""The tracer and the report of a run sampled over pyramid levels (--levels 2) on real MNIST: a pixel's trace names
its ancestor's source at each coarser level, and that source's box-mean pixel is the level's sample pixel; the
trace figure gains one row and the report a "Pyramid levels" section."""

from __future__ import annotations

import base64
import json
import re
from dataclasses import replace

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from npgen import api
from npgen.analysis.drawing import GAP, as_rgb, upscale
from npgen.analysis.report import write_report
from npgen.analysis.trace_figures import pixel_figure
from npgen.wording import plural
from npgen.analysis.tracer import Tracer
from npgen.cli import main
from npgen.data.levels import level_images
from npgen.runs.run import Run

N_SAMPLES = 8


@pytest.fixture(scope="module")
def levels_run(module_cache, data_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("level-trace") / "run"
    options = {"levels": 2, "coarse_weight": 1.0, "batch_size": 8}
    return api.sample_run(out, "mnist", N_SAMPLES, "5", data_root, sampler_options=options, command="test")


@pytest.fixture(scope="module")
def tracer(levels_run, data_root):
    return Tracer(levels_run, data_root=data_root)


def test_a_pixel_trace_names_its_source_at_every_level(tracer, levels_run):
    run = Run(levels_run)
    coarse = np.asarray(run.level_samples(1))
    provenance = run.provenance(level=1).to_pylist()  # sorted by sample, y, x: row (s * 14 + y) * 14 + x
    rng = np.random.default_rng(1)
    for sample, y, x in zip(rng.integers(0, N_SAMPLES, 10), rng.integers(0, 28, 10), rng.integers(0, 28, 10)):
        trace = tracer.pixel(sample, y, x)
        assert trace.level == 0 and len(trace.ancestors) == 1
        np.testing.assert_array_equal(
            tracer.dataset.images[trace.src_image, trace.src_y, trace.src_x], run.samples[sample, y, x]
        )
        ancestor = trace.ancestors[0]
        assert (ancestor.level, ancestor.sample, ancestor.y, ancestor.x) == (1, sample, y >> 1, x >> 1)
        assert ancestor.src_class_name == "5" and ancestor.ancestors == ()
        row = provenance[(sample * 14 + (y >> 1)) * 14 + (x >> 1)]
        assert (row["src_image"], row["src_y"], row["src_x"]) == (ancestor.src_image, ancestor.src_y, ancestor.src_x)
        source = level_images(tracer.dataset.images[ancestor.src_image][None], 1)[0]
        np.testing.assert_array_equal(source[ancestor.src_y, ancestor.src_x], coarse[sample, y >> 1, x >> 1])
        np.testing.assert_array_equal(tracer.level_image(ancestor.src_image, 1), source)


def test_the_cli_prints_one_line_per_level(levels_run, tracer, data_root, tmp_path):
    figure = tmp_path / "pixel.png"
    result = CliRunner().invoke(
        main,
        ["trace", str(levels_run), "--sample", "3", "--pixel", "20,11", "--out", str(figure)],
        env={"NPGEN_DATA": str(data_root)},
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    trace = tracer.pixel(3, 20, 11)
    ancestor = trace.ancestors[0]
    assert lines[0].startswith(f"sample 3 pixel (y=20, x=11) <- training image {trace.src_image} (class 5)")
    assert lines[1] == (
        f"  level 1 pixel (y=10, x=5) <- training image {ancestor.src_image} (class 5) at "
        f"(y={ancestor.src_y}, x={ancestor.src_x}) of its level-1 image; distance {ancestor.distance:.2f}; "
        f"{plural(ancestor.n_candidates, 'admissible candidate')}"
    )
    assert lines[2] == f"figure: {figure}" and len(lines) == 3


def test_the_pixel_figure_adds_one_row_of_ancestors_under_the_one_level_figure(tracer):
    with_levels = tracer.pixel_figure(5, 9, 17)
    trace = tracer.pixel(5, 9, 17)
    one_level = pixel_figure(
        replace(trace, ancestors=()), np.asarray(tracer.run.samples[5]), tracer.dataset.images[trace.src_image], 3
    )
    assert with_levels.width == one_level.width and with_levels.height > one_level.height + 28 * 8
    top = with_levels.crop((0, 0, one_level.width, one_level.height))
    assert np.array_equal(np.asarray(top), np.asarray(one_level))
    with pytest.raises(ValueError, match="1 ancestors but 0"):
        pixel_figure(trace, np.asarray(tracer.run.samples[5]), tracer.dataset.images[trace.src_image], 3)


def test_the_report_of_a_levels_run_shows_its_levels(levels_run, data_root, tmp_path):
    out = write_report(levels_run, tmp_path / "report", data_root=data_root, n_example_samples=3)
    page = (out / "report.html").read_text(encoding="utf-8")
    assert page.count("<h2>Pyramid levels</h2>") == 1
    section = page[page.index("<h2>Pyramid levels</h2>") : page.index("<h2>Per-sample numbers")]
    assert "box means" in section and "npgen verify" in section
    embedded = {base64.b64decode(uri) for uri in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', section)}
    assert sorted(p.name for p in out.glob("levels-*.png")) == ["levels-0.png", "levels-1.png", "levels-2.png"]
    run = Run(levels_run)
    examples = json.loads((out / "report.json").read_text())["examples"]  # the most and least original samples
    for i, sample in enumerate(example["sample"] for example in examples):
        path = out / f"levels-{i}.png"
        assert path.read_bytes() in embedded
        with Image.open(path) as picture:
            drawn = np.asarray(picture.convert("RGB"))
        # level 0 and level 1 side by side, both drawn 168 pixels wide: level 1 by pixel repetition 12 times
        for k, left in ((0, GAP), (1, 2 * GAP + 168)):
            expected = upscale(as_rgb(run.level_samples(k)[sample]), 6 << k)
            np.testing.assert_array_equal(drawn[GAP : GAP + 168, left : left + 168], expected)
    write_report(levels_run, out, data_root=data_root, n_example_samples=1)
    assert [p.name for p in out.glob("levels-*.png")] == ["levels-0.png"]
