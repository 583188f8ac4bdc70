"""The `npgen` command line: a thin layer over `npgen.api`."""

from __future__ import annotations

import json
import shlex
import sys
from dataclasses import asdict
from pathlib import Path

import click

from npgen import __version__, api, datasets
from npgen.database import Database, WindowParams
from npgen.errors import NpgenError

data_root_option = click.option(
    "--data-root", type=click.Path(file_okay=False), default=None,
    help=f"Folder holding mnist.npz / cifar10.npz or their raw files (default: ${datasets.DATA_ENV}).",
)  # fmt: skip


def window_options(command):
    """The build-time window parameters, shared by `build` and `sample`."""
    for option in reversed(
        [
            click.option("--half-window", default=3, show_default=True, help="Context window half-size h: the window is (2h+1)x(2h+1)."),
            click.option("--pad-value", default=0, show_default=True, help="Value read for context pixels outside the image (0..255)."),
            click.option("--retrieval-block", default=1, show_default=True, help="Block size s of the retrieval representation (1 = raw pixels)."),
        ]
    ):
        command = option(command)
    return command


class NpgenGroup(click.Group):
    """Turns NpgenError into a one-line message and exit status 2, and Ctrl-C into status 130."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except NpgenError as err:
            click.echo(f"error: {err}", err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            click.echo("interrupted; finished batches are kept, continue with the same command and --resume", err=True)
            sys.exit(130)


class LazyProgressBar:
    """A click progress bar on stderr that appears only once work is under way (not before an early error)."""

    def __init__(self, length: int, label: str) -> None:
        self.length, self.label, self.bar = length, label, None

    def update(self, steps: int) -> None:
        if self.bar is None:
            self.bar = click.progressbar(length=self.length, label=self.label, file=sys.stderr).__enter__()
        self.bar.update(steps)

    def __enter__(self) -> "LazyProgressBar":
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)


@click.group(cls=NpgenGroup)
@click.version_option(__version__, prog_name="npgen")
def main() -> None:
    """npgen: training-free image generation where every pixel has a recorded source."""


@main.group(cls=NpgenGroup)
def data() -> None:
    """List, inspect, import and download datasets."""


@data.command("list")
@data_root_option
def data_list(data_root) -> None:
    """Known datasets and whether each is present in the data root."""
    for name in datasets.known_datasets():
        try:
            datasets.load_dataset(name, data_root=data_root, verify=False)
            state = "present"
        except NpgenError as err:
            state = f"absent ({err})"
        click.echo(f"{name:10s} {datasets.dataset_card(name).get('description', '')[:60]:60s} {state}")


@data.command("info")
@click.argument("name")
@data_root_option
@click.option("--split", default="train", show_default=True, type=click.Choice(datasets.SPLITS))
def data_info(name, data_root, split) -> None:
    """Shape, classes and checksums of a dataset (known name or image folder)."""
    ds = datasets.load_dataset(name, split=split, data_root=data_root)
    counts = dict(zip(ds.class_names, map(int, __import__("numpy").bincount(ds.labels, minlength=ds.n_classes))))
    info = {
        "name": ds.name, "split": ds.split, "source": ds.source, "n_images": ds.n_images,
        "shape": [ds.height, ds.width, ds.channels], "images_per_class": counts,
        "images_sha256": ds.images_sha256, "labels_sha256": ds.labels_sha256,
    }  # fmt: skip
    click.echo(json.dumps(info, indent=2))


@data.command("import")
@click.argument("name", type=click.Choice(datasets.KNOWN))
@click.argument("source", type=click.Path(exists=True))
@data_root_option
def data_import(name, source, data_root) -> None:
    """Convert raw files (IDX, CIFAR python batches, a torchvision folder) into <data-root>/NAME.npz."""
    click.echo(f"wrote {datasets.import_dataset(name, source, data_root)}")


@data.command("download")
@click.argument("name", type=click.Choice(datasets.KNOWN))
@data_root_option
def data_download(name, data_root) -> None:
    """Download NAME with torchvision (needs internet and `pip install npgen[download]`)."""
    click.echo(f"wrote {datasets.download_dataset(name, data_root)}")


@main.command()
@click.option("--dataset", required=True, help="mnist, cifar10, or a folder of images with one subfolder per class.")
@data_root_option
@click.option("--db", "db_path", type=click.Path(file_okay=False), default=None, help="Database folder (default: under $NPGEN_CACHE or ~/.cache/npgen).")
@window_options
@click.option("--force", is_flag=True, help="Replace an existing database.")
def build(dataset, data_root, db_path, half_window, pad_value, retrieval_block, force) -> None:
    """Build the window database and FAISS index of a dataset."""
    params = WindowParams(half_window, pad_value, retrieval_block)
    db = api.build_database(dataset, data_root, db_path, params, force=force)
    click.echo(f"built {db.path} ({db.n_images} images, {db.manifest['build_seconds']:.1f} s)")


@main.command()
@click.option("--dataset", required=True, help="mnist, cifar10, or a folder of images with one subfolder per class.")
@click.option("--class", "class_value", default=None, help="Class name or index to condition on (default: unconditional).")
@click.option("-n", "n_samples", default=64, show_default=True, help="Number of samples.")
@click.option("--seed", default=0, show_default=True, help="Random seed; same seed and database give identical output.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="New run folder to write.")
@data_root_option
@click.option("--db", "db_path", type=click.Path(file_okay=False), default=None, help="Database folder (built there if absent; default: the cache).")
@window_options
@click.option("--eps", default=0.1, show_default=True, help="Admissible if d <= (1+eps)*d_min + abs-tol.")
@click.option("--abs-tol", default=1.0, show_default=True, help="Absolute distance tolerance (weighted squared grey levels).")
@click.option("--radius", default=0, show_default=True, help="Chebyshev radius of source positions around the target position.")
@click.option("--pool-size", default=100, show_default=True, help="Training images nearest the canvas that supply candidates (0 = all).")
@click.option("--k-min", default=4, show_default=True, help="Admissible set widened to at least this many nearest candidates.")
@click.option("--sigma", default=None, type=float, help="Gaussian window width (default (2h+1)/6.4).")
@click.option("--batch-size", default=100, show_default=True, help="Samples generated in lockstep.")
@click.option("--resume", is_flag=True, help="Continue an interrupted run in --out (same options).")
def sample(dataset, class_value, n_samples, seed, out, data_root, db_path, half_window, pad_value, retrieval_block,
           eps, abs_tol, radius, pool_size, k_min, sigma, batch_size, resume) -> None:  # fmt: skip
    """Generate new images pixel by pixel and record every pixel's source."""
    options = dict(eps=eps, abs_tol=abs_tol, radius=radius, pool_size=pool_size, k_min=k_min, sigma=sigma, seed=seed, batch_size=batch_size)
    command = shlex.join(["npgen", *sys.argv[1:]])
    with LazyProgressBar(n_samples, "sampling") as bar:
        path = api.sample_run(
            out, dataset, n_samples, class_value, data_root, db_path, WindowParams(half_window, pad_value, retrieval_block),
            options, resume=resume, command=command, progress=bar.update,
        )  # fmt: skip
    manifest = json.loads((Path(path) / "manifest.json").read_text())
    summary, timings = manifest["summary"], manifest["timings"]
    click.echo(
        f"wrote {n_samples} samples to {path} ({timings['images_per_second']:.1f} images/s); "
        f"median nearest-training distance {summary['median_nearest_distance']:.1f}, "
        f"median top-source share {summary['median_top_source_share']:.3f}"
    )


@main.command()
@click.argument("run", type=click.Path())
@data_root_option
def verify(run, data_root) -> None:
    """Re-derive every generated pixel from its recorded source; exit 1 on any mismatch."""
    report = api.verify_run(run, data_root)
    click.echo(json.dumps(asdict(report)))
    if not report.ok:
        click.echo(f"error: run {run} does not match its provenance", err=True)
        sys.exit(1)
