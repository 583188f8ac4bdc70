"""The rule that bounds copying, measured: k_min against the source budget, budget size, window size.

    python benchmarks/quality/ablation.py cifar10                 # every setting below, 50 per class
    python benchmarks/quality/ablation.py mnist --per-class 50
    python benchmarks/quality/ablation.py cifar10 --only h1 h5     # some settings only (name prefixes)

Every setting gives the studied parameters (window h, retrieval block, k_min, source budget) in
absolute values; the rest are the dataset's preset (datasets/<name>.json). It samples
`--per-class` class-conditional images of each class with real `npgen.api.sample_run` runs (kept
under benchmarks/runs/ablation-<dataset>/ and reused when complete), checks each run with
`npgen verify`, and scores the images with `npgen.evaluation.scores` in the features of the project's
classifier (`benchmarks/quality/classifier.py`): FID, precision/recall, requested-class accuracy, near-copies
and the largest share of a sample taken from one training image. Results go to
benchmarks/results/ablation-<dataset>-<samples per setting>.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: record.py
from record import RESULTS, RUNS, save_result

from npgen import api
from npgen.data.datasets import load_dataset
from npgen.errors import NpgenError
from npgen.evaluation.features import classifier_path, load_classifier
from npgen.evaluation.scores import Reference, evaluate_images
from npgen.runs.run import Run

RULE = ("half_window", "retrieval_block", "k_min", "max_source_share", "retrieval")
WINDOW = ("half_window", "retrieval_block", "retrieval")


def setting(h: int, block: int, k_min: int, share: float, retrieval: str = "blocks", **others) -> dict:
    """A setting in absolute values of the parameters under study (the radius 0 unless given: every row before the
    radius was studied ran at 0); everything else is the dataset's preset."""
    return {**dict(zip(RULE, (h, block, k_min, share, retrieval))), "radius": 0, **others}


SETTINGS = {  # name: the parameters under study (absolute, so a row means the same whatever the preset)
    name: setting(*values[:5], **(values[5] if len(values) > 5 else {}))
    for name, values in {
        "h3 k1 no budget (plain Efros-Leung)": (3, 1, 1, 1.0),
        "h3 k2 no budget": (3, 1, 2, 1.0),
        "h3 k4 no budget": (3, 1, 4, 1.0),
        "h3 k1 budget 5%": (3, 1, 1, 0.05),
        "h3 k1 budget 10%": (3, 1, 1, 0.1),
        "h3 k1 budget 20%": (3, 1, 1, 0.2),
        "h3 k2 budget 5%": (3, 1, 2, 0.05),
        "h3 k2 budget 10%": (3, 1, 2, 0.1),
        "h3 k3 budget 10%": (3, 1, 3, 0.1),
        "h1 k1 budget 10%": (1, 1, 1, 0.1),
        "h5 k1 budget 10%": (5, 1, 1, 0.1),
        "cifar: h1 b4 k2 no budget (previous CIFAR-10 settings)": (1, 4, 2, 1.0),
        "cifar: h3 b4 k1 no budget (plain Efros-Leung)": (3, 4, 1, 1.0),
        "cifar: h3 b4 k2 no budget": (3, 4, 2, 1.0),
        "cifar: h3 b4 k1 budget 5%": (3, 4, 1, 0.05),
        "cifar: h3 b4 k1 budget 10%": (3, 4, 1, 0.1),
        "cifar: h3 b4 k1 budget 20%": (3, 4, 1, 0.2),
        "cifar: h3 b4 k1 budget 30%": (3, 4, 1, 0.3),
        "cifar: h3 b4 k1 budget 50%": (3, 4, 1, 0.5),
        "cifar: h3 b4 k1 budget 20%, pool 50": (3, 4, 1, 0.2, "blocks", {"pool_size": 50}),
        "cifar: h3 b4 k1 budget 20%, pool 200": (3, 4, 1, 0.2, "blocks", {"pool_size": 200}),
        "cifar: h3 b4 k1 budget 20%, eps 0": (3, 4, 1, 0.2, "blocks", {"eps": 0.0}),
        "cifar: h3 b4 k1 budget 30%, pool 50": (3, 4, 1, 0.3, "blocks", {"pool_size": 50}),
        "cifar: h3 b4 k1 budget 30%, pool 30": (3, 4, 1, 0.3, "blocks", {"pool_size": 30}),
        "cifar: h3 b4 k1 budget 40%": (3, 4, 1, 0.4),
        "cifar: h3 b4 k1 budget 40%, pool 50": (3, 4, 1, 0.4, "blocks", {"pool_size": 50}),
        "cifar: h3 b4 k1 budget 20%, pool 30": (3, 4, 1, 0.2, "blocks", {"pool_size": 30}),
        "cifar: h3 b4 k1 budget 40%, pool 50, eps 0.5": (3, 4, 1, 0.4, "blocks", {"pool_size": 50, "eps": 0.5}),
        "cifar: h3 b4 k1 budget 40%, pool 50, eps 1": (3, 4, 1, 0.4, "blocks", {"pool_size": 50, "eps": 1.0}),
        "cifar: h3 b4 k1 budget 40%, pool 50, abs-tol 30": (3, 4, 1, 0.4, "blocks", {"pool_size": 50, "abs_tol": 30.0}),
        "cifar: h3 b4 k1 budget 50%, eps 0.5": (3, 4, 1, 0.5, "blocks", {"eps": 0.5}),
        "cifar: h3 b4 k1 budget 25%, pool 50": (3, 4, 1, 0.25, "blocks", {"pool_size": 50}),
        "cifar: h3 b4 k1 budget 25%, pool 50, abs-tol 30": (
            3,
            4,
            1,
            0.25,
            "blocks",
            {"pool_size": 50, "abs_tol": 30.0},
        ),
        **{
            f"cifar: h3 b4 k1 budget {share:.0%}, pool 50, radius {radius}": (
                3,
                4,
                1,
                share,
                "blocks",
                {"pool_size": 50, "radius": radius},
            )
            for share, radius in ((0.2, 1), (0.25, 1), (0.3, 1), (0.35, 1), (0.4, 1), (0.3, 2))
        },
        **{  # the per-pixel semantic filter against the pool alone, in both representations, at the preset
            f"cifar: h3 b4 k1 budget 30%, pool 50, radius 1, {name}": (
                3,
                4,
                1,
                0.3,
                retrieval,
                {"pool_size": 50, "radius": 1, **filter_},
            )
            for name, retrieval, filter_ in (
                ("semantic filter eps 0.5", "blocks", {"semantic_eps": 0.5}),
                ("semantic filter eps 1", "blocks", {"semantic_eps": 1.0}),
                ("semantic filter eps 2", "blocks", {"semantic_eps": 2.0}),
                ("semantic filter eps 1, context 4", "blocks", {"semantic_eps": 1.0, "semantic_context": 4}),
                ("learned patch codes", "codes", {}),
                ("learned patch codes, semantic filter eps 1", "codes", {"semantic_eps": 1.0}),
            )
        },
        "cifar: h2 b4 k1 budget 20%": (2, 4, 1, 0.2),
        "cifar: h3 b4 k2 budget 10%": (3, 4, 2, 0.1),
        "cifar: h1 b4 k1 budget 10%": (1, 4, 1, 0.1),
        "cifar: h5 b4 k1 budget 10%": (5, 4, 1, 0.1),
        "cifar: h3 b1 k1 budget 10% (raw-pixel retrieval)": (3, 1, 1, 0.1),
        "cifar: h3 b4 k1 budget 10%, learned patch codes": (3, 4, 1, 0.1, "codes"),
        "cifar: h3 b4 k1 no budget, learned patch codes": (3, 4, 1, 1.0, "codes"),
        "cifar: h3 b4 k2 budget 10%, learned patch codes": (3, 4, 2, 0.1, "codes"),
        "h3 b4 k2 budget 10%, learned patch codes": (3, 4, 2, 0.1, "codes"),
    }.items()
}


def run_setting(
    dataset: str, name: str, per_class: int, data_root, settings: dict = SETTINGS, study: str = "ablation"
) -> tuple[np.ndarray, np.ndarray, dict]:
    """(images, requested classes, run facts) of one setting of `settings`: one run per class (kept under
    benchmarks/runs/<study>-<dataset>/), verified."""
    window = {k: v for k, v in settings[name].items() if k in WINDOW}
    options = {k: v for k, v in settings[name].items() if k not in window}
    slug = "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")
    images, labels, seconds, failing, top_share = [], [], 0.0, 0, []
    for class_label in range(10):
        out = RUNS / f"{study}-{dataset}" / slug / f"class-{class_label}" / f"n{per_class}"
        try:
            run = Run(out)
        except NpgenError:
            api.sample_run(
                out,
                dataset,
                per_class,
                class_label,
                data_root,
                None,
                window,
                options,
                resume=out.exists(),
                command=" ".join(sys.argv),
            )
            run = Run(out)
        failing += 0 if api.verify_run(out, data_root).ok else 1
        images.append(np.asarray(run.samples))
        labels += [class_label] * per_class
        seconds += run.manifest["timings"]["sample_seconds"]
        top_share.append(run.summary().column("top_source_share").to_numpy())
        params = run.manifest["params"]
    shares = np.concatenate(top_share)
    facts = {
        "setting": settings[name],
        "params": params,
        "window": run.manifest["database"]["params"],
        "runs_failing_verify": failing,
        "sample_seconds_per_image": seconds / (10 * per_class),
        "median_top_source_share": float(np.median(shares)),
        "max_top_source_share": float(shares.max()),
    }
    return np.concatenate(images), np.array(labels), facts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", choices=["mnist", "cifar10"])
    parser.add_argument("--per-class", type=int, default=50)
    parser.add_argument("--only", nargs="*", default=None, help="names (or name prefixes) of settings to run")
    parser.add_argument("--data-root", default=None)
    args = parser.parse_args()
    train = load_dataset(args.dataset, data_root=args.data_root)
    test = load_dataset(args.dataset, split="test", data_root=args.data_root)
    reference = Reference(train, test, load_classifier(classifier_path(args.dataset), train))
    prefix = "cifar: " if args.dataset == "cifar10" else ""
    names = [n for n in SETTINGS if n.startswith("cifar: ") == (args.dataset == "cifar10")]
    names = [n for n in names if args.only is None or any(n[len(prefix) :].startswith(o) for o in args.only)]
    result_name = f"ablation-{args.dataset}-{10 * args.per_class}"
    saved = RESULTS / f"{result_name}.json"
    rows = json.loads(saved.read_text())["rows"] if saved.is_file() else {}
    for name in names:
        started = time.perf_counter()
        images, labels, facts = run_setting(args.dataset, name, args.per_class, args.data_root)
        scores = evaluate_images(images, labels, reference)
        rows[name] = {**facts, "n": len(images), "scores": scores}
        print(
            f"{name:42s} class {scores['class_accuracy']:.3f}  FID {scores['fid']:6.2f}  P {scores['precision']:.2f} "
            f"R {scores['recall']:.2f}  near-copies {scores['near_copy_rate']:.3f}  max top share {facts['max_top_source_share']:.3f}  "
            f"{1 / facts['sample_seconds_per_image']:.0f} img/s  ({time.perf_counter() - started:.0f} s)",
            flush=True,
        )
    floor = reference.floor(10 * args.per_class)
    save_result(result_name, {"dataset": args.dataset, "per_class": args.per_class, "floor": floor, "rows": rows})


if __name__ == "__main__":
    main()
