"""Quality, novelty and composition of npgen samples, in raw pixels.

    python benchmarks/quality/quality.py mnist-conditional   # 1,000 samples, 100 per class
    python benchmarks/quality/quality.py mnist-unconditional # 1,000 samples
    python benchmarks/quality/quality.py cifar10-conditional # 1,000 samples, 100 per class

Each experiment writes real runs under benchmarks/runs/ (not committed), checks every run with
`npgen verify`, and writes its numbers to benchmarks/results/<experiment>.json. The metrics:

- 10-NN classifier on raw pixels fit on the training set (FAISS exact L2): the share of samples it
  assigns to the requested class, and the share whose top class has >= 9 of the 10 votes;
- near-copy rate: samples whose L2 distance to the nearest training image is below the 1st
  percentile of the test-to-train nearest-neighbour distances;
- median share of a sample's pixels copied from its most-used source image;
- with `--classifier`, an unconditional run's scores in the project's classifier features (`npgen eval`): FID,
  precision, recall and the share of the samples the classifier puts in each class, beside the share of each class
  the class mixture drew for them.

It also draws benchmarks/figures/<experiment>.png: ten samples per class, one class per row. `--seed N` (N > 0)
writes benchmarks/results/<experiment>-seedN.json and runs under benchmarks/runs/<experiment>-seedN/, and no figure.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: record.py
from record import FIGURES, RUNS, save_result

from npgen import api
from npgen.data.database import Database, default_path
from npgen.data.datasets import load_dataset
from npgen.data.index import search
from npgen.evaluation.metrics import knn_votes, near_copy_threshold
from npgen.evaluation.scores import evaluate_run
from npgen.runs.png import image_grid
from npgen.runs.run import Run

# Each experiment names only what it changes from the dataset's preset (datasets/<name>.json, npgen.params).
EXPERIMENTS = {
    "mnist-conditional": dict(dataset="mnist", classes=range(10), per_class=100, window={}, options={}),
    "mnist-unconditional": dict(dataset="mnist", classes=[None], per_class=1000, window={}, options={}),
    "cifar10-conditional": dict(dataset="cifar10", classes=range(10), per_class=100, window={}, options={}),
}
ONE_LEVEL = {"levels": 1, "pool_size": 100}  # MNIST's preset until 2026-12-05: the MNIST ablations start from it
ABLATIONS = {  # one change each from the settings above, to show why the presets are what they are
    "mnist-conditional-onelevel": ("mnist-conditional", ONE_LEVEL),
    "mnist-conditional-radius1": ("mnist-conditional", {**ONE_LEVEL, "radius": 1}),
    "mnist-conditional-kmin4-nobudget": ("mnist-conditional", {**ONE_LEVEL, "k_min": 4, "max_source_share": 1.0}),
    "cifar10-conditional-nobudget": ("cifar10-conditional", {"max_source_share": 1.0}),
    "mnist-unconditional-onelevel": ("mnist-unconditional", ONE_LEVEL),
    "mnist-unconditional-kmin3": ("mnist-unconditional", {**ONE_LEVEL, "k_min": 3}),
    "mnist-unconditional-nomixture": ("mnist-unconditional", {**ONE_LEVEL, "class_mixture": 0}),
    "mnist-unconditional-pool300": ("mnist-unconditional", {**ONE_LEVEL, "pool_size": 300}),
    "mnist-unconditional-levels2": ("mnist-unconditional", {**ONE_LEVEL, "levels": 2}),
    "mnist-unconditional-levels2-coarse1": ("mnist-unconditional", {**ONE_LEVEL, "levels": 2, "coarse_weight": 1.0}),
    "mnist-unconditional-levels2-budget5": (
        "mnist-unconditional",
        {**ONE_LEVEL, "levels": 2, "max_source_share": 0.05},
    ),
    "mnist-unconditional-levels2-kmin3": ("mnist-unconditional", {**ONE_LEVEL, "levels": 2, "k_min": 3}),
    "mnist-unconditional-levels2-eps0.2": ("mnist-unconditional", {**ONE_LEVEL, "levels": 2, "eps": 0.2}),
    "mnist-unconditional-levels2-pool300": ("mnist-unconditional", {"levels": 2, "pool_size": 300}),
    "mnist-conditional-levels2": ("mnist-conditional", {**ONE_LEVEL, "levels": 2}),
    "mnist-conditional-levels2-coarse1": ("mnist-conditional", {**ONE_LEVEL, "levels": 2, "coarse_weight": 1.0}),
}
for name, (base, change) in ABLATIONS.items():
    EXPERIMENTS[name] = {**EXPERIMENTS[base], "options": {**EXPERIMENTS[base]["options"], **change}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("experiment", choices=sorted(EXPERIMENTS))
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--classifier",
        action="store_true",
        help="also score an unconditional run in the project's classifier features (`npgen eval`): FID, precision, "
        "recall and each class's share of the samples",
    )
    args = parser.parse_args()
    spec = EXPERIMENTS[args.experiment]
    result_name = args.experiment + ("" if args.seed == 0 else f"-seed{args.seed}")
    train = load_dataset(spec["dataset"], data_root=args.data_root)
    test = load_dataset(spec["dataset"], split="test", data_root=args.data_root)
    window, _ = api.resolve_params(train, spec["window"])
    db = Database.open_or_build(train, default_path(train, window), window)

    runs_dir = RUNS / result_name
    shutil.rmtree(runs_dir, ignore_errors=True)
    samples, requested, shares, seconds, verified, classifier = [], [], [], 0.0, 0, None
    for class_label in spec["classes"]:
        name = "all" if class_label is None else f"class-{class_label}"
        options = {"seed": args.seed, **spec["options"]}
        started = time.perf_counter()
        path = api.sample_run(
            runs_dir / name,
            spec["dataset"],
            spec["per_class"],
            class_label,
            args.data_root,
            db.path,
            spec["window"],
            options,
            command=" ".join(sys.argv),
        )
        seconds += time.perf_counter() - started
        report = api.verify_run(path, args.data_root)
        verified += 0 if report.ok else 1
        run = Run(path)
        params = run.manifest["params"]  # the resolved settings: the preset's and the experiment's together
        if args.classifier and class_label is None:
            scores = evaluate_run(path, args.data_root)["samples"]
            classifier = {key: scores[key] for key in ("fid", "fid_bootstrap_sd", "precision", "recall")}
            classifier["class_shares"] = scores["predicted_class_share"]
            drawn = np.asarray(run.summary().column("class_label"))  # the class mixture's draw, before sampling
            classifier["drawn_class_shares"] = (np.bincount(drawn, minlength=train.n_classes) / len(drawn)).tolist()
        samples.append(np.asarray(run.samples))
        requested += [-1 if class_label is None else class_label] * spec["per_class"]
        shares.append(run.summary().column("top_source_share").to_numpy())
        print(f"{name}: {spec['per_class']} samples, verify {'ok' if report.ok else 'FAILED'}", flush=True)
    grid = np.concatenate([s[:10] for s in samples]) if len(samples) > 1 else samples[0][:100]
    FIGURES.mkdir(exist_ok=True)
    if args.seed == 0:
        image_grid(grid, columns=10).save(FIGURES / f"{args.experiment}.png")
    samples, requested, shares = np.concatenate(samples), np.array(requested), np.concatenate(shares)

    index = db.nearest_index()
    threshold = near_copy_threshold(index, test.images)
    votes = knn_votes(index, train.labels, samples, train.n_classes)
    test_votes = knn_votes(index, train.labels, test.images, train.n_classes)
    nearest = search(index, samples, 1)[0][:, 0]
    predicted = votes.argmax(1)
    record = {
        "experiment": args.experiment,
        "dataset": spec["dataset"],
        "n_samples": len(samples),
        "window": asdict(window),
        "sampler_options": spec["options"],
        "params": params,
        "seed": args.seed,
        "knn_test_accuracy": float((test_votes.argmax(1) == test.labels).mean()),
        "knn_test_share_9_of_10": float((test_votes.max(1) >= 9).mean()),
        "requested_class_accuracy": float((predicted == requested).mean()) if requested.min() >= 0 else None,
        "share_9_of_10_votes": float((votes.max(1) >= 9).mean()),
        "classes_present": sorted(set(predicted.tolist())),
        "near_copy_threshold": threshold,
        "near_copy_rate": float((nearest < threshold).mean()),
        "nearest_distance_percentiles": {p: float(np.percentile(nearest, p)) for p in (1, 10, 50, 90)},
        "median_top_source_share": float(np.median(shares)),
        "max_top_source_share": float(shares.max()),
        "runs_failing_verify": int(verified),
        "sampling_seconds": round(seconds, 1),
        **({} if classifier is None else {"classifier": classifier}),
    }
    record = save_result(result_name, record)
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
