"""Sharded runs on real MNIST: shards sampled anywhere merge into the very bytes of one run on one machine, merge
refuses shards that do not make one whole run, and a database is known by its content, not its path."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner
from runs import assert_same_run

from npgen import api
from npgen.cli import main
from npgen.errors import NpgenError
from npgen.runs.run import Run, run_state

REPO = Path(__file__).resolve().parent.parent
N, BATCH = 24, 8  # three batches: 0, 1, 2
OPTIONS = {"batch_size": BATCH}


def cli_env(tmp: Path, data_root: Path) -> dict:
    """The environment of a real `npgen` child process: this checkout's code, the real data, a test cache."""
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, "NPGEN_DATA": str(data_root), "NPGEN_CACHE": str(tmp / "cache")}


def npgen(tmp: Path, data_root: Path, *args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "npgen", *map(str, args)],
        check=False,
        capture_output=True,
        text=True,
        env=cli_env(tmp, data_root),
        timeout=300,
    )


def sample(out: Path, db: Path, data_root: Path, **kwargs) -> Path:
    options = {**OPTIONS, **kwargs.pop("sampler_options", {})}
    return api.sample_run(out, "mnist", N, "3", data_root, db, sampler_options=options, command="test", **kwargs)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, data_root) -> SimpleNamespace:
    """One run of 24 MNIST '3's in batches of 8, and the same command's shards 0/3, 1/3 (by the CLI), 2/3."""
    tmp = tmp_path_factory.mktemp("shards")
    db, _ = api.build_database("mnist", data_root, tmp / "db")
    single = sample(tmp / "single", db.path, data_root)
    shards = [sample(tmp / "shard0", db.path, data_root, shard="0/3"), tmp / "shard1"]
    done = npgen(
        tmp, data_root, "sample", "--dataset", "mnist", "--class", "3", "-n", N, "--batch-size", BATCH,
        "--db", db.path, "--shard", "1/3", "--out", shards[1],
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "wrote shard 1/3 (1 of 3 batches) of 24 samples" in done.stdout
    shards.append(sample(tmp / "shard2", db.path, data_root, shard=(2, 3)))
    return SimpleNamespace(tmp=tmp, db=db, single=single, shards=shards)


def test_merged_shards_are_the_single_run_byte_for_byte_and_verify(runs, data_root):
    out = runs.tmp / "merged"
    done = npgen(runs.tmp, data_root, "merge", out, *reversed(runs.shards))  # any order
    assert done.returncode == 0, done.stderr
    assert f"merged 3 shards into {out} (24 samples)" in done.stdout
    assert_same_run(out, runs.single)
    manifest = json.loads((out / "manifest.json").read_text())
    assert "shard" not in manifest and [m["shard"] for m in manifest["merged_from"]] == ["0/3", "1/3", "2/3"]
    assert api.verify_run(out, data_root).ok
    verified = CliRunner().invoke(main, ["verify", str(out), "--data-root", str(data_root)])
    assert verified.exit_code == 0 and json.loads(verified.output)["mismatches"] == 0


def test_a_shard_holds_only_its_batches_and_is_not_read_as_a_run(runs):
    shard = runs.shards[1]
    manifest = json.loads((shard / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["n_samples"] == N
    assert manifest["shard"] == {"index": 1, "count": 3, "n_batches": 3, "batches": [1]}
    assert sorted(p.name for p in (shard / "chunks").iterdir()) == ["part-00001.npy"]
    assert (shard / "chunks" / "part-00001.npy").read_bytes() == (runs.single / "chunks/part-00001.npy").read_bytes()
    with pytest.raises(NpgenError, match="shard 1/3 of a run.*npgen merge"):
        Run(shard)


def copy_of(shard: Path, name: str, change=None) -> Path:
    copy = shard.parent / name
    if not copy.exists():
        shutil.copytree(shard, copy)
        if change is not None:
            change(copy)
    return copy


def set_running(run: Path) -> None:
    manifest = json.loads((run / "manifest.json").read_text())
    (run / "manifest.json").write_text(json.dumps({**manifest, "status": "running"}))


def other_seed(runs, data_root) -> list[Path]:
    other = runs.tmp / "seed1-shard0"
    if not other.exists():
        sample(other, runs.db.path, data_root, shard="0/3", sampler_options={"seed": 1})
    return [other, *runs.shards[1:]]


REFUSALS = {
    "missing": (lambda runs, root: runs.shards[:2], "shards 2/3 are missing"),
    "overlapping": (
        lambda runs, root: [*runs.shards, copy_of(runs.shards[1], "shard1-again")],
        "are both shard 1/3 (overlapping shards)",
    ),
    "other command": (other_seed, "come from different commands: their params differs (params.seed = 1 in "),
    "incomplete": (
        lambda runs, root: [*runs.shards[:2], copy_of(runs.shards[2], "shard2-running", set_running)],
        "is incomplete; finish it",
    ),
    "missing batch": (
        lambda runs, root: [
            *runs.shards[:2],
            copy_of(runs.shards[2], "shard2-lost", lambda c: (c / "chunks/part-00002.npy").unlink()),
        ],
        "lacks batch 2",
    ),
    "whole run": (lambda runs, root: [runs.single], "is a whole run, not a shard"),
}


@pytest.mark.parametrize("case", REFUSALS)
def test_merge_refuses_shards_that_do_not_make_one_run(runs, data_root, case):
    shards, message = REFUSALS[case]
    out = runs.tmp / f"refused-{case.replace(' ', '-')}"
    result = CliRunner().invoke(main, ["merge", str(out), *map(str, shards(runs, data_root))])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.output
    assert not out.exists() and not list(runs.tmp.glob(f".{out.name}.tmp-*"))


def test_merge_leaves_an_existing_out_untouched(runs, data_root):
    before = {p: p.read_bytes() for p in runs.single.rglob("*") if p.is_file()}
    done = npgen(runs.tmp, data_root, "merge", runs.single, *runs.shards)
    assert done.returncode == 2 and done.stderr.strip().splitlines() == [
        f"error: {runs.single} already exists; choose a new OUT for the merged run"
    ]
    assert {p: p.read_bytes() for p in runs.single.rglob("*") if p.is_file()} == before


class Interrupt(KeyboardInterrupt):
    """Ctrl-C, pressed once the first batch is written."""


def stop_after_first_batch(done: int) -> None:
    if done:
        raise Interrupt


def test_database_id_survives_moving_the_database_and_a_shard_resumes(runs, data_root, tmp_path):
    built, _ = api.build_database("mnist", data_root, tmp_path / "here")
    assert built.id == runs.db.id  # the same content, built elsewhere: the same database
    out = tmp_path / "shard0of2"  # batches 0 and 2
    with pytest.raises(Interrupt):
        sample(out, built.path, data_root, shard="0/2", progress=stop_after_first_batch)
    assert run_state(out) == "running" and sorted(p.name for p in (out / "chunks").iterdir()) == ["part-00000.npy"]
    moved = tmp_path / "moved" / "there"
    moved.parent.mkdir()
    os.rename(built.path, moved)

    with pytest.raises(NpgenError, match="its shard differs"):
        sample(out, moved, data_root, shard="1/2", resume=True)
    other, _ = api.build_database("mnist", data_root, tmp_path / "h2", window={"half_window": 2})
    with pytest.raises(NpgenError, match="its database differs"):
        sample(out, other.path, data_root, shard="0/2", resume=True, window={"half_window": 2})

    sample(out, moved, data_root, shard="0/2", resume=True)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["database"] == {
        "id": runs.db.id,
        "path": str(moved.resolve()),
        "params": manifest["database"]["params"],
    }
    for kind, suffix in (("provenance", "parquet"), ("summary", "parquet"), ("chunks", "npy")):
        parts = sorted(p.name for p in (out / kind).iterdir())
        assert parts == [f"part-00000.{suffix}", f"part-00002.{suffix}"]
        for part in parts:
            assert (out / kind / part).read_bytes() == (runs.single / kind / part).read_bytes()


@pytest.mark.parametrize("value", ["3/3", "1", "a/b", "-1/2", "0/0"])
def test_a_bad_shard_is_refused_before_anything_is_written(runs, data_root, value):
    out = runs.tmp / "bad-shard"
    with pytest.raises(NpgenError, match="--shard"):
        sample(out, runs.db.path, data_root, shard=value)
    assert not out.exists()


def test_shards_of_a_steered_run_with_an_exclusion_merge_with_its_controls(runs, data_root, tmp_path):
    """The controls (excluded images, class map) travel with every shard and into the merged run."""

    def steered(out: Path, shard=None) -> Path:
        return api.sample_run(
            out, "mnist", 16, None, data_root, runs.db.path, sampler_options=OPTIONS, command="test",
            exclude=["0-999"], class_map="top=7,bottom=1", shard=shard,
        )  # fmt: skip

    single = steered(tmp_path / "single")
    shards = [steered(tmp_path / f"part{i}", f"{i}/2") for i in range(2)]
    merged = api.merge_runs(tmp_path / "merged", shards, command="test")
    assert_same_run(merged, single)
    for name in ("excluded", "class_map"):
        assert (merged / "controls" / f"{name}.npy").read_bytes() == (single / "controls" / f"{name}.npy").read_bytes()
    report = api.verify_run(merged, data_root)
    assert report.ok and report.n_excluded_images == 1000
    with pytest.raises(NpgenError, match="come from different commands: their (params|class_label) differs"):
        api.merge_runs(tmp_path / "mixed", [shards[0], runs.shards[1], runs.shards[2]])
