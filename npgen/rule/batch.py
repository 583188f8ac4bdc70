"""A batch of canvases visited row by row: what the CPU and CUDA samplers and the likelihood share.

The padded canvases, each sample's random key, and the retrieval pools (one per region of the canvas) refreshed
from the canvases' completed block rows, with the per-pixel semantic filter's distances.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from npgen.data.database import Database
from npgen.rule.pool import CanvasPools, FixedPools
from npgen.rule.rng import level_keys


@dataclass
class RowBatch:
    """What the sampler and the likelihood share for a batch: the padded canvas, the samples' keys and the
    retrieval pools (one per region of the canvas), visited row by row (`rows`, `region_rows`)."""

    database: Database
    canvas: np.ndarray  # uint8 (n, H + h, W + 2h, C): the pad value around the images (H x W: the samples' size)
    keys: np.ndarray  # uint64 (n,): each sample's random key
    pools: list[CanvasPools | FixedPools]  # one per region
    codes: np.ndarray  # (n, block rows, row width): the canvases' completed block rows, encoded (`encode_rows`)
    _semantic: np.ndarray | None = field(default=None, repr=False)

    @classmethod
    def start(
        cls,
        db: Database,
        seed: int,
        indices: np.ndarray,
        allowed: np.ndarray | list[np.ndarray],
        pool_size: int,
        images: np.ndarray | None = None,
        approximate: bool = False,
        level: int = 0,
        fixed_pools: list[np.ndarray] | None = None,
        shape: tuple[int, int] | None = None,
    ) -> "RowBatch":
        """A batch of the samples with these global indices; its canvas blank (pad value), or holding `images`.

        `allowed` holds the training images candidates may come from, or a list of them, one per region. With
        `approximate`, each region's pools come from its `Database.prefix_indexes` instead of the exact scan;
        with `fixed_pools` (one (B, K) array per region) they are those for every row. `level` is the pyramid
        level the batch is sampled at (its samples' keys are `level_keys`). `shape` is the samples' (height,
        width), the training images' unless given (`--size`: the pools then take every allowed image).
        """
        (height, width), n, h = shape or (db.height, db.width), len(indices), db.half_window
        keys = level_keys(seed, indices, level)
        canvas = np.full((n, height + h, width + 2 * h, db.channels), db.pad_value, dtype=np.uint8)
        if images is not None:
            canvas[:, h:, h : h + width] = images
        regions = allowed if isinstance(allowed, list) else [allowed]
        block = db.encoder.block
        pools = (
            [FixedPools(p) for p in fixed_pools]
            if fixed_pools is not None
            else [
                CanvasPools(
                    db.representations, block, a, keys, pool_size, db.prefix_indexes(a) if approximate else None
                )
                for a in regions
            ]
        )
        codes = np.zeros((n, *db.representations.shape[1:]), dtype=db.representations.dtype)
        return cls(db, canvas, keys, pools, codes)

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width) of the samples inside the padding."""
        h = self.database.half_window
        return self.canvas.shape[1] - h, self.canvas.shape[2] - 2 * h

    def encode_rows(self, y: int) -> None:
        """At the start of row y: encode the block row the canvases have just completed (if any) into `codes`,
        once for the pools of every region and the semantic filter (not at another size than the images', where
        neither compares the canvas with them)."""
        db, block = self.database, self.database.encoder.block
        if y > 0 and y % block == 0 and self.shape == (db.height, db.width):
            h = db.half_window
            self.codes[:, y // block - 1] = db.encoder.encode_row(
                self.canvas[:, h + y - block : h + y, h : h + db.width]
            )

    @property
    def flat_canvas(self) -> np.ndarray:
        """The canvas as (n, (H + h) * (W + 2h) * C), a view: what the row kernels read and write."""
        return self.canvas.reshape(len(self.canvas), -1)

    def rows(self):
        """(y, pool) for every row in order, each (B, K) pool retrieved from the canvas as it is when its row
        begins; for a batch of one region."""
        (pools,) = self.pools
        for y in range(self.shape[0]):
            self.encode_rows(y)
            yield y, pools.pool(self.codes, y)

    def region_rows(self):
        """(y, pools) for every row in order: pools is (B, R, K), each region's pool padded with -1 (no image)."""
        for y in range(self.shape[0]):
            self.encode_rows(y)
            each = [pools.pool(self.codes, y) for pools in self.pools]
            stacked = np.full((len(self.canvas), len(each), max(p.shape[1] for p in each)), -1, dtype=np.int64)
            for r, pool in enumerate(each):
                stacked[:, r, : pool.shape[1]] = pool
            yield y, stacked

    def semantic(self, y: int, pools: np.ndarray, context: int | None) -> np.ndarray:
        """(B, R, K, block columns) float64 semantic distances for row y's `pools` (B, R, K), or (B, R, K, 0) when
        `context` is None (the filter off): [b, r, k, j] sums, over the completed block rows above y (at most
        `context` of them) and the block columns j - context .. j + context, the squared differences between
        canvas b's representation and pool image k's. Recomputed at each block row, like the pools (call it after
        `rows` or `region_rows` has yielded y: they encode the canvases' completed block rows)."""
        db, block = self.database, self.database.encoder.block
        if context is None:
            return np.zeros((*pools.shape, 0))
        if y % block and self._semantic is not None:
            return self._semantic
        columns, n_rows = db.encoder.columns(db.width), y // block
        first = max(0, n_rows - context)
        if first == n_rows:
            self._semantic = np.zeros((*pools.shape, columns))
            return self._semantic
        theirs = np.asarray(db.representations[np.maximum(pools, 0).reshape(-1), first:n_rows], dtype=np.int64)
        theirs = theirs.reshape(*pools.shape, n_rows - first, columns, -1)
        mine = self.codes[:, first:n_rows].astype(np.int64).reshape(len(pools), 1, 1, n_rows - first, columns, -1)
        per_block = ((theirs - mine) ** 2).sum(axis=(3, 5))
        running = np.concatenate([np.zeros((*pools.shape, 1), np.int64), np.cumsum(per_block, axis=3)], axis=3)
        upper = np.minimum(np.arange(columns) + context + 1, columns)
        lower = np.maximum(np.arange(columns) - context, 0)
        self._semantic = (running[..., upper] - running[..., lower]).astype(np.float64)
        return self._semantic

    def images(self) -> np.ndarray:
        """The (n, H, W, C) images inside the padding."""
        h = self.database.half_window
        return self.canvas[:, h:, h : h + self.shape[1]]
