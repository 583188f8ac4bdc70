"""The command line end to end on real data, and every bad input it must refuse cleanly."""

import json
import re
import subprocess
import sys

import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from PIL import Image

from npgen.cli import main
from npgen.data.datasets import DATA_ENV


def run_cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def mnist_folder(tmp_path_factory, data_root):
    """A real MNIST subset as an image folder dataset: 300 PNGs of digits 0, 1 and 7."""
    from npgen.data.datasets import load_dataset

    mnist = load_dataset("mnist", data_root=data_root)
    root = tmp_path_factory.mktemp("folder") / "digits"
    for digit in (0, 1, 7):
        (root / f"digit{digit}").mkdir(parents=True)
        for i in np.flatnonzero(mnist.labels == digit)[:100]:
            Image.fromarray(mnist.images[i, ..., 0]).save(root / f"digit{digit}" / f"{i}.png")
    return root


def test_sample_and_verify_mnist_through_the_installed_command(cache, tmp_path):
    out = tmp_path / "demo"
    done = subprocess.run(
        [sys.executable, "-m", "npgen", "sample", "--dataset", "mnist", "--class", "3", "-n", "12", "--out", str(out)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "wrote 12 samples" in done.stdout
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["class_label"] == 3 and manifest["status"] == "complete"
    assert manifest["dataset"]["images_sha256"].startswith("741c988805d0")
    assert np.load(out / "samples.npy").shape == (12, 28, 28, 1)
    assert pq.read_table(out / "provenance").num_rows == 12 * 784
    assert Image.open(out / "grid.png").size[0] > 0 and len(list((out / "png").glob("*.png"))) == 12
    verified = run_cli("verify", out)
    assert verified.exit_code == 0 and json.loads(verified.output)["mismatches"] == 0


def test_sample_outside_a_terminal_prints_progress_lines(mnist_folder, tmp_path, cache):
    out = tmp_path / "run"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "npgen",
            "sample",
            "--dataset",
            str(mnist_folder),
            "-n",
            "4",
            "--batch-size",
            "1",
            "--pool-size",
            "20",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    lines = re.findall(
        r"^sampling: (\d+)/4 \((\d+)%\), [\d.]+ images/s, (?:ETA \d+ s|done in [\d.]+ s)$", done.stderr, re.M
    )
    shown = [(int(a), int(b)) for a, b in lines]  # whole samples done, percent of the work (rows within batches)
    assert len(shown) >= 4 and shown[-1] == (4, 100), done.stderr
    assert all(p <= q for (_, p), (_, q) in zip(shown, shown[1:])), done.stderr
    assert all(25 * k <= percent for k, percent in shown), done.stderr  # never a sample shown before it is done
    assert "done in" in done.stderr.splitlines()[-1] and "wrote 4 samples" in done.stdout


def test_image_folder_dataset_with_class_names(mnist_folder, tmp_path, cache):
    out = tmp_path / "folder-run"
    result = run_cli(
        "sample", "--dataset", mnist_folder, "--class", "digit7", "-n", "3", "--out", out, "--pool-size", "20"
    )
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["class_name"] == "digit7" and manifest["dataset"]["n_images"] == 300
    assert run_cli("verify", out).exit_code == 0


def test_tampered_run_fails_verification(mnist_folder, tmp_path, cache):
    out = tmp_path / "run"
    assert run_cli("sample", "--dataset", mnist_folder, "-n", "2", "--out", out, "--pool-size", "20").exit_code == 0
    samples = np.load(out / "samples.npy")
    samples[0, 14, 14] = 255 - samples[0, 14, 14]
    np.save(out / "samples.npy", samples)
    result = run_cli("verify", out)
    assert result.exit_code == 1 and json.loads(result.output.splitlines()[0])["mismatches"] == 1


def test_database_built_with_other_parameters_is_refused(mnist_folder, tmp_path, cache):
    db = tmp_path / "db"
    built = run_cli("build", "--dataset", mnist_folder, "--db", db, "--half-window", "2")
    assert built.exit_code == 0, built.output
    before = sorted(p.stat().st_mtime_ns for p in db.iterdir())
    result = run_cli("sample", "--dataset", mnist_folder, "--db", db, "-n", "1", "--out", tmp_path / "r")
    assert result.exit_code == 2 and "built with" in result.output and "Traceback" not in result.output
    assert "half_window = 2 in the database, 3 in this command" in result.output  # which parameter, both values
    assert sorted(p.stat().st_mtime_ns for p in db.iterdir()) == before
    assert run_cli("build", "--dataset", mnist_folder, "--db", db).exit_code == 2  # exists, no --force


def test_resume_with_other_options_names_the_parameter(mnist_folder, tmp_path, cache):
    out = tmp_path / "run"
    args = ["sample", "--dataset", mnist_folder, "-n", "2", "--batch-size", "1", "--out", out, "--pool-size", "20"]
    assert run_cli(*args).exit_code == 0
    manifest = json.loads((out / "manifest.json").read_text())
    (out / "manifest.json").write_text(json.dumps({**manifest, "status": "running"}))  # as if interrupted
    (out / "chunks" / "part-00001.npy").unlink()
    result = run_cli(*args, "--resume", "--k-min", "3")
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1, result.output
    assert f"params.k_min = {manifest['params']['k_min']} in the run, 3 in this command" in result.output
    assert run_cli(*args, "--resume").exit_code == 0


def test_build_of_an_up_to_date_database_does_nothing_and_force_rebuilds(mnist_folder, tmp_path, cache):
    db = tmp_path / "db"
    assert run_cli("build", "--dataset", mnist_folder, "--db", db).exit_code == 0
    before = sorted(p.stat().st_mtime_ns for p in db.iterdir())
    again = run_cli("build", "--dataset", mnist_folder, "--db", db)
    assert again.exit_code == 0 and f"database {db} is up to date" in again.output, again.output
    assert sorted(p.stat().st_mtime_ns for p in db.iterdir()) == before
    forced = run_cli("build", "--dataset", mnist_folder, "--db", db, "--force")
    assert forced.exit_code == 0 and forced.output.splitlines()[-1].startswith("built ")
    assert "building: 300/300 (100%)" in forced.output  # the progress of the streaming build
    assert sorted(p.stat().st_mtime_ns for p in db.iterdir()) != before
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    refused = run_cli("build", "--dataset", mnist_folder, "--db", other, "--force")  # only npgen databases
    assert refused.exit_code == 2 and "not an npgen database" in refused.output
    assert (other / "notes.txt").read_text() == "mine"


def test_database_of_other_data_is_refused(mnist_folder, tmp_path, cache):
    db = tmp_path / "db"
    assert run_cli("build", "--dataset", mnist_folder, "--db", db).exit_code == 0
    result = run_cli("sample", "--dataset", "mnist", "--db", db, "-n", "1", "--out", tmp_path / "r")
    assert result.exit_code == 2 and "was built for" in result.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["--dataset", "svhn"], "svhn"),
        (["--dataset", "mnist", "--class", "eleven"], "unknown class"),
        (["--dataset", "mnist", "--k-min", "0"], "invalid k_min"),
        (["--dataset", "mnist", "--eps", "-0.5"], "invalid eps"),
        (["--dataset", "mnist", "--half-window", "0"], "half_window"),
        (["--dataset", "mnist", "-n", "0"], "-n must be"),
    ],
)
def test_bad_sample_options_give_one_line_errors(args, message, tmp_path, cache):
    result = run_cli("sample", *args, "--out", tmp_path / "r")
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_missing_data_root_and_existing_output_are_refused(tmp_path, monkeypatch, cache):
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "keep.txt").write_text("mine")
    result = run_cli("sample", "--dataset", "mnist", "--out", existing)
    assert result.exit_code == 2 and "already exists" in result.output
    assert (existing / "keep.txt").read_text() == "mine"
    monkeypatch.delenv("NPGEN_DATA")
    result = run_cli("sample", "--dataset", "mnist", "--out", tmp_path / "r")
    assert result.exit_code == 2 and "NPGEN_DATA" in result.output


def test_corrupt_database_and_missing_run_are_refused(tmp_path, cache):
    db = tmp_path / "db"
    db.mkdir()
    (db / "manifest.json").write_text("{not json")
    result = run_cli("sample", "--dataset", "mnist", "--db", db, "--out", tmp_path / "r")
    assert result.exit_code == 2 and "corrupt" in result.output
    result = run_cli("verify", tmp_path / "nowhere")
    assert result.exit_code == 2 and "not an npgen run" in result.output


def test_data_commands(data_root):
    listed = run_cli("data", "list", "--data-root", data_root)
    assert listed.exit_code == 0 and "mnist" in listed.output and "present" in listed.output
    info = run_cli("data", "info", "mnist", "--data-root", data_root, "--split", "test")
    assert info.exit_code == 0 and json.loads(info.output)["n_images"] == 10000


def test_trace_a_pixel_and_a_sample(mnist_folder, tmp_path, cache):
    out = tmp_path / "run"
    assert (
        run_cli(
            "sample", "--dataset", mnist_folder, "--class", "digit0", "-n", "2", "--out", out, "--pool-size", "20"
        ).exit_code
        == 0
    )
    traced = run_cli("trace", out, "--sample", "1", "--pixel", "14,14")
    assert traced.exit_code == 0, traced.output
    assert (
        "sample 1 pixel (y=14, x=14) <- training image" in traced.output
        and "(class digit0, file digit0/" in traced.output
    )
    assert (out / "trace" / "sample-00001-pixel-14-14.png").is_file()
    parts = run_cli("trace", out, "--sample", "0", "--out", tmp_path / "parts.png")
    assert parts.exit_code == 0 and "parts from" in parts.output and (tmp_path / "parts.png").is_file()
    reported = run_cli("report", out)
    assert reported.exit_code == 0, reported.output
    assert (out / "report" / "report.html").is_file() and (out / "report" / "per_sample.parquet").is_file()
    for args, message in (
        (["--sample", "5"], "out of range"),
        (["--sample", "0", "--pixel", "3"], "--pixel takes Y,X"),
        (["--sample", "0", "--pixel", "28,0"], "out of range"),
    ):
        result = run_cli("trace", out, *args)
        assert result.exit_code == 2 and message in result.output, result.output


def test_folder_run_names_the_file_of_every_source(mnist_folder, tmp_path, cache):
    out = tmp_path / "run"
    assert run_cli("sample", "--dataset", mnist_folder, "-n", "2", "--out", out, "--pool-size", "20").exit_code == 0
    sources = pq.read_table(out / "sources.parquet").to_pylist()
    assert len(sources) == 300 and sources[0]["src_image"] == 0
    assert all((mnist_folder / row["file"]).is_file() and row["file"].split("/")[0] == row["class"] for row in sources)
    pixel = pq.read_table(
        out / "provenance", filters=[("sample", "==", 1), ("y", "==", 14), ("x", "==", 14)]
    ).to_pylist()[0]
    traced = run_cli("trace", out, "--sample", "1", "--pixel", "14,14")
    assert traced.exit_code == 0, traced.output
    row = sources[pixel["src_image"]]
    assert f"<- training image {pixel['src_image']} (class {row['class']}, file {row['file']})" in traced.output
    parts = run_cli("trace", out, "--sample", "0")
    assert parts.exit_code == 0 and "file" in parts.output.splitlines()[1] and ".png" in parts.output
    mnist = tmp_path / "mnist-run"  # a known dataset has no files to name
    assert run_cli("sample", "--dataset", "mnist", "--class", "1", "-n", "1", "--out", mnist).exit_code == 0
    assert not (mnist / "sources.parquet").exists()
    assert ", file" not in run_cli("trace", mnist, "--sample", "0", "--pixel", "3,3").output


@pytest.mark.slow  # scores a run against the training split
def test_eval_scores_a_run_and_refuses_bad_input(tmp_path, monkeypatch, data_root):
    monkeypatch.setenv(DATA_ENV, str(data_root))  # the session's cache: its database and near-copy threshold are shared
    out = tmp_path / "run"
    assert run_cli("sample", "--dataset", "mnist", "--class", "4", "-n", "20", "--out", out).exit_code == 0
    result = run_cli("eval", out)
    assert result.exit_code == 0, result.output
    assert "near_copy_rate" in result.output and "train floor" in result.output
    scores = json.loads((out / "eval.json").read_text())
    assert scores["samples"]["n"] == scores["floor"]["n"] == 20
    assert scores["samples"]["near_copy_rate"] <= 0.1 and scores["samples"]["pixel_nn_distance"]["p50"] > 500
    assert "no classifier" in scores["skipped"] or "need torch" in scores["skipped"]  # the cache holds no classifier

    before = sorted(p.name for p in out.iterdir())
    missing = run_cli("eval", out, "--classifier", tmp_path / "none.pt")
    errors = [line for line in missing.output.splitlines() if line.startswith("error: ")]
    assert missing.exit_code == 2 and len(errors) == 1 and "Traceback" not in missing.output
    assert sorted(p.name for p in out.iterdir()) == before
    not_a_run = run_cli("eval", tmp_path / "nowhere")
    assert not_a_run.exit_code == 2 and "not an npgen run" in not_a_run.output


def test_semantic_filter_runs_are_recorded_and_verified(mnist_folder, tmp_path, cache):
    out = tmp_path / "semantic"
    result = run_cli(
        "sample", "--dataset", mnist_folder, "--class", "digit0", "-n", "3", "--out", out, "--pool-size", "20",
        "--semantic-eps", "0.5", "--semantic-context", "1",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    params = json.loads((out / "manifest.json").read_text())["params"]
    assert (params["semantic_eps"], params["semantic_context"]) == (0.5, 1)
    verified = run_cli("verify", out)
    assert verified.exit_code == 0 and json.loads(verified.output)["mismatches"] == 0
    refused = run_cli("sample", "--dataset", mnist_folder, "-n", "1", "--out", tmp_path / "x", "--semantic-eps", "-1")
    assert refused.exit_code == 2 and "semantic_eps" in refused.output and "0..1e+06" in refused.output
