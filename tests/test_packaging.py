"""A real, non-editable install: build the wheel, install it into a fresh venv, run it outside the source tree.

The fresh venv gets npgen from the wheel only; its dependencies (numpy, numba, FAISS, ...) come from the
environment running the tests, through a .pth file naming that environment's site-packages (a venv made
with --system-site-packages would see the base interpreter's packages, not the test venv's).
"""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import venv
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # builds a wheel and a fresh venv

REPO = Path(__file__).resolve().parent.parent
BUILD_OUTPUTS = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache")


def skip(directory: str, names: list[str]) -> set[str]:
    """What copying the source tree leaves out: build outputs anywhere, runs/ and benchmarks/ at the top only
    (npgen/runs/ is a package)."""
    ignored = set(BUILD_OUTPUTS(directory, names))
    return ignored | ({"runs", "benchmarks"} & set(names) if Path(directory) == REPO else set())


def run(args, **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=600, **kwargs)
    assert done.returncode == 0, f"{' '.join(map(str, args))} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh venv holding npgen installed from a wheel built from a copy of this source tree."""
    tmp = tmp_path_factory.mktemp("packaging")
    source, wheels, env = tmp / "src", tmp / "wheels", tmp / "venv"
    shutil.copytree(REPO, source, ignore=skip)
    run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            source,
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-q",
            "-w",
            wheels,
        ]
    )
    (wheel,) = wheels.glob("npgen-*.whl")
    venv.EnvBuilder(with_pip=False).create(env)
    python = env / "bin" / "python"
    purelib = Path(run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"]).stdout.strip())
    (purelib / "_npgen_test_dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", "-q", wheel])
    shutil.rmtree(source)  # nothing may come from the source tree any more
    return env


def user_env(tmp_path: Path, data_root: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    return env | {"NPGEN_DATA": str(data_root), "NPGEN_CACHE": str(tmp_path / "cache")}


def test_wheel_ships_the_dataset_cards_and_report_page_and_samples_mnist(installed, tmp_path, data_root):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    env = user_env(tmp_path, data_root)
    where = run(
        [
            installed / "bin" / "python",
            "-c",
            "import npgen, npgen.data.dataset_cards as d; print(npgen.__file__); print(d.CARDS_DIR)",
        ],
        cwd=outside,
        env=env,
    ).stdout.split()
    assert Path(where[0]).is_relative_to(installed) and not Path(where[0]).is_relative_to(REPO)
    assert sorted(p.name for p in Path(where[1]).glob("*.json")) == ["cifar10.json", "mnist.json"]
    assert Path(where[1]).is_relative_to(installed)

    npgen = installed / "bin" / "npgen"
    listed = run([npgen, "data", "list"], cwd=outside, env=env).stdout
    rows = [line.split()[:2] for line in listed.splitlines() if line.split()[:1] in (["mnist"], ["cifar10"])]
    assert rows[0] == ["mnist", "present"] and rows[1][0] == "cifar10" and "error" not in listed, listed

    sample = [npgen, "sample", "--dataset", "mnist", "--class", "3", "-n", "2", "--out", "X", "--levels", "1"]
    done = run(sample, cwd=outside, env=env)  # one level: the fresh install compiles the row kernel once, not per level

    assert "wrote 2 samples" in done.stdout
    manifest = json.loads((outside / "X" / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["class_label"] == 3
    assert manifest["dataset"]["images_sha256"].startswith("741c988805d0")
    run([npgen, "verify", "X"], cwd=outside, env=env)

    # the report page's template and style sheet are package data: the page is whole, styled, from the wheel
    run([npgen, "report", "X"], cwd=outside, env=env)
    page = (outside / "X" / "report" / "report.html").read_text(encoding="utf-8")
    style = (Path(where[0]).parent / "analysis" / "report.css").read_text(encoding="utf-8")
    assert Path(where[0]).parent.joinpath("analysis", "report_page.html").is_file()
    assert page.startswith("<!DOCTYPE html>") and page.endswith("</body></html>\n")
    assert f"<style>\n{style}</style>" in page and "img.thumb" in style
