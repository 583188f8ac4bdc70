"""Samples as plain data: generated images and, for every pixel, where it was copied from (its provenance).

Kept apart from the sampler (numba kernels, FAISS) so that writing and reading runs needs numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np


@dataclass
class Samples:
    """Generated images and, for every pixel, where it was copied from."""

    images: np.ndarray  # uint8 (B, H, W, C)
    sample_index: np.ndarray  # int64 (B,), global index within the run
    class_label: np.ndarray  # int64 (B,), -1 when unconditional
    src_image: np.ndarray  # int32 (B, H, W), index into the training split
    src_y: np.ndarray  # int16 (B, H, W)
    src_x: np.ndarray  # int16 (B, H, W)
    n_candidates: np.ndarray  # int32 (B, H, W), size of the admissible set
    distance: np.ndarray  # float32 (B, H, W), weighted SSD of the copied window
    coarser: list["Samples"] = field(default_factory=list)  # pyramid levels 1, 2, ... of the same samples

    @staticmethod
    def arrays() -> tuple[str, ...]:
        """The names of the per-sample arrays (every field but `coarser`)."""
        return tuple(f.name for f in fields(Samples) if f.name != "coarser")

    def take(self, order: np.ndarray) -> "Samples":
        """These samples (and their coarser levels) in the order `order`."""
        taken = {name: getattr(self, name)[order] for name in Samples.arrays()}
        return Samples(**taken, coarser=[level.take(order) for level in self.coarser])

    @staticmethod
    def concatenate(parts: list["Samples"]) -> "Samples":
        joined = {name: np.concatenate([getattr(p, name) for p in parts]) for name in Samples.arrays()}
        levels = len(parts[0].coarser)
        return Samples(**joined, coarser=[Samples.concatenate([p.coarser[k] for p in parts]) for k in range(levels)])
