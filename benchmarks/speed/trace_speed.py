"""Time the tracer's whole-run analysis on a real 10,000-sample MNIST run (target: ≤ 30 s).

    python benchmarks/speed/trace_speed.py              # samples the run once into benchmarks/runs/ (a few minutes)
    python benchmarks/speed/trace_speed.py --repeats 5

Each repeat runs in a fresh Python process (numba kernels loaded from their cache after a warm-up)
and times `Tracer(run).composition()`: opening the run, checking the dataset checksum, reading the
provenance Parquet (7.84 M rows) and computing parts, composition and reuse. Median to
benchmarks/results/trace_speed.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: record.py
from record import RUNS, save_result

RUN = RUNS / "mnist-unconditional-10k"


def one(data_root: str | None) -> dict:
    from npgen.analysis.tracer import Tracer

    started = time.perf_counter()
    composition = Tracer(RUN, data_root).composition()
    return {
        "seconds": time.perf_counter() - started,
        "pixels": int(composition.part_ids.size),
        "parts": composition.parts.num_rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--n", type=int, default=10000)
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.data_root)))
        return
    from npgen import api
    from npgen.runs.run import read_manifest

    if not (RUN / "manifest.json").exists() or read_manifest(RUN).get("status") != "complete":
        api.sample_run(RUN, "mnist", args.n, None, args.data_root, resume=RUN.exists(), progress=None)
    command = [sys.executable, __file__, "--one"] + (["--data-root", args.data_root] if args.data_root else [])
    subprocess.run(command, check=True, capture_output=True)  # warm-up: numba cache
    trials = [
        json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
        for _ in range(args.repeats)
    ]
    seconds = [t["seconds"] for t in trials]
    record = {
        "n_samples": args.n,
        "pixels": trials[0]["pixels"],
        "parts": trials[0]["parts"],
        "median_seconds": float(np.median(seconds)),
        "all_seconds": [round(s, 3) for s in seconds],
        "repeats": args.repeats,
    }
    print(json.dumps(save_result("trace_speed", record), indent=2))


if __name__ == "__main__":
    main()
