"""Where every benchmark writes its numbers: benchmarks/results/<name>.json, with machine, date and command."""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> str:
    """CPU model, core count and OS of this machine, as one line."""
    model = platform.processor() or platform.machine()
    try:
        model = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{model}, {os.cpu_count()} cores, {platform.system()} {platform.release()}"


def save_result(name: str, record: dict) -> dict:
    """Add machine, date and the exact command to `record`, write it atomically, and return it."""
    record = {
        **record,
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d"),
        "command": "python " + " ".join(sys.argv),
    }
    RESULTS.mkdir(exist_ok=True)
    tmp = RESULTS / f".{name}.json.tmp"
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    os.replace(tmp, RESULTS / f"{name}.json")
    return record
