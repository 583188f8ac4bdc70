"""The Ray backend on real MNIST: a run sampled as Ray tasks on a 2-worker local cluster is byte for byte the run
sampled in one process, an interrupted Ray run resumes, and `npgen sample --ray` works from the command line.

These tests need ray (`pip install -e '.[ray]'`; the test extra installs it): without it they skip, but in CI
(CI=true or NPGEN_REQUIRE_DATA=1) they fail, so that CI cannot pass without running them."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import require_ray
from runs import assert_same_run

from npgen import api
from npgen.runs.run import run_state

pytestmark = pytest.mark.slow  # starts Ray clusters

REPO = Path(__file__).resolve().parent.parent
N, BATCH = 24, 8


def child_env(tmp: Path, data_root: Path) -> dict:
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, "NPGEN_DATA": str(data_root), "NPGEN_CACHE": str(tmp / "cache")}


def sample(out: Path, db: Path, data_root: Path, **kwargs) -> Path:
    return api.sample_run(
        out, "mnist", N, "3", data_root, db, sampler_options={"batch_size": BATCH}, command="test", **kwargs
    )


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, data_root):
    """A local Ray cluster of 2 workers (its workers import this checkout), and the run sampled in one process."""
    ray = require_ray()
    tmp = tmp_path_factory.mktemp("ray")
    db, _ = api.build_database("mnist", data_root, tmp / "db")
    local = sample(tmp / "local", db.path, data_root)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYTHONPATH", child_env(tmp, data_root)["PYTHONPATH"])  # workers start with the driver's env
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        try:
            yield SimpleNamespace(tmp=tmp, db=db, local=local, ray=ray)
        finally:
            ray.shutdown()


def test_a_ray_run_on_two_workers_is_the_local_run_byte_for_byte(cluster, data_root):
    seen = []
    out = sample(cluster.tmp / "on-ray", cluster.db.path, data_root, ray="local", progress=seen.append)
    assert cluster.ray.is_initialized()  # the cluster this process joined stays up for its owner
    assert_same_run(out, cluster.local)
    assert seen == [0, BATCH, BATCH, BATCH]  # batches done across the cluster, as they arrive
    assert api.verify_run(out, data_root).ok


class Interrupt(KeyboardInterrupt):
    """Ctrl-C, pressed once the first batch is written."""


def stop_after_first_batch(done: int) -> None:
    if done:
        raise Interrupt


def test_an_interrupted_ray_run_resumes_to_the_local_run(cluster, data_root):
    out = cluster.tmp / "interrupted"
    with pytest.raises(Interrupt):
        sample(out, cluster.db.path, data_root, ray="local", progress=stop_after_first_batch)
    assert run_state(out) == "running" and len(list((out / "chunks").iterdir())) == 1
    sample(out, cluster.db.path, data_root, ray="local", resume=True)
    assert_same_run(out, cluster.local)


def test_a_ray_shard_is_the_local_shard(cluster, data_root):
    out = sample(cluster.tmp / "ray-shard", cluster.db.path, data_root, ray="local", shard="1/3")
    assert sorted(p.name for p in (out / "chunks").iterdir()) == ["part-00001.npy"]
    for kind, suffix in (("provenance", "parquet"), ("summary", "parquet"), ("chunks", "npy")):
        part = f"{kind}/part-00001.{suffix}"
        assert (out / part).read_bytes() == (cluster.local / part).read_bytes()


def test_a_steered_ray_run_with_an_exclusion_is_the_local_run(cluster, data_root, tmp_path):
    """The workers get the run's controls (excluded images, class map) and sample what one process samples."""
    runs = [
        api.sample_run(
            tmp_path / name, "mnist", 16, None, data_root, cluster.db.path, sampler_options={"batch_size": BATCH},
            command="test", exclude=["0-999"], class_map="top=7,bottom=1", ray=ray,
        )
        for name, ray in (("local", None), ("ray", "local"))
    ]  # fmt: skip
    assert_same_run(runs[1], runs[0])
    assert api.verify_run(runs[1], data_root).ok


def test_npgen_sample_ray_starts_a_local_cluster_and_writes_the_local_run(cluster, data_root):
    out = cluster.tmp / "cli-ray"
    done = subprocess.run(
        [sys.executable, "-m", "npgen", "sample", "--dataset", "mnist", "--class", "3", "-n", str(N),
         "--batch-size", str(BATCH), "--db", str(cluster.db.path), "--out", str(out), "--ray"],
        check=False, capture_output=True, text=True, env=child_env(cluster.tmp, data_root), timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"wrote {N} samples to {out}" in done.stdout
    assert "sampling 3 batches as Ray tasks on" in done.stderr
    lines = re.findall(r"^sampling: (\d+)/24 \(\d+%\)", done.stderr, re.MULTILINE)
    assert [int(k) for k in lines] == [8, 16, 24], done.stderr
    assert_same_run(out, cluster.local)
    assert json.loads((out / "manifest.json").read_text())["command"].endswith("--ray")


def test_ray_missing_is_one_line_saying_how_to_install(tmp_path, data_root):
    """Run the real CLI in a Python where `import ray` fails (as in an environment without it)."""
    code = "import sys; sys.modules['ray'] = None; from npgen.cli import main; main()"
    out = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, "-c", code, "sample", "--dataset", "mnist", "-n", "8", "--out", str(out), "--ray"],
        check=False,
        capture_output=True,
        text=True,
        env=child_env(tmp_path, data_root),
        timeout=300,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        "error: --ray needs Ray, which is not installed: pip install -e '.[ray]' from npgen's folder"
    )
    assert not out.exists()


def test_an_unreachable_cluster_address_is_one_line_at_once(tmp_path, data_root):
    require_ray()
    out = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, "-m", "npgen", "sample", "--dataset", "mnist", "-n", "8", "--out", str(out), "--ray", "127.0.0.1:1"],
        check=False, capture_output=True, text=True, env=child_env(tmp_path, data_root), timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        (
            "error: cannot reach the Ray cluster at '127.0.0.1:1' (Connection refused); start one with "
            "`ray start --head` and pass the address it prints, or pass --ray alone for a local cluster"
        )
    ]
    assert not out.exists()


def test_without_ray_the_ray_tests_skip_but_fail_in_ci(tmp_path):
    """CI installs the test extra, which holds ray; where ray is missing, CI (CI=true) must fail, not skip."""
    import configparser

    config = configparser.ConfigParser()
    config.read(REPO / "setup.cfg")
    extras = config["options.extras_require"]
    assert "ray>=2.9" in extras["test"].split() and "ray>=2.9" in extras["ray"].split()
    hide_ray = "import sys, pytest; sys.modules['ray'] = None; sys.exit(pytest.main(sys.argv[1:]))"
    target = f"{REPO}/tests/test_ray.py::test_an_unreachable_cluster_address_is_one_line_at_once"
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "NPGEN_REQUIRE_DATA")}
    args = [sys.executable, "-c", hide_ray, "-q", "-rsf", "-p", "no:cacheprovider", target]
    skipped = subprocess.run(args, check=False, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    assert skipped.returncode == 0 and "1 skipped" in skipped.stdout, skipped.stdout + skipped.stderr
    failed = subprocess.run(
        args, check=False, capture_output=True, text=True, cwd=tmp_path, env={**env, "CI": "true"}, timeout=120
    )
    assert failed.returncode == 1 and "skipped" not in failed.stdout, failed.stdout
    assert "ray is not installed" in failed.stdout and "in CI the Ray tests fail instead of skipping" in failed.stdout
