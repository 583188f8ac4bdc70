"""How much the class-conditional scores move with the seed alone: the preset (or a variant) at several seeds.

    python benchmarks/quality/seeds.py cifar10 --seeds 0 1 2
    python benchmarks/quality/seeds.py cifar10 --seeds 0 1 2 --set max_source_share=0.35

Each seed samples 100 class-conditional images per class with `npgen.rule.sampler.Sampler` (the same samples a
`npgen sample` run with that seed writes) and scores them with `npgen.evaluation.scores.evaluate_images` like
evaluate.py and ablation.py. A score that differs by less than this spread between two settings is not a
difference. Results are added to benchmarks/results/seeds-<dataset>.json, one row per setting.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: record.py
from record import RESULTS, save_result

from npgen import api
from npgen.data.database import Database, default_path
from npgen.data.datasets import load_dataset
from npgen.evaluation.features import classifier_path, load_classifier
from npgen.evaluation.scores import Reference, evaluate_images
from npgen.rule.sampler import Sampler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", choices=["mnist", "cifar10"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--per-class", type=int, default=100)
    parser.add_argument("--set", nargs="*", default=[], help="sampler options NAME=VALUE over the preset")
    parser.add_argument("--data-root", default=None)
    args = parser.parse_args()
    overrides = {name: json.loads(value) for name, value in (item.split("=", 1) for item in args.set)}
    train = load_dataset(args.dataset, data_root=args.data_root)
    test = load_dataset(args.dataset, split="test", data_root=args.data_root)
    reference = Reference(train, test, load_classifier(classifier_path(args.dataset), train))
    name = "preset" + "".join(f", {k}={v}" for k, v in overrides.items())
    scores = {}
    for seed in args.seeds:
        window, options = api.resolve_params(train, {}, {**overrides, "seed": seed})
        sampler = Sampler(Database.open_or_build(train, default_path(train, window), window), **options)
        images = np.concatenate([sampler.sample(args.per_class, class_label=c).images for c in range(10)])
        s = evaluate_images(images, np.repeat(np.arange(10), args.per_class), reference)
        scores[seed] = {key: s[key] for key in ("class_accuracy", "fid", "precision", "recall", "near_copy_rate")}
        print(name, seed, json.dumps(scores[seed]), flush=True)
    saved = RESULTS / f"seeds-{args.dataset}.json"
    rows = json.loads(saved.read_text())["rows"] if saved.is_file() else {}
    command = "python " + " ".join(sys.argv)
    rows[name] = {"params": options | {"seed": None}, "per_class": args.per_class, "scores": scores, "command": command}
    save_result(f"seeds-{args.dataset}", {"dataset": args.dataset, "rows": rows})


if __name__ == "__main__":
    main()
