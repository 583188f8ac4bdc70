"""A whole `npgen sample` run's throughput as a share of the sampler's (issue 9: >= 75%), measured in pairs.

    python benchmarks/run_share.py               # 7 pairs per dataset
    python benchmarks/run_share.py --pairs 11

speed.py times each case in its own process, minutes apart; on a shared machine the load changes between
them, and the ratio of two medians taken at different times says little. Here one process alternates the
two measurements of speed.py's "sampler" and "run" cases (200 class-conditional images: classes 3 and 8,
100 each; the run is `npgen.api.sample_run`, database opening, nearest-image search, Parquet, PNGs and all)
a second apart, and reports the median of the per-pair ratios. Runs are written under benchmarks/runs/
(see speed.py). Written to benchmarks/results/run_share.json.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from record import save_result  # benchmarks/record.py

from npgen import api
from npgen.database import Database, default_path
from npgen.datasets import load_dataset
from npgen.sampler import Sampler

HERE = Path(__file__).resolve().parent


def pairs_for(name: str, n_pairs: int, data_root, scratch: Path) -> dict:
    train = load_dataset(name, data_root=data_root)
    window, options = api.resolve_params(train)
    db = Database.open_or_build(train, default_path(train, window), window)
    sampler = Sampler(db, **options)
    sampler.sample(2, class_label=0)  # compile (or load cached) kernels
    api.sample_run(scratch / f"{name}-warm", name, 2, 0, data_root, db.path)
    sampler_seconds, run_seconds = [], []
    for pair in range(n_pairs):
        started = time.perf_counter()
        for class_label in (3, 8):
            sampler.sample(100, class_label=class_label)
        sampler_seconds.append(time.perf_counter() - started)
        started = time.perf_counter()
        for class_label in (3, 8):
            api.sample_run(scratch / f"{name}-{pair}-{class_label}", name, 100, class_label, data_root, db.path)
        run_seconds.append(time.perf_counter() - started)
    shares = np.array(sampler_seconds) / np.array(run_seconds)
    return {
        "images": 200,
        "sampler_seconds": [round(s, 3) for s in sampler_seconds],
        "run_seconds": [round(s, 3) for s in run_seconds],
        "shares": [round(float(s), 3) for s in shares],
        "median_share": float(np.median(shares)),
        "sampler_images_per_second": float(200 / np.median(sampler_seconds)),
        "run_images_per_second": float(200 / np.median(run_seconds)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=7)
    parser.add_argument("--data-root", default=None)
    args = parser.parse_args()
    (HERE / "runs").mkdir(exist_ok=True)
    results = {}
    with tempfile.TemporaryDirectory(dir=HERE / "runs", prefix="share-") as scratch:
        for name in ("mnist", "cifar10"):
            results[name] = pairs_for(name, args.pairs, args.data_root, Path(scratch))
            print(name, results[name], flush=True)
    save_result("run_share", {"results": results, "pairs": args.pairs})


if __name__ == "__main__":
    main()
