"""Large databases: a SYNTHETIC split made from CIFAR-10 train, and what building and sampling cost at 50k-1M images.

The synthetic split is NOT real data: image i is CIFAR-10 training image i mod 50,000 under a random crop
(24-32 pixels, resized back to 32 by nearest neighbour), shift (up to 3 pixels, edges repeated) and
horizontal flip, each drawn from (i // CHUNK, position in chunk) with a fixed seed, so the same n always
gives the same images; it keeps the image's label. It is written as an npgen array folder
(`npgen.datasets.load_array_folder`, memory-mapped) named `cifar10-synthetic-<n>` under
/work/scale-data (never in git), with `"synthetic": true` in its `npgen-arrays.json`.

    python benchmarks/scale.py make --n 50000 200000 1000000         # write the synthetic splits
    python benchmarks/scale.py run --n 50000 200000 1000000          # build, sample, recall -> results/scale.json

Per size: database build time and peak RSS (a fresh `npgen build` process, `/usr/bin/time -v`), the database's
size on disk, class-conditional CIFAR-10 sampling throughput with the preset (the sampler alone, after
its pool indexes are ready; the one-off index set-up is reported separately) and the approximate pool's
recall@pool_size against the exact scan.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

SCALE_DATA = Path(os.environ.get("NPGEN_SCALE_DATA", "/work/scale-data"))
CHUNK = 10_000
SEED = 20261127
RESULTS = Path(__file__).resolve().parent / "results" / "scale.json"


def synthetic_chunk(train_images: np.ndarray, train_labels: np.ndarray, first: int, count: int):
    """Images first..first+count-1 of the synthetic split: (uint8 images, int64 labels).

    Deterministic: each image depends only on its index (its chunk's seed and its place in the chunk)."""
    if first % CHUNK or count > CHUNK:
        raise ValueError("chunks start at multiples of CHUNK and hold at most CHUNK images")
    rng = np.random.default_rng([SEED, first // CHUNK])
    n_train, height, width, _ = train_images.shape
    source = (first + np.arange(CHUNK)) % n_train
    crop = rng.integers(24, height + 1, size=CHUNK)
    top = (rng.random(CHUNK) * (height - crop + 1)).astype(np.int64)
    left = (rng.random(CHUNK) * (width - crop + 1)).astype(np.int64)
    shift_y, shift_x = rng.integers(-3, 4, size=(2, CHUNK))
    flip = rng.random(CHUNK) < 0.5
    steps = np.arange(height)
    rows = top[:, None] + (steps[None, :] * crop[:, None]) // height
    cols = left[:, None] + (steps[None, :] * crop[:, None]) // width
    rows = np.clip(rows - shift_y[:, None], top[:, None], (top + crop - 1)[:, None])
    cols = np.clip(cols - shift_x[:, None], left[:, None], (left + crop - 1)[:, None])
    cols = np.where(flip[:, None], cols[:, ::-1], cols)
    source, rows, cols = source[:count], rows[:count], cols[:count]
    images = train_images[source[:, None, None], rows[:, :, None], cols[:, None, :]]
    return np.ascontiguousarray(images), train_labels[source].astype(np.int64)


def synthetic_path(n: int) -> Path:
    return SCALE_DATA / f"cifar10-synthetic-{n}"


def make(n: int, data_root: str | None = None) -> Path:
    """Write the synthetic split of n images (an array folder) unless it exists; return its folder."""
    from npgen.datasets import load_dataset, write_array_folder

    path = synthetic_path(n)
    if path.exists():
        return path
    train = load_dataset("cifar10", data_root=data_root)
    chunks = (synthetic_chunk(train.images, train.labels, first, min(CHUNK, n - first)) for first in range(0, n, CHUNK))
    record = {
        "synthetic": True,
        "description": (
            f"SYNTHETIC, not a real dataset: {n} images made from CIFAR-10 train (image i = training image i mod "
            f"{train.n_images} randomly cropped, shifted and flipped; seed {SEED}) by benchmarks/scale.py, to measure "
            "npgen on large splits"
        ),
        "made_from": {"name": "cifar10", "split": "train", "images_sha256": train.images_sha256},
        "seed": SEED,
    }
    return write_array_folder(
        path, f"cifar10-synthetic-{n}", train.class_names, n, train.images.shape[1:], chunks, record
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    make_cmd = sub.add_parser("make", help="write the synthetic splits")
    make_cmd.add_argument("--n", type=int, nargs="+", required=True)
    args = parser.parse_args()
    if args.command == "make":
        for n in args.n:
            started = time.perf_counter()
            print(f"{make(n)}: {time.perf_counter() - started:.1f} s", flush=True)


if __name__ == "__main__":
    main()
