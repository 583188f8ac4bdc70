"""The sampler's speed in two checkouts of npgen (before and after a change), in alternating processes.

    python benchmarks/speed/checkouts.py --before ../npgen-old --name refactor     # against this checkout
    python benchmarks/speed/checkouts.py --before A --after B --rounds 7 --datasets cifar10

Each round runs one fresh process per checkout, the order reversing every round, so that neither always runs
first on a shared machine; each process imports npgen from its checkout (PYTHONPATH), loads the dataset's
database from the cache (built by the first process when missing), warms the kernels on 2 samples, then times
200 class-conditional samples at the dataset's preset (classes 3 and 8, 100 each) and prints the seconds and a
hash of the samples and their provenance. Each checkout gets its own numba cache folder, so neither runs the
other's compiled kernels. The record holds every round's seconds, the median ratio (after / before) with its
quartiles, and whether the two checkouts produced the same samples. Written to
benchmarks/results/checkouts-<name>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: record.py
from record import save_result

REPO = Path(__file__).resolve().parents[2]

# One timing in the checkout on PYTHONPATH. Checkouts from before npgen's sub-packages keep these modules at the
# top level (npgen.database, npgen.sampler), hence the second set of imports.
WORKER = """
import hashlib, json, sys, time
from npgen import api
try:
    from npgen.data.database import Database, default_path
    from npgen.data.datasets import load_dataset
    from npgen.rule.sampler import Sampler
except ImportError:
    from npgen.database import Database, default_path
    from npgen.datasets import load_dataset
    from npgen.sampler import Sampler

name, data_root = sys.argv[1], sys.argv[2]
train = load_dataset(name, data_root=data_root)
window, options = api.resolve_params(train)
path = default_path(train, window)
db = Database.load(path) if path.exists() else Database.build(train, path, window)
sampler = Sampler(db, **options)
sampler.sample(2, class_label=3)  # compiles or loads the kernels
started = time.perf_counter()
parts = [sampler.sample(100, class_label=c) for c in (3, 8)]
seconds = time.perf_counter() - started
digest = hashlib.sha256()
for out in parts:
    for array in (out.images, out.src_image, out.src_y, out.src_x, out.n_candidates, out.distance):
        digest.update(array.tobytes())
print(json.dumps({"seconds": seconds, "sha256": digest.hexdigest()}))
"""


def time_once(checkout: Path, numba_cache: Path, name: str, data_root: str) -> dict:
    """One fresh process in `checkout`: its seconds for 200 samples and the hash of what it made."""
    env = {**os.environ, "PYTHONPATH": str(checkout), "NUMBA_CACHE_DIR": str(numba_cache)}
    done = subprocess.run(
        [sys.executable, "-c", WORKER, name, data_root], cwd=checkout, env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        sys.exit(f"error: timing in {checkout} failed:\n{done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", required=True, type=Path, help="checkout of the code before the change")
    parser.add_argument("--after", type=Path, default=REPO, help="checkout after it (default: this one)")
    parser.add_argument("--name", default="refactor", help="the record is results/checkouts-NAME.json")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--datasets", nargs="+", default=["mnist", "cifar10"], choices=["mnist", "cifar10"])
    parser.add_argument("--data-root", default=os.environ.get("NPGEN_DATA", str(REPO.parent / "shared" / "datasets")))
    args = parser.parse_args()
    checkouts = {"before": args.before.resolve(), "after": args.after.resolve()}
    for label, checkout in checkouts.items():
        if not (checkout / "npgen" / "__init__.py").is_file():
            sys.exit(f"error: --{label} {checkout} is not an npgen checkout (no npgen/__init__.py)")
    results = {}
    with tempfile.TemporaryDirectory(prefix="npgen-numba-") as caches:
        for name in args.datasets:
            seconds, hashes = {"before": [], "after": []}, set()
            for i in range(args.rounds):
                order = ("before", "after") if i % 2 == 0 else ("after", "before")
                for label in order:
                    timed = time_once(checkouts[label], Path(caches) / label, name, args.data_root)
                    seconds[label].append(round(timed["seconds"], 4))
                    hashes.add(timed["sha256"])
                print(f"{name} round {i + 1}: before {seconds['before'][-1]:.3f} s, after {seconds['after'][-1]:.3f} s")
            ratios = np.array(seconds["after"]) / np.array(seconds["before"])
            results[name] = {
                "seconds": seconds,
                "median_seconds": {label: float(np.median(s)) for label, s in seconds.items()},
                "ratio_median": float(np.median(ratios)),
                "ratio_quartiles": [float(q) for q in np.percentile(ratios, [25, 75])],
                "same_samples": len(hashes) == 1,
            }
            print(f"{name}: after/before {results[name]['ratio_median']:.3f}, same samples: {len(hashes) == 1}")
    save_result(
        f"checkouts-{args.name}",
        {
            "before": str(checkouts["before"]),
            "after": str(checkouts["after"]),
            "rounds": args.rounds,
            "results": results,
        },
    )


if __name__ == "__main__":
    main()
