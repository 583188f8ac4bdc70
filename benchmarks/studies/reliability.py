"""Feed npgen's command line deliberately bad input and record how it holds.

Every case runs the real CLI (`python -m npgen ...`, a fresh process) in a scratch folder, on real
MNIST and a small image folder made from it, and records the exit status, whether the output ends in
exactly one `error: ...` line with no traceback, and whether files that must not change (the user's
files, a link's target, a complete run) are byte-for-byte intact. A case holds when all expectations
are met. Writes benchmarks/RELIABILITY.md (the table) unless --no-write.

    NPGEN_DATA=../shared/datasets python benchmarks/studies/reliability.py
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


def npgen(args, env, cwd) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "npgen", *map(str, args)], env=env, cwd=cwd, capture_output=True, text=True, timeout=600
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
    return dict(
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
            env={"NPGEN_DATA": ""},
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-write", action="store_true", help="print the table only")
    parser.add_argument("--code", type=Path, default=REPO, help="the npgen source tree to run (default: this one)")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows as JSON here")
    parser.add_argument(
        "--baseline", type=Path, default=None, help="JSON rows of a sweep of older code: shown as a column"
    )
    args = parser.parse_args()
    data_root = Path(os.environ.get("NPGEN_DATA") or REPO.parent / "shared" / "datasets")
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
        for i, case in enumerate(cases(w, f), 1):
            before = snapshot(case.guard)
            done = npgen(case.args, {**env, **case.env}, w)
            intact = snapshot(case.guard) == before
            text = (done.stdout + done.stderr).strip()
            lines = text.splitlines()
            errors = [line for line in lines if line.startswith("error: ")]
            one_line = len(errors) == 1 and lines[-1] == errors[0] and "Traceback" not in text
            expected_code = {"error": 2, "ok": 0, "exit1": 1}[case.expect]
            held = (
                done.returncode == expected_code
                and intact
                and (one_line if case.expect != "ok" else "Traceback" not in text)
            )
            message = (errors[0] if errors else (lines[-1] if lines else "")).replace(str(w), "$W")
            rows.append((i, case.command, case.what, case.expect, done.returncode, one_line, intact, held, message))
            print(
                f"{i:3d} {'held' if held else 'FAILED':6s} rc={done.returncode} {case.command}: {case.what} :: {message[:150]}",
                flush=True,
            )
    if args.json is not None:
        args.json.write_text(
            json.dumps([{"what": r[2], "exit": r[4], "held": r[7], "message": r[8]} for r in rows], indent=1)
        )
    before = {}
    if args.baseline is not None:
        before = {row["what"]: row for row in json.loads(args.baseline.read_text())}
    n_held = sum(r[7] for r in rows)
    seconds = time.time() - started
    summary = f"{n_held} of {len(rows)} bad inputs held ({len(rows) - n_held} failed) in {seconds:.0f} s"
    print(summary)
    if not args.no_write:
        table = [
            "| # | command | input | expected | exit | one `error:` line | files intact | held | held before | message (scratch folder as $W) |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for i, command, what, expect, code, one_line, intact, held, message in rows:
            cell = message.replace("|", "\\|").replace("`", "'")[:220]
            old = before.get(what)
            was = "-" if old is None else ("yes" if old["held"] else f"no (exit {old['exit']})")
            table.append(
                f"| {i} | {command} | {what} | {expect} | {code} | {'yes' if one_line else 'no'} | "
                f"{'yes' if intact else 'NO'} | {'yes' if held else '**no**'} | {was} | {cell} |"
            )
        if before:
            n_before = sum(1 for r in rows if before.get(r[2], {}).get("held"))
            summary += f"; before these fixes {n_before} of {len(rows)} held"
        page = [
            "# Reliability sweep",
            "",
            f"Produced by `NPGEN_DATA=../shared/datasets python benchmarks/studies/reliability.py` on "
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} (npgen {__import__('npgen').__version__}).",
            "",
            "Each row feeds one deliberately bad input to the real command line (`python -m npgen ...`, a fresh "
            "process) on real MNIST, an image folder made from it, and runs sampled from them. *expected*: `error` = "
            "exit status 2 and output ending in exactly one `error: ...` line, no traceback; `ok` = exit 0 without a "
            "traceback; `exit1` = verify's mismatch status with one error line. *files intact*: files that must not "
            "change (the user's folder, a link's target, a complete run) are byte-for-byte the same afterwards.",
            "",
            "*held before*: the same case against the code before the reliability fixes (commit d068590), made with "
            "`git archive d068590 npgen datasets | tar -x -C /tmp/npgen-old && python benchmarks/studies/reliability.py --code /tmp/npgen-old "
            "--no-write --json /tmp/old.json`, then `python benchmarks/studies/reliability.py --baseline /tmp/old.json`.",
            "",
            f"**{summary}.**",
            "",
            *table,
            "",
        ]
        (REPO / "benchmarks" / "RELIABILITY.md").write_text("\n".join(page))


if __name__ == "__main__":
    main()
