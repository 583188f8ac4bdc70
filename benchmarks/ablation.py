"""The rule that bounds copying, measured: k_min against the source budget, budget size, window size.

    python benchmarks/ablation.py cifar10                 # every setting below, 50 per class
    python benchmarks/ablation.py mnist --per-class 50
    python benchmarks/ablation.py cifar10 --only preset h1 # some settings only

Every setting names only what it changes from the dataset's preset (datasets/<name>.json), samples
`--per-class` class-conditional images of each class with real `npgen.api.sample_run` runs (kept
under benchmarks/runs/ablation-<dataset>/ and reused when complete), checks each run with
`npgen verify`, and scores the images with `npgen.evaluation` in the features of the project's
classifier (`benchmarks/classifier.py`): FID, precision/recall, requested-class accuracy, near-copies
and the largest share of a sample taken from one training image. Results go to
benchmarks/results/ablation-<dataset>.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from npgen import api
from npgen.datasets import load_dataset
from npgen.errors import NpgenError
from npgen.evaluation import Reference, evaluate_images
from npgen.features import classifier_path, load_classifier
from npgen.store import Run
from record import save_result  # benchmarks/record.py

HERE = Path(__file__).resolve().parent
SETTINGS = {  # name: (window changes, sampler changes) from the preset
    "preset": ({}, {}),
    "no budget, k_min 1 (plain Efros-Leung)": ({}, {"max_source_share": 1.0}),
    "no budget, k_min 2": ({}, {"max_source_share": 1.0, "k_min": 2}),
    "no budget, k_min 4": ({}, {"max_source_share": 1.0, "k_min": 4}),
    "budget 10%, k_min 2": ({}, {"k_min": 2}),
    "budget 5%": ({}, {"max_source_share": 0.05}),
    "budget 20%": ({}, {"max_source_share": 0.2}),
    "h1": ({"half_window": 1}, {}),
    "h5": ({"half_window": 5}, {}),
    "retrieval on raw pixels (block 1)": ({"retrieval_block": 1}, {}),
    "retrieval on 4x4 block sums": ({"retrieval_block": 4}, {}),
}


def run_setting(dataset: str, name: str, per_class: int, data_root) -> tuple[np.ndarray, np.ndarray, dict]:
    """(images, requested classes, run facts) of one setting: one run per class, verified."""
    window, options = SETTINGS[name]
    slug = "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")
    images, labels, seconds, failing, top_share = [], [], 0.0, 0, []
    for class_label in range(10):
        out = HERE / "runs" / f"ablation-{dataset}" / slug / f"class-{class_label}"
        try:
            run = Run(out)
        except NpgenError:
            api.sample_run(out, dataset, per_class, class_label, data_root, None, window, options, resume=out.exists(), command=" ".join(sys.argv))
            run = Run(out)
        failing += 0 if api.verify_run(out, data_root).ok else 1
        images.append(np.asarray(run.samples))
        labels += [class_label] * per_class
        seconds += run.manifest["timings"]["sample_seconds"]
        top_share.append(run.summary().column("top_source_share").to_numpy())
        params = run.manifest["params"]
    shares = np.concatenate(top_share)
    facts = {
        "changes": {**window, **options}, "params": params, "window": run.manifest["database"]["params"],
        "runs_failing_verify": failing, "sample_seconds_per_image": seconds / (10 * per_class),
        "median_top_source_share": float(np.median(shares)), "max_top_source_share": float(shares.max()),
    }  # fmt: skip
    return np.concatenate(images), np.array(labels), facts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", choices=["mnist", "cifar10"])
    parser.add_argument("--per-class", type=int, default=50)
    parser.add_argument("--only", nargs="*", default=None, help="names (or name prefixes) of settings to run")
    parser.add_argument("--data-root", default=None)
    args = parser.parse_args()
    train = load_dataset(args.dataset, data_root=args.data_root)
    test = load_dataset(args.dataset, split="test", data_root=args.data_root)
    reference = Reference(train, test, load_classifier(classifier_path(args.dataset), train))
    names = [n for n in SETTINGS if args.only is None or any(n.startswith(o) for o in args.only)]
    result_name = f"ablation-{args.dataset}"
    saved = HERE / "results" / f"{result_name}.json"
    rows = json.loads(saved.read_text())["rows"] if saved.is_file() else {}
    for name in names:
        started = time.perf_counter()
        images, labels, facts = run_setting(args.dataset, name, args.per_class, args.data_root)
        scores = evaluate_images(images, labels, reference)
        rows[name] = {**facts, "n": len(images), "scores": scores}
        print(
            f"{name:42s} class {scores['class_accuracy']:.3f}  FID {scores['fid']:6.2f}  P {scores['precision']:.2f} "
            f"R {scores['recall']:.2f}  near-copies {scores['near_copy_rate']:.3f}  max top share {facts['max_top_source_share']:.3f}  "
            f"{1 / facts['sample_seconds_per_image']:.0f} img/s  ({time.perf_counter() - started:.0f} s)",
            flush=True,
        )
    floor = reference.floor(10 * args.per_class)
    save_result(result_name, {"dataset": args.dataset, "per_class": args.per_class, "floor": floor, "rows": rows})


if __name__ == "__main__":
    main()
