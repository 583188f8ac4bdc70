"""What the `npgen` command line shows: text safe to print, one-line errors and exit statuses, progress, and
what a generation command wrote."""

from __future__ import annotations

import errno
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from npgen.data.datasets import KNOWN
from npgen.errors import NpgenError
from npgen.wording import plural

if TYPE_CHECKING:
    import pyarrow as pa

    from npgen.analysis.tracer import PixelTrace, Tracer

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
    `within(f)` moves it by a fraction of an item while the next `update` is awaited (a batch's rows as they are
    sampled); `update(k)` then counts the k items whole. Whole items are shown.
    """

    def __init__(self, length: int, label: str, unit: str = "images", every_seconds: float = 5.0, stream=None) -> None:
        self.length, self.label, self.unit, self.every = length, label, unit, every_seconds
        self.stream = stream if stream is not None else sys.stderr
        self.bar, self.started, self.done, self.shown, self.partial = None, None, 0.0, 0, 0.0
        self.last_time, self.last_tenth = 0.0, 0

    def within(self, fraction: float) -> None:
        self.partial += fraction
        self.show(fraction)

    def update(self, steps: int) -> None:
        net, self.partial = steps - self.partial, 0.0  # what `within` showed of these items is already counted
        self.show(net)

    def show(self, steps: float) -> None:
        if self.started is None:
            self.started = self.last_time = time.monotonic()
            if self.stream.isatty():
                self.bar = click.progressbar(length=self.length, label=self.label, file=self.stream).__enter__()
        self.done += steps
        if self.bar is not None:
            whole = int(self.done + 1e-9) - self.shown
            if whole > 0:
                self.bar.update(whole)
                self.shown += whole
            return
        now = time.monotonic()
        tenth = int(10 * self.done + 1e-9) // max(self.length, 1)
        finished = self.done >= self.length - 1e-9
        if steps > 1e-9 and (now - self.last_time >= self.every or tenth > self.last_tenth or finished):
            self.last_time, self.last_tenth = now, tenth
            self.stream.write(self.line(now) + "\n")
            self.stream.flush()

    def line(self, now: float) -> str:
        elapsed = max(now - self.started, 1e-9)
        rate = self.done / elapsed
        left = self.length - self.done if self.length - self.done > 1e-9 else 0
        eta = f"ETA {left / rate:.0f} s" if rate > 0 and left else f"done in {elapsed:.1f} s" if not left else "ETA ?"
        percent = int(100 * self.done + 1e-9) // max(self.length, 1)
        return f"{self.label}: {int(self.done + 1e-9)}/{self.length} ({percent}%), {rate:.1f} {self.unit}/s, {eta}"

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)


def show_written(path, complete: bool) -> None:
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
    click.echo(
        f"wrote {n_samples} samples to {printable(path)} ({timings['images_per_second']:.1f} images/s); "
        + (
            f"median nearest-training distance {summary['median_nearest_distance']:.1f}, "
            if summary["median_nearest_distance"] is not None
            else ""
        )
        + f"median top-source share {summary['median_top_source_share']:.3f}"
    )


def show_scores(scores: dict) -> None:
    """The scores of a run beside the training-set floor, one per line."""
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


def show_pixel_trace(found: PixelTrace) -> None:
    """Where one traced pixel came from, in one line, and one more for each coarser pyramid level."""
    click.echo(
        f"sample {found.sample} pixel (y={found.y}, x={found.x}) <- training image {found.src_image} "
        f"(class {printable(found.src_class_name)}{'' if found.src_file is None else ', file ' + printable(found.src_file)}) at "
        f"(y={found.src_y}, x={found.src_x}); displacement {found.displacement}; "
        f"distance {found.distance:.2f}; {plural(found.n_candidates, 'admissible candidate')}"
        f"{'' if found.informative else ' (uninformative: a large tie)'}"
    )
    for level in found.ancestors:  # a run with pyramid levels: the pixel's ancestor at each coarser level
        file = "" if level.src_file is None else ", file " + printable(level.src_file)
        click.echo(
            f"  level {level.level} pixel (y={level.y}, x={level.x}) <- training image {level.src_image} "
            f"(class {printable(level.src_class_name)}{file}) at (y={level.src_y}, x={level.src_x}) of its "
            f"level-{level.level} image; distance {level.distance:.2f}; {plural(level.n_candidates, 'admissible candidate')}"
        )


def show_sample_parts(tracer: Tracer, sample_index: int) -> None:
    """How many parts a sample has and from how many training images, and a table of its largest 12."""
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


def show_usage(table: pa.Table, top: int) -> None:
    """The `top` training images a usage table ranks first (informative pixels, then pixels), one per line."""
    table = table.sort_by([("informative_pixels", "descending"), ("pixels", "descending")])
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


def check_importable(name: str, command: str) -> None:
    """A one-line error unless `npgen data import|download` knows NAME: what it takes, and what to do instead."""
    if name not in KNOWN:
        raise NpgenError(
            f"data {command} takes a dataset npgen has a card for ({' or '.join(KNOWN)}), not {name!r}; "
            "a folder of your own images needs no import: pass its path to --dataset"
        )
