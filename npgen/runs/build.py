"""The window database a run samples from: built or opened with the dataset's resolved parameters (`npgen build`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from npgen.data.database import Database, WindowParams, build_lock, default_path, is_database
from npgen.data.db_folder import check_replaceable
from npgen.data.datasets import Dataset, load_dataset
from npgen.data.datasets import preset as preset_for
from npgen.params import SAMPLER_PARAMS, resolve


def resolve_params(
    data: Dataset, window: dict | None = None, sampler_options: dict | None = None
) -> tuple[WindowParams, dict]:
    """(window parameters, sampler options) for a dataset: explicit values over its preset over the defaults."""
    preset = preset_for(data)
    window_params = WindowParams.resolve(window or {}, preset)
    options = resolve(SAMPLER_PARAMS, sampler_options or {}, preset)
    return window_params, options


def build_database(
    dataset: str,
    data_root=None,
    db_path=None,
    window: dict | None = None,
    force: bool = False,
    progress: Callable[[int], None] | None = None,
    ray_address: str | None = None,
    on_size: Callable[[int], None] | None = None,
    clusters: int | None = None,
) -> tuple[Database, bool]:
    """Build the window database of a dataset (a known name or an image folder; into the cache when db_path is None).

    Returns (database, built): an existing npgen database at the path that was built from this data with these
    parameters is left as it is (built False) unless `force`; one built for other data or parameters is refused
    (NpgenError saying which parameter differs) unless `force`. `window` holds explicit build parameters; the
    others come from the dataset's preset. `on_size(n_images)` is called once the data has loaded, `progress(0)`
    when building starts, then `progress(k)` after each chunk of k images built; `ray_address` builds the chunks as Ray tasks (`Database.build`).
    `clusters` sets a flat folder's number of clusters (`npgen.data.clusters`; None: measured).
    """
    if ray_address is not None:  # before loading anything, as `npgen sample --ray` does: Ray would retry for minutes
        from npgen.runs.ray import check_address, import_ray

        import_ray()
        check_address(ray_address)
    data = load_dataset(dataset, data_root=data_root, clusters=clusters)
    if on_size is not None:
        on_size(data.n_images)
    params, _ = resolve_params(data, window)
    path = Path(db_path) if db_path is not None else default_path(data, params)
    if force and (path.exists() or path.is_symlink()):
        check_replaceable(path)  # before the lock, which would leave .NAME.lock beside a folder it refuses
    with build_lock(path):  # not while a `npgen sample` builds the same database
        if not force and is_database(path):
            db = Database.load(path)
            db.check(data, params)
            return db, False
        if progress is not None:
            progress(0)
        return Database.build(data, path, params, force=force, progress=progress, ray_address=ray_address), True
