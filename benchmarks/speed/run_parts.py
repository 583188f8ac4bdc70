"""The parts of a whole CIFAR-10 `npgen sample` run beside the sampler, each timed on its own.

    python benchmarks/speed/run_parts.py            # 100-sample CIFAR-10 runs, 9 repeats

`run_share.py` says how a whole run compares with the sampler; this says where the rest goes and what each
choice of the writer costs, on real runs written under benchmarks/runs/:

- stages of `npgen.api.sample_run` (medians over runs of classes 3 and 8): the sampler, the batch summary and
  within it the nearest-image search, writing the batch, the finish, and what is left after the finish
  (the database's memory maps closing when the run returns);
- the nearest-image search of one run's samples on a warm and on a freshly opened database;
- the source ranking (`nearest.source_ranking`) against its per-sample numpy definition;
- a batch's provenance Parquet with and without dictionary encoding (time and size);
- the batch's per-sample PNGs stored (`png_level`) and at zlib level 3.
Medians of `--repeats`. Written to benchmarks/results/run_parts.json.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: record.py
from record import RUNS, save_result
from run_share import STAGES, stage_timers  # benchmarks/speed/run_share.py

from npgen import api
from npgen.data import nearest
from npgen.data.database import Database, default_path
from npgen.data.datasets import load_dataset
from npgen.runs import png, summary

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))
from kernel_references import source_ranking_reference  # noqa: E402 (tests/kernel_references.py)


def median_ms(function, repeats: int) -> float:
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        seconds.append(time.perf_counter() - started)
    return round(1000 * float(np.median(seconds)), 2)


def stages(name: str, data_root, db_path: Path, scratch: Path, repeats: int) -> dict:
    """Median milliseconds of each stage of a 100-sample run, and after the finish until the run returns."""
    timed = {**STAGES, "nearest_search": (nearest.NearestImages, "search")}
    finished = {}
    with stage_timers(timed, finished) as seconds:
        for k in range(repeats):
            started = time.perf_counter()
            api.sample_run(scratch / f"stages-{k}", name, 100, (3, 8)[k % 2], data_root, db_path)
            ended = time.perf_counter()
            seconds["run"].append(ended - started)
            seconds["after_finish"].append(ended - finished["finish"])
    return {stage: round(1000 * float(np.median(values)), 2) for stage, values in seconds.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--data-root", default=None)
    args = parser.parse_args()
    name, repeats = "cifar10", args.repeats
    train = load_dataset(name, data_root=args.data_root)
    window, _ = api.resolve_params(train)
    db = Database.open_or_build(train, default_path(train, window), window)
    RUNS.mkdir(exist_ok=True)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(dir=RUNS, prefix="parts-") as scratch:
        scratch = Path(scratch)
        run = api.sample_run(scratch / "warm", name, 100, 3, args.data_root, db.path)  # compiles, warms caches
        record = {"stages_ms": stages(name, args.data_root, db.path, scratch, repeats)}
        images = np.load(run / "samples.npy")
        provenance = pq.read_table(run / "provenance")
        src_image = provenance.column("src_image").to_numpy().reshape(images.shape[:3])
        hints = nearest.top_sources(src_image, summary.NEAREST_HINTS)
        warm = nearest.NearestImages.for_database(db)
        record["nearest_ms"] = {
            "warm_database": median_ms(lambda: warm.search(images, hints), repeats),
            "fresh_database": median_ms(
                lambda: nearest.NearestImages.for_database(Database.load(db.path)).search(images, hints), repeats
            ),
        }
        record["source_ranking_ms"] = {
            "one_sort": median_ms(lambda: nearest.source_ranking(src_image, summary.NEAREST_HINTS), repeats),
            "np_unique_per_sample": median_ms(
                lambda: source_ranking_reference(src_image, summary.NEAREST_HINTS), repeats
            ),
        }
        parquet = {}
        for label, options in (("dictionary", {}), ("no_dictionary", {"use_dictionary": False})):
            buffer = io.BytesIO()
            pq.write_table(provenance, buffer, compression="zstd", **options)
            parquet[label] = {
                "ms": median_ms(
                    lambda options=options: pq.write_table(provenance, io.BytesIO(), compression="zstd", **options),
                    repeats,
                ),
                "kb": round(len(buffer.getvalue()) / 1000, 1),
            }
        record["provenance_parquet"] = parquet
        pngs = {}
        for label, level in (("stored", None), ("zlib_level_3", png.PNG_LEVEL)):
            encoded = list(png.encode_pngs(images, level))
            pngs[label] = {
                "ms": median_ms(lambda level=level: list(png.encode_pngs(images, level)), repeats),
                "bytes_per_png": int(np.mean([len(data) for data in encoded])),
            }
        record["per_sample_pngs"] = pngs
    record["load_average"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    print(record, flush=True)
    save_result("run_parts", {"dataset": name, "samples_per_run": 100, "repeats": repeats, "results": record})


if __name__ == "__main__":
    main()
