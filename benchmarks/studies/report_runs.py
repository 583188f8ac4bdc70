"""The tracer's report of a 1,000-sample MNIST run and a 1,000-sample CIFAR-10 run.

    python benchmarks/studies/report_runs.py mnist     # -> benchmarks/reports/mnist/report.html
    python benchmarks/studies/report_runs.py cifar10   # -> benchmarks/reports/cifar10/report.html

Samples the run into benchmarks/runs/report-<dataset>/ (unconditional, seed 0, the dataset's
preset) unless it is already there, then writes its report. Neither is committed (benchmarks/runs/ and
benchmarks/reports/ are ignored by git): this command rebuilds them in a few minutes.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: record.py
from record import REPORTS, RUNS, run_script

from npgen import api
from npgen.analysis.report import write_report
from npgen.runs.run import read_manifest

DATASETS = ("mnist", "cifar10")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", choices=DATASETS)
    parser.add_argument("-n", type=int, default=1000)
    parser.add_argument("--data-root", default=None)
    args = parser.parse_args()
    run = RUNS / f"report-{args.dataset}"
    if not (run / "manifest.json").exists() or read_manifest(run).get("status") != "complete":
        api.sample_run(run, args.dataset, args.n, None, args.data_root, resume=run.exists())
    started = time.perf_counter()
    out = write_report(run, REPORTS / args.dataset, args.data_root)
    print(f"{out / 'report.html'} ({time.perf_counter() - started:.1f} s)")


if __name__ == "__main__":
    run_script(main)
