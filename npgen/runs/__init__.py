"""Runs on disk: generating a run, its store (manifest, Parquet provenance, PNGs), shards and Ray, verification."""
