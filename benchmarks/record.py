"""Where every benchmark writes: its numbers to benchmarks/results/<name>.json (with machine, date and command),
its figures to benchmarks/figures/, its runs to benchmarks/runs/ and reports to benchmarks/reports/ (neither in git).

The scripts in benchmarks/<folder>/ put benchmarks/ on sys.path to import this module."""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent
RESULTS = BENCHMARKS / "results"
FIGURES = BENCHMARKS / "figures"
RUNS = BENCHMARKS / "runs"
REPORTS = BENCHMARKS / "reports"


def machine() -> str:
    """CPU model, core count and OS of this machine, as one line."""
    model = platform.processor() or platform.machine()
    try:
        model = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{model}, {os.cpu_count()} cores, {platform.system()} {platform.release()}"


def script_path(script: str) -> str:
    """A benchmark script as run from the repository root (`benchmarks/...`), however it was called."""
    try:
        return str(Path(script).resolve().relative_to(BENCHMARKS.parent))
    except ValueError:
        return script


def save_result(name: str, record: dict) -> dict:
    """Add machine, date and the exact command to `record`, write it atomically, and return it."""
    record = {
        **record,
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d"),
        "command": "python " + " ".join([script_path(sys.argv[0]), *sys.argv[1:]]),
    }
    RESULTS.mkdir(exist_ok=True)
    tmp = RESULTS / f".{name}.json.tmp"
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    os.replace(tmp, RESULTS / f"{name}.json")
    return record


def run_script(main) -> None:
    """Run a benchmark's `main()` and exit with its status: an npgen error (no data root, missing or changed data)
    ends in one `error: ...` line on stderr and exit status 2, as the npgen command does, not a traceback; so does
    a failed npgen command the benchmark ran (its own error line, its exit status)."""
    import subprocess

    from npgen.errors import NpgenError

    try:
        status = main()
    except NpgenError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except subprocess.CalledProcessError as err:  # an npgen command it ran failed, and has printed its error line
        sys.exit(err.returncode)
    sys.exit(status or 0)
