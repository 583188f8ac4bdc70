"""The code is formatted by `ruff format` (configured in pyproject.toml): `ruff format --check` finds nothing to change."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def ruff_command() -> list[str]:
    if importlib.util.find_spec("ruff") is not None:
        return [sys.executable, "-m", "ruff"]
    found = shutil.which("ruff")
    if found is None:
        pytest.skip("ruff is not installed: pip install -e '.[test]'")
    return [found]


def test_code_is_ruff_formatted():
    done = subprocess.run(
        [*ruff_command(), "format", "--check", "npgen", "tests", "benchmarks"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"run `ruff format npgen tests benchmarks`:\n{done.stdout}{done.stderr}"
