"""What npgen costs against image size: CIFAR-10 UPSAMPLED (a cost test, never a quality result) at 32-256 px.

Collection i of size s is CIFAR-10 training images 0..n-1, each enlarged s/32 times by pixel repetition (nearest
neighbour): exactly the real images' content at a larger size, so the sampler's work per pixel is what a collection
of s-pixel photos would cost, while what it makes says nothing about quality at that size. Each is written as an
npgen array folder (`npgen.data.folders.write_array_folder`, memory-mapped) named `cifar10-up<s>-<n>` under
$NPGEN_SCALE_DATA (default /work/scale-data, never in git), with `"synthetic": true` in its record.

    python benchmarks/speed/size_cost.py build --size 128 --n 10000     # the 10,000-image 128 px build
    python benchmarks/speed/size_cost.py sample --sizes 32 64 128 256 --n 2000 --rounds 5
    python benchmarks/speed/size_cost.py sample --source photo-crops --sizes 32 64 128 256 --n 2000 --rounds 5

`--source photo-crops` takes collections of real photo content instead: image i of size s is an s x s crop, at a
seeded random place, of scikit-image's picture i mod 8 at its own resolution (brick, grass, gravel, astronaut,
chelsea, coffee, rocket, hubble_deep_field; grey ones made RGB), labelled by its picture. Enlarged CIFAR-10 images
are flat blocks whose windows often match exactly and end the search early; crops of photos have no such blocks, so
they say what photos cost per pixel. They are named `photo-crops<s>-<n>` (`"synthetic": true` too: cut for this
test, not a collection anyone made). Written under "sample-photo-crops" in the same results file.

`build` times `npgen.api.build_database` (what `npgen build` runs) in this process, with its peak memory (anonymous
and resident, `scale.MemoryWatch`) and the database's size on disk. `sample` builds (or reuses) a database per size,
then samples class-conditional "cat" images with the CIFAR-10 preset at every size in one process, the sizes taken in
turn round by round so that the shared machine's load slows every size alike; each round samples about 100 images'
worth of 32 px pixels at every size (100 at 32 px, 25 at 64, 6 at 128, 2 at 256). The first round of each size
(numba from its cache) is set-up and not counted; the result is the median pixels per second over the rounds, and the
median over the rounds of each round's ratio to 32 px's (the load of the shared machine changes between rounds). At
128 px a whole `npgen.api.sample_run` of 24 samples (database opening, nearest-image search,
Parquet, PNGs) is timed beside the sampler alone, in pairs after one uncounted run, for the run's share of the
sampler's throughput. Written to
benchmarks/results/size-cost.json.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: record.py, speed/scale.py
sys.path.insert(0, str(Path(__file__).resolve().parent))
from record import RESULTS, machine
from scale import SCALE_DATA, MemoryWatch, folder_bytes

RESULT = RESULTS / "size-cost.json"
BASE = 32


PHOTOS = ("brick", "grass", "gravel", "astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field")
SOURCES = {"cifar10-upsampled": "cifar10-up", "photo-crops": "photo-crops"}


def collection_path(size: int, n: int, source: str = "cifar10-upsampled") -> Path:
    return SCALE_DATA / f"{SOURCES[source]}{size}-{n}"


def database_path(size: int, n: int, source: str = "cifar10-upsampled") -> Path:
    return SCALE_DATA / "db" / f"{SOURCES[source]}{size}-{n}"


def make(size: int, n: int, source: str = "cifar10-upsampled") -> Path:
    """Write the collection of n images at size x size unless it exists; return its folder."""
    from npgen.data.datasets import load_dataset
    from npgen.data.folders import write_array_folder

    path = collection_path(size, n, source)
    if path.exists():
        return path
    if source == "photo-crops":
        return make_crops(path, size, n)
    if size % BASE:
        raise SystemExit(f"--size must be a multiple of {BASE}, got {size}")
    factor = size // BASE
    train = load_dataset("cifar10")
    step = 1000
    chunks = (
        (
            np.repeat(np.repeat(train.images[first : min(first + step, n)], factor, axis=1), factor, axis=2),
            train.labels[first : min(first + step, n)].astype(np.int64),
        )
        for first in range(0, n, step)
    )
    record = {
        "synthetic": True,
        "description": (
            f"SYNTHETIC, a cost test only: CIFAR-10 training images 0..{n - 1} enlarged {factor} times by pixel "
            "repetition, made by benchmarks/speed/size_cost.py"
        ),
        "made_from": {"name": "cifar10", "split": "train", "images_sha256": train.images_sha256},
    }
    return write_array_folder(path, path.name, train.class_names, n, (size, size, 3), chunks, record)


def make_crops(path: Path, size: int, n: int) -> Path:
    """Write n crops of size x size from the eight pictures (module docstring) as an array folder at `path`."""
    from skimage import data

    from npgen.data.folders import write_array_folder

    pictures = []
    for name in PHOTOS:
        picture = np.asarray(getattr(data, name)())
        pictures.append(np.repeat(picture[..., None], 3, axis=2) if picture.ndim == 2 else picture[..., :3])
    if size > min(min(p.shape[:2]) for p in pictures):
        raise SystemExit(f"--size {size} is larger than the smallest picture")
    rng = np.random.default_rng(0)
    images = np.empty((n, size, size, 3), np.uint8)
    for i in range(n):
        picture = pictures[i % len(PHOTOS)]
        top = rng.integers(0, picture.shape[0] - size + 1)
        left = rng.integers(0, picture.shape[1] - size + 1)
        images[i] = picture[top : top + size, left : left + size]
    labels = np.arange(n, dtype=np.int64) % len(PHOTOS)
    record = {
        "synthetic": True,
        "description": (
            f"a cost test only: {n} crops of {size}x{size} from scikit-image's pictures {', '.join(PHOTOS)}, image i "
            "from picture i mod 8 at a seeded random place, made by benchmarks/speed/size_cost.py"
        ),
        "made_from": {"scikit_image_pictures": list(PHOTOS)},
    }
    chunks = ((images[first : first + 500], labels[first : first + 500]) for first in range(0, n, 500))
    return write_array_folder(path, path.name, PHOTOS, n, (size, size, 3), chunks, record)


def build(size: int, n: int, force: bool = True, source: str = "cifar10-upsampled") -> dict:
    """Build the collection's database in this process: seconds, peak memory, sizes on disk."""
    from npgen import api

    folder = make(size, n, source)
    with MemoryWatch() as watch:
        started = time.perf_counter()
        db, _ = api.build_database(str(folder), db_path=database_path(size, n, source), force=force)
        seconds = time.perf_counter() - started
    return {
        "size": size,
        "n_images": n,
        "build_seconds": round(seconds, 1),
        **watch.record("build"),
        "database_gb": round(folder_bytes(database_path(size, n, source)) / 1e9, 2),
        "collection_gb": round(folder_bytes(folder) / 1e9, 2),
    }


def sample(
    sizes: list[int], n: int, rounds: int, share_pairs: int, share_images: int, source: str = "cifar10-upsampled"
) -> dict:
    """Pixels per second of the CIFAR-10 preset at every size (module docstring), and the run's share at 128 px."""
    from npgen import api
    from npgen.data.database import Database
    from npgen.data.datasets import load_dataset
    from npgen.rule.sampler import Sampler

    cases = {}
    for size in sizes:
        if not (database_path(size, n, source) / "manifest.json").exists():
            print(f"building {size} px: {build(size, n, force=True, source=source)}", flush=True)
        db = Database.load(database_path(size, n, source))
        label = api.resolve_class(db.class_names, "cat" if source == "cifar10-upsampled" else "chelsea")
        _, options = api.resolve_params(load_dataset(str(collection_path(size, n, source))))
        per_round = max(2, round(100 * (BASE / size) ** 2))
        cases[size] = (Sampler(db, **{**options, "batch_size": per_round}), label, per_round)
    rates = {size: [] for size in sizes}
    for round_ in range(rounds + 1):
        for size, (sampler, label, per_round) in cases.items():
            started = time.perf_counter()
            sampler.sample(per_round, class_label=label, start=round_ * per_round)
            if round_:  # round 0 is set-up
                rates[size].append(per_round * size * size / (time.perf_counter() - started))
        print("round", round_, {s: round(r[-1]) for s, r in rates.items() if r}, flush=True)
    found = {"source": source, "n_images": n, "rounds": rounds, "sizes": {}}
    base = np.array(rates[sizes[0]])
    for size in sizes:
        median = float(np.median(rates[size]))
        found["sizes"][str(size)] = {
            "images_per_round": cases[size][2],
            "pixels_per_second": round(median),
            "images_per_second": round(median / size**2, 3),
            "ratio_to_smallest": round(float(np.median(np.array(rates[size]) / base)), 3),  # per round, then median
            "rates": [round(r) for r in rates[size]],
        }
    if 128 in cases and share_pairs:
        found["run_share_128"] = run_share(cases[128], n, share_pairs, share_images, source)
    return found


def run_share(case, n: int, pairs: int, images: int, source: str = "cifar10-upsampled") -> dict:
    """A whole `sample_run` of `images` 128 px samples against the sampler alone making the same samples, alternated
    in pairs after one pair not counted (the run's modules imported): the median per-pair ratio."""
    from npgen import api

    sampler, label, _ = case
    per_round = images
    sampler = replace(sampler, batch_size=images)  # the run's batch: the same work, batched alike
    ratios = []
    with tempfile.TemporaryDirectory() as scratch:
        for pair in range(-1, pairs):
            started = time.perf_counter()
            sampler.sample(per_round, class_label=label)  # the run's samples
            alone = per_round / (time.perf_counter() - started)
            out = Path(scratch) / f"run-{pair}"
            started = time.perf_counter()
            api.sample_run(
                dataset=str(collection_path(128, n, source)),
                db_path=database_path(128, n, source),
                n=per_round,
                class_value=int(label),
                out=out,
                sampler_options={"batch_size": per_round},
            )
            whole = per_round / (time.perf_counter() - started)
            if pair < 0:
                continue
            ratios.append(whole / alone)
            print(f"pair {pair}: run {whole:.3f} images/s, sampler {alone:.3f}, share {whole / alone:.2f}", flush=True)
    return {"pairs": pairs, "images_per_run": per_round, "share": round(float(np.median(ratios)), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    built = commands.add_parser("build", help="time the database build of one collection")
    built.add_argument("--size", type=int, default=128)
    built.add_argument("--n", type=int, default=10_000)
    sampled = commands.add_parser("sample", help="pixels per second at every size")
    sampled.add_argument("--source", choices=tuple(SOURCES), default="cifar10-upsampled")
    sampled.add_argument("--sizes", type=int, nargs="+", default=[32, 64, 128, 256])
    sampled.add_argument("--n", type=int, default=2000)
    sampled.add_argument("--rounds", type=int, default=5)
    sampled.add_argument("--share-pairs", type=int, default=3)
    sampled.add_argument("--share-images", type=int, default=24, help="samples per run in the share's pairs")
    args = parser.parse_args()
    result = json.loads(RESULT.read_text()) if RESULT.exists() else {}
    stamp = {
        "command": "python benchmarks/speed/size_cost.py " + " ".join(sys.argv[1:]),
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d"),
    }
    if args.command == "build":
        result["build"] = {**build(args.size, args.n), **stamp}
    else:
        key = "sample" if args.source == "cifar10-upsampled" else f"sample-{args.source}"
        result[key] = {
            **sample(args.sizes, args.n, args.rounds, args.share_pairs, args.share_images, args.source),
            **stamp,
        }
    RESULT.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
