"""Speed and peak memory of npgen on this machine.

    python benchmarks/speed/speed.py            # all measurements, 3 repeats each, medians
    python benchmarks/speed/speed.py --repeats 5

Each measurement runs in a fresh Python process (so its peak RSS is its own) after a warm-up that
compiles the numba kernels; the numbers are medians over the repeats (taken round robin over the cases,
so that the machine's load changes reach every case alike), written to benchmarks/results/speed.json. Measured:

- build: load and checksum the training set from its .npz, then build its whole database (windows,
  retrieval representations — learned patch codes included for `-codes` —, FAISS index), as `npgen build` does;
- sampler: class-conditional images/s of `Sampler.sample` alone, 200 images (2 classes x 100);
- run: the same through `npgen.api.sample_run`, i.e. with Parquet provenance, PNGs and summaries written;
- `-nobudget`: the sampler without the source budget, to measure what the budget costs.

Settings are each dataset's preset (datasets/<name>.json) with the case's changes. Runs are written
under --scratch (default: a temporary folder in benchmarks/runs/, removed afterwards), not the system's
temporary folder: on the shared CI machine /tmp costs about 0.7 ms per file created against 0.03 ms
elsewhere on the same disk, which would bill a run's per-sample PNGs to npgen.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: record.py
from record import RUNS, save_result

NO_BUDGET = {"max_source_share": 1.0}
CASES = {  # kind, dataset, changes from the dataset's preset (window and sampler parameters together)
    "build-mnist": ("build", "mnist", {}),
    "build-cifar10": ("build", "cifar10", {}),
    "build-cifar10-codes": ("build", "cifar10", {"retrieval": "codes"}),
    "sampler-mnist": ("sampler", "mnist", {}),
    "sampler-mnist-nobudget": ("sampler", "mnist", NO_BUDGET),
    "sampler-cifar10": ("sampler", "cifar10", {}),
    "sampler-cifar10-nobudget": ("sampler", "cifar10", NO_BUDGET),
    "run-mnist": ("run", "mnist", {}),
    "run-cifar10": ("run", "cifar10", {}),
}


def measure(case: str, data_root: str | None, scratch: Path) -> dict:
    """One measurement of `case`, in this process."""
    from npgen import api
    from npgen.data.database import Database, default_path
    from npgen.data.datasets import load_dataset
    from npgen.params import BUILD_PARAMS
    from npgen.rule.sampler import Sampler

    kind, name, changes = CASES[case]
    window_changes = {k: v for k, v in changes.items() if k in BUILD_PARAMS}
    options = {k: v for k, v in changes.items() if k not in BUILD_PARAMS}
    started = time.perf_counter()
    train = load_dataset(name, data_root=data_root)
    window, resolved = api.resolve_params(train, window_changes, options)
    if kind == "build":
        Database.build(train, scratch / f"db-{case}", window, force=True)
        return {"seconds": time.perf_counter() - started, "images": train.n_images}
    db = Database.open_or_build(train, default_path(train, window), window)
    if kind == "sampler":
        sampler = Sampler(db, **resolved)
        sampler.sample(2, class_label=0)  # compile (or load cached) kernels
        started = time.perf_counter()
        for class_label in (3, 8):
            sampler.sample(100, class_label=class_label)
        return {"seconds": time.perf_counter() - started, "images": 200}
    api.sample_run(scratch / "warm", name, 2, 0, data_root, db.path, window_changes, options)
    started = time.perf_counter()
    for class_label in (3, 8):
        api.sample_run(
            scratch / f"run-{class_label}", name, 100, class_label, data_root, db.path, window_changes, options
        )
    return {"seconds": time.perf_counter() - started, "images": 200}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--scratch", default=str(RUNS), help="folder to write the runs in (a temporary one inside)")
    parser.add_argument("--one", choices=sorted(CASES), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        Path(args.scratch).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=args.scratch, prefix="speed-") as scratch:
            result = measure(args.one, args.data_root, Path(scratch))
        result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(result))
        return
    trials: dict[str, list[dict]] = {case: [] for case in CASES}
    for _ in range(args.repeats):  # round robin, so that a change in the machine's load reaches every case alike
        for case in CASES:
            command = [sys.executable, __file__, "--one", case, "--scratch", args.scratch] + (
                ["--data-root", args.data_root] if args.data_root else []
            )
            trials[case].append(json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout))
    results = {}
    for case, runs in trials.items():
        seconds = [t["seconds"] for t in runs]
        results[case] = {
            "median_seconds": float(np.median(seconds)),
            "all_seconds": [round(s, 3) for s in seconds],
            "images_per_second": float(runs[0]["images"] / np.median(seconds)),
            "peak_rss_mb": float(max(t["peak_rss_mb"] for t in runs)),
        }
        print(case, json.dumps(results[case]), flush=True)
    record = {
        "results": results,
        "repeats": args.repeats,
        "cpu_count": os.cpu_count(),
    }
    record = save_result("speed", record)


if __name__ == "__main__":
    main()
