"""Score a set of generated images against a dataset: quality, class fidelity and novelty.

The same function scores npgen runs, neural baselines and real images, so every method is measured
the same way on the same machine:

- novelty: each image's L2 distance to its nearest training image in pixels (and in features),
  reported as a distribution; the near-copy rate is the share closer than the 1st percentile of
  test-to-train distances, i.e. closer than 99% of real unseen images are;
- with a classifier (`npgen.evaluation.features`): Frechet distance to the test set in its features ("FID",
  not comparable with Inception FIDs) with its bootstrap standard deviation over the images (how
  much of a difference between two methods the sample size can resolve), k-NN precision and recall against a test subset of the same
  size, and for class-conditional images the classifier's accuracy on the requested class and its
  mean probability for it. `floor` gives the same numbers for a random training subset of the same
  size: the best a generator can hope for at that sample size.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from npgen import __version__
from npgen.data.datasets import Dataset
from npgen.data.files import array_sha256, cache_root, write_json
from npgen.data.index import build_flat_index, build_image_index, search
from npgen.errors import NpgenError
from npgen.evaluation.features import classifier_path, load_classifier
from npgen.evaluation.metrics import distribution_summary, frechet_distance, near_copy_threshold, precision_recall
from npgen.runs.run import Run, load_test_split


@dataclass
class Reference:
    """The training and test splits (and optionally a classifier) that images are scored against."""

    train: Dataset
    test: Dataset
    classifier: object | None = None  # npgen.evaluation.features.Classifier
    class_label: int | None = None  # score against this class's test images only
    seed: int = 0
    counter: Callable[[int, str], Callable[[int], None] | None] = lambda total, unit: None  # progress of long steps

    def __post_init__(self) -> None:
        if self.train.images.shape[1:] != self.test.images.shape[1:]:
            raise NpgenError(
                f"train and test images differ in shape: {self.train.images.shape[1:]} vs {self.test.images.shape[1:]}"
            )

    @cached_property
    def train_index(self):
        return build_image_index(self.train.images)

    @property
    def threshold_file(self) -> Path:
        """Where npgen's cache keeps the near-copy threshold of these two splits (`near_copy_threshold`)."""
        train, test = self.train, self.test
        name = f"near-copy-{train.name}-{train.images_sha256[:12]}-{test.images_sha256[:12]}.json"
        return cache_root() / "eval" / name

    def cached_threshold(self) -> float | None:
        """The near-copy threshold kept in the cache for exactly these splits, else None."""
        try:
            record = json.loads(self.threshold_file.read_text())
            if (record["train_sha256"], record["test_sha256"]) == (self.train.images_sha256, self.test.images_sha256):
                return float(record["near_copy_threshold"])
        except (OSError, ValueError, TypeError, KeyError):
            pass
        return None

    @cached_property
    def near_copy_threshold(self) -> float:
        """1st percentile of the test images' distances to their nearest training image (pixels). It depends on the
        two splits alone and is most of an evaluation's time (22 s for MNIST on 2 cores), so the cache keeps it
        under their SHA-256 (`threshold_file`)."""
        cached = self.cached_threshold()
        if cached is not None:
            return cached
        value = near_copy_threshold(
            self.train_index, self.test.images, progress=self.counter(self.test.n_images, "test images searched")
        )
        record = {"train_sha256": self.train.images_sha256, "test_sha256": self.test.images_sha256}
        try:
            self.threshold_file.parent.mkdir(parents=True, exist_ok=True)
            write_json(self.threshold_file, {**record, "near_copy_threshold": value})
        except (OSError, NpgenError):
            pass  # a cache that cannot be written: the value is right all the same, the next eval searches again
        return value

    @cached_property
    def train_features(self) -> np.ndarray:
        """Classifier features of the whole training split (cached on disk beside the classifier's weights)."""
        return self.classifier.dataset_features(self.train, self.counter(self.train.n_images, "training images"))

    @cached_property
    def test_features(self) -> np.ndarray:
        """Classifier features of the test images generated images are compared with: all, or those of `class_label`."""
        members = slice(None) if self.class_label is None else self.test.labels == self.class_label
        return self.classifier.dataset_features(self.test, self.counter(self.test.n_images, "test images"))[members]

    @cached_property
    def feature_index(self):
        return build_flat_index(self.train_features)

    def floor(self, n: int) -> dict:
        """The scores of n random training images (with their labels as requested classes)."""
        members = (
            np.arange(self.train.n_images)
            if self.class_label is None
            else np.flatnonzero(self.train.labels == self.class_label)
        )
        ids = np.sort(np.random.default_rng(self.seed).choice(members, size=min(n, len(members)), replace=False))
        return evaluate_images(self.train.images[ids], self.train.labels[ids], self, exclude_train=ids)


def evaluate_images(
    images: np.ndarray, class_labels: np.ndarray, reference: Reference, exclude_train: np.ndarray | None = None
) -> dict:
    """Scores of images (uint8 (N, H, W, C)); class_labels[i] is the requested class, or -1 when unconditional.

    `exclude_train` (only for scoring training images themselves) drops each image's own copy when
    measuring its distance to the training set.
    """
    train = reference.train
    if images.ndim != 4 or images.shape[1:] != train.images.shape[1:] or images.dtype != np.uint8:
        raise NpgenError(
            f"images must be uint8 of shape (N, {', '.join(map(str, train.images.shape[1:]))}), got {images.dtype} {images.shape}"
        )
    if len(images) < 10:
        raise NpgenError(f"scoring needs at least 10 images, got {len(images)}")
    class_labels = np.asarray(class_labels, dtype=np.int64)
    k = 1 if exclude_train is None else 2
    pixel_distance, pixel_nearest = search(reference.train_index, images, k)
    pixel_distance = _nearest_other(pixel_distance, pixel_nearest, exclude_train)
    scores = {
        "n": len(images),
        "pixel_nn_distance": distribution_summary(pixel_distance),
        "near_copy_threshold": reference.near_copy_threshold,
        "near_copy_rate": float((pixel_distance < reference.near_copy_threshold).mean()),
    }
    if reference.classifier is None:
        return scores
    features, probabilities = reference.classifier.predict(images)
    test_features = reference.test_features
    real = test_features[
        np.random.default_rng(reference.seed + 1).choice(
            len(test_features), size=min(len(images), len(test_features)), replace=False
        )
    ]
    precision, recall = precision_recall(real, features, k=3)
    feature_distance, feature_nearest = search(reference.feature_index, features, k)
    scores.update(
        fid=frechet_distance(features, test_features),
        fid_bootstrap_sd=_bootstrap_sd(features, test_features, reference.seed),
        precision=precision,
        recall=recall,
        feature_nn_distance=distribution_summary(_nearest_other(feature_distance, feature_nearest, exclude_train)),
        predicted_class_share=(
            np.bincount(probabilities.argmax(axis=1), minlength=probabilities.shape[1]) / len(images)
        ).tolist(),
    )
    conditional = class_labels >= 0
    if conditional.any():
        rows = np.flatnonzero(conditional)
        scores["class_accuracy"] = float((probabilities[rows].argmax(axis=1) == class_labels[rows]).mean())
        scores["class_confidence"] = float(probabilities[rows, class_labels[rows]].mean())
    return scores


def _bootstrap_sd(features: np.ndarray, test_features: np.ndarray, seed: int, resamples: int = 20) -> float:
    """Standard deviation of the FID over resamplings (with replacement) of the scored images."""
    rng = np.random.default_rng(seed + 2)
    n = len(features)
    return float(np.std([frechet_distance(features[rng.integers(0, n, n)], test_features) for _ in range(resamples)]))


def _nearest_other(distances: np.ndarray, ids: np.ndarray, exclude: np.ndarray | None) -> np.ndarray:
    """Distance to the nearest training image, skipping each query's own index when `exclude` is given."""
    if exclude is None:
        return distances[:, 0]
    own = ids[:, 0] == np.asarray(exclude)
    return np.where(own, distances[:, 1], distances[:, 0])


# ---- `npgen eval`: score a run and write RUN/eval.json ----


def _classifier_for(train: Dataset, path: str | os.PathLike | None) -> tuple[object | None, Path, str | None]:
    """(classifier, its path, None) to score in, or (None, path, why not): a named one must load, the default may be absent."""
    if path is not None:
        return load_classifier(path, train), Path(path), None
    default = classifier_path(train.name)
    if not default.is_file():
        return (
            None,
            default,
            f"feature-space scores: no classifier at {default} (python benchmarks/quality/classifier.py {train.name})",
        )
    try:
        return load_classifier(default, train), default, None
    except NpgenError as err:
        return None, default, f"feature-space scores: {err}"


class StepNotes:
    """Tells `say` each of `n_steps` steps as it starts, and within a long step how far it is every `every` seconds."""

    def __init__(self, say: Callable[[str], None], n_steps: int, every: float = 5.0) -> None:
        self.say, self.n_steps, self.every, self.done = say, n_steps, every, 0

    def step(self, what: str) -> None:
        self.done += 1
        self.say(f"eval [{self.done}/{self.n_steps}] {what} ...")

    def counter(self, total: int, unit: str) -> Callable[[int], None]:
        """A progress(k) callback for `total` items of this step: a line every `every` seconds while it lasts."""
        started = last = time.monotonic()
        count = 0

        def advance(k: int) -> None:
            nonlocal count, last
            count += k
            now = time.monotonic()
            if now - last >= self.every and count < total:
                last = now
                rate = count / max(now - started, 1e-9)
                self.say(
                    f"  {count}/{total} {unit} ({100 * count // max(total, 1)}%), ETA {(total - count) / rate:.0f} s"
                )

        return advance


def _score_key(run: Run, classifier: Path | None) -> dict:
    """What a run's scores depend on: npgen's version, the samples' bytes, the training data (its SHA-256 in the
    manifest) and the classifier file (path, size, modification time; absent is a state too)."""
    record = run.manifest["dataset"]
    try:
        stat = classifier.stat() if classifier is not None else None
    except OSError:
        stat = None
    return {
        "npgen_version": __version__,
        "samples_sha256": array_sha256(np.asarray(run.samples)),
        "dataset": [record.get("name"), record.get("images_sha256"), record.get("labels_sha256")],
        "classifier": None if stat is None else [str(classifier), stat.st_size, stat.st_mtime_ns],
    }


def cached_scores(run: Run, key: dict) -> dict | None:
    """The scores in RUN/eval.json if they were computed for `key`, else None."""
    try:
        scores = json.loads((run.path / "eval.json").read_text())
    except (OSError, ValueError):
        return None
    return scores if isinstance(scores, dict) and scores.get("key") == key else None


def evaluate_run(
    run_path: str | os.PathLike,
    data_root=None,
    classifier: str | os.PathLike | None = None,
    note: Callable[[str], None] | None = None,
) -> dict:
    """Score a run (`npgen.evaluation.scores`) and write the scores to RUN/eval.json.

    Feature-space scores need torch and a classifier: `classifier` names its file; by default the one
    benchmarks/quality/classifier.py trains for the run's dataset is used when it exists, and without it
    only pixel-space scores are computed (the reason is recorded under "skipped"). The scores are kept with
    what they depend on (`_score_key`): a second call on the same run, data and classifier reads them back.
    `note` is told each step (`eval [i/n] ...`) as it starts.
    """
    run = Run(run_path)
    if list(run.sample_shape) != list(run.manifest["dataset"]["shape"]):
        raise NpgenError(
            f"run {run.path} was sampled at --size {run.manifest['params']['size']}, and its scores compare samples "
            "with the dataset's test images of their own size; evaluate a run of the dataset's size"
        )
    target = run.output_path("eval.json")  # refuses a link there before any work
    say = note or (lambda text: None)
    key = _score_key(
        run, Path(classifier) if classifier is not None else classifier_path(run.manifest["dataset"]["name"])
    )
    named_but_missing = classifier is not None and not Path(classifier).is_file()  # an error, never a cached answer
    cached = None if named_but_missing else cached_scores(run, key)
    if cached is not None:
        say(f"scores of {run.path} are up to date in {target}; nothing to recompute")
        return cached
    notes = StepNotes(say, 6)
    step = notes.step
    step("loading the training and test splits")
    train = run.dataset(data_root)
    test = load_test_split(train, run.data_root(data_root), "evaluating")
    loaded, path, skipped = _classifier_for(train, classifier)
    images = np.asarray(run.samples)
    class_label = run.manifest["class_label"]
    labels = np.full(len(images), -1 if class_label is None else class_label)
    reference = Reference(train, test, loaded, class_label, counter=notes.counter)
    step(f"indexing {train.n_images} training images")
    reference.train_index
    if reference.cached_threshold() is None:
        step(f"near-copy threshold: the nearest training image of {test.n_images} test images")
    else:
        step(f"near-copy threshold: read from {reference.threshold_file}")
    reference.near_copy_threshold
    step("classifier features of the training and test splits" if loaded is not None else "no classifier: skipped")
    if loaded is not None:
        reference.feature_index, reference.test_features
    step(f"scoring {len(images)} samples")
    scores = {"run": str(run.path), "samples": evaluate_images(images, labels, reference)}
    step(f"scoring {len(images)} training images (the floor)")
    scores["floor"] = reference.floor(len(images))
    if loaded is not None:
        scores["classifier"] = {"path": str(path), "test_accuracy": loaded.test_accuracy}
    if skipped:
        scores["skipped"] = skipped
    scores["key"] = key
    write_json(target, scores)
    return scores
