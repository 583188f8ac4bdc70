"""The command line's view of where datasets are: `npgen data list` (a table) and `npgen data root [PATH]`."""

from __future__ import annotations

import textwrap
from pathlib import Path

import click

from npgen.console import printable
from npgen.data import data_root as roots
from npgen.data.dataset_cards import dataset_card, known_datasets
from npgen.errors import NpgenError

DESCRIPTION_WIDTH = 60


def human_size(size: int) -> str:
    """A byte count in B, KiB, MiB or GiB."""
    from npgen.data.cache import human_size as cache_size  # the cache module loads the database module

    return cache_size(size)


def show_datasets(data_root: str | None) -> None:
    """A table of the known datasets: name, present or absent, size, where and a description (wrapped at words);
    for an absent one, how to get it. Then the data root in effect and npgen's own data folder."""
    rows = [("name", "state", "size", "where", "description")]
    missing = []
    for name in known_datasets():
        root = roots.data_root_for(data_root, name)
        files = roots.dataset_files(name, root.path) if root is not None and root.path.is_dir() else ()
        description = textwrap.wrap(dataset_card(name).get("description", ""), DESCRIPTION_WIDTH) or [""]
        if files:
            size = human_size(sum(path.stat().st_size for path in files))
            where = str(files[0] if len(files) == 1 else files[0].parent)
            rows.append((name, "present", size, printable(where), description[0]))
        else:
            rows.append((name, "absent", "-", "-", description[0]))
            missing.append(name)
        rows.extend(("", "", "", "", line) for line in description[1:])
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[4])
    for name in missing:
        click.echo(
            f"to get {name}: `npgen data download {name}`, or `npgen data import {name} SOURCE` (its raw files or "
            f"{name}.npz), or point `npgen data root DIR` at a folder holding {name}.npz"
        )
    current = roots.data_root_for(data_root)
    click.echo(f"data root: {printable(current.describe()) if current is not None else 'none given'}")
    click.echo(f"npgen's own data folder (`npgen data import` copies there): {printable(roots.own_data_folder())}")


@click.command("root")
@click.argument("path", required=False, type=click.Path(file_okay=False))
def data_root_command(path) -> None:
    """Print the data root in effect, or remember PATH as the data root for every later command.

    A data root given with --data-root or NPGEN_DATA is used first (and remembered when it holds datasets);
    else the remembered one; else npgen's own data folder, where `npgen data import` copies datasets."""
    if path is None:
        current = roots.data_root_for(None)
        if current is None:
            raise NpgenError(
                "no data root yet: remember one with `npgen data root DIR` (a folder holding mnist.npz / cifar10.npz)"
            )
        click.echo(printable(current.describe()))
        return
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise NpgenError(f"data root {path} is not a folder; give the folder that holds mnist.npz / cifar10.npz")
    if not roots.remember_root(folder) and roots.remembered_root() != folder.resolve():
        raise NpgenError(f"cannot write {roots.config_path()}; check that npgen's cache folder is writable")
    held = roots.held_datasets(folder)
    click.echo(f"data root: {printable(folder.resolve())} (remembered in {printable(roots.config_path())})")
    if not held:
        click.echo(f"note: {printable(folder)} holds no known dataset yet (mnist.npz, cifar10.npz)", err=True)
