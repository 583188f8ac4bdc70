"""npgen on the single-image benchmark's sources: one run per picture, verified, written as benchmarks/quality/
single_image.py's `--score` reads a tool's outputs.

    python benchmarks/quality/single_npgen.py --samples 4              # 256x256: ROOT/npgen/
    python benchmarks/quality/single_npgen.py --samples 4 --size 128   # 128x128: ROOT/npgen-128/
    python benchmarks/quality/single_npgen.py --samples 4 --size 128 --max-part-share 0.02   # ROOT/npgen-128-part0.02/
    python benchmarks/quality/single_image.py --score ROOT/npgen --tool npgen

ROOT as in single_image.py (`--root`, default `$NPGEN_PEERS/single` or `../peers/single` beside the repository;
`single_image.py --prepare` writes the sources there). Each source is sampled by a real `npgen sample --dataset
SOURCE.png` run with the single-image preset (no option given: `npgen.data.datasets.single_image_preset`),
kept under ROOT/npgen-runs/, and checked with `npgen verify` (every pyramid level); a run that fails stops the
benchmark. The seconds per image are the run's sampling seconds over its samples, in a fresh process per
source (numba's compiled kernels come from its cache, as for a user's second run), and the process's CPU time
(all threads; the whole command, database build included) over its samples, when this call sampled the run.
The largest copied part
(a connected region of output pixels taken from the source at one offset, `npgen trace`'s parts) is recorded
per source; `--max-part-share` samples with that bound instead of the preset's (`npgen sample --max-part-share`),
and `--set NAME=VALUE` (repeatable) with any other option of `npgen sample` instead of the preset's, the outputs
going to ROOT/npgen-128-NAMEVALUE/ (e.g. `--set k_min=3`; `--set size=192x192` for outputs larger than the source).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: record.py
from record import machine

REPO = Path(__file__).resolve().parents[2]


def default_root() -> Path:
    return Path(os.environ.get("NPGEN_PEERS") or REPO.parent / "peers") / "single"


def largest_part(run: Path) -> int:
    """The largest copied part over the run's samples (level 0), in pixels."""
    from npgen.analysis.tracing import open_tracer

    tracer = open_tracer(run)
    return max(max(tracer.sample_parts(i).column("size").to_pylist()) for i in range(len(tracer.run.samples)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=default_root())
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--size", type=int, choices=[128, 256], default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-part-share", type=float, help="the bound on copied parts (default: the preset's)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="any other `npgen sample` option instead of the preset's (e.g. k_min=3, size=192x192); repeatable",
    )
    args = parser.parse_args()
    suffix = "" if args.size == 256 else f"-{args.size}"
    bound = [] if args.max_part_share is None else ["--max-part-share", str(args.max_part_share)]
    variant = "" if args.max_part_share is None else f"-part{args.max_part_share}"
    for setting in args.set:
        name, _, value = setting.partition("=")
        if not value:
            raise SystemExit(f"--set takes NAME=VALUE, got {setting!r}")
        bound += [f"--{name.replace('_', '-')}", value]
        variant += f"-{name}{value}"
    sources = args.root / f"sources{suffix}"
    outputs, runs = args.root / f"npgen{suffix}{variant}", args.root / f"npgen-runs{suffix}{variant}"
    names = sorted(p.stem for p in sources.glob("*.png"))
    if not names:
        raise SystemExit(f"no sources in {sources}: run `python benchmarks/quality/single_image.py --prepare` first")
    timings = {
        "tool": "npgen" + suffix + variant,
        "seconds": {},
        "cpu_seconds": {},
        "largest_part": {},
        "machine": machine(),
    }
    for name in names:
        run = runs / name
        if (
            not (run / "manifest.json").is_file()
            or json.loads((run / "manifest.json").read_text())["status"] != "complete"
        ):
            command = [sys.executable, "-m", "npgen", "sample", "--dataset", str(sources / f"{name}.png")]
            command += ["-n", str(args.samples), "--seed", str(args.seed), "--out", str(run), *bound]
            command += ["--resume"] if run.exists() else []
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            subprocess.run(command, check=True)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) / args.samples
            for i in range(args.samples):
                timings["cpu_seconds"][f"{name}/{i}.png"] = round(cpu, 2)
        subprocess.run([sys.executable, "-m", "npgen", "verify", str(run)], check=True, stdout=subprocess.DEVNULL)
        manifest = json.loads((run / "manifest.json").read_text())
        samples = np.load(run / "samples.npy")
        (outputs / name).mkdir(parents=True, exist_ok=True)
        for i, image in enumerate(samples):
            Image.fromarray(image.squeeze()).save(outputs / name / f"{i}.png")
            timings["seconds"][f"{name}/{i}.png"] = manifest["timings"]["sample_seconds"] / len(samples)
        timings["largest_part"][name] = largest_part(run)
        timings["settings"] = {
            k: manifest["params"].get(k)
            for k in ("levels", "anchor", "radius", "coarse_weight", "k_min", "eps", "max_part_share", "size")
        }
        print(
            f"{name}: {manifest['timings']['sample_seconds'] / len(samples):.1f} s per image, verified, "
            f"largest part {timings['largest_part'][name]} pixels",
            flush=True,
        )
    (outputs / "timings.json").write_text(json.dumps(timings, indent=2))


if __name__ == "__main__":
    main()
