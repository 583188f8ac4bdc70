"""The sampling rule: admissibility on hand-computed cases, provenance faithfulness, determinism."""

import numpy as np
import pytest

from npgen.errors import NpgenError
from npgen.rule.batch import RowBatch
from npgen.rule.cpu import admissible_threshold, candidate_buffers, choose_admissible, score_candidates
from npgen.rule.sampler import Sampler


@pytest.mark.parametrize(
    "distances, eps, abs_tol, k_min, threshold",
    [
        ([4.0, 5.0, 4.3, 10.0], 0.1, 0.0, 1, 4.4),  # (1+eps)*d_min
        ([4.0, 5.0, 4.3, 10.0], 0.1, 0.0, 3, 5.0),  # widened to the 3rd nearest
        ([0.0, 0.0, 0.5, 2.0], 0.1, 1.0, 1, 1.0),  # d_min = 0: the absolute tolerance decides
        ([0.0, 3.0], 0.1, 0.0, 5, 3.0),  # k_min beyond the candidates: all admissible
    ],
)
def test_admissible_threshold_by_hand(distances, eps, abs_tol, k_min, threshold):
    assert admissible_threshold(np.array(distances, np.float32), eps, abs_tol, k_min) == pytest.approx(threshold)


def test_choice_is_uniform_over_the_admissible_candidates_in_order():
    distances = np.array([9.0, 1.0, 5.0, 1.0, 2.0], np.float32)
    assert choose_admissible(distances, 2.0, 0.0) == (1, 3)
    assert choose_admissible(distances, 2.0, 0.5) == (3, 3)
    assert choose_admissible(distances, 2.0, 0.99) == (4, 3)


def test_every_pixel_is_copied_from_its_recorded_source(mnist_db):
    out = Sampler(mnist_db, radius=1, batch_size=4).sample(4, class_label=7)
    train = mnist_db.images()
    np.testing.assert_array_equal(out.images[..., 0], train[out.src_image, out.src_y, out.src_x][..., 0])
    assert (mnist_db.labels[out.src_image] == 7).all()
    ys, xs = np.indices(out.src_y.shape[1:])
    assert np.abs(out.src_y - ys).max() <= 1 and np.abs(out.src_x - xs).max() <= 1
    assert (out.n_candidates >= 1).all() and (out.distance >= 0).all()


def test_same_seed_same_output_whatever_the_batch_size(mnist_db):
    whole = Sampler(mnist_db, seed=3, batch_size=6).sample(6, class_label=2)
    pieces = Sampler(mnist_db, seed=3, batch_size=4).sample(6, class_label=2)
    later = Sampler(mnist_db, seed=3, batch_size=2).sample(3, class_label=2, start=3)
    for name in ("images", "src_image", "src_y", "src_x", "n_candidates", "distance"):
        np.testing.assert_array_equal(getattr(whole, name), getattr(pieces, name))
        np.testing.assert_array_equal(getattr(whole, name)[3:], getattr(later, name))
    other = Sampler(mnist_db, seed=4, batch_size=6).sample(6, class_label=2)
    assert not np.array_equal(whole.images, other.images)


def test_k_min_one_copies_long_runs_and_larger_k_min_composes_parts(mnist_db):
    def top_share(out):
        return np.median([np.bincount(s.ravel()).max() / s.size for s in out.src_image])

    copying = Sampler(mnist_db, k_min=1, max_source_share=1.0, batch_size=8).sample(8, class_label=0)
    composing = Sampler(mnist_db, k_min=4, max_source_share=1.0, batch_size=8).sample(8, class_label=0)
    assert top_share(composing) < top_share(copying)


def test_without_pool_every_image_of_the_class_is_a_candidate(mnist_db):
    out = Sampler(mnist_db, pool_size=0, batch_size=2).sample(2, class_label=1)
    assert (mnist_db.labels[out.src_image] == 1).all()
    assert len(np.unique(out.src_image)) > 100


@pytest.mark.parametrize(
    "option",
    [
        {"eps": -1},
        {"eps": float("inf")},
        {"eps": float("nan")},
        {"k_min": 0},
        {"k_min": 10**12},
        {"radius": -1},
        {"pool_size": -3},
        {"batch_size": 0},
        {"sigma": 0.02},
        {"max_source_share": 0},
        {"max_source_share": 1.5},
        {"class_mixture": 2},
        {"k_min": 2.5},
    ],
)
def test_invalid_parameters_are_refused_with_their_range(mnist_db, option):
    with pytest.raises(NpgenError, match=f"invalid {next(iter(option))}=.*must be"):
        Sampler(mnist_db, **option)


def test_a_budget_too_small_for_the_pool_is_refused_before_sampling(mnist_db):
    with pytest.raises(NpgenError, match="max-source-share >= 0.101"):
        Sampler(mnist_db, pool_size=10, max_source_share=0.05).sample(1, class_label=3)


def test_small_sigma_gives_finite_weights_and_a_faithful_sample(mnist_db):
    out = Sampler(mnist_db, sigma=0.1, radius=2, batch_size=2).sample(2, class_label=3)
    assert (out.n_candidates >= 1).all() and np.isfinite(out.distance).all()
    np.testing.assert_array_equal(out.images[..., 0], mnist_db.images()[out.src_image, out.src_y, out.src_x][..., 0])


def test_unknown_class_is_refused(mnist_db):
    with pytest.raises(NpgenError, match="out of range"):
        Sampler(mnist_db).sample(1, class_label=10)


def admissible_set(db, sampler, canvas, pool, y, x, hint):
    """(threshold, sorted (image, position, distance) of the admissible candidates) of one pixel."""
    rule, geometry = sampler.rule(), sampler.geometry()
    scratch = candidate_buffers(len(pool), geometry, rule)
    used = np.zeros(db.n_images, np.int32)
    semantic = np.zeros((len(pool), 0))
    n, threshold, _ = score_candidates(
        canvas, db.sources, pool, semantic, used, 5, y, x, geometry, geometry, rule, scratch, hint
    )
    dist, image, pos = scratch.distance[:n], scratch.image[:n], scratch.position[:n]
    keep = dist <= threshold
    return threshold, sorted(zip(image[keep].tolist(), pos[keep].tolist(), dist[keep].tolist()))


def test_the_windows_scored_first_change_no_admissible_set(mnist_db):
    """The kernel scores a neighbour's continuation first to stop other windows early; whether the hint is a
    candidate or not (here: the canvas's own training image, at distance 0, outside the pool), the admissible
    set must be the one computed without hints."""
    sampler = Sampler(mnist_db, radius=1, pool_size=20)
    members = mnist_db.class_members(4)
    truth = int(members[0])  # the canvas is this training image; the pool leaves it out
    batch = RowBatch.start(mnist_db, 0, np.arange(1), members[1:], sampler.pool_size, images=mnist_db.images()[[truth]])
    for (y, pool), x in zip(batch.rows(), range(0, 28, 3)):
        if y < 8:
            continue
        canvas, pool = batch.flat_canvas[0], pool[0]
        expected = admissible_set(mnist_db, sampler, canvas, pool, y, x, (-1, -1))
        position = y * mnist_db.width + x
        for hint in (
            (truth, position),
            (int(pool[0]), position),
            (int(pool[1]), position + 1),
        ):  # the first: distance 0, not a candidate
            assert admissible_set(mnist_db, sampler, canvas, pool, y, x, hint) == expected, hint
