"""The summary row of each sample a run writes (samples.parquet): its nearest training image and its sources."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from npgen.data.nearest import NearestImages, source_ranking, squared_to_distance
from npgen.rule.provenance import Samples

if TYPE_CHECKING:
    from npgen.data.database import Database

NEAREST_HINTS = 10  # a sample's most-used sources whose distances bound its nearest-image search


def sample_summary(samples: Samples, database: Database) -> pa.Table:
    """One row per sample: requested class, nearest training image and distance, source composition.

    The nearest training image is exact (`npgen.data.nearest`: integer squared distances, ties to the lowest
    image id), the same image and float32 distance as a brute-force FAISS search over the database's images; -1
    and NaN for samples of another size than the training images.
    """
    ranked, top_count, distinct = source_ranking(samples.src_image, NEAREST_HINTS)
    if samples.images.shape[1:3] == (database.height, database.width):
        squared, nearest = NearestImages.for_database(database).search(samples.images, ranked)
    else:  # another size (--size): no training image is comparable whole
        squared, nearest = np.full(len(ranked), np.nan), np.full(len(ranked), -1)
    top, share = ranked[:, 0], top_count / np.prod(samples.src_image.shape[1:])
    return pa.table(
        {
            "sample": samples.sample_index.astype(np.int32),
            "class_label": samples.class_label.astype(np.int32),
            "nearest_image": nearest.astype(np.int32),
            "nearest_distance": squared_to_distance(squared),
            "top_source": top.astype(np.int32),
            "top_source_share": share,
            "n_sources": distinct.astype(np.int32),
            "mean_candidates": samples.n_candidates.reshape(len(top), -1).mean(axis=1),
        }
    )
