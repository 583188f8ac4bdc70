"""The run report: a run's composition as tables, charts and one self-contained HTML page.

`write_report(run)` traces a completed run (`npgen.analysis.tracer.Tracer`) and writes, into RUN/report unless told
otherwise::

    composition.json, per_sample.parquet, parts.parquet, sources.parquet, reuse.parquet   (Composition.save)
    report.json            run-level numbers (the composition's) and the manifest's essentials
    part_sizes.png         share of pixels by the size of the part they lie in (all vs informative pixels)
    coverage.png           coverage of informative pixels by the top 1, 3, 10 sources (quartiles over samples)
    displacement.png       Chebyshev displacement of copied pixels (all vs informative pixels)
    reuse.png              generated pixels per used training image; Gini and share of training used
    sources_per_sample.png distinct source images per sample (all vs informative pixels)
    samples.png            the first samples
    parts-<i>.png, pixel-<i>.png   for the first n_example_samples samples (Tracer.parts_figure / pixel_figure)
    report.html            one page, every image embedded as a data URI: opens from disk with no server

The charts are drawn with `npgen.analysis.charts` (pillow alone), in the style of `npgen.analysis.figures`.
Every file is written to a temporary name and renamed into place; files of an earlier report in the same
folder are overwritten (and stale example figures removed).
"""

from __future__ import annotations

import base64
import html
import io
import math
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
from PIL import Image

from npgen.analysis.charts import bar_chart, line_chart, nice_step
from npgen.analysis.tracer import (
    COMPOSITION_FILES,
    COVERAGE_TOPS,
    DEFAULT_MAX_CANDIDATES,
    DEFAULT_MIN_PART_SIZE,
    Composition,
    Tracer,
)
from npgen.data.files import TMP_MARK, atomic_write, refuse_link, write_json
from npgen.errors import NpgenError
from npgen.runs.store import image_grid

PART_SIZE_BINS = ((1, 1), (2, 2), (3, 4), (5, 8), (9, 16), (17, 32), (33, None))
N_TABLE_SAMPLES = 20
N_TOP_SOURCES = 10
N_GRID_SAMPLES = 64
CHART_FILES = (
    "part_sizes.png",
    "coverage.png",
    "displacement.png",
    "reuse.png",
    "sources_per_sample.png",
    "samples.png",
)


# ---- the report's figures ----


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


def _charts(c: Composition, radius=None, class_name: str | None = None) -> dict[str, tuple[Image.Image, str]]:
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
            f"{_fmt_share(median_ge)}.",
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
            f"{_fmt_share(run['share_of_training_used'])} of {run['n_population']:,} training images{of_class} used "
            f"({_fmt_share(run['share_of_training_used_informative'])} for informative pixels)",
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


def _example_pixel(tracer: Tracer, sample: int) -> tuple[int, int]:
    """The sample's first informative pixel in raster order, or its centre when it has none."""
    candidates = tracer.provenance_arrays(["n_candidates"], sample)["n_candidates"][0]
    informative = np.argwhere(candidates <= tracer.max_candidates)
    if len(informative):
        return int(informative[0][0]), int(informative[0][1])
    return tracer.height // 2, tracer.width // 2


# ---- formatting ----


def _finite(value) -> bool:
    """A real number that is not NaN (a manifest may hold anything: strings and others are shown as n/a)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        return False
    return not math.isnan(value)


def _fmt_share(value) -> str:
    return f"{100 * value:.1f}%" if _finite(value) else "n/a"


def _fmt(value, kind: str = "number") -> str:
    """A number for the page: share -> percent, ratio -> 3 decimals, id -> plain integer, else thousands separators."""
    if not _finite(value):
        return "n/a"
    if kind == "share":
        return _fmt_share(value)
    if kind == "ratio":
        return f"{value:.3f}"
    if kind == "id":
        return str(int(value))
    if isinstance(value, (int, np.integer)) or float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.2f}"


def _cell(value, kind: str = "number") -> str:
    """A table cell whose tooltip holds the exact value."""
    exact = "" if value is None else f' title="{html.escape(repr(value))}"'
    return f'<td class="num"{exact}>{html.escape(_fmt(value, kind))}</td>'


def _png_bytes(picture: Image.Image) -> bytes:
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _img(png: bytes, alt: str, css: str = "") -> str:
    style = f' class="{css}"' if css else ""
    return f'<img{style} src="{_data_uri(png)}" alt="{html.escape(alt)}">'


SUMMARY_EXPLANATIONS = {
    "median_nearest_distance": (
        "median distance to the nearest training image",
        "L2 distance in raw pixel values (0-255) from each sample to its nearest training image, median over samples; "
        "a near-copy of a training image would be close to 0",
    ),
    "median_top_source_share": (
        "median top-source share",
        "share of a sample's pixels (all pixels, ties included) that come from its most-used training image; "
        "a near-copy would be close to 1",
    ),
    "max_top_source_share": (
        "largest top-source share",
        "the same share for the sample that leans most on one training image",
    ),
}


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


def _run_rows(run: dict, manifest: dict) -> list[tuple[str, str, str]]:
    """(name, value cells, explanation) of the run-level table."""
    k = run["max_candidates"]
    s = run["min_part_size"]
    rows = [
        ("samples", _cell(run["n_samples"]), f"generated images of {run['height']}x{run['width']} pixels"),
        ("training images", _cell(run["n_train"]), "size of the training split every pixel is copied from"),
        (
            "informative pixels",
            _cell(run["informative_share"], "share"),
            f"share of pixels whose admissible set had at most {k} candidates (max_candidates). A larger set is a tie, "
            "typically on blank background where every window matches: the sampler drew its source at random, so that "
            "source says nothing about the image content. Statistics marked 'informative' count these pixels only",
        ),
        (
            "parts",
            _cell(run["n_parts"]),
            "pieces of training images pasted whole: 4-connected pixels of one sample copied from one training image "
            "with one displacement",
        ),
        ("parts per sample (median)", _cell(run["median_n_parts"]), "all parts of a sample, ties included"),
        (
            "parts with informative pixels per sample (median)",
            _cell(run["median_n_parts_informative"]),
            "parts holding at least one informative pixel",
        ),
        ("mean part size (median)", _cell(run["median_mean_part_size"]), "pixels per part, averaged per sample"),
        (
            f"pixels in parts of >= {s} pixels (median)",
            _cell(run["median_share_in_parts_ge_s"], "share"),
            f"share of a sample's pixels lying in parts of at least {s} pixels (min_part_size): how much is copied as "
            "2-D pieces rather than single pixels",
        ),
        (
            f"informative pixels in parts of >= {s} pixels (median)",
            _cell(run["median_share_in_parts_ge_s_informative"], "share"),
            "the same share among informative pixels",
        ),
        (
            "distinct sources per sample (median)",
            _cell(run["median_n_sources"]),
            "different training images a sample's pixels come from",
        ),
        (
            "distinct informative sources per sample (median)",
            _cell(run["median_n_sources_informative"]),
            "the same, counting informative pixels only",
        ),
    ]
    for top in COVERAGE_TOPS:
        rows.append(
            (
                f"coverage by the top {top} source{'s' if top > 1 else ''} (median)",
                _cell(run[f"median_coverage_top{top}"], "share"),
                f"share of a sample's informative pixels that come from its {top} most-used training image"
                f"{'s' if top > 1 else ''}",
            )
        )
    target = "the requested class" if run["requested_class"] is not None else "the sample's majority source class"
    population, of_class = reuse_population(run, manifest.get("class_name"))
    rows += [
        (
            "class consistency (median)",
            _cell(run["median_class_consistency"], "share"),
            f"share of a sample's informative pixels copied from training images of {target}",
        ),
        (
            "Gini of training-image use",
            _cell(run["gini"], "ratio"),
            f"Gini coefficient of the generated pixels given by each training image ({population}, zeros "
            "included): 0 when all give equally, near 1 when a few give everything",
        ),
        ("Gini, informative pixels", _cell(run["gini_informative"], "ratio"), "the same over informative pixels"),
        (
            f"share of training images{of_class} used",
            _cell(run["share_of_training_used"], "share"),
            f"share of {population} that gave at least one generated pixel",
        ),
        (
            f"share of training images{of_class} used, informative",
            _cell(run["share_of_training_used_informative"], "share"),
            f"share of {population} that gave at least one informative pixel",
        ),
    ]
    for key, value in (manifest.get("summary") or {}).items():
        name, explanation = SUMMARY_EXPLANATIONS.get(key, (key.replace("_", " "), "from the run's manifest summary"))
        kind = "ratio" if "share" in key else "number"
        rows.append((name, _cell(value, kind), explanation))
    params = manifest.get("params") or {}
    if "source_budget" in params:
        rows.append(
            (
                "source budget (pixels)",
                _cell(params["source_budget"]),
                f"the guarantee of this run: no training image supplied more than {params['source_budget']} pixels "
                f"(max_source_share={params.get('max_source_share')}) of any one sample; `npgen verify` checks it "
                "on every sample, and the largest top-source share above is the closest any sample came",
            )
        )
    if manifest.get("exclusion"):
        record = manifest["exclusion"]
        rows.append(
            (
                "excluded training images",
                _cell(record["n_images"]),
                f"named by --exclude {' '.join(map(str, record['specs']))} (set SHA-256 {record['sha256'][:16]}...): "
                "they gave no pixel and entered no semantic pool; `npgen verify` proves 0 pixels from them",
            )
        )
    if manifest.get("class_map"):
        rows.append(
            (
                "regions steered to classes",
                _cell(len(manifest["class_map"]["pixels"])),
                f"--class-map {manifest['class_map']['spec']}: each pixel copied from its region's class only "
                "(`npgen verify` checks it)",
            )
        )
    if manifest.get("completion"):
        record = manifest["completion"]
        rows.append(
            (
                "completed inputs",
                _cell(record["n_inputs"]),
                f"{record['per_input']} completions each, --mask {record['mask']} given; given pixels have no "
                "provenance, so the statistics above count generated pixels",
            )
        )
    return rows


CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color: #141414; margin: 2em auto;
       max-width: 1200px; padding: 0 1em; line-height: 1.4; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ddd; }
.sub { color: #555; margin-top: 0; } code { background: #f3f3f3; padding: 0 0.25em; }
table { border-collapse: collapse; margin: 0.5em 0; font-size: 0.9em; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.5em; vertical-align: top; text-align: left; }
th { background: #f6f6f6; } td.num { text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }
td.why { color: #444; max-width: 40em; }
figure { margin: 1.2em 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #444; font-size: 0.9em; max-width: 60em; }
img.thumb { image-rendering: pixelated; width: 56px; height: 56px; }
img.pixels { image-rendering: pixelated; }
"""


def _table(header: Sequence[str], rows: list[str]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _figure(png: bytes, caption: str, alt: str, css: str = "") -> str:
    return f"<figure>{_img(png, alt, css)}<figcaption>{html.escape(caption)}</figcaption></figure>"


def _html(
    run_path: Path,
    tracer: Tracer,
    c: Composition,
    figures: list[tuple[str, bytes, str]],
    thumbs: dict[int, bytes],
    summary: pa.Table | None,
) -> str:
    manifest, run, data = tracer.run.manifest, c.run, tracer.dataset
    dataset = manifest["dataset"]["name"]
    class_text = "unconditional" if manifest.get("class_label") is None else f"class {manifest.get('class_name')}"
    esc = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{esc(f'npgen report: {run_path.name} ({dataset}, {class_text})')}</title>",
        f"<style>{CSS}</style></head><body>",
        f"<h1>npgen run report: {esc(dataset)}, {esc(class_text)}</h1>",
        f'<p class="sub">Run <code>{esc(str(run_path))}</code> &middot; {run["n_samples"]:,} samples of '
        f"{run['height']}x{run['width']} from the {esc(str(manifest['dataset'].get('split', '')))} split "
        f"({run['n_train']:,} images) &middot; npgen {esc(str(manifest.get('npgen_version', '?')))}</p>",
        "<p>Every generated pixel is copied from a training image, and the run records which one, where, and how many "
        "candidates the sampler chose among. This page traces the samples back to their training images.</p>",
    ]
    params = ", ".join(f"{k}={v}" for k, v in (manifest.get("params") or {}).items())
    window = ", ".join(f"{k}={v}" for k, v in ((manifest.get("database") or {}).get("params") or {}).items())
    details = [
        ("command", manifest.get("command")),
        ("sampler parameters", params),
        ("window parameters", window),
        ("started", manifest.get("started")),
        ("finished", manifest.get("finished")),
        ("timings", ", ".join(f"{k}={v}" for k, v in (manifest.get("timings") or {}).items())),
    ]
    parts.append(
        _table(["run", ""], [f"<tr><th>{esc(k)}</th><td><code>{esc(str(v))}</code></td></tr>" for k, v in details if v])
    )

    parts.append("<h2>Run-level numbers</h2>")
    rows = [
        f'<tr><th>{esc(name)}</th>{cells}<td class="why">{esc(why)}</td></tr>'
        for name, cells, why in _run_rows(run, manifest)
    ]
    parts.append(_table(["measure", "value", "what it means"], rows))

    parts.append("<h2>Figures</h2>")
    for name, png, caption in figures:
        parts.append(_figure(png, caption, name, "pixels" if name == "samples.png" else ""))

    n_rows = min(N_TABLE_SAMPLES, run["n_samples"])
    parts.append(f"<h2>Per-sample numbers (first {n_rows})</h2>")
    table = c.per_sample.slice(0, n_rows).to_pylist()
    nearest = {}
    if summary is not None:
        for row in summary.to_pylist():
            nearest[row["sample"]] = row
    header = [
        "sample",
        "class",
        "parts",
        "informative parts",
        "mean part size",
        f"in parts >= {run['min_part_size']}",
        f"informative in parts >= {run['min_part_size']}",
        "sources",
        "informative sources",
        *[f"top-{k} coverage" for k in COVERAGE_TOPS],
        "class consistency",
        "informative pixels",
        "nearest training image",
        "its distance",
    ]
    rows = []
    for row in table:
        near = nearest.get(row["sample"], {})
        cells = [
            _cell(row["sample"], "id"),
            f"<td>{esc(data.class_names[row['target_class']])}</td>",
            _cell(row["n_parts"]),
            _cell(row["n_parts_informative"]),
            _cell(row["mean_part_size"]),
            _cell(row["share_in_parts_ge_s"], "share"),
            _cell(row["share_in_parts_ge_s_informative"], "share"),
            _cell(row["n_sources"]),
            _cell(row["n_sources_informative"]),
            *[_cell(row[f"coverage_top{k}"], "share") for k in COVERAGE_TOPS],
            _cell(row["class_consistency"], "share"),
            _cell(row["informative_share"], "share"),
            _cell(near.get("nearest_image"), "id"),
            _cell(near.get("nearest_distance")),
        ]
        rows.append(f"<tr>{''.join(cells)}</tr>")
    parts.append(_table(header, rows))
    parts.append(
        "<p>Class: the requested class, or for an unconditional run the majority class of the sample's "
        "informative sources. Coverage and class consistency are over informative pixels.</p>"
    )

    top = c.reuse.sort_by([("n_pixels", "descending"), ("n_informative", "descending"), ("src_image", "ascending")])
    top = top.slice(0, N_TOP_SOURCES).to_pylist()
    parts.append(f"<h2>The {len(top)} most-used training images</h2>")
    rows = []
    for row in top:
        cells = [
            f"<td>{_img(thumbs[row['src_image']], 'training image ' + str(row['src_image']), 'thumb')}</td>",
            _cell(row["src_image"], "id"),
            f"<td>{esc(data.class_names[row['src_class']])}</td>",
            _cell(row["n_pixels"]),
            _cell(row["n_informative"]),
            _cell(row["n_samples"]),
        ]
        rows.append(f"<tr>{''.join(cells)}</tr>")
    parts.append(_table(["image", "index", "class", "pixels given", "informative pixels", "samples using it"], rows))
    parts.append(
        "<p>Ranked by the generated pixels they gave (all pixels, ties included). The full table is "
        "<code>reuse.parquet</code>; per-sample and per-part tables are <code>per_sample.parquet</code>, "
        "<code>sources.parquet</code> and <code>parts.parquet</code> beside this page.</p>"
    )
    parts.append("</body></html>\n")
    return "\n".join(parts)


# ---- the report ----


def _write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, lambda tmp: tmp.write_bytes(data))


def write_report(
    run_path: str | os.PathLike,
    out_dir: str | os.PathLike | None = None,
    data_root=None,
    n_example_samples: int = 4,
    max_candidates: int = DEFAULT_MAX_CANDIDATES,
    min_part_size: int = DEFAULT_MIN_PART_SIZE,
) -> Path:
    """Write the report of a completed run into out_dir (default RUN/report) and return out_dir.

    See the module docstring for the files. Raises NpgenError (from the tracer) for a missing, incomplete or
    damaged run, or one whose dataset no longer matches its manifest's SHA-256.
    """
    if n_example_samples < 0:
        raise NpgenError(f"n_example_samples must be >= 0, got {n_example_samples}")
    tracer = Tracer(run_path, data_root=data_root, max_candidates=max_candidates, min_part_size=min_part_size)
    run_path = tracer.run.path
    out = Path(out_dir) if out_dir is not None else tracer.run.output_path("report")  # never a link inside the run
    refuse_link(out)
    if out.exists() and not out.is_dir():
        raise NpgenError(f"{out} exists and is not a folder; choose another --out")
    c = tracer.composition()
    try:
        summary = tracer.run.summary()
    except (OSError, pa.ArrowException) as err:
        raise NpgenError(f"{run_path}/samples.parquet is missing or damaged; sample the run again") from err
    out.mkdir(parents=True, exist_ok=True)

    # Composition.save writes in place: stage in a new private folder, then rename exactly the files it writes
    staging = Path(tempfile.mkdtemp(dir=out, prefix=f".composition{TMP_MARK}"))
    try:
        c.save(staging)
        for name in COMPOSITION_FILES:
            refuse_link(out / name)
            os.replace(staging / name, out / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)

    manifest = tracer.run.manifest
    record = {
        "run_path": str(run_path),
        "dataset": {
            key: manifest["dataset"].get(key) for key in ("name", "split", "n_images", "shape", "images_sha256")
        },
        "class_label": manifest.get("class_label"),
        "class_name": manifest.get("class_name"),
        "n_samples": manifest.get("n_samples"),
        "params": manifest.get("params"),
        "window": (manifest.get("database") or {}).get("params"),
        "summary": manifest.get("summary"),
        "timings": manifest.get("timings"),
        "npgen_version": manifest.get("npgen_version"),
        "run": c.run,
    }
    write_json(out / "report.json", record)

    figures: list[tuple[str, bytes, str]] = []
    for name, (picture, caption) in _charts(
        c, (manifest.get("params") or {}).get("radius"), manifest.get("class_name")
    ).items():
        figures.append((name, _png_bytes(picture), caption))
    shown = min(N_GRID_SAMPLES, tracer.n_samples)
    grid = image_grid(np.asarray(tracer.run.samples[:shown]), columns=min(16, shown), scale=2)
    figures.append(("samples.png", _png_bytes(grid), f"The first {shown} of the {tracer.n_samples:,} samples."))
    for i in range(min(n_example_samples, tracer.n_samples)):
        figures.append(
            (
                f"parts-{i}.png",
                _png_bytes(tracer.parts_figure(i)),
                f"Sample {i}: its parts and the training images that gave the most informative pixels.",
            )
        )
        y, x = _example_pixel(tracer, i)
        figures.append(
            (
                f"pixel-{i}.png",
                _png_bytes(tracer.pixel_figure(i, y, x)),
                f"Sample {i}: one pixel, (y={y}, x={x}), traced to its source.",
            )
        )
    written = {name for name, _, _ in figures}
    for name, png, _ in figures:
        _write_bytes(out / name, png)
    for stale in [*out.glob("parts-*.png"), *out.glob("pixel-*.png")]:
        if stale.name not in written:
            stale.unlink()

    top = c.reuse.sort_by([("n_pixels", "descending"), ("n_informative", "descending"), ("src_image", "ascending")])
    thumbs = {
        int(i): _png_bytes(image_grid(tracer.dataset.images[int(i)][None], columns=1, scale=1, gap=0))
        for i in top.column("src_image").to_numpy()[:N_TOP_SOURCES]
    }
    page = _html(run_path, tracer, c, figures, thumbs, summary)
    atomic_write(out / "report.html", lambda tmp: tmp.write_text(page, encoding="utf-8"))
    return out
