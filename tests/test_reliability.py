"""Issue 10, "reliability and security, tried deliberately": crafted runs, caches and inputs, through the real CLI.

Every test here reproduced its failure against the code before the fix: writes through planted links,
`build --force` deleting any folder, concurrent first builds crashing, verify/trace broadcasting crafted
arrays, unresumable half-made runs, tracebacks, leftover temporary files, hints naming options that do
not exist, `--resume` rewriting a finished run, and class names printed with their escape sequences.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from PIL import Image

from npgen.cli import main
from npgen.data.datasets import DATA_ENV, load_dataset

REPO = Path(__file__).resolve().parent.parent
N = 10  # samples in the shared run: eval scores need at least 10


def run_cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def one_error_line(result, *needles):
    """The result exited 2 and its output ends in one line `error: ...` (the only one), holding each needle; no traceback."""
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2, result.output
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], result.output
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


@pytest.fixture(scope="module")
def mnist_run(module_cache, tmp_path_factory):
    """A real completed MNIST run of ten "3"s (copy it before tampering)."""
    out = tmp_path_factory.mktemp("runs") / "run"
    result = run_cli("sample", "--dataset", "mnist", "--class", "3", "-n", N, "--out", out)
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture
def run(mnist_run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(mnist_run, copy)
    return copy


@pytest.fixture(scope="module")
def folder(tmp_path_factory, data_root):
    """A small real image folder (MNIST 0s and 1s); one class name holds a terminal escape sequence."""
    mnist = load_dataset("mnist", data_root=data_root)
    root = tmp_path_factory.mktemp("folder") / "digits"
    for digit, name in ((0, "zero"), (1, "\x1b[31mone\x1b[0m")):
        (root / name).mkdir(parents=True)
        for i in np.flatnonzero(mnist.labels == digit)[:40]:
            Image.fromarray(mnist.images[i, ..., 0]).save(root / name / f"{i}.png")
    return root


def snapshot(folder: Path) -> dict:
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


# ---- 1. a crafted run directory must not make npgen write outside itself ----


@pytest.mark.slow  # scores a run against the training split
def test_eval_does_not_write_through_planted_links(run, tmp_path, monkeypatch, session_cache):
    monkeypatch.setenv("NPGEN_CACHE", str(session_cache))  # the near-copy threshold another test's eval kept
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (run / f".eval.json.tmp-{os.getpid()}").symlink_to(victim)  # the old predictable temporary name
    result = run_cli("eval", run)
    assert result.exit_code == 0, result.output
    assert victim.read_text() == "precious"
    assert json.loads((run / "eval.json").read_text())["samples"]["n"] == N
    (run / "eval.json").unlink()
    (run / "eval.json").symlink_to(victim)
    one_error_line(run_cli("eval", run), "symbolic link")
    assert victim.read_text() == "precious" and (run / "eval.json").is_symlink()


def test_report_and_trace_do_not_follow_links_out_of_the_run(run, tmp_path):
    victim = tmp_path / "mine"
    victim.mkdir()
    (victim / "parts-7.png").write_bytes(b"my picture")
    (victim / "notes.txt").write_text("mine")
    before = snapshot(victim)
    (run / "report").symlink_to(victim)
    one_error_line(run_cli("report", run), "symbolic link")
    (run / "trace").symlink_to(victim)
    one_error_line(run_cli("trace", run, "--sample", "0"), "symbolic link")
    assert snapshot(victim) == before and sorted(p.name for p in victim.iterdir()) == ["notes.txt", "parts-7.png"]

    # the old report moved every entry of a predictable staging folder into the report: plant one pointing at the user's files
    (run / "report").unlink()
    (run / "report").mkdir()
    (run / "report" / f".composition.tmp-{os.getpid()}").symlink_to(victim)
    result = run_cli("report", run)
    assert result.exit_code == 0, result.output
    assert snapshot(victim) == before and not (run / "report" / "notes.txt").exists()
    assert (run / "report" / "report.html").is_file() and not list((run / "report").glob(".*.tmp-*[!0-9]*"))


# ---- 2. build --force deletes only npgen databases ----


def test_build_force_refuses_a_folder_that_is_not_a_database(folder, tmp_path, module_cache):
    mine = tmp_path / "photos"
    mine.mkdir()
    (mine / "holiday.jpg").write_bytes(b"jpeg")
    one_error_line(run_cli("build", "--dataset", folder, "--db", mine, "--force"), "not an npgen database")
    assert (mine / "holiday.jpg").read_bytes() == b"jpeg"
    link = tmp_path / "link"
    link.symlink_to(mine)
    one_error_line(run_cli("build", "--dataset", folder, "--db", link, "--force"), "symbolic link")
    db = tmp_path / "db"
    assert run_cli("build", "--dataset", folder, "--db", db).exit_code == 0
    assert run_cli("build", "--dataset", folder, "--db", db, "--force").exit_code == 0  # a real database is replaced
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]


# ---- 3. concurrent first runs share one build ----

BUILD_SCRIPT = textwrap.dedent("""
    import sys, time
    from npgen.data.database import Database, WindowParams
    from npgen.data.datasets import load_dataset
    data = load_dataset("mnist")
    while time.time() < float(sys.argv[2]):  # start together
        time.sleep(0.005)
    db = Database.open_or_build(data, sys.argv[1], WindowParams())
    assert db.n_images == 60000 and db.images()[123].sum() == data.images[123].sum()
    print("ok")
""")


@pytest.mark.slow  # builds a database in four processes at once
def test_concurrent_first_builds_all_succeed(tmp_path, data_root):
    import time

    path = tmp_path / "cache" / "db" / "mnist"
    start = time.time() + 8
    env = {**os.environ, DATA_ENV: str(data_root), "PYTHONPATH": str(REPO)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", BUILD_SCRIPT, str(path), str(start)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err[-500:] for _, err in outputs]
    assert all(out.strip() == "ok" for out, _ in outputs)
    assert sorted(p.name for p in path.parent.iterdir()) == [".mnist.lock", "mnist"]  # no temporary folder left


# ---- 4. verify, trace and report refuse crafted data ----


def _rewrite_provenance(run: Path, column: str, value: int) -> None:
    """Rewrite one provenance value, in a run whose manifest records no part SHA-256 (as one sampled before that
    record), so that the bounds checks are what must refuse it (the SHA-256 check is tested in test_hostile.py)."""
    manifest = json.loads((run / "manifest.json").read_text())
    manifest.pop("parts", None)
    (run / "manifest.json").write_text(json.dumps(manifest))
    part = run / "provenance" / "part-00000.parquet"
    table = pq.read_table(part)
    values = table.column(column).to_numpy().copy()
    values[5] = value
    table = table.set_column(
        table.schema.get_field_index(column), column, pa.array(values, type=table.schema.field(column).type)
    )
    pq.write_table(table, part)


@pytest.mark.parametrize(
    "column, value", [("src_y", 28), ("src_x", -1), ("sample", -1), ("src_image", -1), ("src_image", 60000)]
)
def test_provenance_outside_the_images_is_refused(run, column, value):
    _rewrite_provenance(run, column, value)
    for command in (["verify"], ["trace", "--sample", "0", "--pixel", "0,5"], ["report"]):
        one_error_line(run_cli(*command, run), "provenance", column)


def test_samples_of_the_wrong_shape_and_manifest_without_params_are_refused(run):
    samples = np.load(run / "samples.npy")
    np.save(run / "samples.npy", samples[..., 0])  # no channel axis
    one_error_line(run_cli("verify", run), "samples.npy", f"({N}, 28, 28, 1)")
    np.save(run / "samples.npy", np.concatenate([samples, samples]))  # more samples than the manifest says
    one_error_line(run_cli("trace", run, "--sample", str(N + 1)), "samples.npy")
    np.save(run / "samples.npy", samples)
    manifest = json.loads((run / "manifest.json").read_text())
    for change, needle in (
        (lambda m: m.pop("params"), "params"),
        (lambda m: m.pop("class_label"), "class_label"),
        (lambda m: m.update(class_label=12), "class_label 12"),
        (lambda m: m.update(database=[]), "database"),
        (lambda m: m["params"].update(class_mixture=1, seed="x"), "seed"),
    ):
        broken = json.loads(json.dumps(manifest))
        change(broken)
        if needle == "seed":
            broken["class_label"] = None
        (run / "manifest.json").write_text(json.dumps(broken))
        for command in (["verify"], ["trace", "--sample", "0"], ["report"], ["eval"])[
            : 1 if needle in ("class_label 12", "seed") else 4
        ]:
            one_error_line(run_cli(*command, run), needle)


# ---- 5. a run folder appears only once loading succeeded, and a half-made one can be resumed ----


def test_failed_start_leaves_no_folder_and_empty_folder_resumes(folder, tmp_path, module_cache, run):
    out = tmp_path / "new"
    # fails inside the sampler, after loading: the old code left a "running" folder that could not be restarted
    result = run_cli(
        "sample", "--dataset", folder, "-n", "2", "--out", out, "--pool-size", "3", "--max-source-share", "0.1"
    )
    one_error_line(result, "max_source_share")
    assert not out.exists()

    manifest = json.loads((run / "manifest.json").read_text())
    (run / "manifest.json").unlink()  # a run killed between its folder and its manifest
    for sub in ("png", "chunks", "provenance", "summary", "levels"):  # MNIST's preset writes a coarser level too
        shutil.rmtree(run / sub)
    for name in ("samples.npy", "samples.parquet", "grid.png"):
        (run / name).unlink()
    (run / "chunks").mkdir()
    result = run_cli("sample", "--dataset", "mnist", "--class", "3", "-n", N, "--out", run, "--resume")
    assert result.exit_code == 0, result.output
    assert "starting it afresh" in result.output and f"wrote {N} samples" in result.output
    assert json.loads((run / "manifest.json").read_text())["status"] == "complete"
    assert np.load(run / "samples.npy").shape == (N, 28, 28, 1) and manifest["n_samples"] == N

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("mine")
    one_error_line(run_cli("sample", "--dataset", "mnist", "-n", "2", "--out", foreign, "--resume"), "not an npgen run")
    assert sorted(p.name for p in foreign.iterdir()) == ["thesis.tex"]


# ---- 6. one-line errors instead of tracebacks ----


def test_unwritable_output_cache_file_and_dangling_out_give_one_line(run, tmp_path, monkeypatch):
    one_error_line(run_cli("trace", run, "--sample", "0", "--out", "/sys/npgen-trace.png"), "cannot write /sys")
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "missing")
    one_error_line(run_cli("sample", "--dataset", "mnist", "-n", "2", "--out", dangling), "symbolic link")
    cache_file = tmp_path / "cache-file"
    cache_file.write_text("not a folder")
    monkeypatch.setenv("NPGEN_CACHE", str(cache_file))
    one_error_line(run_cli("sample", "--dataset", "mnist", "-n", "2", "--out", tmp_path / "r"), "is a file")
    assert cache_file.read_text() == "not a folder" and not (tmp_path / "r").exists()
    one_error_line(run_cli("cache", "list"), "is a file")


def test_resume_with_a_truncated_part_and_report_with_a_text_summary(run):
    manifest = json.loads((run / "manifest.json").read_text())
    text = dict(manifest, summary={"median_nearest_distance": "far", "median_top_source_share": None})
    (run / "manifest.json").write_text(json.dumps(text))
    result = run_cli("report", run)
    assert result.exit_code == 0, result.output
    assert "n/a" in (run / "report" / "report.html").read_text()

    (run / "manifest.json").write_text(json.dumps(dict(manifest, status="running")))
    chunk = run / "chunks" / "part-00000.npy"
    chunk.write_bytes(chunk.read_bytes()[:90])
    one_error_line(
        run_cli("sample", "--dataset", "mnist", "--class", "3", "-n", N, "--out", run, "--resume"),
        "part-00000.npy",
        "delete that file",
    )
    chunk.unlink()
    result = run_cli("sample", "--dataset", "mnist", "--class", "3", "-n", N, "--out", run, "--resume")
    assert result.exit_code == 0, result.output
    assert run_cli("verify", run).exit_code == 0


# ---- 7. temporary files are cleaned; npgen cache list / clean ----


def test_stale_temporaries_are_removed_on_resume_and_by_cache_clean(run, folder, tmp_path, monkeypatch, data_root):
    (run / "provenance" / ".part-00000.parquet.tmp-4242").write_bytes(b"half")
    (run / "png" / ".sample-00000.png.tmp-4242").write_bytes(b"half")
    manifest = json.loads((run / "manifest.json").read_text())
    (run / "manifest.json").write_text(json.dumps(dict(manifest, status="running")))
    assert run_cli("sample", "--dataset", "mnist", "--class", "3", "-n", N, "--out", run, "--resume").exit_code == 0
    assert not list(run.rglob("*.tmp-*"))

    cache = tmp_path / "cache"
    monkeypatch.setenv("NPGEN_CACHE", str(cache))
    assert run_cli("build", "--dataset", folder).exit_code == 0
    (db,) = [p for p in (cache / "db").iterdir() if not p.name.startswith(".")]
    stale = cache / "db" / f".{db.name}.tmp-killed"  # a build killed midway
    stale.mkdir()
    (stale / "sources.npy").write_bytes(b"x" * 1000)
    (cache / "db" / "keep-me").mkdir()  # not npgen's: never removed
    (cache / "classifiers").mkdir()
    (cache / "classifiers" / "mnist.pt").write_bytes(b"weights")
    (cache / "eval").mkdir()
    threshold = cache / "eval" / "near-copy-mnist-0123456789ab-ba9876543210.json"  # what `npgen eval` keeps
    threshold.write_text("{}")
    listed = run_cli("cache", "list")
    assert listed.exit_code == 0, listed.output
    lines = listed.output.splitlines()
    assert any(line.startswith("database") and "digits/train" in line and str(db) in line for line in lines)
    assert any(line.startswith("temporary") and str(stale) in line for line in lines)
    assert any(line.startswith("classifier") and "mnist" in line for line in lines)
    assert any(line.startswith("folder") and "digits" in line for line in lines)  # the decoded image folder
    assert any(line.startswith("threshold") and " mnist " in line for line in lines)
    cleaned = run_cli("cache", "clean")
    assert cleaned.exit_code == 0 and "removed 1 entry," in cleaned.output, cleaned.output
    assert not stale.exists() and db.is_dir() and (cache / "classifiers" / "mnist.pt").exists()
    (cache / "db" / ".refused.lock").touch()  # the lock of a build that never made its database
    cleaned = run_cli("cache", "clean", "--all")
    assert cleaned.exit_code == 0 and "removed 5 entries" in cleaned.output, cleaned.output
    assert not threshold.exists()
    assert f"removed lock {cache / 'db' / '.refused.lock'}" in cleaned.output
    assert not list((cache / "folders").iterdir())
    assert not db.exists() and (cache / "db" / "keep-me").is_dir() and not (cache / "classifiers" / "mnist.pt").exists()
    assert not list((cache / "db").glob(".*.lock"))  # the build locks go with their databases
    (cache / "db" / "keep-me").rmdir()
    listed = run_cli("cache", "list")
    assert listed.exit_code == 0 and listed.output.splitlines()[1:] == ["the cache is empty"], listed.output


# ---- 8. hints name options and commands that exist ----


def test_changed_dataset_hint_and_object_arrays(tmp_path, data_root, run):
    mnist = np.load(data_root / "mnist.npz")
    arrays = {key: mnist[key] for key in mnist.files}
    arrays["x_train"] = arrays["x_train"].copy()
    arrays["x_train"][0, 0, 0] ^= 1
    np.savez(tmp_path / "mnist.npz", **arrays)
    line = one_error_line(run_cli("data", "info", "mnist", "--data-root", tmp_path), "npgen data import mnist")
    assert "--no-verify" not in line
    np.savez(tmp_path / "mnist.npz", x_train=np.array([{"a": 1}], dtype=object), y_train=np.zeros(1, np.uint8))
    line = one_error_line(run_cli("data", "info", "mnist", "--data-root", tmp_path))
    assert "allow_pickle" not in line and "not a plain numpy file" in line
    np.save(run / "samples.npy", np.array([None, 1], dtype=object), allow_pickle=True)
    assert "allow_pickle" not in one_error_line(run_cli("verify", run), "samples.npy")


def test_database_hints_name_real_commands(folder, tmp_path, module_cache):
    db = tmp_path / "db"
    db.mkdir()
    (db / "manifest.json").write_text("{broken")
    line = one_error_line(run_cli("sample", "--dataset", folder, "--db", db, "-n", "1", "--out", tmp_path / "r"))
    assert "--force" not in line and "delete the folder" in line  # build --force would (rightly) refuse this folder
    assert run_cli("build", "--dataset", folder, "--db", tmp_path / "ok", "--half-window", "2").exit_code == 0
    line = one_error_line(
        run_cli("sample", "--dataset", folder, "--db", tmp_path / "ok", "-n", "1", "--out", tmp_path / "r")
    )
    assert f"npgen build --dataset {folder}" in line and "--force" in line


# ---- 9. --resume of a finished run is a no-op ----


def test_resume_of_a_complete_run_changes_nothing(run):
    before = snapshot(run)
    result = run_cli("sample", "--dataset", "mnist", "--class", "3", "-n", N, "--out", run, "--resume")
    assert result.exit_code == 0, result.output
    assert f"run {run} is already complete ({N} samples); nothing to do" in result.output
    assert "wrote" not in result.output and snapshot(run) == before


# ---- 10. class names reach the terminal without their control characters ----


def test_trace_escapes_control_characters_in_class_names(folder, tmp_path, module_cache):
    out = tmp_path / "run"
    result = run_cli(
        "sample",
        "--dataset",
        folder,
        "--class",
        "0",
        "-n",
        "1",
        "--out",
        out,
        "--pool-size",
        "20",
        "--max-source-share",
        "0.5",
    )
    assert result.exit_code == 0, result.output
    for args in (["--pixel", "14,14"], []):
        traced = run_cli("trace", out, "--sample", "0", *args)
        assert traced.exit_code == 0, traced.output
        assert "\x1b" not in traced.output and "\\x1b[31mone" in traced.output


def test_ctrl_c_outside_sample_does_not_advise_resume(run, data_root):
    import signal

    env = {**os.environ, DATA_ENV: str(data_root), "PYTHONPATH": str(REPO)}

    def as_from_a_shell() -> None:  # Ctrl-C reaches it, whatever earlier tests did to this process's SIGINT
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        signal.signal(signal.SIGINT, signal.SIG_DFL)

    proc = subprocess.Popen(
        [sys.executable, "-m", "npgen", "eval", str(run)],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=as_from_a_shell,
    )
    # eval says "scoring RUN ..." once its command runs, then works for a minute or more: interrupt it then (a FIFO
    # manifest, which once made verify wait here, is refused at once since issue 21)
    first = proc.stderr.readline()
    assert first.startswith("scoring"), first
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    lines = err.strip().splitlines()
    assert proc.returncode == 130 and lines[-1] == "interrupted" and "resume" not in err, err  # no --resume to advise
