"""Runs: the request, generating (sample, complete) and writing a run folder, reading it back, shards, verify."""
