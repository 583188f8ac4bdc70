"""A plain-numpy restatement of npgen's sampling rule, written for clarity, not speed.

No early exit, no incremental state: the semantic pool is recomputed from scratch at every
retrieval block row, and every candidate window's full distance is computed. It shares with the
numba sampler only the database arrays and the counter-based random numbers (`npgen.rule.rng`), and
must produce bit-identical samples and provenance (tests/test_reference.py).
"""

from __future__ import annotations

import math

import numpy as np

from npgen.rule.rng import CLASS_STREAM, TIE_BREAK_STREAM, level_keys, mix, sample_keys, uniform
from npgen.rule.windows import causal_offsets, window_weights

TIE_BITS = 20


def reference_class(seed: int, index: int, labels: np.ndarray, n_classes: int, class_draw: str = "independent") -> int:
    """The mixture's class for one sample: the first class whose cumulative share exceeds u, where u is the
    sample's own uniform (independent) or the golden-ratio sequence's index-th term from a per-seed start
    (stratified)."""
    if class_draw == "stratified":
        start = uniform(sample_keys(seed, np.array([-1]))[0] ^ CLASS_STREAM, 0)
        u = math.fmod(start + index * (math.sqrt(5.0) - 1.0) / 2.0, 1.0)
    else:
        u = uniform(sample_keys(seed, np.array([index]))[0] ^ CLASS_STREAM, 0)
    shares = np.bincount(labels, minlength=n_classes) / len(labels)
    cumulative = 0.0
    for c in range(n_classes):
        cumulative += shares[c]
        if u < cumulative and shares[c] > 0:
            return c
    return int(np.flatnonzero(shares)[-1])


def reference_pool(
    canvas_rows: np.ndarray, train_rep: np.ndarray, allowed: np.ndarray, key, encoder, size: int
) -> np.ndarray:
    """The `size` allowed images nearest to a canvas prefix in the retrieval representation (`encoder`:
    block sums or patch codes, encoding the whole prefix at once), over its completed block rows."""
    rows = canvas_rows.shape[0] // encoder.block
    if rows == 0:
        distances = np.zeros(len(allowed), np.int64)
    else:
        mine = encoder.encode(canvas_rows[None, : rows * encoder.block])[0].astype(np.int64)
        theirs = train_rep[allowed, :rows].astype(np.int64)
        distances = ((theirs - mine[None]) ** 2).sum(axis=(1, 2))
    ties = np.array([int(mix(key ^ TIE_BREAK_STREAM, int(m))) & ((1 << TIE_BITS) - 1) for m in allowed], np.int64)
    ranks = (distances << TIE_BITS) | ties
    return allowed[np.argsort(ranks, kind="stable")[:size]]


def reference_semantic(
    canvas_rows: np.ndarray, train_rep: np.ndarray, pool: np.ndarray, encoder, columns: int, context: int
) -> np.ndarray:
    """(len(pool), columns) semantic distance of each pool image at each block column: over the canvas prefix's
    last `context` completed block rows and the columns within `context` of it, the summed squared difference
    of representations (block j's entries are j*D .. j*D + D - 1 of a row)."""
    rows = canvas_rows.shape[0] // encoder.block
    out = np.zeros((len(pool), columns))
    if rows == 0:
        return out
    mine = encoder.encode(canvas_rows[None, : rows * encoder.block])[0].astype(np.int64)
    dims = mine.shape[1] // columns
    for k, image in enumerate(pool):
        theirs = train_rep[image].astype(np.int64)
        for j in range(columns):
            for r in range(max(0, rows - context), rows):
                for jj in range(max(0, j - context), min(columns, j + context + 1)):
                    part = slice(jj * dims, (jj + 1) * dims)
                    out[k, j] += float(((mine[r, part] - theirs[r, part]) ** 2).sum())
    return out


def reference_sample(
    db,
    params: dict,
    index: int,
    class_label: int | None,
    key=None,
    pool=None,
    coarse=None,
    anchors=None,
    class_map=None,
    given=None,
) -> dict:
    """One sample (global index `index`) under the rule with these sampler params; its image and provenance.

    A pyramid level (`reference_pyramid_sample`) gives its own `key`, its `pool` (fixed for every row; a list, one
    per class of the class map) and, for a finer level with a coarse weight, `coarse` = (the complete coarser
    sample, the training images at that level padded by one pixel of the pad value on every side,
    coarse_weight / 9), and with anchor "parent" the (H, W) rows and columns its candidate windows are centred at
    (`anchors`), or the radius None (the coarsest level: every position). `class_map` (H, W) gives each pixel's
    class (-1: any), `given` = (image, known) a completion's input and its given pixels, which are kept and get no
    provenance (-1, distance nan)."""
    h, height, width, channels = db.half_window, db.height, db.width, db.channels
    images = np.asarray(db.images())
    labels = np.asarray(db.labels)
    train_rep = np.asarray(db.representations)
    padded = np.asarray(db.sources).reshape(len(images), height + h, width + 2 * h, channels)
    key = sample_keys(params["seed"], np.array([index]))[0] if key is None else key
    if class_label is None and params["class_mixture"] and len(db.class_names) > 1 and class_map is None:
        class_label = reference_class(
            params["seed"], index, labels, len(db.class_names), params.get("class_draw", "independent")
        )
    allowed = np.arange(len(images)) if class_label is None else np.flatnonzero(labels == class_label)
    region_allowed, region_of = [allowed], None
    if class_map is not None:  # a region per class of the map, each with its own pool
        classes = np.unique(class_map)
        region_allowed = [np.arange(len(images)) if c < 0 else np.flatnonzero(labels == c) for c in classes]
        region_of = np.searchsorted(classes, class_map)
    pools = [None] * len(region_allowed) if pool is None else pool if isinstance(pool, list) else [pool]
    pooled = [0 < params["pool_size"] < len(a) and pool is None for a in region_allowed]
    pools = [a if p is None else p for a, p in zip(region_allowed, pools)]
    size = params.get("size")
    out_height, out_width = (height, width) if size is None else map(int, size.split("x"))
    budget = max(1, int(np.floor(params["max_source_share"] * out_height * out_width + 1e-9)))
    part_bound = max(1, int(np.floor(params.get("max_part_share", 1.0) * out_height * out_width + 1e-9)))
    max_reuse = params.get("max_reuse", 0.0)  # copies of one source pixel: ceil(max_reuse * even share), or any
    reuse_cap = math.ceil(max_reuse * out_height * out_width / (len(images) * height * width) - 1e-9) or math.inf
    copies = {}
    raster_weights, raster_offsets = window_weights(h, params["sigma"]), causal_offsets(h)
    order = np.argsort(-raster_weights, kind="stable")
    offsets, weights = raster_offsets[order], raster_weights[order]
    outside_ignored = params.get("outside_canvas", "pad") == "ignored"
    radius, eps, abs_tol, k_min = params["radius"], params["eps"], params["abs_tol"], params["k_min"]
    radius = max(height, width) if radius is None else radius

    canvas = np.full((out_height + h, out_width + 2 * h, channels), db.pad_value, np.uint8)
    used = np.zeros(len(images), np.int64)
    shape = (out_height, out_width)
    record = {name: np.zeros(shape, np.int64) for name in ("src_image", "src_y", "src_x", "n_candidates")}
    record["distance"] = np.zeros(shape, np.float32)
    known = np.zeros(shape, bool)
    if given is not None:  # the given pixels in place; the others are generated before any context reads them
        canvas[h:, h : h + out_width] = np.where(given[1][..., None], given[0], 0)
        known = given[1]
        for name in record:
            record[name][known] = -1 if name != "distance" else np.nan
    taken = np.zeros(shape, bool)
    block, columns = db.retrieval_block, db.encoder.columns(width)
    semantic_eps = params["semantic_eps"]
    for y in range(out_height):
        for r, a in enumerate(region_allowed):
            if pooled[r] and y % block == 0:
                pools[r] = reference_pool(
                    canvas[h : h + y, h : h + width], train_rep, a, key, db.encoder, params["pool_size"]
                )
        if semantic_eps is not None and y % block == 0:
            semantic = reference_semantic(
                canvas[h : h + y, h : h + width], train_rep, pools[0], db.encoder, columns, params["semantic_context"]
            )
        for x in range(out_width):
            if known[y, x]:
                continue
            pool = pools[0 if region_of is None else region_of[y, x]]
            context = canvas[h + y + offsets[:, 0], h + x + offsets[:, 1]].astype(np.float32)  # (L, C)
            pixel_weights = weights
            if outside_ignored:  # only the context inside the canvas counts, its weights summing to 1 (raster order)
                rows, columns = y + raster_offsets[:, 0], x + raster_offsets[:, 1]
                inside = (rows >= 0) & (columns >= 0) & (columns < out_width)
                if not inside.all():
                    kept = np.where(inside, raster_weights.astype(np.float64), 0.0)
                    kept = kept / kept.sum() if kept.sum() > 0 else kept
                    pixel_weights = kept.astype(np.float32)[order]
            passes = used[pool] < budget
            if semantic_eps is not None:  # images within (1+eps) of the closest with budget left, at x's block
                at_block = semantic[:, min(x // block, columns - 1)]
                passes &= at_block <= (1.0 + semantic_eps) * at_block[passes].min()
            at_y, at_x = (y * height // out_height, x * width // out_width)  # the relative position at another size
            if anchors is not None:
                at_y, at_x = anchors[0][y, x], anchors[1][y, x]
            box_y = np.arange(max(0, at_y - radius), min(height, at_y + radius + 1))
            box_x = np.arange(max(0, at_x - radius), min(width, at_x + radius + 1))
            every = np.stack(np.meshgrid(pool[passes], box_y, box_x, indexing="ij"), axis=-1).reshape(-1, 3)
            candidates = [  # image by image, each in raster order of positions
                (image, sy, sx)
                for image, sy, sx in every.tolist()
                if (part_bound >= out_height * out_width or reference_part_size(record, taken, y, x, image, sy, sx) <= part_bound)
                and copies.get((image, sy, sx), 0) < reuse_cap
            ]  # fmt: skip
            image_of, y_of, x_of = np.array(candidates, np.int64).reshape(-1, 3).T
            windows = padded[image_of[:, None], h + y_of[:, None] + offsets[:, 0], h + x_of[:, None] + offsets[:, 1]]
            diff = context[None] - windows.astype(np.float32)  # float32, as the kernel
            ssd = np.zeros(diff.shape[:2])
            for c in range(channels):  # channels in order, accumulated in float64
                ssd += diff[..., c] * diff[..., c]
            total = np.zeros(len(candidates))
            if coarse is not None:  # the 3x3 neighbourhoods of the parents, padded with the pad value
                coarse_canvas, coarse_train, scale = coarse
                framed = np.pad(coarse_canvas, ((1, 1), (1, 1), (0, 0)), constant_values=db.pad_value).astype(np.int64)
                mine = framed[y // 2 : y // 2 + 3, x // 2 : x // 2 + 3]
                three = np.arange(3)
                theirs = coarse_train[  # (candidates, 3, 3, C): each candidate's parent neighbourhood
                    image_of[:, None, None],
                    (y_of // 2)[:, None, None] + three[:, None],
                    (x_of // 2)[:, None, None] + three[None, :],
                ].astype(np.int64)
                total = np.float64(scale) * ((mine[None] - theirs) ** 2).sum(axis=(1, 2, 3)).astype(np.float64)
            for l in range(len(weights)):  # offsets in order: the kernel's summation order
                total += np.float64(pixel_weights[l]) * ssd[:, l]
            threshold = (1.0 + eps) * total.min() + abs_tol
            k = min(k_min, len(total))
            if k > 1 and (total <= threshold).sum() < k:
                threshold = np.sort(total)[k - 1]
            admissible = np.flatnonzero(total <= threshold)
            u = uniform(key, y * out_width + x)
            chosen = admissible[min(int(u * len(admissible)), len(admissible) - 1)]
            image, sy, sx = candidates[chosen]
            canvas[h + y, h + x] = images[image, sy, sx]
            used[image] += 1
            copies[image, sy, sx] = copies.get((image, sy, sx), 0) + 1
            taken[y, x] = True
            for name, value in zip(record, (image, sy, sx, len(admissible), np.float32(total[chosen]))):
                record[name][y, x] = value
    return {
        "image": canvas[h:, h : h + out_width].copy(),
        "class_label": -1 if class_label is None else class_label,
        **record,
    }


def reference_part_size(record: dict, taken: np.ndarray, y: int, x: int, image: int, sy: int, sx: int) -> int:
    """Pixels of the copied part pixel (y, x) would belong to if copied from (sy, sx) of `image`: a breadth-first
    search over the taken pixels copied from `image` at the same displacement, 4-connected to it."""
    continued = [
        (ny, nx)
        for ny, nx in ((y, x - 1), (y - 1, x))
        if ny >= 0 and nx >= 0 and taken[ny, nx] and record["src_image"][ny, nx] == image
        and record["src_y"][ny, nx] - ny == sy - y and record["src_x"][ny, nx] - nx == sx - x
    ]  # fmt: skip
    if not continued:  # only the left and upper neighbours are taken next to a new pixel
        return 1
    same = taken & (record["src_image"] == image)
    same &= (record["src_y"] - np.arange(len(taken))[:, None] == sy - y) & (
        record["src_x"] - np.arange(taken.shape[1]) == sx - x
    )
    seen, frontier = {(y, x)}, [(y, x)]
    while frontier:
        cy, cx = frontier.pop()
        for ny, nx in ((cy - 1, cx), (cy + 1, cx), (cy, cx - 1), (cy, cx + 1)):
            if 0 <= ny < len(taken) and 0 <= nx < taken.shape[1] and same[ny, nx] and (ny, nx) not in seen:
                seen.add((ny, nx))
                frontier.append((ny, nx))
    return len(seen)


def reference_level(images: np.ndarray, level: int) -> np.ndarray:
    """Level `level` of (N, H, W, C) uint8 images: the mean of each 2^level x 2^level block, rounded half up."""
    f = 2**level
    n, height, width, channels = images.shape
    blocks = images.astype(np.float64).reshape(n, height // f, f, width // f, f, channels)
    return np.floor(blocks.mean(axis=(2, 4)) + 0.5).astype(np.uint8)  # exact: f*f is a power of two


def reference_pyramid_sample(db, params: dict, index: int, class_label: int | None, class_map=None, given=None) -> dict:
    """One sample through `params["levels"]` pyramid levels: the coarsest sampled as a one-level sample of the level
    images, each finer one with its pool the pool_size images nearest the complete coarser sample (over all its
    pixels; one pool per class of the class map) and, with a coarse weight, the coarse term; the class drawn once;
    reuse bounded at the coarsest level. A class map (H, W) holds at every level, pixel (y, x) of level k taking
    the class of (y * 2^k, x * 2^k); a completion's `given` = (input image, known) too, a block given at level k
    when all its pixels are, as their mean.
    Returns level 0's result with "coarser": the results of levels 1, 2, ..."""
    labels = np.asarray(db.labels)
    if class_label is None and params["class_mixture"] and len(db.class_names) > 1 and class_map is None:
        class_label = reference_class(
            params["seed"], index, labels, len(db.class_names), params.get("class_draw", "independent")
        )
    allowed = np.arange(len(labels)) if class_label is None else np.flatnonzero(labels == class_label)
    originals = np.asarray(db.images())
    levels = params["levels"]
    for k in range(1, levels):
        np.testing.assert_array_equal(np.asarray(db.level(k).images()), reference_level(originals, k))
    size = params.get("size")
    out_height, out_width = originals.shape[1:3] if size is None else map(int, size.split("x"))
    results = []
    for k in range(levels - 1, -1, -1):
        key = level_keys(params["seed"], np.array([index]), k)[0]
        parented = params["anchor"] == "parent"
        params_k = {**params, "size": None if size is None else f"{out_height >> k}x{out_width >> k}"}
        params_k["max_reuse"] = params.get("max_reuse", 0.0) if k == levels - 1 else 0.0  # the coarsest level only
        rows, columns = np.indices((out_height >> k, out_width >> k))
        map_k = None if class_map is None else class_map[rows << k, columns << k]
        given_k = None
        if given is not None:
            f = 1 << k
            blocks = given[1].reshape(out_height >> k, f, out_width >> k, f)
            given_k = (reference_level(given[0][None], k)[0], blocks.all(axis=(1, 3)))
        controls = {"class_map": map_k, "given": given_k}
        if k == levels - 1:
            coarsest = {**params_k, "radius": None} if parented else params_k
            results.append(reference_sample(db.level(k), coarsest, index, class_label, key=key, **controls))
            continue
        coarser = reference_level(originals, k + 1)
        regions = [allowed]
        if map_k is not None:
            regions = [np.arange(len(labels)) if c < 0 else np.flatnonzero(labels == c) for c in np.unique(map_k)]
        pool = [reference_complete_pool(results[-1]["image"], coarser, a, key, params["pool_size"]) for a in regions]
        scale = params["coarse_weight"] / 9
        framed = np.pad(coarser, ((0, 0), (1, 1), (1, 1), (0, 0)), constant_values=db.pad_value)
        coarse = (results[-1]["image"], framed, scale) if params["coarse_weight"] > 0 else None
        anchors = None
        if parented:  # twice the parent's source, plus the pixel's place in its parent
            parent = (rows // 2, columns // 2)
            anchors = (2 * results[-1]["src_y"][parent] + rows % 2, 2 * results[-1]["src_x"][parent] + columns % 2)
        level_db = db.level(k)
        results.append(
            reference_sample(
                level_db, params_k, index, class_label, key=key, pool=pool, coarse=coarse, anchors=anchors, **controls
            )
        )
    finest = results[-1]
    finest["coarser"] = results[-2::-1]
    return finest


def reference_complete_pool(canvas: np.ndarray, images: np.ndarray, allowed: np.ndarray, key, size: int) -> np.ndarray:
    """The `size` allowed images nearest to a complete canvas over all its pixels, ties broken as `reference_pool`."""
    if not 0 < size < len(allowed):
        return allowed
    distances = ((images[allowed].astype(np.int64) - canvas[None].astype(np.int64)) ** 2).sum(axis=(1, 2, 3))
    ties = np.array([int(mix(key ^ TIE_BREAK_STREAM, int(m))) & ((1 << TIE_BITS) - 1) for m in allowed], np.int64)
    return allowed[np.argsort((distances << TIE_BITS) | ties, kind="stable")[:size]]
