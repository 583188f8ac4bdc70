"""Device check of the CUDA sampler (npgen/rule/cuda.py): bit-identical to the CPU sampler on whole batches, and how fast.

Two steps, because the GPU machine has no datasets and takes at most 64 MiB along:

    # here, where the data is: the first 10,000 training images of MNIST and CIFAR-10 (about 29 MiB)
    python benchmarks/speed/gpu_check.py --prepare .devdata

    # on the GPU machine (faiss-cpu carried as a wheel if missing: npgen's database module needs it)
    python benchmarks/speed/gpu_check.py --data .devdata

The check builds each dataset's database with its preset, then for one class-conditional batch
(256 samples, class 3 by default) runs `Sampler` (numba, CPU threads) and `CudaSampler` (one thread
block per sample) and asserts that the images and every provenance array are identical; on two rows
of 64 samples with sigma 0.5 (where float64 sums round) it also compares every candidate window's
float64 distance at each row's last pixel (`compare_rows_with_cpu` of tests/cuda_harness.py), and on 64 samples
with every control (class map, excluded images, completion: `control_options`). It then times both
(`sample` of the whole batch, after a warm-up that compiles the kernels; medians of --repeats runs)
and the retrieval pools alone, which both samplers compute on the CPU. It prints one JSON line and
writes it to --json, else to $OUT/gpu.json when OUT is set. Exit status 1 when anything differs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))  # the CPU/GPU comparison harness: tests/cuda_harness.py
sys.path.insert(0, str(REPO / "benchmarks"))  # record.py
DATASETS = ("mnist", "cifar10")
FIELDS = ("images", "sample_index", "class_label", "src_image", "src_y", "src_x", "n_candidates", "distance")


def prepare(folder: Path, data_root: str | None, n_images: int) -> dict:
    """Write <folder>/<name>.npz with the first n_images training images and labels of each dataset."""
    from npgen.data.datasets import load_dataset
    from npgen.data.files import atomic_write, make_dir

    loaded = {name: load_dataset(name, data_root=data_root) for name in DATASETS}  # checked against their cards
    make_dir(folder)  # only once the data is there: a failed --prepare leaves no empty folder behind
    written = {}
    for name, data in loaded.items():
        x = data.images[:n_images]
        x = x[..., 0] if data.channels == 1 else x  # the card's layout
        y = data.labels[:n_images].astype(np.uint8)
        path = folder / f"{name}.npz"

        def write(tmp: Path, x=x, y=y) -> None:
            with open(tmp, "wb") as f:
                np.savez_compressed(f, x_train=x, y_train=y)

        atomic_write(path, write)
        written[name] = {"images": len(x), "sha256": _sha(x, y), "mib": round(path.stat().st_size / 2**20, 1)}
    return written


def _sha(x: np.ndarray, y: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(x).tobytes() + np.ascontiguousarray(y).tobytes()).hexdigest()[:16]


def median_seconds(run, repeats: int) -> tuple[float, list[float]]:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times), [round(t, 4) for t in times]


def retrieval_only(sampler, n: int, class_label: int) -> None:
    """The part both samplers do on the CPU: each row's retrieval pools (here over a canvas left blank)."""
    from npgen.rule.batch import RowBatch

    db = sampler.database
    batch = RowBatch.start(db, sampler.seed, np.arange(n), db.class_members(class_label), sampler.pool_size)
    for _ in batch.rows():
        pass


def control_options(db, n: int) -> dict:
    """Sampler options with every control: left half steered to class 3 and right half to class 7, every 10th
    training image excluded, and completions of the first n/2 training images (twice each) from their top
    8 rows."""
    from npgen.control.completion import Completion

    class_map = np.where(np.arange(db.width)[None, :] < db.width // 2, 3, 7).repeat(db.height, axis=0)
    inputs = np.ascontiguousarray(db.images()[: max(1, n // 2)])
    known = np.zeros(inputs.shape[:3], bool)
    known[:, :8] = True
    return {
        "class_map": class_map,
        "excluded": np.arange(0, db.n_images, 10),
        "completion": Completion(inputs, known, 2),
    }


def check_dataset(
    name: str, folder: Path, scratch: Path, n: int, class_label: int, repeats: int, threads: int | None
) -> dict:
    """Build the database, compare the CPU and CUDA samplers on one batch, time both."""
    from cuda_harness import compare_rows_with_cpu

    from npgen import api
    from npgen.data.database import Database
    from npgen.data.datasets import load_dataset
    from npgen.rule.cuda import CudaSampler
    from npgen.rule.sampler import Sampler

    data = load_dataset(name, data_root=folder, verify=False)  # a subset: it cannot match the card
    window, options = api.resolve_params(data)
    started = time.perf_counter()
    db = Database.build(data, scratch / name, window)
    build_s = time.perf_counter() - started
    options = {**options, "batch_size": n}
    cpu, gpu = Sampler(db, **options), CudaSampler(db, **options)
    if threads:
        gpu.threads = threads
    for sampler in (cpu, gpu):  # compile the kernels, upload the training images
        sampler.sample(min(2, n), class_label)
    cpu_out, gpu_out = cpu.sample(n, class_label), gpu.sample(n, class_label)
    differing = {}
    for field in FIELDS:
        a, b = getattr(cpu_out, field), getattr(gpu_out, field)
        if a.shape != b.shape or a.dtype != b.dtype or not np.array_equal(a, b):
            differing[field] = int((a != b).sum()) if a.shape == b.shape else "shape"
    # rows from the middle of 64 canvases, sigma 0.5 so that the float64 sums round: every candidate window's
    # distance at each row's last pixel, and the rows' outputs, against the CPU kernel
    rows = range(db.height // 2, db.height // 2 + 2)
    rowwise = compare_rows_with_cpu(
        db, {**options, "sigma": 0.5}, class_label, rows, n_samples=min(64, n), threads=gpu.threads
    )
    if rowwise["mismatches"]:
        differing["rows"] = rowwise["mismatches"][:5]
    controls = control_options(db, min(64, n))
    with_controls = [kind(db, **options, **controls).sample(min(64, n)) for kind in (Sampler, CudaSampler)]
    for field in FIELDS:
        a, b = (getattr(out, field) for out in with_controls)
        if not np.array_equal(a, b, equal_nan=a.dtype.kind == "f"):
            differing[f"controls {field}"] = int((a != b).sum())
    cpu_s, cpu_runs = median_seconds(lambda: cpu.sample(n, class_label), repeats)
    gpu_s, gpu_runs = median_seconds(lambda: gpu.sample(n, class_label), repeats)
    pools_s, _ = median_seconds(lambda: retrieval_only(cpu, n, class_label), repeats)
    return {
        "images": data.n_images,
        "data_sha256": _sha(data.images[..., 0] if data.channels == 1 else data.images, data.labels.astype(np.uint8)),
        "class": class_label,
        "samples": n,
        "params": cpu.params(),
        "database_build_s": round(build_s, 2),
        "identical": not differing,
        "differing": differing,
        "pixels_compared": int(cpu_out.src_image.size),
        "row_check": {"rows": list(rows), "pixels": rowwise["pixels"], "windows_float64": rowwise["windows"]},
        "controls_check": {
            "samples": min(64, n),
            "generated_pixels": int((with_controls[0].n_candidates > 0).sum()),
            "given_pixels": int((with_controls[0].n_candidates == -1).sum()),
        },
        "mean_admissible": round(float(cpu_out.n_candidates.mean()), 2),
        "cpu_s": round(cpu_s, 4),
        "gpu_s": round(gpu_s, 4),
        "cpu_runs_s": cpu_runs,
        "gpu_runs_s": gpu_runs,
        "cpu_images_per_s": round(n / cpu_s, 1),
        "gpu_images_per_s": round(n / gpu_s, 1),
        "gpu_speedup": round(cpu_s / gpu_s, 2),
        "retrieval_s": round(pools_s, 4),
        "threads_per_block": gpu.threads,
    }


def environment() -> dict:
    import numba
    from numba import cuda

    if numba.config.ENABLE_CUDASIM:
        name, capability = "numba CUDA simulator", None
    else:
        device = cuda.get_current_device()
        name = device.name.decode() if isinstance(device.name, bytes) else str(device.name)
        capability = list(device.compute_capability)
    return {
        "gpu": name,
        "compute_capability": capability,
        "cpu_cores": os.cpu_count(),
        "numba_threads": numba.config.NUMBA_NUM_THREADS,
        "python": platform.python_version(),
        "numba": numba.__version__,
        "numpy": np.__version__,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prepare", type=Path, help="write the data subsets into this folder and stop")
    parser.add_argument("--data-root", default=None, help="where mnist.npz and cifar10.npz are (for --prepare)")
    parser.add_argument("--images", type=int, default=10_000, help="training images per dataset (for --prepare)")
    parser.add_argument("--data", type=Path, default=REPO / ".devdata", help="the folder --prepare wrote")
    parser.add_argument("-n", type=int, default=256, help="samples in the batch")
    parser.add_argument("--class", dest="class_label", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument(
        "--threads", type=int, default=None, help="CUDA threads per block (default npgen.rule.cuda.THREADS)"
    )
    parser.add_argument("--json", type=Path, help="write the JSON line here (default: $OUT/gpu.json when OUT is set)")
    args = parser.parse_args()
    if args.prepare is not None:
        print(json.dumps(prepare(args.prepare, args.data_root, args.images)))
        return 0
    try:
        import faiss  # noqa: F401  (npgen.data.database imports npgen.data.index, which needs it)
    except ImportError:
        print("error: faiss is not installed; carry the faiss-cpu wheel (see the module docstring)", file=sys.stderr)
        return 2
    missing = [name for name in args.datasets.split(",") if not (args.data / f"{name}.npz").is_file()]
    if missing:
        print(f"error: {args.data} lacks {missing}; run `python benchmarks/speed/gpu_check.py --prepare {args.data}`")
        return 2
    result = {"check": "gpu", "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **environment()}
    with tempfile.TemporaryDirectory() as scratch:
        for name in args.datasets.split(","):
            result[name] = check_dataset(
                name, args.data, Path(scratch), args.n, args.class_label, args.repeats, args.threads
            )
            print(f"{name}: {json.dumps(result[name])}", file=sys.stderr, flush=True)
    result["identical"] = all(result[name]["identical"] for name in args.datasets.split(","))
    line = json.dumps(result)
    print(line)
    target = args.json or (Path(os.environ["OUT"]) / "gpu.json" if os.environ.get("OUT") else None)
    if target is not None:
        target.write_text(line + "\n")
    return 0 if result["identical"] else 1


if __name__ == "__main__":
    from record import run_script

    run_script(main)
