"""The benchmark commands the README names work as written, or end in one `error:` line (never a traceback), and
leave nothing behind when they fail; the README's run-folder table names everything a run folder holds."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text()
COMMAND = re.compile(r"(?:NPGEN_DATA=(\S+) )?python (benchmarks/\S+\.py)((?: (?!#)[^`\s/][^`\s]*)*)")


def readme_benchmark_commands() -> list[tuple[str | None, str, list[str]]]:
    """(NPGEN_DATA given, script, arguments) of every `python benchmarks/...` command in the README."""
    found = []
    for data, script, args in COMMAND.findall(README.replace("\n", " ")):
        entry = (data or None, script, args.split())
        if entry not in found:
            found.append(entry)
    return found


def run_as_written(script: str, args: list[str], cwd: Path, env: dict, timeout: int = 300):
    """Run a benchmark script from a copy of benchmarks/'s scripts beside `cwd` (what it writes under benchmarks/,
    such as runs/ and reports/, starts empty and stays out of this repository), npgen from this repository."""
    copy = cwd.parent / "benchmarks-copy"
    if not copy.exists():
        shutil.copytree(
            REPO / "benchmarks",
            copy / "benchmarks",
            ignore=shutil.ignore_patterns("runs", "reports", "figures", "results"),
        )
    path = copy / script
    return subprocess.run(
        [sys.executable, str(path), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def no_data_env(tmp_path: Path) -> dict:
    """A user's environment with no data root: an empty home folder, no NPGEN_DATA."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in ("NPGEN_DATA", "PYTHONPATH")}
    return env | {"HOME": str(home), "NPGEN_CACHE": str(home / "cache"), "PYTHONPATH": str(REPO)}


def test_the_readme_names_its_benchmark_commands_with_the_data_root_and_existing_scripts():
    commands = readme_benchmark_commands()
    scripts = {script for _, script, _ in commands}
    assert {"benchmarks/studies/report_runs.py", "benchmarks/speed/gpu_check.py"} <= scripts
    assert [script for script in sorted(scripts) if not (REPO / script).is_file()] == []
    # every command that reads the datasets says where they are, as the README's npgen commands do
    assert [(s, a) for data, s, a in commands if data is None and "--data" not in a] == []


@pytest.mark.parametrize(
    "script,args",
    [("benchmarks/studies/report_runs.py", ["mnist"]), ("benchmarks/speed/gpu_check.py", ["--prepare", ".devdata"])],
)
def test_without_data_a_readme_benchmark_ends_in_one_error_line_and_leaves_nothing(script, args, tmp_path):
    cwd = tmp_path / "work"
    cwd.mkdir()
    done = run_as_written(script, args, cwd, no_data_env(tmp_path))
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and done.stderr.startswith("error: no data root")
    assert len(done.stderr.strip().splitlines()) == 1
    assert list(cwd.iterdir()) == []  # gpu_check --prepare made no empty .devdata/


@pytest.mark.slow
def test_every_readme_benchmark_command_parses_and_fails_cleanly_without_data(tmp_path):
    for _, script, args in readme_benchmark_commands():
        parsed = run_as_written(script, [*args, "--help"], tmp_path, no_data_env(tmp_path))
        assert parsed.returncode == 0, (script, args, parsed.stderr)
        if "--data" in args:  # the GPU side reads the prepared folder, not the data root
            continue
        done = run_as_written(script, args, tmp_path, no_data_env(tmp_path))
        assert done.returncode == 2 and done.stderr.startswith("error: "), (script, args, done.stderr[-2000:])
        assert "Traceback" not in done.stderr


def test_gpu_check_prepare_as_written_writes_the_two_subsets(tmp_path, all_data_root):
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "datasets").symlink_to(all_data_root.resolve(), target_is_directory=True)
    cwd = tmp_path / "repo"
    cwd.mkdir()
    ((data, script, args),) = [c for c in readme_benchmark_commands() if "--prepare" in c[2]]
    env = no_data_env(tmp_path) | {"NPGEN_DATA": data}
    done = run_as_written(script, args, cwd, env)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (cwd / ".devdata").iterdir()) == ["cifar10.npz", "mnist.npz"]


def run_folder_table() -> str:
    start = README.index("| file | what |")
    return README[start : README.index("\n\n", start)]


def test_the_run_folder_table_names_everything_a_run_folder_holds(tmp_path, data_root):
    env = {**os.environ, "NPGEN_DATA": str(data_root), "NPGEN_CACHE": str(tmp_path / "cache")}
    args = ["-m", "npgen", "sample", "--dataset", "mnist", "--class", "3", "-n", "2", "--levels", "2"]
    done = subprocess.run([sys.executable, *args, "--out", str(tmp_path / "run")], env=env, capture_output=True)
    assert done.returncode == 0, done.stderr
    table = run_folder_table()
    named = set(re.findall(r"`([\w.*-]+/?)", table))
    held = {p.name + "/" if p.is_dir() else p.name for p in (tmp_path / "run").iterdir()}
    missing = [name for name in sorted(held) if name not in named and not any(n.startswith(name) for n in named)]
    assert missing == [], f"the README's run-folder table does not name {missing}"
    assert "`levels/K/`" in table and "`controls/`" in table


def test_python_packages_the_readme_names_are_installed_or_said_not_to_be():
    requirements = (REPO / "setup.cfg").read_text().lower()
    for package in ("pandas", "DuckDB", "polars", "matplotlib", "scipy"):
        for line in [line for line in README.splitlines() if package in line]:
            assert package.lower() in requirements or "not installed by npgen" in line, line
