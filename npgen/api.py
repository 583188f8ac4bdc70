"""The Python API the CLI is a thin layer over: the names of every workflow, each defined in its own module.

    build       resolve_params, build_database                          npgen.runs.build
    sample      GenerationRequest, CompletionInputs                     npgen.runs.request
                sample, complete; sample_run, complete_run (keywords)   npgen.runs.generate
    merge       parse_shard, shard_batches, merge_runs                  npgen.runs.shards
    read        Run, read_manifest, run_state                           npgen.runs.run
    verify      VerifyReport, expected_classes, verify_run              npgen.runs.verify
    eval        evaluate_run                                            npgen.evaluation.scores
    trace       trace_pixel, trace_sample, open_tracer, report_run      npgen.analysis.tracing
    audit       AuditResult, audit_runs                                 npgen.analysis.audit
    infomap     infomap_run, INFOMAP_FILES                              npgen.analysis.infomap

and load_dataset, resolve_class and NpgenError. The modules that load numba, the sampler or FAISS when imported
are imported on first use of one of their names (`__getattr__`, PEP 562): `import npgen.api` (every CLI
command) stays light, and reading a run (`trace_pixel`, `report_run`) loads neither the sampler nor FAISS.
"""

from __future__ import annotations

from importlib import import_module

from npgen.control.classes import resolve_class
from npgen.data.datasets import load_dataset
from npgen.errors import NpgenError
from npgen.runs.request import CompletionInputs, GenerationRequest
from npgen.runs.run import Run, read_manifest, run_state
from npgen.runs.shards import merge_runs, parse_shard, shard_batches

LAZY = {  # name -> the module that defines it, imported on first use
    **dict.fromkeys(("resolve_params", "build_database"), "npgen.runs.build"),
    **dict.fromkeys(("sample", "complete", "sample_run", "complete_run"), "npgen.runs.generate"),
    **dict.fromkeys(("VerifyReport", "expected_classes", "verify_run"), "npgen.runs.verify"),
    "evaluate_run": "npgen.evaluation.scores",
    **dict.fromkeys(("trace_pixel", "trace_sample", "open_tracer", "report_run"), "npgen.analysis.tracing"),
    **dict.fromkeys(("AuditResult", "audit_runs"), "npgen.analysis.audit"),
    **dict.fromkeys(("infomap_run", "INFOMAP_FILES"), "npgen.analysis.infomap"),
}


__all__ = [
    "CompletionInputs",
    "GenerationRequest",
    "NpgenError",
    "Run",
    "load_dataset",
    "merge_runs",
    "parse_shard",
    "read_manifest",
    "resolve_class",
    "run_state",
    "shard_batches",
    *LAZY,
]


def __getattr__(name: str):
    if name not in LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(LAZY[name]), name)
    globals()[name] = value  # found directly from now on
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *LAZY})
