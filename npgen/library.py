"""The Python API in one line: `npgen.sample`, `npgen.verify` and `npgen.trace`.

    import npgen
    run = npgen.sample("mnist", n=16, class_label=3)   # a SampledRun: images and their provenance
    run.images                                         # uint8 (16, 28, 28, 1)
    run.provenance                                     # one row per pixel: sample, y, x, src_image, src_y, ...
    npgen.verify(run).ok                               # True: every pixel re-derived from its recorded source
    npgen.trace(run, sample=0, pixel=(12, 9))          # where that pixel came from (a PixelTrace)

The data root is found as by the command line (`npgen.data.data_root`: `data_root=`, $NPGEN_DATA, the
remembered root, npgen's own data folder) and the window database is the cached one (built there on first
use). A run is a folder like `npgen sample --out`'s: `out=` names it; by default it is a new folder under the
system's temporary directory (`tempfile.gettempdir()`, named npgen-run-*), so calling `sample` again never
collides with an earlier run. Errors are `NpgenError`s that name this API's arguments (`out=`, `force=True`),
not the command line's flags.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from npgen.errors import NpgenError
from npgen.params import BUILD_PARAMS, PARAMS, RUN, SAMPLER_PARAMS

SAMPLE_OPTIONS = (*BUILD_PARAMS, *SAMPLER_PARAMS, *(name for name, p in PARAMS.items() if p.stage == RUN))

FLAG_NAMES = {"-n": "n", "--class": "class_label", "--db": "db"}  # the rest: --k-min is k_min
SWITCHES = {"--resume": "resume=True", "--force": "force=True"}
FLAG = re.compile(r"(?<![\w-])(-n|--[a-z][a-z0-9-]*)\b( (?=[0-9A-Z])| (?=[a-z]))?")


def _argument(match: re.Match) -> str:
    flag, space = match[1], match[2]
    if flag in SWITCHES:
        return SWITCHES[flag] + (space or "")
    name = FLAG_NAMES.get(flag) or flag[2:].replace("-", "_")
    if space is None:
        return name + "="  # "a new out=, or ..."
    following = match.string[match.end() : match.end() + 1]
    return name + "=" if following.isdigit() or following.isupper() else name + " "  # "k_min=3", "n must be"


def library_words(text: str) -> str:
    """An error message of the command line with each flag outside `backticks` named as this API's argument:
    `--out` as `out=`, `--force` as `force=True`, `-n 2` as `n=2`, `--k-min 3` as `k_min=3`."""
    pieces = text.split("`")
    for i in range(0, len(pieces), 2):  # even pieces lie outside backticks
        pieces[i] = FLAG.sub(_argument, pieces[i])
    return "`".join(pieces)


@contextmanager
def library_errors():
    """Re-raise an NpgenError in this API's words (`library_words`)."""
    try:
        yield
    except NpgenError as err:
        raise NpgenError(library_words(str(err))) from None


@dataclass
class SampledRun:
    """A finished run: its folder, samples and manifest, and (read when first used) its provenance table."""

    path: Path
    images: np.ndarray = field(repr=False)  # uint8 (N, H, W, C)
    manifest: dict = field(repr=False)

    @cached_property
    def provenance(self):
        """One row per generated pixel (a pyarrow Table): sample, y, x, src_image, src_y, src_x, n_candidates,
        distance; `src_image` indexes the training split in its canonical order."""
        from npgen.runs.run import Run

        with library_errors():
            return Run(self.path).provenance()

    @property
    def class_name(self) -> str | None:
        """The class the samples were conditioned on (None: unconditional)."""
        return self.manifest.get("class_name")

    def __len__(self) -> int:
        return len(self.images)


def _run_path(run: SampledRun | str | os.PathLike) -> Path:
    return run.path if isinstance(run, SampledRun) else Path(run)


def _note(quiet: bool):
    return None if quiet else (lambda text: print(text, file=sys.stderr, flush=True))


def sample(
    dataset: str,
    n: int = 64,
    class_label: str | int | None = None,
    out: str | os.PathLike | None = None,
    data_root: str | os.PathLike | None = None,
    db: str | os.PathLike | None = None,
    exclude: list[str] | tuple[str, ...] = (),
    resume: bool = False,
    quiet: bool = False,
    **options,
) -> SampledRun:
    """Sample `n` new images of `dataset` ("mnist", "cifar10", an image folder or file), of class `class_label`
    (a name or index; None: unconditional), into the run folder `out` (default: a new temporary folder), and
    return them with their provenance.

    `options` are the method parameters of `npgen sample --help` with underscores (seed=1, k_min=2,
    half_window=3, max_source_share=0.1, ...); unset ones take the dataset's preset. `exclude` takes
    `--exclude` specs. Notes on slow first steps (building the database, compiling the kernels) go to stderr
    unless `quiet`."""
    from npgen.runs.generate import sample_run

    unknown = sorted(set(options) - set(SAMPLE_OPTIONS))
    if unknown:
        raise NpgenError(
            f"unknown option {unknown[0]}=: the method parameters are {', '.join(sorted(SAMPLE_OPTIONS))}; "
            "see `npgen sample --help`"
        )
    window = {name: options.pop(name) for name in BUILD_PARAMS if name in options}
    path = Path(out) if out is not None else Path(tempfile.mkdtemp(prefix="npgen-run-")) / "run"
    with library_errors():
        sample_run(
            path,
            dataset,
            n,
            class_value=class_label,
            data_root=data_root,
            db_path=db,
            window=window,
            sampler_options=options,
            exclude=exclude,
            resume=resume,
            command=f"npgen.sample({dataset!r}, n={n}, class_label={class_label!r})",
            note=_note(quiet),
        )
        return load(path)


def load(run: str | os.PathLike) -> SampledRun:
    """A finished run folder (of `sample` or `npgen sample`) read back as a SampledRun."""
    from npgen.runs.run import Run

    with library_errors():
        found = Run(run)
        return SampledRun(found.path, np.array(found.samples), found.manifest)


def verify(run: SampledRun | str | os.PathLike, data_root: str | os.PathLike | None = None):
    """Re-derive every generated pixel of `run` from its recorded source (`npgen verify`): a VerifyReport whose
    `ok` is True when nothing differs."""
    from npgen.runs.verify import verify_run

    with library_errors():
        return verify_run(_run_path(run), data_root)


def trace(
    run: SampledRun | str | os.PathLike,
    sample: int = 0,
    pixel: tuple[int, int] | None = None,
    data_root: str | os.PathLike | None = None,
    max_candidates: int | None = None,
):
    """Where pixel (y, x) of sample `sample` was copied from (a PixelTrace: training image, its class, source
    position, admissible candidates, distance), or with no `pixel` the sample's parts (a pyarrow Table: part,
    src_image, dy, dx, size, informative_size, ...), as `npgen trace` prints them. No figure is written."""
    from npgen.analysis.tracing import open_tracer

    with library_errors():
        tracer = open_tracer(_run_path(run), data_root, max_candidates)
        if pixel is None:
            return tracer.sample_parts(sample)
        y, x = pixel
        return tracer.pixel(sample, y, x)
