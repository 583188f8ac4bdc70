"""A generation request: everything one `npgen sample` or `npgen complete` command asks for."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class CompletionInputs:
    """What `npgen complete` completes: test-split images (`test_indices`) or one image file (`image`), of which
    the pixels `mask` gives are kept (`npgen.control.regions.parse_mask`)."""

    mask: str
    test_indices: list[int] | None = None
    image: str | os.PathLike | None = None


@dataclass(frozen=True)
class GenerationRequest:
    """One generation command: what to generate, from which data, under which controls, and where to write it.

    `n` is the number of samples, or for a completion the completions of each input. `window` and
    `sampler_options` hold the explicit method parameters (None = unset: the dataset's preset, else the default
    in `npgen.params`); `sampler_options` includes `device`. `exclude` names training images that may give no
    pixel (`npgen.control.exclusion`), `class_map` steers regions to classes (`npgen.control.regions`), and
    `completion` makes the request a completion. `shard` ("I/K" or (I, K)) writes one shard of the run, `ray`
    runs its batches on a Ray cluster (`npgen.runs.ray`); both apply to sampling only. `command` is the command
    line the manifest records (None: this process's own).
    """

    out: str | os.PathLike
    dataset: str
    n: int
    class_value: str | int | None = None
    data_root: str | os.PathLike | None = None
    db_path: str | os.PathLike | None = None
    window: dict | None = None
    sampler_options: dict | None = None
    exclude: list[str] | tuple[str, ...] = ()
    class_map: str | None = None
    completion: CompletionInputs | None = None
    shard: str | tuple[int, int] | None = None
    ray: str | None = None
    resume: bool = False
    command: str | None = None
    clusters: int | None = None  # a flat folder's number of clusters (--clusters K); None: chosen by measurement
