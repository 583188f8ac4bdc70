"""The sampler's row kernel on a CUDA GPU (numba.cuda), bit-identical to the CPU kernel `cpu.sample_row`.

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

Each step's per-window and per-pixel logic is `npgen.rule.kernels`' (the candidate test, the window
distance, the threshold, the choice, the copy and its record; the hash is `npgen.rule.rng`'s), compiled
here as device code: the same source as the CPU kernel's. What is this kernel's own is the parallel
structure above. Why bit-identical: a window's terms are summed in the CPU's order with the same
rounding (`kernels.add_rn`/`mul_rn`: never fused); the CPU's early exit only shortens windows whose
distance exceeds the final threshold, so full distances leave d_min, the k_min-th smallest, the
admissible set, the chosen candidate and its recorded distance unchanged; exhausted images keep their
candidate slots with distance +inf (never admissible) instead of being compacted out, which keeps the
admissible candidates in the same order.

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
from npgen.rule import kernels
from npgen.rule.batch import RowBatch
from npgen.rule.kernels import Geometry, Rule
from npgen.rule.provenance import Samples
from npgen.rule.rng import counter_uniform
from npgen.rule.sampler import Sampler

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
    """The CUDA row kernel with `threads` threads per block, compiled on first launch; launch it with
    `shared_bytes(threads, context values)` of dynamic shared memory."""
    if threads < 1 or threads & (threads - 1):
        raise NpgenError(f"threads per block must be a power of two, got {threads}")
    global cuda
    if not hasattr(np, "row_stack"):  # numba-cuda <= 0.30.4 refers to np.row_stack, which numpy 2.5 removed
        np.row_stack = np.vstack
    from numba import cuda, float32, float64, int32

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
    def count_at_most(distances, n_all, value, low, count, t):
        """Block-wide: how many of the n_all candidate distances are <= value."""
        low[t] = math.inf
        count[t] = kernels.count_admissible(distances, value, t, n_all, threads)
        reduce_min_sum(low, count, t)
        total = count[0]
        cuda.syncthreads()
        return total

    @cuda.jit(device=True)
    def candidate_window(i, per_image, columns, first_y, first_x):
        """(pool slot, source row, source column) of candidate i: pool slot by pool slot, positions row by row."""
        k = i // per_image
        position = i - k * per_image
        return k, first_y + position // columns, first_x + position % columns

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
        # One dynamic buffer (`shared_bytes`), not three static shared arrays: numba's simulator allocates a static
        # one per (file, line) without a lock, so two threads declaring it at once could each get their own.
        low = cuda.shared.array(0, float64)[:threads]
        count = cuda.shared.array(0, int32)[2 * threads : 3 * threads]
        context = cuda.shared.array(0, float32)[3 * threads :]
        geometry = kernels.Geometry(height, width, half_window, channels)
        my_canvas, my_used, distances = canvas[b], used[b], cand_dist[b]
        record = (src_image[b], src_y[b], src_x[b], n_candidates[b], distance[b])
        for x in range(width):
            if known[b, y * width + x]:  # a given pixel (completion): kept and left unrecorded
                continue
            pool = pools[b, region[y * width + x]]
            centre = kernels.centre_index(geometry, y, x)
            kernels.gather_context_part(my_canvas, centre, offsets, channels, context, t, threads)
            cuda.syncthreads()
            first_y, first_x, rows, columns = kernels.search_box(geometry, radius, y, x)
            per_image = rows * columns
            n_all = pool.shape[0] * per_image
            # 2. every candidate's full distance, +inf where the pool slot cannot supply the pixel
            my_low = math.inf
            my_count = 0
            for i in range(t, n_all, threads):
                k, sy, sx = candidate_window(i, per_image, columns, first_y, first_x)
                d = math.inf
                if kernels.can_supply(pool[k], my_used, budget):
                    at = kernels.centre_index(geometry, sy, sx)
                    d = kernels.weighted_distance(context, sources[pool[k]], at, offsets, weights, channels, math.inf)
                    my_count += 1
                    if d < my_low:  # noqa: PLR1730  (no min builtin: see npgen.rule.kernels)
                        my_low = d
                distances[i] = d
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
            threshold = kernels.admissible_bound(d_min, eps, abs_tol)
            k_need = kernels.widened_rank(k_min, n_valid)
            if k_need > 0 and count_at_most(distances, n_all, threshold, low, count, t) < k_need:
                below = -math.inf
                while True:  # the next distinct distance above `below`, until k_need lie at or under it
                    my_low = math.inf
                    for i in range(t, n_all, threads):
                        d = distances[i]
                        if d > below and d < my_low:
                            my_low = d
                    low[t] = my_low
                    count[t] = 0
                    reduce_min_sum(low, count, t)
                    value = low[0]
                    cuda.syncthreads()
                    if count_at_most(distances, n_all, value, low, count, t) >= k_need:
                        threshold = value
                        break
                    below = value
            # 4. the floor(u*n)-th admissible candidate in candidate order: counts per contiguous chunk
            chunk = (n_all + threads - 1) // threads
            first = t * chunk
            count[t] = kernels.count_admissible(
                distances, threshold, first, first + chunk if first + chunk < n_all else n_all, 1
            )
            cuda.syncthreads()
            if t == 0:
                n_admissible = 0
                for s in range(threads):
                    n_admissible += count[s]
                if n_admissible == 0:
                    n_candidates[b, y, x] = 0
                else:
                    target = kernels.admissible_rank(counter_uniform(keys[b], y * width + x), n_admissible)
                    owner = 0
                    while target >= count[owner]:
                        target -= count[owner]
                        owner += 1
                    chosen = kernels.nth_admissible(distances, threshold, owner * chunk, target)
                    k, sy, sx = candidate_window(chosen, per_image, columns, first_y, first_x)
                    d = distances[chosen]
                    kernels.take_pixel(
                        my_canvas, sources, my_used, record, geometry, geometry, y, x, pool[k], sy, sx, n_admissible, d
                    )
            cuda.syncthreads()

    return kernel


def shared_bytes(threads: int, context_values: int) -> int:
    """Dynamic shared memory of one block: float64 minima and int32 counts per thread, the float32 context."""
    return 12 * threads + 4 * context_values


def max_candidates(pool_size: int, geometry: Geometry, radius: int) -> int:
    """Candidate slots of one pixel: every pool image's source positions within `radius`."""
    return pool_size * kernels.positions_per_image(geometry, radius)


def _check_geometry(geometry: Geometry, offsets: np.ndarray) -> None:
    if offsets.shape[0] * geometry.channels > MAX_CONTEXT:
        raise NpgenError(
            f"a context of {offsets.shape[0]} pixels x {geometry.channels} channels exceeds the CUDA kernel's "
            f"{MAX_CONTEXT}"
        )


def launch_row(arrays: dict, budget: int, y: int, geometry: Geometry, rule: Rule, threads: int = THREADS) -> None:
    """Launch the row kernel on device (or host, under the simulator) arrays: one block per sample.

    `arrays` holds canvas, sources, pools, region, known, used, offsets, weights, keys, the five record
    arrays and cand_dist (B, max_candidates) float64 scratch; names as in `sample_row`.
    """
    a = arrays
    memory = shared_bytes(threads, rule.offsets.shape[0] * geometry.channels)
    with warnings.catch_warnings():  # the simulator's uint64 hash wraps around as intended; numpy warns of it
        warnings.filterwarnings("ignore", "overflow encountered in scalar", RuntimeWarning)
        warnings.filterwarnings("ignore", ".*Grid size", Warning)  # a small batch leaves most of the GPU idle: fine
        kernel = row_kernel(threads)[a["canvas"].shape[0], threads, 0, memory]
        kernel(
            a["canvas"],
            a["sources"],
            a["pools"],
            a["region"],
            a["known"],
            a["used"],
            int(budget),
            int(y),
            int(geometry.height),
            int(geometry.width),
            int(geometry.half_window),
            int(geometry.channels),
            a["offsets"],
            a["weights"],
            int(rule.radius),
            float(rule.eps),
            float(rule.abs_tol),
            int(rule.k_min),
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
    canvas_geometry,
    rule,
    keys,
    record,
    threads: int = THREADS,
) -> np.ndarray:
    """`cpu.sample_row` on the GPU, with the same arguments and the same in-place results on host arrays
    (without the semantic filter: `semantic` must have no columns, and with the canvas at the images' size).

    Returns (B, slots) float64: each sample's candidate distances at the last pixel of the row it
    generated, in candidate order (pool image, then source position), +inf for images over budget or
    padding, to check them one by one. Copies everything to the device and back: for tests and single
    rows. `CudaSampler` keeps a batch on the device instead.
    """
    from numba import cuda

    _check_geometry(geometry, rule.offsets)
    if semantic.shape[-1]:
        raise NpgenError(SEMANTIC_ON_CPU)
    if canvas_geometry != geometry:
        raise NpgenError(OTHER_SIZE_ON_CPU)
    if rule.edge_weights.shape[0]:
        raise NpgenError(OUTSIDE_IGNORED_ON_CPU)
    host = {"canvas": canvas, "used": used, **dict(zip(RECORD, record))}
    device = {name: cuda.to_device(array) for name, array in host.items()}
    inputs = {"sources": sources, "pools": pools, "region": region, "known": known, "keys": keys}
    for name, array in {**inputs, "offsets": rule.offsets, "weights": rule.weights}.items():
        device[name] = cuda.to_device(np.ascontiguousarray(array))
    slots = max(1, max_candidates(pools.shape[2], geometry, rule.radius))
    device["cand_dist"] = cuda.device_array((pools.shape[0], slots), np.float64)
    launch_row(device, budget, y, geometry, rule, threads)
    for name, array in host.items():
        device[name].copy_to_host(array)
    return device["cand_dist"].copy_to_host()


SEMANTIC_ON_CPU = "the CUDA sampler has no semantic filter (--semantic-eps); use --device cpu"
OTHER_SIZE_ON_CPU = (
    "the CUDA sampler samples at the training images' size; sample another --size on the CPU (--device cpu)"
)
OUTSIDE_IGNORED_ON_CPU = (
    "the CUDA sampler reads context outside the sample as the pad value only; sample --outside-canvas ignored on the "
    "CPU (--device cpu)"
)
RECORD = ("src_image", "src_y", "src_x", "n_candidates", "distance")


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
        if self.levels > 1:
            raise NpgenError(
                "the CUDA sampler samples one level only; add --levels 1 (MNIST's preset samples 2) or sample the "
                "pyramid on the CPU (--device cpu)"
            )
        if self.size is not None and self.canvas_shape != (self.database.height, self.database.width):
            raise NpgenError(OTHER_SIZE_ON_CPU)
        if self.outside_canvas != "pad":
            raise NpgenError(OUTSIDE_IGNORED_ON_CPU)
        if self.max_part_share < 1:
            raise NpgenError(
                "the CUDA sampler does not bound copied parts yet; sample --max-part-share < 1 on the CPU (--device cpu)"
            )
        if self.max_reuse > 0:
            raise NpgenError("the CUDA sampler does not bound reuse yet; sample --max-reuse on the CPU (--device cpu)")
        self._device_sources = None

    def _sources_on_device(self):
        from numba import cuda

        if self._device_sources is None:
            self._device_sources = cuda.to_device(np.ascontiguousarray(self.database.sources))
        return self._device_sources

    def _generate_rows(
        self, batch: RowBatch, region: np.ndarray, known: np.ndarray, out: Samples, coarse: None = None
    ) -> None:
        """As `Sampler._generate_rows`, each row on the GPU; only the pools go up and the canvas comes back (one
        level only: no `coarse`)."""
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
        inputs = {
            "region": region,
            "known": known,
            "keys": batch.keys,
            "offsets": rule.offsets,
            "weights": rule.weights,
        }
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
