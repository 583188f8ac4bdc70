"""Large databases: a SYNTHETIC split made from CIFAR-10 train, and what building and sampling cost at 50k-1M images.

The synthetic split is NOT real data: image i is CIFAR-10 training image i mod 50,000 under a random crop
(24-32 pixels, resized back to 32 by nearest neighbour), shift (up to 3 pixels, edges repeated) and
horizontal flip, each drawn from (i // CHUNK, position in chunk) with a fixed seed, so the same n always
gives the same images; it keeps the image's label. It is written as an npgen array folder
(`npgen.data.datasets.load_array_folder`, memory-mapped) named `cifar10-synthetic-<n>` under
/work/scale-data (never in git), with `"synthetic": true` in its `npgen-arrays.json`.

    python benchmarks/speed/scale.py make --n 50000 200000 1000000         # write the synthetic splits
    python benchmarks/speed/scale.py run --n 50000 200000 1000000          # build, sample, recall -> results/scale.json

Per size: database build time and peak RSS (a fresh `npgen build` process, `/usr/bin/time -v`), the database's
size on disk, class-conditional CIFAR-10 sampling throughput with the preset (the sampler alone, after
its pool indexes are ready; the one-off index set-up is reported separately) and the approximate pool's
recall@pool_size against the exact scan.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Self

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: record.py, tables.py
from record import RESULTS
from tables import scale_rows

SCALE_DATA = Path(os.environ.get("NPGEN_SCALE_DATA", "/work/scale-data"))
CHUNK = 10_000
SEED = 20261127
SCALE_JSON = RESULTS / "scale.json"


def synthetic_chunk(train_images: np.ndarray, train_labels: np.ndarray, first: int, count: int):
    """Images first..first+count-1 of the synthetic split: (uint8 images, int64 labels).

    Deterministic: each image depends only on its index (its chunk's seed and its place in the chunk)."""
    if first % CHUNK or count > CHUNK:
        raise ValueError("chunks start at multiples of CHUNK and hold at most CHUNK images")
    rng = np.random.default_rng([SEED, first // CHUNK])
    n_train, height, width, _ = train_images.shape
    source = (first + np.arange(CHUNK)) % n_train
    crop = rng.integers(24, height + 1, size=CHUNK)
    top = (rng.random(CHUNK) * (height - crop + 1)).astype(np.int64)
    left = (rng.random(CHUNK) * (width - crop + 1)).astype(np.int64)
    shift_y, shift_x = rng.integers(-3, 4, size=(2, CHUNK))
    flip = rng.random(CHUNK) < 0.5
    steps = np.arange(height)
    rows = top[:, None] + (steps[None, :] * crop[:, None]) // height
    cols = left[:, None] + (steps[None, :] * crop[:, None]) // width
    rows = np.clip(rows - shift_y[:, None], top[:, None], (top + crop - 1)[:, None])
    cols = np.clip(cols - shift_x[:, None], left[:, None], (left + crop - 1)[:, None])
    cols = np.where(flip[:, None], cols[:, ::-1], cols)
    source, rows, cols = source[:count], rows[:count], cols[:count]
    images = train_images[source[:, None, None], rows[:, :, None], cols[:, None, :]]
    return np.ascontiguousarray(images), train_labels[source].astype(np.int64)


def synthetic_path(n: int) -> Path:
    return SCALE_DATA / f"cifar10-synthetic-{n}"


def make(n: int, data_root: str | None = None) -> Path:
    """Write the synthetic split of n images (an array folder) unless it exists; return its folder."""
    from npgen.data.datasets import load_dataset
    from npgen.data.folders import write_array_folder

    path = synthetic_path(n)
    if path.exists():
        return path
    train = load_dataset("cifar10", data_root=data_root)
    chunks = (synthetic_chunk(train.images, train.labels, first, min(CHUNK, n - first)) for first in range(0, n, CHUNK))
    record = {
        "synthetic": True,
        "description": (
            f"SYNTHETIC, not a real dataset: {n} images made from CIFAR-10 train (image i = training image i mod "
            f"{train.n_images} randomly cropped, shifted and flipped; seed {SEED}) by benchmarks/speed/scale.py, to measure "
            "npgen on large splits"
        ),
        "made_from": {"name": "cifar10", "split": "train", "images_sha256": train.images_sha256},
        "seed": SEED,
    }
    return write_array_folder(
        path, f"cifar10-synthetic-{n}", train.class_names, n, train.images.shape[1:], chunks, record
    )


def database_path(n: int) -> Path:
    return SCALE_DATA / "db" / f"cifar10-synthetic-{n}"


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


class MemoryWatch:
    """Polls this process's /proc status: the peak of its anonymous memory (RssAnon: what it allocated itself)
    beside the kernel's peak RSS (VmHWM), which also counts the pages of memory-mapped files it touched (the
    database and the image folder; page cache, dropped under memory pressure)."""

    def __init__(self, every: float = 0.1) -> None:
        import threading

        self.every, self.peak_anon_kb, self.stop = every, 0, threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    @staticmethod
    def status(key: str) -> int:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
        return 0

    def run(self) -> None:
        while not self.stop.wait(self.every):
            self.peak_anon_kb = max(self.peak_anon_kb, self.status("RssAnon"))

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join()
        self.peak_anon_kb = max(self.peak_anon_kb, self.status("RssAnon"))

    def record(self, prefix: str) -> dict:
        return {
            f"{prefix}_peak_rss_gb": round(self.status("VmHWM") / 2**20, 2),
            f"{prefix}_peak_anon_gb": round(self.peak_anon_kb / 2**20, 2),
        }


def measure_build(n: int) -> dict:
    """Build the database of the synthetic split (`npgen.api.build_database`, what `npgen build --force` runs),
    in this process: seconds, peak memory, size on disk."""
    from npgen import api

    db_path = database_path(n)
    with MemoryWatch() as watch:
        db, _ = api.build_database(str(synthetic_path(n)), db_path=db_path, force=True)
    return {
        "build_seconds": db.manifest["build_seconds"],
        **watch.record("build"),
        "database_gb": round(folder_bytes(db_path) / 1e9, 2),
        "image_folder_gb": round(folder_bytes(synthetic_path(n)) / 1e9, 2),
    }


def measure_throughput(sizes: list[int], rounds: int, exact_rounds: int, class_name: str = "cat") -> dict:
    """Class-conditional sampling with the CIFAR-10 preset at every size, exact and approximate pool, in one
    process, batches of 100 taken in turn (size by size, round by round) so that the other work on the shared
    machine slows every case alike. The first batch of each (numba kernels from their cache, the prefix
    indexes built) is timed apart as set-up; then the median images/s over the rounds."""
    from npgen import api
    from npgen.data.database import Database
    from npgen.data.datasets import load_dataset
    from npgen.rule.sampler import Sampler

    samplers, found = {}, {}
    with MemoryWatch() as watch:
        for n in sizes:
            db = Database.load(database_path(n))
            label = api.resolve_class(db.class_names, class_name)
            for mode in ("exact", "approximate"):
                _, options = api.resolve_params(load_dataset(synthetic_path(n)), sampler_options={"pool_search": mode})
                sampler = Sampler(db, **options)
                started = time.perf_counter()
                sampler.sample(sampler.batch_size, class_label=label)
                found[(n, mode)] = {
                    "first_batch_seconds": round(time.perf_counter() - started, 2),
                    "prefix_index_seconds": round(db.prefix_indexes(db.class_members(label)).seconds, 2)
                    if mode == "approximate"
                    else 0.0,
                    "rates": [],
                }
                samplers[(n, mode)] = (sampler, label)
                print(n, mode, found[(n, mode)], flush=True)
        for round_ in range(1, rounds + 1):
            for (n, mode), (sampler, label) in samplers.items():
                if mode == "exact" and round_ > exact_rounds:
                    continue
                started = time.perf_counter()
                sampler.sample(sampler.batch_size, class_label=label, start=round_ * sampler.batch_size)
                found[(n, mode)]["rates"].append(round(sampler.batch_size / (time.perf_counter() - started), 1))
            print("round", round_, {key: value["rates"][-1:] for key, value in found.items()}, flush=True)
    results = {}
    for (n, mode), value in found.items():
        value["images_per_second"] = round(float(np.median(value["rates"])), 1)
        results.setdefault(str(n), {})[mode] = value
    results["memory"] = watch.record("sampling")
    return results


def measure_real_recall(class_name: str = "cat", n_queries: int = 200) -> dict:
    """The same recall on the real CIFAR-10 training split (its preset database, built in the cache if absent)."""
    from npgen import api

    db, _ = api.build_database("cifar10")
    return measure_recall(0, class_name, n_queries, db_path=db.path)


def measure_recall(
    n: int, class_name: str = "cat", n_queries: int = 200, data_root: str | None = None, db_path: Path | None = None
) -> dict:
    """Recall@pool_size of the approximate pool against the exact scan, with real CIFAR-10 test images of the class
    as the canvases (a held-out canvas is what a sample in progress is: an image not in the database)."""
    from npgen import api
    from npgen.data.database import Database
    from npgen.data.datasets import load_dataset
    from npgen.rule.pool import approximate_pool_recall
    from npgen.rule.rng import sample_keys

    db = Database.load(db_path or database_path(n))
    test = load_dataset("cifar10", split="test", data_root=data_root)
    label = api.resolve_class(db.class_names, class_name)
    _, options = api.resolve_params(test)  # the CIFAR-10 preset, as for the synthetic splits
    queries = db.encoder.encode(test.images[test.labels == label][:n_queries])
    keys = sample_keys(0, np.arange(len(queries)))
    recall = approximate_pool_recall(
        db.representations, db.prefix_indexes(db.class_members(label)), queries, keys, options["pool_size"]
    )
    return {"recall_mean": round(float(recall.mean()), 4), "recall_by_prefix": [round(float(r), 4) for r in recall]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    make_cmd = sub.add_parser("make", help="write the synthetic splits")
    make_cmd.add_argument("--n", type=int, nargs="+", required=True)
    run_cmd = sub.add_parser("run", help="build, sample and measure recall at each size; results/scale.json")
    run_cmd.add_argument("--n", type=int, nargs="+", required=True)
    run_cmd.add_argument("--rounds", type=int, default=5, help="timed batches of 100 per size and pool")
    run_cmd.add_argument("--exact-rounds", type=int, default=5, help="timed batches for the exact scan")
    run_cmd.add_argument("--skip-build", action="store_true", help="keep the databases built by an earlier run")
    run_cmd.add_argument("--skip-throughput", action="store_true", help="keep the throughput of an earlier run")
    for name in ("build", "throughput", "recall"):  # each measurement in a fresh process, as JSON on stdout
        one = sub.add_parser(name, help=f"(internal) the {name} measurement")
        one.add_argument("--n", type=int, nargs="+", required=True)
        one.add_argument("--rounds", type=int, default=5)
        one.add_argument("--exact-rounds", type=int, default=3)
    args = parser.parse_args()
    if args.command == "make":
        for n in args.n:
            started = time.perf_counter()
            print(f"{make(n)}: {time.perf_counter() - started:.1f} s", flush=True)
        return
    if args.command == "build":
        print(json.dumps(measure_build(args.n[0])))
        return
    if args.command == "throughput":
        print(json.dumps(measure_throughput(args.n, args.rounds, args.exact_rounds)))
        return
    if args.command == "recall":
        print(json.dumps(measure_recall(args.n[0]) if args.n[0] else measure_real_recall()))
        return

    def child(*arguments: str) -> dict:
        done = subprocess.run([sys.executable, __file__, *arguments], stdout=subprocess.PIPE, text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"{arguments} failed")
        return json.loads(done.stdout.strip().splitlines()[-1])

    results = json.loads(SCALE_JSON.read_text()) if SCALE_JSON.is_file() else {}
    results["cifar10_real_recall"] = child("recall", "--n", "0")  # --n 0: the real CIFAR-10 training split
    print("real CIFAR-10", results["cifar10_real_recall"], flush=True)
    for n in args.n:
        make(n)
        row = results.get(str(n), {}) if args.skip_build or args.skip_throughput else {}
        if not args.skip_build:
            row = {"n_images": n, **child("build", "--n", str(n))}
        row.update(child("recall", "--n", str(n)))
        print(n, row, flush=True)
        results[str(n)] = row
    sizes = [str(n) for n in args.n]
    if args.skip_throughput:
        SCALE_JSON.write_text(json.dumps(results, indent=2) + "\n")
        print(scale_rows(results))
        return
    speed = child("throughput", "--n", *sizes, "--rounds", str(args.rounds), "--exact-rounds", str(args.exact_rounds))
    for n in sizes:
        results[n].update(speed[n])
    results["sampling_memory"] = speed["memory"]
    results["command"] = "python benchmarks/speed/scale.py " + " ".join(sys.argv[1:])
    SCALE_JSON.parent.mkdir(parents=True, exist_ok=True)
    SCALE_JSON.write_text(json.dumps(results, indent=2) + "\n")
    print(scale_rows(results))


if __name__ == "__main__":
    main()
