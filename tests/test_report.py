"""The run report: pillow charts, then every file of a report of a real 6-sample MNIST run and its HTML page."""

import base64
import io
import json
import re
import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from npgen.analysis.charts import bar_chart, line_chart, series_colour
from npgen.analysis.report import CHART_FILES, write_report
from npgen.analysis.tracer import Tracer
from npgen.api import sample_run
from npgen.data.datasets import DATA_ENV
from npgen.errors import NpgenError

N_EXAMPLES = 2
TABLES = ["composition.json", "per_sample.parquet", "parts.parquet", "sources.parquet", "reuse.parquet"]


def colours(picture: Image.Image) -> set[tuple[int, int, int]]:
    return {tuple(c) for c in np.asarray(picture.convert("RGB")).reshape(-1, 3)}


# ---- charts ----


def test_bar_chart_draws_fractions_counts_and_grouped_series_at_the_requested_size():
    picture = bar_chart([0.5, 0.25, 0.125], ["a", "b", "c"], "shares", "x", "share")
    assert isinstance(picture, Image.Image) and picture.size == (640, 360) and picture.mode == "RGB"
    assert series_colour(0) in colours(picture)
    grouped = bar_chart(
        {"all": [3, 100, 12_000], "some": [0, 7, 5]}, ["1", "2", "3-4"], "counts", "x", "n", width=500, height=300
    )
    assert grouped.size == (500, 300)
    assert {series_colour(0), series_colour(1)} <= colours(grouped)
    empty = bar_chart([0, 0], ["a", "b"], "nothing yet", "x", "y")  # all-zero data still gets an axis
    assert empty.size == (640, 360)
    with pytest.raises(NpgenError, match="one value per label"):
        bar_chart([1, 2], ["a"], "t", "x", "y")


def test_line_chart_draws_several_series_and_skips_nan():
    picture = line_chart(
        [1, 3, 10],
        {"median": [0.1, 0.3, np.nan], "q75": [0.2, 0.4, 0.9]},
        "t",
        "k",
        "share",
        width=700,
        height=400,
        log_x=True,
    )
    assert picture.size == (700, 400)
    assert {series_colour(0), series_colour(1)} <= colours(picture)
    many = line_chart(np.arange(50), {"counts": np.arange(50) ** 2}, "t", "x", "y")
    assert many.size == (640, 360)
    with pytest.raises(NpgenError):
        line_chart([1, 2], {"s": [1]}, "t", "x", "y")
    with pytest.raises(NpgenError, match="too small"):
        line_chart([1, 2], {"s": [1, 2]}, "t", "x", "y", width=60, height=40)


# ---- a report of a real MNIST run ----


@pytest.fixture(scope="module")
def mnist_run(data_root, tmp_path_factory):
    """Six class-3 samples of full MNIST at one level, the database built in a temporary cache (the `cache` fixture,
    module-wide); pyramid reports are tests/test_level_trace.py's."""
    root = tmp_path_factory.mktemp("report")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NPGEN_CACHE", str(root / "cache"))
        patch.setenv(DATA_ENV, str(data_root))
        return sample_run(root / "run", "mnist", 6, 3, sampler_options={"levels": 1}, command="test")


@pytest.fixture(scope="module")
def report(mnist_run, data_root):
    return write_report(mnist_run, data_root=data_root, n_example_samples=N_EXAMPLES)


def figure_files() -> list[str]:
    return [*CHART_FILES, *(f"{kind}-{i}.png" for i in range(N_EXAMPLES) for kind in ("parts", "pixel"))]


def test_a_report_holds_every_file(report, mnist_run):
    assert report == mnist_run / "report"
    for name in [*TABLES, "report.json", "report.html", *figure_files()]:
        assert (report / name).is_file() and (report / name).stat().st_size > 0, name
    assert not (report / f"parts-{N_EXAMPLES}.png").exists()
    assert not [p.name for p in report.iterdir() if p.name.startswith(".")]  # no temporary files left
    for name in figure_files():
        with Image.open(report / name) as picture:
            picture.verify()
    for name in CHART_FILES[:-1]:  # the charts (samples.png is a grid of the samples)
        assert Image.open(report / name).size == (640, 360)
    assert pq.read_table(report / "per_sample.parquet").num_rows == 6


def test_report_json_holds_the_tracers_numbers_and_the_manifest(report, mnist_run, data_root):
    record = json.loads((report / "report.json").read_text())
    composition = Tracer(mnist_run, data_root=data_root).composition()
    assert record["run"] == json.loads(json.dumps(composition.run))
    assert record["run"]["n_samples"] == record["n_samples"] == 6
    assert record["dataset"]["name"] == "mnist" and record["class_label"] == 3 and record["class_name"] == "3"
    manifest = json.loads((mnist_run / "manifest.json").read_text())
    assert record["params"] == manifest["params"] and record["summary"] == manifest["summary"]
    saved = json.loads((report / "composition.json").read_text())
    assert saved["run"] == record["run"] and saved["displacement"] == composition.displacement


def test_report_html_is_one_self_contained_page(report):
    page = (report / "report.html").read_text(encoding="utf-8")
    record = json.loads((report / "report.json").read_text())
    assert 'src="http' not in page and 'href="http' not in page and "<script" not in page
    uris = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    n_top_sources = min(10, pq.read_table(report / "reuse.parquet").num_rows)
    assert len(uris) == page.count("data:image/png;base64,") == len(figure_files()) + n_top_sources
    for uri in uris:
        with Image.open(io.BytesIO(base64.b64decode(uri, validate=True))) as picture:
            picture.verify()
    # the embedded figures are the PNG files beside the page
    embedded = {base64.b64decode(uri) for uri in uris}
    assert all((report / name).read_bytes() in embedded for name in figure_files())
    assert "mnist" in page and "class 3" in page and str(report.parent) in page
    gini = record["run"]["gini"]
    assert f"{gini:.3f}" in page and f'title="{gini!r}"' in page
    # the run is conditioned on class 3: reuse is over that class's training images, and the page says so
    assert record["run"]["n_population"] == 6131 and "share of training images of class 3 used" in page
    assert "the 6,131 training images of class 3" in page
    assert "informative pixels" in page and "Per-sample numbers (first 6)" in page
    assert page.count("<figcaption>") == len(figure_files())
    assert "Pyramid levels" not in page and not list(report.glob("levels-*.png"))  # a one-level run has no levels


def test_the_page_leads_with_the_samples_then_the_most_and_least_original_then_the_charts(report, mnist_run):
    page = (report / "report.html").read_text(encoding="utf-8")
    order = [page.index(f'alt="{name}"') for name in ["samples.png", "parts-0.png", "pixel-0.png", "parts-1.png"]]
    assert order == sorted(order)
    assert order[-1] < page.index("Run-level numbers") < min(page.index(f'alt="{name}"') for name in CHART_FILES[:-1])
    summary = pq.read_table(mnist_run / "samples.parquet").to_pydict()
    distances = dict(zip(summary["sample"], summary["nearest_distance"]))
    examples = json.loads((report / "report.json").read_text())["examples"]
    assert [e["kind"] for e in examples] == ["most original", "least original"]
    assert examples[0]["sample"] == max(distances, key=distances.get)
    assert examples[1]["sample"] == min(distances, key=distances.get)
    assert f"Sample {examples[0]['sample']}, most original" in page


def test_the_traced_pixel_is_an_informative_one_of_the_largest_part(report, mnist_run, data_root):
    tracer = Tracer(mnist_run, data_root=data_root)
    for example in json.loads((report / "report.json").read_text())["examples"]:
        sample, pixel = example["sample"], example["pixel"]
        parts = tracer.sample_parts(sample).to_pydict()
        largest = max(parts["informative_size"])
        part = tracer.part_ids(sample)[pixel["y"], pixel["x"]]
        assert parts["informative_size"][parts["part"].index(part)] == largest == pixel["part_informative_size"]
        found = tracer.pixel(sample, pixel["y"], pixel["x"])
        assert found.informative and found.n_candidates == pixel["n_candidates"]
        rows = tracer.provenance_arrays(["n_candidates"], sample)["n_candidates"][0]
        in_part = (tracer.part_ids(sample) == part) & (rows <= tracer.max_candidates)
        assert found.n_candidates == rows[in_part].max()  # the most admissible candidates in that part


def test_every_field_of_the_run_table_is_filled(report, mnist_run):
    page = (report / "report.html").read_text(encoding="utf-8")
    table = page[page.index("<table>") : page.index("</table>")]
    assert "<th></th>" not in table and "<td></td>" not in table and "<code></code>" not in table
    assert f"<th>run</th><th>{mnist_run.name}</th>" in table
    for field in ["run folder", "dataset", "class", "samples", "command", "sampler parameters", "database", "finished"]:
        assert f"<th>{field}</th>" in table, field


def test_a_report_is_rewritten_in_place_and_drops_stale_examples(report, mnist_run, data_root, tmp_path):
    out = tmp_path / "elsewhere"
    assert write_report(mnist_run, out, data_root=data_root, n_example_samples=3) == out
    assert (out / "parts-2.png").is_file()
    write_report(mnist_run, out, data_root=data_root, n_example_samples=1)
    assert sorted(p.name for p in out.glob("p*-*.png")) == ["parts-0.png", "pixel-0.png"]
    assert (out / "report.html").read_text().count("<figcaption>") == len(CHART_FILES) + 2


def test_missing_incomplete_or_damaged_runs_are_refused(mnist_run, data_root, tmp_path):
    with pytest.raises(NpgenError, match="not an npgen run"):
        write_report(tmp_path / "nothing", data_root=data_root)
    assert not (tmp_path / "nothing").exists()
    incomplete = tmp_path / "incomplete"
    shutil.copytree(mnist_run, incomplete, ignore=shutil.ignore_patterns("report"))
    manifest = json.loads((incomplete / "manifest.json").read_text())
    (incomplete / "manifest.json").write_text(json.dumps({**manifest, "status": "running"}))
    with pytest.raises(NpgenError, match="incomplete"):
        write_report(incomplete, data_root=data_root)
    assert not (incomplete / "report").exists()
    (incomplete / "manifest.json").write_text(json.dumps(manifest))
    for part in (incomplete / "provenance").iterdir():
        part.write_bytes(b"not parquet")
    with pytest.raises(NpgenError, match="provenance"):
        write_report(incomplete, data_root=data_root)
    with pytest.raises(NpgenError, match="n_example_samples"):
        write_report(mnist_run, data_root=data_root, n_example_samples=-1)
