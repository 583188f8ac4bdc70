"""Coarse-to-fine sampling: a small image first, then each finer level guided by the complete coarser one.

With `levels` L > 1 a sample is made L times, from the coarsest level L - 1 to level 0 (the images' own
size), each level by the one-level rule over the database at that level (`Database.level`: every training
image's exact integer box means, `npgen.data.levels`):

1. the coarsest level is sampled exactly as a one-level sampler samples images of that size;
2. at each finer level k the pool is chosen once, from the complete sample of level k + 1: the
   `pool_size` allowed training images nearest to it at level k + 1 (exact integer distances over all its
   pixels, `complete_pool`), instead of from the rows completed so far. The coarse sample so decides which
   images shape the whole canvas from the first row on, where a one-level pool is chosen from nothing;
3. with `coarse_weight` w > 0, every window distance at level k also starts with w/9 times the squared
   difference between the 3x3 neighbourhood of the pixel's parent (y // 2, x // 2) in the complete coarser
   sample and that of the candidate window's parent in the candidate image at level k + 1
   (`kernels.CoarseLevel`): the finer level follows the coarser layout, not only its choice of images;
4. with `anchor` "parent" (single images) the coarsest level takes windows from every position, and each finer
   pixel's candidate windows are centred where its parent was copied from, doubled (`kernels.anchor_position`),
   within `radius`: the finer levels refine the coarser layout wherever its parts came from.
5. with `max_reuse` > 0 the coarsest level alone bounds how often a source pixel is copied (`npgen.rule.reuse`):
   it sets the sample's layout and colours, which the finer levels refine around their parents' sources.

Every level copies its pixels from training images at that level and records their provenance, under its
own source budget (max_source_share of the level's pixels), the same class and the same exclusion; the
levels draw independent random numbers (`rng.level_keys`), level 0 those of a one-level sampler. The
class of an unconditional sample is drawn once, for all its levels. A class map holds at every level, each
coarse pixel taking its block's top-left class (`npgen.data.levels.level_map`), each region of a finer level
its own pool; a completion too (`Completion.at_level`): a coarse pixel is given only where its whole block is,
so every generated pixel's parent was generated too, and has a source to anchor at.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from npgen.data.levels import level_map, level_shape
from npgen.errors import NpgenError
from npgen.rule.kernels import CoarseLevel
from npgen.rule.pool import complete_pool
from npgen.rule.provenance import Samples
from npgen.rule.rng import level_keys

if TYPE_CHECKING:
    from npgen.rule.sampler import Sampler


def check_levels(sampler: "Sampler") -> None:
    """Refuse, in one line, a pyramid the sampler's images or controls do not allow (yet)."""
    db = sampler.database
    level_shape(db.height, db.width, sampler.levels - 1)
    if sampler.size is not None:
        try:
            level_shape(*sampler.canvas_shape, sampler.levels - 1)
        except NpgenError:
            factor = 1 << (sampler.levels - 1)
            raise NpgenError(
                f"--size {sampler.size} has no pyramid level {sampler.levels - 1}: both sides must be multiples of "
                f"{factor}; choose another --size or fewer --levels"
            ) from None


def coarse_level(coarser_db, samples: Samples, coarse_weight: float, anchor: str) -> CoarseLevel | None:
    """The finer level's `CoarseLevel` from the complete coarser `samples` and the database at their level; None
    with coarse_weight 0 and anchor "position" (the coarser level then only chooses the pool)."""
    if coarse_weight == 0 and anchor == "position":
        return None
    n, height, width, channels = samples.images.shape
    framed = np.pad(samples.images, ((0, 0), (1, 1), (1, 1), (0, 0)), constant_values=coarser_db.pad_value)

    def offsets(padded_width: int) -> np.ndarray:
        return np.array([(dy * padded_width + dx) * channels for dy in (-1, 0, 1) for dx in (-1, 0, 1)], np.int64)

    return CoarseLevel(
        framed.reshape(n, -1),
        coarser_db.neighbourhoods(),
        width,
        coarser_db.width,
        offsets(width + 2),
        offsets(coarser_db.width + 2),
        float(coarse_weight) / 9,
        samples.src_y.astype(np.int64),
        samples.src_x.astype(np.int64),
        anchor == "parent",
    )


def sample_pyramid(sampler: "Sampler", indices: np.ndarray, class_label: int) -> Samples:
    """Samples of one class (-1: every training image) through every level (module docstring): level 0's samples,
    with `coarser` holding levels 1 .. L - 1."""
    db = sampler.database
    height, width = sampler.canvas_shape
    at_level = [
        replace(
            sampler,
            database=db.level(k),
            levels=1,
            level=k,
            anchor="position",
            max_reuse=sampler.max_reuse if k == sampler.levels - 1 else 0.0,
            size=None if sampler.size is None else f"{height >> k}x{width >> k}",
            class_map=None if sampler.class_map is None else level_map(sampler.class_map, k),
            completion=None if sampler.completion is None else sampler.completion.at_level(k),
        )
        for k in range(sampler.levels)
    ]
    coarsest = at_level[-1]
    if sampler.anchor == "parent":  # every position: only the finer levels are anchored
        coarsest.radius = max(coarsest.database.height, coarsest.database.width)
    made = [coarsest.sample_group(indices, class_label)]
    for k in range(sampler.levels - 2, -1, -1):
        finer, coarser = at_level[k], at_level[k + 1]
        keys = level_keys(sampler.seed, indices, k)
        pools = [  # one per region of the class map at this level
            complete_pool(made[-1].images, coarser.database.images(), allowed, keys, sampler.pool_size)
            for allowed in finer.regions(class_label)[0]
        ]
        coarse = coarse_level(coarser.database, made[-1], sampler.coarse_weight, sampler.anchor)
        made.append(finer.sample_group(indices, class_label, fixed_pools=pools, coarse=coarse))
    finest = made[-1]
    finest.coarser = made[-2::-1]
    return finest
