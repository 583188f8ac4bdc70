"""The README's shell commands work as a user would type them, in order, in a fresh copy of the repository.

Every line of the README's ```bash blocks runs in one shell, from TMP/repo (a copy of this repository) with
the datasets at ../shared/datasets (TMP/shared/datasets, a link to the data the tests use). Only the
`pip install` steps (npgen is already installed: the test environment's `npgen` is on PATH) and the pytest
command (this is it) are left out. Change the README's commands and this test runs the new ones.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # runs every README command in a fresh copy

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
FENCE = re.compile(r"^```bash\n(.*?)^```", re.S | re.M)
SKIPPED = ("pip install", "python -m pytest")
COPY_IGNORE = shutil.ignore_patterns(
    ".git", ".venv", "__pycache__", "*.egg-info", ".pytest_cache", "runs", "build", "dist", "*.npz"
)


def readme_commands(text: str) -> list[str]:
    """The command lines of the README's bash blocks, in order, without `pip install` and pytest steps."""
    commands = []
    for block in FENCE.findall(text):
        for line in block.splitlines():
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            kept = [part for part in re.split(r"\s*&&\s*", line.strip()) if not part.startswith(SKIPPED)]
            if kept:
                commands.append(" && ".join(kept))
    return commands


def test_readme_commands_are_extracted_in_order():
    commands = readme_commands(README.read_text())
    first = commands[0]
    assert first.startswith("python3 -m venv .venv && . .venv/bin/activate && ")
    assert "NPGEN_DATA=../shared/datasets npgen sample --dataset mnist --class 3 -n 64 --out runs/demo" in first
    order = [
        next(i for i, c in enumerate(commands) if c.startswith(prefix))
        for prefix in ("npgen verify runs/demo", "npgen trace runs/demo --sample 17 --pixel", "npgen report runs/demo")
    ]
    assert 0 < order[0] < order[1] < order[2]
    assert not any(c.startswith(SKIPPED) or " pip install" in c for c in commands)


def test_readme_quick_start_and_tracing_commands_run_in_a_fresh_copy(tmp_path, all_data_root):
    repo, shared = tmp_path / "repo", tmp_path / "shared"
    shutil.copytree(REPO, repo, ignore=COPY_IGNORE)
    shared.mkdir()
    (shared / "datasets").symlink_to(all_data_root.resolve(), target_is_directory=True)
    bin_dir = Path(sys.executable).parent
    if shutil.which("npgen", path=str(bin_dir)) is None:
        pytest.fail(
            f"no npgen command beside {sys.executable}: install npgen into the test environment (pip install -e .)"
        )
    env = {k: v for k, v in os.environ.items() if k not in ("NPGEN_DATA", "VIRTUAL_ENV")}
    env |= {"PATH": f"{bin_dir}{os.pathsep}{env.get('PATH', '')}", "NPGEN_CACHE": str(tmp_path / "cache")}

    text = (repo / "README.md").read_text()
    script = "set -e -o pipefail -x\n" + "\n".join(readme_commands(text)) + "\n"
    done = subprocess.run(["bash", "-c", script], cwd=repo, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"a README command failed:\n{done.stderr[-4000:]}\n{done.stdout[-2000:]}"

    demo = repo / "runs" / "demo"
    manifest = json.loads((demo / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["n_samples"] == 64 and manifest["class_label"] == 3
    assert manifest["data_root"] == str(all_data_root.resolve())
    assert '"mismatches": 0' in done.stdout and "wrote 64 samples to runs/demo" in done.stdout
    promised = set(re.findall(r"runs/demo/[\w/.-]+\.(?:png|html)", text))
    assert promised, "the README no longer names the files its trace and report commands write"
    assert [p for p in sorted(promised) if not (repo / p).is_file()] == []
    assert (repo / ".venv" / "bin" / "activate").is_file()
