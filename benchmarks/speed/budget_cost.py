"""What the source budget costs the sampler (target: <= 20% of throughput), measured in alternating rounds.

    python benchmarks/speed/budget_cost.py                 # 15 rounds per dataset, the preset's budget
    python benchmarks/speed/budget_cost.py --pairs 25 --datasets cifar10
    python benchmarks/speed/budget_cost.py --pairs 9 --datasets cifar10 --shares 0.3 0.35 0.4

speed.py times the sampler with and without the budget in separate processes, minutes apart; on a shared
machine the load changes between them. Here one process alternates `Sampler.sample` of 200 class-conditional
images (classes 3 and 8, 100 each) at the preset, at the preset with each other budget of --shares, and at the
preset without the budget (max_source_share 1), and reports for each budget the per-round ratios of throughput
(with / without) and their median and quartiles. The order within a round reverses every round, so that no
setting always runs first. Written to benchmarks/results/budget_cost.json (budget_cost-shares.json with
--shares).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: record.py
from record import save_result

from npgen import api
from npgen.data.database import Database, default_path
from npgen.data.datasets import load_dataset
from npgen.rule.sampler import Sampler


def seconds_for(sampler: Sampler) -> float:
    started = time.perf_counter()
    for class_label in (3, 8):
        sampler.sample(100, class_label=class_label)
    return time.perf_counter() - started


def rounds_for(name: str, n_rounds: int, data_root, shares: list[float] | None) -> dict:
    train = load_dataset(name, data_root=data_root)
    window, options = api.resolve_params(train)
    db = Database.open_or_build(train, default_path(train, window), window)
    shares = shares or [options["max_source_share"]]
    samplers = [Sampler(db, **{**options, "max_source_share": share}) for share in [*shares, 1.0]]
    for sampler in samplers:
        sampler.sample(2, class_label=0)  # compile (or load cached) kernels
    load_before = os.getloadavg()[0]
    seconds = [[] for _ in samplers]
    for round_ in range(n_rounds):
        order = range(len(samplers)) if round_ % 2 == 0 else reversed(range(len(samplers)))
        for i in order:
            seconds[i].append(seconds_for(samplers[i]))
    without = np.array(seconds[-1])
    budgets = []
    for share, sampler, with_budget in zip(shares, samplers, seconds):
        ratios = without / np.array(with_budget)
        budgets.append(
            {
                "max_source_share": share,
                "budget_pixels": sampler.budget,
                "with_budget_seconds": [round(s, 3) for s in with_budget],
                "ratios": [round(float(r), 3) for r in ratios],
                "median_ratio": float(np.median(ratios)),
                "quartiles": [float(np.quantile(ratios, 0.25)), float(np.quantile(ratios, 0.75))],
                "with_budget_images_per_second": float(200 / np.median(with_budget)),
            }
        )
    return {
        "preset_share": options["max_source_share"],
        "budgets": budgets,
        "without_seconds": [round(s, 3) for s in without],
        "without_images_per_second": float(200 / np.median(without)),
        "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=15, help="rounds: each times every setting once")
    parser.add_argument("--datasets", nargs="+", default=["mnist", "cifar10"])
    parser.add_argument("--shares", type=float, nargs="+", default=None, help="budgets to time (default: the preset's)")
    parser.add_argument("--data-root", default=None)
    args = parser.parse_args()
    results = {name: rounds_for(name, args.pairs, args.data_root, args.shares) for name in args.datasets}
    for name, m in results.items():
        print(name, m, flush=True)
    save_result("budget_cost-shares" if args.shares else "budget_cost", {"results": results, "pairs": args.pairs})


if __name__ == "__main__":
    main()
