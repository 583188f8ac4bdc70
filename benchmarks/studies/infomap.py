"""Information maps on real MNIST: does the class information lie on the strokes, and do classes differ?

    python benchmarks/studies/infomap.py              # samples 200 MNIST digits (class mixture, one level) into
                                              # benchmarks/runs/, then `npgen infomap` on them (a few minutes)

Measured on `npgen infomap`'s own output (info.npy, contrast.npy, classes.npy, samples.npy):

- foreground (pixels not equal to the pad value 0) share of the total information and of the absolute
  information, against the foreground's share of the area;
- the row by which half and 90% of each sample's total information has been given (raster order);
- whether class-averaged maps differ between classes: the mean correlation between the mean maps of two
  different classes, against the split-half correlation of one class's mean map (even-indexed samples
  against odd-indexed ones): maps that differ by class correlate less across classes than within one;
- the leave-one-out accuracy of assigning a sample's map to the nearest class-mean map (chance: about 10%);
- the share of samples whose class is the most probable one under the posterior p(c | x).

Writes benchmarks/results/infomap-mnist.json and the README figures benchmarks/figures/infomap-mnist-*.png.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: record.py
from record import FIGURES, RUNS, run_script, save_result

from npgen.analysis.infomap import maps_figure
from npgen.runs.png import save_png


ONE_LEVEL = ["--levels", "1", "--pool-size", "100"]  # information maps score the one-level rule (MNIST's preset until
# 2026-12-05, when it became two levels)


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def class_map_agreement(maps: np.ndarray, classes: np.ndarray) -> dict:
    """Mean correlation of class-mean maps between different classes, and split-half within each class."""
    present = [c for c in np.unique(classes) if (classes == c).sum() >= 4]
    means = {c: maps[classes == c].mean(axis=0) for c in present}
    between = [correlation(means[a], means[b]) for i, a in enumerate(present) for b in present[i + 1 :]]
    within = []
    for c in present:
        members = np.flatnonzero(classes == c)
        within.append(correlation(maps[members[0::2]].mean(axis=0), maps[members[1::2]].mean(axis=0)))
    keep = np.isin(classes, present)
    flat, labels = maps[keep].reshape(keep.sum(), -1).astype(np.float64), classes[keep]
    sums = {c: flat[labels == c].sum(axis=0) for c in present}
    counts = {c: (labels == c).sum() for c in present}
    correct = 0
    for i, (row, label) in enumerate(zip(flat, labels)):  # leave-one-out nearest class-mean map
        distances = {
            c: np.sum((row - (sums[c] - (row if c == label else 0)) / (counts[c] - (c == label))) ** 2) for c in present
        }
        correct += min(distances, key=distances.get) == label
    return {
        "classes": len(present),
        "nearest_class_mean_accuracy": correct / len(labels),
        "between_class_correlation": float(np.mean(between)),
        "within_class_split_half_correlation": float(np.mean(within)),
    }


def rows_to_share(info: np.ndarray, share: float) -> float:
    """Median over samples of the first row by whose end `share` of the sample's total information is given."""
    per_row = info.sum(axis=2)
    cumulative = np.cumsum(per_row, axis=1) / per_row.sum(axis=1, keepdims=True)
    return float(np.median(np.argmax(cumulative >= share, axis=1)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--run", type=Path, default=RUNS / "mnist-infomap-200")
    parser.add_argument("--data-root", default=None)
    args = parser.parse_args()
    data = ["--data-root", args.data_root] if args.data_root else []
    npgen = [sys.executable, "-m", "npgen"]
    if not (args.run / "samples.npy").exists():
        subprocess.run(
            [*npgen, "sample", "--dataset", "mnist", "-n", str(args.n), *ONE_LEVEL, "--out", str(args.run), *data],
            check=True,
        )
    started = time.perf_counter()
    subprocess.run([*npgen, "infomap", str(args.run), *data], check=True)
    seconds = time.perf_counter() - started
    folder = args.run / "infomap"
    info, contrast = np.load(folder / "info.npy"), np.load(folder / "contrast.npy")
    classes = np.load(folder / "classes.npy")
    samples = np.load(args.run / "samples.npy")[..., 0]
    foreground = samples != 0
    record_json = json.loads((folder / "infomap.json").read_text())
    per_sample = pq.read_table(folder / "per_sample.parquet")
    posterior = per_sample.column("posterior").to_numpy()
    record = {
        "run": str(args.run),
        "n_samples": len(info),
        "tau": record_json["tau"],
        "floor": record_json["floor"],
        "infomap_seconds": round(seconds, 1),
        "area_share": float(foreground.mean()),
        "info": {
            **record_json["foreground_share"],
            "mean_total_bits": float(info.sum(axis=(1, 2)).mean()),
            "median_row_half": rows_to_share(info, 0.5),
            "median_row_90": rows_to_share(info, 0.9),
            **class_map_agreement(info, classes),
        },
        "contrast": {
            **record_json["contrast_foreground_share"],
            "mean_total_bits": float(contrast.sum(axis=(1, 2)).mean()),
            **class_map_agreement(contrast, classes),
        },
        "posterior_of_own_class_median": float(np.median(posterior)),
        "own_class_posterior_above_half": float((posterior > 0.5).mean()),
    }
    shutil.copyfile(folder / "class_means.png", FIGURES / "infomap-mnist-classes.png")
    order = np.argsort(classes, kind="stable")
    pick = np.concatenate([order[classes[order] == d][:1] for d in range(10)])  # one sample of each digit
    picture = maps_figure(
        samples[pick][..., None], info[pick], contrast[pick], [f"sample {j}: {classes[j]}" for j in pick], columns=10
    )
    save_png(picture, FIGURES / "infomap-mnist-samples.png")
    print(json.dumps(save_result("infomap-mnist", record), indent=2))


if __name__ == "__main__":
    run_script(main)
