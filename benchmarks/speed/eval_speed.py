"""Time `npgen eval` on a new run with the near-copy threshold searched (a fresh cache) and kept (read back).

    python benchmarks/speed/eval_speed.py                       # MNIST and CIFAR-10, 3 pairs each
    python benchmarks/speed/eval_speed.py --datasets mnist --pairs 5

The near-copy threshold (the 1st percentile of the test images' distances to their nearest training image)
depends on the two splits alone, and npgen's cache keeps it under their SHA-256. Each pair times the whole
command line in a fresh process, as a user runs it, on one 100-sample class-conditional run (sampled once into
benchmarks/runs/eval-speed-DATASET/, one level): first with an empty cache ($NPGEN_CACHE a new temporary folder:
the threshold is searched), then again with that cache and the run's eval.json removed (the threshold is read
back; everything else is computed again). No classifier: pixel-space scores only. Medians of the pairs and the
median of the per-pair ratios to benchmarks/results/eval_speed.json.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: record.py
from record import RUNS, run_script, save_result


def npgen(*args: str, cache: str | None = None) -> tuple[float, str]:
    """(seconds, stdout) of one `npgen` command in a fresh process; with `cache`, that $NPGEN_CACHE."""
    env = dict(os.environ) if cache is None else dict(os.environ, NPGEN_CACHE=cache)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "npgen", *args], env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        print(done.stderr, file=sys.stderr, end="")
        raise subprocess.CalledProcessError(done.returncode, args)
    return seconds, done.stdout + done.stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["mnist", "cifar10"], choices=["mnist", "cifar10"])
    parser.add_argument("--pairs", type=int, default=3)
    args = parser.parse_args()
    results = {"pairs": args.pairs, "datasets": {}}
    for name in args.datasets:
        run = RUNS / f"eval-speed-{name}"
        if not (run / "manifest.json").is_file():
            npgen("sample", "--dataset", name, "--class", "3", "-n", "100", "--levels", "1", "--out", str(run))
        searched, kept = [], []
        for pair in range(args.pairs):
            with tempfile.TemporaryDirectory() as cache:
                (run / "eval.json").unlink(missing_ok=True)
                seconds, said = npgen("eval", str(run), cache=cache)
                assert "near-copy threshold: the nearest training image" in said, said
                searched.append(seconds)
                (run / "eval.json").unlink()
                seconds, said = npgen("eval", str(run), cache=cache)
                assert "near-copy threshold: read from" in said, said
                kept.append(seconds)
            print(f"{name} pair {pair + 1}: searched {searched[-1]:.1f} s, kept {kept[-1]:.1f} s", flush=True)
        results["datasets"][name] = {
            "searched_seconds": searched,
            "kept_seconds": kept,
            "median_searched": float(np.median(searched)),
            "median_kept": float(np.median(kept)),
            "median_ratio": float(np.median(np.array(kept) / np.array(searched))),
        }
    results["load_average_after"] = list(os.getloadavg())
    save_result("eval_speed", results)


if __name__ == "__main__":
    run_script(main)
