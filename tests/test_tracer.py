"""The tracer: parts, composition and reuse on hand-built provenance, then invariants on a real MNIST run."""

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from npgen.analysis.composition import compose, gini
from npgen.analysis.parts import find_parts
from npgen.analysis.trace_figures import parts_figure, pixel_figure
from npgen.analysis.tracer import PixelTrace, Tracer
from npgen.api import sample_run
from npgen.cli import main
from npgen.errors import NpgenError

# A 4x5 sample; each letter is (training image, dy, dx):
#   A, E: image 7, (0, 0)  -- two separate rectangles, and A at (2,2) touching the first only diagonally
#   B:    image 7, (-1, 0) -- same image, other displacement, 4-adjacent to A(2,2) and to E
#   C:    image 2, (0, 0)  -- three pieces, two of them touching diagonally
#   F:    image 5, (-1, 1)
A, B, C, E, F = (7, 0, 0), (7, -1, 0), (2, 0, 0), (7, 0, 0), (5, -1, 1)
# Hand-aligned: each grid is a picture of a 4x5 sample (a source per pixel, the expected part ids), row by row;
# ruff format would join each onto one line, so these two statements are left unformatted.
GRID = [[A, A, C, E, E],
        [A, A, C, E, E],
        [C, C, A, B, B],
        [F, F, C, B, B]]  # fmt: skip
EXPECTED_PARTS = [[0, 0, 1, 2, 2],
                  [0, 0, 1, 2, 2],
                  [3, 3, 4, 5, 5],
                  [6, 6, 7, 5, 5]]  # fmt: skip
# image 7 is class 3, image 2 class 4, image 5 class 1, out of 10 training images
TRAIN_LABELS = np.array([0, 0, 4, 0, 0, 1, 0, 3, 0, 0])


def synthetic():
    """Two samples: the grid above (F and C(3,2) uninformative: 100 and 50 candidates), and all of image 7 at (0, 0)."""
    ys, xs = np.mgrid[0:4, 0:5]
    image = np.array([[cell[0] for cell in row] for row in GRID])
    src_y = ys + np.array([[cell[1] for cell in row] for row in GRID])
    src_x = xs + np.array([[cell[2] for cell in row] for row in GRID])
    candidates = np.full((4, 5), 4)
    candidates[3, 0:2], candidates[3, 2] = 100, 50
    return (
        np.stack([image, np.full((4, 5), 7)]),
        np.stack([src_y, ys]),
        np.stack([src_x, xs]),
        np.stack([candidates, np.full((4, 5), 4)]),
    )


def label_parts(src_image, src_y, src_x):
    return find_parts(src_image, src_y, src_x, np.ones(np.shape(src_image), bool)).ids


def test_label_parts_uses_4_connectivity_image_and_displacement():
    image, src_y, src_x, _ = synthetic()
    ids = label_parts(image, src_y, src_x)
    assert ids.dtype == np.int32
    np.testing.assert_array_equal(ids[0], EXPECTED_PARTS)
    np.testing.assert_array_equal(ids[1], 0)


def test_label_parts_numbers_in_raster_order_of_first_pixel():
    # a U of image 1 whose arms meet only in the bottom row, around a pixel of image 2
    image = np.array([[[1, 2, 1], [1, 1, 1]]])
    ys, xs = np.mgrid[0:2, 0:3]
    np.testing.assert_array_equal(label_parts(image, ys[None], xs[None])[0], [[0, 1, 0], [0, 0, 0]])


def test_compose_matches_hand_computed_values():
    c = compose(*synthetic(), TRAIN_LABELS, requested_class=3, max_candidates=8, min_part_size=4)
    first = c.per_sample.to_pylist()[0]
    assert first["n_parts"] == 8 and first["n_parts_informative"] == 6  # parts 6 (F) and 7 (C at (3,2)) are ties
    assert first["mean_part_size"] == pytest.approx(20 / 8)
    assert first["share_in_parts_ge_s"] == pytest.approx(12 / 20)  # parts 0, 2, 5 have 4 pixels
    assert first["share_in_parts_ge_s_informative"] == pytest.approx(12 / 17)
    assert (first["n_sources"], first["n_sources_informative"]) == (3, 2)
    assert first["informative_share"] == pytest.approx(17 / 20)
    # informative pixels: image 7 gave 13, image 2 gave 4
    assert first["coverage_top1"] == pytest.approx(13 / 17)
    assert first["coverage_top3"] == first["coverage_top10"] == pytest.approx(1.0)
    assert first["class_consistency"] == pytest.approx(13 / 17)
    second = c.per_sample.to_pylist()[1]
    assert (second["n_parts"], second["coverage_top1"], second["share_in_parts_ge_s"]) == (1, 1.0, 1.0)

    parts = c.parts.to_pylist()
    assert [p["size"] for p in parts] == [4, 2, 4, 2, 1, 4, 2, 1, 20]
    assert [p["informative_size"] for p in parts] == [4, 2, 4, 2, 1, 4, 0, 0, 20]
    assert [(p["src_image"], p["dy"], p["dx"]) for p in parts[:8]] == [A, C, E, C, A, B, F, C]
    assert [(p["y0"], p["x0"], p["y1"], p["x1"]) for p in parts[:3]] == [(0, 0, 1, 1), (0, 2, 1, 2), (0, 3, 1, 4)]
    assert [(p["sample"], p["part"]) for p in parts[-2:]] == [(0, 7), (1, 0)]
    np.testing.assert_array_equal(c.part_ids[0], EXPECTED_PARTS)

    assert c.reuse.to_pylist() == [
        {"src_image": 2, "src_class": 4, "n_pixels": 5, "n_informative": 4, "n_samples": 1},
        {"src_image": 5, "src_class": 1, "n_pixels": 2, "n_informative": 0, "n_samples": 1},
        {"src_image": 7, "src_class": 3, "n_pixels": 33, "n_informative": 33, "n_samples": 2},
    ]
    # conditioned on class 3, reuse is over its one training image (7): used, so share 1 and Gini 0
    assert (c.run["n_population"], c.run["gini"], c.run["share_of_training_used"]) == (1, 0.0, 1.0)
    unconditional = compose(*synthetic(), TRAIN_LABELS, requested_class=None).run
    # per-image counts (0,0,5,0,0,2,0,33,0,0): Gini = 2*(8*2 + 9*5 + 10*33)/(10*40) - 11/10
    assert unconditional["n_population"] == 10 and unconditional["gini"] == pytest.approx(0.855)
    assert unconditional["share_of_training_used"] == pytest.approx(0.3)
    assert unconditional["share_of_training_used_informative"] == pytest.approx(0.2)
    assert c.displacement == {"chebyshev": [0, 1], "all_pixels": [34, 6], "informative_pixels": [33, 4]}
    assert c.run["n_parts"] == 9 and c.run["median_n_parts"] == pytest.approx(4.5)
    json.dumps(c.run)  # run-level numbers are plain JSON


def test_class_consistency_against_requested_or_majority_class():
    other = compose(*synthetic(), TRAIN_LABELS, requested_class=4)
    assert other.per_sample.column("class_consistency").to_pylist()[0] == pytest.approx(4 / 17)
    unconditional = compose(*synthetic(), TRAIN_LABELS, requested_class=None)
    assert unconditional.per_sample.column("target_class").to_pylist() == [3, 3]
    assert unconditional.per_sample.column("class_consistency").to_pylist() == pytest.approx([13 / 17, 1.0])


def test_max_candidates_decides_what_is_informative():
    everything = compose(*synthetic(), TRAIN_LABELS, max_candidates=100)
    assert everything.per_sample.column("informative_share").to_pylist() == [1.0, 1.0]
    assert everything.per_sample.column("coverage_top1").to_pylist()[0] == pytest.approx(13 / 20)
    nothing = compose(*synthetic(), TRAIN_LABELS, max_candidates=3)
    assert np.isnan(nothing.per_sample.column("coverage_top1").to_numpy()).all()
    with pytest.raises(NpgenError):
        compose(*synthetic(), TRAIN_LABELS, max_candidates=0)


def test_gini():
    assert gini(np.array([3, 3, 3])) == 0.0
    assert gini(np.array([0, 0, 6])) == pytest.approx(2 / 3)
    assert gini(np.zeros(4)) == 0.0


def test_figures_draw_grayscale_and_rgb():
    image, src_y, src_x, candidates = synthetic()
    parts = find_parts(image[:1], src_y[:1], src_x[:1], candidates[:1] <= 8)
    trace = PixelTrace(0, 2, 3, 7, 3, "three", 1, 3, 4, 2.5)
    for channels in (1, 3):
        rng = np.random.default_rng(channels)
        train = rng.integers(0, 256, (10, 4, 5, channels), dtype=np.uint8)
        sample = rng.integers(0, 256, (4, 5, channels), dtype=np.uint8)
        picture = pixel_figure(trace, sample, train[7], half_window=2)
        assert isinstance(picture, Image.Image) and picture.mode == "RGB" and picture.width >= 2 * 5 * 8
        picture = parts_figure(sample, parts.ids[0], parts.table, train, top=6, labels=TRAIN_LABELS)
        assert isinstance(picture, Image.Image) and picture.width >= 5 * 5 * 6  # sample, map and 3 sources


# ---- a real MNIST run ----


@pytest.fixture(scope="module")
def mnist_run(data_root, tmp_path_factory):
    """Six class-3 samples of full MNIST at one level (its window database built in a temporary folder); pyramid
    traces are tests/test_level_trace.py's."""
    root = tmp_path_factory.mktemp("tracer")
    return sample_run(
        root / "run", "mnist", 6, 3, data_root=data_root, db_path=root / "db", sampler_options={"levels": 1},
        command="test",
    )  # fmt: skip


@pytest.fixture(scope="module")
def tracer(mnist_run, data_root):
    return Tracer(mnist_run, data_root=data_root)


def test_parts_partition_every_sample(tracer):
    c = tracer.composition()
    height, width = tracer.height, tracer.width
    for sample in range(tracer.n_samples):
        table = tracer.sample_parts(sample)
        ids = tracer.part_ids(sample)
        sizes = table.column("size").to_numpy()
        assert table.column("part").to_pylist() == list(range(table.num_rows))
        assert sizes.sum() == height * width
        np.testing.assert_array_equal(np.bincount(ids.ravel(), minlength=table.num_rows), sizes)
        np.testing.assert_array_equal(ids, c.part_ids[sample])
        assert table.equals(c.parts.filter(c.parts.column("sample").to_numpy() == sample))
    assert c.per_sample.column("n_parts").to_numpy().sum() == c.parts.num_rows


def test_coverage_class_consistency_and_reuse(tracer):
    c = tracer.composition()
    rows = c.per_sample.to_pylist()
    for row in rows:
        assert 0 < row["coverage_top1"] <= row["coverage_top3"] <= row["coverage_top10"] <= 1
        assert row["class_consistency"] == 1.0  # the run is conditioned on class 3
    sources = c.sources
    for sample in range(tracer.n_samples):
        counts = sources.filter(sources.column("sample").to_numpy() == sample).column("n_informative").to_numpy()
        counts = np.sort(counts[counts > 0])[::-1]
        assert len(counts) == rows[sample]["n_sources_informative"]
        for top in (1, 3, 10):
            assert rows[sample][f"coverage_top{top}"] == pytest.approx(counts[:top].sum() / counts.sum())
    assert c.reuse.column("n_pixels").to_numpy().sum() == tracer.n_samples * tracer.height * tracer.width
    assert c.reuse.column("n_samples").to_numpy().max() <= tracer.n_samples
    assert set(c.reuse.column("src_class").to_pylist()) == {3}
    # the run is conditioned on class 3: reuse is relative to the class's 6,131 training images, not all 60,000
    n_class = int((tracer.dataset.labels == 3).sum())
    assert c.run["n_population"] == n_class == 6131
    assert c.run["share_of_training_used"] == pytest.approx(c.reuse.num_rows / n_class)
    assert 0 < c.run["gini"] < 1


def test_pixel_traces_back_to_the_copied_source_pixel(tracer):
    rng = np.random.default_rng(0)
    for sample, y, x in zip(rng.integers(0, 6, 12), rng.integers(0, 28, 12), rng.integers(0, 28, 12)):
        trace = tracer.pixel(sample, y, x)
        source = tracer.dataset.images[trace.src_image, trace.src_y, trace.src_x]
        np.testing.assert_array_equal(source, tracer.run.samples[sample, y, x])
        assert trace.src_class == 3 and trace.src_class_name == "3"
        assert trace.informative == (trace.n_candidates <= 8)
        assert trace.level == 0 and trace.ancestors == ()  # a one-level run: no coarser levels to trace


def test_a_one_level_pixel_trace_prints_one_line(mnist_run, data_root, tmp_path):
    args = ["trace", str(mnist_run), "--sample", "1", "--pixel", "5,20", "--out", str(tmp_path / "p.png")]
    result = CliRunner().invoke(main, [*args, "--data-root", str(data_root)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert len(lines) == 2 and lines[0].startswith("sample 1 pixel (y=5, x=20) <- training image ")
    assert lines[1] == f"figure: {tmp_path / 'p.png'}"


def test_out_of_range_queries_say_what_exists(tracer):
    with pytest.raises(NpgenError, match=r"sample 17 out of range: run has 0\.\.5"):
        tracer.pixel(17, 0, 0)
    with pytest.raises(NpgenError, match="out of range"):
        tracer.pixel(0, 28, 0)
    with pytest.raises(NpgenError, match="out of range"):
        tracer.pixel(0, 0, -1)
    with pytest.raises(NpgenError, match="out of range"):
        tracer.sample_parts(-1)


def test_a_run_whose_dataset_checksum_differs_is_refused(mnist_run, data_root, tmp_path):
    altered = tmp_path / "altered"
    shutil.copytree(mnist_run, altered)
    manifest = json.loads((altered / "manifest.json").read_text())
    manifest["dataset"]["images_sha256"] = "0" * 64
    (altered / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(NpgenError, match="SHA-256"):
        Tracer(altered, data_root=data_root)


def test_run_figures(tracer):
    picture = tracer.pixel_figure(2, 14, 14)
    assert isinstance(picture, Image.Image) and 2 * 28 * 8 < picture.width < 1000 and picture.height > 28 * 8
    picture = tracer.parts_figure(2, top=6)
    assert isinstance(picture, Image.Image) and picture.width >= 8 * 28 * 6 and picture.height > 28 * 6
