"""What the data-rights controls cost and give: exclusion throughput, and completion of held-out images.

    python benchmarks/studies/controls.py exclusion              # sampler images/s, no exclusion vs 10 % of the split excluded
    python benchmarks/studies/controls.py completion mnist       # complete the bottom half of 1,000 test images, 2 each
    python benchmarks/studies/controls.py completion cifar10
    python benchmarks/studies/controls.py completion mnist --levels 1   # the same at one pyramid level
    python benchmarks/studies/controls.py completion mnist --hole --levels 2 --coarse-weight 1   # a central hole
    python benchmarks/studies/controls.py figures                # README figures: completions and steered samples

exclusion: class-conditional `Sampler.sample` throughput (200 images: classes 3 and 8, 100 each) with the
dataset's preset, with and without a random 10 % of the training split excluded (seeded), the two
measured alternately `--repeats` times each in one process after a warm-up; medians and their ratio.

completion: for the first `--inputs` test images, the top half is given and the bottom half generated
(`npgen complete --mask top -n 2`, the preset, no class given; `--levels L` and `--coarse-weight w` set the
pyramid, `--hole` generates the central square of half the side instead, a hole with given pixels on every side;
every run is checked by `npgen verify`). Scored with the project's classifier
(benchmarks/quality/classifier.py): how often a completion is classified as the original's class, against the
original images themselves and the top halves alone (bottom half blank) as references; the distance
of the generated half to the original's (L2, pixel units); and the diversity, the L2 distance between
the two completions of one input on the generated half. Results: benchmarks/results/controls-*.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: record.py
from record import FIGURES, run_script, save_result


def exclusion(repeats: int) -> dict:
    from npgen.api import build_database, resolve_params
    from npgen.data.datasets import load_dataset
    from npgen.rule.sampler import Sampler

    out = {}
    for name in ("mnist", "cifar10"):
        data = load_dataset(name)
        db, _ = build_database(name)
        _, options = resolve_params(data)
        excluded = np.random.default_rng(0).choice(data.n_images, data.n_images // 10, replace=False)
        samplers = {"none": Sampler(db, **options), "10%": Sampler(db, **options, excluded=excluded)}
        for sampler in samplers.values():
            sampler.sample(2, class_label=0)  # compile or load the kernels
        seconds = {key: [] for key in samplers}
        for _ in range(repeats):
            for key, sampler in samplers.items():
                started = time.perf_counter()
                for class_label in (3, 8):
                    sampler.sample(100, class_label=class_label)
                seconds[key].append(time.perf_counter() - started)
        rate = {key: 200 / float(np.median(s)) for key, s in seconds.items()}
        out[name] = {
            "excluded_images": len(excluded),
            "images_per_second": rate,
            "all_seconds": {key: [round(s, 3) for s in v] for key, v in seconds.items()},
            "throughput_ratio": rate["10%"] / rate["none"],
        }
        print(name, out[name], flush=True)
    return out


def completion(name: str, n_inputs: int, levels: int | None = None, hole: bool = False, coarse_weight=None) -> dict:
    from npgen.api import complete_run, verify_run
    from npgen.data.datasets import load_dataset
    from npgen.evaluation import features

    train, test = load_dataset(name), load_dataset(name, split="test")
    classifier = features.load_classifier(features.classifier_path(name), train)
    originals, labels = test.images[:n_inputs], test.labels[:n_inputs]
    known = np.zeros((test.height, test.width), bool)
    known[: test.height // 2] = True  # --mask top
    if hole:  # everything but the central square of half the side
        known[:] = True
        known[test.height // 4 : 3 * test.height // 4, test.width // 4 : 3 * test.width // 4] = False
    with tempfile.TemporaryDirectory() as scratch:
        mask = "top"
        if hole:
            mask = str(Path(scratch) / "hole.png")
            Image.fromarray(known.astype(np.uint8) * 255).save(mask)
        started = time.perf_counter()
        options = {} if levels is None else {"levels": levels}
        if coarse_weight is not None:
            options["coarse_weight"] = coarse_weight
        run = complete_run(
            Path(scratch) / "run",
            name,
            mask,
            per_input=2,
            test_indices=list(range(n_inputs)),
            sampler_options=options,
        )
        seconds = time.perf_counter() - started
        completions = np.load(run / "samples.npy")
        report = verify_run(run)
        params = json.loads((run / "manifest.json").read_text())["params"]
    given_only = originals.copy()
    given_only[:, ~known] = 0
    predicted = classifier.probabilities(completions).argmax(axis=1)
    generated = completions[:, ~known].reshape(len(completions), -1).astype(np.float64)
    truth = np.repeat(originals[:, ~known].reshape(n_inputs, -1).astype(np.float64), 2, axis=0)
    to_original = np.sqrt(((generated - truth) ** 2).sum(axis=1))
    diversity = np.sqrt(((generated[0::2] - generated[1::2]) ** 2).sum(axis=1))
    result = {
        "mask": "central hole" if hole else "top",
        "levels": params["levels"],
        "coarse_weight": params["coarse_weight"],
        "verify_ok": report.ok,
        "inputs": n_inputs,
        "completions": len(completions),
        "seconds": round(seconds, 1),
        "original_class_recognised": float((predicted == np.repeat(labels, 2)).mean()),
        "reference_original_images": float((classifier.probabilities(originals).argmax(axis=1) == labels).mean()),
        "reference_top_half_only": float((classifier.probabilities(given_only).argmax(axis=1) == labels).mean()),
        "distance_to_original_median": float(np.median(to_original)),
        "diversity_median": float(np.median(diversity)),
        "identical_pairs": float((diversity == 0).mean()),
    }
    print(name, result, flush=True)
    return result


def figures() -> None:
    """benchmarks/figures/completion-{mnist,cifar10}.png and steering-{mnist,cifar10}.png, with the presets."""
    from npgen.api import complete_run, sample_run
    from npgen.data.datasets import load_dataset
    from npgen.runs.png import image_grid

    steering = {
        "mnist": ["top=7,bottom=1", "left=0,right=1", "top=4,bottom=9"],
        "cifar10": ["top=airplane,bottom=ship", "top=horse,bottom=truck", "left=cat,right=automobile"],
    }
    with tempfile.TemporaryDirectory() as scratch:
        for name in ("mnist", "cifar10"):
            test = load_dataset(name, split="test")
            run = complete_run(Path(scratch) / f"c-{name}", name, "top", per_input=4, test_indices=list(range(8)))
            completions = np.load(run / "samples.npy").reshape(8, 4, *test.images.shape[1:])
            top_only = test.images[:8].copy()
            top_only[:, test.height // 2 :] = 0
            rows = np.concatenate([test.images[:8, None], top_only[:, None], completions], axis=1)
            image_grid(rows.reshape(-1, *rows.shape[2:]), columns=6, scale=3).save(FIGURES / f"completion-{name}.png")
            steered = [
                np.load(sample_run(Path(scratch) / f"s-{name}-{i}", name, 6, class_map=spec) / "samples.npy")
                for i, spec in enumerate(steering[name])
            ]
            image_grid(np.concatenate(steered), columns=6, scale=3).save(FIGURES / f"steering-{name}.png")
            print(name, "figures written", flush=True)
        save_result("controls-exclusion-figure", exclusion_figure(Path(scratch), FIGURES / "exclusion-cifar10.png"))


def exclusion_figure(scratch: Path, path: Path) -> dict:
    """Six CIFAR-10 horses, then the same six samples (same seed) with the training image that gave them the
    most pixels, and its near-duplicates within distance 1,500, excluded; the image's pixels tinted red."""
    import pyarrow.parquet as pq

    from npgen.api import sample_run, verify_run
    from npgen.data.datasets import load_dataset
    from npgen.runs.png import image_grid

    train = load_dataset("cifar10")
    before = sample_run(scratch / "x-before", "cifar10", 6, "horse")
    table = pq.read_table(before / "provenance", columns=["sample", "y", "x", "src_image"])
    src = table.column("src_image").to_numpy()
    contested = int(np.bincount(src).argmax())
    spec = f"near:1500:{contested}"
    after = sample_run(scratch / "x-after", "cifar10", 6, "horse", exclude=[spec])
    tinted = np.load(before / "samples.npy").astype(np.float64)
    used = src == contested
    rows = (
        table.column("sample").to_numpy()[used],
        table.column("y").to_numpy()[used],
        table.column("x").to_numpy()[used],
    )
    tinted[rows] = 0.4 * tinted[rows] + 0.6 * np.array([255.0, 0.0, 0.0])
    blank = np.full((1, *train.images.shape[1:]), 128, np.uint8)
    picture = np.concatenate(
        [train.images[contested][None], tinted.astype(np.uint8), blank, np.load(after / "samples.npy")]
    )
    image_grid(picture, columns=7, scale=3).save(path)
    report = verify_run(after)
    return {
        "contested_image": contested,
        "pixels_before": int(used.sum()),
        "exclude": spec,
        "excluded_images": report.n_excluded_images,
        "excluded_pixels_after": report.excluded_pixels,
        "verify_ok": report.ok,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("exclusion", "completion", "figures"))
    parser.add_argument("dataset", nargs="?", choices=("mnist", "cifar10"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--inputs", type=int, default=1000)
    parser.add_argument("--levels", type=int, help="pyramid levels of the completions (default: the preset's)")
    parser.add_argument("--coarse-weight", type=float, help="with --levels > 1: the coarse term's weight")
    parser.add_argument("--hole", action="store_true", help="generate a central square of half the side, not a half")
    args = parser.parse_args()
    if args.what == "figures":
        figures()
    elif args.what == "exclusion":
        save_result("controls-exclusion", {"results": exclusion(args.repeats), "repeats": args.repeats})
    else:
        if args.dataset is None:
            parser.error("completion needs a dataset: mnist or cifar10")
        suffix = ("-hole" if args.hole else "") + ("" if args.levels is None else f"-levels{args.levels}")
        suffix += "" if args.coarse_weight is None else f"-coarse{args.coarse_weight:g}"
        result = completion(args.dataset, args.inputs, args.levels, args.hole, args.coarse_weight)
        save_result(f"controls-completion-{args.dataset}{suffix}", result)


if __name__ == "__main__":
    run_script(main)
