"""The run report's HTML page (`report_page`): one self-contained file, every image embedded as a data URI.

Its layout is the template `report_page.html` and its style `report.css`, both shipped beside this module.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from importlib.resources import files
from pathlib import Path
from string import Template

import numpy as np
import pyarrow as pa

from npgen.analysis.composition import COVERAGE_TOPS, Composition
from npgen.analysis.report_charts import finite_number, format_share, reuse_population

N_TABLE_SAMPLES = 20
N_TOP_SOURCES = 10


def _fmt(value, kind: str = "number") -> str:
    """A number for the page: share -> percent, ratio -> 3 decimals, id -> plain integer, else thousands separators."""
    if not finite_number(value):
        return "n/a"
    if kind == "share":
        return format_share(value)
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


NOT_RECORDED = "not recorded"


def _detail_rows(run_path: Path, manifest: dict) -> list[str]:
    """The rows of the run's details table, every one filled ("not recorded" when the manifest lacks it)."""
    esc = html.escape

    def joined(record) -> str:
        return ", ".join(f"{k}={v}" for k, v in (record or {}).items())

    dataset = manifest.get("dataset") or {}
    details = [
        ("run folder", str(run_path)),
        ("dataset", f"{dataset.get('name')} ({dataset.get('split')} split, SHA-256 {dataset.get('images_sha256')})"),
        ("class", "unconditional" if manifest.get("class_label") is None else manifest.get("class_name")),
        ("samples", manifest.get("n_samples")),
        ("command", manifest.get("command")),
        ("sampler parameters", joined(manifest.get("params"))),
        ("window parameters", joined((manifest.get("database") or {}).get("params"))),
        ("database", (manifest.get("database") or {}).get("id")),
        ("npgen version", manifest.get("npgen_version")),
        ("started", manifest.get("started")),
        ("finished", manifest.get("finished")),
        ("timings", joined(manifest.get("timings"))),
    ]
    return [
        f"<tr><th>{esc(k)}</th><td><code>{esc(str(v) if v not in (None, '') else NOT_RECORDED)}</code></td></tr>"
        for k, v in details
    ]


def _resource(name: str) -> str:
    """A file shipped beside this module (setup.cfg's package_data): the page template or its style sheet."""
    return (files(__package__) / name).read_text(encoding="utf-8")


def _table(header: Sequence[str], rows: list[str]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _figure(png: bytes, caption: str, alt: str, css: str = "") -> str:
    return f"<figure>{_img(png, alt, css)}<figcaption>{html.escape(caption)}</figcaption></figure>"


def _levels_section(manifest: dict, levels: Sequence[tuple[str, bytes, str]]) -> list[str]:
    """The "Pyramid levels" section: what a level is and how it is checked, then the samples' levels."""
    params = manifest.get("params") or {}
    count = params.get("levels")
    section = [
        "<h2>Pyramid levels</h2>",
        f"<p>This run was sampled coarse to fine over {html.escape(str(count))} pyramid levels "
        f"(coarse_weight {html.escape(str(params.get('coarse_weight')))}). Level k is the image 2<sup>k</sup> times "
        "smaller; level 0 is the samples themselves. At level k every training image is replaced by its box means "
        "(each pixel the rounded mean of a 2<sup>k</sup>x2<sup>k</sup> block of the original, computed exactly in "
        "integers), and every pixel of a sample's level-k image is copied from one of these box-mean images, its "
        "source kept like level 0's in <code>levels/K/provenance</code>. The coarsest level is sampled first; each "
        "finer level then takes its training images from those nearest the complete coarser level and, with a "
        "coarse_weight above 0, follows its layout: pixel (y, x) of level k has its parent (y // 2, x // 2) at level "
        "k + 1. A finer level is a new copy, not the coarser one refined in place. <code>npgen verify</code> derives "
        "every level's box-mean images again from the dataset and checks every copied pixel of every level against "
        "its recorded source; <code>npgen trace --pixel</code> names a pixel's source at each level. Below, each "
        "sample's levels side by side, every coarser level enlarged by pixel repetition to the sample's size so "
        "they line up.</p>",
    ]
    return section + [_figure(png, caption, name) for name, png, caption in levels]


def report_page(
    run_path: Path,
    manifest: dict,
    class_names: Sequence[str],
    c: Composition,
    figures: list[tuple[str, bytes, str]],
    thumbs: dict[int, bytes],
    summary: pa.Table | None,
    levels: Sequence[tuple[str, bytes, str]] = (),
) -> str:
    """The report's HTML: the run's details, the samples (the `figures` named samples.png, parts-*, pixel-*: the
    grid, then the example samples' parts and traced pixels), run-level numbers, the other figures (the charts;
    `figures`: name, PNG, caption), for a run with
    pyramid levels its samples' levels (`levels`: name, PNG, caption; no section when empty), per-sample numbers
    (with the nearest training image from `summary`, the run's samples.parquet) and the most-used training images
    (`thumbs`: their PNGs by index)."""
    run = c.run
    dataset = manifest["dataset"]["name"]
    class_text = "unconditional" if manifest.get("class_label") is None else f"class {manifest.get('class_name')}"
    esc = html.escape
    parts = [
        f"<h1>npgen run report: {esc(dataset)}, {esc(class_text)}</h1>",
        f'<p class="sub">Run <code>{esc(str(run_path))}</code> &middot; {run["n_samples"]:,} samples of '
        f"{run['height']}x{run['width']} from the {esc(str(manifest['dataset'].get('split', '')))} split "
        f"({run['n_train']:,} images) &middot; npgen {esc(str(manifest.get('npgen_version', '?')))}</p>",
        "<p>Every generated pixel is copied from a training image, and the run records which one, where, and how many "
        "candidates the sampler chose among. This page traces the samples back to their training images.</p>",
    ]
    parts.append(_table(["run", str(run_path.name)], _detail_rows(run_path, manifest)))

    parts.append("<h2>Samples</h2>")
    parts.append(
        "<p>The samples, then the most original of them (farthest, in L2 distance, from their nearest training "
        "image) and the least original (nearest), each with its parts and the training images that gave them, and "
        "one pixel traced to its source: an informative pixel of the sample's largest part.</p>"
    )
    samples = [f for f in figures if f[0] == "samples.png" or f[0].startswith(("parts-", "pixel-"))]
    for name, png, caption in samples:
        parts.append(_figure(png, caption, name, "pixels" if name == "samples.png" else ""))

    parts.append("<h2>Run-level numbers</h2>")
    rows = [
        f'<tr><th>{esc(name)}</th>{cells}<td class="why">{esc(why)}</td></tr>'
        for name, cells, why in _run_rows(run, manifest)
    ]
    parts.append(_table(["measure", "value", "what it means"], rows))

    parts.append("<h2>Charts</h2>")
    for name, png, caption in figures:
        if (name, png, caption) not in samples:
            parts.append(_figure(png, caption, name))
    if levels:
        parts += _levels_section(manifest, levels)

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
            f"<td>{esc(class_names[row['target_class']])}</td>",
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
            f"<td>{esc(class_names[row['src_class']])}</td>",
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
    return Template(_resource("report_page.html")).substitute(
        title=esc(f"npgen report: {run_path.name} ({dataset}, {class_text})"),
        css=_resource("report.css"),
        body="\n".join(parts),
    )
