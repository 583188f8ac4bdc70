"""The run report's charts (`run_charts`): part sizes, coverage, displacement, reuse, sources per sample.

Drawn with `npgen.analysis.charts` from a run's `Composition`; each comes with its caption.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from npgen.analysis.charts import bar_chart, line_chart, nice_step
from npgen.analysis.composition import COVERAGE_TOPS, Composition

PART_SIZE_BINS = ((1, 1), (2, 2), (3, 4), (5, 8), (9, 16), (17, 32), (33, None))


def _bin_label(low: int, high: int | None) -> str:
    return f"{low}+" if high is None else (str(low) if low == high else f"{low}-{high}")


def _doubling_bins(max_value: int, max_bins: int = 10) -> list[tuple[int, int | None]]:
    """1, 2, 3-4, 5-8, ... until max_value is covered; the last of max_bins bins is open-ended."""
    bins, low = [], 1
    while low <= max(max_value, 1):
        high = 1 if low == 1 else 2 * (low - 1)
        if len(bins) == max_bins - 1 and high < max_value:
            bins.append((low, None))
            break
        bins.append((low, high))
        low = high + 1
    return bins


def _bin_sums(values: np.ndarray, weights: np.ndarray | None, bins) -> np.ndarray:
    """Sum of weights (or count) of the values in each inclusive (low, high|None) bin."""
    weights = np.ones(len(values)) if weights is None else np.asarray(weights, dtype=np.float64)
    return np.array([weights[(values >= low) & (True if high is None else values <= high)].sum() for low, high in bins])


def _share(sums: np.ndarray) -> np.ndarray:
    total = sums.sum()
    return sums / total if total > 0 else np.zeros_like(sums, dtype=np.float64)


def _integer_bins(values: np.ndarray, max_bins: int = 12) -> list[tuple[int, int | None]]:
    """Equal-width integer bins [low, high] of a nice width (1, 2, 5 x 10^k) covering min..max of the values."""
    low, top = (int(values.min()), int(values.max())) if len(values) else (0, 0)
    step = int(nice_step(top - low + 1, max_bins, integer=True))
    first = (low // step) * step
    return [(low, low + step - 1) for low in range(first, top + 1, step)]


def run_charts(c: Composition, radius=None, class_name: str | None = None) -> dict[str, tuple[Image.Image, str]]:
    """The run-level charts, name -> (image, caption)."""
    run = c.run
    population, of_class = reuse_population(run, class_name)
    size = c.parts.column("size").to_numpy()
    informative_size = c.parts.column("informative_size").to_numpy()
    part_sizes = bar_chart(
        {
            "all pixels": _share(_bin_sums(size, size, PART_SIZE_BINS)),
            "informative pixels": _share(_bin_sums(size, informative_size, PART_SIZE_BINS)),
        },
        [_bin_label(*b) for b in PART_SIZE_BINS],
        f"Pixels by the size of the part they lie in ({run['n_parts']:,} parts)",
        "part size (pixels)",
        "share of pixels",
    )
    median_ge = run["median_share_in_parts_ge_s_informative"]
    charts = {
        "part_sizes.png": (
            part_sizes,
            "Share of all pixels and of informative pixels that lie in parts of each size. A part is a 4-connected "
            "piece of one training image pasted whole (same source, same displacement); mass on the right means larger "
            f"copied pieces. Median share of informative pixels in parts of >= {run['min_part_size']} pixels: "
            f"{format_share(median_ge)}.",
        ),
    }

    coverage = np.stack(
        [c.per_sample.column(f"coverage_top{k}").to_numpy().astype(np.float64) for k in COVERAGE_TOPS], axis=1
    )
    measured = coverage[~np.isnan(coverage).any(axis=1)]
    quartiles = (
        np.percentile(measured, [25, 50, 75], axis=0) if len(measured) else np.full((3, len(COVERAGE_TOPS)), np.nan)
    )
    charts["coverage.png"] = (
        line_chart(
            COVERAGE_TOPS,
            {"median": quartiles[1], "25th percentile": quartiles[0], "75th percentile": quartiles[2]},
            f"Coverage of informative pixels by a sample's top sources ({len(measured):,} samples)",
            "top-k source images of the sample",
            "share of informative pixels",
            log_x=True,
        ),
        "For each sample, the share of its informative pixels that come from its k most-used training images, "
        "k = 1, 3, 10: median and quartiles over samples. Values near 1 at k = 1 would mean a sample is mostly one "
        "training image; low values mean it is a patchwork of many.",
    )

    d = c.displacement
    charts["displacement.png"] = (
        bar_chart(
            {
                "all pixels": _share(np.asarray(d["all_pixels"], dtype=np.float64)),
                "informative pixels": _share(np.asarray(d["informative_pixels"], dtype=np.float64)),
            },
            [str(v) for v in d["chebyshev"]],
            "Displacement between a generated pixel and its source",
            "Chebyshev distance max(|dy|, |dx|) (pixels)",
            "share of pixels",
        ),
        "How far from its own position each pixel was copied (0 = the same position in the training image), over "
        "all pixels and over informative pixels. The sampler's radius bounds it"
        + (
            "."
            if radius is None
            else f": radius {radius} in this run" + (", so every pixel keeps its position." if radius == 0 else ".")
        ),
    )

    pixels = c.reuse.column("n_pixels").to_numpy()
    informative = c.reuse.column("n_informative").to_numpy()
    informative = informative[informative > 0]
    bins = _doubling_bins(int(pixels.max(initial=1)))
    charts["reuse.png"] = (
        bar_chart(
            {"all pixels": _bin_sums(pixels, None, bins), "informative pixels": _bin_sums(informative, None, bins)},
            [_bin_label(*b) for b in bins],
            f"Reuse of training images: Gini {run['gini']:.3f} (informative {run['gini_informative']:.3f}); "
            f"{format_share(run['share_of_training_used'])} of {run['n_population']:,} training images{of_class} used "
            f"({format_share(run['share_of_training_used_informative'])} for informative pixels)",
            "generated pixels copied from one training image",
            "training images",
        ),
        "How many generated pixels each used training image gave (images that gave none are left out; their "
        f"share is in the title). The Gini coefficient of the per-image pixel counts over {population}, "
        "zeros included: 0 when every image gives equally, near 1 when a few give everything.",
    )

    n_sources = c.per_sample.column("n_sources").to_numpy()
    n_sources_informative = c.per_sample.column("n_sources_informative").to_numpy()
    bins = _integer_bins(np.concatenate([n_sources, n_sources_informative]))
    charts["sources_per_sample.png"] = (
        bar_chart(
            {
                "all pixels": _bin_sums(n_sources, None, bins),
                "informative pixels": _bin_sums(n_sources_informative, None, bins),
            },
            [_bin_label(*b) for b in bins],
            f"Distinct training images per sample ({run['n_samples']:,} samples)",
            "distinct source images",
            "samples",
        ),
        f"How many different training images one sample's pixels come from (median {run['median_n_sources']:.0f}; "
        f"{run['median_n_sources_informative']:.0f} counting informative pixels only), out of "
        f"{run['height'] * run['width']:,} pixels per sample.",
    )
    return charts


def finite_number(value) -> bool:
    """A real number that is not NaN (a manifest may hold anything: strings and others are shown as n/a)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        return False
    return not math.isnan(value)


def format_share(value) -> str:
    """A share as a percent with one decimal, "n/a" when it is not a number."""
    return f"{100 * value:.1f}%" if finite_number(value) else "n/a"


def reuse_population(run: dict, class_name: str | None) -> tuple[str, str]:
    """(what the reuse statistics are over, " of class X" or ""): a class-conditional run's class, else all images."""
    if run["requested_class"] is None:
        return f"all {run['n_population']:,} training images", ""
    name = class_name if class_name is not None else run["requested_class"]
    return (
        f"the {run['n_population']:,} training images of class {name} (the run is conditioned on it, so only "
        "they could be drawn)",
        f" of class {name}",
    )
