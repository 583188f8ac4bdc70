"""Time `npgen audit` on a real 10,000-sample MNIST run (target: ≤ 10 s on 2 cores).

    npgen sample --dataset mnist -n 10000 --out /work/scale-runs/mnist-10k     # once (a few minutes)
    python benchmarks/speed/audit_speed.py /work/scale-runs/mnist-10k --repeats 3

Each repeat runs the whole command line in a fresh process, as a user would: `npgen audit RUN` (usage of
every training image: reads sample, src_image and n_candidates of 7.84 M provenance rows) and
`npgen audit RUN --image I` (every pixel of the most used image: the provenance filtered on src_image),
each into a temporary --out folder. One untimed warm-up fills numba's cache. Wall-clock medians to
benchmarks/results/audit_speed.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: record.py
from record import save_result


def timed(command: list[str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(command, check=False, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{done.stderr}")
    return seconds, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    npgen = [sys.executable, "-m", "npgen", "audit", str(args.run)]
    record = {"run": str(args.run), "repeats": args.repeats}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "audit"
        timed([*npgen, "--out", str(out)])  # warm-up: numba's cache, the page cache
        usage = pq.read_table(out / "usage.parquet", columns=["pixels"]).column("pixels").to_numpy()
        image = int(np.argmax(usage))
        record |= {"pixels": int(usage.sum()), "image": image, "image_pixels": int(usage[image])}
        for name, extra in (("usage", []), ("image", ["--image", str(image)])):
            seconds = []
            for _ in range(args.repeats):
                shutil.rmtree(out, ignore_errors=True)
                took, stdout = timed([*npgen, *extra, "--out", str(out)])
                seconds.append(took)
            record[name] = {
                "median_seconds": float(np.median(seconds)),
                "all_seconds": [round(s, 3) for s in seconds],
                "summary": stdout.splitlines()[0],
            }
    record["load_average_after"] = [round(v, 2) for v in os.getloadavg()]  # the machine is shared
    print(json.dumps(save_result("audit_speed", record), indent=2))


if __name__ == "__main__":
    main()
