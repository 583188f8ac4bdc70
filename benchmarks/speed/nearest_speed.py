"""The nearest-training-image search of `samples.parquet`: the pruned exact search (npgen/data/nearest.py) against the
FAISS exact scan it replaced (the database's 8-bit direct index), on the same real samples.

    python benchmarks/speed/nearest_speed.py            # 100 class-conditional samples per dataset, 5 repeats

Both are timed alternately in one process (medians), after a warm-up; the answers must be identical (ids and
float32 distances), or the script fails. Written to benchmarks/results/nearest_speed.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: record.py
from record import save_result

from npgen import api
from npgen.data.database import Database, default_path
from npgen.data.datasets import load_dataset
from npgen.data.index import search
from npgen.data.nearest import NearestImages, squared_to_distance, top_sources
from npgen.rule.sampler import Sampler
from npgen.runs.summary import NEAREST_HINTS


def measure(name: str, n: int, repeats: int, data_root) -> dict:
    train = load_dataset(name, data_root=data_root)
    window, options = api.resolve_params(train)
    db = Database.open_or_build(train, default_path(train, window), window)
    samples = Sampler(db, **options).sample(n, class_label=3)
    started = time.perf_counter()
    index = db.nearest_index()
    faiss_load = time.perf_counter() - started
    started = time.perf_counter()
    pruned = NearestImages.for_database(db)
    pruned_load = time.perf_counter() - started
    hints = top_sources(samples.src_image, NEAREST_HINTS)
    search(index, samples.images[:2], 1), pruned.search(samples.images[:2], hints[:2])  # warm-up
    faiss_seconds, pruned_seconds = [], []
    for _ in range(repeats):
        started = time.perf_counter()
        distances, ids = search(index, samples.images, 1)
        faiss_seconds.append(time.perf_counter() - started)
        started = time.perf_counter()
        squared, found = pruned.search(samples.images, top_sources(samples.src_image, NEAREST_HINTS))
        pruned_seconds.append(time.perf_counter() - started)
        if not (np.array_equal(found, ids[:, 0]) and np.array_equal(squared_to_distance(squared), distances[:, 0])):
            raise SystemExit(f"{name}: the pruned search differs from FAISS")
    return {
        "samples": n,
        "training_images": db.n_images,
        "faiss_seconds": float(np.median(faiss_seconds)),
        "pruned_seconds": float(np.median(pruned_seconds)),
        "faiss_index_load_seconds": faiss_load,
        "pruned_open_seconds": pruned_load,
        "identical": True,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--data-root", default=None)
    args = parser.parse_args()
    results = {name: measure(name, args.n, args.repeats, args.data_root) for name in ("mnist", "cifar10")}
    for name, r in results.items():
        print(name, r, flush=True)
    save_result("nearest_speed", {"results": results, "repeats": args.repeats})


if __name__ == "__main__":
    main()
