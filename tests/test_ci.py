"""CI cannot pass without the real data: .ci/run refuses to start, and NPGEN_REQUIRE_DATA turns skips into failures."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def without_data(tmp_path: Path, **extra: str) -> dict:
    empty = tmp_path / "no-data"
    empty.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "NPGEN_REQUIRE_DATA"}
    return env | {"NPGEN_DATA": str(empty), **extra}


def run_tests(tmp_path: Path, env: dict) -> subprocess.CompletedProcess:
    """A test that needs MNIST (through the data_root fixture) and one that needs both datasets (test_datasets)."""
    tests = [
        f"{REPO}/tests/test_store.py::test_damaged_runs_give_one_line_errors",
        f"{REPO}/tests/test_datasets.py::test_cards",
    ]
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rsf", "-p", "no:cacheprovider", *tests],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=300,
    )


def test_missing_data_skips_by_default_and_fails_when_required(tmp_path):
    skipped = run_tests(tmp_path, without_data(tmp_path))
    assert skipped.returncode == 0 and "2 skipped" in skipped.stdout, skipped.stdout + skipped.stderr
    failed = run_tests(tmp_path, without_data(tmp_path, NPGEN_REQUIRE_DATA="1"))
    assert failed.returncode == 1 and "2 errors" in failed.stdout and "skipped" not in failed.stdout, failed.stdout
    assert "mnist.npz missing in" in failed.stdout and "NPGEN_REQUIRE_DATA is set" in failed.stdout
    assert "mnist.npz, cifar10.npz missing in" in failed.stdout


def test_ci_script_stops_before_anything_when_the_data_is_missing(tmp_path):
    repo = tmp_path / "repo"
    (repo / ".ci").mkdir(parents=True)
    shutil.copy(REPO / ".ci" / "run", repo / ".ci" / "run")
    done = subprocess.run(
        ["bash", repo / ".ci" / "run"], capture_output=True, text=True, env=without_data(tmp_path), timeout=120
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert (
        done.stderr.startswith("error: CI needs the real datasets")
        and "no-data/mnist.npz does not exist" in done.stderr
    )
    assert len(done.stderr.strip().splitlines()) == 1
    assert not (repo / ".venv").exists()


def test_ci_script_requires_the_data_and_runs_the_readme_test_command():
    script = (REPO / ".ci" / "run").read_text()
    readme = (REPO / "README.md").read_text()
    command = "pip install -e '.[test]' && python -m pytest -q -n 2 --dist loadfile"
    assert command in readme and script.rstrip().endswith(command)
    assert "export NPGEN_REQUIRE_DATA=1" in script and "python3 -m venv .venv" in script
