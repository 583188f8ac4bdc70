"""The source budget and the class mixture: hand-computed cases, guarantees on real data, verify."""

import json

import numpy as np
import pytest

from npgen.api import sample_run, verify_run
from npgen.data.database import Database, WindowParams
from npgen.data.datasets import Dataset
from npgen.params import source_budget
from npgen.rule.cpu import sample_row
from npgen.rule.rng import sample_keys
from npgen.rule.sampler import Sampler, draw_classes


def test_budget_is_the_floor_of_the_share_of_pixels():
    assert source_budget(0.1, 1024) == 102 and source_budget(0.1, 784) == 78 and source_budget(0.001, 10) == 1


@pytest.mark.parametrize("already_used, expected_sources", [(0, [0, 0, 0]), (3, [0, 1, 1]), (4, [1, 1, 1])])
def test_a_source_at_its_budget_is_never_chosen_again(tmp_path, already_used, expected_sources):
    # The canvas so far equals image 0, so image 0's windows match exactly (distance 0) and image 1's do not:
    # row 1 copies image 0 until image 0 has given its 4 pixels, then image 1 (the only candidate left).
    image0, image1 = [[10, 20, 30], [40, 50, 60]], [[90, 90, 90], [90, 70, 90]]
    data = Dataset(
        "toy", "train", np.array([image0, image1], np.uint8)[..., None], np.zeros(2, np.int64), ("all",), "hand"
    )
    db = Database.build(data, tmp_path / "db", WindowParams(half_window=1))
    sampler = Sampler(db, pool_size=0, k_min=1, eps=0.0, abs_tol=0.0)
    canvas = np.zeros((1, 3, 5, 1), np.uint8)
    canvas[0, 1:, 1:4, 0] = image0
    used = np.array([[already_used, 0]], np.int32)
    out = tuple(np.zeros((1, 2, 3), dtype) for dtype in (np.int32, np.int16, np.int16, np.int32, np.float32))
    keys = sample_keys(0, np.array([0]))
    sample_row(
        canvas.reshape(1, -1),
        db.sources,
        np.array([[[0, 1]]]),
        np.zeros((1, 1, 2, 0)),  # no semantic filter
        np.zeros(6, np.int64),
        np.zeros((1, 6), np.bool_),
        used,
        4,
        1,
        sampler.geometry(),
        sampler.canvas_geometry(),
        sampler.rule(),
        keys,
        out,
    )
    src_image, n_candidates = out[0][0, 1], out[3][0, 1]
    assert src_image.tolist() == expected_sources
    assert used[0].tolist() == [already_used + expected_sources.count(0), expected_sources.count(1)]
    assert (n_candidates == 1).all()


def test_no_sample_takes_more_than_its_budget_from_any_image(mnist_db):
    def most_from_one_image(out):
        return max(np.bincount(s.ravel()).max() for s in out.src_image)

    bounded = Sampler(mnist_db, k_min=1, max_source_share=0.05, batch_size=4).sample(4, class_label=5)
    unbounded = Sampler(mnist_db, k_min=1, max_source_share=1.0, batch_size=4).sample(4, class_label=5)
    assert most_from_one_image(bounded) <= source_budget(0.05, 784) < most_from_one_image(unbounded)


def test_same_output_whatever_the_batch_size_with_the_budget_and_the_mixture(mnist_db):
    whole = Sampler(mnist_db, seed=5, batch_size=6).sample(6)
    pieces = Sampler(mnist_db, seed=5, batch_size=4).sample(6)
    for name in ("images", "class_label", "src_image", "src_y", "src_x", "n_candidates", "distance"):
        np.testing.assert_array_equal(getattr(whole, name), getattr(pieces, name))


MNIST_TRAIN_COUNTS = np.array([5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949])


@pytest.mark.parametrize("class_draw", ["stratified", "independent"])
def test_mixture_classes_follow_the_training_class_shares_and_are_reproducible(class_draw):
    counts = MNIST_TRAIN_COUNTS
    drawn = draw_classes(0, np.arange(60_000), counts, class_draw)
    shares = np.bincount(drawn, minlength=10) / len(drawn)
    np.testing.assert_allclose(shares, counts / counts.sum(), atol=0.005)
    np.testing.assert_array_equal(drawn[100:200], draw_classes(0, np.arange(100, 200), counts, class_draw))
    sequences = {draw_classes(seed, np.arange(100), counts, class_draw).tobytes() for seed in range(20)}
    assert len(sequences) >= 15  # the seed changes the draw
    assert set(draw_classes(0, np.arange(1000), np.array([0, 3, 0, 1]), class_draw)) == {1, 3}


def test_a_stratified_draw_keeps_every_run_at_the_class_shares():
    """Any n consecutive samples hold each class within 4 of its share of n, at every seed; independent draws of
    1,000 samples spread several times wider."""
    counts, shares = MNIST_TRAIN_COUNTS, MNIST_TRAIN_COUNTS / MNIST_TRAIN_COUNTS.sum()
    for seed in range(20):
        for first, n in ((0, 1000), (0, 37), (517, 10_000)):
            drawn = draw_classes(seed, np.arange(first, first + n), counts)
            assert np.abs(np.bincount(drawn, minlength=10) - n * shares).max() <= 4.0, (seed, first, n)
    spread = [
        np.abs(np.bincount(draw_classes(s, np.arange(1000), counts, "independent"), minlength=10) - 1000 * shares).max()
        for s in range(20)
    ]
    assert np.median(spread) > 6
    starts = {int(draw_classes(s, np.arange(1), counts)[0]) for s in range(40)}
    assert len(starts) >= 8  # the first sample's class still varies with the seed


def test_unconditional_samples_are_conditioned_on_their_drawn_class(mnist_db):
    out = Sampler(mnist_db, seed=2, batch_size=8).sample(8)
    expected = draw_classes(2, np.arange(8), mnist_db.class_counts())
    np.testing.assert_array_equal(out.class_label, expected)
    assert (mnist_db.labels[out.src_image] == out.class_label[:, None, None]).all()
    pooled = Sampler(mnist_db, seed=2, batch_size=8, class_mixture=0).sample(8)
    assert (pooled.class_label == -1).all()
    assert any(len(set(mnist_db.labels[s.ravel()])) > 1 for s in pooled.src_image)


@pytest.fixture(scope="module")
def unconditional_run(tmp_path_factory, data_root):
    root = tmp_path_factory.mktemp("budget")
    return sample_run(root / "run", "mnist", 6, None, data_root=data_root, db_path=root / "db", command="test")


def _tampered(run, tmp_path, **params):
    import shutil

    copy = tmp_path / "tampered"
    shutil.copytree(run, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["params"].update(params)
    (copy / "manifest.json").write_text(json.dumps(manifest))
    return copy


def test_verify_proves_the_budget_and_the_drawn_classes(unconditional_run, data_root):
    report = verify_run(unconditional_run, data_root)
    assert report.ok and report.source_budget == 78 and 0 < report.max_source_pixels <= 78
    manifest = json.loads((unconditional_run / "manifest.json").read_text())
    assert manifest["params"]["max_source_share"] == 0.1 and manifest["params"]["source_budget"] == 78


def test_verify_catches_a_run_that_breaks_its_budget(unconditional_run, data_root, tmp_path):
    report = verify_run(unconditional_run, data_root)
    smaller = report.max_source_pixels - 1  # a budget the run breaks, claimed consistently (verify derives it again)
    tampered = _tampered(unconditional_run, tmp_path, max_source_share=smaller / 784, source_budget=smaller)
    found = verify_run(tampered, data_root)
    assert not found.ok and found.over_budget >= 1 and found.source_budget == smaller


def test_verify_catches_samples_outside_their_drawn_class(unconditional_run, data_root, tmp_path):
    tampered = verify_run(_tampered(unconditional_run, tmp_path, seed=12345), data_root)
    assert not tampered.ok and tampered.wrong_class > 0


def test_verify_reads_a_run_recorded_before_the_stratified_draw_as_independent(unconditional_run, data_root, tmp_path):
    """A run sampled with independent draws and recorded without class_draw (as before it existed) still verifies;
    claiming the other draw puts its samples in the wrong classes."""
    old = sample_run(
        tmp_path / "old",
        "mnist",
        12,
        None,
        data_root=data_root,
        db_path=unconditional_run.parent / "db",
        sampler_options={"class_draw": "independent"},
        command="test",
    )
    manifest = json.loads((old / "manifest.json").read_text())
    del manifest["params"]["class_draw"]
    (old / "manifest.json").write_text(json.dumps(manifest))
    assert verify_run(old, data_root).ok
    claimed = verify_run(_tampered(old, tmp_path, class_draw="stratified"), data_root)
    assert not claimed.ok and claimed.wrong_class > 0
