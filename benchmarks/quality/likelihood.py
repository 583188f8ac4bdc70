"""Test-set negative log-likelihood of npgen in bits per dimension (see npgen/analysis/likelihood.py).

    python benchmarks/quality/likelihood.py mnist      # --n-test N: a random subset of the test set
    python benchmarks/quality/likelihood.py cifar10

The last 1,000 training images are held out: the database is built from the rest, the smoothing
(tau, floor) is tuned on the held-out images, and only then is the test set scored, once, with
that smoothing. Sampler settings are the dataset's preset, scored unconditionally over every
training image (p(x), the quantity published bits/dim measure; the source budget and the class
mixture do not enter, see npgen/analysis/likelihood.py). Per-batch results are kept in $NPGEN_CACHE/likelihood/ so an
interrupted run resumes; the result goes to benchmarks/results/likelihood-<dataset>.json.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: record.py
from record import save_result

from npgen.analysis.likelihood import FLOORS, TAUS, bits_per_dim, log_likelihood_grid, tune_smoothing
from npgen.api import resolve_params
from npgen.data.database import Database, default_path
from npgen.data.datasets import load_dataset
from npgen.data.files import cache_root, write_array
from npgen.rule.sampler import Sampler

HELD_OUT = 1000


def scored(sampler: Sampler, images: np.ndarray, label: str, cache: Path, batch: int = 100) -> np.ndarray:
    """log_likelihood_grid over images, batch by batch, each batch kept in `cache` so a rerun resumes."""
    cache.mkdir(parents=True, exist_ok=True)
    parts, started = [], time.perf_counter()
    for first in range(0, len(images), batch):
        path = cache / f"{label}-{first:06d}.npy"
        if path.is_file():
            parts.append(np.load(path))
            continue
        part = log_likelihood_grid(sampler, images[first : first + batch])
        write_array(path, part)
        parts.append(part)
        done = first + len(part)
        print(
            f"{label}: {done}/{len(images)} images, {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True
        )
    return np.concatenate(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", choices=["mnist", "cifar10"])
    parser.add_argument("--n-test", type=int, default=None, help="score a random subset of the test set (default: all)")
    parser.add_argument("--data-root", default=None)
    args = parser.parse_args()
    train = load_dataset(args.dataset, data_root=args.data_root)
    test = load_dataset(args.dataset, split="test", data_root=args.data_root)
    base = train.subset(slice(0, train.n_images - HELD_OUT))
    held_out = train.images[train.n_images - HELD_OUT :]
    started = time.perf_counter()
    window, options = resolve_params(base)
    db = Database.open_or_build(base, default_path(base, window), window)
    sampler = Sampler(db, **options)  # pool tie-breaks from seed 0
    test_ids = np.arange(test.n_images)
    if args.n_test is not None and args.n_test < test.n_images:
        test_ids = np.sort(np.random.default_rng(0).choice(test.n_images, size=args.n_test, replace=False))
    key = hashlib.sha256(repr((db.manifest, sampler.params(), TAUS, FLOORS)).encode()).hexdigest()[:12]
    cache = cache_root() / "likelihood" / f"{args.dataset}-{key}"

    tuning = scored(sampler, held_out, "held-out", cache)
    smoothing = tune_smoothing(tuning)
    t, f = TAUS.index(smoothing.tau), FLOORS.index(smoothing.floor)
    tuned = time.perf_counter()
    test_grid = scored(sampler, test.images[test_ids], "test", cache)[:, t, f]
    dims = int(np.prod(test.images.shape[1:]))
    per_image = -test_grid / (dims * np.log(2.0))
    record = save_result(
        f"likelihood-{args.dataset}",
        {
            "dataset": args.dataset,
            "window": window.__dict__,
            "sampler": sampler.params(),
            "held_out_images": HELD_OUT,
            "tau": smoothing.tau,
            "floor": smoothing.floor,
            "held_out_bits_per_dim": float(bits_per_dim(tuning, dims)[t, f]),
            "n_test": len(test_ids),
            "test_bits_per_dim": float(per_image.mean()),
            "test_bits_per_dim_stderr": float(per_image.std(ddof=1) / np.sqrt(len(per_image))),
            "seconds_per_test_image": round((time.perf_counter() - tuned) / len(test_ids), 4),
            "total_seconds": round(time.perf_counter() - started, 1),
        },
    )
    print(
        f"{args.dataset}: {record['test_bits_per_dim']:.3f} ± {record['test_bits_per_dim_stderr']:.3f} bits/dim on "
        f"{record['n_test']} test images (tau {smoothing.tau}, floor {smoothing.floor}, tuned on {HELD_OUT} held-out)"
    )


if __name__ == "__main__":
    main()
