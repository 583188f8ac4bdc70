"""Reading a run is plain data: the store, tracer, report, figures and metrics never load the sampler or FAISS.

Each check runs in a fresh interpreter, so that what the test process itself imported does not count.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from npgen.api import sample_run
from npgen.data.datasets import DATA_ENV

SAMPLER_SIDE = (
    "npgen.rule.sampler",
    "npgen.rule.pool",
    "npgen.rule.windows",
    "npgen.data.database",
    "npgen.data.index",
    "npgen.api",
    "npgen.cli",
    "npgen.analysis.likelihood",
    "faiss",
)


def loaded_modules(code: str) -> dict:
    """Run `code` in a fresh interpreter; it prints a JSON object, to which the loaded modules are added."""
    program = (
        f"import json, sys\nresult = {{}}\n{code}\nresult['modules'] = sorted(sys.modules)\nprint(json.dumps(result))"
    )
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


@pytest.mark.parametrize(
    "module",
    [
        "npgen.rule.provenance",
        "npgen.runs.run",
        "npgen.runs.png",
        "npgen.runs.store",
        "npgen.analysis.tracer",
        "npgen.analysis.report",
        "npgen.analysis.trace_figures",
        "npgen.analysis.drawing",
        "npgen.analysis.charts",
        "npgen.evaluation.metrics",
    ],
)
def test_importing_the_reading_side_loads_no_sampler_or_faiss(module):
    modules = loaded_modules(f"import {module}")["modules"]
    assert [m for m in SAMPLER_SIDE if m in modules] == []
    if module in (
        "npgen.rule.provenance",
        "npgen.runs.store",
        "npgen.evaluation.metrics",
        "npgen.analysis.trace_figures",
        "npgen.analysis.drawing",
        "npgen.analysis.charts",
    ):
        assert "numba" not in modules  # only the tracer (its parts and composition) has numba kernels
    if module in ("npgen.analysis.trace_figures", "npgen.analysis.drawing", "npgen.analysis.charts"):
        assert "npgen.analysis.tracer" not in modules  # the tracer imports the figures, never the other way round


def test_the_report_uses_only_public_names_of_other_modules():
    for path in (Path(__file__).resolve().parent.parent / "npgen" / "analysis").glob("report*.py"):
        source = path.read_text()
        private = re.findall(r"\b(?:tracer|figures|charts|store)\._\w+|from npgen[\w.]* import [^\n]*\b_\w+", source)
        assert private == [], path


@pytest.fixture(scope="module")
def mnist_run(tmp_path_factory, data_root):
    root = tmp_path_factory.mktemp("plain")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NPGEN_CACHE", str(root / "cache"))
        patch.setenv(DATA_ENV, str(data_root))
        return sample_run(root / "run", "mnist", 3, 5, sampler_options={"pool_size": 20}, command="test")


def test_tracing_and_reporting_a_real_run_loads_no_sampler_or_faiss(mnist_run, tmp_path):
    code = f"""
from npgen.analysis.report import write_report
from npgen.runs.run import Run
from npgen.analysis.tracer import Tracer
run = Run({str(mnist_run)!r})
tracer = Tracer(run.path)
result['parts'] = tracer.sample_parts(1).num_rows
result['source_class'] = tracer.pixel(1, 14, 14).src_class_name
result['rows'] = run.provenance().num_rows
result['report'] = str(write_report(run.path, {str(tmp_path / "report")!r}))
"""
    result = loaded_modules(code)
    assert result["parts"] > 10 and result["source_class"] == "5" and result["rows"] == 3 * 28 * 28
    assert (tmp_path / "report" / "report.html").is_file()
    assert [m for m in SAMPLER_SIDE if m in result["modules"]] == []


def test_npgen_trace_and_report_go_through_the_api_without_the_sampler(mnist_run, tmp_path):
    code = f"""
from npgen.cli import main
main(["trace", {str(mnist_run)!r}, "--sample", "1", "--pixel", "14,14", "--out", {str(tmp_path / "pixel.png")!r}], standalone_mode=False)
main(["trace", {str(mnist_run)!r}, "--sample", "0", "--out", {str(tmp_path / "parts.png")!r}], standalone_mode=False)
main(["report", {str(mnist_run)!r}, "--out", {str(tmp_path / "report")!r}], standalone_mode=False)
"""
    modules = loaded_modules(code)["modules"]
    assert "npgen.api" in modules and "npgen.analysis.tracer" in modules
    assert [m for m in SAMPLER_SIDE if m in modules and m not in ("npgen.api", "npgen.cli")] == []
    assert (tmp_path / "pixel.png").is_file() and (tmp_path / "parts.png").is_file()
    assert (tmp_path / "report" / "report.html").is_file()
