"""Runs on disk: the generation request, sampling and completing a run, its store (manifest, Parquet provenance, PNGs),
reading it back, shards and Ray, verification."""
