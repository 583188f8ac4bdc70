"""Every method parameter, declared once: its default, its valid range, its help, and where it acts.

The CLI builds its options from `PARAMS`, the library checks values with `check`, and each dataset
card may carry a `preset` of measured settings (`datasets/*.json`). A value is resolved as: the
caller's explicit value, else the dataset's preset, else the default below (`resolve`). The run
manifest records the resolved values, so a run says exactly what it used.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from npgen.errors import NpgenError

BUILD, SAMPLE, RUN = "build", "sample", "run"  # RUN: how a run executes, never what it produces
MAX_SIDE = 4096  # the largest output side --size takes


def output_size(value) -> str:
    """A --size value as "HxW" (each side 1..MAX_SIDE); ValueError if it is not one."""
    text = str(value).strip().lower()
    height, sep, width = text.partition("x")
    if not sep or not height.isdigit() or not width.isdigit():
        raise ValueError(value)
    if not (1 <= int(height) <= MAX_SIDE and 1 <= int(width) <= MAX_SIDE):
        raise ValueError(value)
    return f"{int(height)}x{int(width)}"


def size_sides(size: str) -> tuple[int, int]:
    """(height, width) of an "HxW" size (`output_size`'s)."""
    height, width = size.split("x")
    return int(height), int(width)


@dataclass(frozen=True)
class Param:
    """One parameter: `low`..`high` inclusive (None = unbounded); `optional` allows None (= derived)."""

    name: str
    default: int | float | None
    kind: type
    low: float | None
    high: float | None
    stage: str
    help: str
    optional: bool = False
    choices: tuple[str, ...] = ()
    parse: Callable[[object], object] | None = None  # converts and checks a value kind() cannot (ValueError if bad)

    @property
    def range_text(self) -> str:
        if self.parse is not None:
            return f"HxW, sides 1..{MAX_SIDE}"
        if self.choices:
            return "|".join(self.choices)

        def text(bound, unbounded: str) -> str:
            return unbounded if bound is None else f"{bound:g}" if self.kind is float else f"{int(bound)}"

        return f"{text(self.low, '-inf')}..{text(self.high, 'inf')}"


PARAMS: dict[str, Param] = {
    p.name: p
    for p in (
        Param("half_window", 3, int, 1, 15, BUILD, "Context window half-size h: the window is (2h+1)x(2h+1)."),
        Param("pad_value", 0, int, 0, 255, BUILD, "Value read for context pixels outside the image."),
        Param(
            "retrieval_block", 1, int, 1, 64, BUILD, "Block size s of the retrieval representation (1 = raw pixels)."
        ),
        Param(
            "retrieval",
            "blocks",
            str,
            None,
            None,
            BUILD,
            "Retrieval representation: s x s block sums of the pixels, or label-free patch codes learned from the training split.",
            choices=("blocks", "codes"),
        ),
        Param("eps", 0.1, float, 0.0, 1e6, SAMPLE, "Admissible if d <= (1+eps)*d_min + abs-tol."),
        Param("abs_tol", 1.0, float, 0.0, 1e9, SAMPLE, "Absolute distance tolerance (weighted squared grey levels)."),
        Param("radius", 0, int, 0, 64, SAMPLE, "Chebyshev radius of source positions around the target position."),
        Param(
            "pool_size",
            100,
            int,
            0,
            1_000_000,
            SAMPLE,
            "Training images nearest the canvas that supply candidates (0 = all).",
        ),
        Param(
            "pool_search",
            "auto",
            str,
            None,
            None,
            SAMPLE,
            "How the semantic pool is found: an exact scan of every allowed image, or approximately through FAISS IVF "
            "indexes of the completed prefix (exact distances on a shortlist); auto = approximate when the database "
            "holds more than --exact-pool-limit images. The manifest records the choice made.",
            choices=("auto", "exact", "approximate"),
        ),
        Param(
            "exact_pool_limit",
            100_000,
            int,
            0,
            10**12,
            SAMPLE,
            "With --pool-search auto: largest database (in images) whose pool is still found by the exact scan.",
        ),
        Param("k_min", 1, int, 1, 1024, SAMPLE, "Admissible set widened to at least this many nearest candidates."),
        Param(
            "levels",
            1,
            int,
            1,
            8,
            SAMPLE,
            "Pyramid levels: 1 samples at the images' size; L > 1 first samples images 2^(L-1) times smaller (from the "
            "training images' exact box means), then each finer level with its pool chosen from the complete coarser "
            "sample. Every level's pixels are copied and recorded.",
        ),
        Param(
            "coarse_weight",
            0.0,
            float,
            0.0,
            1e6,
            SAMPLE,
            "With --levels > 1: weight of the complete coarser level in a finer level's window distance (the 3x3 "
            "neighbourhood of the pixel's parent against that of the candidate's parent; 1 = as much as the whole "
            "causal window, 0 = the coarser level only chooses the pool).",
        ),
        Param(
            "anchor",
            "position",
            str,
            None,
            None,
            SAMPLE,
            "With --levels > 1: where a finer level's candidate windows are centred: at the pixel's own position "
            "(position, the spatial principle of a collection), or where its coarser parent was copied from, doubled "
            "(parent: finer levels follow the coarser layout wherever it came from; the coarsest level then takes "
            "windows from every position, the radius applying to finer levels only: for single images).",
            choices=("position", "parent"),
        ),
        Param(
            "max_source_share",
            0.1,
            float,
            0.001,
            1.0,
            SAMPLE,
            "Most any one training image may supply of a sample, as a share of its pixels (1 = no limit).",
        ),
        Param(
            "max_part_share",
            1.0,
            float,
            0.0001,
            1.0,
            SAMPLE,
            "Largest copied part of a sample (a 4-connected region of its pixels copied from one training image at one "
            "displacement), as a share of its pixels at each level (1 = no limit): a bound that makes a sample of one "
            "or a few images recompose them.",
        ),
        Param(
            "max_reuse",
            0.0,
            float,
            0.0,
            1e6,
            SAMPLE,
            "Most pixels one source pixel may give a sample's coarsest level, as a multiple of its even share (the "
            "level's pixels over the database's at that level), rounded up (0 = no limit): with one image and 1, the "
            "coarsest level is a rearrangement of the picture's own pixels.",
        ),
        Param(
            "size",
            None,
            str,
            None,
            None,
            SAMPLE,
            "Output size HxW (e.g. 256x384), when it differs from the training images': each pixel's candidate "
            "windows are centred at its relative position in the training images (with --anchor parent, around its "
            "parent's source), and the pool must be off (--pool-size 0), as for one image (default: the images' size).",
            optional=True,
            parse=output_size,
        ),
        Param(
            "outside_canvas",
            "pad",
            str,
            None,
            None,
            SAMPLE,
            "Context pixels outside the sample: read as the pad value, like the training windows' outside their "
            "images (pad: a sample starts as a training image's top-left corner does), or left out of the window "
            "distance, the other weights renormalised (ignored: the first pixel may come from anywhere; for single "
            "images and textures).",
            choices=("pad", "ignored"),
        ),
        Param("sigma", None, float, 0.1, 100.0, SAMPLE, "Gaussian window width (default (2h+1)/6.4).", optional=True),
        Param(
            "semantic_eps",
            None,
            float,
            0.0,
            1e6,
            SAMPLE,
            "Per-pixel semantic filter: only pool images whose retrieval representation around the pixel (the completed "
            "block rows above it, --semantic-context blocks each way) is within (1+semantic-eps) of the closest are "
            "candidates (default: off).",
            optional=True,
        ),
        Param(
            "semantic_context",
            2,
            int,
            1,
            64,
            SAMPLE,
            "Reach of the semantic filter's context, in retrieval blocks: that many completed block rows above the "
            "pixel, that many block columns to each side.",
        ),
        Param(
            "class_mixture",
            1,
            int,
            0,
            1,
            SAMPLE,
            "Unconditional samples first draw a class from the training class shares (1) or use every image (0).",
        ),
        Param(
            "class_draw",
            "stratified",
            str,
            None,
            None,
            SAMPLE,
            "How the class mixture draws each sample's class: stratified (a golden-ratio sequence from a random "
            "start, so any n consecutive samples hold each class within about 3 of its share of n) or independent "
            "(each sample its own draw: in 1,000 samples a class may be 2 points off its share).",
            choices=("stratified", "independent"),
        ),
        Param("seed", 0, int, 0, 2**63 - 1, SAMPLE, "Random seed; same seed and database give identical output."),
        Param("batch_size", 100, int, 1, 10_000, SAMPLE, "Samples generated in lockstep."),
        Param(
            "device",
            "cpu",
            str,
            None,
            None,
            RUN,
            "Where the sampler's rows run: the CPU, a CUDA GPU (npgen.rule.cuda; bit-identical output), or auto (a GPU when one is usable).",
            choices=("auto", "cpu", "cuda"),
        ),
    )
}
BUILD_PARAMS = tuple(name for name, p in PARAMS.items() if p.stage == BUILD)
SAMPLER_PARAMS = tuple(name for name, p in PARAMS.items() if p.stage == SAMPLE)
ADDED_LATER = {
    "levels": 1,
    "coarse_weight": 0.0,
    "anchor": "position",
    "max_part_share": 1.0,
    "size": None,
    "outside_canvas": "pad",
    "class_draw": "independent",
    "max_reuse": 0.0,
}  # sampler parameters runs recorded before them did not name


def recorded_params(params: dict) -> dict:
    """A run manifest's sampler parameters with those added since it was recorded, at the value they then had."""
    return {**ADDED_LATER, **params}


def check(name: str, value):
    """`value` converted to the parameter's type, or an NpgenError naming the parameter and its range."""
    param = PARAMS[name]
    if value is None and param.optional:
        return None
    flag = "--" + name.replace("_", "-")
    if param.parse is not None:
        try:
            return param.parse(value)
        except ValueError:
            raise NpgenError(
                f"invalid {name}={value!r} ({flag}): must be HxW, two whole numbers in 1..{MAX_SIDE} (e.g. 256x384)"
            ) from None
    if param.choices:
        if value not in param.choices:
            raise NpgenError(f"invalid {name}={value!r} ({flag}): must be one of {', '.join(param.choices)}")
        return value
    try:
        if param.kind is int and isinstance(value, float) and not value.is_integer():
            raise ValueError
        converted = param.kind(value)
    except (TypeError, ValueError, OverflowError):
        raise NpgenError(f"invalid {name}={value!r} ({flag}): must be a number in {param.range_text}") from None
    if isinstance(converted, float) and not math.isfinite(converted):
        raise NpgenError(f"invalid {name}={value!r} ({flag}): must be finite, in {param.range_text}")
    if (param.low is not None and converted < param.low) or (param.high is not None and converted > param.high):
        raise NpgenError(f"invalid {name}={value!r} ({flag}): must be in {param.range_text}")
    return converted


def resolve(names: tuple[str, ...], explicit: dict, preset: dict | None = None) -> dict:
    """The checked value of each name: explicit (when not None), else the preset's, else the default."""
    preset = preset or {}
    unknown = sorted(set(preset) - set(PARAMS))
    if unknown:
        raise NpgenError(f"the dataset preset names unknown parameters {unknown}; fix the dataset card")
    resolved = {}
    for name in names:
        value = explicit.get(name)
        if value is None:
            value = preset.get(name, PARAMS[name].default)
        resolved[name] = check(name, value)
    return resolved


def part_bound(max_part_share: float, n_pixels: int) -> int:
    """Most pixels one copied part of a sample of n_pixels may hold (`npgen.rule.parts`)."""
    return source_budget(max_part_share, n_pixels)


def source_budget(max_source_share: float, n_pixels: int) -> int:
    """Most pixels one training image may supply to one sample: floor(share * pixels), at least 1."""
    return max(1, int(math.floor(max_source_share * n_pixels + 1e-9)))


def differences(old, new, prefix: str = "") -> list[tuple[str, object, object]]:
    """(dotted name, old value, new value) of every entry that differs between two (nested) records."""
    if isinstance(old, dict) and isinstance(new, dict):
        found = []
        for key in list(old) + [k for k in new if k not in old]:
            found += differences(old.get(key), new.get(key), f"{prefix}.{key}" if prefix else str(key))
        return found
    return [] if old == new else [(prefix, old, new)]


def describe_differences(old, new, old_name: str, new_name: str, prefix: str = "") -> str:
    """Which entries differ and their two values, e.g. "k_min = 2 in the run, 3 in this command"."""
    found = differences(old, new, prefix)
    return "; ".join(f"{name} = {a!r} in {old_name}, {b!r} in {new_name}" for name, a, b in found) or "nothing differs"


# ---- information maps (npgen/analysis/infomap.py): the smoothing of the predictive distribution ----

INFOMAP = "infomap"
PARAMS.update(
    {
        p.name: p
        for p in (
            Param(
                "tau",
                None,
                float,
                0.01,
                128.0,
                INFOMAP,
                "Kernel width (grey levels) smoothing p(pixel | context) (default: 0.5 grey, 16 colour, as tuned by benchmarks/quality/likelihood.py).",
                optional=True,
            ),
            Param(
                "floor", 0.1, float, 1e-9, 0.999, INFOMAP, "Weight of the uniform floor mixed into p(pixel | context)."
            ),
        )
    }
)
INFOMAP_PARAMS = ("tau", "floor")
