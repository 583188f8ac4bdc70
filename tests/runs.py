"""Comparing two run folders as a user would: the same bytes and the same rows, whichever way they were made."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq

# manifest entries that may differ between a run and the same command made another way (sharded, on Ray)
PER_EXECUTION = {"command", "timings", "started", "finished", "merged_from"}


def assert_same_run(made: Path, expected: Path) -> None:
    """`made` holds exactly the samples, Parquet rows and pictures of `expected`; its manifest differs only in
    timings and command lines."""
    made, expected = Path(made), Path(expected)
    assert (made / "samples.npy").read_bytes() == (expected / "samples.npy").read_bytes()
    for table in ("provenance", "samples.parquet"):
        assert pq.read_table(made / table).equals(pq.read_table(expected / table)), table
    pictures = sorted(p.relative_to(expected) for p in expected.rglob("*.png"))
    assert pictures and pictures == sorted(p.relative_to(made) for p in made.rglob("*.png"))
    for picture in pictures:
        assert (made / picture).read_bytes() == (expected / picture).read_bytes(), picture
    for kind in ("provenance", "summary", "chunks"):
        parts = sorted(p.name for p in (expected / kind).iterdir())
        assert parts == sorted(p.name for p in (made / kind).iterdir())
        for part in parts:
            assert (made / kind / part).read_bytes() == (expected / kind / part).read_bytes(), f"{kind}/{part}"
    mine, theirs = (json.loads((run / "manifest.json").read_text()) for run in (made, expected))
    for manifest in (mine, theirs):
        manifest["database"].pop("path")  # where the database was found; its id is compared
    assert {k: v for k, v in mine.items() if k not in PER_EXECUTION} == {
        k: v for k, v in theirs.items() if k not in PER_EXECUTION
    }
