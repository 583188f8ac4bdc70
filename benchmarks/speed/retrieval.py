"""Semantic retrieval: npgen's incremental numba kernels against FAISS exact search, same task.

    python benchmarks/speed/retrieval.py                       # MNIST class 3, 100 canvases, K = 100
    python benchmarks/speed/retrieval.py --dataset cifar10 --block 4

The task is the one the sampler solves once per row: for each of 100 canvases, the K training
images (of one class) nearest to the canvas over its completed rows. The canvases are real test
images of that class, revealed row by row. Compared:

- npgen: the numba kernels `semantics.add_block_row` + `nearest_pool` (exact integer distances,
  updated incrementally, parallel over canvases; per-sample random tie-breaks);
- faiss: at every row, an exact IndexFlatL2 over the training prefixes (rows 0..r-1) searched with
  the canvas prefixes; timed both with the prefix indexes built inside the loop, as the sampler
  would have to, and as search alone with all prefix indexes built beforehand.

Both must find the same K-th distance at every row (ties aside, the same pools); the script checks it.
Medians of --repeats runs go to benchmarks/results/retrieval-<dataset>.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import faiss
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: record.py
from record import save_result

from npgen.data.datasets import load_dataset
from npgen.data.representation import block_sums
from npgen.rule.pool import add_block_row, nearest_pool
from npgen.rule.rng import sample_keys


def npgen_pools(train_reps, canvas_reps, allowed, k):
    distances = np.zeros((len(canvas_reps), len(allowed)), dtype=np.int64)
    keys = sample_keys(0, np.arange(len(canvas_reps)))
    kth = []
    for row in range(train_reps.shape[1]):
        add_block_row(np.ascontiguousarray(canvas_reps[:, row]), train_reps, row, allowed, distances)
        pool = nearest_pool(distances, keys, allowed, k)
        kth.append(np.take_along_axis(distances, np.searchsorted(allowed, pool[:, -1:]), 1)[:, 0])
    return np.array(kth)


def faiss_pools(train_flat, canvas_flat, row_len, k, indexes=None):
    kth = []
    for row in range(1, train_flat.shape[1] // row_len + 1):
        width = row * row_len
        if indexes is None:
            index = faiss.IndexFlatL2(width)
            index.add(np.ascontiguousarray(train_flat[:, :width]))
        else:
            index = indexes[row - 1]
        distances, _ = index.search(np.ascontiguousarray(canvas_flat[:, :width]), k)
        kth.append(distances[:, -1])
    return np.array(kth)


def median_time(fn, repeats):
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return float(np.median(times)), [round(t, 4) for t in times], result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--class-label", type=int, default=3)
    parser.add_argument("--block", type=int, default=1)
    parser.add_argument("--pool-size", type=int, default=100)
    parser.add_argument("--canvases", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--data-root", default=None)
    args = parser.parse_args()
    train = load_dataset(args.dataset, data_root=args.data_root)
    test = load_dataset(args.dataset, split="test", data_root=args.data_root)
    allowed = np.flatnonzero(train.labels == args.class_label).astype(np.int64)
    canvases = test.images[test.labels == args.class_label][: args.canvases]
    train_reps = block_sums(train.images, args.block)
    canvas_reps = block_sums(canvases, args.block)
    train_flat = train_reps[allowed].reshape(len(allowed), -1).astype(np.float32)
    canvas_flat = canvas_reps.reshape(len(canvases), -1).astype(np.float32)
    row_len = train_reps.shape[2]

    npgen_pools(train_reps, canvas_reps[:2], allowed, args.pool_size)  # compile
    t_npgen, all_npgen, kth_npgen = median_time(
        lambda: npgen_pools(train_reps, canvas_reps, allowed, args.pool_size), args.repeats
    )
    t_faiss, all_faiss, kth_faiss = median_time(
        lambda: faiss_pools(train_flat, canvas_flat, row_len, args.pool_size), args.repeats
    )
    indexes = []
    for row in range(1, train_reps.shape[1] + 1):
        index = faiss.IndexFlatL2(row * row_len)
        index.add(np.ascontiguousarray(train_flat[:, : row * row_len]))
        indexes.append(index)
    t_search, all_search, _ = median_time(
        lambda: faiss_pools(train_flat, canvas_flat, row_len, args.pool_size, indexes), args.repeats
    )
    agree = float(np.mean(np.abs(kth_npgen - kth_faiss) <= 1e-4 * np.maximum(kth_npgen, 1) + 1))
    record = {
        "dataset": args.dataset,
        "class_label": args.class_label,
        "block": args.block,
        "pool_size": args.pool_size,
        "canvases": len(canvases),
        "candidates": len(allowed),
        "rows": int(train_reps.shape[1]),
        "npgen_incremental_seconds": t_npgen,
        "npgen_all": all_npgen,
        "faiss_flat_with_prefix_index_seconds": t_faiss,
        "faiss_all": all_faiss,
        "faiss_flat_search_only_seconds": t_search,
        "faiss_search_all": all_search,
        "speedup_vs_faiss": t_faiss / t_npgen,
        "speedup_vs_faiss_search_only": t_search / t_npgen,
        "kth_distance_agreement": agree,
        "faiss_threads": faiss.omp_get_max_threads(),
    }
    record = save_result(f"retrieval-{args.dataset}", record)
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
