"""Where known datasets are found: the data root given now, the one npgen remembers, and npgen's own data folder.

A known dataset (mnist, cifar10) is read from, in this order:

1. the data root given to the command (``--data-root DIR``, or ``data_root=`` in Python);
2. ``$NPGEN_DATA``;
3. the remembered data root: the last root given by 1 or 2 that held a known dataset, or the one set with
   ``npgen data root DIR``, kept in ``config.json`` in npgen's cache folder (``$NPGEN_CACHE`` or ~/.cache/npgen);
4. npgen's own data folder, ``data/`` in the cache folder, where ``npgen data import`` copies datasets.

So a data root given once (say ``NPGEN_DATA=../shared/datasets`` in the quick start) is found by every later
command without it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from npgen.data.dataset_cards import KNOWN
from npgen.data.files import cache_root, write_json
from npgen.data.readers import raw_files

DATA_ENV = "NPGEN_DATA"
CONFIG_FILE = "config.json"  # in the cache folder: {"data_root": "/absolute/path"}
OWN_DATA_FOLDER = "data"  # in the cache folder: the datasets `npgen data import` copied


@dataclass(frozen=True)
class DataRoot:
    """A data root and where it came from: "given" (--data-root), "env" ($NPGEN_DATA), "remembered", "own"."""

    path: Path
    origin: str

    def describe(self) -> str:
        """The root and its origin, in words."""
        origin = {
            "given": "given with --data-root",
            "env": f"from ${DATA_ENV}",
            "remembered": f"remembered in {config_path()}",
            "own": "npgen's own data folder",
        }[self.origin]
        return f"{self.path} ({origin})"


def config_path() -> Path:
    """The file npgen keeps its remembered settings in: config.json in the cache folder."""
    return cache_root() / CONFIG_FILE


def own_data_folder() -> Path:
    """npgen's own data folder (data/ in the cache folder), where `npgen data import` copies datasets."""
    return cache_root() / OWN_DATA_FOLDER


def _read_config() -> dict:
    try:
        record = json.loads(config_path().read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def remembered_root() -> Path | None:
    """The data root npgen remembers (config.json in the cache folder), or None."""
    value = _read_config().get("data_root")
    return Path(value) if isinstance(value, str) and value else None


def remember_root(path: str | os.PathLike) -> bool:
    """Remember `path` (made absolute) as the data root; True if that changed the config. A cache folder that
    cannot be written leaves the config as it was (False): remembering is a convenience, never an error."""
    absolute = Path(os.path.abspath(Path(path).expanduser()))  # links kept: a retargeted link is followed later
    record = _read_config()
    if record.get("data_root") == str(absolute):
        return False
    try:
        config_path().parent.mkdir(parents=True, exist_ok=True)
        write_json(config_path(), {**record, "data_root": str(absolute)})
    except OSError:
        return False
    return True


def dataset_files(name: str, root: Path) -> tuple[Path, ...]:
    """The files of known dataset `name` in data root `root`: (NAME.npz,), its raw training files, or ()."""
    npz = root / f"{name}.npz"
    if npz.is_file():
        return (npz,)
    try:
        return raw_files(name, root, "train") or ()
    except OSError:
        return ()


def held_datasets(root: Path) -> list[str]:
    """The known datasets `root` holds (as NAME.npz or raw files)."""
    return [name for name in KNOWN if root.is_dir() and dataset_files(name, root)]


def given_root(data_root: str | os.PathLike | None) -> DataRoot | None:
    """The data root this command was given: `data_root`, else $NPGEN_DATA, else None."""
    if data_root not in (None, ""):
        return DataRoot(Path(data_root).expanduser(), "given")
    env = os.environ.get(DATA_ENV)
    return DataRoot(Path(env).expanduser(), "env") if env else None


def data_root_for(data_root: str | os.PathLike | None = None, name: str | None = None) -> DataRoot | None:
    """The data root to read known dataset `name` from (any known dataset when None), in the order of the module
    docstring: a given root always wins; else the remembered root when it holds `name`, else npgen's own data
    folder when it does, else the remembered root (to say what is missing there). None when there is none."""
    given = given_root(data_root)
    if given is not None:
        return given
    remembered, own = remembered_root(), own_data_folder()
    names = [name] if name is not None else list(KNOWN)
    for root, origin in ((remembered, "remembered"), (own, "own")):
        if root is not None and any(dataset_files(n, root) for n in names if root.is_dir()):
            return DataRoot(root, origin)
    return DataRoot(remembered, "remembered") if remembered is not None else None


def remember_if_given(data_root: str | os.PathLike | None) -> bool:
    """After a command read a known dataset from a given root (--data-root or $NPGEN_DATA): remember that root
    when it holds known datasets. True if the remembered root changed."""
    given = given_root(data_root)
    if given is None or not held_datasets(given.path):
        return False
    return remember_root(given.path)
