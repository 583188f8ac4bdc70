"""A run remembers where its data was: verify, trace, report and eval need no data root after sampling,
an explicit --data-root or $NPGEN_DATA still wins, and a recorded root that lost the data is a clear error."""

from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner
from PIL import Image

from npgen.cli import main
from npgen.data.datasets import DATA_ENV, load_dataset


def run_cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def one_error(result, exit_code: int = 2) -> str:
    errors = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert result.exit_code == exit_code and len(errors) == 1 and "Traceback" not in result.output, result.output
    return errors[0]


@pytest.fixture(scope="module")
def mnist_run(tmp_path_factory, data_root):
    """Ten MNIST 3s sampled with NPGEN_DATA given as a relative path, through a symbolic link."""
    tmp = tmp_path_factory.mktemp("remembers")
    (tmp / "data").symlink_to(data_root.resolve(), target_is_directory=True)
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(tmp)
        patch.setenv("NPGEN_CACHE", str(tmp / "cache"))
        patch.setenv(DATA_ENV, "data")
        result = run_cli(
            "sample", "--dataset", "mnist", "--class", "3", "-n", "10", "--pool-size", "20", "--out", "run"
        )
    assert result.exit_code == 0, result.output
    return tmp / "run"


@pytest.mark.slow  # runs eval and every read-side command
def test_commands_after_sampling_find_the_recorded_data_root(mnist_run, data_root, monkeypatch, tmp_path):
    manifest = json.loads((mnist_run / "manifest.json").read_text())
    assert manifest["data_root"] == str(data_root.resolve())
    monkeypatch.delenv(DATA_ENV, raising=False)
    monkeypatch.chdir(tmp_path)  # the relative path given when sampling means nothing here
    verified = run_cli("verify", mnist_run)
    assert verified.exit_code == 0 and json.loads(verified.output)["mismatches"] == 0, verified.output
    traced = run_cli("trace", mnist_run, "--sample", "1", "--pixel", "14,14", "--out", tmp_path / "pixel.png")
    assert traced.exit_code == 0 and "(class 3)" in traced.output, traced.output
    reported = run_cli("report", mnist_run, "--out", tmp_path / "report")
    assert reported.exit_code == 0 and (tmp_path / "report" / "report.html").is_file(), reported.output
    scored = run_cli("eval", mnist_run)
    assert scored.exit_code == 0 and "near_copy_rate" in scored.output, scored.output
    assert json.loads((mnist_run / "eval.json").read_text())["samples"]["n"] == 10


def test_an_explicit_data_root_wins_over_the_recorded_one(mnist_run, tmp_path, monkeypatch):
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.delenv(DATA_ENV, raising=False)
    assert f"no mnist data in {empty}" in one_error(run_cli("verify", mnist_run, "--data-root", empty))
    monkeypatch.setenv(DATA_ENV, str(empty))
    assert f"no mnist data in {empty}" in one_error(run_cli("trace", mnist_run, "--sample", "0", "--pixel", "1,1"))


def test_a_recorded_root_that_lost_the_data_is_a_clear_error(mnist_run, tmp_path, monkeypatch):
    moved = tmp_path / "moved"
    shutil.copytree(mnist_run, moved)
    (moved / "eval.json").unlink(missing_ok=True)  # scores kept from an earlier eval need no data
    manifest = json.loads((moved / "manifest.json").read_text())
    for gone, why in ((tmp_path / "gone", "not a directory"), (tmp_path, "no mnist data in")):
        manifest["data_root"] = str(gone)
        (moved / "manifest.json").write_text(json.dumps(manifest))
        monkeypatch.delenv(DATA_ENV, raising=False)
        for command in (["verify", moved], ["report", moved], ["eval", moved]):
            error = one_error(run_cli(*command))
            assert f"run {moved} was sampled from mnist in {gone}, which no longer holds it" in error and why in error
            assert f"pass --data-root DIR or set {DATA_ENV}=DIR" in error
    del manifest["data_root"]  # a run sampled before the data root was recorded
    (moved / "manifest.json").write_text(json.dumps(manifest))
    monkeypatch.setenv("NPGEN_CACHE", str(tmp_path / "empty-cache"))  # nor a remembered root
    assert "no data root given" in one_error(run_cli("verify", moved))


def test_an_image_folder_run_records_its_folder(tmp_path, cache, data_root, monkeypatch):
    mnist = load_dataset("mnist", data_root=data_root)
    folder = tmp_path / "digits"
    for digit in (1, 7):
        (folder / f"d{digit}").mkdir(parents=True)
        for i in (mnist.labels == digit).nonzero()[0][:40]:
            Image.fromarray(mnist.images[i, ..., 0]).save(folder / f"d{digit}" / f"{i}.png")
    monkeypatch.chdir(tmp_path)
    result = run_cli(
        "sample",
        "--dataset",
        "digits",
        "--class",
        "d7",
        "-n",
        "2",
        "--pool-size",
        "10",
        "--max-source-share",
        "0.2",
        "--out",
        "run",
    )
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "run" / "manifest.json").read_text())["data_root"] == str(folder.resolve())
    monkeypatch.delenv(DATA_ENV)
    monkeypatch.chdir(data_root)
    assert run_cli("verify", tmp_path / "run").exit_code == 0
