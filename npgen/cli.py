"""The `npgen` command line: a thin layer over `npgen.api`."""

from __future__ import annotations

import json
import shlex
import sys
from dataclasses import asdict
from pathlib import Path

import click

from npgen import __version__, api, datasets
from npgen.database import WindowParams
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


def _pixel(value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    try:
        y, x = (int(v) for v in value.split(","))
    except ValueError as err:
        raise NpgenError(f"--pixel takes Y,X (two integers, e.g. 12,9), got {value!r}") from err
    return y, x


@main.command(name="eval")
@click.argument("run", type=click.Path())
@click.option("--classifier", type=click.Path(dir_okay=False), default=None,
              help="Classifier weights for feature-space scores (default: the one benchmarks/classifier.py trains).")
@data_root_option
def evaluate(run, classifier, data_root) -> None:
    """Score a run: novelty, near-copies and, with a classifier, FID, precision, recall and class fidelity."""
    click.echo(f"scoring {run} ...", err=True)
    scores = api.evaluate_run(run, data_root, classifier)
    rows = [("", "samples", "train floor")]
    for key in ("fid", "precision", "recall", "class_accuracy", "class_confidence", "near_copy_rate"):
        if key in scores["samples"]:
            rows.append((key, f"{scores['samples'][key]:.4f}", f"{scores['floor'][key]:.4f}"))
    for key in ("pixel_nn_distance", "feature_nn_distance"):
        if key in scores["samples"]:
            rows.append((f"{key} (median)", f"{scores['samples'][key]['p50']:.2f}", f"{scores['floor'][key]['p50']:.2f}"))
    for row in rows:
        click.echo(f"{row[0]:<28}{row[1]:>12}{row[2]:>14}")
    if "skipped" in scores:
        click.echo(f"skipped {scores['skipped']}", err=True)
    click.echo(f"scores: {Path(run) / 'eval.json'}")


@main.command()
@click.argument("run", type=click.Path())
@click.option("--sample", "sample_index", required=True, type=int, help="Sample index within the run.")
@click.option("--pixel", default=None, help="Y,X of one pixel to trace (default: the whole sample's parts).")
@click.option("--out", "figure", type=click.Path(dir_okay=False), default=None, help="Figure to write (default: RUN/trace/...png).")
@click.option("--max-candidates", default=8, show_default=True, help="A pixel is informative if at most this many candidates were admissible.")
@data_root_option
def trace(run, sample_index, pixel, figure, max_candidates, data_root) -> None:
    """Trace a pixel, or a whole sample, back to the training images it was copied from."""
    from npgen.store import save_png
    from npgen.tracer import Tracer

    tracer = Tracer(run, data_root, max_candidates=max_candidates)
    where = _pixel(pixel)
    if where is not None:
        found = tracer.pixel(sample_index, *where)
        click.echo(
            f"sample {found.sample} pixel (y={found.y}, x={found.x}) <- training image {found.src_image} "
            f"(class {found.src_class_name}) at (y={found.src_y}, x={found.src_x}); displacement {found.displacement}; "
            f"distance {found.distance:.2f}; {found.n_candidates} admissible candidates"
            f"{'' if found.informative else ' (uninformative: a large tie)'}"
        )
        picture = tracer.pixel_figure(sample_index, *where)
        default = f"sample-{sample_index:05d}-pixel-{where[0]}-{where[1]}.png"
    else:
        parts = tracer.sample_parts(sample_index).sort_by([("size", "descending")])
        sources = len(set(parts.column("src_image").to_pylist()))
        click.echo(f"sample {sample_index}: {parts.num_rows} parts from {sources} training images; largest parts:")
        click.echo(f"{'part':>5} {'src_image':>9} {'class':>10} {'dy':>3} {'dx':>3} {'size':>5} {'informative':>11}")
        names, labels = tracer.dataset.class_names, tracer.dataset.labels
        for row in parts.slice(0, 12).to_pylist():
            click.echo(f"{row['part']:>5} {row['src_image']:>9} {names[labels[row['src_image']]]:>10} {row['dy']:>3} "
                       f"{row['dx']:>3} {row['size']:>5} {row['informative_size']:>11}")  # fmt: skip
        picture = tracer.parts_figure(sample_index)
        default = f"sample-{sample_index:05d}-parts.png"
    path = Path(figure) if figure else Path(run) / "trace" / default
    path.parent.mkdir(parents=True, exist_ok=True)
    save_png(picture, path)
    click.echo(f"figure: {path}")


@main.command()
@click.argument("run", type=click.Path())
@click.option("--out", type=click.Path(file_okay=False), default=None, help="Report folder (default: RUN/report).")
@data_root_option
def report(run, out, data_root) -> None:
    """Analyse how a run's samples are composed: tables, figures and one self-contained HTML page."""
    from npgen.report import write_report

    click.echo(f"analysing {run} ...", err=True)
    folder = write_report(run, out, data_root)
    click.echo(f"report: {Path(folder) / 'report.html'}")
