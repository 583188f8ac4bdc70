"""The dataset cards: what npgen knows of MNIST and CIFAR-10 (description, class names, the SHA-256 of every
array, the measured method settings), read from the top-level ``datasets/`` folder (shipped in a wheel as
``npgen/cards/``).
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np

from npgen.data.readers import one_line
from npgen.errors import NpgenError

KNOWN = ("mnist", "cifar10")
SPLITS = ("train", "test")


def _cards_dir() -> Path:
    """Where the dataset cards are: npgen/cards/ in an installed wheel (setup.cfg ships the top-level
    datasets/ folder there as package data), else the source tree's datasets/ beside npgen/."""
    package = Path(__file__).resolve().parent.parent
    installed = package / "cards"
    return installed if installed.is_dir() else package.parent / "datasets"


CARDS_DIR = _cards_dir()


def card_labels(labels: np.ndarray) -> np.ndarray:
    """Labels as the cards hash them: uint8 when all lie in 0..255, else as they are."""
    if labels.size and labels.min() >= 0 and labels.max() <= 255:
        return labels.astype(np.uint8)
    return labels


def known_datasets() -> tuple[str, ...]:
    """Names of the datasets npgen has cards for."""
    return KNOWN


@lru_cache(maxsize=None)
def _card_text(name: str) -> str:
    path = CARDS_DIR / f"{name}.json"
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise NpgenError(f"cannot read the dataset card {path}: {one_line(exc)}; reinstall npgen") from None


def dataset_card(name: str) -> dict:
    """The card of a known dataset (a fresh dict): description, source, splits, class names, SHA-256 of each array."""
    check_known(name)
    try:
        return json.loads(_card_text(name))
    except ValueError as exc:
        raise NpgenError(
            f"the dataset card {CARDS_DIR / (name + '.json')} is not valid JSON ({one_line(exc)}); reinstall npgen"
        ) from None


def check_known(name: str) -> None:
    """An NpgenError unless `name` is a dataset npgen has a card for."""
    if name not in KNOWN:
        raise NpgenError(
            f"unknown dataset {name!r}: use one of {', '.join(KNOWN)} or a path to an image folder with one subfolder per class"
        )


def check_split(split: str) -> None:
    """An NpgenError unless `split` is 'train' or 'test'."""
    if split not in SPLITS:
        raise NpgenError(f"unknown split {split!r}: use 'train' or 'test'")


def check_card(name: str, split: str, x_sha256: str, y_sha256: str, where: str, fix: str) -> None:
    """An NpgenError naming `where` and `fix` unless both arrays' SHA-256 are the card's."""
    sha = dataset_card(name)["sha256"]
    for key, got in ((f"x_{split}", x_sha256), (f"y_{split}", y_sha256)):
        if got != sha[key]:
            raise NpgenError(
                f"{key} in {where} does not match the dataset card for {name} "
                f"(SHA-256 {got[:12]}… instead of {sha[key][:12]}…); {fix}"
            )
