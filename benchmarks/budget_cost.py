"""What the source budget costs the sampler (issue 9: <= 20% of throughput), measured in alternating pairs.

    python benchmarks/budget_cost.py                 # 15 pairs per dataset
    python benchmarks/budget_cost.py --pairs 25 --datasets cifar10

speed.py times the sampler with and without the budget in separate processes, minutes apart; on a shared
machine the load changes between them. Here one process alternates `Sampler.sample` of 200 class-conditional
images (classes 3 and 8, 100 each) at the preset and at the preset without the budget (max_source_share 1),
and reports the per-pair ratios of throughput (with / without) and their median and quartiles. The order
within a pair alternates too, so that neither setting always runs first. Written to
benchmarks/results/budget_cost.json.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
from record import save_result  # benchmarks/record.py

from npgen import api
from npgen.database import Database, default_path
from npgen.datasets import load_dataset
from npgen.sampler import Sampler


def seconds_for(sampler: Sampler) -> float:
    started = time.perf_counter()
    for class_label in (3, 8):
        sampler.sample(100, class_label=class_label)
    return time.perf_counter() - started


def pairs_for(name: str, n_pairs: int, data_root) -> dict:
    train = load_dataset(name, data_root=data_root)
    window, options = api.resolve_params(train)
    db = Database.open_or_build(train, default_path(train, window), window)
    budget, unbounded = Sampler(db, **options), Sampler(db, **{**options, "max_source_share": 1.0})
    for sampler in (budget, unbounded):
        sampler.sample(2, class_label=0)  # compile (or load cached) kernels
    load_before = os.getloadavg()[0]
    with_budget, without = [], []
    for pair in range(n_pairs):
        if pair % 2 == 0:
            with_budget.append(seconds_for(budget))
            without.append(seconds_for(unbounded))
        else:
            without.append(seconds_for(unbounded))
            with_budget.append(seconds_for(budget))
    ratios = np.array(without) / np.array(with_budget)
    return {
        "budget_pixels": budget.budget,
        "with_budget_seconds": [round(s, 3) for s in with_budget],
        "without_seconds": [round(s, 3) for s in without],
        "ratios": [round(float(r), 3) for r in ratios],
        "median_ratio": float(np.median(ratios)),
        "quartiles": [float(np.quantile(ratios, 0.25)), float(np.quantile(ratios, 0.75))],
        "with_budget_images_per_second": float(200 / np.median(with_budget)),
        "without_images_per_second": float(200 / np.median(without)),
        "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=15)
    parser.add_argument("--datasets", nargs="+", default=["mnist", "cifar10"])
    parser.add_argument("--data-root", default=None)
    args = parser.parse_args()
    results = {name: pairs_for(name, args.pairs, args.data_root) for name in args.datasets}
    for name, m in results.items():
        print(name, m, flush=True)
    save_result("budget_cost", {"results": results, "pairs": args.pairs})


if __name__ == "__main__":
    main()
