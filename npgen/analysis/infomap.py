"""Information maps: how much each pixel of a sample says about its class, under npgen's exact predictive rule.

npgen's predictive distribution p(x_p | context) is exact (`npgen/analysis/likelihood.py`: the admissible set of
the sampler's rule, each candidate's centre value smoothed by a discretised Gaussian kernel of width
tau, mixed with a uniform floor; budget relaxed). So the pointwise information that pixel p carries
about class c, given the pixels before it in raster order, is computed exactly:

    i_p = log2 p(x_p | x_<p, c) - log2 p(x_p | x_<p)      (bits)

- **p(x_p | x_<p, c)** is the class-conditional rule: the retrieval pool and the candidates come
  from the training images of class c only, as when sampling with `--class c`.
- **p(x_p | x_<p)** is the predictive distribution of npgen's unconditional model, the class mixture
  (`--class-mixture 1`): a class is drawn with the training shares pi_c, then the image is sampled
  from the class-conditional rule. Given the context, the mixture's predictive is

      p(x_p | x_<p) = sum_c p(c | x_<p) p(x_p | x_<p, c),
      p(c | x_<p)  ∝ pi_c prod_{q<p} p(x_q | x_<q, c)       (teacher forcing, every class scored).

  It is not the pooled rule over every training image (`--class-mixture 0`, a different model),
  and not the prior mixture sum_c pi_c p(x_p | x_<p, c), which ignores what the context already says
  about the class.

With this choice the map adds up exactly: sum_p i_p = log2 p(x | c) - log2 p(x) = log2 p(c | x) - log2 pi_c,
the total pointwise mutual information between the image and its class, distributed over the pixels
in the order they are generated. A pixel has positive information when its value is more likely under
its class than under the mixture given everything above and left of it, negative when less, and about
zero when the context had already decided the class (late pixels) or when every class predicts the
value equally (blank background).

The **contrast** map compares with the prior mixture instead, c_p = log2 p(x_p | x_<p, c) -
log2 sum_c' pi_c' p(x_p | x_<p, c'): how much better the pixel fits its class's rule than an average
class's, without accumulating what earlier pixels said. It does not add up to anything exact, but it
shows where an image looks like its class rather than where the class is decided.

Each sample is scored with its own pixels as context (teacher forcing) and its own class: the one
requested (`--class`) or drawn by the mixture (re-derived from the seed, as `npgen verify` does).
Limits: the maps are exact for npgen's model, not for the data distribution; they depend on the
smoothing (tau, floor) and on raster order (a pixel early in the image can carry information that a
later one would only repeat); and the source budget is relaxed, as in the likelihood.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from npgen.analysis.likelihood import LEVELS, kernel_table, row_mixture
from npgen.data.database import Database, WindowParams, is_database
from npgen.data.files import atomic_write, make_dir, write_array, write_json
from npgen.errors import NpgenError
from npgen.params import INFOMAP_PARAMS, SAMPLER_PARAMS, recorded_params, resolve
from npgen.rule.batch import RowBatch
from npgen.rule.sampler import Sampler
from npgen.runs.png import save_png
from npgen.runs.run import Run
from npgen.runs.integrity import check_output
from npgen.runs.verify import expected_classes

# tuned on held-out MNIST / CIFAR-10 training images (benchmarks/quality/likelihood.py)
GREY_TAU, COLOUR_TAU = 0.5, 16.0


def default_tau(channels: int) -> float:
    """The kernel width benchmarks/quality/likelihood.py tuned for grey (MNIST) or colour (CIFAR-10) images."""
    return GREY_TAU if channels == 1 else COLOUR_TAU


def class_log_probs(
    sampler: Sampler,
    images: np.ndarray,
    sample_indices: np.ndarray,
    classes: np.ndarray,
    tau: float,
    floor: float,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """(N, len(classes), H, W) float64: ln p(x_p | x_<p, c) of every pixel of every image under each class's rule.

    The pools use the sampler's seed and each image's global sample index (as when it was sampled), so
    the result is deterministic. `progress(k)` after every batch of k images of one class.
    """
    db = sampler.database
    if images.ndim != 4 or images.shape[1:] != (db.height, db.width, db.channels) or images.dtype != np.uint8:
        raise NpgenError(
            f"images must be uint8 of shape (N, {db.height}, {db.width}, {db.channels}) to match the database, "
            f"got {images.dtype} {images.shape}"
        )
    if not (0 < floor < 1) or not tau > 0:
        raise NpgenError(f"the smoothing needs tau > 0 and a floor in (0, 1), got tau={tau}, floor={floor}")
    kernel = kernel_table((float(tau),))
    geometry, rule = sampler.geometry(), sampler.rule()
    uniform = float(LEVELS) ** -db.channels
    indices = np.asarray(sample_indices, dtype=np.int64)
    out = np.empty((len(images), len(classes), db.height, db.width), dtype=np.float64)
    for k, class_label in enumerate(classes):
        allowed = sampler.allowed(int(class_label))  # the class's images, less any the run excluded
        for first in range(0, len(images), sampler.batch_size):
            batch_images = np.ascontiguousarray(images[first : first + sampler.batch_size])
            n = len(batch_images)
            batch = RowBatch.start(
                db, sampler.seed, indices[first : first + n], allowed, sampler.pool_size, images=batch_images
            )
            mixture = np.empty((n, db.width, 1), dtype=np.float64)
            for y, pool in batch.rows():
                semantic = batch.semantic(y, pool[:, None], sampler.semantic_reach)[:, 0]
                row_mixture(batch.flat_canvas, db.sources, pool, semantic, y, geometry, rule, kernel, mixture)
                out[first : first + n, k, y] = np.log((1.0 - floor) * mixture[..., 0] + floor * uniform)
            if progress is not None:
                progress(n)
    return out


def _logsumexp(values: np.ndarray, axis: int) -> np.ndarray:
    top = np.max(values, axis=axis, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    return np.squeeze(top, axis=axis) + np.log(np.exp(values - top).sum(axis=axis))


def information(log_probs: np.ndarray, own: np.ndarray, prior: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(info, contrast, log_posterior) from class-conditional log-probabilities (N, K, H, W) in nats.

    own[n] is the position (along K) of image n's class; prior (K,) the mixture's class shares.
    info (N, H, W) is i_p in bits against the mixture's predictive given the context (the posterior
    mixture, see the module docstring); contrast (N, H, W) is the same against the prior mixture
    sum_c pi_c p(x_p | x_<p, c) (not accumulated over earlier pixels); log_posterior (N, K) is
    ln p(c | x) after the whole image. info[n].sum() == (log_posterior[n, own[n]] - ln prior[own[n]]) / ln 2.
    """
    n, k, height, width = log_probs.shape
    flat = log_probs.reshape(n, k, height * width)
    log_prior = np.log(np.asarray(prior, dtype=np.float64))[None, :, None]
    before = np.concatenate([np.zeros((n, k, 1)), np.cumsum(flat, axis=2)[..., :-1]], axis=2)  # sum over q < p
    log_weight = log_prior + before
    log_weight -= _logsumexp(log_weight, axis=1)[:, None]  # ln p(c | x_<p)
    log_marginal = _logsumexp(log_weight + flat, axis=1)  # ln p(x_p | x_<p)
    mine = flat[np.arange(n), np.asarray(own)]
    info = ((mine - log_marginal) / np.log(2.0)).reshape(n, height, width)
    contrast = ((mine - _logsumexp(log_prior + flat, axis=1)) / np.log(2.0)).reshape(n, height, width)
    final = log_prior[..., 0] + flat.sum(axis=2)
    return info, contrast, final - _logsumexp(final, axis=1)[:, None]


def class_means(info: np.ndarray, classes: np.ndarray, n_classes: int) -> np.ndarray:
    """(n_classes, H, W) mean information map of the samples of each class (NaN for a class with none)."""
    means = np.full((n_classes, *info.shape[1:]), np.nan)
    for c in range(n_classes):
        members = classes == c
        if members.any():
            means[c] = info[members].mean(axis=0)
    return means


def foreground_share(info: np.ndarray, foreground: np.ndarray) -> dict:
    """How the information lies on foreground pixels: its share of the total (and of the absolute
    information) against the foreground's share of the area."""
    total, absolute = float(info.sum()), float(np.abs(info).sum())
    return {
        "information_share": float(info[foreground].sum()) / total if total else float("nan"),
        "absolute_information_share": float(np.abs(info[foreground]).sum()) / absolute if absolute else float("nan"),
        "area_share": float(foreground.mean()),
    }


def diverging(values: np.ndarray, limit: float) -> np.ndarray:
    """(H, W) values -> (H, W, 3) uint8: red for positive, blue for negative, white at 0, saturated at ±limit."""
    t = np.clip(np.nan_to_num(values) / max(limit, 1e-12), -1.0, 1.0)[..., None]
    white = np.array([255.0, 255.0, 255.0])
    red, blue = np.array([200.0, 20.0, 20.0]), np.array([20.0, 60.0, 200.0])
    rgb = np.where(t >= 0, white + t * (red - white), white - t * (blue - white))
    return rgb.astype(np.uint8)


def _framed(picture: np.ndarray) -> np.ndarray:
    """A one-pixel grey frame around an (H, W, 3) picture, so a white (zero) map stays visible on white."""
    out = np.full((picture.shape[0] + 2, picture.shape[1] + 2, 3), 150, np.uint8)
    out[1:-1, 1:-1] = picture
    return out


def _limit(values: np.ndarray) -> float:
    """The colour scale: the 99.5th percentile of |values| (a few extreme pixels saturate instead of washing out the rest)."""
    finite = np.abs(values[np.isfinite(values)])
    return float(np.percentile(finite, 99.5)) if finite.size and finite.max() > 0 else 1.0


def maps_figure(
    images: np.ndarray, info: np.ndarray, contrast: np.ndarray, labels: list[str], columns: int = 8, scale: int = 4
):
    """Each sample above its information map and its contrast map (red: for its class, blue: against), in a grid."""
    from PIL import Image

    from npgen.analysis.drawing import as_rgb, compose_panels, upscale

    info_limit, contrast_limit = _limit(info), _limit(contrast)
    panels = []
    for image, values, contrasted, label in zip(images, info, contrast, labels):
        gap = np.full((2, image.shape[1] + 2, 3), 255, np.uint8)
        column = np.concatenate(
            [
                _framed(as_rgb(image)),
                gap,
                _framed(diverging(values, info_limit)),
                gap,
                _framed(diverging(contrasted, contrast_limit)),
            ]
        )
        panels.append((Image.fromarray(upscale(column, scale)), [label]))
    pictures = [compose_panels(panels[i : i + columns]) for i in range(0, len(panels), columns)]
    width = max(p.width for p in pictures)
    caption = [
        (
            "Each column: a sample; its information map i_p = log2 p(x_p|context,c) - log2 p(x_p|context) "
            f"(context: the pixels before it; p(x_p|context) the class mixture weighted by p(c|context); ±{info_limit:.2f} bits); "
            f"its contrast map, against the prior mixture sum_c pi_c p(x_p|context,c) (±{contrast_limit:.2f} bits). "
            "Red: evidence for the sample's class, blue: against, white: none."
        )
    ]
    return _stack(pictures + [compose_panels([(Image.new("RGB", (width - 24, 1), (255, 255, 255)), [])], caption)])


def means_figure(means: np.ndarray, contrast_means: np.ndarray, names: list[str], counts: np.ndarray, scale: int = 5):
    """The class-mean information maps side by side (top row) and the class-mean contrast maps (bottom row)."""
    from PIL import Image

    from npgen.analysis.drawing import compose_panels, upscale

    info_limit, contrast_limit = _limit(means), _limit(contrast_means)
    panels = []
    for mean, contrasted, name, count in zip(means, contrast_means, names, counts):
        gap = np.full((2, mean.shape[1] + 2, 3), 255, np.uint8)
        column = np.concatenate(
            [_framed(diverging(mean, info_limit)), gap, _framed(diverging(contrasted, contrast_limit))]
        )
        panels.append((Image.fromarray(upscale(column, scale)), [str(name), f"{int(count)} samples"]))
    return compose_panels(
        panels,
        [
            (
                f"Mean per class: top, information (bits, ±{info_limit:.3f}); bottom, contrast against the prior "
                f"mixture (±{contrast_limit:.3f}). Red: evidence for the class, blue: against."
            )
        ],
    )


def _stack(pictures: list):
    from PIL import Image

    width = max(p.width for p in pictures)
    out = Image.new("RGB", (width, sum(p.height for p in pictures)), (255, 255, 255))
    top = 0
    for picture in pictures:
        out.paste(picture, (0, top))
        top += picture.height
    return out


# ---- `npgen infomap`: the maps of a run's samples, written to files ----

INFOMAP_CHUNK = 1000  # samples scored together: every class's log-probabilities of a chunk are held at once
INFOMAP_FILES = (
    "info.npy",
    "contrast.npy",
    "classes.npy",
    "class_means.npy",
    "contrast_class_means.npy",
    "per_sample.parquet",
    "infomap.json",
    "maps.png",
    "class_means.png",
)


def infomap_run(
    run_path: str | os.PathLike,
    out: str | os.PathLike | None = None,
    data_root=None,
    tau: float | None = None,
    floor: float | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[Path, dict]:
    """Write the information maps of a run's samples (the functions above) to `out` (default RUN/infomap).

    Files: info.npy (N, H, W) float32 bits; contrast.npy the same against the prior mixture; classes.npy (N,) each sample's class; class_means.npy
    (n_classes, H, W) mean map per class (NaN: no sample); per_sample.parquet; infomap.json (smoothing,
    definitions, foreground shares); maps.png and class_means.png. Returns (folder, the JSON record).
    `progress(0)` once loading is done, then `progress(k)` per batch of k images of one class (n_classes
    passes over the run)."""
    run = Run(run_path)
    folder = check_output(out, "infomap") if out is not None else run.output_path("infomap")
    smoothing = resolve(INFOMAP_PARAMS, {"tau": tau, "floor": floor})
    data = run.dataset(data_root)
    manifest = run.manifest
    if len(data.class_names) < 2:
        raise NpgenError(f"{data.name} has one class; information about the class needs at least two")
    for control, what in (
        ("completion", "is a completion (its given pixels were not generated)"),
        ("class_map", "steers regions to classes (--class-map)"),
    ):
        if manifest.get(control):
            raise NpgenError(
                f"run {run.path} {what}; information maps need samples generated whole from one class "
                "(npgen sample, with --class or the class mixture)"
            )
    excluded = run.control("excluded")  # the rule without the excluded images, as the run was sampled
    included = np.ones(data.n_images, dtype=bool)
    if excluded is not None:
        included[excluded] = False
    class_counts = np.bincount(data.labels[included], minlength=len(data.class_names))  # the mixture's shares
    samples = np.asarray(run.samples)
    n = len(samples)
    try:
        classes = expected_classes(manifest, class_counts, n)
        window = WindowParams(**manifest["database"]["params"])
        options = {name: recorded_params(manifest["params"])[name] for name in SAMPLER_PARAMS}
    except (KeyError, TypeError, ValueError):
        raise NpgenError(
            f"the manifest of run {run.path} is damaged: its database or sampler parameters are incomplete; sample the run again"
        ) from None
    if options["levels"] > 1:
        raise NpgenError(
            f"run {run.path} was sampled through {options['levels']} pyramid levels; information maps score the "
            "one-level rule, so they need a run sampled with --levels 1"
        )
    if (classes < 0).any():
        raise NpgenError(
            f"run {run.path} was sampled from every training image (--class-mixture 0), so its samples have no class; "
            "information maps need a class-conditional run or the class mixture"
        )
    tau_value = smoothing["tau"] if smoothing["tau"] is not None else default_tau(data.channels)
    recorded = manifest["database"].get("path")
    db_path = Path(recorded) if isinstance(recorded, str) and is_database(Path(recorded)) else None
    sampler = Sampler(Database.open_or_build(data, db_path, window), **options, excluded=excluded)
    db = sampler.database
    present = np.flatnonzero(class_counts > 0)
    if progress is not None:
        progress(0)
    own = np.searchsorted(present, classes)
    prior = class_counts[present] / class_counts.sum()
    info, contrast = np.empty(samples.shape[:3]), np.empty(samples.shape[:3])
    own_log_posterior = np.empty(n)
    for first in range(0, n, INFOMAP_CHUNK):  # (chunk, classes, H, W) at a time: memory stays bounded
        chunk = np.arange(first, min(n, first + INFOMAP_CHUNK))
        log_probs = class_log_probs(sampler, samples[chunk], chunk, present, tau_value, smoothing["floor"], progress)
        info[chunk], contrast[chunk], log_posterior = information(log_probs, own[chunk], prior)
        own_log_posterior[chunk] = log_posterior[np.arange(len(chunk)), own[chunk]]
    means = class_means(info, classes, len(data.class_names))
    contrast_means = class_means(contrast, classes, len(data.class_names))
    foreground = np.any(samples != db.pad_value, axis=-1)
    per_sample = pa.table(
        {
            "sample": np.arange(n),
            "class": classes,
            "class_name": [data.class_names[c] for c in classes],
            "total_bits": info.reshape(n, -1).sum(axis=1),
            "posterior": np.exp(own_log_posterior),
            "prior": prior[own],
            "foreground_bits": (info * foreground).reshape(n, -1).sum(axis=1),
            "foreground_pixels": foreground.reshape(n, -1).sum(axis=1),
        }
    )
    counts = np.bincount(classes, minlength=len(data.class_names))
    record = {
        "run": str(run.path),
        "n_samples": n,
        "tau": tau_value,
        "floor": smoothing["floor"],
        "units": "bits",
        "definition": "i_p = log2 p(x_p | x_<p, c) - log2 sum_c' p(c' | x_<p) p(x_p | x_<p, c'), teacher forcing, "
        "class mixture with the training class shares; budget relaxed (npgen/analysis/infomap.py)",
        "foreground": f"pixels whose value differs from the pad value {db.pad_value}",
        "foreground_share": foreground_share(info, foreground),
        "contrast_foreground_share": foreground_share(contrast, foreground),
        "mean_total_bits": float(per_sample.column("total_bits").to_numpy().mean()),
        "mean_posterior": float(per_sample.column("posterior").to_numpy().mean()),
        "samples_per_class": {name: int(c) for name, c in zip(data.class_names, counts)},
    }
    make_dir(folder)
    write_array(folder / "info.npy", info.astype(np.float32))
    write_array(folder / "classes.npy", classes.astype(np.int64))
    write_array(folder / "contrast.npy", contrast.astype(np.float32))
    write_array(folder / "class_means.npy", means.astype(np.float32))
    write_array(folder / "contrast_class_means.npy", contrast_means.astype(np.float32))
    atomic_write(folder / "per_sample.parquet", lambda tmp: pq.write_table(per_sample, tmp))
    write_json(folder / "infomap.json", record)
    shown = min(n, 32)
    labels = [f"{i}: {data.class_names[c]}" for i, c in zip(range(shown), classes)]
    save_png(maps_figure(samples[:shown], info[:shown], contrast[:shown], labels), folder / "maps.png")
    save_png(means_figure(means, contrast_means, list(data.class_names), counts), folder / "class_means.png")
    return folder, record
