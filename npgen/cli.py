"""The `npgen` command line: a thin layer over `npgen.api`."""

from __future__ import annotations

import errno
import json
import shlex
import sys
import time
from dataclasses import asdict
from pathlib import Path

import click

from npgen import __version__, api
from npgen.control.exclusion import SPEC_HELP
from npgen.control.regions import CLASS_MAP_HELP, MASK_HELP
from npgen.data import datasets
from npgen.errors import NpgenError
from npgen.params import BUILD, BUILD_PARAMS, PARAMS, RUN, SAMPLE

data_root_option = click.option(
    "--data-root",
    type=click.Path(file_okay=False),
    default=None,
    help=f"Folder holding mnist.npz / cifar10.npz or their raw files (default: ${datasets.DATA_ENV}).",
)


def param_options(stage: str):
    """One option per method parameter of `stage` (npgen.params): unset means the dataset's preset, else the default."""

    def decorate(command):
        for param in reversed([p for p in PARAMS.values() if p.stage == stage]):
            default = (
                "derived" if param.default is None else f"{param.default:g}" if param.kind is not str else param.default
            )
            text = f"{param.help} [{'one of' if param.choices else 'range'} {param.range_text}; default: the dataset's preset, else {default}]"
            kind = click.Choice(param.choices) if param.choices else param.kind
            command = click.option("--" + param.name.replace("_", "-"), param.name, type=kind, default=None, help=text)(
                command
            )
        return command

    return decorate


_CONTROL = {c: f"\\x{c:02x}" for c in [*range(0x20), 0x7F, *range(0x80, 0xA0)]}


def printable(text) -> str:
    """`text` with control characters (terminal escape sequences, newlines) shown as \\xNN, safe to print."""
    return str(text).translate(_CONTROL)


WRITE_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT, errno.EFBIG}


def os_error_text(err: OSError) -> str:
    """One line for an OSError: what could not be done to which file, and why."""
    where = printable(err.filename) if err.filename is not None else "a file"
    why = err.strerror or type(err).__name__
    if err.errno in WRITE_ERRNOS:
        return f"cannot write {where}: {why}; free space or choose a writable location"
    return f"cannot access {where}: {why}"


class NpgenGroup(click.Group):
    """Turns NpgenError into a one-line message and exit status 2, and Ctrl-C into status 130."""

    def main(self, *args, standalone_mode: bool = True, **kwargs):
        """As click's, but a usage error (bad option, missing argument) is one line `error: ...`, exit status 2."""
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        no_args_help = getattr(click.exceptions, "NoArgsIsHelpError", ())
        try:
            value = super().main(*args, standalone_mode=False, **kwargs)
        except click.UsageError as err:
            if no_args_help and isinstance(err, no_args_help):
                err.show()
                sys.exit(err.exit_code)
            where = err.ctx.command_path if err.ctx is not None else "npgen"
            click.echo(f"error: {printable(err.format_message().rstrip('.'))}; see `{where} --help`", err=True)
            sys.exit(2)
        except click.ClickException as err:
            err.show()
            sys.exit(err.exit_code)
        except click.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(1)
        sys.exit(value if isinstance(value, int) else 0)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except NpgenError as err:
            click.echo(f"error: {printable(str(err))}", err=True)
            sys.exit(2)
        except OSError as err:  # disk full, read-only or unwritable output, ...: one line, no traceback
            if err.errno == errno.EPIPE:
                raise  # output piped into a closed reader: click handles it quietly
            click.echo(f"error: {os_error_text(err)}", err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            if ctx.invoked_subcommand == "sample":
                click.echo(
                    "interrupted; finished batches are kept, continue with the same command and --resume", err=True
                )
            else:
                click.echo("interrupted", err=True)
            sys.exit(130)


class Progress:
    """Progress of `length` items on stderr, shown only once work is under way (not before an early error).

    In a terminal it is a click progress bar; elsewhere (a log file, a pipe, a batch job) it is a line such as
    `sampling: 300/1000 (30%), 95.2 images/s, ETA 7 s` every `every_seconds` or each further tenth of the work,
    and once at the end. The rate counts from the first update (`update(0)` marks the start of the work).
    """

    def __init__(self, length: int, label: str, unit: str = "images", every_seconds: float = 5.0, stream=None) -> None:
        self.length, self.label, self.unit, self.every = length, label, unit, every_seconds
        self.stream = stream if stream is not None else sys.stderr
        self.bar, self.started, self.done = None, None, 0
        self.last_time, self.last_tenth = 0.0, 0

    def update(self, steps: int) -> None:
        if self.started is None:
            self.started = self.last_time = time.monotonic()
            if self.stream.isatty():
                self.bar = click.progressbar(length=self.length, label=self.label, file=self.stream).__enter__()
        if self.bar is not None:
            self.bar.update(steps)
            return
        self.done += steps
        now = time.monotonic()
        tenth = 10 * self.done // max(self.length, 1)
        if steps and (now - self.last_time >= self.every or tenth > self.last_tenth or self.done >= self.length):
            self.last_time, self.last_tenth = now, tenth
            self.stream.write(self.line(now) + "\n")
            self.stream.flush()

    def line(self, now: float) -> str:
        elapsed = max(now - self.started, 1e-9)
        rate = self.done / elapsed
        left = max(self.length - self.done, 0)
        eta = f"ETA {left / rate:.0f} s" if rate > 0 and left else f"done in {elapsed:.1f} s" if not left else "ETA ?"
        percent = 100 * self.done // max(self.length, 1)
        return f"{self.label}: {self.done}/{self.length} ({percent}%), {rate:.1f} {self.unit}/s, {eta}"

    def __enter__(self) -> "Progress":
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


@main.group(cls=NpgenGroup)
def cache() -> None:
    """List and clean what npgen keeps in $NPGEN_CACHE (default ~/.cache/npgen)."""


@cache.command("list")
def cache_list() -> None:
    """Each database, classifier and leftover temporary file in the cache, with its size and dataset."""
    from npgen.data import cache as cache_module

    found = cache_module.entries()
    click.echo(f"cache: {printable(cache_module.root())}")
    for entry in found:
        click.echo(printable(entry.line()))
    total = sum(entry.size for entry in found)
    click.echo(f"{len(found)} entries, {cache_module.human_size(total)}")


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
    from npgen.data import cache as cache_module

    removed, busy = cache_module.clean(everything=mode == "all")
    for entry in removed:
        click.echo(f"removed {entry.kind} {printable(entry.path)} ({cache_module.human_size(entry.size)})")
    for entry in busy:
        click.echo(f"kept {entry.kind} {printable(entry.path)}: in use or too recent", err=True)
    click.echo(f"removed {len(removed)} entries, {cache_module.human_size(sum(e.size for e in removed))}")


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
def build(dataset, data_root, db_path, force, ray_address, **window) -> None:
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
            click.option("--exclude", "exclude", multiple=True, metavar="SPEC", help=SPEC_HELP),
            click.option("--resume", is_flag=True, help="Continue an interrupted run in --out (same options)."),
        ]
    ):
        command = option(command)
    return command


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
    "for the run (needs `pip install 'npgen[ray]'`).",
)
def sample(
    dataset, class_value, n_samples, out, data_root, db_path, exclude, class_map, resume, shard, ray_address, **params
) -> None:
    """Generate new images pixel by pixel and record every pixel's source."""
    window = {name: params.pop(name) for name in BUILD_PARAMS}
    command = shlex.join(["npgen", *sys.argv[1:]])
    complete = resume and api.run_state(out) == "complete"
    with Progress(n_samples, "sampling") as bar:
        path = api.sample_run(
            out,
            dataset,
            n_samples,
            class_value,
            data_root,
            db_path,
            window,
            params,
            resume=resume,
            command=command,
            progress=bar.update,
            note=lambda text: click.echo(printable(text), err=True),
            exclude=exclude,
            class_map=class_map,
            shard=shard,
            ray=ray_address,
            planned=lambda k: setattr(bar, "length", k),
        )
    _report_written(path, complete)


def _report_written(path, complete: bool) -> None:
    """Print what a sample or complete command wrote (or that a resumed run was already complete)."""
    manifest = json.loads((Path(path) / "manifest.json").read_text())
    n_samples = manifest.get("n_samples")
    if complete:
        click.echo(f"run {printable(path)} is already complete ({n_samples} samples); nothing to do")
        return
    if manifest.get("shard"):
        part = manifest["shard"]
        click.echo(
            f"wrote shard {part['index']}/{part['count']} ({len(part['batches'])} of {part['n_batches']} batches) of "
            f"{n_samples} samples to {printable(path)}; join all {part['count']} shards with `npgen merge OUT SHARD...`"
        )
        return
    summary, timings = manifest["summary"], manifest["timings"]
    params = manifest["params"]
    if manifest.get("completion"):
        record = manifest["completion"]
        conditioned = f"{record['per_input']} completions of each of {record['n_inputs']} inputs, --mask {printable(record['mask'])} given"
        if manifest["class_label"] is not None:
            conditioned += f", as class {manifest['class_name']!r}"
    elif manifest.get("class_map"):
        conditioned = "regions steered by --class-map " + printable(manifest["class_map"]["spec"])
    elif manifest["class_label"] is not None:
        conditioned = f"class {manifest['class_name']!r}"
    elif params.get("class_mixture"):
        conditioned = "classes drawn from the training class shares"
    else:
        conditioned = "every training image"
    if manifest.get("exclusion"):
        conditioned += f"; {manifest['exclusion']['n_images']} training images excluded"
    click.echo(
        f"{conditioned}; h={manifest['database']['params']['half_window']}, k_min={params['k_min']}, "
        f"source budget {params['source_budget']} pixels per training image (max_source_share={params['max_source_share']})"
    )
    click.echo(
        f"wrote {n_samples} samples to {printable(path)} ({timings['images_per_second']:.1f} images/s); "
        f"median nearest-training distance {summary['median_nearest_distance']:.1f}, "
        f"median top-source share {summary['median_top_source_share']:.3f}"
    )


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
    window = {name: params.pop(name) for name in BUILD_PARAMS}
    command = shlex.join(["npgen", *sys.argv[1:]])
    done = resume and api.run_state(out) == "complete"
    n_inputs = len(test_indices) if test_indices else 1
    with Progress(n_inputs * per_input, "completing") as bar:
        path = api.complete_run(
            out,
            dataset,
            mask,
            per_input,
            list(test_indices) if test_indices else None,
            image,
            class_value,
            data_root,
            db_path,
            window,
            params,
            resume=resume,
            command=command,
            progress=bar.update,
            note=lambda text: click.echo(printable(text), err=True),
            exclude=exclude,
        )
    _report_written(path, done)


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
    help="Classifier weights for feature-space scores (default: the one benchmarks/classifier.py trains).",
)
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
            rows.append(
                (f"{key} (median)", f"{scores['samples'][key]['p50']:.2f}", f"{scores['floor'][key]['p50']:.2f}")
            )
    for row in rows:
        click.echo(f"{row[0]:<28}{row[1]:>12}{row[2]:>14}")
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
        click.echo(
            f"sample {found.sample} pixel (y={found.y}, x={found.x}) <- training image {found.src_image} "
            f"(class {printable(found.src_class_name)}{'' if found.src_file is None else ', file ' + printable(found.src_file)}) at "
            f"(y={found.src_y}, x={found.src_x}); displacement {found.displacement}; "
            f"distance {found.distance:.2f}; {found.n_candidates} admissible candidates"
            f"{'' if found.informative else ' (uninformative: a large tie)'}"
        )
    else:
        tracer, path = api.trace_sample(run, sample_index, figure, data_root=data_root, max_candidates=max_candidates)
        parts = tracer.sample_parts(sample_index).sort_by([("size", "descending")])
        sources = len(set(parts.column("src_image").to_pylist()))
        click.echo(f"sample {sample_index}: {parts.num_rows} parts from {sources} training images; largest parts:")
        folder = tracer.source_file(0) is not None
        click.echo(
            f"{'part':>5} {'src_image':>9} {'class':>10} {'dy':>3} {'dx':>3} {'size':>5} {'informative':>11}{'  file' if folder else ''}"
        )
        names, labels = tracer.dataset.class_names, tracer.dataset.labels
        for row in parts.slice(0, 12).to_pylist():
            file = tracer.source_file(row["src_image"])
            click.echo(
                f"{row['part']:>5} {row['src_image']:>9} {printable(names[labels[row['src_image']]]):>10} {row['dy']:>3} "
                f"{row['dx']:>3} {row['size']:>5} {row['informative_size']:>11}"
                f"{'' if file is None else '  ' + printable(file)}"
            )
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
        table = found.table.sort_by([("informative_pixels", "descending"), ("pixels", "descending")])
        named = "class_name" in table.column_names
        click.echo(
            f"{'src_image':>9} {'class':>10} {'pixels':>8} {'samples':>8} {'share':>7} "
            f"{'inf.pixels':>10} {'inf.samples':>11} {'inf.share':>9}"
        )
        for row in table.slice(0, top).to_pylist():
            click.echo(
                f"{row['src_image']:>9} {printable(row['class_name'] if named else ''):>10} {row['pixels']:>8} "
                f"{row['samples']:>8} {row['share']:>7.2%} {row['informative_pixels']:>10} "
                f"{row['informative_samples']:>11} {row['informative_share']:>9.2%}"
            )
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
    manifest = api.Run(run).manifest  # checks the run before any work
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
