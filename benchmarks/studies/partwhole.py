"""Part-whole study: how part size, number of sources and novelty move with h, K, eps, k_min, the budget and the radius.

    python benchmarks/studies/partwhole.py                 # MNIST and CIFAR-10, 200 class-conditional samples per setting
    python benchmarks/studies/partwhole.py --per-class 50  # 500 per setting

One setting changes at a time from each dataset's preset (datasets/<name>.json). Every setting samples the same
sample indices and classes with the same seed. Composition comes from `npgen.analysis.tracer.compose` on
the provenance, novelty from FAISS exact search. Results: benchmarks/results/partwhole.json and
benchmarks/figures/partwhole-<dataset>.png
(`--plot-only` redraws the figures from the JSON).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: record.py
from record import FIGURES, RESULTS, run_script, save_result

from npgen.analysis.charts import line_chart
from npgen.analysis.composition import compose
from npgen.api import resolve_params
from npgen.data.database import Database, default_path
from npgen.data.datasets import load_dataset, preset
from npgen.data.index import build_image_index, search
from npgen.evaluation.metrics import knn_votes, near_copy_threshold
from npgen.params import BUILD_PARAMS
from npgen.rule.provenance import Samples
from npgen.rule.sampler import Sampler

SWEEP = {
    "half_window": [1, 2, 3, 5],
    "pool_size": [30, 50, 100, 300],
    "eps": [0.0, 0.1, 0.5, 2.0],
    "k_min": [1, 2, 4, 8],
    "max_source_share": [0.05, 0.1, 0.2, 0.5],
    "radius": [0, 1, 2],
}


def settings(train):
    """(parameter varied, value, window params, sampler options), the preset changed in one parameter."""
    for name, values in SWEEP.items():
        for value in values:
            window, options = resolve_params(
                train, *(({name: value}, {}) if name in BUILD_PARAMS else ({}, {name: value}))
            )
            yield name, value, window, options


def measure(train, samples: Samples, db: Database, threshold: float) -> dict:
    composition = compose(
        samples.src_image,
        samples.src_y,
        samples.src_x,
        samples.n_candidates,
        train.labels,
        requested_class=None,
        n_train=train.n_images,
    )
    per_sample = {name: composition.per_sample.column(name).to_numpy() for name in composition.per_sample.column_names}
    nearest = search(db.nearest_index(), samples.images, 1)[0][:, 0]
    votes = knn_votes(db.nearest_index(), train.labels, samples.images, train.n_classes)
    return {
        "median_parts": float(np.median(per_sample["n_parts"])),
        "median_mean_part_size": float(np.median(per_sample["mean_part_size"])),
        "median_share_in_parts_ge_4": float(np.median(per_sample["share_in_parts_ge_s"])),
        "median_informative_parts": float(np.median(per_sample["n_parts_informative"])),
        "median_informative_share_in_parts_ge_4": float(np.nanmedian(per_sample["share_in_parts_ge_s_informative"])),
        "median_informative_share": float(np.median(per_sample["informative_share"])),
        "median_sources": float(np.median(per_sample["n_sources"])),
        "median_coverage_top1": float(np.nanmedian(per_sample["coverage_top1"])),
        "median_nearest_distance": float(np.median(nearest)),
        "near_copy_rate": float((nearest < threshold).mean()),
        "requested_class_accuracy": float((votes.argmax(1) == samples.class_label).mean()),
    }


def plot(rows: list[dict], dataset: str):
    """One chart per varied parameter: part size, source concentration and novelty against its value."""
    panels = []
    for name in SWEEP:
        chosen = [row for row in rows if row["dataset"] == dataset and row["varied"] == name]
        xs = [row["value"] for row in chosen]
        series = {
            "informative px in parts >= 4": [row["median_informative_share_in_parts_ge_4"] for row in chosen],
            "top source's share": [row["median_coverage_top1"] for row in chosen],
            "near-copy rate": [row["near_copy_rate"] for row in chosen],
        }
        panels.append(
            line_chart(
                xs,
                series,
                f"{dataset}: varying {name}",
                name,
                "share (median over samples)",
                width=520,
                height=340,
                y_range=(0.0, 1.0),
                log_x=name == "pool_size",
            )
        )
    figure = Image.new("RGB", (2 * panels[0].width, -(-len(panels) // 2) * panels[0].height), "white")
    for i, panel in enumerate(panels):
        figure.paste(panel, ((i % 2) * panel.width, (i // 2) * panel.height))
    return figure


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["mnist", "cifar10"])
    parser.add_argument("--per-class", type=int, default=20)
    parser.add_argument("--data-root", default=None)
    parser.add_argument(
        "--plot-only", action="store_true", help="Redraw the figures from benchmarks/results/partwhole.json."
    )
    args = parser.parse_args()
    if args.plot_only:
        rows = json.loads((RESULTS / "partwhole.json").read_text())["rows"]
        for dataset in args.datasets:
            plot(rows, dataset).save(FIGURES / f"partwhole-{dataset}.png")
        return
    rows = []
    for dataset in args.datasets:
        train = load_dataset(dataset, data_root=args.data_root)
        threshold = near_copy_threshold(
            build_image_index(train.images), load_dataset(dataset, split="test", data_root=args.data_root).images
        )
        for name, value, window, options in settings(train):
            db = Database.open_or_build(train, default_path(train, window), window)
            sampler = Sampler(db, **{**options, "seed": 0})
            samples = Samples.concatenate(
                [sampler.sample(args.per_class, class_label=c) for c in range(train.n_classes)]
            )
            row = {"dataset": dataset, "varied": name, "value": value, **measure(train, samples, db, threshold)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    presets = {dataset: preset(load_dataset(dataset, data_root=args.data_root)) for dataset in args.datasets}
    save_result("partwhole", {"per_class": args.per_class, "rows": rows, "presets": presets})
    for dataset in args.datasets:
        plot(rows, dataset).save(FIGURES / f"partwhole-{dataset}.png")


if __name__ == "__main__":
    run_script(main)
