"""Completion (inpainting): keep an input's given pixels and generate the rest by the sampler's own rule.

The generated pixels are produced in raster order exactly as in sampling, with the given pixels in
place on the canvas: each generated pixel's causal context (the h rows above it, the h pixels to
its left) reads given pixels wherever they fall in it, and the semantic pool is retrieved from the
completed rows, given pixels included. Given pixels below or to the right of a generated pixel do
not enter its context: with a `top` or `left` mask every generated pixel sees all the given pixels
next to it, and with other masks the lower and right edges of a hole are not matched. Only the
generated pixels get a provenance row; the given ones are the input's.

With pyramid levels every level is a completion (`at_level`): a coarse pixel is given where its whole block is,
as the block's exact mean (`npgen.data.levels`), so the coarse sample already fits the given pixels and a finer
level's coarse term sees them on both sides of a hole.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from npgen.data.levels import level_images, level_mask
from npgen.errors import NpgenError


@dataclass(frozen=True)
class Completion:
    """Inputs to complete, the given pixels of each, and how many completions of each input a run makes.

    Sample i of the run completes input i // per_input.
    """

    inputs: np.ndarray  # uint8 (m, H, W, C)
    known: np.ndarray  # bool (m, H, W): True where the input's pixel is given
    per_input: int

    def __post_init__(self) -> None:
        if self.inputs.ndim != 4 or self.known.shape != self.inputs.shape[:3]:
            raise NpgenError(f"completion inputs {self.inputs.shape} and their masks {self.known.shape} do not match")
        if self.per_input < 1:
            raise NpgenError(f"-n (completions per input) must be >= 1, got {self.per_input}")
        if self.known.reshape(len(self.known), -1).all(axis=1).any():
            raise NpgenError("an input has every pixel given, so there is nothing to generate")

    @property
    def n_samples(self) -> int:
        return len(self.inputs) * self.per_input

    def input_of(self, sample_indices: np.ndarray) -> np.ndarray:
        return np.asarray(sample_indices, dtype=np.int64) // self.per_input

    def given(self, sample_indices: np.ndarray) -> np.ndarray:
        """(n, H, W, C) the given pixels of each sample's input, 0 where the pixel is to be generated."""
        which = self.input_of(sample_indices)
        return np.where(self.known[which][..., None], self.inputs[which], 0).astype(np.uint8)

    def known_pixels(self, sample_indices: np.ndarray) -> np.ndarray:
        """(n, H, W) bool: which pixels of each sample are given."""
        return self.known[self.input_of(sample_indices)]

    def at_level(self, level: int) -> "Completion":
        """The same completion at pyramid level `level`: the inputs' level images, given where a whole block is."""
        if level == 0:
            return self
        return Completion(level_images(self.inputs, level), level_mask(self.known, level), self.per_input)
