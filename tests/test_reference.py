"""The numba sampler against the plain-numpy reference (tests/reference.py), bit for bit, on real data."""

import numpy as np
import pytest
from reference import reference_pool, reference_pyramid_sample, reference_sample

from npgen.data.database import Database, WindowParams
from npgen.data.datasets import load_dataset
from npgen.params import PARAMS, SAMPLER_PARAMS
from npgen.rule.rng import sample_keys
from npgen.rule.sampler import Sampler

FIELDS = ("src_image", "src_y", "src_x", "n_candidates", "distance")


@pytest.fixture(scope="module")
def cifar_db(data_root, tmp_path_factory):
    subset = load_dataset("cifar10", data_root=data_root).subset(np.arange(1500))
    return Database.build(
        subset, tmp_path_factory.mktemp("db") / "cifar-subset", WindowParams(half_window=1, retrieval_block=4)
    )


def assert_matches_reference(db, options: dict, class_label, indices=(0, 1, 2)):
    sampler = Sampler(db, batch_size=2, **options)
    out = sampler.sample(len(indices), class_label, start=indices[0])
    params = {name: getattr(sampler, name) for name in SAMPLER_PARAMS}
    for row, index in enumerate(indices):
        expected = reference_sample(db, params, index, class_label)
        np.testing.assert_array_equal(out.images[row], expected["image"], err_msg=f"sample {index}: image")
        assert out.class_label[row] == expected["class_label"]
        for name in FIELDS:
            np.testing.assert_array_equal(getattr(out, name)[row], expected[name], err_msg=f"sample {index}: {name}")


def assert_pyramid_matches(db, sampler, class_label, indices, class_map=None, given=None):
    """Every level of the sampler's samples `indices` (consecutive) against the reference, bit for bit; `given`
    = (inputs, known), input i completed by sample i."""
    out = sampler.sample(len(indices), class_label, start=indices[0])
    params = {name: getattr(sampler, name) for name in SAMPLER_PARAMS}
    for row, index in enumerate(indices):
        completion = None if given is None else (given[0][index], given[1][index])
        expected = reference_pyramid_sample(db, params, index, class_label, class_map, completion)
        for level, (got, want) in enumerate([(out, expected), *zip(out.coarser, expected["coarser"])]):
            np.testing.assert_array_equal(got.images[row], want["image"], err_msg=f"sample {index} level {level}")
            for name in FIELDS:
                np.testing.assert_array_equal(
                    getattr(got, name)[row], want[name], err_msg=f"sample {index} level {level}: {name}"
                )
    return out


@pytest.mark.parametrize(
    "options, class_label",
    [
        ({}, 3),  # the defaults, class-conditional
        ({}, None),  # the class mixture, stratified
        ({"class_draw": "independent"}, None),  # the class mixture, each sample its own draw
        ({"class_mixture": 0, "pool_size": 40}, None),  # every image, a small pool
        pytest.param(  # widening, locality, a tight budget
            {"k_min": 3, "radius": 1, "max_source_share": 0.05, "pool_size": 30}, 7, marks=pytest.mark.slow
        ),
        ({"eps": 0.5, "abs_tol": 0.0, "max_source_share": 1.0, "sigma": 0.5}, 1),  # no budget, other weights
        pytest.param({"pool_size": 0, "k_min": 2}, 9, marks=pytest.mark.slow),  # no pool: every image of the class
        ({"max_part_share": 0.01, "eps": 0.0, "max_source_share": 1.0}, 5),  # copied parts of at most 7 pixels
        ({"outside_canvas": "ignored", "radius": 2, "pool_size": 20}, 2),  # context only where the canvas is
    ],
)
def test_numba_sampler_matches_the_reference_on_mnist(mnist_db, options, class_label):
    assert_matches_reference(mnist_db, options, class_label)


@pytest.fixture(scope="module")
def cifar_codes_db(data_root, tmp_path_factory):
    subset = load_dataset("cifar10", data_root=data_root).subset(np.arange(1500))
    params = WindowParams(half_window=2, retrieval_block=4, retrieval="codes")
    return Database.build(subset, tmp_path_factory.mktemp("db") / "cifar-codes", params)


@pytest.mark.parametrize(
    "options, class_label",
    [
        ({}, 3),
        pytest.param({"k_min": 2, "radius": 1}, None, marks=pytest.mark.slow),
        ({"max_source_share": 0.02}, 8),
        ({"max_part_share": 0.005}, 1),
    ],
)
def test_numba_sampler_matches_the_reference_on_cifar10(cifar_db, options, class_label):
    assert_matches_reference(cifar_db, options, class_label, indices=(5,))


def test_numba_sampler_matches_the_reference_with_learned_patch_codes(cifar_codes_db):
    assert_matches_reference(cifar_codes_db, {"pool_size": 50}, 6, indices=(0,))
    assert_matches_reference(cifar_codes_db, {}, None, indices=(1,))


def test_every_source_is_among_the_pool_nearest_to_the_canvas_prefix(mnist_db):
    pool_size = PARAMS["pool_size"].default
    out = Sampler(mnist_db, seed=1, batch_size=3).sample(3, class_label=4)
    allowed = np.flatnonzero(np.asarray(mnist_db.labels) == 4)
    representations = np.asarray(mnist_db.representations)
    for row, key in enumerate(sample_keys(1, np.arange(3))):
        for y in range(mnist_db.height):
            nearest = reference_pool(out.images[row, :y], representations, allowed, key, mnist_db.encoder, pool_size)
            assert np.isin(out.src_image[row, y], nearest).all(), f"sample {row} row {y} copies from outside its pool"


@pytest.mark.slow  # the fast lane keeps the semantic filter's reference test on CIFAR-10 and patch codes
@pytest.mark.parametrize(
    "options, class_label",
    [
        ({"semantic_eps": 0.5, "max_source_share": 0.2}, 3),  # the filter, two blocks of context
        ({"semantic_eps": 0.0, "semantic_context": 1, "radius": 1, "max_source_share": 0.05, "pool_size": 30}, None),
    ],
)
def test_the_semantic_filter_matches_the_reference_and_changes_the_samples(mnist_db, options, class_label):
    assert_matches_reference(mnist_db, options, class_label, indices=(0, 1))
    off = {k: v for k, v in options.items() if not k.startswith("semantic")}
    with_filter = Sampler(mnist_db, batch_size=2, **options).sample(2, class_label)
    without = Sampler(mnist_db, batch_size=2, **off).sample(2, class_label)
    assert (with_filter.src_image != without.src_image).mean() > 0.1  # the filter is not a no-op


def test_the_semantic_filter_matches_the_reference_on_cifar10_and_patch_codes(cifar_db, cifar_codes_db):
    assert_matches_reference(cifar_db, {"semantic_eps": 1.0, "radius": 1, "max_source_share": 0.3}, 2, indices=(4,))
    assert_matches_reference(cifar_codes_db, {"semantic_eps": 1.0, "semantic_context": 3}, 6, indices=(2,))


@pytest.mark.parametrize(
    "options, class_label",
    [
        ({"levels": 2}, 3),  # the coarse sample chooses the pool
        pytest.param(  # the coarse term, the class mixture (the fast lane keeps the coarse term at three levels)
            {"levels": 2, "coarse_weight": 1.0, "radius": 1}, None, marks=pytest.mark.slow
        ),
        ({"levels": 3, "coarse_weight": 0.5, "max_source_share": 0.05, "pool_size": 30, "k_min": 2}, 7),
        (
            {
                "levels": 2,
                "coarse_weight": 1.0,
                "anchor": "parent",
                "radius": 1,
                "pool_size": 5,
                "max_source_share": 0.3,
            },
            1,
        ),
        (  # a single image's preset, less its budget: parts bounded at every level
            {
                "levels": 2,
                "coarse_weight": 1.0,
                "anchor": "parent",
                "radius": 1,
                "pool_size": 3,
                "max_source_share": 1.0,
                "max_part_share": 0.03,
            },
            4,
        ),
    ],
)
def test_pyramid_matches_the_reference_on_mnist(mnist_db, options, class_label):
    """Every level of a pyramid sample, bit for bit: images, provenance and the coarser levels' own records."""
    out = assert_pyramid_matches(mnist_db, Sampler(mnist_db, batch_size=2, **options), class_label, (4, 5))
    assert len(out.coarser) == options["levels"] - 1


@pytest.mark.slow  # the fast lane keeps the pyramid's reference on MNIST
def test_pyramid_matches_the_reference_on_cifar10(cifar_db):
    sampler = Sampler(cifar_db, batch_size=3, levels=2, coarse_weight=1.0, radius=1, pool_size=20)
    assert_pyramid_matches(cifar_db, sampler, 2, (0, 1, 2))


SINGLE_IMAGE_PYRAMID = {  # the single-image rule on one picture: no pool, no budget, finer levels anchored
    "levels": 2,
    "anchor": "parent",
    "coarse_weight": 1.0,
    "radius": 1,
    "max_source_share": 1.0,
    "pool_size": 0,
}


@pytest.mark.parametrize(
    "options",
    [
        {"size": "24x40", "radius": 2, "max_source_share": 1.0, "pool_size": 0},  # relative positions
        # a wider, shorter picture through the single-image pyramid, parts bounded
        {**SINGLE_IMAGE_PYRAMID, "size": "24x48", "max_part_share": 0.1},
        # the single-image preset's rule at another size: context outside the canvas ignored
        {**SINGLE_IMAGE_PYRAMID, "size": "40x24", "max_part_share": 0.25, "outside_canvas": "ignored"},
        # ... with the coarsest level's reuse bounded: each source pixel copied once at most (240 of 256)
        {**SINGLE_IMAGE_PYRAMID, "size": "40x24", "max_reuse": 1.0, "outside_canvas": "ignored"},
        {"size": "16x16", "radius": 32, "max_source_share": 1.0, "max_reuse": 1.0, "pool_size": 0},  # one level
    ],
)
def test_another_output_size_matches_the_reference(one_image_db, options):
    """--size: samples of another size than the picture, every level bit for bit against the reference."""
    out = assert_pyramid_matches(one_image_db, Sampler(one_image_db, batch_size=2, **options), None, (0, 1))
    height, width = map(int, options["size"].split("x"))
    assert out.images.shape == (2, height, width, 3)


PYRAMIDS = [
    {"levels": 2},  # the coarse sample chooses each region's pool
    {"levels": 2, "coarse_weight": 1.0, "anchor": "parent", "radius": 1, "pool_size": 5, "max_source_share": 0.3},
]


@pytest.mark.parametrize("options", PYRAMIDS)
def test_a_class_map_holds_at_every_pyramid_level_as_the_reference_says(mnist_db, options):
    """Sevens above row 13, ones below, any digit in the bottom-right corner: the boundary falls inside level 1's
    sixth row of blocks, which takes its top-left pixel's class."""
    class_map = np.where(np.arange(28)[:, None] < 13, 7, 1).repeat(28, axis=1)
    class_map[20:, 20:] = -1
    sampler = Sampler(mnist_db, batch_size=2, class_map=class_map, **options)
    out = assert_pyramid_matches(mnist_db, sampler, None, (0, 1), class_map=class_map)
    labels = np.asarray(mnist_db.labels)
    assert (labels[out.coarser[0].src_image[:, :7]] == 7).all() and (
        labels[out.coarser[0].src_image[:, 7:10]] == 1
    ).all()


@pytest.mark.parametrize("options", PYRAMIDS)
def test_a_completion_holds_at_every_pyramid_level_as_the_reference_says(mnist_db, data_root, options):
    """A hole with odd edges: level 1 generates every block that holds a generated pixel and keeps the others as
    the exact means of the input's blocks."""
    from npgen.control.completion import Completion

    inputs = load_dataset("mnist", data_root=data_root, split="test").images[:2]
    known = np.ones((2, 28, 28), bool)
    known[:, 9:21, 5:23] = False
    sampler = Sampler(mnist_db, batch_size=2, completion=Completion(inputs, known, 1), class_mixture=0, **options)
    out = assert_pyramid_matches(mnist_db, sampler, None, (0, 1), given=(inputs, known))
    assert (out.src_image[known] == -1).all() and (out.images[known] == inputs[known]).all()
    coarse_known = (out.coarser[0].src_image == -1)[0]
    assert coarse_known[:4].all() and not coarse_known[4:11, 2:12].any() and coarse_known[11:].all()
