"""Feed npgen's command line deliberately bad input and record how it holds.

Every case runs the real CLI (`python -m npgen ...`, a fresh process) in a scratch folder, on real
MNIST and a small image folder made from it, and records the exit status, whether the output ends in
exactly one `error: ...` line with no traceback, and whether files that must not change (the user's
files, a link's target, a complete run) are byte-for-byte intact. A case holds when all expectations
are met; each is counted as clean, traceback, silent accept, damage, hang or other (`run_case`). The
hand-written cases are below; reliability_cases.py adds the families of issue 21 (options at and beyond
their ranges, corrupted run files, usage errors, kill -9 at several moments). Writes
benchmarks/RELIABILITY.md (the table) unless --no-write; about 20 minutes on 2 shared cores.

    NPGEN_DATA=../shared/datasets nice -n 15 python benchmarks/studies/reliability.py
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from reliability_cases import EITHER, all_families  # noqa: E402  (beside this file)


@dataclass
class Case:
    command: str  # the npgen subcommand family, for the table
    what: str
    args: list
    expect: str = (
        "error"  # error (exit 2, one error line), ok (exit 0), exit1 (verify mismatch: exit 1, one error line)
    )
    env: dict = field(default_factory=dict)
    guard: list = field(default_factory=list)  # paths whose contents must not change
    timeout: int = 300  # seconds: longer is a hang
    runner: object = None  # a composite case (kill -9, then recover): runner(npgen, env, w) -> (exit, text, intact)


def snapshot(paths: list[Path]) -> dict:
    state = {}
    for root in paths:
        root = Path(root)
        if root.is_symlink():
            state[str(root)] = ("link", os.readlink(root))
        elif root.is_file():
            state[str(root)] = root.read_bytes()
        elif root.is_dir():
            for p in sorted(root.rglob("*")):
                state[str(p)] = (
                    ("link", os.readlink(p)) if p.is_symlink() else (p.read_bytes() if p.is_file() else "dir")
                )
        else:
            state[str(root)] = None
    return state


def npgen(args, env, cwd, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "npgen", *map(str, args)],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def copy_run(good: Path, dest: Path) -> Path:
    shutil.copytree(good, dest)
    return dest


def set_provenance(run: Path, column: str, value: int) -> None:
    part = run / "provenance" / "part-00000.parquet"
    table = pq.read_table(part)
    values = table.column(column).to_numpy().copy()
    values[3] = value
    table = table.set_column(
        table.schema.get_field_index(column), column, pa.array(values, type=table.schema.field(column).type)
    )
    pq.write_table(table, part)


def edit_manifest(run: Path, change) -> None:
    manifest = json.loads((run / "manifest.json").read_text())
    change(manifest)
    (run / "manifest.json").write_text(json.dumps(manifest))


def setup(w: Path, env: dict, data_root: Path) -> dict:
    """Build the fixtures every case draws on; returns named paths."""
    from npgen.data.datasets import load_dataset

    mnist = load_dataset("mnist", data_root=data_root)
    folder = w / "digits"
    for digit in (0, 1):
        (folder / f"d{digit}").mkdir(parents=True)
        for i in np.flatnonzero(mnist.labels == digit)[:30]:
            Image.fromarray(mnist.images[i, ..., 0]).save(folder / f"d{digit}" / f"{i}.png")
    good = w / "good"
    done = npgen(["sample", "--dataset", "mnist", "--class", "3", "-n", "10", "--out", good], env, w)
    assert done.returncode == 0, done.stderr
    small = w / "small"
    done = npgen(["sample", "--dataset", "mnist", "--class", "3", "-n", "2", "--out", small], env, w)
    assert done.returncode == 0, done.stderr
    db_h2 = w / "db-h2"
    done = npgen(["build", "--dataset", folder, "--db", db_h2, "--half-window", "2"], env, w)
    assert done.returncode == 0, done.stderr
    user = w / "user"
    user.mkdir()
    (user / "thesis.tex").write_text("my thesis")
    (user / "parts-3.png").write_bytes(b"my picture")
    (w / "victim.txt").write_text("precious")
    (w / "a-file").write_text("a file")
    (w / "dangling").symlink_to(w / "nowhere")
    (w / "user-link").symlink_to(user)
    empty = w / "empty"
    empty.mkdir()
    bad_root = w / "bad-root"
    bad_root.mkdir()
    (bad_root / "mnist.npz").write_text("not a zip")
    obj_root = w / "obj-root"
    obj_root.mkdir()
    np.savez(obj_root / "mnist.npz", x_train=np.array([{"a": 1}], dtype=object), y_train=np.zeros(1, np.uint8))
    changed_root = w / "changed-root"
    changed_root.mkdir()
    with np.load(data_root / "mnist.npz") as z:
        arrays = {k: z[k] for k in z.files}
    arrays["x_train"] = arrays["x_train"].copy()
    arrays["x_train"][0, 0, 0] ^= 1
    np.savez(changed_root / "mnist.npz", **arrays)
    broken_folder = w / "broken-folder"
    (broken_folder / "cls").mkdir(parents=True)
    (broken_folder / "cls" / "x.png").write_bytes(b"not a png")
    made = {}
    for name, args in {
        "two": ["--dataset", "mnist", "--class", "3", "-n", "10", "--batch-size", "5"],
        "folder_run": ["--dataset", folder, "-n", "2"],
        "excluded_run": ["--dataset", "mnist", "--class", "3", "-n", "2", "--exclude", "0,1,2"],
        "shard0": ["--dataset", folder, "-n", "200", "--batch-size", "10", "--shard", "0/2"],
        "shard1": ["--dataset", folder, "-n", "200", "--batch-size", "10", "--shard", "1/2"],
    }.items():
        made[name] = w / f"fixture-{name}"
        done = npgen(["sample", *args, "--out", made[name]], env, w)
        assert done.returncode == 0, done.stderr
    made["shards"] = [made.pop("shard0"), made.pop("shard1")]
    return dict(
        **made,
        folder=folder,
        good=good,
        small=small,
        db_h2=db_h2,
        user=user,
        empty=empty,
        bad_root=bad_root,
        obj_root=obj_root,
        changed_root=changed_root,
        broken_folder=broken_folder,
    )


def cases(w: Path, f: dict) -> list[Case]:
    good, user, victim = f["good"], f["user"], w / "victim.txt"
    n = 0

    def run_copy(change=None) -> Path:
        nonlocal n
        n += 1
        path = copy_run(good, w / f"run-{n}")
        if change is not None:
            change(path)
        return path

    def truncate(rel):
        def change(run):
            p = run / rel
            p.write_bytes(p.read_bytes()[: max(1, p.stat().st_size // 3)])

        return change

    def link(rel, target):
        def change(run):
            p = run / rel
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()
            p.symlink_to(target)

        return change

    def samples(array):
        return lambda run: np.save(run / "samples.npy", array(np.load(run / "samples.npy")), allow_pickle=True)

    def running(run):
        edit_manifest(run, lambda m: m.update(status="running"))

    sample_args = ["sample", "--dataset", "mnist", "--class", "3", "-n", "10"]
    C = Case
    out = [
        # ---- data ----
        C("data", "unknown dataset name", ["data", "info", "svhn"]),
        C("data", "folder that does not exist", ["data", "info", w / "no-such-folder"]),
        C("data", "data root that does not exist", ["data", "info", "mnist", "--data-root", w / "no-root"]),
        C("data", "mnist.npz that is not a zip", ["data", "info", "mnist", "--data-root", f["bad_root"]]),
        C("data", "mnist.npz holding Python objects", ["data", "info", "mnist", "--data-root", f["obj_root"]]),
        C(
            "data",
            "mnist.npz whose SHA-256 differs from the card",
            ["data", "info", "mnist", "--data-root", f["changed_root"]],
        ),
        C("data", "unknown split", ["data", "info", "mnist", "--split", "validation"]),
        C("data", "import from a missing source", ["data", "import", "mnist", w / "no-source"]),
        C(
            "data",
            "import from a folder without raw files",
            ["data", "import", "mnist", f["folder"], "--data-root", "/sys/npgen"],
        ),
        C("data", "unknown subcommand", ["data", "frobnicate"]),
        # ---- build ----
        C("build", "unknown dataset", ["build", "--dataset", "svhn", "--db", w / "db-x"]),
        C("build", "existing user folder, no --force", ["build", "--dataset", f["folder"], "--db", user], guard=[user]),
        C(
            "build",
            "existing user folder with --force",
            ["build", "--dataset", f["folder"], "--db", user, "--force"],
            guard=[user],
        ),
        C(
            "build",
            "--db is a link to a user folder, --force",
            ["build", "--dataset", f["folder"], "--db", w / "user-link", "--force"],
            guard=[user],
        ),
        C("build", "--db on a read-only file system", ["build", "--dataset", f["folder"], "--db", "/sys/npgen-db"]),
        C(
            "build",
            "NPGEN_CACHE is a file",
            ["build", "--dataset", f["folder"]],
            env={"NPGEN_CACHE": str(w / "a-file")},
            guard=[w / "a-file"],
        ),
        C("build", "--half-window 0", ["build", "--dataset", f["folder"], "--db", w / "db-y", "--half-window", "0"]),
        C(
            "build",
            "--half-window abc",
            ["build", "--dataset", f["folder"], "--db", w / "db-y", "--half-window", "abc"],
        ),
        C("build", "--pad-value 999", ["build", "--dataset", f["folder"], "--db", w / "db-y", "--pad-value", "999"]),
        C(
            "build",
            "--retrieval-block 0",
            ["build", "--dataset", f["folder"], "--db", w / "db-y", "--retrieval-block", "0"],
        ),
        C("build", "empty image folder", ["build", "--dataset", f["empty"], "--db", w / "db-y"]),
        C("build", "image folder with a corrupt PNG", ["build", "--dataset", f["broken_folder"], "--db", w / "db-y"]),
        C("build", "missing --dataset", ["build"]),
        # ---- sample ----
        C("sample", "-n 0", ["sample", "--dataset", "mnist", "-n", "0", "--out", w / "s1"]),
        C("sample", "-n -3", ["sample", "--dataset", "mnist", "-n", "-3", "--out", w / "s1"]),
        C("sample", "-n abc", ["sample", "--dataset", "mnist", "-n", "abc", "--out", w / "s1"]),
        C("sample", "unknown class name", ["sample", "--dataset", "mnist", "--class", "eleven", "--out", w / "s1"]),
        C("sample", "class index out of range", ["sample", "--dataset", "mnist", "--class", "10", "--out", w / "s1"]),
        C("sample", "--k-min 0", ["sample", "--dataset", "mnist", "--k-min", "0", "--out", w / "s1"]),
        C("sample", "--eps -1", ["sample", "--dataset", "mnist", "--eps", "-1", "--out", w / "s1"]),
        C("sample", "--radius -1", ["sample", "--dataset", "mnist", "--radius", "-1", "--out", w / "s1"]),
        C(
            "sample",
            "--out is an existing user folder",
            ["sample", "--dataset", "mnist", "-n", "2", "--out", user],
            guard=[user],
        ),
        C(
            "sample",
            "--resume into a user folder",
            ["sample", "--dataset", "mnist", "-n", "2", "--out", user, "--resume"],
            guard=[user],
        ),
        C("sample", "--out is a dangling link", ["sample", "--dataset", "mnist", "-n", "2", "--out", w / "dangling"]),
        C(
            "sample",
            "--out on a read-only file system",
            ["sample", "--dataset", "mnist", "-n", "2", "--out", "/sys/npgen-run"],
        ),
        C(
            "sample",
            "--out is an existing file",
            ["sample", "--dataset", "mnist", "-n", "2", "--out", w / "a-file"],
            guard=[w / "a-file"],
        ),
        C("sample", "--resume of a run that does not exist", [*sample_args, "--out", w / "s-missing", "--resume"]),
        C(
            "sample",
            "--resume with another class",
            ["sample", "--dataset", "mnist", "--class", "4", "-n", "10", "--out", run_copy(running), "--resume"],
        ),
        C(
            "sample",
            "--resume with a truncated chunk",
            [*sample_args, "--out", run_copy(lambda r: (running(r), truncate("chunks/part-00000.npy")(r))), "--resume"],
        ),
        C(
            "sample",
            "--resume with a truncated provenance part",
            [
                *sample_args,
                "--out",
                run_copy(lambda r: (running(r), truncate("provenance/part-00000.parquet")(r))),
                "--resume",
            ],
        ),
        C(
            "sample",
            "--db with an unreadable manifest",
            ["sample", "--dataset", "mnist", "-n", "2", "--db", f["broken_db"], "--out", w / "s2"],
            guard=[f["broken_db"]],
        ),
        C(
            "sample",
            "--db is a user folder",
            ["sample", "--dataset", "mnist", "-n", "2", "--db", user, "--out", w / "s2"],
            guard=[user],
        ),
        C(
            "sample",
            "--db built with other parameters",
            ["sample", "--dataset", f["folder"], "-n", "2", "--db", f["db_h2"], "--out", w / "s2"],
            guard=[f["db_h2"]],
        ),
        C(
            "sample",
            "--db built for other data",
            ["sample", "--dataset", "mnist", "-n", "2", "--db", f["db_h2"], "--out", w / "s2"],
            guard=[f["db_h2"]],
        ),
        C(
            "sample",
            "no data root anywhere",
            ["sample", "--dataset", "mnist", "-n", "2", "--out", w / "s2"],
            env={"NPGEN_DATA": "", "NPGEN_CACHE": str(w / "cache-never-given-a-root")},  # nothing remembered
        ),
        C(
            "sample",
            "--data-root that does not exist",
            ["sample", "--dataset", "mnist", "-n", "2", "--data-root", w / "no-root", "--out", w / "s2"],
        ),
        C(
            "sample",
            "sampler refuses its options after loading",
            [
                "sample",
                "--dataset",
                f["folder"],
                "-n",
                "2",
                "--pool-size",
                "3",
                "--max-source-share",
                "0.1",
                "--out",
                w / "s3",
            ],
        ),
        C(
            "sample",
            "--resume of a complete run (no-op)",
            [*sample_args, "--out", good, "--resume"],
            expect="ok",
            guard=[good],
        ),
        # ---- verify ----
        C("verify", "run that does not exist", ["verify", w / "no-run"]),
        C("verify", "a file, not a run", ["verify", w / "a-file"]),
        C(
            "verify",
            "manifest that is not JSON",
            ["verify", run_copy(lambda r: (r / "manifest.json").write_text("{oops"))],
        ),
        C(
            "verify",
            "manifest that is a JSON list",
            ["verify", run_copy(lambda r: (r / "manifest.json").write_text("[1, 2]"))],
        ),
        C(
            "verify",
            "manifest without params",
            ["verify", run_copy(lambda r: edit_manifest(r, lambda m: m.pop("params")))],
        ),
        C(
            "verify",
            "manifest with a bogus dataset shape",
            ["verify", run_copy(lambda r: edit_manifest(r, lambda m: m["dataset"].update(shape=[28, "x", 1])))],
        ),
        C(
            "verify",
            "manifest with a string n_samples",
            ["verify", run_copy(lambda r: edit_manifest(r, lambda m: m.update(n_samples="10")))],
        ),
        C("verify", "incomplete run", ["verify", run_copy(running)]),
        C("verify", "samples.npy without the channel axis", ["verify", run_copy(samples(lambda a: a[..., 0]))]),
        C(
            "verify",
            "samples.npy with more samples than the manifest",
            ["verify", run_copy(samples(lambda a: np.concatenate([a] * 30)))],
        ),
        C(
            "verify",
            "samples.npy holding Python objects",
            ["verify", run_copy(samples(lambda a: np.array([None, 1], dtype=object)))],
        ),
        C("verify", "samples.npy truncated", ["verify", run_copy(truncate("samples.npy"))]),
        C(
            "verify",
            "provenance src_y outside the image",
            ["verify", run_copy(lambda r: set_provenance(r, "src_y", 28))],
        ),
        C("verify", "provenance src_x negative", ["verify", run_copy(lambda r: set_provenance(r, "src_x", -5))]),
        C("verify", "provenance sample -1", ["verify", run_copy(lambda r: set_provenance(r, "sample", -1))]),
        C("verify", "provenance src_image -1", ["verify", run_copy(lambda r: set_provenance(r, "src_image", -1))]),
        C(
            "verify",
            "provenance src_image past the training set",
            ["verify", run_copy(lambda r: set_provenance(r, "src_image", 10**9))],
        ),
        C("verify", "provenance part truncated", ["verify", run_copy(truncate("provenance/part-00000.parquet"))]),
        C(
            "verify",
            "manifest SHA-256 of other data",
            ["verify", run_copy(lambda r: edit_manifest(r, lambda m: m["dataset"].update(images_sha256="0" * 64)))],
        ),
        C(
            "verify",
            "one tampered pixel (exit 1)",
            [
                "verify",
                run_copy(
                    samples(lambda a: np.where(np.arange(a.size).reshape(a.shape) == 400, 255 - a, a).astype(np.uint8))
                ),
            ],
            expect="exit1",
        ),
        # ---- trace ----
        C("trace", "--sample -1", ["trace", good, "--sample", "-1"]),
        C("trace", "--sample past the run", ["trace", good, "--sample", "99"]),
        C("trace", "--pixel with one number", ["trace", good, "--sample", "0", "--pixel", "3"]),
        C("trace", "--pixel outside the image", ["trace", good, "--sample", "0", "--pixel", "28,0"]),
        C("trace", "--pixel that is not numbers", ["trace", good, "--sample", "0", "--pixel", "a,b"]),
        C("trace", "--max-candidates 0", ["trace", good, "--sample", "0", "--max-candidates", "0"]),
        C(
            "trace",
            "provenance src_image -1 (was 'training image -1')",
            ["trace", run_copy(lambda r: set_provenance(r, "src_image", -1)), "--sample", "0", "--pixel", "0,3"],
        ),
        C(
            "trace",
            "RUN/trace is a link to a user folder",
            ["trace", run_copy(link("trace", user)), "--sample", "0"],
            guard=[user],
        ),
        C("trace", "--out on a read-only file system", ["trace", good, "--sample", "0", "--out", "/sys/npgen.png"]),
        # ---- report ----
        C("report", "run that does not exist", ["report", w / "no-run"]),
        C("report", "RUN/report is a link to a user folder", ["report", run_copy(link("report", user))], guard=[user]),
        C("report", "RUN/report is a file", ["report", run_copy(lambda r: (r / "report").write_text("x"))]),
        C("report", "--out on a read-only file system", ["report", good, "--out", "/sys/npgen-report"]),
        C(
            "report",
            "manifest summary holds text (renders n/a)",
            [
                "report",
                run_copy(lambda r: edit_manifest(r, lambda m: m.update(summary={"median_top_source_share": "high"}))),
            ],
            expect="ok",
        ),
        C(
            "report",
            "manifest without params",
            ["report", run_copy(lambda r: edit_manifest(r, lambda m: m.pop("params")))],
        ),
        # ---- eval ----
        C(
            "eval",
            "RUN/eval.json is a link to a user file",
            ["eval", run_copy(link("eval.json", victim))],
            guard=[victim],
        ),
        C("eval", "--classifier that does not exist", ["eval", good, "--classifier", w / "none.pt"]),
        C("eval", "run of 2 samples (too few to score)", ["eval", f["small"]]),
        C("eval", "run that does not exist", ["eval", w / "no-run"]),
        # ---- cache ----
        C("cache", "NPGEN_CACHE is a file (list)", ["cache", "list"], env={"NPGEN_CACHE": str(w / "a-file")}),
        C(
            "cache",
            "NPGEN_CACHE is a file (clean)",
            ["cache", "clean", "--all"],
            env={"NPGEN_CACHE": str(w / "a-file")},
            guard=[w / "a-file"],
        ),
        C("cache", "unknown option", ["cache", "clean", "--everything"]),
        C(
            "cache",
            "clean --all keeps what is not npgen's",
            ["cache", "clean", "--all"],
            expect="ok",
            env={"NPGEN_CACHE": str(f["foreign_cache"])},
            guard=[f["foreign_cache"] / "db" / "mine"],
        ),
    ]
    return out


OUTCOMES = ("clean", "traceback", "silent accept", "damage", "hang", "other")


def run_case(case: Case, env: dict, w: Path) -> tuple:
    """(exit status, one error line, files intact, held, outcome, message) of one case. The outcome is clean (all
    expectations met), hang (over its time limit), damage (a guarded file changed, or a crash left a half-made or
    stray file), traceback, silent accept (exit 0 where a refusal was due), or other (a wrong status or several lines)."""
    before = snapshot(case.guard)
    try:
        if case.runner is not None:
            code, text, whole = case.runner(lambda a, e, c: npgen(a, e, c, case.timeout), env, w)
        else:
            done = npgen(case.args, env, w, case.timeout)
            code, text, whole = done.returncode, (done.stdout + done.stderr).strip(), True
    except subprocess.TimeoutExpired:
        return None, False, True, False, "hang", f"no answer in {case.timeout} s"
    intact = snapshot(case.guard) == before and whole
    lines = text.strip().splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    one_line = len(errors) == 1 and lines[-1] == errors[0] and "Traceback" not in text
    clean_ok = code == 0 and "Traceback" not in text
    held = (
        intact
        and {
            "error": code == 2 and one_line,
            "exit1": code == 1 and one_line,
            "ok": clean_ok,
            EITHER: clean_ok or (code == 2 and one_line),
        }[case.expect]
    )
    if held:
        outcome = "clean"
    elif not intact:
        outcome = "damage"
    elif "Traceback" in text:
        outcome = "traceback"
    elif code == 0 and case.expect in ("error", "exit1"):
        outcome = "silent accept"
    else:
        outcome = "other"
    message = (errors[0] if errors else (lines[-1] if lines else "")).replace(str(w), "$W")
    return code, one_line, intact, held, outcome, message


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-write", action="store_true", help="print the table only")
    parser.add_argument("--code", type=Path, default=REPO, help="the npgen source tree to run (default: this one)")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows as JSON here")
    parser.add_argument(
        "--baseline", type=Path, default=None, help="JSON rows of a sweep of older code: shown as a column"
    )
    parser.add_argument(
        "--only",
        default=None,
        help="run only the cases whose 'command: input' holds one of these comma-separated texts",
    )
    args = parser.parse_args()
    data_root = Path(os.environ.get("NPGEN_DATA") or REPO.parent / "shared" / "datasets").resolve()  # for any cwd
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="npgen-reliability-") as tmp:
        w = Path(tmp)
        env = {
            **os.environ,
            "NPGEN_DATA": str(data_root),
            "NPGEN_CACHE": str(w / "cache"),
            "PYTHONPATH": str(args.code.resolve()),
        }
        f = setup(w, env, data_root)
        broken_db = w / "broken-db"
        broken_db.mkdir()
        (broken_db / "manifest.json").write_text("{broken")
        foreign_cache = w / "foreign-cache"
        (foreign_cache / "db" / "mine").mkdir(parents=True)
        (foreign_cache / "db" / "mine" / "data.txt").write_text("mine")
        f.update(broken_db=broken_db, foreign_cache=foreign_cache)
        rows = []
        every = cases(w, f) + all_families(Case, w, f)
        if args.only:
            every = [case for case in every if any(o in f"{case.command}: {case.what}" for o in args.only.split(","))]
        for i, case in enumerate(every, 1):
            row = run_case(case, {**env, **case.env}, w)
            rows.append((i, case.command, case.what, case.expect, *row))
            print(
                f"{i:3d} {row[4]:14s} rc={row[0]} {case.command}: {case.what} :: {row[5][:150]}",
                flush=True,
            )
    if args.json is not None:
        args.json.write_text(
            json.dumps([{"what": r[2], "exit": r[4], "held": r[7], "message": r[9]} for r in rows], indent=1)
        )
    before = {}
    if args.baseline is not None:
        before = {row["what"]: row for row in json.loads(args.baseline.read_text())}
    counts = {outcome: sum(r[8] == outcome for r in rows) for outcome in OUTCOMES}
    seconds = time.time() - started
    summary = f"{len(rows)} cases in {seconds / 60:.0f} min: " + ", ".join(
        f"{counts[o]} {o + ('s' if o in ('traceback', 'silent accept', 'hang') and counts[o] != 1 else '')}"
        for o in OUTCOMES
    )
    print(summary)
    if args.no_write:
        return
    by_command: dict = {}
    for row in rows:
        by_command.setdefault(row[1], []).append(row)
    totals = [
        "| command | cases | clean | tracebacks | silent accepts | damage | hangs | other |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for command, group in [*by_command.items(), ("**all**", rows)]:
        cells = [sum(r[8] == o for r in group) for o in OUTCOMES]
        totals.append(f"| {command} | {len(group)} | " + " | ".join(map(str, cells)) + " |")
    table = [
        "| # | command | input | expected | exit | outcome | held before | message (scratch folder as $W) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for i, command, what, expect, code, one_line, intact, held, outcome, message in rows:
        cell = message.replace("|", "\\|").replace("`", "'")[:200]
        old = before.get(what)
        was = "-" if old is None else ("yes" if old["held"] else f"no (exit {old['exit']})")
        shown = outcome if outcome == "clean" else f"**{outcome}**"
        table.append(f"| {i} | {command} | {what.replace('|', '/')} | {expect} | {code} | {shown} | {was} | {cell} |")
    page = [
        "# Reliability sweep",
        "",
        f"Produced by `NPGEN_DATA=../shared/datasets nice -n 15 python benchmarks/studies/reliability.py` on "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} (npgen {__import__('npgen').__version__}), on 2 shared cores.",
        "",
        "Each row feeds one deliberately bad input to the real command line (`python -m npgen ...`, a fresh "
        "process) on real MNIST, image folders made from it, and runs, shards and databases made from them: the "
        "hand-written cases of issue 10, the hostile inputs of issue 21, every option of `npgen/params.py` at and "
        "beyond its declared range, every kind of file a run folder holds corrupted nine ways (deleted, empty, "
        "halved, random bytes, a folder, a link to /dev/zero, a FIFO, sparse 8 GiB, bytes flipped) under each "
        "read-side command, each command's usage errors, and kill -9 at several moments of sample (then --resume "
        "and verify), build and build --force (then build again) and merge (then merge again and verify).",
        "",
        "*expected*: `error` = exit status 2 and output ending in exactly one `error: ...` line, no traceback; "
        "`ok` = exit 0 without a traceback; `exit1` = verify's mismatch status with one error line; `either` = "
        "`ok` or `error` (a value at the end of its range the data cannot take, a damaged file no answer rests on). "
        "*outcome*: `clean` when all expectations hold; `hang` past the case's time limit; `damage` when a guarded "
        "file (the user's folder, a link's target, a complete run) changed, or a killed command left a half-made "
        "database or run or a stray temporary file; `traceback`; `silent accept` = exit 0 where a refusal was due "
        "(a wrong answer); `other` = a wrong status or several error lines.",
        "",
        f"**{summary}.**",
        "",
        *totals,
        "",
        *table,
        "",
    ]
    (REPO / "benchmarks" / "RELIABILITY.md").write_text("\n".join(page))


if __name__ == "__main__":
    main()
