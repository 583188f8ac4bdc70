"""A whole `npgen sample` run's throughput as a share of the sampler's (target: >= 75%), measured in pairs.

    python benchmarks/speed/run_share.py               # 7 pairs per dataset
    python benchmarks/speed/run_share.py --pairs 11
    python benchmarks/speed/run_share.py --datasets cifar10

speed.py times each case in its own process, minutes apart; on a shared machine the load changes between
them, and the ratio of two medians taken at different times says little. Here one process alternates the
two measurements of speed.py's "sampler" and "run" cases (200 class-conditional images: classes 3 and 8,
100 each; the run is `npgen.api.sample_run`, database opening, nearest-image search, Parquet, PNGs and all)
a second apart, and reports the median of the per-pair ratios. Runs are written under benchmarks/runs/
(see speed.py). Written to benchmarks/results/run_share.json.

Where a run's time goes is timed too, per 100-sample run (medians over the pairs): the sampler
(`Sampler.sample_batch`), the batch summary (`summary.sample_summary`, mostly the nearest-image search),
writing the batch (`RunWriter.write_batch`: Parquet, images), the run's finish (`RunWriter.finish`:
samples.npy, samples.parquet, PNGs) and the rest (loading data and database, the manifest, folders). The
timers wrap those four functions for the measurement only. The load average (1 minute) at the start and the
end of each dataset's pairs is recorded: the machine is shared, and load slows the 2-thread sampler more than
the mostly single-threaded rest of a run.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import tempfile
import time
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: record.py, tables.py
from record import RUNS, save_result
from tables import run_stage_table

from npgen import api
from npgen.data.database import Database, default_path
from npgen.data.datasets import load_dataset
from npgen.rule.sampler import Sampler
from npgen.runs import store, summary

STAGES = {  # stage name -> (owner, attribute) of the function timed
    "sampler": (Sampler, "sample_batch"),
    "summary": (summary, "sample_summary"),
    "write_batch": (store.RunWriter, "write_batch"),
    "finish": (store.RunWriter, "finish"),
}


@contextmanager
def stage_timers(stages: dict = STAGES, finished: dict | None = None):
    """Yield {stage: [seconds, ...]}, filled while the stages' functions run (restored afterwards); `finished`, when
    given, gets each stage's last end time (time.perf_counter)."""
    seconds = defaultdict(list)
    originals = {name: getattr(owner, attribute) for name, (owner, attribute) in stages.items()}

    def timed(name, function):
        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                ended = time.perf_counter()
                seconds[name].append(ended - started)
                if finished is not None:
                    finished[name] = ended

        return wrapper

    for name, (owner, attribute) in stages.items():
        setattr(owner, attribute, timed(name, originals[name]))
    try:
        yield seconds
    finally:
        for name, (owner, attribute) in stages.items():
            setattr(owner, attribute, originals[name])


def file_creation_ms(folder: Path, n: int = 100) -> float:
    """Milliseconds to create (and then remove) n empty files in a new folder under `folder`: the state of the
    disk, which decides most of a run's finish (a PNG per sample). Fast on an idle disk (a few ms); about
    1 ms per file while this machine's shared disk throttles."""
    probe = folder / f"probe-{time.perf_counter_ns()}"
    probe.mkdir()
    started = time.perf_counter()
    for i in range(n):
        (probe / f"{i:05d}").touch()
    elapsed = 1000 * (time.perf_counter() - started)
    for i in range(n):
        (probe / f"{i:05d}").unlink()
    probe.rmdir()
    return elapsed


def pairs_for(name: str, n_pairs: int, data_root, scratch: Path, overrides: dict | None = None) -> dict:
    train = load_dataset(name, data_root=data_root)
    window, options = api.resolve_params(train, {}, overrides)
    db = Database.open_or_build(train, default_path(train, window), window)
    sampler = Sampler(db, **options)
    sampler.sample(2, class_label=0)  # compile (or load cached) kernels
    api.sample_run(scratch / f"{name}-warm", name, 2, 0, data_root, db.path, None, overrides)
    load_before = os.getloadavg()[0]
    sampler_seconds, run_seconds, per_run, files_ms = [], [], [], []
    stages = defaultdict(list)
    for pair in range(n_pairs):
        started = time.perf_counter()
        for class_label in (3, 8):
            sampler.sample(100, class_label=class_label)
        sampler_seconds.append(time.perf_counter() - started)
        files_ms.append(file_creation_ms(scratch))
        started = time.perf_counter()
        with stage_timers() as seconds:
            for class_label in (3, 8):
                run_started = time.perf_counter()
                api.sample_run(
                    scratch / f"{name}-{pair}-{class_label}",
                    name,
                    100,
                    class_label,
                    data_root,
                    db.path,
                    None,
                    overrides,
                )
                per_run.append(time.perf_counter() - run_started)
        run_seconds.append(time.perf_counter() - started)
        for stage, values in seconds.items():
            stages[stage] += values
    shares = np.array(sampler_seconds) / np.array(run_seconds)
    stage_ms = {stage: 1000 * float(np.median(values)) for stage, values in stages.items()}
    stage_ms["rest"] = 1000 * float(np.median(per_run)) - sum(stage_ms.values())
    return {
        "images": 200,
        "sampler_seconds": [round(s, 3) for s in sampler_seconds],
        "run_seconds": [round(s, 3) for s in run_seconds],
        "shares": [round(float(s), 3) for s in shares],
        "median_share": float(np.median(shares)),
        "sampler_images_per_second": float(200 / np.median(sampler_seconds)),
        "run_images_per_second": float(200 / np.median(run_seconds)),
        "stage_ms_per_100_sample_run": {stage: round(value, 1) for stage, value in stage_ms.items()},
        "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "ms_to_create_100_files": [round(v, 1) for v in files_ms],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=7)
    parser.add_argument("--datasets", nargs="+", default=["mnist", "cifar10"])
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--set", nargs="*", default=[], help="sampler options NAME=VALUE over the preset")
    parser.add_argument("--out", default="run_share", help="name of the result file in benchmarks/results/")
    args = parser.parse_args()
    overrides = {name: json.loads(value) for name, value in (item.split("=", 1) for item in args.set)}
    RUNS.mkdir(exist_ok=True)
    results = {}
    with tempfile.TemporaryDirectory(dir=RUNS, prefix="share-") as scratch:
        for name in args.datasets:
            results[name] = pairs_for(name, args.pairs, args.data_root, Path(scratch), overrides)
            print(name, results[name], flush=True)
    print(run_stage_table(results))
    save_result(args.out, {"results": results, "pairs": args.pairs, "overrides": overrides})


if __name__ == "__main__":
    main()
