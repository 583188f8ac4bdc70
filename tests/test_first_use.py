"""Issue 21, first use: a data root given once stays found, `npgen data list` is a table without error lines,
`npgen data import` copies into npgen's own data folder, no silent waits (settings, build and compile notes
before sampling), `--resume` refuses other options on a finished run and counts only new work, `npgen eval`
caches its scores, and the one-line Python API runs twice in a row."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from npgen.cli import main
from npgen.data.dataset_cards import dataset_card
from npgen.data.datasets import DATA_ENV

REPO = Path(__file__).resolve().parent.parent


def run_cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def one_error(result) -> str:
    errors = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert result.exit_code == 2 and len(errors) == 1 and "Traceback" not in result.output, result.output
    return errors[0]


@pytest.fixture
def fresh(tmp_path, monkeypatch) -> Path:
    """An empty npgen cache folder and no $NPGEN_DATA: a first use."""
    monkeypatch.setenv("NPGEN_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv(DATA_ENV, raising=False)
    return tmp_path / "cache"


# ---- 1. data that stays found ----


def test_a_data_root_given_once_is_remembered_and_overridden_in_order(fresh, data_root, tmp_path, monkeypatch):
    assert "no data root given" in one_error(run_cli("data", "info", "mnist"))
    monkeypatch.setenv(DATA_ENV, str(data_root))
    assert run_cli("data", "info", "mnist").exit_code == 0
    assert json.loads((fresh / "config.json").read_text())["data_root"] == os.path.abspath(data_root)
    monkeypatch.delenv(DATA_ENV)
    info = run_cli("data", "info", "mnist")
    assert info.exit_code == 0 and json.loads(info.output)["n_images"] == 60000, info.output
    shown = run_cli("data", "root")
    assert shown.exit_code == 0 and str(data_root) in shown.output and "remembered" in shown.output

    empty = tmp_path / "empty"
    empty.mkdir()
    assert f"no mnist data in {empty}" in one_error(run_cli("data", "info", "mnist", "--data-root", empty))
    monkeypatch.setenv(DATA_ENV, str(empty))
    assert f"no mnist data in {empty}" in one_error(run_cli("data", "info", "mnist"))
    monkeypatch.delenv(DATA_ENV)
    assert json.loads((fresh / "config.json").read_text())["data_root"] == os.path.abspath(data_root)  # no datasets


def test_data_root_command_remembers_a_folder_and_refuses_a_missing_one(fresh, data_root, tmp_path):
    assert "not a folder" in one_error(run_cli("data", "root", tmp_path / "nowhere"))
    assert not (fresh / "config.json").exists()
    assert run_cli("data", "root", data_root).exit_code == 0
    assert run_cli("data", "info", "mnist", "--split", "test").exit_code == 0
    assert run_cli("cache", "clean", "--all").exit_code == 0  # the remembered root is no cache entry
    assert json.loads((fresh / "config.json").read_text())["data_root"] == os.path.abspath(data_root)


def test_data_list_is_a_table_without_error_lines(fresh, data_root, monkeypatch):
    listed = run_cli("data", "list")
    assert listed.exit_code == 0 and "error" not in listed.output.lower(), listed.output
    lines = listed.output.splitlines()
    assert lines[0].split() == ["name", "state", "size", "where", "description"]
    assert [line.split()[:2] for line in lines[1:] if line.split()[:1] in (["mnist"], ["cifar10"])] == [
        ["mnist", "absent"],
        ["cifar10", "absent"],
    ]
    assert "to get mnist: `npgen data download mnist`, or `npgen data import mnist SOURCE`" in listed.output
    for name in ("mnist", "cifar10"):  # every word of the description, none cut
        words = set(re.findall(r"\S+", listed.output))
        assert set(dataset_card(name)["description"].split()) <= words

    monkeypatch.setenv(DATA_ENV, str(data_root))
    listed = run_cli("data", "list")
    row = next(line for line in listed.output.splitlines() if line.startswith("mnist "))
    assert listed.exit_code == 0 and "present" in row and "MiB" in row and str(data_root / "mnist.npz") in row


def test_data_import_copies_a_dataset_into_npgens_own_data_folder(fresh, data_root):
    imported = run_cli("data", "import", "mnist", data_root)  # a folder holding mnist.npz
    assert imported.exit_code == 0, imported.output
    assert (fresh / "data" / "mnist.npz").is_file() and not (fresh / "config.json").exists()
    info = run_cli("data", "info", "mnist")  # no data root given or remembered: npgen's own folder
    assert info.exit_code == 0 and json.loads(info.output)["source"] == str(fresh / "data" / "mnist.npz")
    assert "own data folder" in run_cli("data", "root").output


# ---- 2. no silent waits; 4. resume ----


def test_settings_come_before_sampling_and_resume_refuses_other_options_finished_or_not(fresh, data_root, tmp_path):
    out = tmp_path / "run"
    args = ["sample", "--dataset", "mnist", "--class", "3", "--batch-size", "5", "--data-root", data_root]
    first = run_cli(*args, "-n", "10", "--out", out)
    assert first.exit_code == 0, first.output
    lines = first.output.splitlines()
    assert lines[0].startswith("building the mnist window database in ")
    settings = next(i for i, line in enumerate(lines) if line.startswith(f"sampling 10 of mnist into {out}: "))
    assert "class '3'; h=3, k_min=2, 2 pyramid levels (anchor position), source budget 78 pixels" in lines[settings]
    assert settings < next(i for i, line in enumerate(lines) if line.startswith("sampling: "))

    for other in (["-n", "20"], ["-n", "10", "--k-min", "3"]):
        error = one_error(run_cli(*args, *other, "--out", out, "--resume"))
        assert f"cannot resume {out}: its " in error and "differs from this command's" in error
    same = run_cli(*args, "-n", "10", "--out", out, "--resume")
    assert same.exit_code == 0 and "already complete (10 samples); nothing to do" in same.output

    manifest = json.loads((out / "manifest.json").read_text())
    (out / "manifest.json").write_text(json.dumps(dict(manifest, status="running")))
    for kind, suffix in (("provenance", "parquet"), ("summary", "parquet"), ("chunks", "npy")):
        (out / kind / f"part-00001.{suffix}").unlink()  # as if stopped after the first batch
    assert "n_samples" in one_error(run_cli(*args, "-n", "20", "--out", out, "--resume"))
    resumed = run_cli(*args, "-n", "10", "--out", out, "--resume")
    assert resumed.exit_code == 0, resumed.output
    assert f"resuming {out}: 5 samples already written, 5 to sample" in resumed.output
    bars = [line for line in resumed.output.splitlines() if line.startswith("sampling: ")]
    assert bars and all("/5 (" in line for line in bars), resumed.output  # not out of 10
    assert bars[-1].startswith("sampling: 5/5 (100%)"), resumed.output
    timings = json.loads((out / "manifest.json").read_text())["timings"]
    assert timings["images_per_second"] * timings["sample_seconds"] == pytest.approx(5, rel=0.01)
    assert run_cli("verify", out).exit_code == 0


def test_a_cold_numba_cache_is_seen_before_compiling(tmp_path):
    """kernels_cached() is False with an empty numba cache (the first run then says it compiles), and cheap."""
    code = "import time; t = time.perf_counter(); from npgen.rule.cpu import kernels_cached; print(kernels_cached())"
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "numba"), PYTHONPATH=str(REPO))
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "False", done.stderr


@pytest.mark.slow  # scores a run against the training split
def test_eval_says_each_step_and_a_second_eval_reads_its_cached_scores(fresh, data_root, tmp_path):
    out = tmp_path / "run"
    assert run_cli("sample", "--dataset", "mnist", "-n", "10", "--out", out, "--data-root", data_root).exit_code == 0
    first = run_cli("eval", out)
    assert first.exit_code == 0, first.output
    assert [line[:10] for line in first.output.splitlines() if line.startswith("eval [")] == [
        f"eval [{i}/6]" for i in range(1, 7)
    ]
    scores = json.loads((out / "eval.json").read_text())
    assert scores["key"]["classifier"] is None and len(scores["key"]["samples_sha256"]) == 64
    started = time.perf_counter()
    second = run_cli("eval", out)
    assert second.exit_code == 0 and "up to date" in second.output and "eval [" not in second.output
    assert time.perf_counter() - started < 5 and "near_copy_rate" in second.output
    assert json.loads((out / "eval.json").read_text()) == scores
    assert "none.pt" in one_error(run_cli("eval", out, "--classifier", tmp_path / "none.pt"))  # never from the cache
    (out / "eval.json").unlink()  # a new evaluation: the near-copy threshold of the two splits comes from the cache
    third = run_cli("eval", out)
    assert third.exit_code == 0 and "eval [3/6] near-copy threshold: read from" in third.output
    assert json.loads((out / "eval.json").read_text()) == scores
    assert any(
        line.startswith("threshold ") and " mnist " in line for line in run_cli("cache", "list").output.splitlines()
    )


# ---- 3. the one-line Python API ----


def python_snippet() -> str:
    """The README's Python API snippet."""
    text = (REPO / "README.md").read_text()
    section = text[text.index("## Python API") :]
    return re.search(r"```python\n(.*?)```", section, re.S)[1]


@pytest.mark.slow  # two fresh interpreters; test_library_errors_name_library_arguments covers the API in the fast lane
def test_the_readme_python_snippet_runs_twice_in_a_row(tmp_path, data_root):
    snippet = python_snippet()
    assert snippet.startswith("import npgen\n") and 'npgen.sample("mnist", n=16, class_label=3)' in snippet
    (tmp_path / "temp").mkdir()
    env = dict(os.environ, NPGEN_CACHE=str(tmp_path / "cache"), TMPDIR=str(tmp_path / "temp"), PYTHONPATH=str(REPO))
    env[DATA_ENV] = str(data_root)
    for attempt in range(2):
        done = subprocess.run(
            [sys.executable, "-c", snippet], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stderr
        lines = done.stdout.splitlines()
        assert (
            lines[0] == "(16, 28, 28, 1) 12544" and lines[1] == "True" and "PixelTrace(sample=0, y=12, x=9" in lines[2]
        )
        env.pop(DATA_ENV, None)  # the second time, the remembered data root
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "temp"]  # no db/ or run in the working folder
    assert len(list((tmp_path / "temp").glob("npgen-run-*/run/manifest.json"))) == 2


def test_library_errors_name_library_arguments(cache, tmp_path):
    import npgen
    from npgen.errors import NpgenError
    from npgen.library import library_words

    run = npgen.sample("mnist", n=2, class_label="3", out=tmp_path / "run", pool_size=20, quiet=True)
    assert run.images.shape == (2, 28, 28, 1) and run.class_name == "3" and run.provenance.num_rows == 2 * 784
    with pytest.raises(NpgenError) as excinfo:
        npgen.sample("mnist", n=2, out=run.path, quiet=True)
    assert "choose a new out=, or pass resume=True" in str(excinfo.value) and "--" not in str(excinfo.value)
    with pytest.raises(NpgenError, match="unknown option k_mn="):
        npgen.sample("mnist", n=2, k_mn=3)
    assert npgen.verify(run).ok and npgen.load(run.path).images.tolist() == run.images.tolist()
    assert npgen.trace(run, sample=1).num_rows > 0
    assert library_words("pass --force, --k-min 3, --data-root DIR or -n 2, not `npgen build --force`") == (
        "pass force=True, k_min=3, data_root=DIR or n=2, not `npgen build --force`"
    )
    assert library_words("-n must be >= 1; choose a new --out, or pass --resume to go on") == (
        "n must be >= 1; choose a new out=, or pass resume=True to go on"
    )
