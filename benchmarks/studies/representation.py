"""Retrieval representations compared: raw block sums against learned patch codes (`npgen.data.representation`).

    python benchmarks/studies/representation.py                                  # CIFAR-10 and MNIST
    python benchmarks/studies/representation.py --dataset cifar10 --codes 128:16:3 --codes 256:32:4:0

The task is the semantic pool's: for 1,000 test images, the K = 100 nearest training images (all
50,000 / 60,000, no class restriction) over the first rows of the image only. "Top" is the first
16 pixel rows: the top half of CIFAR-10 (4 block rows of 4), 16 of MNIST's 28 rows. For prefixes
of 1/4, 1/2, 3/4 and all of those rows, exact squared Euclidean distances (float64, numpy) give

- purity: the share of the pool with the test image's class (10% is chance);
- knn10: the accuracy of a majority vote of the 10 nearest.

Representations: block sums with block 1 (pixels) and block 4, and patch codes learned from the
training images only (no labels), given as n_codes:dims:patch[:reach] (dims 0: no projection; reach default 1), block 4.
`row_width` is the int32 values per block row: the per-row cost of the sampler's distance update
scales with it. `encode_row_100_ms` is the median time to encode one block row of 100 test images. Numbers go to benchmarks/results/<--name>.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numba
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: record.py
from record import save_result

from npgen.data.datasets import load_dataset
from npgen.data.representation import PatchCodes, block_sums

TOP_ROWS = 16


def nearest(train: np.ndarray, queries: np.ndarray, k: int, chunk: int = 200) -> np.ndarray:
    """(Q, k) indices of the k nearest training rows to each query, nearest first (exact, float64)."""
    train = train.astype(np.float64)
    centre = train.mean(0)
    train -= centre
    train_sq = (train * train).sum(1)
    out = np.empty((len(queries), k), dtype=np.int64)
    for first in range(0, len(queries), chunk):
        q = queries[first : first + chunk].astype(np.float64) - centre
        d = train_sq[None] - 2.0 * q @ train.T
        top = np.argpartition(d, k - 1, axis=1)[:, :k]
        order = np.argsort(np.take_along_axis(d, top, 1), axis=1, kind="stable")
        out[first : first + chunk] = np.take_along_axis(top, order, 1)
    return out


def scores(train_reps, query_reps, rows_per_block, train_labels, query_labels, pool) -> dict:
    """Purity and 10-NN accuracy at prefixes 1/4 .. 4/4 of the top rows, from (N, rows, width) representations."""
    n_rows = TOP_ROWS // rows_per_block
    result = {}
    for quarter in (1, 2, 3, 4):
        rows = n_rows * quarter // 4
        flat = lambda reps: reps[:, :rows].reshape(len(reps), -1)
        ids = nearest(flat(train_reps), flat(query_reps), pool)
        same = train_labels[ids] == query_labels[:, None]
        votes = np.array([np.bincount(train_labels[row[:10]], minlength=10).argmax() for row in ids])
        result[f"{quarter}/4"] = {
            "pixel_rows": rows * rows_per_block,
            "purity": round(float(same.mean()), 4),
            "knn10": round(float((votes == query_labels).mean()), 4),
        }
    return result


def parse_codes(text: str) -> dict:
    n_codes, dims, patch, reach = (int(v) for v in (text + ":1").split(":")[:4])
    return {"n_codes": n_codes, "dims": dims or None, "patch": patch, "reach": reach}


def run_dataset(name, data_root, code_settings, n_queries, pool, seed) -> dict:
    train = load_dataset(name, data_root=data_root)
    test = load_dataset(name, split="test", data_root=data_root)
    rng = np.random.default_rng(seed)
    picked = np.sort(rng.choice(test.n_images, n_queries, replace=False))
    queries, query_labels = test.images[picked], test.labels[picked]
    top_train, top_queries = train.images[:, :TOP_ROWS], queries[:, :TOP_ROWS]
    entries = []
    for block in (1, 4):
        started = time.perf_counter()
        train_reps = block_sums(top_train, block)
        seconds = time.perf_counter() - started
        entries.append(
            {
                "representation": f"block_sums b{block}",
                "block": block,
                "row_width": int(train_reps.shape[2]),
                "encode_train_seconds": round(seconds, 2),
                "scores": scores(train_reps, block_sums(top_queries, block), block, train.labels, query_labels, pool),
            }
        )
        print(entries[-1]["representation"], entries[-1]["scores"], flush=True)
    for setting in code_settings:
        started = time.perf_counter()
        codes = PatchCodes.learn(train.images, 4, seed=seed, **setting)
        learned = time.perf_counter()
        train_reps = codes.encode(train.images)
        encoded = time.perf_counter()
        slab = np.ascontiguousarray(queries[:100, 4:8])
        codes.encode_row(slab)
        row_times = []
        for _ in range(30):
            row_started = time.perf_counter()
            codes.encode_row(slab)
            row_times.append(time.perf_counter() - row_started)
        row_ms = float(np.median(row_times)) * 1000
        label = f"patch_codes K{setting['n_codes']} D{setting['dims'] or setting['n_codes']} p{setting['patch']} r{setting['reach']}"
        entries.append(
            {
                "representation": label,
                "block": 4,
                **setting,
                "row_width": int(train_reps.shape[2]),
                "learn_seconds": round(learned - started, 2),
                "encode_train_seconds": round(encoded - learned, 2),
                "encode_row_100_ms": round(row_ms, 2),
                "scores": scores(
                    train_reps[:, : TOP_ROWS // 4], codes.encode(top_queries), 4, train.labels, query_labels, pool
                ),
            }
        )
        print(
            label,
            {k: entries[-1][k] for k in ("learn_seconds", "encode_train_seconds", "encode_row_100_ms")},
            entries[-1]["scores"],
            flush=True,
        )
    return {"n_train": int(train.n_images), "n_queries": n_queries, "top_rows": TOP_ROWS, "entries": entries}


def table(results: dict) -> str:
    lines = []
    for name, result in results.items():
        lines.append(
            f"\n{name}: pool purity / 10-NN accuracy over the first 1/4 .. 4/4 of the top {TOP_ROWS} rows, K = {result.get('pool', 100)}"
        )
        lines.append(
            f"{'representation':28s} {'width':>5s}  "
            + "  ".join(f"{q:>11s}" for q in ("1/4", "2/4", "3/4", "4/4"))
            + "  learn+encode s"
        )
        for e in result["entries"]:
            cells = "  ".join(f"{s['purity']:.3f}/{s['knn10']:.3f}" for s in e["scores"].values())
            timing = e.get("learn_seconds", 0) + e["encode_train_seconds"]
            lines.append(f"{e['representation']:28s} {e['row_width']:5d}  {cells}  {timing:8.1f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", action="append", help="cifar10 and/or mnist (default both)")
    parser.add_argument(
        "--codes", action="append", help="n_codes:dims:patch[:reach] of a patch-code setting (repeatable)"
    )
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--pool-size", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--name", default="representation")
    args = parser.parse_args()
    settings = [parse_codes(text) for text in (args.codes or ["128:16:3", "64:16:4", "128:32:3"])]
    results = {}
    for name in args.dataset or ["cifar10", "mnist"]:
        results[name] = {
            **run_dataset(name, args.data_root, settings, args.queries, args.pool_size, args.seed),
            "pool": args.pool_size,
        }
    save_result(
        args.name,
        {
            "datasets": results,
            "numba_threads": numba.get_num_threads(),
            "numba_threading_layer": numba.threading_layer(),
        },
    )
    print(table(results))


if __name__ == "__main__":
    main()
