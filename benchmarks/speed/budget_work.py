"""Why the source budget costs the sampler what it does: the window terms an exact search must sum, with and
without the budget, counted in plain numpy on real samples.

    python benchmarks/speed/budget_work.py                  # CIFAR-10 preset, classes 3 and 8, 20 samples each
    python benchmarks/speed/budget_work.py --dataset mnist

The sampler scores each candidate window term by term, heaviest first, and abandons it once its partial sum
exceeds the admissible threshold ((1+eps)*d_min + abs_tol, at least the k_min-th smallest distance). Without
the budget, k_min 1 lets a sample continue one training image exactly: d_min is 0 and nearly every window is
abandoned after one term. With the budget,
the best window left is no exact copy, d_min is larger, and more windows stay under the threshold for more
terms. This script counts, for every 5th pixel of real samples (the pools, budget counts and contexts
rebuilt from the samples' own provenance), how many terms each candidate window needs before its partial sum
exceeds the final threshold: the work of a search that knew the threshold before scoring any window, which
no early-exit search in this order can beat. Written to benchmarks/results/budget_work-<dataset>.json.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: record.py
from record import save_result

from npgen import api
from npgen.data.database import Database, default_path
from npgen.data.datasets import load_dataset
from npgen.rule.batch import RowBatch
from npgen.rule.cpu import admissible_threshold
from npgen.rule.sampler import Sampler


def terms_needed(sampler: Sampler, class_label: int, n: int, pixel_stride: int) -> tuple[int, int, int]:
    """(pixels, candidate windows, terms needed) over every pixel_stride-th pixel of n samples of the class."""
    db = sampler.database
    height, width, h, channels = sampler.geometry()
    offsets, weights = sampler.window_order()
    samples = sampler.sample(n, class_label)
    batch = RowBatch.start(
        db, sampler.seed, samples.sample_index, sampler.allowed(class_label), sampler.pool_size, images=samples.images
    )
    canvas, padded_width = batch.flat_canvas, width + 2 * h
    cells = offsets[:, None] + np.arange(channels)[None, :]  # (L, C) flat offsets of every context value
    src = samples.src_image.reshape(n, -1)
    pixels = windows = terms = 0
    for y, pools in batch.rows():
        first_y, end_y = max(0, y - sampler.radius), min(height, y + sampler.radius + 1)
        for x in range(width):
            if (y * width + x) % pixel_stride:
                continue
            first_x, end_x = max(0, x - sampler.radius), min(width, x + sampler.radius + 1)
            at = np.array(
                [
                    ((sy + h) * padded_width + sx + h) * channels
                    for sy in range(first_y, end_y)
                    for sx in range(first_x, end_x)
                ]
            )
            centre = ((y + h) * padded_width + x + h) * channels
            for b in range(n):
                earlier = src[b, : y * width + x]
                pool = np.array([k for k in pools[b] if np.count_nonzero(earlier == k) < sampler.budget])
                context = canvas[b][centre + cells].astype(np.float32)
                values = db.sources[pool][:, at[:, None, None] + cells[None]].astype(np.float32)  # (K, P, L, C)
                diff = context - values
                partial = np.cumsum(weights * (diff * diff).astype(np.float64).sum(axis=-1), axis=-1)
                threshold = admissible_threshold(partial[..., -1].ravel(), sampler.eps, sampler.abs_tol, sampler.k_min)
                over = partial > threshold
                needed = np.where(over.any(axis=-1), over.argmax(axis=-1) + 1, len(offsets))
                pixels, windows, terms = pixels + 1, windows + needed.size, terms + int(needed.sum())
    return pixels, windows, terms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=["mnist", "cifar10"], default="cifar10")
    parser.add_argument("--per-class", type=int, default=20)
    parser.add_argument("--pixel-stride", type=int, default=5)
    parser.add_argument("--data-root", default=None)
    args = parser.parse_args()
    train = load_dataset(args.dataset, data_root=args.data_root)
    window, options = api.resolve_params(train)
    db = Database.open_or_build(train, default_path(train, window), window)
    results = {}
    for name, share in (("with budget", options["max_source_share"]), ("without budget", 1.0)):
        sampler = Sampler(db, **{**options, "max_source_share": share})
        counts = np.array([terms_needed(sampler, c, args.per_class, args.pixel_stride) for c in (3, 8)]).sum(axis=0)
        pixels, windows, terms = (int(v) for v in counts)
        results[name] = {
            "max_source_share": share,
            "pixels": pixels,
            "windows_per_pixel": windows / pixels,
            "terms_per_window": terms / windows,
            "terms_per_pixel": terms / pixels,
        }
        print(name, results[name], flush=True)
    ratio = results["with budget"]["terms_per_pixel"] / results["without budget"]["terms_per_pixel"]
    print(f"terms per pixel, with / without the budget: {ratio:.3f}")
    save_result(f"budget_work-{args.dataset}", {"dataset": args.dataset, "results": results, "ratio": ratio})


if __name__ == "__main__":
    main()
