"""npgen: training-free, fully traceable image generation by copying pixels from training windows.

The one-line Python API (`npgen.library`): `run = npgen.sample("mnist", n=16, class_label=3)`, then
`npgen.verify(run)`, `npgen.trace(run, sample=0, pixel=(y, x))` and `npgen.load(folder)`; `npgen.api` names
every workflow. Importing npgen loads nothing else: each name is imported on first use.
"""

from __future__ import annotations

from importlib import import_module

__version__ = "0.1.0"

LIBRARY = ("sample", "verify", "trace", "load", "SampledRun")


def __getattr__(name: str):
    if name not in LIBRARY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module("npgen.library"), name)


def __dir__() -> list[str]:
    return sorted({*globals(), *LIBRARY})
