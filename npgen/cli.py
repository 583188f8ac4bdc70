"""The `npgen` command line: a thin layer over `npgen.api`."""

from __future__ import annotations

import json
import shlex
import sys
from dataclasses import asdict
from pathlib import Path

import click
import numpy as np

from npgen import __version__, api
from npgen.cli_data import data_root_command, show_datasets
from npgen.cli_options import clusters_option, param_options
from npgen.console import (
    NpgenGroup,
    Progress,
    check_importable,
    printable,
    show_pixel_trace,
    show_sample_parts,
    show_scores,
    show_usage,
    show_written,
)
from npgen.control.exclusion import SPEC_HELP
from npgen.control.regions import CLASS_MAP_HELP, MASK_HELP
from npgen.data import datasets
from npgen.errors import NpgenError
from npgen.params import BUILD, BUILD_PARAMS, PARAMS, RUN, SAMPLE
from npgen.wording import plural

data_root_option = click.option(
    "--data-root",
    type=click.Path(file_okay=False),
    default=None,
    help=f"Folder holding mnist.npz / cifar10.npz or their raw files (default: ${datasets.DATA_ENV}, else the "
    "remembered one, see `npgen data root`).",
)


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
    """Known datasets: present or absent (and how to get them), where, size; the data root in effect."""
    show_datasets(data_root)


data.add_command(data_root_command)


@data.command("info")
@click.argument("name")
@data_root_option
@click.option("--split", default="train", show_default=True, type=click.Choice(datasets.SPLITS))
def data_info(name, data_root, split) -> None:
    """Shape, classes and checksums of a dataset (known name or image folder)."""
    ds = datasets.load_dataset(name, split=split, data_root=data_root)
    counts = dict(zip(ds.class_names, map(int, np.bincount(ds.labels, minlength=ds.n_classes))))
    info = {
        "name": ds.name,
        "split": ds.split,
        "source": ds.source,
        "n_images": ds.n_images,
        "shape": [ds.height, ds.width, ds.channels],
        "images_per_class": counts,
        "images_sha256": ds.images_sha256,
        "labels_sha256": ds.labels_sha256,
    }
    click.echo(json.dumps(info, indent=2))


@data.command("import")
@click.argument("name", metavar="NAME")
@click.argument("source", type=click.Path(exists=True))
@data_root_option
def data_import(name, source, data_root) -> None:
    """Copy NAME from SOURCE (raw IDX files, CIFAR python batches, an .npz or a folder holding NAME.npz) into
    npgen's own data folder (or --data-root), where every later command finds it."""
    check_importable(name, "import")
    click.echo(f"wrote {datasets.import_dataset(name, source, data_root)}")


@data.command("download")
@click.argument("name", metavar="NAME")
@data_root_option
def data_download(name, data_root) -> None:
    """Download NAME with torchvision (needs internet and `pip install -e '.[download]'` from npgen's folder)."""
    check_importable(name, "download")
    click.echo(f"wrote {datasets.download_dataset(name, data_root)}")


@main.group(cls=NpgenGroup)
def cache() -> None:
    """List and clean what npgen keeps in $NPGEN_CACHE (default ~/.cache/npgen)."""


@cache.command("list")
def cache_list() -> None:
    """Each database, classifier and leftover temporary file in the cache, with its size and dataset."""
    from npgen.data import cache as cache_module  # loads the database module and FAISS: only for this command

    found = cache_module.entries()
    click.echo(f"cache: {printable(cache_module.root())}")
    for entry in found:
        click.echo(printable(entry.line()))
    total = sum(entry.size for entry in found)
    click.echo(
        f"{plural(len(found), 'entry', 'entries')}, {cache_module.human_size(total)}" if found else "the cache is empty"
    )


@cache.command("clean")
@click.option(
    "--stale",
    "mode",
    flag_value="stale",
    default=True,
    help="Remove leftover temporary files and folders (the default).",
)
@click.option(
    "--all",
    "mode",
    flag_value="all",
    help="Also remove every database, classifier, cached features and decoded image folder (rebuilt when needed).",
)
def cache_clean(mode) -> None:
    """Remove leftovers of interrupted builds and writes (--stale), or everything npgen made there (--all)."""
    from npgen.data import cache as cache_module  # loads the database module and FAISS: only for this command

    removed, busy = cache_module.clean(everything=mode == "all")
    for entry in removed:
        click.echo(f"removed {entry.kind} {printable(entry.path)} ({cache_module.human_size(entry.size)})")
    for entry in busy:
        click.echo(f"kept {entry.kind} {printable(entry.path)}: in use or too recent", err=True)
    click.echo(
        f"removed {plural(len(removed), 'entry', 'entries')}, {cache_module.human_size(sum(e.size for e in removed))}"
    )


@main.command()
@click.option("--dataset", required=True, help="mnist, cifar10, or a folder of images with one subfolder per class.")
@data_root_option
@click.option(
    "--db",
    "db_path",
    type=click.Path(file_okay=False),
    default=None,
    help="Database folder (default: under $NPGEN_CACHE or ~/.cache/npgen).",
)
@param_options(BUILD)
@clusters_option
@click.option(
    "--force", is_flag=True, help="Rebuild an existing npgen database (one that is up to date is otherwise kept)."
)
@click.option(
    "--ray",
    "ray_address",
    is_flag=False,
    flag_value="local",
    default=None,
    metavar="[ADDRESS]",
    help="Build the chunks as Ray tasks: on the cluster at ADDRESS, or a local one when none is given (needs the ray extra).",
)
def build(dataset, data_root, db_path, force, ray_address, clusters, **window) -> None:
    """Build the window database and FAISS index of a dataset (nothing to do when it is up to date)."""
    with Progress(0, "building") as progress:
        db, built = api.build_database(
            dataset,
            data_root,
            db_path,
            window,
            force=force,
            progress=progress.update,
            ray_address=ray_address,
            on_size=lambda n: setattr(progress, "length", n),
            clusters=clusters,
        )
    if built:
        click.echo(f"built {printable(db.path)} ({db.n_images} images, {db.manifest['build_seconds']:.1f} s)")
    else:
        click.echo(
            f"database {printable(db.path)} is up to date ({db.n_images} images); nothing to do (--force rebuilds it)"
        )


def generation_options(command):
    """The options `sample` and `complete` share: data root, database, every method parameter, --exclude, --resume."""
    for option in reversed(
        [
            data_root_option,
            click.option(
                "--db",
                "db_path",
                type=click.Path(file_okay=False),
                default=None,
                help="Database folder (built there if absent; default: the cache).",
            ),
            param_options(BUILD),
            param_options(SAMPLE),
            param_options(RUN),  # --device (npgen.rule.cuda)
            clusters_option,
            click.option("--exclude", "exclude", multiple=True, metavar="SPEC", help=SPEC_HELP),
            click.option("--resume", is_flag=True, help="Continue an interrupted run in --out (same options)."),
        ]
    ):
        command = option(command)
    return command


def generation_request(params: dict, **fields) -> api.GenerationRequest:
    """The request of a `sample` or `complete` command: its method parameters `params` (build ones apart), the
    other `fields`, and the command line."""
    window = {name: params.pop(name) for name in BUILD_PARAMS}
    command = shlex.join(["npgen", *sys.argv[1:]])
    clusters = params.pop("clusters")
    return api.GenerationRequest(window=window, sampler_options=params, command=command, clusters=clusters, **fields)


def echo_note(text: str) -> None:
    """A note of a running command, on stderr."""
    click.echo(printable(text), err=True)


@main.command()
@click.option("--dataset", required=True, help="mnist, cifar10, or a folder of images with one subfolder per class.")
@click.option(
    "--class", "class_value", default=None, help="Class name or index to condition on (default: unconditional)."
)
@click.option("-n", "n_samples", default=64, show_default=True, help="Number of samples.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="New run folder to write.")
@generation_options
@click.option("--class-map", "class_map", default=None, metavar="SPEC", help=CLASS_MAP_HELP)
@click.option(
    "--shard",
    default=None,
    metavar="I/K",
    help="Write only shard I of K (batches I, I+K, I+2K, ...; I counted from 0) into --out; join the K shard "
    "folders with `npgen merge`.",
)
@click.option(
    "--ray",
    "ray_address",
    is_flag=False,
    flag_value="local",
    default=None,
    metavar="[ADDRESS]",
    help="Run the batches as Ray tasks on the cluster at ADDRESS, or, given alone, on a local cluster started "
    "for the run (needs `pip install -e '.[ray]'` from npgen's folder).",
)
def sample(
    dataset, class_value, n_samples, out, data_root, db_path, exclude, class_map, resume, shard, ray_address, **params
) -> None:
    """Generate new images pixel by pixel and record every pixel's source."""
    request = generation_request(
        params,
        out=out,
        dataset=dataset,
        n=n_samples,
        class_value=class_value,
        data_root=data_root,
        db_path=db_path,
        exclude=exclude,
        class_map=class_map,
        shard=shard,
        ray=ray_address,
        resume=resume,
    )
    complete = resume and api.run_state(out) == "complete"
    with Progress(n_samples, "sampling") as bar:
        path = api.sample(
            request, bar.update, note=echo_note, planned=lambda k: setattr(bar, "length", k), within=bar.within
        )
    show_written(path, complete)


@main.command()
@click.option("--dataset", required=True, help="mnist, cifar10, or a folder of images with one subfolder per class.")
@click.option(
    "--test-index",
    "test_indices",
    multiple=True,
    type=click.IntRange(min=0),
    help="A test-split image to complete (repeatable).",
)
@click.option(
    "--image", type=click.Path(dir_okay=False), default=None, help="An image file (of the dataset's size) to complete."
)
@click.option("--mask", required=True, metavar="top|bottom|left|right|FILE", help=MASK_HELP)
@click.option("-n", "per_input", default=1, show_default=True, help="Completions of each input.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="New run folder to write.")
@click.option("--class", "class_value", default=None, help="Class to complete as (default: search every class).")
@generation_options
def complete(
    dataset, test_indices, image, mask, per_input, out, class_value, data_root, db_path, exclude, resume, **params
) -> None:
    """Complete images: keep the pixels --mask gives and generate the rest, recording each generated pixel's source."""
    inputs = api.CompletionInputs(mask, list(test_indices) if test_indices else None, image)
    request = generation_request(
        params,
        out=out,
        dataset=dataset,
        n=per_input,
        class_value=class_value,
        data_root=data_root,
        db_path=db_path,
        exclude=exclude,
        completion=inputs,
        resume=resume,
    )
    done = resume and api.run_state(out) == "complete"
    n_inputs = len(test_indices) if test_indices else 1
    with Progress(n_inputs * per_input, "completing") as bar:
        path = api.complete(
            request, bar.update, note=echo_note, planned=lambda k: setattr(bar, "length", k), within=bar.within
        )
    show_written(path, done)


@main.command()
@click.argument("out", type=click.Path(file_okay=False))
@click.argument("shards", nargs=-1, required=True, type=click.Path())
def merge(out, shards) -> None:
    """Join the shard folders of one `npgen sample ... --shard I/K` command into the run OUT (the same bytes as
    the command run on one machine)."""
    command = shlex.join(["npgen", *sys.argv[1:]])
    path = api.merge_runs(out, list(shards), command=command)
    manifest = json.loads((Path(path) / "manifest.json").read_text())
    click.echo(f"merged {len(shards)} shards into {printable(path)} ({manifest['n_samples']} samples)")


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
@click.option(
    "--classifier",
    type=click.Path(dir_okay=False),
    default=None,
    help="Classifier weights for feature-space scores (default: the one benchmarks/quality/classifier.py trains).",
)
@data_root_option
def evaluate(run, classifier, data_root) -> None:
    """Score a run: novelty, near-copies and, with a classifier, FID, precision, recall and class fidelity."""
    click.echo(f"scoring {run} ...", err=True)
    scores = api.evaluate_run(run, data_root, classifier, note=echo_note)
    show_scores(scores)
    if "skipped" in scores:
        click.echo(f"skipped {scores['skipped']}", err=True)
    click.echo(f"scores: {printable(Path(run) / 'eval.json')}")


@main.command()
@click.argument("run", type=click.Path())
@click.option("--sample", "sample_index", required=True, type=int, help="Sample index within the run.")
@click.option("--pixel", default=None, help="Y,X of one pixel to trace (default: the whole sample's parts).")
@click.option(
    "--out",
    "figure",
    type=click.Path(dir_okay=False),
    default=None,
    help="Figure to write (default: RUN/trace/...png).",
)
@click.option(
    "--max-candidates",
    default=8,
    show_default=True,
    help="A pixel is informative if at most this many candidates were admissible.",
)
@data_root_option
def trace(run, sample_index, pixel, figure, max_candidates, data_root) -> None:
    """Trace a pixel, or a whole sample, back to the training images it was copied from."""
    where = _pixel(pixel)
    if where is not None:
        found, path = api.trace_pixel(
            run, sample_index, *where, figure, data_root=data_root, max_candidates=max_candidates
        )
        show_pixel_trace(found)
    else:
        tracer, path = api.trace_sample(run, sample_index, figure, data_root=data_root, max_candidates=max_candidates)
        show_sample_parts(tracer, sample_index)
    click.echo(f"figure: {printable(path)}")


@main.command()
@click.argument("run", type=click.Path())
@click.option("--out", type=click.Path(file_okay=False), default=None, help="Report folder (default: RUN/report).")
@data_root_option
def report(run, out, data_root) -> None:
    """Analyse how a run's samples are composed: tables, figures and one self-contained HTML page."""
    click.echo(f"analysing {run} ...", err=True)
    folder = api.report_run(run, out, data_root)
    click.echo(f"report: {printable(Path(folder) / 'report.html')}")


# ---- audit: per-training-image reverse provenance ----


@main.command()
@click.argument("runs", nargs=-1, required=True, type=click.Path())
@click.option(
    "--image",
    default=None,
    help="A training image index, or an image file matched pixel for pixel against the training split: list every pixel copied from it.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    default=None,
    help="Folder to write to (default: RUN/audit; required for several runs).",
)
@click.option("--top", default=10, show_default=True, type=click.IntRange(0), help="Training images to print.")
@click.option(
    "--max-candidates",
    default=8,
    show_default=True,
    help="A pixel is informative if at most this many candidates were admissible.",
)
@data_root_option
def audit(runs, image, out, top, max_candidates, data_root) -> None:
    """Which training images a run (or several runs of one dataset) used, or where one training image went."""
    found = api.audit_runs(list(runs), image, out, data_root, max_candidates)
    click.echo(printable(found.summary))
    if found.image is None and top:
        show_usage(found.table, top)
    click.echo(f"table: {printable(found.table_path)}")
    if found.figure_path is not None:
        click.echo(f"figure: {printable(found.figure_path)}")


# ---- information maps ----


@main.command()
@click.argument("run", type=click.Path())
@click.option("--out", type=click.Path(file_okay=False), default=None, help="Folder to write (default: RUN/infomap).")
@click.option("--tau", type=float, default=None, help=f"{PARAMS['tau'].help} [range {PARAMS['tau'].range_text}]")
@click.option(
    "--floor",
    type=float,
    default=None,
    help=f"{PARAMS['floor'].help} [range {PARAMS['floor'].range_text}; default 0.1]",
)
@data_root_option
def infomap(run, out, tau, floor, data_root) -> None:
    """Per-pixel information about the class, log2 p(x|context,c) - log2 p(x|context), for every sample of a run."""
    from npgen.analysis.likelihood import kernels_cached  # numba: only for this command

    manifest = api.Run(run).manifest  # checks the run before any work
    if not kernels_cached():
        echo_note("compiling the likelihood kernels once (about 30 s; numba keeps them for later runs)")
    passes = manifest["n_samples"] * max(len(manifest["dataset"].get("class_names") or []), 1)
    with Progress(passes, "scoring", unit="image-classes") as bar:
        folder, record = api.infomap_run(run, out, data_root, tau, floor, progress=bar.update)
    share = record["foreground_share"]
    click.echo(
        f"{record['n_samples']} samples, tau {record['tau']:g}, floor {record['floor']:g}: mean {record['mean_total_bits']:.2f} bits "
        f"about the class per sample (posterior of its class {record['mean_posterior']:.3f}); foreground pixels hold "
        f"{share['information_share']:.1%} of the information on {share['area_share']:.1%} of the area"
    )
    click.echo(f"maps: {printable(folder)}")
