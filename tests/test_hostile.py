"""Issue 21, hostile inputs: read-side commands that answered wrong from an incomplete run, wrote into runs, sized
memory by unchecked numbers, hung, trusted recorded budgets, wrote through links, left temporary folders behind or
deleted a user's files. Each test failed before its fix; all go through the real CLI on real MNIST."""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from npgen.cli import main
from npgen.data.datasets import load_dataset

REPO = Path(__file__).resolve().parent.parent
READ_COMMANDS = {  # a read-side command on a run, writing (when it writes) outside it
    "verify": lambda run, out: ["verify", run],
    "audit": lambda run, out: ["audit", run, "--out", out],
    "audit-image": lambda run, out: ["audit", run, "--image", "975", "--out", out],
    "report": lambda run, out: ["report", run, "--out", out],
    "trace": lambda run, out: ["trace", run, "--sample", "0", "--out", out / "t.png"],
    "infomap": lambda run, out: ["infomap", run, "--out", out],
    "eval": lambda run, out: ["eval", run],
}


def run_cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def one_error_line(result, *needles) -> str:
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2, result.output
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0] and "Traceback" not in result.output, result.output
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


def npgen_process(*args, timeout=120, env=None, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "npgen", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
        **kwargs,
    )


def edit_manifest(run: Path, change) -> None:
    manifest = json.loads((run / "manifest.json").read_text())
    change(manifest)
    (run / "manifest.json").write_text(json.dumps(manifest))


def snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def two_batch_run(module_cache, tmp_path_factory):
    """A real MNIST run of 16 "3"s in two batches of 8 (two provenance parts); copy it before tampering."""
    out = tmp_path_factory.mktemp("runs") / "run"
    result = run_cli("sample", "--dataset", "mnist", "--class", "3", "-n", 16, "--batch-size", 8, "--out", out)
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture
def run(two_batch_run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(two_batch_run, copy)
    return copy


@pytest.fixture(scope="module")
def shards(module_cache, tmp_path_factory):
    """The two shard folders of `sample -n 16 --batch-size 8 --shard I/2`."""
    root = tmp_path_factory.mktemp("shards")
    for index in (0, 1):
        result = run_cli(
            "sample", "--dataset", "mnist", "--class", "3", "-n", 16, "--batch-size", 8, "--shard", f"{index}/2",
            "--out", root / f"s{index}",
        )  # fmt: skip
        assert result.exit_code == 0, result.output
    return [root / "s0", root / "s1"]


# ---- every read-side command checks a run's completeness before answering ----


def _remove_part(run):
    (run / "provenance" / "part-00001.parquet").unlink()


def _duplicate_part(run):
    shutil.copyfile(run / "provenance" / "part-00000.parquet", run / "provenance" / "part-00001.parquet")


def _duplicate_part_of_an_old_run(run):  # a run recorded before its manifest named its parts' SHA-256
    edit_manifest(run, lambda m: m.pop("parts", None))
    _duplicate_part(run)


def _foreign_parquet(run):
    shutil.copyfile(run / "provenance" / "part-00000.parquet", run / "provenance" / "copy.parquet")


def _truncated_summary(run):
    path = run / "samples.parquet"
    path.write_bytes(path.read_bytes()[:200])


DAMAGE = {
    "removed part": (_remove_part, "part-00001.parquet is missing"),
    "duplicated part": (_duplicate_part, "part-00001.parquet"),
    "duplicated part, old run": (_duplicate_part_of_an_old_run, "holds samples 0..7, not its batch's 8..15"),
    "foreign parquet": (_foreign_parquet, "copy.parquet is not one of the run's 2 provenance parts"),
    "truncated samples.parquet": (_truncated_summary, "samples.parquet"),
    "empty samples.npy": (lambda run: (run / "samples.npy").write_bytes(b""), "samples.npy"),  # was "Aborted!"
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_every_read_command_refuses_an_incomplete_run(run, tmp_path, damage):
    change, needle = DAMAGE[damage]
    change(run)
    for name, command in READ_COMMANDS.items():
        out = tmp_path / f"out-{name}"
        one_error_line(run_cli(*command(run, out)), needle)
        assert not out.exists()


def test_intact_runs_pass_the_check_with_and_without_recorded_parts(run, tmp_path):
    recorded = json.loads((run / "manifest.json").read_text())["parts"]
    parts = {f"{level}provenance/part-0000{i}.parquet" for level in ("", "levels/1/") for i in (0, 1)}
    assert set(recorded) == parts | {"samples.parquet"}  # MNIST's preset: two levels, each level's parts recorded
    found = run_cli("audit", run, "--image", "975", "--out", tmp_path / "a")
    assert found.exit_code == 0, found.output
    edit_manifest(run, lambda m: m.pop("parts"))  # as a run recorded before the record
    again = run_cli("audit", run, "--image", "975", "--out", tmp_path / "b")
    assert again.exit_code == 0 and again.output.splitlines()[0] == found.output.splitlines()[0]


# ---- read-side commands never write into a run ----


@pytest.mark.parametrize("command", ["report", "audit", "infomap", "trace"])
@pytest.mark.parametrize("where", [".", "provenance", "report/../summary", "png/new"])
def test_read_side_out_inside_a_run_is_refused(run, command, where):
    before = snapshot(run)
    target = run / where
    args = {
        "report": ["report", run, "--out", target],
        "audit": ["audit", run, "--out", target],
        "infomap": ["infomap", run, "--out", target],
        "trace": ["trace", run, "--sample", "0", "--out", target / "figure.png"],
    }[command]
    one_error_line(run_cli(*args), "read-side commands never write into a run")
    assert snapshot(run) == before


def test_read_side_default_out_inside_the_run_still_works(run):
    result = run_cli("audit", run)
    assert result.exit_code == 0, result.output
    assert (run / "audit" / "usage.parquet").is_file()


# ---- memory sized by unchecked numbers ----


@pytest.mark.parametrize(
    "args, needle",
    [
        (["sample", "--dataset", "mnist", "-n", 10**12], "-n must be in 1..10000000"),
        (["sample", "--dataset", "mnist", "-n", 10**23], "-n must be in 1..10000000"),
        (["complete", "--dataset", "mnist", "--test-index", 0, "--mask", "top", "-n", 10**12], "completions per input"),
        (["complete", "--dataset", "mnist", "--test-index", 10**20, "--mask", "top"], "--test-index must lie in"),
        (["sample", "--dataset", "mnist", "-n", 2, "--shard", f"0/{10**20}"], "K in 1..10000000"),
        (["sample", "--dataset", "mnist", "-n", 2, "--exclude", "near:1e308:0"], "excludes all 60000 training images"),
        (["sample", "--dataset", "", "-n", 2], "the dataset name is empty"),
    ],
)
def test_unchecked_numbers_and_names_are_refused(module_cache, tmp_path, args, needle):
    one_error_line(run_cli(*args, "--out", tmp_path / "out"), needle)
    assert not (tmp_path / "out").exists()


def test_manifest_numbers_and_sparse_samples_are_checked_before_allocating(run, tmp_path):
    edit_manifest(run, lambda m: m["dataset"].update(n_images=10**11))
    one_error_line(run_cli("audit", run, "--out", tmp_path / "a"), "n_images 100000000000")
    edit_manifest(run, lambda m: m["dataset"].update(n_images=60000) or m.update(n_samples=10**6))
    np.lib.format.open_memmap(run / "samples.npy", mode="w+", dtype=np.uint8, shape=(10**6, 28, 28, 1)).flush()
    one_error_line(run_cli("verify", run), "part-00002.parquet is missing")


def _limit_memory():
    resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))  # a regression reads /dev/zero into 4 GiB, not all RAM


def test_manifest_that_is_not_a_regular_file_is_refused_at_once(run):
    (run / "manifest.json").unlink()
    (run / "manifest.json").symlink_to("/dev/zero")
    done = npgen_process("verify", run, timeout=60, preexec_fn=_limit_memory)  # before: read until memory ran out
    assert done.returncode == 2 and done.stderr.strip().endswith("replace it with the file"), done.stderr
    (run / "manifest.json").unlink()
    os.mkfifo(run / "manifest.json")
    done = npgen_process("verify", run, timeout=60, preexec_fn=_limit_memory)  # before: blocked on open() forever
    assert done.returncode == 2 and done.stderr.strip().endswith("replace it with the file"), done.stderr


# ---- other tracebacks ----


def test_audit_max_candidates_beyond_int32_counts_every_pixel(run, tmp_path):
    huge = run_cli("audit", run, "--max-candidates", 10**20, "--out", tmp_path / "a")
    assert huge.exit_code == 0 and "Traceback" not in huge.output, huge.output
    assert "(100.0% informative)" in huge.output


def _bomb_png(path: Path, side: int = 100_000) -> None:
    """A PNG whose header declares side x side pixels (10^10): the data are a few bytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0")) + chunk(b"IEND", b"")
    )


def test_audit_image_with_a_decompression_bomb_header(run, tmp_path):
    bomb = tmp_path / "bomb.png"
    _bomb_png(bomb)
    one_error_line(run_cli("audit", run, "--image", bomb, "--out", tmp_path / "a"), "could not be read as an image")


def test_merge_with_a_garbage_sources_table(shards, tmp_path):
    copies = [shutil.copytree(shard, tmp_path / shard.name) for shard in shards]
    (copies[0] / "sources.parquet").write_bytes(b"garbage")
    one_error_line(run_cli("merge", tmp_path / "merged", *copies), "sources.parquet is damaged")
    assert not (tmp_path / "merged").exists()


# ---- hangs ----


def test_build_ray_at_a_closed_port_fails_fast(module_cache, tmp_path):
    done = npgen_process("build", "--dataset", "mnist", "--db", tmp_path / "db", "--ray", "127.0.0.1:1", timeout=90)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("error: "), done.stderr
    assert not (tmp_path / "db").exists()


# ---- verify derives the budget again ----


def test_verify_derives_the_source_budget_again(run):
    edit_manifest(run, lambda m: m["params"].update(source_budget=10**30))
    one_error_line(run_cli("verify", run), "source_budget 1000000000000000000000000000000 is not the 78 pixels")


# ---- links, locks and leftovers ----


def test_sample_resume_does_not_write_through_a_link(module_cache, tmp_path):
    target = tmp_path / "elsewhere"
    target.mkdir()
    (tmp_path / "link").symlink_to(target)
    one_error_line(
        run_cli("sample", "--dataset", "mnist", "-n", 2, "--out", tmp_path / "link", "--resume"), "symbolic link"
    )
    assert list(target.iterdir()) == []


@pytest.fixture(scope="module")
def digits(tmp_path_factory, data_root):
    """A small real image folder: 20 MNIST 0s and 20 1s."""
    mnist = load_dataset("mnist", data_root=data_root)
    root = tmp_path_factory.mktemp("digits") / "digits"
    for digit in (0, 1):
        (root / f"d{digit}").mkdir(parents=True)
        for i in np.flatnonzero(mnist.labels == digit)[:20]:
            Image.fromarray(mnist.images[i, ..., 0]).save(root / f"d{digit}" / f"{i}.png")
    return root


def test_build_force_deletes_only_what_npgen_wrote(digits, tmp_path, module_cache):
    db = tmp_path / "db"
    assert run_cli("build", "--dataset", digits, "--db", db).exit_code == 0
    (db / "thesis.tex").write_text("mine")
    one_error_line(run_cli("build", "--dataset", digits, "--db", db, "--force"), "thesis.tex")
    assert (db / "thesis.tex").read_text() == "mine"
    fake = tmp_path / "fake"  # a user's folder whose manifest merely says npgen-database
    fake.mkdir()
    (fake / "manifest.json").write_text(json.dumps({"format": "npgen-database"}))
    (fake / "notes.txt").write_text("mine")
    one_error_line(run_cli("build", "--dataset", digits, "--db", fake, "--force"), "notes.txt")
    assert (fake / "notes.txt").read_text() == "mine"
    (db / "thesis.tex").unlink()
    assert run_cli("build", "--dataset", digits, "--db", db, "--force").exit_code == 0


def test_refused_build_force_leaves_no_lock(digits, tmp_path, module_cache):
    user = tmp_path / "user"
    user.mkdir()
    (user / "a.txt").write_text("mine")
    one_error_line(run_cli("build", "--dataset", digits, "--db", user, "--force"), "not an npgen database")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["user"]


def test_leftovers_of_killed_builds_and_merges_are_removed_next_time(digits, shards, tmp_path, module_cache):
    db = tmp_path / "db"
    leftover = tmp_path / ".db.tmp-killed"  # what `build --force` killed mid-way leaves
    leftover.mkdir()
    (leftover / "sources.npy").write_bytes(b"\0" * 1000)
    assert run_cli("build", "--dataset", digits, "--db", db).exit_code == 0
    assert not leftover.exists()
    stale = tmp_path / ".merged.tmp-killed"  # what a killed merge leaves
    (stale / "run").mkdir(parents=True)
    assert run_cli("merge", tmp_path / "merged", *shards).exit_code == 0
    assert not stale.exists() and (tmp_path / "merged" / "manifest.json").is_file()


def _limit_file_size(size: int):
    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG, as on a full disk
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))

    return limit


def test_report_on_a_full_disk_leaves_no_partial_report_and_names_the_file(run, tmp_path, module_cache):
    out = tmp_path / "report"
    warm = npgen_process("report", run, "--out", tmp_path / "warm")  # numba's cache of compiled kernels, written
    assert warm.returncode == 0, warm.stderr
    shutil.rmtree(tmp_path / "warm")
    done = npgen_process("report", run, "--out", out, preexec_fn=_limit_file_size(20_000))
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: cannot write ") and str(tmp_path) in last and "a file" not in last, last
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
