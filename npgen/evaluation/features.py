"""Feature space for evaluation: a small CNN classifier trained here on the dataset's training split.

There is no internet, so Inception features (and hence published FIDs) are out of reach. Instead
each dataset gets a small classifier trained by `python benchmarks/quality/classifier.py`; its penultimate
layer is the feature space of `npgen eval`'s Frechet distance and precision/recall, and its softmax
gives class fidelity. Numbers in this space are comparable between methods scored with the same
weights, not with published Inception FIDs.

Needs torch (`pip install -e .[bench]`); the rest of npgen does not.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from npgen.data.files import atomic_write, cache_root, write_array
from npgen.errors import NpgenError

try:
    import torch
    from torch import nn
except ImportError:  # pragma: no cover - depends on the environment
    torch = None

FEATURE_DIM = 128


def require_torch() -> None:
    if torch is None:
        raise NpgenError("feature-space metrics need torch: pip install -e '.[bench]'")


def classifier_path(dataset_name: str) -> Path:
    """Where benchmarks/quality/classifier.py keeps a dataset's classifier: $NPGEN_CACHE/classifiers/<name>.pt."""
    return cache_root() / "classifiers" / f"{dataset_name}.pt"


def _network(channels: int, n_classes: int, width: int) -> "nn.Module":
    """Three conv stages (each two 3x3 conv + BN + ReLU, then 2x2 max-pool), global average pool, 128-d features."""

    def stage(c_in: int, c_out: int) -> list:
        layers = []
        for c in (c_in, c_out):
            layers += [nn.Conv2d(c, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
        return layers + [nn.MaxPool2d(2)]

    body = nn.Sequential(
        *stage(channels, width),
        *stage(width, 2 * width),
        *stage(2 * width, 4 * width),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4 * width, FEATURE_DIM),
        nn.ReLU(inplace=True),
    )
    return nn.ModuleDict({"body": body, "head": nn.Linear(FEATURE_DIM, n_classes)})


def _to_tensor(images: np.ndarray) -> "torch.Tensor":
    return torch.from_numpy(np.array(images, copy=True)).permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)


@dataclass
class Classifier:
    """A trained classifier and what it was trained on; `features` and `probabilities` take uint8 (N, H, W, C)."""

    network: "nn.Module"
    dataset_name: str
    images_sha256: str
    image_shape: tuple[int, int, int]
    test_accuracy: float
    train_seconds: float
    digest: str = ""  # SHA-256 of the weights file, when loaded from one
    cache_dir: Path | None = None  # where features of whole splits are cached: beside the weights file

    def predict(
        self, images: np.ndarray, batch_size: int = 500, progress: Callable[[int], None] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(features, probabilities) of uint8 (N, H, W, C) images, in batches (`progress(k)` after each)."""
        if images.ndim != 4 or tuple(images.shape[1:]) != self.image_shape or images.dtype != np.uint8:
            raise NpgenError(
                f"the {self.dataset_name} classifier takes uint8 images of shape (N, {', '.join(map(str, self.image_shape))}), got {images.dtype} {images.shape}"
            )
        self.network.eval()
        features, probabilities = [], []
        with torch.inference_mode():
            for first in range(0, len(images), batch_size):
                f = self.network["body"](_to_tensor(images[first : first + batch_size]))
                features.append(f.numpy())
                probabilities.append(torch.softmax(self.network["head"](f), dim=1).numpy())
                if progress is not None:
                    progress(len(f))
        return np.concatenate(features), np.concatenate(probabilities)

    def features(self, images: np.ndarray) -> np.ndarray:
        """(N, 128) float32 penultimate-layer features."""
        return self.predict(images)[0]

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """(N, n_classes) softmax class probabilities."""
        return self.predict(images)[1]

    def dataset_features(self, dataset, progress: Callable[[int], None] | None = None) -> np.ndarray:
        """Features of a whole dataset split, cached beside the weights (keyed by weights and data SHA-256);
        `progress(k)` is told after each batch of k images computed."""
        if self.cache_dir is None or not self.digest:
            return self.predict(dataset.images, progress=progress)[0]
        path = self.cache_dir / f"{dataset.name}-{dataset.split}-{dataset.images_sha256[:12]}-{self.digest[:12]}.npy"
        try:
            return np.load(path)
        except (OSError, ValueError, EOFError):
            features = self.predict(dataset.images, progress=progress)[0]
            write_array(path, features)
            return features

    def save(self, path: str | os.PathLike) -> None:
        """Write the weights and their provenance atomically."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        record = {
            "state_dict": self.network.state_dict(),
            "dataset_name": self.dataset_name,
            "images_sha256": self.images_sha256,
            "image_shape": list(self.image_shape),
            "n_classes": self.network["head"].out_features,
            "width": self.network["body"][0].out_channels,
            "test_accuracy": self.test_accuracy,
            "train_seconds": self.train_seconds,
        }
        atomic_write(path, lambda tmp: torch.save(record, tmp))


def load_classifier(path: str | os.PathLike, dataset=None) -> Classifier:
    """Read a classifier saved by `Classifier.save`; with `dataset`, refuse one trained on other data."""
    path = Path(path)
    if not path.is_file():  # before torch: the file is what is missing
        raise NpgenError(f"no classifier at {path}: train one with `python benchmarks/quality/classifier.py <dataset>`")
    require_torch()
    try:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        record = torch.load(path, map_location="cpu", weights_only=True)
        height, width, channels = record["image_shape"]
        network = _network(channels, record["n_classes"], record["width"])
        network.load_state_dict(record["state_dict"])
    except Exception as err:  # torch raises many types for damaged files
        raise NpgenError(
            f"cannot read classifier {path} ({type(err).__name__}); retrain it with benchmarks/quality/classifier.py"
        ) from err
    if dataset is not None and record["images_sha256"] != dataset.images_sha256:
        raise NpgenError(
            f"classifier {path} was trained on other data than {dataset.name}/{dataset.split}; retrain it with benchmarks/quality/classifier.py"
        )
    return Classifier(
        network,
        record["dataset_name"],
        record["images_sha256"],
        (height, width, channels),
        record["test_accuracy"],
        record["train_seconds"],
        digest,
        path.parent,
    )


def train_classifier(
    train,
    test,
    epochs: int = 3,
    width: int = 32,
    batch_size: int = 128,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> Classifier:
    """Train on `train` (a Dataset) with Adam and a one-cycle schedule; flips and 2-pixel shifts for colour data."""
    require_torch()
    torch.manual_seed(seed)
    generator = np.random.default_rng(seed)
    network = _network(train.channels, train.n_classes, width)
    optimizer = torch.optim.Adam(network.parameters(), lr=2e-3, weight_decay=5e-4)
    steps_per_epoch = -(-train.n_images // batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, 4e-3, total_steps=epochs * steps_per_epoch)
    labels = torch.tensor(np.asarray(train.labels), dtype=torch.int64)
    augment = train.channels == 3
    started = time.perf_counter()
    for epoch in range(epochs):
        network.train()
        order = generator.permutation(train.n_images)
        for step, first in enumerate(range(0, train.n_images, batch_size)):
            ids = order[first : first + batch_size]
            x = _to_tensor(train.images[ids])
            if augment:
                flip = torch.from_numpy(generator.random(len(ids)) < 0.5)
                x[flip] = x[flip].flip(3)
                dy, dx = generator.integers(-2, 3, size=2)
                x = torch.roll(x, shifts=(int(dy), int(dx)), dims=(2, 3))
            loss = nn.functional.cross_entropy(network["head"](network["body"](x)), labels[ids])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            if progress is not None and step % 100 == 0:
                progress(
                    f"epoch {epoch + 1}/{epochs} step {step}/{steps_per_epoch} loss {loss.item():.3f} ({time.perf_counter() - started:.0f} s)"
                )
    seconds = time.perf_counter() - started
    classifier = Classifier(
        network, train.name, train.images_sha256, (train.height, train.width, train.channels), 0.0, seconds
    )
    classifier.test_accuracy = float((classifier.probabilities(test.images).argmax(axis=1) == test.labels).mean())
    return classifier
