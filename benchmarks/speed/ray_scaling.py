"""How `npgen sample --ray` scales: one MNIST class-conditional run locally, and as Ray tasks on 1 and 2 workers.

    python benchmarks/speed/ray_scaling.py                      # 400 samples, batches of 50, 3 repeats, medians
    python benchmarks/speed/ray_scaling.py -n 2000 --repeats 5

Every configuration samples the same command (`--class 3 -n N --batch-size B`, the MNIST preset otherwise)
through `npgen.api.sample_run`: locally in this process (whose parallel numba kernels use every core),
and with `ray="local"` on a local Ray cluster started with `ray.init(num_cpus=K)` for K = 1 and 2 (one
worker per CPU, one thread each). The configurations take turns, `--repeats` rounds, so that a shared
machine's changing load falls on all of them alike; each round starts a fresh Ray cluster, whose first
run (worker processes, database opening, numba's cached kernels) is untimed ("cold") and whose second
is timed. The numbers are medians. Every Ray run's samples.npy is checked byte for byte against the
local run's.

Measured besides: the Ray cluster's start, the first (cold) run on a fresh cluster, the driver's cost of
writing one batch (`RunWriter.write_batch`: Parquet provenance, summary, images) and of finishing a run
(samples.npy, samples.parquet, a PNG per sample). From these, a projection for N nodes (see `projection`)
with its assumptions written beside it. Results: benchmarks/results/ray_scaling.json.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: record.py, tables.py
from record import save_result
from tables import ray_projection_table, ray_scaling_table

from npgen import api

DATASET, CLASS = "mnist", "3"


def timed_run(out: Path, n: int, batch: int, db: Path, ray: str | None) -> dict:
    """One run: its wall seconds (from the call to the complete run) and the manifest's sampling seconds."""
    started, cpu = time.perf_counter(), time.process_time()
    path = api.sample_run(out, DATASET, n, CLASS, db_path=db, sampler_options={"batch_size": batch}, ray=ray)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    from npgen.runs.run import read_manifest

    timings = read_manifest(path)["timings"]
    return {
        "wall_seconds": wall,
        "load_seconds": timings["load_seconds"],
        "sample_seconds": timings["sample_seconds"],
        "finish_seconds": wall - timings["load_seconds"] - timings["sample_seconds"],
        "driver_cpu_seconds": cpu,
        "samples": (path / "samples.npy").read_bytes(),
    }


def summarize(label: str, n: int, colds: list[dict], runs: list[dict]) -> dict:
    """Medians and all values of one configuration's timed runs (`colds`: its untimed first runs)."""
    sample = [r["sample_seconds"] for r in runs]
    median = statistics.median(sample)
    print(f"{label}: sampling {median:.2f} s median of {sample} -> {n / median:.1f} images/s", file=sys.stderr)
    return {
        "cold_sample_seconds": statistics.median(c["sample_seconds"] for c in colds),
        "sample_seconds": sample,
        "median_sample_seconds": median,
        "median_wall_seconds": statistics.median(r["wall_seconds"] for r in runs),
        "median_finish_seconds": statistics.median(r["finish_seconds"] for r in runs),
        "median_driver_cpu_seconds": statistics.median(r["driver_cpu_seconds"] for r in runs),
        "images_per_second": n / median,
    }


def driver_write_cost(scratch: Path, batch: int, db_path: Path, repeats: int = 5) -> float:
    """Median seconds for the driver to write one batch of `batch` real samples (`RunWriter.write_batch`)."""
    from npgen.data.database import Database
    from npgen.rule.sampler import Sampler
    from npgen.runs.store import RunWriter
    from npgen.runs.summary import sample_summary

    db = Database.load(db_path)
    _, options = api.resolve_params(api.load_dataset(DATASET), None, {"batch_size": batch})
    samples = Sampler(db, **options).sample_batch(np.arange(batch), int(CLASS))
    summary = sample_summary(samples, db)
    writer = RunWriter(scratch / "write-cost", {"n_samples": batch * repeats})
    seconds = []
    for index in range(repeats):
        started = time.perf_counter()
        writer.write_batch(index, samples, summary)
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds)


def projection(per_worker: float, efficiency: float, cores: int, write_seconds: float, batch: int, finish: float):
    """Projected images/s and hours for a million samples on N nodes of `cores` CPUs each.

    Assumptions: each node runs `cores` workers at the measured per-worker rate times the measured 2-worker
    efficiency (this box's two workers share its memory bandwidth as a node's would); the database is on a
    path every node shares (else each node builds it once, ~1 s for MNIST, in parallel); the driver writes
    every batch itself, so the cluster never goes faster than batch / (write cost per batch); transfers of
    results (≈ 0.9 MB per batch of 50 MNIST samples) are not limiting; the driver's final step (samples.npy,
    samples.parquet, a PNG per sample) is serial and adds its measured per-sample cost.
    """
    cap = batch / write_seconds
    rows = []
    for nodes in (1, 2, 4, 8, 16, 32, 64, 128):
        rate = min(nodes * cores * per_worker * efficiency, cap)
        hours = (1_000_000 / rate + 1_000_000 * finish) / 3600
        rows.append({"nodes": nodes, "workers": nodes * cores, "images_per_second": rate, "hours_per_million": hours})
    return {"driver_cap_images_per_second": cap, "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=400)
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    import ray

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="npgen-ray-scaling-") as tmp:
        scratch = Path(tmp)
        db, _ = api.build_database(DATASET)  # the cache's database: on one machine, every worker's shared path
        os.environ.setdefault("PYTHONPATH", str(Path(__file__).resolve().parents[2]))  # the workers' npgen
        labels = ["local", *(f"ray-{w}" for w in args.workers)]
        colds: dict = {label: [] for label in labels}
        runs: dict = {label: [] for label in labels}
        starts: dict = {label: [] for label in labels}

        def run(label: str, kind: str, ray: str | None) -> dict:
            return timed_run(scratch / f"{label}-{kind}-{len(runs[label])}", args.n, args.batch_size, db.path, ray)

        colds["local"].append(run("local", "warmup", None))
        for _ in range(args.repeats):  # round robin, so that the machine's load drifts over every configuration
            runs["local"].append(run("local", "timed", None))
            for workers in args.workers:
                label = f"ray-{workers}"
                started = time.perf_counter()
                ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
                starts[label].append(time.perf_counter() - started)
                try:  # a fresh cluster each round: its first run warms the workers up, the second is timed
                    colds[label].append(run(label, "warmup", "local"))
                    runs[label].append(run(label, "timed", "local"))
                finally:
                    ray.shutdown()
        reference = colds["local"][0]["samples"]
        results = {}
        for label in labels:
            results[label] = summarize(label, args.n, colds[label], runs[label])
            if label != "local":
                results[label]["cluster_start_seconds"] = statistics.median(starts[label])
                same = all(r["samples"] == reference for r in colds[label] + runs[label])
                results[label]["identical_to_local"] = same
                if not same:
                    raise SystemExit(f"{label}: samples differ from the local run's")
        write_seconds = driver_write_cost(scratch, args.batch_size, db.path)
    local = results["local"]["images_per_second"]
    per_worker = results["ray-1"]["images_per_second"] if "ray-1" in results else local
    two = results.get("ray-2", {}).get("images_per_second", per_worker)
    efficiency = two / (2 * per_worker)
    finish = results["local"]["median_finish_seconds"] / args.n
    record = {
        "n": args.n,
        "batch_size": args.batch_size,
        "repeats": args.repeats,
        "load_average_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "configurations": results,
        "ratios_to_local": {label: r["images_per_second"] / local for label, r in results.items()},
        # the local run's numba kernels use every core: compare it with Ray on as many workers as cores
        "ray_overhead_on_all_cores": 1 - results[f"ray-{max(args.workers)}"]["images_per_second"] / local,
        "two_worker_efficiency": efficiency,
        "driver_write_seconds_per_batch": write_seconds,
        "finish_seconds_per_sample": finish,
        "projection_2_core_nodes": projection(per_worker, efficiency, 2, write_seconds, args.batch_size, finish),
        "projection_16_core_nodes": projection(per_worker, efficiency, 16, write_seconds, args.batch_size, finish),
        # the same with each worker as fast as one unshared core: the local run's images per CPU-second of its
        # process (its whole run, writing included), efficiency 1
        "unshared_core_images_per_second": args.n / results["local"]["median_driver_cpu_seconds"],
        "projection_16_core_nodes_unshared": projection(
            args.n / results["local"]["median_driver_cpu_seconds"], 1.0, 16, write_seconds, args.batch_size, finish
        ),
        "projection_assumptions": " ".join(projection.__doc__.split("Assumptions:")[1].split()),
    }
    record = save_result("ray_scaling", record)
    print(ray_scaling_table(record), ray_projection_table(record), sep="\n\n")


if __name__ == "__main__":
    main()
