"""npgen against a DDPM trained here, and the ablation of npgen's three principles, on the same metrics.

    python benchmarks/quality/classifier.py mnist                  # the feature space (once)
    python benchmarks/quality/ddpm.py train mnist --minutes 20     # the neural baseline (once)
    python benchmarks/quality/ddpm.py sample mnist --n 1000 --class-conditional
    python benchmarks/quality/ddpm.py sample mnist --n 1000 --unconditional
    python benchmarks/quality/ddpm.py time mnist --device cpu         # its sampling cost here, if sampled on a GPU
    python benchmarks/quality/ddpm.py time mnist --device cpu --unconditional
    python benchmarks/quality/evaluate.py mnist                    # everything below; likewise cifar10

Methods, each scored by `npgen.evaluation.scores.evaluate_images` against the same reference:
- the training set itself (random training images: the floor at that sample size);
- npgen class-conditional (100 per class) and unconditional, sampled by real `npgen sample` runs
  (in child processes, so their peak memory is measured);
- the DDPM, class-conditional and unconditional, if `benchmarks/quality/ddpm.py` has sampled it;
- ablations, 100 per class like the full method: npgen class-conditional with position locality
  relaxed (radius 5) and turned off (radius = image side: any position of a pool image), with
  semantic retrieval off (every image of the class is a candidate), and without class conditioning
  (the unconditional run).

npgen runs are kept under benchmarks/runs/evaluate-<dataset>/ and reused when complete, so an
interrupted benchmark resumes. Scores go to benchmarks/results/evaluate-<dataset>.json and the
side-by-side figure to benchmarks/figures/npgen-vs-ddpm-<dataset>.png.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: record.py
from record import FIGURES, RUNS, machine, save_result

from npgen.data.datasets import load_dataset
from npgen.data.files import cache_root
from npgen.evaluation.features import classifier_path, load_classifier
from npgen.evaluation.scores import Reference, evaluate_images
from npgen.runs.png import image_grid, save_png
from npgen.runs.run import Run

REPO = Path(__file__).resolve().parents[2]
ABLATION_PER_CLASS = 100
LOCALITY_RADIUS = 5


def cli_options(change: dict) -> list[str]:
    """`npgen sample` options for the changes from the dataset's preset (the preset itself needs none)."""
    return [part for name, value in change.items() for part in (f"--{name.replace('_', '-')}", str(value))]


def npgen_run(out: Path, dataset: str, n: int, class_label: int | None, options: list[str], data_root) -> dict:
    """A real `npgen sample` run in a child process (reused if complete); its images, timings and peak memory."""
    cost_file = out / "cost.json"
    if not cost_file.is_file():
        command = [
            sys.executable,
            "-m",
            "npgen",
            "sample",
            "--dataset",
            dataset,
            "-n",
            str(n),
            "--out",
            str(out),
            *options,
        ]
        command += [] if class_label is None else ["--class", str(class_label)]
        command += [] if data_root is None else ["--data-root", str(data_root)]
        if out.exists():
            command.append("--resume")
        child = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        _, status, usage = os.wait4(child.pid, 0)
        if status != 0:
            sys.exit(f"error: {' '.join(command)} failed; see its message above")
        cost = {"peak_rss_mb": usage.ru_maxrss / 1024, "command": " ".join(["npgen", *command[3:]])}
        cost_file.write_text(json.dumps(cost))
    run = Run(out)
    cost = json.loads(cost_file.read_text())
    cost["command"] = cost["command"].replace(f"{REPO}/", "")  # paths from the repository root
    return {"images": np.asarray(run.samples), "seconds": run.manifest["timings"]["sample_seconds"], **cost}


def npgen_method(
    dataset: str, name: str, per_class: int | None, n_unconditional: int | None, change: dict, data_root
) -> dict:
    """Class-conditional runs (per_class per class) or one unconditional run, merged into one sample set."""
    root = RUNS / f"evaluate-{dataset}" / name
    classes = [None] if per_class is None else range(10)
    runs = [
        npgen_run(
            root / ("all" if c is None else f"class-{c}"),
            dataset,
            per_class or n_unconditional,
            c,
            cli_options(change),
            data_root,
        )
        for c in classes
    ]
    images = np.concatenate([r["images"] for r in runs])
    labels = np.repeat(np.arange(10), per_class) if per_class else np.full(len(images), -1)
    return {
        "images": images,
        "labels": labels,
        "sample_seconds_per_image": sum(r["seconds"] for r in runs) / len(images),
        "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
        "command": runs[0]["command"] + (" (one run per class)" if per_class else ""),
    }


def first_per_class(method: dict, per_class: int) -> dict:
    """The first `per_class` samples of each class: exactly what a smaller run with the same seed gives."""
    keep = np.concatenate([np.flatnonzero(method["labels"] == c)[:per_class] for c in range(10)])
    return {**method, "images": method["images"][keep], "labels": method["labels"][keep]}


def build_seconds(dataset: str, data_root) -> float:
    """Median wall time of 3 `npgen build` runs (load and checksum the data, write the database): npgen's 'training'."""
    db = cache_root() / "evaluate-build" / dataset
    command = [sys.executable, "-m", "npgen", "build", "--dataset", dataset, "--db", str(db), "--force"]
    command += [] if data_root is None else ["--data-root", str(data_root)]
    seconds = []
    for _ in range(3):
        started = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        seconds.append(time.perf_counter() - started)
    return float(np.median(seconds))


def ddpm_method(dataset: str, mode: str) -> dict | None:
    """The DDPM's samples; its sampling cost from `ddpm.py time` on this machine when they were made elsewhere."""
    folder = cache_root() / "ddpm" / dataset
    try:
        samples = np.load(folder / f"samples-{mode}.npz")
        info = json.loads((folder / f"samples-{mode}.json").read_text())
    except OSError:
        print(f"no DDPM {mode} samples in {folder}: run benchmarks/quality/ddpm.py first; skipping", file=sys.stderr)
        return None
    timing, here = info, folder / f"timing-{mode}-cpu.json"
    if here.is_file():
        timing = json.loads(here.read_text())
    elif info["device"] != machine():
        print(
            f"no {here}: the sampling cost shown is {info['device']}'s; run `ddpm.py time {dataset} --device cpu`"
            f"{' --unconditional' if mode == 'unconditional' else ''} for this machine's",
            file=sys.stderr,
        )
    return {
        "images": samples["images"],
        "labels": samples["labels"],
        "train_seconds": info["training_seconds"],
        "train_device": ", ".join(info["training_devices"]),
        "train_images": info["train_images"],
        "training_steps": info["training_steps"],
        "n_parameters": info["n_parameters"],
        "sample_seconds_per_image": timing["seconds_per_image"],
        "sample_device": timing["device"],
        "peak_rss_mb": timing["peak_memory_mb"],
        "command": info["command"],
        **({"timing_command": timing["command"]} if timing is not info else {}),
        "samples_made_on": {
            "device": info["device"],
            "seconds_per_image": info["seconds_per_image"],
            "peak_memory_mb": info["peak_memory_mb"],
            "peak_memory": info["peak_memory"],
        },
    }


def labelled(picture: Image.Image, title: str) -> Image.Image:
    canvas = Image.new("RGB", (picture.width, picture.height + 18), "white")
    canvas.paste(picture.convert("RGB"), (0, 18))
    ImageDraw.Draw(canvas).text((4, 3), title, fill="black")
    return canvas


def side_by_side(panels: list[tuple[str, np.ndarray]], path: Path) -> None:
    """Grids of ten samples per class (one class per row), next to each other with titles."""
    pictures = [labelled(image_grid(images, columns=10), title) for title, images in panels]
    figure = Image.new(
        "RGB", (sum(p.width for p in pictures) + 12 * (len(pictures) - 1), max(p.height for p in pictures)), "white"
    )
    x = 0
    for picture in pictures:
        figure.paste(picture, (x, 0))
        x += picture.width + 12
    save_png(figure, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", choices=["mnist", "cifar10"])
    parser.add_argument("--data-root", default=None)
    parser.add_argument(
        "--ablation-per-class",
        type=int,
        default=ABLATION_PER_CLASS,
        help="samples per class of each principle's ablation (locality off costs ~1,000x per sample)",
    )
    args = parser.parse_args()
    train = load_dataset(args.dataset, data_root=args.data_root)
    test = load_dataset(args.dataset, split="test", data_root=args.data_root)
    classifier = load_classifier(classifier_path(args.dataset), train)
    reference = Reference(train, test, classifier)
    say = lambda text: print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)  # noqa: E731

    say("npgen runs")
    conditional = npgen_method(args.dataset, "conditional", 100, None, {}, args.data_root)
    unconditional = npgen_method(args.dataset, "unconditional", None, 1000, {}, args.data_root)
    build = build_seconds(args.dataset, args.data_root)
    for method in (conditional, unconditional):
        method["train_seconds"] = build
    methods = {"training set": None, "npgen class-conditional": conditional, "npgen unconditional": unconditional}
    for mode in ("conditional", "unconditional"):
        ddpm = ddpm_method(args.dataset, mode)
        if ddpm is not None:
            methods[f"DDPM {'class-conditional' if mode == 'conditional' else 'unconditional'}"] = ddpm
    say("ablation runs")
    per = args.ablation_per_class
    side = max(train.height, train.width)
    ablations = {
        "training set": None,
        "npgen class-conditional (all three principles)": first_per_class(conditional, per),
        f"- position locality, relaxed (radius {LOCALITY_RADIUS})": npgen_method(
            args.dataset, f"radius{LOCALITY_RADIUS}", per, None, {"radius": LOCALITY_RADIUS}, args.data_root
        ),
        f"- position locality, off (radius {side})": npgen_method(
            args.dataset, "locality-off", per, None, {"radius": side}, args.data_root
        ),
        "- semantic retrieval (pool off)": npgen_method(
            args.dataset, "pool-off", per, None, {"pool_size": 0}, args.data_root
        ),
        "- class conditioning (unconditional)": {
            **unconditional,
            "images": unconditional["images"][: 10 * per],
            "labels": unconditional["labels"][: 10 * per],
        },
    }

    record = {"dataset": args.dataset, "classifier_test_accuracy": classifier.test_accuracy, "tables": {}}
    for table, entries in (("comparison", methods), ("ablation", ablations)):
        rows = {}
        for name, method in entries.items():
            say(f"scoring {table}: {name}")
            if method is None:
                n = 1000 if table == "comparison" else 10 * per
                rows[name] = {"scores": reference.floor(n)}
                continue
            rows[name] = {
                "scores": evaluate_images(method["images"], method["labels"], reference),
                **{key: value for key, value in method.items() if key not in ("images", "labels")},
            }
        record["tables"][table] = rows
    save_result(f"evaluate-{args.dataset}", record)

    panels = [("npgen class-conditional", first_per_class(conditional, 10)["images"])]
    if "DDPM class-conditional" in methods:
        panels.append(("DDPM class-conditional", first_per_class(methods["DDPM class-conditional"], 10)["images"]))
    side_by_side(panels, FIGURES / f"npgen-vs-ddpm-{args.dataset}.png")
    say(f"wrote benchmarks/results/evaluate-{args.dataset}.json")


if __name__ == "__main__":
    main()
