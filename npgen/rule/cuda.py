"""The sampler's row kernel on a CUDA GPU (numba.cuda), bit-identical to the CPU kernel `sampler.sample_row`.

Layout: one thread block per sample, its threads over the candidate windows. A row is generated
pixel by pixel, as on the CPU (each pixel's context holds the pixels to its left, and the source
budget counts what the previous pixels took); for each pixel the block

1. gathers the context into shared memory,
2. scores every candidate window in parallel (its full Gaussian-weighted SSD: no early exit),
3. reduces to d_min and the number of candidates (images under budget), computes the admissible
   threshold and, when it admits fewer than k_min, the k_min-th smallest distance (k_min passes of
   "next distinct value", each a block reduction),
4. counts the admissible candidates per contiguous chunk, and one thread picks the floor(u*n)-th
   admissible one in candidate order, copies its pixel and records its provenance.

Why bit-identical. A window's SSD is a sum of squared uint8 differences: exact in integers, as it
is exact (float32 products, float64 sums) on the CPU. The weighted sum is accumulated in float64
in the same offset order with libdevice's non-fusing `dmul_rn`/`dadd_rn`, so the compiler cannot
contract it into FMAs that round differently; the threshold (1+eps)*d_min + abs_tol likewise. The
CPU's early exit only shortens windows whose distance exceeds the final threshold, so computing
full distances leaves d_min, the k_min-th smallest, the admissible set, the chosen candidate and
its recorded distance unchanged. Exhausted images keep their candidate slots with distance +inf
(never admissible) instead of being compacted out, which keeps the admissible candidates in the
same order. The random draw is the same counter-based hash as `npgen.rule.rng.uniform`.

numba.cuda is imported only when a kernel is built or the device is resolved, so npgen installs,
imports and tests without CUDA; `NUMBA_ENABLE_CUDASIM=1` runs the kernel in numba's simulator.
"""

from __future__ import annotations

import math
import warnings
from functools import lru_cache

import numpy as np

from npgen.errors import NpgenError
from npgen.params import check
from npgen.rule.provenance import Samples
from npgen.rule.rng import _GOLDEN, _MUL1, _MUL2
from npgen.rule.sampler import RowBatch, Sampler

cuda = None  # numba.cuda, imported by `row_kernel`: a module global, as numba's CUDA simulator requires of kernels
THREADS = 128  # threads per block (a power of two): candidates are strided over them
MAX_CONTEXT = (2 * 15 * 15 + 2 * 15) * 3  # context values of the largest window (h = 15) in colour


def cuda_status() -> tuple[bool, str]:
    """(usable, why not): whether numba.cuda imports and sees a CUDA GPU (or runs the simulator)."""
    try:
        from numba import cuda
    except Exception as err:  # noqa: BLE001  (numba without its CUDA part, or a broken CUDA install)
        return False, f"numba.cuda cannot be imported ({type(err).__name__}: {(str(err).splitlines() or [''])[0][:80]})"
    try:
        if cuda.is_available():
            return True, ""
    except Exception as err:  # noqa: BLE001  (the driver's errors have no common base)
        return False, f"the CUDA driver failed ({type(err).__name__})"
    return False, "no CUDA GPU or driver is visible"


def resolve_device(device: str) -> str:
    """'cpu' or 'cuda' for the `device` parameter: 'auto' takes a usable GPU when there is one."""
    device = check("device", device)
    if device == "cpu":
        return "cpu"
    usable, why = cuda_status()
    if device == "auto":
        return "cuda" if usable else "cpu"
    if not usable:
        raise NpgenError(f"device=cuda (--device cuda) needs a CUDA GPU, but {why}; use --device cpu or auto")
    return "cuda"


@lru_cache(maxsize=4)
def row_kernel(threads: int = THREADS):
    """The CUDA row kernel with `threads` threads per block, compiled on first launch."""
    if threads < 1 or threads & (threads - 1):
        raise NpgenError(f"threads per block must be a power of two, got {threads}")
    global cuda
    if not hasattr(np, "row_stack"):  # numba-cuda <= 0.30.4 refers to np.row_stack, which numpy 2.5 removed
        np.row_stack = np.vstack
    from numba import config, cuda, float64, int32
    from numba.cuda import libdevice

    if config.ENABLE_CUDASIM:  # the simulator lacks libdevice; Python floats are IEEE doubles that never fuse

        def add_rn(a, b):
            return a + b

        def mul_rn(a, b):
            return a * b

    else:
        add_rn, mul_rn = libdevice.dadd_rn, libdevice.dmul_rn

    golden, mul1, mul2 = _GOLDEN, _MUL1, _MUL2
    s30, s27, s31, s11, one = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11), np.uint64(1)

    @cuda.jit(device=True)
    def uniform(key, counter):
        """npgen.rule.rng.uniform: SplitMix64 of key + (counter+1)*golden, its top 53 bits as a float in [0, 1)."""
        z = key + (np.uint64(counter) + one) * golden
        z = (z ^ (z >> s30)) * mul1
        z = (z ^ (z >> s27)) * mul2
        z = z ^ (z >> s31)
        return (z >> s11) * (1.0 / 9007199254740992.0)

    @cuda.jit(device=True)
    def reduce_min_sum(low, count, t):
        """Block-wide: low[0] = min(low), count[0] = sum(count); every thread's entry must be written."""
        cuda.syncthreads()
        step = threads // 2
        while step > 0:
            if t < step:
                if low[t + step] < low[t]:  # noqa: PLR1730
                    low[t] = low[t + step]
                count[t] += count[t + step]
            cuda.syncthreads()
            step //= 2

    @cuda.jit(device=True)
    def count_at_most(cand_dist, b, n_all, value, low, count, t):
        """Block-wide: how many of sample b's n_all candidate distances are <= value."""
        my_count = 0
        for i in range(t, n_all, threads):
            if cand_dist[b, i] <= value:
                my_count += 1
        low[t] = math.inf
        count[t] = my_count
        reduce_min_sum(low, count, t)
        total = count[0]
        cuda.syncthreads()
        return total

    @cuda.jit
    def kernel(
        canvas,
        sources,
        pools,
        region,
        known,
        used,
        budget,
        y,
        height,
        width,
        half_window,
        channels,
        offsets,
        weights,
        radius,
        eps,
        abs_tol,
        k_min,
        keys,
        src_image,
        src_y,
        src_x,
        n_candidates,
        distance,
        cand_dist,
    ):
        b = cuda.blockIdx.x
        t = cuda.threadIdx.x
        context = cuda.shared.array(MAX_CONTEXT, int32)
        low = cuda.shared.array(threads, float64)
        count = cuda.shared.array(threads, int32)
        n_offsets = offsets.shape[0]
        pool_size = pools.shape[2]
        padded_width = width + 2 * half_window
        # no min/max builtins in the kernel: some numba.cuda versions cannot type them on integers
        y0 = y - radius if y > radius else 0
        ny = (y + radius + 1 if y + radius + 1 < height else height) - y0  # noqa: FURB136
        for x in range(width):
            if known[b, y * width + x]:  # a given pixel (completion): kept and left unrecorded
                continue
            r = region[y * width + x]
            centre = ((y + half_window) * padded_width + x + half_window) * channels
            for j in range(t, n_offsets * channels, threads):
                l = j // channels
                context[j] = canvas[b, centre + offsets[l] + j - l * channels]
            cuda.syncthreads()
            x0 = x - radius if x > radius else 0
            nx = (x + radius + 1 if x + radius + 1 < width else width) - x0  # noqa: FURB136
            per_image = ny * nx
            n_all = pool_size * per_image
            # 2. every candidate's full distance, in the CPU's order of offsets and channels
            my_low = math.inf
            my_count = 0
            for i in range(t, n_all, threads):
                k = i // per_image
                image = pools[b, r, k]
                d = math.inf
                if image >= 0 and used[b, image] < budget:  # -1 pads a region's pool smaller than another's
                    rem = i - k * per_image
                    sy = y0 + rem // nx
                    sx = x0 + rem - (rem // nx) * nx
                    at = ((sy + half_window) * padded_width + sx + half_window) * channels
                    total = 0.0
                    for l in range(n_offsets):
                        base = at + offsets[l]
                        ssd = 0
                        for c in range(channels):
                            diff = context[l * channels + c] - int32(sources[image, base + c])
                            ssd += diff * diff
                        total = add_rn(total, mul_rn(float64(weights[l]), float64(ssd)))
                    d = total
                    my_count += 1
                    if d < my_low:  # noqa: PLR1730
                        my_low = d
                cand_dist[b, i] = d
            low[t] = my_low
            count[t] = my_count
            reduce_min_sum(low, count, t)
            d_min = low[0]
            n_valid = count[0]
            cuda.syncthreads()
            if n_valid == 0:
                if t == 0:
                    n_candidates[b, y, x] = 0
                continue
            # 3. the admissible threshold, widened to the k_min-th smallest distance
            threshold = add_rn(mul_rn(1.0 + eps, d_min), abs_tol)
            k_need = k_min if k_min < n_valid else n_valid  # noqa: FURB136
            if k_need > 1 and count_at_most(cand_dist, b, n_all, threshold, low, count, t) < k_need:
                below = -math.inf
                while True:  # the next distinct distance above `below`, until k_need lie at or under it
                    my_low = math.inf
                    for i in range(t, n_all, threads):
                        d = cand_dist[b, i]
                        if d > below and d < my_low:
                            my_low = d
                    low[t] = my_low
                    count[t] = 0
                    reduce_min_sum(low, count, t)
                    value = low[0]
                    cuda.syncthreads()
                    if count_at_most(cand_dist, b, n_all, value, low, count, t) >= k_need:
                        threshold = value
                        break
                    below = value
            # 4. the floor(u*n)-th admissible candidate in candidate order: counts per contiguous chunk
            chunk = (n_all + threads - 1) // threads
            first = t * chunk
            my_count = 0
            for i in range(first, first + chunk if first + chunk < n_all else n_all):  # noqa: FURB136
                if cand_dist[b, i] <= threshold:
                    my_count += 1
            count[t] = my_count
            cuda.syncthreads()
            if t == 0:
                n_admissible = 0
                for s in range(threads):
                    n_admissible += count[s]
                if n_admissible == 0:
                    n_candidates[b, y, x] = 0
                else:
                    u = uniform(keys[b], y * width + x)
                    target = int(u * n_admissible)
                    if target > n_admissible - 1:  # noqa: PLR1730
                        target = n_admissible - 1
                    owner = 0
                    while target >= count[owner]:
                        target -= count[owner]
                        owner += 1
                    chosen = owner * chunk
                    while True:
                        if cand_dist[b, chosen] <= threshold:
                            if target == 0:
                                break
                            target -= 1
                        chosen += 1
                    k = chosen // per_image
                    image = pools[b, r, k]
                    rem = chosen - k * per_image
                    sy = y0 + rem // nx
                    sx = x0 + rem - (rem // nx) * nx
                    used[b, image] += 1
                    at = ((sy + half_window) * padded_width + sx + half_window) * channels
                    for c in range(channels):
                        canvas[b, centre + c] = sources[image, at + c]
                    src_image[b, y, x] = image
                    src_y[b, y, x] = sy
                    src_x[b, y, x] = sx
                    n_candidates[b, y, x] = n_admissible
                    distance[b, y, x] = cand_dist[b, chosen]
            cuda.syncthreads()

    return kernel


def max_candidates(pool_size: int, geometry: tuple, radius: int) -> int:
    """Candidate slots of one pixel: every pool image's source positions within `radius`."""
    height, width = geometry[0], geometry[1]
    return pool_size * min(2 * radius + 1, height) * min(2 * radius + 1, width)


def _check_geometry(geometry: tuple, offsets: np.ndarray) -> None:
    if offsets.shape[0] * geometry[3] > MAX_CONTEXT:
        raise NpgenError(
            f"a context of {offsets.shape[0]} pixels x {geometry[3]} channels exceeds the CUDA kernel's {MAX_CONTEXT}"
        )


def launch_row(arrays: dict, budget: int, y: int, geometry: tuple, rule: tuple, threads: int = THREADS) -> None:
    """Launch the row kernel on device (or host, under the simulator) arrays: one block per sample.

    `arrays` holds canvas, sources, pools, region, known, used, offsets, weights, keys, the five record
    arrays and cand_dist (B, max_candidates) float64 scratch; names as in `sample_row`.
    """
    height, width, half_window, channels = geometry
    radius, eps, abs_tol, k_min = rule[2:6]
    a = arrays
    with warnings.catch_warnings():  # the simulator's uint64 hash wraps around as intended; numpy warns of it
        warnings.filterwarnings("ignore", "overflow encountered in scalar", RuntimeWarning)
        warnings.filterwarnings("ignore", ".*Grid size", Warning)  # a small batch leaves most of the GPU idle: fine
        kernel = row_kernel(threads)[a["canvas"].shape[0], threads]
        kernel(
            a["canvas"],
            a["sources"],
            a["pools"],
            a["region"],
            a["known"],
            a["used"],
            int(budget),
            int(y),
            int(height),
            int(width),
            int(half_window),
            int(channels),
            a["offsets"],
            a["weights"],
            int(radius),
            float(eps),
            float(abs_tol),
            int(k_min),
            a["keys"],
            a["src_image"],
            a["src_y"],
            a["src_x"],
            a["n_candidates"],
            a["distance"],
            a["cand_dist"],
        )


def cuda_sample_row(
    canvas,
    sources,
    pools,
    semantic,
    region,
    known,
    used,
    budget,
    y,
    geometry,
    rule,
    keys,
    record,
    threads: int = THREADS,
) -> np.ndarray:
    """`sampler.sample_row` on the GPU, with the same arguments and the same in-place results on host arrays
    (without the semantic filter: `semantic` must have no columns).

    Returns (B, slots) float64: each sample's candidate distances at the last pixel of the row it
    generated, in candidate order (pool image, then source position), +inf for images over budget or
    padding, to check them one by one. Copies everything to the device and back: for tests and single
    rows. `CudaSampler` keeps a batch on the device instead.
    """
    from numba import cuda

    offsets, weights = rule[0], rule[1]
    _check_geometry(geometry, offsets)
    if semantic.shape[-1]:
        raise NpgenError(SEMANTIC_ON_CPU)
    host = {"canvas": canvas, "used": used, **dict(zip(RECORD, record))}
    device = {name: cuda.to_device(array) for name, array in host.items()}
    inputs = {"sources": sources, "pools": pools, "region": region, "known": known, "keys": keys}
    for name, array in {**inputs, "offsets": offsets, "weights": weights}.items():
        device[name] = cuda.to_device(np.ascontiguousarray(array))
    slots = max(1, max_candidates(pools.shape[2], geometry, rule[2]))
    device["cand_dist"] = cuda.device_array((pools.shape[0], slots), np.float64)
    launch_row(device, budget, y, geometry, rule, threads)
    for name, array in host.items():
        device[name].copy_to_host(array)
    return device["cand_dist"].copy_to_host()


SEMANTIC_ON_CPU = "the CUDA sampler has no semantic filter (--semantic-eps); use --device cpu"
RECORD = ("src_image", "src_y", "src_x", "n_candidates", "distance")
RECORD_TYPES = (np.int32, np.int16, np.int16, np.int32, np.float32)


def _empty_record(shape: tuple) -> tuple:
    """The record arrays as `Sampler` starts them: -1 (and NaN) where a pixel is given, not generated."""
    return tuple(np.full(shape, np.nan if t is np.float32 else -1, t) for t in RECORD_TYPES)


def compare_rows_with_cpu(
    db, options: dict, class_label: int, rows: range, n_samples: int = 2, threads: int = THREADS
) -> dict:
    """Run `rows` of a batch with the CUDA kernel and `sample_row` from the same state; return what differs.

    `options` are `Sampler`'s (a class map and a completion included); class_label -1 means any class.
    Rows before `rows` are generated by `sample_row`, so the compared rows start from real canvases. At
    each compared row the canvas, source counts and provenance must come out identical, and at the
    row's last generated pixel every candidate window's float64 distance must equal the CPU's
    `window_distance` (without early exit) bit for bit, +inf for images over budget. Returns
    {"mismatches": [one line each], "pixels" (generated), "windows" (distances compared), "exhausted"
    (pool images over budget), "padding" (-1 pool slots), "n_candidates" (admissible-set sizes of the
    generated pixels)}.
    """
    from npgen.rule.sampler import sample_row

    sampler = Sampler(db, **options)
    indices = np.arange(n_samples)
    allowed, region = sampler._regions(class_label)
    given, known = sampler.given(indices)
    batch = RowBatch.start(
        db, sampler.seed, indices, allowed, sampler.pool_size, images=given, approximate=sampler.approximate_pool
    )
    canvas, record = batch.flat_canvas, _empty_record((n_samples, db.height, db.width))
    used = np.zeros((n_samples, db.n_images), np.int32)
    geometry, rule, budget = sampler.geometry(), sampler.rule(), sampler.budget
    seen = {"mismatches": [], "pixels": 0, "windows": 0, "exhausted": 0, "padding": 0, "n_candidates": []}
    for y, pools in batch.region_rows():
        args = (db.sources, pools, batch.semantic(y, pools, None), region, known)
        if y in rows:
            gpu_canvas, gpu_used, gpu_record = canvas.copy(), used.copy(), tuple(r.copy() for r in record)
            last = cuda_sample_row(
                gpu_canvas, *args, gpu_used, budget, y, geometry, rule, batch.keys, gpu_record, threads
            )
            over = np.take_along_axis(used, np.maximum(pools.reshape(n_samples, -1), 0), axis=1) >= budget
            seen["exhausted"] += int((over & (pools.reshape(n_samples, -1) >= 0)).sum())
            seen["padding"] += int((pools < 0).sum())
        sample_row(canvas, *args, used, budget, y, geometry, rule, batch.keys, record)
        if y in rows:
            pairs = [("canvas", gpu_canvas, canvas), ("source counts", gpu_used, used)]
            pairs += [(name, gpu[:, y], cpu[:, y]) for name, gpu, cpu in zip(RECORD, gpu_record, record)]
            for name, gpu, cpu in pairs:
                if not np.array_equal(gpu, cpu, equal_nan=gpu.dtype.kind == "f"):
                    seen["mismatches"].append(f"row {y}: {name} differs at {int((gpu != cpu).sum())} values")
            windows, wrong = _compare_last_distances(db, sampler, canvas, used, record, pools, region, known, y, last)
            seen["windows"] += windows
            seen["mismatches"] += wrong
            generated = ~known[:, y * db.width : (y + 1) * db.width]
            seen["pixels"] += int(generated.sum())
            seen["n_candidates"] += record[3][:, y][generated].tolist()
        if y == rows[-1]:
            break
    return seen


def _compare_last_distances(db, sampler, canvas, used, record, pools, region, known, y, last) -> tuple[int, list]:
    """(windows compared, mismatches) between the kernel's distances at the row's last generated pixel and the
    CPU's, from the CPU's canvas and source counts after the row (the pixel's causal context is complete then)."""
    from npgen.rule.windows import gather_context, window_distance

    height, width, h, channels = sampler.geometry()
    offsets, weights = sampler.window_order()
    padded_width, compared, wrong = width + 2 * h, 0, []
    context = np.empty(len(offsets) * channels, np.float32)
    for b in range(len(canvas)):
        generated = np.flatnonzero(~known[b, y * width : (y + 1) * width])
        if len(generated) == 0:
            continue
        x = int(generated[-1])
        before = used[b].copy()  # the counts when pixel x was chosen: without its own
        if record[3][b, y, x] > 0:
            before[record[0][b, y, x]] -= 1
        gather_context(canvas[b], ((y + h) * padded_width + x + h) * channels, offsets, channels, context)
        y0, x0 = max(0, y - sampler.radius), max(0, x - sampler.radius)
        ny, nx = min(height, y + sampler.radius + 1) - y0, min(width, x + sampler.radius + 1) - x0
        pool = pools[b, region[y * width + x]]
        for i in range(len(pool) * ny * nx):
            image, sy, sx = pool[i // (ny * nx)], y0 + i % (ny * nx) // nx, x0 + i % nx
            if image < 0 or before[image] >= sampler.budget:
                expected = np.inf
            else:
                at = ((sy + h) * padded_width + sx + h) * channels
                expected = window_distance(context, db.sources[image], at, offsets, weights, channels)
                compared += 1
            if last[b, i] != expected:
                wrong.append(f"row {y} sample {b} candidate {i}: distance {last[b, i]!r}, CPU {expected!r}")
    return compared, wrong


class CudaSampler(Sampler):
    """`Sampler` whose rows run on the GPU; output bit-identical to the CPU sampler's for the same settings.

    The batch's canvas, source counts and provenance stay on the device for all rows; only each
    row's retrieval pool goes up and the canvas comes back (the pools are computed on the CPU, as
    in `Sampler`). The training images are uploaded once per sampler.
    """

    threads: int = THREADS

    def __post_init__(self) -> None:
        super().__post_init__()
        usable, why = cuda_status()
        if not usable:
            raise NpgenError(f"the CUDA sampler needs a CUDA GPU, but {why}; use the CPU sampler (--device cpu)")
        _check_geometry(self.geometry(), self.window_order()[0])
        if self.semantic_eps is not None:
            raise NpgenError(SEMANTIC_ON_CPU)
        self._device_sources = None

    def _sources_on_device(self):
        from numba import cuda

        if self._device_sources is None:
            self._device_sources = cuda.to_device(np.ascontiguousarray(self.database.sources))
        return self._device_sources

    def _generate_rows(self, batch: RowBatch, region: np.ndarray, known: np.ndarray, out: Samples) -> None:
        """As `Sampler._generate_rows`, each row on the GPU; only the pools go up and the canvas comes back."""
        from numba import cuda

        db = self.database
        n = len(batch.keys)
        geometry, rule = self.geometry(), self.rule()
        flat_canvas = batch.flat_canvas
        record = [getattr(out, name) for name in RECORD]
        device = {name: cuda.to_device(array) for name, array in zip(RECORD, record)}
        device["canvas"] = cuda.to_device(flat_canvas)
        device["used"] = cuda.to_device(np.zeros((n, db.n_images), dtype=np.int32))
        device["sources"] = self._sources_on_device()
        inputs = {"region": region, "known": known, "keys": batch.keys, "offsets": rule[0], "weights": rule[1]}
        for name, array in inputs.items():
            device[name] = cuda.to_device(np.ascontiguousarray(array))
        for y, pools in batch.region_rows():
            device["pools"] = cuda.to_device(pools)
            slots = max(1, max_candidates(pools.shape[2], geometry, self.radius))
            if "cand_dist" not in device or device["cand_dist"].shape[1] != slots:
                device["cand_dist"] = cuda.device_array((n, slots), np.float64)
            launch_row(device, self.budget, y, geometry, rule, self.threads)
            device["canvas"].copy_to_host(flat_canvas)  # the next row's pools are retrieved from it
        for name, array in zip(RECORD, record):
            device[name].copy_to_host(array)
