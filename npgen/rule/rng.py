"""Counter-based random numbers: each draw is a pure function of (key, counter).

Every sample gets its own key from (seed, sample index), and every random decision in it is
indexed by a counter (the pixel's raster index, or a training image's index). Output therefore
does not depend on batch size, batch order or thread count.
"""

from __future__ import annotations

import numba
import numpy as np
from numba.extending import register_jitable

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MUL1 = np.uint64(0xBF58476D1CE4E5B9)
_MUL2 = np.uint64(0x94D049BB133111EB)
TIE_BREAK_STREAM = np.uint64(0x5DEECE66D)
CLASS_STREAM = np.uint64(0x2545F4914F6CDD1D)
LEVEL_STREAM = np.uint64(0xD1B54A32D192ED03)


@register_jitable
def counter_hash(key: np.uint64, counter: np.int64) -> np.uint64:
    """SplitMix64 finaliser of key + (counter+1)*golden: a well-mixed 64-bit hash. Compiled into the CPU and the
    CUDA kernels alike (`npgen.rule.kernels`); `mix` is it compiled for calls from Python."""
    z = key + (np.uint64(counter) + np.uint64(1)) * _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _MUL1
    z = (z ^ (z >> np.uint64(27))) * _MUL2
    return z ^ (z >> np.uint64(31))


@register_jitable
def counter_uniform(key: np.uint64, counter: np.int64) -> float:
    """A float in [0, 1) drawn from (key, counter), with 53 random bits; `uniform` is it compiled for Python."""
    return (counter_hash(key, counter) >> np.uint64(11)) * (1.0 / 9007199254740992.0)


mix = numba.njit(cache=True, nogil=True)(counter_hash)
uniform = numba.njit(cache=True, nogil=True)(counter_uniform)


def sample_keys(seed: int, sample_indices: np.ndarray) -> np.ndarray:
    """(B,) uint64 keys of the samples with these global indices under `seed`."""
    seed_key = np.uint64(int(seed) % (1 << 64))
    base = _mix_array(seed_key, np.zeros(1, dtype=np.int64))[0]
    return _mix_array(base, np.asarray(sample_indices, dtype=np.int64))


def level_keys(seed: int, sample_indices: np.ndarray, level: int) -> np.ndarray:
    """(B,) uint64 keys of the samples at pyramid level `level`: `sample_keys` at level 0 (a one-level sampler's),
    mixed with the level at coarser ones, so each level draws its own numbers."""
    keys = sample_keys(seed, sample_indices)
    return keys if level == 0 else _mix_array(LEVEL_STREAM ^ np.uint64(level), keys.view(np.int64))


@numba.njit(cache=True)
def _mix_array(key: np.uint64, counters: np.ndarray) -> np.ndarray:
    out = np.empty(counters.shape[0], dtype=np.uint64)
    for i in range(counters.shape[0]):
        out[i] = mix(key, counters[i])
    return out
