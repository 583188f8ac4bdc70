"""The sampling rule's per-pixel and per-window steps, written once for the CPU and the CUDA row kernels.

Every function here is a plain Python function registered with `numba.extending.register_jitable`: numba
compiles it into whichever kernel calls it, the CPU's (`npgen.rule.cpu`, numba.njit) or the GPU's
(`npgen.rule.cuda`, numba.cuda device code), so the two kernels apply one rule and cannot drift apart;
numba's CUDA simulator runs it as Python. The kernels keep only their own parallel structure: the CPU
scores one canvas's candidates in a loop with early exit, a CUDA block scores them over its threads and
reduces.

One primitive must differ: a float64 product or sum rounded on its own (`mul_rn`, `add_rn`). On the CPU
that is plain * and + (numba never fuses them); on the GPU, libdevice's `dmul_rn`/`dadd_rn`, because
NVVM would otherwise contract a product and a sum into a fused multiply-add that rounds once, and the
weighted distances and thresholds would differ in the last bit.

How the source is written follows from running it three ways. Casts are explicit (np.float64(...)) so that
Python under the simulator computes in the types the compiled kernels use. Integer minima and maxima are
conditional expressions: numba.cuda cannot type the min and max builtins on integers. The functions allocate
nothing and are compiled without reference counting (_nrt=False), which would otherwise keep the CPU compiler
from inlining them; those on the innermost loops are inlined into the caller's numba IR (inline="always", with
one return each, as numba's inliner wants), so that a count whose step is the constant 1 vectorises and the
window term stays inside the CPU's loop over a block of windows: the CPU kernel is as fast as before it shared
the rule.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba.extending import overload, register_jitable


class Geometry(NamedTuple):
    """Image size, window half-size and channels: the `geometry` argument of the row kernels (the training images'),
    and their `canvas_geometry` argument (the samples', whose size may differ: `--size`)."""

    height: int
    width: int
    half_window: int
    channels: int


class CoarseLevel(NamedTuple):
    """The complete coarser pyramid level a finer level's pixels are matched against (`npgen.rule.pyramid`): each
    pixel's window distance starts with `scale` times the squared difference between the 3x3 neighbourhood of its
    parent (y // 2, x // 2) in its coarser sample and that of the candidate window's parent in the candidate image
    at the coarser level. Both are padded by one pixel of the pad value on every side and flattened. With
    `anchored`, candidate windows are centred at `anchor_position` instead of the pixel's own position."""

    canvas: np.ndarray  # uint8 (B, (h + 2) * (w + 2) * C): the batch's coarser samples
    sources: np.ndarray  # uint8 (N, (H + 2) * (W + 2) * C): the training images at the coarser level
    width: int  # w, the coarser samples' width
    source_width: int  # W, the coarser training images' width (w unless the output size differs)
    offsets: np.ndarray  # int64 (9,): flat offsets of the 3x3 neighbourhood in a padded coarser sample
    source_offsets: np.ndarray  # int64 (9,): the same in a padded coarser training image
    scale: float  # coarse_weight / 9
    src_y: np.ndarray  # int64 (B, h, w): where each coarser pixel was copied from (its row), for anchoring
    src_x: np.ndarray  # int64 (B, h, w)
    anchored: bool  # search around 2 * the parent's source position (anchor "parent"), not the pixel's own


class Rule(NamedTuple):
    """The rule's parameters as the row kernels take them (`Sampler.rule`); semantic_eps is inf with the filter
    off. Offsets and weights are the causal window's, heaviest first (`Sampler.window_order`)."""

    offsets: np.ndarray
    weights: np.ndarray
    radius: int
    eps: float
    abs_tol: float
    k_min: int
    semantic_eps: float
    semantic_block: int
    context_offsets: np.ndarray  # the causal window's flat offsets in the canvas (`offsets` unless --size differs)
    edge_weights: np.ndarray  # `windows.inside_weights` with --outside-canvas ignored, else empty (0, 0, 0, L)


def mul_rn(a, b):
    """a * b in float64, rounded once and never fused with a following sum."""
    return a * b


def add_rn(a, b):
    """a + b in float64, rounded once and never fused with a preceding product."""
    return a + b


@overload(mul_rn, target="cpu")
def _mul_rn_cpu(a, b):
    return lambda a, b: a * b


@overload(add_rn, target="cpu")
def _add_rn_cpu(a, b):
    return lambda a, b: a + b


@overload(mul_rn, target="cuda")
def _mul_rn_cuda(a, b):
    from numba.cuda import libdevice  # typed only when a CUDA kernel is compiled

    return lambda a, b: libdevice.dmul_rn(np.float64(a), np.float64(b))


@overload(add_rn, target="cuda")
def _add_rn_cuda(a, b):
    from numba.cuda import libdevice

    return lambda a, b: libdevice.dadd_rn(np.float64(a), np.float64(b))


@register_jitable(_nrt=False)
def centre_index(geometry, y, x):
    """Flat index of pixel (y, x)'s first channel in a flattened padded image (h rows on top, h columns each side)."""
    padded_width = geometry.width + 2 * geometry.half_window
    return ((y + geometry.half_window) * padded_width + x + geometry.half_window) * geometry.channels


@register_jitable(_nrt=False)
def relative_position(geometry, canvas, y, x):
    """Where pixel (y, x) of a canvas of another size than the training images lies in them, scaled (the spatial
    principle at --size); (y, x) itself when the sizes agree."""
    return y * geometry.height // canvas.height, x * geometry.width // canvas.width


@register_jitable(_nrt=False)
def search_box(geometry, radius, y, x):
    """(first row, first column, rows, columns) of the source positions within Chebyshev distance `radius` of
    (y, x): where pixel (y, x)'s candidate windows are centred."""
    first_y, first_x = y - radius if y > radius else 0, x - radius if x > radius else 0
    end_y, end_x = y + radius + 1, x + radius + 1
    rows = (end_y if end_y < geometry.height else geometry.height) - first_y
    columns = (end_x if end_x < geometry.width else geometry.width) - first_x
    return first_y, first_x, rows, columns


@register_jitable(_nrt=False)
def positions_per_image(geometry, radius):
    """Most candidate windows one training image can give a pixel: its positions within `radius`."""
    side = 2 * radius + 1
    return (side if side < geometry.height else geometry.height) * (side if side < geometry.width else geometry.width)


@register_jitable(_nrt=False)
def can_supply(image, used, budget):
    """Whether pool entry `image` may supply the pixel: a training image (-1 pads a region's pool that is smaller
    than another's) that has supplied fewer than `budget` pixels of this canvas (`used[image]`)."""
    return image >= 0 and used[image] < budget


@register_jitable(_nrt=False)
def gather_context_part(image, centre, offsets, channels, out, first, step):
    """Copy the causal context's offsets first, first + step, ... (all channels) of the pixel at flat index `centre`
    of a flattened padded image into `out` (value l * channels + c is channel c of offset l)."""
    for l in range(first, offsets.shape[0], step):
        base = centre + offsets[l]
        for c in range(channels):
            out[l * channels + c] = image[base + c]


@register_jitable(inline="always", _nrt=False)
def add_window_term(total, context, image, base, l, weights, channels):
    """total + weights[l] * (squared difference between the context's offset l and the image at `base`, summed over
    channels). The squared uint8 differences and their sum are exact integers, so only the product and the sum
    round, each once."""
    ssd = np.float64(0.0)
    for c in range(channels):
        diff = context[l * channels + c] - np.float32(image[base + c])
        ssd += diff * diff
    return add_rn(total, mul_rn(np.float64(weights[l]), ssd))


@register_jitable(_nrt=False)
def weighted_distance(context, image, centre, offsets, weights, channels, limit):
    """Gaussian-weighted SSD between `context` and the window at `centre` of `image`, terms added in offset order.

    Stops once the partial sum exceeds `limit` and returns that partial sum, which is then known to be > limit
    (every term is >= 0); with limit inf, the full distance.
    """
    return weighted_distance_from(np.float64(0.0), context, image, centre, offsets, weights, channels, limit)


@register_jitable(_nrt=False)
def anchor_position(src_y, src_x, y, x):
    """Where pixel (y, x) of a finer level searches with anchor "parent": twice the source position its parent
    (y // 2, x // 2) was copied from, plus the pixel's own offset within its parent (src_y, src_x: one canvas's
    coarser provenance)."""
    return 2 * src_y[y >> 1, x >> 1] + (y & 1), 2 * src_x[y >> 1, x >> 1] + (x & 1)


@register_jitable(_nrt=False)
def coarse_index(coarse_width, channels, y, x):
    """Flat index of pixel (y, x)'s first channel in a flattened coarse level image padded by one pixel on every
    side (`CoarseLevel`)."""
    return ((y + 1) * (coarse_width + 2) + x + 1) * channels


@register_jitable(inline="always", _nrt=False)
def coarse_term(canvas, centre, offsets, image, at, source_offsets, channels, scale):
    """scale * (squared difference between the 3x3 neighbourhoods at flat index `centre` of a padded coarse canvas
    (`offsets`) and `at` of a padded coarse training image (`source_offsets`), summed over offsets and channels).
    The sum is an exact integer, so only the product rounds."""
    total = np.int64(0)
    for l in range(offsets.shape[0]):
        for c in range(channels):
            diff = np.int64(canvas[centre + offsets[l] + c]) - np.int64(image[at + source_offsets[l] + c])
            total += diff * diff
    return mul_rn(np.float64(scale), np.float64(total))


@register_jitable(_nrt=False)
def weighted_distance_from(start, context, image, centre, offsets, weights, channels, limit):
    """`weighted_distance` with its terms added to `start` (a pyramid level's coarse term, else 0)."""
    total = start
    for l in range(offsets.shape[0]):
        total = add_window_term(total, context, image, centre + offsets[l], l, weights, channels)
        if total > limit:
            break
    return total


@register_jitable(_nrt=False)
def admissible_bound(d_min, eps, abs_tol):
    """(1+eps)*d_min + abs_tol: the admissible threshold before any k_min widening."""
    return add_rn(mul_rn(1.0 + eps, d_min), abs_tol)


@register_jitable(_nrt=False)
def widened_rank(k_min, n_candidates):
    """k of the k_min widening: when fewer than k candidates are within `admissible_bound`, the threshold becomes
    the k-th smallest distance; 0 when no widening applies (k_min 1, or a single candidate)."""
    k = k_min if k_min < n_candidates else n_candidates
    return k if k > 1 else 0


@register_jitable(inline="always", _nrt=False)
def count_admissible(distances, threshold, first, end, step):
    """How many of distances[first:end:step] are <= threshold."""
    n = 0
    for i in range(first, end, step):
        if distances[i] <= threshold:
            n += 1
    return n


@register_jitable(_nrt=False)
def admissible_rank(u, n_admissible):
    """Which admissible candidate, in candidate order, a uniform draw u in [0, 1) chooses: the floor(u*n)-th."""
    rank = int(u * n_admissible)
    return rank if rank < n_admissible else n_admissible - 1


@register_jitable(inline="always", _nrt=False)
def nth_admissible(distances, threshold, first, target):
    """Index of the target-th (from 0) distance <= threshold at or after index `first`; -1 if there is none."""
    chosen = -1
    for i in range(first, distances.shape[0]):
        if distances[i] <= threshold:
            if target == 0:
                chosen = i
                break
            target -= 1
    return chosen


@register_jitable(_nrt=False)
def take_pixel(canvas, sources, used, record, canvas_geometry, geometry, y, x, image, sy, sx, n_admissible, distance):
    """Copy source pixel (sy, sx) of training image `image` (all channels) into pixel (y, x) of one flattened padded
    canvas, count it against the image's budget (`used`) and record its provenance into `record`, one canvas's
    (src_image, src_y, src_x, n_candidates, distance) arrays."""
    used[image] += 1
    centre, at = centre_index(canvas_geometry, y, x), centre_index(geometry, sy, sx)
    for c in range(geometry.channels):
        canvas[centre + c] = sources[image, at + c]
    src_image, src_y, src_x, n_candidates, distances = record
    src_image[y, x] = image
    src_y[y, x] = sy
    src_x[y, x] = sx
    n_candidates[y, x] = n_admissible
    distances[y, x] = distance
