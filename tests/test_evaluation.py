"""Scoring sample sets against real data: near-copies, the training-set floor, and feature-space scores."""

from __future__ import annotations

import numpy as np
import pytest

from npgen.data.datasets import load_dataset
from npgen.errors import NpgenError
from npgen.evaluation.scores import Reference, evaluate_images


@pytest.fixture(scope="module")
def reference(mnist_subset, data_root) -> Reference:
    test = load_dataset("mnist", split="test", data_root=data_root).subset(np.arange(1000))
    return Reference(mnist_subset, test)


def test_copies_of_training_images_are_near_copies_and_real_unseen_images_are_not(reference):
    copies = reference.train.images[:50]
    scores = evaluate_images(copies, np.full(50, -1), reference)
    assert scores["near_copy_rate"] == 1.0 and scores["pixel_nn_distance"]["p90"] == 0.0
    unseen = evaluate_images(reference.test.images, reference.test.labels, reference)
    assert unseen["near_copy_rate"] == pytest.approx(0.01, abs=0.001)  # the threshold is their 1st percentile
    assert "fid" not in unseen  # no classifier: pixel-space scores only


def test_the_floor_scores_training_images_without_their_own_copy(reference):
    floor = reference.floor(100)
    assert floor["n"] == 100
    assert floor["pixel_nn_distance"]["p1"] > 0  # each image's own copy is skipped
    assert floor["near_copy_rate"] < 0.1


def test_bad_inputs_are_refused(reference, all_data_root):
    with pytest.raises(NpgenError, match="uint8 of shape"):
        evaluate_images(np.zeros((20, 32, 32, 3), np.uint8), np.full(20, -1), reference)
    with pytest.raises(NpgenError, match="at least 10"):
        evaluate_images(reference.train.images[:3], np.full(3, -1), reference)
    cifar = load_dataset("cifar10", split="test", data_root=all_data_root).subset(np.arange(10))
    with pytest.raises(NpgenError, match="differ in shape"):
        Reference(reference.train, cifar)


def test_classifier_features_fid_and_class_fidelity(reference, tmp_path):
    pytest.importorskip("torch")
    from npgen.evaluation.features import load_classifier, train_classifier

    classifier = train_classifier(reference.train, reference.test, epochs=2, width=8, batch_size=32)
    assert classifier.test_accuracy > 0.6
    classifier.save(tmp_path / "mnist.pt")
    loaded = load_classifier(tmp_path / "mnist.pt", reference.train)
    images = reference.test.images[:64]
    assert np.allclose(loaded.features(images), classifier.features(images), atol=1e-5)
    with pytest.raises(NpgenError, match="other data"):
        load_classifier(tmp_path / "mnist.pt", reference.test)
    (tmp_path / "broken.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(NpgenError, match="cannot read classifier"):
        load_classifier(tmp_path / "broken.pt")

    scored = Reference(reference.train, reference.test, loaded)
    real = evaluate_images(reference.test.images[:200], reference.test.labels[:200], scored)
    noise = np.random.default_rng(0).integers(0, 256, size=(200, 28, 28, 1), dtype=np.uint8)
    fake = evaluate_images(noise, np.zeros(200, np.int64), scored)
    assert real["fid"] < fake["fid"] / 10
    assert 0 < real["fid_bootstrap_sd"] and fake["fid_bootstrap_sd"] < fake["fid"] / 5
    assert real["class_accuracy"] > 0.6 and real["class_confidence"] > 0.5
    assert fake["precision"] < real["precision"]
    assert sum(real["predicted_class_share"]) == pytest.approx(1.0)
