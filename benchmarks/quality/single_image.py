"""Single-image synthesis: GPNN (and later npgen) on eight scikit-image pictures, scored by patch statistics.

    python benchmarks/quality/single_image.py --prepare                 # ROOT/sources/<name>.png, 256x256 RGB
    TQDM_DISABLE=1 python benchmarks/quality/single_image.py --gpnn ../peers/Efficient-GPNN --samples 4
    python benchmarks/quality/single_image.py --score ROOT/gpnn --tool gpnn
    python benchmarks/quality/single_image.py --score-tiles             # the metric's scale: shuffled source tiles
    python benchmarks/quality/single_image.py --figure                  # benchmarks/figures/single-image.png

ROOT is `--root`, by default `$NPGEN_PEERS/single` or `../peers/single` beside the repository: the sources and
every tool's outputs live there, outside git. Only the scores and the figure are committed.

Sources (`--prepare`): the centre square crop of each scikit-image picture (brick, grass, gravel, astronaut,
chelsea, coffee, rocket, hubble_deep_field), box-downsampled by the largest integer factor that keeps it at
least 256 pixels wide (PIL `Image.reduce`, an exact block mean), then resized to 256x256 with Lanczos when it is
not 256 already; grey pictures become RGB. ROOT/sources/sources.json records each file's SHA-256.
`--size 128` (with --prepare, --gpnn, --score-tiles) works at 128x128 instead: ROOT/sources-128/ holds the exact
2x2 block means of the 256 sources, and the outputs go to ROOT/<tool>-128/. GPNN's exact nearest-neighbour search
costs about 16 times more at 256 than at 128, which on a shared 2-core CPU is hours per 256x256 image;
`--device cuda` runs it on a GPU. `--score` scores outputs against the sources of their own size.

Outputs of a tool (the format `--score` reads, and the one npgen's runner must write):

    ROOT/<tool>/<name>/<i>.png     # 256x256 RGB (or grey) PNG, i = 0, 1, ...; one folder per source name
                                   # (ROOT/<tool>-128/ for 128x128 outputs, scored against sources-128/)
    ROOT/<tool>/timings.json       # {"tool": str, "seconds": {"<name>/<i>.png": wall-clock seconds, ...}, ...}

Only "seconds" is read (its median is the seconds per image), and "cpu_seconds" in the same layout when given
(the process's CPU time over all threads: a wall clock on a shared machine also counts the others' work, and
pauses); any other keys (settings, device, threads, commit) are copied into the result as "run". `--score` writes benchmarks/results/single-image-<tool>.json
(name the tool gpnn-128, npgen-128 for 128x128 outputs); `--against SIZE` scores outputs against the sources of
that size instead of their own (outputs larger than their sources). The figure shows up to two outputs of each of
gpnn-128, npgen-128, gpnn, gpnn-ivf and npgen found under ROOT.

GPNN (`--gpnn CHECKOUT`): Efficient-GPNN (github.com/ariel415el/Efficient-GPNN), imported from its own checkout
(it needs torch, torchvision, tqdm, opencv and faiss importable), on the CPU unless `--device cuda`, with the
defaults of its `main.py` for reshuffling: patch 7, stride 1, exact nearest neighbours with alpha 0.005
(PytorchNNLowMemory, batch 256), a pyramid from the output size (fine_dim) down to coarse_dim 14 by factor 0.75
(11 levels from 256 to 13; 9 from 128: 12, 16, 22, 30, 40, 54, 72, 96, 128), keys blurred by 0.75, initial
guess zeros plus Gaussian noise of sigma 0.75, 10 iterations per level and 1 at the coarsest. `--gpnn-nn ivf`
uses GPNN's own fast mode instead (its main.py's `--NN_type Faiss-IVF`: a FAISS IndexIVFFlat of sqrt(n) lists, one
probed, no alpha), into ROOT/gpnn-ivf[-<size>]/: about 30 CPU-seconds per 256x256 image here, where the exact
search takes hours.
Sample i is seeded with torch.manual_seed(seed + i). Its output in [-1, 1] is written as round((x+1)/2*255)
clipped; main.py's dump_images would also min-max stretch each image, which we do not (it changes contrast).
Samples are made in rounds (sample 0 of every source, then 1, ...) and existing outputs are kept, so an
interrupted run resumes.

Scores (npgen.evaluation.patches): `patch_distance`, a multi-scale sliced Wasserstein distance between the 7x7
patch distributions of a source's samples and the source (0 = the same patches), and `diversity`, the SinGAN/GPNN
per-pixel standard deviation across the samples over the source's (0 = identical samples).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: record.py
from record import FIGURES, save_result

from npgen.errors import NpgenError
from npgen.evaluation.patches import diversity, patch_distance

SOURCES = ["brick", "grass", "gravel", "astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field"]
SIZE = 256  # the sources' size; --size 128 (or 64) works on their exact 2x2 (4x4) block means
FIGURE_TOOLS = {
    "gpnn-128": "GPNN 128",
    "npgen-128": "npgen 128",
    "npgen-128-max_reuse1": "--max-reuse 1",
    "gpnn": "GPNN",
    "gpnn-ivf": "GPNN IVF",
    "npgen": "npgen",
}
GPNN_SETTINGS = {
    "patch_size": 7,
    "stride": 1,
    "nn": "PytorchNNLowMemory (exact)",
    "alpha": 0.005,
    "nn_batch_size": 256,
    "fine_dim": SIZE,  # --size
    "coarse_dim": 14,
    "pyr_factor": 0.75,
    "keys_blur_factor": 0.75,
    "init_from": "zeros",
    "noise_sigma": 0.75,
    "num_iters": 10,
    "initial_level_num_iters": 1,
    "device": "cpu",
}


def default_root() -> Path:
    """Where sources and outputs live: $NPGEN_PEERS/single, else ../peers/single beside the repository."""
    peers = os.environ.get("NPGEN_PEERS")
    return Path(peers) / "single" if peers else Path(__file__).resolve().parents[3] / "peers" / "single"


def sha256(path: Path) -> str:
    """The SHA-256 of a file's bytes, in hex."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_png(path: Path) -> np.ndarray:
    """A PNG as an (H, W, C) uint8 array (C = 1 for grey)."""
    array = np.asarray(Image.open(path))
    return array[..., None] if array.ndim == 2 else array[..., :3]


def source_picture(name: str) -> Image.Image:
    """The 256x256 RGB source made from scikit-image's picture `name` (see the module docstring)."""
    from skimage import data

    array = getattr(data, name)()
    height, width = array.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    picture = Image.fromarray(array[top : top + side, left : left + side]).convert("RGB")
    factor = side // SIZE
    if factor > 1:
        picture = picture.crop((0, 0, side - side % factor, side - side % factor)).reduce(factor)
    if picture.size != (SIZE, SIZE):
        picture = picture.resize((SIZE, SIZE), Image.Resampling.LANCZOS)
    return picture


def sources_folder(root: Path, size: int) -> Path:
    """ROOT/sources for the 256x256 sources, ROOT/sources-<size> for their block means at a smaller size."""
    return root / "sources" if size == SIZE else root / f"sources-{size}"


def check_size(size: int) -> int:
    """`size`, if it is 256 or divides it; else a NpgenError."""
    if size < 16 or SIZE % size:
        raise NpgenError(f"size {size} must divide {SIZE} (256, 128, 64, ...)")
    return size


def prepare(root: Path, size: int) -> None:
    """Write ROOT/sources/<name>.png with sources.json (origin, SHA-256), and ROOT/sources-<size>/ below 256."""
    import skimage

    for at in sorted({SIZE, size}, reverse=True):
        folder = sources_folder(root, at)
        folder.mkdir(parents=True, exist_ok=True)
        record = {}
        for name in SOURCES:
            path, written = folder / f"{name}.png", folder / f".{name}.png"
            if at == SIZE:
                source_picture(name).save(written, format="PNG")
                origin = f"skimage.data.{name}"
            else:
                Image.open(sources_folder(root, SIZE) / f"{name}.png").reduce(SIZE // at).save(written, format="PNG")
                origin = f"sources/{name}.png block-averaged by {SIZE // at} (PIL Image.reduce)"
            os.replace(written, path)  # a run reading the sources never sees a partial file
            record[name] = {"origin": origin, "sha256": sha256(path)}
            print(path, record[name]["sha256"], flush=True)
        meta = {"scikit_image": skimage.__version__, "size": at, "sources": record}
        (folder / "sources.json").write_text(json.dumps(meta, indent=2) + "\n")


def load_sources(root: Path, size: int = SIZE) -> dict[str, np.ndarray]:
    """name -> (size, size, 3) uint8 source, checked against the SHA-256 that --prepare recorded."""
    folder = sources_folder(root, size)
    if not (folder / "sources.json").is_file():
        raise NpgenError(f"no sources in {folder}: run with --prepare --size {size} first")
    recorded = json.loads((folder / "sources.json").read_text())["sources"]
    for name in SOURCES:
        if sha256(folder / f"{name}.png") != recorded[name]["sha256"]:
            raise NpgenError(f"{folder / name}.png differs from the SHA-256 in sources.json: run --prepare again")
    return {name: read_png(folder / f"{name}.png") for name in SOURCES}


def peer_commit(checkout: Path, given: str | None) -> str:
    """The checkout's git commit: `given`, else `git rev-parse HEAD` in it, else 'unknown'."""
    if given:
        return given
    done = subprocess.run(
        ["git", "-C", str(checkout), "rev-parse", "HEAD"], capture_output=True, text=True, check=False
    )
    return done.stdout.strip() if done.returncode == 0 else "unknown"


def tool_folder(root: Path, tool: str, size: int) -> Path:
    """ROOT/<tool> for 256x256 outputs, ROOT/<tool>-<size> for smaller ones."""
    return root / tool if size == SIZE else root / f"{tool}-{size}"


def run_gpnn(
    root: Path, checkout: Path, size: int, samples: int, seed: int, device: str, commit: str | None, nn: str = "exact"
) -> None:
    """Make `samples` GPNN outputs per source into ROOT/gpnn[-<size>]/<name>/<i>.png, timing each (timings.json);
    with nn "ivf", GPNN's approximate search (its main.py's --NN_type Faiss-IVF: a FAISS IVF index of sqrt(n) lists,
    no alpha) into ROOT/gpnn-ivf[-<size>]/."""
    load_sources(root, size)  # checks the hashes
    sys.path.insert(0, str(checkout.resolve()))
    import GPNN  # the peer's modules, from its checkout
    import torch
    from utils.image import get_pyramid_scales, load_image
    from utils.NN_modules import FaissIVF, PytorchNNLowMemory

    s = GPNN_SETTINGS | {"fine_dim": size, "device": device}
    if nn == "ivf":
        s |= {"nn": "FaissIVF (approximate: IndexIVFFlat, sqrt(n) lists, 1 probed)", "alpha": None}
    out = tool_folder(root, "gpnn" if nn == "exact" else "gpnn-ivf", size)
    timings_path = out / "timings.json"
    timings = json.loads(timings_path.read_text()) if timings_path.is_file() else {}
    for part in ("seconds", "cpu_seconds", "load_1min"):
        timings.setdefault(part, {})
    timings.update(
        tool="gpnn",
        peer="github.com/ariel415el/Efficient-GPNN",
        commit=peer_commit(checkout, commit),
        settings=s | {"seed": f"torch.manual_seed({seed} + i)"},
        torch=torch.__version__,
        threads=torch.get_num_threads(),
    )
    scales = get_pyramid_scales(s["fine_dim"], s["coarse_dim"], s["pyr_factor"])
    for i in range(samples):
        for name in SOURCES:
            key = f"{name}/{i}.png"
            if key in timings["seconds"] and (out / key).is_file():
                continue
            reference = load_image(str(sources_folder(root, size) / f"{name}.png"))
            if nn == "ivf":
                nn_module = FaissIVF(use_gpu=device != "cpu")
            else:
                nn_module = PytorchNNLowMemory(batch_size=s["nn_batch_size"], alpha=s["alpha"], use_gpu=device != "cpu")
            torch.manual_seed(seed + i)
            load = os.getloadavg()[0]
            start, cpu_start = time.perf_counter(), time.process_time()
            image = GPNN.generate(
                reference,
                nn_module,
                patch_size=s["patch_size"],
                stride=s["stride"],
                init_from=s["init_from"],
                pyramid_scales=scales,
                aspect_ratio=(1, 1),
                additive_noise_sigma=s["noise_sigma"],
                num_iters=s["num_iters"],
                initial_level_num_iters=s["initial_level_num_iters"],
                keys_blur_factor=s["keys_blur_factor"],
                device=torch.device("cuda:0" if device != "cpu" else "cpu"),
            )
            if device != "cpu":
                torch.cuda.synchronize()
            seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
            pixels = ((image[0].permute(1, 2, 0).cpu().numpy() + 1) / 2).clip(0, 1) * 255
            (out / name).mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.floor(pixels + 0.5).astype(np.uint8)).save(out / key)
            timings["seconds"][key] = round(seconds, 2)
            timings["cpu_seconds"][key] = round(cpu_seconds, 2)
            timings["load_1min"][key] = round(load, 2)
            timings_path.write_text(json.dumps(timings, indent=2) + "\n")
            print(f"{key} {seconds:.1f} s, CPU {cpu_seconds:.1f} s (load {load:.2f})", flush=True)


def read_outputs(folder: Path) -> np.ndarray:
    """The (N, H, W, C) uint8 outputs <folder>/<i>.png, in order of i."""
    paths = sorted(folder.glob("*.png"), key=lambda path: (len(path.stem), path.stem))
    if not paths:
        raise NpgenError(f"no outputs in {folder}")
    images = [read_png(path) for path in paths]
    if len({image.shape for image in images}) > 1:
        raise NpgenError(f"outputs in {folder} differ in size or channels")
    return np.stack(images)


def as_rgb(images: np.ndarray) -> np.ndarray:
    """Grey (..., 1) images repeated to three channels; RGB ones unchanged."""
    return np.repeat(images, 3, axis=-1) if images.shape[-1] == 1 else images


def metric_settings() -> dict:
    """The metric's parameters, recorded with every result (the functions' defaults)."""
    import inspect

    parameters = inspect.signature(patch_distance).parameters
    return {name: parameters[name].default for name in ("patch", "scales", "projections", "max_patches", "seed")}


TIMES = ("seconds", "cpu_seconds")  # wall clock, and the process's CPU time (all threads) when the runner gives it


def score_sets(
    root: Path,
    tool: str,
    sets: dict[str, np.ndarray],
    times: dict[str, dict[str, float]],
    run: dict,
    against: int | None = None,
) -> dict:
    """Score each source's set of outputs (all of one square size), print a line per source, save the result.

    The outputs are scored against the sources of their own size, or of size `against` (outputs larger than their
    sources: `single_npgen.py --set size=256x256` on the 128 sources). `times` maps each of TIMES to
    {"<name>/<i>.png": seconds}; each row gets the median per image of the source's, "mean" the median over every
    image."""
    sizes = {images.shape[1:3] for images in sets.values()}
    if len(sizes) > 1 or any(height != width for height, width in sizes):
        raise NpgenError(f"{tool}: outputs must be square and of one size, got {', '.join(map(str, sorted(sizes)))}")
    output_size = sizes.pop()[0]
    size = check_size(output_size if against is None else against)
    sources = load_sources(root, size)
    meta = json.loads((sources_folder(root, size) / "sources.json").read_text())["sources"]
    rows = {}
    for name, images in sets.items():
        images = as_rgb(images)
        row = {
            "samples": len(images),
            "patch_distance": round(patch_distance(images, sources[name]), 6),
            "diversity": round(diversity(images, sources[name]), 4) if len(images) > 1 else None,
        }
        for kind in TIMES:
            mine = [value for key, value in times.get(kind, {}).items() if key.split("/")[0] == name]
            if mine:
                row[f"{kind}_per_image"] = round(float(np.median(mine)), 1)
        rows[name] = row
        print(tool, name, json.dumps(row), flush=True)
    mean = {}
    for key in ("patch_distance", "diversity"):
        values = [row[key] for row in rows.values() if row[key] is not None]
        mean[key] = round(float(np.mean(values)), 6) if values else None
    for kind in TIMES:
        every = [value for key, value in times.get(kind, {}).items() if key.split("/")[0] in sets]
        if every:
            mean[f"{kind}_per_image"] = round(float(np.median(every)), 1)  # the median over every image, not a mean
    record = {
        "tool": tool,
        "size": size,
        **({} if output_size == size else {"output_size": output_size}),
        "metric": {"module": "npgen.evaluation.patches"} | metric_settings(),
        "sources": {name: meta[name] for name in sets},
        "rows": rows,
        "mean": mean,
        "run": run,
    }
    return save_result(f"single-image-{tool}", record)


def score_folder(root: Path, folder: Path, tool: str, against: int | None = None) -> None:
    """Score <folder>/<name>/*.png for every source found, with the timings of <folder>/timings.json, against the
    sources of the outputs' size or of size `against`."""
    timings_path = folder / "timings.json"
    run = json.loads(timings_path.read_text()) if timings_path.is_file() else {}
    times = {kind: run.pop(kind) for kind in TIMES if kind in run}
    sets = {name: read_outputs(folder / name) for name in SOURCES if (folder / name).is_dir()}
    if not sets:
        raise NpgenError(f"no outputs in {folder}: expected <name>/<i>.png for names {', '.join(SOURCES)}")
    score_sets(root, tool, sets, times, run, against)


def tile_shuffles(source: np.ndarray, tile: int, samples: int, seed: int) -> np.ndarray:
    """`samples` copies of the source cut into tile x tile squares and put back in a seeded random order."""
    rng = np.random.default_rng(seed)
    height, width, channels = source.shape
    rows, columns = height // tile, width // tile
    tiles = source[: rows * tile, : columns * tile].reshape(rows, tile, columns, tile, channels).swapaxes(1, 2)
    tiles = tiles.reshape(rows * columns, tile, tile, channels)
    out = []
    for _ in range(samples):
        shuffled = tiles[rng.permutation(len(tiles))].reshape(rows, columns, tile, tile, channels)
        out.append(shuffled.swapaxes(1, 2).reshape(rows * tile, columns * tile, channels))
    return np.stack(out)


def score_tiles(root: Path, size: int, samples: int, seed: int) -> None:
    """The sanity row: each source cut into 4 x 4 tiles (64x64 at 256) shuffled, `samples` times, scored."""
    tile = size // 4
    sets = {name: tile_shuffles(source, tile, samples, seed) for name, source in load_sources(root, size).items()}
    run = {"what": f"the source cut into {tile}x{tile} tiles, shuffled with numpy seed {seed}", "samples": samples}
    score_sets(root, "tiles" if size == SIZE else f"tiles-{size}", sets, {}, run)


def figure(root: Path, per_tool: int = 2, tile: int = 128, gap: int = 4) -> Path:
    """One row per source: the source, then up to `per_tool` outputs of each tool found under ROOT."""
    sources = load_sources(root)
    tools = [tool for tool in FIGURE_TOOLS if any((root / tool / name).is_dir() for name in SOURCES)]
    columns = [("source", None, None)] + [(f"{FIGURE_TOOLS[t]} {i}", t, i) for t in tools for i in range(per_tool)]
    header = 18
    width = len(columns) * (tile + gap) - gap
    canvas = Image.new("RGB", (width, header + len(SOURCES) * (tile + gap) - gap), "white")
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    for c, (title, _, _) in enumerate(columns):
        draw.text((c * (tile + gap) + 4, 3), title, fill="black", font=font)
    for r, name in enumerate(SOURCES):
        top = header + r * (tile + gap)
        for c, (_, tool, i) in enumerate(columns):
            path = root / tool / name / f"{i}.png" if tool else None
            if tool and not path.is_file():
                continue
            array = sources[name] if tool is None else as_rgb(read_png(path))
            picture = Image.fromarray(array).resize((tile, tile), Image.Resampling.LANCZOS)
            canvas.paste(picture, (c * (tile + gap), top))
        draw.rectangle((0, top + tile - 14, 6 * len(name) + 6, top + tile), fill="black")
        draw.text((3, top + tile - 13), name, fill="white", font=font)
    FIGURES.mkdir(exist_ok=True)
    path = FIGURES / "single-image.png"
    canvas.save(path, optimize=True)
    print(path, f"{path.stat().st_size / 1e6:.2f} MB", flush=True)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=default_root(), help="sources and outputs (outside git)")
    parser.add_argument("--prepare", action="store_true", help="write the sources to ROOT/sources/")
    parser.add_argument("--gpnn", type=Path, metavar="CHECKOUT", help="run Efficient-GPNN from its checkout")
    parser.add_argument("--peer-commit", help="the GPNN checkout's commit, when it is not a git work tree")
    parser.add_argument("--size", type=int, default=SIZE, help="output size, 256 or a divisor (--prepare, --gpnn)")
    parser.add_argument("--device", default="cpu", help="cpu, or cuda for GPNN on a GPU")
    parser.add_argument(
        "--gpnn-nn", choices=["exact", "ivf"], default="exact", help="GPNN's exact search, or its Faiss-IVF (--gpnn)"
    )
    parser.add_argument("--samples", type=int, default=4, help="outputs per source (--gpnn, --score-tiles)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--score", type=Path, metavar="DIR", help="score DIR/<name>/*.png against the sources")
    parser.add_argument("--tool", help="the tool's name in the result file (with --score)")
    parser.add_argument(
        "--against", type=int, help="score against the sources of this size, not the outputs' own (with --score)"
    )
    parser.add_argument("--score-tiles", action="store_true", help="score the shuffled-tiles sanity row")
    parser.add_argument("--figure", action="store_true", help="write benchmarks/figures/single-image.png")
    args = parser.parse_args()
    if args.score and not args.tool:
        parser.error("--score needs --tool NAME")
    try:
        size = check_size(args.size)
        if args.prepare:
            prepare(args.root, size)
        if args.gpnn:
            run_gpnn(args.root, args.gpnn, size, args.samples, args.seed, args.device, args.peer_commit, args.gpnn_nn)
        if args.score:
            score_folder(args.root, args.score, args.tool, args.against)
        if args.score_tiles:
            score_tiles(args.root, size, args.samples, args.seed)
        if args.figure:
            figure(args.root)
    except NpgenError as error:
        sys.exit(f"error: {error}")


if __name__ == "__main__":
    main()
