"""Verify a run (`npgen verify`): re-derive every generated pixel from its recorded source and check the run's
guarantees (locality radius, class, source budget, exclusion, a completion's given pixels, the bounds on copied parts
and on reuse)."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass

import numpy as np

from npgen.data.clusters import cluster_labels
from npgen.data.datasets import Dataset
from npgen.data.levels import level_images, level_mask
from npgen.errors import NpgenError
from npgen.params import check, part_bound, recorded_params, source_budget
from npgen.rule.parts import largest_parts
from npgen.rule.reuse import reuse_cap
from npgen.rule.sampler import draw_classes
from npgen.runs.run import Run, check_provenance, load_test_split


@dataclass
class LevelCounts:
    """What `check_level` counts at one pyramid level (`VerifyReport` sums them over the levels)."""

    n_pixels: int
    mismatches: int
    missing_or_duplicate: int
    outside_radius: int
    wrong_class: int
    over_budget: int
    unproducible: int
    excluded_pixels: int
    over_part_bound: int
    over_reuse_cap: int
    max_source_pixels: int  # the most pixels one training image gave one sample, at level 0 only
    largest_part: int  # the most pixels of one copied part of a sample (`npgen.rule.parts`), at level 0 only
    most_reused: int  # the most pixels one source pixel gave one sample's coarsest level (`npgen.rule.reuse`)

    def __add__(self, other: "LevelCounts") -> "LevelCounts":
        summed = {name: getattr(self, name) + getattr(other, name) for name in LevelCounts.__dataclass_fields__}
        level_0 = {"max_source_pixels": self.max_source_pixels, "largest_part": self.largest_part}
        return LevelCounts(**{**summed, **level_0, "most_reused": max(self.most_reused, other.most_reused)})


@dataclass
class VerifyReport(LevelCounts):
    """What `verify_run` found: every count but n_pixels must be 0 for a faithful run.

    over_budget counts samples that took more than the run's source budget from one training image;
    wrong_class counts pixels from an image outside the sample's class (requested, drawn by the
    mixture: verify re-draws it from the seed, or its region's class under a class map); unproducible
    counts pixels no admissible rule gives (no admissible candidate recorded, or a distance that is not
    a finite number >= 0); excluded_pixels counts pixels copied from an excluded training image;
    given_changed counts a completion's given pixels that differ from its input (or the input from the
    test image it names; at a coarser level, from the exact mean of its block of the input).
    missing_or_duplicate counts pixels without exactly one provenance row (a completion's given pixels: without
    any). over_part_bound counts samples with a copied part (4-connected pixels
    from one training image at one displacement) of more than part_bound pixels (max_part_share of its pixels).
    over_reuse_cap counts samples whose coarsest level took more than reuse_cap pixels from one source pixel (with
    max_reuse > 0; reuse_cap is 0 without it), most_reused the most it took. With pyramid levels every count (and
    n_pixels) covers every level,
    each coarser level checked against the training images' level images derived again from the dataset, under
    its own budget (max_source_share of its pixels) and part bound; max_source_pixels, largest_part, source_budget
    and part_bound are level 0's. With
    anchor "parent", a finer level's radius is measured from twice its parent's recorded source, and the
    coarsest level has none.
    """

    given_changed: int
    source_budget: int
    part_bound: int
    reuse_cap: int
    n_excluded_images: int
    levels: int = 1

    @property
    def ok(self) -> bool:
        counts = (
            self.mismatches,
            self.missing_or_duplicate,
            self.outside_radius,
            self.wrong_class,
            self.over_budget,
            self.unproducible,
            self.excluded_pixels,
            self.over_part_bound,
            self.over_reuse_cap,
            self.given_changed,
        )
        return not any(counts)


def expected_classes(manifest: dict, class_counts: np.ndarray, n: int) -> np.ndarray:
    """The class each of a run's n samples must draw from (-1: any), re-derived from its manifest."""
    params = manifest["params"]
    if manifest["class_label"] is not None:
        return np.full(n, manifest["class_label"], np.int64)
    if not params.get("class_mixture", 0) or len(class_counts) < 2 or manifest.get("class_map"):
        return np.full(n, -1, np.int64)
    return draw_classes(params["seed"], np.arange(n), class_counts, recorded_params(params)["class_draw"])


def verify_run(run_path: str | os.PathLike, data_root=None) -> VerifyReport:
    """Re-derive every generated pixel, at every pyramid level, from its recorded source in the dataset itself (not
    the database), and check the run's guarantees at each: locality radius, class, source budget, exclusion."""
    run = Run(run_path)
    data = run.dataset(data_root)
    samples = np.asarray(run.samples)
    n = len(samples)
    if list(data.images.shape[1:]) != list(run.manifest["dataset"]["shape"]):
        raise NpgenError(
            f"run {run.path} was sampled from {tuple(run.manifest['dataset']['shape'])} images but its dataset has "
            f"{data.images.shape[1:]} images; the run is damaged, sample it again"
        )
    params = run.manifest["params"]
    try:
        radius = check("radius", params["radius"])
        share = check("max_source_share", params.get("max_source_share", 1.0))
    except (KeyError, NpgenError) as err:
        raise NpgenError(
            f"the manifest of run {run.path} is damaged: its radius or max_source_share is missing or invalid "
            f"({err if isinstance(err, NpgenError) else 'missing'}); sample the run again"
        ) from None
    budget = source_budget(share, samples.shape[1] * samples.shape[2])  # derived again, never read from the run
    if params.get("source_budget", budget) != budget:
        raise NpgenError(
            f"the manifest of run {run.path} is damaged: its source_budget {params['source_budget']!r} is not the "
            f"{budget} pixels that max_source_share={share:g} gives; sample the run again"
        )
    labels = data.labels
    if data.unlabelled:  # a flat folder's classes are clusters: derive them again rather than trust the cache
        labels = cluster_labels(data.images, k=data.clusters)
    excluded = run.control("excluded")
    excluded = np.zeros(0, np.int64) if excluded is None else excluded
    included = np.ones(data.n_images, dtype=bool)
    if len(excluded) and (excluded.min() < 0 or excluded.max() >= data.n_images):
        raise NpgenError(f"{run.path}/controls/excluded.npy names images outside the split; the run was altered")
    included[excluded] = False
    try:
        class_counts = np.bincount(labels[included], minlength=len(data.class_names))
        classes = expected_classes(run.manifest, class_counts, n)
    except (KeyError, TypeError, ValueError):
        raise NpgenError(
            f"the manifest of run {run.path} is damaged: its class_mixture, class_draw or seed is missing or invalid; sample the run again"
        ) from None
    if run.manifest["class_label"] is not None and run.manifest["class_label"] >= len(data.class_names):
        raise NpgenError(
            f"the manifest of run {run.path} is damaged: class_label {run.manifest['class_label']} is not a class of {data.name}; sample the run again"
        )
    recorded = recorded_params(params)
    try:
        part_share = check("max_part_share", recorded["max_part_share"])
        max_reuse = check("max_reuse", recorded["max_reuse"])
    except NpgenError as err:
        raise NpgenError(f"the manifest of run {run.path} is damaged ({err}); sample the run again") from None
    guarantees = Guarantees(
        radius,
        labels,
        classes,
        run.control("class_map"),
        included,
        part_share,
        recorded["anchor"] == "parent",
        max_reuse,
    )
    known, given_changed = _check_given(run, samples, data, data_root)
    found = check_level(run, data.images, samples, known, guarantees, budget)
    for level in range(1, run.levels):
        coarse = np.asarray(run.level_samples(level))
        level_budget = source_budget(share, coarse.shape[1] * coarse.shape[2])
        level_known, level_changed = _check_given(run, coarse, data, data_root, level)
        given_changed += level_changed
        found += check_level(
            run, level_images(data.images, level), coarse, level_known, guarantees, level_budget, level
        )
    return VerifyReport(
        **asdict(found),
        given_changed=given_changed,
        source_budget=budget,
        part_bound=part_bound(part_share, samples.shape[1] * samples.shape[2]),
        reuse_cap=_coarsest_cap(run, data.images, max_reuse),
        n_excluded_images=int(len(excluded)),
        levels=run.levels,
    )


@dataclass
class Guarantees:
    """What every level of a run must keep: the locality radius, each sample's class (or the class map's), the
    training images' classes and which images are allowed (not excluded)."""

    radius: int
    labels: np.ndarray
    classes: np.ndarray  # (n,) each sample's class, -1 for any
    class_map: np.ndarray | None  # (H, W) at level 0
    included: np.ndarray  # (N,) bool
    part_share: float  # max_part_share: the largest copied part, as a share of a level's pixels
    anchored: bool = False  # anchor "parent": finer levels within the radius of 2 * their parent's source
    max_reuse: float = 0.0  # the coarsest level's pixels one source pixel may give, over its even share (0: any)


def _coarsest_cap(run: Run, images: np.ndarray, max_reuse: float) -> int:
    """The reuse cap of the run's coarsest level (`npgen.rule.reuse`), derived again; 0 without a bound."""
    if max_reuse == 0:
        return 0
    coarsest = run.levels - 1
    n, height, width = run.samples.shape[:3]
    n_images, source_height, source_width = images.shape[:3]
    n_source = n_images * (source_height >> coarsest) * (source_width >> coarsest)
    return reuse_cap(max_reuse, (height >> coarsest) * (width >> coarsest), n_source)


def check_level(
    run: Run,
    images: np.ndarray,
    samples: np.ndarray,
    known: np.ndarray,
    guarantees: Guarantees,
    budget: int,
    level: int = 0,
) -> LevelCounts:
    """Check one pyramid level of a run: its samples (n, h, w, C) against the training images at that level
    (`images`, derived from the dataset), the provenance recorded for it and the run's guarantees."""
    table = run.provenance(level=level)
    column = {name: table.column(name).to_numpy() for name in table.column_names}
    n, height, width = samples.shape[:3]
    n_images, source_height, source_width = images.shape[:3]
    check_provenance(run.path, column, n, height, width, n_images, (source_height, source_width))
    copied = images[column["src_image"], column["src_y"], column["src_x"]]
    generated = samples[column["sample"], column["y"], column["x"]]
    seen = np.bincount(
        (column["sample"].astype(np.int64) * height + column["y"]) * width + column["x"], minlength=n * height * width
    )
    at_y = column["y"].astype(np.int64) * source_height // height  # the relative position (--size), else (y, x)
    at_x = column["x"].astype(np.int64) * source_width // width
    coarsest = level == run.levels - 1
    if guarantees.anchored and not coarsest:  # centred where the parent was copied from, doubled
        parent = run.provenance(["sample", "y", "x", "src_y", "src_x"], level=level + 1)
        parents = {name: parent.column(name).to_numpy() for name in parent.column_names}
        check_provenance(
            run.path, parents, n, height >> 1, width >> 1, n_images, (source_height >> 1, source_width >> 1)
        )
        sources = np.full((2, n, height >> 1, width >> 1), -(1 << 30), np.int64)
        sources[:, parents["sample"], parents["y"], parents["x"]] = parents["src_y"], parents["src_x"]
        which = (column["sample"], column["y"] >> 1, column["x"] >> 1)
        at_y = 2 * sources[0][which] + (column["y"] & 1)
        at_x = 2 * sources[1][which] + (column["x"] & 1)
    radius = guarantees.radius if not (guarantees.anchored and coarsest) else max(source_height, source_width)
    far = (np.abs(column["src_y"] - at_y) > radius) | (np.abs(column["src_x"] - at_x) > radius)
    pixel_class = guarantees.classes[column["sample"]]
    if guarantees.class_map is not None:
        pixel_class = guarantees.class_map[column["y"] << level, column["x"] << level]
    wrong_class = int(((pixel_class >= 0) & (guarantees.labels[column["src_image"]] != pixel_class)).sum())
    pairs, per_pair = np.unique(column["sample"].astype(np.int64) * n_images + column["src_image"], return_counts=True)
    per_sample_max = np.zeros(n, np.int64)
    np.maximum.at(per_sample_max, pairs // n_images, per_pair)
    distance = column["distance"]
    dense = np.full((3, n, height, width), -1, np.int64)  # src_image, src_y, src_x; -1 where nothing was copied
    dense[:, column["sample"], column["y"], column["x"]] = column["src_image"], column["src_y"], column["src_x"]
    largest = largest_parts(*dense)
    most_reused, over_reuse_cap = 0, 0
    if coarsest:  # copies of each source pixel (image, y, x) in each sample
        source_pixel = (column["src_image"].astype(np.int64) * source_height + column["src_y"]) * source_width
        keys = column["sample"].astype(np.int64) * (n_images * source_height * source_width) + source_pixel
        keys += column["src_x"]
        pairs, copies = np.unique(keys, return_counts=True)
        most_reused = int(copies.max(initial=0))
        if guarantees.max_reuse > 0:
            cap = reuse_cap(guarantees.max_reuse, height * width, n_images * source_height * source_width)
            over_reuse_cap = len(np.unique(pairs[copies > cap] // (n_images * source_height * source_width)))
    return LevelCounts(
        n_pixels=n * height * width,
        mismatches=int(np.any(copied != generated, axis=-1).sum()),
        missing_or_duplicate=int((seen != (~known).ravel()).sum()),
        outside_radius=int(far.sum()),
        wrong_class=wrong_class,
        over_budget=int((per_sample_max > budget).sum()),
        unproducible=int(((column["n_candidates"] < 1) | ~np.isfinite(distance) | (distance < 0)).sum()),
        excluded_pixels=int((~guarantees.included[column["src_image"]]).sum()),
        over_part_bound=int((largest > part_bound(guarantees.part_share, height * width)).sum()),
        over_reuse_cap=over_reuse_cap,
        max_source_pixels=int(per_sample_max.max(initial=0)),
        largest_part=int(largest.max(initial=0)),
        most_reused=most_reused,
    )


def _check_given(run: Run, samples: np.ndarray, train: Dataset, data_root, level: int = 0) -> tuple[np.ndarray, int]:
    """((n, h, w) bool given pixels, how many differ from the input): for a completion run; none otherwise.

    A completion of test-split images is checked against the test split itself, not only the stored input. At a
    coarser `level` the given pixels are the blocks given whole, each the exact mean of its block of the input
    (`Completion.at_level`), derived again here.
    """
    n = len(samples)
    record = run.manifest.get("completion")
    if not record:
        return np.zeros(samples.shape[:3], dtype=bool), 0
    inputs, known = run.control("inputs"), run.control("known")
    try:
        per_input = int(record["per_input"])
    except (KeyError, TypeError, ValueError):
        raise NpgenError(f"the manifest of run {run.path} is damaged: its completion record lacks per_input") from None
    if inputs is None or known is None or len(inputs) * per_input != n or known.shape != inputs.shape[:3]:
        raise NpgenError(f"run {run.path} is a completion without matching controls/inputs.npy and known.npy")
    which = np.arange(n) // per_input
    if level > 0:
        inputs, known = level_images(inputs, level), level_mask(known, level)
    changed = (samples != inputs[which]).any(axis=-1) & known[which]
    if record.get("test_indices") is not None and level == 0:
        test = load_test_split(train, run.data_root(data_root), "verifying a completion of test images")
        original = test.images[np.asarray(record["test_indices"], dtype=np.int64)]
        changed |= (original[which] != inputs[which]).any(axis=-1) & known[which]
    return known[which], int(changed.sum())
