"""The case families `reliability.py` adds to its hand-written cases (issue 21): every option at and beyond its
declared range (npgen/params.py), every kind of file in a run folder corrupted in every way, kill -9 at several
moments of build, sample and merge, each command's usage errors, and the hostile inputs issue 21 lists.

Each family returns `Case`s (defined in reliability.py); crash cases carry a `runner` that kills and recovers.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np

from npgen.params import BUILD, INFOMAP, PARAMS, RUN, SAMPLE

EITHER = "either"  # exit 0, or exit 2 with one error line: both are sound answers


def _copy(source: Path, dest: Path, change=None) -> Path:
    shutil.copytree(source, dest, symlinks=True)
    if change is not None:
        change(dest)
    return dest


def _edit_manifest(run: Path, change) -> None:
    manifest = json.loads((run / "manifest.json").read_text())
    change(manifest)
    (run / "manifest.json").write_text(json.dumps(manifest))


# ---- every option at and beyond its declared range ----


def _beyond(param) -> list[tuple[str, str]]:
    """(label, value) of values outside a parameter's range or type."""
    if param.choices:
        return [("unknown choice", "bogus"), ("empty", "")]
    values = [("text", "abc"), ("empty", ""), ("1e30", "1e30"), ("-1e30", "-1e30"), ("nan", "nan"), ("inf", "inf")]
    if param.kind is int:
        values += [("10^30", str(10**30)), ("1.5", "1.5")]
        if param.low is not None:
            values.append(("low - 1", str(param.low - 1)))
        if param.high is not None:
            values.append(("high + 1", str(param.high + 1)))
    else:
        values.append(("-inf", "-inf"))
        if param.low is not None:
            values.append(("below low", repr(param.low - max(abs(param.low) * 0.5, 1e-3))))
        if param.high is not None:
            values.append(("above high", repr(param.high * 2 + 1)))
    return values


def _at(param) -> list[tuple[str, str]]:
    if param.choices:
        return [(f"choice {c}", c) for c in param.choices]
    return [(f"low {param.low}", str(param.low)), (f"high {param.high}", str(param.high))]


def param_cases(Case, w: Path, f: dict) -> list:
    """Each parameter of npgen/params.py beyond its range (refused in one line) and at both ends (sampled, or
    refused in one line where the data cannot take it: both sound)."""
    out = []
    for n, param in enumerate(PARAMS.values()):
        flag = "--" + param.name.replace("_", "-")
        for k, (label, value) in enumerate(_beyond(param) + _at(param)):
            at_range = (label, value) in _at(param)
            expect = EITHER if at_range else "error"
            dest = w / f"p{n}-{k}"
            if param.stage == BUILD:
                args = ["build", "--dataset", f["folder"], "--db", dest, flag, value]
            elif param.stage in (SAMPLE, RUN):
                args = ["sample", "--dataset", f["folder"], "-n", "1", "--out", dest, flag, value]
            elif param.stage == INFOMAP:
                args = ["infomap", f["good"], "--out", dest, flag, value]
            else:
                continue
            out.append(Case(param.stage, f"{flag} {label} ({value!r})", args, expect=expect, guard=[f["good"]]))
    return out


# ---- every kind of file in a run folder, corrupted every way ----


def _corruptions(seed: int) -> dict:
    rng = np.random.default_rng(seed)

    def delete(p: Path):
        shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()

    def empty(p: Path):
        p.write_bytes(b"")

    def halve(p: Path):
        p.write_bytes(p.read_bytes()[: max(1, p.stat().st_size // 2)])

    def garbage(p: Path):
        p.write_bytes(rng.integers(0, 256, max(p.stat().st_size, 64), dtype=np.uint8).tobytes())

    def folder(p: Path):
        delete(p)
        p.mkdir()

    def dev_zero(p: Path):
        delete(p)
        p.symlink_to("/dev/zero")

    def fifo(p: Path):
        delete(p)
        os.mkfifo(p)

    def sparse(p: Path):
        with open(p, "r+b") as handle:
            handle.truncate(8 << 30)  # 8 GiB declared, nothing on disk

    def flip_tail(p: Path):  # bytes near the end (the data, past any header) changed
        data = bytearray(p.read_bytes())
        for i in range(1, min(9, len(data))):
            data[-i * 7 % len(data)] ^= 0x5A
        p.write_bytes(bytes(data))

    return {
        "deleted": delete,
        "empty": empty,
        "truncated to half": halve,
        "random bytes": garbage,
        "a folder": folder,
        "a link to /dev/zero": dev_zero,
        "a FIFO": fifo,
        "sparse 8 GiB": sparse,
        "bytes flipped near the end": flip_tail,
    }


# file -> (the run it lives in, the commands to try, what each must answer)
READ_COMMANDS = ("verify", "audit", "trace", "report")


def corruption_cases(Case, w: Path, f: dict) -> list:
    """Each file a run folder holds, corrupted each way, then each read-side command: a file the answers rest on
    must be refused (exit 2, one line) or, for verify, found to mismatch (exit 1); a picture or a batch part kept
    only for --resume may be ignored."""
    files = {
        "manifest.json": ("two", READ_COMMANDS, "error"),
        "samples.npy": ("two", READ_COMMANDS, "samples"),
        "samples.parquet": ("two", READ_COMMANDS, "error"),
        "provenance/part-00000.parquet": ("two", READ_COMMANDS, "error"),
        "provenance/part-00001.parquet": ("two", READ_COMMANDS, "error"),
        "sources.parquet": ("folder_run", READ_COMMANDS, "sources"),
        "controls/excluded.npy": ("excluded_run", ("verify", "trace"), "control"),
        "summary/part-00000.parquet": ("two", ("verify",), EITHER),
        "chunks/part-00000.npy": ("two", ("verify",), EITHER),
        "png/sample-00000.png": ("two", ("verify",), EITHER),
        "grid.png": ("two", ("verify",), EITHER),
    }
    out = []
    n = 0
    for rel, (source, commands, rule) in files.items():
        for what, corrupt in _corruptions(len(out)).items():
            n += 1
            run = _copy(f[source], w / f"c{n}", lambda r, corrupt=corrupt, rel=rel: corrupt(r / rel))
            for command in commands:
                expect = rule
                if rule == "samples":  # the samples' bytes changed, the provenance intact
                    expect = EITHER if what == "bytes flipped near the end" else "error"
                    if what == "bytes flipped near the end" and command == "verify":
                        expect = "exit1"
                elif rule == "sources":  # without it the run names no files; any other damage is refused
                    expect = EITHER if what == "deleted" else "error"
                elif rule == "control":  # verify must refuse it; trace's answers do not rest on it
                    expect = "error" if command == "verify" else EITHER
                args = {
                    "verify": ["verify", run],
                    "audit": ["audit", run, "--out", w / f"c{n}-audit"],
                    "trace": ["trace", run, "--sample", "0", "--out", w / f"c{n}-trace.png"],
                    "report": ["report", run, "--out", w / f"c{n}-report"],
                }[command]
                out.append(Case(command, f"{rel} {what}", args, expect=expect, timeout=90))
    for name, change in {
        "a duplicated provenance part": lambda r: shutil.copyfile(
            r / "provenance/part-00000.parquet", r / "provenance/part-00001.parquet"
        ),
        "a duplicated part, manifest without part records": lambda r: (
            _edit_manifest(r, lambda m: m.pop("parts", None)),
            shutil.copyfile(r / "provenance/part-00000.parquet", r / "provenance/part-00001.parquet"),
        ),
        "a foreign .parquet in provenance/": lambda r: shutil.copyfile(
            r / "provenance/part-00000.parquet", r / "provenance/zz-foreign.parquet"
        ),
        "a folder in provenance/": lambda r: (r / "provenance" / "sub").mkdir(),
        "a part removed": lambda r: (r / "provenance/part-00001.parquet").unlink(),
        "a part renamed hidden (.part-00001.parquet)": lambda r: (r / "provenance/part-00001.parquet").rename(
            r / "provenance/.part-00001.parquet"
        ),
    }.items():
        n += 1
        run = _copy(f["two"], w / f"c{n}", change)
        for command in READ_COMMANDS + ("infomap", "eval"):
            args = {
                "verify": ["verify", run],
                "audit": ["audit", run, "--image", "975", "--out", w / f"c{n}-audit"],
                "trace": ["trace", run, "--sample", "0", "--out", w / f"c{n}-trace.png"],
                "report": ["report", run, "--out", w / f"c{n}-report"],
                "infomap": ["infomap", run, "--out", w / f"c{n}-infomap"],
                "eval": ["eval", run],
            }[command]
            out.append(Case(command, name, args))
    return out


# ---- usage errors of every command ----

COMMANDS = {
    "data list": [],
    "data info": ["mnist"],
    "data import": ["mnist", "."],
    "data download": ["mnist"],
    "cache list": [],
    "cache clean": [],
    "build": ["--dataset", "mnist"],
    "sample": ["--dataset", "mnist", "--out", "x"],
    "complete": ["--dataset", "mnist", "--mask", "top", "--test-index", "0", "--out", "x"],
    "merge": ["x", "y"],
    "verify": ["x"],
    "eval": ["x"],
    "trace": ["x", "--sample", "0"],
    "report": ["x"],
    "audit": ["x"],
    "infomap": ["x"],
}


def usage_cases(Case, w: Path, f: dict) -> list:
    """Each command with an unknown option, with nothing after it (where it needs something), and --help."""
    out = []
    for command, needed in COMMANDS.items():
        words = command.split()
        out.append(Case("usage", f"{command} --no-such-option", [*words, *needed, "--no-such-option"]))
        if needed:
            out.append(Case("usage", f"{command} without its arguments", words))
        out.append(Case("usage", f"{command} --help", [*words, "--help"], expect="ok"))
    return out


# ---- the hostile inputs of issue 21 ----


def _bomb_png(path: Path, side: int = 100_000) -> Path:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0")) + chunk(b"IEND", b"")
    )
    return path


def issue_cases(Case, w: Path, f: dict) -> list:
    """Every hostile input issue 21 lists, as one command each."""
    two, good, folder = f["two"], f["good"], f["folder"]
    out = []
    n = 0

    def copy(change=None, source=two) -> Path:
        nonlocal n
        n += 1
        return _copy(source, w / f"i{n}", change)

    removed = copy(lambda r: (r / "provenance/part-00001.parquet").unlink())
    doubled = copy(lambda r: shutil.copyfile(r / "provenance/part-00000.parquet", r / "provenance/part-00001.parquet"))
    foreign = copy(lambda r: shutil.copyfile(r / "provenance/part-00000.parquet", r / "provenance/other.parquet"))
    for what, run in (("a removed part", removed), ("a duplicated part", doubled), ("a foreign .parquet", foreign)):
        out += [
            Case(
                "audit", f"--image 975, provenance with {what}", ["audit", run, "--image", "975", "--out", w / f"a{n}"]
            ),
            Case("audit", f"usage, provenance with {what}", ["audit", run, "--out", w / f"b{n}"]),
            Case("verify", f"provenance with {what}", ["verify", run]),
            Case("report", f"provenance with {what}", ["report", run, "--out", w / f"r{n}"]),
            Case("infomap", f"provenance with {what}", ["infomap", run, "--out", w / f"m{n}"]),
            Case("trace", f"provenance with {what}", ["trace", run, "--sample", "9"]),
        ]
    target = copy()
    for command in ("report", "audit", "infomap"):
        for where in (".", "provenance", "summary", "png", "report/../chunks"):
            out.append(Case(command, f"--out RUN/{where}", [command, target, "--out", target / where], guard=[target]))
    out.append(
        Case(
            "trace",
            "--out RUN/samples.npy",
            ["trace", target, "--sample", "0", "--out", target / "samples.npy"],
            guard=[target],
        )
    )
    out.append(Case("report", "--out another run", ["report", target, "--out", good], guard=[good]))
    sparse = copy()
    _edit_manifest(sparse, lambda m: m.update(n_samples=10**6))
    np.lib.format.open_memmap(sparse / "samples.npy", mode="w+", dtype=np.uint8, shape=(10**6, 28, 28, 1)).flush()
    fifo = copy(lambda r: ((r / "manifest.json").unlink(), os.mkfifo(r / "manifest.json")))
    zero = copy(lambda r: ((r / "manifest.json").unlink(), (r / "manifest.json").symlink_to("/dev/zero")))
    huge_images = copy(lambda r: _edit_manifest(r, lambda m: m["dataset"].update(n_images=10**11)))
    budget = copy(lambda r: _edit_manifest(r, lambda m: m["params"].update(source_budget=10**30)))
    summary = copy(lambda r: (r / "samples.parquet").write_bytes((r / "samples.parquet").read_bytes()[:300]))
    sources = copy(source=f["folder_run"])
    (sources / "sources.parquet").write_bytes(b"garbage")
    garbage_shards = [_copy(s, w / f"gs{i}") for i, s in enumerate(f["shards"])]
    (garbage_shards[0] / "sources.parquet").write_bytes(b"garbage")
    bomb = _bomb_png(w / "bomb.png")
    link_target = w / "link-target"
    link_target.mkdir()
    (w / "out-link").symlink_to(link_target)
    user_db = w / "user-db"
    shutil.copytree(f["db_h2"], user_db)
    (user_db / "thesis.tex").write_text("mine")
    fake_db = w / "fake-db"
    fake_db.mkdir()
    (fake_db / "manifest.json").write_text('{"format": "npgen-database"}')
    (fake_db / "notes.txt").write_text("mine")
    sample = ["sample", "--dataset", "mnist"]
    out += [
        Case("sample", "-n 10^12", [*sample, "-n", str(10**12), "--out", w / "n1"]),
        Case("sample", "-n 10^23", [*sample, "-n", str(10**23), "--out", w / "n1"]),
        Case("complete", "-n 10^12", ["complete", "--dataset", "mnist", "--test-index", "0", "--mask", "top", "-n", str(10**12), "--out", w / "n2"]),
        Case("complete", "--test-index 10^20", ["complete", "--dataset", "mnist", "--test-index", str(10**20), "--mask", "top", "--out", w / "n2"]),
        Case("sample", "--shard 0/10^20", [*sample, "-n", "2", "--shard", f"0/{10**20}", "--out", w / "n3"]),
        Case("sample", "--shard 0/0", [*sample, "-n", "2", "--shard", "0/0", "--out", w / "n3"]),
        Case("audit", "manifest n_images 10^11", ["audit", huge_images, "--out", w / "n4"]),
        Case("verify", "sparse samples.npy declaring 10^6 samples", ["verify", sparse]),
        Case("audit", "sparse samples.npy declaring 10^6 samples", ["audit", sparse, "--out", w / "n5"]),
        Case("verify", "manifest.json -> /dev/zero", ["verify", zero], timeout=60),
        Case("report", "manifest.json -> /dev/zero", ["report", zero, "--out", w / "n6"], timeout=60),
        Case("verify", "manifest.json is a FIFO", ["verify", fifo], timeout=60),
        Case("audit", "manifest.json is a FIFO", ["audit", fifo, "--out", w / "n7"], timeout=60),
        Case("sample", "--exclude near:1e308:0", [*sample, "-n", "2", "--exclude", "near:1e308:0", "--out", w / "n8"]),
        Case("audit", "--max-candidates 10^20", ["audit", good, "--max-candidates", str(10**20), "--out", w / "n9"], expect="ok"),
        Case("trace", "--max-candidates 10^20", ["trace", good, "--sample", "0", "--max-candidates", str(10**20), "--out", w / "n9.png"], expect="ok"),
        Case("audit", "--image a decompression-bomb PNG header", ["audit", good, "--image", bomb, "--out", w / "n10"]),
        Case("complete", "--image a decompression-bomb PNG header", ["complete", "--dataset", "mnist", "--image", bomb, "--mask", "top", "--out", w / "n11"]),
        Case("sample", "--class-map a decompression-bomb PNG", [*sample, "-n", "1", "--class-map", bomb, "--out", w / "n12"]),
        Case("merge", "a garbage sources.parquet", ["merge", w / "n13", *garbage_shards]),
        Case("build", "--ray 127.0.0.1:1", ["build", "--dataset", folder, "--db", w / "n14", "--ray", "127.0.0.1:1"], timeout=60),
        Case("sample", "--ray 127.0.0.1:1", [*sample, "-n", "1", "--ray", "127.0.0.1:1", "--out", w / "n15"], timeout=60),
        Case("verify", "params.source_budget 10^30 with max_source_share 0.1", ["verify", budget]),
        Case("verify", "truncated samples.parquet", ["verify", summary]),
        Case("report", "truncated samples.parquet", ["report", summary, "--out", w / "n16"]),
        Case("trace", "a garbage sources.parquet", ["trace", sources, "--sample", "0"]),
        Case("sample", "--out LINK --resume", [*sample, "-n", "2", "--out", w / "out-link", "--resume"], guard=[link_target]),
        Case("sample", "--out LINK (new run)", [*sample, "-n", "2", "--out", w / "out-link"], guard=[link_target]),
        Case("sample", "--dataset ''", ["sample", "--dataset", "", "-n", "2", "--out", w / "n17"]),
        Case("build", "--dataset ''", ["build", "--dataset", "", "--db", w / "n18"]),
        Case("data", "data info ''", ["data", "info", ""]),
        Case("build", "--force on a database holding a user's file", ["build", "--dataset", folder, "--db", user_db, "--half-window", "2", "--force"], guard=[user_db]),
        Case("build", "--force on a folder whose manifest merely says npgen-database", ["build", "--dataset", folder, "--db", fake_db, "--force"], guard=[fake_db]),
    ]  # fmt: skip
    return out


# ---- kill -9 at several moments ----


def _kill_after(args: list, env: dict, cwd: Path, delay: float) -> int | None:
    """Start `npgen args`, kill -9 it after `delay` seconds; its exit status if it ended first, else None."""
    process = subprocess.Popen(
        [sys.executable, "-m", "npgen", *map(str, args)],
        env=env,
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        return process.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGKILL)
        process.wait()
        return None


def _leftovers(folder: Path, name: str) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(f".{name}.tmp-"))


def _moment(delay: float, ended) -> str:
    return f"ended before {delay} s" if ended is not None else f"killed after {delay} s"


def _verdict(done: subprocess.CompletedProcess, summary: str) -> tuple[int, str]:
    """The recovery's exit status, and its output with the case's summary as the last line (the table shows it)."""
    return done.returncode, (done.stdout + done.stderr).strip() + "\n" + summary


def _crash_sample(delay: float):
    def runner(npgen, env, w: Path):
        out = w / f"killed-sample-{delay}"
        args = ["sample", "--dataset", "mnist", "--class", "3", "-n", "12", "--batch-size", "2", "--out", out]
        ended = _kill_after(args, env, w, delay)
        parts = len(list((out / "chunks").glob("part-*.npy"))) if out.exists() else 0
        again = npgen([*args, "--resume"] if out.exists() else args, env, w)
        if again.returncode != 0:
            return (*_verdict(again, f"{_moment(delay, ended)} ({parts} of 6 batches); resume failed"), False)
        checked = npgen(["verify", out], env, w)
        stray = [p.name for p in out.rglob("*") if ".tmp-" in p.name]
        summary = (
            f"{_moment(delay, ended)} with {parts} of 6 batches written; --resume finished it; verify exit "
            f"{checked.returncode}" + (f"; stray {stray}" if stray else "; no temporary file left")
        )
        return (*_verdict(checked, summary), not stray)

    return runner


def _crash_build(delay: float, force: bool, dataset: Path):
    def runner(npgen, env, w: Path):
        db = w / f"killed-build-{delay}-{int(force)}"
        args = ["build", "--dataset", dataset, "--db", db]
        if force:
            done = npgen(args, env, w)
            if done.returncode != 0:
                return (*_verdict(done, "the first build failed"), False)
        ended = _kill_after([*args, "--force"] if force else args, env, w, delay)
        whole = not db.exists() or (db / "manifest.json").is_file()  # a database is whole or absent
        left = _leftovers(w, db.name)
        again = npgen([*args, "--force"], env, w) if db.exists() else npgen(args, env, w)
        stray = _leftovers(w, db.name)
        shutil.rmtree(db, ignore_errors=True)  # a few hundred MB each
        summary = (
            f"{_moment(delay, ended)}: database {'whole' if whole else 'HALF-MADE'}, {len(left)} hidden .tmp folder(s) "
            f"left; built again (exit {again.returncode}), " + (f"stray {stray}" if stray else "none left")
        )
        return (*_verdict(again, summary), whole and not stray)

    return runner


def _crash_merge(delay: float):
    def runner(npgen, env, w: Path):
        out = w / f"killed-merge-{delay}"
        ended = _kill_after(["merge", out, *runner.shards], env, w, delay)
        existed = out.exists()
        whole = not existed or (out / "samples.npy").is_file()
        left = _leftovers(w, out.name)
        again = npgen(["verify", out], env, w) if existed else npgen(["merge", out, *runner.shards], env, w)
        checked = npgen(["verify", out], env, w) if again.returncode == 0 else again
        stray = _leftovers(w, out.name)
        summary = (
            f"{_moment(delay, ended)}: OUT {'whole' if existed and whole else 'absent' if whole else 'HALF-MADE'}"
            f" then, {len(left)} hidden .tmp folder(s) left; {'' if existed else 'merged again, '}verify exit "
            f"{checked.returncode}, " + (f"stray {stray}" if stray else "none left")
        )
        return (*_verdict(checked, summary), whole and not stray)

    return runner


def crash_cases(Case, w: Path, f: dict) -> list:
    """kill -9 during sample (then --resume and verify), build and build --force (then build again: a database
    whole or absent, no hidden .D.tmp-* left), and merge (then merge again and verify: no .OUT.tmp-* left)."""
    out = []
    for delay in (1.0, 2.0, 3.0, 4.5, 6.0, 8.0):
        out.append(
            Case("crash", f"sample killed after {delay} s, then --resume", [], expect="ok", runner=_crash_sample(delay))
        )
    for delay in (0.6, 0.9, 1.2, 1.5, 1.8, 2.2):
        for force in (False, True):
            label = "build --force" if force else "build"
            out.append(
                Case(
                    "crash",
                    f"{label} (MNIST) killed after {delay} s, then built again",
                    [],
                    expect="ok",
                    runner=_crash_build(delay, force, "mnist"),
                )
            )
    for delay in (0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.55):
        runner = _crash_merge(delay)
        runner.shards = f["shards"]
        out.append(Case("crash", f"merge killed after {delay} s, then merged again", [], expect="ok", runner=runner))
    return out  # fmt: skip


def all_families(Case, w: Path, f: dict) -> list:
    started = time.time()
    cases = [
        *issue_cases(Case, w, f),
        *param_cases(Case, w, f),
        *corruption_cases(Case, w, f),
        *usage_cases(Case, w, f),
        *crash_cases(Case, w, f),
    ]
    print(f"prepared {len(cases)} more cases in {time.time() - started:.0f} s", flush=True)
    return cases
