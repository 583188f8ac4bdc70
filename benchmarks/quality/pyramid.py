"""Coarse-to-fine sampling against one level: recognised share against the source budget (the frontier).

    python benchmarks/quality/pyramid.py cifar10                       # every variant, 100 per class
    python benchmarks/quality/pyramid.py cifar10 --only "levels 2"     # some variants only (name prefixes)
    python benchmarks/quality/pyramid.py cifar10 --sample-only         # make and verify the runs, score nothing
    python benchmarks/quality/pyramid.py mnist --per-class 100

Each variant is a pyramid setting (levels, coarse weight, pool) on top of the dataset's preset, sampled at source
budgets of 10, 15, 20 and 30% (`--budgets`), class-conditional, `--per-class` samples of each class (real
`npgen.api.sample_run` runs under benchmarks/runs/pyramid-<dataset>/, reused when complete), every run checked
with `npgen verify` (every level of it), and scored like benchmarks/quality/ablation.py in the features of
the project's classifier (benchmarks/quality/classifier.py): requested-class accuracy ("recognised"), FID,
precision/recall, near-copies. Each variant changes the one-level preset (MNIST's pool of 100 included). Results:
benchmarks/results/pyramid-<dataset>-<samples per setting>.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: record.py
sys.path.insert(0, str(Path(__file__).resolve().parent))  # ablation.py
from ablation import run_setting
from record import RESULTS, save_result

from npgen.data.datasets import load_dataset
from npgen.evaluation.features import classifier_path, load_classifier
from npgen.evaluation.scores import Reference, evaluate_images

VARIANTS = {  # name: the pyramid's parameters; everything else is the dataset's preset
    "one level": {"levels": 1},
    "levels 2, coarse chooses the pool": {"levels": 2, "coarse_weight": 0.0},
    "levels 2, coarse weight 0.25": {"levels": 2, "coarse_weight": 0.25},
    "levels 2, coarse weight 1": {"levels": 2, "coarse_weight": 1.0},
    "levels 3, coarse weight 1": {"levels": 3, "coarse_weight": 1.0},
    "levels 2, coarse chooses the pool, pool 30": {"levels": 2, "coarse_weight": 0.0, "pool_size": 30},
    "levels 2, coarse chooses the pool, pool 200": {"levels": 2, "coarse_weight": 0.0, "pool_size": 200},
    "levels 2, coarse chooses the pool, pool 300": {"levels": 2, "coarse_weight": 0.0, "pool_size": 300},
}
BUDGETS = (0.1, 0.15, 0.2, 0.3)
ONE_LEVEL_POOL = {"mnist": {"pool_size": 100}}  # what the variants change is measured from: MNIST's preset of one
# level (until 2026-12-05) had a pool of 100; its preset now is "levels 2, coarse chooses the pool, pool 200"


def settings_for(dataset: str, budgets: tuple[float, ...]) -> dict:
    """Every (variant, budget) as a setting name -> sampler options."""
    return {
        f"{variant}, budget {budget:.0%}": {**ONE_LEVEL_POOL.get(dataset, {}), **options, "max_source_share": budget}
        for variant, options in VARIANTS.items()
        for budget in budgets
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", choices=["mnist", "cifar10"])
    parser.add_argument("--per-class", type=int, default=100)
    parser.add_argument("--budgets", type=float, nargs="*", default=list(BUDGETS))
    parser.add_argument("--only", nargs="*", default=None, help="names (or name prefixes) of variants to run")
    parser.add_argument("--sample-only", action="store_true", help="make and verify the runs; score nothing")
    parser.add_argument("--data-root", default=None)
    args = parser.parse_args()
    settings = settings_for(args.dataset, tuple(args.budgets))
    names = [n for n in settings if args.only is None or any(n.startswith(o) for o in args.only)]
    reference = None
    if not args.sample_only:
        train = load_dataset(args.dataset, data_root=args.data_root)
        test = load_dataset(args.dataset, split="test", data_root=args.data_root)
        reference = Reference(train, test, load_classifier(classifier_path(args.dataset), train))
    result_name = f"pyramid-{args.dataset}-{10 * args.per_class}"
    saved = RESULTS / f"{result_name}.json"
    rows = json.loads(saved.read_text())["rows"] if saved.is_file() else {}
    for name in names:
        started = time.perf_counter()
        images, labels, facts = run_setting(
            args.dataset, name, args.per_class, args.data_root, settings=settings, study="pyramid"
        )
        if reference is None:
            print(f"{name:52s} sampled, {facts['runs_failing_verify']} runs failing verify", flush=True)
            continue
        scores = evaluate_images(images, labels, reference)
        rows[name] = {**facts, "n": len(images), "scores": scores}
        print(
            f"{name:52s} class {scores['class_accuracy']:.3f}  FID {scores['fid']:6.2f}  "
            f"P {scores['precision']:.2f} R {scores['recall']:.2f}  near-copies {scores['near_copy_rate']:.3f}  "
            f"verify failing {facts['runs_failing_verify']}  {1 / facts['sample_seconds_per_image']:.0f} img/s  "
            f"({time.perf_counter() - started:.0f} s)",
            flush=True,
        )
    if reference is not None:
        floor = reference.floor(10 * args.per_class)
        save_result(result_name, {"dataset": args.dataset, "per_class": args.per_class, "floor": floor, "rows": rows})


if __name__ == "__main__":
    main()
