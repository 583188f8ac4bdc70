"""The provenance store: Parquet round trip, atomic batches, resume."""

import numpy as np
import pyarrow.parquet as pq
import pytest

from npgen.errors import NpgenError
from npgen.rule.sampler import Sampler
from npgen.runs import store
from npgen.runs.run import Run
from npgen.runs.store import RunWriter, provenance_table
from npgen.runs.summary import sample_summary


def _write_run(path, db, n=5, batch_size=2, resume=False, stop_after=None):
    sampler = Sampler(db, batch_size=batch_size, seed=1)
    writer = RunWriter(
        path, {"dataset": db.dataset, "params": sampler.params(), "class_label": 4, "n_samples": n}, resume=resume
    )
    batches = list(range(0, n, batch_size))
    for index, first in enumerate(batches[:stop_after]):
        if not writer.has_batch(index):
            samples = sampler.sample_batch(np.arange(first, min(first + batch_size, n)), 4)
            writer.write_batch(index, samples, sample_summary(samples, db))
    if stop_after is None:
        writer.finish(len(batches), {})
    return sampler


def test_provenance_round_trip_through_plain_parquet(tmp_path, mnist_db):
    sampler = _write_run(tmp_path / "run", mnist_db)
    expected = sampler.sample(5, class_label=4)
    run = Run(tmp_path / "run")
    np.testing.assert_array_equal(run.samples, expected.images)
    table = pq.read_table(tmp_path / "run" / "provenance")  # plain pyarrow, no npgen
    assert table.num_rows == 5 * 28 * 28
    rows = table.sort_by([("sample", "ascending"), ("y", "ascending"), ("x", "ascending")])
    assert rows.equals(provenance_table(expected))
    summary = run.summary()
    assert summary.column("sample").to_pylist() == [0, 1, 2, 3, 4]
    assert all(0 < s <= 1 for s in summary.column("top_source_share").to_pylist())
    assert run.manifest["status"] == "complete"
    assert not list((tmp_path / "run").rglob(".*tmp*"))


def test_interrupted_run_is_refused_then_resumed_to_the_same_result(tmp_path, mnist_db):
    _write_run(tmp_path / "whole", mnist_db)
    _write_run(tmp_path / "cut", mnist_db, stop_after=1)
    with pytest.raises(NpgenError, match="incomplete.*--resume"):
        Run(tmp_path / "cut")
    with pytest.raises(NpgenError, match="already exists"):
        _write_run(tmp_path / "cut", mnist_db)
    _write_run(tmp_path / "cut", mnist_db, resume=True)
    np.testing.assert_array_equal(Run(tmp_path / "cut").samples, Run(tmp_path / "whole").samples)
    assert Run(tmp_path / "cut").provenance().equals(Run(tmp_path / "whole").provenance())


def test_damaged_runs_give_one_line_errors(tmp_path, mnist_db):
    with pytest.raises(NpgenError, match="not an npgen run"):
        Run(tmp_path)
    _write_run(tmp_path / "run", mnist_db, n=2)
    part = tmp_path / "run" / "provenance" / "part-00000.parquet"
    part.write_bytes(part.read_bytes()[:100])
    with pytest.raises(NpgenError, match="provenance.* unreadable"):
        Run(tmp_path / "run").provenance()


def test_finish_writes_the_same_files_from_kept_batches_as_from_disk(tmp_path, mnist_db, monkeypatch):
    """`finish` reuses the batches the writer kept in memory; read back from their parts instead (nothing kept),
    samples.npy and samples.parquet come out byte for byte the same."""
    _write_run(tmp_path / "kept", mnist_db)
    monkeypatch.setattr(store, "KEEP_BYTES", 0)
    _write_run(tmp_path / "read", mnist_db)
    for name in ("samples.npy", "samples.parquet", "grid.png", "png/sample-00004.png"):
        assert (tmp_path / "kept" / name).read_bytes() == (tmp_path / "read" / name).read_bytes()
